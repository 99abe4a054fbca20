//! The client's messages around a `COPY … FROM STDIN`, whether a Query or an Execute started
//! it. Inside the COPY the server reads CopyData, CopyDone, CopyFail, Flush and Sync, ignoring
//! the last two; once the COPY ended by its own error (a bad row, a trigger, a cancel) it reads
//! messages as usual — CopyData, CopyDone and CopyFail dropped, and a Sync answered (after an
//! Execute's COPY, the first one ends its skipping to Sync). blastwall cannot see where the
//! server's error fell among what it already forwarded, so:
//!
//! - **Syncs.** None goes to the server as a sync point while it may be in a COPY. A Sync
//!   behind a Query or Execute that may start one (its text mentions `STDIN`: [`Copies`])
//!   waits, the client unread, until the server said whether it did (CopyInResponse, or its
//!   answer, which a Flush of blastwall's makes come for an Execute). A Sync during the COPY
//!   goes on *uncertain* (`relay::uncertain`): the server ignores it if it reads it in the
//!   COPY, answers it if it reads it after the COPY's error; the COPY's CommandComplete says
//!   the first, its ErrorResponse is followed by blastwall's marker, whose answer says how many
//!   were answered. Meanwhile the client is not read once it ended the COPY. (A Sync behind a
//!   message the server read behind the COPY's start is answered: it goes as any. In a Query
//!   run as a batch, `simple`, it is dropped, as the server in the COPY ignores it.)
//! - **Any other message** (an intruder) is judged like any other and forwarded when allowed
//!   (refused by marker, it is the marker): still in the COPY, the server answers `08P01` and
//!   FATAL and ends the session; out of it, the message runs — what a direct connection gets,
//!   by timing. Behind uncertain Syncs it waits instead (`Pending::AfterCopy`), and the marker
//!   goes in its place as a probe: in the COPY the server answers it as it would the message
//!   (`08P01` naming its type, FATAL); after the COPY's error, the marker's answer says where
//!   the server stands, and the message is judged. A message whose judgement needs the server
//!   idle (a count, a catalog question, a held batch) waits until the server's replies say
//!   where the COPY ended; the COPY may wait for the client, so unless another message went on
//!   before it, a probe goes in its place (`Session::held_waits_for_copy`): in the COPY,
//!   the server answers it as it would the message (`08P01` naming its type, FATAL);
//!   after the COPY's error, it closes nothing, and the message is judged like any other.
//!
//! Owns: which names may start a COPY, when a Sync around one is uncertain, intruders, and
//! the marker's replies as the session reads them. Does not own: whether the server is in a
//! COPY, the uncertain Syncs' count and the marker (`relay`, from its replies).

use super::checks::Pending;
use super::statements::Op;
use super::Session;
use crate::relay::MarkerReady;
use crate::wire::messages::{self, fe};
use crate::wire::Frame;
use std::collections::HashSet;

/// How many statement or portal names that may start a COPY a session remembers; past it,
/// every Execute may.
const MAX_NAMES: usize = 64;

/// The prepared statements and portals that may start a `COPY … FROM STDIN`, as the client's
/// forwarded Parse and Bind messages made them (more is harmless: a Sync behind their Execute
/// waits for its answer).
#[derive(Debug, Default)]
pub(super) struct Copies {
    statements: HashSet<Vec<u8>>,
    portals: HashSet<Vec<u8>>,
    /// Too many names were kept: any Execute may start one.
    all: bool,
}

impl Copies {
    fn keep(set: &mut HashSet<Vec<u8>>, all: &mut bool, name: &[u8]) {
        if set.len() >= MAX_NAMES {
            set.clear();
            *all = true;
        } else {
            set.insert(name.to_vec());
        }
    }

    /// A Parse of `name` went to the server (`parse`: the whole message). A named statement
    /// is never forgotten by another Parse (which fails while the name exists).
    fn parsed(&mut self, name: &[u8], parse: &[u8]) {
        if may_copy(parse) {
            Self::keep(&mut self.statements, &mut self.all, name);
        } else if name.is_empty() && !self.statements.is_empty() {
            self.statements.remove(name);
        }
    }

    fn bound(&mut self, portal: &[u8], statement: &[u8]) {
        if !self.statements.is_empty() && self.statements.contains(statement) {
            Self::keep(&mut self.portals, &mut self.all, portal);
        } else if !self.portals.is_empty() {
            self.portals.remove(portal);
        }
    }

    fn executes(&self, execute: &Frame) -> bool {
        self.all
            || (!self.portals.is_empty()
                && super::extended::execute_portal(execute).is_ok_and(|p| self.portals.contains(&p)))
    }
}

