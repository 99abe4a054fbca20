//! Whether a DELETE/UPDATE/MERGE predicate restricts the target's rows — what `require-where`
//! asks for. Naming a column is not enough: `WHERE t.id = t.id`, `WHERE true OR id = 5`,
//! `WHERE coalesce(x, x) = coalesce(x, x)` or `WHERE t IS NOT NULL` name columns and match
//! every row.
//!
//! The rule: a predicate restricts when it compares something of the target's row with
//! something independent of that row (a constant, a parameter, another relation's column, an
//! uncorrelated subquery) — `a = 5`, `price * qty > $1`, `name LIKE 'x%'`, `o.batch_id = b.id`,
//! `id IN (SELECT …)`, a boolean column, `starts_with(name, 'x')`, `EXISTS (… WHERE o.t_id =
//! t.id)`, a scalar subquery that looks the row up so (`(SELECT count(*) FROM o WHERE o.t_id =
//! t.id) = 0`) — and through `AND` (one restricting conjunct), `OR` (every branch restricting, and
//! no two branches complementary on the same columns: `a < 5 OR a >= 5`), `NOT` (of a
//! restricting comparison), `IS TRUE`/`IS FALSE`. Anything else fails closed: both sides of a
//! comparison depending on the row, a comparison inside the row's side (`(id = id) = true`,
//! `coalesce(id = $1, true)`), `IS NOT TRUE`/`IS UNKNOWN`, CASE, a whole-row `IS NOT NULL`, a
//! name that may be another relation's, and a comparison with the target's relation read
//! again without a restriction of its own (a [`Mirror`]: `id IN (SELECT id FROM t)`, `UPDATE t
//! x … FROM t y WHERE x.id = y.id`, `EXISTS (SELECT 1 FROM t y WHERE y.id = t.id)`, a derived
//! table or `WITH` over `t`) on a column the row's side names too — its rows are the target's
//! rows. It is restricted by its own WHERE, an inner join's ON, a LIMIT or a HAVING (`id IN
//! (SELECT id FROM t WHERE created < $1)`); a built-in aggregate of one value over it (`id =
//! (SELECT max(id) FROM t)`) is one value — not one that collects the rows (`array_agg`), a
//! window, a GROUP BY's aggregate, or a function of one (`unnest`, `generate_series` give the
//! rows back). `col IS NOT NULL` on a plain column counts (blastwall
//! does not know which columns are `NOT NULL`; a soft-delete purge `WHERE deleted_at IS NOT
//! NULL` is an ordinary predicate). A comparison whose value is always true (`abs(id) >= 0`)
//! is not found: that is the data's business, and row limits apply.
//!
//! Owns: that classification. Reads no literal's value (the shape cache may share it) but
//! whether a LIMIT is `ALL`/`NULL` (recorded as a literal read).

use super::children::each_child;
use super::nodes::{items, opt, sval};
use super::predicate::Target;
use pg_query::protobuf as pb;
use pg_query::NodeRef as R;
use std::cell::Cell;
use std::collections::BTreeSet;

mod cover;
mod mirror;
mod reduce;

use cover::{all_of_maybe_empty, column_names, complementary, excludes_nothing};
pub use mirror::Mirror;
pub(super) use mirror::{mirroring_ctes, selves};
use mirror::{restricted_by, scope};
use reduce::{correlated, groups, per_row, reduction};

/// Whether `w` (a WHERE, or a MERGE's join or WHEN condition) restricts the target's rows.
pub(super) fn restricts(w: R<'_>, t: &Target) -> bool {
    restricts_any(&[w], t)
}

