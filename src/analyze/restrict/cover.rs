//! Whether the branches of an OR (or of a negated AND) together cover every row: the same
//! columns compared in opposite ways (`a < 5 OR a >= 5`, `flag OR NOT flag`, `x IS NULL OR x IS
//! NOT NULL`).
//!
//! Order comparisons with constants are compared by value: `id < 10 OR id > 90` leaves
//! `10 ..= 90` out and restricts; `a < 5 OR a >= 5` and `a < 10 OR a > 5` cover every value.
//! The constants are read (a literal read, `nodes::literal_read`) only for such a pair.
//!
//! Owns: the branches' signatures and that comparison.

use super::{comparison, null_test, Cx};
use crate::analyze::children::each_child;
use crate::analyze::nodes::{const_str, items, literal_read, opt, sval};
use pg_query::protobuf as pb;
use pg_query::NodeRef as R;
use std::cmp::Ordering;

/// Whether the branches of an OR (or of a negated AND) compare the same columns in opposite
/// ways (`a < 5 OR a >= 5`, `flag OR NOT flag`, `x IS NULL OR x IS NOT NULL`): together they may
/// cover every row, so the OR is not taken as restricting. Order comparisons with constants
/// on both sides of a gap (`id < 10 OR id > 90`) do not; with anything else on the same
/// columns beside them (`OR id = 50`, `OR id BETWEEN …`), they may.
pub(super) fn complementary(branches: &[R<'_>], cx: Cx<'_>, pos: bool) -> bool {
    let sigs: Vec<Vec<Sig<'_>>> = branches.iter().map(|b| signature(*b, cx, pos)).collect();
    opposite(&sigs) || excluded_values_cover(&sigs) || rays_cover(&sigs.concat())
}

/// Up to two distinct branches (their indices) of one kind: enough to tell whether a branch of
/// one kind and a *different* branch of another exist, in one pass over the branches (an OR of
/// 48,000 point comparisons compared every pair: a minute per statement, forty-fifth pass M2).
#[derive(Clone, Copy, Default)]
struct Two([Option<usize>; 2]);

impl Two {
    fn add(&mut self, i: usize) {
        match self.0 {
            [None, _] => self.0[0] = Some(i),
            [Some(a), None] if a != i => self.0[1] = Some(i),
            _ => {}
        }
    }

    /// Whether a branch of `self` and another branch of `other` exist.
    fn apart(&self, other: &Two) -> bool {
        match (self.0, other.0) {
            ([Some(a), None], [Some(b), None]) => a != b,
            ([Some(_), _], [Some(_), _]) => true,
            _ => false,
        }
    }
}

/// Whether two branches compare the same columns in opposite ways in one family (`a < 5` and
/// `a >= 5`), not both against constants (those are `rays_cover`'s).
fn opposite(sigs: &[Vec<Sig<'_>>]) -> bool {
    // By (key, family): branches of each (positive, bounded) kind.
    let mut kinds: std::collections::HashMap<(&str, &str), [Two; 4]> = Default::default();
    for (i, a) in sigs.iter().enumerate() {
        for x in a {
            let k = usize::from(x.positive) * 2 + usize::from(x.bound.is_some());
            kinds.entry((x.key.as_str(), x.family)).or_default()[k].add(i);
        }
    }
    // (negative, positive) kinds that may pair: not both bounded.
    const PAIRS: [(usize, usize); 3] = [(0, 2), (0, 3), (1, 2)];
    kinds.values().any(|k| PAIRS.iter().any(|(n, p)| k[*n].apart(&k[*p])))
}

/// Whether one branch leaves out some values of a column (`id <> 5`, `NOT IN (1, 2)`, `IS
/// DISTINCT FROM 5`, `NOT BETWEEN 1 AND 5`) and another compares the same column with values
/// (`OR id <> 6`, `OR id > 4`): together they may take every value (what the first leaves out
/// the second takes), so they are taken to cover it. Beside a null test (`title <> 'x' OR
/// title IS NULL`) they do not.
fn excluded_values_cover(sigs: &[Vec<Sig<'_>>]) -> bool {
    // By key: the branches that leave values out, and those that compare with values.
    let mut keys: std::collections::HashMap<&str, (Two, Two)> = Default::default();
    for (i, a) in sigs.iter().enumerate() {
        for x in a.iter().filter(|x| matches!(x.family, "eq" | "between" | "order")) {
            let e = keys.entry(x.key.as_str()).or_default();
            if x.family != "order" && !x.positive {
                e.0.add(i);
            }
            e.1.add(i);
        }
    }
    keys.values().any(|(out, values)| out.apart(values))
}

/// An order comparison of the row's side with a constant, as the row sees it: below (`<`,
/// `<=`) or above (`>`, `>=`) the constant, inclusive or not.
#[derive(Clone, Copy)]
struct Bound<'a> {
    below: bool,
    inclusive: bool,
    value: R<'a>,
}

/// Whether the order comparisons with constants cover every value of a column: the highest
/// "below" reaches the lowest "above" (`a < 5 OR a >= 5`, `a < 10 OR a > 5`). A gap counts
/// only when every other comparison of that column is one of them; constants that cannot be
/// compared cover.
fn rays_cover(sigs: &[Sig<'_>]) -> bool {
    // By key, in one pass (each key judged once, not once per comparison of it).
    let mut by_key: std::collections::HashMap<&str, (Vec<Bound<'_>>, bool)> = Default::default();
    for x in sigs {
        let e = by_key.entry(x.key.as_str()).or_default();
        match x.bound {
            Some(b) => e.0.push(b),
            None => e.1 = true,
        }
    }
    by_key.values().filter(|(same, _)| !same.is_empty()).any(|(same, unbounded)| {
        let extreme = |below: bool| {
            let mut best: Option<Bound<'_>> = None;
            for b in same.iter().filter(|b| b.below == below) {
                best = match best {
                    None => Some(*b),
                    Some(cur) => match compare(b.value, cur.value) {
                        None => return Err(()),
                        // The highest bound below, the lowest above; inclusive wins a tie.
                        Some(Ordering::Equal) => Some(if b.inclusive { *b } else { cur }),
                        Some(o) => Some(if (o == Ordering::Greater) == below { *b } else { cur }),
                    },
                };
            }
            Ok(best)
        };
        let (Ok(low), Ok(high)) = (extreme(true), extreme(false)) else { return true };
        let (Some(low), Some(high)) = (low, high) else { return false };
        let covered = match compare(low.value, high.value) {
            None | Some(Ordering::Greater) => true,
            Some(Ordering::Equal) => low.inclusive || high.inclusive,
            Some(Ordering::Less) => no_integer_between(low, high),
        };
        covered || *unbounded
    })
}

/// Whether two bounds leave no integer out (`id <= 4 OR id >= 5` covers an integer column;
/// a numeric one keeps `4.5` out, but blastwall does not know the column's type, so it takes
/// the column to be an integer one). A bound with a fraction is rounded to the integers it
/// takes: `id >= 4.5` takes 5 and up, `id <= 4.5` 4 and down (sixty-second pass F1: `id <= 4
/// OR id >= 4.5` took every row of an integer column).
fn no_integer_between(low: Bound<'_>, high: Bound<'_>) -> bool {
    // The integer part (toward zero) and whether a fraction is left.
    let parts = |v: R<'_>| {
        let (neg, int, frac) = number(uncast(v).0)?;
        if int.len() > 30 {
            return None;
        }
        let n: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        Some((if neg { -n } else { n }, !frac.is_empty(), neg))
    };
    let floor = |(n, frac, neg): (i128, bool, bool)| if frac && neg { n - 1 } else { n };
    let ceil = |(n, frac, neg): (i128, bool, bool)| if frac && !neg { n + 1 } else { n };
    let (Some(l), Some(h)) = (parts(low.value), parts(high.value)) else { return false };
    // The highest integer the bound below takes, the lowest the bound above takes.
    let top = if low.inclusive { floor(l) } else { ceil(l) - 1 };
    let bottom = if high.inclusive { ceil(h) } else { floor(h) + 1 };
    bottom <= top + 1
}

/// The order of two constants when it does not depend on their type: two numbers without an
/// exponent, or two strings of the same shape (the same non-digits at the same places, as
/// `'2024-01-31'` and `'2025-06-01'`), under the same cast. `None`: unknown.
fn compare(a: R<'_>, b: R<'_>) -> Option<Ordering> {
    let (a, ta) = uncast(a);
    let (b, tb) = uncast(b);
    if ta != tb {
        return None;
    }
    match (number(a), number(b)) {
        (Some(x), Some(y)) => return Some(cmp_decimal(&x, &y)),
        (None, None) => {}
        _ => return None,
    }
    let (x, y) = (const_str(a)?, const_str(b)?);
    let same_shape =
        x.len() == y.len() && x.bytes().zip(y.bytes()).all(|(p, q)| p.is_ascii_digit() && q.is_ascii_digit() || p == q);
    same_shape.then(|| x.cmp(y))
}

/// A constant under its casts, and the outermost cast's type name.
fn uncast(v: R<'_>) -> (R<'_>, Option<String>) {
    match v {
        R::TypeCast(tc) => {
            let ty = tc.type_name.as_ref().and_then(|t| t.names.last()).and_then(sval).map(str::to_string);
            (opt(&tc.arg).map_or(v, |a| uncast(a).0), ty)
        }
        _ => (v, None),
    }
}

/// A numeric constant as (negative, integer digits without leading zeros, fraction digits
/// without trailing zeros); an exponent is not read.
fn number(v: R<'_>) -> Option<(bool, String, String)> {
    let R::AConst(c) = v else { return None };
    let text = match c.val.as_ref()? {
        pb::a_const::Val::Ival(i) => i.ival.to_string(),
        pb::a_const::Val::Fval(f) => f.fval.clone(),
        _ => return None,
    };
    literal_read();
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || int.is_empty() && frac.is_empty() {
        return None;
    }
    let (int, frac) = (int.trim_start_matches('0').to_string(), frac.trim_end_matches('0').to_string());
    let zero = int.is_empty() && frac.is_empty();
    Some((neg && !zero, int, frac))
}

fn cmp_decimal(a: &(bool, String, String), b: &(bool, String, String)) -> Ordering {
    let magnitude = a.1.len().cmp(&b.1.len()).then_with(|| a.1.cmp(&b.1)).then_with(|| a.2.cmp(&b.2));
    match (a.0, b.0) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
    }
}

/// The last name of every column reference in an expression (`*` for a whole row); a field
/// of a whole row (`(t).id`, `(t.*).id`) is that column (sixty-eighth pass M1: `id < 5 OR
/// (t).id >= 5` took every row).
pub(super) fn column_names(e: R<'_>, out: &mut std::collections::BTreeSet<String>) {
    if let R::AIndirection(i) = e {
        let whole_row = matches!(opt(&i.arg), Some(R::ColumnRef(_)));
        if let (true, [field]) = (whole_row, &i.indirection[..]) {
            if let Some(name) = field.node.as_ref().and_then(|n| match n {
                pb::node::Node::String(s) => Some(s.sval.as_str()),
                _ => None,
            }) {
                out.insert(name.to_string());
                return;
            }
        }
    }
    if let R::ColumnRef(c) = e {
        out.insert(c.fields.last().and_then(sval).unwrap_or("*").to_string());
    }
    each_child(e, &mut |c| column_names(c, out));
}

/// A comparison in a branch: the row's side (its columns), the family, the positive member or
/// not, and for an order comparison with a constant, its bound.
#[derive(Clone)]
struct Sig<'a> {
    key: String,
    family: &'static str,
    positive: bool,
    bound: Option<Bound<'a>>,
}

impl<'a> Sig<'a> {
    fn new(key: String, family: &'static str, positive: bool) -> Self {
        Sig { key, family, positive, bound: None }
    }
}

/// The bound of `a` (an order comparison, `comparison` found the row on one side) when the
/// other side is a constant and the operator is PostgreSQL's own; `below`: the row's side is
/// below the constant (`positive`, under the predicate's polarity).
fn bound<'a>(a: &'a pb::AExpr, below: bool, pos: bool) -> Option<Bound<'a>> {
    let op = a.name.last().and_then(sval)?;
    let builtin = a.name.len() == 1 || a.name.first().and_then(sval) == Some("pg_catalog");
    if a.kind != pb::AExprKind::AexprOp as i32 || !builtin || !matches!(op, "<" | "<=" | ">" | ">=") {
        return None;
    }
    let constant = |v: R<'_>| matches!(uncast(v).0, R::AConst(c) if !c.isnull);
    let value = [opt(&a.lexpr)?, opt(&a.rexpr)?].into_iter().find(|v| constant(*v))?;
    // `NOT a < 5` is `a >= 5`: negation flips inclusion too.
    Some(Bound { below, inclusive: op.ends_with('=') == pos, value })
}

