//! Catalog questions asked on the client's session, where they cannot be answered.
//!
//! A cancel that meets one of blastwall's catalog questions (asked on the client's session
//! before its message is judged, `checks::resolve`): the server ended that question as it
//! would have ended the client's statement — 57014, the client's block (if any) aborted, an
//! implicit transaction over — so the client's message ends there with the same error and
//! runs nothing, judged or not, and blastwall learns nothing from the cancelled answer.
//!
//! - A Query or FunctionCall is refused by a marker (`relay`): outside a block the marker
//!   fails on its own, inside the aborted block the server answers it with 25P02 before
//!   reading it; either way the client gets the cancel's error, then ReadyForQuery with the
//!   state the server has.
//! - An extended-protocol message (first in its batch: only there are questions asked) gets
//!   the error at once, the client's messages up to its Sync are dropped as the server drops
//!   them after an error, and the Sync is forwarded: its ReadyForQuery is the server's.
//!
//! Also: the policy tables' identities asked before a batch when none may stand in for its
//! middle (`identities_before_batch`); the answers assumed where no question can be asked (in
//! the middle of a batch, in a failed transaction): the worst (`assume_answers`); and the
//! bound on the rounds of questions one message may wait for (`ask_bounded`: past it, the
//! message is refused, so that no judgement that keeps asking holds a session forever).
//!
//! A question in the middle of a batch that ran nothing is asked once blastwall ended that
//! batch itself (`resolve_in_batch`); in one that ran something, where the answer can change
//! the judgement (`worth_asking_within`), inside the batch behind what it ran, and a question
//! that fails there ends the batch with a refusal (`question_failed_batch`).
//!
//! Owns: that answer, that question, those assumptions and that bound, ending a batch to ask
//! or asking inside it, and the server lost while asking. Does not own: which answers are a
//! cancel (`cancels`), asking (`checks`).

use super::{Session, SessionError};
use crate::precheck::{Answer, Backend};
use crate::wire::messages::{fe, ProxyMessage};
use crate::wire::Frame;

const HINT_ROUNDS: &str = "Send it again; if it is refused again, report it to blastwall's maintainers with the log.";

/// Rounds of catalog questions one client message may wait for: each answer may lead to
/// another question (a few rounds), and a judgement that keeps asking is a fault — the
/// message is refused rather than waiting forever.
const MAX_ROUNDS: u8 = 8;

impl Session {
    /// Asks the catalog for `frame` (`checks::resolve`, or `resolve_in_batch`), then judges it
    /// again, unless the message already waited for [`MAX_ROUNDS`] rounds: then it is refused.
    pub(super) async fn ask_bounded(
        &mut self,
        frame: Frame,
        questions: Vec<crate::catalog::Question>,
        in_batch: bool,
    ) -> Result<(), super::SessionError> {
        use super::checks::Pending;
        self.mirror.rounds += 1;
        if self.mirror.rounds > MAX_ROUNDS {
            self.mirror.rounds = 0;
            tracing::warn!(session = self.id, ?questions, "a message kept asking the catalog: refused");
            let text = crate::wire::messages::query_text(&frame).map(|t| String::from_utf8_lossy(t).into_owned());
            let why = format!("blastwall asked the catalog {MAX_ROUNDS} times to judge it and could not settle it");
            let d = crate::guard::refusal(
                "unverifiable",
                "this message".into(),
                why,
                HINT_ROUNDS,
                "blastwall",
                text.unwrap_or_default(),
            );
            let refusal = crate::guard::refusal_message(&d);
            match frame.tag {
                fe::QUERY | fe::FUNCTION_CALL => self.relay.refuse_sync_point(refusal),
                _ => self.refuse_in_batch(refusal),
            }
            return Ok(());
        }
        let result = if in_batch {
            self.resolve_in_batch(frame, questions).await
        } else {
            self.resolve(frame, questions, false).await
        };
        if !matches!(self.pending, Some(Pending::Resolve(..) | Pending::ResolveInBatch(..))) {
            self.mirror.rounds = 0;
        }
        result
    }

    /// Ends the client's `frame` with the cancel that met a question asked for it.
    pub(super) fn question_cancelled(&mut self, frame: &Frame, answer: Answer) {
        let message = answer.error.map(|e| e.message).unwrap_or_else(|| crate::said::canceled().message);
        let error = ProxyMessage::error("57014", message);
        tracing::info!(session = self.id, "a cancel met a catalog question: the client's message ends with it");
        // A Bind that waited for the answers waits no more.
        self.mirror.asked = 0;
        match frame.tag {
            fe::QUERY | fe::FUNCTION_CALL => self.relay.refuse_sync_point(error),
            _ => self.relay.fail_batch_here(error),
        }
    }

