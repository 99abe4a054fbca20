//! Asking the server whether the session's temporary schema holds code (`catalog::taint`), on
//! the session itself when the guard asks (`Question::Taint`: only after a message that may
//! have changed the schema, so never for a session that sends none).
//!
//! Owns: reading that one question's answer (asked with the others, so that a cancel that
//! meets it is the client's: `checks`, `questions`). Does not own: the state
//! (`catalog::Taint`), when it goes stale (`guard::taint`), or the other catalog questions
//! (`checks`).

use crate::catalog::Taint;
use crate::wire::messages::TxStatus;

/// Learns the answer of the taint question, asked on the session (`checks::resolve`; an
/// error, such as a catalog the role cannot read: tainted).
pub(super) fn learn(answer: &crate::precheck::Answer, taint: &mut Taint, tx: TxStatus, database: &str) {
    taint.learn(answer.error.is_none().then_some(&answer.rows[..]), tx != TxStatus::Idle);
    tracing::info!(database, tainted = taint.runs_code(), what = %taint.what(), "asked whether the session's temporary schema holds code");
}
