//! Issue 13, eighth adversarial pass N1: DDL that another session sends through blastwall
//! while a write judged before it has not run yet. A batch is judged when it arrives, but the
//! server reaches a write in its middle only after what comes before it has run (a slow
//! `SELECT`), and a lone write that waits for a lock resolves its name again once it has the
//! lock. A rename of `users` to the name the write uses, a new view of that name over `users`,
//! or a rename of the table the name led to, landing in between, would send the write to
//! `users` unjudged as such. So DDL waits for the other sessions' writes judged before it
//! (cancelled if they take too long), and a write judged while such DDL's transaction is open
//! is judged as one whose name cannot be resolved. Raw frames through blastwall in enforce mode
//! with the shipped policies, as the DML-only role; the migrations through blastwall by
//! `migrator` (warn mode); the data checked directly on the server.

use crate::batches::{flush, pbe, sync};
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;
use crate::midbatch::warm;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The incident's ten real users, and the statement that deleted them.
const WINDOW: &str = "SELECT count(*) FROM {t} WHERE id BETWEEN -91111120 AND -91111111";
const RANGE: &str = "DELETE FROM members WHERE id BETWEEN -91111120 AND -91111111";

/// The incident's schema for the DML-only role, `users` owned by `migrator` (who may rename
/// it), and an unprotected `notes`.
fn setup() -> String {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "ALTER TABLE users OWNER TO migrator; GRANT USAGE, CREATE ON SCHEMA public TO migrator; \
             CREATE TABLE notes (id bigint); INSERT INTO notes SELECT generate_series(1, 10); \
             GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO {RAW};"
        ),
    );
    db
}

async fn window(db: &str, table: &str) -> i64 {
    count(db, &WINDOW.replace("{t}", table)).await
}

/// Sends a batch whose first statement sleeps `secs` and whose second is `sql`, and returns
/// at once (the replies are read later).
async fn slow_batch(s: &mut TcpStream, secs: f64, sql: &str, end: Vec<u8>) {
    let parts = [pbe(&format!("SELECT pg_sleep({secs})")), pbe(sql), end];
    s.write_all(&parts.concat()).await.unwrap();
}

