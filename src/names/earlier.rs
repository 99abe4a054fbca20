//! Statements the server runs before a write that may make the write's name lead somewhere
//! blastwall's answers do not show (fourth adversarial pass F1, F2, F5): DDL that may change
//! what a name leads to or what a write there runs (`ddl`: a new table, index, sequence or
//! column of a built-in type reaches nothing), a `ROLLBACK` or `ROLLBACK TO SAVEPOINT` (DDL it
//! undoes comes back), a `COMMIT` of a transaction that may have failed (it rolls back), a
//! function, procedure or `DO` block (unseen bodies).
//!
//! Such a statement is earlier than a write in two ways: earlier in the same Query, or sent
//! to the server and not yet answered — an Execute earlier in the same extended-protocol batch,
//! or in a batch or Query whose ReadyForQuery has not come (kept in the session's
//! `Resolutions::earlier` by `crate::session`). Either way the server runs it first, and
//! blastwall's answers, asked only where a batch starts, cannot show what it did.
//!
//! In the same message the catalog's answers were asked before any of it ran, so DDL there
//! redirects the names it mentions; sent earlier, DDL that may add an edge between relations
//! (a view replaced, inheritance, a schema renamed, `CASCADE`, …: `ddl::Class::Any`)
//! redirects every name, and DDL that changes only the relations it names
//! (`ddl::Class::Named`) the names it mentions (see [`Earlier::redirects`]).
//!
//! Owns: which statements may redirect a name ([`Earlier::of`]) and finding the one that may
//! redirect a written name ([`in_message`] once per message, [`redirected_before`] per
//! write). Does not own: what DDL reaches (`ddl`), keeping the session's list
//! (`crate::session`), the refusal (`policy::decide`).

use super::ddl::Class;
use super::savepoints::{returns_within, returns_within_sent, savepoint, Savepoint};
use crate::analyze::{Opaque, RelName, Statement};
use std::sync::Arc;

/// How many statements a session keeps as sent and unanswered; past it, one that stands
/// for all of them (and may redirect every name) takes the last place.
const KEPT: usize = 64;

/// How an earlier statement may redirect a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// DDL that may reach what a write reaches (`ddl`): the names it mentions, or (sent
    /// earlier, when it may add an edge between relations) any name.
    Ddl,
    /// `ROLLBACK`, `ROLLBACK TO SAVEPOINT`, `ABORT`: any name.
    Rollback,
    /// `COMMIT`, `END`, `PREPARE TRANSACTION`: any name, when the transaction may have failed
    /// (the server then rolls back).
    End,
    /// A function, procedure or `DO` block: any name.
    Call,
    /// `SAVEPOINT x` (its name in `point`) or `RELEASE` (none): no name by itself, but what a
    /// later `ROLLBACK TO` returns to (`savepoints`).
    Mark,
}

/// A statement that may redirect names, as kept until the server answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    /// The sync point it belongs to (the session's numbering).
    pub ord: u64,
    pub kind: Kind,
    /// Its text, as analyzed.
    pub(super) text: Arc<str>,
    /// Shown by its kind alone (its leading keywords): another session's statement, told to
    /// clients of any role ([`Earlier::for_others`]).
    kind_only: bool,
    /// DDL: the relation names it changes, as the parser reads them.
    names: Arc<[String]>,
    /// DDL that changes only the relations it names (`ddl::Class::Named`).
    named_only: bool,
    /// `ROLLBACK TO x` and `SAVEPOINT x` ([`Kind::Rollback`], [`Kind::Mark`]): `x`, as the
    /// server folds it.
    pub(super) point: Option<Arc<str>>,
}

