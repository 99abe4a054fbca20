//! The session's writes: what the relay owes the server and the client, written once per turn
//! of the loop — at once when the sockets take it (polled with a waker that wakes nothing, no
//! future made), else waited for with the task's waker.
//!
//! Owns: the order of the two writes and their flushes, and what is done once a buffer is
//! written (`precheck::prepared`'s note, the held replies' share). Does not own: what is
//! written (`relay`), the waiting for other sessions (`others`).

use super::{Session, SessionError, Stats};
use crate::backend::BoxIo;

impl Session {
    /// Writes both buffers, the server's first, for as long as it takes (after the writes of
    /// other sessions this one must wait for: `others`).
    pub(super) async fn flush(&mut self, stats: &mut Stats) -> Result<(), SessionError> {
        self.rewrite_outgoing();
        if self.info.inflight.must_wait() && !self.relay.to_server.is_empty() {
            self.wait_for_others().await?;
        }
        if !self.relay.to_server.is_empty() {
            write_out(&mut self.server, &self.relay.to_server).await.map_err(SessionError::ServerIo)?;
            self.relay.to_server.clear();
            // The unnamed statement may be the client's now (`precheck::prepared`).
            self.readings.flushed.client_sent();
        }
        if !self.relay.to_client.is_empty() {
            stats.bytes_out += self.relay.to_client.len() as u64;
            write_out(&mut self.client, &self.relay.to_client).await.map_err(SessionError::ClientIo)?;
            self.relay.to_client.clear();
            self.holding.clear();
        }
        Ok(())
    }

    /// [`Session::flush`] without waiting, when nothing needs the waiting one (a Query run as
    /// a batch's replies to rewrite, other sessions' writes to wait for): `None` when all went;
    /// else what is left (`Unflushed`) for [`Session::finish_flush`] and [`Session::flush`].
    pub(super) fn flush_at_once(&mut self, stats: &mut Stats) -> Result<Option<Unflushed>, SessionError> {
        if self.simple_replies.is_some() || self.info.inflight.must_wait() && !self.relay.to_server.is_empty() {
            return Ok(Some(Unflushed::Bytes));
        }
        if !self.relay.to_server.is_empty() {
            let left = write_at_once(&mut self.server, &mut self.relay.to_server).map_err(SessionError::ServerIo)?;
            if self.relay.to_server.is_empty() {
                // The unnamed statement may be the client's now (`precheck::prepared`).
                self.readings.flushed.client_sent();
            }
            match left {
                None => {}
                Some(true) => return Ok(Some(Unflushed::Server)),
                Some(false) => return Ok(Some(Unflushed::Bytes)),
            }
        }
        if !self.relay.to_client.is_empty() {
            let len = self.relay.to_client.len();
            let left = write_at_once(&mut self.client, &mut self.relay.to_client).map_err(SessionError::ClientIo)?;
            stats.bytes_out += (len - self.relay.to_client.len()) as u64;
            if self.relay.to_client.is_empty() {
                self.holding.clear();
            }
            match left {
                None => {}
                Some(true) => return Ok(Some(Unflushed::Client)),
                Some(false) => return Ok(Some(Unflushed::Bytes)),
            }
        }
        Ok(None)
    }

    /// Waits for the flush [`Session::flush_at_once`] left.
    pub(super) async fn finish_flush(&mut self, unflushed: Unflushed) -> Result<(), SessionError> {
        match unflushed {
            Unflushed::Bytes => Ok(()),
            Unflushed::Server => flush_io(&mut self.server).await.map_err(SessionError::ServerIo),
            Unflushed::Client => flush_io(&mut self.client).await.map_err(SessionError::ClientIo),
        }
    }
}

/// What [`Session::flush_at_once`] left to be waited for.
pub(super) enum Unflushed {
    /// Bytes still to write (or the waiting flush's work: nothing was written).
    Bytes,
    /// All written, the server's side not yet flushed.
    Server,
    /// All written, the client's side not yet flushed.
    Client,
}

/// Writes what `buf` holds and flushes, as far as it goes without waiting (polled with a waker
/// that wakes nothing: a socket that is not ready is polled again, with the task's waker, by
/// [`write_out`] or [`flush_io`]): `Ok(None)` when all of it was written and flushed, `Ok(Some
/// (false))` when bytes are left in `buf` (what was written is taken off it), `Ok(Some(true))`
/// when all was written but the flush must be waited for.
fn write_at_once(io: &mut BoxIo, buf: &mut bytes::BytesMut) -> std::io::Result<Option<bool>> {
    use std::task::{Context, Poll, Waker};
    use tokio::io::AsyncWrite;
    let mut cx = Context::from_waker(Waker::noop());
    let mut written = 0;
    while written < buf.len() {
        match std::pin::Pin::new(&mut *io).poll_write(&mut cx, &buf[written..]) {
            Poll::Pending => {
                bytes::Buf::advance(buf, written);
                return Ok(Some(false));
            }
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => written += n,
        }
    }
    buf.clear();
    match std::pin::Pin::new(&mut *io).poll_flush(&mut cx) {
        Poll::Ready(r) => r.map(|()| None),
        Poll::Pending => Ok(Some(true)),
    }
}

/// Flushes `io` (what was written to it may wait in its buffer: TLS).
async fn flush_io(io: &mut BoxIo) -> std::io::Result<()> {
    use tokio::io::AsyncWrite;
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *io).poll_flush(cx)).await
}

/// Writes all of `bytes` and flushes (`write_all` then `flush`, in one future).
async fn write_out(io: &mut BoxIo, bytes: &[u8]) -> std::io::Result<()> {
    use std::task::Poll;
    use tokio::io::AsyncWrite;
    let mut written = 0;
    std::future::poll_fn(|cx| {
        while written < bytes.len() {
            match std::pin::Pin::new(&mut *io).poll_write(cx, &bytes[written..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
            }
        }
        std::pin::Pin::new(&mut *io).poll_flush(cx)
    })
    .await
}
