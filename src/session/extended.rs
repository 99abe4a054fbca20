//! The extended protocol on the session's path: Parse is judged, Parse/Bind/Describe/Close/
//! Flush go to the server at once (they execute nothing; those that may run code are
//! `binds`' and `parses`'), the mirror of statements and
//! portals follows the server's confirmations, and only an Execute of a portal whose
//! statement must be counted is special:
//!
//! - a batch that is one counted write (`[Parse] [Bind] [Describe…] Execute Sync`, nothing
//!   before it in the batch) is held to its Sync and run whole inside the pre-check
//!   (`precheck::verify`: EXPLAIN estimate, dry-run, override, its own transaction or
//!   savepoint), as a simple Query is;
//! - anywhere else (after other messages of its batch, before a Flush, a second Execute, …)
//!   the Execute is counted where it stands: once the server has answered everything before
//!   it, blastwall's counter readings go around it (`precheck::inbatch`), its replies are held
//!   until the second reading is in, and then released, or the batch is failed with a marker
//!   (its implicit transaction, or the client's block, cannot keep the write) and the client's
//!   messages up to Sync are dropped. Nothing the client sends after the Execute reaches the
//!   server before the verdict.
//!
//! Owns: which of the two, and holding. Does not own: the counting I/O (`precheck`), the
//! limits (`policy`), the mirror's rules (`statements`).

use super::checks::Pending;
use super::statements::Op;
use super::{Session, SessionError};
use crate::guard::{Preanalyzed, Verdict};
use crate::precheck::CheckPlan;
use crate::wire::messages::{self, fe, TxStatus};
use crate::wire::Frame;
use bytes::BytesMut;
use std::sync::Arc;

/// The most client bytes held for a one-write batch; past it the batch is no longer held
/// (its write is then counted where it stands).
pub(super) const MAX_HELD_BATCH: usize = 1024 * 1024;

/// A one-write extended batch held until its Sync.
pub(super) struct HeldBatch {
    pub(super) bytes: BytesMut,
    pub(super) plan: Arc<CheckPlan>,
    /// What each held message does to the mirror, in order.
    pub(super) ops: Vec<Op>,
    /// The held frames (the Execute, if any, is the last).
    frames: Vec<(Frame, Op)>,
    pub(super) executes: bool,
    /// Its first message's statement has a Bind that runs code (`binds`): a batch that binds
    /// it is counted even without an Execute.
    code: bool,
    /// Its first message is a Parse whose analysis may run code (`parses`): counted even alone.
    pub(super) parses: bool,
}

