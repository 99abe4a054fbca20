//! The memory that parsing may take. pg_query hands its tree over as protobuf decoded into
//! prost structs of about 600 bytes a node, so a text costs hundreds to thousands of times its
//! size while it is analyzed (measured: `SELECT a,a,a,…` 2,000×, an `AND` chain 550–730×, an
//! `IN` list of integers 460×). Without a bound, one client with a few megabytes of `AND`s
//! could make the proxy abort on a failed allocation and end every session behind it.
//!
//! Owns: the estimate of a text's parse (from a count of its tokens, without allocating) and
//! the process-wide budget every parse is admitted against. A text whose estimate exceeds the
//! whole budget is never parsed (the statement is refused as too large to analyze); one that
//! fits waits until the parses already running leave room for it. A thread that holds a permit
//! and parses again (a second reading of the same text) is not admitted twice. A text found too
//! large is remembered (by a keyed digest of its bytes): its refusal fingerprints, normalizes
//! and resolves the same text again on the event loop, which then costs a hash, not a count.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// What a word (a name, keyword, operator or parameter) may cost in the decoded tree, at most:
/// measured worst about 3 KB (`-a`, `a[1]`, `ROW(a, b)` in a target list, with the lists prost
/// grows to four slots of 600 bytes for one element), doubled for margin.
const PER_WORD: usize = 6 * 1024;
/// What a literal (number or string) may cost: a constant node in a list slot (about 1.8 KB
/// in a target list).
const PER_LITERAL: usize = 3 * 1024;
/// `[`: subscripts add a list and a node of their own.
const PER_BRACKET: usize = 3 * 1024;
/// What each byte of text may cost besides its tokens: the text is copied by the C parser,
/// into protobuf and into prost strings.
const PER_BYTE: usize = 8;
/// Texts shorter than this are parsed without counting: they are analyzed in place on a
/// session's event loop (longer ones on a blocking thread), one at a time per loop, so their
/// memory is bounded by the number of loops; waiting here would stall every session of it.
const UNCOUNTED: usize = 16 * 1024;
/// The default budget: what all parses running at one time may take.
pub const DEFAULT_LIMIT: usize = 1 << 30;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT);
/// Texts found too large: (length, digest, reading of backslashes, estimate), newest last.
static TOO_LARGE: Mutex<Vec<(usize, u64, bool, usize)>> = Mutex::new(Vec::new());
/// How many texts found too large are remembered.
const REMEMBERED: usize = 16;
/// The digest's random keys (SipHash): a text cannot be made to collide with another's.
static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
static IN_USE: Mutex<usize> = Mutex::new(0);
static ROOM: Condvar = Condvar::new();

thread_local! {
    /// This thread holds a permit: a parse inside it is already counted.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// Sets the budget (bytes) for every parse from now on (`max_analysis_bytes` in the config).
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes.max(1), Ordering::Relaxed);
}

/// The budget in bytes.
pub fn limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// Room for one parse; given back when dropped.
#[must_use]
pub struct Permit {
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        HOLDING.with(|h| h.set(false));
        let mut in_use = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        *in_use = in_use.saturating_sub(self.bytes);
        ROOM.notify_all();
    }
}

/// A text whose parse would not fit in the whole budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub estimate: usize,
    pub limit: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "its parse tree would take about {} MiB, over the {} MiB that parsing may use (max_analysis_bytes)",
            self.estimate.div_ceil(1 << 20),
            self.limit >> 20
        )
    }
}

/// Admits a parse of `sql` (read with `standard_conforming_strings` as given): waits until
/// it fits beside the parses running now, or says it can never fit.
pub fn admit(sql: &str, standard_conforming_strings: bool) -> Result<Permit, TooLarge> {
    if HOLDING.with(|h| h.get()) || sql.len() < UNCOUNTED {
        return Ok(Permit { bytes: 0 });
    }
    let estimate = remembered_estimate(sql, standard_conforming_strings);
    let limit = limit();
    if estimate > limit {
        return Err(TooLarge { estimate, limit });
    }
    let mut in_use = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    // A thread waits holding nothing, and every holder is parsing: the wait ends.
    while *in_use > 0 && *in_use + estimate > limit {
        in_use = ROOM.wait(in_use).unwrap_or_else(|e| e.into_inner());
    }
    *in_use += estimate;
    HOLDING.with(|h| h.set(true));
    Ok(Permit { bytes: estimate })
}

/// [`pg_query::parse`] admitted by the budget: a text that can never fit is a parse error
/// that says so.
pub fn parse(sql: &str, opts: impl Into<pg_query::ParserOptions>) -> pg_query::Result<pg_query::ParseResult> {
    let opts = opts.into();
    let scs = opts.bits() & pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS.bits() == 0;
    match admit(sql, scs) {
        Ok(_permit) => pg_query::parse(sql, opts),
        Err(e) => Err(pg_query::Error::Parse(format!("too large to analyze: {e}"))),
    }
}

