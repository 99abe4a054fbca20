//! Analysis by statement shape: texts that differ only in the values of their literals (an
//! application's `UPDATE … WHERE id = 81723`, then `… WHERE id = 91224`) get the same facts,
//! found once. Scanning a text costs a fraction of parsing it (pg_query's parse tree is built
//! and encoded as protobuf, then decoded: most of a cold analysis).
//!
//! Owns: the shape key and the shape cache. Sound by construction: the key is the text's token
//! stream with every literal's value left out but its kind kept (and every other token kept
//! verbatim), so two texts with one key parse to trees that differ only in literal values; and
//! an analysis that read any literal's value ([`super::Statement::reads_literals`]: a sequence
//! in `setval('…')`, an array literal's length, `SET blastwall.mode = '…'`, an `EXPLAIN`
//! option, a COPY file name) is never shared. An IN list's length, `1 = 1` and every name stay
//! in the key. Texts whose tokens depend on a literal (`UESCAPE`, `U&` names), or that the
//! scanner would read differently from the server (backslashes with
//! `standard_conforming_strings` off), are analyzed whole every time.
//!
//! Most texts do not need pg_query's scanner for their key (it encodes every token as
//! protobuf, then decodes it: the larger part of a hit). [`literal_key`] reads the plain ones
//! itself — integers and standard strings outside quotes and comments, with every other byte
//! kept verbatim — and gives up (the scanner decides) on anything it does not read exactly as
//! the scanner does: backslashes, `$` other than a parameter, `E'…'`, `U&`, a digit glued to a
//! letter, `.` or `_`. Two texts with one such key have the same scanner tokens but for
//! literal values, and the same token kinds (an integer that does not fit 32 bits is kept
//! apart: the scanner makes it a float); the property test below checks this against the
//! scanner's own key.

use super::{analyze, ParseOptions, Statement};
use pg_query::protobuf::Token;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How many shapes are kept (then the cache starts over).
const ENTRIES: usize = 10_000;
/// Longer texts are analyzed whole (bulk statements are rarely repeated in shape).
const MAX_TEXT: usize = 16 * 1024;
/// How many bytes of keys the cache keeps at most.
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// The hash of a text or shape that the analysis caches are keyed by (a `u64`): fast, not
/// keyed. Sound, since an entry's whole key is compared on a hit: texts made to collide only
/// replace each other's entry (and miss), as under the fixed-key hash before it; where the
/// maps place a key is still their own random hash's.
pub fn key_hash(parts: impl FnOnce(&mut rustc_hash::FxHasher)) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    parts(&mut h);
    h.finish()
}

/// Where a token, or a statement's text, starts and ends (bytes or token indices).
type Span = (usize, usize);

struct Entry {
    key: Box<[u8]>,
    scs: bool,
    /// The facts, with each statement's text (empty here) and offset to be filled in from the
    /// new text.
    statements: Vec<Statement>,
    /// For each statement: the indices of its first and last token (a key of the scanner's),
    /// or where it starts and ends in the key (a [`literal_key`]).
    spans: Vec<Span>,
}

/// A literal [`literal_key`] read: where it is in the text and in the key.
#[derive(Clone, Copy)]
struct Literal {
    text: Span,
    key: Span,
}

/// A text's key as [`literal_key`] reads it: the key, and the literals left out of it.
struct LiteralKey {
    key: Vec<u8>,
    literals: Vec<Literal>,
}

impl LiteralKey {
    /// Where a position of the text is in the key (`None`: inside a literal).
    fn to_key(&self, at: usize) -> Option<usize> {
        across(&self.literals, at, |l| l.text, |l| l.key)
    }

    /// Where a position of the key is in the text (`None`: inside a literal's mark).
    fn to_text(&self, at: usize) -> Option<usize> {
        across(&self.literals, at, |l| l.key, |l| l.text)
    }
}