impl Session {
    /// An extended-protocol message (Parse, Bind, Describe, Execute, Close, Flush, Sync).
    pub(super) fn on_extended(&mut self, f: Frame, pre: Option<&Preanalyzed>) -> Result<(), SessionError> {
        if self.mirror.parked.is_some() && self.after_parked(&f) {
            return Ok(());
        }
        if self.relay.is_discarding() && f.tag != fe::SYNC {
            return Ok(());
        }
        if self.held_batch.is_some() {
            return self.hold_or_release(f);
        }
        // A non-ASCII name the server converts before keying it is not read as it will be
        // (twenty-fourth pass Q1: two LATIN1 names one portal once converted to UTF-8).
        // Nor one sent while a change of client_encoding is unanswered (twenty-fifth pass R1).
        // (The names first: nearly always ASCII, so the encodings are seldom compared.)
        let non_ascii = messages::names_sent(&f).iter().any(|n| !n.is_ascii());
        if non_ascii && (self.info.encoding_in_flight || !self.relay.names_unconverted()) {
            let m = crate::said::name_unreadable(self.relay.client_encoding(), self.relay.server_encoding());
            self.refuse_in_batch(m);
            return Ok(());
        }
        if f.tag != fe::SYNC && self.can_hold() && self.identities_before_batch(&f) {
            return Ok(());
        }
        if f.tag == fe::BIND {
            // What its portal may do to names when it runs (`names`); a write bound after a
            // statement sent earlier that may redirect its name is judged against it.
            self.bound_redirects(&f);
            self.bound_age(&f);
            if let Some(m) = self.bind_after_earlier(&f) {
                self.refuse_in_batch(m);
                return Ok(());
            }
        }
        match f.tag {
            fe::PARSE => self.on_parse(f, pre)?,
            fe::BIND => self.on_bind(f)?,
            fe::EXECUTE => {
                let portal = execute_portal(&f).map_err(|e| self.protocol_violation(e))?;
                if !self.mirror.execute_is_certain(&portal, self.relay.syncs_sent()) {
                    // Judged once the earlier batches are answered (flushed to come sooner).
                    self.relay.to_server.extend_from_slice(&crate::wire::encode(fe::FLUSH, &[]));
                    self.pending = Some(Pending::Execute(f));
                    return Ok(());
                }
                // A name SQL may have made a cursor of since its Bind reads that cursor.
                if self.mirror.replaced.may_be(&portal) {
                    self.execute_cursor(f, &portal);
                    return Ok(());
                }
                let plan = self.mirror.portal_plan(&portal).map(|p| self.in_session_mode(p));
                // Ids taken ahead, refused here as at a judgement (`guard::steps`): prepared
                // before the block's own writes moved the sequence beyond the slack, or while
                // the sequence's creep budget has no room for them.
                let ahead = match &plan {
                    Some(p) if !p.takes_ahead.is_empty() && self.block.would_put_back() => {
                        Some(self.shared.guard.takes_ahead_refusal(p.statement.clone()))
                    }
                    Some(p) if !p.takes_ahead.is_empty() => {
                        self.shared.guard.no_room(&self.info, &p.takes_ahead, &p.known_steps, &p.statement)
                    }
                    _ => None,
                };
                if let Some(d) = ahead {
                    self.refuse_in_batch(crate::guard::refusal_message(&d));
                    return Ok(());
                }
                match plan {
                    // Uncounted, so judged again like any uncounted Execute when the catalog
                    // or the session's schema changed since its Bind.
                    Some(plan) if self.known_steps_fit(&plan) => {
                        if let Some(f) = self.execute_if_current(f, &portal) {
                            self.forward_op(&f, Op::Execute);
                        }
                    }
                    Some(plan) if self.can_hold() => self.start_held(f, Op::Execute, plan, false),
                    Some(plan) => self.count_where_it_stands(f, plan),
                    // A cursor declared by SQL or opened by a function: read like its FETCH.
                    None if !portal.is_empty() && !self.mirror.portal_bound(&portal) => self.execute_cursor(f, &portal),
                    None => {
                        if let Some(f) = self.execute_if_current(f, &portal) {
                            self.forward_op(&f, Op::Execute);
                        }
                    }
                }
            }
            fe::DESCRIBE => self.on_describe(f),
            fe::CLOSE => {
                let (kind, name) = messages::target_of(&f);
                let (portal, name) = (kind == Some(b'P'), name.to_vec());
                if !portal && !self.relay.is_discarding() {
                    self.closed_name(&name);
                }
                if portal {
                    self.info.cursors.forget(&String::from_utf8_lossy(&name));
                }
                self.forward_op(&f, Op::Close { portal, name });
            }
            fe::SYNC => {
                if !self.sync_waits_for_copy(&f) {
                    self.relay.forward_sync(&f.bytes);
                }
            }
            // Flush, and anything else that belongs to a batch.
            _ => self.relay.forward_in_batch(&f.bytes),
        }
        Ok(())
    }

