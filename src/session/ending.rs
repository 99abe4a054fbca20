//! How a session ends: the client leaving (its running query cancelled), the server leaving
//! (the client told why), and shutdown at a protocol boundary.
//!
//! Owns: the last messages on each link. Does not own: when to end (`session`'s loop, the
//! server's phases).

use super::{Session, SessionError, Stats};
use crate::precheck::PrecheckError;
use crate::wire::messages;
use crate::wire::Frame;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

impl Session {
    /// A client that leaves while its query runs: the server would go on running it (it only
    /// notices a closed socket when it next writes), so cancel it.
    pub(super) fn cancel_if_busy(&self) {
        if self.relay.is_busy() {
            self.cancel_now();
        }
    }

    /// The client went away: cancel what it left running, end the server session.
    pub(super) async fn client_gone(&mut self) -> Result<(), SessionError> {
        // A protected sequence a refused statement moved is put back before the server
        // session ends (eighteenth pass F6b: never, once its client left); so is one a COPY
        // the client left moved (`copyback`).
        self.copy_left().await;
        // So is one that writes the client's transaction kept moved (`undone`): the server
        // rolls that transaction back.
        if !self.put_back_on_leaving(Vec::new()).await {
            self.cancel_if_busy();
        }
        let _ = self.server.write_all(&messages::terminate()).await;
        let _ = self.server.shutdown().await;
        // A client that left after the server's FATAL (a failed login, a termination) left
        // because of it: that is why the session ended.
        match self.server_fatal.take() {
            Some(why) => Err(self.ended_by_server(why)),
            None => Ok(()),
        }
    }

    /// The error a session ends with when the server said why; a failed login is also logged
    /// as one (the session never started).
    fn ended_by_server(&self, why: String) -> SessionError {
        if !self.ready {
            tracing::warn!(
                session = self.id,
                client = %self.peer,
                user = %self.info.user,
                database = %self.info.database,
                reason = %why,
                "login failed"
            );
        }
        SessionError::Closed(format!("the server ended the session: {why}"))
    }

    /// A pre-check that found the server gone: when it said why (a FATAL), the client gets
    /// what the server answered before and the FATAL, and the loop then finds the link
    /// closed and ends the session as `server_gone` says.
    pub(super) fn check_lost_server(
        &mut self,
        e: PrecheckError,
        for_client: BytesMut,
        fatal: Option<Frame>,
    ) -> Result<(), SessionError> {
        if !matches!(e, PrecheckError::Closed) {
            return Err(SessionError::Closed(format!("pre-check: {e}")));
        }
        self.relay.to_client.extend_from_slice(&for_client);
        if let Some(f) = fatal {
            self.note_server_error(&f);
            self.relay.to_client.extend_from_slice(&f.bytes);
        }
        Ok(())
    }

    /// Remembers a FATAL or PANIC from the server: it is ending the session and said why.
    pub(super) fn note_server_error(&mut self, f: &Frame) {
        if let Ok(e) = messages::error_fields(f) {
            if matches!(e.severity.as_str(), "FATAL" | "PANIC") {
                self.server_fatal = Some(format!("{}: {}", e.code, e.message));
            }
        }
    }

    /// The server closed the link. When it said why (a FATAL: `pg_terminate_backend`, a
    /// shutdown, an idle timeout), the client gets exactly that and then the end, as
    /// directly; blastwall speaks only when the server closed without a word.
    pub(super) async fn server_gone(
        &mut self,
        stats: &mut Stats,
        error: Option<std::io::Error>,
    ) -> Result<(), SessionError> {
        if let Some(why) = self.server_fatal.take() {
            let _ = self.flush(stats).await;
            let _ = self.client.shutdown().await;
            return Err(self.ended_by_server(why));
        }
        let msg = crate::said::upstream_closed(&self.shared.upstream.addr().to_string());
        self.relay.to_client.extend_from_slice(&msg.encode());
        let _ = self.flush(stats).await;
        let _ = self.client.shutdown().await;
        Err(match error {
            Some(e) => SessionError::ServerIo(e),
            None => SessionError::Closed("upstream closed the connection without a word".into()),
        })
    }

    pub(super) async fn close_for_shutdown(&mut self) -> Result<(), SessionError> {
        // What the session owes the server goes first, the client's block rolled back
        // (`undone`); then a query still running (grace over, or KILL) would go on after the
        // session ends: cancelled.
        self.put_back_on_leaving(Vec::new()).await;
        self.cancel_if_busy();
        let msg = crate::said::shutting_down(self.shared.phase.get() == crate::shared::Phase::Running);
        let _ = self.client.write_all(&msg.encode()).await;
        // Flushes, and ends TLS with close_notify, as the server does.
        let _ = self.client.shutdown().await;
        let _ = self.server.write_all(&messages::terminate()).await;
        let _ = self.server.flush().await;
        Err(SessionError::Closed("shutdown".into()))
    }
}
