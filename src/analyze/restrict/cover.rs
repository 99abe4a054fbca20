//! Whether the branches of an OR (or of a negated AND) together cover every row: the same
//! columns compared in opposite ways (`a < 5 OR a >= 5`, `flag OR NOT flag`, `x IS NULL OR x IS
//! NOT NULL`).
//!
//! Owns: the branches' signatures and that comparison.

use super::{comparison, Cx};
use crate::analyze::children::each_child;
use crate::analyze::nodes::{items, opt, sval};
use pg_query::protobuf as pb;
use pg_query::NodeRef as R;

/// Whether two branches of an OR (or of a negated AND) compare the same columns in opposite
/// ways (`a < 5 OR a >= 5`, `flag OR NOT flag`, `x IS NULL OR x IS NOT NULL`): together they may
/// cover every row, so the OR is not taken as restricting.
pub(super) fn complementary(branches: &[R<'_>], cx: Cx<'_>, pos: bool) -> bool {
    let sigs: Vec<Vec<Sig>> = branches.iter().map(|b| signature(*b, cx, pos)).collect();
    sigs.iter().enumerate().any(|(i, a)| {
        sigs.iter().skip(i + 1).any(|b| a.iter().any(|x| b.iter().any(|y| x.0 == y.0 && x.1 == y.1 && x.2 != y.2)))
    })
}

/// The last name of every column reference in an expression (`*` for a whole row).
pub(super) fn column_names(e: R<'_>, out: &mut std::collections::BTreeSet<String>) {
    if let R::ColumnRef(c) = e {
        out.insert(c.fields.last().and_then(sval).unwrap_or("*").to_string());
    }
    each_child(e, &mut |c| column_names(c, out));
}

/// A comparison in a branch: (the row's side, printed; family; positive member).
type Sig = (String, &'static str, bool);

/// The comparisons a branch is made of.
fn signature(v: R<'_>, cx: Cx<'_>, pos: bool) -> Vec<Sig> {
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
        R::AExpr(a) => comparison(a, cx).map(|(f, p, row)| (key(row), f, p == pos)).into_iter().collect(),
        R::NullTest(n) => opt(&n.arg)
            .map(|arg| (key(arg), "null", (n.nulltesttype == pb::NullTestType::IsNull as i32) == pos))
            .into_iter()
            .collect(),
        R::BooleanTest(b) => opt(&b.arg)
            .map(|arg| signature(arg, cx, pos != (b.booltesttype == pb::BoolTestType::IsFalse as i32)))
            .unwrap_or_default(),
        R::TypeCast(tc) => opt(&tc.arg).map(|a| signature(a, cx, pos)).unwrap_or_default(),
        R::ColumnRef(_) | R::FuncCall(_) | R::CoalesceExpr(_) => vec![(key(v), "truth", pos)],
        R::SubLink(s) => match opt(&s.testexpr) {
            Some(te) => vec![(key(te), "in", pos)],
            None => vec![(key(v), "truth", pos)],
        },
        _ => Vec::new(),
    }
}