    fn on_parse(&mut self, f: Frame, pre: Option<&Preanalyzed>) -> Result<(), SessionError> {
        let msg = messages::parse_msg(&f).map_err(|e| self.protocol_violation(e))?;
        self.earlier_now();
        let name = msg.name.to_vec();
        let param_types = msg.param_types.clone();
        self.info.names.persisting = true;
        let Some(before) = self.callers_before_parse(&f, msg.sql) else { return Ok(()) };
        let verdict = self.judge_sql(msg.sql, pre);
        let verdict = self.copy_unread_refusal(msg.sql, verdict, true);
        self.info.names.persisting = false;
        let (verdict, code) = self.with_bind_code(verdict, msg.sql, &param_types);
        if matches!(verdict, Verdict::Allow | Verdict::Notice(_)) && self.unsure_parse(&f, msg.sql, &name, before) {
            return Ok(());
        }
        if !matches!(verdict, Verdict::Analyze | Verdict::Resolve(_)) {
            self.parsed_may_make_objects(msg.sql, before);
        }
        match verdict {
            Verdict::Analyze => self.pending = Some(Pending::Analyze(f)),
            // In the middle of a batch that ran nothing, blastwall ends the batch itself once
            // the server answered it so far, and asks (`Pending::ResolveInBatch`: what came
            // before runs nothing, and a prepared statement outlives its transaction).
            // One that ran something is asked inside it, where an answer can change the
            // judgement (`questions::worth_asking_within`).
            Verdict::Resolve(questions)
                if self.relay.batch_has_messages()
                    && (self.relay.batch_ends_unseen() || self.worth_asking_within(msg.sql)) =>
            {
                self.relay.to_server.extend_from_slice(&crate::wire::encode(fe::FLUSH, &[]));
                self.pending = Some(Pending::ResolveInBatch(f, questions));
            }
            Verdict::Resolve(questions) => {
                if self.relay.batch_has_messages() {
                    // No catalog question can be asked in the middle of a batch: assume the
                    // worst (a write to count; the policy's column names).
                    self.assume_answers(&questions);
                    return self.on_parse(f, pre);
                }
                self.pending = Some(Pending::Resolve(f, questions));
            }
            Verdict::Check(mut plan) => {
                self.parsed_redirects(&name, msg.sql);
                self.parsed_name(&name, msg.sql);
                plan.param_types = param_types;
                let plan: Arc<CheckPlan> = Arc::new(*plan);
                let facts = self.parse_facts(&name, &f, true, code);
                let op = Op::Parse { name, plan: Some(plan.clone()), facts };
                // Its analysis may run code: counted even alone, refused where it cannot be (`parses`).
                let parses = before.parses;
                self.may_make_objects(&plan, before);
                // Counted only for its known sequence steps: judged at each Execute.
                if plan.steps_only() && !parses && !code {
                    self.forward_op(&f, op);
                } else if self.can_hold() {
                    self.start_held(f, op, plan, code);
                    if let Some(h) = &mut self.held_batch {
                        h.parses = parses;
                    }
                } else if parses {
                    self.parse_not_alone(&f, op, &plan);
                } else {
                    self.forward_op(&f, op);
                }
            }
            Verdict::Allow => {
                self.parsed_redirects(&name, msg.sql);
                self.parsed_name(&name, msg.sql);
                let facts = self.parse_facts(&name, &f, false, false);
                self.forward_op(&f, Op::Parse { name, plan: None, facts });
            }
            Verdict::Notice(n) => {
                self.parsed_redirects(&name, msg.sql);
                self.parsed_name(&name, msg.sql);
                self.relay.notify_client(&n);
                let facts = self.parse_facts(&name, &f, false, false);
                self.forward_op(&f, Op::Parse { name, plan: None, facts });
            }
            Verdict::Refuse(m) => self.refuse_in_batch(m),
            // One statement: nothing to split.
            Verdict::Split(m) => self.refuse_in_batch(*m),
        }
        Ok(())
    }

