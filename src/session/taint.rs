//! Asking the server whether the session's temporary schema holds code (`catalog::taint`), on
//! the session itself when the guard asks (`Question::Taint`: only after a message that may
//! have changed the schema, so never for a session that sends none).
//!
//! Owns: that one question's I/O. Does not own: the state (`catalog::Taint`), when it goes
//! stale (`guard::taint`), or the other catalog questions (`checks`).

use super::SessionError;
use crate::catalog::Taint;
use crate::precheck::Backend;
use crate::wire::messages::TxStatus;

/// Asks, and learns the answer (an error, such as a catalog the role cannot read: tainted).
pub(super) async fn ask(
    backend: &mut Backend<'_>,
    taint: &mut Taint,
    tx: TxStatus,
    database: &str,
) -> Result<(), SessionError> {
    let answer = backend
        .query(&crate::catalog::taint_query())
        .await
        .map_err(|e| SessionError::Closed(format!("catalog lookup: {e}")))?;
    taint.learn(answer.error.is_none().then_some(&answer.rows[..]), tx != TxStatus::Idle);
    tracing::info!(database, tainted = taint.runs_code(), what = %taint.what(), "asked whether the session's temporary schema holds code");
    Ok(())
}
