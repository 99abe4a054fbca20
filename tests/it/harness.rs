//! The test harness: one real PostgreSQL per test binary (initdb in a temp dir, free port,
//! scram-sha-256 plus md5, password and trust users, TLS with a generated certificate), a
//! fresh database per test, and the proxy started in-process on port 0.

use blastwall::config::{Config, UpstreamSslMode};
use blastwall::guard::Guard;
use blastwall::pgtemp::{PgOptions, TempPostgres};
use blastwall::policy::Policy;
use blastwall::server::{shutdown_handle, Server, ShutdownHandle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SUPERUSER_PW: &str = "super-secret-pw";
pub const APP_PW: &str = "app-pw";

pub struct Pg {
    pub server: TempPostgres,
    pub ca_pem: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _certs: tempfile::TempDir,
}

static PG: OnceLock<Pg> = OnceLock::new();
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A CA and a server certificate for localhost/127.0.0.1, written as PEM files.
fn make_certs() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("ca.pem"), ca.pem()).unwrap();
    std::fs::write(p("server.crt"), cert.pem()).unwrap();
    std::fs::write(p("server.key"), key.serialize_pem()).unwrap();
    // The postgres user must be able to read them when the harness runs as root.
    let _ = Command::new("chmod").args(["-R", "a+rX", &dir.path().display().to_string()]).status();
    let (a, b, c) = (p("ca.pem"), p("server.crt"), p("server.key"));
    (dir, a, b, c)
}

pub fn pg() -> &'static Pg {
    PG.get_or_init(|| {
        let (certs, ca, cert, key) = make_certs();
        let opts = PgOptions {
            password: SUPERUSER_PW.into(),
            tls: Some((cert.clone(), key.clone())),
            hba: vec![
                "host all trust_user 127.0.0.1/32 trust".into(),
                "host all md5_user 127.0.0.1/32 md5".into(),
                "host all pw_user 127.0.0.1/32 password".into(),
            ],
            conf: vec![],
        };
        let server = TempPostgres::start(&opts).unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
        server.stop_when_process_exits(std::process::id());
        let pg = Pg { server, ca_pem: ca, cert, key, _certs: certs };
        admin_sql(
            &pg,
            "postgres",
            &format!(
                "CREATE ROLE trust_user LOGIN; \
                 CREATE ROLE pw_user LOGIN PASSWORD '{APP_PW}'; \
                 CREATE ROLE app LOGIN PASSWORD '{APP_PW}'; \
                 CREATE ROLE migrator LOGIN PASSWORD '{APP_PW}'; \
                 SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD '{APP_PW}';"
            ),
        );
        pg
    })
}

/// A second PostgreSQL, started once, with `max_prepared_transactions` set (the shared one
/// cannot prepare transactions): no TLS, `trust_user` trusted, `app` and `migrator` with
/// [`APP_PW`].
pub fn pg_two_phase() -> &'static Pg {
    static TWO_PHASE: OnceLock<Pg> = OnceLock::new();
    TWO_PHASE.get_or_init(|| {
        let (certs, ca, cert, key) = make_certs();
        let opts = PgOptions {
            password: SUPERUSER_PW.into(),
            tls: None,
            hba: vec!["host all trust_user 127.0.0.1/32 trust".into()],
            conf: vec!["max_prepared_transactions = 10".into()],
        };
        let server = TempPostgres::start(&opts).unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
        server.stop_when_process_exits(std::process::id());
        let pg = Pg { server, ca_pem: ca, cert, key, _certs: certs };
        let roles = format!(
            "CREATE ROLE trust_user LOGIN; CREATE ROLE app LOGIN PASSWORD '{APP_PW}'; \
             CREATE ROLE migrator LOGIN PASSWORD '{APP_PW}';"
        );
        admin_sql(&pg, "postgres", &roles);
        pg
    })
}

