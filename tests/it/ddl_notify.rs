//! Hidden callers made on a direct connection, seen at once: with the event triggers
//! `blastwall init-state` installs and `[ddl_notify]` configured, a view over a writing
//! function, or a domain whose `CHECK` calls one, created on the server directly is caught by
//! the next statement through blastwall once the notification has arrived, a few
//! milliseconds after the DDL's COMMIT was answered (without them it ran for up to 30
//! seconds). The data is read on the server directly.

use crate::harness::*;
use blastwall::config::DdlNotifyConfig;

async fn users(db: &str) -> i64 {
    count(db, "SELECT count(*) FROM public.users").await
}

/// Waits until blastwall's listening connection to `db` has run its LISTEN (and what follows).
pub(crate) async fn listening(db: &str) {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
         AND application_name = 'blastwall DDL listener' AND query <> '' AND state = 'idle'"
    );
    for _ in 0..200 {
        if count(db, &sql).await == 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("blastwall never listened on {db}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_caller_made_on_a_direct_connection_is_caught_by_the_next_statement() {
    let db = incident_db();
    admin_sql(pg(), &db, &blastwall::contract::state::init_script("blastwall", &["app".into()]));
    let mut cfg = base_config();
    // The password is read from the environment at each connection.
    std::env::set_var("BLASTWALL_TEST_LISTENER_PASSWORD", SUPERUSER_PW);
    let password_env = Some("BLASTWALL_TEST_LISTENER_PASSWORD".into());
    cfg.ddl_notify = Some(DdlNotifyConfig { user: "postgres".into(), password_env });
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // The first statement learns the database's hidden callers (none) and starts listening.
    via.simple_query("SELECT count(*) FROM users").await.unwrap();
    listening(&db).await;
    let before = users(&db).await;
    let direct = direct("app", APP_PW, &db).await;
    for (setup, sql) in [
        (
            "CREATE FUNCTION public.purge() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
               DELETE FROM public.users WHERE auth_source = 'telegram'; RETURN 1; END $$; \
             CREATE VIEW purging AS SELECT public.purge() AS x",
            "SELECT * FROM purging",
        ),
        ("CREATE DOMAIN purged AS int CHECK (public.purge() = 1)", "SELECT 1::purged"),
        ("CREATE TABLE stamped (x int DEFAULT public.purge(), y int)", "INSERT INTO stamped (y) VALUES (1)"),
    ] {
        let before_ddl = p.shared.guard.catalog.generation();
        direct.batch_execute(setup).await.unwrap_or_else(|e| panic!("{setup}: {e:?}"));
        // The notification reaches blastwall a moment after the COMMIT's answer reached the
        // direct client (it is delivered to an idle connection): wait for it, up to a second.
        let t = std::time::Instant::now();
        while p.shared.guard.catalog.generation() == before_ddl && t.elapsed().as_secs() < 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        eprintln!("{sql}: the DDL's notification arrived {:?} after its COMMIT was answered", t.elapsed());
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let d = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e:?}"));
        assert!(d.message().starts_with("blastwall: refused"), "{sql}: {}", d.message());
        assert_eq!(users(&db).await, before, "{sql}: {}", d.message());
    }
    // A temporary object's DDL changes nothing other sessions count: not notified; a
    // permanent one's drop is.
    for (ddl, notified) in
        [("CREATE TEMP TABLE scratch (a int); DROP TABLE scratch", false), ("DROP TABLE stamped", true)]
    {
        let before_ddl = p.shared.guard.catalog.generation();
        direct.batch_execute(ddl).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(p.shared.guard.catalog.generation() != before_ddl, notified, "{ddl}");
    }
    p.stop().await;
}

