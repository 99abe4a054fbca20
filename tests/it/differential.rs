//! The differential harness: one client script, run once directly against the server and once
//! through blastwall; what the client receives must be the same, message by message.
//!
//! API (everything a test needs):
//! - [`Client`]: who connects and how — `Client::new("app", APP_PW, &db)` (any harness user:
//!   SCRAM `app`/`postgres`, `md5_user`, `pw_user` (cleartext), `trust_user`), then
//!   `.tls(Tls::Request | Tls::Direct)`, `.version(196610)` (protocol 3.2), `.param(k, v)`,
//!   `.record_startup()` (record authentication and startup too; otherwise recording starts
//!   after the first ReadyForQuery, which is consumed).
//!   The harness authenticates itself as libpq does with `channel_binding=prefer`.
//! - [`Step`]s: `Send(bytes)` (raw frontend messages: build them with `harness::msg`,
//!   `harness::parse`, [`query`], [`bind`], [`execute`], [`sync`], …), `Ready(n)` (read until `n`
//!   ReadyForQuery), `Until(tag)` (read until a message of that type), `End` (read until the
//!   connection ends), `Active` (wait until this connection's backend runs a query),
//!   `Waiting(event)` (until it waits on that `wait_event`, e.g. `"PgSleep"`: inside the
//!   client's own `pg_sleep`, not a statement blastwall runs first),
//!   `Terminate` (`pg_terminate_backend` of this connection's backend, as the superuser),
//!   `Admin(sql)` (any SQL as the superuser in the client's database, on the side), `Cancel(tls)` (a CancelRequest for
//!   this connection, on a new connection to the same port), `Sleep(ms)`.
//!   A script that writes starts with an `Admin` step that sets up what it writes to, so
//!   that both runs start from the same state.
//! - [`compare`]`(&proxy, &client, &steps)`: runs the steps directly and through `proxy`,
//!   masks, and panics with both streams side by side on the first difference. Returns the
//!   direct recording, for assertions on what the server said.
//! - [`compare_with`]`(&proxy, &client, |c| Box::pin(async move { ... }))`: the same with a
//!   closure over a [`Conn`] (methods `send`, `ready`, `until`, `end`, `step`, `pid`).
//! - [`error_codes`]`(&recording)`: the SQLSTATEs of its ErrorResponses, in order.
//! - [`record`]`(port, &client, &steps)` and [`assert_same`]: the two halves, for a test that
//!   needs something between them or compares other pairs (e.g. direct TLS, which the
//!   PostgreSQL 15 of the harness does not speak, against SSLRequest).
//!
//! A [`Recording`] is a list of [`Event`]s: every backend message (type and bytes), the end of
//! the connection (clean, or how it broke), and notes of side steps (how a cancel connection
//! ended). Masked before comparing, by narrow rules only: BackendKeyData's PID and secret,
//! NotificationResponse's sender PID, the SASL exchange's random payloads
//! (AuthenticationSASLContinue/Final data), AuthenticationMD5Password's salt. A script that selects something varying (a PID, a
//! time) adds its own rule with `Client::mask`.

// A shared API: not every helper is used by every test yet.
#![allow(dead_code)]

use crate::harness::{admin_sql, pg, Proxy, SUPERUSER_PW};
use blastwall::backend::BoxIo;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any single wait may take before the script fails (with what it saw so far).
const WAIT: Duration = Duration::from_secs(30);

/// How the client secures its link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    Off,
    /// SSLRequest, then TLS (sslnegotiation=postgres).
    Request,
    /// TLS from the first byte (sslnegotiation=direct, ALPN "postgresql").
    Direct,
}

/// A masking rule for messages a script knows to vary.
pub type Mask = fn(&mut Event);

/// Who connects, and how.
#[derive(Clone)]
pub struct Client {
    pub user: String,
    pub password: String,
    pub db: String,
    pub tls: Tls,
    pub version: i32,
    pub params: Vec<(String, String)>,
    pub record_startup: bool,
    pub masks: Vec<Mask>,
}