    /// A Bind of a statement prepared by SQL `PREPARE` (or by a protocol Parse without a
    /// count): judged as `EXECUTE` of it would be; one that must be counted enters the mirror.
    /// `Ok(Some(questions))`: the catalog must be asked first; `Err`: the refusal.
    pub(super) fn adopt_sql_prepared(
        &mut self,
        stmt: &[u8],
    ) -> Result<Option<Vec<crate::catalog::Question>>, messages::ProxyMessage> {
        let name = String::from_utf8_lossy(stmt).into_owned();
        // A name never prepared through blastwall (a function body's, or none at all) is
        // counted like a function call: the server runs what it has, or answers its own error.
        if !self.info.prepared.contains_key(&name) {
            self.mark_unknown(name.clone());
        }
        let entries = self.info.prepared.get(&name).map_or(0, Vec::len);
        let (mode, policy) = (self.info.session_mode, self.shared.guard.policy());
        // A judgement made before DDL passed (or a catalog answer changed) is made again.
        let stamp = self.shared.guard.catalog.generation();
        if self.names.known_harmless(stmt, entries, mode, &policy.hash, stamp) {
            return Ok(None);
        }
        let text = format!("EXECUTE \"{}\"", name.replace('"', "\"\""));
        let verdict = self.judge_sql(text.as_bytes(), None);
        // Its Bind may run code (`binds`): then counted like a call, whatever the statement.
        let code = matches!(verdict, Verdict::Check(_) | Verdict::Allow | Verdict::Notice(_))
            && self.prepared_binds_code(&name);
        let verdict = match verdict {
            Verdict::Allow | Verdict::Notice(_) if code => {
                let judged = self.shared.guard.judge_as_call(text.as_bytes(), &mut self.info);
                self.recorded(judged)
            }
            v => v,
        };
        match verdict {
            Verdict::Check(plan) => {
                let facts = super::statements::Facts { stamp, code, parse: None };
                self.mirror.adopt(stmt, Arc::new(*plan), Arc::new(facts));
                Ok(None)
            }
            Verdict::Refuse(m) => Err(m),
            Verdict::Split(m) => Err(*m),
            Verdict::Allow => {
                self.names.judged_harmless(stmt, entries, mode, &policy.hash, stamp);
                Ok(None)
            }
            Verdict::Notice(_) => Ok(None),
            Verdict::Resolve(q) => Ok(Some(q)),
            Verdict::Analyze => Err(crate::guard::refusal_message(&crate::guard::refusal(
                "unverifiable",
                "EXECUTE".into(),
                format!("the statement prepared as {name} is too long to analyze in a batch"),
                "Run it with EXECUTE in a message of its own first.",
                "blastwall",
                text,
            ))),
        }
    }

    /// A counted statement's plan as the session's mode has it now: one parsed before the
    /// session switched to dry-run is run as a dry run (rolled back), as a Query would be.
    pub(super) fn in_session_mode(&self, plan: Arc<CheckPlan>) -> Arc<CheckPlan> {
        if self.info.session_mode != Some(crate::policy::Mode::DryRun) || plan.dry_run {
            return plan;
        }
        let mut p = (*plan).clone();
        p.dry_run = true;
        Arc::new(p)
    }

    /// Refuses inside a batch: the marker fails on the server, which skips to Sync.
    pub(super) fn refuse_in_batch(&mut self, m: messages::ProxyMessage) {
        if !self.relay.is_discarding() {
            self.mirror.sent(self.relay.syncs_sent(), Op::Marker);
        }
        self.relay.refuse_in_batch(m);
    }

    /// Forwards a message at once and records what the server owes for it.
    pub(super) fn forward_op(&mut self, f: &Frame, op: Op) {
        if self.relay.is_discarding() {
            return;
        }
        // A Bind converts its parameters (a domain's CHECK may run): like an Execute, it
        // keeps blastwall from ending the batch itself (`Relay::batch_ends_unseen`).
        match op {
            Op::Execute => {
                self.executing_redirects(f);
                self.relay.note_execute();
            }
            Op::Bind { .. } => self.relay.note_bind(),
            _ => {}
        }
        self.relay.forward_in_batch(&f.bytes);
        // (After it: an Execute that may start a COPY is no message behind its start.)
        self.copy_names_follow(f, &op);
        self.mirror.sent(self.relay.syncs_sent(), op);
    }