impl Earlier {
    /// How `st` may redirect names, if it may (`ord`: its sync point).
    pub fn of(st: &Statement, ord: u64) -> Option<Earlier> {
        // The common case (a prepared SELECT, INSERT, …) is passed over on its flags alone.
        // A constant `set_config('search_path', …)` is a path change, as a `SET` is.
        let call = st.calls_functions && !super::sets_path_only(st)
            || st.opaque.iter().any(|o| matches!(o, Opaque::DoBlock | Opaque::Call(_)));
        if !(st.ddl || call || st.transaction_control) {
            // A role's membership or a schema's owner or privileges changed: any name.
            return (reach_of_privileges(&st.text) == Some(true)).then(|| Earlier {
                ord,
                kind: Kind::Ddl,
                text: st.text.as_str().into(),
                names: Arc::from([]),
                named_only: false,
                point: None,
                kind_only: false,
            });
        }
        let (first, second) = first_words(st.text.as_bytes());
        let is = |w: &[u8], x: &str| w.eq_ignore_ascii_case(x.as_bytes());
        let mut names: Arc<[String]> = Arc::from([]);
        let mut named_only = false;
        let mut point = None;
        let kind = if call {
            Kind::Call
        } else if st.ddl {
            match super::ddl::classify(&st.text) {
                Class::Nothing => return None,
                Class::Named(n) => (names, named_only) = (n, true),
                Class::Any(n) => names = n,
            }
            Kind::Ddl
        } else if is(first, "rollback") || is(first, "abort") {
            // `ROLLBACK` alone is not parsed.
            if !second.is_empty() && !is(second, "prepared") {
                if let Savepoint::RollbackTo(x) = savepoint(st) {
                    point = Some(x.into());
                }
            }
            Kind::Rollback
        } else if is(first, "commit") || is(first, "end") || is(first, "prepare") && is(second, "transaction") {
            Kind::End
        } else if is(first, "savepoint") || is(first, "release") {
            if let Savepoint::Set(x) = savepoint(st) {
                point = Some(x.into());
            }
            Kind::Mark
        } else {
            return None;
        };
        Some(Earlier { ord, kind, text: st.text.as_str().into(), names, named_only, point, kind_only: false })
    }

    /// The same statement, sent for sync point `ord`.
    pub fn at(&self, ord: u64) -> Earlier {
        Earlier { ord, ..self.clone() }
    }

