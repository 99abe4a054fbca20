//! Judging a statement by numbers rather than text: the planner's estimate (before it runs)
//! and an override directive's stated count (after it ran).
//!
//! Owns: reading EXPLAIN's JSON and the findings these numbers make. Does not own: the I/O.

use super::CheckPlan;
use crate::policy::{Decision, Mode, Policy, SessionView};
use crate::precheck::TableCount;

/// An estimate this many times over a limit refuses without running the statement.
const ESTIMATE_FACTOR: f64 = 10.0;

/// (schema, table, delete?, estimated rows) for each ModifyTable node of an EXPLAIN (VERBOSE,
/// FORMAT JSON) answer.
pub(super) fn estimates(json: &str) -> Vec<(String, String, bool, f64)> {
    fn walk(v: &serde_json::Value, out: &mut Vec<(String, String, bool, f64)>) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("Node Type").and_then(|t| t.as_str()) == Some("ModifyTable") {
                    let rows = m
                        .get("Plans")
                        .and_then(|p| p.as_array())
                        .and_then(|p| p.first())
                        .and_then(|c| c.get("Plan Rows"))
                        .and_then(|r| r.as_f64())
                        .unwrap_or(0.0);
                    let s = |k: &str| m.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                    out.push((s("Schema"), s("Relation Name"), s("Operation") == "Delete", rows));
                }
                m.values().for_each(|c| walk(c, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(json) {
        walk(&v, &mut out);
    }
    out
}

pub(super) fn estimate_findings(
    estimates: impl Iterator<Item = (String, String, bool, f64)>,
    plan: &CheckPlan,
    who: SessionView<'_>,
    policy: &Policy,
) -> Decision {
    let mut d = Decision::default();
    for (schema, name, delete, rows) in estimates {
        let (max_del, max_upd, table) = crate::policy::limits_for(policy, &schema, &name);
        let Some(limit) = (if delete { max_del } else { max_upd }) else { continue };
        let limit_f = limit as f64;
        if rows > (limit_f * ESTIMATE_FACTOR).max(limit_f + 100.0) {
            d.findings.push(crate::policy::Finding {
                rule: "row-limit",
                mode: crate::policy::mode_for(who, policy, table),
                what: format!("{} on {schema}.{name}", plan.verb),
                why: format!(
                    "the planner estimates {rows:.0} rows in {schema}.{name}, far over its limit of {limit}; not run"
                ),
                hint: "Change fewer rows per statement (narrow the WHERE clause, or work in batches). Nothing was run.",
                source: table.map(|t| t.source.clone()).unwrap_or_else(|| "defaults".into()),
                statement: plan.statement.clone(),
            });
        }
    }
    d
}

/// An override states how many rows the statement may change in all (deleted and updated,
/// cascades included); more than that is rolled back, whatever the mode.
pub(super) fn override_findings(
    counts: &[TableCount],
    ov: &crate::analyze::directive::Override,
    what: &str,
    statement: &str,
) -> Decision {
    let total: u64 = counts.iter().map(|c| c.deleted + c.updated).sum();
    let mut d = Decision::default();
    if total > ov.rows {
        d.findings.push(crate::policy::Finding {
            rule: "override-exceeded",
            mode: Mode::Enforce,
            what: what.to_string(),
            why: format!(
                "would {}: {total} rows in all, more than the {} the override allows (reason: {})",
                crate::policy::describe_counts(counts),
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
