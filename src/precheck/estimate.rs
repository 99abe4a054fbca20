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
                    // The rows it is fed (its outer plan), not an InitPlan's or SubPlan's
                    // (a `WITH` or a scalar subquery puts those first).
                    let plans = m.get("Plans").and_then(|p| p.as_array());
                    let outer = plans.and_then(|p| {
                        p.iter().find(|c| c.get("Parent Relationship").and_then(|r| r.as_str()) == Some("Outer"))
                    });
                    let rows = outer
                        .or_else(|| plans.and_then(|p| p.first()))
                        .and_then(|c| c.get("Plan Rows"))
                        .and_then(|r| r.as_f64())
                        .unwrap_or(0.0);
                    let s = |k: &str| m.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                    // An INSERT changes no existing row unless its conflicts update them: the
                    // rows it is fed are no UPDATE's (a writable `WITH` inserting 5,000 users
                    // beside a DELETE was refused as 5,000 rows updated).
                    let inserts_only = s("Operation") == "Insert" && s("Conflict Resolution") != "UPDATE";
                    if !inserts_only {
                        out.push((s("Schema"), s("Relation Name"), s("Operation") == "Delete", rows));
                    }
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

/// The exact, bounded count of the rows a DELETE or UPDATE reaches, as our own statement:
/// `SELECT pg_catalog.count(*) FROM (SELECT 1 FROM <target> WHERE <where> LIMIT limit + 1)`,
/// built from the client's parse tree and deparsed (never the client's text: its comments and
/// quoting cannot change ours). With other relations (`DELETE … USING u`, `UPDATE … FROM u`)
/// each target row is changed at most once however many rows of `u` it joins, so the rows are
/// those of the target for which one exists: `WHERE EXISTS (SELECT 1 FROM u WHERE <where>)`
/// (an unqualified name that is a column of `u` is `u`'s in both; one of both is an error in
/// the client's statement). A `WITH` of plain SELECTs is kept (unless one of its names is the
/// target's, which the target never reads but a SELECT would). Parameters (`$1`) stay: the
/// count is then bound to the client's own values ([`count_messages`]). `None` when it
/// cannot be built to mean the same rows: a `WITH` that writes, backslashes (their reading
/// depends on `standard_conforming_strings`), or not one statement. A count is never trusted
/// alone: within the limit, the statement runs and its rows are counted as any other.
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
    let select_one = move |from_clause: Vec<pb::Node>, where_clause: Option<Box<pb::Node>>| pb::SelectStmt {
        target_list: vec![pb::Node {
            node: Some(N::ResTarget(Box::new(pb::ResTarget {
                val: Some(Box::new(int(1))),
                location: -1,
                ..Default::default()
            }))),
        }],
        from_clause,
        where_clause,
        limit_option: pb::LimitOption::Default as i32,
        op: pb::SetOperation::SetopNone as i32,
        ..Default::default()
    };
    crate::analyze::deep::with_parse(sql, pg_query::ParserOptions::DEFAULT, move |parsed| {
        let parsed = parsed.ok()?;
        let [raw] = &parsed.protobuf.stmts[..] else { return None };
        let (relation, others, where_clause, with) = match raw.stmt.as_deref()?.node.as_ref()? {
            N::DeleteStmt(d) => {
                (d.relation.clone()?, d.using_clause.clone(), d.where_clause.clone(), d.with_clause.clone())
            }
            N::UpdateStmt(u) => {
                (u.relation.clone()?, u.from_clause.clone(), u.where_clause.clone(), u.with_clause.clone())
            }
            _ => return None,
        };
        if let Some(w) = &with {
            let plain = w.ctes.iter().all(|c| match c.node.as_ref() {
                Some(N::CommonTableExpr(c)) => {
                    c.ctename != relation.relname
                        && matches!(c.ctequery.as_ref().and_then(|q| q.node.as_ref()), Some(N::SelectStmt(_)))
                }
                _ => false,
            });
            if !plain {
                return None;
            }
        }
        let where_clause = if others.is_empty() {
            where_clause
        } else {
            let sub = select_one(others, where_clause);
            Some(Box::new(pb::Node {
                node: Some(N::SubLink(Box::new(pb::SubLink {
                    sub_link_type: pb::SubLinkType::ExistsSublink as i32,
                    subselect: Some(Box::new(pb::Node { node: Some(N::SelectStmt(Box::new(sub))) })),
                    location: -1,
                    ..Default::default()
                }))),
            }))
        };
        let mut select = select_one(vec![pb::Node { node: Some(N::RangeVar(relation)) }], where_clause);
        select.limit_count = Some(Box::new(int(bound)));
        select.limit_option = pb::LimitOption::Count as i32;
        select.with_clause = with;
        let stmt = pb::RawStmt {
            stmt: Some(Box::new(pb::Node { node: Some(N::SelectStmt(Box::new(select))) })),
            stmt_location: 0,
            stmt_len: 0,
        };
        let tree = pb::ParseResult { version: parsed.protobuf.version, stmts: vec![stmt] };
        let inner = pg_query::deparse(&tree, Default::default()).ok()?;
        Some(format!("SELECT pg_catalog.count(*)::pg_catalog.text FROM ({inner}) AS blastwall_count"))
    })
}

/// The name of the statement and portal of a bounded count with the client's parameters.
const COUNT: &str = "__blastwall_count";