/// Where a position on one side of the literals (`from`: the text or the key) is on the other.
fn across(literals: &[Literal], at: usize, from: fn(&Literal) -> Span, to: fn(&Literal) -> Span) -> Option<usize> {
    let mut shift = 0isize;
    for l in literals {
        let (f, t) = (from(l), to(l));
        if at <= f.0 {
            break;
        }
        if at < f.1 {
            return None;
        }
        shift = t.1 as isize - f.1 as isize;
    }
    usize::try_from(at as isize + shift).ok()
}

/// The shape key of a plain text read without the scanner, or `None` when the scanner must
/// read it (see the module's documentation). A literal is replaced by a NUL byte (which no
/// text holds) and its kind: `i` an integer of 32 bits, `f` a longer one, `s` a string.
fn literal_key(sql: &str) -> Option<LiteralKey> {
    let b = sql.as_bytes();
    let glued = |c: u8| GLUED[usize::from(c)];
    if has_backslash_or_nul(b) {
        return None;
    }
    let mut key = Vec::with_capacity(b.len());
    let mut literals = Vec::new();
    // Everything but a literal is kept verbatim: copied into the key a run at a time, from
    // `from` up to the next literal.
    let mut from = 0;
    let mut literal = |key: &mut Vec<u8>, from: &mut usize, (start, end): Span, kind: u8| {
        key.extend_from_slice(&b[*from..start]);
        literals.push(Literal { text: (start, end), key: (key.len(), key.len() + 2) });
        key.extend_from_slice(&[0, kind]);
        *from = end;
    };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&c| c == b'\n' || c == b'\r').map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Comments nest.
                let (mut depth, mut j) = (0usize, i);
                loop {
                    match (b.get(j), b.get(j + 1)) {
                        (Some(b'/'), Some(b'*')) => (depth, j) = (depth + 1, j + 2),
                        (Some(b'*'), Some(b'/')) => {
                            (depth, j) = (depth - 1, j + 2);
                            if depth == 0 {
                                break;
                            }
                        }
                        (Some(_), _) => j += 1,
                        // Unterminated: the scanner reports it.
                        (None, _) => return None,
                    }
                }
                i = j;
            }
            b'"' => i = quoted_end(b, i, b'"')?,
            b'\'' => {
                // A prefix (E, B, X, N, U&) or a glued word: the scanner reads it.
                if i > 0 && (glued(b[i - 1]) || b[i - 1] == b'&' || b[i - 1] == b'\'') {
                    return None;
                }
                let end = quoted_end(b, i, b'\'')?;
                if b.get(end) == Some(&b'\'') {
                    return None;
                }
                literal(&mut key, &mut from, (i, end), b's');
                i = end;
            }
            b'$' => {
                // A parameter ($1) is kept; a dollar quote is the scanner's.
                let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 || b.get(i + 1 + n).is_some_and(|&c| glued(c)) {
                    return None;
                }
                i += 1 + n;
            }
            b'0'..=b'9' if i == 0 || !glued(b[i - 1]) => {
                let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                let end = i + n;
                if b.get(end).is_some_and(|&c| glued(c)) {
                    return None;
                }
                let digits = sql[i..end].trim_start_matches('0');
                let small = digits.len() < 10 || (digits.len() == 10 && digits <= "2147483647");
                literal(&mut key, &mut from, (i, end), if small { b'i' } else { b'f' });
                i = end;
            }
            c if WORD[usize::from(c)] => {
                // A word (identifier or keyword, digits and `$` included), kept whole.
                let n = b[i..].iter().take_while(|&&c| WORD[usize::from(c)]).count();
                if n == 1 && (c == b'u' || c == b'U') && b.get(i + 1) == Some(&b'&') {
                    return None;
                }
                i += n;
            }
            _ => i += 1,
        }
    }
    key.extend_from_slice(&b[from..]);
    Some(LiteralKey { key, literals })
}

/// Whether a text holds a backslash or a NUL byte: eight bytes at a time (a byte of `x` is
/// zero exactly when `(x - 0x01…) & !x & 0x80…` is not).
fn has_backslash_or_nul(b: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(LO) & !x & HI != 0;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if zero_byte(x) || zero_byte(x ^ (LO * u64::from(b'\\'))) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| c == b'\\' || c == 0)
}

