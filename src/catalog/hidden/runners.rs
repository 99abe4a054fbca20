//! The built-ins that run SQL text they are given (or the query of a cursor or of a whole
//! table, schema or database): whatever that SQL calls runs in the call, a writing function of
//! the DBA's among it. An object whose stored expression calls one is followed like a caller of
//! a user function — in the shared hidden callers (`builtin_callers`) and in a session's own
//! temporary objects (`catalog::taint`): sixty-ninth pass F3, a temporary view over
//! `query_to_xml('select count(public.erase_' || 'user(id)) …')` deleted the window's users
//! uncounted, its text naming no function and no hidden caller.
//!
//! Owns: the pattern that finds a call of one in a stored expression. Does not own: the list
//! (`analyze::RUNNERS`, which a call in a statement's text is judged by too) or the queries
//! it goes into.

/// A regular expression (an SQL expression giving one) matching a call of any of them in a
/// stored expression's node tree (`:funcid N `), looked up by name in `pg_catalog` (so that a
/// server without one of them still answers).
pub fn pattern() -> String {
    let names = crate::analyze::RUNNERS.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    format!(
        "(':funcid (' OPERATOR(pg_catalog.||) (SELECT pg_catalog.string_agg(p.oid::pg_catalog.text, '|') \
           FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) 11::pg_catalog.oid \
           AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY[{names}]::pg_catalog.name[])) \
         OPERATOR(pg_catalog.||) ') ')"
    )
}
