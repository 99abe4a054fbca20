//! A protocol Parse whose analysis may run user code (issue 11, third adversarial pass F5).
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
use crate::precheck::CheckPlan;
use crate::wire::messages::TxStatus;
use crate::wire::Frame;

impl Session {
    /// Whether the server's analysis of a Parse of `sql`, judged to be counted, may run code.
    pub(super) fn parse_runs_code(&self, sql: &[u8]) -> bool {
        self.shared.guard.parses_code(sql, &self.info)
    }

    /// A Parse whose analysis may run code, where it cannot be counted (see the module's
    /// comment): refused, unless the server is certain to refuse it unanalyzed.
    pub(super) fn parse_not_alone(&mut self, f: &Frame, op: Op, plan: &CheckPlan) {
        if self.server_refuses_unanalyzed() {
            self.forward_op(f, op);
            return;
        }
        let policy = self.shared.guard.policy();
        let why = "its Parse may run user code while the server analyzes it (a literal converted to a type whose input runs a function, such as an array of a domain with a CHECK), and a Parse can be counted only first in its batch, followed by nothing but its Bind, Describe, Execute and Sync".to_string();
        self.refuse_in_batch(super::checks::uncounted(plan, why, &policy));
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
