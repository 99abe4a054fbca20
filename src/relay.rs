//! Forward and deny: the per-session protocol state that the relay keeps between the two
//! sockets, and the mechanics of forwarding original bytes or refusing a statement.
//!
//! Owns: outgoing buffers, the queue of ReadyForQuery the client is owed, the transaction
//! status and server parameters, and refusal by *marker*: the refused message is replaced by a
//! statement the server itself rejects, so that the server applies exactly its own error
//! semantics (aborting a transaction block, skipping an extended batch to Sync, sending the
//! right ReadyForQuery), and the server's marker error is swapped for the proxy's.
//! A `COPY … FROM STDIN`'s state and probe: `copying`; the client's Syncs sent during one
//! and blastwall's marker after its error: `uncertain`.
//! Does not own: reading sockets (see `session`) or deciding what to refuse (see `guard`).

use crate::wire::messages::{self, ProxyMessage, TxStatus};
use crate::wire::Frame;
use bytes::BytesMut;
use std::collections::VecDeque;

mod copying;
mod uncertain;
pub use uncertain::MarkerReady;

/// The SQLSTATE of the server's answer to a marker (`invalid_text_representation`).
const MARKER_CODE: &str = "22P02";

/// The server's answer to any statement in a failed transaction (`in_failed_sql_transaction`).
const FAILED_TX_CODE: &str = "25P02";

/// The server's answer to a Bind probe (`Relay::refuse_bind_in_batch`), once it found the
/// statement: a Bind with two parameter formats for one parameter is refused before anything
/// of it runs.
const PROBE_CODE: &str = "08P01";
const PROBE_MESSAGE: &str = "bind message has 2 parameter formats but 1 parameters";

/// What the server gets in place of a refused message, and so which of its errors is the
/// refusal's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// A Query of the marker statement (a sync point of its own).
    Query,
    /// A Parse of the marker statement, in a batch.
    Parse,
    /// A Bind of the refused Bind's statement that the server refuses once it found it.
    Bind,
}

/// What the relay does with a client message: the narrow result of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Forward,
    /// Forward, after sending this NoticeResponse.
    Notify(ProxyMessage),
    /// Do not forward; the client gets this ErrorResponse (by marker).
    Refuse(ProxyMessage),
}

#[derive(Debug)]
pub struct Relay {
    /// Bytes owed to the server and to the client, written once per wake-up.
    pub to_server: BytesMut,
    pub to_client: BytesMut,
    pub tx: TxStatus,
    /// The two ParameterStatus values the guard reads for every statement
    /// (`standard_conforming_strings`, `client_encoding`); the others only pass through.
    scs: bool,
    client_encoding: String,
    /// `server_encoding`, as the server reported it at startup ("" before it did).
    server_encoding: String,
    /// Sync points (Query, Sync, FunctionCall) forwarded and not yet answered by ReadyForQuery.
    syncs_sent: u64,
    syncs_done: u64,
    /// Whether extended-protocol messages were forwarded since the last Sync.
    batch_open: bool,
    /// An Execute of the open batch went to the server (its effects end with the batch).
    batch_ran: bool,
    /// For each sync point not yet answered: whether it is a Query or FunctionCall sent in
    /// the middle of an extended batch (skipped with it when the batch fails).
    in_batch: VecDeque<bool>,
    /// The server reported an error in the open batch and skips what the client sends up to
    /// its Sync.
    skipping: bool,
    /// Syncs forwarded since the client's last Execute, and whether the server answered that
    /// Execute with CopyInResponse: a Sync sent during COPY FROM STDIN is ignored by the
    /// server (it answers the Sync after CopyDone).
    syncs_since_execute: u64,
    copy_in: bool,
    /// The server is in a COPY FROM STDIN, started by a Query or an Execute: it sent
    /// CopyInResponse, and since then neither did the client's CopyDone or CopyFail go to it
    /// nor did it report an error (which ends the COPY).
    copying: bool,
    /// The client's Syncs that went while the server may be in a COPY FROM STDIN (the server
    /// ignores one it reads in the COPY and answers one it reads after the COPY's error), and
    /// blastwall's marker that says which (`uncertain`).
    uncertain: uncertain::Uncertain,
    /// A Query or an Execute that may start a COPY FROM STDIN (its text mentions `STDIN`)
    /// went to the server and may not have been answered: the ordinal of its sync point (of
    /// its batch, for an Execute), and whether it is an Execute.
    copy_may_start: Option<(u64, bool)>,
    /// A message other than the COPY's own went to the server behind the message that may
    /// start (or started) the COPY FROM STDIN: the server, if still in the COPY when it reads
    /// it, answers `08P01` and ends the session, so an answer comes without the client.
    copy_intruded: bool,
    /// blastwall's probe (`send_copy_probe`, or the marker: `send_copy_marker`) went to the
    /// server in place of a held client message of this type, and may be read in the COPY:
    /// the held message's type, and the probe's own.
    probe: Option<(u8, u8)>,
    /// The probe was read in the COPY: the server answered `08P01` (named after the held
    /// message's type) and is ending the session.
    probe_ended: bool,
    /// A probe went to the server and its CloseComplete may still come.
    probe_sent: bool,
    probe_name: Vec<u8>,
    /// Discarding the client's messages up to the next Sync, after a refusal in a batch.
    discarding: bool,
    /// Refusals in flight: the ordinal of the sync point they belong to, the message to send
    /// in place of the server's marker error, and what the server got in the refused
    /// message's place.
    refusals: VecDeque<(u64, ProxyMessage, Marker)>,
    marker_text: String,
    /// Notifications that came while blastwall held back the rest of an open batch: the
    /// server, pipelined, sends them just before the batch's ReadyForQuery
    /// (`session::notifications`), so they wait for the next one.
    notifications: BytesMut,
}

