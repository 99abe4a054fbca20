//! The predicate a write through a view really applies: the statement's WHERE and every view
//! level's own WHERE, each view column replaced by the expression it shows, down to the base
//! table — written as `DELETE FROM base WHERE …` for the analyzer to classify like any write.
//! So a view's `WHERE id BETWEEN …` is a range on `id`, a column `id * 1 AS k` makes
//! `k = 5` the column inside arithmetic, and a constant column `1 AS one` makes `one = 1` a
//! WHERE that restricts nothing.
//!
//! Owns: following the definitions of [`super::View::defs`] (PostgreSQL's own SQL, from
//! `pg_get_viewdef`) from the view written to its base. Does not own: the classification
//! (`crate::analyze`), the rules (`policy::decide`).

use super::view::Def;
use crate::analyze::Where;
use pg_query::protobuf as pb;
use pg_query::NodeEnum;

/// What write `w` of `statement` to the relation `now` (schema, name) applies through `view`
/// (over a policy table or not: `require-where` is everyone's): the WHERE it really applies
/// to the base table, and why it is refused (`taken_over` as found, or why the view cannot be
/// followed — refused for the policy tables it reaches).
pub(super) fn through(
    view: Option<&super::View>,
    now: Option<&(String, String)>,
    w: &crate::analyze::Write,
    statement: &str,
    taken_over: Option<String>,
) -> (Option<Where>, Option<String>) {
    let (Some(v), Some((s, n)), None) = (view.filter(|v| !v.defs.is_empty()), now, &taken_over) else {
        return (None, taken_over);
    };
    if !w.op.is_row_write() {
        return (None, None);
    }
    match predicate(statement, (s, n), &v.defs) {
        Ok(p) => (p, None),
        Err(why) => (None, Some(format!("the write through {s}.{n} cannot be followed to its base table: {why}"))),
    }
}

/// The WHERE the write of `statement` to view `top` (schema, name) applies to the base table,
/// classified (`Ok(None)`: `WHERE CURRENT OF`, judged as written). `Err`: why the write
/// cannot be followed (the caller refuses it).
pub(super) fn predicate(statement: &str, top: (&str, &str), defs: &[Def]) -> Result<Option<Where>, String> {
    // The text as the analyzer read it under either `standard_conforming_strings`: the same
    // tree both ways unless a backslash is in it.
    let default = base_delete(statement, pg_query::ParserOptions::DEFAULT, top, defs)?;
    if statement.contains('\\') {
        let other = base_delete(statement, pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS, top, defs);
        if other.as_ref() != Ok(&default) {
            return Err("its text reads differently with and without standard_conforming_strings".into());
        }
    }
    let Some(text) = default else { return Ok(None) };
    let statements = crate::analyze::analyze(&text, crate::analyze::ParseOptions::default());
    match statements.as_slice() {
        [st] if st.opaque.is_empty() => match st.writes.as_slice() {
            [w] => Ok(Some(w.predicate.clone().unwrap_or(Where::Absent))),
            _ => Err(format!("its predicate on the base table cannot be read ({text})")),
        },
        _ => Err(format!("its predicate on the base table cannot be read ({text})")),
    }
}

