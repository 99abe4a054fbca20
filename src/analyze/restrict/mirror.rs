//! The target's relation read again in its own predicate — a subquery over it, a self-join, a
//! derived table or `WITH` over it — and whether that read is restricted on its own (its
//! WHERE, an inner join's ON, a LIMIT, a HAVING). Unrestricted, its rows are the target's rows
//! (a [`Mirror`]): comparing the target's column with the same column of it restricts nothing.
//!
//! Owns: finding those reads and judging their restriction (with `restrict`'s rules, the read
//! taken as the target).

use super::reduce::reduction;
use super::{deps_of, from_names, pred, Cx};
use crate::analyze::children::each_child;
use crate::analyze::nodes::{items, literal_read, opt};
use crate::analyze::predicate::Target;
use pg_query::protobuf as pb;
use pg_query::NodeRef as R;
use std::cell::Cell;
use std::collections::BTreeSet;

/// A relation in a FROM that reads the target's relation again, unrestricted: its rows are the
/// target's rows, so comparing the target's column with the same column of it restricts
/// nothing. `any`: its columns are not the target's by name (a derived table, a `WITH`, column
/// aliases), so each may be any of the target's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub name: String,
    pub any: bool,
}

/// How often one analysis may judge whether a relation read again is restricted (nested
/// subqueries over the same relation are judged once per enclosing level); past it, each one
/// counts as unrestricted.
pub(super) const JUDGEMENTS: u32 = 256;

/// The entries of a write's `FROM`/`USING` (MERGE's source) that read its target's relation
/// again, less those an inner join's ON restricts ([`Target::selves`]).
pub(in crate::analyze) fn selves<'a>(from: impl Iterator<Item = R<'a>>, t: &Target) -> Vec<Mirror> {
    let budget = Cell::new(0);
    let cx = Cx::new(t, &budget);
    let mut out = Vec::new();
    for f in from {
        occurrences(f, cx, true, &mut out);
    }
    out
}

/// The names of a write's `WITH` queries that read its target's relation unrestricted
/// ([`Target::self_ctes`]); a later one may read an earlier one.
pub(in crate::analyze) fn mirroring_ctes(ctes: &[pb::Node], t: &Target) -> Vec<String> {
    let mut t = t.clone();
    for c in items(ctes) {
        let R::CommonTableExpr(c) = c else { continue };
        let Some(q) = opt(&c.ctequery) else { continue };
        let budget = Cell::new(0);
        let cx = Cx { inner: true, ..Cx::new(&t, &budget) };
        if reads_unrestricted(q, cx) {
            t.self_ctes.push(c.ctename.clone());
        }
    }
    t.self_ctes
}

/// Whether a query's output may carry the target's relation's columns unrestricted, or
/// reduced: an aggregate's value given a name (a derived table's or a `WITH`'s column) may be
/// expanded again where it is read (`generate_series(s.lo, s.hi)`, `unnest(s.ids)`), which
/// blastwall does not follow through the name.
fn reads_unrestricted(q: R<'_>, cx: Cx<'_>) -> bool {
    let d = deps_of(q, Cx { inner: true, grouped: None, ..cx });
    d.mirror_any || !d.mirror.is_empty() || d.reduced
}

/// Whether a derived table reads the target's row (an outer reference: `(SELECT w.id AS k)
/// m`, `(VALUES (s.id)) v(x)`): its columns may be the row's own values.
fn reads_row(q: R<'_>, cx: Cx<'_>) -> bool {
    deps_of(q, Cx { inner: true, grouped: None, ..cx }).row
}

/// The name a function in a FROM without an alias goes by: its own (`FROM
/// generate_series(1, 3)` is `generate_series`).
fn first_function_name(r: &pb::RangeFunction) -> Option<String> {
    let call = items(&r.functions).find_map(|f| match f {
        R::List(l) => items(&l.items).next(),
        other => Some(other),
    })?;
    match call {
        R::FuncCall(c) => c.funcname.last().and_then(crate::analyze::nodes::sval).map(str::to_string),
        _ => None,
    }
}

