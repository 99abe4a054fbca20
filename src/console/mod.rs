//! The admin console, as PgBouncer users know it: connecting to the virtual database
//! `blastwall` gives a PostgreSQL session that answers `SHOW SESSIONS`, `SHOW POLICY`,
//! `SHOW DECISIONS`, `SHOW STATS`, `RELOAD`, `PAUSE`, `RESUME` and `KILL <session>` as result
//! sets and command tags (simple query protocol), so psql shows them as tables.
//!
//! Authentication is delegated to the server: the console relays the login (any method the
//! server's pg_hba.conf asks for: SCRAM, md5, password, trust, cert) to `[console]
//! auth_database`, ends that server session as soon as it is ready, and lets in only the roles
//! `[console] admins` names (others get 42501 after authenticating, as PostgreSQL answers a role
//! without CONNECT). Why: no second password store to keep in sync or leak, and a password
//! change, an expired `VALID UNTIL` or a pg_hba.conf rule takes effect on the console at once.
//!
//! Owns: the console's login, its query loop and its records (`state`); the commands' output
//! (`commands`). Does not own: the sessions it lists or kills (`session`, `server`).

mod commands;
pub mod state;

use crate::backend::BoxIo;
use crate::shared::{Phase, Shared};
use crate::wire::messages::{self, be, fe, sqlstate, ProxyMessage, TxStatus};
use crate::wire::startup::StartupMessage;
use crate::wire::{Frame, Framer, Item};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The virtual database's name.
pub const DATABASE: &str = "blastwall";

#[derive(Debug, Error)]
pub enum ConsoleError {
    #[error("console client: {0}")]
    Client(std::io::Error),
    #[error("console login at the server: {0}")]
    Server(std::io::Error),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// Ended after telling the client why.
    #[error("{0}")]
    Closed(String),
}

/// Whether this startup is for the console (which is on when `[console]` names admins).
pub fn is_console(shared: &Shared, startup: &StartupMessage) -> bool {
    shared.config.console.as_ref().is_some_and(|c| !c.admins.is_empty()) && startup.database() == DATABASE
}

/// Serves one console connection to its end.
pub async fn serve(
    shared: &Arc<Shared>,
    client: BoxIo,
    startup: &StartupMessage,
    id: u64,
    peer: &crate::listen::Peer,
) -> Result<(), ConsoleError> {
    let mut client = Conn::new(client, shared.config.max_frame_bytes);
    let login = tokio::time::timeout(shared.config.startup_timeout, login(shared, &mut client, startup)).await;
    let params = match login {
        Err(_) => return client.fatal(sqlstate::CONNECTION_FAILURE, "blastwall: authentication timed out").await,
        Ok(r) => match r? {
            Some(p) => p,
            None => {
                tracing::warn!(session = id, user = startup.user(), client = %peer, "console login refused by the server");
                return Err(ConsoleError::Closed("authentication failed".into()));
            }
        },
    };
    let user = startup.user();
    if !shared.config.console.as_ref().is_some_and(|c| c.admins.iter().any(|a| a == user)) {
        tracing::warn!(session = id, user, client = %peer, "console login refused: not a console admin");
        let msg = ProxyMessage::fatal(sqlstate::INSUFFICIENT_PRIVILEGE, "permission denied for database \"blastwall\"")
            .with_detail(format!("Role \"{user}\" is not listed in [console] admins."));
        return client.send_and_close(msg).await;
    }
    let mut out = BytesMut::new();
    for p in params {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(&messages::ready_for_query(TxStatus::Idle));
    client.write(&out).await?;
    let app = startup.param("application_name").unwrap_or("");
    tracing::info!(session = id, user, client = %peer, "console session started");
    shared.console.open_console(id, user, app, peer);
    let r = query_loop(shared, &mut client, id).await;
    shared.console.close(id);
    let error = r.as_ref().err().map(|e| e.to_string());
    tracing::info!(session = id, user, client = %peer, error = error.as_deref().unwrap_or(""), "console session ended");
    r
}

/// Relays the login to the server's `auth_database`. `Some(ParameterStatus messages)` once the
/// server said the role is in; `None` when it refused (its error was relayed).
async fn login(
    shared: &Arc<Shared>,
    client: &mut Conn,
    startup: &StartupMessage,
) -> Result<Option<Vec<Bytes>>, ConsoleError> {
    let (io, upstream_cert) = match shared.upstream.connect().await {
        Ok(x) => x,
        Err(e) => {
            shared.metrics.upstream_connect_errors_total.inc();
            let msg = ProxyMessage::fatal(sqlstate::CANNOT_CONNECT, format!("blastwall console: {e}"));
            let _ = client.write(&msg.encode()).await;
            return Err(e.into());
        }
    };
    // Channel binding binds to the certificate the client saw (see `session`).
    let strip_plus = upstream_cert.is_some() && upstream_cert != shared.client_cert();
    let mut server = Conn::new(io, shared.config.max_frame_bytes);
    let auth_db = shared.config.console.as_ref().map_or("postgres", |c| c.auth_database.as_str());
    server.send(&startup_packet(startup, auth_db)).await.map_err(server_err)?;
    let mut params = Vec::new();
    loop {
        let Some(f) = server.next().await.map_err(server_err)? else {
            return client
                .fatal(sqlstate::CONNECTION_FAILURE, "blastwall console: the server closed the connection")
                .await;
        };
        match f.tag {
            be::AUTHENTICATION => {
                let kind = messages::auth_kind(&f).unwrap_or(-1);
                let bytes = if kind == 10 && strip_plus {
                    messages::strip_channel_binding(&f).unwrap_or_else(|_| f.bytes.clone())
                } else {
                    f.bytes.clone()
                };
                client.write(&bytes).await?;
                // Cleartext, md5, GSS, SASL and SASL continue wait for the client's answer.
                if matches!(kind, 3 | 5 | 7 | 8 | 10 | 11) {
                    match client.next().await.map_err(ConsoleError::Client)? {
                        Some(p) if p.tag == fe::PASSWORD => server.send(&p.bytes).await.map_err(server_err)?,
                        _ => return Err(ConsoleError::Closed("the client left during authentication".into())),
                    }
                }
            }
            be::ERROR_RESPONSE => {
                client.write(&f.bytes).await?;
                return Ok(None);
            }
            be::PARAMETER_STATUS => params.push(f.bytes.clone()),
            be::NEGOTIATE_PROTOCOL_VERSION => client.write(&f.bytes).await?,
            be::READY_FOR_QUERY => {
                let _ = server.send(&messages::terminate()).await;
                return Ok(Some(params));
            }
            // BackendKeyData (the console has no query to cancel), notices.
            _ => {}
        }
    }
}

fn server_err(e: std::io::Error) -> ConsoleError {
    ConsoleError::Server(e)
}

/// The client's StartupMessage for `database` instead of `blastwall`.
fn startup_packet(startup: &StartupMessage, database: &str) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u16(startup.major);
    body.put_u16(startup.minor);
    for (k, v) in &startup.params {
        body.put_slice(k.as_bytes());
        body.put_u8(0);
        body.put_slice(if k == "database" { database.as_bytes() } else { v.as_bytes() });
        body.put_u8(0);
    }
    body.put_u8(0);
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_u32(body.len() as u32 + 4);
    out.extend_from_slice(&body);
    out.freeze()
}

