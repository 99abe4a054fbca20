//! Mode plumbing, checked on the data: the config file's `mode` and `--mode` through the real
//! binary, `[[application]]`, per-table modes, `off`, and a session's `SET blastwall.mode`
//! surviving ROLLBACK, RESET ALL and DISCARD ALL. Every test reads the rows directly on the
//! server, never through blastwall.

use crate::harness::*;
use crate::ops::Blastwall;
use blastwall::policy::file::{compile, DEFAULT_POLICY};
use std::path::Path;

/// The incident's cleanup: 20 users in the window, 10 of them real.
const RANGE_DELETE: &str = "DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100";

async fn users(db: &str) -> i64 {
    let c = direct("app", APP_PW, db).await;
    c.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0)
}

/// What one run of the range delete through `port` did: (psql succeeded, stdout, stderr,
/// users left on the server).
async fn range_delete(port: u16, db: &str) -> (bool, String, String, i64) {
    let (ok, out, err) = psql(port, "app", APP_PW, db, &["-c", RANGE_DELETE], None);
    (ok, out, err, users(db).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_mode_and_the_mode_flag_reach_the_guard_of_the_real_binary() {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    // (config file, flag, what psql reports, users left on the server).
    let cases: [(&str, &[&str], &[&str], i64); 4] = [
        // The policies' own mode: enforce.
        ("", &[], &["blastwall: refused DELETE", "mode enforce"], 60),
        // Config `mode = "warn"` replaces it: the delete runs, with a warning.
        ("mode = \"warn\"\n", &[], &["DELETE 20", "WARNING:  blastwall: would refuse DELETE"], 40),
        // `--mode dry-run` wins over the file: counted, rolled back, reported.
        ("mode = \"warn\"\n", &["--mode", "dry-run"], &["DELETE 0", "NOTICE:  blastwall: dry-run of DELETE"], 60),
        // `--mode off`: relayed silently.
        ("mode = \"dry-run\"\n", &["--mode", "off"], &["DELETE 20"], 40),
    ];
    for (config, flag, said, left) in cases {
        let db = incident_db();
        let bw = Blastwall::start(config, &[&["--policy", policies], flag].concat()).await;
        let (_, out, err, users_left) = range_delete(bw.port, &db).await;
        let both = format!("{out}{err}");
        for s in said {
            assert!(both.contains(s), "{config} {flag:?}: {s:?} missing from\n{both}");
        }
        if flag.contains(&"off") {
            assert!(!both.contains("blastwall"), "{both}");
        }
        assert_eq!(users_left, left, "{config} {flag:?}");
        bw.stop().await;
    }
}

/// `[[application]]` and per-table modes, the most specific first; `off` relays silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_and_tables_choose_their_mode() {
    let policy = r#"
[[table]]
name = "public.users"
protected_columns = ["id"]

[[table]]
name = "public.subscriptions"
protected_columns = ["user_id"]
mode = "dry-run"

[[table]]
name = "public.chat_sessions"
protected_columns = ["user_id"]
mode = "off"

[[application]]
name = "nightly-cleanup"
mode = "warn"
"#;
    let policy =
        compile(&[(Path::new("policies/default.toml"), DEFAULT_POLICY), (Path::new("modes.toml"), policy)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let db = incident_db();
    let c = direct("app", APP_PW, &db).await;
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let run = |app: &str, sql: &str| {
        let target = format!("dbname={db} application_name={app}");
        psql(p.port(), "app", APP_PW, &target, &["-c", sql], None)
    };
    // users: the default enforce for any application but the nightly cleanup's.
    let (ok, _, err) = run("psql", RANGE_DELETE);
    assert!(!ok && err.contains("mode enforce"), "{err}");
    assert_eq!(count("SELECT count(*) FROM users").await, 60);
    // subscriptions: dry-run (its table's mode), nothing changes.
    let (ok, out, err) = run("psql", "DELETE FROM subscriptions WHERE user_id < 0");
    assert!(ok && out.contains("DELETE 0") && err.contains("NOTICE:  blastwall: dry-run"), "{out}{err}");
    assert_eq!(count("SELECT count(*) FROM subscriptions WHERE user_id < 0").await, 20);
    // chat_sessions: off, relayed silently.
    let (ok, out, err) = run("psql", "DELETE FROM chat_sessions WHERE user_id < -91111105");
    assert!(ok && out.contains("DELETE 30") && !err.contains("blastwall"), "{out}{err}");
    assert_eq!(count("SELECT count(*) FROM chat_sessions WHERE user_id < -91111105").await, 0);
    // The nightly cleanup's application_name: warn, the delete runs.
    let (ok, out, err) = run("nightly-cleanup", RANGE_DELETE);
    assert!(ok && out.contains("DELETE 20") && err.contains("WARNING:  blastwall: would refuse"), "{out}{err}");
    assert_eq!(count("SELECT count(*) FROM users").await, 40);
    p.stop().await;
}

/// A session that asked for dry-run stays in dry-run whatever the server forgets: blastwall's
/// record is not undone by ROLLBACK, RESET ALL or DISCARD ALL. The policy's mode is warn, so a
/// session that fell back to it would really delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_mode_survives_rollback_reset_all_and_discard_all() {
    let policy = "[defaults]\nmode = \"warn\"\n\n[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\n";
    let policy = compile(&[(Path::new("warn.toml"), policy)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let db = incident_db();
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let deleted = |rows: &[tokio_postgres::SimpleQueryMessage]| {
        rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
    };
    // Each in a message of its own, as a client typing them would send them (a mode change
    // stands alone, outside a transaction block).
    via.batch_execute("SET blastwall.mode = 'dry-run'").await.unwrap();
    for forget in ["ROLLBACK", "RESET ALL", "DISCARD ALL"] {
        if forget == "ROLLBACK" {
            via.batch_execute("BEGIN").await.unwrap();
            via.batch_execute("ROLLBACK").await.unwrap();
        } else {
            // They would reset blastwall.mode on the server: refused while that would loosen it.
            let e = via.batch_execute(forget).await.unwrap_err();
            assert!(e.as_db_error().is_some_and(|d| d.message().contains("strictest")), "{forget}: {e:?}");
        }
        let rows = via.simple_query(RANGE_DELETE).await.unwrap();
        assert_eq!(deleted(&rows), Some(0), "after {forget}: not a dry run");
        assert_eq!(users(&db).await, 60, "after {forget}: the delete ran");
    }
    // A new session has the policy's warn mode: the same delete runs (so the test can fail).
    let other = connect(p.port(), "app", APP_PW, &db).await;
    let rows = other.simple_query(RANGE_DELETE).await.unwrap();
    assert_eq!(deleted(&rows), Some(20));
    assert_eq!(users(&db).await, 40);
    p.stop().await;
}

/// A StartupMessage may name `user` twice; the server logs in as the last one, and blastwall
/// must judge the session as that role too, not as the first (whose policy here is `off`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_user_is_judged_as_the_role_the_server_logs_in() {
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO trust_user");
    let lenient = "[[role]]\nname = \"app\"\nmode = \"off\"\n";
    let policy = compile(&[
        (Path::new("policies/default.toml"), DEFAULT_POLICY),
        (Path::new("policies/incident.toml"), blastwall::demo::INCIDENT_POLICY),
        (Path::new("lenient.toml"), lenient),
    ])
    .unwrap();
    let p = proxy_with(base_config(), policy).await;
    let mut s = send_startup(p.port(), 196_608, &[("user", "app"), ("database", &db), ("user", "trust_user")]).await;
    let opened = replies(&mut s).await;
    assert_eq!(opened.status, Some('I'), "logged in: {opened:?}");
    use tokio::io::AsyncWriteExt;
    s.write_all(&msg(b'Q', format!("SELECT current_user; {RANGE_DELETE}\0").as_bytes())).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.codes, ["42501"], "judged as app (mode off), run as trust_user: {r:?}");
    assert_eq!(users(&db).await, 60);
    p.stop().await;
}

/// `set_config` whose name is computed (`'blastwall' || '.mode'`, a cast) may set
/// blastwall.mode to a value blastwall cannot read: refused, so that what `SHOW
/// blastwall.mode` reports stays the mode blastwall enforces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computed_set_config_name_cannot_change_the_mode_blastwall_reports() {
    let p = proxy_with(base_config(), compile(&[(Path::new("default.toml"), DEFAULT_POLICY)]).unwrap()).await;
    let db = incident_db();
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let show = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap()
    };
    for sql in [
        "SELECT set_config('blastwall' || '.mode', 'off', false)",
        "SELECT pg_catalog.set_config('blastwall.mode'::text, 'off', false)",
        "SELECT set_config('blastwall.mode', 'o' || 'ff', false)",
    ] {
        let e = via.simple_query(sql).await.unwrap_err();
        let d = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e:?}"));
        assert!(d.message().contains("constant string"), "{sql}: {}", d.message());
        assert_eq!(show(via.simple_query("SHOW blastwall.mode").await.unwrap()), "enforce", "{sql}");
    }
    // A constant name of another setting is the server's business.
    via.simple_query("SELECT set_config('application_name', 'o' || 'ff', false)").await.unwrap();
    p.stop().await;
}