/// `f` (which parses, scans or fingerprints `sql` with pg_query) when the budget admits it;
/// `None` when the text can never fit.
pub fn within<T>(sql: &str, f: impl FnOnce() -> T) -> Option<T> {
    admit(sql, true).ok().map(|_permit| f())
}

/// [`estimate`], remembered for the texts found too large: the same text is estimated once.
fn remembered_estimate(sql: &str, standard_conforming_strings: bool) -> usize {
    use std::hash::BuildHasher;
    let digest = KEYS.get_or_init(Default::default).hash_one(sql.as_bytes());
    let key = |e: &&(usize, u64, bool, usize)| e.0 == sql.len() && e.1 == digest && e.2 == standard_conforming_strings;
    if let Some(e) = TOO_LARGE.lock().unwrap_or_else(|e| e.into_inner()).iter().find(key) {
        return e.3;
    }
    let estimate = estimate(sql, standard_conforming_strings);
    if estimate > limit() {
        let mut seen = TOO_LARGE.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBERED {
            seen.remove(0);
        }
        seen.push((sql.len(), digest, standard_conforming_strings, estimate));
    }
    estimate
}

/// What parsing `sql` may take, at most (bytes).
pub fn estimate(sql: &str, standard_conforming_strings: bool) -> usize {
    cost(sql.as_bytes(), standard_conforming_strings).saturating_add(sql.len().saturating_mul(PER_BYTE))
}

/// What the tokens of `sql` may cost once parsed, read as PostgreSQL's scanner reads them or
/// dearer (never cheaper): a string, quoted identifier or comment is skipped as the scanner
/// skips it; where this reading could differ from the scanner's (a quote left open), every
/// byte after that point costs a word.
pub fn cost(sql: &[u8], standard_conforming_strings: bool) -> usize {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    let mut total = 0usize;
    let mut i = 0usize;
    while i < sql.len() {
        let b = sql[i];
        let rest = &sql[i..];
        let (next, each) = match b {
            c if c.is_ascii_whitespace() => (Some(i + 1), 0),
            b'-' if rest.get(1) == Some(&b'-') => {
                (Some(rest.iter().position(|&c| c == b'\n' || c == b'\r').map_or(sql.len(), |p| i + p)), 0)
            }
            b'/' if rest.get(1) == Some(&b'*') => (block_comment(sql, i), 0),
            b'\'' => (quoted(sql, i, b'\'', !standard_conforming_strings), PER_LITERAL),
            b'"' => (quoted(sql, i, b'"', false), PER_WORD),
            b'$' if rest.get(1).is_some_and(|&c| !c.is_ascii_digit()) => (dollar_quoted(sql, i, ident), PER_LITERAL),
            // E'…' (and e'…'): backslashes escape. Other prefixes (B, X, N, U&) read as
            // standard strings, and an identifier ending in e before a quote (`xe'…'`) is an
            // identifier, then a string: both are taken below as two tokens.
            b'E' | b'e' if rest.get(1) == Some(&b'\'') => (quoted(sql, i + 1, b'\'', true), PER_LITERAL),
            c if ident(c) => {
                let end = i + rest.iter().position(|&c| !ident(c)).unwrap_or(rest.len());
                (Some(end), if c.is_ascii_digit() { PER_LITERAL } else { PER_WORD })
            }
            b',' | b'(' | b')' | b';' | b'.' => (Some(i + 1), 0),
            b'[' => (Some(i + 1), PER_BRACKET),
            _ => (Some(i + 1), PER_WORD),
        };
        total = total.saturating_add(each);
        match next {
            Some(end) => i = end.max(i + 1),
            // Left open: what follows costs a word a byte.
            None => return total.saturating_add((sql.len() - i).saturating_mul(PER_WORD)),
        }
    }
    total
}

