//! Issue 11/13, fourth adversarial pass F1, F2, F5 in their extended-protocol forms: a name
//! that an earlier statement of the same batch (an Execute the server has not yet confirmed)
//! turns into a view over a policy table — `CREATE [OR REPLACE] TEMP VIEW v AS SELECT * FROM
//! users`, a `ROLLBACK [TO SAVEPOINT]` that brings such a view back — written through later in
//! the batch, or a statement prepared while `v` led elsewhere bound after it. Each is sent as
//! raw frames through blastwall in enforce mode with the shipped policies, as a DML-only role,
//! and the data is checked directly on the server. Controls: ordinary driver batches (a
//! temporary table made and filled, SET then SELECT, savepoint-wrapped writes) run unchanged.

use crate::batches::{b, e, p, pbe, q, sync};
use crate::binds::RAW;
use crate::harness::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The incident's ten real users.
const RANGE: &str = "DELETE FROM v WHERE id BETWEEN -91111120 AND -91111111";
const WINDOW: &str = "SELECT count(*) FROM users WHERE id BETWEEN -91111120 AND -91111111";
const TO_USERS: &str = "CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM public.users";
const TO_ARCHIVE: &str = "CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM archive.users";

/// The incident's schema with a copy of users in `archive`, for the DML-only raw-protocol role.
fn setup() -> String {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE SCHEMA archive; CREATE TABLE archive.users AS SELECT * FROM public.users; \
             GRANT USAGE ON SCHEMA archive TO {RAW}; GRANT SELECT, INSERT, UPDATE, DELETE ON archive.users TO {RAW};"
        ),
    );
    db
}

/// On the server, not through blastwall.
async fn server_value(db: &str, sql: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one(sql, &[]).await.unwrap().get(0)
}

pub(crate) async fn send(s: &mut TcpStream, parts: &[Vec<u8>]) -> Replies {
    s.write_all(&parts.concat()).await.unwrap();
    replies(s).await
}

/// A Query that must run (through blastwall).
pub(crate) async fn run(s: &mut TcpStream, sql: &str) {
    let r = send(s, &[q(sql)]).await;
    assert!(r.codes.is_empty(), "{sql}: {}", r.errors);
}

fn refused(r: &Replies, what: &str) {
    assert!(r.errors.contains("blastwall: refused"), "{what} was not refused: {r:?}");
}

fn ran(r: &Replies, what: &str) {
    assert!(r.codes.is_empty(), "{what}: {}", r.errors);
}

/// F1 as one batch: a view made (or replaced) by an Execute earlier in the batch, then a write
/// through it — unnamed statements, and named ones parsed before the view was replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_made_earlier_in_the_batch_is_not_written_through() {
    let db = setup();
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), RAW, &db).await;
    let create = "CREATE TEMP VIEW v AS SELECT * FROM public.users";
    let r = send(&mut s, &[pbe(create), pbe(RANGE), sync()]).await;
    refused(&r, "CREATE TEMP VIEW then DELETE through it");
    assert!(r.errors.contains("CREATE TEMP VIEW v"), "names the earlier statement: {}", r.errors);
    assert_eq!(server_value(&db, WINDOW).await, before);
    // The view exists, over archive.users; replaced in the batch.
    run(&mut s, "CREATE TEMP VIEW v AS SELECT * FROM archive.users").await;
    refused(&send(&mut s, &[pbe(TO_USERS), pbe(RANGE), sync()]).await, "CREATE OR REPLACE then DELETE");
    let upsert = "INSERT INTO v (id, auth_source, plan, email) VALUES (-91111112, 'test', 'free', 'pwned') \
                  ON CONFLICT (id) DO UPDATE SET email = excluded.email";
    run(&mut s, TO_ARCHIVE).await;
    refused(&send(&mut s, &[pbe(TO_USERS), pbe(upsert), sync()]).await, "CREATE OR REPLACE then upsert");
    // require-where through a constant column of a view made in the batch.
    let sub = "CREATE TEMP VIEW s AS SELECT *, 1 AS one FROM public.subscriptions";
    let upd = "UPDATE s SET plan = 'hacked' WHERE one = 1";
    refused(&send(&mut s, &[pbe(sub), pbe(upd), sync()]).await, "require-where through a new view");
    // Named statements: the DELETE parsed while v led to archive.users, bound after the
    // Execute that replaces it.
    run(&mut s, TO_ARCHIVE).await;
    let r =
        send(&mut s, &[p("d", RANGE), p("c", TO_USERS), b("", "c", &[]), e("", 0), b("", "d", &[]), e("", 0), sync()])
            .await;
    refused(&r, "Bind of a DELETE parsed before the view was replaced in its batch");
    // The unnamed statement, parsed first in the batch while v still led to archive.users.
    let r = send(
        &mut s,
        &[p("", RANGE), p("c2", TO_USERS), b("pc", "c2", &[]), e("pc", 0), b("", "", &[]), e("", 0), sync()],
    )
    .await;
    refused(&r, "Bind of the unnamed DELETE parsed before the view was replaced in its batch");
    assert_eq!(server_value(&db, WINDOW).await, before);
    assert_eq!(server_value(&db, "SELECT count(*) FROM subscriptions WHERE plan = 'hacked'").await, 0);
    let email = "SELECT count(*) FROM users WHERE email = 'pwned'";
    assert_eq!(server_value(&db, email).await, 0);
    px.stop().await;
}

