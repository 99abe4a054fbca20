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
pub(crate) async fn setup() -> String {
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
pub(crate) async fn raced(db: &str, p: &Proxy, trigger: &str, first: &str, write: &'static str) -> Result<(), String> {
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

/// Sixty-sixth pass H1: the read's side. A `SELECT` of the role's own view (or table), judged
/// while it had no code, waited for the lock another session held and ran the view's new rule
/// (or a row-security policy) committed meanwhile: 20 users deleted. A read of a relation
/// another role than the policy tables' owners owns is now run in the pre-check, and its
/// counts say what the code did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_committed_while_a_read_waits_is_counted() {
    let db = setup().await;
    admin_sql(
        pg(),
        &db,
        &format!(
            "SET ROLE {RAW}; CREATE FUNCTION own.kill(int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN \
               DELETE FROM public.users WHERE id BETWEEN -91111200 AND -91111100; RETURN true; END $$; \
             CREATE TABLE own.base (x int); INSERT INTO own.base VALUES (1); \
             CREATE TABLE own.base2 (y int); INSERT INTO own.base2 VALUES (1); \
             CREATE VIEW own.v AS SELECT x FROM own.base"
        ),
    );
    let p = proxy_with(base_config(), shipped_policy()).await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 20);
    let cases: [(&str, &'static str); 3] = [
        // The view, locked by its replacement.
        ("CREATE OR REPLACE VIEW own.v AS SELECT x FROM own.base WHERE own.kill(x)", "SELECT * FROM own.v"),
        // Another table locked first: the view is opened (and its rule read) after the wait.
        (
            "LOCK TABLE own.base2 IN ACCESS EXCLUSIVE MODE; \
             CREATE OR REPLACE VIEW own.v AS SELECT x FROM own.base WHERE own.kill(x)",
            "SELECT * FROM own.base2, own.v",
        ),
        // A row-security policy on the role's table.
        (
            "ALTER TABLE own.base ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY; \
             CREATE POLICY p ON own.base USING (own.kill(x))",
            "SELECT * FROM own.base",
        ),
    ];
    for (code, read) in cases {
        let e = raced(&db, &p, code, "SELECT 1", read).await.expect_err(read);
        assert!(e.contains("row-limit") || e.contains("unjudged-write"), "{read}: {e}");
        assert_eq!(count(&db, WINDOW).await, before, "{read}: the code deleted users");
        // Put the view and the table back as they were, for the next case.
        admin_sql(
            pg(),
            &db,
            &format!(
                "SET ROLE {RAW}; CREATE OR REPLACE VIEW own.v AS SELECT x FROM own.base; \
                 DROP POLICY IF EXISTS p ON own.base; ALTER TABLE own.base DISABLE ROW LEVEL SECURITY"
            ),
        );
    }
    p.stop().await;
}
