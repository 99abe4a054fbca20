//! A protocol Parse whose analysis may run user code (issue 11, third adversarial pass F5), and a
//! Describe of such a statement.
//!
//! The server analyzes a Parse's text at once: a literal cast to, compared with or assigned to
//! a type is converted by the type's input function there, and the input of an array, row or
//! range type over a domain runs the domain's `CHECK` — `SELECT '{1}'::d[] WHERE false` runs
//! it with no Bind or Execute at all. Such a Parse (`Guard::parses_code`, asked only of a
//! Parse judged to be counted) is counted like the statement run:
//!
//! - first in its batch, it starts the held one-write batch as any counted Parse does, and
//!   that batch is run whole inside the pre-check at its Sync even when it binds and executes
//!   nothing (`extended::held_sync`);
//! - a Describe of such a statement is counted the same way, alone in its batch: the server
//!   analyzes a statement again there when its plan was invalidated since (a changed
//!   `search_path`, DDL it depends on), converting the literal again;
//! - anywhere else — after other messages of its batch, or when its held batch is released
//!   because a message came that does not fit it (another Parse, a Flush) — it cannot be
//!   counted where it stands (the in-batch count goes around an Execute), so it is refused,
//!   failing its batch as a row limit does. Where the server refuses the Parse before
//!   analyzing it (a failed transaction, with nothing before it that may end that
//!   transaction), it is relayed: the server answers 25P02.
//!
//! Owns: those rules. Does not own: which texts may run code (`guard::prepared`), the held
//! batch (`extended`), the count (`checks`, `precheck`).

use super::statements::Op;
use super::Session;
use crate::guard::Verdict;
use crate::precheck::CheckPlan;
use crate::wire::messages::{self, ProxyMessage, TxStatus};
use crate::wire::Frame;
use std::sync::Arc;

impl Session {
    /// Whether the server's analysis of a Parse of `sql`, judged to be counted, may run code.
    /// The database's hidden callers count as unknown when they are not certain in this batch
    /// (`Mirror::callers_unsure`): DDL before it in the batch may have made such a type.
    pub(super) fn parse_runs_code(&self, sql: &[u8]) -> bool {
        let unsure = self.mirror.callers_unsure == Some(self.relay.syncs_sent());
        self.shared.guard.parses_code(sql, &self.info, unsure)
    }

    /// A counted statement of the batch that may make a type whose input runs code (DDL, a
    /// function's body): the database's hidden callers are not certain for the rest of the
    /// batch — when the database has such a type already (a new table, row or array type over
    /// it), or the statement may make a domain.
    pub(super) fn may_make_objects(&mut self, plan: &CheckPlan) {
        if matches!(plan.verb, "DDL" | "statement") && self.may_make_such_a_type(plan.statement.as_bytes()) {
            self.mirror.callers_unsure = Some(self.relay.syncs_sent());
        }
    }

    /// The same for a Parse of any verdict whose text may make or change a type or a column
    /// (anything but a query, a write or transaction control; a text that starts with a
    /// comment counts too): a DDL statement the policy lets through uncounted. When the
    /// database's hidden callers are not known and the Parse is first in its batch, they are
    /// asked first (returns true: `f` is judged again once they are); in the middle of a
    /// batch, not known counts as having such a type.
    pub(super) fn parsed_may_make_objects(&mut self, f: &Frame, sql: &[u8]) -> bool {
        let start = sql.iter().position(|b| !b.is_ascii_whitespace() && *b != b'(').unwrap_or(sql.len());
        let word: Vec<u8> =
            sql[start..].iter().take_while(|b| b.is_ascii_alphabetic()).map(u8::to_ascii_lowercase).collect();
        const PLAIN: [&[u8]; 16] = [
            b"select",
            b"insert",
            b"update",
            b"delete",
            b"with",
            b"values",
            b"table",
            b"merge",
            b"begin",
            b"commit",
            b"rollback",
            b"set",
            b"show",
            b"savepoint",
            b"release",
            b"explain",
        ];
        if start == sql.len() || PLAIN.contains(&word.as_slice()) || !self.shared.guard.inputs_run_code(&self.info) {
            return false;
        }
        let known = self.shared.guard.catalog.with_hidden_callers(&self.info.database, |_| ()).is_some();
        if !known && self.can_hold() {
            let question = vec![crate::catalog::Question::HiddenCallers];
            self.pending = Some(super::checks::Pending::Resolve(f.clone(), question));
            return true;
        }
        if self.may_make_such_a_type(sql) {
            self.mirror.callers_unsure = Some(self.relay.syncs_sent());
        }
        false
    }

    /// Whether a statement that may make objects may make a type whose input runs code: the
    /// database has one already (a type over it can be made; not known: may), or its text
    /// names a domain.
    fn may_make_such_a_type(&self, sql: &[u8]) -> bool {
        self.shared.guard.inputs_run_code(&self.info) || sql.windows(6).any(|w| w.eq_ignore_ascii_case(b"domain"))
    }

