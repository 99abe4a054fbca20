//! Sixty-third pass H1: code the server runs on its own. A DML-only role that owns a schema
//! left, through blastwall, a statistics object over its own function (labelled `IMMUTABLE`,
//! calling one that deletes users) on its own table, inserted rows, and autovacuum's `ANALYZE`
//! ran the function about 15 s later as the table's owner: 20 users deleted, nothing counted.
//! Now a statement that makes or changes such code (an index's expression or predicate, a
//! statistics expression, a range type's `subtype_diff` behind a column, where the table or the
//! function is not the policy tables' owners') is refused (`precheck::background`). The
//! server's `ANALYZE`, run directly as autovacuum would, is the proof: the users stay.

use crate::binds::RAW;
use crate::harness::*;

const WINDOW: &str = "SELECT count(*) FROM public.users WHERE id BETWEEN -91111200 AND -91111100";

/// A database whose policy tables another role owns, a schema `own` of the DML-only role's,
/// and in it the role's function that deletes the incident's window.
fn setup() -> String {
    let db = crate::binds::setup();
    admin_sql(pg(), &db, &format!("CREATE SCHEMA own AUTHORIZATION {RAW}"));
    db
}

async fn exists(db: &str, sql: &str) -> bool {
    count(db, &format!("SELECT count(*) FROM ({sql}) x")).await > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_autovacuum_would_run_cannot_be_left_behind() {
    let db = setup();
    let p = proxy_with(base_config(), shipped_policy()).await;
    let via = connect(p.port(), RAW, "", &db).await;
    via.batch_execute(
        "CREATE FUNCTION own.kill() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
           DELETE FROM public.users WHERE id BETWEEN -91111200 AND -91111100; RETURN 1; END $$; \
         CREATE FUNCTION own.w(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN \
           PERFORM own.kill(); RETURN $1; END $$; \
         CREATE FUNCTION own.d(float8, float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN \
           PERFORM own.kill(); RETURN $1 - $2; END $$; \
         CREATE TYPE own.r AS RANGE (subtype = float8, subtype_diff = own.d); \
         CREATE TABLE own.t (x int); CREATE TABLE own.e (x int);",
    )
    .await
    .unwrap();
    via.batch_execute("INSERT INTO own.t SELECT g FROM generate_series(1, 100) g").await.unwrap();
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 20);
    for (sql, made) in [
        ("CREATE STATISTICS own.st ON (own.w(x)) FROM own.t", "SELECT FROM pg_statistic_ext WHERE stxname = 'st'"),
        // On the empty table: CREATE INDEX itself runs nothing, ANALYZE would.
        ("CREATE INDEX ew ON own.e ((own.w(x)))", "SELECT FROM pg_class WHERE relname = 'ew'"),
        ("CREATE INDEX ep ON own.e (x) WHERE own.w(x) > 0", "SELECT FROM pg_class WHERE relname = 'ep'"),
        ("CREATE TABLE own.rt (x own.r)", "SELECT FROM pg_class WHERE relname = 'rt'"),
    ] {
        let e = via.batch_execute(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let m = refused_by(&e, "identity");
        assert!(m.contains("autovacuum"), "{sql}: says why: {m}");
        assert!(!exists(&db, made).await, "{sql}: was kept");
    }
    // What autovacuum would do, on the server directly: nothing runs the role's function.
    via.batch_execute("INSERT INTO own.e SELECT g FROM generate_series(1, 100) g").await.unwrap();
    admin_sql(pg(), &db, "ANALYZE own.t; ANALYZE own.e");
    assert_eq!(count(&db, WINDOW).await, before, "ANALYZE ran the role's code");

    // Built-in expressions stay allowed on the role's own tables.
    via.batch_execute("CREATE INDEX ea ON own.e (abs(x)); CREATE STATISTICS own.sa ON (x + 1) FROM own.e")
        .await
        .unwrap();
    assert!(exists(&db, "SELECT FROM pg_class WHERE relname = 'ea'").await);

    // Such code made on a direct connection (beyond blastwall): a function of the role may not
    // be changed through blastwall while it is there (the code calls it, or may call it by name).
    let direct_app = direct("postgres", SUPERUSER_PW, &db).await;
    direct_app
        .batch_execute(&format!(
            "SET ROLE {RAW}; CREATE OR REPLACE FUNCTION own.kill() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
             CREATE STATISTICS own.st ON (own.w(x)) FROM own.t; RESET ROLE"
        ))
        .await
        .unwrap();
    let replace = "CREATE OR REPLACE FUNCTION own.kill() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
                   DELETE FROM public.users WHERE id BETWEEN -91111200 AND -91111100; RETURN 1; END $$";
    let e = via.batch_execute(replace).await.expect_err("the function was replaced");
    refused_by(&e, "identity");
    assert!(exists(&db, "SELECT FROM pg_proc WHERE proname = 'kill' AND prosrc = 'SELECT 1'").await);
    admin_sql(pg(), &db, "ANALYZE own.t");
    assert_eq!(count(&db, WINDOW).await, before, "ANALYZE ran the replaced function");
    p.stop().await;
}

/// Sixty-fourth pass H1: a cast to the role's domain, whose `CHECK` calls its function, in a
/// statistics or index expression: ANALYZE checks every sampled value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_to_a_domain_that_runs_code_cannot_be_left_behind() {
    let db = setup();
    let p = proxy_with(base_config(), shipped_policy()).await;
    let via = connect(p.port(), RAW, "", &db).await;
    via.batch_execute(
        "CREATE FUNCTION own.kill(int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN \
           DELETE FROM public.users WHERE id BETWEEN -91111200 AND -91111100; RETURN true; END $$; \
         CREATE DOMAIN own.d AS int CHECK (own.kill(VALUE)); CREATE DOMAIN own.later AS int; \
         CREATE TABLE own.t (x int); INSERT INTO own.t SELECT g FROM generate_series(1, 100) g; \
         CREATE TABLE own.e (x int);",
    )
    .await
    .unwrap();
    let before = count(&db, WINDOW).await;
    for (sql, made) in [
        ("CREATE STATISTICS own.sd ON ((x::own.d)) FROM own.t", "SELECT FROM pg_statistic_ext WHERE stxname = 'sd'"),
        ("CREATE INDEX td ON own.e ((ARRAY[x]::own.d[]))", "SELECT FROM pg_class WHERE relname = 'td'"),
        // A domain without a constraint yet: one may be added later.
        (
            "CREATE STATISTICS own.sl ON ((x::own.later)) FROM own.t",
            "SELECT FROM pg_statistic_ext WHERE stxname = 'sl'",
        ),
    ] {
        let e = via.batch_execute(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        assert!(refused_by(&e, "identity").contains("autovacuum"), "{sql}");
        assert!(!exists(&db, made).await, "{sql}: was kept");
    }
    via.batch_execute("INSERT INTO own.e SELECT g FROM generate_series(1, 100) g").await.unwrap();
    admin_sql(pg(), &db, "ANALYZE own.t; ANALYZE own.e");
    assert_eq!(count(&db, WINDOW).await, before, "ANALYZE ran the role's code");
    p.stop().await;
}