    /// Before a batch's first message, when no answer about the policy tables' identities (or
    /// their protected columns' names) may stand in for the batch's middle
    /// (`names::before_batch`): the frame waits for them (`true`). A write in the middle of a
    /// batch without one is refused.
    pub(super) fn identities_before_batch(&mut self, f: &Frame) -> bool {
        let catalog = &self.shared.guard.catalog;
        if self.info.names.stand_in_holds(catalog.identity_generation()) {
            return false;
        }
        let policy = self.shared.guard.policy();
        let questions = crate::names::before_batch(catalog, &mut self.info, &policy);
        if questions.is_empty() {
            return false;
        }
        self.pending = Some(super::checks::Pending::Resolve(f.clone(), questions));
        true
    }

    /// No catalog question can be asked in the middle of an extended batch: answers that
    /// assume the worst (a write to count; the policy's column names).
    pub(super) fn assume_answers(&mut self, questions: &[crate::catalog::Question]) {
        let (catalog, db) = (&self.shared.guard.catalog, &self.info.database);
        let policy = self.shared.guard.policy();
        for q in questions {
            match q {
                crate::catalog::Question::Indirect(n) => self.info.names.assumed.assume_indirect(catalog, db, n),
                crate::catalog::Question::HiddenCallers => catalog.assume_hidden_callers(db, &mut self.info.temp),
                crate::catalog::Question::Taint => self.info.taint.assume(),
                crate::catalog::Question::SequenceOwner(seq) => {
                    // Fail closed: as if a protected column of every table forbidding setval
                    // owned it.
                    let rows: Vec<Vec<Option<String>>> = policy
                        .tables
                        .iter()
                        .filter(|t| t.forbid.contains(&crate::policy::Forbid::Setval))
                        .filter_map(|t| {
                            let col = t.protected_columns.iter().next()?;
                            Some(vec![Some(t.schema.clone()), Some(t.name.clone()), Some(col.clone())])
                        })
                        .collect();
                    let owners = rows.into_iter().filter_map(|r| Some((r[0].clone()?, r[1].clone()?, r[2].clone()?)));
                    self.info.names.assumed.assume_owners(seq, owners.collect());
                }
                // Not known: judged as a sequence given by an expression.
                crate::catalog::Question::RelationOfOid(oid) => self.info.names.assumed.assume_oid(*oid),
                // Fail closed: every protected column taken as minted.
                crate::catalog::Question::Minted { schema, table } => {
                    let t = policy.tables.iter().find(|t| &t.schema == schema && &t.name == table);
                    let cols = t.map(|t| t.protected_columns.iter().collect::<Vec<_>>()).unwrap_or_default();
                    let rows: Vec<_> =
                        cols.iter().map(|c| vec![Some("1".into()), Some(c.to_string()), Some("s".into())]).collect();
                    self.info.names.assumed.assume_minted(schema, table, crate::catalog::minted_answer(&rows));
                }
                // Fail closed: judged as every relation the name may be, this once.
                q @ (crate::catalog::Question::Identities
                | crate::catalog::Question::Relations(_)
                | crate::catalog::Question::Constraint { .. }) => crate::names::assume(q, &mut self.info.names),
                // Taken as still there.
                crate::catalog::Question::Prepared(gids) => drop(self.info.inflight.learn_prepared(gids, None)),
                crate::catalog::Question::Columns { schema, table } => {
                    if let Some(t) = policy.tables.iter().find(|t| &t.schema == schema && &t.name == table) {
                        self.info.names.assumed.assume_columns(catalog, db, schema, table, &t.protected_columns);
                    }
                }
            }
        }
    }
}