/// N1 as found: the batch's slow first statement runs while `migrator` renames `users` to the
/// name its second statement writes. The rename waits for the batch (whose write then fails
/// as it would have before the rename: no such relation yet); the ten users stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_waits_for_a_batch_judged_before_it() {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = warm(px.port(), &db).await;
    slow_batch(&mut c, 1.5, RANGE, sync()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = connect(px.port(), "migrator", APP_PW, &db).await;
    let started = Instant::now();
    m.batch_execute("ALTER TABLE users RENAME TO members").await.expect("the rename runs");
    let waited = started.elapsed();
    let r = crate::harness::replies(&mut c).await;
    assert_eq!(r.codes, vec!["42P01".to_string()], "the write ran before the rename: {r:?}");
    assert!(waited >= Duration::from_millis(900), "the rename did not wait for the batch: {waited:?}");
    assert_eq!(window(&db, "members").await, 10, "users were deleted through the new name");
    // The same batch after the rename is judged with it: refused, and nothing deleted.
    let r = send(&mut c, &[pbe("SELECT 1"), pbe(RANGE), sync()]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    assert_eq!(window(&db, "members").await, 10);
}

/// The variant with no forbidden DDL: a compatibility view of the batch's name over `users`,
/// made while the batch's first statement runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_view_waits_for_a_batch_judged_before_it() {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = warm(px.port(), &db).await;
    slow_batch(&mut c, 1.5, RANGE, sync()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = connect(px.port(), "migrator", APP_PW, &db).await;
    m.batch_execute(&format!("CREATE VIEW members AS SELECT * FROM users; GRANT ALL ON members TO {RAW}"))
        .await
        .expect("the view is made");
    let r = crate::harness::replies(&mut c).await;
    assert_eq!(r.codes, vec!["42P01".to_string()], "the write ran through the new view: {r:?}");
    assert_eq!(window(&db, "users").await, 10, "users were deleted through the new view");
}

/// DDL in a transaction that stays open: a view `members` over `users`, not yet committed.
/// The session asks its answers afresh meanwhile (the view is not visible to it yet), then
/// pipelines a range DELETE of `members` behind a slow statement; the migration commits while
/// it sleeps. The write is judged with the open DDL: refused. A write to a name the migration
/// does not touch runs meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_judged_while_ddl_is_open_elsewhere_is_judged_with_it() {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let m = connect(px.port(), "migrator", APP_PW, &db).await;
    for sql in ["BEGIN", "CREATE VIEW members AS SELECT * FROM users", &format!("GRANT ALL ON members TO {RAW}")] {
        m.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    let mut c = warm(px.port(), &db).await;
    let r = send(&mut c, &[crate::batches::q("DELETE FROM notes WHERE id BETWEEN 1 AND 2")]).await;
    assert!(r.codes.is_empty(), "a write the migration does not touch was refused: {r:?}");
    slow_batch(&mut c, 1.0, RANGE, sync()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    m.batch_execute("COMMIT").await.unwrap();
    let r = crate::harness::replies(&mut c).await;
    assert!(r.errors.contains("blastwall: refused"), "the write was not refused while the DDL was open: {r:?}");
    assert!(r.errors.contains("another session"), "{r:?}");
    // Forty-seventh pass L1: told what kind of DDL, not its text.
    assert!(r.errors.contains("`CREATE VIEW …`") && !r.errors.contains("FROM users"), "{r:?}");
    assert_eq!(window(&db, "users").await, 10, "users were deleted through the new view");
    assert_eq!(count(&db, "SELECT count(*) FROM notes").await, 8);
}

/// Forty-seventh and forty-eighth passes M1: DDL that concerns a DML-only session alone (its
/// own temporary relations and objects, its role's settings, its default privileges, a
/// no-op `REASSIGN`), left open in a transaction, holds no other session (before, every write
/// of every role was refused until it ended, naming `users` or, after a `CASCADE`, any name).
/// L1: DDL that does hold them is named to them by its kind, not its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_of_the_session_alone_left_open_holds_no_other_session() {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut a = startup(px.port(), RAW, &db).await;
    for sql in [
        "BEGIN",
        "DROP TABLE IF EXISTS pg_temp.users",
        "DROP VIEW IF EXISTS pg_temp.x CASCADE",
        "CREATE OR REPLACE TEMP VIEW users AS SELECT -1::bigint AS id",
        "ALTER VIEW pg_temp.users RENAME TO x",
        "CREATE TEMP TABLE notes (id bigint)",
        "DROP TABLE pg_temp.notes CASCADE",
        &format!("REASSIGN OWNED BY {RAW} TO {RAW}"),
        "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO migrator",
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE DOMAIN pg_temp.d AS int",
        &format!("ALTER ROLE {RAW} SET lock_timeout = '5s'"),
        // Unqualified: asked on the session before it is forwarded.
        "CREATE TEMP TABLE t4 (a int)",
        "DROP TABLE t4 CASCADE",
    ] {
        run(&mut a, sql).await;
    }
    let mut c = warm(px.port(), &db).await;
    for sql in [
        "DELETE FROM notes WHERE id BETWEEN 1 AND 2",
        "UPDATE users SET email = 'kept@example.com' WHERE id = -91111111",
        "DELETE FROM users WHERE id = 0",
    ] {
        let r = send(&mut c, &[crate::batches::q(sql)]).await;
        assert!(r.codes.is_empty(), "{sql} was refused while temporary DDL was open elsewhere: {r:?}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM notes").await, 8);
    let kept = "SELECT count(*) FROM users WHERE email = 'kept@example.com'";
    assert_eq!(count(&db, kept).await, 1);
    run(&mut a, "ROLLBACK").await;
    // With `pg_temp` named in the path, an unqualified name may lead to a permanent relation:
    // held.
    for sql in
        ["BEGIN", "SET LOCAL search_path = public, pg_temp", "CREATE TEMP TABLE t5 (a int)", "DROP TABLE t5 CASCADE"]
    {
        run(&mut a, sql).await;
    }
    let r = send(&mut c, &[crate::batches::q("DELETE FROM users WHERE id = 0")]).await;
    assert!(r.errors.contains("`DROP TABLE …`"), "{r:?}");
    run(&mut a, "ROLLBACK").await;
    // A superuser's grant on a schema may redirect any name: held, and told by its kind.
    let su = connect(px.port(), "postgres", SUPERUSER_PW, &db).await;
    su.batch_execute("BEGIN; GRANT USAGE ON SCHEMA public TO migrator /* ticket s3cr3t */").await.unwrap();
    let r = send(&mut c, &[crate::batches::q("DELETE FROM users WHERE id = 0")]).await;
    assert!(r.errors.contains("`GRANT …`") && !r.errors.contains("s3cr3t"), "{r:?}");
    su.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&db, kept).await, 1);
}