/// Bytes that glue to a word before or after them: ASCII letters and digits, `_`, `$`, `.`
/// and every non-ASCII byte.
const GLUED: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.' || b >= 0x80;
        c += 1;
    }
    t
};

/// The bytes of a word: [`GLUED`] but `.`.
const WORD: [bool; 256] = {
    let mut t = GLUED;
    t[b'.' as usize] = false;
    t
};

/// A text's shape by [`literal_key`] (its literals' values left out), or `None` when only
/// pg_query's scanner can tell it: what may be cached for every text of one shape is keyed by it.
pub fn literal_shape(sql: &str) -> Option<Vec<u8>> {
    literal_key(sql).map(|k| k.key)
}

/// Where a quoted run that opens at `start` ends (after its closing quote; a doubled quote is
/// part of it), or `None` when it does not close.
fn quoted_end(b: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut j = start + 1;
    loop {
        let n = b.get(j..)?.iter().position(|&c| c == quote)?;
        j += n + 1;
        if b.get(j) != Some(&quote) {
            return Some(j);
        }
        j += 1;
    }
}

/// Analyses by shape, shared by every session.
#[derive(Default)]
pub struct Shapes {
    map: dashmap::DashMap<u64, Arc<Entry>>,
    bytes: AtomicUsize,
}

/// A text's tokens and shape key, or `None` when it must be analyzed whole.
fn shape(sql: &str, opts: ParseOptions) -> Option<(Vec<Span>, Vec<u8>)> {
    if sql.len() > MAX_TEXT || (!opts.standard_conforming_strings && sql.contains('\\')) {
        return None;
    }
    let scan = pg_query::scan(sql).ok()?;
    let mut key = Vec::with_capacity(sql.len());
    let mut tokens = Vec::with_capacity(scan.tokens.len());
    for t in &scan.tokens {
        let (start, end) = (usize::try_from(t.start).ok()?, usize::try_from(t.end).ok()?);
        let kind = t.token;
        const LITERALS: [Token; 6] =
            [Token::Iconst, Token::Fconst, Token::Sconst, Token::Usconst, Token::Bconst, Token::Xconst];
        if kind == Token::Uident as i32 || kind == Token::Uescape as i32 || kind == Token::Usconst as i32 {
            return None;
        }
        key.extend_from_slice(&kind.to_le_bytes());
        if !LITERALS.iter().any(|l| *l as i32 == kind) {
            let text = sql.get(start..end)?;
            key.extend_from_slice(&u32::try_from(text.len()).ok()?.to_le_bytes());
            key.extend_from_slice(text.as_bytes());
        }
        tokens.push((start, end));
    }
    Some((tokens, key))
}

/// How a text was keyed: by [`literal_key`], or by pg_query's scanner (its tokens' spans).
enum Keyed {
    Literals(LiteralKey),
    Tokens(Vec<Span>, Vec<u8>),
}

impl Keyed {
    fn key(&self) -> &[u8] {
        match self {
            Keyed::Literals(k) => &k.key,
            Keyed::Tokens(_, k) => k,
        }
    }

    /// Where a statement of a cached entry is in this text.
    fn text_span(&self, (first, last): Span) -> Option<Span> {
        match self {
            Keyed::Literals(k) => Some((k.to_text(first)?, k.to_text(last)?)),
            Keyed::Tokens(tokens, _) => Some((tokens.get(first)?.0, tokens.get(last)?.1)),
        }
    }
}

/// The two kinds of keys never meet: a leading byte tells them apart.
const LITERAL_KEY: u8 = 1;
const TOKEN_KEY: u8 = 2;

impl Shapes {
    /// [`analyze`], from the cache when a text of the same shape was analyzed before.
    pub fn analyze(&self, sql: &str, opts: ParseOptions) -> Vec<Statement> {
        self.analyze_keyed(sql, opts).0
    }

