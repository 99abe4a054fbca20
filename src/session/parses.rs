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
    /// Whether the server's analysis of a Parse of `sql` may run code (`Guard::parses_code`).
    /// The database's hidden callers count as unknown when they are not certain in this batch
    /// (`Mirror::callers_unsure`): DDL before it in the batch may have made such a type. In
    /// the middle of a batch the last answer is used, stale or not (nothing can be asked
    /// there); first in its batch, a stale answer counts as unknown.
    pub(super) fn parse_runs_code(&self, sql: &[u8]) -> bool {
        let unsure = self.mirror.callers_unsure == Some(self.relay.syncs_sent());
        self.shared.guard.parses_code(sql, &self.info, unsure, !self.can_hold())
    }

    /// What the session knows of its database's hidden callers before a message is judged:
    /// judging a statement that may change names (DDL, a call; any statement of a session
    /// whose temporary schema holds code) forgets them until it ran, so what a Parse's
    /// analysis runs, and what a DDL statement may make, is decided by what was known before
    /// it.
    pub(super) fn callers_now(&self) -> CallersBefore {
        CallersBefore {
            known: self.shared.guard.hidden_callers_known(&self.info),
            inputs_run_code: self.shared.guard.inputs_run_code(&self.info, !self.can_hold()),
            parses: false,
        }
    }

    /// [`Session::callers_now`] before a Parse of `sql` is judged, with whether its analysis
    /// may run code. When the answer it needs is not known and the Parse is first in its
    /// batch, the catalog is asked first (`None`: `f` is judged again once it answered — and
    /// then the answer is known before it, so it is asked once).
    pub(super) fn callers_before_parse(&mut self, f: &Frame, sql: &[u8]) -> Option<CallersBefore> {
        let mut before = self.callers_now();
        let guard = &self.shared.guard;
        let needs = guard.parse_may_convert(sql, &self.info) || (makes_objects(sql) && guard.code_matters(&self.info));
        if !before.known && needs && self.can_hold() {
            let question = vec![crate::catalog::Question::HiddenCallers];
            self.pending = Some(super::checks::Pending::Resolve(f.clone(), question));
            return None;
        }
        before.parses = self.parse_runs_code(sql);
        Some(before)
    }

    /// A counted statement of the batch that may make a type whose input runs code (DDL, a
    /// function's body): the database's hidden callers are not certain for the rest of the
    /// batch — when the database had such a type already (`before`: a new table, row or
    /// array type over it), or the statement may make a domain.
    pub(super) fn may_make_objects(&mut self, plan: &CheckPlan, before: CallersBefore) {
        // Counted for its `nextval` calls alone (`CheckPlan::only_moves`), it runs no code
        // that could make one (seventy-sixth pass FP1: asyncpg's Parse, Describe, Flush of
        // `SELECT nextval(…)` was refused in any database with a domain whose CHECK calls a
        // function).
        if plan.only_moves {
            return;
        }
        if matches!(plan.verb, "DDL" | "statement") && may_make_such_a_type(plan.statement.as_bytes(), before) {
            self.mirror.callers_unsure = Some(self.relay.syncs_sent());
        }
    }

    /// The same for a Parse of any verdict whose text may make or change a type or a column
    /// (`makes_objects`): a DDL statement the policy lets through uncounted. A text that names
    /// a domain always makes them uncertain; any other when the database had such a type
    /// `before` (not known: had; first in its batch they were asked, `callers_before_parse`;
    /// in the middle of a batch the last answer counts, stale or not).
    pub(super) fn parsed_may_make_objects(&mut self, sql: &[u8], before: CallersBefore) {
        if makes_objects(sql) && self.shared.guard.code_matters(&self.info) && may_make_such_a_type(sql, before) {
            self.mirror.callers_unsure = Some(self.relay.syncs_sent());
        }
    }

    /// A Parse judged harmless against hidden callers that are not certain in this batch
    /// (DDL before it in the batch may have made a type the judgement did not know): when its
    /// analysis may convert a literal, judged like a call and refused (it is not first in its
    /// batch). Returns whether it was taken.
    pub(super) fn unsure_parse(&mut self, f: &Frame, sql: &[u8], name: &[u8], before: CallersBefore) -> bool {
        if self.mirror.callers_unsure != Some(self.relay.syncs_sent()) || !before.parses {
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
        if let (Some(b'S'), name) = crate::wire::messages::target_of(&f) {
            let name = name.to_vec();
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

    /// How a Describe of the statement `name` is counted, when its analysis may run code
    /// (`described_text`): judged like a call.
    fn described_plan(&mut self, name: &[u8]) -> Option<Result<Arc<CheckPlan>, ProxyMessage>> {
        let text = self.described_text(name)?;
        let judged = self.shared.guard.judge_as_conversion(&text, &mut self.info);
        match self.recorded(judged) {
            Verdict::Check(plan) => Some(Ok(Arc::new(*plan))),
            Verdict::Refuse(m) => Some(Err(m)),
            Verdict::Split(m) => Some(Err(*m)),
            _ => None,
        }
    }

    /// The text a Describe of the statement `name` analyzes again, when its analysis may run
    /// code: the statement's text as the client's Parse gave it, or every text prepared under
    /// that name (`SessionInfo::prepared`); a name blastwall never saw prepared (a function
    /// body's) in a database that has types whose input runs code, too.
    fn described_text(&self, name: &[u8]) -> Option<Vec<u8>> {
        let parsed = self.mirror.facts(name).and_then(|f| f.parse.clone());
        let parsed = parsed.and_then(|p| messages::parse_msg(&p).ok().map(|m| m.sql.to_vec()));
        let prepared = self.info.prepared.get(String::from_utf8_lossy(name).as_ref());
        match (parsed, prepared) {
            (Some(sql), _) => self.parse_runs_code(&sql).then_some(sql),
            (None, Some(list)) => {
                list.iter().map(|s| s.text.as_bytes()).find(|t| self.parse_runs_code(t)).map(<[u8]>::to_vec)
            }
            (None, None) => self
                .shared
                .guard
                .inputs_run_code(&self.info, !self.can_hold())
                .then(|| format!("EXECUTE \"{}\"", String::from_utf8_lossy(name).replace('"', "\"\"")).into_bytes()),
        }
    }

    /// Whether a Describe may join the held batch (`extended::hold_or_release`): one of a
    /// statement whose analysis may run code only when the batch is the Parse of that very
    /// statement, counted for its analysis (`parses`); any other is judged on its own once
    /// the batch is released (refused there: not first in its batch).
    pub(super) fn describe_may_join(&self, f: &Frame, held: &super::extended::HeldBatch) -> bool {
        let (Some(b'S'), name) = crate::wire::messages::target_of(f) else { return true };
        let own = matches!(held.ops.first(), Some(Op::Parse { name: n, .. }) if n == name);
        (own && held.parses) || self.described_text(name).is_none()
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

/// [`Session::callers_before`].
#[derive(Debug, Clone, Copy)]
pub(super) struct CallersBefore {
    /// The database's hidden callers were known and fresh for the session.
    known: bool,
    /// The database may have a type whose input runs a user function (not known: may).
    inputs_run_code: bool,
    /// The Parse's analysis may run code (`Session::parse_runs_code`).
    pub(super) parses: bool,
}

/// Whether a statement that may make objects may make a type whose input runs code: the
/// database had one already (a type over it can be made; not known: may), or its text names
/// a domain.
fn may_make_such_a_type(sql: &[u8], before: CallersBefore) -> bool {
    before.inputs_run_code || names_a_domain(sql)
}

/// Whether a text may make or change a type or a column: anything but a query, a write or
/// transaction control (a text that starts with a comment counts too).
fn makes_objects(sql: &[u8]) -> bool {
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
    start < sql.len() && !PLAIN.contains(&word.as_slice())
}

/// Whether a text names a domain anywhere (conservative: inside a longer word or a string too).
fn names_a_domain(sql: &[u8]) -> bool {
    sql.windows(6).any(|w| w.eq_ignore_ascii_case(b"domain"))
}