    /// Why this statement may make `target` name something else (`None`: it cannot). `sent`:
    /// it was sent earlier and is not yet answered — then DDL that may add an edge between
    /// relations may redirect any name: the catalog's answers about the policy tables'
    /// relatives (the views over them) cannot be asked again before the batch ends, and the
    /// last ones do not show what it did (`ALTER SCHEMA a RENAME TO b` may lead `v` to another
    /// schema's view over `users`); in the same message they were asked first. DDL that
    /// changes only the relations it names redirects those names, sent or not.
    pub fn redirects(&self, target: &RelName, sent: bool) -> Option<&'static str> {
        let names_it =
            || self.names.iter().any(|n| n.eq_ignore_ascii_case(&target.name)) || mentions(&self.text, &target.name);
        match self.kind {
            Kind::Ddl if sent && !self.named_only => {
                Some("DDL that may change what any name leads to, which is not known until it is answered")
            }
            Kind::Ddl => names_it().then_some("DDL that names it"),
            Kind::Rollback => Some("a ROLLBACK, which brings back what it undoes"),
            Kind::End => Some("a transaction end, which rolls back a failed transaction"),
            Kind::Call => Some("a function call"),
            Kind::Mark => None,
        }
    }

    /// What a statement sent through blastwall by one session may change for the names of
    /// others until its transaction ends (`crate::inflight`): its DDL as [`Earlier::of`] reads
    /// it, DDL that changes nothing a name leads to as an entry that names nothing (it may
    /// still swap the constraint an `ON CONFLICT ON CONSTRAINT` names), and any name for what
    /// changes which schemas a role may search (`GRANT`/`REVOKE` on a schema, or of a role)
    /// and for `COMMIT PREPARED`/`ROLLBACK PREPARED` (whatever the prepared transaction did).
    /// `None` for what concerns the session alone (its own temporary objects, what only later
    /// objects or sessions see: `own`) and for the rest.
    pub fn for_others(st: &Statement) -> Option<Earlier> {
        let bytes = st.text.as_bytes();
        let (first, second) = first_words(bytes);
        let is = |w: &[u8], x: &str| w.eq_ignore_ascii_case(x.as_bytes());
        // Shown to other sessions' clients, of any role: its kind, not its names, literals or
        // comments (forty-seventh pass L1, forty-eighth pass L1).
        let any = |st: &Statement| Earlier {
            ord: 0,
            kind: Kind::Ddl,
            text: st.text.as_str().into(),
            names: Arc::from([]),
            named_only: false,
            point: None,
            kind_only: true,
        };
        // Parsed again only for DDL (most statements are not).
        if (st.ddl || is(first, "reassign") || is(first, "alter")) && super::own::concerns_only_itself(&st.text) {
            return None;
        }
        if is(first, "grant") || is(first, "revoke") {
            let schema = mentions(&st.text, "schema");
            return (schema || !mentions(&st.text, "on")).then(|| any(st));
        }
        if is(first, "reassign") {
            return Some(any(st));
        }
        if (is(first, "commit") || is(first, "rollback")) && is(second, "prepared") {
            return Some(any(st));
        }
        if !st.ddl || is(first, "create") && (is(second, "temp") || is(second, "temporary")) {
            return None;
        }
        let e = match Earlier::of(st, 0) {
            Some(e) if e.kind == Kind::Ddl => e,
            Some(_) => return None,
            None => Earlier { named_only: true, ..any(st) },
        };
        Some(Earlier { kind_only: true, ..e })
    }

    /// Whether this is DDL (of another session) that names nothing a write's name leads to.
    pub fn names_nothing(&self) -> bool {
        self.kind == Kind::Ddl && self.named_only && self.names.is_empty()
    }

    /// [`Earlier::redirects`] for DDL another session sent (`crate::inflight`): only the
    /// relations it changes count (a new view `members` over `users` changes `members`, not
    /// what `users` leads to), or every name for DDL that may change any.
    pub fn redirects_elsewhere(&self, target: &RelName) -> Option<&'static str> {
        match self.kind {
            Kind::Ddl if !self.named_only => Some("DDL that may change what any name leads to"),
            Kind::Ddl => self
                .names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&target.name))
                .then_some("DDL that changes a relation of that name"),
            _ => None,
        }
    }

    /// DDL another blastwall instance announced (`crate::instances`): `names` it changes, or
    /// (`named_only` false) any name; `text` says where it comes from.
    pub fn elsewhere(text: &str, names: Vec<String>, named_only: bool) -> Earlier {
        Earlier {
            ord: 0,
            kind: Kind::Ddl,
            text: text.into(),
            names: names.into(),
            named_only,
            point: None,
            kind_only: false,
        }
    }

    /// DDL's names and whether it changes only those (what `crate::instances` announces).
    pub fn reach(&self) -> (&[String], bool) {
        (&self.names, self.named_only)
    }

    /// Its text, shortened for a message.
    pub fn shown(&self) -> String {
        if self.kind_only {
            return headline(&self.text);
        }
        let words: Vec<&str> = self.text.split_whitespace().collect();
        let one = words.join(" ");
        match one.char_indices().nth(72) {
            Some((i, _)) => format!("{}…", &one[..i]),
            None => one,
        }
    }
}

/// Whether a text's statement may redirect names in a way the guard's judgement does not
/// flag as changing them (a transaction end; an `EXECUTE` of a prepared statement that does;
/// a `GRANT`, `REVOKE` or `REASSIGN OWNED`: [`reach_of_privileges`]):
/// read from its first word, with no allocation.
pub fn may_redirect_unseen(sql: &[u8]) -> bool {
    const WORDS: &[&[u8]] = &[
        b"rollback",
        b"abort",
        b"commit",
        b"end",
        b"prepare",
        b"savepoint",
        b"release",
        b"execute",
        b"explain",
        b"grant",
        b"revoke",
        b"reassign",
    ];
    let first = next_word(&mut &sql[..]);
    WORDS.iter().any(|w| first.eq_ignore_ascii_case(w))
}