/// F2 as one batch: a ROLLBACK (to a savepoint, or of the whole block) earlier in the batch
/// brings back the view over users that blastwall last saw as one over archive.users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_earlier_in_the_batch_does_not_bring_a_view_back_unjudged() {
    let db = setup();
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, "CREATE TEMP VIEW v AS SELECT * FROM public.users").await;
    for (end, undo) in [("SAVEPOINT s", "ROLLBACK TO SAVEPOINT s"), ("SELECT 1", "ROLLBACK")] {
        run(&mut s, "BEGIN").await;
        run(&mut s, end).await;
        run(&mut s, TO_ARCHIVE).await;
        // blastwall learns that v leads to archive.users.
        run(&mut s, "DELETE FROM v WHERE id = 0").await;
        let r = send(&mut s, &[pbe(undo), pbe(RANGE), sync()]).await;
        refused(&r, undo);
        assert!(r.errors.contains("ROLLBACK"), "names the ROLLBACK: {}", r.errors);
        assert_eq!(server_value(&db, WINDOW).await, before, "{undo}");
        run(&mut s, "ROLLBACK").await;
    }
    // A COMMIT of a transaction that failed in a batch not yet answered rolls back too.
    run(&mut s, "BEGIN").await;
    run(&mut s, TO_ARCHIVE).await;
    run(&mut s, "DELETE FROM v WHERE id = 0").await;
    s.write_all(&[pbe("SELECT 1/0"), sync(), pbe("COMMIT"), pbe(RANGE), sync()].concat()).await.unwrap();
    let failed = replies(&mut s).await;
    assert_eq!(failed.codes, ["22012"], "{failed:?}");
    let r = replies(&mut s).await;
    refused(&r, "COMMIT of a failed transaction, then the DELETE");
    assert_eq!(server_value(&db, WINDOW).await, before);
    px.stop().await;
}

/// DDL earlier in the batch that does not name the written name may still lead it elsewhere
/// (a schema renamed: `v` then finds another schema's view over users), and blastwall's answers
/// about the views over the policy tables are dropped with it until the batch is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_earlier_in_the_batch_that_does_not_name_the_view_still_counts() {
    let db = setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "GRANT CREATE ON DATABASE {db} TO {RAW}; CREATE SCHEMA s1 AUTHORIZATION {RAW}; CREATE SCHEMA s2; GRANT USAGE ON SCHEMA s2 TO {RAW}; \
             CREATE VIEW s1.v AS SELECT * FROM archive.users; ALTER VIEW s1.v OWNER TO {RAW}; \
             CREATE VIEW s2.v AS SELECT * FROM public.users; GRANT ALL ON s2.v TO {RAW};"
        ),
    );
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, "SET search_path = s1, s2, public").await;
    run(&mut s, "DELETE FROM v WHERE id = 0").await;
    let r = send(&mut s, &[pbe("ALTER SCHEMA s1 RENAME TO s9"), pbe(RANGE), sync()]).await;
    refused(&r, "a schema renamed earlier in the batch");
    assert!(r.errors.contains("ALTER SCHEMA s1"), "names the earlier statement: {}", r.errors);
    assert_eq!(server_value(&db, WINDOW).await, before);
    px.stop().await;
}

