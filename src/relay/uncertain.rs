//! The client's Syncs sent while the server may be in a `COPY … FROM STDIN`, and blastwall's
//! marker that says how many of them the server answered.
//!
//! In the COPY the server reads a Sync and ignores it; once the COPY ended by its own error
//! (a bad row, a trigger, `FREEZE`, a cancel) it answers every Sync it reads (after an
//! Execute's COPY, the first one ends its skipping to Sync; `postgres.c`, `ignore_till_sync`).
//! Where the error fell among what the client sent is not seen, so such a Sync goes on
//! *uncertain*: not a sync point of the count until its answer is known. The COPY's
//! CommandComplete says none was answered. Its ErrorResponse is followed by blastwall's
//! marker, a Sync and an empty Query, whose answers are distinctive — ReadyForQuery,
//! EmptyQueryResponse, ReadyForQuery, in a failed transaction block too — so every
//! ReadyForQuery before the one followed by EmptyQueryResponse answers one of the client's
//! Syncs (each becomes a sync point when it comes; a notification or notice read behind one
//! waits with it until the next reply says whose it is), and the marker's three are the
//! client's to never see. Nothing of the client's goes to the server meanwhile (`holds_client`): after
//! CopyDone or CopyFail it waits for the COPY's end; a message that would run waits for the
//! marker, which goes in its place as a probe while the server may still be in the COPY (it
//! answers the Query with `08P01` naming its type, then FATAL, as it would the message).
//! If none of the uncertain Syncs was answered after an Execute's COPY, the server would
//! still skip to the client's next Sync: blastwall drops the client's messages up to it.
//!
//! Owns: that state and the marker's replies. Does not own: when a Sync is uncertain or a
//! message waits (`session::copying`).

use super::Relay;
use crate::wire::messages::{self, TxStatus};
use bytes::BytesMut;

/// Where blastwall's marker stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// Not sent.
    #[default]
    None,
    /// Sent as a probe in place of a held client message, before the COPY's end was read.
    Probe,
    /// Sent, the COPY's error read: its ReadyForQuery is awaited.
    Reading,
    /// Its first ReadyForQuery and EmptyQueryResponse read: the last ReadyForQuery is awaited.
    Last,
}

#[derive(Debug, Default)]
pub(super) struct Uncertain {
    /// The client's Syncs forwarded while the server may be in the COPY, not yet counted.
    syncs: u64,
    /// Of them, those the server answered (each counted as a sync point when it came).
    answered: u64,
    /// The COPY was started by an Execute: after its error the server skips to a Sync.
    extended: bool,
    marker: Marker,
    /// A ReadyForQuery read while the marker is answered, not yet known to be a client's, and
    /// the notifications and notices read after it (whose they are says where they go).
    held_ready: Option<BytesMut>,
}

/// What a ReadyForQuery read while the marker is answered is.
pub enum MarkerReady {
    /// The ReadyForQuery held before it answers a client's sync point: handled as any, then
    /// the notifications and notices read after it are relayed.
    Client(BytesMut, BytesMut),
    /// Held until the next message says whose it is.
    Held,
    /// The marker's last: the client's place is known, with this transaction status.
    Done(TxStatus),
}

impl Relay {
    /// A COPY FROM STDIN started; `by_execute`: by an Execute.
    pub(super) fn uncertain_copy_started(&mut self, by_execute: bool) {
        self.uncertain = Uncertain { extended: by_execute, ..Uncertain::default() };
    }

    /// A client's Sync while the server may be in the COPY: forwarded, its answer uncertain.
    pub fn forward_uncertain_sync(&mut self, bytes: &[u8]) {
        self.to_server.extend_from_slice(bytes);
        self.uncertain.syncs += 1;
    }

    /// Whether Syncs of the client's went to the server with their answer still uncertain.
    pub fn has_uncertain_syncs(&self) -> bool {
        self.uncertain.syncs > 0
    }