/// Whether a text the guard may pass as harmless concerns other sessions' names
/// ([`Earlier::for_others`]): `GRANT`, `REVOKE`, `REASSIGN OWNED`, `COMMIT PREPARED`,
/// `ROLLBACK PREPARED`; read from the first words of each statement, with no allocation.
pub fn may_concern_others(sql: &[u8]) -> bool {
    let starts = |sql: &[u8]| {
        let (first, second) = first_words(sql);
        let is = |w: &[u8], x: &str| w.eq_ignore_ascii_case(x.as_bytes());
        is(first, "grant")
            || is(first, "revoke")
            || is(first, "reassign")
            || (is(first, "commit") || is(first, "rollback")) && is(second, "prepared")
    };
    // Each statement of the text, not only the first (`BEGIN; REVOKE USAGE ON SCHEMA …` was
    // not published): what follows every `;` is read as a statement's start (one inside a
    // literal or a comment only costs a look).
    starts(sql) || sql.iter().enumerate().any(|(i, b)| *b == b';' && starts(&sql[i + 1..]))
}

/// What a `GRANT`, `REVOKE` or `REASSIGN OWNED` (the statements the analyzer does not mark
/// as DDL) may do to what names resolve to (twelfth adversarial pass H1–H3): `None` for any
/// other statement; `Some(true)` when it may change which schemas a role may use, and so the
/// schema an unqualified name is found in (the server's lookup skips schemas the role has no
/// `USAGE` on, and an owner always has it): a role's membership granted or revoked (`GRANT
/// archivist TO app`, `REVOKE archivist FROM app`: what a member may use through it), a
/// privilege on a schema, or on every table of one (`… IN SCHEMA`, read as the conservative
/// side), owners changed (`REASSIGN OWNED`), or a text that does not parse alone here;
/// `Some(false)` for a privilege on tables, columns, sequences, functions, types, databases
/// and the rest, which changes no lookup. Read from its first word, then its parse tree.
pub fn reach_of_privileges(text: &str) -> Option<bool> {
    use pg_query::protobuf as pb;
    use pg_query::NodeEnum as N;
    let first = next_word(&mut text.as_bytes());
    if !["grant", "revoke", "reassign"].iter().any(|w| first.eq_ignore_ascii_case(w.as_bytes())) {
        return None;
    }
    if text.len() > 64 << 10 || text.contains('\\') {
        return Some(true);
    }
    let changes = crate::analyze::deep::with_parse(text, pg_query::ParserOptions::DEFAULT, |tree| {
        let Ok(t) = tree else { return true };
        let [one] = t.protobuf.stmts.as_slice() else { return true };
        // A role's membership (`GrantRoleStmt`), owners (`ReassignOwnedStmt`) and anything
        // else: true.
        match one.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(N::GrantStmt(g)) => {
                g.objtype == pb::ObjectType::ObjectSchema as i32
                    || g.targtype != pb::GrantTargetType::AclTargetObject as i32
            }
            _ => true,
        }
    });
    Some(changes)
}

