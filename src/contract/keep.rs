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
    /// A dry-run finding: the write was undone.
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
        b.commit_sent |= keep.contains("COMMIT");
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
            Some(Mode::DryRun) => {
                b.query(undo).await?;
                Ok(Kept::DryRun(d))
            }
            _ => {
                if check.keep_failed(&a.rows, error).is_none() {
                    a.error = None;
                }
                Ok(Kept::Kept(a, d))
            }
        }
    }

    /// In a dry run: what the rules would say of the write, which is then undone (`undo`)
    /// with its recorded run and spent budget — the undo sent with the contract SQL, in the
    /// round trip the undo makes anyway.
    pub async fn dry_run(&self, b: &mut Backend<'_>, undo: &str) -> Result<Decision, PrecheckError> {
        let Some(check) = self.check() else {
            b.query(undo).await?;
            return Ok(Decision::default());
        };
        let mut out = crate::wire::messages::query(check.sql()).to_vec();
        out.extend_from_slice(&crate::wire::messages::query(undo));
        b.send(&out).await?;
        let a = b.answer().await?;
        b.answer().await?;
        Ok(check.judge(&a.rows, a.error.as_ref().map(|e| e.message.as_str())))
    }

    /// In the middle of an extended-protocol batch, behind the client's counted Execute: the
    /// contract SQL as readings on blastwall's statement `name` (the client's own Sync, or
    /// its COMMIT, keeps the write with its record). `None`: no rule applies; else the
    /// decision, and whether the server failed the batch (the SQL stopped the write, or the
    /// state could not be used).
    pub async fn in_batch(&self, b: &mut Backend<'_>, name: &str) -> Result<Option<(Decision, bool)>, PrecheckError> {
        let Some(check) = self.check() else { return Ok(None) };
        let parts = pg_query::split_with_scanner(check.sql())
            .map(|v| v.into_iter().map(str::to_string).collect())
            .unwrap_or_else(|_| vec![check.sql().to_string()]);
        let (rows, error) = match crate::precheck::inbatch::run_after(b, name, &parts).await? {
            Ok(rows) => (rows, None),
            Err(f) => (Vec::new(), Some(crate::wire::messages::error_fields(&f).unwrap_or_default().message)),
        };
        let d = check.judge(&rows, error.as_deref());
        if d.findings.iter().any(|f| f.rule == "contract-state") {
            self.catalog.learn_state_ready(self.database, check.schema(), false);
        }
        Ok(Some((d, error.is_some())))
    }
}