/// Whether one of `ws` (a MERGE's join and WHEN conditions, which together choose the rows)
/// restricts the target's rows; a self-join is restricted by any of them.
pub(super) fn restricts_any(ws: &[R<'_>], t: &Target) -> bool {
    let budget = Cell::new(0);
    let cx = Cx::new(t, &budget);
    // The statement's self-joins are mirrors unless a condition restricts them.
    let mirrors: Vec<Mirror> =
        t.selves.iter().filter(|m| !ws.iter().any(|w| restricted_by(*w, m, &t.selves, true, cx))).cloned().collect();
    ws.iter().any(|w| pred(*w, Cx { mirrors: &mirrors, ..cx }, true))
}

/// Where an expression stands: `inner`, inside a subquery with a FROM of its own (its
/// unqualified names are that FROM's: an application's `user_id IN (SELECT id FROM users WHERE
/// banned)`); `shadowed`, inside one whose FROM shows a relation under the target's name (then
/// that name means the inner relation); `mirrors`, the relations its names may mean that read
/// the target's relation again, unrestricted; `loose`, an unqualified name may be a mirror's
/// column.
#[derive(Clone, Copy)]
struct Cx<'t> {
    t: &'t Target,
    inner: bool,
    shadowed: bool,
    mirrors: &'t [Mirror],
    loose: bool,
    /// An unqualified name may be any column of the target's (a mirror with `any`).
    loose_any: bool,
    /// The target stands for a mirror with `any` (`restricted_by`): its columns' names say
    /// nothing of which of the relation's they are, so any mirror's column may be the same.
    row_any: bool,
    /// Inside a SELECT with a GROUP BY, what its groups are made of: an aggregate there is one
    /// value per group, and a group of the column it reads is one value of it (`SELECT max(id)
    /// FROM t GROUP BY id` is every id).
    grouped: Option<&'t Deps>,
    /// Inside a SELECT that reads a read of the target's relation from outside it: its
    /// aggregates are one value per outer row (`reduce::correlated`).
    correlated: bool,
    /// Inside a subquery whose values are excluded (`id NOT IN (SELECT min(id) FROM t GROUP
    /// BY email)`, keeping one row per email): a group's aggregate, even one per row, matches
    /// no row the rest of the predicate did not.
    excluding: bool,
    budget: &'t Cell<u32>,
}

impl<'t> Cx<'t> {
    /// Where a predicate of the target's own level stands: nothing read again yet.
    fn new(t: &'t Target, budget: &'t Cell<u32>) -> Cx<'t> {
        Cx {
            t,
            inner: false,
            shadowed: false,
            mirrors: &[],
            loose: false,
            loose_any: false,
            grouped: None,
            correlated: false,
            row_any: false,
            excluding: false,
            budget,
        }
    }
}

/// What an operand depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Nothing of the target's row: the same for every row.
    Independent,
    /// The target's row (its columns or the whole row), and no comparison inside.
    Row,
    /// A name that may be the target's, or a comparison inside the row's side.
    Unsure,
}

#[derive(Default)]
struct Deps {
    row: bool,
    whole_row: bool,
    unsure: bool,
    /// Columns of mirrors (the target's relation read again), by name.
    mirror: BTreeSet<String>,
    /// A mirror's whole row, or a column that may be any of the target's.
    mirror_any: bool,
    /// A mirror's columns read through an aggregate ([`reduction`]): one value, unless a
    /// function expands it again (`generate_series(min(id), max(id))`).
    reduced: bool,
    /// Columns of other relations, by name: a comparison whose two sides read the same one
    /// (`c.id = w.session_id * 0 + c.id`) may hold whatever the row.
    others: BTreeSet<String>,
}

impl Deps {
    fn merge(&mut self, d: Deps) {
        self.row |= d.row;
        self.whole_row |= d.whole_row;
        self.unsure |= d.unsure;
        self.mirror.extend(d.mirror);
        self.mirror_any |= d.mirror_any;
        self.reduced |= d.reduced;
        self.others.extend(d.others);
    }
}

/// Whether `x` is independent of the target's row `row` is compared with: it depends on no
/// name that may be the row's, and reads no mirror's column that `row` names too.
fn independent_of(x: R<'_>, row: R<'_>, cx: Cx<'_>) -> bool {
    let d = deps_of(x, cx);
    if d.unsure || d.row || d.mirror_any {
        return false;
    }
    let r = deps_of(row, cx);
    if !d.others.is_disjoint(&r.others) {
        return false;
    }
    if d.mirror.is_empty() {
        return true;
    }
    if cx.row_any {
        return false;
    }
    let mut cols = BTreeSet::new();
    column_names(row, &mut cols);
    !r.whole_row && d.mirror.is_disjoint(&cols)
}

