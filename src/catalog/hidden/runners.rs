//! The built-ins that run SQL text they are given (or the query of a cursor or of a whole
//! table, schema or database): whatever that SQL calls runs in the call, a writing function of
//! the DBA's among it. An object whose stored expression calls one is followed like a caller of
//! a user function — in the shared hidden callers (`builtin_callers`) and in a session's own
//! temporary objects (`catalog::taint`): sixty-ninth pass F3, a temporary view over
//! `query_to_xml('select count(public.erase_' || 'user(id)) …')` deleted the window's users
//! uncounted, its text naming no function and no hidden caller.
//!
//! Owns: that list and the pattern that finds a call of one in a stored expression. Does not
//! own: the queries it goes into.

/// The built-ins of `pg_catalog` that run SQL: the XML exports (`query_to_xml` and its kin run
/// a query's text; `cursor_to_xml` reads a cursor; `table_to_xml`, `schema_to_xml` and
/// `database_to_xml` read whole relations, views among them) and the text-search ones that run
/// a query's text (`ts_stat`, `ts_rewrite` with a query).
pub const RUNNERS: &[&str] = &[
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "ts_rewrite",
];

/// A regular expression (an SQL expression giving one) matching a call of any of them in a
/// stored expression's node tree (`:funcid N `), looked up by name in `pg_catalog` (so that a
/// server without one of them still answers).
pub fn pattern() -> String {
    let names = RUNNERS.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    format!(
        "(':funcid (' OPERATOR(pg_catalog.||) (SELECT pg_catalog.string_agg(p.oid::pg_catalog.text, '|') \
           FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) 11::pg_catalog.oid \
           AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY[{names}]::pg_catalog.name[])) \
         OPERATOR(pg_catalog.||) ') ')"
    )
}
