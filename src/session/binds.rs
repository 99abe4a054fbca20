//! A protocol Bind on the session's path (issue 11, red-team F4, F7, F8).
//!
//! - A statement's verdict does not outlive the catalog's answers it was made with: when the
//!   catalog's generation moved since (DDL through blastwall, a function call the guard cannot
//!   see into, or a changed answer), the statement is judged again at its Bind — from the
//!   client's Parse (kept for the unnamed statement and for counted ones), or, for a name
//!   prepared by SQL or without a count, by the adoption of `EXECUTE name` (`extended`).
//!   Without DDL since, nothing is judged again.
//! - A Bind that may run user code (`Guard::binds_code`: a parameter's type whose input calls a
//!   function, a statement whose planning may fold one) is counted like the Execute it can
//!   be: held with its batch when it comes first (`extended`), else parked until its Execute
//!   and counted together with it where it stands. Followed by anything else than a Describe
//!   of its portal or its Execute, it is refused (it cannot be counted alone there).
//!
//! Owns: those rules. Does not own: which Binds run code (`guard::prepared`), the mirror
//! (`statements`), the counting (`counting`, `precheck`).

use super::checks::Pending;
use super::statements::{Facts, Op};
use super::{Session, SessionError};
use crate::guard::Verdict;
use crate::precheck::CheckPlan;
use crate::wire::messages::{self, fe, ProxyMessage, TxStatus};
use crate::wire::Frame;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;

/// How many rounds of catalog questions one Bind may wait for.
const ASK_ROUNDS: u8 = 4;

/// A Bind that runs code, not first in its batch, waiting for its Execute (with the Describe
/// of its portal in between, if the client sent one).
#[derive(Debug)]
pub(super) struct Parked {
    bytes: BytesMut,
    portal: Vec<u8>,
    statement: Vec<u8>,
    plan: Arc<CheckPlan>,
}

/// What judging a statement again came to.
enum Again {
    /// Its verdict is current (judged again, or it needed not be).
    Current,
    Refused(ProxyMessage),
    /// The catalog is asked first; the Bind is judged once it answered.
    Asking,
}

impl Session {
    /// A Bind (see the module's comment).
    pub(super) fn on_bind(&mut self, f: Frame) -> Result<(), SessionError> {
        let (portal, stmt) = messages::bind_names(&f).map_err(|e| self.protocol_violation(e))?;
        let (portal, stmt) = (portal.to_vec(), stmt.to_vec());
        // Its writes run now: registered, and judged against other sessions' open DDL.
        if let Some(m) = self.inflight_bind(&stmt) {
            self.refuse_in_batch(m);
            return Ok(());
        }
        // How often this Bind already waited for the catalog's answers (a few rounds: each
        // answer may lead to another question).
        let asked = std::mem::take(&mut self.mirror.asked);
        match self.judge_again_if_stale(&stmt, &f, asked) {
            Again::Current => {}
            Again::Asking => return Ok(()),
            Again::Refused(m) => {
                self.refuse_in_batch(m);
                return Ok(());
            }
        }
        self.info.cursors.forget(&String::from_utf8_lossy(&portal));
        if self.mirror.statement_plan(&stmt).is_none() && !stmt.is_empty() {
            let mut adopted = self.adopt_sql_prepared(&stmt);
            if let Ok(Some(q)) = adopted {
                if asked < ASK_ROUNDS && self.can_hold() {
                    self.mirror.asked = asked + 1;
                    self.pending = Some(Pending::Resolve(f, q));
                    return Ok(());
                }
                // No catalog question can be asked in the middle of a batch: assume the
                // worst (a write to count), and judge again.
                self.assume_answers(&q);
                adopted = self.adopt_sql_prepared(&stmt);
            }
            match adopted {
                Ok(None) => {}
                Ok(Some(_)) => {
                    let text = format!("EXECUTE {}", String::from_utf8_lossy(&stmt));
                    let why = format!(
                        "the statement prepared as {} needs a catalog lookup that cannot run in a batch",
                        String::from_utf8_lossy(&stmt)
                    );
                    let d = crate::guard::refusal(
                        "unverifiable",
                        "EXECUTE".into(),
                        why,
                        "Run it with EXECUTE in a message of its own first.",
                        "blastwall",
                        text,
                    );
                    self.refuse_in_batch(crate::guard::refusal_message(&d));
                    return Ok(());
                }
                Err(refusal) => {
                    self.refuse_in_batch(refusal);
                    return Ok(());
                }
            }
        }
        let code = self.mirror.facts(&stmt).is_some_and(|f| f.code);
        if let Some(plan) = self.mirror.statement_plan(&stmt) {
            self.may_make_objects(&plan, self.callers_now());
        }
        let op = Op::Bind { portal: portal.clone(), statement: stmt.clone() };
        match self.mirror.statement_plan(&stmt).map(|p| self.in_session_mode(p)) {
            // Counted only for its known sequence steps: judged at its Execute.
            Some(plan) if plan.steps_only() && !code => self.forward_op(&f, op),
            Some(plan) if self.can_hold() => self.start_held(f, op, plan, code),
            Some(plan) if code => {
                let bytes = BytesMut::from(&f.bytes[..]);
                self.mirror.parked = Some(Parked { bytes, portal, statement: stmt, plan });
            }
            _ => self.forward_op(&f, op),
        }
        Ok(())
    }