impl Relay {
    pub fn new(nonce: u64) -> Self {
        Relay {
            to_server: BytesMut::with_capacity(4096),
            to_client: BytesMut::with_capacity(4096),
            tx: TxStatus::Idle,
            scs: true,
            client_encoding: String::new(),
            server_encoding: String::new(),
            syncs_sent: 0,
            syncs_done: 0,
            batch_open: false,
            batch_ran: false,
            in_batch: VecDeque::new(),
            skipping: false,
            syncs_since_execute: 0,
            discarding: false,
            copy_in: false,
            copying: false,
            uncertain: Default::default(),
            copy_may_start: None,
            copy_intruded: false,
            probe: None,
            probe_ended: false,
            probe_sent: false,
            probe_name: format!("blastwall-refusal-{nonce:016x}-probe").into_bytes(),
            refusals: VecDeque::new(),
            marker_text: format!("blastwall-refusal-{nonce:016x}"),
            notifications: BytesMut::new(),
        }
    }

    /// Whether a reply is owed to the client (a query is running or queued on the server).
    pub fn is_busy(&self) -> bool {
        self.syncs_sent != self.syncs_done || self.batch_open || self.has_uncertain_syncs() || self.marker_out()
    }

    /// Whether messages of the current extended batch were forwarded already.
    pub fn batch_has_messages(&self) -> bool {
        self.batch_open
    }

    /// Sync points (Query, Sync, FunctionCall) forwarded so far: the ordinal of the batch
    /// that the next extended-protocol message belongs to.
    pub fn syncs_sent(&self) -> u64 {
        self.syncs_sent
    }

    /// Sync points the server has answered with ReadyForQuery.
    pub fn syncs_done(&self) -> u64 {
        self.syncs_done
    }

    /// Records that a message of the current batch went to the server by another way (a
    /// counted Execute, sent by the pre-check).
    pub fn mark_batch_open(&mut self) {
        self.batch_open = true;
        self.batch_ran = true;
    }

    /// Whether the open batch can be ended by a Sync of blastwall's without the client seeing
    /// a difference: it ran nothing (only Parse, Bind, Describe, Close, Flush: a Query behind
    /// them ends their implicit transaction anyway) and has not failed.
    pub fn batch_ends_unseen(&self) -> bool {
        !self.batch_ran && !self.skipping && !self.discarding && self.tx != TxStatus::Failed
    }