/// The two ends of `a BETWEEN lo AND hi`, when both are constants.
fn between_ends(a: &pb::AExpr) -> Option<(R<'_>, R<'_>)> {
    let R::List(list) = opt(&a.rexpr)? else { return None };
    let mut ends = items(&list.items);
    let (lo, hi) = (ends.next()?, ends.next()?);
    let constant = |v: R<'_>| matches!(uncast(v).0, R::AConst(c) if !c.isnull);
    (constant(lo) && constant(hi)).then_some((lo, hi))
}

/// The rays a positive `BETWEEN lo AND hi` of constants amounts to: above `lo` when `hi` is at
/// or past the edge of `integer` (or cannot be read), below `hi` when `lo` is.
/// `SYMMETRIC` takes either end as the lower (sixty-eighth pass M1: `id < 5 OR id BETWEEN
/// SYMMETRIC 9223372036854775807 AND 5`): both orders are read.
fn between_rays(a: &pb::AExpr) -> Vec<Bound<'_>> {
    let Some((lo, hi)) = between_ends(a) else { return Vec::new() };
    let symmetric = a.kind == pb::AExprKind::AexprBetweenSym as i32;
    let orders: &[(R<'_>, R<'_>)] = if symmetric { &[(lo, hi), (hi, lo)] } else { &[(lo, hi)] };
    let mut rays = Vec::new();
    for (lo, hi) in orders.iter().copied() {
        if at_edge(hi, false) {
            rays.push(Bound { below: false, inclusive: true, value: lo });
        }
        if at_edge(lo, true) {
            rays.push(Bound { below: true, inclusive: true, value: hi });
        }
    }
    rays
}