/// F5 in a batch: a statement prepared (in an earlier batch, by Parse or by SQL PREPARE) while
/// v led to archive.users, run after an Execute of the same batch that leads v to users — by a
/// Bind, or by SQL EXECUTE; and the same behind a Query not yet answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_prepared_while_its_view_led_elsewhere_is_not_run_after_the_batch_redirects_it() {
    let db = setup();
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, "CREATE TEMP VIEW v AS SELECT * FROM archive.users").await;
    ran(&send(&mut s, &[p("pd", RANGE), sync()]).await, "Parse while v leads to archive.users");
    run(&mut s, &format!("PREPARE sp AS {RANGE}")).await;
    let r = send(&mut s, &[pbe(TO_USERS), b("", "pd", &[]), e("", 0), sync()]).await;
    refused(&r, "Bind of pd after the view was replaced in the batch");
    assert_eq!(server_value(&db, WINDOW).await, before);
    let r = send(&mut s, &[pbe(TO_USERS), b("", "sp", &[]), e("", 0), sync()]).await;
    refused(&r, "Bind of sp after the view was replaced in the batch");
    assert_eq!(server_value(&db, WINDOW).await, before);
    let r = send(&mut s, &[pbe(TO_USERS), pbe("EXECUTE sp"), sync()]).await;
    refused(&r, "EXECUTE sp after the view was replaced in the batch");
    assert_eq!(server_value(&db, WINDOW).await, before);
    // A Query sent right behind the batch, before its answer, running sp.
    s.write_all(&[pbe(TO_USERS), sync(), q("EXECUTE sp")].concat()).await.unwrap();
    ran(&replies(&mut s).await, "the batch");
    let r = replies(&mut s).await;
    refused(&r, "EXECUTE sp in a Query behind the batch that replaced the view");
    assert_eq!(server_value(&db, WINDOW).await, before);
    run(&mut s, TO_ARCHIVE).await;
    // A portal bound in an earlier batch of the transaction, executed in this one.
    run(&mut s, "BEGIN").await;
    ran(&send(&mut s, &[p("c", TO_USERS), b("pc", "c", &[]), sync()]).await, "Bind only");
    let r = send(&mut s, &[e("pc", 0), b("", "pd", &[]), e("", 0), sync()]).await;
    refused(&r, "Bind of pd after a portal bound earlier replaced the view");
    run(&mut s, "ROLLBACK").await;
    assert_eq!(server_value(&db, WINDOW).await, before);
    // A Query that replaces the view, its answer not yet in, then a batch that binds pd.
    let r = send(&mut s, &[q(TO_USERS), b("", "pd", &[]), e("", 0), sync()]).await;
    ran(&r, "the Query");
    let r = replies(&mut s).await;
    refused(&r, "Bind of pd behind a Query that replaced the view");
    assert_eq!(server_value(&db, WINDOW).await, before);
    px.stop().await;
}

