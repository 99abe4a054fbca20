//! Sixty-fourth pass H2 and its plain form: code committed by another session while a write
//! through blastwall waits for its relation's lock runs in that write. A DML-only role that
//! owns a table created a trigger on it on a direct connection, left uncommitted (it holds
//! the table's lock); an `INSERT` into the table through blastwall, judged while the table had
//! no code and so not counted, waited; the trigger was committed, and fired in the INSERT (20
//! users deleted) — or, deferred, at the client's COMMIT. Now a write to a relation another
//! role than the policy tables' owners may give code is counted whatever code it has
//! (`catalog::query`), and a deferrable trigger found after the write refuses it inside a
//! block (`precheck::identity`). Data checked on the server.

use crate::binds::RAW;
use crate::harness::*;

const WINDOW: &str = "SELECT count(*) FROM public.users WHERE id BETWEEN -91111200 AND -91111100";

/// The role's table and its trigger function (no trigger yet), in a schema of its own.
async fn setup() -> String {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE SCHEMA own AUTHORIZATION {RAW}; SET ROLE {RAW}; CREATE TABLE own.q (uid bigint); \
             CREATE FUNCTION own.qf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               DELETE FROM public.users WHERE id BETWEEN -91111200 AND -91111100; RETURN NULL; END $$"
        ),
    );
    db
}

/// Starts `trigger` on a direct connection of the role (holding the table's lock), sends
/// `write` through blastwall (after `first`, on the same connection), commits the trigger
/// while the write waits, and returns what blastwall said of the write.
async fn raced(db: &str, p: &Proxy, trigger: &str, first: &str, write: &'static str) -> Result<(), String> {
    let ddl = direct(RAW, "", db).await;
    ddl.batch_execute(&format!("BEGIN; {trigger}")).await.unwrap();
    let via = connect(p.port(), RAW, "", db).await;
    via.batch_execute(first).await.unwrap();
    let w = tokio::spawn(async move {
        let r = via.batch_execute(write).await.map_err(|e| format!("{e:?}"));
        let _ = via.batch_execute("COMMIT").await;
        r
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!w.is_finished(), "the write did not wait for the lock");
    ddl.batch_execute("COMMIT").await.unwrap();
    w.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_committed_while_a_write_waits_is_counted() {
    let db = setup().await;
    let p = proxy_with(base_config(), shipped_policy()).await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 20);
    let trigger = "CREATE TRIGGER qt AFTER INSERT ON own.q FOR EACH ROW EXECUTE FUNCTION own.qf()";
    let e = raced(&db, &p, trigger, "SELECT 1", "INSERT INTO own.q VALUES (1)").await.expect_err("the INSERT ran");
    assert!(e.contains("row-limit") || e.contains("unjudged-write"), "{e}");
    assert_eq!(count(&db, WINDOW).await, before, "the trigger deleted users");
    assert_eq!(count(&db, "SELECT count(*) FROM own.q").await, 0);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_trigger_committed_while_a_write_waits_in_a_block_is_refused() {
    let db = setup().await;
    let p = proxy_with(base_config(), shipped_policy()).await;
    let before = count(&db, WINDOW).await;
    let trigger = "CREATE CONSTRAINT TRIGGER qt AFTER INSERT ON own.q DEFERRABLE INITIALLY DEFERRED \
                   FOR EACH ROW EXECUTE FUNCTION own.qf()";
    let e = raced(&db, &p, trigger, "BEGIN", "INSERT INTO own.q VALUES (1)").await.expect_err("the INSERT ran");
    assert!(e.contains("deferred-trigger"), "{e}");
    assert_eq!(count(&db, WINDOW).await, before, "the trigger deleted users at COMMIT");
    assert_eq!(count(&db, "SELECT count(*) FROM own.q").await, 0);
    p.stop().await;
}
