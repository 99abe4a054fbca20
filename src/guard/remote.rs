//! Code that may run SQL in another session: while the database has a function that opens one
//! (`catalog::hidden::remote`: `dblink_exec`, `dblink`, `pg_background_launch`, …) or a foreign
//! table, a statement that runs code blastwall cannot see — a function call other than a
//! well-known built-in, a hidden caller of a user function (a view, default, domain … over one
//! or over one of those), `DO`, `CALL`, code in the session's temporary schema — cannot be
//! verified by the pre-check: its counters read the client's backend, and a write made through
//! another connection is counted nowhere and committed there, whatever blastwall then rolls
//! back. Such a statement is refused (rule `unverifiable`) wherever the pre-check would verify
//! it: `[opaque] functions = "verify"`, or `"allow"` (the default) in a policy with tables; not
//! where calls are trusted outright (`"allow"` and no table); `"warn"` warns, `"block"`
//! refuses them anyway. So is a write that reaches a foreign table — by the identity of the
//! relation its name resolves to on the session (`names::written`), the name where that cannot
//! be known (eleventh adversarial pass L1: not every write naming a relation called like one) —
//! and a CREATE that names a relation that reaches one.
//!
//! Owns: those findings. Does not own: the list of functions and of the relations that reach a
//! foreign table (`catalog::hidden`), hidden callers (`hidden`), resolving names (`names`), the
//! pre-check (`need`).

use super::SessionInfo;
use crate::analyze::{Op, Statement};
use crate::catalog::Catalog;
use crate::policy::{self, Action, Finding, Mode, Policy};

/// The findings for `statements` (empty while the database has no such function). `cx`: what
/// their written names resolve to on this session (`names`).
pub(super) fn findings(
    statements: &[Statement],
    info: &SessionInfo,
    policy: &Policy,
    catalog: &Catalog,
    cx: &crate::names::Context<'_>,
) -> Vec<Finding> {
    if info.database.is_empty() {
        return Vec::new();
    }
    // Calls are verified by counting under `verify`, and under `allow` while the policy has
    // tables (`need`); `block` refuses them already; `allow` with no table trusts them.
    let calls = match policy.opaque.functions {
        Action::Block => None,
        Action::Allow if policy.tables.is_empty() => None,
        Action::Warn => Some(Mode::Warn),
        Action::Allow | Action::Verify => Some(Mode::Enforce),
    };
    let session = policy::mode_for(info.view(), policy, None);
    // The strictest way the statement's code would be verified by counting, if any; and the
    // relation that leads a write to a foreign table, if one does.
    let cap = |i: usize, st: &Statement| {
        let verified = st.opaque.iter().any(|o| policy.opaque.for_key(o.key()) == Action::Verify);
        let code = st.calls_functions || runs_user_code(st, catalog, info) || super::taint::reaches(st, info);
        let foreign = foreign(i, st, cx, catalog, info);
        let cap = if verified || foreign.is_some() { Some(Mode::Enforce) } else { calls.filter(|_| code) };
        let cap = cap.filter(|_| !st.transaction_control).map(|c| session.min(c)).filter(|m| *m != Mode::Off);
        cap.map(|c| (c, foreign))
    };
    let mut out = Vec::new();
    for (st, (mode, foreign)) in statements.iter().enumerate().filter_map(|(i, s)| Some((s, cap(i, s)?))) {
        let mut remote = remote_now(catalog, info);
        if remote.is_empty() {
            break;
        }
        // Those the text names first (`dblink_exec` before `dblink_build_sql_delete`), and
        // first of all the relation that leads the write to a foreign table.
        let text = st.text.to_ascii_lowercase();
        let named = |f: &String| f.split_once('.').is_some_and(|(_, n)| text.contains(n));
        remote.sort_by_key(|f| (!named(f), std::cmp::Reverse(f.len())));
        remote.splice(0..0, foreign);
        out.push(Finding {
            rule: "unverifiable",
            mode,
            what: "statement".into(),
            why: crate::said::runs_sql_elsewhere(&remote),
            hint: crate::said::HINT_RUNS_SQL_ELSEWHERE,
            source: format!("[opaque] of {}", policy.source_names()),
            statement: st.text.clone(),
        });
    }
    out
}

