//! The guard's reading of a text: the prefilter (text that cannot write, decided with no
//! allocation), the readings of backslashes a text is judged under, and the analysis caches (by
//! text, bounded in entries and bytes; by statement shape for texts not seen before), with the
//! off-loop analysis of long texts.
//!
//! Owns: turning a message's bytes into analyzed statements. Does not own: deciding on them
//! (the parent module, `policy`) or parsing itself (`analyze`).

use super::prefilter::{scan, Scan};
use super::{Guard, SessionInfo};
use crate::analyze::{self, ParseOptions, Statement};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A long text analyzed ahead of its judgement (see [`super::Verdict::Analyze`]).
#[derive(Debug, Clone)]
pub struct Preanalyzed {
    /// It provably cannot write (the prefilter): nothing else was needed.
    pub harmless: bool,
    /// Its readings: one, or both readings of backslashes when the setting is uncertain.
    pub readings: Vec<Reading>,
    /// The one pass over its words, made there too (the event loop reads none of a long text).
    pub scan: Scan,
}

impl Default for Preanalyzed {
    fn default() -> Self {
        Preanalyzed { harmless: false, readings: Vec::new(), scan: Scan::UNKNOWN }
    }
}

/// One reading of a text.
#[derive(Debug, Clone)]
pub struct Reading {
    pub text: Arc<str>,
    pub standard_conforming_strings: bool,
    pub statements: Arc<Vec<Statement>>,
}

/// How many analyzed texts are kept.
const ANALYSIS_CACHE_ENTRIES: usize = 10_000;

/// How many bytes of text the cache keeps at most (the analyses it holds are of the same
/// order): without it, 10,000 large distinct statements would pin gigabytes.
const ANALYSIS_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Texts longer than this are analyzed every time: big statements (bulk loads) are rarely
/// repeated, and one would take a large share of the cache.
const ANALYSIS_CACHE_MAX_TEXT: usize = 64 * 1024;

/// The readings of backslashes a text is judged under: the server's, and the other one too
/// while a statement that could have changed `standard_conforming_strings` may still run.
pub(super) fn backslash_readings(text: &str, scs: bool, settings_certain: bool) -> &'static [bool] {
    match (settings_certain || !text.contains('\\'), scs) {
        (true, true) => &[true],
        (true, false) => &[false],
        (false, true) => &[true, false],
        (false, false) => &[false, true],
    }
}

impl Guard {
    /// Analyzes a long message text as [`Guard::judge_sql`] will read it (the prefilter, then
    /// both readings of backslashes when the setting is uncertain). Meant for a blocking thread.
    pub fn preanalyze(&self, sql: &[u8], client_encoding: &str, scs: bool, settings_certain: bool) -> Preanalyzed {
        let (scan, harmless) = self.read_text(sql, client_encoding);
        let Ok(text) = analyze::decode(sql, client_encoding) else {
            return Preanalyzed { scan, ..Default::default() };
        };
        if harmless {
            return Preanalyzed { harmless, readings: Vec::new(), scan };
        }
        let text: Arc<str> = Arc::from(&*text);
        let readings = backslash_readings(&text, scs, settings_certain)
            .iter()
            .map(|&s| Reading {
                text: text.clone(),
                standard_conforming_strings: s,
                statements: Arc::new(analyze::analyze(&text, ParseOptions { standard_conforming_strings: s })),
            })
            .collect::<Vec<Reading>>();
        // What a refusal, a warning and the audit trail would show of a long statement, made
        // here too rather than on the event loop (`audit::texts`).
        for st in readings.iter().flat_map(|r| r.statements.iter()) {
            if !st.is_harmless() || st.calls_functions {
                crate::audit::texts::prepare(&st.text);
            }
        }
        Preanalyzed { harmless: false, readings, scan }
    }

    /// The one pass over a message's text, and whether the text provably cannot write (most
    /// of the traffic): decided before the policy is even looked up, with no allocation. A
    /// function call counts as a write when the policy looks at calls; a text the session's
    /// encoding cannot read is never harmless. Words are read from the bytes: every decoding
    /// the guard accepts keeps ASCII bytes where they are and turns no other byte into one.
    pub(super) fn read_text(&self, sql: &[u8], client_encoding: &str) -> (Scan, bool) {
        self.read_scanned(sql, scan(sql), client_encoding)
    }