fn side(e: R<'_>, cx: Cx<'_>) -> Side {
    let d = deps_of(e, cx);
    if d.unsure {
        Side::Unsure
    } else if !d.row {
        Side::Independent
    } else if has_comparison(e) && !lookup(e, cx) {
        Side::Unsure
    } else {
        Side::Row
    }
}

/// A scalar subquery that looks up the target's row in another relation (`(SELECT count(*)
/// FROM messages m WHERE m.session_id = c.id) = 0`): its comparisons choose the other
/// relation's rows by the row, as an `EXISTS`'s do, so its value is something of the row.
/// Its output holds no comparison; its WHERE must restrict the row ([`correlates`]).
fn lookup(e: R<'_>, cx: Cx<'_>) -> bool {
    match e {
        R::TypeCast(t) => opt(&t.arg).is_some_and(|a| lookup(a, cx)),
        // `COALESCE((SELECT max(m.id) FROM m WHERE m.session_id = c.id), 0)`: lookups, and
        // defaults independent of the row.
        R::CoalesceExpr(c) => {
            let plain = |a: R<'_>| !has_comparison(a) && side(a, cx) == Side::Independent;
            items(&c.args).any(|a| lookup(a, cx)) && items(&c.args).all(|a| plain(a) || lookup(a, cx))
        }
        R::SubLink(s) if s.sub_link_type == pb::SubLinkType::ExprSublink as i32 => match opt(&s.subselect) {
            Some(R::SelectStmt(q)) => {
                items(&q.target_list)
                    .all(|rt| matches!(rt, R::ResTarget(r) if !opt(&r.val).is_some_and(has_comparison)))
                    && correlates(q, cx, true)
            }
            _ => false,
        },
        _ => false,
    }
}

fn deps_of(e: R<'_>, cx: Cx<'_>) -> Deps {
    let mut d = Deps::default();
    deps(e, cx, &mut d);
    d
}

