//! Operations around a session's life, owned by the operations work (#16): idle timeouts with
//! PostgreSQL's codes, a second Ctrl-C during the shutdown grace, and upstream TLS with a
//! self-signed server certificate (verify-full), plus the TLS certificate reload on SIGHUP.

use crate::harness::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

async fn idle_proxy() -> Proxy {
    let mut c = base_config();
    c.idle_timeout = Some(Duration::from_secs(1));
    proxy_with(c, blastwall::demo::incident_policy().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_uses_25p03_inside_a_transaction_and_57p05_outside() {
    let db = fresh_db("idle");
    let p = idle_proxy().await;
    // Outside a transaction: idle_session_timeout's code.
    let mut s = startup(p.port(), "trust_user", &db).await;
    let r = tokio::time::timeout(Duration::from_secs(10), replies(&mut s)).await.unwrap();
    assert_eq!(r.codes, vec!["57P05"], "{r:?}");
    assert!(r.errors.contains("idle-session timeout"), "{r:?}");
    // Inside one: idle_in_transaction_session_timeout's.
    let mut s = startup(p.port(), "trust_user", &db).await;
    s.write_all(&msg(b'Q', b"BEGIN\0")).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.status, Some('T'), "{r:?}");
    let r = tokio::time::timeout(Duration::from_secs(10), replies(&mut s)).await.unwrap();
    assert_eq!(r.codes, vec!["25P03"], "{r:?}");
    assert!(r.errors.contains("idle-in-transaction timeout"), "{r:?}");
    // A failed transaction is still a transaction.
    let mut s = startup(p.port(), "trust_user", &db).await;
    s.write_all(&msg(b'Q', b"BEGIN; SELECT 1/0\0")).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.status, Some('E'), "{r:?}");
    let r = tokio::time::timeout(Duration::from_secs(10), replies(&mut s)).await.unwrap();
    assert_eq!(r.codes, vec!["25P03"], "{r:?}");
    p.stop().await;
}

/// Starts the real binary with this config text (and `--listen`/`--upstream` on the command
/// line); returns it once it accepts connections.
pub async fn spawn_blastwall(config: &str, dir: &std::path::Path, port: u16) -> std::process::Child {
    spawn_blastwall_to(config, dir, port, pg().server.port).await
}

