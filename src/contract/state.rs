//! The durable state of the contract rules, in the guarded database itself: the schema
//! blastwall owns (`[state] schema`, default `blastwall`), its three tables, the two
//! `SECURITY DEFINER` functions through which alone the application's role touches them, and
//! the SQL text that creates them. Shared by every session and every blastwall instance in
//! front of the database; it survives restarts because it is ordinary committed data.
//!
//! The application's role gets no privilege on the tables (`init-state --grant` grants USAGE
//! on the schema and EXECUTE on the functions only): it can add a spend or a run, never
//! remove or rewrite one. `take_budget` locks the budgets it spends (in OID order), reads what
//! the window already spent, adds the new rows and prunes only what no window can need any
//! more; `record_run` reads a statement's history and adds a run of at most the rows the
//! transaction really changed in that table (its own counters say so). Both run as the
//! schema's owner with `search_path = pg_catalog, pg_temp`.
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

/// The two functions, as `to_regprocedure` and GRANT name them (without the schema).
pub const TAKE_BUDGET: &str =
    "take_budget(pg_catalog.oid[], pg_catalog.text[], pg_catalog.int8[], pg_catalog.float8[])";
pub const RECORD_RUN: &str =
    "record_run(pg_catalog.oid[], pg_catalog.text[], pg_catalog.int8[], pg_catalog.text, pg_catalog.int8[])";

/// Runs of a statement kept at least, whatever a caller asks (a caller cannot shorten a
/// history by asking for fewer).
const KEEP_RUNS: u64 = 100;

/// How a function of the state is declared: run as the schema's owner, on a fixed path.
const DEFINER: &str = "LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp";

/// `take_budget(relids, kinds, ns, wins)`: for each k with a relid, a window and ns[k] > 0,
/// lock the budget row (all of them first, in OID order, so two writers cannot deadlock),
/// prune buckets older than the longest window ever used for it, and return (k, rows spent in
/// the window before) after adding ns[k]. It cannot remove a spend a window still needs.
fn take_budget_sql(s: &str) -> String {
    let each = "SELECT o FROM pg_catalog.generate_subscripts(relids, 1) o \
                WHERE relids[o] IS NOT NULL AND wins[o] IS NOT NULL AND ns[o] > 0";
    format!(
        "CREATE OR REPLACE FUNCTION {s}.take_budget(relids pg_catalog.oid[], kinds pg_catalog.text[], ns pg_catalog.int8[], wins pg_catalog.float8[]) RETURNS TABLE (k pg_catalog.int4, spent pg_catalog.int8) {DEFINER} AS $blastwall_fn$ \
         DECLARE j pg_catalog.int4; bw pg_catalog.float8; horizon pg_catalog.float8; \
         BEGIN \
           IF pg_catalog.cardinality(kinds) <> pg_catalog.cardinality(relids) OR pg_catalog.cardinality(ns) <> pg_catalog.cardinality(relids) \
              OR pg_catalog.cardinality(wins) <> pg_catalog.cardinality(relids) THEN \
             RAISE EXCEPTION 'blastwall take_budget: arrays of different lengths'; END IF; \
           FOR j IN {each} ORDER BY relids[o], kinds[o] LOOP \
             IF kinds[j] IS NULL OR kinds[j] NOT IN ('delete', 'update') OR NOT wins[j] >= 1 OR wins[j] > 100000000 THEN \
               RAISE EXCEPTION 'blastwall take_budget: invalid kind or window'; END IF; \
             INSERT INTO {s}.budget_lock AS l (relid, kind, win) VALUES (relids[j], kinds[j], wins[j]) \
               ON CONFLICT (relid, kind) DO UPDATE SET touched = pg_catalog.clock_timestamp(), win = GREATEST(l.win, excluded.win); \
           END LOOP; \
           FOR j IN {each} ORDER BY o LOOP \
             bw := GREATEST(pg_catalog.floor(wins[j] / 120), 1); \
             SELECT GREATEST(l.win, wins[j]) INTO horizon FROM {s}.budget_lock l WHERE l.relid = relids[j] AND l.kind = kinds[j]; \
             DELETE FROM {s}.budget_spent b WHERE b.relid = relids[j] AND b.kind = kinds[j] \
               AND b.bucket < pg_catalog.statement_timestamp() - pg_catalog.make_interval(secs => horizon + GREATEST(pg_catalog.floor(horizon / 120), 1)); \
             k := j; \
             SELECT coalesce(pg_catalog.sum(b.rows), 0)::pg_catalog.int8 INTO spent FROM {s}.budget_spent b \
               WHERE b.relid = relids[j] AND b.kind = kinds[j] \
               AND b.bucket > pg_catalog.statement_timestamp() - pg_catalog.make_interval(secs => wins[j] + bw); \
             INSERT INTO {s}.budget_spent AS b (relid, kind, bucket, rows) VALUES (relids[j], kinds[j], \
               pg_catalog.to_timestamp(pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.statement_timestamp()) / bw) * bw), ns[j]) \
               ON CONFLICT (relid, kind, bucket) DO UPDATE SET rows = b.rows + excluded.rows; \
             RETURN NEXT; \
           END LOOP; \
         END $blastwall_fn$"
    )
}

