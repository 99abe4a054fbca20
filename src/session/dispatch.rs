//! A client message's way through the session once it is whole: a Query judged and forwarded,
//! refused, counted or split; the extended protocol's messages (`extended`); a FunctionCall;
//! the password messages of the opening; COPY's end; Terminate.
//!
//! Owns: that dispatch. Does not own: the judgement (`judging`, `guard`), what each path then
//! does (`extended`, `checks`, `simple`, `copying`).

use super::checks::Pending;
use super::{opening, Session, SessionError};
use crate::guard::{Preanalyzed, Verdict};
use crate::relay::Action;
use crate::wire::messages::{self, fe};
use crate::wire::{self, Frame};
use bytes::BytesMut;

impl Session {
    /// Handles a client message (also used to handle it again once the catalog has answered).
    pub(super) fn judge_and_record(&mut self, f: Frame) -> Result<(), SessionError> {
        self.on_client_message(f, None)
    }

    /// `pre`: the analysis of a long text, made off the event loop.
    pub(super) fn on_client_message(&mut self, f: Frame, pre: Option<&Preanalyzed>) -> Result<(), SessionError> {
        let extended =
            matches!(f.tag, fe::PARSE | fe::BIND | fe::EXECUTE | fe::SYNC | fe::DESCRIBE | fe::CLOSE | fe::FLUSH);
        if !extended && self.mirror.parked.is_some() {
            self.after_parked(&f);
        }
        if self.held_batch.is_some() && !extended && f.tag != fe::TERMINATE {
            // Whatever its type, a message behind a held batch goes after it: the batch is
            // released (its write counted where it stands) and this message waits its turn.
            return self.hold_or_release(f);
        }
        match f.tag {
            fe::QUERY => {
                let sql = messages::query_text(&f).map_err(|e| self.protocol_violation(e))?;
                let verdict = self.judge_query(sql, pre);
                let verdict = self.copy_unread_refusal(sql, verdict, false);
                return self.on_query_judged(f, verdict, pre);
            }
            _ if extended => return self.on_extended(f, pre),
            fe::FUNCTION_CALL => {
                let judged = self.shared.guard.judge_function_call(&self.info);
                let action = match self.recorded(judged) {
                    Verdict::Allow => Action::Forward,
                    Verdict::Notice(n) => Action::Notify(n),
                    // A FunctionCall is judged by its text alone: nothing else can come back.
                    Verdict::Refuse(m) => Action::Refuse(m),
                    _ => Action::Refuse(crate::guard::refusal_message(&crate::guard::refusal(
                        "opaque",
                        "FunctionCall".into(),
                        "its judgement needs a check that cannot run for it".into(),
                        "Call the function with SELECT instead.",
                        "blastwall",
                        "<FunctionCall message>".into(),
                    ))),
                };
                self.relay.apply_sync_point(action, &f.bytes);
            }
            fe::PASSWORD if !self.ready => {
                if self.strip_plus && opening::is_scram_with_binding_flag(f.body()) {
                    let msg = crate::said::channel_binding_refused();
                    self.relay.to_client.extend_from_slice(&msg.encode());
                    self.closing = true;
                    return Ok(());
                }
                self.relay.forward_raw(&f.bytes);
            }
            fe::COPY_DONE | fe::COPY_FAIL => {
                self.copy_ended_by_client();
                if self.copy_unsettled() {
                    // Its answer (CopyInResponse or not) is flushed to come sooner; a Flush
                    // during a COPY is ignored by the server.
                    self.relay.to_server.extend_from_slice(&crate::wire::encode(fe::FLUSH, &[]));
                    self.pending = Some(Pending::CopyEnd(f));
                    return Ok(());
                }
                self.copy_end(&f);
            }
            fe::TERMINATE => {
                // A protected sequence owed a put-back goes back before the server session
                // ends (`client_gone`, from the loop; nineteenth pass F6f: a clean close).
                // So does one a COPY in progress may have moved: the Terminate is not
                // relayed (the server would end the COPY's transaction with the sequence
                // moved), the COPY is ended by blastwall's CopyFail instead (`copy_left`;
                // twenty-eighth pass N1: libpq's `PQfinish` during a COPY).
                if !self.owes_on_leaving() {
                    self.cancel_if_busy();
                    self.relay.forward_raw(&f.bytes);
                }
                self.closing = true;
            }
            // One the server does not know ends the session there (FATAL 08P01, its transaction
            // rolled back): while a put-back is owed, blastwall ends it itself, the put-back
            // first (thirty-second pass H2: +50,000 left after an unknown type behind the
            // client's rolled-back block).
            _ if self.ready && !super::copyback::known_type(f.tag) && self.owes_on_leaving() => {
                let why = crate::wire::FrameError::Malformed { what: "client", why: "a message of no known type" };
                return Err(self.protocol_violation(why));
            }
            _ => self.relay.forward_unknown(&f.bytes),
        }
        Ok(())
    }

