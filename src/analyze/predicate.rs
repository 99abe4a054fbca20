//! The shape of a DELETE/UPDATE/MERGE predicate with respect to the target's columns: which
//! columns it pins to a few values (point lookups) and which it sweeps (ranges).
//!
//! Owns: classifying expressions. Does not own: which columns are protected (policy) — the
//! shape is reported for every column of the target, and the policy picks.

use super::children::each_child;
use super::nodes::{const_str, items, opt, sval};
use super::restrict;
use pg_query::protobuf as pb;
use pg_query::NodeRef as R;
use std::collections::{BTreeMap, BTreeSet};

/// How column references name the statement's target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The alias if there is one, else the relation name: PostgreSQL hides the name behind
    /// an alias.
    pub qualifier: String,
    pub schema: Option<String>,
    /// The statement names other relations beside the target (`UPDATE … FROM`, `DELETE …
    /// USING`, MERGE's source): an unqualified column may be theirs.
    pub others: bool,
    /// Those relations, when each is a plain relation the catalog can say the columns of
    /// (`None`: a subquery, a function, column aliases, a `WITH`).
    pub beside: Option<Vec<super::RelName>>,
    /// Unqualified names known to be the target's columns (taken as such outside subqueries).
    pub mine: BTreeSet<String>,
    /// The target's relation name (for the self-joins and subqueries over it, `restrict`).
    pub relation: String,
    /// The statement's `USING`/`FROM` (MERGE's source) entries that read the target's relation
    /// again — a self-join (`UPDATE t x … FROM t y`), or a derived table or `WITH` over it
    /// (`restrict::selves`).
    pub selves: Vec<super::restrict::Mirror>,
    /// The statement's `WITH` queries that read the target's relation without restricting it.
    pub self_ctes: Vec<String>,
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
    /// Shared: a statement's facts are copied out of the shape cache for every text of its
    /// shape, and this is the larger part of them.
    Cond(std::sync::Arc<Cond>),
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
    /// Compared with a value a function or a user's operator computes: the server may
    /// evaluate it for each row (`id = -nextval('s')`, `id = 5 + floor(random() * 10)`), so
    /// it pins nothing (forty-third pass L1).
    Computed,
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
    /// An unqualified name that may be the target's column or another relation's: inside a
    /// subquery with a FROM of its own (an outer reference), or in a write that names other
    /// relations. Which one it is depends on the catalog; it is never taken as a point.
    Unqualified,
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
            RangeKind::Computed => write!(
                f,
                "compared with a value a function or operator of a user's computes, which may differ for each row; only constants, parameters, casts and built-in operators pin it"
            ),
            RangeKind::Subquery => write!(f, "subquery"),
            RangeKind::Or => write!(f, "OR with a branch that is not a point lookup"),
            RangeKind::Not => write!(f, "NOT"),
            RangeKind::NotNull => write!(f, "IS NOT NULL"),
            RangeKind::Join => write!(f, "join with another table"),
            RangeKind::AnyAll => write!(f, "ANY/ALL comparison"),
            RangeKind::LongList(n) => write!(f, "IN list of {n} values"),
            RangeKind::Unqualified => write!(
                f,
                "an unqualified name that may be this column, inside a subquery or beside another relation; qualify it with the table's name"
            ),
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
    /// The whole row appears (`(t).id`, `t.*`, `id(t)`, `to_jsonb(t)`): every column not
    /// pinned is swept, for this reason.
    whole_row: Option<RangeKind>,
    /// Beside other relations that are all plain relations ([`Target::beside`]): them, and
    /// for each unqualified name what it would be if the catalog says it is the target's
    /// column and none of theirs ([`Where::resolved`]).
    beside: Option<Vec<super::RelName>>,
    if_mine: BTreeMap<String, Cond>,
    /// It restricts the target's rows (see `restrict`): what `require-where` asks for.
    restricting: bool,
}

impl Where {
    /// Whether the WHERE restricts the target's rows: compares something of the target's
    /// row with something independent of it (see `restrict`): what `require-where` asks for.
    /// A name that may belong to another relation ([`RangeKind::Unqualified`]) does not, nor
    /// does a tautology (`t.id = t.id`, `true OR …`).
    pub fn restricts(&self) -> bool {
        match self {
            Where::Absent | Where::Constant => false,
            Where::CurrentOf => true,
            Where::Cond(c) => c.restricting,
        }
    }

    /// Whether it names the target's columns for sure (a WHERE that does and still does not
    /// restrict is a tautology, or compares the row with itself).
    pub fn names_columns(&self) -> bool {
        matches!(self, Where::Cond(c) if !c.refs.is_empty() || c.whole_row.is_some())
    }
}