    /// The server answered a Sync of blastwall's (`batch_ends_unseen`) with this status: the
    /// batch is over, and what the client sends next starts a new one.
    pub fn batch_ended_unseen(&mut self, status: TxStatus) {
        self.tx = status;
        self.batch_open = false;
        self.batch_ran = false;
    }

    /// Records a client Bind forwarded (it converts parameters: it may run code).
    pub fn note_bind(&mut self) {
        self.batch_ran = true;
    }

    /// Records a client Execute forwarded.
    pub fn note_execute(&mut self) {
        self.batch_ran = true;
        self.syncs_since_execute = 0;
        self.copy_in = false;
    }

    /// Whether the server skips the rest of the open batch (an error was reported in it).
    pub fn is_skipping(&self) -> bool {
        self.skipping
    }

    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// The server reported an error in the open extended batch and skips to its Sync, and
    /// every refusal's marker was answered: nothing of the batch is owed but its Sync.
    pub fn only_sync_owed(&self) -> bool {
        self.skipping && self.batch_open && self.refusals.is_empty() && self.syncs_sent == self.syncs_done
    }

    pub fn has_refusals(&self) -> bool {
        !self.refusals.is_empty()
    }

    /// Carries out what was decided about a Query or FunctionCall.
    pub fn apply_sync_point(&mut self, action: Action, bytes: &[u8]) {
        match action {
            Action::Forward => self.forward_sync_point(bytes),
            Action::Notify(n) => {
                self.notify_client(&n);
                self.forward_sync_point(bytes);
            }
            Action::Refuse(r) => self.refuse_sync_point(r),
        }
    }

    /// Forwards a client message that ends a round trip (Query, FunctionCall).
    pub fn forward_sync_point(&mut self, bytes: &[u8]) {
        // In a batch refused before it: skipped with the batch, as the server skips it after
        // an error (and its ordinal would be taken for the refusal's).
        if self.discarding {
            return;
        }
        self.note_intruder();
        self.to_server.extend_from_slice(bytes);
        if self.skipping && self.batch_open {
            // The server skips it with the rest of its failed batch: no answer will come.
            return;
        }
        self.syncs_sent += 1;
        self.in_batch.push_back(self.batch_open);
    }

    /// Forwards an extended-protocol message other than Sync. A Flush opens no batch: the
    /// server only sends what it has (a driver's pipeline ends with a Sync and then a Flush,
    /// and a Query behind them is a Query of its own: nineteenth pass FPk).
    pub fn forward_in_batch(&mut self, bytes: &[u8]) {
        if !self.discarding {
            // (A Flush is read in the COPY, and ignored.)
            let flush = bytes.first() == Some(&b'H');
            if !flush {
                self.note_intruder();
            }
            self.to_server.extend_from_slice(bytes);
            self.batch_open |= !flush;
        }
    }

    /// Forwards a Sync, ending the batch and any discarding.
    pub fn forward_sync(&mut self, bytes: &[u8]) {
        self.to_server.extend_from_slice(bytes);
        self.discarding = false;
        self.batch_open = false;
        self.batch_ran = false;
        self.skipping = false;
        self.syncs_sent += 1;
        self.syncs_since_execute += 1;
        self.in_batch.push_back(false);
    }

    /// Forwards bytes with no protocol meaning for the relay (CopyData, passwords, …).
    pub fn forward_raw(&mut self, bytes: &[u8]) {
        if !self.discarding {
            self.to_server.extend_from_slice(bytes);
        }
    }

    /// Refuses a simple Query or FunctionCall: the server gets a marker query instead.
    pub fn refuse_sync_point(&mut self, refusal: ProxyMessage) {
        if self.discarding {
            return;
        }
        let marker = messages::query(&self.marker_sql());
        self.refusals.push_back((self.syncs_sent, refusal, Marker::Query));
        self.forward_sync_point(&marker);
    }

    /// Refuses a Parse (or Bind/Execute) inside an extended batch: the server gets a marker
    /// Parse, which fails and makes it skip to Sync; the client's messages up to Sync are dropped.
    pub fn refuse_in_batch(&mut self, refusal: ProxyMessage) {
        if self.discarding {
            return;
        }
        // The statement name carries the nonce too, so it can never collide with a client's.
        let marker = messages::parse(&format!("{}-stmt", self.marker_text), &self.marker_sql());
        self.refuse_in_batch_with(&marker, refusal, Marker::Parse);
    }