    /// Whether the client's messages wait: uncertain Syncs went, and the client ended the COPY
    /// (its end, CommandComplete or ErrorResponse, is awaited), or the marker went.
    pub fn holds_client(&self) -> bool {
        (self.uncertain.syncs > 0 && !self.copying) || self.uncertain.marker != Marker::None
    }

    /// Whether blastwall's marker went and its answer is not all read: every reply is read
    /// whole, in order.
    pub fn marker_out(&self) -> bool {
        self.uncertain.marker != Marker::None
    }

    /// Whether the COPY's CommandComplete or ErrorResponse decides uncertain Syncs.
    pub fn copy_end_awaited(&self) -> bool {
        self.uncertain.syncs > 0 && self.uncertain.marker == Marker::None
    }

    /// A CommandComplete: while uncertain Syncs wait for the COPY's end, it is that end, and
    /// the server read every one of them in the COPY (ignored).
    pub fn on_command_complete(&mut self) {
        if self.copy_end_awaited() {
            self.uncertain = Uncertain::default();
        }
    }

    /// Sends the marker (a Sync and an empty Query); `probe`: in place of a held client message
    /// of this type, while the server may still be in the COPY.
    pub fn send_copy_marker(&mut self, probe: Option<u8>) {
        self.to_server.extend_from_slice(&crate::wire::encode(b'S', &[]));
        self.to_server.extend_from_slice(&messages::query(""));
        self.copy_intruded = true;
        self.uncertain.marker = match probe {
            Some(tag) => {
                self.probe = Some((tag, b'Q'));
                Marker::Probe
            }
            None => Marker::Reading,
        };
    }

    /// The COPY's error (not the probe's answer in the COPY) was read: with uncertain Syncs
    /// outstanding, the marker goes, or its answer is read next.
    pub(super) fn uncertain_on_copy_error(&mut self) {
        match self.uncertain.marker {
            Marker::None if self.uncertain.syncs > 0 => self.send_copy_marker(None),
            Marker::Probe => self.uncertain.marker = Marker::Reading,
            _ => {}
        }
    }

    /// The probe was read in the COPY: the server ends the session.
    pub(super) fn uncertain_ended(&mut self) {
        self.uncertain = Uncertain::default();
    }

    /// Whether ReadyForQuery and EmptyQueryResponse are the marker's to read.
    pub fn marker_reading(&self) -> bool {
        matches!(self.uncertain.marker, Marker::Reading | Marker::Last)
    }

    /// A ReadyForQuery (the whole message) while the marker's answer is read.
    pub fn marker_ready(&mut self, message: &[u8]) -> MarkerReady {
        if self.uncertain.marker == Marker::Last {
            return MarkerReady::Done(self.marker_done(message));
        }
        let earlier = self.uncertain.held_ready.replace(BytesMut::from(message));
        match earlier {
            Some(held) => {
                self.uncertain_answered();
                let (z, after) = split_ready(held);
                MarkerReady::Client(z, after)
            }
            None => MarkerReady::Held,
        }
    }

    /// A NotificationResponse or NoticeResponse while the marker's answer is read: true if it
    /// waits behind a held ReadyForQuery (relayed with it when that is a client's, after it
    /// when it is the marker's).
    pub fn marker_hold_async(&mut self, bytes: &[u8]) -> bool {
        let Some(held) = self.uncertain.held_ready.as_mut() else { return false };
        held.extend_from_slice(bytes);
        true
    }

    /// An EmptyQueryResponse while the marker's answer is read: true if it is the marker's
    /// (the ReadyForQuery held before it was the marker's Sync's).
    pub fn marker_empty_query(&mut self) -> bool {
        if self.uncertain.marker != Marker::Reading {
            return false;
        }
        let Some(held) = self.uncertain.held_ready.take() else { return false };
        self.to_client.extend_from_slice(&split_ready(held).1);
        self.uncertain.marker = Marker::Last;
        true
    }

