//! The shape of a DELETE/UPDATE/MERGE predicate with respect to the target's columns: which
//! columns it pins to a few values (point lookups) and which it sweeps (ranges).
//!
//! Owns: classifying expressions. Does not own: which columns are protected (policy) — the
//! shape is reported for every column of the target, and the policy picks.

use super::walk::{int, node, sval};
use pg_query::protobuf as pb;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// How column references name the statement's target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The alias if there is one, else the relation name: PostgreSQL hides the name behind
    /// an alias.
    pub qualifier: String,
    pub schema: Option<String>,
}

/// The shape of a WHERE clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// No WHERE at all.
    Absent,
    /// A WHERE that does not reference the target's columns (`WHERE true`, `1 = 1`).
    Constant,
    /// `WHERE CURRENT OF cursor`: which row depends on a cursor, not on the text.
    CurrentOf,
    Cond(Cond),
}

/// Why a column's condition is not a point lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeKind {
    Between,
    NotBetween,
    Comparison(String),
    NotEqual,
    NotIn,
    DistinctFrom,
    Like,
    /// The column inside arithmetic, a cast or a function call.
    Expression,
    Subquery,
    /// An OR with a branch that is not a point lookup on the column.
    Or,
    Not,
    NotNull,
    /// Compared with another table's column (DELETE … USING, UPDATE … FROM, MERGE … ON).
    Join,
    /// `op ANY/ALL (…)` other than `= ANY (short list)`.
    AnyAll,
    /// An IN list or array longer than the policy's `max_in_list`.
    LongList(usize),
}

impl std::fmt::Display for RangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RangeKind::Between => write!(f, "BETWEEN"),
            RangeKind::NotBetween => write!(f, "NOT BETWEEN"),
            RangeKind::Comparison(op) => write!(f, "comparison {op}"),
            RangeKind::NotEqual => write!(f, "<>"),
            RangeKind::NotIn => write!(f, "NOT IN"),
            RangeKind::DistinctFrom => write!(f, "IS DISTINCT FROM"),
            RangeKind::Like => write!(f, "LIKE/SIMILAR pattern"),
            RangeKind::Expression => write!(f, "the column inside an expression, cast or function"),
            RangeKind::Subquery => write!(f, "subquery"),
            RangeKind::Or => write!(f, "OR with a branch that is not a point lookup"),
            RangeKind::Not => write!(f, "NOT"),
            RangeKind::NotNull => write!(f, "IS NOT NULL"),
            RangeKind::Join => write!(f, "join with another table"),
            RangeKind::AnyAll => write!(f, "ANY/ALL comparison"),
            RangeKind::LongList(n) => write!(f, "IN list of {n} values"),
        }
    }
}

/// For each referenced column of the target: pinned (with the number of values, `None` when a
/// parameter supplies them) or swept (with why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cond {
    pub points: BTreeMap<String, Option<usize>>,
    pub ranges: BTreeMap<String, RangeKind>,
    refs: BTreeSet<String>,
}

pub fn classify(where_clause: Option<&Value>, t: &Target) -> Where {
    let Some(w) = where_clause.filter(|w| !w.is_null()) else {
        return Where::Absent;
    };
    finish(w, t)
}

/// MERGE: the join condition and the WHEN condition together decide which rows an action hits.
pub fn classify_merge(join: Option<&Value>, when: Option<&Value>, t: &Target) -> Where {
    let parts: Vec<&Value> = [join, when].into_iter().flatten().filter(|v| !v.is_null()).collect();
    match parts.as_slice() {
        [] => Where::Absent,
        [one] => finish(one, t),
        [a, b] => {
            if has_kind(a, "CurrentOfExpr") || has_kind(b, "CurrentOfExpr") {
                return Where::CurrentOf;
            }
            let c = and(vec![cond(a, t), cond(b, t)]);
            if c.refs.is_empty() {
                Where::Constant
            } else {
                Where::Cond(c)
            }
        }
        _ => Where::Absent,
    }
}

fn finish(w: &Value, t: &Target) -> Where {
    if has_kind(w, "CurrentOfExpr") {
        return Where::CurrentOf;
    }
    let c = cond(w, t);
    if c.refs.is_empty() {
        Where::Constant
    } else {
        Where::Cond(c)
    }
}

fn has_kind(v: &Value, kind: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(kind) || m.values().any(|c| has_kind(c, kind)),
        Value::Array(a) => a.iter().any(|c| has_kind(c, kind)),
        _ => false,
    }
}