async fn query_loop(shared: &Arc<Shared>, client: &mut Conn, id: u64) -> Result<(), ConsoleError> {
    // Shutdown (and KILL) reach console sessions as they reach relayed ones.
    let mut change = shared.phase.changed(id, Phase::Running);
    // After an extended-protocol message: its error was sent, skip to Sync.
    let mut skipping = false;
    loop {
        let f = tokio::select! {
            f = client.next() => f.map_err(ConsoleError::Client)?,
            _ = &mut change => {
                let msg = ProxyMessage::fatal(sqlstate::ADMIN_SHUTDOWN, "terminating connection due to administrator command");
                return client.send_and_close(msg).await;
            }
        };
        let Some(f) = f else { return Ok(()) };
        let mut out = BytesMut::new();
        match f.tag {
            fe::QUERY => {
                let sql = messages::query_text(&f).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                commands::run(shared, &sql, &mut out);
                out.extend_from_slice(&messages::ready_for_query(TxStatus::Idle));
            }
            fe::TERMINATE => return Ok(()),
            fe::SYNC => {
                skipping = false;
                out.extend_from_slice(&messages::ready_for_query(TxStatus::Idle));
            }
            _ if skipping => {}
            fe::PARSE | fe::BIND | fe::DESCRIBE | fe::EXECUTE | fe::CLOSE | fe::FLUSH | fe::FUNCTION_CALL => {
                skipping = f.tag != fe::FUNCTION_CALL;
                let msg = crate::said::console_simple_only();
                out.extend_from_slice(&msg.encode());
                if f.tag == fe::FUNCTION_CALL {
                    out.extend_from_slice(&messages::ready_for_query(TxStatus::Idle));
                }
            }
            _ => {
                let msg = ProxyMessage::fatal(sqlstate::PROTOCOL_VIOLATION, "blastwall console: unexpected message");
                return client.send_and_close(msg).await;
            }
        }
        client.write(&out).await?;
    }
}

/// One side's messages, framed with the proxy's limits.
struct Conn {
    io: BoxIo,
    framer: Framer,
}

impl Conn {
    fn new(io: BoxIo, max: usize) -> Self {
        Conn { io, framer: Framer::new(max) }
    }

    /// The next whole message; `None` at end of stream.
    async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            match self.framer.next_item(|_| true) {
                Ok(Some(Item::Frame(f))) => return Ok(Some(f)),
                Ok(Some(Item::Pass(_))) => continue,
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            let buf = self.framer.buf_mut();
            buf.reserve(8 * 1024);
            if self.io.read_buf(buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        self.send(bytes).await.map_err(ConsoleError::Client)
    }

    async fn send_and_close(&mut self, msg: ProxyMessage) -> Result<(), ConsoleError> {
        let text = msg.message.clone();
        let _ = self.write(&msg.encode()).await;
        let _ = self.io.shutdown().await;
        Err(ConsoleError::Closed(text))
    }

    async fn fatal<T>(&mut self, code: &'static str, text: &str) -> Result<T, ConsoleError> {
        match self.send_and_close(ProxyMessage::fatal(code, text)).await {
            Err(e) => Err(e),
            Ok(()) => Err(ConsoleError::Closed(text.into())),
        }
    }
}