    /// Refuses a Bind of the statement `stmt` inside an extended batch, as `refuse_in_batch`
    /// does, with a Bind of `stmt` in place of the marker: one with two parameter formats for
    /// one parameter, which the server refuses before it converts or plans anything, once it
    /// found the statement. A statement that does not exist fails it first, with the server's
    /// own error, the one the client's Bind gets directly: the client sees that error instead
    /// of the refusal (nothing runs either way).
    pub fn refuse_bind_in_batch(&mut self, refusal: ProxyMessage, stmt: &[u8]) {
        if self.discarding {
            return;
        }
        let mut body = format!("{}-portal\0", self.marker_text).into_bytes();
        body.extend_from_slice(stmt);
        body.push(0);
        // Two parameter formats (text), one parameter (NULL), no result formats.
        body.extend_from_slice(&[0, 2, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0]);
        let probe = crate::wire::encode(b'B', &body);
        self.refuse_in_batch_with(&probe, refusal, Marker::Bind);
    }

    fn refuse_in_batch_with(&mut self, marker: &[u8], refusal: ProxyMessage, kind: Marker) {
        self.note_intruder();
        self.to_server.extend_from_slice(marker);
        self.batch_open = true;
        self.discarding = true;
        self.refusals.push_back((self.syncs_sent, refusal, kind));
    }

    /// Ends the open batch with `error` at once, the server having ended it already (a cancel
    /// that met blastwall's catalog question, `session::questions`): the client's messages up
    /// to its Sync are dropped, and the Sync goes on.
    pub fn fail_batch_here(&mut self, error: ProxyMessage) {
        if !self.discarding {
            self.to_client.extend_from_slice(&error.encode());
            self.discarding = true;
        }
    }

    /// Sends a NoticeResponse to the client (warn mode).
    pub fn notify_client(&mut self, notice: &ProxyMessage) {
        self.to_client.extend_from_slice(&notice.encode());
    }

    fn marker_sql(&self) -> String {
        format!("SELECT '{}'::pg_catalog.int4", self.marker_text)
    }

    /// Handles a ReadyForQuery from the server (the whole message); returns the status.
    pub fn on_ready(&mut self, message: &[u8]) -> TxStatus {
        let status = self.ready_answered(message);
        if !self.notifications.is_empty() {
            self.to_client.extend_from_slice(&self.notifications.split());
        }
        self.to_client.extend_from_slice(message);
        status
    }

    /// Whether notifications wait for the next ReadyForQuery (`defer_notifications`).
    pub fn defers_notifications(&self) -> bool {
        !self.notifications.is_empty()
    }

    /// Passes a whole round trip's end to the client: `replies`, the server's messages that no
    /// stage reads and, last, the ReadyForQuery `message`, handled as `on_ready` does; `replies`
    /// is left empty (its bytes moved without a copy when nothing else is owed to the client).
    /// Not while notifications wait (they go before the ReadyForQuery).
    pub fn on_round_trip(&mut self, replies: &mut BytesMut, message: &[u8]) -> TxStatus {
        debug_assert!(self.notifications.is_empty());
        if self.to_client.is_empty() {
            std::mem::swap(&mut self.to_client, replies);
        } else {
            self.to_client.extend_from_slice(replies);
            replies.clear();
        }
        self.ready_answered(message)
    }

    /// The bookkeeping of a ReadyForQuery (the whole message): a sync point answered.
    fn ready_answered(&mut self, message: &[u8]) -> TxStatus {
        let status = messages::ready_status_of(message.get(5..).unwrap_or_default()).unwrap_or(self.tx);
        self.tx = status;
        self.copying = false;
        if self.syncs_done < self.syncs_sent {
            let done = self.syncs_done;
            // A refusal whose marker was never reached (an earlier error in its batch made the
            // server skip it) is owed nothing: the client sees the earlier error, as direct.
            while self.refusals.front().is_some_and(|(ord, ..)| *ord <= done) {
                self.refusals.pop_front();
            }
            self.syncs_done += 1;
            self.in_batch.pop_front();
        }
        status
    }