/// `DELETE FROM base [AS alias] [WHERE …]`: see [`predicate`].
fn base_delete(
    statement: &str,
    opts: pg_query::ParserOptions,
    top: (&str, &str),
    defs: &[Def],
) -> Result<Option<String>, String> {
    let tree = pg_query::parse(statement, opts).map_err(|e| format!("it cannot be parsed ({e})"))?;
    let version = tree.protobuf.version;
    let node = match tree.protobuf.stmts.as_slice() {
        [raw] => raw.stmt.as_ref().and_then(|n| n.node.as_ref()),
        _ => None,
    };
    let (relation, where_clause, beside) = match node {
        Some(NodeEnum::DeleteStmt(d)) => (d.relation.as_ref(), d.where_clause.as_deref(), !d.using_clause.is_empty()),
        Some(NodeEnum::UpdateStmt(u)) => (u.relation.as_ref(), u.where_clause.as_deref(), !u.from_clause.is_empty()),
        _ => (None, None, false),
    };
    let Some(relation) = relation.filter(|r| r.relname == top.1) else {
        return Err(
            "it is not a plain DELETE or UPDATE of the view (a WITH, EXPLAIN or MERGE around it is not followed)"
                .into(),
        );
    };
    if beside {
        return Err(
            "a write through a view beside other relations (UPDATE … FROM, DELETE … USING) is not followed".into()
        );
    }
    if matches!(where_clause.and_then(|w| w.node.as_ref()), Some(NodeEnum::CurrentOfExpr(_))) {
        return Ok(None);
    }
    let mut text = where_clause.map(|w| expr_text(w, version)).transpose()?;
    let mut qualifier = alias_or_name(relation);
    let mut schema = Some(relation.schemaname.clone()).filter(|s| !s.is_empty());
    let mut at = (top.0.to_string(), top.1.to_string());
    for _ in 0..64 {
        let def = defs
            .iter()
            .find(|(s, n, _)| *s == at.0 && *n == at.1)
            .and_then(|(_, _, d)| d.as_deref())
            .ok_or_else(|| format!("the definition of view {}.{} could not be read", at.0, at.1))?;
        let unreadable = |why: &str| format!("the definition of view {}.{} cannot be followed: {why}", at.0, at.1);
        let select = match pg_query::parse(def, pg_query::ParserOptions::DEFAULT) {
            Ok(t) => match t.protobuf.stmts.first().and_then(|r| r.stmt.as_ref()).and_then(|n| n.node.clone()) {
                Some(NodeEnum::SelectStmt(s)) => s,
                _ => return Err(unreadable("it is not a single SELECT")),
            },
            Err(e) => return Err(unreadable(&e.to_string())),
        };
        let from = match select.from_clause.as_slice() {
            [pb::Node { node: Some(NodeEnum::RangeVar(r)) }] => r.clone(),
            _ => return Err(unreadable("it does not read exactly one relation")),
        };
        if !plain_select(&select) {
            return Err(unreadable("it is not a plain SELECT … FROM one relation WHERE …"));
        }
        let mut columns = Vec::new();
        for t in &select.target_list {
            let Some(NodeEnum::ResTarget(rt)) = t.node.as_ref() else { return Err(unreadable("a column")) };
            let Some(val) = rt.val.as_deref() else { return Err(unreadable("a column")) };
            let name = match (rt.name.as_str(), val.node.as_ref()) {
                ("", Some(NodeEnum::ColumnRef(c))) => match c.fields.last().and_then(|f| f.node.as_ref()) {
                    Some(NodeEnum::String(s)) => s.sval.clone(),
                    _ => return Err(unreadable("a column without a name")),
                },
                ("", _) => return Err(unreadable("a column without a name")),
                (n, _) => n.to_string(),
            };
            columns.push((name, format!("({})", expr_text(val, version)?)));
        }
        let next = alias_or_name(&from);
        text = match text {
            Some(t) => Some(substitute(&t, &qualifier, schema.as_deref(), &columns, &ident(&next))?),
            None => None,
        };
        let own = select.where_clause.as_deref().map(|w| expr_text(w, version)).transpose()?;
        text = match (text, own) {
            (Some(a), Some(b)) => Some(format!("({a}) AND ({b})")),
            (a, b) => a.or(b),
        };
        // The relation it reads: a view of the answer (the next level) or the base table.
        let candidates: Vec<&Def> = defs
            .iter()
            .filter(|(s, n, _)| *n == from.relname && (from.schemaname.is_empty() || *s == from.schemaname))
            .collect();
        let [(s, n, d)] = candidates.as_slice() else {
            return Err(unreadable(&format!("which relation {} is cannot be told", from.relname)));
        };
        qualifier = next;
        schema = Some(from.schemaname.clone()).filter(|s| !s.is_empty());
        if d.is_some() {
            at = (s.clone(), n.clone());
            continue;
        }
        let alias = from.alias.as_ref().map(|a| format!(" AS {}", ident(&a.aliasname))).unwrap_or_default();
        let filter = text.map(|t| format!(" WHERE {t}")).unwrap_or_default();
        return Ok(Some(format!("DELETE FROM {}{alias}{filter}", super::quote(s, n))));
    }
    Err("its views are nested too deep to follow".into())
}

