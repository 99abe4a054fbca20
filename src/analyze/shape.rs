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

/// Where a token, or a statement's text, starts and ends (bytes or token indices).
type Span = (usize, usize);

struct Entry {
    key: Box<[u8]>,
    scs: bool,
    /// The facts, with each statement's text and offset to be filled in from the new text.
    statements: Vec<Statement>,
    /// For each statement: the indices of its first and last token.
    spans: Vec<Span>,
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

impl Shapes {
    /// [`analyze`], from the cache when a text of the same shape was analyzed before.
    pub fn analyze(&self, sql: &str, opts: ParseOptions) -> Vec<Statement> {
        let Some((tokens, key)) = shape(sql, opts) else { return analyze(sql, opts) };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let hash = h.finish();
        let hit = self.map.get(&hash).map(|e| e.clone());
        if let Some(e) = hit.filter(|e| *e.key == key[..] && e.scs == opts.standard_conforming_strings) {
            return e
                .statements
                .iter()
                .zip(&e.spans)
                .map(|(st, &(first, last))| {
                    let (start, end) = (tokens[first].0, tokens[last].1);
                    let text = sql[start..end].to_string();
                    let mut st = st.clone();
                    if let Some((_, inner)) = &mut st.prepare {
                        inner.text = text.clone();
                    }
                    Statement { text, offset: start, ..st }
                })
                .collect();
        }
        let statements = analyze(sql, opts);
        if let Some(spans) = spans(sql, &statements, &tokens) {
            if self.map.len() >= ENTRIES || self.bytes.load(Ordering::Relaxed) + key.len() > MAX_BYTES {
                self.map.clear();
                self.bytes.store(0, Ordering::Relaxed);
            }
            self.bytes.fetch_add(key.len(), Ordering::Relaxed);
            let entry =
                Entry { key: key.into(), scs: opts.standard_conforming_strings, statements: statements.clone(), spans };
            self.map.insert(hash, Arc::new(entry));
        }
        statements
    }
}

/// Where each statement's text starts and ends, in tokens; `None` when the analysis may not be
/// shared (it read a literal's value, or a statement's text is not a run of whole tokens).
fn spans(sql: &str, statements: &[Statement], tokens: &[Span]) -> Option<Vec<Span>> {
    statements
        .iter()
        .map(|st| {
            let unparsed = st.opaque.iter().any(|o| matches!(o, super::Opaque::Unparseable(_)));
            if st.reads_literals || unparsed || st.text.is_empty() {
                return None;
            }
            let first = tokens.iter().position(|t| t.0 == st.offset)?;
            let end = st.offset + st.text.len();
            let last = first + tokens[first..].iter().position(|t| t.1 == end)?;
            (sql.get(st.offset..end)? == st.text).then_some((first, last))
        })
        .collect()
}