/// Collects the FROM entries under `f` that read the target's relation again, less those an
/// inner join's ON restricts. `others`: the FROM has other relations (unqualified names may be
/// theirs).
fn occurrences(f: R<'_>, cx: Cx<'_>, others: bool, out: &mut Vec<Mirror>) {
    let t = cx.t;
    match f {
        R::RangeVar(r) => {
            let same = r.relname == t.relation
                && (r.schemaname.is_empty() || t.schema.as_deref().is_none_or(|s| s == r.schemaname));
            let cte = r.schemaname.is_empty() && t.self_ctes.contains(&r.relname);
            if same || cte {
                let renamed = r.alias.as_ref().is_some_and(|a| !a.colnames.is_empty());
                let name = r.alias.as_ref().map_or(&r.relname, |a| &a.aliasname).clone();
                out.push(Mirror { name, any: cte || renamed });
            }
        }
        // A sample of the relation may be all of it (`TABLESAMPLE SYSTEM (100)`).
        R::RangeTableSample(s) => {
            if let Some(r) = opt(&s.relation) {
                occurrences(r, cx, others, out);
            }
        }
        R::RangeSubselect(r) => {
            if let (Some(q), Some(a)) = (opt(&r.subquery), r.alias.as_ref()) {
                // A LATERAL one may read the relations before it (`FROM t y, LATERAL (SELECT
                // y.id) l(k)`): those found are mirrors there too.
                let mut beside = cx.mirrors.to_vec();
                if r.lateral {
                    beside.extend(out.iter().cloned());
                }
                let cx = Cx {
                    mirrors: &beside,
                    loose: cx.loose || r.lateral && !out.is_empty(),
                    loose_any: cx.loose_any || r.lateral && out.iter().any(|m| m.any),
                    ..cx
                };
                if reads_unrestricted(q, cx) || reads_row(q, cx) {
                    out.push(Mirror { name: a.aliasname.clone(), any: true });
                }
            }
        }
        // A function of the row (`generate_series(c.id, c.id) g`, `unnest(ARRAY[c.id])`)
        // gives the row's values back: looked up in it, the row finds itself.
        R::RangeFunction(r) => {
            let name = match &r.alias {
                Some(a) => Some(a.aliasname.clone()),
                None => first_function_name(r),
            };
            if let Some(name) = name.filter(|_| deps_of(f, Cx { inner: true, ..cx }).row) {
                out.push(Mirror { name, any: true });
            }
        }
        R::JoinExpr(j) => {
            let mut inside = Vec::new();
            for x in [opt(&j.larg), opt(&j.rarg)].into_iter().flatten() {
                occurrences(x, cx, others, &mut inside);
            }
            if j.jointype == pb::JoinType::JoinInner as i32 {
                if let Some(q) = opt(&j.quals) {
                    let all = inside.clone();
                    inside.retain(|m| !restricted_by(q, m, &all, others, cx));
                }
            }
            match &j.alias {
                // The join's own name hides the names inside it.
                Some(a) if !inside.is_empty() => out.push(Mirror { name: a.aliasname.clone(), any: true }),
                _ => out.extend(inside),
            }
        }
        _ => {}
    }
}

