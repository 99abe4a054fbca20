//! The opening of a connection: SSLRequest and TLS (also direct TLS), GSSENCRequest,
//! CancelRequest forwarding, the StartupMessage, and refusing a connection with a clear error.
//!
//! Owns: everything said before the StartupMessage is relayed. Does not own: authentication
//! (relayed by the session loop) or anything after it.

use super::SessionError;
use crate::backend::BoxIo;
use crate::listen::ClientStream;
use crate::shared::Shared;
use crate::wire::messages::ProxyMessage;
use crate::wire::startup::{self, CancelKey, StartupMessage, StartupPacket};
use crate::wire::FrameError;
use bytes::BytesMut;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether the server will start a walsender for this StartupMessage: `replication` is
/// `database` (exactly, as the server compares it) or a true boolean. A value the server
/// cannot read as a boolean fails the connection there, and is refused here too.
pub(super) fn is_replication(m: &StartupMessage) -> bool {
    m.param("replication").is_some_and(|v| v == "database" || parse_bool(v) != Some(false))
}

/// PostgreSQL's `parse_bool`: `true`/`false`/`yes`/`no` and any prefix of them, `on`, `off`
/// and `of`, `1`, `0`, in any case; `None` for anything else (the empty string, `o`,
/// surrounding blanks).
pub(super) fn parse_bool(v: &str) -> Option<bool> {
    let l = v.to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| l.len() >= min && word.starts_with(l.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || l == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || l == "0" {
        Some(false)
    } else {
        None
    }
}

/// Refuses a connection before it reaches the server: tells the client, and logs a line with
/// the reason (operators see why a client could not connect).
pub(super) async fn refuse_connection(
    client: &mut BoxIo,
    peer: &crate::listen::Peer,
    startup: &StartupMessage,
    msg: ProxyMessage,
) -> Result<(), SessionError> {
    let text = msg.message.clone();
    tracing::warn!(
        client = %peer,
        user = %startup.user(),
        database = %startup.database(),
        code = %msg.code,
        reason = %text,
        "connection refused"
    );
    let _ = client.write_all(&msg.encode()).await;
    // Flushes, and ends TLS with close_notify, as the server does.
    let _ = client.shutdown().await;
    Err(SessionError::Closed(text))
}

/// Reads opening packets until a StartupMessage: answers SSLRequest (TLS if configured),
/// GSSENCRequest (`N`), forwards a known CancelRequest. `None` when the connection ended
/// without a session (cancel, or the client went away after a probe).
pub(super) async fn open_client(
    shared: &Arc<Shared>,
    mut tcp: ClientStream,
) -> Result<Option<(BoxIo, StartupMessage, bool)>, SessionError> {
    // Direct TLS (sslnegotiation=direct): the first byte is a TLS handshake record.
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await.map_err(SessionError::ClientIo)? == 0 {
        return Ok(None);
    }
    if first[0] == 0x16 {
        let Some(acceptor) = &shared.client_tls else {
            return Err(SessionError::Closed("direct TLS attempted but TLS is not configured".into()));
        };
        let tls = acceptor.accept(tcp).await.map_err(SessionError::ClientIo)?;
        return after_tls(shared, Box::new(tls)).await;
    }
    loop {
        let Some(packet) = read_startup_packet(&mut tcp).await? else {
            return Ok(None);
        };
        match packet {
            StartupPacket::SslRequest => match &shared.client_tls {
                Some(acceptor) => {
                    tcp.write_all(b"S").await.map_err(SessionError::ClientIo)?;
                    let tls = acceptor.accept(tcp).await.map_err(SessionError::ClientIo)?;
                    return after_tls(shared, Box::new(tls)).await;
                }
                None => tcp.write_all(b"N").await.map_err(SessionError::ClientIo)?,
            },
            StartupPacket::GssEncRequest => tcp.write_all(b"N").await.map_err(SessionError::ClientIo)?,
            StartupPacket::Cancel(key) => {
                forward_cancel(shared, &key).await;
                return Ok(None);
            }
            StartupPacket::Startup(m) => return Ok(Some((Box::new(tcp), m, false))),
        }
    }
}

/// The opening packets after a TLS handshake: only a StartupMessage or a CancelRequest.
async fn after_tls(shared: &Arc<Shared>, mut io: BoxIo) -> Result<Option<(BoxIo, StartupMessage, bool)>, SessionError> {
    match read_startup_packet(&mut io).await? {
        None => Ok(None),
        Some(StartupPacket::Startup(m)) => Ok(Some((io, m, true))),
        Some(StartupPacket::Cancel(key)) => {
            forward_cancel(shared, &key).await;
            // As the server: end TLS with close_notify once the cancel was delivered (libpq
            // 17+ reads to the end and reports an EOF without it as a failed cancel).
            let _ = io.shutdown().await;
            Ok(None)
        }
        Some(_) => Err(SessionError::ClientProtocol(FrameError::Malformed {
            what: "startup packet",
            why: "encryption requested inside an encrypted connection",
        })),
    }
}

/// Forwards a CancelRequest to the server only when the key belongs to a live session of this
/// proxy; an unknown key is dropped, as the server itself drops it.
async fn forward_cancel(shared: &Arc<Shared>, key: &CancelKey) {
    if !shared.cancel_keys.contains(key) {
        tracing::debug!(pid = key.pid, "cancel request for an unknown backend key dropped");
        return;
    }
    // Counted, so that the session knows the cancel may meet its pre-check (`cancels`).
    let _forwarding = shared.cancels.forwarding(key);
    if let Err(e) = shared.upstream.cancel(key).await {
        tracing::warn!(error = %e, "forwarding a cancel request failed");
    }
}

async fn read_startup_packet<R: tokio::io::AsyncRead + Unpin>(
    io: &mut R,
) -> Result<Option<StartupPacket>, SessionError> {
    let mut len = [0u8; 4];
    match io.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(SessionError::ClientIo(e)),
    }
    let total = startup::check_len(len).map_err(SessionError::ClientProtocol)?;
    let mut buf = BytesMut::with_capacity(total);
    buf.extend_from_slice(&len);
    buf.resize(total, 0);
    io.read_exact(&mut buf[4..]).await.map_err(SessionError::ClientIo)?;
    startup::parse(buf.freeze()).map(Some).map_err(SessionError::ClientProtocol)
}

/// A SASLInitialResponse for SCRAM-SHA-256 whose GS2 flag is `y`: "I support channel
/// binding but the server did not offer it". A server on TLS treats that as a downgrade attack.
pub(super) fn is_scram_with_binding_flag(body: &[u8]) -> bool {
    let mut r = crate::wire::BodyReader::new(body, "SASLInitialResponse");
    let (Ok(mech), Ok(_len)) = (r.cstr(), r.i32()) else {
        return false;
    };
    mech == b"SCRAM-SHA-256" && r.rest().starts_with(b"y,")
}

#[cfg(test)]
mod tests {
    use super::parse_bool;

    #[test]
    fn booleans_are_read_as_the_server_reads_them() {
        for t in ["true", "t", "TR", "yes", "Y", "on", "ON", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "fals", "f", "no", "N", "off", "of", "OFF", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for x in ["", "o", "2", "truex", " true", "false ", "database", "Database", "nope", "00"] {
            assert_eq!(parse_bool(x), None, "{x}");
        }
    }
}
