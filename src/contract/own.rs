//! The state guards itself: a client's statement through blastwall that writes to blastwall's
//! state schema (its tables: a budget reset, a history rewritten; the schema: dropped) is
//! refused with rule `contract-state`, whatever the mode (a dry-run session reports it).
//! blastwall's own bookkeeping never passes through the guard (the pre-check sends it).
//!
//! Also here, because a budget cannot count it: TRUNCATE of a table with a delete budget (or
//! `TRUNCATE … CASCADE` while any table has one: what it cascades to is not visible) is
//! refused with rule `budget` in the table's mode — it removes rows without a row counter,
//! so no budget can be taken for them. Delete the rows instead, within the budget.
//!
//! Owns: which statements those are. Seen: the writes the analysis reports (DELETE, UPDATE,
//! MERGE, upserts, TRUNCATE, DROP, renames) on a table named with the state's schema, INSERT
//! or `COPY … FROM` into one, DROP SCHEMA of it, and other DDL whose text names
//! `schema.` (ALTER TABLE, GRANT …), and a call of `take_budget` or `record_run`. Not seen: a name the session's `search_path` resolves into
//! the schema without writing it (see README "Known gaps"); the server's privileges are the
//! line of defence there (`init-state --grant` grants no table privilege).

use crate::analyze::{Op, RelName, Statement};
use crate::policy::{mode_for, Finding, Mode, Policy, SessionView};

const HINT: &str = "blastwall's state (anomaly histories, spent budgets) is written only by blastwall itself, through the state's functions. To reset it, a DBA connects to the server directly as the schema's owner.";

fn in_schema(t: &RelName, schema: &str) -> bool {
    t.schema.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(schema))
}

const HINT_TRUNCATE: &str = "TRUNCATE removes rows without counting them, so no budget can be taken for them: DELETE the rows instead (the budget counts and limits them), or truncate through a role whose policy allows it.";

/// TRUNCATE of a table with a delete budget (directly, or perhaps by CASCADE).
fn truncate_findings(st: &Statement, who: SessionView<'_>, policy: &Policy, out: &mut Vec<Finding>) {
    let budgeted = |t: &&crate::policy::TablePolicy| t.budget.is_some_and(|b| b.delete_rows.is_some());
    for w in &st.writes {
        let (Op::Truncate { cascade }, Some(target)) = (&w.op, &w.target) else { continue };
        let named = policy.tables.iter().filter(budgeted).find(|t| t.matches(target));
        let by_cascade = if *cascade && named.is_none() { policy.tables.iter().find(budgeted) } else { None };
        let Some(t) = named.or(by_cascade) else { continue };
        let mode = mode_for(who, policy, Some(t));
        if mode == Mode::Off {
            continue;
        }
        let why = match named {
            Some(_) => format!("{} has a budget of rows deleted per window, and TRUNCATE removes rows no budget can count", t.qualified()),
            None => format!(
                "TRUNCATE … CASCADE may reach {}, which has a budget of rows deleted per window, and TRUNCATE removes rows no budget can count",
                t.qualified()
            ),
        };
        out.push(Finding {
            rule: "budget",
            mode,
            what: format!("TRUNCATE on {target}"),
            why,
            hint: HINT_TRUNCATE,
            source: t.source.clone(),
            statement: st.text.clone(),
        });
    }
}

/// The findings for the statements of one message that write to the state, or truncate a
/// table with a budget.
pub fn statement_findings(statements: &[Statement], who: SessionView<'_>, policy: &Policy) -> Vec<Finding> {
    if !super::enabled(policy) {
        return Vec::new();
    }
    let schema = policy.state.schema.as_str();
    let lower = schema.to_ascii_lowercase();
    let mode = match mode_for(who, policy, None) {
        Mode::DryRun => Mode::DryRun,
        _ => Mode::Enforce,
    };
    let mut out = Vec::new();
    for st in statements {
        truncate_findings(st, who, policy, &mut out);
        let text = st.text.to_ascii_lowercase();
        let names_state = text.contains(&lower);
        if !names_state && !st.calls_functions {
            continue;
        }
        let written = st.writes.iter().find_map(|w| {
            let t = w.target.as_ref()?;
            let hit =
                in_schema(t, schema) || (matches!(w.op, Op::DropSchema { .. }) && t.name.eq_ignore_ascii_case(schema));
            hit.then(|| format!("{} on {t}", w.op.verb()))
        });
        let inserted = || {
            super::inserts(&st.text)
                .into_iter()
                .find(|i| in_schema(&i.target, schema))
                .map(|i| format!("{} on {}", i.verb, i.target))
        };
        // Any DDL that names the schema: on an object in it, or on the schema itself (a rename
        // would leave the state behind and start an empty one: every budget reset).
        let ddl = || st.ddl.then(|| "statement".to_string());
        // Its functions only add, but a client has no business calling them (a made-up run).
        let called = || {
            (st.calls_functions && ["take_budget", "record_run"].iter().any(|f| text.contains(f)))
                .then(|| "a call of blastwall's state functions".to_string())
        };
        let found = if names_state { written.or_else(inserted).or_else(ddl) } else { None };
        if let Some(what) = found.or_else(called) {
            out.push(Finding {
                rule: "contract-state",
                mode,
                what,
                why: format!(
                    "writes to schema {schema}, where blastwall keeps the anomaly histories and budgets it enforces"
                ),
                hint: HINT,
                source: format!("[state] of {}", policy.source_names()),
                statement: st.text.clone(),
            });
        }
    }
    out
}
