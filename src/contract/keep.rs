//! The pre-check's side of the anomaly and budget rules: at the point where a counted write
//! would be kept, the contract SQL goes out with the keep behind it in the same Query (no
//! extra round trip), and its answer decides whether the write stays.
//!
//! Owns: that exchange and what its answer means for the keep. Does not own: the SQL or its
//! reading (`sql`, `verdict`), running the write (`precheck`).

use super::{enabled, fingerprint, prepare, Check, Counted, Request};
use crate::policy::{Decision, Mode, Policy, SessionView};
use crate::precheck::{Answer, Backend, CheckPlan, PrecheckError, TableCount};

/// What a counted write is, for the contract.
pub struct Write<'a> {
    pub plan: &'a CheckPlan,
    pub counts: &'a [TableCount],
    pub who: SessionView<'a>,
    pub policy: &'a Policy,
    pub catalog: &'a crate::catalog::Catalog,
    pub database: &'a str,
    /// The transaction is blastwall's own (the session was idle).
    pub opened: bool,
}

/// The end of a keep.
pub enum Kept {
    /// The keep ran: its answer (an error is the keep's own, a deferred constraint at
    /// COMMIT), and the rules' warnings.
    Kept(Answer, Decision),
    /// An enforce-mode finding: the write was undone.
    Refused(Decision),
    /// A dry-run finding: the transaction is aborted and not undone yet.
    DryRun(Decision),
}

impl Write<'_> {
    fn check(&self) -> Option<Check> {
        if !enabled(self.policy) {
            return None;
        }
        let counts: Vec<Counted> = self
            .counts
            .iter()
            .map(|c| Counted { oid: self.catalog.oid_of(self.database, &c.schema, &c.name), ..Counted::from(c) })
            .collect();
        prepare(&Request {
            counts: &counts,
            target: self.plan.target.as_ref(),
            verb: self.plan.verb,
            fingerprint: &fingerprint(&self.plan.statement),
            statement: &self.plan.statement,
            override_rows: self.plan.override_rows.as_ref().map(|o| o.rows),
            who: self.who,
            policy: self.policy,
            state_ready: self.catalog.state_ready(self.database, &self.policy.state.schema),
        })
    }

    /// Sends `keep` (COMMIT / RELEASE SAVEPOINT) behind the contract SQL, when a rule applies;
    /// undoes the write (`undo`) when an enforce-mode finding stops it.
    pub async fn keep(&self, b: &mut Backend<'_>, keep: &str, undo: &str) -> Result<Kept, PrecheckError> {
        let Some(check) = self.check() else { return Ok(Kept::Kept(b.query(keep).await?, Decision::default())) };
        let mut a = b.query(&format!("{}; {keep}", check.sql())).await?;
        let error = a.error.as_ref().map(|e| e.message.as_str());
        let d = check.judge(&a.rows, error);
        // Kept: the state is there once committed. Stopped by a rule: as known before (what
        // this transaction created is undone with it). Failed: create or check it again.
        let kept = !matches!(d.mode(), Some(Mode::Enforce | Mode::DryRun));
        if kept || !d.findings.iter().any(|f| f.rule != "contract-state") {
            let ready = kept && check.judged_ready(error) && self.opened;
            self.catalog.learn_state_ready(self.database, check.schema(), ready);
        }
        match d.mode() {
            Some(Mode::Enforce) => {
                b.query(undo).await?;
                Ok(Kept::Refused(d))
            }
            Some(Mode::DryRun) => Ok(Kept::DryRun(d)),
            _ => {
                if check.keep_failed(&a.rows, error).is_none() {
                    a.error = None;
                }
                Ok(Kept::Kept(a, d))
            }
        }
    }

    /// In a dry run: what the rules would say of the write (it is undone after, with its
    /// recorded run and spent budget).
    pub async fn dry_run(&self, b: &mut Backend<'_>) -> Result<Decision, PrecheckError> {
        let Some(check) = self.check() else { return Ok(Decision::default()) };
        let a = b.query(check.sql()).await?;
        Ok(check.judge(&a.rows, a.error.as_ref().map(|e| e.message.as_str())))
    }
}

/// Whether a rule applies to a write counted in the middle of a batch, where nothing can be
/// sent after it before the client's own Sync: it is refused (it fails closed).
pub fn in_batch(
    plan: &CheckPlan,
    counts: &[TableCount],
    who: SessionView<'_>,
    policy: &Policy,
    catalog: &crate::catalog::Catalog,
    database: &str,
) -> bool {
    Write { plan, counts, who, policy, catalog, database, opened: false }.check().is_some()
}
