//! A name that an earlier statement of the same message may turn into a view over a policy
//! table (fourth adversarial pass: `CREATE TEMP VIEW v AS SELECT * FROM users; DELETE FROM v
//! WHERE id BETWEEN …`, a ROLLBACK that brings such a view back, a prepared statement run after
//! its view was replaced in the message): blastwall cannot resolve it before the message runs,
//! and a row write to it is refused. Data checked on the server directly.

use crate::harness::*;

async fn window(db: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one("SELECT count(*) FROM users WHERE id BETWEEN -91111120 AND -91111111", &[]).await.unwrap().get(0)
}

fn refused(r: Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error>, what: &str) {
    let e = r.err().unwrap_or_else(|| panic!("ran: {what}"));
    let d = e.as_db_error().unwrap_or_else(|| panic!("{what}: {e:?}"));
    assert!(d.message().starts_with("blastwall: refused"), "{what}: {}", d.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_an_earlier_statement_may_redirect_is_not_written_through() {
    let db = incident_db();
    admin_sql(pg(), &db, "CREATE SCHEMA archive; CREATE TABLE archive.users AS SELECT * FROM public.users; GRANT ALL ON SCHEMA archive TO app; GRANT ALL ON archive.users TO app;");
    let before = window(&db).await;
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let range = "DELETE FROM v WHERE id BETWEEN -91111120 AND -91111111";
    for sql in [
        format!("CREATE TEMP VIEW v AS SELECT * FROM public.users; {range}"),
        format!("CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM public.users; {range}"),
        "CREATE TEMP VIEW s AS SELECT *, 1 AS one FROM public.subscriptions; UPDATE s SET plan = 'hacked' WHERE one = 1".into(),
        "CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM public.users; INSERT INTO v (id, auth_source, plan, email) \
         VALUES (-91111112, 'test', 'free', 'pwned') ON CONFLICT (id) DO UPDATE SET email = excluded.email".into(),
    ] {
        refused(via.simple_query(&sql).await, &sql);
        assert_eq!(window(&db).await, before, "{sql}");
    }
    // A ROLLBACK earlier in the message brings back the view over users.
    via.batch_execute("CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM public.users").await.unwrap();
    via.batch_execute("BEGIN; SAVEPOINT s; CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM archive.users")
        .await
        .unwrap();
    via.batch_execute("DELETE FROM v WHERE id = 0").await.unwrap();
    refused(via.simple_query(&format!("ROLLBACK TO SAVEPOINT s; {range}")).await, "after ROLLBACK TO");
    via.batch_execute("ROLLBACK").await.unwrap();
    // A statement prepared while v led to archive.users, run after v is replaced in the message.
    via.batch_execute("CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM archive.users").await.unwrap();
    via.batch_execute(&format!("PREPARE p AS {range}")).await.unwrap();
    refused(
        via.simple_query("CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM public.users; EXECUTE p").await,
        "EXECUTE after the view was replaced",
    );
    assert_eq!(window(&db).await, before);
    // A new plain table in the same message reaches nothing: a script's staging table runs.
    via.batch_execute(
        "CREATE TEMP TABLE staging (id int); INSERT INTO staging VALUES (1), (7); DELETE FROM staging WHERE id < 5",
    )
    .await
    .unwrap();
    let c = direct("postgres", SUPERUSER_PW, &db).await;
    drop(c);
    let left: i64 = via.query_one("SELECT count(*) FROM staging", &[]).await.unwrap().get(0);
    assert_eq!(left, 1);
    p.stop().await;
}

/// Forty-seventh pass L2: savepoints a pipeline sets and returns to (40 `SAVEPOINT s`,
/// `ROLLBACK TO s`, `SAVEPOINT n`, `RELEASE n` in one extended-protocol batch) leave no more
/// statements to keep apart than the server's savepoints: a point write behind them, in the
/// same batch, runs (before, it was refused as unresolvable, "more statements than
/// blastwall keeps apart").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_a_pipeline_returns_to_leave_its_writes_resolvable() {
    use crate::batches::{pbe, q, sync};
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), crate::binds::RAW, &db).await;
    crate::batchnames::run(&mut s, "BEGIN").await;
    let block = ["SAVEPOINT s", "ROLLBACK TO SAVEPOINT s", "SAVEPOINT n", "RELEASE n"];
    let mut batch: Vec<Vec<u8>> = (0..40).flat_map(|_| block.map(pbe)).collect();
    batch.extend([pbe("UPDATE users SET plan = 'pro' WHERE id = -91111111"), sync(), q("COMMIT")]);
    let (written, ended) = (crate::batchnames::send(&mut s, &batch).await, replies(&mut s).await);
    for r in [written, ended] {
        assert!(r.codes.is_empty() && r.status.is_some(), "{r:?}");
    }
    let c = direct("postgres", SUPERUSER_PW, &db).await;
    let pro = c.query_one("SELECT count(*) FROM users WHERE id = -91111111 AND plan = 'pro'", &[]).await.unwrap();
    assert_eq!(pro.get::<_, i64>(0), 1);
    px.stop().await;
}
