//! What blastwall says and records is what happened: warn-mode warnings audited and counted as
//! warned with their rule, dry-run reports of TRUNCATE and DROP, the session's mode as SHOW
//! and current_setting report it, refusals of looser modes, ignored override directives, and
//! refusals in the stderr log.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = r#"
[defaults]
mode = "warn"

[[table]]
name = "public.t"
protected_columns = ["id"]
max_delete_rows = 5
"#;

/// A database with table t of `rows` rows (ids 1…rows).
fn table_db(rows: u32) -> String {
    let db = fresh_db("words");
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, {rows}) g; ALTER TABLE t OWNER TO app"
        ),
    );
    db
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn audited(cfg: &mut blastwall::config::Config, dir: &tempfile::TempDir) -> std::path::PathBuf {
    cfg.admin = Some("127.0.0.1:0".into());
    audit_to(cfg, dir)
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_mode_warnings_are_audited_and_counted_as_warned_and_say_the_rows_changed() {
    let db = table_db(40);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config();
    let audit = audited(&mut cfg, &dir);
    let p = proxy_with(cfg, compile(&[(Path::new("warn.toml"), POLICY)]).unwrap()).await;
    // A protected range, within the row limit: forwarded with a warning.
    let (ok, out, err) = psql(p.port(), "app", APP_PW, &db, &[], Some("DELETE FROM t WHERE id BETWEEN 1 AND 3;\n"));
    assert!(ok && out.contains("DELETE 3"), "{out}{err}");
    assert!(err.contains("would refuse DELETE on public.t"), "{err}");
    // Over the row limit: it ran, and the words say so.
    let (ok, out, err) = psql(p.port(), "app", APP_PW, &db, &[], Some("DELETE FROM t WHERE v > 30;\n"));
    assert!(ok && out.contains("DELETE 10"), "{out}{err}");
    assert!(err.contains("over its limit of 5"), "{err}");
    assert!(!err.contains("Nothing was changed"), "the rows were deleted: {err}");
    assert!(err.contains("its changes were kept"), "{err}");
    let direct = direct("app", APP_PW, &db).await;
    let left: i64 = direct.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(left, 27);
    let ev = events(&audit);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(
        (&ev[0]["decision"], &ev[0]["rule"], &ev[0]["mode"]),
        (&"warned".into(), &"protected-range".into(), &"warn".into())
    );
    assert_eq!(
        (&ev[1]["decision"], &ev[1]["rule"], &ev[1]["mode"]),
        (&"warned".into(), &"row-limit".into(), &"warn".into())
    );
    assert_eq!(ev[1]["counts"][0]["deleted"], 10);
    let body = metrics(p.admin.unwrap()).await;
    for want in [
        "blastwall_decisions_total{mode=\"warn\",outcome=\"warned\",rule=\"protected-range\"} 1",
        "blastwall_decisions_total{mode=\"warn\",outcome=\"warned\",rule=\"row-limit\"} 1",
    ] {
        assert!(body.contains(want), "{want} missing from\n{body}");
    }
    assert!(!body.contains("outcome=\"verified\""), "{body}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_session_refuses_enforce_without_suggesting_it() {
    let db = incident_db();
    let p = proxy().await;
    let c = connect(p.port(), "app", APP_PW, &db).await;
    c.simple_query("SET blastwall.mode = 'dry-run'").await.unwrap();
    let e = c.simple_query("SET blastwall.mode = 'enforce'").await.unwrap_err();
    let e = e.as_db_error().unwrap();
    assert!(e.message().contains("dry-run, the strictest mode"), "{e:?}");
    let hint = e.hint().unwrap_or("");
    assert!(!hint.contains("'enforce'"), "the HINT suggests what was just refused: {hint}");
    assert!(hint.contains("strictest"), "{hint}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_may_not_override_is_told_its_directive_was_ignored() {
    let db = incident_db();
    let p = proxy().await;
    let c = connect(p.port(), "app", APP_PW, &db).await;
    let directive = "/* blastwall: allow rows<=200 reason=\"cleanup\" */ ";
    // Refused by its shape, before it runs.
    let e = c
        .simple_query(&format!("{directive}DELETE FROM users WHERE id BETWEEN -91111110 AND -91111101"))
        .await
        .unwrap_err();
    let detail = e.as_db_error().unwrap().detail().unwrap_or("").to_string();
    assert!(detail.contains("override directive was ignored") && detail.contains("role app"), "{detail}");
    // Refused by its count, after it ran (and was rolled back).
    let e = c.simple_query(&format!("{directive}DELETE FROM web_messages WHERE id IS NOT NULL")).await.unwrap_err();
    let e = e.as_db_error().unwrap();
    assert!(e.message().contains("over its limit"), "{e:?}");
    assert!(e.detail().unwrap_or("").contains("override directive was ignored"), "{e:?}");
    // Without a directive, no such word.
    let e = c.simple_query("DELETE FROM users WHERE id BETWEEN -91111110 AND -91111101").await.unwrap_err();
    assert!(!e.as_db_error().unwrap().detail().unwrap_or("").contains("directive"), "{e:?}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_says_what_truncate_and_drop_would_do() {
    let db = table_db(500);
    let p = proxy_with(base_config(), compile(&[(Path::new("warn.toml"), POLICY)]).unwrap()).await;
    let script = "SET blastwall.mode = 'dry-run';\nTRUNCATE t;\nDROP TABLE t;\nDELETE FROM t WHERE v > 498;\n";
    let (ok, out, err) = psql(p.port(), "app", APP_PW, &db, &[], Some(script));
    assert!(ok, "{out}{err}");
    assert!(!err.contains("change no rows"), "{err}");
    assert!(err.contains("dry-run of TRUNCATE: would remove every row of t;"), "{err}");
    assert!(err.contains("dry-run of DROP TABLE: would drop table t;"), "{err}");
    assert!(err.contains("dry-run of DELETE: would delete 2 rows from public.t;"), "{err}");
    let direct = direct("app", APP_PW, &db).await;
    let left: i64 = direct.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(left, 500);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_and_current_setting_report_the_mode_blastwall_enforces() {
    let db = incident_db();
    let p = proxy().await;
    let c = connect(p.port(), "app", APP_PW, &db).await;
    let mode = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap_or_default()
    };
    // A fresh session: the policy's mode.
    assert_eq!(mode(c.simple_query("SHOW blastwall.mode").await.unwrap()), "enforce");
    // psql too.
    let (ok, out, err) = psql(p.port(), "app", APP_PW, &db, &["-At", "-c", "SHOW blastwall.mode"], None);
    assert!(ok && out.trim() == "enforce", "{out}{err}");
    // set_config to a looser mode is refused like SET; to dry-run it is SET.
    let e = c.simple_query("SELECT pg_catalog.set_config('blastwall.mode', 'off', false)").await.unwrap_err();
    assert!(e.as_db_error().unwrap().message().contains("cannot be set to off"), "{e:?}");
    assert_eq!(mode(c.simple_query("SELECT set_config('blastwall.mode', 'dry-run', false)").await.unwrap()), "dry-run");
    assert_eq!(mode(c.simple_query("SELECT current_setting('blastwall.mode')").await.unwrap()), "dry-run");
    c.simple_query("DELETE FROM users WHERE id = -91111101").await.unwrap();
    // RESET ALL and DISCARD ALL would reset it on the server: refused while it would loosen.
    for sql in ["RESET ALL", "DISCARD ALL", "SELECT set_config('blastwall.mode', 'enforce', false)"] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert!(e.as_db_error().unwrap().message().contains("strictest"), "{sql}: {e:?}");
    }
    assert_eq!(mode(c.simple_query("SHOW blastwall.mode").await.unwrap()), "dry-run");
    let direct = direct("app", APP_PW, &db).await;
    let n: i64 = direct.query_one("SELECT count(*) FROM users WHERE id = -91111101", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "the dry run kept nothing");
    // In a session that asked for nothing, RESET ALL is as usual.
    let c2 = connect(p.port(), "app", APP_PW, &db).await;
    c2.simple_query("RESET ALL").await.unwrap();
    assert_eq!(mode(c2.simple_query("SHOW blastwall.mode").await.unwrap()), "enforce");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mode_change_stands_alone_outside_a_transaction_block() {
    let db = incident_db();
    let p = proxy().await;
    let c = connect(p.port(), "app", APP_PW, &db).await;
    let direct = direct("app", APP_PW, &db).await;
    let shown = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
    };
    // In one message with a write, the write would be judged under the old mode (and kept).
    let e = c.simple_query("SET blastwall.mode = 'dry-run'; DELETE FROM users WHERE id = -91111101").await.unwrap_err();
    assert!(e.as_db_error().unwrap().message().contains("message of its own"), "{e:?}");
    let n: i64 = direct.query_one("SELECT count(*) FROM users WHERE id = -91111101", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "the DELETE after SET blastwall.mode = 'dry-run' was kept");
    // In a transaction block, a ROLLBACK would undo it on the server only.
    c.simple_query("BEGIN").await.unwrap();
    let e = c.simple_query("SET blastwall.mode = 'dry-run'").await.unwrap_err();
    assert!(e.as_db_error().unwrap().message().contains("transaction block"), "{e:?}");
    c.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(shown(c.simple_query("SHOW blastwall.mode").await.unwrap()).as_deref(), Some("enforce"));
    // On its own it holds, on the server too.
    c.simple_query("SET blastwall.mode = 'dry-run'").await.unwrap();
    c.simple_query("DELETE FROM users WHERE id = -91111101").await.unwrap();
    assert_eq!(shown(c.simple_query("SHOW blastwall.mode").await.unwrap()).as_deref(), Some("dry-run"));
    let n: i64 = direct.query_one("SELECT count(*) FROM users WHERE id = -91111101", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "the session is in dry-run");
    p.stop().await;
}