/// What leads statement `index` to write a foreign table, if anything (`None` while the
/// database has none): a write (DELETE, UPDATE, MERGE, upsert, TRUNCATE) whose relation, as
/// the server will resolve it on this session, is a foreign table or reaches one (a view over
/// one at any depth, a table whose rule writes one, a parent of a foreign partition:
/// `catalog::HiddenCallers::reaches_foreign`) — by its OID; by its name (any relation so
/// called in any schema) where it cannot be resolved before the message runs or is a protocol
/// Parse (resolved again at each run); any name a statement the server runs first may
/// redirect. And DDL that creates something whose text names such a relation (a view, a
/// rule, a function's body over it: eleventh adversarial pass H1), other than a foreign table.
fn foreign(
    index: usize,
    st: &Statement,
    cx: &crate::names::Context<'_>,
    catalog: &Catalog,
    info: &SessionInfo,
) -> Option<String> {
    use crate::names::Written;
    let text = st.text.trim_start().get(..16).unwrap_or(st.text.trim_start()).to_ascii_lowercase();
    let makes = st.ddl && text.starts_with("create") && !st.text.to_ascii_lowercase().contains("foreign table");
    let writes = st.writes.iter().any(|w| reaches(&w.op));
    if !makes && !writes {
        return None;
    }
    super::hidden::with_callers(catalog, info, |set| {
        set.foreign_names().next()?;
        if makes && set.mentions_foreign(&st.text) {
            return Some("the CREATE names a relation whose writes reach a foreign table".to_string());
        }
        st.writes.iter().filter(|w| reaches(&w.op)).find_map(|w| {
            let Some(target) = &w.target else {
                return set.mentions_foreign(&st.text).then(|| format!("the {} names a relation whose writes reach a foreign table", w.op.verb()));
            };
            match crate::names::written(cx, index, w) {
                None => None,
                Some(Written::Oid { oid, .. }) if set.reaches_foreign(oid) => Some(format!("{target} reaches a foreign table")),
                Some(Written::Oid { persisting: true, .. }) if set.foreign_named(&target.name) => Some(format!(
                    "{target} may reach a foreign table (a prepared statement's names are resolved again at each run, and a relation called so reaches one)"
                )),
                Some(Written::Oid { .. }) => None,
                Some(Written::Unresolved(why)) if set.foreign_named(&target.name) => Some(format!(
                    "{target} may reach a foreign table (it could not be resolved before the message runs: {why}; a relation called so reaches one)"
                )),
                Some(Written::Unresolved(_)) => None,
                Some(Written::Redirected(why)) => Some(why),
            }
        })
    })
    .flatten()
}

/// Whether a statement may run a user function through an object it mentions (a hidden caller:
/// `super::hidden::hidden_call`, less the callers of `nextval`/`setval` alone — a sequence's
/// move runs no SQL elsewhere: `DELETE FROM users` beside a foreign table is not one because
/// `users.id`'s default calls `nextval`). Unknown set: it may.
fn runs_user_code(st: &Statement, catalog: &Catalog, info: &SessionInfo) -> bool {
    if st.transaction_control {
        return false;
    }
    super::hidden::with_callers(catalog, info, |set| match super::maintenance::of(&st.text) {
        Some(m) if !m.refresh => set.maintenance_reaches(&st.text, !m.evaluates, m.every_table),
        _ => set.mentioned_in(&st.text, true),
    })
    .unwrap_or(true)
}

/// Whether a write of this kind runs on a foreign table's server when its relation is one.
fn reaches(op: &Op) -> bool {
    op.is_row_write() || matches!(op, Op::Upsert { .. } | Op::Truncate { .. })
}

/// The database's functions that run SQL in another session and its foreign tables (known
/// before any text is judged while calls matter: `Guard::mentions_hidden_caller`).
fn remote_now(catalog: &Catalog, info: &SessionInfo) -> Vec<String> {
    super::hidden::with_callers(catalog, info, |set| set.remote()).unwrap_or_default()
}
