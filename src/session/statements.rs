//! blastwall's mirror of the server's extended-protocol objects: which prepared statements
//! and portals run a write that must be counted, which portals the client bound at all (an
//! Execute of any other name reads a cursor, judged as its `FETCH`: `guard::cursors`), and the
//! replies the server still owes for the client's forwarded Parse/Bind/Close/Describe/Execute
//! messages.
//!
//! Owns: the rule that the mirror changes only when the server confirms (ParseComplete,
//! BindComplete, CloseComplete), that everything of a batch the server skips after an error
//! is dropped, and that portals end with their transaction. Between a message and its
//! confirmation, the *projected* mirror (confirmed + what is still owed) is what a later
//! message of the same batch is judged against: if an earlier message fails, the server
//! skips the later one anyway.
//! Also: what each statement was judged with (`Facts`: the catalog's generation then, whether
//! its Bind runs code, the Parse itself), so that a verdict older than the catalog's answers
//! is made again at Bind (`binds`).
//! Does not own: what a statement's plan is (`guard`), sync-point accounting (`relay`), the
//! queue of owed replies and its index (`owed`).

use crate::precheck::CheckPlan;
use crate::wire::messages::TxStatus;
use std::collections::HashMap;
use std::sync::Arc;

/// Statements and portals whose execution must be counted (the others are not kept).
#[derive(Debug, Default)]
struct Objects {
    statements: ByName<Arc<CheckPlan>>,
    /// What each statement prepared by protocol Parse (or adopted from SQL `PREPARE`) was
    /// judged with.
    facts: ByName<Arc<Facts>>,
    portals: ByName<Arc<CheckPlan>>,
    /// Every portal the client bound by protocol, counted or not: an Execute of any other
    /// name reads a cursor (declared by SQL or opened by a function body).
    bound: ByName<()>,
}

impl Objects {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Parse { name, plan, facts } => {
                self.statements.set(name, plan.as_ref());
                self.facts.set(name, facts.as_ref());
            }
            Op::Bind { portal, statement } => {
                self.bound.insert(portal, ());
                let plan = self.statements.get(statement).cloned();
                self.portals.set(portal, plan.as_ref());
            }
            Op::Close { portal: true, name } => {
                self.portals.remove(name);
                self.bound.remove(name);
            }
            Op::Close { portal: false, name } => {
                self.statements.remove(name);
                self.facts.remove(name);
            }
            Op::Describe | Op::Execute | Op::Marker => {}
        }
    }

    fn clear_portals(&mut self) {
        self.portals.clear();
        self.bound.clear();
    }
}

impl Clone for Objects {
    fn clone(&self) -> Self {
        let mut o = Objects::default();
        o.clone_from(self);
        o
    }

    /// In place: the maps keep their allocations.
    fn clone_from(&mut self, source: &Self) {
        self.statements.clone_from(&source.statements);
        self.facts.clone_from(&source.facts);
        self.portals.clone_from(&source.portals);
        self.bound.clone_from(&source.bound);
    }
}

/// Something kept by statement or portal name; the unnamed one's (parsed and bound for nearly
/// every statement by many drivers) apart, so that keeping it costs no hashing, and copying
/// the mirror no map.
#[derive(Debug)]
struct ByName<T> {
    unnamed: Option<T>,
    named: HashMap<Vec<u8>, T>,
}

impl<T> Default for ByName<T> {
    fn default() -> Self {
        ByName { unnamed: None, named: HashMap::new() }
    }
}

impl<T: Clone> Clone for ByName<T> {
    fn clone(&self) -> Self {
        ByName { unnamed: self.unnamed.clone(), named: self.named.clone() }
    }

    fn clone_from(&mut self, source: &Self) {
        self.unnamed.clone_from(&source.unnamed);
        if self.named.is_empty() && source.named.is_empty() {
            return;
        }
        self.named.clone_from(&source.named);
    }
}

