//! Sixty-ninth pass F3: a DML-only role's temporary view over `query_to_xml`, whose text
//! (split so that it names no function: `'public.erase_' || 'user(id)'`) called a DBA's
//! writing function for each user of the incident's window, ran uncounted: 20 users and their
//! rows deleted; the same way, a protected sequence moved 100,000 steps and set back into the
//! window. The built-ins that run SQL (`catalog::hidden::runners`) now taint the session as a
//! temporary function does — in a view, a default, or as a temporary operator's function — so
//! every statement is counted: over the row limit, refused and rolled back. Data checked on
//! the server.

use crate::binds::RAW;
use crate::harness::*;

const WINDOW: &str = "SELECT count(*) FROM public.users WHERE id BETWEEN -91111200 AND -91111100";

/// The SQL a runner is given: the DBA's function for every user of the window.
/// (Inside a literal: its quotes end and begin it again around the `||`.)
const ERASE: &str =
    "select count(public.erase_' || 'user(id)) from public.users where id between -91111200 and -91111100";

/// The role's schema (`waited::setup`), a DBA's writing function every role may run (as
/// PostgreSQL grants by default), and `more` (SQL run as the superuser).
async fn setup(more: &str) -> String {
    let db = crate::waited::setup().await;
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE FUNCTION public.erase_user(uid bigint) RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
               DELETE FROM public.users WHERE id = uid; RETURN 1; END $$; {more}"
        ),
    );
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_run_by_a_built_in_from_the_sessions_temporary_objects_is_counted() {
    let db = setup("").await;
    admin_sql(pg(), &db, &format!("GRANT TEMPORARY ON DATABASE \"{db}\" TO {RAW}"));
    let p = proxy_with(base_config(), shipped_policy()).await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 20);
    let cases = [
        (
            format!("CREATE TEMP VIEW a AS SELECT query_to_xml('{ERASE}', false, false, '') AS x"),
            "SELECT length(x::text) FROM a",
        ),
        (
            format!("CREATE TEMP TABLE td (n int, x xml DEFAULT query_to_xml('{ERASE}', false, false, ''))"),
            "INSERT INTO td (n) VALUES (1)",
        ),
        (
            format!(
                "CREATE OPERATOR pg_temp.@@@ (LEFTARG = tsquery, RIGHTARG = text, FUNCTION = pg_catalog.ts_rewrite); \
                 CREATE TEMP VIEW c AS SELECT 'a'::tsquery OPERATOR(pg_temp.@@@) \
                   ('select ''a''::tsquery, ''b''::tsquery from ({ERASE}) s') AS r"
            ),
            "SELECT r::text FROM c",
        ),
    ];
    for (make, run) in cases {
        let via = connect(p.port(), RAW, "", &db).await;
        via.batch_execute(&make).await.unwrap_or_else(|e| panic!("{make}: {e:?}"));
        let e = via.simple_query(run).await.expect_err(run);
        let e = format!("{e:?}");
        assert!(e.contains("row-limit") || e.contains("unjudged-write"), "{run}: {e}");
        assert_eq!(count(&db, WINDOW).await, before, "{run}: the built-in's SQL deleted users");
    }
    p.stop().await;
}

/// A DBA's view over a built-in that runs SQL is a hidden caller like a view over a writing
/// function: a read of it is counted (before, the built-in was `pg_catalog`'s and the read ran
/// uncounted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_over_a_built_in_that_runs_sql_is_a_hidden_caller() {
    let db = setup(&format!(
        "CREATE VIEW public.report AS SELECT query_to_xml('{ERASE}', false, false, '') AS x; \
         GRANT SELECT ON public.report TO {RAW}"
    ))
    .await;
    let p = proxy_with(base_config(), shipped_policy()).await;
    let before = count(&db, WINDOW).await;
    let via = connect(p.port(), RAW, "", &db).await;
    let e = format!("{:?}", via.simple_query("SELECT length(x::text) FROM public.report").await.expect_err("ran"));
    assert!(e.contains("row-limit"), "{e}");
    assert_eq!(count(&db, WINDOW).await, before, "the view's SQL deleted users");
    p.stop().await;
}

/// Seventieth pass F2: the same built-ins called qualified with `pg_catalog` were taken for
/// harmless built-ins and relayed: `pg_catalog.query_to_xml` moved the protected sequence
/// 200,000 steps (and `setval` back into the window), `pg_catalog.ts_stat` deleted users
/// through a DBA's writing function. Any spelling is now a call of code, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualified_calls_of_built_ins_that_run_sql_are_counted() {
    let db = setup("").await;
    let p = proxy_with(base_config(), shipped_policy()).await;
    let seq = "SELECT last_value FROM public.web_user_id_seq";
    let (before, at) = (count(&db, WINDOW).await, count(&db, seq).await);
    let via = connect(p.port(), RAW, "", &db).await;
    let moves = "select count(next' || 'val(''public.web_user_id_seq'')) from generate_series(1, 5000)";
    let calls = [
        format!("SELECT pg_catalog.query_to_xml('{moves}', true, false, '')"),
        format!("SELECT pg_catalog.query_to_xml('{ERASE}', true, false, '')"),
        format!("SELECT \"pg_catalog\".\"query_to_xml\"('{ERASE}', true, false, '')"),
        format!("SELECT PG_CATALOG.TS_STAT('select to_tsvector(c::text) from ({ERASE}) s(c)')"),
        format!("SELECT pg_catalog.ts_stat('select to_tsvector(c::text) from ({moves}) s(c)')"),
    ];
    for sql in &calls {
        let e = format!("{:?}", via.simple_query(sql).await.expect_err(sql));
        assert!(e.contains("row-limit") || e.contains("identity"), "{sql}: {e}");
        assert_eq!(count(&db, WINDOW).await, before, "{sql}: users deleted");
        assert_eq!(count(&db, seq).await, at, "{sql}: the sequence moved");
    }
    p.stop().await;
}
