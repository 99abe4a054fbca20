//! Hidden callers found by the third adversarial pass: maintenance commands and reads that run
//! a function hidden in a temporary table's index, extended statistics or row type (`ANALYZE`,
//! `VACUUM FULL`, `REINDEX` evaluate index expressions; the planner folds a partial index's
//! constant predicate when a SELECT opens the table; a cast to a row type runs its columns'
//! domain checks), an operator whose negator calls one, and an implicit cast of a column's
//! type. Each is sent through blastwall in
//! enforce mode with the shipped policies; the users are counted on the server directly.

use crate::harness::*;

async fn users(db: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0)
}

/// A DBA's function that deletes the telegram users once `purge_on` is set (the objects that
/// call it are made while it is harmless), and an `IMMUTABLE`-labeled wrapper of it.
const PURGE: &str = "CREATE TABLE purge_on (on_ boolean); INSERT INTO purge_on VALUES (false); \
    CREATE FUNCTION public.purge() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
      IF EXISTS (SELECT 1 FROM public.purge_on WHERE on_) THEN \
        DELETE FROM public.users WHERE auth_source = 'telegram'; END IF; RETURN 1; END $$; \
    CREATE FUNCTION public.purge_imm(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \
      $$ BEGIN PERFORM public.purge(); RETURN $1; END $$;";

fn refusal(e: &tokio_postgres::Error) -> String {
    let d = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    let m = format!("{} / {}", d.message(), d.detail().unwrap_or_default());
    assert!(d.message().starts_with("blastwall: refused"), "{m}");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_and_reads_of_temporary_objects_are_counted() {
    let db = incident_db();
    let before = users(&db).await;
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // The function deletes every telegram user once the flag is set: the objects are made
    // while it is harmless (their own creation is counted and changes nothing).
    for setup in [
        "CREATE TEMP TABLE flag (on_ boolean)",
        "CREATE FUNCTION pg_temp.del() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN \
           IF EXISTS (SELECT 1 FROM pg_temp.flag WHERE on_) THEN \
             DELETE FROM public.users WHERE auth_source = 'telegram'; END IF; RETURN true; END $$",
        "CREATE FUNCTION pg_temp.imm(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \
           $$ BEGIN PERFORM pg_temp.del(); RETURN $1; END $$",
        "CREATE TEMP TABLE t (x int)",
        "INSERT INTO t VALUES (1)",
        "CREATE INDEX t_imm ON t (pg_temp.imm(x))",
        "CREATE TEMP TABLE s (x int)",
        "INSERT INTO s VALUES (1)",
        "CREATE STATISTICS pg_temp.s_imm ON (pg_temp.imm(x)) FROM s",
        "CREATE TEMP TABLE part (x int)",
        "CREATE INDEX part_p ON part (x) WHERE pg_temp.imm(1) = 1",
        "CREATE DOMAIN pg_temp.d1 AS int CHECK (pg_temp.del())",
        "CREATE TEMP TABLE tt (a pg_temp.d1)",
        "CREATE TYPE pg_temp.ct AS (a pg_temp.d1)",
        "CREATE TEMP TABLE plain (x int)",
        "INSERT INTO plain VALUES (1)",
        "INSERT INTO flag VALUES (true)",
    ] {
        via.simple_query(setup).await.unwrap_or_else(|e| panic!("{setup}: {e:?}"));
    }
    assert_eq!(users(&db).await, before, "the setup deleted users");
    for sql in [
        "ANALYZE t",
        "ANALYZE",
        "VACUUM (ANALYZE) t",
        "VACUUM FULL t",
        "vacuum full",
        "REINDEX TABLE t",
        "REINDEX TABLE CONCURRENTLY t",
        "ANALYZE s",
        "SELECT * FROM part WHERE x = 1",
        "SELECT '(1)'::tt",
        "SELECT ROW(1)::pg_temp.ct",
        "SELECT * FROM pg_catalog.json_populate_record(NULL::tt, '{\"a\": 1}')",
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let why = refusal(&e);
        assert_eq!(users(&db).await, before, "{sql}: {why}");
    }
    // What evaluates only tables without hidden callers runs as before, counted: the session's
    // temporary schema holds code (`taint`), so what cannot be counted is refused.
    for sql in ["ANALYZE plain", "REINDEX TABLE plain"] {
        via.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    for sql in ["VACUUM t", "VACUUM", "VACUUM FULL plain"] {
        refusal(&via.simple_query(sql).await.expect_err(sql));
    }
    // With the flag down the same ANALYZE is counted and kept.
    via.simple_query("UPDATE flag SET on_ = false WHERE on_").await.unwrap();
    via.simple_query("ANALYZE t").await.unwrap();
    assert_eq!(users(&db).await, before);
    p.stop().await;
}

/// The planner rewrites `NOT (a === b)` to `a !== b` (the operator's NEGATOR): an operator over
/// a built-in whose negator (or commutator) calls a writing function is a hidden caller too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_whose_negator_writes_is_counted() {
    let db = incident_db();
    let before = users(&db).await;
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for setup in [
        "CREATE FUNCTION pg_temp.del2(int, int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN \
           DELETE FROM public.users WHERE auth_source = 'telegram'; RETURN true; END $$",
        "CREATE OPERATOR pg_temp.!== (FUNCTION = pg_temp.del2, LEFTARG = int, RIGHTARG = int)",
        "CREATE OPERATOR pg_temp.=== (FUNCTION = pg_catalog.int4eq, LEFTARG = int, RIGHTARG = int, \
           NEGATOR = OPERATOR(pg_temp.!==))",
    ] {
        via.simple_query(setup).await.unwrap_or_else(|e| panic!("{setup}: {e:?}"));
    }
    let sql = "SELECT NOT (x OPERATOR(pg_temp.===) 2) FROM generate_series(1, 1) x";
    let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
    let why = refusal(&e);
    assert_eq!(users(&db).await, before, "{sql}: {why}");
    p.stop().await;
}

/// An implicit cast from a temporary enum runs its function in `SELECT a + 1 FROM tt`: the
/// text names neither the cast, its type nor its function, only a table with a column of the
/// type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_implicit_cast_of_a_columns_type_is_counted() {
    let db = incident_db();
    let before = users(&db).await;
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for setup in [
        "CREATE TYPE pg_temp.myenum AS ENUM ('a', 'b')",
        "CREATE FUNCTION pg_temp.castf(pg_temp.myenum) RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
           DELETE FROM public.users WHERE auth_source = 'telegram'; RETURN 1; END $$",
        "CREATE CAST (pg_temp.myenum AS int) WITH FUNCTION pg_temp.castf(pg_temp.myenum) AS IMPLICIT",
        "CREATE TEMP TABLE tt (a pg_temp.myenum)",
        "INSERT INTO tt VALUES ('a')",
    ] {
        via.simple_query(setup).await.unwrap_or_else(|e| panic!("{setup}: {e:?}"));
    }
    assert_eq!(users(&db).await, before, "the setup deleted users");
    let sql = "SELECT a + 1 FROM tt";
    let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
    let why = refusal(&e);
    assert_eq!(users(&db).await, before, "{sql}: {why}");
    p.stop().await;
}

/// A statement on an inheritance parent or a partitioned table reaches its children: `ANALYZE`
/// and `REINDEX` recurse into the partitions, an INSERT is routed to them, the planner opens
/// them for a SELECT. A parent of a hidden caller is one too (fifth adversarial pass: `ANALYZE
/// pp` ran a partition's index expression uncounted; `SELECT * FROM parent` a temporary child's
/// partial-index predicate) — for a temporary tree made by a DML-only role, and for a permanent
/// one a superuser maintains through blastwall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_of_a_hidden_caller_is_one_too() {
    let db = incident_db();
    let before = users(&db).await;
    let su = direct("postgres", SUPERUSER_PW, &db).await;
    su.batch_execute(&format!(
        "{PURGE} \
         CREATE TABLE pp (a int) PARTITION BY RANGE (a); \
         CREATE TABLE pp1 PARTITION OF pp FOR VALUES FROM (0) TO (1000); \
         CREATE INDEX pp1_x ON pp1 (public.purge_imm(a)); \
         INSERT INTO pp SELECT pg_catalog.generate_series(1, 100); \
         CREATE TABLE ip (a int); CREATE TABLE ic () INHERITS (ip); \
         CREATE INDEX ic_x ON ic (public.purge_imm(a)); INSERT INTO ic VALUES (1); \
         GRANT ALL ON purge_on, pp, ip TO app; \
         UPDATE purge_on SET on_ = true"
    ))
    .await
    .unwrap();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for setup in [
        "CREATE FUNCTION pg_temp.del() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN \
           IF pg_catalog.current_query() !~* '^\\s*create' THEN PERFORM public.purge(); END IF; \
           RETURN 7; END $$",
        "CREATE TEMP TABLE tp2 (a int)",
        "CREATE TEMP TABLE tch2 () INHERITS (tp2)",
        "CREATE INDEX ON tch2 (a) WHERE a > pg_temp.del()",
        "CREATE TEMP TABLE tpp (a int) PARTITION BY RANGE (a)",
        "CREATE TEMP TABLE tpp1 PARTITION OF tpp FOR VALUES FROM (0) TO (1000)",
        "CREATE INDEX tpp1_x ON tpp1 ((a + pg_temp.del()))",
    ] {
        via.simple_query(setup).await.unwrap_or_else(|e| panic!("{setup}: {e:?}"));
    }
    assert_eq!(users(&db).await, before, "the setup deleted users");
    for sql in ["SELECT * FROM tp2", "INSERT INTO tpp VALUES (1)", "INSERT INTO pp VALUES (5)", "UPDATE ip SET a = 2"] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let why = refusal(&e);
        assert_eq!(users(&db).await, before, "{sql}: {why}");
    }
    let owner = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    for sql in ["ANALYZE pp", "VACUUM (ANALYZE) pp", "REINDEX TABLE pp", "VACUUM FULL pp"] {
        let e = owner.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let why = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
        assert_eq!(users(&db).await, before, "{sql}: {why}");
    }
    // ANALYZE and REINDEX of a plain inheritance parent do not open its children's indexes:
    // counted, and kept.
    for sql in ["ANALYZE ip", "REINDEX TABLE ip"] {
        owner.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    assert_eq!(users(&db).await, before);
    p.stop().await;
}

