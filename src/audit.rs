//! The audit trail: one JSON line per guarded decision (refused, warned, dry-run, overridden,
//! verified), to stdout or a file with size-based rotation and reopen on SIGHUP.
//!
//! Owns: the event's fields and where it is written. Does not own: deciding (`guard`,
//! `precheck`) or when to emit (`session`). Never carries passwords or parameter values: the
//! statement is PostgreSQL's normalized text (constants replaced by `$n`) unless the policy
//! asks for the raw text.

pub mod texts;

use crate::policy::TableCount;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// What the guard knew about a decision, kept for the audit event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// refused | warned | dry-run | overridden | verified | checked
    pub decision: &'static str,
    pub rule: Option<String>,
    pub mode: Option<&'static str>,
    pub statement: String,
    pub targets: Vec<String>,
    pub message: Option<String>,
    pub override_reason: Option<String>,
}

/// One line of the audit trail.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    pub time: String,
    pub session: u64,
    pub user: &'a str,
    pub database: &'a str,
    pub application_name: &'a str,
    pub client: String,
    pub decision: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'a str>,
    pub fingerprint: String,
    pub statement: String,
    pub targets: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub counts: Vec<CountField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precheck_us: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct CountField {
    pub table: String,
    pub deleted: u64,
    pub updated: u64,
    pub inserted: u64,
}

impl CountField {
    pub fn from_counts(c: &[TableCount]) -> Vec<CountField> {
        c.iter()
            .map(|c| CountField { table: c.qualified(), deleted: c.deleted, updated: c.updated, inserted: c.inserted })
            .collect()
    }
}

/// The text an event shows: normalized (constants replaced) unless `raw` is asked for; and
/// its fingerprint. A long text's were made off the event loop (`texts`).
pub fn statement_text(text: &str, raw: bool) -> (String, String) {
    let pair = texts::pair(text, !raw);
    let fingerprint = pair.fingerprint.clone().unwrap_or_else(|| "unparsed".into());
    if raw {
        return (fingerprint, text.to_string());
    }
    let normalized = pair
        .normalized
        .clone()
        .unwrap_or_else(|| "<statement that does not parse or is too large to analyze; not shown>".into());
    (fingerprint, normalized)
}

enum Sink {
    Stdout,
    File { path: PathBuf, file: std::fs::File, written: u64, max_bytes: u64, keep: usize },
}

/// Where audit events go.
pub struct Audit {
    sink: Mutex<Sink>,
}

impl Audit {
    pub fn stdout() -> Audit {
        Audit { sink: Mutex::new(Sink::Stdout) }
    }

    pub fn file(path: PathBuf, max_bytes: u64, keep: usize) -> std::io::Result<Audit> {
        let file = open(&path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Audit { sink: Mutex::new(Sink::File { path, file, written, max_bytes, keep }) })
    }

    /// Writes one event as a JSON line. Failing to write is logged, never fatal to a session.
    pub fn emit(&self, event: &Event<'_>) {
        let Ok(mut line) = serde_json::to_vec(event) else { return };
        line.push(b'\n');
        let mut sink = match self.sink.lock() {
            Ok(s) => s,
            Err(e) => e.into_inner(),
        };
        let result = match &mut *sink {
            Sink::Stdout => std::io::stdout().lock().write_all(&line),
            Sink::File { path, file, written, max_bytes, keep } => {
                if *max_bytes > 0 && *written + line.len() as u64 > *max_bytes {
                    if let Err(e) = rotate(path, *keep) {
                        tracing::warn!(error = %e, "rotating the audit file failed");
                    }
                    match open(path) {
                        Ok(f) => {
                            *file = f;
                            *written = 0;
                        }
                        Err(e) => tracing::warn!(error = %e, "reopening the audit file failed"),
                    }
                }
                *written += line.len() as u64;
                file.write_all(&line)
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "writing an audit event failed");
        }
    }

    /// Reopens the file (after logrotate moved it away; SIGHUP).
    pub fn reopen(&self) {
        let mut sink = match self.sink.lock() {
            Ok(s) => s,
            Err(e) => e.into_inner(),
        };
        if let Sink::File { path, file, written, .. } = &mut *sink {
            match open(path) {
                Ok(f) => {
                    *written = f.metadata().map(|m| m.len()).unwrap_or(0);
                    *file = f;
                }
                Err(e) => tracing::warn!(error = %e, "reopening the audit file failed"),
            }
        }
    }
}

fn open(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// `audit.jsonl` → `audit.jsonl.1` → … → `audit.jsonl.<keep>` (the oldest is removed).
fn rotate(path: &std::path::Path, keep: usize) -> std::io::Result<()> {
    let name = |i: usize| PathBuf::from(format!("{}.{i}", path.display()));
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(name(keep));
    for i in (1..keep).rev() {
        let _ = std::fs::rename(name(i), name(i + 1));
    }
    std::fs::rename(path, name(1))
}

pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_normalized() {
        let (fp, text) =
            statement_text("DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100 AND pw = 'secret'", false);
        assert!(!text.contains("secret") && !text.contains("91111200"), "{text}");
        assert_eq!(fp.len(), 16);
    }

    #[test]
    fn rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = Audit::file(path.clone(), 300, 2).unwrap();
        for i in 0..10 {
            let e = Event {
                time: now(),
                session: i,
                user: "u",
                database: "d",
                application_name: "a",
                client: "c".into(),
                decision: "refused",
                rule: None,
                mode: None,
                fingerprint: "f".into(),
                statement: "s".into(),
                targets: &[],
                counts: vec![],
                message: None,
                override_reason: None,
                precheck_us: None,
            };
            a.emit(&e);
        }
        assert!(
            path.exists() && dir.path().join("audit.jsonl.1").exists() && dir.path().join("audit.jsonl.2").exists()
        );
        assert!(!dir.path().join("audit.jsonl.3").exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= 300);
    }
}
