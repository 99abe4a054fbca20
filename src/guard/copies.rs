//! `COPY … FROM STDIN` into a table whose default moves a protected sequence (the incident's
//! `users.id DEFAULT -nextval('web_user_id_seq')`). Such a COPY cannot run inside the
//! pre-check (its rows come from the client after the server answers), so blastwall must know
//! from the catalog what it moves. A COPY that supplies the column evaluates no default; one
//! that leaves it out evaluates it once per row — by a default that is nothing but one
//! `nextval` of a named sequence under signs, casts to built-in types and constants, the
//! sequence moves by exactly one per row, the move the identity check allows an INSERT (rows
//! inserted). Such a COPY is relayed. Anything else that may move a sequence — another
//! default or expression of the table (`CHECK`, row security, triggers, indexes, domains), a
//! user function or operator the COPY reaches (`catalog::HiddenCallers`), a `WHERE`, a view or
//! a table with rules, triggers on INSERT or children — keeps it refused as unverifiable.
//!
//! Owns: that judgement of a COPY, and whether a relayed one may move a sequence (read before
//! it: `session::copyback`). Does not own: the catalog's answers (`catalog::copies`,
//! `catalog::HiddenCallers`), or what is refused (`need`, `plan`).

use crate::analyze::Statement;
use crate::catalog::Catalog;
use pg_query::NodeEnum as N;

/// Whether a hidden caller `st` mentions is, for this COPY, nothing but defaults that move a
/// sequence one per row (or that it does not evaluate). A name the catalog must be asked about
/// first is pushed to `unknown` (and the answer is no).
pub(super) fn moves_one_per_row(
    st: &Statement,
    catalog: &Catalog,
    info: &super::SessionInfo,
    unknown: &mut Vec<String>,
) -> bool {
    let database = info.database.as_str();
    if !st.copy_from_stdin || st.calls_functions || !st.opaque.is_empty() {
        return false;
    }
    let Some((table, columns)) = copy_into(&st.text) else { return false };
    // A user function (or `set_config`) reached through any name the text mentions.
    if catalog.with_hidden_callers(database, super::hidden::whose(info), |set| set.mentioned_in(&st.text, true))
        != Some(false)
    {
        return false;
    }
    let (Some(indirect), Some(moves)) = (
        info.names.assumed.is_indirect_insert(catalog, database, &table),
        info.names.assumed.row_moves(catalog, database, &table),
    ) else {
        unknown.push(table);
        return false;
    };
    !indirect
        && !moves.other
        && moves.defaults.iter().all(|(col, expr)| columns.iter().any(|c| c == col) || one_nextval(expr))
}

/// Whether a lone `COPY table [(columns)] FROM STDIN` that blastwall relays may move a
/// sequence: a default it evaluates (a column it leaves out) mentions `nextval`/`setval`, or
/// the catalog has no fresh answer about the table. Such a COPY has the protected sequences
/// read before it, to be put back should it fail (`session::copyback`). Any other text: no.
pub fn may_move_a_sequence(text: &str, catalog: &Catalog, info: &super::SessionInfo) -> bool {
    let Some((table, columns)) = copy_into(text) else { return false };
    match info.names.assumed.row_moves(catalog, &info.database, &table) {
        Some(m) => m.other || m.defaults.iter().any(|(col, _)| !columns.iter().any(|c| c == col)),
        None => true,
    }
}

/// Whether any `COPY … FROM STDIN` among the statements of `text` may move one of the
/// `protected` sequences (their names, lower case): a default it evaluates names one, or the
/// table moves a sequence otherwise, or the catalog has no fresh answer, or its table and
/// columns cannot be named here (a `WHERE`). Such a COPY that is not a Query of its own is
/// not read before (`session::copyback`).
pub fn any_may_move_a_sequence(text: &str, catalog: &Catalog, info: &super::SessionInfo, protected: &[String]) -> bool {
    let names_one = |expr: &str| {
        let expr = expr.to_lowercase();
        protected.iter().any(|n| expr.contains(n.as_str()))
    };
    let Ok(parsed) = crate::analyze::budget::parse(text, 0) else { return false };
    parsed
        .protobuf
        .stmts
        .iter()
        .filter_map(|raw| match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(N::CopyStmt(c)) if c.is_from && !c.is_program && c.filename.is_empty() => Some(c),
            _ => None,
        })
        .any(|c| match copy_target(c) {
            None => true,
            Some((table, columns)) => match info.names.assumed.row_moves(catalog, &info.database, &table) {
                Some(m) => {
                    m.other || m.defaults.iter().any(|(col, expr)| !columns.iter().any(|c| c == col) && names_one(expr))
                }
                None => true,
            },
        })
}