    /// A message while a Bind that runs code is parked: a Describe of its portal joins it, its
    /// Execute is counted with it; anything else refuses it (and then goes its way: the
    /// batch is failed up to Sync). Returns whether the message was taken.
    pub(super) fn after_parked(&mut self, f: &Frame) -> bool {
        let Some(parked) = &mut self.mirror.parked else { return false };
        let named = |f: &Frame, kind: Option<u8>| {
            let body = f.body();
            let body = match kind {
                Some(k) if body.first() == Some(&k) => &body[1..],
                Some(_) => return false,
                None => body,
            };
            // The portal's name, the first string of the body, as the server keys it.
            let name = |end: usize| crate::wire::messages::object_name(&body[..end]);
            body.iter().position(|b| *b == 0).is_some_and(|end| name(end) == &parked.portal[..])
        };
        match f.tag {
            fe::DESCRIBE if named(f, Some(b'P')) => {
                parked.bytes.extend_from_slice(&f.bytes);
                true
            }
            fe::EXECUTE if named(f, None) => {
                let Some(p) = self.mirror.parked.take() else { return false };
                let mut bytes = p.bytes;
                bytes.extend_from_slice(&f.bytes);
                // The Bind, Describe and Execute go as one unit inside the count: its replies
                // (BindComplete first) are held with the Execute's. Its body starts with the
                // portal's name, as an Execute's does.
                self.mirror.bound_in_count(&p.portal, &p.statement);
                self.count_where_it_stands(Frame { tag: fe::EXECUTE, bytes: bytes.freeze() }, p.plan);
                true
            }
            _ => {
                let Some(p) = self.mirror.parked.take() else { return false };
                let policy = self.shared.guard.policy();
                let why = "its Bind runs user code (a parameter's type or the statement's planning calls a user function) and is not followed by its Execute, so it cannot be counted where it stands".to_string();
                // The server's own error if the statement does not exist (`refuse_bind_in_batch`).
                self.refuse_bind_in_batch(super::checks::uncounted(&p.plan, why, &policy), &p.statement);
                false
            }
        }
    }

    /// Judges a statement again when its verdict is older than the catalog's answers.
    fn judge_again_if_stale(&mut self, stmt: &[u8], bind: &Frame, asked: u8) -> Again {
        let Some(facts) = self.mirror.facts(stmt) else { return Again::Current };
        let now = self.shared.guard.catalog.generation();
        // In a failed transaction the server refuses the Bind before it converts anything.
        if facts.stamp == now || self.relay.tx == TxStatus::Failed {
            return Again::Current;
        }
        let Some(parse) = facts.parse.clone() else {
            // Adopted from SQL `PREPARE`: the adoption judges it again.
            self.mirror.forget_statement(stmt);
            return Again::Current;
        };
        let Ok(msg) = messages::parse_msg(&parse) else { return Again::Current };
        self.info.names.persisting = true;
        let mut verdict = self.judge_sql(msg.sql, None);
        // Asked before the first message of a batch (a few rounds); else the worst is
        // assumed (as for any statement in the middle of a batch) and it is judged again, by
        // its own rules; only what still cannot be judged is counted like a call (which
        // applies the row limits, not the text's rules).
        if let Verdict::Resolve(q) = &verdict {
            if asked < ASK_ROUNDS && self.can_hold() {
                self.info.names.persisting = false;
                self.mirror.asked = asked + 1;
                self.pending = Some(Pending::Resolve(bind.clone(), q.clone()));
                return Again::Asking;
            }
        }
        // A few rounds: each assumed answer may lead to another question.
        for _ in 0..ASK_ROUNDS {
            let Verdict::Resolve(q) = &verdict else { break };
            let q = q.clone();
            self.assume_answers(&q);
            verdict = self.judge_sql(msg.sql, None);
        }
        self.info.names.persisting = false;
        let verdict = match verdict {
            Verdict::Resolve(_) | Verdict::Analyze => {
                let judged = self.shared.guard.judge_as_call(msg.sql, &mut self.info);
                self.recorded(judged)
            }
            v => v,
        };
        let (verdict, code) = self.with_bind_code(verdict, msg.sql, &msg.param_types);
        let plan = match verdict {
            Verdict::Check(mut p) => {
                p.param_types = msg.param_types.clone();
                Some(Arc::new(*p))
            }
            Verdict::Refuse(m) => return Again::Refused(m),
            Verdict::Split(m) => return Again::Refused(*m),
            _ => None,
        };
        let facts = Arc::new(Facts { stamp: now, code, parse: Some(parse.clone()) });
        self.mirror.judged_again(stmt, plan, facts);
        Again::Current
    }

