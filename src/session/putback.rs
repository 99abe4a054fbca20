//! Protected sequences that a write counted in the middle of a batch moved, when the write
//! was not kept (it failed by itself, a reading behind it failed, or the verdict failed the
//! batch): the server skips to the batch's Sync, so nothing can be put back there. The
//! put-back is owed and run at the session's next quiet point — no reply owed, no batch open,
//! the transaction not failed (a client's failed block first ends with its ROLLBACK) —
//! latest first, so that each goes back to where the one before it left the sequence.
//!
//! Owns: what is owed and when it runs. Does not own: the statement (`precheck::putback`).

use super::{Session, SessionError};
use crate::precheck::{self, Backend};
use crate::wire::messages::TxStatus;
use crate::wire::Frame;

impl Session {
    /// The counted Execute `frame` ended unkept: the protected sequences of its reading
    /// before (`before`) are owed a put-back, judged from where its portal's run began.
    pub(super) fn owe_put_back(&mut self, frame: &Frame, before: &[Vec<Option<String>>]) {
        let portal = super::extended::execute_portal(frame).unwrap_or_default();
        let policy = self.shared.guard.policy();
        let inserted = self.mirror.runs.so_far(&portal).iter().map(|c| c.inserted).sum();
        let since = self.mirror.runs.since(&portal);
        let owed = precheck::putback::candidates(before, since, inserted, self.info.view(), &policy);
        self.put_back.extend(owed);
    }

    /// Runs what is owed once the session is quiet (see the module's doc).
    pub(super) async fn put_back_when_quiet(&mut self) -> Result<(), SessionError> {
        if self.put_back.is_empty() || self.relay.is_busy() || self.relay.tx == TxStatus::Failed {
            return Ok(());
        }
        let mut owed = std::mem::take(&mut self.put_back);
        owed.reverse();
        let in_block = self.relay.tx != TxStatus::Idle;
        let mut b = Backend::new(&mut self.server, &mut self.sfr);
        let done = precheck::putback::run(&mut b, &owed, in_block).await;
        let Backend { for_client, params, .. } = b;
        self.take_for_client(for_client, params);
        done.map_err(|e| SessionError::Closed(format!("putting a protected sequence back: {e}")))
    }
}