/// A two-phase statement's gid: `(true, gid)` for `PREPARE TRANSACTION 'gid'`, `(false, gid)`
/// for `COMMIT PREPARED 'gid'` and `ROLLBACK PREPARED 'gid'` (read from its first words, then
/// its parse tree).
pub fn two_phase(st: &Statement) -> Option<(bool, String)> {
    use pg_query::protobuf::TransactionStmtKind as K;
    let (first, second) = first_words(st.text.as_bytes());
    let is = |w: &[u8], x: &str| w.eq_ignore_ascii_case(x.as_bytes());
    let prepare = is(first, "prepare") && is(second, "transaction");
    if !(prepare || (is(first, "commit") || is(first, "rollback")) && is(second, "prepared")) {
        return None;
    }
    crate::analyze::deep::with_parse(&st.text, pg_query::ParserOptions::DEFAULT, |tree| {
        let t = tree.ok()?;
        let [one] = t.protobuf.stmts.as_slice() else { return None };
        let Some(pg_query::NodeEnum::TransactionStmt(x)) = one.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            return None;
        };
        let kind = x.kind;
        if kind == K::TransStmtPrepare as i32 {
            Some((true, x.gid.clone()))
        } else if kind == K::TransStmtCommitPrepared as i32 || kind == K::TransStmtRollbackPrepared as i32 {
            Some((false, x.gid.clone()))
        } else {
            None
        }
    })
}

/// Adds `e` to a session's list of statements sent and not yet answered (the same DDL or call
/// again only moves to its later sync point; transaction control keeps its order, which
/// `savepoints` reads, and savepoints that undo one another are folded: `savepoints::folded`;
/// the list is bounded).
pub fn keep(list: &mut Vec<Earlier>, e: Earlier) {
    let ordered = matches!(e.kind, Kind::Rollback | Kind::End | Kind::Mark);
    if let Some(x) = list.iter_mut().find(|x| !ordered && x.kind == e.kind && x.text == e.text) {
        x.ord = x.ord.max(e.ord);
        return;
    }
    if super::savepoints::folded(list, &e) {
        return;
    }
    if list.len() >= KEPT {
        let ord = list.iter().map(|x| x.ord).max().unwrap_or(0).max(e.ord);
        list.truncate(KEPT - 1);
        let text = "(more statements than blastwall keeps apart)".into();
        list.push(Earlier {
            ord,
            kind: Kind::Call,
            text,
            names: Arc::from([]),
            named_only: false,
            point: None,
            kind_only: false,
        });
        return;
    }
    list.push(e);
}

/// [`redirected_before`] of the end of `message`.
#[cfg(test)]
fn redirected(message: &[Statement], sent: &[Earlier], target: &RelName) -> Option<String> {
    redirected_before(&in_message(message), message.len(), sent, target)
}

/// The statements of a message that may redirect a name after them (not a transaction end,
/// nor a `ROLLBACK TO` that returns within the message), with their places: found once per
/// message, not once per write (forty-sixth pass M1: a Query of 18,000 point UPDATEs read
/// every statement before each write, 29 s of blastwall's CPU against 0.3 s on the server).
pub fn in_message(message: &[Statement]) -> Vec<(usize, Earlier)> {
    let found = (0..message.len()).filter_map(|i| Earlier::of(&message[i], 0).map(|e| (i, e)));
    found.filter(|(i, e)| e.kind != Kind::End && !returns_within(message, *i)).collect()
}

/// The earlier statement that may make `target` name something else, and why, as the end of
/// a refusal's sentence: first the statements of the same message before place `before`
/// (`mine`: the message's [`in_message`]), then those sent earlier and not yet answered.
pub fn redirected_before(
    mine: &[(usize, Earlier)],
    before: usize,
    sent: &[Earlier],
    target: &RelName,
) -> Option<String> {
    let mine = mine.iter().take_while(|(i, _)| *i < before).map(|(_, e)| e);
    if let Some((e, why)) = mine.filter_map(|e| e.redirects(target, false).map(|w| (e, w))).next() {
        return Some(format!("`{}` ({why}) earlier in the same message", e.shown()));
    }
    // The most telling first: DDL that names it, then a rollback, then a call.
    let (e, why) = [Kind::Ddl, Kind::Rollback, Kind::End, Kind::Call].iter().find_map(|k| {
        (0..sent.len())
            .filter(|i| sent[*i].kind == *k && !returns_within_sent(sent, *i))
            .find_map(|i| sent[i].redirects(target, true).map(|w| (&sent[i], w)))
    })?;
    Some(format!(
        "`{}` ({why}), sent earlier in the same extended-protocol batch or in a message the server has not answered yet,",
        e.shown()
    ))
}

