//! Cursors as the guard judges them. A cursor runs its query when it is read — at `FETCH` or
//! `MOVE`, at a protocol Execute of its name, and, when it was declared `WITH HOLD`, the rest
//! of it at `COMMIT` — not at `DECLARE`. So:
//! - a cursor the client declared over a query that needs no count (no call of a function that
//!   is not a well-known built-in, nothing opaque) is *plain*: reading it is relayed as any
//!   query is, once the server confirmed the DECLARE (`session::names`);
//! - any other cursor — declared over a query that calls such a function, opened by a function
//!   body, a portal the client bound by protocol — is read inside the pre-check, like the
//!   `SELECT` of a function (its `FETCH` is judged as calling functions);
//! - `DECLARE … WITH HOLD` over a query that would be counted is refused in enforce mode (rule
//!   `cursor`): the `COMMIT` that ends its transaction runs the query, where nothing counts it;
//! - reading a cursor declared over a query that calls `nextval` takes values ahead
//!   (`reads_ahead`, for `steps`).
//!
//! A name stops being plain at once when anything may have replaced its cursor: `CLOSE`,
//! `CLOSE ALL`, `DISCARD ALL`, a protocol Bind or Close of the name, a non-plain `DECLARE`, or
//! a cursor (re)opened under it while a statement ran in the pre-check (`precheck::objects`).
//!
//! Owns: [`Cursors`] and reading cursor statements out of a text. Does not own: counting the
//! `FETCH` (`precheck`), confirming a DECLARE (`session::names`).

use super::SessionInfo;
use crate::analyze::{ParseOptions, Statement};
use crate::policy::{self, Action, Decision, Mode, Policy};
use pg_query::NodeEnum as N;
use std::collections::HashSet;

/// `CURSOR_OPT_HOLD` of PostgreSQL's `parsenodes.h`.
const CURSOR_OPT_HOLD: i32 = 0x0020;

/// How many plain cursors a session remembers (past it, every cursor is counted when read).
const MAX_PLAIN: usize = 4096;

/// The session's cursors as the guard knows them.
#[derive(Debug, Default, Clone)]
pub struct Cursors {
    /// Declared by the client over a query that needs no count, confirmed by the server.
    plain: HashSet<String>,
    /// Plain DECLAREs of the message just judged, for `session::names` to confirm.
    pub declared: Vec<String>,
    /// Names forgotten since the last message was judged (confirmations still pending for
    /// them are void).
    pub forgotten: Vec<String>,
    /// Every name a `DECLARE` of the message just judged makes, plain or not: a protocol
    /// portal of that name the session bound before is no longer what an Execute of the name
    /// reads (`session::statements`).
    pub made: Vec<String>,
    /// Declared over a query that calls `nextval`: reading it takes values ahead
    /// (`steps::takes_ahead`), wherever it was declared. Set at each DECLARE of the name, for
    /// or against, before the server confirms it (reading a name whose DECLARE failed fails).
    ahead: HashSet<String>,
}

impl Cursors {
    pub fn is_plain(&self, name: &str) -> bool {
        self.plain.contains(name)
    }

    /// The server confirmed a plain DECLARE.
    pub fn confirm(&mut self, name: String) {
        if self.plain.len() < MAX_PLAIN {
            self.plain.insert(name);
        }
    }

    /// Anything may have replaced the cursor `name`.
    pub fn forget(&mut self, name: &str) {
        // Every protocol Bind forgets its portal's name: no hashing while none is plain.
        if !self.plain.is_empty() {
            self.plain.remove(name);
        }
        self.declared.retain(|d| d != name);
        self.forgotten.push(name.to_string());
    }

    /// Whether reading the cursor `name` takes values of a sequence ahead.
    pub fn takes_ahead(&self, name: &str) -> bool {
        !self.ahead.is_empty() && self.ahead.contains(name)
    }

    /// A DECLARE of `name` over a query that calls `nextval` (`ahead`) or not.
    fn declared_ahead(&mut self, name: &str, ahead: bool) {
        match ahead {
            true if self.ahead.len() < MAX_PLAIN => drop(self.ahead.insert(name.to_string())),
            // Past the bound every read is taken as reading one (`reads_ahead`).
            true => {}
            false => drop(self.ahead.remove(name)),
        }
    }

    /// Every cursor may have been replaced.
    pub fn forget_all(&mut self) {
        let all: Vec<String> = self.plain.drain().chain(self.declared.drain(..)).collect();
        self.forgotten.extend(all);
        self.forgotten.push(String::new());
    }
}

/// A statement about a cursor.
enum Cursor {
    Declare {
        name: String,
        hold: bool,
        text: String,
    },
    /// FETCH or MOVE.
    Read(String),
    Close(Option<String>),
    DiscardAll,
}

