//! The admin console (virtual database `blastwall`): real psql and tokio-postgres simple
//! queries through the proxy; logins authenticated by the server; SHOW SESSIONS / POLICY /
//! DECISIONS / STATS, RELOAD, PAUSE/RESUME and KILL acting on real sessions.

use crate::harness::*;
use blastwall::config::ConsoleConfig;
use std::time::Duration;

fn console_config() -> blastwall::config::Config {
    let mut c = base_config();
    c.console = Some(ConsoleConfig {
        admins: vec!["postgres".into(), "md5_user".into(), "pw_user".into()],
        auth_database: "postgres".into(),
    });
    c
}

async fn console(port: u16) -> tokio_postgres::Client {
    connect(port, "postgres", SUPERUSER_PW, "blastwall").await
}

/// The rows of a simple query, as column → value maps.
async fn rows(c: &tokio_postgres::Client, sql: &str) -> Vec<std::collections::HashMap<String, Option<String>>> {
    let msgs = c.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    msgs.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, col)| (col.name().to_string(), r.get(i).map(str::to_string)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_shows_sessions_policy_decisions_and_stats_as_tables() {
    let db = incident_db();
    let p = proxy_with(console_config(), blastwall::demo::incident_policy().unwrap()).await;
    let app = connect(p.port(), "app", APP_PW, &db).await;
    let e = app.simple_query("DELETE FROM users WHERE id BETWEEN 1 AND 9").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e:?}");
    let port = p.port();
    let run = |sql: &'static str| {
        tokio::task::spawn_blocking(move || psql(port, "postgres", SUPERUSER_PW, "blastwall", &["-c", sql], None))
    };
    let (ok, out, err) = run("SHOW SESSIONS").await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains(" session |") && out.contains("| application_name |"), "{out}");
    assert!(out.contains("| app ") && out.contains(&db) && out.contains("127.0.0.1:"), "{out}");
    let (ok, out, err) = run("SHOW POLICY").await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("public.users") && out.contains("policies/incident.toml line"), "{out}");
    assert!(out.contains("truncate") && out.contains("defaults"), "{out}");
    assert!(out.contains("opaque") && out.contains("unparseable"), "{out}");
    let (ok, out, err) = run("show decisions;").await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("refused") && out.contains("protected-range") && out.contains("DELETE FROM users"), "{out}");
    assert!(out.contains("BETWEEN $1 AND $2"), "statements are shown normalized: {out}");
    let (ok, out, err) = run("SHOW STATS").await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("refused") && out.contains("(1 row)"), "{out}");
    // The same through tokio-postgres, with typed columns.
    let c = console(p.port()).await;
    let stats = rows(&c, "SHOW STATS").await;
    assert_eq!(stats[0]["refused"].as_deref(), Some("1"), "{stats:?}");
    assert_eq!(stats[0]["paused"].as_deref(), Some("false"));
    let unknown = c.simple_query("SHOW NOTHING").await.unwrap_err();
    assert_eq!(unknown.code().map(|c| c.code()), Some("42601"));
    assert!(rows(&c, "SHOW HELP").await.iter().any(|r| r["command"].as_deref() == Some("KILL <session>")));
    // The session goes on after an error; the extended protocol is refused in words.
    assert_eq!(rows(&c, "SHOW SESSIONS").await.len(), 2);
    let e = c.query("SHOW SESSIONS", &[]).await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{e:?}");
    assert_eq!(rows(&c, "SHOW SESSIONS").await.len(), 2);
    drop(app);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_get_in_and_the_server_checks_their_password() {
    let p = proxy_with(console_config(), blastwall::demo::incident_policy().unwrap()).await;
    // A wrong password: the server's own refusal.
    let e = try_connect(p.port(), "postgres", "wrong", "blastwall").await.err().map(|e| e.code().cloned());
    assert_eq!(e, Some(Some(tokio_postgres::error::SqlState::INVALID_PASSWORD)));
    // Whatever method pg_hba.conf asks for is relayed: md5, cleartext password, SCRAM above.
    for user in ["md5_user", "pw_user"] {
        let c = connect(p.port(), user, APP_PW, "blastwall").await;
        assert_eq!(rows(&c, "SHOW STATS").await.len(), 1, "{user}");
    }
    // A role that logs in but is no console admin.
    let e = try_connect(p.port(), "app", APP_PW, "blastwall").await.err().and_then(|e| e.code().cloned());
    assert_eq!(e, Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE));
    p.stop().await;
    // Without [console], `blastwall` is an ordinary database name, relayed to the server.
    let p = proxy().await;
    let e = try_connect(p.port(), "postgres", SUPERUSER_PW, "blastwall").await.err().and_then(|e| e.code().cloned());
    assert_eq!(e, Some(tokio_postgres::error::SqlState::INVALID_CATALOG_NAME));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_one_session_and_pause_holds_queries_until_resume() {
    let db = incident_db();
    let p = proxy_with(console_config(), blastwall::demo::incident_policy().unwrap()).await;
    let c = console(p.port()).await;
    let victim = connect(p.port(), "app", APP_PW, &db).await;
    let bystander = connect(p.port(), "app", APP_PW, &db).await;
    victim.simple_query("BEGIN; SELECT count(*) FROM users").await.unwrap();
    let sessions = rows(&c, "SHOW SESSIONS").await;
    let ids: Vec<String> = sessions
        .iter()
        .filter(|r| r["database"].as_deref() == Some(db.as_str()))
        .map(|r| r["session"].clone().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{sessions:?}");
    c.simple_query(&format!("KILL {}", ids[0])).await.unwrap();
    let e = victim.simple_query("SELECT 1").await.unwrap_err();
    assert!(e.code().map(|c| c.code()) == Some("57P01") || victim.is_closed(), "{e:?}");
    bystander.simple_query("SELECT 1").await.unwrap();
    // The killed session ends once its server connection is closed: wait for it (bounded).
    let mut left = rows(&c, "SHOW SESSIONS").await.len();
    for _ in 0..50 {
        if left == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = rows(&c, "SHOW SESSIONS").await.len();
    }
    assert_eq!(left, 2, "the killed session is gone");
    let e = c.simple_query("KILL 999999").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42704"));
    // PAUSE: the next query waits; RESUME lets it run.
    c.simple_query("PAUSE").await.unwrap();
    assert_eq!(rows(&c, "SHOW STATS").await[0]["paused"].as_deref(), Some("true"));
    let q = tokio::spawn(async move {
        let r = bystander.simple_query("SELECT 42").await.map(|_| ());
        (r, bystander)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!q.is_finished(), "a query ran while paused");
    c.simple_query("RESUME").await.unwrap();
    let (r, _bystander) = tokio::time::timeout(Duration::from_secs(5), q).await.expect("resumed").unwrap();
    r.unwrap();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reads_the_policy_files_again_and_reports_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(&file, "[[table]]\nname = \"public.first\"\nprotected_columns = [\"id\"]\n").unwrap();
    let mut config = console_config();
    config.policies = vec![file.clone()];
    let policy = blastwall::policy::file::load(&config.policies).unwrap();
    let p = proxy_with(config, policy).await;
    let c = console(p.port()).await;
    let names = |r: Vec<std::collections::HashMap<String, Option<String>>>| {
        r.iter().filter_map(|r| r["name"].clone()).collect::<Vec<_>>().join(",")
    };
    assert!(names(rows(&c, "SHOW POLICY").await).contains("public.first"));
    std::fs::write(&file, "[[table]]\nname = \"public.second\"\nprotected_columns = [\"id\"]\n").unwrap();
    c.simple_query("RELOAD").await.unwrap();
    let now = names(rows(&c, "SHOW POLICY").await);
    assert!(now.contains("public.second") && !now.contains("public.first"), "{now}");
    std::fs::write(&file, "[[tabel]]\n").unwrap();
    let e = c.simple_query("RELOAD").await.unwrap_err();
    let text = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert!(text.contains("tabel") && text.contains("previous policy stays"), "{text}");
    assert!(names(rows(&c, "SHOW POLICY").await).contains("public.second"));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_cancels_the_query_the_session_was_running() {
    let db = fresh_db("killrun");
    let p = proxy_with(console_config(), blastwall::demo::incident_policy().unwrap()).await;
    let c = console(p.port()).await;
    let victim = connect(p.port(), "app", APP_PW, &db).await;
    victim.simple_query("SET application_name = 'victim'").await.unwrap();
    let running = tokio::spawn(async move { victim.simple_query("SELECT pg_sleep(60)").await.map(|_| ()) });
    let observer = direct("postgres", SUPERUSER_PW, &db).await;
    let sleeping = "SELECT count(*)::text FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'";
    let count = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(observer.simple_query(sleeping).await.unwrap()) != "1" {
        assert!(std::time::Instant::now() < deadline, "the query did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = rows(&c, "SHOW SESSIONS")
        .await
        .into_iter()
        .find(|r| r["database"].as_deref() == Some(db.as_str()))
        .and_then(|r| r["session"].clone())
        .unwrap();
    c.simple_query(&format!("KILL {id}")).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), running).await.expect("the client is told at once").unwrap();
    assert!(r.is_err());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(observer.simple_query(sleeping).await.unwrap()) != "0" {
        assert!(std::time::Instant::now() < deadline, "the killed session's query still runs on the server");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.stop().await;
}
