//! Asking the server whether the session's temporary schema holds code (`catalog::taint`), on
//! the session itself when the guard asks (`Question::Taint`): before a new session's first
//! statement that may run code (a pooler behind blastwall may hand it a server session another
//! client filled), then only after a message that may have changed the schema — and, behind
//! a pooler (seen by the first answer), before the first such statement of every transaction.
//!
//! Owns: reading that one question's answer (asked with the others, so that a cancel that
//! meets it is the client's: `checks`, `questions`). Does not own: the state
//! (`catalog::Taint`), when it goes stale (`guard::taint`), or the other catalog questions
//! (`checks`).

use crate::catalog::Taint;
use crate::wire::messages::TxStatus;

/// A session never asked asks first whether its server session ever had a temporary schema
/// (`catalog::taint_first_query`): if not, it is clean without the full query's planning.
/// The same answer says whether a pooler stands between blastwall and the server (the process
/// answering is not the one of the client's BackendKeyData, `key_pid`): then the answer lasts
/// one transaction (`Taint::transaction_ended`), the next one's first statement that may run
/// code asking again. Returns whether that answer settled it.
pub(super) fn settled_by_first(
    first: &crate::precheck::Answer,
    taint: &mut Taint,
    tx: TxStatus,
    database: &str,
    key_pid: Option<i32>,
) -> bool {
    let was_pooled = taint.pooled();
    taint.learn_backend(first.error.is_none().then_some(&first.rows[..]), key_pid);
    if taint.pooled() && !was_pooled {
        tracing::debug!(
            database,
            "a pooler between blastwall and the server: a session's taint is asked in each transaction"
        );
    }
    if first.error.is_none() && crate::catalog::never_had_one(&first.rows) {
        taint.learn(Some(&[]), tx != TxStatus::Idle);
        crate::catalog::learn_first_path(taint, &first.rows);
        tracing::debug!(database, "a new session's server session never had a temporary schema");
        return true;
    }
    false
}

/// Learns the answer of the taint question, asked on the session (`checks::resolve`; an
/// error, such as a catalog the role cannot read: tainted).
pub(super) fn learn(answer: &crate::precheck::Answer, taint: &mut Taint, tx: TxStatus, database: &str) {
    taint.learn(answer.error.is_none().then_some(&answer.rows[..]), tx != TxStatus::Idle);
    tracing::info!(database, tainted = taint.runs_code(), what = %taint.what(), "asked whether the session's temporary schema holds code");
}

/// Learns the answer of the path's question alone (`catalog::path_query`), asked when only a
/// message that may change the session's `search_path` ran since the taint was learned.
pub(super) fn learn_path(answer: &crate::precheck::Answer, taint: &mut Taint, tx: TxStatus, database: &str) {
    taint.learn_path(answer.error.is_none().then_some(&answer.rows[..]), tx != TxStatus::Idle);
    tracing::debug!(database, counted = taint.runs_code(), why = %taint.reason(), "asked what the session's search_path leads to");
}