/// The table and the columns a plain `COPY table [(columns)] FROM STDIN` (no `WHERE`, no query)
/// writes, as the server names them.
fn copy_into(text: &str) -> Option<(String, Vec<String>)> {
    let parsed = crate::analyze::budget::parse(text, 0).ok()?;
    let [raw] = parsed.protobuf.stmts.as_slice() else { return None };
    let Some(N::CopyStmt(c)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else { return None };
    copy_target(c)
}

/// [`copy_into`] of one parsed COPY.
fn copy_target(c: &pg_query::protobuf::CopyStmt) -> Option<(String, Vec<String>)> {
    if !c.is_from || c.is_program || !c.filename.is_empty() || c.query.is_some() || c.where_clause.is_some() {
        return None;
    }
    let table = c.relation.as_ref()?.relname.clone();
    let columns = c
        .attlist
        .iter()
        .map(|n| match n.node.as_ref() {
            Some(N::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((table, columns))
}

/// Whether a default (as `pg_get_expr` prints it) is at most one `nextval` of a sequence named
/// by a constant, under signs, casts to built-in number or text types, and constants.
fn one_nextval(expr: &str) -> bool {
    let Ok(parsed) = crate::analyze::budget::parse(&format!("SELECT {expr}"), 0) else { return false };
    let [raw] = parsed.protobuf.stmts.as_slice() else { return false };
    let Some(N::SelectStmt(s)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else { return false };
    let [target] = s.target_list.as_slice() else { return false };
    let Some(N::ResTarget(t)) = target.node.as_ref() else { return false };
    let mut calls = 0;
    t.val.as_deref().is_some_and(|v| plain(v, &mut calls)) && calls <= 1
}

/// A node of [`one_nextval`]'s shape; `calls` counts the `nextval`s.
fn plain(n: &pg_query::protobuf::Node, calls: &mut usize) -> bool {
    let names = |v: &[pg_query::protobuf::Node]| -> Vec<String> {
        v.iter().filter_map(|n| if let Some(N::String(s)) = &n.node { Some(s.sval.clone()) } else { None }).collect()
    };
    match n.node.as_ref() {
        Some(N::AConst(_)) => true,
        Some(N::AExpr(e)) => {
            e.kind == pg_query::protobuf::AExprKind::AexprOp as i32
                && matches!(names(&e.name).as_slice(), [op] if op == "-" || op == "+")
                && e.lexpr.as_deref().is_none_or(|l| plain(l, calls))
                && e.rexpr.as_deref().is_some_and(|r| plain(r, calls))
        }
        Some(N::TypeCast(c)) => {
            let ty = c.type_name.as_ref().map(|t| names(&t.names)).unwrap_or_default();
            let builtin = matches!(ty.as_slice(), [s, t] if s == "pg_catalog" && BUILTIN.contains(&t.as_str()))
                || matches!(ty.as_slice(), [t] if BUILTIN.contains(&t.as_str()));
            builtin
                && c.type_name.as_ref().is_some_and(|t| t.array_bounds.is_empty())
                && c.arg.as_deref().is_some_and(|a| plain(a, calls))
        }
        Some(N::FuncCall(f)) => {
            let name = names(&f.funcname);
            let nextval = matches!(name.as_slice(), [n] if n == "nextval")
                || matches!(name.as_slice(), [s, n] if s == "pg_catalog" && n == "nextval");
            let [arg] = f.args.as_slice() else { return false };
            // The sequence named by a constant (`'s'::regclass`): no call inside.
            let mut inner = 0;
            *calls += 1;
            nextval
                && f.agg_order.is_empty()
                && f.agg_filter.is_none()
                && f.over.is_none()
                && !f.agg_star
                && !f.agg_distinct
                && !f.func_variadic
                && plain(arg, &mut inner)
                && inner == 0
        }
        _ => false,
    }
}

/// The types a default's casts may name (their input and output run no user code).
const BUILTIN: &[&str] = &["int2", "int4", "int8", "integer", "bigint", "smallint", "numeric", "text", "regclass"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_nextval_of_a_named_sequence_per_row() {
        for ok in [
            "(- nextval('web_user_id_seq'::regclass))",
            "nextval('s'::regclass)",
            "(nextval('public.s'::regclass) + 1000)::integer",
            "pg_catalog.nextval('s')",
            "'nextval'::text",
        ] {
            assert!(one_nextval(ok), "{ok}");
        }
        for bad in [
            "(nextval('a'::regclass) + nextval('b'::regclass))",
            "nextval(nextval('a')::text::regclass)",
            "setval('s'::regclass, 1)",
            "(SELECT max(nextval('s')) FROM generate_series(1, 1000))",
            "nextval(('s'::regclass))::my_domain",
            "nextval(current_setting('x')::regclass)",
            "(nextval('s') * 2)",
            "f(nextval('s'))",
        ] {
            assert!(!one_nextval(bad), "{bad}");
        }
    }

    #[test]
    fn only_a_plain_copy_from_stdin_names_its_table_and_columns() {
        assert_eq!(
            copy_into("COPY users (auth_source, \"Plan\", email) FROM STDIN"),
            Some(("users".into(), vec!["auth_source".into(), "Plan".into(), "email".into()]))
        );
        assert_eq!(copy_into("COPY public.users FROM STDIN"), Some(("users".into(), vec![])));
        assert_eq!(copy_into("COPY users FROM STDIN WHERE id > 0"), None);
        assert_eq!(copy_into("COPY users FROM '/tmp/x'"), None);
        assert_eq!(copy_into("COPY users TO STDOUT"), None);
        assert_eq!(copy_into("COPY users FROM STDIN; SELECT 1"), None);
    }
}