/// Whether the text may hold a cursor statement (ASCII, case-insensitive; no allocation).
pub fn mentions_cursors(sql: &[u8]) -> bool {
    const WORDS: [&[u8]; 5] = [b"declare", b"fetch", b"move", b"close", b"discard"];
    // Each of these is a keyword, so it stands as a word of its own (PostgreSQL's identifier
    // characters around it would make it part of a longer name): one pass over the words,
    // most rejected by their length and first letter (this runs on every message).
    const IDENT: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
            c += 1;
        }
        t
    };
    let ident = |b: u8| IDENT[usize::from(b)];
    let mut i = 0;
    while i < sql.len() {
        while i < sql.len() && !ident(sql[i]) {
            i += 1;
        }
        let start = i;
        while i < sql.len() && ident(sql[i]) {
            i += 1;
        }
        let w = &sql[start..i];
        if (4..=7).contains(&w.len())
            && matches!(w[0] | 0x20, b'd' | b'f' | b'm' | b'c')
            && WORDS.iter().any(|word| w.eq_ignore_ascii_case(word))
        {
            return true;
        }
    }
    false
}

/// The cursor statements of a text; `None` when it does not parse.
fn cursor_statements(text: &str, scs: bool) -> Option<Vec<Cursor>> {
    let opts = if scs {
        pg_query::ParserOptions::DEFAULT
    } else {
        pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    };
    let parsed = pg_query::parse(text, opts).ok()?;
    let mut out = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let node = raw.stmt.as_ref().and_then(|n| n.node.as_ref());
        let loc = usize::try_from(raw.stmt_location).unwrap_or(0);
        let len = usize::try_from(raw.stmt_len).unwrap_or(0);
        let own = || {
            let end = if len == 0 { text.len() } else { (loc + len).min(text.len()) };
            text.get(loc.min(end)..end).unwrap_or(text).to_string()
        };
        match node {
            Some(N::DeclareCursorStmt(d)) => out.push(Cursor::Declare {
                name: d.portalname.clone(),
                hold: d.options & CURSOR_OPT_HOLD != 0,
                text: own(),
            }),
            Some(N::FetchStmt(f)) => out.push(Cursor::Read(f.portalname.clone())),
            Some(N::ClosePortalStmt(c)) => {
                out.push(Cursor::Close(Some(c.portalname.clone()).filter(|n| !n.is_empty())))
            }
            Some(N::DiscardStmt(d)) if d.target == pg_query::protobuf::DiscardMode::DiscardAll as i32 => {
                out.push(Cursor::DiscardAll)
            }
            _ => {}
        }
    }
    Some(out)
}

/// Whether the statements of a DECLARE's query would be counted if sent alone: a call of a
/// function that is not a well-known built-in, a write (`setval`), anything opaque.
fn needs_count(st: &Statement) -> bool {
    st.calls_functions || !st.writes.is_empty() || !st.opaque.is_empty()
}

/// Whether a DECLARE (its own text) is plain: no parenthesis at all (so no call), or the
/// analysis finds nothing that would be counted.
fn plain_declare(text: &str, scs: bool) -> bool {
    !text.contains('(')
        || crate::analyze::analyze(text, ParseOptions { standard_conforming_strings: scs })
            .iter()
            .all(|s| !needs_count(s))
}

/// Reads the cursor statements of a message as it is judged: what they do to the session's
/// [`Cursors`] (a plain DECLARE waits for the server's confirmation; everything else that may
/// replace a cursor takes its name away at once), and whether a FETCH or MOVE of it reads a
/// cursor that is not plain (then the message is not harmless: it is judged, and counted).
pub(super) fn note(sql: &[u8], info: &mut SessionInfo) -> bool {
    if !mentions_cursors(sql) {
        return false;
    }
    let Ok(text) = crate::analyze::decode(sql, &info.client_encoding) else { return true };
    let scs = info.standard_conforming_strings;
    let Some(statements) = cursor_statements(&text, scs) else {
        // Not parsed: the analysis judges it (and refuses what may write).
        return true;
    };
    let mut reads_other = false;
    for c in statements {
        match c {
            Cursor::Declare { name, text, .. } => {
                info.cursors.made.push(name.clone());
                let ahead = calls_nextval(&text, scs);
                info.cursors.declared_ahead(&name, ahead);
                if info.settings_certain && plain_declare(&text, scs) {
                    info.cursors.declared.push(name);
                } else {
                    info.cursors.forget(&name);
                }
            }
            Cursor::Read(name) => reads_other |= !info.cursors.is_plain(&name),
            Cursor::Close(Some(name)) => info.cursors.forget(&name),
            Cursor::Close(None) | Cursor::DiscardAll => info.cursors.forget_all(),
        }
    }
    reads_other
}

