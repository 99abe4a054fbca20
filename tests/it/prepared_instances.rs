//! Eleventh pass M1: a two-phase transaction's DDL outlives its session and its blastwall
//! instance. `migrator` renames `archive.users` away in a transaction it prepares (through
//! instance 2, or on a direct connection); an app's range `DELETE FROM users …` under
//! `search_path = archive, public`, judged while it is prepared as `archive.users`, would wait
//! on its lock and, once `COMMIT PREPARED` runs on a direct connection, delete ten real users
//! from `public.users`. Every instance must hold that DDL open until the server says the gid
//! is gone: when the preparing session has closed, when the preparing instance was killed,
//! for an instance started after the PREPARE, and for a PREPARE made without blastwall. Real
//! `blastwall serve` processes with `[ddl_notify]` in front of the harness's server that can
//! prepare transactions; the data checked on the server.

use crate::batches::q;
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;
use crate::ops::Blastwall;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PW_ENV: &str = "BLASTWALL_TEST_LISTENER_PASSWORD";
const RANGE: &str = "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111111";
const WINDOW: &str = "SELECT count(*) FROM {t} WHERE id BETWEEN -91111120 AND -91111111";
const RENAME: &str = "ALTER TABLE archive.users RENAME TO old_users";

static N: AtomicUsize = AtomicUsize::new(0);

