//! Code that may run SQL in another session: while the database has a function that opens one
//! (`catalog::hidden::remote`: `dblink_exec`, `dblink`, `pg_background_launch`, …), a
//! statement that runs code blastwall cannot see — a function call other than a well-known
//! built-in, a hidden caller (a view, default, domain … over any user function or over one of
//! those), `DO`, `CALL`, code in the session's temporary schema — cannot be verified by the
//! pre-check: its counters read the client's backend, and a write made through another
//! connection is counted nowhere and committed there, whatever blastwall then rolls back. Such
//! a statement is refused (rule `unverifiable`) wherever the pre-check would verify it:
//! `[opaque] functions = "verify"`, or `"allow"` (the default) in a policy with tables; not
//! where calls are trusted outright (`"allow"` and no table); `"warn"` warns, `"block"`
//! refuses them anyway.
//!
//! Owns: that finding. Does not own: the list of functions (`catalog::hidden`), hidden callers
//! (`hidden`), the pre-check (`need`).

use super::SessionInfo;
use crate::analyze::Statement;
use crate::catalog::Catalog;
use crate::policy::{self, Action, Finding, Mode, Policy};

/// The findings for `statements` (empty while the database has no such function).
pub(super) fn findings(
    statements: &[Statement],
    info: &SessionInfo,
    policy: &Policy,
    catalog: &Catalog,
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
    // The strictest way the statement's code would be verified by counting, if any.
    let cap = |st: &Statement| {
        let verified = st.opaque.iter().any(|o| policy.opaque.for_key(o.key()) == Action::Verify);
        let code = st.calls_functions
            || super::hidden::hidden_call(st, catalog, info, &|| true, policy)
            || super::taint::reaches(st, info);
        // A write whose text names a foreign table (a substring, as hidden callers are found),
        // or DDL that makes something over one (a temporary view written through, a rule, a
        // function's body: eleventh adversarial pass H1), other than the foreign table itself.
        let text = st.text.to_ascii_lowercase();
        let makes = st.ddl && text.trim_start().starts_with("create") && !text.contains("foreign table");
        let foreign = (!st.writes.is_empty() || makes)
            && remote_now(catalog, info)
                .iter()
                .any(|r| r.strip_prefix("foreign table ").is_some_and(|t| text.contains(t)));
        let cap = if verified || foreign { Some(Mode::Enforce) } else { calls.filter(|_| code) };
        cap.filter(|_| !st.transaction_control).map(|c| session.min(c)).filter(|m| *m != Mode::Off)
    };
    let mut out = Vec::new();
    for (st, mode) in statements.iter().filter_map(|s| Some((s, cap(s)?))) {
        let mut remote = remote_now(catalog, info);
        if remote.is_empty() {
            break;
        }
        // Those the text names first (`dblink_exec` before `dblink_build_sql_delete`).
        let text = st.text.to_ascii_lowercase();
        let named = |f: &String| f.split_once('.').is_some_and(|(_, n)| text.contains(n));
        remote.sort_by_key(|f| (!named(f), std::cmp::Reverse(f.len())));
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

/// The database's functions that run SQL in another session and its foreign tables (known
/// before any text is judged while calls matter: `Guard::mentions_hidden_caller`).
fn remote_now(catalog: &Catalog, info: &SessionInfo) -> Vec<String> {
    super::hidden::with_callers(catalog, info, |set| set.remote()).unwrap_or_default()
}
