//! The guard's judgement of a text on the session's path: the session's picture of the
//! server (its `standard_conforming_strings`, its `client_encoding` — unknown for non-ASCII
//! text while a statement that may change it is unanswered —, whether a transaction block is
//! open) given to the guard, refusals and warnings recorded when judged, and what the verdict
//! leaves to the mirror (cursors, DEALLOCATEs).
//!
//! Owns: [`Session::judge_sql`] and [`Session::recorded`]. Does not own: the rules (`guard`).

use super::Session;
use crate::guard::{Judged, Preanalyzed, Verdict};
use crate::wire::messages::TxStatus;

impl Session {
    /// Refusals and warnings are recorded when judged; checks when their outcome is known.
    pub(super) fn recorded(&self, judged: Judged) -> Verdict {
        if let Some(facts) = &judged.facts {
            if matches!(facts.decision, "refused" | "warned") {
                self.record(facts, &[], None);
            }
        }
        judged.verdict
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
        self.info.inflight.ord = self.relay.syncs_sent();
        // What an earlier judgement published is not this one's to take back if refused.
        self.info.inflight.judging_anew();
        let judged = self.shared.guard.judge(sql, &mut self.info, pre);
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
        let verdict = self.recorded(judged);
        let verdict = if cursor_words { self.fetching_counted_portal(sql, verdict) } else { verdict };
        // Only a message forwarded as it is gets the server's plain answer (a counted one is
        // answered inside the pre-check): its DEALLOCATEs wait for that answer.
        self.after_judging(matches!(verdict, Verdict::Allow | Verdict::Notice(_)));
        verdict
    }
}