/// As [`spawn_blastwall`], with the server on this port of 127.0.0.1.
pub async fn spawn_blastwall_to(config: &str, dir: &std::path::Path, port: u16, upstream: u16) -> std::process::Child {
    let path = dir.join("blastwall.toml");
    std::fs::write(&path, config).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["serve", "--config", &path.display().to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--upstream", &format!("127.0.0.1:{upstream}")])
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
    child
}

pub fn signal(child: &std::process::Child, sig: &str) {
    let _ = std::process::Command::new("kill").args([sig, &child.id().to_string()]).status();
}

/// Waits for the process to exit (at most `secs`); returns its stderr, or `None` if it is
/// still running (then it is killed).
pub async fn wait_exit(mut child: std::process::Child, secs: u64) -> Option<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return Some(err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_during_the_grace_period_ends_at_once() {
    let db = fresh_db("ctrlc");
    let dir = tempfile::tempdir().unwrap();
    let port = blastwall::pgtemp::free_port();
    let child = spawn_blastwall("shutdown_grace_secs = 60\n", dir.path(), port).await;
    // A session inside a transaction keeps the proxy in its grace period.
    let mut s = startup(port, "trust_user", &db).await;
    s.write_all(&msg(b'Q', b"BEGIN\0")).await.unwrap();
    assert_eq!(replies(&mut s).await.status, Some('T'));
    signal(&child, "-INT");
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(&msg(b'Q', b"SELECT 1\0")).await.unwrap();
    assert_eq!(replies(&mut s).await.status, Some('T'), "the first Ctrl-C lets the transaction go on");
    signal(&child, "-INT");
    let r = tokio::time::timeout(Duration::from_secs(10), replies(&mut s)).await.unwrap();
    assert_eq!(r.codes, vec!["57P01"], "{r:?}");
    let err = wait_exit(child, 10).await.expect("a second Ctrl-C ends blastwall at once");
    assert!(err.contains("shutdown complete"), "{err}");
}

/// A self-signed certificate as `openssl req -x509` makes one (basicConstraints CA:TRUE),
/// valid for localhost and 127.0.0.1; written as PEM files.
fn self_signed(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let _ = std::process::Command::new("chmod").args(["-R", "a+rX", &dir.display().to_string()]).status();
    (c, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_accepts_a_self_signed_server_certificate_given_as_ca() {
    use blastwall::config::UpstreamSslMode;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), "server");
    let (other, _) = self_signed(certs.path(), "other");
    let opts = blastwall::pgtemp::PgOptions {
        password: SUPERUSER_PW.into(),
        tls: Some((cert.clone(), key)),
        hba: vec![],
        conf: vec![],
    };
    let server =
        tokio::task::spawn_blocking(move || blastwall::pgtemp::TempPostgres::start(&opts).unwrap()).await.unwrap();
    server.stop_when_process_exits(std::process::id());
    let with = |ca: &std::path::Path, mode: UpstreamSslMode, name: Option<&str>| {
        let mut c = base_config();
        c.upstream_port = server.port;
        c.upstream_host = "127.0.0.1".into();
        c.upstream_tls.mode = mode;
        c.upstream_tls.ca = Some(ca.to_path_buf());
        c.upstream_tls.server_name = name.map(str::to_string);
        c
    };
    let policy = || blastwall::demo::incident_policy().unwrap();
    // The server's own certificate as the CA: libpq's verify-full accepts it, and so do we.
    for mode in [UpstreamSslMode::VerifyFull, UpstreamSslMode::VerifyCa] {
        let p = proxy_with(with(&cert, mode, None), policy()).await;
        let c = connect(p.port(), "postgres", SUPERUSER_PW, "postgres").await;
        let rows = c.simple_query("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await.unwrap();
        assert!(format!("{rows:?}").contains("true"), "{rows:?}");
        drop(c);
        p.stop().await;
    }
    // Another certificate as the CA: refused, in words, naming the setting.
    let p = proxy_with(with(&other, UpstreamSslMode::VerifyFull, None), policy()).await;
    let db =
        refusal(try_connect(p.port(), "postgres", SUPERUSER_PW, "postgres").await, "an untrusted server is refused");
    assert!(db.contains("upstream_tls.ca") && db.contains("certificate verify failed"), "{db}");
    assert!(!db.contains("CaUsedAsEndEntity") && !db.contains("Other("), "{db}");
    p.stop().await;
    // The right certificate for the wrong name: verify-full refuses it and says which name.
    let p = proxy_with(with(&cert, UpstreamSslMode::VerifyFull, Some("db.example")), policy()).await;
    let db = refusal(try_connect(p.port(), "postgres", SUPERUSER_PW, "postgres").await, "a wrong name is refused");
    assert!(db.contains("db.example") && db.contains("server_name"), "{db}");
    p.stop().await;
}

/// The message of a refused connection.
fn refusal(r: Result<tokio_postgres::Client, tokio_postgres::Error>, why: &str) -> String {
    match r {
        Ok(_) => panic!("{why}"),
        Err(e) => e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()),
    }
}

/// A CA and two server certificates it signed (for localhost), as PEM files; returns the CA's
/// path and each certificate's (cert, key, DER).
fn two_certificates(dir: &std::path::Path) -> (std::path::PathBuf, Vec<(String, String, Vec<u8>)>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let leaves = (0..2)
        .map(|_| {
            let key = KeyPair::generate().unwrap();
            let cert =
                CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
            (cert.pem(), key.serialize_pem(), cert.der().to_vec())
        })
        .collect();
    (ca_path, leaves)
}

/// The certificate blastwall presents to a client that asks for TLS.
async fn presented_certificate(port: u16, ca: &std::path::Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::AsyncReadExt;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.unwrap();
    assert_eq!(tcp.read_u8().await.unwrap(), b'S');
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_tls_certificate_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaves) = two_certificates(dir.path());
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert, &leaves[0].0).unwrap();
    std::fs::write(&key, &leaves[0].1).unwrap();
    let port = blastwall::pgtemp::free_port();
    let child = spawn_blastwall("[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n", dir.path(), port).await;
    assert_eq!(presented_certificate(port, &ca).await, leaves[0].2);
    // A renewed certificate: SIGHUP, and the next handshake shows it.
    std::fs::write(&cert, &leaves[1].0).unwrap();
    std::fs::write(&key, &leaves[1].1).unwrap();
    signal(&child, "-HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while presented_certificate(port, &ca).await != leaves[1].2 {
        assert!(std::time::Instant::now() < deadline, "the renewed certificate was not loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A key that does not match: refused, the one in use stays.
    std::fs::write(&key, &leaves[0].1).unwrap();
    signal(&child, "-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(presented_certificate(port, &ca).await, leaves[1].2);
    signal(&child, "-TERM");
    let err = wait_exit(child, 20).await.expect("blastwall stops on SIGTERM");
    assert!(err.contains("TLS certificate and key reloaded"), "{err}");
    assert!(err.contains("TLS reload failed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_upstream_certificate_is_logged_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let (other, _) = self_signed(dir.path(), "other");
    let port = blastwall::pgtemp::free_port();
    let config = format!("[upstream_tls]\nmode = \"verify-full\"\nca = \"{}\"\n", other.display());
    let child = spawn_blastwall(&config, dir.path(), port).await;
    let r = try_connect(port, "app", APP_PW, "postgres").await;
    let told = refusal(r, "the harness server's certificate is not signed by this CA");
    assert!(told.contains("certificate verify failed"), "{told}");
    signal(&child, "-TERM");
    let err = wait_exit(child, 20).await.expect("blastwall stops on SIGTERM");
    assert!(err.contains("upstream TLS: the server's certificate was rejected"), "{err}");
    assert!(err.contains("not signed by a certificate in upstream_tls.ca"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_upstream_tls_handshake_is_told_and_logged() {
    use tokio::io::AsyncReadExt;
    // A "server" that agrees to TLS and then speaks nonsense.
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = fake.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = fake.accept().await {
            let mut req = [0u8; 8];
            let _ = s.read_exact(&mut req).await;
            let _ = s.write_all(b"Shello, this is not TLS at all\r\n").await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let port = blastwall::pgtemp::free_port();
    let child = spawn_blastwall_to("[upstream_tls]\nmode = \"require\"\n", dir.path(), port, upstream).await;
    let told = refusal(try_connect(port, "app", APP_PW, "postgres").await, "no TLS, no login");
    assert!(told.contains("TLS handshake with upstream server") && told.contains("failed:"), "{told}");
    signal(&child, "-TERM");
    let err = wait_exit(child, 20).await.expect("blastwall stops on SIGTERM");
    assert!(err.contains("upstream TLS handshake failed"), "{err}");
}
