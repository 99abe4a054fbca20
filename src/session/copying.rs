//! A client message other than CopyData, CopyDone, CopyFail, Flush and Sync (or Terminate)
//! while the server is in COPY FROM STDIN, whether a Query or an Execute started it. The
//! server answers such a message with `08P01` and FATAL and ends the session, running
//! nothing; held back for a judgement that waits for the server, it would wait for the COPY's
//! end, which waits for the client: no answer, and a server session left in the COPY. The
//! message itself never goes on (the COPY may have failed meanwhile, a bad row or a cancel,
//! and the server would then run it unjudged): only its type does (`Relay::end_in_copy`).
//!
//! Owns: which messages intrude on a COPY, and ending the session for one. Does not own:
//! whether the server is in a COPY (`relay`, from its replies).

use super::checks::Pending;
use super::Session;
use crate::wire::messages::fe;

impl Session {
    /// A client message that arrives while the server is in a COPY FROM STDIN: true if it
    /// intrudes (the session is then ending as the server ends it).
    pub(super) fn intrudes_on_copy(&mut self, tag: u8) -> bool {
        let copy_message =
            matches!(tag, fe::COPY_DATA | fe::COPY_DONE | fe::COPY_FAIL | fe::SYNC | fe::FLUSH | fe::TERMINATE);
        if !self.ready || copy_message || !self.relay.server_in_copy() {
            return false;
        }
        // A batch held back before it: the server would read its first message first.
        let tag = self.held_batch.as_ref().and_then(|h| h.bytes.first().copied()).unwrap_or(tag);
        self.end_in_copy(tag);
        true
    }

    /// A message held back (waiting for a judgement, or a held batch) when the server turns
    /// out to be in a COPY FROM STDIN sent before it: true if the session is now ending.
    pub(super) fn held_intrudes_on_copy(&mut self) -> bool {
        if !self.relay.server_in_copy() {
            return false;
        }
        let held = self.held_batch.as_ref().and_then(|h| h.bytes.first().copied());
        let Some(tag) = held.or_else(|| self.pending.as_ref().and_then(Pending::client_tag)) else {
            return false;
        };
        self.end_in_copy(tag);
        true
    }

    fn end_in_copy(&mut self, tag: u8) {
        self.relay.end_in_copy(tag);
        self.held_batch = None;
        self.pending = Some(Pending::Ended);
    }
}
