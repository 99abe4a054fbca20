//! What the pre-check needs for a message: whether it must be counted, what to EXPLAIN first,
//! and whether it can be wrapped at all.
//!
//! Owns: those three questions. Does not own: running the check (`precheck`).

use super::SessionInfo;
use crate::analyze::{self, Op, Statement};
use crate::policy::{self, Action, Mode, Policy};

/// What the pre-check needs to know about a message.
pub(super) struct CheckNeed {
    pub(super) verb: &'static str,
    pub(super) target: Option<analyze::RelName>,
    /// Some write in it is in dry-run mode: it is always rolled back.
    pub(super) dry_run: bool,
}

/// Whether the statements need the pre-check: a DELETE when any row limit on deletes exists
/// (its cascades may reach a limited table), an UPDATE or MERGE on a table whose updates are
/// limited (anomaly and budget rules count as limits), and anything in dry-run mode that writes (the static findings are `dry_run`).
pub(super) fn check_need(
    statements: &[Statement],
    info: &SessionInfo,
    policy: &Policy,
    catalog: &crate::catalog::Catalog,
    dry_run: bool,
) -> Result<Option<CheckNeed>, Vec<String>> {
    // The anomaly and budget rules count like limits (`contract`).
    let contract = crate::contract::enabled(policy);
    let any_update_limit =
        contract || policy.max_update_rows.is_some() || policy.tables.iter().any(|t| t.max_update_rows.is_some());
    let mut unknown = Vec::new();
    let any_delete_limit =
        contract || policy.max_delete_rows.is_some() || policy.tables.iter().any(|t| t.max_delete_rows.is_some());
    let mut need: Option<CheckNeed> = None;
    for st in statements {
        for w in &st.writes {
            let table = w.target.as_ref().and_then(|t| policy.tables.iter().find(|p| p.matches(t)));
            let mode = policy::mode_for(info.view(), policy, table);
            if mode == Mode::Off {
                continue;
            }
            let is_delete = matches!(w.op, Op::Delete | Op::MergeDelete);
            // An upsert's DO UPDATE changes rows a budget or history counts (`contract`).
            let is_update = matches!(w.op, Op::Update { .. } | Op::MergeUpdate { .. })
                || (contract && matches!(w.op, Op::Upsert { .. }));
            let mut update_limited = policy.max_update_rows.is_some()
                || policy.anomaly.enabled == Some(true)
                || table.is_some_and(|t| t.max_update_rows.is_some() || crate::contract::applies(t));
            // An UPDATE of a view (or a table with rules, triggers or children) can change rows
            // of a limited table under another name: the catalog says which names can.
            if is_update && !update_limited && any_update_limit {
                if let Some(t) = &w.target {
                    match catalog.is_indirect(&info.database, &t.name) {
                        Some(indirect) => update_limited = indirect,
                        None => unknown.push(t.name.clone()),
                    }
                }
            }
            let write_dry = dry_run || mode == Mode::DryRun;
            if write_dry || (is_delete && any_delete_limit) || (is_update && update_limited) {
                let n = need.get_or_insert_with(|| CheckNeed {
                    verb: w.op.verb(),
                    target: w.target.clone(),
                    dry_run: false,
                });
                n.dry_run |= write_dry;
            }
        }
        // The anomaly and budget rules count every row kept (`contract`): an INSERT into a
        // name whose rules, triggers or children may change other rows is counted too.
        if contract && !st.copy_from_stdin {
            for t in crate::contract::inserted_tables(&st.text) {
                match catalog.is_indirect(&info.database, &t.name) {
                    Some(true) => {
                        need.get_or_insert(CheckNeed { verb: "INSERT", target: Some(t), dry_run: false });
                    }
                    Some(false) => {}
                    None => unknown.push(t.name.clone()),
                }
            }
        }
        let verify_opaque = st.opaque.iter().any(|o| policy.opaque.for_key(o.key()) == Action::Verify)
            || (st.calls_functions && policy.opaque.functions == Action::Verify);
        if (dry_run && !st.opaque.is_empty()) || verify_opaque {
            need.get_or_insert(CheckNeed { verb: "statement", target: None, dry_run }).dry_run |= dry_run;
        }
    }
    if need.is_none() && !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        return Err(unknown);
    }
    Ok(need)
}

/// The text to EXPLAIN before a counted statement runs: one DELETE/UPDATE/MERGE statement with
/// no parameter references (EXPLAIN would need their values).
pub(super) fn estimate_text(statements: &[Statement], policy: &Policy) -> Option<String> {
    let [st] = statements else { return None };
    if !st.writes.iter().any(|w| w.op.is_row_write()) || !st.executes.is_empty() {
        return None;
    }
    // A write pinned to a few values of a protected column (an id) reaches a few rows: an
    // estimate would only cost a round trip.
    let pinned = |w: &analyze::Write| {
        let Some(analyze::Where::Cond(c)) = &w.predicate else { return false };
        let table = w.target.as_ref().and_then(|t| policy.tables.iter().find(|p| p.matches(t)));
        table.is_some_and(|t| {
            t.protected_columns.iter().any(|col| c.points.get(col).is_some_and(|n| n.is_some_and(|n| n <= 10)))
        })
    };
    if st.writes.iter().filter(|w| w.op.is_row_write()).all(pinned) {
        return None;
    }
    Some(st.text.trim_end_matches(';').to_string())
}

/// Why a message cannot be run inside a pre-check, if it cannot.
pub(super) fn unverifiable(statements: &[Statement]) -> Option<&'static str> {
    if statements.iter().any(|s| s.transaction_control) {
        return Some("the same message ends or opens a transaction (BEGIN, COMMIT, ROLLBACK, SAVEPOINT …)");
    }
    if statements.iter().any(|s| s.copy_from_stdin) {
        return Some("the same message reads COPY data from the client");
    }
    None
}