/// Whether a statement's text (or a message holding it) may be a `COPY … FROM STDIN`: the
/// keyword `STDIN` appears in it, in any case (a word or not: more is harmless).
pub(super) fn may_copy(text: &[u8]) -> bool {
    memchr::memchr2_iter(b's', b'S', text).any(|i| text.get(i..i + 5).is_some_and(|w| w.eq_ignore_ascii_case(b"stdin")))
}

impl Session {
    /// A client message went to the server: what it does to the names that may start a COPY.
    pub(super) fn copy_names_follow(&mut self, f: &Frame, op: &Op) {
        let copies = &mut self.mirror.copies;
        match op {
            Op::Parse { name, .. } => copies.parsed(name, &f.bytes),
            Op::Bind { portal, statement } => copies.bound(portal, statement),
            // Not in a batch the server skips (after an error): it answers nothing of it.
            Op::Execute if !self.relay.is_skipping() && copies.executes(f) => {
                let ord = self.relay.syncs_sent();
                if !self.mirror.batch_failed(ord) {
                    self.relay.note_copy_may_start(ord, true);
                }
            }
            _ => {}
        }
    }

    /// A Query goes to the server (`action`: forwarded, or with a notice): it may start a
    /// COPY, if the server is to answer it (not skipped with a failed batch).
    pub(super) fn forward_query(&mut self, sql: &[u8], action: crate::relay::Action, bytes: &[u8]) {
        let ord = self.relay.syncs_sent();
        self.relay.apply_sync_point(action, bytes);
        if self.relay.syncs_sent() > ord && self.copy_word && may_copy(sql) {
            self.relay.note_copy_may_start(ord, false);
        }
    }

    /// Whether a Query or Execute that may start a COPY FROM STDIN is still unanswered.
    fn copy_may_start(&self) -> bool {
        match self.relay.copy_may_start() {
            None => false,
            Some((_, by_execute)) => !by_execute || self.mirror.execute_owed(),
        }
    }

    /// A client's Sync, not part of a held batch: true if it does not go to the server now as
    /// a sync point (sent uncertain during a COPY, or waiting to know whether one starts).
    pub(super) fn sync_waits_for_copy(&mut self, f: &Frame) -> bool {
        if self.relay.server_in_copy() {
            if self.simple.is_some() {
                // A Query's COPY run as a batch: the server ignores it there (`simple`).
                return true;
            }
            if self.relay.copy_intruded() {
                // The server read a message behind the COPY's start: out of the COPY (its
                // error), or ending the session. It answers this one.
                return false;
            }
            self.relay.forward_uncertain_sync(&f.bytes);
            return true;
        }
        if !self.copy_may_start() {
            return false;
        }
        if self.relay.copy_may_start().is_some_and(|(_, by_execute)| by_execute) {
            // The server answers an Execute at a Sync or a Flush (CopyInResponse it sends at once).
            self.relay.to_server.extend_from_slice(&crate::wire::encode(fe::FLUSH, &[]));
        }
        self.pending = Some(Pending::SyncInCopy(f.clone()));
        true
    }

    /// Whether a Sync waiting for a COPY's start can go its way.
    pub(super) fn copy_start_known(&self) -> bool {
        self.relay.server_in_copy() || !self.copy_may_start()
    }

    /// The waiting Sync, once the server said whether a COPY started: held in it, else
    /// forwarded.
    pub(super) fn sync_after_copy_start(&mut self, f: &Frame) {
        if !self.sync_waits_for_copy(f) {
            self.relay.forward_sync(&f.bytes);
        }
    }

    /// A client message that arrives while the server may be in a COPY FROM STDIN: judged like
    /// any other (returned), unless uncertain Syncs went before it: then it waits
    /// (`Pending::AfterCopy`) for blastwall's marker, which goes in its place meanwhile
    /// (`held_waits_for_copy`).
    pub(super) fn intrudes_on_copy(&mut self, f: Frame) -> Option<Frame> {
        if !self.ready || copy_message(f.tag) || !self.relay.server_in_copy() || !self.relay.has_uncertain_syncs() {
            return Some(f);
        }
        self.pending = Some(Pending::AfterCopy(f));
        None
    }

