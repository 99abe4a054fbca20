//! Issue 13, ninth adversarial pass R4: several blastwall instances in front of one server
//! (behind a load balancer). A write judged by instance 1 that the server has not run yet (it
//! waits behind a slow statement of the same message), and DDL through instance 2 that makes
//! its name lead to a protected table: the DDL waits until instance 1 answers that the write is
//! done. Two real `blastwall serve` processes with `[ddl_notify]` on the harness's server, the
//! shipped policies; the data checked directly on the server. Also: what an ordinary role says
//! on the instances' channel changes nothing, a hung instance makes DDL fail closed, a killed
//! one does not hold DDL back.

use crate::batches::q;
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;
use crate::ops::Blastwall;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const PW_ENV: &str = "BLASTWALL_TEST_LISTENER_PASSWORD";

/// The incident's ten real users, and the statement that deletes them (from whichever `users`
/// the session's path leads to).
const WINDOW: &str = "SELECT count(*) FROM {t} WHERE id BETWEEN -91111120 AND -91111111";
const RANGE: &str = "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111111";

/// The incident's schema for the DML-only role, with an unprotected copy `archive.users` that
/// `migrator` owns (and may rename), and an unprotected `notes`.
fn setup() -> String {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE SCHEMA archive AUTHORIZATION migrator; CREATE TABLE archive.users AS SELECT * FROM public.users; \
             ALTER TABLE archive.users OWNER TO migrator; GRANT USAGE ON SCHEMA archive TO {RAW}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON archive.users TO {RAW}; \
             CREATE TABLE notes (id bigint); INSERT INTO notes SELECT generate_series(1, 10); \
             GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO {RAW};"
        ),
    );
    db
}

async fn window(db: &str, table: &str) -> i64 {
    count(db, &WINDOW.replace("{t}", table)).await
}

/// `blastwall serve` with the shipped policies and `[ddl_notify]` (as the superuser).
async fn instance() -> Blastwall {
    std::env::set_var(PW_ENV, SUPERUSER_PW);
    let config = format!("threads = 1\n[ddl_notify]\nuser = \"postgres\"\npassword_env = \"{PW_ENV}\"\n");
    Blastwall::start(&config, &["--policy", crate::cli::POLICIES]).await
}