/// The target column a ColumnRef names, if it names one. Inside a subquery only a qualified
/// reference can reach the outer target.
fn target_col(fields: &[Value], t: &Target, in_subquery: bool) -> Option<String> {
    let names: Vec<&str> = fields.iter().filter_map(sval).collect();
    if names.len() != fields.len() {
        return None; // `t.*` and the like
    }
    match names.as_slice() {
        [c] if !in_subquery => Some((*c).to_string()),
        [q, c] if *q == t.qualifier => Some((*c).to_string()),
        [s, q, c] | [_, s, q, c] if *q == t.qualifier && t.schema.as_deref().is_none_or(|ts| ts == *s) => {
            Some((*c).to_string())
        }
        _ => None,
    }
}

/// What an expression is made of, as far as the target is concerned.
#[derive(Default)]
struct Parts {
    target: BTreeSet<String>,
    other_columns: bool,
    subquery: bool,
}

fn parts(v: &Value, t: &Target, in_subquery: bool, out: &mut Parts) {
    match v {
        Value::Array(a) => a.iter().for_each(|c| parts(c, t, in_subquery, out)),
        Value::Object(m) => {
            if let Some((kind, b)) = node(v) {
                match kind {
                    "ColumnRef" => {
                        let fields = b.get("fields").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                        match target_col(fields, t, in_subquery) {
                            Some(c) => {
                                out.target.insert(c);
                            }
                            None => out.other_columns = true,
                        }
                        return;
                    }
                    "SubLink" => {
                        out.subquery = true;
                        if let Some(te) = b.get("testexpr") {
                            parts(te, t, in_subquery, out);
                        }
                        if let Some(s) = b.get("subselect") {
                            parts(s, t, true, out);
                        }
                        return;
                    }
                    _ => {}
                }
            }
            m.values().for_each(|c| parts(c, t, in_subquery, out));
        }
        _ => {}
    }
}

fn parts_of(v: &Value, t: &Target) -> Parts {
    let mut p = Parts::default();
    parts(v, t, false, &mut p);
    p
}

/// A bare reference to a target column (no cast, no arithmetic).
fn bare_col(v: &Value, t: &Target) -> Option<String> {
    match node(v)? {
        ("ColumnRef", b) => target_col(b.get("fields")?.as_array()?, t, false),
        _ => None,
    }
}

/// Everything referenced becomes a range of the given kind.
fn all_ranges(v: &Value, t: &Target, kind: RangeKind) -> Cond {
    let p = parts_of(v, t);
    let kind = if p.subquery { RangeKind::Subquery } else { kind };
    let ranges = p.target.iter().map(|c| (c.clone(), kind.clone())).collect();
    Cond { points: BTreeMap::new(), ranges, refs: p.target }
}

fn point(col: String, n: Option<usize>) -> Cond {
    let mut c = Cond::default();
    c.refs.insert(col.clone());
    c.points.insert(col, n);
    c
}

/// `col = value`: a point when the value is made of constants and parameters only.
fn equality(col: String, value: &Value, n: Option<usize>, t: &Target, whole: &Value) -> Cond {
    let p = parts_of(value, t);
    if p.subquery {
        return all_ranges(whole, t, RangeKind::Subquery);
    }
    if !p.target.is_empty() {
        return all_ranges(whole, t, RangeKind::Expression);
    }
    if p.other_columns {
        return all_ranges(whole, t, RangeKind::Join);
    }
    point(col, n)
}

fn op_name(b: &Value) -> String {
    b.get("name").and_then(Value::as_array).and_then(|n| n.last()).and_then(sval).unwrap_or("").to_string()
}

fn cond(v: &Value, t: &Target) -> Cond {
    let Some((kind, b)) = node(v) else {
        return all_ranges(v, t, RangeKind::Expression);
    };
    match kind {
        "BoolExpr" => {
            let args: Vec<Cond> =
                b.get("args").and_then(Value::as_array).into_iter().flatten().map(|a| cond(a, t)).collect();
            let op = int(b, "boolop");
            if op == pb::BoolExprType::AndExpr as i64 {
                and(args)
            } else if op == pb::BoolExprType::OrExpr as i64 {
                or(args)
            } else {
                all_ranges(v, t, RangeKind::Not)
            }
        }
        "AExpr" => aexpr(v, b, t),
        "NullTest" => {
            let arg = b.get("arg").and_then(|a| bare_col(a, t));
            match arg {
                Some(c) if int(b, "nulltesttype") == pb::NullTestType::IsNull as i64 => point(c, Some(1)),
                _ => all_ranges(v, t, RangeKind::NotNull),
            }
        }
        "SubLink" => all_ranges(v, t, RangeKind::Subquery),
        _ => all_ranges(v, t, RangeKind::Expression),
    }
}