/// Another session's DDL whose transaction has not ended (`crate::inflight`) that may make
/// `target` name something else, as the end of a refusal's sentence: the server may reach the
/// write after that DDL commits, whatever blastwall's answers say now.
/// `constraint`: the write is an upsert `ON CONFLICT ON CONSTRAINT`, whose constraint any DDL
/// may swap (`DROP`/`ADD CONSTRAINT`, an index renamed).
pub fn redirected_by_others(others: &[Earlier], target: &RelName, constraint: bool) -> Option<String> {
    let swaps = "DDL that may swap the constraint it names";
    let by =
        |e: &Earlier| e.redirects_elsewhere(target).or_else(|| (constraint && e.kind == Kind::Ddl).then_some(swaps));
    let (e, why) = others.iter().find_map(|e| by(e).map(|w| (e, w)))?;
    Some(format!("`{}` ({why}), sent by another session in a transaction that has not ended,", e.shown()))
}

/// A statement's leading keywords (`DROP TABLE IF EXISTS …`, `GRANT …`): what kind of statement
/// it is, without the names and values that follow.
fn headline(text: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "create",
        "alter",
        "drop",
        "or",
        "replace",
        "temp",
        "temporary",
        "unlogged",
        "materialized",
        "foreign",
        "unique",
        "table",
        "view",
        "index",
        "sequence",
        "schema",
        "function",
        "procedure",
        "routine",
        "trigger",
        "constraint",
        "rule",
        "policy",
        "type",
        "domain",
        "extension",
        "statistics",
        "if",
        "exists",
        "not",
        "concurrently",
        "recursive",
        "grant",
        "revoke",
        "reassign",
        "owned",
        "commit",
        "rollback",
        "prepared",
        "comment",
        "security",
        "label",
        "aggregate",
        "operator",
        "cast",
        "collation",
        "conversion",
        "language",
        "publication",
        "subscription",
        "server",
        "event",
        "default",
        "privileges",
        "text",
        "search",
    ];
    let words = text.split(|c: char| c.is_whitespace() || c == '(' || c == ';').filter(|w| !w.is_empty());
    let lead: Vec<String> =
        words.take_while(|w| KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k))).map(str::to_uppercase).collect();
    if lead.is_empty() {
        "DDL …".to_string()
    } else {
        format!("{} …", lead.join(" "))
    }
}

/// Whether `text` has `name` as a word (case-insensitively; a quoted name's spelling too).
fn mentions(text: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    text.to_ascii_lowercase().split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).any(|w| w == name)
}

/// The first two words of a statement's text, past blanks, comments, `;` and `(`.
pub(super) fn first_words(text: &[u8]) -> (&[u8], &[u8]) {
    let mut rest = text;
    let first = next_word(&mut rest);
    let second = if first.is_empty() { &[][..] } else { next_word(&mut rest) };
    (first, second)
}

