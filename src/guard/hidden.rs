//! The guard's side of hidden callers (`catalog::HiddenCallers`: objects whose use runs a user
//! function, `set_config`, or `nextval`/`setval` of a sequence): asking for a database's set
//! before a message is judged, whether a statement mentions one, and which statements of a
//! message may change what the names after them resolve to — by their text, by an object they
//! mention, or by what blastwall knows of the prepared statement or cursor they run.
//!
//! Owns: when the set is asked for, the mention tests on a statement, and that "may change
//! names" reading. Does not own: the set (`catalog`), what a mention leads to (`need`: the
//! pre-check, like a function call), or following a path (`names`).

use super::{cursors, Guard, SessionInfo, Verdict};
use crate::analyze::Statement;
use crate::catalog::{Catalog, HiddenCallers, Question};
use crate::policy::Policy;
use std::sync::atomic::Ordering;

impl Guard {
    /// Whether a text the prefilter found `harmless` mentions a hidden caller that reading
    /// runs (it then takes the full path, where `need` sends it to the pre-check); `Err`: the
    /// database's set must be asked first, for any text (a write is judged against it too).
    /// Nothing is looked at while the policy judges no function calls, and the answer is one
    /// map lookup once the set is known (empty in most databases).
    ///
    /// A DECLARE of the text (`cursors::note` took it as plain) whose query mentions one, or
    /// may change what names resolve to (`set_config`), is not plain: its FETCH runs that.
    pub(super) fn mentions_hidden_caller(
        &self,
        sql: &[u8],
        info: &mut SessionInfo,
        harmless: bool,
        maintenance: bool,
    ) -> Result<bool, Verdict> {
        if info.database.is_empty() || !self.calls_matter.load(Ordering::Acquire) {
            return Ok(false);
        }
        // A session whose temporary schema holds code mentions a hidden caller in every text
        // (`taint`); asked first when a message since may have changed the schema, and in a
        // new session before its first text that may run code.
        if super::taint::must_ask(sql, info) {
            return Err(Verdict::Resolve(vec![Question::Taint]));
        }
        let declares = !info.cursors.declared.is_empty();
        let whose = crate::catalog::Whose { temp: &info.temp, user: &info.user };
        let mentioned = self.catalog.with_hidden_callers_cached(&info.database, whose, &info.hidden, |set| {
            // A maintenance command evaluates index expressions as a write does (its table
            // may not even be named): the full path judges it.
            (harmless || declares)
                && !set.is_empty()
                && ((maintenance && set.has_maintained())
                    || (set.has_open_schemas() && path_then_more(sql))
                    || (!set.reading_runs_nothing() && {
                        let text = String::from_utf8_lossy(sql);
                        set.mentioned_in(&text, false) || set.moves(&text, false, &|_| true)
                    }))
        });
        let mentioned = mentioned.ok_or_else(|| Verdict::Resolve(vec![Question::HiddenCallers]))?
            || (info.taint.runs_code() && super::taint::may_run_code(sql));
        if declares && (mentioned || crate::names::may_change_path(sql)) {
            for name in std::mem::take(&mut info.cursors.declared) {
                info.cursors.forget(&name);
            }
        }
        Ok(harmless && mentioned)
    }

    /// A message that may change what names resolve to (DDL, a function call) was let
    /// through: the catalog's answers for its database are dropped, the session's names are
    /// resolved again once it has run, and the session asks for its temporary schema's hidden
    /// callers (`catalog::OwnTemp`) before its next statement is judged.
    /// `identities`: and the policy tables' identities may change (`names::changes_identities`).
    pub(super) fn names_may_change(&self, info: &mut SessionInfo, identities: bool) {
        if identities {
            info.names.identities_may_change = true;
            self.catalog.forget(&info.database);
        } else {
            self.catalog.forget_new_tables(&info.database);
        }
        info.changes_names = true;
        info.temp.may_have_changed();
    }
}

/// Whether a message may change the path (`RESET search_path`, `SET search_path = "$user"`,
/// a role) with more after it: the statements after it may resolve names in a schema another
/// role may create in that the session's taint was not asked about (sixty-seventh pass H1).
/// A `;` in a string or a comment counts too: a check more, never a miss.
pub(super) fn path_then_more(sql: &[u8]) -> bool {
    let Some(last) = sql.iter().rposition(|b| !b.is_ascii_whitespace() && *b != b';' && *b != 0) else {
        return false;
    };
    sql[..last].contains(&b';') && may_set_path(sql)
}

/// Whether a text may set the path or the role (`$user`), read as words: `search_path`,
/// `set_config`, `RESET`, `DISCARD`, `ROLE`, `AUTHORIZATION`, `SET SCHEMA`. DDL, `GRANT` and
/// `REVOKE` open no schema to another role on their own: such a role may create in a schema
/// only where it owns it or was granted that (the owners' doing), or where it may create
/// schemas (every session of the database is then counted).
pub(super) fn may_set_path(sql: &[u8]) -> bool {
    const WORDS: [&[u8]; 6] = [b"search_path", b"set_config", b"reset", b"discard", b"role", b"authorization"];
    let mut previous: &[u8] = b"";
    for w in sql.split(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80)).filter(|w| !w.is_empty()) {
        if WORDS.iter().any(|x| w.eq_ignore_ascii_case(x))
            || (previous.eq_ignore_ascii_case(b"set") && w.eq_ignore_ascii_case(b"schema"))
        {
            return true;
        }
        previous = w;
    }
    false
}

