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