/// Plain `VACUUM` summarizes a BRIN index's new page ranges, evaluating its expression
/// (fifth adversarial pass): a table whose BRIN index calls a writing function cannot be
/// vacuumed through blastwall (PostgreSQL cannot vacuum in a transaction, so it cannot be
/// counted). Maintenance runs no default, `CHECK`, trigger or policy, and an index build only
/// what its own text names: the shipped `users`, whose id default takes from its protected
/// sequence, is vacuumed, analyzed, reindexed and indexed concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_reaches_brin_expressions_and_only_index_expressions_matter() {
    let db = incident_db();
    let before = users(&db).await;
    let su = direct("postgres", SUPERUSER_PW, &db).await;
    su.batch_execute(&format!(
        "{PURGE} \
         CREATE TABLE b (a int); CREATE INDEX b_x ON b USING brin (public.purge_imm(a)); \
         INSERT INTO b SELECT pg_catalog.generate_series(1, 70000); \
         UPDATE purge_on SET on_ = true"
    ))
    .await
    .unwrap();
    let p = proxy().await;
    let owner = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    for sql in ["VACUUM b", "VACUUM", "CREATE INDEX CONCURRENTLY b_y ON b (public.purge_imm(a))"] {
        let e = owner.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let why = refusal(&e);
        assert!(why.contains("cannot run it inside a transaction"), "{sql}: {why}");
        assert_eq!(users(&db).await, before, "{sql}: {why}");
    }
    // Built in a transaction, the same index is counted: its deletes are refused.
    let e = owner.simple_query("CREATE INDEX b_z ON b (public.purge_imm(a))").await.unwrap_err();
    let why = refusal(&e);
    assert_eq!(users(&db).await, before, "{why}");
    for sql in [
        "VACUUM users",
        "VACUUM FULL users",
        "VACUUM (ANALYZE) users",
        "ANALYZE users",
        "REINDEX TABLE users",
        "REINDEX TABLE CONCURRENTLY users",
        "CREATE INDEX CONCURRENTLY users_email_idx ON users (email)",
        "CREATE INDEX users_plan_idx ON public.users (plan)",
    ] {
        owner.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    assert_eq!(users(&db).await, before);
    p.stop().await;
}

