//! `blastwall check`: the same analysis and static rules as the proxy, offline, over SQL
//! scripts — for CI pipelines and for the 30-second look before a cleanup script runs.
//!
//! Owns: reading scripts, reporting findings with file:line as text or JSON, the exit status.
//! Does not own: the rules (`policy`) or the analysis (`analyze`).

use crate::analyze::script;
use crate::guard::{Guard, SessionInfo};
use crate::policy::Mode;
use serde::Serialize;
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// One finding, as reported.
#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub line: usize,
    pub verdict: &'static str,
    pub rule: &'static str,
    pub mode: &'static str,
    pub message: String,
    pub hint: &'static str,
    pub policy: String,
    pub statement: String,
}

/// Checks the scripts (`-` is standard input). Returns the reports and whether any statement
/// would be refused.
pub fn run(
    guard: &Guard,
    files: &[PathBuf],
    user: &str,
    application_name: &str,
) -> std::io::Result<(Vec<Report>, bool)> {
    let mut reports = Vec::new();
    let mut refused = false;
    for f in files {
        let (name, text) = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            ("<stdin>".to_string(), s)
        } else {
            (f.display().to_string(), std::fs::read_to_string(f)?)
        };
        // One session per script: PREPARE in a script is seen by its EXECUTE.
        let mut info = SessionInfo::new(user, application_name);
        for chunk in script::chunks(&text) {
            // Offline there is no catalog to ask: the policy's names are used as written.
            let Ok((statements, decision)) = guard.decide_text(chunk.sql.as_bytes(), &mut info) else { continue };
            for f in decision.findings {
                let offset = statements.iter().find(|s| s.text == f.statement).map_or(0, |s| s.offset);
                let verdict = match f.mode {
                    Mode::Enforce | Mode::DryRun => {
                        refused = true;
                        "refused"
                    }
                    Mode::Warn | Mode::Off => "warning",
                };
                reports.push(Report {
                    file: name.clone(),
                    line: script::line_at(&chunk, offset),
                    verdict,
                    rule: f.rule,
                    mode: f.mode.as_str(),
                    message: format!("{}: {}", f.what, f.why),
                    hint: f.hint,
                    policy: f.source,
                    statement: f.statement,
                });
            }
        }
    }
    Ok((reports, refused))
}

pub fn print(reports: &[Report], format: Format) {
    match format {
        Format::Json => {
            for r in reports {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        Format::Text => {
            for r in reports {
                println!(
                    "{}:{}: {} {} [rule {}, mode {}, {}]",
                    r.file, r.line, r.verdict, r.message, r.rule, r.mode, r.policy
                );
                println!("    hint: {}", r.hint);
            }
        }
    }
}
