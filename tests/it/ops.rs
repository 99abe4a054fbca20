//! Running it in production: the audit trail, metrics and health endpoints, and policies that
//! change without a restart.

use crate::harness::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_and_metrics_record_every_guarded_decision() {
    let db = incident_db();
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let mut cfg = base_config();
    cfg.admin = Some("127.0.0.1:0".into());
    cfg.audit = Some(blastwall::config::AuditConfig {
        file: Some(audit_path.clone()),
        max_bytes: 0,
        keep: 0,
        raw_statements: false,
    });
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100").await.unwrap_err();
    via.execute("DELETE FROM users WHERE auth_source = $1", &[&"test"]).await.unwrap();
    via.simple_query("SET blastwall.mode = 'dry-run'").await.unwrap();
    via.simple_query("DELETE FROM users WHERE id = -91111111").await.unwrap();
    via.simple_query("SELECT 1").await.unwrap();
    let text = std::fs::read_to_string(&audit_path).unwrap();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 3, "{text}");
    let e = &events[0];
    assert_eq!(e["decision"], "refused");
    assert_eq!(e["rule"], "protected-range");
    assert_eq!(e["mode"], "enforce");
    assert_eq!(e["user"], "app");
    assert_eq!(e["database"], db.as_str());
    assert_eq!(e["targets"][0], "users");
    assert_eq!(e["fingerprint"].as_str().unwrap().len(), 16);
    assert!(e["statement"].as_str().unwrap().contains("BETWEEN $1 AND $2"), "normalized: {e}");
    assert!(!text.contains("91111200") && !text.contains("'test'") && !text.contains(APP_PW), "no values: {text}");
    assert_eq!(events[1]["decision"], "verified");
    assert_eq!(events[1]["counts"][0]["table"], "public.users");
    assert_eq!(events[1]["counts"][0]["deleted"], 10);
    assert!(events[1]["precheck_us"].as_u64().unwrap() > 0);
    assert_eq!(events[2]["decision"], "dry-run");
    // Metrics.
    let admin = p.admin.unwrap();
    let (status, body) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    for want in [
        "blastwall_sessions_open 1",
        "blastwall_decisions_total{mode=\"enforce\",outcome=\"refused\",rule=\"protected-range\"} 1",
        "blastwall_decisions_total{mode=\"\",outcome=\"verified\",rule=\"none\"} 1",
        "blastwall_precheck_seconds_count 2",
        "blastwall_policy_info{hash=",
    ] {
        assert!(body.contains(want), "{want} missing from\n{body}");
    }
    assert_eq!(http_get(admin, "/healthz").await.0, 200);
    let (status, body) = http_get(admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(http_get(admin, "/nope").await.0, 404);
    // A failed reload is counted, and the policy in force does not change.
    let hash = p.shared.guard.policy().hash.clone();
    p.shared.reload(blastwall::policy::file::compile(&[(std::path::Path::new("bad.toml"), "[[tabel]]\n")]));
    assert_eq!(p.shared.guard.policy().hash, hash);
    let (_, body) = http_get(admin, "/metrics").await;
    assert!(body.contains("blastwall_policy_reloads_total{result=\"failed\"} 1"), "{body}");
    p.stop().await;
    // Not ready when the server cannot be reached.
    let mut cfg = base_config();
    cfg.admin = Some("127.0.0.1:0".into());
    cfg.upstream_port = blastwall::pgtemp::free_port();
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let (status, body) = http_get(p.admin.unwrap(), "/readyz").await;
    assert_eq!(status, 503, "{body}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_reload_on_sighup_and_on_change_and_a_bad_one_changes_nothing() {
    let db = incident_db();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[defaults]\nmode = \"enforce\"\n").unwrap();
    // The single-threaded event loop (`threads = 1`): signals, the file watch and sessions
    // all share one thread.
    let config = dir.path().join("blastwall.toml");
    std::fs::write(&config, "threads = 1\n").unwrap();
    let port = blastwall::pgtemp::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args([
            "serve",
            "--config",
            &config.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            &format!("127.0.0.1:{}", pg().server.port),
        ])
        .args(["--policy", &policy.display().to_string()])
        .env("BLASTWALL_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "blastwall did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = |sql: &'static str| {
        let db = db.clone();
        async move {
            let c = connect(port, "app", APP_PW, &db).await;
            c.simple_query(sql).await.is_err()
        }
    };
    // The default policy: a range delete on users is fine (nothing protects users.id yet)…
    assert!(!refused("DELETE FROM web_messages WHERE id < 0").await);
    // … until the file changes: the watch reloads it.
    std::fs::write(&policy, "[[table]]\nname = \"web_messages\"\nprotected_columns = [\"id\"]\n").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !refused("DELETE FROM web_messages WHERE id < 0").await {
        assert!(std::time::Instant::now() < deadline, "the changed policy was not loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // An invalid policy is rejected and the one in force stays.
    std::fs::write(&policy, "[[tabel]]\nname = \"web_messages\"\n").unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(refused("DELETE FROM web_messages WHERE id < 0").await, "the old policy stays in force");
    // SIGTERM: a clean shutdown.
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = tokio::task::spawn_blocking(move || {
        let s = child.wait().unwrap();
        let mut err = String::new();
        use std::io::Read;
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (s, err)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{}", status.1);
    assert!(status.1.contains("policy reload failed") && status.1.contains("tabel"), "{}", status.1);
    assert!(status.1.contains("policy reloaded"), "{}", status.1);
    // Refusals reach the log: session, user, rule and fingerprint, not the statement's text.
    let refusal = status.1.lines().find(|l| l.contains("statement refused")).unwrap_or_else(|| panic!("{}", status.1));
    assert!(["user", "app", "protected-range", "fingerprint"].iter().all(|w| refusal.contains(w)), "{refusal}");
    assert!(!refusal.contains("id < 0"), "{refusal}");
}