/// Whether a constant is at or past the edge of `integer` on its side (`low`: the lowest),
/// or a number blastwall does not read (an exponent): a bound that far may be a column's end.
fn at_edge(v: R<'_>, low: bool) -> bool {
    let R::AConst(c) = uncast(v).0 else { return false };
    match c.val.as_ref() {
        Some(pb::a_const::Val::Ival(i)) => i.ival == if low { i32::MIN } else { i32::MAX },
        Some(pb::a_const::Val::Fval(_)) => match number(uncast(v).0) {
            None => true,
            Some((neg, int, _)) => {
                neg == low && (int.len() > 10 || int.parse::<u64>().is_ok_and(|n| n >= i32::MAX as u64))
            }
        },
        _ => false,
    }
}

/// Whether `a` (a BETWEEN, not SYMMETRIC, taken negated when `pos` is false or it is `NOT
/// BETWEEN`) leaves out an empty range, its constant ends the wrong way round (`NOT BETWEEN 5
/// AND 4`): it then takes every row that is not null, as `IS NOT NULL` does.
pub(super) fn excludes_nothing(a: &pb::AExpr, pos: bool) -> bool {
    let negated = match a.kind {
        k if k == pb::AExprKind::AexprBetween as i32 => !pos,
        k if k == pb::AExprKind::AexprNotBetween as i32 => pos,
        _ => return false,
    };
    negated && between_ends(a).is_some_and(|(lo, hi)| compare(lo, hi) == Some(Ordering::Greater))
}