/// A SELECT whose rows are its FROM's rows as its WHERE keeps them: no GROUP BY, HAVING,
/// DISTINCT, window, LIMIT, OFFSET, `WITH` or set operation.
pub(super) fn plain_select(q: &pb::SelectStmt) -> bool {
    q.group_clause.is_empty()
        && q.having_clause.is_none()
        && q.distinct_clause.is_empty()
        && q.limit_count.is_none()
        && q.limit_offset.is_none()
        && q.window_clause.is_empty()
        && q.with_clause.is_none()
        && q.larg.is_none()
}

fn alias_or_name(r: &pb::RangeVar) -> String {
    r.alias.as_ref().map(|a| a.aliasname.clone()).unwrap_or_else(|| r.relname.clone())
}

/// A name as a quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An expression's text, as pg_query deparses it.
fn expr_text(expr: &pb::Node, version: i32) -> Result<String, String> {
    let target = pb::ResTarget { val: Some(Box::new(expr.clone())), ..Default::default() };
    let select = pb::SelectStmt {
        target_list: vec![pb::Node { node: Some(NodeEnum::ResTarget(Box::new(target))) }],
        op: pb::SetOperation::SetopNone as i32,
        limit_option: pb::LimitOption::Default as i32,
        ..Default::default()
    };
    let raw = pb::RawStmt {
        stmt: Some(Box::new(pb::Node { node: Some(NodeEnum::SelectStmt(Box::new(select))) })),
        stmt_location: 0,
        stmt_len: 0,
    };
    let tree = pb::ParseResult { version, stmts: vec![raw] };
    let text =
        pg_query::deparse(&tree, Default::default()).map_err(|e| format!("an expression cannot be printed ({e})"))?;
    text.strip_prefix("SELECT ").map(str::to_string).ok_or_else(|| format!("an expression cannot be printed ({text})"))
}