impl Session {
    /// [`Pending::ResolveInBatch`], once the server answered the batch so far: a batch that
    /// ran nothing is ended by a Sync of blastwall's whose ReadyForQuery the client never
    /// sees, then the catalog is asked as at any idle point. One that ran something (an
    /// Execute of `SET search_path`, …) cannot end unseen (a Sync would end the client's
    /// implicit transaction): the questions are asked inside it, behind what it ran
    /// (`precheck::inbatch::ask`), so they see what the server will see. A batch that failed
    /// is skipped by the server: the worst is assumed (it runs nothing).
    pub(super) async fn resolve_in_batch(
        &mut self,
        frame: Frame,
        questions: Vec<crate::catalog::Question>,
    ) -> Result<(), SessionError> {
        if self.mirror.batch_failed(self.relay.syncs_sent()) || !self.can_ask_within_batch() {
            self.assume_answers(&questions);
            return self.judge_and_record(frame);
        }
        if !self.relay.batch_ends_unseen() {
            return self.resolve(frame, questions, true).await;
        }
        self.flush_to_client().await?;
        let mut backend = Backend::new(&mut self.server, &mut self.sfr);
        let closed = async {
            backend.send(&crate::wire::encode(fe::SYNC, &[])).await?;
            backend.answer().await
        };
        let answer = closed.await.map_err(|e| SessionError::Closed(format!("ending a batch: {e}")))?;
        let Backend { for_client, params, .. } = backend;
        // Notifications sent before that ReadyForQuery wait for the client's.
        let for_client = self.notifications_to_ready(for_client);
        self.take_for_client(for_client, params);
        self.relay.batch_ended_unseen(answer.status.unwrap_or(self.relay.tx));
        self.resolve(frame, questions, false).await
    }

    /// Whether the questions for `sql`, in the middle of a batch that ran something, are asked
    /// inside it (`resolve_in_batch`), rather than the worst assumed: where an answer may
    /// change the judgement (`names::worth_asking_in_batch`) and it can be asked. Each round
    /// waits for the server to answer the batch so far.
    pub(super) fn worth_asking_within(&self, sql: &[u8]) -> bool {
        if !self.can_ask_within_batch() {
            return false;
        }
        let ids = self.shared.guard.catalog.last_identities(&self.info.database);
        let statements = self.shared.guard.statements_of(sql, &self.info, None);
        let policy = self.shared.guard.policy();
        // Or an INSERT into one: whether its table runs code (an owner's trigger that changes a
        // policy table's rows, which only an answer lets explain them: fifty-ninth pass FP-2,
        // an ORM's pipelined unit of work).
        let inserts = || {
            statements
                .iter()
                .filter(|s| s.opaque.is_empty())
                .flat_map(|s| crate::guard::inserts_in(s).iter().map(|i| i.target.clone()).collect::<Vec<_>>())
                .any(|t| !crate::names::unresolved_reach(&policy, ids.as_deref(), &t, false).is_empty())
        };
        crate::names::worth_asking_in_batch(&statements, &policy, ids.as_deref()) || inserts()
    }

    /// The server closed while blastwall asked it something, perhaps before the client's own
    /// first statement: reported as if the client's had met it (the server said no word).
    pub(super) async fn lost_asking(&mut self, e: impl std::fmt::Display) -> SessionError {
        let msg = crate::said::upstream_closed(&self.shared.upstream.addr().to_string());
        self.relay.to_client.extend_from_slice(&msg.encode());
        let _ = self.flush_to_client().await;
        SessionError::Closed(e.to_string())
    }

    /// Whether a catalog question can be asked inside the open batch (`resolve_in_batch`):
    /// the server is not skipping it after an error, and the client's block has not failed
    /// (everything but a ROLLBACK fails there).
    pub(super) fn can_ask_within_batch(&self) -> bool {
        !self.relay.is_skipping()
            && !self.relay.is_discarding()
            && self.relay.tx != crate::wire::messages::TxStatus::Failed
    }

    /// A question asked inside the client's batch failed (`resolve_in_batch`): the server now
    /// skips the batch to its Sync, so the client's message ends with a refusal that says
    /// why, and the rest of its batch is dropped as the server drops it.
    pub(super) fn question_failed_batch(&mut self, frame: &Frame, e: crate::wire::messages::ErrorFields) {
        tracing::warn!(session = self.id, error = %e.message, "a catalog question inside a batch failed: the batch ends");
        let text = crate::wire::messages::query_text(frame).map(|t| String::from_utf8_lossy(t).into_owned());
        let why = format!(
            "blastwall's catalog question, asked in the middle of its extended-protocol batch, failed ({}), which ends the batch on the server",
            e.message
        );
        let d = crate::guard::refusal(
            "unverifiable",
            "this message".into(),
            why,
            "Send it again in a batch of its own.",
            "blastwall",
            text.unwrap_or_default(),
        );
        self.mirror.failed(self.relay.syncs_sent());
        self.relay.fail_batch_here(crate::guard::refusal_message(&d));
    }
}
