//! The guard's judgement of a text on the session's path: the session's picture of the
//! server (its `standard_conforming_strings`, its `client_encoding` — unknown for non-ASCII
//! text while a statement that may change it is unanswered —, whether a transaction block is
//! open) given to the guard, refusals and warnings recorded when judged, and what the verdict
//! leaves to the mirror (cursors, DEALLOCATEs).
//!
//! A lone Query (the whole of what the client sent, with nothing of the session's held or in
//! a COPY) is judged where it was read, without splitting it off as a frame, and a harmless
//! one forwarded from there: the common round trip of an application's reads.
//!
//! Owns: [`Session::judge_sql`], [`Session::recorded`] and the lone Query. Does not own: the
//! rules (`guard`), the other verdicts' ways (`dispatch`).

use super::{Session, SessionError};
use crate::guard::{Judged, Preanalyzed, Verdict};
use crate::relay::Action;
use crate::wire::messages::{self, fe, TxStatus};
use crate::wire::Frame;

impl Session {
    /// Nothing of the session holds client messages back or reads them another way: no
    /// message waits (a check, a held batch, a parked Bind, a Query run as a batch), no batch
    /// is discarded, the server is in no COPY.
    pub(super) fn nothing_held(&self) -> bool {
        self.pending.is_none()
            && self.simple.is_none()
            && self.held_batch.is_none()
            && self.mirror.parked.is_none()
            && !self.relay.is_discarding()
            && !self.relay.server_in_copy()
    }

    /// The client's framer holds one whole Query and nothing else (`nothing_held`): it is
    /// handled as `on_client_message` would handle it as a frame, a harmless one forwarded
    /// from the framer's buffer. `None` (nothing taken) when its text is malformed: the frame's
    /// way reports that.
    pub(super) fn lone_query(&mut self) -> Option<Result<(), SessionError>> {
        let mut buf = std::mem::take(self.cfr.buf_mut());
        let Some(Ok(sql)) = buf.get(5..).map(messages::query_text_of) else {
            *self.cfr.buf_mut() = buf;
            return None;
        };
        self.shared.metrics.statements_total.inc();
        let verdict = self.judge_query(sql, None);
        let verdict = self.copy_unread_refusal(sql, verdict, false);
        match verdict {
            Verdict::Allow if !self.copy_needs_reading(sql) => {
                self.forward_query(sql, Action::Forward, &buf);
                buf.clear();
                *self.cfr.buf_mut() = buf;
                Some(Ok(()))
            }
            verdict => Some(self.on_query_judged(Frame { tag: fe::QUERY, bytes: buf.freeze() }, verdict, None)),
        }
    }

    /// Refusals and warnings are recorded when judged; checks when their outcome is known.
    pub(super) fn recorded(&self, judged: Judged) -> Verdict {
        if let Some(facts) = &judged.facts {
            if matches!(facts.decision, "refused" | "warned") {
                self.record(facts, &[], None);
            }
        }
        judged.verdict
    }

    /// [`Session::judge_sql`] of a whole Query's text (`inflight::Mine::whole_query`).
    pub(super) fn judge_query(&mut self, sql: &[u8], pre: Option<&Preanalyzed>) -> Verdict {
        self.info.inflight.whole_query = true;
        let verdict = self.judge_sql(sql, pre);
        self.info.inflight.whole_query = false;
        verdict
    }

    pub(super) fn judge_sql(&mut self, sql: &[u8], pre: Option<&Preanalyzed>) -> Verdict {
        self.info.standard_conforming_strings = self.relay.standard_conforming_strings();
        self.info.settings_certain = !self.relay.is_busy();
        // Per statement on the hot path: copy the encoding only when it changed. While a
        // statement that may change it is unanswered, a non-ASCII text cannot be read (the
        // server decodes each message in the encoding of the moment it reads it; the
        // statements of a Query run as a batch were checked for this when it was split).
        self.info.encoding_in_flight &= !self.info.settings_certain;
        let encoding = match self.info.encoding_in_flight && self.simple_replies.is_none() {
            true => crate::said::ENCODING_IN_FLIGHT,
            false => self.relay.client_encoding(),
        };
        if self.info.client_encoding != encoding {
            self.info.client_encoding = encoding.to_string();
        }
        self.info.in_transaction = self.relay.tx != TxStatus::Idle;
        self.info.moves_remembered = !self.block.is_empty();
        self.info.moves_beyond_slack = self.info.moves_remembered && self.block.would_put_back();
        self.info.inflight.ord = self.relay.syncs_sent();
        // What an earlier judgement published is not this one's to take back if refused.
        self.info.inflight.judging_anew();
        // What the judgement marks stale may be given back by a quiet check (`catalog::Undo`).
        self.info.taint.begin_message();
        let judged = self.shared.guard.judge(sql, &mut self.info, pre);
        self.info.taint.end_message();
        // What it publishes to other sessions (`inflight`): nothing when refused.
        let refused = matches!(judged.verdict, crate::guard::Verdict::Refuse(_));
        if refused && !self.info.inflight.last.is_empty() || !refused && judged.scan.path {
            self.inflight_judged(sql, refused);
        }
        // A counted statement's replies (and the encoding it reports) are read by blastwall
        // before anything after it is judged; any other one that may call a function may
        // change the encoding unseen.
        let counted = matches!(judged.verdict, Verdict::Check(_));
        self.info.encoding_in_flight |= judged.scan.encoding || (judged.scan.paren && !counted);
        // Only a text with a cursor word can FETCH a portal (the guard's one pass said).
        let cursor_words = judged.scan.cursors;
        self.copy_word = judged.scan.copy;
        let verdict = self.recorded(judged);
        let verdict = if cursor_words { self.fetching_counted_portal(sql, verdict) } else { verdict };
        let verdict = self.undone_refusal(sql, verdict);
        // Only a message forwarded as it is gets the server's plain answer (a counted one is
        // answered inside the pre-check): its DEALLOCATEs wait for that answer.
        self.after_judging(matches!(verdict, Verdict::Allow | Verdict::Notice(_)));
        verdict
    }
}
