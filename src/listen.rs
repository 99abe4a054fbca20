//! Where blastwall listens and how it reaches the server, as PostgreSQL tools spell it: TCP
//! `HOST:PORT` (several listen addresses allowed), Unix-domain sockets (a socket path, or a
//! folder where the socket is `.s.PGSQL.<port>`), and an upstream without a port meaning 5432.
//!
//! Owns: the address forms, binding listeners, the client stream type (TCP or Unix) with its
//! PAUSE gate, and connecting to the server's socket. Does not own: what is said over the
//! streams (`session`, `backend`) or the accept loop (`server`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// PostgreSQL's default port, used when an address gives none.
pub const DEFAULT_PORT: u16 = 5432;

/// An address as written in the config or on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp {
        host: String,
        port: u16,
    },
    /// The socket file itself (a folder given in the config is resolved to
    /// `<folder>/.s.PGSQL.<port>`).
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            Address::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Parses `HOST:PORT`, `[V6]:PORT`, `HOST` (port `default_port`), a socket path
/// (`/run/postgresql/.s.PGSQL.5432`) or a socket folder (`/run/postgresql`, socket
/// `.s.PGSQL.<default_port>` in it). A path is anything starting with `/` or `.`.
pub fn parse_address(s: &str, default_port: Option<u16>) -> Result<Address, String> {
    let s = s.trim();
    if s.starts_with('/') || s.starts_with('.') {
        let p = PathBuf::from(s);
        let is_socket_name = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".s.PGSQL."));
        if is_socket_name {
            return Ok(Address::Unix(p));
        }
        let port = default_port.ok_or_else(|| format!("{s:?}: a socket folder needs a port"))?;
        return Ok(Address::Unix(p.join(format!(".s.PGSQL.{port}"))));
    }
    let bad = || format!("{s:?} is not HOST:PORT or a Unix socket path");
    let (host, port) = match s.rsplit_once(':') {
        // A bare IPv6 address has colons but no brackets: no port in it.
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (h, p.parse::<u16>().map_err(|_| bad())?),
        _ => (s, default_port.ok_or_else(bad)?),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Address::Tcp { host: host.to_string(), port })
}