    /// [`Shapes::analyze`], and whether the text has literals its shape leaves out (a text
    /// with values in it is rarely sent again word for word: not worth keeping by text).
    pub fn analyze_keyed(&self, sql: &str, opts: ParseOptions) -> (Vec<Statement>, bool) {
        if sql.len() > MAX_TEXT || (!opts.standard_conforming_strings && sql.contains('\\')) {
            return (analyze(sql, opts), false);
        }
        let keyed = match literal_key(sql) {
            Some(k) => Keyed::Literals(k),
            None => match shape(sql, opts) {
                Some((tokens, key)) => Keyed::Tokens(tokens, key),
                None => return (analyze(sql, opts), false),
            },
        };
        let valued = matches!(&keyed, Keyed::Literals(k) if !k.literals.is_empty());
        let key = keyed.key();
        let kind = if matches!(keyed, Keyed::Literals(_)) { LITERAL_KEY } else { TOKEN_KEY };
        let hash = key_hash(|h| {
            kind.hash(h);
            key.hash(h);
        });
        let hit = self.map.get(&hash).map(|e| e.clone());
        if let Some(e) =
            hit.filter(|e| e.key[0] == kind && e.key[1..] == *key && e.scs == opts.standard_conforming_strings)
        {
            let texts: Option<Vec<Span>> = e.spans.iter().map(|&s| keyed.text_span(s)).collect();
            if let Some(texts) = texts.filter(|t| t.iter().all(|&(a, b)| sql.get(a..b).is_some())) {
                let statements = e
                    .statements
                    .iter()
                    .zip(texts)
                    .map(|(st, (start, end))| {
                        let text = sql[start..end].to_string();
                        let mut st = st.clone();
                        if let Some((_, inner)) = &mut st.prepare {
                            inner.text = text.clone();
                        }
                        Statement { text, offset: start, ..st }
                    })
                    .collect();
                return (statements, valued);
            }
        }
        let statements = analyze(sql, opts);
        let spans = match &keyed {
            Keyed::Literals(k) => literal_spans(sql, &statements, k),
            Keyed::Tokens(tokens, _) => spans(sql, &statements, tokens),
        };
        if let Some(spans) = spans {
            if self.map.len() >= ENTRIES || self.bytes.load(Ordering::Relaxed) + key.len() > MAX_BYTES {
                self.map.clear();
                self.bytes.store(0, Ordering::Relaxed);
            }
            self.bytes.fetch_add(key.len(), Ordering::Relaxed);
            let mut stored = Vec::with_capacity(key.len() + 1);
            stored.push(kind);
            stored.extend_from_slice(key);
            // Kept without their texts, which a hit takes from its own text.
            let textless = statements
                .iter()
                .map(|st| {
                    let mut st = Statement { text: String::new(), ..st.clone() };
                    if let Some((_, inner)) = &mut st.prepare {
                        inner.text = String::new();
                    }
                    st
                })
                .collect();
            let entry =
                Entry { key: stored.into(), scs: opts.standard_conforming_strings, statements: textless, spans };
            self.map.insert(hash, Arc::new(entry));
        }
        (statements, valued)
    }
}

/// Whether a statement's facts may be shared with texts of its shape: it read no literal's
/// value, it parsed, and its text is where the analysis says it is.
fn shareable(sql: &str, st: &Statement) -> bool {
    let unparsed = st.opaque.iter().any(|o| matches!(o, super::Opaque::Unparseable(_)));
    !st.reads_literals
        && !unparsed
        && !st.text.is_empty()
        && sql.get(st.offset..st.offset + st.text.len()) == Some(&st.text[..])
}

/// [`spans`] for a [`literal_key`]: where each statement starts and ends in the key; `None`
/// when one starts or ends inside a literal.
fn literal_spans(sql: &str, statements: &[Statement], k: &LiteralKey) -> Option<Vec<Span>> {
    statements
        .iter()
        .map(|st| {
            if !shareable(sql, st) {
                return None;
            }
            Some((k.to_key(st.offset)?, k.to_key(st.offset + st.text.len())?))
        })
        .collect()
}

