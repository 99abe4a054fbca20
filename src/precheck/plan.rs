//! What the guard asks the pre-check to do with a statement (`CheckPlan`): the statement, its
//! verb and target, dry run or not, the warning to send, an override, the estimate to try
//! first and what the catalog may prove of a point write.
//!
//! Owns: the plan and what it says of itself. Does not own: building it (`guard`) or running
//! it (`precheck`).

use super::point;
use crate::wire::messages::ProxyMessage;

/// What the guard asks the pre-check to do with a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPlan {
    /// The statement word for messages (`DELETE`, `UPDATE`, …).
    pub verb: &'static str,
    /// The relation the statement names (as written), reported first among the counts.
    pub target: Option<crate::analyze::RelName>,
    /// Always roll back, and report what it would have done.
    pub dry_run: bool,
    /// Why the statement is in dry-run (the static findings), for the report.
    pub dry_run_reason: Option<String>,
    /// The statement's text, for the fingerprint.
    pub statement: String,
    /// What it does beyond the rows the counters count (`remove every row of public.t`,
    /// `drop table public.t`), for a dry run's report.
    pub effects: Vec<String>,
    /// A warning to send before the statement's results (warn-mode static findings).
    pub notice: Option<ProxyMessage>,
    /// The statement carried an override directive from a role that may not use it: a
    /// refusal says it was ignored.
    pub ignored_directive: bool,
    /// The rule of that warning, for the audit trail and the metrics.
    pub warned_rule: Option<&'static str>,
    /// An override directive from a role allowed to use it: this many rows at most, in place
    /// of the policy's limits.
    pub override_rows: Option<crate::analyze::directive::Override>,
    /// The statement's text for an EXPLAIN estimate first (a single statement without
    /// parameters), so that one far over its limit is refused without running.
    pub estimate_sql: Option<String>,
    /// For an extended-protocol batch: the EXPLAIN of the statement bound to the client's own
    /// parameter values (Parse, Bind, Execute, Sync), built by the session.
    pub estimate_msgs: Option<bytes::Bytes>,
    /// The parameter types of the client's Parse (extended protocol), for the estimate.
    pub param_types: Vec<u32>,
    /// A point write the catalog may prove small enough to run uncounted (`point`).
    pub point: Option<point::Point>,
    /// The policy tables whose text rules the judgement applied to what it writes, when
    /// nothing else can change a policy table's rows (`guard::reached`): rows of another
    /// policy table with such rules changed refuse it (`unjudged-write`).
    pub reached: Option<Vec<crate::policy::ReachedTable>>,
    /// The names its writes were judged by, with the relation each led to then: read again
    /// around its run (`named`).
    pub names: Vec<(String, u32)>,
    /// When not empty, the only reason it is counted: the protected sequences its prepared
    /// `nextval` calls move, known from its text (`guard::need`). Each Execute spends them from
    /// the creep budget and runs uncounted when they fit (`session::extended`).
    pub known_steps: Vec<KnownSteps>,
    /// Nothing but its `nextval` calls of a protected sequence asked for the count (no user
    /// code, write or anything unseen): when they are a few calls run once each, a larger
    /// move it reads is another session's (`slices`).
    pub only_moves: bool,
    /// The protected sequences (schema, name) it takes values of ahead
    /// (`guard::steps::takes_ahead`): refused where a rollback of the client's block would put
    /// the sequence back under them, or while a sequence's creep budget has no room for them,
    /// at each Execute too (`session::extended`).
    pub takes_ahead: Vec<(String, String)>,
}

/// A protected sequence's steps known from a statement's text: the sequence as its policy
/// lists it (schema, name), and the calls of it, each run once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownSteps {
    pub schema: String,
    pub name: String,
    pub steps: u64,
}

impl CheckPlan {
    /// Whether the values it took of a protected sequence may be the client's now: it takes
    /// them ahead by its text (`takes_ahead`: a `nextval` call, a cursor over one), or runs
    /// code of its own, which may return them (a function of `nextval` calls) and whose rows
    /// explain none of its move. A block's put-back never goes under such a move
    /// (`session::undone`). Asked only of a write kept with moves in a client's block.
    pub fn hands_out(&self) -> bool {
        !self.takes_ahead.is_empty() || super::slices::runs_code(&self.statement)
    }

    /// Whether its only count is its known sequence steps (and it is not a dry run, which is
    /// always counted and rolled back).
    pub fn steps_only(&self) -> bool {
        !self.known_steps.is_empty() && !self.dry_run
    }

    /// What the policy judges the measured counts of this plan by.
    pub fn measured(&self) -> crate::policy::Measured<'_> {
        crate::policy::Measured {
            verb: self.verb,
            target: self.target.as_ref(),
            override_rows: self.override_rows.as_ref(),
            statement: &self.statement,
            reached: self.reached.as_deref(),
        }
    }
}