/// A batch (ended by `end`) whose first statement sleeps a minute, with the range DELETE of
/// `members` behind it, while `migrator` renames `users` to `members`: the rename must not
/// wait for the minute. The batch's replies, once the rename ran; the ten users are checked.
async fn rename_during_a_long_batch(end: Vec<u8>) -> Replies {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = warm(px.port(), &db).await;
    slow_batch(&mut c, 60.0, RANGE, end).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = connect(px.port(), "migrator", APP_PW, &db).await;
    let started = Instant::now();
    m.batch_execute("ALTER TABLE users RENAME TO members").await.expect("the rename runs");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let r = crate::harness::replies(&mut c).await;
    assert_eq!(window(&db, "members").await, 10, "users were deleted through the new name");
    r
}

/// A batch that holds the window open too long is cancelled so that the DDL can run; the
/// write in it never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_takes_too_long_is_cancelled_for_the_ddl() {
    let r = rename_during_a_long_batch(sync()).await;
    assert_eq!(r.codes, vec!["57014".to_string()], "{r:?}");
}

/// The same with no Sync: the cancelled batch would wait for one forever, holding the DDL;
/// its session is ended instead (nothing of the batch was committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_without_sync_is_ended_for_the_ddl() {
    let r = rename_during_a_long_batch(flush()).await;
    assert!(r.status.is_none(), "the session was not ended: {r:?}");
}

