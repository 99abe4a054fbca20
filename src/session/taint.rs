//! Asking the server whether the session's temporary schema holds code (`catalog::taint`), on
//! the session itself when the guard asks (`Question::Taint`): before a new session's first
//! statement that may run code (a pooler behind blastwall may hand it a server session another
//! client filled), then only after a message that may have changed the schema.
//!
//! Owns: that one question's I/O. Does not own: the state (`catalog::Taint`), when it goes
//! stale (`guard::taint`), or the other catalog questions (`checks`).

use super::SessionError;
use crate::catalog::Taint;
use crate::precheck::Backend;
use crate::wire::messages::TxStatus;

/// Asks, and learns the answer (an error, such as a catalog the role cannot read: tainted). A
/// session never asked asks first whether its server session ever had a temporary schema: if
/// not, it is clean without the full query's planning.
pub(super) async fn ask(
    backend: &mut Backend<'_>,
    taint: &mut Taint,
    tx: TxStatus,
    database: &str,
) -> Result<(), SessionError> {
    let lookup = |e| SessionError::Closed(format!("catalog lookup: {e}"));
    let in_block = tx != TxStatus::Idle;
    if taint.is_unasked() {
        let first = backend.query(crate::catalog::taint_first_query()).await.map_err(lookup)?;
        if first.error.is_none() && crate::catalog::never_had_one(&first.rows) {
            taint.learn(Some(&[]), in_block);
            tracing::debug!(database, "a new session's server session never had a temporary schema");
            return Ok(());
        }
    }
    let answer = backend.query(&crate::catalog::taint_query()).await.map_err(lookup)?;
    taint.learn(answer.error.is_none().then_some(&answer.rows[..]), in_block);
    tracing::info!(database, tainted = taint.runs_code(), what = %taint.what(), "asked whether the session's temporary schema holds code");
    Ok(())
}