/// Controls: what drivers send in one batch runs and does what it says — an ORM's temporary
/// table made, filled and read; SET then SELECT; savepoint-wrapped writes of psycopg and
/// pgjdbc; a write to a policy table after a new temporary table; a view made and read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_batches_still_run() {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), RAW, &db).await;
    let r = send(
        &mut s,
        &[
            pbe("CREATE TEMP TABLE staging (id int, note text)"),
            pbe("INSERT INTO staging VALUES (1, 'a'), (7, 'b')"),
            pbe("DELETE FROM staging WHERE id < 5"),
            pbe("UPDATE staging SET note = 'c' WHERE id = 7"),
            pbe("SELECT * FROM staging"),
            sync(),
        ],
    )
    .await;
    ran(&r, "temporary table made, filled, read");
    assert_eq!(r.tags.matches('D').count(), 1, "{r:?}");
    let r = send(&mut s, &[pbe("SET search_path = archive, public"), pbe("SELECT count(*) FROM users"), sync()]).await;
    ran(&r, "SET then SELECT");
    run(&mut s, "RESET search_path").await;
    run(&mut s, "BEGIN").await;
    let r = send(
        &mut s,
        &[
            pbe("SAVEPOINT PGJDBC_AUTOSAVE"),
            pbe("UPDATE users SET plan = 'pro' WHERE id = -91111111"),
            pbe("RELEASE SAVEPOINT PGJDBC_AUTOSAVE"),
            pbe("SAVEPOINT _pg3_1"),
            pbe("INSERT INTO staging VALUES (9, 'd')"),
            pbe("RELEASE SAVEPOINT _pg3_1"),
            sync(),
        ],
    )
    .await;
    ran(&r, "savepoint-wrapped writes");
    run(&mut s, "COMMIT").await;
    assert_eq!(server_value(&db, "SELECT count(*) FROM users WHERE id = -91111111 AND plan = 'pro'").await, 1);
    let r = send(
        &mut s,
        &[
            pbe("CREATE TEMP TABLE t2 (id int)"),
            pbe("UPDATE users SET plan = 'free' WHERE id = -91111111"),
            pbe("CREATE TEMP VIEW rv AS SELECT id FROM staging"),
            pbe("SELECT * FROM rv"),
            sync(),
        ],
    )
    .await;
    ran(&r, "a policy table's point write after a new temporary table");
    assert_eq!(server_value(&db, "SELECT count(*) FROM users WHERE id = -91111111 AND plan = 'free'").await, 1);
    px.stop().await;
}

/// A view over users made in an earlier message, written through in the middle of a batch
/// after a plain `CREATE TEMP TABLE` (DDL: the catalog's answers are dropped, and cannot be
/// asked again before the batch ends): the session's last answer about the policy tables'
/// relatives stands in, and the write is refused as it is alone. Reads through it run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_made_before_the_batch_is_known_after_ddl_in_it() {
    let db = setup();
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, "CREATE TEMP VIEW v AS SELECT * FROM public.users").await;
    refused(&send(&mut s, &[q(RANGE)]).await, "alone");
    let r = send(&mut s, &[pbe("CREATE TEMP TABLE t9 (x int)"), pbe(RANGE), sync()]).await;
    refused(&r, "after a plain CREATE TEMP TABLE in the batch");
    assert_eq!(server_value(&db, WINDOW).await, before);
    let r = send(&mut s, &[pbe("CREATE TEMP TABLE t9 (x int)"), pbe("SELECT count(*) FROM v"), sync()]).await;
    ran(&r, "a read through the view");
    px.stop().await;
}

/// More portals that may redirect names than blastwall keeps apart (1,024, in one transaction):
/// an Execute of one it no longer keeps is taken as one that may redirect every name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_past_the_kept_ones_still_counts() {
    let db = setup();
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, "CREATE TEMP VIEW v AS SELECT * FROM public.users").await;
    run(&mut s, "BEGIN").await;
    run(&mut s, "SAVEPOINT s").await;
    run(&mut s, TO_ARCHIVE).await;
    run(&mut s, "DELETE FROM v WHERE id = 0").await;
    let mut binds = vec![p("rb", "ROLLBACK TO SAVEPOINT s")];
    binds.extend((0..1100).map(|i| b(&format!("p{i}"), "rb", &[])));
    binds.push(sync());
    ran(&send(&mut s, &binds).await, "binds only");
    let r = send(&mut s, &[e("p0", 0), pbe(RANGE), sync()]).await;
    refused(&r, "a portal bound among 1,100 that roll back, executed, then the DELETE");
    run(&mut s, "ROLLBACK").await;
    assert_eq!(server_value(&db, WINDOW).await, before);
    px.stop().await;
}
