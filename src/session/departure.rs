//! A client that leaves while blastwall runs its statement in the pre-check: the check is
//! abandoned where it stands, the server's work is cancelled with the backend key blastwall
//! knows, and the server session ends before blastwall ever sends the verdict's COMMIT (the
//! server rolls back what it was doing when its link closes).
//!
//! Owns: watching the client during a check, and that ending. Does not own: the check
//! (`precheck`), a client that leaves between statements (`ending`).

use super::{Session, SessionError};
use crate::backend::BoxIo;
use crate::wire::messages;
use crate::wire::Framer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// While a check runs the client is watched by reading what it sends into its framer (judged
/// after the check, as if read then), up to this many bytes; past them, a client still
/// sending is not read further (and so not watched) until the check ends.
const WATCHED_BYTES: usize = 256 * 1024;

/// Resolves when the client closes its link (end of stream or an error); never otherwise.
/// Cancel-safe: what a read took stays in the framer.
async fn left(client: &mut BoxIo, cfr: &mut Framer) {
    loop {
        if cfr.buf_mut().len() >= WATCHED_BYTES {
            return std::future::pending().await;
        }
        super::reserve(cfr);
        match client.read_buf(cfr.buf_mut()).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// `work`'s output, or `None` when the client left first (then `work` is dropped where it
/// stands).
pub(super) async fn unless_left<T>(
    client: &mut BoxIo,
    cfr: &mut Framer,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        out = work => Some(out),
        _ = left(client, cfr) => None,
    }
}

impl Session {
    /// Sends a CancelRequest for whatever this session's backend runs now, on its own task.
    pub(super) fn cancel_now(&self) {
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

    /// The client left during a check (its future already dropped, the verdict never sent):
    /// cancel the server's work and end the server session, which rolls back what blastwall
    /// opened (or the client's own block) instead of committing it.
    pub(super) async fn left_during_check(&mut self) -> Result<(), SessionError> {
        self.cancel_now();
        let _ = self.server.write_all(&messages::terminate()).await;
        let _ = self.server.shutdown().await;
        tracing::info!(session = self.id, "client left while its statement was checked: cancelled, not kept");
        Err(SessionError::Closed("the client left while its statement was checked; cancelled, not kept".into()))
    }
}