/// `record_run(relids, kinds, ns, fp, keeps)`: for each k with a relid and a history length,
/// return (k, runs kept, their median) of the last keeps[k] runs of the statement `fp` on
/// that table, then add this run — refused when ns[k] is more than the rows this transaction
/// changed in the table and the tables inheriting from it (its own counters), so a run cannot
/// be made up — and prune runs past the last max(keeps[k], 100).
fn record_run_sql(s: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION {s}.record_run(relids pg_catalog.oid[], kinds pg_catalog.text[], ns pg_catalog.int8[], fp pg_catalog.text, keeps pg_catalog.int8[]) \
         RETURNS TABLE (k pg_catalog.int4, kept pg_catalog.int8, median pg_catalog.int8) {DEFINER} AS $blastwall_fn$ \
         DECLARE j pg_catalog.int4; changed pg_catalog.int8; \
         BEGIN \
           IF pg_catalog.cardinality(kinds) <> pg_catalog.cardinality(relids) OR pg_catalog.cardinality(ns) <> pg_catalog.cardinality(relids) \
              OR pg_catalog.cardinality(keeps) <> pg_catalog.cardinality(relids) OR fp IS NULL THEN \
             RAISE EXCEPTION 'blastwall record_run: arrays of different lengths'; END IF; \
           FOR j IN SELECT o FROM pg_catalog.generate_subscripts(relids, 1) o WHERE relids[o] IS NOT NULL AND keeps[o] IS NOT NULL ORDER BY o LOOP \
             IF kinds[j] IS NULL OR kinds[j] NOT IN ('delete', 'update') OR ns[j] IS NULL OR ns[j] < 0 OR keeps[j] < 1 THEN \
               RAISE EXCEPTION 'blastwall record_run: invalid run'; END IF; \
             IF ns[j] > 0 THEN \
               WITH RECURSIVE tree(rel) AS (SELECT relids[j] UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i, tree WHERE i.inhparent = tree.rel) \
               SELECT coalesce(pg_catalog.sum(CASE WHEN kinds[j] = 'delete' THEN pg_catalog.pg_stat_get_xact_tuples_deleted(tree.rel) \
                 ELSE pg_catalog.pg_stat_get_xact_tuples_updated(tree.rel) END), 0)::pg_catalog.int8 INTO changed FROM tree; \
               IF ns[j] > changed THEN \
                 RAISE EXCEPTION 'blastwall record_run: a run of % rows, but this transaction changed % of that table', ns[j], changed; END IF; \
             END IF; \
             k := j; \
             SELECT pg_catalog.count(*), pg_catalog.percentile_disc(0.5::pg_catalog.float8) WITHIN GROUP (ORDER BY h.rows) INTO kept, median \
               FROM (SELECT r.rows FROM {s}.runs r WHERE r.relid = relids[j] AND r.fingerprint = fp AND r.kind = kinds[j] \
                 ORDER BY r.at DESC LIMIT keeps[j]) h; \
             INSERT INTO {s}.runs (relid, fingerprint, kind, rows) VALUES (relids[j], fp, kinds[j], ns[j]); \
             DELETE FROM {s}.runs r WHERE r.relid = relids[j] AND r.fingerprint = fp AND r.kind = kinds[j] \
               AND r.at < (SELECT r2.at FROM {s}.runs r2 WHERE r2.relid = relids[j] AND r2.fingerprint = fp AND r2.kind = kinds[j] \
                 ORDER BY r2.at DESC OFFSET GREATEST(keeps[j], {KEEP_RUNS}) LIMIT 1); \
             RETURN NEXT; \
           END LOOP; \
         END $blastwall_fn$"
    )
}

