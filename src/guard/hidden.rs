//! The guard's side of hidden callers of user functions (`catalog::HiddenCallers`): asking for a
//! database's set before a message is judged, and whether a statement mentions one.
//!
//! Owns: when the set is asked for and the mention test on a statement. Does not own: the set
//! (`catalog`) or what a mention leads to (`need`: the pre-check, like a function call).

use super::{Guard, SessionInfo, Verdict};
use crate::analyze::Statement;
use crate::catalog::{Catalog, Question};
use std::sync::atomic::Ordering;

impl Guard {
    /// Whether a text the prefilter found `harmless` mentions a hidden caller that reading
    /// runs (it then takes the full path, where `need` sends it to the pre-check); `Err`: the
    /// database's set must be asked first, for any text (a write is judged against it too).
    /// Nothing is looked at while the policy judges no function calls, and the answer is one
    /// map lookup once the set is known (empty in most databases).
    pub(super) fn mentions_hidden_caller(
        &self,
        sql: &[u8],
        info: &SessionInfo,
        harmless: bool,
    ) -> Result<bool, Verdict> {
        if info.database.is_empty() || !self.calls_matter.load(Ordering::Acquire) {
            return Ok(false);
        }
        let mentioned = self.catalog.with_hidden_callers(&info.database, |set| {
            // A maintenance command evaluates index expressions as a write does (its table
            // may not even be named): the full path judges it.
            harmless
                && !set.is_empty()
                && ((set.has_writers() && super::maintenance::word_in(sql))
                    || set.mentioned_in(&String::from_utf8_lossy(sql), false))
        });
        mentioned.ok_or_else(|| Verdict::Resolve(vec![Question::HiddenCallers]))
    }
}

/// Whether a statement may run a user function its text does not name, through a relation,
/// type or operator it mentions (unknown set: yes). Transaction control mentions none.
pub(super) fn hidden_call(st: &Statement, catalog: &Catalog, database: &str, writes: bool) -> bool {
    if database.is_empty() || st.transaction_control {
        return false;
    }
    // ANALYZE, REINDEX, CLUSTER … evaluate index expressions as a write does, and one that
    // names no table evaluates every table's.
    catalog
        .with_hidden_callers(database, |set| {
            if set.is_empty() {
                return false;
            }
            let maintenance = super::maintenance::of(&st.text);
            if maintenance.is_some_and(|m| !m.evaluates) {
                return false;
            }
            set.mentioned_in(&st.text, writes || maintenance.is_some())
                || maintenance.is_some_and(|m| m.every_table && set.has_writers())
        })
        .unwrap_or(true)
}
