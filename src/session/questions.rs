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
//! Also: the answers assumed where no question can be asked (in the middle of a batch, in a
//! failed transaction): the worst (`assume_answers`).
//!
//! Owns: that answer, and those assumptions. Does not own: which answers are a cancel
//! (`cancels`), asking (`checks`).

use super::Session;
use crate::precheck::Answer;
use crate::wire::messages::{fe, ProxyMessage};
use crate::wire::Frame;

impl Session {
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

    /// No catalog question can be asked in the middle of an extended batch: answers that
    /// assume the worst (a write to count; the policy's column names).
    pub(super) fn assume_answers(&mut self, questions: &[crate::catalog::Question]) {
        let (catalog, db) = (&self.shared.guard.catalog, &self.info.database);
        let policy = self.shared.guard.policy();
        for q in questions {
            match q {
                crate::catalog::Question::Indirect(n) => catalog.assume_indirect(db, n),
                crate::catalog::Question::HiddenCallers => catalog.assume_hidden_callers(db),
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
                    catalog.learn_owners(db, seq, &rows);
                }
                // Fail closed: every protected column taken as minted.
                crate::catalog::Question::Minted { schema, table } => {
                    let t = policy.tables.iter().find(|t| &t.schema == schema && &t.name == table);
                    let cols = t.map(|t| t.protected_columns.iter().collect::<Vec<_>>()).unwrap_or_default();
                    let rows: Vec<_> =
                        cols.iter().map(|c| vec![Some("1".into()), Some(c.to_string()), Some("s".into())]).collect();
                    catalog.learn_minted(db, schema, table, &rows);
                }
                // Fail closed: judged as every relation the name may be, this once.
                q @ (crate::catalog::Question::Identities
                | crate::catalog::Question::Relations(_)
                | crate::catalog::Question::Constraint { .. }) => crate::names::assume(q, &mut self.info.names),
                crate::catalog::Question::Columns { schema, table } => {
                    if let Some(t) = policy.tables.iter().find(|t| &t.schema == schema && &t.name == table) {
                        catalog.learn_columns(db, schema, table, &t.protected_columns, &[]);
                    }
                }
            }
        }
    }
}