/// `text` (an expression over the view `qualifier`, of `schema` when written so) with each
/// reference to one of its `columns` replaced by the expression the view shows there, and
/// the view's whole row by the row of the relation it reads (`next`).
fn substitute(
    text: &str,
    qualifier: &str,
    schema: Option<&str>,
    columns: &[(String, String)],
    next: &str,
) -> Result<String, String> {
    let tokens = pg_query::scan_tokens(text).map_err(|e| format!("an expression cannot be read ({e})"))?;
    let span = |t: &pb::ScanToken| text.get(t.start as usize..t.end as usize).unwrap_or("");
    let is = |i: usize, k: pb::Token| tokens.get(i).is_some_and(|t| t.token == k as i32);
    let is_name = |i: usize| {
        tokens.get(i).is_some_and(|t| {
            t.token == pb::Token::Ident as i32
                || t.keyword_kind == pb::KeywordKind::UnreservedKeyword as i32
                || t.keyword_kind == pb::KeywordKind::ColNameKeyword as i32
        })
    };
    let name = |i: usize| {
        let s = tokens.get(i).map(span).unwrap_or("");
        match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(q) => q.replace("\"\"", "\""),
            None => s.to_lowercase(),
        }
    };
    let column = |c: &str| columns.iter().find(|(n, _)| n == c).map(|(_, e)| e.clone());
    let mut out = String::new();
    let mut copied = 0usize;
    let mut i = 0usize;
    while i < tokens.len() {
        // Not a column: a name after `.` (part of a chain), `::` (a type) or `AS` (an alias).
        let continues =
            i > 0 && (is(i - 1, pb::Token::Ascii46) || is(i - 1, pb::Token::Typecast) || is(i - 1, pb::Token::As));
        if !is_name(i) || continues {
            i += 1;
            continue;
        }
        // A dotted chain of names (`a`, `v.a`, `s.v.a`, `v.*`).
        let mut chain = vec![name(i)];
        let mut end = i;
        while is(end + 1, pb::Token::Ascii46) && (is_name(end + 2) || is(end + 2, pb::Token::Ascii42)) {
            end += 2;
            chain.push(if is(end, pb::Token::Ascii42) { "*".into() } else { name(end) });
        }
        let call = is(end + 1, pb::Token::Ascii40);
        let ours = |q: &str, s: Option<&str>| q == qualifier && (s.is_none() || s == schema);
        let replacement = match chain.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            _ if call => None,
            [c] => column(c).or_else(|| (*c == qualifier).then(|| next.to_string())),
            [q, "*"] if ours(q, None) => Some(format!("{next}.*")),
            [q, c] if ours(q, None) => column(c),
            [s, q, "*"] if ours(q, Some(s)) => Some(format!("{next}.*")),
            [s, q, c] if ours(q, Some(s)) => column(c),
            _ => None,
        };
        if let Some(r) = replacement {
            let (from, to) = (tokens[i].start as usize, tokens[end].end as usize);
            out.push_str(text.get(copied..from).unwrap_or(""));
            out.push_str(&r);
            copied = to;
        }
        i = end + 1;
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Vec<Def> {
        vec![
            ("pg_temp_3".into(), "v".into(), Some("SELECT users.id, users.email, users.auth_source FROM users WHERE ((users.id >= '-91111120'::integer) AND (users.id <= '-91111111'::integer));".into())),
            ("pg_temp_3".into(), "uv3".into(), Some("SELECT (u.id * 1) AS k, u.email, 1 AS one FROM public.users u;".into())),
            ("pg_temp_3".into(), "top".into(), Some("SELECT uv3.k AS kk, uv3.one FROM uv3 WHERE (uv3.email IS NOT NULL);".into())),
            ("public".into(), "users".into(), None),
        ]
    }

    #[test]
    fn a_view_where_and_its_columns_are_followed_to_the_base_table() {
        let d = defs();
        let t = |s: &str, v: &str| base_delete(s, pg_query::ParserOptions::DEFAULT, ("pg_temp_3", v), &d);
        let got = t("DELETE FROM v WHERE auth_source = 'oauth'", "v").unwrap().unwrap();
        assert!(
            got.starts_with("DELETE FROM \"public\".\"users\" WHERE ((users.auth_source) = 'oauth') AND ("),
            "{got}"
        );
        assert!(got.contains("users.id >= '-91111120'"), "{got}");
        let got = t("DELETE FROM top x WHERE x.kk = 5 AND one = 1 AND x.one > 0", "top").unwrap().unwrap();
        assert!(got.contains("((u.id * 1)) = 5"), "{got}");
        assert!(got.contains("AS \"u\""), "{got}");
        assert!(!got.contains("one"), "{got}");
        assert_eq!(t("DELETE FROM v", "v").unwrap().unwrap().matches("WHERE").count(), 1);
        // An alias in a subquery is no column of the view.
        let got = t("DELETE FROM v WHERE id IN (SELECT b.uid AS id FROM bans b)", "v").unwrap().unwrap();
        assert!(got.contains("AS id FROM"), "{got}");
        assert!(t("WITH d AS (DELETE FROM v RETURNING 1) SELECT 1", "v").is_err());
        assert!(t("DELETE FROM v USING orders WHERE true", "v").is_err());
        assert_eq!(t("DELETE FROM v WHERE CURRENT OF c", "v"), Ok(None));
        // Classified as the base table's: the view's range, the expression, the constant.
        let p = |s: &str, v: &str| match predicate(s, ("pg_temp_3", v), &d) {
            Ok(Some(Where::Cond(c))) => c,
            other => panic!("{other:?}"),
        };
        assert!(p("DELETE FROM v WHERE auth_source = 'oauth'", "v").range_of("id").is_some());
        assert!(p("DELETE FROM v WHERE id = 5", "v").points.contains_key("id"));
        assert!(p("DELETE FROM top WHERE kk BETWEEN 1 AND 9", "top").range_of("id").is_some());
        assert_eq!(predicate("DELETE FROM uv3 WHERE one = 1", ("pg_temp_3", "uv3"), &d), Ok(Some(Where::Constant)));
        let missing = vec![d[0].clone()];
        assert!(base_delete("DELETE FROM v", pg_query::ParserOptions::DEFAULT, ("pg_temp_3", "v"), &missing).is_err());
    }
}
