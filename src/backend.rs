//! The upstream connection: TCP connect with a deadline, SSL negotiation as `sslmode` says,
//! and out-of-band CancelRequests.
//!
//! Owns: reaching the server and securing the link. Does not own: the startup conversation
//! or anything relayed over the link (see `session`).

use crate::config::{Config, UpstreamSslMode};
use crate::wire::startup::{CancelKey, SSL_REQUEST_CODE};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A byte stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type BoxIo = Box<dyn Io>;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("could not connect to upstream server {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("upstream server {addr} does not support SSL, but upstream_tls.mode requires it")]
    NoSsl { addr: String },
    #[error("TLS handshake with upstream server {addr} failed: {message}")]
    Handshake { addr: String, message: String },
}

/// The TCP options blastwall sets on both of a session's links, as PgBouncer does: no Nagle
/// delay (every write is a whole reply or request), and keepalive, so that a peer that
/// vanished without closing (a partition, a crashed host) is noticed and its session ends.
pub fn tune_tcp(sock: &TcpStream) {
    let _ = sock.set_nodelay(true);
    let _ = socket2::SockRef::from(sock).set_keepalive(true);
}

/// Where the server is and how to secure the link; built once at startup.
#[derive(Clone)]
pub struct Upstream {
    host: String,
    port: u16,
    mode: UpstreamSslMode,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upstream({}:{}, {:?})", self.host, self.port, self.mode)
    }
}

impl Upstream {
    pub fn new(cfg: &Config) -> Result<Arc<Self>, crate::tls::TlsError> {
        Ok(Arc::new(Upstream {
            host: cfg.upstream_host.clone(),
            port: cfg.upstream_port,
            mode: cfg.upstream_tls.mode,
            tls: crate::tls::connector(&cfg.upstream_tls, &cfg.upstream_host)?,
            connect_timeout: cfg.connect_timeout,
        }))
    }

    pub fn addr(&self) -> String {
        self.address().to_string()
    }

    /// TCP, or the server's Unix socket.
    fn address(&self) -> crate::listen::Address {
        crate::config::upstream_address(&self.host, self.port)
    }

    /// Connects and negotiates SSL. Returns the stream and, when it is encrypted, the
    /// server's certificate (DER).
    pub async fn connect(&self) -> Result<(BoxIo, Option<Vec<u8>>), BackendError> {
        let addr = self.addr();
        let tcp = tokio::time::timeout(self.connect_timeout, crate::listen::connect(&self.address()))
            .await
            .map_err(|_| BackendError::Connect { addr: addr.clone(), message: "connection timed out".into() })?
            .map_err(|e| BackendError::Connect { addr: addr.clone(), message: e.to_string() })?;
        let Some((connector, name)) = &self.tls else {
            return Ok((Box::new(tcp), None));
        };
        let mut tcp = tcp;
        let mut req = Vec::with_capacity(8);
        req.extend_from_slice(&8u32.to_be_bytes());
        req.extend_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
        let io_err = |e: std::io::Error| BackendError::Connect { addr: addr.clone(), message: e.to_string() };
        let answer = tokio::time::timeout(self.connect_timeout, async {
            tcp.write_all(&req).await?;
            tcp.read_u8().await
        })
        .await
        .map_err(|_| BackendError::Connect { addr: addr.clone(), message: "SSL negotiation timed out".into() })?
        .map_err(io_err)?;
        match answer {
            b'S' => {
                let tls = tokio::time::timeout(self.connect_timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| BackendError::Handshake { addr: addr.clone(), message: "timed out".into() })?
                    .map_err(|e| BackendError::Handshake {
                        addr: addr.clone(),
                        message: crate::tls::handshake_problem(&e),
                    })?;
                let cert =
                    tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
                Ok((Box::new(tls), Some(cert)))
            }
            b'N' if self.mode == UpstreamSslMode::Prefer => Ok((Box::new(tcp), None)),
            b'N' => Err(BackendError::NoSsl { addr }),
            other => {
                Err(BackendError::Connect { addr, message: format!("unexpected answer {other:#x} to SSLRequest") })
            }
        }
    }

    /// Whether the server accepts connections now (for `/readyz`): a TCP connection and an
    /// SSLRequest answer, nothing more.
    pub async fn probe(&self) -> Result<(), BackendError> {
        let addr = self.addr();
        let mut tcp = tokio::time::timeout(self.connect_timeout, crate::listen::connect(&self.address()))
            .await
            .map_err(|_| BackendError::Connect { addr: addr.clone(), message: "connection timed out".into() })?
            .map_err(|e| BackendError::Connect { addr: addr.clone(), message: e.to_string() })?;
        let mut req = Vec::with_capacity(8);
        req.extend_from_slice(&8u32.to_be_bytes());
        req.extend_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
        let answer = tokio::time::timeout(self.connect_timeout, async {
            tcp.write_all(&req).await?;
            tcp.read_u8().await
        })
        .await
        .map_err(|_| BackendError::Connect { addr: addr.clone(), message: "no answer".into() })?
        .map_err(|e| BackendError::Connect { addr: addr.clone(), message: e.to_string() })?;
        match answer {
            b'S' | b'N' => Ok(()),
            other => Err(BackendError::Connect { addr, message: format!("unexpected answer {other:#x}") }),
        }
    }

    /// Sends a CancelRequest for `key` on a new connection, over TLS when the link uses it.
    pub async fn cancel(&self, key: &CancelKey) -> Result<(), BackendError> {
        let (mut io, _) = self.connect().await?;
        let addr = self.addr();
        io.write_all(&key.request_bytes())
            .await
            .map_err(|e| BackendError::Connect { addr: addr.clone(), message: e.to_string() })?;
        let _ = io.flush().await;
        // The server closes the connection when it has read the request.
        let mut sink = [0u8; 16];
        let _ = tokio::time::timeout(self.connect_timeout, io.read(&mut sink)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_links_get_nodelay_and_keepalive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        for s in [&client, &accepted] {
            assert!(!socket2::SockRef::from(s).keepalive().unwrap());
            tune_tcp(s);
            assert!(s.nodelay().unwrap());
            assert!(socket2::SockRef::from(s).keepalive().unwrap());
        }
    }
}