    /// Holds notifications back until the next ReadyForQuery.
    pub fn defer_notifications(&mut self, notifications: &[u8]) {
        self.notifications.extend_from_slice(notifications);
    }

    /// The server reported an error in an extended-protocol batch and skips to its Sync: a
    /// Query or FunctionCall the client sent inside that batch is skipped too, and answered by
    /// nothing (the Sync's ReadyForQuery answers them all).
    pub fn skip_to_sync(&mut self) {
        while self.in_batch.front() == Some(&true) {
            self.in_batch.pop_front();
            let done = self.syncs_done;
            while self.refusals.front().is_some_and(|(ord, ..)| *ord <= done) {
                self.refusals.pop_front();
            }
            self.syncs_done += 1;
        }
        // No Sync of it forwarded yet: the failed batch is the open one.
        self.skipping = self.in_batch.is_empty();
    }

    /// Handles an ErrorResponse from the server: the marker's error becomes the refusal. In a
    /// failed transaction the server answers a marker Query with its 25P02 before reading it:
    /// that answer to the refusal's own sync point becomes the refusal too.
    pub fn on_error(&mut self, frame: &Frame) {
        if self.probe_read_in_copy(frame) {
            self.uncertain_ended();
            return;
        }
        // An error ends a COPY (the server then reads messages as usual, or skips to Sync,
        // and answers the Syncs it reads: `uncertain`).
        if std::mem::take(&mut self.copying) {
            self.copy_in = false;
        }
        if self.copy_may_start.is_some_and(|(ord, _)| ord == self.syncs_done) {
            // The batch (or Query) that might have started one failed: it is skipped.
            self.copy_may_start = None;
        }
        self.uncertain_on_copy_error();
        if let Ok(f) = messages::error_fields(frame) {
            let marker = match self.refusals.front().map(|r| r.2) {
                Some(Marker::Bind) => f.code == PROBE_CODE && f.message == PROBE_MESSAGE,
                _ => f.code == MARKER_CODE && f.message.contains(&self.marker_text),
            };
            let failed_tx = f.code == FAILED_TX_CODE
                && self
                    .refusals
                    .front()
                    .is_some_and(|(ord, _, kind)| *kind == Marker::Query && *ord == self.syncs_done);
            if marker || failed_tx {
                if let Some((_, refusal, _)) = self.refusals.pop_front() {
                    self.to_client.extend_from_slice(&refusal.encode());
                    return;
                }
            }
        }
        self.to_client.extend_from_slice(&frame.bytes);
    }

    pub fn on_parameter_status(&mut self, frame: &Frame) {
        if let Ok((k, v)) = messages::parameter_status(frame) {
            self.set_param(k, v);
        }
        self.to_client.extend_from_slice(&frame.bytes);
    }

    pub fn pass_to_client(&mut self, bytes: &[u8]) {
        self.to_client.extend_from_slice(bytes);
    }

    /// Whether `standard_conforming_strings` is on, as the server last reported it.
    pub fn standard_conforming_strings(&self) -> bool {
        self.scs
    }

    /// `client_encoding`, as the server last reported it ("" before it did).
    pub fn client_encoding(&self) -> &str {
        &self.client_encoding
    }

    /// Whether the server keys a protocol name as the client's bytes: no conversion between
    /// `client_encoding` and `server_encoding` (the same, or either `SQL_ASCII`), both reported.
    pub fn names_unconverted(&self) -> bool {
        let (c, s) = (&self.client_encoding, &self.server_encoding);
        !c.is_empty()
            && !s.is_empty()
            && (c.eq_ignore_ascii_case(s) || [c, s].iter().any(|e| e.eq_ignore_ascii_case("SQL_ASCII")))
    }

    /// `server_encoding`, as the server reported it ("" before it did).
    pub fn server_encoding(&self) -> &str {
        &self.server_encoding
    }

    /// Records a ParameterStatus value.
    pub fn set_param(&mut self, key: String, value: String) {
        match key.as_str() {
            "standard_conforming_strings" => self.scs = value != "off",
            "client_encoding" => self.client_encoding = value,
            "server_encoding" => self.server_encoding = value,
            _ => {}
        }
    }
}
