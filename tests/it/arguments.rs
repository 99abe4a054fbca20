//! What SQL EXECUTE evaluates besides the prepared statement: its arguments. A function called
//! there runs like any other call (red-team F10: `EXECUTE q(purge_sessions(1000))` ran an
//! ordinary DBA-made function past every row limit, and `EXPLAIN EXECUTE` did the same).

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_called_in_executes_arguments_is_counted() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION public.purge_sessions(before_id bigint) RETURNS bigint LANGUAGE sql AS \
         $$ WITH d AS (DELETE FROM public.chat_sessions WHERE id < before_id RETURNING 1) SELECT count(*) FROM d $$",
    );
    let p = proxy().await;
    let app = connect(p.port(), "app", APP_PW, &db).await;
    let direct = direct("app", APP_PW, &db).await;
    let count = "SELECT count(*)::int FROM chat_sessions";
    let before: i32 = direct.query_one(count, &[]).await.unwrap().get(0);
    assert!(before > 20, "more sessions than the policy's limit of 20: {before}");
    app.simple_query("PREPARE q(bigint) AS SELECT $1").await.unwrap();
    for sql in ["EXECUTE q(purge_sessions(1000))", "EXPLAIN EXECUTE q(purge_sessions(1000))"] {
        let e = app.simple_query(sql).await.expect_err(sql);
        let e = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e:?}"));
        assert!(e.message().starts_with("blastwall: refused"), "{sql}: {e:?}");
        let after: i32 = direct.query_one(count, &[]).await.unwrap().get(0);
        assert_eq!(after, before, "{sql}: the function's DELETE was kept");
    }
    // Arguments that call nothing, or a function that changes nothing, run as usual.
    app.simple_query("EXECUTE q(5)").await.unwrap();
    app.simple_query("EXECUTE q(purge_sessions(-1))").await.unwrap();
    p.stop().await;
}