/// Where each statement's text starts and ends, in tokens; `None` when the analysis may not be
/// shared (it read a literal's value, or a statement's text is not a run of whole tokens).
fn spans(sql: &str, statements: &[Statement], tokens: &[Span]) -> Option<Vec<Span>> {
    statements
        .iter()
        .map(|st| {
            if !shareable(sql, st) {
                return None;
            }
            let first = tokens.iter().position(|t| t.0 == st.offset)?;
            let end = st.offset + st.text.len();
            let last = first + tokens[first..].iter().position(|t| t.1 == end)?;
            Some((first, last))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Fragments kept alike in both texts: words, operators, quotes, comments, and the forms
    /// [`literal_key`] must leave to the scanner.
    const FIXED: &[&str] = &[
        " ",
        "\n",
        ",",
        "(",
        ")",
        "=",
        "-",
        "--",
        "+",
        ";",
        "*",
        "/",
        "/*",
        "*/",
        "'",
        "\"",
        ":",
        "::",
        "&",
        ".",
        "_",
        "$",
        "$1",
        "$2x",
        "$$",
        "$q$",
        "SELECT",
        "where",
        "id",
        "x1",
        "t.",
        "e",
        "E",
        "N",
        "B",
        "X",
        "U&",
        "u&",
        "UESCAPE",
        "\"a\"\"b\"",
        "\"c 5\"",
        "-- c 5\n",
        "/* 5 /* 6 */ 7 */",
        "é",
        "\\",
        "0x",
        "1.",
        ".5",
        "e5",
    ];
    /// Values of a literal slot (integers, strings, and what only looks like one).
    const VALUES: &[&str] = &[
        "0",
        "1",
        "12",
        "007",
        "2147483647",
        "2147483648",
        "99999999999",
        "'a'",
        "''",
        "'it''s'",
        "'--'",
        "'/*'",
        "'5'",
        "'\n'",
        "'a'\n'b'",
        "1.5",
        "1e5",
        "1_000",
    ];

    fn scanner_key(sql: &str) -> Option<Vec<u8>> {
        shape(sql, ParseOptions::default()).map(|(_, k)| k)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// Two texts with one [`literal_key`] have one key of the scanner's: the same tokens
        /// but for literal values, of the same kinds.
        #[test]
        fn a_literal_key_is_a_scanner_shape(
            slots in proptest::collection::vec(
                (proptest::sample::select(FIXED), proptest::sample::select(VALUES), proptest::sample::select(VALUES), any::<bool>()),
                1..12,
            ),
        ) {
            let (mut a, mut b) = (String::new(), String::new());
            for (fixed, x, y, literal) in &slots {
                if *literal {
                    a.push_str(x);
                    b.push_str(y);
                } else {
                    a.push_str(fixed);
                    b.push_str(fixed);
                }
            }
            if let (Some(ka), Some(kb)) = (literal_key(&a), literal_key(&b)) {
                if ka.key == kb.key {
                    prop_assert_eq!(scanner_key(&a), scanner_key(&b), "{:?} / {:?}", a, b);
                }
                // Every position outside a literal maps to the key and back.
                for at in 0..=a.len() {
                    if let Some(k) = ka.to_key(at) {
                        prop_assert_eq!(ka.to_text(k), Some(at));
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn backslashes_and_nuls_are_found_eight_bytes_at_a_time(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(has_backslash_or_nul(&b), b.iter().any(|&c| c == b'\\' || c == 0));
        }
    }

    #[test]
    fn literal_keys_leave_out_values_only() {
        let k = |s: &str| literal_key(s).map(|k| k.key);
        assert_eq!(k("UPDATE t SET a = a + 5 WHERE id = 7;"), k("UPDATE t SET a = a + 31 WHERE id = 123456;"));
        assert_eq!(k("SELECT 'a', 1"), k("SELECT 'it''s', 99"));
        assert_ne!(k("SELECT 1"), k("SELECT 2147483648"));
        assert_ne!(k("SELECT \"c 1\""), k("SELECT \"c 2\""));
        assert_ne!(k("SELECT x1"), k("SELECT x2"));
        for plain in
            ["SELECT E'a'", "SELECT 1.5", "SELECT $$a$$", "SELECT U&\"a\"", "SELECT 'a\\'", "SELECT 1e5", "/* 1"]
        {
            assert!(literal_key(plain).is_none(), "{plain}");
        }
    }
}