    /// Whether a counted write may start a held one-write batch: it is the first message of
    /// its batch, and the session's state is known.
    pub(super) fn can_hold(&self) -> bool {
        !self.relay.batch_has_messages() && self.relay.tx != TxStatus::Failed
    }

    pub(super) fn start_held(&mut self, f: Frame, op: Op, plan: Arc<CheckPlan>, code: bool) {
        let executes = matches!(op, Op::Execute);
        self.held_batch = Some(HeldBatch {
            bytes: BytesMut::from(&f.bytes[..]),
            plan,
            ops: vec![op.clone()],
            frames: vec![(f, op)],
            executes,
            code,
            parses: false,
        });
    }

    /// A message while a one-write batch is held: kept with it while the batch still has
    /// that shape, else the held messages go their ordinary way and so does this one.
    pub(super) fn hold_or_release(&mut self, f: Frame) -> Result<(), SessionError> {
        let Some(h) = &self.held_batch else { return Ok(()) };
        let joins = f.tag != fe::DESCRIBE || self.describe_may_join(&f, h);
        let Some(h) = &mut self.held_batch else { return Ok(()) };
        let has = |tag: u8| h.frames.iter().any(|(x, _)| x.tag == tag);
        // A held Describe of a statement (`parses`) takes nothing but its Sync.
        let fits = h.bytes.len() + f.bytes.len() <= MAX_HELD_BATCH && !matches!(h.ops.first(), Some(Op::Describe));
        let op = match f.tag {
            fe::BIND if fits && !has(fe::BIND) && !h.executes => {
                let (portal, stmt) = messages::bind_names(&f).map_err(|e| self.protocol_violation(e))?;
                let op = Op::Bind { portal: portal.to_vec(), statement: stmt.to_vec() };
                self.bound_redirects(&f);
                self.bound_age(&f);
                Some(op)
            }
            fe::DESCRIBE if fits && !h.executes && joins => Some(Op::Describe),
            fe::EXECUTE if fits && !h.executes => Some(Op::Execute),
            fe::SYNC => {
                let Some(h) = self.held_batch.take() else { return Ok(()) };
                self.held_sync(h, f);
                return Ok(());
            }
            _ => None,
        };
        let Some(h) = &mut self.held_batch else { return Ok(()) };
        match op {
            Some(op) => {
                h.executes |= matches!(op, Op::Execute);
                h.bytes.extend_from_slice(&f.bytes);
                h.ops.push(op.clone());
                h.frames.push((f, op));
                Ok(())
            }
            None => {
                self.release_held();
                self.on_client_frame_again(f)
            }
        }
    }

    /// The held batch goes its ordinary way: its messages at once, its Execute (the last)
    /// counted where it stands — with its Bind, when that runs code (`binds`).
    fn release_held(&mut self) {
        let Some(h) = self.held_batch.take() else { return };
        for (frame, op) in h.frames {
            if self.mirror.parked.is_some() && self.after_parked(&frame) {
                continue;
            }
            match op {
                _ if self.relay.is_discarding() => {}
                Op::Execute => self.count_where_it_stands(frame, h.plan.clone()),
                Op::Bind { portal, statement } => self.bind_released(frame, portal, statement),
                op @ (Op::Parse { .. } | Op::Describe) if h.parses => self.parse_not_alone(&frame, op, &h.plan),
                op => self.forward_op(&frame, op),
            }
        }
    }

    /// A message that came behind a released batch: handled once the counted Execute (if
    /// any) has its verdict, so that nothing reaches the server before it.
    fn on_client_frame_again(&mut self, f: Frame) -> Result<(), SessionError> {
        if self.pending.is_some() {
            // Back in front of what the client sent after it, to be read after the verdict.
            self.simple_put_back();
            let buf = self.cfr.buf_mut();
            let rest = buf.split();
            buf.extend_from_slice(&f.bytes);
            buf.extend_from_slice(&rest);
            return Ok(());
        }
        self.on_client_message(f, None)
    }