/// The end of a quoted string or identifier starting at `at` (the quote doubled inside it;
/// with `backslashes`, a backslash escapes the next byte).
fn quoted(sql: &[u8], at: usize, quote: u8, backslashes: bool) -> Option<usize> {
    let mut i = at + 1;
    while i < sql.len() {
        match sql[i] {
            b'\\' if backslashes => i += 2,
            c if c == quote => {
                if sql.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The end of a (nested) block comment starting at `at`.
pub(crate) fn block_comment(sql: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    while i + 1 < sql.len() {
        match (sql[i], sql[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The end of a dollar-quoted string starting at `at` (`$tag$…$tag$`); `$` followed by
/// something that is not a tag is one token (an operator or a parameter's sign).
fn dollar_quoted(sql: &[u8], at: usize, ident: impl Fn(u8) -> bool) -> Option<usize> {
    let tag_len = sql[at + 1..].iter().position(|&c| c == b'$')?;
    let tag = &sql[at..at + tag_len + 2];
    if !tag[1..tag.len() - 1].iter().all(|&c| ident(c) && c != b'$') {
        return Some(at + 1);
    }
    let body = at + tag.len();
    sql[body..].windows(tag.len()).position(|w| w == tag).map(|p| body + p + tag.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_query::protobuf::Token as T;

    /// What the scanner's tokens of `sql` cost by the same prices.
    fn scanner_cost(sql: &str) -> usize {
        let scan = pg_query::scan(sql).expect("scans");
        scan.tokens
            .iter()
            .map(|t| match T::try_from(t.token) {
                Ok(T::Ascii44 | T::Ascii40 | T::Ascii41 | T::Ascii59 | T::Ascii46) => 0,
                Ok(T::SqlComment | T::CComment) => 0,
                Ok(T::Ascii91) => PER_BRACKET,
                Ok(T::Sconst | T::Usconst | T::Bconst | T::Xconst | T::Iconst | T::Fconst) => PER_LITERAL,
                _ => PER_WORD,
            })
            .sum()
    }

    #[test]
    fn strings_comments_and_quoted_names_cost_as_one_token_or_nothing() {
        let text = "SELECT 'a,b,c', \"x,y\" -- a,b,c\n, 1 /* a /* b */ c */";
        assert_eq!(cost(text.as_bytes(), true), 2 * PER_WORD + 2 * PER_LITERAL);
        assert_eq!(cost(b"SELECT $f$ a,b,c $f$, $1", true), 2 * PER_WORD + PER_LITERAL);
        assert_eq!(cost(b"SELECT E'\\' , a', 1", true), PER_WORD + 2 * PER_LITERAL);
    }

    #[test]
    fn where_the_reading_may_differ_the_text_costs_more() {
        // With standard_conforming_strings on, '\' is a whole string and the a's are tokens.
        let on = "SELECT '\\' , a,a,a,a,a,a --'";
        assert!(cost(on.as_bytes(), true) >= scanner_cost(on));
        // Off, the backslash escapes the quote: one string, as the server reads it.
        assert_eq!(cost(on.as_bytes(), false), PER_WORD + PER_LITERAL);
        // An identifier ending in e, then a string: not an E'' string.
        let xe = "SELECT xe'\\' , a,a,a,a,a,a, 'x'";
        assert!(cost(xe.as_bytes(), true) >= scanner_cost(xe));
        // A quote left open: every byte after it counts.
        assert!(cost(b"SELECT 'abcdefgh", true) >= 9 * PER_WORD);
    }

    #[test]
    fn never_cheaper_than_the_scanners_tokens() {
        let texts = [
            "SELECT a,b,c FROM t WHERE x = 'it''s' AND y = E'\\'' AND z = $$q$$",
            "DELETE FROM t WHERE id IN (1,2,3,-4) AND \"we\"\"ird\" = U&'\\0041' /* c */ -- d",
            "SELECT xe'\\' , a, b, c --'",
            "SELECT $1::int, $a$b$a$, a$b, 1.5e10, .5, 1::text || 'x', a[1:2], t.*",
            "UPDATE t SET a = b'0101', c = x'ff', d = n'str' WHERE e <> f AND g >= h",
        ];
        for t in texts {
            let (ours, scanner) = (cost(t.as_bytes(), true), scanner_cost(t));
            assert!(ours >= scanner, "{t}: {ours} < {scanner}");
        }
    }

    #[test]
    fn a_parse_that_cannot_fit_is_refused_and_one_that_fits_is_admitted() {
        let big = format!("SELECT {}", vec!["a"; 400_000].join(","));
        let e = admit(&big, true).err().expect("400,000 names cannot fit in 1 GiB");
        assert!(e.estimate > e.limit);
        let fits = format!("DELETE FROM t WHERE id IN ({})", vec!["1"; 20_000].join(","));
        let first = admit(&fits, true).expect("fits");
        // The same thread parsing again is not admitted twice.
        let again = admit(&big, true).expect("already holding");
        drop(again);
        drop(first);
        // Short texts are not counted.
        assert_eq!(admit("DELETE FROM t", true).expect("short").bytes, 0);
    }

    #[test]
    fn a_text_found_too_large_is_estimated_once() {
        let big = format!("SELECT {}", vec!["b"; 400_001].join(","));
        let e = admit(&big, true).err().expect("too large");
        let seen = |t: &str| {
            let digest = KEYS.get().expect("keys").hash_one(t.as_bytes());
            TOO_LARGE.lock().unwrap().iter().any(|e| e.0 == t.len() && e.1 == digest && e.2)
        };
        use std::hash::BuildHasher;
        assert!(seen(&big));
        assert_eq!(admit(&big, true).err(), Some(e.clone()));
        // The same length, other bytes: estimated on its own.
        let other = format!("SELECT {}", vec!["1"; 400_001].join(","));
        assert_eq!(other.len(), big.len());
        assert!(!seen(&other));
        let o = admit(&other, true).err().expect("too large");
        assert!(o.estimate < e.estimate, "literals cost less than names");
    }
}