impl Client {
    pub fn new(user: &str, password: &str, db: &str) -> Client {
        Client {
            user: user.into(),
            password: password.into(),
            db: db.into(),
            tls: Tls::Off,
            version: 196608,
            params: vec![("application_name".into(), "differential".into())],
            record_startup: false,
            masks: Vec::new(),
        }
    }
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }
    pub fn version(mut self, v: i32) -> Self {
        self.version = v;
        self
    }
    pub fn param(mut self, k: &str, v: &str) -> Self {
        self.params.push((k.into(), v.into()));
        self
    }
    pub fn record_startup(mut self) -> Self {
        self.record_startup = true;
        self
    }
    pub fn mask(mut self, m: Mask) -> Self {
        self.masks.push(m);
        self
    }
}

/// One step of a script.
#[derive(Clone, Debug)]
pub enum Step {
    Send(Vec<u8>),
    Ready(usize),
    Until(u8),
    End,
    Active,
    Waiting(&'static str),
    Terminate,
    Admin(String),
    Cancel(Tls),
    Sleep(u64),
}

/// What the client received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Msg {
        tag: u8,
        body: Vec<u8>,
    },
    /// The server (or proxy) closed the connection cleanly (TLS: with close_notify).
    End,
    /// The connection broke (a reset, or TLS ended without close_notify).
    Broken(String),
    /// A side step's outcome.
    Note(String),
}

pub type Recording = Vec<Event>;

/// A scripted client's connection.
pub struct Conn {
    io: Option<BoxIo>,
    port: u16,
    client: Client,
    /// BackendKeyData's (pid, secret).
    key: Option<(i32, Vec<u8>)>,
    pub events: Recording,
    recording: bool,
    buf: Vec<u8>,
}

type Script<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs `steps` directly and through `proxy`; panics on the first difference.
pub async fn compare(proxy: &Proxy, client: &Client, steps: &[Step]) -> Recording {
    let direct = record(pg().server.port, client, steps).await;
    let proxied = record(proxy.port(), client, steps).await;
    assert_same(client, &direct, &proxied);
    direct
}

/// [`compare`] with a script written as a closure over the connection.
pub async fn compare_with<F>(proxy: &Proxy, client: &Client, script: F) -> Recording
where
    F: for<'c> Fn(&'c mut Conn) -> Script<'c>,
{
    let mut c = Conn::open(pg().server.port, client).await;
    script(&mut c).await;
    let direct = c.finish();
    let mut c = Conn::open(proxy.port(), client).await;
    script(&mut c).await;
    let proxied = c.finish();
    assert_same(client, &direct, &proxied);
    direct
}

/// Runs `steps` against `port` and returns what the client received (unmasked).
pub async fn record(port: u16, client: &Client, steps: &[Step]) -> Recording {
    let mut c = Conn::open(port, client).await;
    for s in steps {
        c.step(s).await;
    }
    c.finish()
}

/// Masks both recordings and panics, showing both, unless they are the same.
pub fn assert_same(client: &Client, direct: &Recording, proxied: &Recording) {
    let (d, p) = (masked(client, direct), masked(client, proxied));
    if d == p {
        return;
    }
    let first = d.iter().zip(&p).position(|(a, b)| a != b).unwrap_or(d.len().min(p.len()));
    let mut out = format!("the client saw different streams (first difference at #{first})\n--- direct:\n");
    out.push_str(&render(&d, first));
    out.push_str("--- through blastwall:\n");
    out.push_str(&render(&p, first));
    panic!("{out}");
}

fn masked(client: &Client, r: &Recording) -> Recording {
    let mut r = r.clone();
    for e in &mut r {
        if let Event::Msg { tag, body } = e {
            match *tag {
                b'K' => *body = b"<pid and secret>".to_vec(),
                b'A' if body.len() >= 4 => body[..4].copy_from_slice(b"<pd>"),
                b'R' if body.len() >= 4 && matches!(body[3], 11 | 12) => body.truncate(4),
                b'R' if body.len() == 8 && body[3] == 5 => body[4..].copy_from_slice(b"salt"),
                _ => {}
            }
        }
        for m in &client.masks {
            m(e);
        }
    }
    r
}