    /// The Sync of a held batch: one write, run whole inside the pre-check; a batch that only
    /// prepares runs nothing and needs no counting.
    fn held_sync(&mut self, h: HeldBatch, sync: Frame) {
        let binds = h.ops.iter().any(|op| matches!(op, Op::Bind { .. }));
        if h.executes || (h.code && binds) || h.parses {
            let mut bytes = h.bytes;
            bytes.extend_from_slice(&sync.bytes);
            let mut plan = (*h.plan).clone();
            plan.estimate_msgs = super::checks::extended_estimate(&plan, &bytes, self.shared.config.max_frame_bytes);
            self.pending = Some(Pending::Verify(bytes, Box::new(plan), h.ops));
        } else {
            for (frame, op) in h.frames {
                self.forward_op(&frame, op);
            }
            self.relay.forward_sync(&sync.bytes);
        }
    }

    /// A counted Execute that is not alone in its batch: the server is first asked to answer
    /// everything before it (a Flush of blastwall's), then the counting runs
    /// ([`Session::run_count`]); the client is not read meanwhile.
    pub(super) fn count_where_it_stands(&mut self, f: Frame, plan: Arc<CheckPlan>) {
        self.executing_redirects(&f);
        self.relay.to_server.extend_from_slice(&crate::wire::encode(fe::FLUSH, &[]));
        self.relay.mark_batch_open();
        self.pending = Some(Pending::Count(f, plan));
    }

    /// Whether an Execute counted only for its known sequence steps (`CheckPlan::steps_only`)
    /// runs uncounted: outside a block whose moves are remembered (a counted run reads where
    /// it leaves the sequence, to put the block back from there), and when its steps fit the
    /// creep budget, spent here at each run. Otherwise it is counted, and refused there when
    /// past the budget.
    fn known_steps_fit(&self, plan: &CheckPlan) -> bool {
        plan.steps_only()
            && self.block.is_empty()
            && self.shared.guard.spend_known(&self.info.database, &plan.known_steps)
    }

    /// Whether an Execute whose plan was uncertain can be judged now.
    pub(super) fn execute_can_be_judged(&self) -> bool {
        !self.mirror.owed_before(self.relay.syncs_sent())
    }

    /// Whether a counted Execute can go: the server answered everything before it, or it is
    /// skipping the batch after an error (then the Execute will not run anyway).
    pub(super) fn count_can_run(&self) -> bool {
        (self.mirror.nothing_owed() && self.relay.syncs_done() == self.relay.syncs_sent())
            || self.mirror.batch_failed(self.relay.syncs_sent())
            || self.relay.is_skipping()
    }
}

/// The portal name of an Execute message.
pub(super) fn execute_portal(f: &Frame) -> Result<Vec<u8>, crate::wire::FrameError> {
    let mut r = crate::wire::BodyReader::new(f.body(), "Execute");
    Ok(messages::object_name(r.cstr()?).to_vec())
}

impl Session {
    /// A held batch in a failed transaction: forwarded as it is (the server refuses it and
    /// says so), its messages recorded as owed like any other.
    pub(super) fn release_unchecked(&mut self, bytes: &[u8], ops: Vec<Op>) {
        let mut framer = crate::wire::Framer::new(usize::MAX);
        framer.buf_mut().extend_from_slice(bytes);
        let mut ops = ops.into_iter();
        while let Ok(Some(crate::wire::Item::Frame(f))) = framer.next_item(|_| true) {
            match (f.tag, ops.next()) {
                (fe::SYNC, _) => self.relay.forward_sync(&f.bytes),
                (_, Some(op)) => self.forward_op(&f, op),
                (_, None) => self.relay.forward_in_batch(&f.bytes),
            }
        }
    }
}