impl Where {
    /// The other relations beside the target, when the catalog can resolve its unqualified
    /// names ([`Target::beside`]), and those names.
    pub fn unqualified_beside(&self) -> Option<(&[super::RelName], Vec<&str>)> {
        match self {
            Where::Cond(c) if !c.if_mine.is_empty() => {
                Some((c.beside.as_deref()?, c.if_mine.keys().map(String::as_str).collect()))
            }
            _ => None,
        }
    }

    /// The shape once the catalog said which unqualified names are the target's columns (and
    /// none of the other relations'): each such name as if it had been qualified.
    pub fn resolved(&self, mine: &[String]) -> std::borrow::Cow<'_, Where> {
        use std::borrow::Cow;
        let Where::Cond(c) = self else { return Cow::Borrowed(self) };
        if !mine.iter().any(|m| c.if_mine.contains_key(m)) {
            return Cow::Borrowed(self);
        }
        let mut r = Cond::clone(c);
        for m in mine {
            let Some(x) = c.if_mine.get(m) else { continue };
            r.ranges.remove(m);
            if let Some(k) = x.ranges.get(m) {
                r.ranges.insert(m.clone(), k.clone());
            }
            if let Some(n) = x.points.get(m) {
                r.points.insert(m.clone(), *n);
            }
            if x.refs.contains(m) {
                r.refs.insert(m.clone());
            }
            // Restricting once the name is known to be the target's (`restrict` fails closed
            // on a name that may be another relation's).
            r.restricting |= x.restricting;
        }
        Cow::Owned(Where::Cond(r.into()))
    }
}

impl Cond {
    /// Why a column is swept, if it is: named in a range, or reached through the whole row.
    pub fn range_of(&self, column: &str) -> Option<&RangeKind> {
        self.ranges.get(column).or(self.whole_row.as_ref())
    }
}

pub fn classify(where_clause: Option<R<'_>>, t: &Target) -> Where {
    let Some(w) = where_clause else {
        return Where::Absent;
    };
    finish(w, t)
}

/// MERGE: the join condition and the WHEN condition together decide which rows an action hits.
pub fn classify_merge(join: Option<R<'_>>, when: Option<R<'_>>, t: &Target) -> Where {
    match (join, when) {
        (None, None) => Where::Absent,
        (Some(one), None) | (None, Some(one)) => finish(one, t),
        (Some(a), Some(b)) => {
            if has_current_of(a) || has_current_of(b) {
                return Where::CurrentOf;
            }
            let mut c = and(vec![cond(a, t), cond(b, t)]);
            c.restricting = restrict::restricts_any(&[a, b], t);
            if c.refs.is_empty() && c.whole_row.is_none() && c.ranges.is_empty() {
                Where::Constant
            } else {
                Where::Cond(c.into())
            }
        }
    }
}

fn finish(w: R<'_>, t: &Target) -> Where {
    if has_current_of(w) {
        return Where::CurrentOf;
    }
    let mut c = cond(w, t);
    c.restricting = restrict::restricts(w, t);
    if t.others && t.mine.is_empty() && t.beside.is_some() {
        // Each unqualified name as the target's column alone: what it is once the catalog
        // says so (`Where::resolved`).
        let names: Vec<String> =
            c.ranges.iter().filter(|(_, k)| **k == RangeKind::Unqualified).map(|(n, _)| n.clone()).collect();
        for n in names {
            let t = Target { mine: BTreeSet::from([n.clone()]), ..t.clone() };
            let mut x = cond(w, &t);
            x.restricting = restrict::restricts(w, &t);
            c.if_mine.insert(n, x);
        }
        c.beside = t.beside.clone();
    }
    if c.refs.is_empty() && c.whole_row.is_none() && c.ranges.is_empty() {
        Where::Constant
    } else {
        Where::Cond(c.into())
    }
}

/// Whether `WHERE CURRENT OF` appears anywhere in the expression.
fn has_current_of(v: R<'_>) -> bool {
    if matches!(v, R::CurrentOfExpr(_)) {
        return true;
    }
    let mut found = false;
    each_child(v, &mut |c| found = found || has_current_of(c));
    found
}

/// Whether a ColumnRef names the target's whole row: `t`, `t.*`, `s.t.*` (a bare `t` may also
/// be a column of that name; it is taken as both).
fn whole_row(fields: &[pb::Node], t: &Target) -> bool {
    let is_star = |f: &pb::Node| matches!(f.node, Some(pb::node::Node::AStar(_)));
    match fields {
        [q] => sval(q) == Some(t.qualifier.as_str()),
        [q, star] | [_, q, star] => is_star(star) && sval(q) == Some(t.qualifier.as_str()),
        _ => false,
    }
}

