//! The bound on blastwall's own EXPLAIN before a counted write: the estimate runs in a
//! savepoint of its own under a `statement_timeout` of [`ESTIMATE_BUDGET_MS`], then is rolled
//! back to it (which also restores the session's `statement_timeout`, in blastwall's
//! transaction or the client's block alike). An estimate that fails or takes longer is simply
//! not had: the statement is then counted exactly, as one without an estimate. Without it, an
//! `EXPLAIN (VERBOSE)` of a deeply nested statement cost the server minutes of CPU and over a
//! gigabyte per backend for a statement that itself takes seconds (red-team F7): VERBOSE
//! deparses every node's output, which is what gives the ModifyTable's schema.
//!
//! Owns: those wrapping messages and reading their answers. Does not own: the estimate's
//! messages or what its numbers mean (`estimate`), the check around it (`verify`).

use super::{own, Backend, PrecheckError};
use bytes::BytesMut;

/// The most server time (per message of the estimate) blastwall spends on its own EXPLAIN.
pub const ESTIMATE_BUDGET_MS: u64 = 500;

const SAVEPOINT: &str = "blastwall_estimate";

/// `estimate` (its messages, ending in Sync) inside the bounded savepoint: three batches.
pub(super) fn wrapped(estimate: &[u8]) -> BytesMut {
    // The timeout in a batch of its own: the server arms `statement_timeout` at a batch's
    // first message with the value then in force.
    let mut out = own::messages(&format!("SAVEPOINT {SAVEPOINT}; SET LOCAL statement_timeout = {ESTIMATE_BUDGET_MS}"));
    out.extend_from_slice(estimate);
    out.extend_from_slice(&own::messages(&format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}")));
    out
}

/// Reads the answers of [`wrapped`]: the estimate's rows when it was had in time (empty when
/// not), and whether the session is back where it stood before (else the caller undoes its
/// check and opens it again).
pub(super) async fn answers(b: &mut Backend<'_>) -> Result<(Vec<Vec<Option<String>>>, bool), PrecheckError> {
    let opened = b.answer().await?;
    let ex = b.answer().await?;
    let restored = b.answer().await?;
    let rows = match (&opened.error, &ex.error) {
        (None, None) => ex.rows,
        _ => Vec::new(),
    };
    if ex.error.as_ref().is_some_and(|e| e.code == "57014") {
        tracing::info!(
            "the planner's estimate took longer than {ESTIMATE_BUDGET_MS} ms: the write is counted without it"
        );
    }
    Ok((rows, opened.error.is_none() && restored.error.is_none()))
}