/// Ninth pass R1: `REVOKE USAGE ON SCHEMA archive` moves `users` (under `search_path =
/// archive, public`) from `archive.users` to `public.users`. It waits for the write judged
/// before it (which deletes from the archive copy), as DDL that may change any name does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_on_a_schema_waits_for_a_write_judged_before_it() {
    let db = setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE SCHEMA archive AUTHORIZATION migrator; CREATE TABLE archive.users AS SELECT * FROM public.users; \
             ALTER TABLE archive.users OWNER TO migrator; GRANT USAGE ON SCHEMA archive TO {RAW}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON archive.users TO {RAW};"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "SET search_path = archive, public").await;
    let range = "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111111";
    c.write_all(&crate::batches::q(&format!("SELECT pg_sleep(1.5); {range}"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = connect(px.port(), "migrator", APP_PW, &db).await;
    m.batch_execute(&format!("REVOKE USAGE ON SCHEMA archive FROM {RAW}")).await.expect("the revoke runs");
    let r = crate::harness::replies(&mut c).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(window(&db, "public.users").await, 10, "users were deleted after the revoke");
    assert_eq!(window(&db, "archive.users").await, 0, "the archive's rows were the ones judged");
}

/// Ninth pass D1: DDL that never runs publishes nothing. A DML-only session's `BEGIN` and a
/// DDL blastwall refuses or the server rejects, held open, leaves other sessions' writes to
/// the names it mentions judged as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_that_never_runs_holds_no_name_open() {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut a = startup(px.port(), RAW, &db).await;
    run(&mut a, "BEGIN").await;
    let r = send(&mut a, &[crate::batches::q("DROP TABLE users")]).await;
    assert!(!r.codes.is_empty(), "{r:?}");
    let mut b = warm(px.port(), &db).await;
    let r = send(&mut b, &[crate::batches::q("UPDATE users SET plan = plan WHERE id = -91111112")]).await;
    assert!(r.codes.is_empty(), "a refused DDL held the name open: {r:?}");
    let mut a2 = startup(px.port(), RAW, &db).await;
    run(&mut a2, "BEGIN").await;
    let r = send(&mut a2, &[crate::batches::q("ALTER TABLE users RENAME TO members")]).await;
    assert!(!r.codes.is_empty(), "{r:?}");
    let r = send(&mut b, &[crate::batches::q("UPDATE users SET plan = plan WHERE id = -91111112")]).await;
    assert!(r.codes.is_empty(), "a failed DDL held the name open: {r:?}");
}

/// Ninth pass R2: the constraint an upsert `ON CONFLICT ON CONSTRAINT` names, swapped by DDL
/// that changes nothing a name leads to (`DROP CONSTRAINT`, then `ADD CONSTRAINT` of the same
/// name on `id`). The DROP waits for the upsert judged before it, which then fails on the
/// primary key as it would have before the swap: the real user is not overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_swap_waits_for_an_upsert_judged_before_it() {
    let db = setup();
    admin_sql(pg(), &db, "ALTER TABLE users ADD CONSTRAINT users_mail_key UNIQUE (email)");
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = warm(px.port(), &db).await;
    let upsert = "INSERT INTO users (id, auth_source, plan, email) VALUES (-91111112, 'pwn', 'free', 'pwned@example.test') \
                  ON CONFLICT ON CONSTRAINT users_mail_key DO UPDATE SET auth_source = excluded.auth_source, email = excluded.email";
    c.write_all(&crate::batches::q(&format!("SELECT pg_sleep(1.5); {upsert}"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = connect(px.port(), "migrator", APP_PW, &db).await;
    m.batch_execute("ALTER TABLE users DROP CONSTRAINT users_mail_key").await.expect("the drop runs");
    m.batch_execute("ALTER TABLE users ADD CONSTRAINT users_mail_key UNIQUE (id)").await.expect("the add runs");
    let r = crate::harness::replies(&mut c).await;
    assert_eq!(r.codes, vec!["23505".to_string()], "the upsert ran after the swap: {r:?}");
    let pwned = count(&db, "SELECT count(*) FROM users WHERE email = 'pwned@example.test'").await;
    assert_eq!(pwned, 0, "a real user was overwritten");
}

/// Ninth pass D2: DDL the server will refuse for lack of privilege — a DML-only role's rename
/// or drop of a table it does not own, a view made in a schema it may not create in, a
/// schema renamed or a role granted or a grant on a schema it holds no grant option on (these
/// three may change any name), the rename again inside a transaction block, and DDL after
/// `SET`s or a `BEGIN` in its own message — while another
/// session's batch writes `notes` after a slow statement. None of them waits for that batch,
/// nor cancels it: the batch's DELETE runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_the_role_may_not_run_holds_no_other_session() {
    let db = setup();
    // Other tests make the role a member of the database's owner (and so of `public`'s): so
    // does this one, whatever runs first.
    let archive = "CREATE SCHEMA archive AUTHORIZATION migrator; GRANT USAGE ON SCHEMA archive TO";
    admin_sql(pg(), &db, &format!("GRANT app TO {RAW}; {archive} {RAW}"));
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = warm(px.port(), &db).await;
    slow_batch(&mut c, 6.0, "DELETE FROM notes WHERE id = 1", sync()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attacks: [&[&str]; 11] = [
        &["ALTER TABLE notes RENAME TO old_notes"],
        &["ALTER TABLE public.notes RENAME TO old_notes"],
        &["CREATE VIEW archive.notes AS SELECT 1 AS id"],
        &["DROP TABLE archive.notes"],
        &["ALTER SCHEMA archive RENAME TO old_archive"],
        &["GRANT migrator TO trust_user"],
        &["GRANT USAGE ON SCHEMA archive TO PUBLIC"],
        &["BEGIN", "ALTER TABLE notes RENAME TO old_notes"],
        // The DDL after statements that change neither the role nor what names lead to.
        &["SET lock_timeout = '5s'; ALTER TABLE notes RENAME TO old_notes"],
        &["BEGIN; SET LOCAL statement_timeout = 0; ALTER SCHEMA archive RENAME TO old_archive; COMMIT"],
        &["SET statement_timeout = 0; GRANT USAGE ON SCHEMA archive TO PUBLIC"],
    ];
    for sqls in attacks {
        let mut a = startup(px.port(), RAW, &db).await;
        let started = Instant::now();
        let mut last = Replies::default();
        for sql in sqls {
            last = send(&mut a, &[crate::batches::q(sql)]).await;
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{sqls:?} waited for the other session's batch: {took:?}");
        if !sqls[sqls.len() - 1].contains("GRANT") {
            assert_eq!(last.codes.len(), 1, "{sqls:?} ran: {last:?}");
        }
    }
    let r = crate::harness::replies(&mut c).await;
    assert!(r.codes.is_empty(), "the other session's batch was cancelled: {r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM notes").await, 9, "the batch's DELETE did not run");
    assert_eq!(count(&db, "SELECT count(*) FROM pg_class WHERE relname = 'old_notes'").await, 0);
}

/// Two sessions whose DDL waits for the other's write: each deletes from the table the other
/// renames, in an extended batch not yet ended by its Sync, then sends its rename. Neither
/// write can be answered before the other's rename runs. The session that began waiting
/// first ends the other and its rename runs; it is not ended itself (before, each ended the
/// other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_whose_ddl_waits_for_each_other_end_only_one() {
    let db = setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE t1 (id bigint); CREATE TABLE t2 (id bigint); \
             INSERT INTO t1 SELECT generate_series(1, 10); INSERT INTO t2 SELECT generate_series(1, 10); \
             ALTER TABLE t1 OWNER TO {RAW}; ALTER TABLE t2 OWNER TO {RAW}; GRANT CREATE ON SCHEMA public TO {RAW};"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let (mut a, mut b) = (warm(px.port(), &db).await, warm(px.port(), &db).await);
    a.write_all(&[pbe("DELETE FROM t2 WHERE id = 1"), flush()].concat()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.write_all(&[pbe("DELETE FROM t1 WHERE id = 1"), flush()].concat()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.write_all(&[pbe("ALTER TABLE t1 RENAME TO t1_old"), sync()].concat()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.write_all(&[pbe("ALTER TABLE t2 RENAME TO t2_old"), sync()].concat()).await.unwrap();
    let (ra, rb) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), crate::harness::replies(&mut a)),
        tokio::time::timeout(Duration::from_secs(30), crate::harness::replies(&mut b)),
    );
    let (ra, rb) = (ra.expect("the first session's replies"), rb.expect("the second session's replies"));
    assert_eq!(ra.status, Some('I'), "the session that waited first was ended: {ra:?}");
    assert!(ra.codes.is_empty(), "{ra:?}");
    assert!(rb.status.is_none(), "the session that waited second was not ended: {rb:?}");
    assert!(rb.errors.contains("57P01") && rb.errors.contains("waited for this one's"), "{rb:?}");
    let exists = |t: &str| format!("SELECT count(*) FROM pg_class WHERE relname = '{t}'");
    assert_eq!(count(&db, &exists("t1_old")).await, 1, "the first session's rename did not run");
    assert_eq!(count(&db, &exists("t2")).await, 1, "the second session's rename ran");
    assert_eq!(count(&db, "SELECT count(*) FROM t2").await, 9, "the first session's DELETE did not commit");
    assert_eq!(count(&db, "SELECT count(*) FROM t1_old").await, 10, "the second session's DELETE committed");
}

/// The unnamed statement parsed in one batch (a range DELETE of the unprotected `notes`) and
/// bound in a later one behind a slow statement, while `migrator` renames `notes` away and
/// `users` to `notes` in one message: the server resolves the statement's names again when
/// it runs it after the renames. The renames wait for the Bind's batch, whose DELETE runs
/// before them (on the old `notes`); the ten users stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unnamed_statement_bound_in_a_later_batch_is_waited_for() {
    let db = setup();
    admin_sql(pg(), &db, "ALTER TABLE notes OWNER TO migrator");
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = warm(px.port(), &db).await;
    let range = "DELETE FROM notes WHERE id BETWEEN -91111120 AND -91111111";
    let r = send(&mut c, &[parse("", range), sync()]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    let slow = [parse("slow", "SELECT pg_sleep(1.5)"), crate::batches::b("", "slow", &[]), crate::batches::e("", 0)];
    let bound = [crate::batches::b("", "", &[]), crate::batches::e("", 0), sync()];
    c.write_all(&[slow.concat(), bound.concat()].concat()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = connect(px.port(), "migrator", APP_PW, &db).await;
    m.batch_execute("ALTER TABLE notes RENAME TO old_notes; ALTER TABLE users RENAME TO notes")
        .await
        .expect("the renames run");
    let r = crate::harness::replies(&mut c).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(window(&db, "notes").await, 10, "users were deleted through the unnamed statement");
}

/// The incident's schema on the server that can prepare transactions, as `setup` makes it.
fn two_phase_db() -> String {
    crate::prepared_instances::two_phase_db(
        "ALTER TABLE users OWNER TO migrator; GRANT USAGE, CREATE ON SCHEMA public TO migrator;",
    )
}

/// Ninth pass: a two-phase transaction's DDL between its `PREPARE TRANSACTION` and its
/// `COMMIT PREPARED`. `migrator` makes a view `members` over `users` and prepares the
/// transaction; a range DELETE of `members` is pipelined behind a slow statement, and the
/// transaction is committed on a direct connection while it sleeps. The write is judged with
/// the prepared DDL (refused); once the server says the transaction is gone, the same write
/// is judged by the view (refused for what it is, not for another session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_transactions_ddl_stays_open_until_it_is_committed() {
    let db = two_phase_db();
    let pg2 = pg_two_phase();
    let mut cfg = base_config();
    cfg.upstream_port = pg2.server.port;
    let px = proxy_with(cfg, shipped_policy()).await;
    let m = connect(px.port(), "migrator", APP_PW, &db).await;
    let grant = format!("GRANT ALL ON members TO {RAW}");
    for sql in ["BEGIN", "CREATE VIEW members AS SELECT * FROM users", &grant, "PREPARE TRANSACTION 'bw_g1'"] {
        m.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    let mut c = warm(px.port(), &db).await;
    slow_batch(&mut c, 1.0, RANGE, sync()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin_sql(pg2, &db, "COMMIT PREPARED 'bw_g1'");
    let r = crate::harness::replies(&mut c).await;
    assert!(r.errors.contains("blastwall: refused") && r.errors.contains("another session"), "{r:?}");
    let users = admin_sql(pg2, &db, &WINDOW.replace("{t}", "users"));
    assert_eq!(users.trim(), "10", "users were deleted through the prepared view");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = send(&mut c, &[crate::batches::q(RANGE)]).await;
    assert!(r.errors.contains("blastwall: refused") && !r.errors.contains("another session"), "{r:?}");
}

async fn answer(c: &tokio_postgres::Client, sql: String) -> bool {
    c.query_one(&sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e:?}")).get::<_, bool>(0)
}

/// The question of D2 as the server answers it, asked directly: false for each statement the
/// DML-only role may not run (in and out of a transaction block), true for what `migrator`
/// may (it owns `users`; a superuser may everything). None fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privilege_question_answers_as_the_server_checks() {
    use blastwall::names::rights::may_run_query;
    let db = setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "GRANT app TO {RAW}; CREATE SCHEMA hidden; CREATE TABLE hidden.t (id int); \
             CREATE SCHEMA archive AUTHORIZATION migrator; GRANT USAGE ON SCHEMA archive TO {RAW}; \
             CREATE TABLE archive.items (id int)"
        ),
    );
    let raw = direct(RAW, "", &db).await;
    // Other tests make the role a member of the database's owner (and so of `public`'s, which
    // lets it drop and create there): what it may not do is asked about in `archive`.
    raw.batch_execute("SET search_path = archive, public").await.unwrap();
    let migrator = direct("migrator", APP_PW, &db).await;
    let refused = [
        "ALTER TABLE notes RENAME TO old_notes",
        "ALTER TABLE public.notes ADD COLUMN x int",
        "ALTER TABLE hidden.t RENAME TO u",
        "ALTER TABLE missing RENAME TO u",
        "CREATE VIEW archive.v AS SELECT 1 AS id",
        "CREATE TABLE v (id int)",
        "DROP TABLE archive.items",
        "ALTER SCHEMA archive RENAME TO old_archive",
        "GRANT migrator TO trust_user",
        "GRANT USAGE ON SCHEMA archive, hidden TO PUBLIC",
        "CREATE TRIGGER t AFTER UPDATE ON notes EXECUTE FUNCTION f()",
        "CREATE RULE r AS ON UPDATE TO notes DO NOTHING",
    ];
    for sql in refused {
        for in_block in [false, true] {
            let q = may_run_query(sql, in_block).unwrap_or_else(|| panic!("{sql} is not judged"));
            assert!(!answer(&raw, q).await, "{sql}: the DML-only role may run it?");
        }
    }
    for sql in [
        "ALTER TABLE users RENAME TO members",
        "DROP TABLE users",
        "CREATE TRIGGER t AFTER UPDATE ON users EXECUTE FUNCTION f()",
    ] {
        assert!(answer(&migrator, may_run_query(sql, false).unwrap()).await, "{sql}: its owner may not run it?");
    }
    let admin = direct("postgres", SUPERUSER_PW, &db).await;
    assert!(answer(&admin, may_run_query("ALTER TABLE notes RENAME TO x", false).unwrap()).await);
}
