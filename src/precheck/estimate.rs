//! Judging a statement by numbers rather than text: the planner's estimate (before it runs)
//! and an override directive's stated count (after it ran).
//!
//! Owns: reading EXPLAIN's JSON and the findings these numbers make. Does not own: the I/O.

use super::CheckPlan;
use crate::policy::{Decision, Policy, SessionView};

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

/// The exact, bounded count of the rows a single-table DELETE or UPDATE reaches, as our own
/// statement: `SELECT pg_catalog.count(*) FROM (SELECT 1 FROM <target> WHERE <where> LIMIT
/// limit + 1)`, built from the client's parse tree and deparsed (never the client's text: its
/// comments and quoting cannot change ours). `None` when it cannot be built to mean the same
/// rows: other relations (USING/FROM, whose joins repeat rows), a WITH clause (it may write),
/// backslashes (their reading depends on `standard_conforming_strings`), or not one statement.
pub(super) fn bounded_count_sql(sql: &str, limit: u64) -> Option<String> {
    use pg_query::protobuf as pb;
    use pg_query::NodeEnum as N;
    if sql.contains('\\') {
        return None;
    }
    let bound = i32::try_from(limit.checked_add(1)?).ok()?;
    let int = |ival: i32| pb::Node {
        node: Some(N::AConst(pb::AConst {
            isnull: false,
            val: Some(pb::a_const::Val::Ival(pb::Integer { ival })),
            location: -1,
        })),
    };
    crate::analyze::deep::with_parse(sql, pg_query::ParserOptions::DEFAULT, move |parsed| {
        let parsed = parsed.ok()?;
        let [raw] = &parsed.protobuf.stmts[..] else { return None };
        let (relation, where_clause) = match raw.stmt.as_deref()?.node.as_ref()? {
            N::DeleteStmt(d) if d.using_clause.is_empty() && d.with_clause.is_none() => {
                (d.relation.clone()?, d.where_clause.clone())
            }
            N::UpdateStmt(u) if u.from_clause.is_empty() && u.with_clause.is_none() => {
                (u.relation.clone()?, u.where_clause.clone())
            }
            _ => return None,
        };
        let one = pb::ResTarget { val: Some(Box::new(int(1))), location: -1, ..Default::default() };
        let select = pb::SelectStmt {
            target_list: vec![pb::Node { node: Some(N::ResTarget(Box::new(one))) }],
            from_clause: vec![pb::Node { node: Some(N::RangeVar(relation)) }],
            where_clause,
            limit_count: Some(Box::new(int(bound))),
            limit_option: pb::LimitOption::Count as i32,
            op: pb::SetOperation::SetopNone as i32,
            ..Default::default()
        };
        let stmt = pb::RawStmt {
            stmt: Some(Box::new(pb::Node { node: Some(N::SelectStmt(Box::new(select))) })),
            stmt_location: 0,
            stmt_len: 0,
        };
        let tree = pb::ParseResult { version: parsed.protobuf.version, stmts: vec![stmt] };
        let inner = pg_query::deparse(&tree, Default::default()).ok()?;
        Some(format!("SELECT pg_catalog.count(*) FROM ({inner}) AS blastwall_count"))
    })
}

/// Whether a statement the planner estimates far over its limit is, counted exactly, within
/// it: the bounded count of [`bounded_count_sql`] runs inside a savepoint of its own (rolled
/// back, whatever a function in the WHERE did) and says at most `limit` rows. `false` when it
/// cannot be counted that way (then the estimate stands), or more rows match.
pub(super) async fn counted_within(
    b: &mut super::Backend<'_>,
    plan: &CheckPlan,
    estimates: &[(String, String, bool, f64)],
    policy: &Policy,
) -> Result<bool, super::PrecheckError> {
    let ([(schema, name, delete, _)], Some(sql)) = (estimates, plan.estimate_sql.as_deref()) else { return Ok(false) };
    let (max_del, max_upd, _) = crate::policy::limits_for(policy, schema, name);
    let Some(limit) = (if *delete { max_del } else { max_upd }) else { return Ok(false) };
    let Some(count) = bounded_count_sql(sql, limit) else { return Ok(false) };
    let opened = b.query("SAVEPOINT blastwall_count").await?;
    if opened.error.is_some() {
        return Ok(false);
    }
    let a = b.query(&count).await?;
    b.query("ROLLBACK TO SAVEPOINT blastwall_count; RELEASE SAVEPOINT blastwall_count").await?;
    let n = a.rows.first().and_then(|r| r.first()).and_then(|v| v.as_deref()).and_then(|v| v.parse::<u64>().ok());
    Ok(a.error.is_none() && n.is_some_and(|n| n <= limit))
}

#[cfg(test)]
mod tests {
    use super::bounded_count_sql;

    #[test]
    fn the_bounded_count_is_built_from_the_tree() {
        let sql = bounded_count_sql("DELETE FROM public.big b WHERE b.id > 0 -- trailing\n", 5).unwrap();
        assert_eq!(
            sql,
            "SELECT pg_catalog.count(*) FROM (SELECT 1 FROM public.big b WHERE b.id > 0 LIMIT 6) AS blastwall_count"
        );
        let sql = bounded_count_sql("UPDATE t SET a = 1 WHERE note = 'it''s' /* x */", 9).unwrap();
        assert!(sql.contains("WHERE note = 'it''s' LIMIT 10)"), "{sql}");
        for no in [
            "DELETE FROM t USING u WHERE t.a = u.a",
            "UPDATE t SET a = 1 FROM u WHERE t.a = u.a",
            "WITH x AS (DELETE FROM u RETURNING 1) DELETE FROM t WHERE a > 0",
            "DELETE FROM t WHERE a = 'x\\'",
            "DELETE FROM t WHERE a > 0; DELETE FROM u WHERE a > 0",
            "SELECT 1",
        ] {
            assert_eq!(bounded_count_sql(no, 5), None, "{no}");
        }
    }
}