/// A new database on the two-phase server with the incident's schema for the DML-only role,
/// and then `more`.
pub(crate) fn two_phase_db(more: &str) -> String {
    let pg2 = pg_two_phase();
    let db = format!("bw2pc_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    admin_sql(pg2, "postgres", &format!("CREATE DATABASE {db} OWNER app"));
    admin_sql(
        pg2,
        &db,
        &format!(
            "SET ROLE app; {} RESET ROLE; REVOKE CREATE ON SCHEMA public FROM PUBLIC; \
             GRANT USAGE ON SCHEMA public TO {RAW}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {RAW}; \
             {more}",
            blastwall::demo::INCIDENT_SCHEMA
        ),
    );
    db
}

/// With an unprotected copy `archive.users` that `migrator` owns, and an unprotected `notes`.
fn setup() -> String {
    two_phase_db(&format!(
        "CREATE SCHEMA archive AUTHORIZATION migrator; CREATE TABLE archive.users AS SELECT * FROM public.users; \
         ALTER TABLE archive.users OWNER TO migrator; GRANT USAGE ON SCHEMA archive TO {RAW}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON archive.users TO {RAW}; \
         CREATE TABLE notes (id bigint); INSERT INTO notes SELECT generate_series(1, 10); \
         GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO {RAW};"
    ))
}

/// On the server, not through blastwall.
fn window(db: &str, table: &str) -> i64 {
    admin_sql(pg_two_phase(), db, &WINDOW.replace("{t}", table)).trim().parse().unwrap()
}

/// `blastwall serve` with the shipped policies and `[ddl_notify]`, in front of the two-phase server.
async fn instance() -> Blastwall {
    std::env::set_var(PW_ENV, SUPERUSER_PW);
    let config = format!("threads = 1\n[ddl_notify]\nuser = \"postgres\"\npassword_env = \"{PW_ENV}\"\n");
    Blastwall::start_to(pg_two_phase().server.port, &config, &["--policy", crate::cli::POLICIES]).await
}

/// `migrator`'s rename of `archive.users`, prepared as `gid` through `port` (the README's
/// way: `SET LOCAL blastwall.ddl_notify = off`); the client is returned still connected.
async fn prepare_rename(port: u16, db: &str, gid: &str) -> tokio_postgres::Client {
    let m = connect(port, "migrator", APP_PW, db).await;
    let prepare = format!("PREPARE TRANSACTION '{gid}'");
    for sql in ["BEGIN", "SET LOCAL blastwall.ddl_notify = off", RENAME, &prepare] {
        m.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    m
}

/// The app's range DELETE through `port` under `search_path = archive, public`, sent while
/// `gid` is prepared; `gid` is committed on a direct connection a second later (a write let
/// through waits on its lock until then). The ten real users must still be in `public.users`.
async fn delete_then_commit_directly(port: u16, db: &str, gid: &str) -> Replies {
    let mut c = startup(port, RAW, db).await;
    run(&mut c, "SET search_path = archive, public").await;
    c.write_all(&q(RANGE)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    admin_sql(pg_two_phase(), db, &format!("COMMIT PREPARED '{gid}'"));
    let r = crate::harness::replies(&mut c).await;
    assert_eq!(window(db, "public.users"), 10, "real users deleted after COMMIT PREPARED: {r:?}");
    assert_eq!(window(db, "archive.old_users"), 10, "{r:?}");
    r
}

fn held_open(r: &Replies) {
    assert!(r.errors.contains("blastwall: refused"), "judged without the prepared DDL: {r:?}");
    assert!(r.errors.contains("transaction that has not ended"), "{r:?}");
}

/// M1 as found: prepared through instance 2, whose session then closes; the write through
/// instance 1 is judged with the prepared rename (refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_ddl_through_another_instance_stays_open_after_its_session_closed() {
    let db = setup();
    let (one, two) = tokio::join!(instance(), instance());
    let _on_one = connect(one.port, "migrator", APP_PW, &db).await;
    let gid = format!("{db}_closed");
    drop(prepare_rename(two.port, &db, &gid).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    held_open(&delete_then_commit_directly(one.port, &db, &gid).await);
    one.stop().await;
    two.stop().await;
}

/// The same with instance 2 killed (SIGKILL) right after the PREPARE: its listening
/// connection and its sessions are gone, the prepared transaction is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_ddl_through_a_killed_instance_stays_open() {
    let db = setup();
    let (one, two) = tokio::join!(instance(), instance());
    let _on_one = connect(one.port, "migrator", APP_PW, &db).await;
    let gid = format!("{db}_killed");
    let _m = prepare_rename(two.port, &db, &gid).await;
    two.signal("-KILL");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    held_open(&delete_then_commit_directly(one.port, &db, &gid).await);
    one.stop().await;
}

/// An instance started after the PREPARE (made through instance 2, killed since) learns it
/// from the server when it joins; once the server says the gid is gone, the write is judged
/// by what the server has now (`public.users`: refused for its range, not for other DDL), and
/// a write the rename never concerned runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_after_the_prepare_holds_it_open() {
    let db = setup();
    let two = instance().await;
    let gid = format!("{db}_later");
    let _m = prepare_rename(two.port, &db, &gid).await;
    two.signal("-KILL");
    let three = instance().await;
    let mut c = startup(three.port, RAW, &db).await;
    let r = send(&mut c, &[q("DELETE FROM notes WHERE id = 1")]).await;
    assert!(r.errors.contains("transaction that has not ended"), "any name is held: {r:?}");
    held_open(&delete_then_commit_directly(three.port, &db, &gid).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run(&mut c, "SET search_path = archive, public").await;
    let r = send(&mut c, &[q(RANGE)]).await;
    assert!(r.errors.contains("blastwall: refused") && !r.errors.contains("has not ended"), "{r:?}");
    let r = send(&mut c, &[q("DELETE FROM notes WHERE id = 1")]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    three.stop().await;
}

/// Made on a direct connection: a prepared transaction of row writes only holds nothing (the
/// range DELETE of `archive.users` runs); one with the rename is seen on the server within a
/// second of its PREPARE and held open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_prepared_without_blastwall_is_held_when_its_locks_show_ddl() {
    let db = setup();
    let one = instance().await;
    let _on_one = connect(one.port, "migrator", APP_PW, &db).await;
    let pg2 = pg_two_phase();
    let rows = format!("{db}_rows");
    admin_sql(pg2, &db, &format!("BEGIN; DELETE FROM notes WHERE id = 10; PREPARE TRANSACTION '{rows}'"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut c = startup(one.port, RAW, &db).await;
    run(&mut c, "SET search_path = archive, public").await;
    let r = send(&mut c, &[q(RANGE)]).await;
    assert!(r.codes.is_empty(), "a prepared transaction of row writes held names: {r:?}");
    assert_eq!(window(&db, "archive.users"), 0);
    admin_sql(pg2, &db, &format!("ROLLBACK PREPARED '{rows}'"));
    admin_sql(pg2, &db, "INSERT INTO archive.users SELECT * FROM public.users");
    let gid = format!("{db}_direct");
    admin_sql(pg2, &db, &format!("BEGIN; {RENAME}; PREPARE TRANSACTION '{gid}'"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    held_open(&delete_then_commit_directly(one.port, &db, &gid).await);
    one.stop().await;
}
