//! The server's side of a session: its bytes read into replies, and what each reply tells
//! the session (ReadyForQuery's transaction status and sync points, ParameterStatus, backend
//! key, errors, the mirror's confirmations) before it is relayed to the client.
//!
//! Owns: which replies are read whole and which stream through. Does not own: framing
//! (`wire`), the relay's bookkeeping (`relay`), the mirror of statements (`statements`).

use super::{Session, SessionError, Stats};
use crate::wire::messages::{self, be};
use crate::wire::{Frame, Step};

impl Session {
    pub(super) fn on_server_bytes(&mut self, stats: &mut Stats) -> Result<(), SessionError> {
        let ready = self.ready;
        // The end of a round trip whose replies no stage reads (a Query's rows, while the
        // mirror owes nothing): passed on in one piece, its ReadyForQuery read in place.
        // While a COPY's end or blastwall's marker decides the client's Syncs (`copying`),
        // every reply that says so is read whole, in order.
        let copy_end = |relay: &crate::relay::Relay| relay.marker_out() || relay.copy_end_awaited();
        if ready && !self.relay.defers_notifications() && !copy_end(&self.relay) {
            let quiet = self.mirror.nothing_owed() && self.readings.is_empty() && self.block.is_empty();
            let passes = |tag: u8| match tag {
                b'D' | b'd' | be::NOTICE_RESPONSE => true,
                b'1' | b'2' | b'3' | b'T' | b'n' | b'C' | b'I' | b's' => quiet,
                _ => false,
            };
            if let Some(z) = self.sfr.round_trip(passes) {
                self.names_on_ready(self.relay.syncs_done());
                let status = self.relay.on_round_trip(self.sfr.buf_mut(), &z);
                self.after_ready(status, stats);
                return Ok(());
            }
        }
        loop {
            // Rows, COPY data, notices and notifications stream through in runs; so do the
            // replies only the mirror of statements and portals reads, while it owes nothing
            // (a Query's RowDescription and CommandComplete). The rest is read whole, for the
            // sync-point bookkeeping. The mirror only shrinks while the server is read.
            // blastwall's own prepared readings follow the client's DEALLOCATE ALL and DISCARD
            // ALL by their CommandComplete (`precheck::prepared`).
            let marker = self.relay.marker_out();
            let quiet = self.mirror.nothing_owed()
                && self.readings.is_empty()
                && self.block.is_empty()
                && !copy_end(&self.relay);
            // A notification while blastwall holds back the rest of an open batch waits for
            // its ReadyForQuery (`notifications`).
            let defer = self.relay.batch_has_messages() && (self.pending.is_some() || self.mirror.parked.is_some());
            let inspect = |tag: u8| match tag {
                _ if marker => true,
                b'A' => defer,
                b'D' | b'd' | be::NOTICE_RESPONSE => false,
                b'1' | b'2' | b'3' | b'T' | b'n' | b'C' | b'I' | b's' => !quiet,
                be::AUTHENTICATION => !ready,
                _ => true,
            };
            // The end of a round trip, read without splitting a frame off.
            if let Some(z) = (!marker).then(|| self.sfr.take_ready()).flatten() {
                self.on_ready_message(&z, stats);
                continue;
            }
            let relay = &mut self.relay;
            let step = self.sfr.next_step(inspect, |run| relay.pass_to_client(run));
            match step.map_err(SessionError::ServerProtocol)? {
                None => return Ok(()),
                Some(Step::Passed) => {}
                Some(Step::Frame(f)) => self.on_server_frame(f, stats)?,
            }
        }
    }

    fn on_server_frame(&mut self, f: Frame, stats: &mut Stats) -> Result<(), SessionError> {
        if self.relay.marker_reading() && self.marker_reply(&f, stats) {
            return Ok(());
        }
        match f.tag {
            be::READY_FOR_QUERY => self.on_ready_message(&f.bytes, stats),
            be::PARAMETER_STATUS => self.relay.on_parameter_status(&f),
            b'A' => self.relay.defer_notifications(&f.bytes),
            be::COPY_IN_RESPONSE => {
                // Only a COPY started by an Execute makes the server ignore Syncs.
                self.relay.note_copy_in(self.mirror.executing(self.relay.syncs_done()));
                self.simple_copy_started();
                self.relay.pass_to_client(&f.bytes);
            }
            be::BACKEND_KEY_DATA => {
                if let Ok(key) = messages::backend_key(&f) {
                    self.shared.cancel_keys.insert(key.clone());
                    stats.key = Some(key.clone());
                    self.info.inflight.key = Some(key.clone());
                    self.key = Some(key);
                }
                self.relay.pass_to_client(&f.bytes);
            }
            be::ERROR_RESPONSE => {
                self.note_server_error(&f);
                self.copy_error_seen();
                self.block.on_error();
                self.names_on_error();
                if self.mirror.on_error(self.relay.syncs_done()) {
                    self.skip_to_sync();
                }
                self.relay.on_error(&f);
            }
            b'1' | b'2' | b'3' | b'T' | b'n' | b'C' | b'I' | b's' => {
                if self.probe_answered(f.tag) {
                    return Ok(());
                }
                if f.tag == b'C' {
                    self.relay.on_command_complete();
                    self.readings.on_tag(f.body());
                    self.block.on_tag(f.body());
                }
                self.mirror.on_reply(f.tag, self.relay.syncs_done());
                self.relay.pass_to_client(&f.bytes);
            }
            be::AUTHENTICATION if self.strip_plus && messages::auth_kind(&f) == Ok(10) => {
                let b = messages::strip_channel_binding(&f).map_err(SessionError::ServerProtocol)?;
                self.relay.pass_to_client(&b);
            }
            _ => self.relay.pass_to_client(&f.bytes),
        }
        Ok(())
    }

    /// A ReadyForQuery (the whole message): a sync point answered.
    pub(super) fn on_ready_message(&mut self, message: &[u8], stats: &Stats) {
        self.names_on_ready(self.relay.syncs_done());
        let status = self.relay.on_ready(message);
        self.after_ready(status, stats);
    }

    /// What a ReadyForQuery with this status tells the session, once the relay has it.
    pub(super) fn after_ready(&mut self, status: messages::TxStatus, stats: &Stats) {
        if status == messages::TxStatus::Idle {
            self.info.taint.transaction_ended();
        }
        if self.info.inflight.registered {
            self.inflight_answered();
        }
        self.mirror.on_ready(self.relay.syncs_done(), status);
        if self.copy_awaited.is_some() {
            self.copy_answered();
        }
        if !self.block.is_empty() {
            // Run last (the owed run latest first): it goes back furthest.
            let (guard, db) = (&self.shared.guard, &self.info.database);
            let undone =
                self.block.on_ready(status, &mut |oid, steps, force| guard.spend_by_oid(db, oid, steps, force));
            self.put_back.splice(0..0, undone);
        }
        if !self.ready {
            self.ready = true;
            self.log_start(stats);
        }
    }

    fn log_start(&self, stats: &Stats) {
        if let Some(who) = &stats.who {
            tracing::info!(
                session = self.id,
                user = %who.user,
                database = %who.database,
                application_name = %who.application_name,
                client = %self.peer,
                "session started"
            );
        }
    }
}