/// The relation names a SELECT's FROM shows (aliases, or relation names), at any join depth.
fn from_names(q: &pb::SelectStmt) -> Vec<String> {
    fn walk(v: R<'_>, out: &mut Vec<String>) {
        match v {
            R::RangeVar(r) => out.push(r.alias.as_ref().map_or_else(|| r.relname.clone(), |a| a.aliasname.clone())),
            R::RangeSubselect(r) => out.extend(r.alias.as_ref().map(|a| a.aliasname.clone())),
            R::RangeFunction(r) => out.extend(r.alias.as_ref().map(|a| a.aliasname.clone())),
            R::RangeTableSample(s) => {
                if let Some(r) = opt(&s.relation) {
                    walk(r, out);
                }
            }
            R::JoinExpr(j) => {
                for x in [opt(&j.larg), opt(&j.rarg)].into_iter().flatten() {
                    walk(x, out);
                }
                out.extend(j.alias.as_ref().map(|a| a.aliasname.clone()));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for f in items(&q.from_clause) {
        walk(f, &mut out);
    }
    out
}

fn deps(e: R<'_>, cx: Cx<'_>, out: &mut Deps) {
    match e {
        R::ColumnRef(c) => {
            let t = cx.t;
            let names: Vec<Option<&str>> = c.fields.iter().map(sval).collect();
            let mirror = |q: &Option<&str>| cx.mirrors.iter().find(|m| *q == Some(m.name.as_str()));
            if let [.., q, col] = names.as_slice() {
                if let Some(m) = mirror(q) {
                    match col {
                        Some(col) if !m.any => drop(out.mirror.insert(col.to_string())),
                        _ => out.mirror_any = true,
                    }
                    return;
                }
            }
            if let [q] = names.as_slice() {
                // A mirror's whole row (or a column of that name).
                out.mirror_any |= mirror(q).is_some();
            }
            let ours = |q: &Option<&str>| !cx.shadowed && *q == Some(t.qualifier.as_str());
            match names.as_slice() {
                // A bare name: a column, or the whole row when it is the target's name.
                [n] if ours(n) => {
                    out.row = true;
                    out.whole_row = true;
                }
                // Inside a subquery with a FROM: that FROM's, or a mirror's.
                [Some(n)] if cx.inner => {
                    if cx.loose {
                        out.mirror.insert(n.to_string());
                    }
                    out.mirror_any |= cx.loose_any;
                    out.others.insert(n.to_string());
                }
                [None] if cx.inner => out.mirror_any |= cx.loose,
                // Beside other relations, a name the catalog placed in the target alone
                // (`Target::mine`, `names::columns`) is the target's.
                [Some(n)] if t.others && t.mine.contains(*n) => out.row = true,
                [Some(_)] if t.others => out.unsure = true,
                [Some(_)] => out.row = true,
                [q, None] if ours(q) => {
                    out.row = true;
                    out.whole_row = true;
                }
                [q, Some(_)] if ours(q) => out.row = true,
                [s, q, rest] | [_, s, q, rest] if ours(q) && t.schema.as_deref().is_none_or(|ts| *s == Some(ts)) => {
                    out.row = true;
                    out.whole_row |= rest.is_none();
                }
                [.., Some(col)] => drop(out.others.insert(col.to_string())),
                _ => {}
            }
        }
        R::SelectStmt(q) => {
            let own = !q.from_clause.is_empty();
            let correlated = correlated(q, cx);
            let (mirrors, shadowed, loose, loose_any) = scope(q, cx);
            let cx = Cx {
                inner: cx.inner || own,
                shadowed,
                mirrors: &mirrors,
                loose,
                loose_any,
                grouped: None,
                correlated,
                ..cx
            };
            let groups = (!q.group_clause.is_empty()).then(|| groups(&q.group_clause, cx));
            let cx = Cx { grouped: groups.as_ref(), ..cx };
            each_child(e, &mut |c| deps(c, cx, out));
        }
        // A derived table's columns are read through its name: a mirror when it reads the
        // target's relation unrestricted, or a mirror beside it (`FROM t, LATERAL (SELECT id)
        // l(x)`) or outside (`scope`).
        R::RangeSubselect(r) => {
            // Not LATERAL, it cannot read the FROM it stands in: an unqualified name in it
            // outside a FROM of its own is an outer one's (`(VALUES (id)) v(y)` is the
            // target's `id`), taken as the row's.
            let cx = Cx { inner: cx.inner && r.lateral, loose: cx.loose && r.lateral, ..cx };
            let mut d = Deps::default();
            each_child(e, &mut |c| deps(c, cx, &mut d));
            out.row |= d.row;
            out.whole_row |= d.whole_row;
            out.unsure |= d.unsure;
            out.reduced |= d.reduced;
        }
        // A recursive WITH may walk a mirror one aggregate at a time (`SELECT (SELECT min(id)
        // FROM t WHERE id > r.i) FROM r`): every row again.
        R::WithClause(w) if w.recursive => {
            let mut d = Deps::default();
            each_child(e, &mut |c| deps(c, cx, &mut d));
            out.mirror_any |= d.reduced || d.mirror_any || !d.mirror.is_empty();
            out.merge(d);
        }
        // One value over a set (`SELECT max(id) FROM t`): not a mirror's row — unless the
        // groups are made of what it reads (`GROUP BY id`), and the values are not excluded.
        R::FuncCall(f) if reduction(f) => {
            let mut d = Deps::default();
            each_child(e, &mut |c| deps(c, cx, &mut d));
            if !cx.excluding && (cx.correlated || cx.grouped.is_some_and(|g| per_row(g, &d))) {
                out.merge(d);
            } else {
                out.row |= d.row;
                out.whole_row |= d.whole_row;
                out.unsure |= d.unsure;
                out.reduced |= d.reduced || d.mirror_any || !d.mirror.is_empty();
            }
        }
        // Any other call may return a set (`unnest`, `generate_series`) or be a window (one
        // value per row): what it is given of a mirror, even reduced, may be every row again.
        R::FuncCall(_) => {
            let mut d = Deps::default();
            each_child(e, &mut |c| deps(c, cx, &mut d));
            out.mirror_any |= d.reduced;
            out.merge(d);
        }
        _ => each_child(e, &mut |c| deps(c, cx, out)),
    }
}

/// Whether a predicate appears inside an expression (a comparison, a boolean combination, a
/// test, a CASE's condition, a subquery test): its truth would then depend on the row twice.
fn has_comparison(e: R<'_>) -> bool {
    let here = match e {
        R::BoolExpr(_) | R::NullTest(_) | R::BooleanTest(_) | R::CaseExpr(_) => true,
        R::SubLink(s) => s.sub_link_type != pb::SubLinkType::ExprSublink as i32,
        R::AExpr(a) => a.kind != pb::AExprKind::AexprOp as i32 || class_of_op(op_name(a)).is_some(),
        _ => false,
    };
    if here {
        return true;
    }
    let mut found = false;
    each_child(e, &mut |c| found = found || has_comparison(c));
    found
}

fn op_name(a: &pb::AExpr) -> &str {
    a.name.last().and_then(super::nodes::sval).unwrap_or("")
}

/// The family of a comparison operator and whether it is the positive member (`<` and `>`
/// are opposite members of `order`; `=` and `<>` of `eq`); `None`: not a comparison.
fn class_of_op(op: &str) -> Option<(&'static str, bool)> {
    Some(match op {
        "=" => ("eq", true),
        "<>" | "!=" => ("eq", false),
        "<" | "<=" => ("order", true),
        ">" | ">=" => ("order", false),
        "~~" | "~~*" | "~" | "~*" => ("like", true),
        "!~~" | "!~~*" | "!~" | "!~*" => ("like", false),
        _ => return None,
    })
}

/// `op` as seen from the other side (`5 > id` is `id < 5`).
fn mirrored(class: (&'static str, bool)) -> (&'static str, bool) {
    match class {
        ("order", p) => ("order", !p),
        c => c,
    }
}

/// `pos`: the predicate as written; otherwise its negation (under a NOT).
fn pred(v: R<'_>, cx: Cx<'_>, pos: bool) -> bool {
    match v {
        R::BoolExpr(b) => {
            let args: Vec<R<'_>> = items(&b.args).collect();
            let and = b.boolop == pb::BoolExprType::AndExpr as i32;
            let or = b.boolop == pb::BoolExprType::OrExpr as i32;
            if !and && !or {
                return args.first().is_some_and(|a| pred(*a, cx, !pos));
            }
            // AND, or the negation of an OR, holds where all of its terms hold: one
            // restricting term is enough. OR, or the negation of an AND, holds where any
            // branch holds: every branch must restrict, and no two may together cover all.
            if and == pos {
                args.iter().any(|a| pred(*a, cx, pos))
            } else {
                args.iter().all(|a| pred(*a, cx, pos)) && !complementary(&args, cx, pos)
            }
        }
        R::AExpr(a) => match null_test(a) {
            Some((arg, is_null)) => null_restricts(arg, is_null == pos, cx),
            // `NOT BETWEEN 5 AND 4` leaves nothing out (sixty-seventh pass L1); `op ALL` of an
            // array that may be empty holds for every row (sixty-eighth pass M1: `id = ALL('{}')`).
            None => comparison(a, cx).is_some() && !excludes_nothing(a, pos) && !all_of_maybe_empty(a),
        },
        R::NullTest(n) => {
            let Some(arg) = opt(&n.arg) else { return false };
            let is_null = (n.nulltesttype == pb::NullTestType::IsNull as i32) == pos;
            null_restricts(arg, is_null, cx)
        }
        R::BooleanTest(b) => {
            let Some(arg) = opt(&b.arg) else { return false };
            match (b.booltesttype, pos) {
                (x, true) if x == pb::BoolTestType::IsTrue as i32 => pred(arg, cx, true),
                (x, true) if x == pb::BoolTestType::IsFalse as i32 => pred(arg, cx, false),
                // IS NOT TRUE, IS NOT FALSE, IS [NOT] UNKNOWN, and the negations of IS
                // TRUE/FALSE take the unknown rows too: `(id = NULL) IS NOT TRUE` is every row.
                _ => false,
            }
        }
        R::ColumnRef(_) => plain_column(v, cx),
        R::TypeCast(tc) => opt(&tc.arg).is_some_and(|a| pred(a, cx, pos)),
        R::SubLink(s) => sublink(s, cx, pos),
        // A function of the row and of something independent (`starts_with(name, 'x')`,
        // `coalesce(flag, false)`).
        R::FuncCall(f) if f.agg_filter.is_none() && f.over.is_none() => call(&f.args, cx),
        R::CoalesceExpr(c) => call(&c.args, cx),
        _ => false,
    }
}

/// `x IS NULL` (`is_null`) or `x IS NOT NULL`: the first restricts where `x` is the row's, the
/// second only for a plain column of the target (a whole row's IS NOT NULL asks nothing of a
/// single column, and an expression's may hold for every row).
fn null_restricts(arg: R<'_>, is_null: bool, cx: Cx<'_>) -> bool {
    if is_null {
        side(arg, cx) == Side::Row
    } else {
        plain_column(arg, cx)
    }
}

/// `x IS NOT DISTINCT FROM NULL` is `x IS NULL` and `x IS DISTINCT FROM NULL` is `x IS NOT
/// NULL`, for a column (a whole row is never the null value: `t IS DISTINCT FROM NULL` holds
/// for every row): `x` and whether it is the IS NULL form.
pub(super) fn null_test<'a>(a: &'a pb::AExpr) -> Option<(R<'a>, bool)> {
    let not_distinct = a.kind == pb::AExprKind::AexprNotDistinct as i32;
    if !not_distinct && a.kind != pb::AExprKind::AexprDistinct as i32 {
        return None;
    }
    let null = |v: R<'_>| {
        let mut v = v;
        while let R::TypeCast(t) = v {
            let Some(a) = opt(&t.arg) else { return false };
            v = a;
        }
        matches!(v, R::AConst(c) if c.isnull)
    };
    let (l, r) = (opt(&a.lexpr)?, opt(&a.rexpr)?);
    match (null(l), null(r)) {
        (false, true) => Some((l, not_distinct)),
        (true, false) => Some((r, not_distinct)),
        _ => None,
    }
}

fn call(args: &[pb::Node], cx: Cx<'_>) -> bool {
    let args: Vec<(R<'_>, Side)> = items(args).map(|a| (a, side(a, cx))).collect();
    let rows: Vec<R<'_>> = args.iter().filter(|(_, s)| *s == Side::Row).map(|(a, _)| *a).collect();
    !rows.is_empty()
        && !args.iter().any(|(_, s)| *s == Side::Unsure)
        && args.iter().any(|(a, s)| *s == Side::Independent && rows.iter().all(|r| independent_of(*a, *r, cx)))
}

/// A bare column of the target (a boolean column as a predicate, or `col IS NOT NULL`).
fn plain_column(v: R<'_>, cx: Cx<'_>) -> bool {
    let d = deps_of(v, cx);
    matches!(v, R::ColumnRef(_)) && d.row && !d.whole_row && !d.unsure
}

/// A comparison of the row with something independent of it: its family, positive member or
/// not, and the row's side (for the complement check). `None`: it does not restrict.
fn comparison<'a>(a: &'a pb::AExpr, cx: Cx<'_>) -> Option<(&'static str, bool, R<'a>)> {
    let (l, r) = (opt(&a.lexpr)?, opt(&a.rexpr)?);
    let kind = a.kind;
    let is = |k: pb::AExprKind| kind == k as i32;
    let class = if is(pb::AExprKind::AexprNotDistinct) || is(pb::AExprKind::AexprIn) && op_name(a) == "=" {
        ("eq", true)
    } else if is(pb::AExprKind::AexprDistinct) || is(pb::AExprKind::AexprIn) {
        ("eq", false)
    } else if is(pb::AExprKind::AexprLike) || is(pb::AExprKind::AexprIlike) || is(pb::AExprKind::AexprSimilar) {
        ("like", !op_name(a).starts_with('!'))
    } else if is(pb::AExprKind::AexprBetween) || is(pb::AExprKind::AexprBetweenSym) {
        ("between", true)
    } else if is(pb::AExprKind::AexprNotBetween) || is(pb::AExprKind::AexprNotBetweenSym) {
        ("between", false)
    } else {
        // An operator, or `op ANY/ALL (…)`: the operator's family.
        class_of_op(op_name(a)).unwrap_or(("other", true))
    };
    let independent = |x: R<'_>, row: R<'_>| match x {
        R::List(list) => items(&list.items).all(|i| independent_of(i, row, cx)),
        x => independent_of(x, row, cx),
    };
    if side(l, cx) == Side::Row && independent(r, l) {
        Some((class.0, class.1, l))
    } else if is(pb::AExprKind::AexprOp) && side(r, cx) == Side::Row && independent(l, r) {
        let (f, p) = mirrored(class);
        Some((f, p, r))
    } else {
        None
    }
}

fn sublink(s: &pb::SubLink, cx: Cx<'_>, pos: bool) -> bool {
    let ty = s.sub_link_type;
    let Some(sub) = opt(&s.subselect) else { return false };
    if ty == pb::SubLinkType::ExistsSublink as i32 {
        return exists(sub, cx, pos);
    }
    if ty == pb::SubLinkType::AnySublink as i32 || ty == pb::SubLinkType::AllSublink as i32 {
        // `row_side IN (SELECT …)`: an uncorrelated subquery is independent of the row.
        let inside = Cx { excluding: !pos, ..cx };
        return opt(&s.testexpr).is_some_and(|te| side(te, cx) == Side::Row && independent_of(sub, te, inside));
    }
    false
}

/// `EXISTS (SELECT … WHERE …)`: restricts when the subquery's WHERE restricts the target's row
/// (as an outer reference) in a plain SELECT — no call in its output (an aggregate returns a
/// row for no input), no GROUP BY, HAVING, LIMIT, OFFSET, set operation or CTE.
fn exists(sub: R<'_>, cx: Cx<'_>, pos: bool) -> bool {
    let R::SelectStmt(q) = sub else { return false };
    let plain_targets =
        items(&q.target_list).all(|rt| matches!(rt, R::ResTarget(r) if !opt(&r.val).is_some_and(has_call)));
    plain_targets && correlates(q, cx, pos)
}

/// Whether a plain SELECT's WHERE restricts the target's row (as an outer reference): no
/// GROUP BY, HAVING, LIMIT, OFFSET, set operation or CTE.
fn correlates(q: &pb::SelectStmt, cx: Cx<'_>, pos: bool) -> bool {
    if !q.group_clause.is_empty()
        || q.having_clause.is_some()
        || q.limit_count.is_some()
        || q.limit_offset.is_some()
        || q.with_clause.is_some()
        || q.larg.is_some()
        || !q.values_lists.is_empty()
    {
        return false;
    }
    let own = !q.from_clause.is_empty();
    let (mirrors, shadowed, loose, loose_any) = scope(q, cx);
    let cx = Cx { inner: cx.inner || own, shadowed, mirrors: &mirrors, loose, loose_any, ..cx };
    opt(&q.where_clause).is_some_and(|w| pred(w, cx, pos))
}

fn has_call(e: R<'_>) -> bool {
    if matches!(e, R::FuncCall(_) | R::SubLink(_)) {
        return true;
    }
    let mut found = false;
    each_child(e, &mut |c| found = found || has_call(c));
    found
}