/// The generation once it moved from `before` (waiting up to `within`), and how long it took.
async fn moved(p: &Proxy, before: u64, within: std::time::Duration) -> (bool, std::time::Duration) {
    let t = std::time::Instant::now();
    while p.shared.guard.catalog.generation() == before && t.elapsed() < within {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (p.shared.guard.catalog.generation() != before, t.elapsed())
}

/// The proxy with `[ddl_notify]` (as the superuser) in front of the server on `port`.
async fn listening_proxy(port: u16) -> Proxy {
    std::env::set_var("BLASTWALL_TEST_LISTENER_PASSWORD", SUPERUSER_PW);
    let mut cfg = base_config();
    cfg.upstream_port = port;
    let password_env = Some("BLASTWALL_TEST_LISTENER_PASSWORD".into());
    cfg.ddl_notify = Some(DdlNotifyConfig { user: "postgres".into(), password_env });
    proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await
}

/// Ninth pass D3: a `NOTIFY blastwall_ddl` any role sends (here the DML-only role on a direct
/// connection, twenty times) makes blastwall forget nothing: only a row the event trigger adds
/// to `ddl_seen` does. DDL on a direct connection is still seen at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_from_anyone_forgets_nothing() {
    let db = incident_db();
    admin_sql(pg(), &db, &blastwall::contract::state::init_script("blastwall", &["app".into()]));
    let p = listening_proxy(pg().server.port).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("SELECT count(*) FROM users").await.unwrap();
    listening(&db).await;
    let spoofer = direct("app", APP_PW, &db).await;
    let before = p.shared.guard.catalog.generation();
    for _ in 0..20 {
        spoofer.batch_execute("NOTIFY blastwall_ddl").await.unwrap();
    }
    // Longer than the once-a-second reading of ddl_seen.
    let (forgot, _) = moved(&p, before, std::time::Duration::from_millis(1500)).await;
    assert!(!forgot, "a NOTIFY from an ordinary role made blastwall forget its answers");
    let direct = direct("postgres", SUPERUSER_PW, &db).await;
    direct.batch_execute("CREATE TABLE seen_here (a int)").await.unwrap();
    let (seen, after) = moved(&p, before, std::time::Duration::from_secs(1)).await;
    assert!(seen, "DDL on a direct connection was not seen");
    eprintln!("DDL on a direct connection seen {after:?} after its COMMIT was answered");
    p.stop().await;
}

/// A transaction that ran DDL can be prepared when it says so (`SET LOCAL blastwall.ddl_notify
/// = off`: no NOTIFY in it, which `PREPARE TRANSACTION` refuses), and its DDL is still seen,
/// within a second or so of its `COMMIT PREPARED` (`ddl_seen` is read once a second). Its own
/// server, with prepared transactions enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_with_ddl_can_be_prepared_and_its_ddl_is_seen() {
    let conf = vec!["max_prepared_transactions = 4".to_string()];
    let opts = blastwall::pgtemp::PgOptions { password: SUPERUSER_PW.into(), conf, ..Default::default() };
    let server = blastwall::pgtemp::TempPostgres::start(&opts).expect("a server with prepared transactions");
    let admin = connect(server.port, "postgres", SUPERUSER_PW, "postgres").await;
    admin.batch_execute(&blastwall::contract::state::init_script("blastwall", &[])).await.unwrap();
    let p = listening_proxy(server.port).await;
    let via = connect(p.port(), "postgres", SUPERUSER_PW, "postgres").await;
    via.simple_query("SELECT 1").await.unwrap();
    // With the trigger's NOTIFY, the server refuses to prepare (0A000): what is left to say.
    admin.batch_execute("BEGIN; CREATE TABLE loud (a int)").await.unwrap();
    let e = admin.batch_execute("PREPARE TRANSACTION 'loud'").await.expect_err("prepared with a NOTIFY in it");
    assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{e:?}");
    admin.batch_execute("ROLLBACK").await.ok();
    let before = p.shared.guard.catalog.generation();
    admin
        .batch_execute(
            "BEGIN; SET LOCAL blastwall.ddl_notify = off; CREATE TABLE quiet (a int); PREPARE TRANSACTION 'quiet'",
        )
        .await
        .expect("a transaction with DDL is prepared");
    admin.batch_execute("COMMIT PREPARED 'quiet'").await.unwrap();
    let (seen, after) = moved(&p, before, std::time::Duration::from_secs(3)).await;
    assert!(seen, "the prepared transaction's DDL was not seen");
    eprintln!("DDL committed by COMMIT PREPARED, without NOTIFY, seen {after:?} after");
    p.stop().await;
    drop(server);
}