/// The DDL that creates the state (idempotent), one statement each. `blastwall init-state`
/// prints it; on first use (with `[state] create = true`) the pre-check runs it inside the
/// first counted write's own transaction, behind an advisory lock so that concurrent first
/// uses wait instead of failing.
pub fn init_statements(schema: &str) -> Vec<String> {
    let s = ident(schema);
    vec![
        format!("SELECT pg_catalog.pg_advisory_xact_lock({CREATE_LOCK}::pg_catalog.int8)"),
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.runs (\
             relid pg_catalog.oid NOT NULL, fingerprint pg_catalog.text NOT NULL, kind pg_catalog.text NOT NULL, \
             rows pg_catalog.int8 NOT NULL, \
             at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp())"
        ),
        format!("CREATE INDEX IF NOT EXISTS runs_by_statement ON {s}.runs (relid, fingerprint, kind, at)"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.budget_spent (\
             relid pg_catalog.oid NOT NULL, kind pg_catalog.text NOT NULL, \
             bucket pg_catalog.timestamptz NOT NULL, rows pg_catalog.int8 NOT NULL, \
             PRIMARY KEY (relid, kind, bucket))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.budget_lock (\
             relid pg_catalog.oid NOT NULL, kind pg_catalog.text NOT NULL, \
             touched pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(), \
             PRIMARY KEY (relid, kind))"
        ),
        // The longest window ever used for a budget: spends younger than it are never pruned.
        format!("ALTER TABLE {s}.budget_lock ADD COLUMN IF NOT EXISTS win pg_catalog.float8 NOT NULL DEFAULT 0"),
        take_budget_sql(&s),
        record_run_sql(&s),
        format!("REVOKE ALL ON FUNCTION {s}.{TAKE_BUDGET}, {s}.{RECORD_RUN} FROM PUBLIC"),
        // DDL run on the server directly, notified to blastwall (superusers only: a no-op else).
        crate::catalog::listener::event_trigger_sql(&s),
        format!(
            "COMMENT ON SCHEMA {s} IS 'blastwall: anomaly histories (runs) and row budgets over time (budget_spent, budget_lock), \
             written only through take_budget() and record_run(), see README'"
        ),
    ]
}

/// [`init_statements`] as one text.
pub fn init_sql(schema: &str) -> String {
    init_statements(schema).iter().map(|st| format!("{st}; ")).collect()
}

/// A function of the state as `to_regprocedure` reads it.
fn function_literal(schema: &str, f: &str) -> String {
    crate::precheck::literal(&format!("{}.{f}", ident(schema)))
}

/// [`init_sql`] run only when a table or function of the state is missing (one DO block): a
/// role that may use the state but not create schemas (no CREATE on the database) is not
/// refused by DDL it does not need.
pub fn ensure_sql(schema: &str) -> String {
    let lit = crate::precheck::literal;
    let mut missing: Vec<String> = ["runs", "budget_spent", "budget_lock"]
        .iter()
        .map(|t| format!("pg_catalog.to_regclass({}) IS NULL", lit(&format!("{}.{}", ident(schema), ident(t)))))
        .collect();
    for f in [TAKE_BUDGET, RECORD_RUN] {
        missing.push(format!("pg_catalog.to_regprocedure({}) IS NULL", function_literal(schema, f)));
    }
    format!(
        "DO $blastwall$BEGIN IF {} THEN EXECUTE {}; END IF; END$blastwall$; ",
        missing.join(" OR "),
        lit(&init_sql(schema))
    )
}

/// The script `blastwall init-state` prints: the DDL, then the grants, one statement each.
pub fn init_script(schema: &str, roles: &[String]) -> String {
    let mut out = String::from(
        "-- blastwall init-state: run as the database owner (for example | psql -d mydb)\n\
         -- The roles granted get USAGE on the schema and EXECUTE on its two functions, no privilege on its tables.\n",
    );
    let all = init_statements(schema).into_iter().chain(roles.iter().flat_map(|r| grant_statements(schema, r)));
    for st in all {
        out.push_str(&st);
        out.push_str(";\n");
    }
    out
}

/// The grants an application role needs on the state (for `blastwall init-state --grant`):
/// the schema and its two functions, none of its tables.
pub fn grant_statements(schema: &str, role: &str) -> Vec<String> {
    let (s, r) = (ident(schema), ident(role));
    vec![
        format!("GRANT USAGE ON SCHEMA {s} TO {r}"),
        format!("GRANT EXECUTE ON FUNCTION {s}.{TAKE_BUDGET}, {s}.{RECORD_RUN} TO {r}"),
    ]
}

/// A query that says whether the current role can use the state: one row, `true` or the reason.
pub fn probe_sql(schema: &str) -> String {
    let lit = crate::precheck::literal;
    let functions = [TAKE_BUDGET, RECORD_RUN].map(|f| function_literal(schema, f));
    format!(
        "SELECT CASE WHEN pg_catalog.to_regnamespace({n}) IS NULL THEN 'schema {schema} does not exist' \
         WHEN NOT pg_catalog.has_schema_privilege(pg_catalog.to_regnamespace({n})::pg_catalog.oid, 'USAGE') THEN 'no USAGE on schema {schema}' \
         WHEN pg_catalog.to_regprocedure({t}) IS NULL OR pg_catalog.to_regprocedure({r}) IS NULL THEN 'the functions of schema {schema} are missing' \
         WHEN NOT (pg_catalog.has_function_privilege(pg_catalog.to_regprocedure({t}), 'EXECUTE') \
           AND pg_catalog.has_function_privilege(pg_catalog.to_regprocedure({r}), 'EXECUTE')) \
           THEN 'no EXECUTE on the functions of schema {schema}' \
         ELSE 'true' END",
        n = lit(&ident(schema)),
        t = functions[0],
        r = functions[1],
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