/// The target column a ColumnRef names, if it surely names one. Inside a subquery, and in a
/// write that names other relations, only a qualified reference surely names the target (an
/// unqualified one may: see [`unqualified`]).
fn target_col(fields: &[pb::Node], t: &Target, in_subquery: bool) -> Option<String> {
    let mut names = [""; 4];
    if fields.len() > names.len() {
        return None;
    }
    for (n, f) in names.iter_mut().zip(fields) {
        *n = sval(f)?; // `t.*` and the like: not a column
    }
    match &names[..fields.len()] {
        [c] if !in_subquery && (!t.others || t.mine.contains(*c)) => Some((*c).to_string()),
        [q, c] if *q == t.qualifier => Some((*c).to_string()),
        [s, q, c] | [_, s, q, c] if *q == t.qualifier && t.schema.as_deref().is_none_or(|ts| ts == *s) => {
            Some((*c).to_string())
        }
        _ => None,
    }
}

/// An unqualified name that may or may not be the target's column: inside a subquery with a
/// FROM of its own, or beside other relations.
fn unqualified<'a>(fields: &'a [pb::Node], t: &Target, in_subquery: bool) -> Option<&'a str> {
    match fields {
        [c] if in_subquery || t.others => sval(c).filter(|c| in_subquery || !t.mine.contains(*c)),
        _ => None,
    }
}

/// What an expression is made of, as far as the target is concerned.
#[derive(Default)]
struct Parts {
    target: BTreeSet<String>,
    /// Unqualified names that may be the target's columns.
    maybe: BTreeSet<String>,
    /// The target's whole row.
    whole_row: bool,
    other_columns: bool,
    subquery: bool,
    /// A function call, or an operator qualified with a schema other than `pg_catalog`.
    calls: bool,
}

fn parts(v: R<'_>, t: &Target, in_subquery: bool, out: &mut Parts) {
    match v {
        R::ColumnRef(c) => {
            out.whole_row |= whole_row(&c.fields, t);
            if let Some(name) = unqualified(&c.fields, t, in_subquery) {
                out.maybe.insert(name.to_string());
            }
            match target_col(&c.fields, t, in_subquery) {
                Some(c) => {
                    out.target.insert(c);
                }
                None => out.other_columns = true,
            }
        }
        R::FuncCall(_) => {
            out.calls = true;
            each_child(v, &mut |c| parts(c, t, in_subquery, out));
        }
        R::AExpr(b) if b.name.len() > 1 && b.name.first().and_then(sval) != Some("pg_catalog") => {
            out.calls = true;
            each_child(v, &mut |c| parts(c, t, in_subquery, out));
        }
        R::SubLink(s) => {
            out.subquery = true;
            if let Some(te) = opt(&s.testexpr) {
                parts(te, t, in_subquery, out);
            }
            // A subquery with no FROM of its own can only mean the outer target by an
            // unqualified name (`EXISTS (SELECT 1 WHERE id BETWEEN …)`).
            let own_from = !matches!(opt(&s.subselect), Some(R::SelectStmt(q))
                if q.from_clause.is_empty() && q.larg.is_none() && q.rarg.is_none() && q.with_clause.is_none());
            if let Some(q) = opt(&s.subselect) {
                parts(q, t, in_subquery || own_from, out);
            }
        }
        _ => each_child(v, &mut |c| parts(c, t, in_subquery, out)),
    }
}

fn parts_of(v: R<'_>, t: &Target) -> Parts {
    let mut p = Parts::default();
    parts(v, t, false, &mut p);
    p
}

/// A bare reference to a target column (no cast, no arithmetic).
fn bare_col(v: Option<R<'_>>, t: &Target) -> Option<String> {
    match v? {
        R::ColumnRef(c) => target_col(&c.fields, t, false),
        _ => None,
    }
}

/// Everything referenced becomes a range of the given kind.
fn all_ranges(v: R<'_>, t: &Target, kind: RangeKind) -> Cond {
    let p = parts_of(v, t);
    let kind = if p.subquery { RangeKind::Subquery } else { kind };
    let mut ranges: BTreeMap<String, RangeKind> = p.maybe.iter().map(|c| (c.clone(), RangeKind::Unqualified)).collect();
    ranges.extend(p.target.iter().map(|c| (c.clone(), kind.clone())));
    let whole_row = p.whole_row.then_some(kind);
    Cond { points: BTreeMap::new(), ranges, refs: p.target, whole_row, ..Default::default() }
}

fn point(col: String, n: Option<usize>) -> Cond {
    let mut c = Cond::default();
    c.refs.insert(col.clone());
    c.points.insert(col, n);
    c
}

