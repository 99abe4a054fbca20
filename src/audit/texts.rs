//! A statement's fingerprint and normalized text, as a refusal, a warning, the admin console
//! and the audit trail show them. Each is a parse of the whole text (pg_query's fingerprint and
//! normalization): for a long text, seconds of an event loop's time that every other session on
//! that loop would wait through. So a long text's pair is made once, on the blocking thread that
//! already analyzes it ([`prepare`], called by `guard::preanalyze` for every statement of
//! [`LONG`] bytes or more that may be refused or warned), and remembered; the event loop then
//! finds it by a keyed digest of the text. A short text's pair is made where it is asked for.
//!
//! Owns: making the pair and remembering long texts' pairs. Does not own: which texts are
//! analyzed off the loop (`guard::analysis`) or what shows the pair (`guard::render`, `audit`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Texts at least this long are fingerprinted off the event loop (the size above which they
/// are analyzed there too: `guard::ANALYZE_OFF_LOOP_BYTES`).
pub const LONG: usize = crate::guard::ANALYZE_OFF_LOOP_BYTES;

/// How many bytes of long texts' pairs are remembered at most (the normalized text is about as
/// long as the text), and how many pairs.
const REMEMBERED_BYTES: usize = 64 * 1024 * 1024;
const REMEMBERED: usize = 64;

/// A text's fingerprint (16 hex digits) and normalized text, `None` where the text does not
/// parse or is too large to analyze.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pair {
    pub fingerprint: Option<String>,
    pub normalized: Option<String>,
}

/// Long texts' pairs, newest last: (length, digest, pair, made by [`prepare`]).
type Memo = VecDeque<(usize, u64, Arc<Pair>, bool)>;
static MEMO: Mutex<Memo> = Mutex::new(VecDeque::new());
/// The digest's random keys (SipHash): a text cannot be made to collide with another's.
static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();

fn digest(text: &str) -> u64 {
    use std::hash::BuildHasher;
    KEYS.get_or_init(Default::default).hash_one(text)
}

/// Makes a text's pair (a parse each, within the analysis budget; `None`: too large to
/// analyze, which `budget` remembers itself).
fn try_make(text: &str, normalize: bool) -> Option<Pair> {
    crate::analyze::budget::within(text, || Pair {
        fingerprint: pg_query::fingerprint(text, 0, 0).ok().map(|f| f.hex),
        normalized: if normalize { pg_query::normalize(text).ok() } else { None },
    })
}

fn make(text: &str, normalize: bool) -> Pair {
    try_make(text, normalize).unwrap_or_default()
}

/// Makes and remembers a long text's pair (meant for a blocking thread); a short text's is not
/// kept (it is cheap where it is asked for).
pub fn prepare(text: &str) {
    if text.len() < LONG || find(text).is_some() {
        return;
    }
    // A text too large to analyze has nothing to remember (and its digest would cost the
    // event loop a pass over megabytes at every lookup).
    if let Some(pair) = try_make(text, true) {
        remember(text, Arc::new(pair), true);
    }
}

/// A remembered pair; the text is digested only when one of that length is remembered (a
/// digest of megabytes is not free either).
fn find(text: &str) -> Option<(Arc<Pair>, bool)> {
    let memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
    if !memo.iter().any(|(l, ..)| *l == text.len()) {
        return None;
    }
    let key = digest(text);
    memo.iter().rev().find(|(l, d, ..)| *l == text.len() && *d == key).map(|(_, _, p, off)| (p.clone(), *off))
}

fn remember(text: &str, pair: Arc<Pair>, off_loop: bool) {
    let key = digest(text);
    let mut memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
    if memo.iter().any(|(l, d, ..)| *l == text.len() && *d == key) {
        return;
    }
    memo.push_back((text.len(), key, pair, off_loop));
    let size = |m: &Memo| m.iter().map(|(l, _, p, _)| l + p.normalized.as_ref().map_or(0, String::len)).sum::<usize>();
    while memo.len() > REMEMBERED || (memo.len() > 1 && size(&memo) > REMEMBERED_BYTES) {
        memo.pop_front();
    }
}

/// A text's pair: remembered ([`prepare`]), or made now (`normalize`: the normalized text too;
/// a long text's is then remembered, marked as made where it was asked for).
pub fn pair(text: &str, normalize: bool) -> Arc<Pair> {
    if text.len() < LONG {
        return Arc::new(make(text, normalize));
    }
    if let Some((p, _)) = find(text).filter(|(p, _)| !normalize || p.normalized.is_some() || p.fingerprint.is_none()) {
        return p;
    }
    match try_make(text, true) {
        Some(p) => {
            let p = Arc::new(p);
            remember(text, p.clone(), false);
            p
        }
        // Too large to analyze: nothing to remember (`budget` remembers it as such).
        None => Arc::new(Pair::default()),
    }
}

/// Whether a long text's pair was made off the event loop (`Some(true)`), where it was asked
/// for (`Some(false)`), or is not remembered: what the tests of this module's promise read.
pub fn made_off_loop(text: &str) -> Option<bool> {
    find(text).map(|(_, off)| off)
}

/// A text's fingerprint, `unparsed` where it has none.
pub fn fingerprint(text: &str) -> String {
    pair(text, false).fingerprint.clone().unwrap_or_else(|| "unparsed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_is_fingerprinted_once_and_found_again() {
        let long = format!("DELETE FROM users WHERE id IN ({})", vec!["1"; 20_000].join(","));
        assert!(long.len() >= LONG);
        let fresh = make(&long, true);
        assert!(fresh.fingerprint.is_some() && fresh.normalized.as_deref().is_some_and(|n| n.contains("$1")));
        assert_eq!(made_off_loop(&long), None);
        prepare(&long);
        assert_eq!(made_off_loop(&long), Some(true));
        let found = pair(&long, true);
        assert_eq!(*found, fresh);
        // Found, not made: the same allocation each time.
        assert!(Arc::ptr_eq(&found, &pair(&long, false)));
        let short = "DELETE FROM users WHERE id = 5";
        prepare(short);
        assert!(!Arc::ptr_eq(&pair(short, true), &pair(short, true)), "short texts are not kept");
        assert_eq!(fingerprint("DELETE FROM"), "unparsed");
        let other = long.replacen("IN (1", "IN (2", 1);
        assert_eq!(fingerprint(&other), fresh.fingerprint.unwrap());
        assert_eq!(made_off_loop(&other), Some(false), "made where asked, and remembered as such");
    }
}
