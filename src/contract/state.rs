//! The durable state of the contract rules, in the guarded database itself: the schema
//! blastwall owns (`[state] schema`, default `blastwall`), its three tables, and the SQL text
//! that creates them. Shared by every session and every blastwall instance in front of the
//! database; it survives restarts because it is ordinary committed data.
//!
//! Owns: the DDL and the SQL spelling rules every contract statement follows — every name
//! schema-qualified, every type, function and operator taken from `pg_catalog` explicitly, so
//! that the session's `search_path` (which the client controls) cannot change what it means.
//! Does not own: the per-write statements (`sql`) or running anything (the pre-check does).

/// `"name"`, quoted as an identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An operator taken from pg_catalog: ` OPERATOR(pg_catalog.=) `.
pub fn op(o: &str) -> String {
    format!(" OPERATOR(pg_catalog.{o}) ")
}

/// A key of the advisory lock that serializes concurrent first uses (creating the schema twice
/// at once fails on the catalog's unique indexes otherwise). "blastwal" in ASCII.
const CREATE_LOCK: i64 = 0x626c_6173_7477_616c;

/// The DDL that creates the state (idempotent). `blastwall init-state` runs it; on first use
/// (with `[state] create = true`) the pre-check runs it inside the first counted write's own
/// transaction, behind an advisory lock so that concurrent first uses wait instead of failing.
pub fn init_sql(schema: &str) -> String {
    let s = ident(schema);
    format!(
        "SELECT pg_catalog.pg_advisory_xact_lock({CREATE_LOCK}::pg_catalog.int8); \
         CREATE SCHEMA IF NOT EXISTS {s}; \
         CREATE TABLE IF NOT EXISTS {s}.runs (\
           relid pg_catalog.oid NOT NULL, fingerprint pg_catalog.text NOT NULL, kind pg_catalog.text NOT NULL, \
           rows pg_catalog.int8 NOT NULL, \
           at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()); \
         CREATE INDEX IF NOT EXISTS runs_by_statement ON {s}.runs (relid, fingerprint, kind, at); \
         CREATE TABLE IF NOT EXISTS {s}.budget_spent (\
           relid pg_catalog.oid NOT NULL, kind pg_catalog.text NOT NULL, \
           bucket pg_catalog.timestamptz NOT NULL, rows pg_catalog.int8 NOT NULL, \
           PRIMARY KEY (relid, kind, bucket)); \
         CREATE TABLE IF NOT EXISTS {s}.budget_lock (\
           relid pg_catalog.oid NOT NULL, kind pg_catalog.text NOT NULL, \
           touched pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(), \
           PRIMARY KEY (relid, kind)); \
         COMMENT ON SCHEMA {s} IS 'blastwall: anomaly histories (runs) and row budgets over time (budget_spent, budget_lock), see README'; "
    )
}

/// [`init_sql`] run only when a table of the state is missing (one DO block): a role that may
/// use the state but not create schemas (no CREATE on the database) is not refused by DDL it
/// does not need.
pub fn ensure_sql(schema: &str) -> String {
    let lit = crate::precheck::literal;
    let missing = ["runs", "budget_spent", "budget_lock"]
        .iter()
        .map(|t| format!("pg_catalog.to_regclass({}) IS NULL", lit(&format!("{}.{}", ident(schema), ident(t)))))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!("DO $blastwall$BEGIN IF {missing} THEN EXECUTE {}; END IF; END$blastwall$; ", lit(&init_sql(schema)))
}

/// The script `blastwall init-state` prints: the DDL, then the grants, one statement a line.
pub fn init_script(schema: &str, roles: &[String]) -> String {
    let mut out = String::from("-- blastwall init-state: run as the database owner (for example | psql -d mydb)\n");
    let all = init_sql(schema) + &roles.iter().map(|r| grant_sql(schema, r)).collect::<String>();
    for st in all.split("; ").map(str::trim).filter(|s| !s.is_empty()) {
        out.push_str(st.trim_end_matches(';'));
        out.push_str(";\n");
    }
    out
}

/// The grants an application role needs on the state (for `blastwall init-state --grant`).
pub fn grant_sql(schema: &str, role: &str) -> String {
    let (s, r) = (ident(schema), ident(role));
    format!(
        "GRANT USAGE ON SCHEMA {s} TO {r}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.runs, {s}.budget_spent, {s}.budget_lock TO {r}; "
    )
}

/// A query that says whether the current role can use the state: one row, `true` or the reason.
pub fn probe_sql(schema: &str) -> String {
    let lit = crate::precheck::literal;
    let tables = ["runs", "budget_spent", "budget_lock"]
        .iter()
        .map(|t| {
            format!(
                "pg_catalog.has_table_privilege(pg_catalog.to_regclass({q}), 'SELECT, INSERT, UPDATE, DELETE')",
                q = lit(&format!("{}.{}", ident(schema), ident(t)))
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "SELECT CASE WHEN pg_catalog.to_regnamespace({n}) IS NULL THEN 'schema {schema} does not exist' \
         WHEN NOT pg_catalog.has_schema_privilege(pg_catalog.to_regnamespace({n})::pg_catalog.oid, 'USAGE') THEN 'no USAGE on schema {schema}' \
         WHEN pg_catalog.to_regclass({r}) IS NULL OR pg_catalog.to_regclass({b}) IS NULL OR pg_catalog.to_regclass({l}) IS NULL THEN 'the tables of schema {schema} are missing' \
         WHEN NOT ({tables}) THEN 'no SELECT, INSERT, UPDATE, DELETE on the tables of schema {schema}' \
         ELSE 'true' END",
        n = lit(&ident(schema)),
        r = lit(&format!("{}.runs", ident(schema))),
        b = lit(&format!("{}.budget_spent", ident(schema))),
        l = lit(&format!("{}.budget_lock", ident(schema))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_types_qualified() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        let ddl = init_sql("blastwall");
        assert!(ddl.contains("\"blastwall\".runs"));
        // Every type of the DDL comes from pg_catalog.
        for ty in ["oid", "text", "int8", "timestamptz"] {
            assert!(!ddl.contains(&format!(" {ty} ")) && !ddl.contains(&format!(" {ty},")), "{ty} unqualified");
        }
    }
}
