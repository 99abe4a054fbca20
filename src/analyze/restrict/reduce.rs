//! When a read of the target's relation is reduced to one value (`id = (SELECT max(id) FROM
//! t)`), and when what looks reduced is still one value per row: a window, an aggregate that
//! collects the rows, one under a GROUP BY of what it reads (`GROUP BY id`), or one in a
//! subquery correlated with a read of the relation outside it (`(SELECT max(y) FROM (VALUES
//! (m.id)) v(y))` is `m.id` again, once per row of `m`).
//!
//! Owns: those tests. Does not own: where they are asked (`restrict::deps`).

use super::{deps, from_names, Cx, Deps, Mirror};
use crate::analyze::children::each_child;
use crate::analyze::nodes::{items, opt, sval};
use pg_query::protobuf as pb;
use pg_query::NodeRef as R;

/// An aggregate whose value is one scalar over the rows it reads (`max`, `count`, `sum`): the
/// built-in ones by name, unqualified or in `pg_catalog`. Not a window (one value per row),
/// not an aggregate that collects the rows (`array_agg`, `string_agg`, `json_agg`: `unnest`
/// gives them back), not one of another schema (it may be anything).
pub(super) fn reduction(f: &pb::FuncCall) -> bool {
    const SCALAR: &[&str] = &[
        "any_value",
        "avg",
        "bit_and",
        "bit_or",
        "bit_xor",
        "bool_and",
        "bool_or",
        "count",
        "every",
        "max",
        "min",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "sum",
        "var_pop",
        "var_samp",
        "variance",
    ];
    let mut name = f.funcname.iter().map(sval);
    let scalar = match (name.next(), name.next(), name.next()) {
        (Some(Some(n)), None, None) | (Some(Some("pg_catalog")), Some(Some(n)), None) => SCALAR.contains(&n),
        _ => false,
    };
    scalar && f.over.is_none()
}

/// What a GROUP BY's expressions read of mirrors. A position (`GROUP BY 1`) may be any of the
/// output's expressions: taken as any column.
pub(super) fn groups(list: &[pb::Node], cx: Cx<'_>) -> Deps {
    let mut g = Deps::default();
    for x in items(list) {
        g.mirror_any |= matches!(x, R::AConst(_));
        deps(x, cx, &mut g);
    }
    g
}

/// Whether groups made of `g` may hold one row each of what an aggregate reads (`d`): they
/// are made of one of its columns, of any, or of a system column that tells rows apart.
pub(super) fn per_row(g: &Deps, d: &Deps) -> bool {
    const SYSTEM: [&str; 6] = ["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"];
    g.mirror_any
        || d.mirror_any
        || !g.mirror.is_disjoint(&d.mirror)
        || g.mirror.iter().any(|c| SYSTEM.contains(&c.as_str()))
}

/// Whether a SELECT reads a read of the target's relation from outside it (a correlated
/// subquery): then its aggregates are one value per outer row, not one value. An unqualified
/// name there is its own FROM's when that FROM reads the target's relation (the same columns);
/// otherwise it may be an outer read's.
pub(super) fn correlated(q: &pb::SelectStmt, cx: Cx<'_>) -> bool {
    if cx.mirrors.is_empty() && !cx.loose && !cx.loose_any {
        return false;
    }
    // Each judgement walks the subquery again (and those inside it): past the analysis's
    // bound, taken as correlated.
    if cx.budget.get() >= super::mirror::JUDGEMENTS {
        return true;
    }
    cx.budget.set(cx.budget.get() + 1);
    let names = from_names(q);
    let outer: Vec<Mirror> = cx.mirrors.iter().filter(|m| !names.contains(&m.name)).cloned().collect();
    let local = same_relation_in(q, cx);
    let c = Cx {
        mirrors: &outer,
        inner: cx.inner || !q.from_clause.is_empty(),
        loose: cx.loose && !local,
        loose_any: cx.loose_any && !local,
        grouped: None,
        // Its aggregates are walked into: what they read is what is asked.
        correlated: true,
        excluding: false,
        ..cx
    };
    let mut d = Deps::default();
    each_child(R::SelectStmt(q), &mut |x| deps(x, c, &mut d));
    d.mirror_any || !d.mirror.is_empty()
}

/// Whether a SELECT's own FROM names the target's relation (at any join depth).
fn same_relation_in(q: &pb::SelectStmt, cx: Cx<'_>) -> bool {
    fn walk(v: R<'_>, cx: Cx<'_>) -> bool {
        match v {
            R::RangeVar(r) => {
                r.relname == cx.t.relation
                    && (r.schemaname.is_empty() || cx.t.schema.as_deref().is_none_or(|s| s == r.schemaname))
            }
            R::RangeTableSample(s) => opt(&s.relation).is_some_and(|n| walk(n, cx)),
            R::JoinExpr(j) => [opt(&j.larg), opt(&j.rarg)].into_iter().flatten().any(|n| walk(n, cx)),
            _ => false,
        }
    }
    items(&q.from_clause).any(|f| walk(f, cx))
}