    /// A message held back (waiting for a judgement, a held batch, a Bind parked for its
    /// Execute) while the server may be in a COPY FROM STDIN sent before it: true while it
    /// must wait. Directly, the server reads it in the COPY (then `08P01`, FATAL: nothing
    /// runs) or after the COPY's own error (then it runs as any other), and an answer comes
    /// without the client only in the second case, or when another message behind the COPY's
    /// start went to the server already. Else a probe goes in its place
    /// (`Relay::send_copy_probe`): the server, still in the COPY, answers it as it would the
    /// held message, and the session ends; out of it, the probe closes nothing, and the held
    /// message is judged (counted, asked about) once the server's error and the probe's
    /// answer are read.
    pub(super) fn held_waits_for_copy(&mut self) -> bool {
        // Every turn of the relay loop asks: no COPY, no probe, nothing to look at.
        if !self.relay.server_in_copy() && !self.relay.probe_ended() && self.relay.probe_sent().is_none() {
            return false;
        }
        if self.relay.probe_ended() {
            if !self.pending.as_ref().is_some_and(Pending::is_ended) {
                self.held_batch = None;
                self.mirror.parked = None;
                self.pending = Some(Pending::Ended);
            }
            return false;
        }
        let held = self.held_batch.as_ref().and_then(|h| h.bytes.first().copied());
        let parked = self.mirror.parked.as_ref().map(|_| fe::BIND);
        let Some(tag) = held.or(parked).or_else(|| self.pending.as_ref().and_then(Pending::client_tag)) else {
            return false;
        };
        if self.relay.server_in_copy() {
            if self.relay.has_uncertain_syncs() {
                // The marker says where the server stands among the Syncs, and probes the COPY.
                if !self.relay.marker_out() {
                    self.relay.send_copy_marker(Some(tag));
                }
                return true;
            }
            if !self.relay.copy_intruded() {
                let name = self.relay.send_copy_probe(tag);
                self.mirror.sent(self.relay.syncs_sent(), Op::Close { portal: true, name });
            }
            return true;
        }
        let Some(name) = self.relay.probe_sent() else { return false };
        if self.mirror.owes_close_of(name) {
            return true;
        }
        self.relay.probe_done();
        false
    }

    /// A CloseComplete that answers blastwall's COPY probe (`held_waits_for_copy`): the
    /// client never sees it.
    pub(super) fn probe_answered(&mut self, tag: u8) -> bool {
        let Some(name) = self.relay.probe_sent().filter(|_| tag == b'3') else { return false };
        if !self.mirror.next_closes(name) {
            return false;
        }
        self.mirror.on_reply(tag, self.relay.syncs_done());
        self.relay.probe_done();
        true
    }

    /// A reply while blastwall's marker is answered (`relay::uncertain`): true if the client
    /// never sees it (the marker's own, or a ReadyForQuery held until the next reply says
    /// whose it is); a ReadyForQuery found to answer a client's Sync is handled as any.
    pub(super) fn marker_reply(&mut self, f: &Frame, stats: &super::Stats) -> bool {
        match f.tag {
            messages::be::READY_FOR_QUERY => {
                match self.relay.marker_ready(&f.bytes) {
                    MarkerReady::Client(z, after) => {
                        self.on_ready_message(&z, stats);
                        self.relay.pass_to_client(&after);
                    }
                    MarkerReady::Held => {}
                    MarkerReady::Done(status) => self.after_ready(status, stats),
                }
                true
            }
            b'I' if self.relay.marker_empty_query() => true,
            b'A' | messages::be::NOTICE_RESPONSE if self.relay.marker_hold_async(&f.bytes) => true,
            _ => {
                if let Some((z, after)) = self.relay.marker_other() {
                    self.on_ready_message(&z, stats);
                    self.relay.pass_to_client(&after);
                }
                false
            }
        }
    }
}

/// Whether a client message of type `tag` is one a COPY FROM STDIN reads (its data, its end, or
/// what the server ignores or ends the session with during one), not one that intrudes on it.
pub(super) fn copy_message(tag: u8) -> bool {
    matches!(tag, fe::COPY_DATA | fe::COPY_DONE | fe::COPY_FAIL | fe::SYNC | fe::FLUSH | fe::TERMINATE)
}

#[cfg(test)]
mod tests {
    use super::may_copy;

    #[test]
    fn stdin_in_any_case_may_copy() {
        assert!(may_copy(b"COPY t FROM STDIN"));
        assert!(may_copy(b"copy t from stdin with (format csv)"));
        assert!(may_copy(b"P\0copy t from StdIn\0\0\0"));
        assert!(!may_copy(b"SELECT abalance FROM pgbench_accounts WHERE aid = 5"));
        assert!(!may_copy(b"COPY t TO STDOUT"));
        assert!(!may_copy(b"std"));
    }
}
