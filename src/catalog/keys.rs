//! What a foreign key's `ON DELETE SET NULL`/`SET DEFAULT` sets: the columns it lists
//! (`ON DELETE SET NULL (org_id)`, PostgreSQL 15's `confdelsetcols`), else its whole key
//! (`conkey`). Read from the constraint's row as JSON, so that the same SQL runs on a server
//! without that column (before 15: always the whole key).
//!
//! Owns: that expression. Does not own: the query it is part of (`cascades`).

/// The attnums (`int2[]`) an `ON DELETE SET NULL`/`SET DEFAULT` of the `pg_constraint` row
/// `k` (its alias) sets. Every function and operator is `pg_catalog`'s.
pub(super) fn set_columns(k: &str) -> String {
    let listed = format!("pg_catalog.to_jsonb({k}) OPERATOR(pg_catalog.->) 'confdelsetcols'::pg_catalog.text");
    format!(
        "COALESCE((SELECT pg_catalog.array_agg(e.n::pg_catalog.int2) FROM pg_catalog.jsonb_array_elements_text(\
           CASE WHEN pg_catalog.jsonb_typeof({listed}) OPERATOR(pg_catalog.=) 'array'::pg_catalog.text \
           THEN {listed} END) e(n)), {k}.conkey)"
    )
}