/// One line per event; the first difference is marked.
pub fn render(r: &Recording, mark: usize) -> String {
    let mut out = String::new();
    for (i, e) in r.iter().enumerate() {
        let m = if i == mark { ">>" } else { "  " };
        let line = match e {
            Event::Msg { tag, body } => format!("{} {}", *tag as char, describe(*tag, body)),
            Event::End => "<end of connection>".into(),
            Event::Broken(why) => format!("<connection broken: {why}>"),
            Event::Note(n) => format!("<{n}>"),
        };
        out.push_str(&format!("{m}{i:3} {line}\n"));
    }
    out
}

fn describe(tag: u8, body: &[u8]) -> String {
    if matches!(tag, b'E' | b'N') {
        let fields: Vec<String> = body
            .split(|&b| b == 0)
            .filter(|f| !f.is_empty())
            .filter(|f| !matches!(f[0], b'F' | b'L' | b'R'))
            .map(|f| format!("{}={}", f[0] as char, String::from_utf8_lossy(&f[1..])))
            .collect();
        return fields.join(" ");
    }
    let shown: String =
        body.iter().take(160).map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '.' }).collect();
    let more = if body.len() > 160 { "…" } else { "" };
    format!("[{} bytes] {shown}{more}", body.len())
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&pg().ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![b"postgresql".to_vec()];
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
}

/// A TCP connection to `port`, secured as `tls` says; with the server certificate's
/// tls-server-end-point hash when TLS.
async fn connect(port: u16, tls: Tls) -> (BoxIo, Option<Vec<u8>>) {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    match tls {
        Tls::Off => return (Box::new(tcp), None),
        Tls::Request => {
            tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.unwrap();
            let answer = tcp.read_u8().await.expect("SSLRequest answer");
            assert_eq!(answer, b'S', "the SSLRequest on port {port} was refused");
        }
        Tls::Direct => {}
    }
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let s = tls_connector().connect(name, tcp).await.expect("TLS handshake");
    let cert = s.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| {
        use sha2::Digest;
        sha2::Sha256::digest(c.as_ref()).to_vec()
    });
    (Box::new(s), cert)
}

