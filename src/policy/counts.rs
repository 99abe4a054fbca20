//! The policy's judgement of measured numbers: what a statement changed, as the pre-check
//! counted it on the server (cascades, triggers, rules, children included), against the row
//! limits or against an override directive's stated count. Pure: the pre-check measures and
//! keeps or rolls back; this says which.
//!
//! Owns: `row-limit` and `override-exceeded` findings. Does not own: the counting (`precheck`).

use super::decide::{defaults_source, describe_counts, limits_for, mode_for, HINT_LIMIT, HINT_LIMIT_WARN};
use super::{Decision, Finding, Mode, Policy, SessionView, TableCount, TablePolicy};
use crate::analyze::directive::Override;
use crate::analyze::RelName;

/// What was measured: the statement, its first target, and an override's count if it had one.
pub struct Measured<'a> {
    pub verb: &'static str,
    pub target: Option<&'a RelName>,
    pub override_rows: Option<&'a Override>,
    pub statement: &'a str,
}

/// The measured counts (the target's table first) and the decision over them: the override's
/// count when the statement has one, else every applicable row limit.
pub fn judge_counts(
    m: Measured<'_>,
    mut counts: Vec<TableCount>,
    who: SessionView<'_>,
    policy: &Policy,
) -> (Vec<TableCount>, Decision) {
    if let Some(t) = m.target {
        counts.sort_by_key(|c| !(c.name == t.name && t.schema.as_ref().is_none_or(|s| *s == c.schema)));
    }
    let what = match (m.target, counts.first()) {
        (Some(_), Some(first)) => format!("{} on {}", m.verb, first.qualified()),
        _ => m.verb.to_string(),
    };
    let decision = match m.override_rows {
        Some(ov) => override_findings(&counts, ov, &what, m.statement),
        None => limit_findings(&counts, &what, m.statement, who, policy),
    };
    (counts, decision)
}

/// Row limits against what a statement changed, as the pre-check measured it: counts include
/// rows deleted by ON DELETE CASCADE and rows changed by triggers and functions. One finding
/// names every table over its limit; it applies in the strictest of their modes.
fn limit_findings(
    counts: &[TableCount],
    verb: &str,
    statement: &str,
    who: SessionView<'_>,
    policy: &Policy,
) -> Decision {
    let mut over = Vec::new();
    let mut first_table: Option<&TablePolicy> = None;
    let mut mode: Option<Mode> = None;
    for c in counts {
        let (max_del, max_upd, table) = limits_for(policy, &c.schema, &c.name);
        for (what, n, max) in [("deleted", c.deleted, max_del), ("updated", c.updated, max_upd)] {
            if let Some(m) = max.filter(|m| n > *m) {
                over.push(format!("{n} {what} in {} is over its limit of {m}", c.qualified()));
                let table_mode = mode_for(who, policy, table);
                if mode.is_none_or(|x| table_mode > x) {
                    mode = Some(table_mode);
                    first_table = table;
                }
            }
        }
    }
    let mut d = Decision::default();
    let Some(mode) = mode.filter(|m| *m != Mode::Off) else { return d };
    let source = first_table.map(|t| t.source.clone()).unwrap_or_else(|| defaults_source(policy));
    d.findings.push(Finding {
        rule: "row-limit",
        mode,
        what: verb.to_string(),
        why: format!("would {}; {}", describe_counts(counts), over.join(", ")),
        hint: if mode == Mode::Warn { HINT_LIMIT_WARN } else { HINT_LIMIT },
        source,
        statement: statement.to_string(),
    });
    d
}

/// An override states how many rows the statement may change in all (deleted and updated,
/// cascades included); more than that is rolled back, whatever the mode.
fn override_findings(counts: &[TableCount], ov: &Override, what: &str, statement: &str) -> Decision {
    let total: u64 = counts.iter().map(|c| c.deleted + c.updated).sum();
    let mut d = Decision::default();
    if total > ov.rows {
        d.findings.push(Finding {
            rule: "override-exceeded",
            mode: Mode::Enforce,
            what: what.to_string(),
            why: format!(
                "would {}: {total} rows in all, more than the {} the override allows (reason: {})",
                describe_counts(counts),
                ov.rows,
                ov.reason
            ),
            hint: "The statement changes more rows than expected: look at what else it reaches before raising the number.",
            source: "override directive".into(),
            statement: statement.to_string(),
        });
    }
    d
}