    /// A statement's verdict with what its Bind may run: one that may run user code is judged
    /// like a call of a function (`Guard::judge_as_call`) when it was not counted anyway.
    /// Returns the verdict and whether its Bind runs code.
    pub(super) fn with_bind_code(&mut self, verdict: Verdict, sql: &[u8], types: &[u32]) -> (Verdict, bool) {
        let counted = matches!(verdict, Verdict::Check(_));
        if !counted && !matches!(verdict, Verdict::Allow | Verdict::Notice(_)) {
            return (verdict, false);
        }
        if !self.shared.guard.binds_code(sql, types, &self.info, counted) {
            return (verdict, false);
        }
        if counted {
            return (verdict, true);
        }
        let judged = self.shared.guard.judge_as_conversion(sql, &mut self.info);
        match self.recorded(judged) {
            v @ (Verdict::Check(_) | Verdict::Refuse(_)) => {
                if let Verdict::Notice(n) = &verdict {
                    self.relay.notify_client(n);
                }
                (v, true)
            }
            // The policy judges no calls.
            _ => (verdict, false),
        }
    }

    /// What a Parse of `name` is judged with, for the mirror: the unnamed statement and counted
    /// ones keep the client's Parse, to be judged again from it; a named statement without a
    /// count is judged again by its name (`adopt_sql_prepared`), and keeps nothing.
    pub(super) fn parse_facts(&self, name: &[u8], f: &Frame, counted: bool, code: bool) -> Option<Arc<Facts>> {
        if !name.is_empty() && !counted {
            return None;
        }
        let stamp = self.shared.guard.catalog.generation();
        // The same facts as the statement's last Parse (a driver parses the unnamed statement
        // again for every execution): shared, not made again.
        let same = |p: &Facts| p.stamp == stamp && p.code == code && p.parse.as_ref().is_some_and(|p| *p == *f);
        if let Some(last) = self.mirror.facts(name).filter(|p| same(p)) {
            return Some(last);
        }
        // A copy: the frame's bytes would keep the whole read buffer they came in alive.
        let parse = Frame { tag: f.tag, bytes: Bytes::copy_from_slice(&f.bytes) };
        Some(Arc::new(Facts { stamp, code, parse: Some(parse) }))
    }
}

impl Session {
    /// Refuses a Bind of `stmt` in a batch (`Relay::refuse_bind_in_batch`): a statement that
    /// does not exist gets the server's own error.
    fn refuse_bind_in_batch(&mut self, m: ProxyMessage, stmt: &[u8]) {
        if !self.relay.is_discarding() {
            self.mirror.sent(self.relay.syncs_sent(), Op::Marker);
        }
        self.relay.refuse_bind_in_batch(m, stmt);
    }

    /// A Bind of a held batch that goes its ordinary way: parked when it runs code (its
    /// statement's Parse, if held with it, went just before).
    pub(super) fn bind_released(&mut self, f: Frame, portal: Vec<u8>, statement: Vec<u8>) {
        let code = self.mirror.facts(&statement).is_some_and(|f| f.code);
        match self.mirror.statement_plan(&statement).map(|p| self.in_session_mode(p)) {
            Some(plan) if code => {
                let bytes = BytesMut::from(&f.bytes[..]);
                self.mirror.parked = Some(Parked { bytes, portal, statement, plan });
            }
            _ => self.forward_op(&f, Op::Bind { portal, statement }),
        }
    }
}