/// Whose hidden callers a session counts: its own temporary schema's and its role's
/// (`catalog::Whose`).
pub(super) fn whose(info: &SessionInfo) -> crate::catalog::Whose<'_> {
    crate::catalog::Whose { temp: &info.temp, user: &info.user }
}

/// `f` of the hidden callers the session counts, when known and fresh, read through its copy
/// (`Catalog::with_hidden_callers_cached`: no map lookup while nothing changed).
pub(super) fn with_callers<R>(catalog: &Catalog, info: &SessionInfo, f: impl FnOnce(&HiddenCallers) -> R) -> Option<R> {
    catalog.with_hidden_callers_cached(&info.database, whose(info), &info.hidden, f)
}

/// Whether a statement may run a user function or `set_config` its text does not name, or move
/// a sequence the policy protects, through a relation, type or operator it mentions (unknown
/// set: yes). Transaction control mentions none.
pub(super) fn hidden_call(
    st: &Statement,
    catalog: &Catalog,
    info: &SessionInfo,
    writes: &dyn Fn() -> bool,
    policy: &Policy,
) -> bool {
    let database = &info.database;
    if database.is_empty() || st.transaction_control {
        return false;
    }
    let protected =
        |seq: &str| seq == "*" || policy.tables.iter().any(|t| t.sequences.iter().any(|p| is(seq, &p.name)));
    with_callers(catalog, info, |set| {
        if set.is_empty() {
            return false;
        }
        // ANALYZE, REINDEX, CLUSTER, VACUUM … evaluate index and statistics expressions
        // (plain VACUUM only BRIN indexes'), those of the tables they name and their
        // children, and one that names no table evaluates every table's. A materialized
        // view's REFRESH runs its query.
        // An index build runs only what its own text names.
        match super::maintenance::of(&st.text) {
            Some(m) if !m.refresh => set.maintenance_reaches(&st.text, !m.evaluates, m.every_table),
            Some(_) => set.mentioned_in(&st.text, true) || set.moves(&st.text, true, &protected),
            None => {
                let build = super::maintenance::index_build(&st.text);
                let text = build.as_ref().map_or(st.text.as_str(), |(t, _)| t.as_str());
                // What only a write runs counts when the statement may write: asked (a parse,
                // for a read that calls built-ins) only when the text mentions such a caller.
                // Both readings find more with `writes`, so this is the same answer.
                let found = |writes: bool| set.mentioned_in(text, writes) || set.moves(text, writes, &protected);
                found(false) || (found(true) && writes())
            }
        }
    })
    .unwrap_or(true)
}

/// Whether a sequence's `schema.name` is called `name` (any schema: as the policy's sequences
/// are matched by name elsewhere).
fn is(seq: &str, name: &str) -> bool {
    seq == name || seq.strip_suffix(name).is_some_and(|s| s.ends_with('.'))
}

/// Which statements of a message (as decided: an EXECUTE followed by what it runs) may change
/// what the names after them resolve to, beyond what `names` reads in their text (`SET`,
/// `set_config`, DDL, a function call): one that mentions an object whose use runs a user
/// function or `set_config` (a view, a default, a domain, an operator); an `EXECUTE` of a
/// statement that may (or that blastwall does not know); a `FETCH` or `MOVE` of a cursor that
/// is not plain (looked for only where `cursors`: the one pass found a cursor's word). Unknown
/// set (mid-batch): every statement that mentions anything.
pub(super) fn changing_names(
    statements: &[Statement],
    catalog: &Catalog,
    info: &SessionInfo,
    cursors: bool,
) -> Vec<bool> {
    let mut marked = std::borrow::Cow::Borrowed(statements);
    if cursors {
        cursors::reads_marked(&mut marked, info);
    }
    // Per statement, and per entry of each prepared statement it executes: whether it
    // mentions an object that calls a user function or `set_config`.
    let mentions = |set: Option<&HiddenCallers>, text: &str| match set {
        Some(set) => !set.is_empty() && set.mentioned_in(text, true),
        None => !info.database.is_empty(),
    };
    let judge = |set: Option<&HiddenCallers>| -> Vec<bool> {
        let changes = |s: &Statement| {
            crate::names::may_change_path(s.text.as_bytes())
                || s.calls_functions
                || !s.opaque.is_empty()
                || mentions(set, &s.text)
        };
        statements
            .iter()
            .zip(marked.iter())
            .map(|(st, m)| {
                // A constant `set_config('search_path', …)` is read as a `SET` is (`names`).
                m.calls_functions && !crate::names::sets_path_only(m)
                    || mentions(set, &st.text)
                    || st
                        .executes
                        .iter()
                        .any(|ex| info.prepared.get(&ex.name).is_none_or(|list| list.iter().any(changes)))
            })
            .collect()
    };
    match with_callers(catalog, info, |set| judge(Some(set))) {
        Some(v) => v,
        None => judge(None),
    }
}