impl Conn {
    /// Connects, authenticates and reads up to the first ReadyForQuery (or the end, when
    /// the startup fails).
    pub async fn open(port: u16, client: &Client) -> Conn {
        let (mut io, cert) = connect(port, client.tls).await;
        let mut params = vec![("user", client.user.as_str()), ("database", client.db.as_str())];
        params.extend(client.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        io.write_all(&crate::harness::startup_packet(client.version, &params)).await.unwrap();
        let mut c = Conn {
            io: Some(io),
            port,
            client: client.clone(),
            key: None,
            events: Vec::new(),
            recording: client.record_startup,
            buf: Vec::new(),
        };
        c.authenticate(cert).await;
        c.recording = true;
        c
    }

    async fn authenticate(&mut self, cert: Option<Vec<u8>>) {
        let mut scram: Option<ScramSha256> = None;
        loop {
            let Some((tag, body)) = self.read_one().await else {
                return;
            };
            match tag {
                b'Z' => return,
                b'K' if body.len() >= 4 => {
                    self.key = Some((i32::from_be_bytes(body[..4].try_into().unwrap()), body[4..].to_vec()))
                }
                b'R' if body.len() >= 4 => {
                    let kind = i32::from_be_bytes(body[..4].try_into().unwrap());
                    let pw = self.client.password.clone();
                    match kind {
                        3 => self.send(&password_message(pw.as_bytes())).await,
                        5 => {
                            let salt: [u8; 4] = body[4..8].try_into().unwrap();
                            let h = postgres_protocol::authentication::md5_hash(
                                self.client.user.as_bytes(),
                                pw.as_bytes(),
                                salt,
                            );
                            self.send(&password_message(h.as_bytes())).await
                        }
                        10 => {
                            let mechs: Vec<&[u8]> = body[4..].split(|&b| b == 0).filter(|m| !m.is_empty()).collect();
                            // As libpq with channel_binding=prefer.
                            let (mech, cb) = match &cert {
                                Some(hash) if mechs.contains(&&b"SCRAM-SHA-256-PLUS"[..]) => {
                                    ("SCRAM-SHA-256-PLUS", ChannelBinding::tls_server_end_point(hash.clone()))
                                }
                                Some(_) => ("SCRAM-SHA-256", ChannelBinding::unrequested()),
                                None => ("SCRAM-SHA-256", ChannelBinding::unsupported()),
                            };
                            let s = ScramSha256::new(pw.as_bytes(), cb);
                            let mut b = mech.as_bytes().to_vec();
                            b.push(0);
                            b.extend_from_slice(&(s.message().len() as i32).to_be_bytes());
                            b.extend_from_slice(s.message());
                            self.send(&crate::harness::msg(b'p', &b)).await;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().expect("SASLContinue before SASL");
                            s.update(&body[4..]).expect("SCRAM server-first");
                            let m = s.message().to_vec();
                            self.send(&crate::harness::msg(b'p', &m)).await;
                        }
                        12 => scram.as_mut().expect("SASLFinal before SASL").finish(&body[4..]).expect("SCRAM final"),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }

    /// The backend's PID, from BackendKeyData.
    pub fn pid(&self) -> i32 {
        self.key.as_ref().expect("no BackendKeyData").0
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        if let Some(io) = &mut self.io {
            if let Err(e) = io.write_all(bytes).await {
                self.events.push(Event::Note(format!("write failed: {:?}", e.kind())));
            }
        }
    }

    /// Reads one message; records it (or the end) when recording. `None` at the end.
    async fn read_one(&mut self) -> Option<(u8, Vec<u8>)> {
        let io = self.io.as_mut()?;
        let mut tmp = [0u8; 65536];
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    let body = self.buf[5..len + 1].to_vec();
                    self.buf.drain(..len + 1);
                    if self.recording {
                        self.events.push(Event::Msg { tag, body: body.clone() });
                    }
                    return Some((tag, body));
                }
            }
            let n = match tokio::time::timeout(WAIT, io.read(&mut tmp)).await {
                Err(_) => panic!(
                    "no message from port {} within {WAIT:?}; so far:\n{}",
                    self.port,
                    render(&self.events, usize::MAX)
                ),
                Ok(r) => r,
            };
            let end = match n {
                Ok(0) => Event::End,
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    continue;
                }
                Err(e) => Event::Broken(format!("{:?}", e.kind())),
            };
            if !self.buf.is_empty() {
                self.events.push(Event::Note(format!("{} bytes of a partial message", self.buf.len())));
            }
            self.events.push(end);
            self.io = None;
            return None;
        }
    }

    /// Reads until `n` ReadyForQuery (or the end).
    pub async fn ready(&mut self, n: usize) {
        for _ in 0..n {
            self.until(b'Z').await;
        }
    }

    /// Reads until a message of type `tag` (or the end).
    pub async fn until(&mut self, tag: u8) {
        while let Some((t, _)) = self.read_one().await {
            if t == tag {
                return;
            }
        }
    }

    /// Reads until the connection ends.
    pub async fn end(&mut self) {
        while self.read_one().await.is_some() {}
    }

    pub async fn step(&mut self, s: &Step) {
        match s {
            Step::Send(b) => self.send(b).await,
            Step::Ready(n) => self.ready(*n).await,
            Step::Until(t) => self.until(*t).await,
            Step::End => self.end().await,
            Step::Active => self.wait_active("state = 'active'").await,
            Step::Waiting(event) => self.wait_active(&format!("wait_event = '{event}'")).await,
            Step::Terminate => {
                let pid = self.pid();
                admin(format!("SELECT pg_terminate_backend({pid})")).await;
            }
            Step::Admin(sql) => {
                admin_in(&self.client.db, sql.clone()).await;
            }
            Step::Cancel(tls) => {
                let note = self.cancel(*tls).await;
                self.events.push(Event::Note(note));
            }
            Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        }
    }

    /// Waits until this connection's backend is in the state `condition` says
    /// (a condition on `pg_stat_activity`).
    async fn wait_active(&self, condition: &str) {
        let pid = self.pid();
        let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND {condition}");
        for _ in 0..600 {
            if admin(sql.clone()).await.trim() == "1" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("backend {pid} never reached {condition}");
    }

    /// Sends a CancelRequest for this connection on a new connection; says how that ended.
    pub async fn cancel(&self, tls: Tls) -> String {
        let (pid, secret) = self.key.clone().expect("no BackendKeyData");
        let (mut io, _) = connect(self.port, tls).await;
        let mut req = ((12 + secret.len()) as u32).to_be_bytes().to_vec();
        req.extend_from_slice(&80877102i32.to_be_bytes());
        req.extend_from_slice(&pid.to_be_bytes());
        req.extend_from_slice(&secret);
        io.write_all(&req).await.unwrap();
        let mut rest = Vec::new();
        match tokio::time::timeout(WAIT, io.read_to_end(&mut rest)).await {
            Err(_) => "cancel connection: never closed".into(),
            Ok(Ok(_)) => format!("cancel connection: closed cleanly after {} bytes", rest.len()),
            Ok(Err(e)) => format!("cancel connection: broken ({:?})", e.kind()),
        }
    }

    pub fn finish(self) -> Recording {
        self.events
    }
}

fn password_message(pw: &[u8]) -> Vec<u8> {
    let mut b = pw.to_vec();
    b.push(0);
    crate::harness::msg(b'p', &b)
}

/// SQL as the superuser in database `postgres`, on the side (never on the scripted connection).
pub async fn admin(sql: String) -> String {
    admin_in("postgres", sql).await
}

/// SQL as the superuser in `db`, on the side.
pub async fn admin_in(db: &str, sql: String) -> String {
    let db = db.to_string();
    tokio::task::spawn_blocking(move || admin_sql(pg(), &db, &sql)).await.unwrap()
}

// Frontend messages.

pub fn query(sql: &str) -> Vec<u8> {
    let mut b = sql.as_bytes().to_vec();
    b.push(0);
    crate::harness::msg(b'Q', &b)
}

/// Bind of `stmt` to the unnamed portal: text parameters (`None` = NULL), result columns in
/// `result_format` (0 text, 1 binary).
pub fn bind(stmt: &str, params: &[Option<&[u8]>], result_format: i16) -> Vec<u8> {
    let mut b = vec![0u8];
    b.extend_from_slice(stmt.as_bytes());
    b.push(0);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        match p {
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v);
            }
        }
    }
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&result_format.to_be_bytes());
    crate::harness::msg(b'B', &b)
}