/// Fifth adversarial pass: a row-security policy that reads a writing view (or a table whose
/// own policy writes) runs it on every read of its table; a writing view named by a spelling
/// longer than 63 bytes (PostgreSQL cuts it to its head); a write to a partition checks its
/// partition constraint, which runs its parent's key expression. Objects made by a DBA,
/// reached by the DML-only `app` through blastwall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_long_names_and_partition_keys_reach_a_writing_function() {
    let db = incident_db();
    let before = users(&db).await;
    let su = direct("postgres", SUPERUSER_PW, &db).await;
    let long = format!("vd_{}", "a".repeat(70));
    su.batch_execute(&format!(
        "{PURGE} \
         CREATE VIEW vd AS SELECT public.purge() AS x; \
         CREATE VIEW {long} AS SELECT public.purge() AS x; \
         CREATE TABLE r (a int); INSERT INTO r VALUES (1); ALTER TABLE r ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY p ON r USING (EXISTS (SELECT 1 FROM vd)); \
         CREATE TABLE r1 (a int); INSERT INTO r1 VALUES (1); ALTER TABLE r1 ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY p1 ON r1 USING (public.purge() = 1); \
         CREATE TABLE r2 (a int); INSERT INTO r2 VALUES (1); ALTER TABLE r2 ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY p2 ON r2 USING (a IN (SELECT a FROM r1)); \
         CREATE TABLE pk (id int, a int) PARTITION BY RANGE (public.purge_imm(a)); \
         CREATE TABLE pk1 PARTITION OF pk FOR VALUES FROM (0) TO (1000); \
         INSERT INTO pk VALUES (1, 1); \
         GRANT ALL ON purge_on, vd, {long}, r, r1, r2, pk, pk1 TO app; \
         UPDATE purge_on SET on_ = true"
    ))
    .await
    .unwrap();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for sql in [
        "SELECT * FROM r".to_string(),
        "SELECT * FROM r2".to_string(),
        format!("SELECT * FROM {long}zzz"),
        "INSERT INTO pk1 VALUES (2, 7)".to_string(),
        "UPDATE pk1 SET a = 7 WHERE id = 1".to_string(),
    ] {
        let e = via.simple_query(&sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let why = refusal(&e);
        assert_eq!(users(&db).await, before, "{sql}: {why}");
    }
    p.stop().await;
}
