//! The catalog queries of name resolution (`super`), on a client's own session: every
//! function, operator and type qualified with `pg_catalog`, every string an `E''` literal; and
//! reading a view's definition into its column names.
//!
//! Owns: that SQL text, and the view definition's reading. Does not own: the answers' meaning
//! (`super`).

use super::quote;
use crate::policy::Policy;

/// `OPERATOR(pg_catalog.=)`, for queries on a client's session.
const EQ: &str = " OPERATOR(pg_catalog.=) ";

/// The identity query: for every policy table (`remembered`: the OID first seen under its
/// name, 0 when none), rows `t, index, oid, relname` for the relation its name resolves to now
/// and the remembered one if it still exists, and `v, index, oid, relname` for each view
/// whose rule reads one of them.
pub fn identities_query(policy: &Policy, remembered: &dyn Fn(&str, &str) -> Option<u32>) -> String {
    let values: Vec<String> = policy
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "({i}, {}::pg_catalog.text, {}::pg_catalog.oid)",
                crate::catalog::literal(&quote(&t.schema, &t.name)),
                remembered(&t.schema, &t.name).unwrap_or(0)
            )
        })
        .collect();
    if values.is_empty() {
        return "SELECT 'none'::pg_catalog.text WHERE false".into();
    }
    format!(
        "WITH p(i, q, r) AS (VALUES {values}), \
         t AS (SELECT DISTINCT p.i, c.oid, c.relname FROM p JOIN pg_catalog.pg_class c \
           ON c.oid{EQ}pg_catalog.to_regclass(p.q)::pg_catalog.oid OR c.oid{EQ}p.r) \
         SELECT 't'::pg_catalog.text, t.i::pg_catalog.text, t.oid::pg_catalog.text, t.relname::pg_catalog.text FROM t \
         UNION ALL \
         SELECT DISTINCT 'v'::pg_catalog.text, t.i::pg_catalog.text, v.oid::pg_catalog.text, v.relname::pg_catalog.text \
         FROM t JOIN pg_catalog.pg_depend d ON d.refclassid{EQ}'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.refobjid{EQ}t.oid AND d.classid{EQ}'pg_catalog.pg_rewrite'::pg_catalog.regclass \
         JOIN pg_catalog.pg_rewrite w ON w.oid{EQ}d.objid \
         JOIN pg_catalog.pg_class v ON v.oid{EQ}w.ev_class AND v.relkind{EQ}'v'::pg_catalog.\"char\" \
           AND v.oid OPERATOR(pg_catalog.<>) t.oid",
        values = values.join(", ")
    )
}

/// The resolution query for names written by a session (keys as [`key`] makes them): rows
/// `ordinal, oid, view definition (views only), the relations the view's rule reads, schema,
/// name`.
pub fn relations_query(keys: &[String]) -> String {
    let list = keys.iter().map(|k| crate::catalog::literal(k)).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT x.i::pg_catalog.text, c.oid::pg_catalog.text, \
           CASE WHEN c.relkind{EQ}'v'::pg_catalog.\"char\" THEN pg_catalog.pg_get_viewdef(c.oid) END, \
           (SELECT pg_catalog.string_agg(DISTINCT d.refobjid::pg_catalog.text, ',') \
            FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_depend d \
              ON d.classid{EQ}'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid{EQ}w.oid \
              AND d.refclassid{EQ}'pg_catalog.pg_class'::pg_catalog.regclass \
            WHERE w.ev_class{EQ}c.oid AND d.refobjid OPERATOR(pg_catalog.<>) c.oid), \
           (SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_namespace n WHERE n.oid{EQ}c.relnamespace), \
           c.relname::pg_catalog.text \
         FROM pg_catalog.unnest(ARRAY[{list}]::pg_catalog.text[]) WITH ORDINALITY x(n, i) \
         LEFT JOIN pg_catalog.pg_class c ON c.oid{EQ}CASE WHEN pg_catalog.strpos(x.n, E'\\002'){GT}0 \
           THEN ({in_path}) ELSE pg_catalog.to_regclass(x.n)::pg_catalog.oid END",
        in_path = in_path("x.n"),
    )
}

/// `OPERATOR(pg_catalog.>)`.
const GT: &str = " OPERATOR(pg_catalog.>) ";