/// `col = value`: a point when the value is made of constants, parameters, casts and built-in
/// operators only (no function call: a volatile one is evaluated for each row).
fn equality(col: String, value: Option<R<'_>>, n: Option<usize>, t: &Target, whole: R<'_>) -> Cond {
    let p = value.map(|v| parts_of(v, t)).unwrap_or_default();
    if p.subquery {
        return all_ranges(whole, t, RangeKind::Subquery);
    }
    if !p.target.is_empty() || p.whole_row || !p.maybe.is_empty() {
        return all_ranges(whole, t, RangeKind::Expression);
    }
    if p.other_columns {
        return all_ranges(whole, t, RangeKind::Join);
    }
    if p.calls {
        return all_ranges(whole, t, RangeKind::Computed);
    }
    point(col, n)
}

fn cond(v: R<'_>, t: &Target) -> Cond {
    match v {
        R::BoolExpr(b) => {
            let args: Vec<Cond> = items(&b.args).map(|a| cond(a, t)).collect();
            if b.boolop == pb::BoolExprType::AndExpr as i32 {
                and(args)
            } else if b.boolop == pb::BoolExprType::OrExpr as i32 {
                or(args)
            } else {
                all_ranges(v, t, RangeKind::Not)
            }
        }
        R::AExpr(b) => aexpr(v, b, t),
        R::NullTest(b) => match bare_col(opt(&b.arg), t) {
            Some(c) if b.nulltesttype == pb::NullTestType::IsNull as i32 => point(c, Some(1)),
            _ => all_ranges(v, t, RangeKind::NotNull),
        },
        R::SubLink(_) => all_ranges(v, t, RangeKind::Subquery),
        _ => all_ranges(v, t, RangeKind::Expression),
    }
}

fn aexpr(v: R<'_>, b: &pb::AExpr, t: &Target) -> Cond {
    let k = b.kind;
    // `OPERATOR(s.=)` outside pg_catalog is the user's operator, whatever it is called (the
    // server never finds an unqualified operator in pg_temp): no point lookup.
    if b.name.len() > 1 && b.name.first().and_then(sval) != Some("pg_catalog") {
        return all_ranges(v, t, RangeKind::Expression);
    }
    let op = b.name.last().and_then(sval).unwrap_or("");
    let (l, r) = (opt(&b.lexpr), opt(&b.rexpr));
    let is = |x: pb::AExprKind| k == x as i32;
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
        let kind = match op {
            "<>" | "!=" => RangeKind::NotEqual,
            "~~" | "~~*" | "!~~" | "!~~*" | "~" | "~*" | "!~" | "!~*" => RangeKind::Like,
            _ if bare_col(l, t).is_some() || bare_col(r, t).is_some() => RangeKind::Comparison(op.to_string()),
            _ => RangeKind::Expression,
        };
        return all_ranges(v, t, kind);
    }
    if is(pb::AExprKind::AexprOpAny) {
        if op == "=" {
            if let Some(c) = bare_col(l, t) {
                // A list the text shows (counted), or a parameter (its values are the
                // client's list); any other array is computed and may hold any ids.
                match r.and_then(array_len) {
                    Some(n) => return equality(c, r, Some(n), t, v),
                    None if r.is_some_and(is_parameter) => return equality(c, r, None, t, v),
                    None => {}
                }
            }
        }
        return all_ranges(v, t, RangeKind::AnyAll);
    }
    if is(pb::AExprKind::AexprIn) {
        if op == "=" {
            if let (Some(c), Some(R::List(list))) = (bare_col(l, t), r) {
                return equality(c, r, Some(list.items.len()), t, v);
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
        out.whole_row = out.whole_row.or(a.whole_row);
    }
    out
}

fn or(args: Vec<Cond>) -> Cond {
    let mut out = Cond::default();
    for a in &args {
        out.refs.extend(a.refs.iter().cloned());
        if a.whole_row.is_some() {
            out.whole_row = Some(RangeKind::Or);
        }
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

/// A parameter reference (`$1`), possibly cast (`$1::bigint[]`).
fn is_parameter(v: R<'_>) -> bool {
    match v {
        R::ParamRef(_) => true,
        R::TypeCast(tc) => opt(&tc.arg).is_some_and(is_parameter),
        _ => false,
    }
}

/// The number of elements of an array literal: `ARRAY[…]`, `'{…}'`, or either cast.
pub fn array_len(v: R<'_>) -> Option<usize> {
    match v {
        R::AArrayExpr(a) => Some(a.elements.len()),
        R::TypeCast(tc) => array_len(opt(&tc.arg)?),
        R::AConst(_) => {
            let s = const_str(v)?.trim();
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
