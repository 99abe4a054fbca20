//! The relay's side of a `COPY … FROM STDIN`: whether the server may be in one, the messages
//! that went to the server behind its start, and blastwall's probe in place of a held
//! message (`session::copying` decides when; the client's Syncs during one: `uncertain`).
//!
//! Owns: that state and the probe's answer. Does not own: when a Sync is held or a probe
//! sent (`session::copying`).

use super::Relay;
use crate::wire::Frame;

impl Relay {
    /// Whether the server is in a COPY FROM STDIN started by an Execute.
    pub fn in_copy_in(&self) -> bool {
        self.copy_in
    }

    /// The server answered with CopyInResponse; `by_execute`: to an Execute (not a Query).
    pub fn note_copy_in(&mut self, by_execute: bool) {
        self.copy_in |= by_execute;
        self.copying = true;
        self.uncertain_copy_started(by_execute);
    }

    /// A Query (`by_execute` false) or an Execute that may start a COPY FROM STDIN goes to the
    /// server now.
    pub fn note_copy_may_start(&mut self, ord: u64, by_execute: bool) {
        self.copy_may_start = Some((ord, by_execute));
        self.copy_intruded = false;
    }

    /// A client message (or a marker) that is not the COPY's own goes to the server.
    pub(super) fn note_intruder(&mut self) {
        self.copy_intruded |= self.copying || self.copy_may_start().is_some();
    }

    /// A client message of no type the relay knows goes to the server as it came.
    pub fn forward_unknown(&mut self, bytes: &[u8]) {
        if !self.discarding {
            self.note_intruder();
        }
        self.forward_raw(bytes);
    }

    /// Whether a message other than the COPY's own went to the server since the message that
    /// may start the COPY FROM STDIN (see `copy_intruded`).
    pub fn copy_intruded(&self) -> bool {
        self.copy_intruded
    }

    /// Sends the server, in place of a held client message of type `tag` that came during its
    /// COPY FROM STDIN, a Close of a portal no client can name (and a Flush): still in the
    /// COPY, the server answers it as it would the held message (`08P01`, then FATAL, the
    /// type named: `on_error` names the held one); out of it already (the COPY failed: a bad
    /// row, a trigger, a cancel), it closes nothing and answers CloseComplete, or skips it
    /// with the failed batch. Returns the portal's name.
    pub fn send_copy_probe(&mut self, tag: u8) -> Vec<u8> {
        let mut body = vec![b'P'];
        body.extend_from_slice(&self.probe_name);
        body.push(0);
        self.to_server.extend_from_slice(&crate::wire::encode(b'C', &body));
        self.to_server.extend_from_slice(&crate::wire::encode(b'H', &[]));
        self.probe = Some((tag, b'C'));
        self.probe_sent = true;
        self.copy_intruded = true;
        self.probe_name.clone()
    }

    /// The name of the portal the probe closes, while its CloseComplete may still come.
    pub fn probe_sent(&self) -> Option<&[u8]> {
        self.probe_sent.then_some(&self.probe_name[..])
    }

    /// The probe's CloseComplete came, or the server skipped it with a failed batch.
    pub fn probe_done(&mut self) {
        self.probe_sent = false;
    }

    /// An ErrorResponse: true if it is the server's answer to the probe read in the COPY —
    /// the answer the held message gets directly, which the client gets in its place.
    pub(super) fn probe_read_in_copy(&mut self, frame: &Frame) -> bool {
        let Some((tag, probe)) = self.probe.take() else { return false };
        let Some(named) = self.copying.then(|| probe_answer(frame, probe, tag)).flatten() else { return false };
        self.probe_ended = true;
        self.copying = false;
        self.to_client.extend_from_slice(&named);
        true
    }

    /// Whether the probe was read in the COPY (the server is ending the session).
    pub fn probe_ended(&self) -> bool {
        self.probe_ended
    }

    /// The Query or Execute that may start a COPY FROM STDIN and may be unanswered: its
    /// sync point's ordinal, and whether it is an Execute.
    pub fn copy_may_start(&self) -> Option<(u64, bool)> {
        self.copy_may_start.filter(|(ord, _)| self.syncs_done <= *ord)
    }

    /// Whether the server may be in a COPY FROM STDIN, as far as its replies read so far say.
    pub fn server_in_copy(&self) -> bool {
        self.copying
    }

    /// The client ended COPY FROM STDIN (CopyDone, CopyFail): the Syncs it sent since the
    /// COPY's Execute were ignored by the server, and are answered by nothing; the server's
    /// batch stays open until the next Sync (what the client sends before it belongs to the
    /// COPY's batch, and waits for the COPY's answer like any message of an open batch).
    pub fn copy_in_done(&mut self, bytes: &[u8]) {
        self.forward_raw(bytes);
        if std::mem::take(&mut self.copying) && self.has_uncertain_syncs() {
            // The COPY's end (CommandComplete or ErrorResponse) decides them: flushed to come
            // now, the client's messages waiting for it (`uncertain`).
            self.to_server.extend_from_slice(&crate::wire::encode(b'H', &[]));
        }
        // An Execute runs one statement: its COPY was the one.
        if self.copy_may_start.is_some_and(|(_, by_execute)| by_execute) {
            self.copy_may_start = None;
        }
        if std::mem::take(&mut self.copy_in) {
            for _ in 0..std::mem::take(&mut self.syncs_since_execute) {
                if self.in_batch.back() == Some(&false) && self.syncs_sent > self.syncs_done {
                    self.in_batch.pop_back();
                    self.syncs_sent -= 1;
                    self.batch_open = true;
                }
            }
        }
    }
}

/// The server's answer to blastwall's COPY probe (`Relay::send_copy_probe`, a Close; or the
/// marker, `Relay::send_copy_marker`, whose Query it reads: the type `probe`) read in the
/// COPY — `08P01` from `CopyGetData`, "unexpected message type 0x43 during COPY from stdin"
/// (in the server's language) — with the held message's type (`tag`) named in place of
/// the probe's, as the server names it when it reads that message itself. `None` for any
/// other error. (No other message but the COPY's own reached the server behind the COPY's
/// start before the probe: `Relay::copy_intruded`.)
fn probe_answer(frame: &Frame, probe: u8, tag: u8) -> Option<Vec<u8>> {
    let mut fields: Vec<(u8, &[u8])> = Vec::new();
    let mut rest = frame.body();
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = memchr::memchr(0, tail)?;
        fields.push((kind, &tail[..end]));
        rest = &tail[end + 1..];
    }
    let field = |k: u8| fields.iter().find(|(kind, _)| *kind == k).map(|(_, v)| *v);
    if field(b'C') != Some(b"08P01") || field(b'R') != Some(b"CopyGetData") {
        return None;
    }
    let (from, to) = (format!("0x{probe:02X}"), format!("0x{tag:02X}"));
    let from = from.as_bytes();
    let mut body = Vec::with_capacity(frame.body().len());
    for (kind, value) in &fields {
        body.push(*kind);
        match memchr::memmem::find(value, from).filter(|_| *kind == b'M') {
            Some(at) => {
                body.extend_from_slice(&value[..at]);
                body.extend_from_slice(to.as_bytes());
                body.extend_from_slice(&value[at + from.len()..]);
            }
            None => body.extend_from_slice(value),
        }
        body.push(0);
    }
    body.push(0);
    Some(crate::wire::encode(b'E', &body).to_vec())
}
