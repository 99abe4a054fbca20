//! How a session ends: the client leaving (its running query cancelled), the server leaving
//! (the client told why), and shutdown at a protocol boundary.
//!
//! Owns: the last messages on each link. Does not own: when to end (`session`'s loop, the
//! server's phases).

use super::{Session, SessionError, Stats};
use crate::wire::messages::{self, sqlstate, ProxyMessage};
use tokio::io::AsyncWriteExt;

impl Session {
    /// A client that leaves while its query runs: the server would go on running it (it only
    /// notices a closed socket when it next writes), so cancel it.
    pub(super) fn cancel_if_busy(&self) {
        if !self.relay.is_busy() {
            return;
        }
        if let Some(key) = self.key.clone() {
            let upstream = self.shared.upstream.clone();
            // On its own task: the cancel must not wait for this session's cleanup.
            tokio::spawn(async move {
                if let Err(e) = upstream.cancel(&key).await {
                    tracing::warn!(error = %e, "cancelling the query of a departed client failed");
                }
            });
        }
    }

    /// The client went away: cancel what it left running, end the server session.
    pub(super) async fn client_gone(&mut self) -> Result<(), SessionError> {
        self.cancel_if_busy();
        let _ = self.server.write_all(&messages::terminate()).await;
        let _ = self.server.shutdown().await;
        Ok(())
    }

    pub(super) async fn server_gone(&mut self, stats: &mut Stats) -> Result<(), SessionError> {
        let msg = ProxyMessage::fatal(
            sqlstate::CONNECTION_FAILURE,
            format!(
                "blastwall: the upstream server {} closed the connection unexpectedly",
                self.shared.upstream.addr()
            ),
        )
        .with_hint("The server may have been restarted or the backend terminated. Reconnect.");
        self.relay.to_client.extend_from_slice(&msg.encode());
        let _ = self.flush(stats).await;
        Err(SessionError::Closed("upstream closed the connection".into()))
    }

    pub(super) async fn close_for_shutdown(&mut self) -> Result<(), SessionError> {
        // A query still running (grace over, or KILL) would go on after the session ends.
        self.cancel_if_busy();
        let msg = ProxyMessage::fatal(sqlstate::ADMIN_SHUTDOWN, "terminating connection due to administrator command")
            .with_detail(if self.shared.phase.get() == crate::server::Phase::Running {
                "ended from the blastwall console (KILL)"
            } else {
                "blastwall is shutting down"
            });
        let _ = self.client.write_all(&msg.encode()).await;
        let _ = self.client.flush().await;
        let _ = self.server.write_all(&messages::terminate()).await;
        let _ = self.server.flush().await;
        Err(SessionError::Closed("shutdown".into()))
    }
}
