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
async fn listening(db: &str) {
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
