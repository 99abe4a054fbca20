//! Sequences a statement moves forward with `nextval(…)`: which, and whether the number of
//! calls is bounded by the text.
//!
//! A `nextval` in a SELECT of constants (no FROM, no set operation, no CTE, no set-returning
//! function: `SELECT nextval('s')`, how an application takes an id) runs once per call in the
//! text; anywhere else — `SELECT nextval('s') FROM generate_series(1, 100000000)`, a subquery, an
//! INSERT … SELECT — it runs once per row, as far as the data goes: the incident's drift
//! mechanism. Such a statement is judged where the policy protects the sequence (see
//! `guard::need`): run in the pre-check, whose identity check refuses a protected sequence moved
//! further than the rows inserted allow, and puts it back.
//!
//! Owns: recognising `nextval` and the bound. Does not own: which sequences are protected.

use super::children::each_child;
use super::{RelName, Statement};
use pg_query::protobuf as pb;
use pg_query::NodeRef as R;

/// How many `nextval` calls a bounded statement may make and still be relayed unjudged (the
/// identity check lets a protected sequence move 1,000 steps beyond the rows inserted).
const BOUNDED_CALLS: usize = 100;

/// Whether a function name (`funcname` of a FuncCall) is `nextval`.
pub(super) fn is_nextval(funcname: &[pb::Node]) -> bool {
    let names: Vec<Option<&str>> = funcname.iter().map(super::nodes::sval).collect();
    matches!(names.as_slice(), [Some("nextval")] | [Some("pg_catalog"), Some("nextval")])
}

/// Whether every `nextval` of the statement rooted at `root` runs once: a plain SELECT of
/// expressions whose only function calls are `nextval`, with no subquery, no grouping (each
/// group runs the target list again), no HAVING, window or DISTINCT.
pub(super) fn bounded(root: R<'_>) -> bool {
    let R::SelectStmt(q) = root else { return false };
    // No FROM still runs the target list once per group: `GROUP BY GROUPING SETS ((), (), …)`
    // or `CUBE` gives up to 4,096 rows of one written call (seventy-fifth pass H1).
    if !q.from_clause.is_empty()
        || q.with_clause.is_some()
        || q.larg.is_some()
        || !q.values_lists.is_empty()
        || q.into_clause.is_some()
        || !q.group_clause.is_empty()
        || q.having_clause.is_some()
        || !q.window_clause.is_empty()
        || !q.distinct_clause.is_empty()
    {
        return false;
    }
    fn plain(v: R<'_>) -> bool {
        let ok = match v {
            R::FuncCall(f) => is_nextval(&f.funcname) && f.over.is_none(),
            R::SubLink(_) | R::SelectStmt(_) => false,
            // The server copies the left operand of `BETWEEN` (twice; `SYMMETRIC` four times)
            // and of an `IN` list it cannot make one array of (once per item) as it analyzes
            // it: a `nextval` there runs that many times, nested 4^k (seventy-sixth pass H1:
            // ten nested `NOT BETWEEN SYMMETRIC` around one written call moved 1,048,576).
            R::AExpr(e) => !copies_operand(e.kind),
            // `(expr).*` of a composite the planner cannot take apart (`COALESCE(ROW(…)::t,
            // NULL)`) runs the expression once per column: up to 1,600 times a written call.
            R::AIndirection(i) => !i.indirection.iter().any(|n| matches!(n.node, Some(pb::node::Node::AStar(_)))),
            _ => true,
        };
        let mut all = ok;
        each_child(v, &mut |c| all = all && plain(c));
        all
    }
    // Every part of it — the target list, WHERE, ORDER BY, LIMIT — plain (a subquery in
    // ORDER BY runs as often as its own rows say).
    let mut all = true;
    each_child(root, &mut |c| all = all && plain(c));
    all
}

/// Whether PostgreSQL's analysis of an operator expression of this kind copies an operand
/// into several places of the expression it runs (`transformAExprBetween`, `transformAExprIn`).
fn copies_operand(kind: i32) -> bool {
    use pb::AExprKind as K;
    ![K::AexprOp, K::AexprOpAny, K::AexprOpAll, K::AexprDistinct, K::AexprNotDistinct, K::AexprNullif]
        .into_iter()
        .chain([K::AexprLike, K::AexprIlike, K::AexprSimilar])
        .any(|k| k as i32 == kind)
}

impl Statement {
    /// Whether it may move a sequence `protected` says is protected further than its text
    /// shows: a `nextval` of it (or of a sequence named by something other than a constant)
    /// that is not bounded (see the module's doc).
    pub fn moves_sequences(&self, protected: impl Fn(&RelName) -> bool) -> bool {
        !self.nextval_bounded && self.calls_nextval_of(protected)
    }

    /// Whether it calls `nextval` of a sequence `protected` says is one (or one it cannot
    /// name), however few times.
    pub fn calls_nextval_of(&self, protected: impl Fn(&RelName) -> bool) -> bool {
        self.nextval.iter().any(|s| match s {
            None => true,
            // An OID spelled as text (`nextval('16384')`) names any sequence.
            Some(s) if s.as_oid().is_some() => true,
            Some(s) => protected(s),
        })
    }
}

/// Records the bound after the walk (see [`bounded`]).
pub(super) fn finish(root: R<'_>, st: &mut Statement) {
    if !st.nextval.is_empty() {
        st.nextval_bounded = st.nextval.len() <= BOUNDED_CALLS && bounded(root);
    }
}