/// Describe of the unnamed portal.
pub fn describe_portal() -> Vec<u8> {
    crate::harness::msg(b'D', b"P\0")
}

/// Execute of the unnamed portal, all rows.
pub fn execute() -> Vec<u8> {
    crate::harness::msg(b'E', &[0, 0, 0, 0, 0])
}

pub fn sync() -> Vec<u8> {
    crate::harness::msg(b'S', &[])
}

pub fn copy_data(data: &[u8]) -> Vec<u8> {
    crate::harness::msg(b'd', data)
}

pub fn copy_done() -> Vec<u8> {
    crate::harness::msg(b'c', &[])
}

pub fn terminate() -> Vec<u8> {
    crate::harness::msg(b'X', &[])
}

/// Concatenates messages into one write.
pub fn batch(msgs: &[Vec<u8>]) -> Vec<u8> {
    msgs.concat()
}

/// The superuser, for scripts that need one.
pub fn superuser(db: &str) -> Client {
    Client::new("postgres", SUPERUSER_PW, db)
}

/// The SQLSTATEs of the ErrorResponses in a recording, in order.
pub fn error_codes(r: &Recording) -> Vec<String> {
    r.iter()
        .filter_map(|e| match e {
            Event::Msg { tag: b'E', body } => body
                .split(|&b| b == 0)
                .find(|f| f.first() == Some(&b'C'))
                .map(|f| String::from_utf8_lossy(&f[1..]).into_owned()),
            _ => None,
        })
        .collect()
}