    /// [`Guard::read_text`] of a text whose one pass was read already.
    pub(super) fn read_scanned(&self, sql: &[u8], scan: Scan, client_encoding: &str) -> (Scan, bool) {
        let calls = scan.paren && self.calls_matter.load(Ordering::Acquire);
        let readable = !scan.non_ascii || analyze::decode(sql, client_encoding).is_ok();
        (scan, readable && !scan.writes && !calls)
    }

    /// The statements of a message's text, read as the session's encoding and settings read
    /// it (both ways while `standard_conforming_strings` is uncertain).
    pub fn statements_of(&self, sql: &[u8], info: &SessionInfo, pre: Option<&Preanalyzed>) -> Arc<Vec<Statement>> {
        match analyze::decode(sql, &info.client_encoding) {
            Err(o) => Arc::new(vec![Statement {
                text: String::from_utf8_lossy(sql).into_owned(),
                opaque: vec![o],
                ..Default::default()
            }]),
            Ok(text) => match backslash_readings(&text, info.standard_conforming_strings, info.settings_certain) {
                [one] => self.analyzed(&text, *one, pre),
                both => Arc::new(both.iter().flat_map(|&s| self.analyzed(&text, s, pre).to_vec()).collect()),
            },
        }
    }

    /// The analysis of a text, from the cache when the same text was analyzed before (an
    /// application sends the same few statements over and over).
    pub(super) fn analyzed(&self, text: &str, scs: bool, pre: Option<&Preanalyzed>) -> Arc<Vec<Statement>> {
        let readings = pre.map_or(&[][..], |p| &p.readings[..]);
        if let Some(r) = readings.iter().find(|r| r.standard_conforming_strings == scs && &*r.text == text) {
            return r.statements.clone();
        }
        use std::hash::Hash;
        let key = analyze::key_hash(|h| {
            text.hash(h);
            scs.hash(h);
        });
        if let Some(e) = self.analysis_cache.get(&key) {
            if &*e.0 == text && e.1 == scs {
                return e.2.clone();
            }
        }
        let (st, valued) = self.shapes.analyze_keyed(text, ParseOptions { standard_conforming_strings: scs });
        let st = Arc::new(st);
        // A text with literal values (a new text every time, on an OLTP write path) is found
        // by its shape: keeping it by text would only churn this cache.
        if text.len() > ANALYSIS_CACHE_MAX_TEXT || valued {
            return st;
        }
        if self.analysis_cache.len() >= ANALYSIS_CACHE_ENTRIES
            || self.analysis_cache_bytes.load(Ordering::Relaxed) + text.len() > ANALYSIS_CACHE_BYTES
        {
            // Bounded: when full, start over (cheaper than tracking recency on every hit).
            self.analysis_cache.clear();
            self.analysis_cache_bytes.store(0, Ordering::Relaxed);
        }
        self.analysis_cache_bytes.fetch_add(text.len(), Ordering::Relaxed);
        self.analysis_cache.insert(key, (text.into(), scs, st.clone()));
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analysis_cache_keeps_small_texts_only_and_counts_their_bytes() {
        let guard = Guard::new(crate::policy::file::builtin(), None);
        let small = "DELETE FROM t WHERE id = $1";
        guard.analyzed(small, true, None);
        guard.analyzed(small, true, None);
        assert_eq!(guard.analysis_cache.len(), 1);
        assert_eq!(guard.analysis_cache_bytes.load(Ordering::Relaxed), small.len());
        // A bulk statement is analyzed, not kept.
        let ids = vec!["12345"; ANALYSIS_CACHE_MAX_TEXT / 5 + 1].join(",");
        let big = format!("DELETE FROM t WHERE id IN ({ids})");
        assert!(big.len() > ANALYSIS_CACHE_MAX_TEXT);
        assert_eq!(guard.analyzed(&big, true, None)[0].writes.len(), 1);
        assert_eq!(guard.analysis_cache.len(), 1);
        assert_eq!(guard.analysis_cache_bytes.load(Ordering::Relaxed), small.len());
        // A text with literal values is found by its shape, not kept by text.
        assert_eq!(guard.analyzed("DELETE FROM t WHERE id = 7", true, None)[0].writes.len(), 1);
        assert_eq!(guard.analysis_cache.len(), 1);
    }
}