    /// Any other reply while the marker's answer is read: the ReadyForQuery held before it
    /// answers a client's sync point.
    pub fn marker_other(&mut self) -> Option<(BytesMut, BytesMut)> {
        let held = self.uncertain.held_ready.take()?;
        self.uncertain_answered();
        Some(split_ready(held))
    }

    /// A ReadyForQuery that answers a client's Sync: one forwarded before the COPY's Syncs
    /// first (a Query's COPY: the Query's), else one of the uncertain ones, which becomes a
    /// sync point here (nothing of the client's went after them: each ends the batch it is in,
    /// as a forwarded Sync does).
    fn uncertain_answered(&mut self) {
        if self.syncs_done < self.syncs_sent || self.uncertain.answered >= self.uncertain.syncs {
            return;
        }
        self.uncertain.answered += 1;
        self.discarding = false;
        self.batch_open = false;
        self.batch_ran = false;
        self.skipping = false;
        self.syncs_sent += 1;
        self.in_batch.push_back(false);
    }

    /// The marker's last ReadyForQuery: its status is the server's. None of the uncertain
    /// Syncs answered after an Execute's COPY: the server would skip the client's messages up
    /// to its next Sync (the marker's Sync ended its skipping), so blastwall drops them.
    fn marker_done(&mut self, message: &[u8]) -> TxStatus {
        let status = messages::ready_status_of(message.get(5..).unwrap_or_default()).unwrap_or(self.tx);
        self.tx = status;
        self.copying = false;
        if self.uncertain.answered == 0 && self.uncertain.extended {
            self.discarding = true;
            self.skipping = true;
            self.batch_open = true;
        }
        self.uncertain = Uncertain::default();
        status
    }
}

/// A held ReadyForQuery and what was read after it.
fn split_ready(mut held: BytesMut) -> (BytesMut, BytesMut) {
    let len = held.get(1..5).map_or(0, |l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize);
    let after = held.split_off((1 + len).min(held.len()));
    (held, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: u8) -> Vec<u8> {
        crate::wire::encode(b'Z', &[status]).to_vec()
    }

    fn reading(syncs: u64, extended: bool) -> Relay {
        let mut r = Relay::new(1);
        r.uncertain = Uncertain { syncs, extended, marker: Marker::Reading, ..Uncertain::default() };
        r
    }

    #[test]
    fn readies_before_the_markers_answer_the_clients_syncs() {
        let mut r = reading(2, true);
        assert!(matches!(r.marker_ready(&ready(b'I')), MarkerReady::Held));
        let note = crate::wire::encode(b'A', b"\0\0\0\x01c\0p\0").to_vec();
        assert!(r.marker_hold_async(&note));
        let MarkerReady::Client(z, after) = r.marker_ready(&ready(b'I')) else { panic!("a client's") };
        assert_eq!((&z[..], &after[..]), (&ready(b'I')[..], &note[..]));
        assert_eq!((r.syncs_sent(), r.uncertain.answered), (1, 1));
        // The marker's Sync, then its empty Query.
        assert!(r.marker_hold_async(&note));
        assert!(r.marker_empty_query());
        assert_eq!(&r.to_client[..], &note[..]);
        assert!(matches!(r.marker_ready(&ready(b'E')), MarkerReady::Done(TxStatus::Failed)));
        assert!(!r.marker_out() && !r.is_discarding() && !r.has_uncertain_syncs());
    }

    #[test]
    fn none_answered_after_an_executes_copy_drops_to_the_next_sync() {
        for extended in [true, false] {
            let mut r = reading(1, extended);
            assert!(matches!(r.marker_ready(&ready(b'I')), MarkerReady::Held));
            assert!(r.marker_empty_query());
            assert!(matches!(r.marker_ready(&ready(b'I')), MarkerReady::Done(TxStatus::Idle)));
            assert_eq!((r.syncs_sent(), r.is_discarding()), (0, extended));
        }
    }
}