/// Whether `a` is `x op ALL (array)` of an array that may be empty (anything but an `ARRAY[…]`
/// with elements or a constant `'{…}'` with one): `ALL` of no elements is true.
pub(super) fn all_of_maybe_empty(a: &pb::AExpr) -> bool {
    if a.kind != pb::AExprKind::AexprOpAll as i32 {
        return false;
    }
    match opt(&a.rexpr).map(|v| uncast(v).0) {
        Some(R::AArrayExpr(e)) => e.elements.is_empty(),
        Some(v) => {
            const_str(v).is_none_or(|t| t.trim().trim_start_matches('{').trim_end_matches('}').trim().is_empty())
        }
        None => true,
    }
}

/// The comparisons a branch is made of.
fn signature<'a>(v: R<'a>, cx: Cx<'_>, pos: bool) -> Vec<Sig<'a>> {
    // The columns of the row's side (`id`, `t.id`, `id + 0`: the same key).
    let key = |e: R<'_>| {
        let mut cols = std::collections::BTreeSet::new();
        column_names(e, &mut cols);
        cols.into_iter().collect::<Vec<_>>().join(",")
    };
    match v {
        R::BoolExpr(b) if b.boolop == pb::BoolExprType::NotExpr as i32 => {
            items(&b.args).flat_map(|a| signature(a, cx, !pos)).collect()
        }
        R::BoolExpr(b) => items(&b.args).flat_map(|a| signature(a, cx, pos)).collect(),
        R::AExpr(a) if null_test(a).is_some() => {
            null_test(a).map(|(arg, is_null)| Sig::new(key(arg), "null", is_null == pos)).into_iter().collect()
        }
        // Read as the row's side only where that side is a column (under casts): `-id <= -4.5`
        // and `0 - id <= -5` are `id >= 4.5` and `id >= 5`, above the constant where the row's
        // side is below it (sixty-sixth pass L1). Over an expression, an order comparison's
        // direction is not known: it is taken both ways, unbounded, and so covers beside any
        // comparison of the same columns (`id <= 4 OR -id <= -4.5`).
        R::AExpr(a) => match comparison(a, cx) {
            Some((f, _, row)) if f == "order" && !matches!(uncast(row).0, R::ColumnRef(_)) => {
                vec![Sig::new(key(row), f, true), Sig::new(key(row), f, false)]
            }
            // A BETWEEN with an end at or past the edge of `integer` (or unreadable, with an
            // exponent) reaches as far as a column of its type goes: it is a ray from its other
            // end too (sixty-seventh pass L1: `id < 5 OR id BETWEEN 5 AND 9223372036854775807`).
            Some((f, p, row))
                if f == "between"
                    && p == pos
                    && (a.kind == pb::AExprKind::AexprBetween as i32
                        || a.kind == pb::AExprKind::AexprBetweenSym as i32) =>
            {
                let rays = between_rays(a).into_iter();
                let mut sigs = vec![Sig::new(key(row), f, true)];
                sigs.extend(rays.map(|b| Sig { bound: Some(b), ..Sig::new(key(row), "order", b.below) }));
                sigs
            }
            Some((f, p, row)) => {
                vec![Sig { bound: bound(a, p == pos, pos).filter(|_| f == "order"), ..Sig::new(key(row), f, p == pos) }]
            }
            None => Vec::new(),
        },
        R::NullTest(n) => opt(&n.arg)
            .map(|arg| Sig::new(key(arg), "null", (n.nulltesttype == pb::NullTestType::IsNull as i32) == pos))
            .into_iter()
            .collect(),
        R::BooleanTest(b) => opt(&b.arg)
            .map(|arg| signature(arg, cx, pos != (b.booltesttype == pb::BoolTestType::IsFalse as i32)))
            .unwrap_or_default(),
        R::TypeCast(tc) => opt(&tc.arg).map(|a| signature(a, cx, pos)).unwrap_or_default(),
        R::ColumnRef(_) | R::FuncCall(_) | R::CoalesceExpr(_) => vec![Sig::new(key(v), "truth", pos)],
        R::SubLink(s) => match opt(&s.testexpr) {
            Some(te) => vec![Sig::new(key(te), "in", pos)],
            None => vec![Sig::new(key(v), "truth", pos)],
        },
        _ => Vec::new(),
    }
}