/// Whether `w` restricts the rows of `m` (a relation read again): judged as if `m` were the
/// target, with the target and the other relations read again as mirrors of it.
pub(super) fn restricted_by(w: R<'_>, m: &Mirror, all: &[Mirror], others: bool, cx: Cx<'_>) -> bool {
    if cx.budget.get() >= JUDGEMENTS {
        return false;
    }
    cx.budget.set(cx.budget.get() + 1);
    let t = Target {
        qualifier: m.name.clone(),
        schema: None,
        others,
        beside: None,
        mine: BTreeSet::new(),
        relation: cx.t.relation.clone(),
        selves: Vec::new(),
        self_ctes: cx.t.self_ctes.clone(),
    };
    let mut mirrors: Vec<Mirror> = cx.mirrors.iter().chain(all).filter(|x| x.name != m.name).cloned().collect();
    if !cx.shadowed && cx.t.qualifier != m.name {
        mirrors.push(Mirror { name: cx.t.qualifier.clone(), any: false });
    }
    let inner = Cx { mirrors: &mirrors, row_any: m.any, ..Cx::new(&t, cx.budget) };
    pred(w, inner, true)
}

/// A subquery's scope: the mirrors its names may mean (the outer ones it does not hide, and
/// its own FROM's unrestricted reads of the target's relation), whether it hides the
/// target's name, and whether an unqualified name in it may be a mirror's column (of that
/// name, or any).
pub(super) fn scope(q: &pb::SelectStmt, cx: Cx<'_>) -> (Vec<Mirror>, bool, bool, bool) {
    let names = from_names(q);
    let shadowed = cx.shadowed || names.contains(&cx.t.qualifier);
    let mut mirrors: Vec<Mirror> = cx.mirrors.iter().filter(|m| !names.contains(&m.name)).cloned().collect();
    let here = Cx { shadowed, mirrors: &mirrors, ..cx };
    let mut found = Vec::new();
    let others = q.from_clause.len() > 1 || items(&q.from_clause).any(|f| matches!(f, R::JoinExpr(_)));
    for f in items(&q.from_clause) {
        occurrences(f, here, others, &mut found);
    }
    if opt(&q.having_clause).is_some_and(chooses_groups) || limited(q) {
        found.clear();
    }
    if let Some(w) = opt(&q.where_clause) {
        let all = found.clone();
        found.retain(|m| !restricted_by(w, m, &all, others, here));
    }
    let loose = cx.loose || !found.is_empty();
    let loose_any = cx.loose_any || found.iter().any(|m| m.any);
    mirrors.extend(found);
    (mirrors, shadowed, loose, loose_any)
}

/// Whether a HAVING chooses among the groups: through `AND` one term, through `OR` every
/// branch, must read a group (a column or an aggregate); `HAVING true` or `HAVING 1 = 1`
/// keeps every group.
fn chooses_groups(h: R<'_>) -> bool {
    fn reads_group(e: R<'_>) -> bool {
        if matches!(e, R::ColumnRef(_)) || matches!(e, R::FuncCall(f) if f.agg_star || reduction(f)) {
            return true;
        }
        let mut found = false;
        each_child(e, &mut |c| found = found || reads_group(c));
        found
    }
    match h {
        R::BoolExpr(b) if b.boolop == pb::BoolExprType::AndExpr as i32 => items(&b.args).any(chooses_groups),
        R::BoolExpr(b) => items(&b.args).all(chooses_groups),
        _ => reads_group(h),
    }
}

/// A LIMIT of a constant count or a parameter (not `ALL`, `NULL`, `NULL::int` or an expression
/// that may be null, nor `WITH TIES`, which takes every row tied with the last: `ORDER BY
/// x * 0 FETCH FIRST 1 ROW WITH TIES` is all of them).
fn limited(q: &pb::SelectStmt) -> bool {
    fn count(e: R<'_>) -> bool {
        match e {
            R::AConst(c) => {
                literal_read();
                !c.isnull
            }
            R::TypeCast(t) => opt(&t.arg).is_some_and(count),
            // A parameter, as `id = $1` is: a client's batch size (`LIMIT $1 FOR UPDATE SKIP
            // LOCKED`); bound to NULL, it is a limit of every row, as `LIMIT 1e9` is.
            R::ParamRef(_) => true,
            _ => false,
        }
    }
    q.limit_option != pb::LimitOption::WithTies as i32 && opt(&q.limit_count).is_some_and(count)
}