/// The port a socket file's name carries (`.s.PGSQL.5432` → 5432), for messages.
pub fn socket_port(path: &Path) -> Option<u16> {
    path.file_name()?.to_str()?.strip_prefix(".s.PGSQL.")?.parse().ok()
}

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds the address. A Unix socket file left by a previous run is replaced, as the
    /// server does; its folder must exist.
    pub async fn bind(addr: &Address) -> std::io::Result<Listener> {
        match addr {
            Address::Tcp { host, port } => Ok(Listener::Tcp(TcpListener::bind((host.as_str(), *port)).await?)),
            Address::Unix(path) => {
                if std::fs::symlink_metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) && std::os::unix::net::UnixStream::connect(path).is_err()
                {
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path)?;
                // Like the server's default unix_socket_permissions: anyone may connect;
                // authentication decides.
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777));
                Ok(Listener::Unix(l, path.clone()))
            }
        }
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn address(&self) -> Address {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => Address::Tcp { host: a.ip().to_string(), port: a.port() },
                Err(_) => Address::Tcp { host: "?".into(), port: 0 },
            },
            Listener::Unix(_, p) => Address::Unix(p.clone()),
        }
    }

    pub async fn accept(&self) -> std::io::Result<(StdStream, PeerAddr)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                crate::backend::tune_tcp(&s);
                Ok((StdStream::Tcp(s.into_std()?), PeerAddr::Tcp(peer)))
            }
            Listener::Unix(l, p) => {
                let (s, _) = l.accept().await?;
                Ok((StdStream::Unix(s.into_std()?), PeerAddr::Unix(p.clone())))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// An accepted connection not yet registered with an event loop (a socket belongs to the
/// reactor that registered it: it is handed over unregistered).
pub enum StdStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl StdStream {
    /// Registers the socket with the current runtime.
    pub fn register(self, gate: Arc<PauseGate>) -> std::io::Result<(ClientStream, Arc<StreamControl>)> {
        let inner = match self {
            StdStream::Tcp(s) => Inner::Tcp(TcpStream::from_std(s)?),
            StdStream::Unix(s) => Inner::Unix(UnixStream::from_std(s)?),
        };
        let control = Arc::new(StreamControl { armed: AtomicBool::new(false), gate });
        Ok((ClientStream { inner, control: control.clone(), pushback: Vec::new() }, control))
    }
}

/// Who is connected: a TCP address, or the Unix socket it came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// The client end of a session, as sessions and logs see it: its address, and the handle that
/// subjects its stream to PAUSE once the session relays to the server.
#[derive(Clone)]
pub struct Peer {
    pub addr: PeerAddr,
    pub control: Arc<StreamControl>,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.addr {
            PeerAddr::Tcp(a) => write!(f, "{a}"),
            PeerAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// PAUSE: while set, relayed sessions read nothing more from their clients (their next
/// queries wait); RESUME wakes them. Queries already sent run to their end.
#[derive(Debug, Default)]
pub struct PauseGate {
    paused: AtomicBool,
    waiting: Mutex<Vec<Waker>>,
}

impl PauseGate {
    pub fn set(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        if !paused {
            let wakers = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
            for w in wakers {
                w.wake();
            }
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Pending (and registered) while paused.
    fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.is_paused() {
            return Poll::Ready(());
        }
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        // Checked again under the lock: RESUME takes the wakers under it.
        if !self.is_paused() {
            return Poll::Ready(());
        }
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Per-stream switches: whether PAUSE applies to it (a relayed session; the console's own
/// connections never wait).
#[derive(Debug)]
pub struct StreamControl {
    armed: AtomicBool,
    gate: Arc<PauseGate>,
}

impl StreamControl {
    /// From now on this stream's reads wait while blastwall is paused.
    pub fn arm_pause(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

enum Inner {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A client connection, TCP or Unix.
pub struct ClientStream {
    inner: Inner,
    control: Arc<StreamControl>,
    /// Bytes read by `peek`, returned first.
    pushback: Vec<u8>,
}

impl ClientStream {
    /// Reads without consuming (to tell direct TLS from a startup packet): what is read is
    /// kept and returned again by the next reads. 0 at end of stream.
    pub async fn peek(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        if self.pushback.is_empty() {
            let mut tmp = vec![0u8; buf.len()];
            let n = match &mut self.inner {
                Inner::Tcp(s) => s.read(&mut tmp).await?,
                Inner::Unix(s) => s.read(&mut tmp).await?,
            };
            self.pushback.extend_from_slice(&tmp[..n]);
        }
        let n = buf.len().min(self.pushback.len());
        buf[..n].copy_from_slice(&self.pushback[..n]);
        Ok(n)
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.control.armed.load(Ordering::Relaxed) && self.control.gate.poll_open(cx).is_pending() {
            return Poll::Pending;
        }
        if !self.pushback.is_empty() {
            let n = buf.remaining().min(self.pushback.len());
            buf.put_slice(&self.pushback[..n]);
            self.pushback.drain(..n);
            return Poll::Ready(Ok(()));
        }
        match &mut self.inner {
            Inner::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match &mut self.inner {
            Inner::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.inner {
            Inner::Tcp(s) => Pin::new(s).poll_flush(cx),
            Inner::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.inner {
            Inner::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.inner {
            Inner::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
}

/// A connection to the server: TCP (tuned as every link) or its Unix socket.
pub enum ServerStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Connects to the server's address.
pub async fn connect(addr: &Address) -> std::io::Result<ServerStream> {
    match addr {
        Address::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port)).await?;
            crate::backend::tune_tcp(&s);
            Ok(ServerStream::Tcp(s))
        }
        Address::Unix(p) => Ok(ServerStream::Unix(UnixStream::connect(p).await?)),
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms() {
        let tcp = |h: &str, p| Address::Tcp { host: h.into(), port: p };
        assert_eq!(parse_address("db:5433", Some(5432)), Ok(tcp("db", 5433)));
        assert_eq!(parse_address("db", Some(5432)), Ok(tcp("db", 5432)));
        assert_eq!(parse_address("[::1]:6432", Some(5432)), Ok(tcp("::1", 6432)));
        assert_eq!(parse_address("::1", Some(5432)), Ok(tcp("::1", 5432)));
        assert_eq!(
            parse_address("/var/run/postgresql", Some(5432)),
            Ok(Address::Unix("/var/run/postgresql/.s.PGSQL.5432".into()))
        );
        assert_eq!(
            parse_address("/var/run/postgresql/.s.PGSQL.5433", Some(5432)),
            Ok(Address::Unix("/var/run/postgresql/.s.PGSQL.5433".into()))
        );
        assert!(parse_address("db", None).is_err());
        assert!(parse_address("db:x", Some(1)).is_err());
        assert!(parse_address(":5432", Some(1)).is_err());
        assert_eq!(socket_port(Path::new("/x/.s.PGSQL.6432")), Some(6432));
    }
}