    /// A Parse judged harmless against hidden callers that are not certain in this batch
    /// (DDL before it in the batch may have made a type the judgement did not know): when its
    /// analysis may convert a literal, judged like a call and refused (it is not first in its
    /// batch). Returns whether it was taken.
    pub(super) fn unsure_parse(&mut self, f: &Frame, sql: &[u8], name: &[u8]) -> bool {
        if self.mirror.callers_unsure != Some(self.relay.syncs_sent()) || !self.parse_runs_code(sql) {
            return false;
        }
        let judged = self.shared.guard.judge_as_call(sql, &mut self.info);
        match self.recorded(judged) {
            Verdict::Check(plan) => {
                let op = Op::Parse { name: name.to_vec(), plan: None, facts: None };
                self.parse_not_alone(f, op, &plan);
                true
            }
            Verdict::Refuse(m) => {
                self.refuse_in_batch(m);
                true
            }
            _ => false,
        }
    }

    /// A Parse whose analysis may run code, or a Describe of such a statement, where it cannot
    /// be counted (see the module's comment): refused, unless the server is certain to refuse
    /// it unanalyzed.
    pub(super) fn parse_not_alone(&mut self, f: &Frame, op: Op, plan: &CheckPlan) {
        if self.server_refuses_unanalyzed() {
            self.forward_op(f, op);
            return;
        }
        let policy = self.shared.guard.policy();
        let why = "the server may run user code while it analyzes the statement here (a literal converted to a type whose input runs a function, such as an array of a domain with a CHECK), and that can be counted only first in its batch: a Parse followed by nothing but its Bind, Describe, Execute and Sync, a Describe of the statement by nothing but Sync".to_string();
        self.refuse_in_batch(super::checks::uncounted(plan, why, &policy));
    }

    /// A Describe: of a prepared statement whose analysis may run code (the server analyzes it
    /// again there when its plan was invalidated since: DDL, a changed `search_path`), counted
    /// like its Parse — alone in its batch, else refused; any other goes at once.
    pub(super) fn on_describe(&mut self, f: Frame) {
        let body = f.body();
        if body.first() == Some(&b'S') {
            let name = body[1..].split(|b| *b == 0).next().unwrap_or_default().to_vec();
            match self.described_plan(&name) {
                Some(Ok(plan)) if self.can_hold() => {
                    self.start_held(f, Op::Describe, plan, false);
                    if let Some(h) = &mut self.held_batch {
                        h.parses = true;
                    }
                }
                Some(Ok(plan)) => self.parse_not_alone(&f, Op::Describe, &plan),
                Some(Err(refusal)) => self.refuse_in_batch(refusal),
                None => self.forward_op(&f, Op::Describe),
            }
            return;
        }
        self.forward_op(&f, Op::Describe);
    }

    /// How a Describe of the statement `name` is counted, when its analysis may run code: the
    /// statement's text as the client's Parse gave it, or every text prepared under that
    /// name (`SessionInfo::prepared`), judged like a call; a name blastwall never saw
    /// prepared (a function body's) in a database that has types whose input runs code, too.
    fn described_plan(&mut self, name: &[u8]) -> Option<Result<Arc<CheckPlan>, ProxyMessage>> {
        let parsed = self.mirror.facts(name).and_then(|f| f.parse.clone());
        let parsed = parsed.and_then(|p| messages::parse_msg(&p).ok().map(|m| m.sql.to_vec()));
        let prepared = self.info.prepared.get(String::from_utf8_lossy(name).as_ref());
        let text =
            match (parsed, prepared) {
                (Some(sql), _) => self.parse_runs_code(&sql).then_some(sql),
                (None, Some(list)) => {
                    list.iter().map(|s| s.text.as_bytes()).find(|t| self.parse_runs_code(t)).map(<[u8]>::to_vec)
                }
                (None, None) => self.shared.guard.inputs_run_code(&self.info).then(|| {
                    format!("EXECUTE \"{}\"", String::from_utf8_lossy(name).replace('"', "\"\"")).into_bytes()
                }),
            }?;
        let judged = self.shared.guard.judge_as_call(&text, &mut self.info);
        match self.recorded(judged) {
            Verdict::Check(plan) => Some(Ok(Arc::new(*plan))),
            Verdict::Refuse(m) => Some(Err(m)),
            Verdict::Split(m) => Some(Err(*m)),
            _ => None,
        }
    }

    /// Whether the server will refuse the next message of the batch without analyzing it: the
    /// session's transaction is failed, every earlier sync point was answered, and nothing
    /// of this batch went before it (a ROLLBACK there would end the failed transaction).
    fn server_refuses_unanalyzed(&self) -> bool {
        self.relay.tx == TxStatus::Failed
            && !self.relay.batch_has_messages()
            && self.relay.syncs_done() == self.relay.syncs_sent()
    }
}