/// The next word of `rest` (letters, digits, `_`), past white space, `;`, `(` and comments,
/// and `rest` moved past it; empty when something else comes first.
fn next_word<'t>(rest: &mut &'t [u8]) -> &'t [u8] {
    loop {
        while let [c, r @ ..] = *rest {
            if !(c.is_ascii_whitespace() || *c == b';' || *c == b'(') {
                break;
            }
            *rest = r;
        }
        if let Some(r) = rest.strip_prefix(b"--") {
            *rest = r.iter().position(|c| *c == b'\n').map_or(&[][..], |i| &r[i + 1..]);
        } else if rest.starts_with(b"/*") {
            *rest = crate::analyze::budget::block_comment(rest, 0).map_or(&[][..], |end| &rest[end..]);
        } else {
            let end = rest.iter().position(|c| !(c.is_ascii_alphanumeric() || *c == b'_')).unwrap_or(rest.len());
            let (word, after) = rest.split_at(end);
            *rest = after;
            return word;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(text: &str, ddl: bool, tc: bool, calls: bool) -> Statement {
        Statement { text: text.into(), ddl, transaction_control: tc, calls_functions: calls, ..Default::default() }
    }

    fn name(n: &str) -> RelName {
        RelName { schema: None, name: n.into() }
    }

    #[test]
    fn what_may_redirect_a_name() {
        let view = st("CREATE TEMP VIEW v AS SELECT * FROM users", true, false, false);
        let e = Earlier::of(&view, 3).unwrap();
        assert_eq!((e.kind, e.ord), (Kind::Ddl, 3));
        assert!(e.redirects(&name("v"), false).is_some());
        assert!(e.redirects(&name("w"), false).is_none());
        // A new view changes what its own name leads to only; one replaced, every view over it.
        assert!(e.redirects(&name("v"), true).is_some());
        assert!(e.redirects(&name("w"), true).is_none());
        let replaced = Earlier::of(&st("CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM users", true, false, false), 3);
        assert!(replaced.unwrap().redirects(&name("w"), true).is_some());
        assert!(Earlier::of(&st("CREATE TEMP TABLE v (id int)", true, false, false), 0).is_none());
        assert!(Earlier::of(&st("ALTER TABLE staging ADD COLUMN c int", true, false, false), 0).is_none());
        let trigger = st("CREATE TRIGGER t AFTER UPDATE ON staging EXECUTE FUNCTION f()", true, false, false);
        let trigger = Earlier::of(&trigger, 1).unwrap();
        assert!(trigger.redirects(&name("staging"), true).is_some());
        assert!(trigger.redirects(&name("users"), true).is_none());
        let undo = st("/* x /* y */ */ rollback TO SAVEPOINT s", false, true, false);
        assert_eq!(Earlier::of(&undo, 0).map(|e| e.kind), Some(Kind::Rollback));
        assert_eq!(Earlier::of(&st("END", false, true, false), 0).map(|e| e.kind), Some(Kind::End));
        assert_eq!(Earlier::of(&st("PREPARE TRANSACTION 'x'", false, true, false), 0).map(|e| e.kind), Some(Kind::End));
        assert_eq!(Earlier::of(&st("SAVEPOINT s", false, true, false), 0).map(|e| e.kind), Some(Kind::Mark));
        assert!(Earlier::of(&st("BEGIN", false, true, false), 0).is_none());
        assert_eq!(Earlier::of(&st("SELECT f()", false, false, true), 0).map(|e| e.kind), Some(Kind::Call));
        // In the same message, a COMMIT is not taken as a rollback (a failed transaction
        // refuses such a message whole); sent earlier, the session decides.
        let commit = st("COMMIT", false, true, false);
        assert!(redirected(std::slice::from_ref(&commit), &[], &name("v")).is_none());
        let sent = Earlier::of(&commit, 1).unwrap();
        assert!(redirected(&[], &[sent], &name("v")).unwrap().starts_with("`COMMIT` (a transaction end"));
    }

    #[test]
    fn memberships_owners_and_schema_privileges_may_redirect_any_name() {
        for sql in [
            "REVOKE archivist FROM app",
            "GRANT archivist TO app WITH ADMIN OPTION",
            "REASSIGN OWNED BY archivist TO migrator",
            "REVOKE USAGE ON SCHEMA archive FROM app",
            "GRANT SELECT ON ALL TABLES IN SCHEMA archive TO app",
        ] {
            let e = Earlier::of(&st(sql, false, false, false), 2).unwrap_or_else(|| panic!("{sql}"));
            assert_eq!((e.kind, e.named_only), (Kind::Ddl, false), "{sql}");
            assert!(e.redirects(&name("users"), true).is_some(), "{sql}");
            assert!(Earlier::for_others(&st(sql, false, false, false)).is_some(), "{sql}");
            assert!(may_concern_others(sql.as_bytes()) && may_redirect_unseen(sql.as_bytes()), "{sql}");
        }
        // Behind other statements of the same text too (forty-eighth pass).
        for sql in [
            "BEGIN; REVOKE USAGE ON SCHEMA archive FROM app",
            "SELECT 'a;b'; /* ; */ GRANT archivist TO app",
            "SELECT 1;COMMIT PREPARED 'x'",
        ] {
            assert!(may_concern_others(sql.as_bytes()), "{sql}");
        }
        for sql in ["SELECT 1; SELECT 'grant'", "BEGIN; COMMIT"] {
            assert!(!may_concern_others(sql.as_bytes()), "{sql}");
        }
        for sql in ["GRANT SELECT ON archive.users TO migrator", "REVOKE EXECUTE ON FUNCTION f() FROM app"] {
            assert_eq!(reach_of_privileges(sql), Some(false), "{sql}");
            assert!(Earlier::of(&st(sql, false, false, false), 0).is_none(), "{sql}");
        }
        assert_eq!(reach_of_privileges("SELECT 1"), None);
    }

    #[test]
    fn others_see_the_kind_of_ddl_but_not_its_text_nor_temporary_ddl() {
        let others = |sql: &str| Earlier::for_others(&st(sql, true, false, false));
        let e = others("ALTER TABLE users RENAME COLUMN secret_9f TO c").unwrap();
        assert_eq!(e.shown(), "ALTER TABLE …");
        assert!(e.redirects_elsewhere(&name("users")).is_some());
        let e = others("DROP TABLE IF EXISTS pg_temp.a, public.users CASCADE").unwrap();
        assert_eq!(e.shown(), "DROP TABLE IF EXISTS …");
        assert_eq!(others("CREATE OR REPLACE VIEW v AS SELECT 'x'").unwrap().shown(), "CREATE OR REPLACE VIEW …");
        for sql in [
            "DROP VIEW IF EXISTS pg_temp.x CASCADE",
            "CREATE OR REPLACE TEMP VIEW users AS SELECT 1 AS id",
            "DROP TABLE IF EXISTS pg_temp.users",
            "CREATE TEMP TABLE users (id bigint)",
        ] {
            assert!(others(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn the_kept_list_is_bounded() {
        let mut list = Vec::new();
        for i in 0..200u64 {
            let s = st(&format!("SELECT f{i}()"), false, false, true);
            keep(&mut list, Earlier::of(&s, i).unwrap());
            keep(&mut list, Earlier::of(&s, i + 1).unwrap());
        }
        assert_eq!(list.len(), KEPT);
        assert_eq!(list.last().map(|e| (e.kind, e.ord)), Some((Kind::Call, 200)));
    }

    /// Forty-sixth pass M1: a Query of 18,000 point UPDATEs took 29 s of blastwall's CPU, each
    /// write's name read against every statement before it for what may redirect it. Those
    /// statements are found once per message: 8,000 writes resolve in well under the time
    /// 8,000 × 8,000 readings took.
    #[test]
    fn a_message_of_thousands_of_writes_is_read_once() {
        let policy = crate::demo::incident_policy().unwrap();
        let session = crate::names::Resolutions::default();
        let sql: String = (0..8_000).map(|i| format!("UPDATE users SET email = email WHERE id = {i};")).collect();
        let statements = crate::analyze::analyze(&sql, Default::default());
        let cx = super::super::Context::new(&statements, &[], &policy, None, &session);
        let t = std::time::Instant::now();
        for (i, st) in statements.iter().enumerate() {
            for w in &st.writes {
                assert!(super::super::reach_once(&cx, i, w).0.is_some_and(|r| r.unresolved.is_some()));
            }
        }
        eprintln!("8000 writes: {:?}", t.elapsed());
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