/// Runs SQL as the superuser over the Unix socket with psql; panics with psql's output on error.
pub fn admin_sql(pg: &Pg, db: &str, sql: &str) -> String {
    let out = Command::new(psql_path())
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", &pg.server.admin_conninfo(db), "-c", sql])
        .output()
        .expect("running psql");
    assert!(out.status.success(), "admin psql failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn psql_path() -> PathBuf {
    let b = blastwall::pgtemp::find_bindir().expect("bindir").join("psql");
    if b.is_file() {
        b
    } else {
        PathBuf::from("psql")
    }
}

/// A fresh database owned by `app`, so each test starts from nothing.
pub fn fresh_db(prefix: &str) -> String {
    let pg = pg();
    let name = format!("{prefix}_{}_{}", std::process::id(), DB_COUNTER.fetch_add(1, Ordering::Relaxed));
    admin_sql(pg, "postgres", &format!("CREATE DATABASE {name} OWNER app"));
    admin_sql(pg, &name, "GRANT ALL ON SCHEMA public TO PUBLIC");
    name
}

/// A fresh database loaded with the incident's schema (owned by app).
pub fn incident_db() -> String {
    let db = fresh_db("incident");
    load_incident(&db);
    db
}

/// Loads the incident's schema (owned by app) into an empty database.
pub fn load_incident(db: &str) {
    let out = Command::new(psql_path())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &pg().server.admin_conninfo(db), "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let mut sql = String::from("SET ROLE app;\n");
            sql.push_str(blastwall::demo::INCIDENT_SCHEMA);
            c.stdin.take().unwrap().write_all(sql.as_bytes())?;
            c.wait_with_output()
        })
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Drops `db` (closing its sessions) and creates an empty one of the same name, owned by app,
/// on a direct connection: another database under that name.
pub fn recreate_db(db: &str) {
    admin_sql(pg(), "postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
    admin_sql(pg(), "postgres", &format!("CREATE DATABASE {db} OWNER app"));
    admin_sql(pg(), db, "GRANT ALL ON SCHEMA public TO PUBLIC");
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    pub task: tokio::task::JoinHandle<()>,
    pub shared: std::sync::Arc<blastwall::server::Shared>,
    pub admin: Option<SocketAddr>,
    /// The event loops the sessions run on, as under `blastwall serve` (ended on drop).
    pub loops: blastwall::server::EventLoops,
}

impl Proxy {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub async fn stop(self) {
        self.shutdown.shutdown();
        let _ = self.task.await;
        let loops = self.loops;
        let _ = tokio::task::spawn_blocking(move || loops.stop()).await;
    }
}

pub fn base_config() -> Config {
    let mut c = Config { listen: "127.0.0.1:0".into(), upstream_port: pg().server.port, ..Config::default() };
    c.upstream_tls.mode = UpstreamSslMode::Disable;
    c
}

/// Turns the audit trail on in `cfg`, written to `audit.jsonl` in `dir`; returns its path.
pub fn audit_to(cfg: &mut Config, dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("audit.jsonl");
    cfg.audit =
        Some(blastwall::config::AuditConfig { file: Some(path.clone()), max_bytes: 0, keep: 0, raw_statements: false });
    path
}

pub async fn proxy_with(config: Config, policy: Policy) -> Proxy {
    proxy_with_mode(config, policy, None).await
}

/// The proxy with `mode` replacing the policy's default mode, as `--mode` does.
pub async fn proxy_with_mode(config: Config, mut policy: Policy, mode: Option<blastwall::policy::Mode>) -> Proxy {
    count_all_if_asked(&mut policy);
    // Two loops: sessions of one test land on different threads, as in production.
    let loops = blastwall::server::EventLoops::start(2).expect("event loops");
    let server =
        Server::bind(config, Guard::new(policy, mode)).await.expect("bind proxy").on_event_loops(loops.handles());
    let addr = server.local_addr();
    let shared = server.shared();
    let admin = server.admin_addr();
    let shutdown = shutdown_handle();
    let task = tokio::spawn(server.run(shutdown.clone()));
    Proxy { addr, shutdown, task, shared, admin, loops }
}

/// `BLASTWALL_TEST_COUNT_ALL=1`: every proxy the harness starts in process also counts every
/// DELETE and UPDATE — `[defaults]` limits far above any real count, where the policy sets
/// none — so that the suite runs through the pre-check's paths (issue 10).
fn count_all_if_asked(policy: &mut Policy) {
    if std::env::var("BLASTWALL_TEST_COUNT_ALL").is_ok_and(|v| v == "1") {
        policy.max_delete_rows.get_or_insert(1_000_000_000_000);
        policy.max_update_rows.get_or_insert(1_000_000_000_000);
    }
}

/// The proxy with the shipped default + incident policies.
pub async fn proxy() -> Proxy {
    proxy_with(base_config(), blastwall::demo::incident_policy().unwrap()).await
}

pub fn conninfo(port: u16, user: &str, password: &str, db: &str) -> String {
    let pw = if password.is_empty() { String::new() } else { format!(" password={password}") };
    format!("host=127.0.0.1 port={port} user={user}{pw} dbname={db} sslmode=disable")
}

pub async fn connect(port: u16, user: &str, password: &str, db: &str) -> tokio_postgres::Client {
    try_connect(port, user, password, db).await.unwrap_or_else(|e| panic!("connect {user}@{db} on {port}: {e:?}"))
}

pub async fn try_connect(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(&conninfo(port, user, password, db), tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Direct to the server, as the comparison point.
pub async fn direct(user: &str, password: &str, db: &str) -> tokio_postgres::Client {
    connect(pg().server.port, user, password, db).await
}

/// Runs psql against `port`, returning (success, stdout, stderr).
pub fn psql(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(psql_path());
    cmd.args(["-X", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-d", db])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("psql");
    let input = stdin.unwrap_or("").to_string();
    let mut si = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = si.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("psql output");
    let _ = writer.join();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A snapshot of every row of the incident's tables, to prove a refusal changed nothing.
pub async fn snapshot(c: &tokio_postgres::Client) -> String {
    let mut out = String::new();
    for t in ["users", "subscriptions", "chat_sessions", "web_messages"] {
        let rows = c
            .simple_query(&format!(
                "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) || ':' || count(*) FROM {t} t"
            ))
            .await
            .unwrap();
        for r in rows {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = r {
                out.push_str(&format!("{t}={};", r.get(0).unwrap_or("")));
            }
        }
    }
    out
}

// Raw protocol, for what client libraries cannot send.

pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    b.extend_from_slice(sql.as_bytes());
    b.push(0);
    b.extend_from_slice(&0i16.to_be_bytes());
    msg(b'P', &b)
}

pub fn bind_execute(stmt: &str) -> Vec<u8> {
    let mut b = vec![0u8];
    b.extend_from_slice(stmt.as_bytes());
    b.push(0);
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut out = msg(b'B', &b);
    out.extend(msg(b'E', &[0, 0, 0, 0, 0]));
    out
}

pub async fn startup(port: u16, user: &str, db: &str) -> tokio::net::TcpStream {
    let app = format!("raw-{db}");
    let mut s = send_startup(port, 196608, &[("user", user), ("database", db), ("application_name", &app)]).await;
    replies(&mut s).await;
    s
}

/// Sends a StartupMessage of protocol `version` with these parameters, without reading.
pub async fn send_startup(port: u16, version: i32, params: &[(&str, &str)]) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&startup_packet(version, params)).await.unwrap();
    s
}

/// A StartupMessage of protocol `version` with these parameters.
pub fn startup_packet(version: i32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        for part in [k, v] {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    let mut pkt = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    pkt.extend_from_slice(&body);
    pkt
}

/// What the server (or proxy) said up to ReadyForQuery, or up to the end of the connection.
#[derive(Debug, Default)]
pub struct Replies {
    /// The message tags, in order.
    pub tags: String,
    /// The SQLSTATE of each ErrorResponse.
    pub codes: Vec<String>,
    /// The fields of the ErrorResponses, as text.
    pub errors: String,
    /// ReadyForQuery's transaction status; `None` when the connection ended first.
    pub status: Option<char>,
}

pub async fn replies(s: &mut tokio::net::TcpStream) -> Replies {
    let mut r = Replies::default();
    loop {
        let mut h = [0u8; 5];
        if s.read_exact(&mut h).await.is_err() {
            return r;
        }
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        if s.read_exact(&mut body).await.is_err() {
            return r;
        }
        r.tags.push(h[0] as char);
        if h[0] == b'E' {
            for f in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
                if f[0] == b'C' {
                    r.codes.push(String::from_utf8_lossy(&f[1..]).into_owned());
                }
                r.errors.push_str(&String::from_utf8_lossy(f));
                r.errors.push(' ');
            }
        }
        if h[0] == b'Z' {
            r.status = body.first().map(|&b| b as char);
            return r;
        }
    }
}

/// blastwall's log (tracing, INFO and up, without colours), captured in this process from the
/// first call of `captured_logs` on. Sessions run on other threads, so the capture is global:
/// look for lines that name something unique to the test (its database).
pub fn captured_logs() -> String {
    static LOG: OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = OnceLock::new();
    let buf = LOG.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        buf
    });
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The shipped policies (`policies/default.toml` and the incident's), compiled.
pub fn shipped_policy() -> Policy {
    blastwall::policy::file::compile(&[
        (std::path::Path::new("policies/default.toml"), blastwall::policy::file::DEFAULT_POLICY),
        (std::path::Path::new("policies/incident.toml"), blastwall::demo::INCIDENT_POLICY),
    ])
    .unwrap()
}

/// A number the server answers `sql` with, asked directly (not through blastwall).
pub async fn count(db: &str, sql: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// A blastwall refusal by `rule`: its message and detail.
pub fn refused_by(e: &tokio_postgres::Error, rule: &str) -> String {
    let d = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    let m = format!("{} / {}", d.message(), d.detail().unwrap_or_default());
    assert!(d.message().starts_with("blastwall: refused"), "{m}");
    assert!(m.contains(&format!("rule {rule}")), "{m}");
    m
}

/// A client that reads its login and then nothing: a 4 KB receive buffer.
pub async fn deaf_client(port: u16, db: &str) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let startup = startup_packet(196608, &[("user", "trust_user"), ("database", db)]);
    tokio::io::AsyncWriteExt::write_all(&mut s, &startup).await.unwrap();
    replies(&mut s).await;
    s
}

/// Runs `work` while `probes` (other sessions) send `SELECT 1` in turn every 20 ms: `work`'s
/// output, how long it took, and the slowest probe's answer meanwhile (an event loop that
/// `work` holds shows there). Each probe answers once before (a session's first statement
/// may wait for a catalog question of its own).
pub async fn slowest_probe_while<T>(
    probes: Vec<tokio_postgres::Client>,
    work: impl std::future::Future<Output = T>,
) -> (T, std::time::Duration, std::time::Duration) {
    for c in &probes {
        c.simple_query("SELECT 1").await.unwrap();
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut slowest = std::time::Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                for c in &probes {
                    let asked = std::time::Instant::now();
                    c.simple_query("SELECT 1").await.unwrap();
                    slowest = slowest.max(asked.elapsed());
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            slowest
        })
    };
    let started = std::time::Instant::now();
    let out = work.await;
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Release);
    (out, took, watch.await.unwrap())
}