/// The OID a key `path\u{2}name` (see `super::effective_key`) resolves to, as the server
/// resolves an unqualified relation name under that `search_path`: the session's temporary
/// schema first and `pg_catalog` next unless the path lists them, then the path's schemas in
/// order (`$user` the role's, `pg_temp` the session's temporary schema), skipping those that do
/// not exist or lack USAGE; the first schema holding a relation of that name.
fn in_path(k: &str) -> String {
    let path = format!("pg_catalog.string_to_array(pg_catalog.split_part({k}, E'\\002', 1), E'\\001')");
    let name = format!("pg_catalog.split_part({k}, E'\\002', 2)");
    format!(
        "WITH listed AS (SELECT n.oid AS ns, s.o FROM pg_catalog.unnest({path}) WITH ORDINALITY s(nsp, o) \
           JOIN pg_catalog.pg_namespace n ON n.nspname{EQ}CASE \
             WHEN s.nsp{EQ}'$user' THEN CURRENT_USER::pg_catalog.text \
             WHEN s.nsp{EQ}'pg_temp' THEN (SELECT t.nspname::pg_catalog.text FROM pg_catalog.pg_namespace t \
               WHERE t.oid{EQ}pg_catalog.pg_my_temp_schema()) \
             ELSE s.nsp END \
           WHERE pg_catalog.has_schema_privilege(n.oid, 'USAGE')), \
         searched AS (SELECT ns, o FROM listed \
           UNION ALL SELECT 'pg_catalog'::pg_catalog.regnamespace::pg_catalog.oid, -1 \
             WHERE NOT EXISTS (SELECT 1 FROM listed WHERE listed.ns{EQ}'pg_catalog'::pg_catalog.regnamespace::pg_catalog.oid) \
           UNION ALL SELECT pg_catalog.pg_my_temp_schema(), -2 \
             WHERE pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0::pg_catalog.oid \
             AND NOT EXISTS (SELECT 1 FROM listed WHERE listed.ns{EQ}pg_catalog.pg_my_temp_schema())) \
         SELECT r.oid FROM searched JOIN pg_catalog.pg_class r ON r.relnamespace{EQ}searched.ns \
           AND r.relname{EQ}{name}::pg_catalog.name ORDER BY searched.o LIMIT 1"
    )
}

/// The columns of a constraint of the relation `key` resolves to, in key order.
pub fn constraint_query(key: &str, constraint: &str) -> String {
    format!(
        "SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_constraint k \
         CROSS JOIN LATERAL pg_catalog.unnest(k.conkey) WITH ORDINALITY u(n, o) \
         JOIN pg_catalog.pg_attribute a ON a.attrelid{EQ}k.conrelid AND a.attnum{EQ}u.n \
         WHERE k.conrelid{EQ}pg_catalog.to_regclass({})::pg_catalog.oid AND k.conname{EQ}{}::pg_catalog.name \
         ORDER BY u.o",
        crate::catalog::literal(key),
        crate::catalog::literal(constraint)
    )
}

/// A view's plain columns from its definition: (view column, base column).
pub fn view_columns(def: &str) -> Vec<(String, String)> {
    use pg_query::protobuf::node::Node;
    let Ok(tree) = crate::analyze::budget::parse(def, 0) else { return Vec::new() };
    let Some(Node::SelectStmt(s)) =
        tree.protobuf.stmts.first().and_then(|s| s.stmt.as_ref()).and_then(|n| n.node.as_ref())
    else {
        return Vec::new();
    };
    s.target_list
        .iter()
        .filter_map(|t| {
            let Some(Node::ResTarget(rt)) = t.node.as_ref() else { return None };
            let Some(Node::ColumnRef(c)) = rt.val.as_ref().and_then(|v| v.node.as_ref()) else { return None };
            let Some(Node::String(col)) = c.fields.last().and_then(|f| f.node.as_ref()) else { return None };
            let name = if rt.name.is_empty() { col.sval.clone() } else { rt.name.clone() };
            Some((name, col.sval.clone()))
        })
        .collect()
}

/// The SQL of a question this module answers.
pub fn question_sql(
    q: &crate::catalog::Question,
    policy: &Policy,
    remembered: &dyn Fn(&str, &str) -> Option<u32>,
) -> Option<String> {
    use crate::catalog::Question;
    match q {
        Question::Identities => Some(identities_query(policy, remembered)),
        Question::Relations(keys) => Some(relations_query(keys)),
        Question::Constraint { relation, constraint } => Some(constraint_query(relation, constraint)),
        _ => None,
    }
}