    /// A Query, once judged: forwarded, refused, counted, split or waiting for answers.
    pub(super) fn on_query_judged(
        &mut self,
        f: Frame,
        verdict: Verdict,
        pre: Option<&Preanalyzed>,
    ) -> Result<(), SessionError> {
        let sql = messages::query_text(&f).map_err(|e| self.protocol_violation(e))?;
        match verdict {
            Verdict::Analyze => self.pending = Some(Pending::Analyze(f)),
            // A Query in the middle of an extended batch cannot wait for the server to
            // be idle (that needs the batch's Sync, which comes after it).
            Verdict::Check(plan) if self.relay.batch_has_messages() => {
                self.relay.to_server.extend_from_slice(&wire::encode(fe::FLUSH, &[]));
                self.pending = Some(Pending::QueryInBatch(plan));
            }
            // Several writes in one Query: limits per statement (`counting::per_statement`).
            Verdict::Check(plan) => match self.per_statement(sql, &plan) {
                Some(pieces) => self.pending = Some(Pending::Simple(f, pieces)),
                None => {
                    self.info.taint.to_check();
                    self.pending = Some(Pending::Verify(BytesMut::from(&f.bytes[..]), plan, Vec::new()))
                }
            },
            // Once the server answered the batch so far, blastwall may end it itself
            // and ask (`Pending::ResolveInBatch`).
            Verdict::Resolve(questions) if self.relay.batch_has_messages() => {
                if !self.relay.batch_ends_unseen() {
                    self.assume_answers(&questions);
                    return self.on_client_message(f, pre);
                }
                self.relay.to_server.extend_from_slice(&wire::encode(fe::FLUSH, &[]));
                self.pending = Some(Pending::ResolveInBatch(f, questions));
            }
            Verdict::Resolve(names) => self.pending = Some(Pending::Resolve(f, names)),
            // A COPY that may move a protected sequence: read first (`copyback`).
            Verdict::Allow if self.copy_needs_reading(sql) => self.wait_for_copy_reading(f, Action::Forward),
            Verdict::Notice(n) if self.copy_needs_reading(sql) => self.wait_for_copy_reading(f, Action::Notify(n)),
            Verdict::Allow => self.forward_query(sql, Action::Forward, &f.bytes),
            Verdict::Notice(n) => self.forward_query(sql, Action::Notify(n), &f.bytes),
            Verdict::Refuse(m) => self.relay.apply_sync_point(Action::Refuse(m), &f.bytes),
            Verdict::Split(m) => match self.simple_pieces(sql) {
                Ok(pieces) => self.pending = Some(Pending::Simple(f, pieces)),
                Err(why) => {
                    let mut m = *m;
                    m.message.push_str(&format!(" (it cannot run statement by statement: {why})"));
                    self.record_split_refusal(sql, &m);
                    self.relay.apply_sync_point(Action::Refuse(m), &f.bytes);
                }
            },
        }
        Ok(())
    }
}