impl<T: Clone> ByName<T> {
    fn get(&self, name: &[u8]) -> Option<&T> {
        match name.is_empty() {
            true => self.unnamed.as_ref(),
            false => self.named.get(name),
        }
    }

    fn contains_key(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    fn insert(&mut self, name: &[u8], value: T) {
        match name.is_empty() {
            true => self.unnamed = Some(value),
            false => {
                // No new key for a name already kept.
                match self.named.get_mut(name) {
                    Some(v) => *v = value,
                    None => {
                        self.named.insert(name.to_vec(), value);
                    }
                }
            }
        }
    }

    /// Keeps `value` under `name`, or forgets the name when there is none.
    fn set(&mut self, name: &[u8], value: Option<&T>) {
        match value {
            Some(v) => self.insert(name, v.clone()),
            None => self.remove(name),
        }
    }

    fn remove(&mut self, name: &[u8]) {
        match name.is_empty() {
            true => self.unnamed = None,
            false => {
                if !self.named.is_empty() {
                    self.named.remove(name);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.unnamed.is_none() && self.named.is_empty()
    }

    fn clear(&mut self) {
        self.unnamed = None;
        self.named.clear();
    }
}

/// A forwarded client message that the server answers with one final reply (or an error).
#[derive(Debug, Clone)]
pub(super) enum Op {
    Parse {
        name: Vec<u8>,
        plan: Option<Arc<CheckPlan>>,
        facts: Option<Arc<Facts>>,
    },
    Bind {
        portal: Vec<u8>,
        statement: Vec<u8>,
    },
    Close {
        portal: bool,
        name: Vec<u8>,
    },
    /// Describe of a statement (ParameterDescription, then what ends it) or of a portal.
    Describe,
    Execute,
    /// blastwall's refusal marker: answered by an error.
    Marker,
}

/// What a prepared statement was judged with.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    /// The catalog's generation when it was judged (`Catalog::generation`): DDL through
    /// blastwall, or a changed answer of the catalog, makes it older.
    pub(super) stamp: u64,
    /// Its Bind may run user code (`Guard::binds_code`): counted like the Execute it can be.
    pub(super) code: bool,
    /// The client's Parse (judged again from it); `None` for a statement prepared by SQL.
    pub(super) parse: Option<crate::wire::Frame>,
}

/// The mirror, and the queue of replies owed.
#[derive(Debug, Default)]
pub(super) struct Mirror {
    confirmed: Objects,
    projected: Objects,
    /// Owed replies, each with the ordinal of the sync point that ends its batch (the number
    /// of sync points forwarded before it).
    owed: super::owed::Owed,
    /// The ordinal of the last batch in which the server reported an error (it skips the rest
    /// of that batch up to Sync).
    failed_batch: Option<u64>,
    /// What each suspended counted portal changed so far (`counting::PortalRuns`).
    pub(super) runs: super::counting::PortalRuns,
    /// A Bind that runs code, not first in its batch, waiting for its Execute (`binds`).
    pub(super) parked: Option<super::binds::Parked>,
    /// Rounds of catalog questions the Bind being judged waited for (`binds`).
    pub(super) asked: u8,
    /// What each bound portal was bound with (`ages`).
    pub(super) ages: super::ages::Ages,
    /// The batch (its sync point's ordinal) in which the database's hidden callers are not
    /// certain: after a statement of the batch that may make a type whose input runs code
    /// was sent (`parses`).
    pub(super) callers_unsure: Option<u64>,
    /// Rounds of catalog questions the message being judged waited for (`questions`).
    pub(super) rounds: u8,
    /// The statements and portals that may start a COPY FROM STDIN (`copying`).
    pub(super) copies: super::copying::Copies,
    /// Portal names SQL may have made a cursor of since their last protocol Bind
    /// (`replaced`).
    pub(super) replaced: super::replaced::Replaced,
}

impl Mirror {
    /// Records a client message forwarded in the batch ending at sync point `ord`.
    pub(super) fn sent(&mut self, ord: u64, op: Op) {
        if let Op::Bind { portal, .. } = &op {
            self.replaced.bind_sent(portal);
        }
        self.projected.apply(&op);
        self.owed.push_back(ord, op);
    }

    /// Records that the server is skipping the rest of batch `ord` (an error blastwall saw
    /// while it read the replies itself).
    pub(super) fn failed(&mut self, ord: u64) {
        self.failed_batch = Some(ord);
        self.drop_batch(ord);
    }

    /// The plan of the statement a portal runs, as it will be when the server reaches it.
    pub(super) fn portal_plan(&self, portal: &[u8]) -> Option<Arc<CheckPlan>> {
        self.projected.portals.get(portal).cloned()
    }

    /// Whether the client bound a portal of this name by protocol (as the server will have it
    /// when it reaches the next message).
    pub(super) fn portal_bound(&self, portal: &[u8]) -> bool {
        self.projected.bound.contains_key(portal)
    }

    /// A prepared statement was remade where blastwall could not see (`precheck::objects`):
    /// its plan is no longer known, and a Bind of it is judged again.
    pub(super) fn forget_statement(&mut self, name: &[u8]) {
        for o in [&mut self.confirmed, &mut self.projected] {
            o.statements.remove(name);
            o.facts.remove(name);
        }
    }

    /// [`Mirror::forget_statement`] of every named statement (SQL `DEALLOCATE ALL`, `DISCARD
    /// ALL`: the unnamed statement stays on the server, and with it its plan here).
    pub(super) fn forget_named_statements(&mut self) {
        for o in [&mut self.confirmed, &mut self.projected] {
            o.statements.named.clear();
            o.facts.named.clear();
        }
    }

    /// [`Mirror::forget_statement`] of every name.
    pub(super) fn forget_statements(&mut self) {
        for o in [&mut self.confirmed, &mut self.projected] {
            o.statements.clear();
            o.facts.clear();
        }
    }

    /// What a prepared statement was judged with, as it will be when the server reaches it.
    pub(super) fn facts(&self, name: &[u8]) -> Option<Arc<Facts>> {
        self.projected.facts.get(name).cloned()
    }

    /// A statement judged again (its verdict was older than the catalog): its new plan and
    /// facts, wherever the server has (or will have) it.
    pub(super) fn judged_again(&mut self, name: &[u8], plan: Option<Arc<CheckPlan>>, facts: Arc<Facts>) {
        for o in [&mut self.confirmed, &mut self.projected] {
            if !o.facts.contains_key(name) {
                continue;
            }
            o.statements.set(name, plan.as_ref());
            o.facts.insert(name, facts.clone());
        }
    }

    /// A portal bound by a Bind counted together with its Execute (`binds`): the server
    /// answers both inside the count, so the mirror takes it at once.
    pub(super) fn bound_in_count(&mut self, portal: &[u8], statement: &[u8]) {
        let op = Op::Bind { portal: portal.to_vec(), statement: statement.to_vec() };
        self.runs.confirmed(&op);
        self.confirmed.apply(&op);
        self.projected.apply(&op);
    }

    /// The plan of a prepared statement, as it will be when the server reaches it.
    pub(super) fn statement_plan(&self, name: &[u8]) -> Option<Arc<CheckPlan>> {
        self.projected.statements.get(name).cloned()
    }

    /// Takes a statement prepared by SQL (`PREPARE`) into the mirror, as one that runs a
    /// counted write: the server shares one namespace between SQL and the protocol.
    pub(super) fn adopt(&mut self, name: &[u8], plan: Arc<CheckPlan>, facts: Arc<Facts>) {
        for o in [&mut self.confirmed, &mut self.projected] {
            o.statements.insert(name, plan.clone());
            o.facts.insert(name, facts.clone());
        }
    }

    /// Whether the server reported an error in batch `ord` (it skips the rest of it).
    pub(super) fn batch_failed(&self, ord: u64) -> bool {
        self.failed_batch == Some(ord)
    }

    /// Whether the plan the projection gives for an Execute of `portal` in batch `ord` is
    /// certain: nothing still owed from an earlier batch can change it. (An earlier batch may
    /// yet fail and skip a Parse, Bind or Close the projection counted on; a failure in batch
    /// `ord` itself skips the Execute too.)
    pub(super) fn execute_is_certain(&self, portal: &[u8], ord: u64) -> bool {
        let Some((number, statement)) = self.owed.bind_in(portal, ord) else {
            // The portal comes from an earlier batch: certain once nothing there is pending.
            return !self.owed.changes_before(ord);
        };
        // Certain when the batch itself parses (or closes) the statement before the Bind, or
        // no earlier batch still may.
        let (current, earlier) = self.owed.names_statement(statement, ord, number);
        current || !earlier
    }

    /// Whether the server is answering an Execute of batch `answering` (not a simple Query).
    pub(super) fn executing(&self, answering: u64) -> bool {
        self.owed.front().is_some_and(|(o, op)| *o == answering && matches!(op, Op::Execute))
    }

    /// Whether a reply to a message of a batch before `ord` is still owed.
    pub(super) fn owed_before(&self, ord: u64) -> bool {
        self.owed.front().is_some_and(|(o, _)| *o < ord)
    }

    /// Whether an Execute the client sent is still unanswered.
    pub(super) fn execute_owed(&self) -> bool {
        self.owed.executes()
    }

    /// Whether a Close of this portal is still owed its reply (`copying`'s probe).
    pub(super) fn owes_close_of(&self, name: &[u8]) -> bool {
        self.owed.iter().any(|(_, op)| matches!(op, Op::Close { portal: true, name: n } if n == name))
    }

    /// Whether the next reply owed ends a Close of this portal (`copying`'s probe).
    pub(super) fn next_closes(&self, name: &[u8]) -> bool {
        self.owed.front().is_some_and(|(_, op)| matches!(op, Op::Close { portal: true, name: n } if n == name))
    }

    /// Whether no reply to a forwarded message is owed.
    pub(super) fn nothing_owed(&self) -> bool {
        self.owed.is_empty()
    }

    /// A reply that ends one message (ParseComplete, BindComplete, CloseComplete,
    /// RowDescription/NoData of a Describe, CommandComplete/EmptyQuery/PortalSuspended) in
    /// the batch the server is answering now (`answering`: sync points answered so far).
    pub(super) fn on_reply(&mut self, tag: u8, answering: u64) {
        let Some((ord, op)) = self.owed.front() else { return };
        if *ord != answering {
            // The reply of a simple Query between batches.
            return;
        }
        let ends = match op {
            Op::Parse { .. } => tag == b'1',
            Op::Bind { .. } => tag == b'2',
            Op::Close { .. } => tag == b'3',
            Op::Describe => matches!(tag, b'T' | b'n'),
            Op::Execute => matches!(tag, b'C' | b'I' | b's'),
            Op::Marker => false,
        };
        if ends {
            if let Some((_, op)) = self.owed.pop_front() {
                if let Op::Bind { portal, .. } = &op {
                    self.replaced.bind_confirmed(portal);
                }
                self.runs.confirmed(&op);
                self.confirmed.apply(&op);
            }
        }
    }

    /// An ErrorResponse: if it belongs to the batch being answered, the server skips the rest
    /// of it, and nothing of it that was still owed happens.
    /// Returns whether it did (the server then skips to the batch's Sync).
    pub(super) fn on_error(&mut self, answering: u64) -> bool {
        if self.owed.front().is_some_and(|(ord, _)| *ord == answering) {
            self.failed_batch = Some(answering);
            self.drop_batch(answering);
            return true;
        }
        false
    }

    /// A ReadyForQuery: the batch is over; at the end of a transaction every portal is gone.
    pub(super) fn on_ready(&mut self, answered: u64, status: TxStatus) {
        let stale = self.owed.front().is_some_and(|(ord, _)| *ord < answered);
        while self.owed.front().is_some_and(|(ord, _)| *ord < answered) {
            self.owed.pop_front();
        }
        let portals =
            status == TxStatus::Idle && (!self.confirmed.portals.is_empty() || !self.confirmed.bound.is_empty());
        if portals {
            self.confirmed.clear_portals();
        }
        if status == TxStatus::Idle {
            self.runs.clear();
        }
        if stale || portals {
            self.reproject();
        }
    }

    /// The server skipped batches `from..to` with the failed one (Queries sent inside an open
    /// extended batch, which the relay counts as sync points of their own and the server
    /// skips with the rest up to Sync): nothing of theirs happens, and nothing is owed.
    pub(super) fn skipped(&mut self, from: u64, to: u64) {
        if self.owed.retain(|o| o < from || o >= to) {
            self.reproject();
        }
    }

    fn drop_batch(&mut self, ord: u64) {
        if self.owed.retain(|o| o != ord) {
            self.reproject();
        }
    }

    fn reproject(&mut self) {
        // In place: the maps keep their allocations.
        self.projected.clone_from(&self.confirmed);
        for (_, op) in self.owed.iter() {
            self.projected.apply(op);
        }
    }

    /// Applies what a batch run inside a pre-check did: all of it when it succeeded; when it
    /// failed or was refused, only what makes more statements counted (a Parse may have
    /// succeeded before the failure; forgetting a plan is never assumed).
    pub(super) fn apply_checked(&mut self, ops: &[Op], succeeded: bool) {
        // Its own portals are the client's, not cursors SQL made under their names.
        for op in ops.iter().filter(|_| succeeded) {
            if let Op::Bind { portal, .. } = op {
                self.replaced.bound(portal);
            }
        }
        for op in ops {
            if succeeded || matches!(op, Op::Parse { plan: Some(_), .. }) {
                self.runs.confirmed(op);
                self.confirmed.apply(op);
            }
        }
        self.reproject();
    }
}

impl super::Session {
    /// The server skips the rest of the failed batch up to its Sync, and the Queries sent in
    /// it with it (`Relay::skip_to_sync`): the mirror drops what it owed for them.
    pub(super) fn skip_to_sync(&mut self) {
        let from = self.relay.syncs_done();
        self.relay.skip_to_sync();
        self.mirror.skipped(from, self.relay.syncs_done());
    }

    /// Whether the client's CopyDone or CopyFail must wait: an Execute is still unanswered and
    /// the server has not said whether it started a COPY (sixth adversarial pass F2: a Sync
    /// the client pipelined behind a COPY's Execute is ignored by the server, and is taken
    /// back at the CopyDone only once the COPY is known).
    pub(super) fn copy_unsettled(&self) -> bool {
        // A batch that failed starts no COPY: the server skips its Executes.
        let failed = self.relay.is_skipping() || self.mirror.batch_failed(self.relay.syncs_sent());
        !self.relay.in_copy_in() && !failed && self.mirror.execute_owed()
    }

    /// A CopyDone or CopyFail goes to the server.
    pub(super) fn copy_end(&mut self, f: &crate::wire::Frame) {
        self.relay.copy_in_done(&f.bytes);
        // The statements after a COPY of a Query run as a batch (`simple`).
        self.simple_next(true);
    }

    /// A protocol Execute of a portal the client never bound: a cursor declared by SQL or
    /// opened by a function body, judged as `FETCH` of it would be (`guard::cursors`) —
    /// relayed, counted, refused, or waiting for the catalog's answers (`judge_execute`). A
    /// name that is no cursor at all is the server's to answer (`34000`) wherever nothing
    /// refuses it.
    pub(super) fn execute_cursor(&mut self, f: crate::wire::Frame, portal: &[u8]) {
        use crate::guard::Verdict;
        let text = format!("FETCH ALL IN \"{}\"", String::from_utf8_lossy(portal).replace('"', "\"\""));
        let Some((f, verdict)) = self.judge_execute(f, text.as_bytes(), false) else { return };
        match verdict {
            Verdict::Check(plan) if self.can_hold() => self.start_held(f, Op::Execute, Arc::new(*plan), false),
            Verdict::Check(plan) => self.count_where_it_stands(f, Arc::new(*plan)),
            Verdict::Refuse(m) => self.refuse_in_batch(m),
            Verdict::Split(m) => self.refuse_in_batch(*m),
            Verdict::Allow | Verdict::Notice(_) => self.forward_op(&f, Op::Execute),
            // Counted like a call when it could not be judged: nothing else comes back.
            Verdict::Resolve(_) | Verdict::Analyze => {
                self.refuse_in_batch(crate::guard::refusal_message(&crate::guard::refusal(
                    "unverifiable",
                    "FETCH".into(),
                    "reading this cursor needs a catalog lookup that cannot run in a batch".into(),
                    "Read the cursor with FETCH in a message of its own.",
                    "blastwall",
                    text,
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Option<Arc<CheckPlan>> {
        Some(Arc::new(CheckPlan {
            verb: "DELETE",
            target: None,
            dry_run: false,
            dry_run_reason: None,
            statement: String::new(),
            effects: Vec::new(),
            notice: None,
            ignored_directive: false,
            warned_rule: None,
            override_rows: None,
            estimate_sql: None,
            estimate_msgs: None,
            param_types: Vec::new(),
            point: None,
            reached: None,
            names: Vec::new(),
            known_steps: Vec::new(),
            only_moves: false,
            takes_ahead: Vec::new(),
        }))
    }

    #[test]
    fn a_failed_second_parse_keeps_the_first_plan() {
        let mut m = Mirror::default();
        m.sent(0, Op::Parse { name: b"s".to_vec(), plan: plan(), facts: None });
        m.on_reply(b'1', 0);
        m.on_ready(1, TxStatus::Idle);
        m.sent(1, Op::Parse { name: b"s".to_vec(), plan: None, facts: None });
        m.sent(1, Op::Bind { portal: b"".to_vec(), statement: b"s".to_vec() });
        assert!(m.portal_plan(b"").is_none());
        m.on_error(1);
        m.on_ready(2, TxStatus::Idle);
        assert!(m.statement_plan(b"s").is_some());
    }

    #[test]
    fn an_execute_is_uncertain_while_an_earlier_batch_may_skip_its_parse() {
        let mut m = Mirror::default();
        m.sent(0, Op::Parse { name: b"".to_vec(), plan: None, facts: None });
        m.sent(1, Op::Bind { portal: b"".to_vec(), statement: b"".to_vec() });
        assert!(!m.execute_is_certain(b"", 1));
        // Parsed in its own batch: certain.
        m.sent(1, Op::Parse { name: b"".to_vec(), plan: None, facts: None });
        m.sent(1, Op::Bind { portal: b"".to_vec(), statement: b"".to_vec() });
        assert!(m.execute_is_certain(b"", 1));
    }

    #[test]
    fn portals_end_with_their_transaction_and_survive_inside_it() {
        let mut m = Mirror::default();
        m.sent(0, Op::Parse { name: b"s".to_vec(), plan: plan(), facts: None });
        m.sent(0, Op::Bind { portal: b"p".to_vec(), statement: b"s".to_vec() });
        m.on_reply(b'1', 0);
        m.on_reply(b'2', 0);
        m.on_ready(1, TxStatus::InBlock);
        assert!(m.portal_plan(b"p").is_some());
        m.on_ready(2, TxStatus::Idle);
        assert!(m.portal_plan(b"p").is_none());
        assert!(m.statement_plan(b"s").is_some());
    }
}