/// A bounded count with parameters, as Close/Parse/Bind/Execute/Close/Sync bound to the
/// client's own parameter types, formats and values: its Bind as the estimate took it
/// (`CheckPlan::estimate_msgs`). `None` when there is no such Bind.
fn count_messages(plan: &CheckPlan, count: &str) -> Option<bytes::Bytes> {
    use crate::wire::messages::{self, fe};
    let est = plan.estimate_msgs.as_deref()?;
    let mut framer = crate::wire::Framer::new(est.len() + 5);
    framer.buf_mut().extend_from_slice(est);
    let bind = loop {
        match framer.next_item(|_| true) {
            Ok(Some(crate::wire::Item::Frame(f))) if f.tag == fe::BIND => break f,
            Ok(Some(_)) => continue,
            _ => return None,
        }
    };
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&messages::close_statement(COUNT));
    out.extend_from_slice(&messages::parse_typed(COUNT, count, &plan.param_types));
    out.extend_from_slice(&messages::rebind(&bind, COUNT).ok()?);
    out.extend_from_slice(&messages::execute_close_sync(COUNT));
    Some(out.freeze())
}

/// Whether a text refers to parameters (`$1`).
fn has_params(sql: &str) -> bool {
    sql.as_bytes().windows(2).any(|w| w[0] == b'$' && w[1].is_ascii_digit())
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
    let msgs = if has_params(sql) {
        match count_messages(plan, &count) {
            Some(m) => m,
            None => return Ok(false),
        }
    } else {
        super::own::messages(&count).freeze()
    };
    let opened = b.query("SAVEPOINT blastwall_count").await?;
    if opened.error.is_some() {
        return Ok(false);
    }
    b.send(&msgs).await?;
    let a = b.answer().await?;
    b.query("ROLLBACK TO SAVEPOINT blastwall_count; RELEASE SAVEPOINT blastwall_count").await?;
    let n = a.rows.first().and_then(|r| r.first()).and_then(|v| v.as_deref()).and_then(|v| v.parse::<u64>().ok());
    Ok(a.error.is_none() && n.is_some_and(|n| n <= limit))
}

#[cfg(test)]
mod tests {
    use super::bounded_count_sql;

    #[test]
    fn the_estimate_is_the_rows_the_write_is_fed() {
        let json = r#"[{"Plan": {"Node Type": "ModifyTable", "Operation": "Delete", "Schema": "public",
            "Relation Name": "big", "Plan Rows": 0, "Plans": [
              {"Node Type": "Result", "Parent Relationship": "InitPlan", "Plan Rows": 1},
              {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Plan Rows": 3333}]}}]"#;
        assert_eq!(super::estimates(json), vec![("public".into(), "big".into(), true, 3333.0)]);
        // An INSERT's rows are no UPDATE's; an upsert's may be.
        let insert = |conflict: &str| {
            format!(
                r#"[{{"Plan": {{"Node Type": "ModifyTable", "Operation": "Insert", "Schema": "public",
                "Relation Name": "users", {conflict} "Plans": [
                  {{"Node Type": "Function Scan", "Parent Relationship": "Outer", "Plan Rows": 5000}}]}}}}]"#
            )
        };
        assert_eq!(super::estimates(&insert("")), vec![]);
        let upsert = super::estimates(&insert(r#""Conflict Resolution": "UPDATE","#));
        assert_eq!(upsert, vec![("public".into(), "users".into(), false, 5000.0)]);
        assert_eq!(super::estimates(&insert(r#""Conflict Resolution": "NOTHING","#)), vec![]);
    }

    #[test]
    fn the_bounded_count_is_built_from_the_tree() {
        let sql = bounded_count_sql("DELETE FROM public.big b WHERE b.id > 0 -- trailing\n", 5).unwrap();
        assert_eq!(
            sql,
            "SELECT pg_catalog.count(*)::pg_catalog.text FROM (SELECT 1 FROM public.big b WHERE b.id > 0 LIMIT 6) AS blastwall_count"
        );
        let sql = bounded_count_sql("UPDATE t SET a = 1 WHERE note = 'it''s' /* x */", 9).unwrap();
        assert!(sql.contains("WHERE note = 'it''s' LIMIT 10)"), "{sql}");
        // Other relations: each target row once, by EXISTS.
        let sql = bounded_count_sql("DELETE FROM t USING u WHERE t.a = u.a AND u.b > 1", 5).unwrap();
        assert!(
            sql.contains("SELECT 1 FROM t WHERE EXISTS (SELECT 1 FROM u WHERE t.a = u.a AND u.b > 1) LIMIT 6"),
            "{sql}"
        );
        let sql = bounded_count_sql("UPDATE t SET a = 1 FROM u, v WHERE t.a = u.a", 5).unwrap();
        assert!(sql.contains("FROM t WHERE EXISTS (SELECT 1 FROM u, v WHERE t.a = u.a) LIMIT 6"), "{sql}");
        let sql = bounded_count_sql("WITH x AS (SELECT 1 AS a) DELETE FROM t WHERE a IN (SELECT a FROM x)", 5).unwrap();
        assert!(
            sql.contains("(WITH x AS (SELECT 1 AS a) SELECT 1 FROM t WHERE a IN (SELECT a FROM x) LIMIT 6)"),
            "{sql}"
        );
        let sql = bounded_count_sql("DELETE FROM t WHERE a > $1", 5).unwrap();
        assert!(sql.contains("WHERE a > $1 LIMIT 6"), "{sql}");
        for no in [
            "WITH x AS (DELETE FROM u RETURNING 1) DELETE FROM t WHERE a > 0",
            "WITH t AS (SELECT 1 AS a) DELETE FROM t WHERE a > 0",
            "DELETE FROM t WHERE a = 'x\\'",
            "DELETE FROM t WHERE a > 0; DELETE FROM u WHERE a > 0",
            "SELECT 1",
        ] {
            assert_eq!(bounded_count_sql(no, 5), None, "{no}");
        }
    }
}
