//! A client that leaves while blastwall runs its statement in the pre-check: the check is
//! abandoned where it stands, the server's work is cancelled with the backend key blastwall
//! knows, and the server session ends before blastwall ever sends the verdict's COMMIT (the
//! server rolls back what it was doing when its link closes). A protected sequence the
//! statement may have moved (not transactional) is put back first (`precheck::putback`).
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

/// How long a departed client's session may take to put protected sequences back.
const PUT_BACK_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves when the client closes its link (end of stream or an error); never otherwise.
/// Cancel-safe: what a read took stays in the framer.
async fn left(client: &mut BoxIo, cfr: &mut Framer) {
    loop {
        if cfr.buf_mut().len() >= WATCHED_BYTES {
            return std::future::pending().await;
        }
        super::wakes::reserve(cfr.buf_mut());
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

    /// The session ends from blastwall's side (its client gone, shutdown): its server session
    /// ends with the client's transaction rolled back, so what is owed — `in_flight` (the
    /// statement the client left in the middle of), the put-backs owed, the moves the block
    /// remembers (`undone`) — is put back on it first, latest first. What cannot be (the server
    /// session gone too) stays as it was, for `orphan`. `false`: nothing was owed (nothing
    /// cancelled either).
    pub(super) async fn put_back_on_leaving(&mut self, in_flight: Vec<crate::precheck::putback::Moved>) -> bool {
        let (guard, db) = (&self.shared.guard, &self.info.database);
        let block = self.block.leaving(&mut |oid, steps, force| guard.spend_by_oid(db, oid, steps, force));
        let xids = self.block.xids();
        let run: Vec<_> = in_flight.iter().cloned().chain(self.put_back.iter().rev().cloned()).collect();
        if run.is_empty() && block.is_empty() {
            return false;
        }
        match self.put_back_after_leaving(&run, (&xids, &block)).await {
            true => {
                self.put_back.clear();
                self.block.orphaned();
            }
            false => self.lost_check.extend(in_flight),
        }
        true
    }

    /// The cancel sent and awaited (so that it lands on the statement, not on what follows),
    /// the server brought to an end and the sequences put back (the block's unless its
    /// transaction committed: `putback::after_leaving`), within a bound. `false`: it
    /// could not be done on this session (`orphan` may, on blastwall's own connection).
    pub(super) async fn put_back_after_leaving(
        &mut self,
        back: &[crate::precheck::putback::Moved],
        block: (&[u32], &[crate::precheck::putback::Moved]),
    ) -> bool {
        if let Some(key) = self.key.clone() {
            let sent = tokio::time::timeout(PUT_BACK_WITHIN, self.shared.upstream.cancel(&key)).await;
            if !matches!(sent, Ok(Ok(()))) {
                tracing::warn!(session = self.id, "cancelling the query of a departed client failed");
            }
        }
        let mut b = crate::precheck::Backend::new(&mut self.server, &mut self.sfr);
        let work = crate::precheck::putback::after_leaving(&mut b, back, block);
        let done = matches!(tokio::time::timeout(PUT_BACK_WITHIN, work).await, Ok(Ok(())));
        if !done {
            tracing::warn!(
                session = self.id,
                "a protected sequence the departed client's statement moved could not be put back on its session"
            );
        }
        done
    }

    /// The client left during a check (its future already dropped, the verdict never sent):
    /// cancel the server's work and end the server session, which rolls back what blastwall
    /// opened (or the client's own block) instead of committing it.
    /// `back`: protected sequences the statement may have moved, put back first (`putback`),
    /// then those the client's block had moved (`undone`: the block is rolled back too).
    pub(super) async fn left_during_check(
        &mut self,
        back: Vec<crate::precheck::putback::Moved>,
    ) -> Result<(), SessionError> {
        if !self.put_back_on_leaving(back).await {
            self.cancel_now();
        }
        let _ = self.server.write_all(&messages::terminate()).await;
        let _ = self.server.shutdown().await;
        tracing::info!(session = self.id, "client left while its statement was checked: cancelled, not kept");
        Err(SessionError::Closed("the client left while its statement was checked; cancelled, not kept".into()))
    }
}