/// The statements as they run: a FETCH or MOVE of a cursor that is not plain calls what its
/// query calls, unseen — it is marked as calling functions, so that it is counted like them.
pub(super) fn reads_marked(statements: &mut std::borrow::Cow<'_, [Statement]>, info: &SessionInfo) {
    let marked: Vec<usize> = statements
        .iter()
        .enumerate()
        .filter(|(_, s)| mentions_cursors(s.text.as_bytes()))
        .filter(|(_, s)| {
            cursor_statements(&s.text, info.standard_conforming_strings)
                .is_some_and(|found| found.iter().any(|c| matches!(c, Cursor::Read(n) if !info.cursors.is_plain(n))))
        })
        .map(|(i, _)| i)
        .collect();
    // Copied only when a statement is marked (most messages read no cursor).
    for i in marked {
        statements.to_mut()[i].calls_functions = true;
    }
}

/// Whether a DECLARE's query calls `nextval` (of any sequence, by any spelling the server
/// reads; one that does not parse: as if it did).
fn calls_nextval(text: &str, scs: bool) -> bool {
    let lower = text.to_ascii_lowercase();
    (lower.contains("nextval") || lower.contains("u&"))
        && crate::analyze::analyze(text, ParseOptions { standard_conforming_strings: scs })
            .iter()
            .any(|s| !s.nextval.is_empty() || !s.opaque.is_empty())
}

/// Whether a statement of `statements` reads (FETCH, MOVE) a cursor declared over a query
/// that calls `nextval` (`Cursors::takes_ahead`), or any cursor once too many were declared so.
pub(super) fn reads_ahead(statements: &[Statement], info: &SessionInfo) -> bool {
    let full = info.cursors.ahead.len() >= MAX_PLAIN;
    statements.iter().filter(|s| mentions_cursors(s.text.as_bytes())).any(|s| {
        cursor_statements(&s.text, info.standard_conforming_strings).is_some_and(|found| {
            found.iter().any(|c| matches!(c, Cursor::Read(n) if full || info.cursors.takes_ahead(n)))
        })
    })
}

const HINT_HOLD: &str = "Declare the cursor WITHOUT HOLD inside a transaction block and FETCH from it there (blastwall counts each FETCH), or run the query without a cursor.";

/// Rule `cursor`: `DECLARE … WITH HOLD` over a query that would be counted, in enforce mode.
pub(super) fn hold_refusal(statements: &[Statement], info: &SessionInfo, policy: &Policy) -> Option<Decision> {
    let mode = policy::mode_for(info.view(), policy, None);
    let counted = (!policy.tables.is_empty() && mode != Mode::Off) || policy.opaque.functions == Action::Verify;
    if mode != Mode::Enforce || !counted {
        return None;
    }
    let st = statements.iter().filter(|s| needs_count(s) && mentions_cursors(s.text.as_bytes())).find(|s| {
        cursor_statements(&s.text, info.standard_conforming_strings)
            .is_some_and(|c| c.iter().any(|c| matches!(c, Cursor::Declare { hold: true, .. })))
    })?;
    Some(super::refusal(
        "cursor",
        "DECLARE … WITH HOLD".into(),
        "a cursor runs its query at FETCH, and a WITH HOLD cursor the rest of it at COMMIT, where blastwall cannot count it; its query calls a function whose body may write".into(),
        HINT_HOLD,
        &policy.source_names(),
        st.text.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_cursors_reads_whole_words() {
        for t in
            ["FETCH ALL c", "fetch\"c\"", "/*x*/MOVE c", "x;Close c", "DISCARD ALL", "declare c cursor for select 1"]
        {
            assert!(mentions_cursors(t.as_bytes()), "{t}");
        }
        for t in ["SELECT abalance FROM pgbench_accounts WHERE aid = 5", "SELECT fetched, moved FROM t"] {
            assert!(!mentions_cursors(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn cursor_words_are_found_in_any_case_only_when_whole() {
        assert!(mentions_cursors(b"FeTcH ALL c"));
        assert!(mentions_cursors(b"select 1; declare c cursor for select 1"));
        assert!(!mentions_cursors(b"SELECT * FROM users WHERE id = 1"));
    }

    #[test]
    fn a_declare_over_a_function_is_not_plain_and_hold_is_read() {
        assert!(plain_declare("DECLARE c CURSOR FOR SELECT * FROM users", true));
        assert!(plain_declare("DECLARE c CURSOR FOR SELECT count(*) FROM users", true));
        assert!(!plain_declare("DECLARE c CURSOR FOR SELECT purge_sessions(1000)", true));
        let found =
            cursor_statements("declare h cursor with hold for select 1; move all in h; close all", true).unwrap();
        assert!(matches!(&found[0], Cursor::Declare { hold: true, name, .. } if name == "h"));
        assert!(matches!(&found[1], Cursor::Read(n) if n == "h"));
        assert!(matches!(&found[2], Cursor::Close(None)));
    }
}