fn aexpr(v: &Value, b: &Value, t: &Target) -> Cond {
    let k = int(b, "kind");
    let op = op_name(b);
    let (l, r) = (b.get("lexpr").unwrap_or(&Value::Null), b.get("rexpr").unwrap_or(&Value::Null));
    let is = |x: pb::AExprKind| k == x as i64;
    if is(pb::AExprKind::AexprOp) || is(pb::AExprKind::AexprNotDistinct) {
        if op == "=" || is(pb::AExprKind::AexprNotDistinct) {
            if let Some(c) = bare_col(l, t) {
                return equality(c, r, Some(1), t, v);
            }
            if let Some(c) = bare_col(r, t) {
                return equality(c, l, Some(1), t, v);
            }
            return all_ranges(v, t, RangeKind::Expression);
        }
        let kind = match op.as_str() {
            "<>" | "!=" => RangeKind::NotEqual,
            "~~" | "~~*" | "!~~" | "!~~*" | "~" | "~*" | "!~" | "!~*" => RangeKind::Like,
            _ if bare_col(l, t).is_some() || bare_col(r, t).is_some() => RangeKind::Comparison(op),
            _ => RangeKind::Expression,
        };
        return all_ranges(v, t, kind);
    }
    if is(pb::AExprKind::AexprOpAny) {
        if op == "=" {
            if let Some(c) = bare_col(l, t) {
                return equality(c, r, array_len(r), t, v);
            }
        }
        return all_ranges(v, t, RangeKind::AnyAll);
    }
    if is(pb::AExprKind::AexprIn) {
        if op == "=" {
            if let (Some(c), Some(("List", items))) = (bare_col(l, t), node(r)) {
                let n = items.get("items").and_then(Value::as_array).map(Vec::len);
                return equality(c, r, n, t, v);
            }
            return all_ranges(v, t, RangeKind::Expression);
        }
        return all_ranges(v, t, RangeKind::NotIn);
    }
    let kind = if is(pb::AExprKind::AexprBetween) || is(pb::AExprKind::AexprBetweenSym) {
        RangeKind::Between
    } else if is(pb::AExprKind::AexprNotBetween) || is(pb::AExprKind::AexprNotBetweenSym) {
        RangeKind::NotBetween
    } else if is(pb::AExprKind::AexprDistinct) {
        RangeKind::DistinctFrom
    } else if is(pb::AExprKind::AexprLike) || is(pb::AExprKind::AexprIlike) || is(pb::AExprKind::AexprSimilar) {
        RangeKind::Like
    } else if is(pb::AExprKind::AexprOpAll) {
        RangeKind::AnyAll
    } else {
        RangeKind::Expression
    };
    all_ranges(v, t, kind)
}

fn and(args: Vec<Cond>) -> Cond {
    let mut out = Cond::default();
    for a in args {
        for (c, n) in a.points {
            let e = out.points.entry(c).or_insert(n);
            *e = match (*e, n) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (Some(x), None) | (None, Some(x)) => Some(x),
                (None, None) => None,
            };
        }
        for (c, k) in a.ranges {
            out.ranges.entry(c).or_insert(k);
        }
        out.refs.extend(a.refs);
    }
    out
}

fn or(args: Vec<Cond>) -> Cond {
    let mut out = Cond::default();
    for a in &args {
        out.refs.extend(a.refs.iter().cloned());
        for (c, k) in &a.ranges {
            out.ranges.entry(c.clone()).or_insert_with(|| k.clone());
        }
    }
    for c in &out.refs {
        let mut total = Some(0usize);
        let mut all = true;
        for a in &args {
            match a.points.get(c) {
                Some(n) => total = total.zip(*n).map(|(x, y)| x + y),
                None => all = false,
            }
        }
        if all {
            out.points.insert(c.clone(), total);
        }
    }
    for c in out.refs.clone() {
        if !out.points.contains_key(&c) {
            out.ranges.entry(c).or_insert(RangeKind::Or);
        }
    }
    out
}

/// The number of elements of an array literal: `ARRAY[…]`, `'{…}'`, or either cast.
pub fn array_len(v: &Value) -> Option<usize> {
    match node(v)? {
        ("AArrayExpr", a) => Some(a.get("elements").and_then(Value::as_array).map_or(0, Vec::len)),
        ("TypeCast", tc) => array_len(tc.get("arg")?),
        ("AConst", c) => {
            let s = c.get("val")?.get("Sval")?.get("sval")?.as_str()?.trim();
            let inner = s.strip_prefix('{')?.strip_suffix('}')?;
            if inner.trim().is_empty() {
                Some(0)
            } else {
                // Top-level commas outside quotes and nested braces.
                let (mut depth, mut quoted, mut n) = (0i32, false, 1usize);
                let mut prev = '\0';
                for ch in inner.chars() {
                    match ch {
                        '"' if prev != '\\' => quoted = !quoted,
                        '{' if !quoted => depth += 1,
                        '}' if !quoted => depth -= 1,
                        ',' if !quoted && depth == 0 => n += 1,
                        _ => {}
                    }
                    prev = ch;
                }
                Some(n)
            }
        }
        _ => None,
    }
}