/// The listening connections' backends in `db` (one per instance that joined it).
async fn listeners(db: &str) -> Vec<i32> {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    let sql = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
               AND application_name = 'blastwall DDL listener' ORDER BY backend_start";
    c.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

/// A session of the DML-only role through `port` whose path leads `users` to `archive.users`.
async fn archived(port: u16, db: &str) -> tokio::net::TcpStream {
    let mut c = startup(port, RAW, db).await;
    run(&mut c, "SET search_path = archive, public").await;
    c
}

/// R4 as found: the range DELETE (judged on instance 1 as `archive.users`, unprotected) waits
/// behind a slow statement of its message while `migrator`, through instance 2, renames
/// `archive.users` away, so that `users` leads to the protected `public.users`. The rename
/// waits for instance 1's write, which runs on the archive's rows; the ten users stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_through_another_instance_waits_for_a_write_judged_here() {
    let db = setup();
    let (one, two) = tokio::join!(instance(), instance());
    let mut c = archived(one.port, &db).await;
    let m = connect(two.port, "migrator", APP_PW, &db).await;
    assert_eq!(listeners(&db).await.len(), 2, "both instances listen in {db}");
    c.write_all(&q(&format!("SELECT pg_sleep(1.5); {RANGE}"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    m.batch_execute("ALTER TABLE archive.users RENAME TO old_users").await.expect("the rename runs");
    let waited = started.elapsed();
    let r = crate::harness::replies(&mut c).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(window(&db, "public.users").await, 10, "protected users were deleted after the other instance's rename");
    assert_eq!(window(&db, "archive.old_users").await, 0, "the archive's rows were the ones judged");
    assert!(waited >= Duration::from_millis(900), "the rename did not wait for the other instance: {waited:?}");
    eprintln!("the rename waited {waited:?} for the write judged on the other instance");
    one.stop().await;
    two.stop().await;
}

/// The other half: while the rename's transaction is open on instance 2, a range DELETE of
/// `users` judged on instance 1 is judged as one whose name may lead anywhere (refused); one
/// of `notes`, which the rename does not touch, runs. After the COMMIT it is judged again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_judged_while_another_instance_has_ddl_open_is_judged_with_it() {
    let db = setup();
    let (one, two) = tokio::join!(instance(), instance());
    let mut c = archived(one.port, &db).await;
    let m = connect(two.port, "migrator", APP_PW, &db).await;
    m.batch_execute("BEGIN").await.unwrap();
    m.batch_execute("ALTER TABLE archive.users RENAME TO old_users").await.unwrap();
    let r = send(&mut c, &[q("DELETE FROM notes WHERE id BETWEEN 1 AND 2")]).await;
    assert!(r.codes.is_empty(), "a write the rename does not touch was refused: {r:?}");
    c.write_all(&q(&format!("SELECT pg_sleep(1); {RANGE}"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    m.batch_execute("COMMIT").await.unwrap();
    let r = crate::harness::replies(&mut c).await;
    assert!(r.errors.contains("blastwall: refused"), "judged without the other instance's open DDL: {r:?}");
    assert!(r.errors.contains("another blastwall instance"), "{r:?}");
    assert_eq!(window(&db, "public.users").await, 10, "protected users were deleted");
    // Ended: the same write is judged as `public.users` now, and refused by the range rule.
    let r = send(&mut c, &[q(RANGE)]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    assert!(!r.errors.contains("another blastwall instance"), "the other instance's DDL is still open: {r:?}");
    assert_eq!(window(&db, "public.users").await, 10);
    one.stop().await;
    two.stop().await;
}

/// An instance that joins while another has DDL open hears of it before its first write is
/// judged (`hello`, answered by `open`): instance 1 starts after instance 2's rename, still
/// uncommitted; the range DELETE judged on instance 1 behind a slow statement is refused, and
/// the rename's COMMIT during that statement deletes nothing protected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_joins_hears_of_ddl_already_open() {
    let db = setup();
    let two = instance().await;
    let m = connect(two.port, "migrator", APP_PW, &db).await;
    m.batch_execute("BEGIN").await.unwrap();
    m.batch_execute("ALTER TABLE archive.users RENAME TO old_users").await.unwrap();
    let one = instance().await;
    let mut c = archived(one.port, &db).await;
    c.write_all(&q(&format!("SELECT pg_sleep(1); {RANGE}"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    m.batch_execute("COMMIT").await.unwrap();
    let r = crate::harness::replies(&mut c).await;
    assert!(r.errors.contains("another blastwall instance"), "judged without the DDL already open: {r:?}");
    assert_eq!(window(&db, "public.users").await, 10, "protected users were deleted");
    one.stop().await;
    two.stop().await;
}

/// What any role may say on the channel: a `begin` from an ordinary backend holds no name open
/// on the instances (a write of `notes` runs through them), and made-up `ack`s do not stand
/// in for a hung instance's: with instance 2 stopped (SIGSTOP), DDL through instance 1 is
/// refused after the bound (`55P03`) and does not run. Killed (SIGKILL), instance 2 holds
/// nothing back: the same DDL runs within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_words_change_nothing_and_a_dead_instance_holds_nothing_back() {
    let db = setup();
    let (one, two) = tokio::join!(instance(), instance());
    let mut c = archived(one.port, &db).await;
    let m = connect(one.port, "migrator", APP_PW, &db).await;
    // A session makes instance 2 join the database too.
    let _on_two = connect(two.port, "migrator", APP_PW, &db).await;
    let pids = listeners(&db).await;
    assert_eq!(pids.len(), 2);
    let spoofer = direct(RAW, "", &db).await;
    let begin = r#"{"m":"begin","s":1,"k":1,"ddl":[{"names":[],"only":false}]}"#;
    for _ in 0..3 {
        spoofer.batch_execute(&format!("NOTIFY blastwall_peers, '{begin}'")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let r = send(&mut c, &[q("DELETE FROM notes WHERE id = 1")]).await;
        assert!(r.codes.is_empty(), "an ordinary role's begin held names open: {r:?}");
    }
    // Instance 2 hung: its listening connection stays, and answers nothing.
    two.signal("-STOP");
    let spoof_acks = async {
        for _ in 0..40 {
            for pid in &pids {
                let acks: Vec<String> = (1..20)
                    .map(|k| format!("NOTIFY blastwall_peers, '{{\"m\":\"ack\",\"to\":{pid},\"k\":{k}}}'"))
                    .collect();
                spoofer.batch_execute(&acks.join("; ")).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let started = Instant::now();
    let (ddl, ()) = tokio::join!(m.batch_execute("ALTER TABLE archive.users RENAME TO old_users"), spoof_acks);
    let e = ddl.expect_err("the DDL ran without the hung instance's answer");
    let d = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(d.code().code(), "55P03", "{d:?}");
    assert!(d.message().contains("did not answer"), "{}", d.message());
    assert!(started.elapsed() >= Duration::from_secs(10), "{:?}", started.elapsed());
    let c2 = direct("postgres", SUPERUSER_PW, &db).await;
    let renamed = c2.query_one("SELECT to_regclass('archive.old_users') IS NOT NULL", &[]).await.unwrap();
    assert!(!renamed.get::<_, bool>(0), "the refused DDL ran");
    // Killed: its backends end with its connections; the DDL no longer waits for it.
    two.signal("-KILL");
    let m = connect(one.port, "migrator", APP_PW, &db).await;
    let started = Instant::now();
    m.batch_execute("ALTER TABLE archive.users RENAME TO old_users")
        .await
        .expect("the DDL runs once the instance is gone");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    eprintln!("with the other instance killed, the DDL ran after {:?}", started.elapsed());
    one.stop().await;
}

/// An instance whose listening connection drops (terminated here) can no longer be waited for
/// by the others' DDL: its writes in flight are cancelled at once (the batch's DELETE never
/// runs), and until the connection is back (tried again after 5 seconds) its row writes are
/// judged as if another session had DDL open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listening_connection_cancels_the_writes_in_flight() {
    let db = setup();
    let one = instance().await;
    let mut c = archived(one.port, &db).await;
    c.write_all(&q("SELECT pg_sleep(3); DELETE FROM notes WHERE id BETWEEN 1 AND 2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin = direct("postgres", SUPERUSER_PW, &db).await;
    let kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() \
                AND application_name = 'blastwall DDL listener'";
    admin.execute(kill, &[]).await.unwrap();
    let r = crate::harness::replies(&mut c).await;
    assert_eq!(r.codes, vec!["57014".to_string()], "the write in flight was not cancelled: {r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM notes").await, 10);
    let r = send(&mut c, &[q("DELETE FROM notes WHERE id = 3")]).await;
    assert!(r.errors.contains("out of touch"), "{r:?}");
    let t = Instant::now();
    loop {
        let r = send(&mut c, &[q("DELETE FROM notes WHERE id = 3")]).await;
        if r.codes.is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "never back in touch: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count(&db, "SELECT count(*) FROM notes").await, 9);
    one.stop().await;
}

/// The cost, for the report (`cargo test --test it instances::ddl_latency -- --ignored
/// --nocapture`): the median time a DDL's announcement takes (asking who is live, telling them,
/// their answers), called directly on a proxy in process, alone and with a second one live; and
/// the median of renames through a `blastwall serve` with no `[ddl_notify]`, and through one
/// with it beside a second, taken in turns (the machine's load drifts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement run by hand for the README, not a check"]
async fn ddl_latency() {
    let db = setup();
    let config = || {
        std::env::set_var(PW_ENV, SUPERUSER_PW);
        let mut cfg = base_config();
        let password_env = Some(PW_ENV.into());
        cfg.ddl_notify = Some(blastwall::config::DdlNotifyConfig { user: "postgres".into(), password_env });
        cfg
    };
    async fn announcing(p: &Proxy, db: &str, from: u64) -> Duration {
        let peers = p.shared.instances.of(db, &p.shared.guard.inflight.db(db)).unwrap();
        let ddl = [blastwall::names::Earlier::elsewhere("ALTER TABLE x RENAME TO y", vec!["x".into()], true)];
        let mut times = Vec::new();
        for session in from..from + 100 {
            let t = Instant::now();
            peers.announce(session, None, &ddl).await.unwrap();
            times.push(t.elapsed());
            peers.ended(session);
        }
        times.sort();
        times[times.len() / 2]
    }
    let p1 = proxy_with(config(), shipped_policy()).await;
    let _s1 = connect(p1.port(), "migrator", APP_PW, &db).await;
    let alone = announcing(&p1, &db, 1 << 40).await;
    let p2 = proxy_with(config(), shipped_policy()).await;
    let _s2 = connect(p2.port(), "migrator", APP_PW, &db).await;
    assert_eq!(listeners(&db).await.len(), 2);
    let both = announcing(&p1, &db, 1 << 41).await;
    eprintln!("an announcement, median of 100: alone {alone:?}, with a second instance {both:?}");
    p1.stop().await;
    p2.stop().await;
    let plain = Blastwall::start("threads = 1\n", &["--policy", crate::cli::POLICIES]).await;
    let (one, two) = tokio::join!(instance(), instance());
    let _on_two = connect(two.port, "migrator", APP_PW, &db).await;
    let (a, b) = (connect(plain.port, "migrator", APP_PW, &db).await, connect(one.port, "migrator", APP_PW, &db).await);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let (from, to) = if i % 2 == 0 { ("users", "old_users") } else { ("old_users", "users") };
        let (c, times) = if i % 4 < 2 { (&a, &mut without) } else { (&b, &mut with) };
        let t = Instant::now();
        c.batch_execute(&format!("ALTER TABLE archive.{from} RENAME TO {to}")).await.unwrap();
        times.push(t.elapsed());
    }
    without.sort();
    with.sort();
    eprintln!(
        "a rename, median of 30 each, in turns: without [ddl_notify] {:?}, with it and a second instance {:?}",
        without[15], with[15]
    );
    plain.stop().await;
    one.stop().await;
    two.stop().await;
}

/// An instance killed in the middle of announced DDL whose backend still runs: `migrator`,
/// through instance 2, revokes the DML-only role's membership of the role that gives it the
/// use of `archive` (a text naming `archive`, a schema `migrator` owns, would be counted:
/// `catalog::opened`), which moves `users` to
/// `public.users` for it) in a message that then sleeps; instance 2 is killed (SIGKILL) while
/// it sleeps. The server runs the message to its end and commits it (it notices the gone client
/// only when it next writes to it). A range DELETE judged on instance 1 after it saw instance
/// 2 gone, behind a slow statement of its own message, must still be judged with that DDL
/// open (refused): judged as `archive.users`, it would run after the commit on `public.users`.
/// (A rename is counted, in blastwall's own transaction, and rolls back with the instance.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_of_a_killed_instance_stays_open_while_its_backend_runs() {
    let db = setup();
    let readers = format!("readers_{db}");
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE ROLE {readers}; GRANT USAGE ON SCHEMA archive TO {readers}; GRANT {readers} TO {RAW}; \
             REVOKE USAGE ON SCHEMA archive FROM {RAW}; GRANT {readers} TO migrator WITH ADMIN OPTION"
        ),
    );
    let (one, two) = tokio::join!(instance(), instance());
    let mut c = archived(one.port, &db).await;
    let m = connect(two.port, "migrator", APP_PW, &db).await;
    assert_eq!(listeners(&db).await.len(), 2);
    let revoke = format!("REVOKE {readers} FROM {RAW}; SELECT pg_sleep(3)");
    let running = tokio::spawn(async move { m.batch_execute(&revoke).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let admin = direct("postgres", SUPERUSER_PW, &db).await;
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'REVOKE readers%' AND state = 'active'";
    assert_eq!(admin.query_one(sleeping, &[]).await.unwrap().get::<_, i64>(0), 1, "{:?}", running.is_finished());
    two.signal("-KILL");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.write_all(&q(&format!("SELECT pg_sleep(1.5); {RANGE}"))).await.unwrap();
    let r = crate::harness::replies(&mut c).await;
    assert!(running.await.unwrap().is_err(), "the killed instance's client was answered");
    let t = Instant::now();
    while admin.query_one(sleeping, &[]).await.unwrap().get::<_, i64>(0) > 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "the killed instance's message never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sql = format!("SELECT has_schema_privilege('{RAW}', 'archive', 'USAGE')");
    let usage = admin.query_one(&sql, &[]).await.unwrap();
    assert!(!usage.get::<_, bool>(0), "the server did not run the killed instance's message to its end: {r:?}");
    assert_eq!(window(&db, "public.users").await, 10, "protected users were deleted: {r:?}");
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    // The backend gone, the DDL is over: the same write is judged by what the server has now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = send(&mut c, &[q(RANGE)]).await;
    assert!(r.errors.contains("blastwall: refused") && !r.errors.contains("has not ended"), "{r:?}");
    let r = send(&mut c, &[q("DELETE FROM notes WHERE id = 1")]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    one.stop().await;
}
