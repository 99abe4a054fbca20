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
    let mut cfg = base_config();
    cfg.admin = Some("127.0.0.1:0".into());
    let audit_path = audit_to(&mut cfg, &dir);
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

/// The real binary, `blastwall serve --config FILE`, listening on a free port in front of the
/// harness's server: what `main.rs` reads (config file, flags, signals) is exercised as shipped.
pub struct Blastwall {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Blastwall {
    /// Starts it with this config file text and these extra arguments; returns when it accepts.
    pub async fn start(config: &str, args: &[&str]) -> Blastwall {
        Blastwall::start_to(pg().server.port, config, args).await
    }

    /// [`Blastwall::start`] in front of the server listening on `upstream` (a local port).
    pub async fn start_to(upstream: u16, config: &str, args: &[&str]) -> Blastwall {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blastwall.toml");
        std::fs::write(&path, config).unwrap();
        let port = blastwall::pgtemp::free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_blastwall"))
            .args(["serve", "--config", &path.display().to_string()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--upstream", &format!("127.0.0.1:{upstream}")])
            .args(args)
            .env("BLASTWALL_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut bw = Blastwall { child, port, _dir: dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Ok(Some(status)) = bw.child.try_wait() {
                let (_, err) = bw.stop().await;
                panic!("blastwall exited with {status}: {err}");
            }
            assert!(std::time::Instant::now() < deadline, "blastwall did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bw
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, then the exit status and everything it logged.
    pub async fn stop(mut self) -> (std::process::ExitStatus, String) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        tokio::task::spawn_blocking(move || {
            let mut err = String::new();
            use std::io::Read;
            self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            (self.child.wait().unwrap(), err)
        })
        .await
        .unwrap()
    }
}

/// Whether blastwall refuses a range delete on web_messages (protected in the reloaded policy).
async fn range_delete_refused(port: u16, db: &str) -> bool {
    let c = connect(port, "app", APP_PW, db).await;
    match c.simple_query("DELETE FROM web_messages WHERE id < 0").await {
        Ok(_) => false,
        Err(e) => {
            let m = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
            assert!(m.starts_with("blastwall: refused"), "{e:?}");
            true
        }
    }
}

const PROTECT_WEB_MESSAGES: &str = "[[table]]\nname = \"web_messages\"\nprotected_columns = [\"id\"]\n";

/// Longer than the file watch's period (2 s): a change it would load has been loaded by then.
const LONGER_THAN_THE_WATCH: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_policies_without_the_file_watch_and_a_bad_one_changes_nothing() {
    let db = incident_db();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[defaults]\nmode = \"enforce\"\n").unwrap();
    // The single-threaded event loop (`threads = 1`): signals and sessions share one thread.
    let bw =
        Blastwall::start("threads = 1\nwatch_policies = false\n", &["--policy", &policy.display().to_string()]).await;
    assert!(!range_delete_refused(bw.port, &db).await, "nothing protects web_messages.id yet");
    std::fs::write(&policy, PROTECT_WEB_MESSAGES).unwrap();
    tokio::time::sleep(LONGER_THAN_THE_WATCH).await;
    assert!(!range_delete_refused(bw.port, &db).await, "the watch is off: the file alone changes nothing");
    bw.signal("-HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !range_delete_refused(bw.port, &db).await {
        assert!(std::time::Instant::now() < deadline, "SIGHUP did not load the changed policy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An invalid policy is rejected and the one in force stays.
    std::fs::write(&policy, "[[tabel]]\nname = \"web_messages\"\n").unwrap();
    bw.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(range_delete_refused(bw.port, &db).await, "the old policy stays in force");
    let (status, err) = bw.stop().await;
    assert!(status.success(), "SIGTERM: a clean shutdown\n{err}");
    assert!(err.contains("policy reload failed") && err.contains("tabel"), "{err}");
    assert!(err.contains("policy reloaded"), "{err}");
    // Refusals reach the log: session, user, rule and fingerprint, not the statement's text.
    let refusal = err.lines().find(|l| l.contains("statement refused")).unwrap_or_else(|| panic!("{err}"));
    assert!(["user", "app", "protected-range", "fingerprint"].iter().all(|w| refusal.contains(w)), "{refusal}");
    assert!(!refusal.contains("id < 0"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_watch_reloads_a_changed_policy_and_a_bad_one_changes_nothing() {
    let db = incident_db();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[defaults]\nmode = \"enforce\"\n").unwrap();
    let bw = Blastwall::start("threads = 1\n", &["--policy", &policy.display().to_string()]).await;
    assert!(!range_delete_refused(bw.port, &db).await);
    // No signal in this test: only the watch can load the change.
    std::fs::write(&policy, PROTECT_WEB_MESSAGES).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !range_delete_refused(bw.port, &db).await {
        assert!(std::time::Instant::now() < deadline, "the changed policy was not loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::write(&policy, "[[tabel]]\nname = \"web_messages\"\n").unwrap();
    tokio::time::sleep(LONGER_THAN_THE_WATCH).await;
    assert!(range_delete_refused(bw.port, &db).await, "the old policy stays in force");
    let (status, err) = bw.stop().await;
    assert!(status.success(), "{err}");
    assert!(err.contains("policy reloaded") && err.contains("policy reload failed"), "{err}");
}

/// The override directive waives shape rules and row limits only: `forbid` and opaque rules
/// still refuse, with the data unchanged on the server; the reason of an override that ran is
/// in the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_does_not_waive_forbid_or_opaque_and_its_reason_is_audited() {
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO migrator");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config();
    let audit_path = audit_to(&mut cfg, &dir);
    let policy = "[defaults]\nmode = \"enforce\"\n\n[opaque]\ndo = \"block\"\n\n[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\n\
                  forbid = [\"truncate\", \"drop\"]\nmax_delete_rows = 10\n\n[[role]]\nname = \"migrator\"\nmay_override = true\n";
    let p =
        proxy_with(cfg, blastwall::policy::file::compile(&[(std::path::Path::new("override.toml"), policy)]).unwrap())
            .await;
    let c = direct("app", APP_PW, &db).await;
    let before = snapshot(&c).await;
    let directive = "/* blastwall: allow rows<=1000 reason=\"ticket 4711 cleanup\" */";
    for (sql, rule) in [
        ("TRUNCATE users CASCADE", "rule forbid-truncate"),
        ("DROP TABLE users CASCADE", "rule forbid-drop"),
        ("DO $$ BEGIN DELETE FROM users; END $$", "rule opaque"),
        ("DO $$ BEGIN DELETE FROM users WHERE id BETWEEN -91111110 AND -91111101; END $$", "rule opaque"),
    ] {
        let (ok, _, err) = psql(p.port(), "migrator", APP_PW, &db, &["-c", &format!("{directive} {sql}")], None);
        assert!(!ok && err.contains("blastwall: refused") && err.contains(rule), "{sql}: {err}");
        assert_eq!(snapshot(&c).await, before, "{sql} changed data");
    }
    // Within its stated count it runs, and says why in the audit trail.
    let sql = format!("{directive} DELETE FROM users WHERE id BETWEEN -91111110 AND -91111101");
    let (ok, out, err) = psql(p.port(), "migrator", APP_PW, &db, &["-c", &sql], None);
    assert!(ok && out.contains("DELETE 10"), "{out}{err}");
    p.stop().await;
    let text = std::fs::read_to_string(&audit_path).unwrap();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let refused: Vec<_> = events.iter().filter(|e| e["decision"] == "refused").collect();
    assert_eq!(refused.len(), 4, "{text}");
    let overridden: Vec<_> = events.iter().filter(|e| e["decision"] == "overridden").collect();
    assert_eq!(overridden.len(), 1, "{text}");
    assert_eq!(overridden[0]["override_reason"], "ticket 4711 cleanup", "{text}");
    assert_eq!(overridden[0]["user"], "migrator");
}
