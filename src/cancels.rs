//! Client cancels against a session whose server may be running blastwall's own statements.
//!
//! A CancelRequest is forwarded to the server with the backend key (`session::opening`), and
//! the server cancels whatever runs at that moment: the client's statement, or one of the
//! statements blastwall adds around a counted write (BEGIN, counter readings, SET
//! CONSTRAINTS, the contract rules, COMMIT). Each forward is counted here per backend key
//! (`Requests`), so that the session knows a cancel may have met its pre-check; `settle` then
//! makes the outcome what a direct cancel of the client's statement gives: blastwall's own
//! transaction rolled back, the client's block (if any) aborted, SQLSTATE 57014, and never the
//! CommandComplete of a write that was not kept.
//!
//! A cancel that meets one of blastwall's catalog questions, asked on the client's session
//! before its message is judged, ends that message with the server's 57014 ([`met_question`]).
//!
//! Also the cancel blastwall sends itself, for a session's write that DDL (of another session
//! or of another blastwall instance) may no longer wait for ([`by_blastwall`]).
//!
//! Owns: the per-key cancel counts and that repair, and that cancel. Does not own: forwarding the cancel
//! (`session::opening`), the check itself (`precheck`), relaying the outcome (`session`).

use crate::precheck::{Backend, Outcome, PrecheckError};
use crate::wire::messages::{self, be, fe, TxStatus};
use crate::wire::startup::CancelKey;
use bytes::BytesMut;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The cancels asked for each live backend key: how many were started, and how many were
/// delivered to the server (its postmaster closed the cancel connection).
#[derive(Default)]
pub struct Requests {
    keys: DashMap<CancelKey, Arc<Counts>>,
}

#[derive(Default)]
struct Counts {
    started: AtomicU64,
    delivered: AtomicU64,
}

/// A cancel being forwarded: counted as started now, as delivered when dropped.
pub struct Forwarding(Option<Arc<Counts>>);

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.delivered.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Where a session stood before its pre-check: the cancels delivered by then.
#[derive(Debug, Clone, Copy)]
pub struct Mark(u64);

impl Requests {
    /// Counts a cancel for `key` as started; hold the guard until it was forwarded.
    pub fn forwarding(&self, key: &CancelKey) -> Forwarding {
        let c = self.keys.entry(key.clone()).or_default().clone();
        c.started.fetch_add(1, Ordering::AcqRel);
        Forwarding(Some(c))
    }

    /// Before a pre-check: what had been delivered to the server.
    pub fn mark(&self, key: Option<&CancelKey>) -> Mark {
        Mark(self.counts(key).map_or(0, |c| c.delivered.load(Ordering::Acquire)))
    }

    /// After it: whether a cancel was started that may have reached the server during the
    /// check (any started but not delivered before the mark, or started since).
    pub fn since(&self, key: Option<&CancelKey>, mark: Mark) -> bool {
        self.counts(key).is_some_and(|c| c.started.load(Ordering::Acquire) > mark.0)
    }

    /// The session ended.
    pub fn forget(&self, key: &CancelKey) {
        self.keys.remove(key);
    }

    fn counts(&self, key: Option<&CancelKey>) -> Option<Arc<Counts>> {
        key.and_then(|k| self.keys.get(k).map(|c| c.clone()))
    }
}

/// Whether the answer to a catalog question blastwall asked on the client's session (before
/// judging the client's message, `session::checks`) is a cancel of the client's that met it
/// (57014 while a cancel was forwarded, `sent`), or a `statement_timeout` that aborted the
/// client's block. The server has then ended that statement as it would have ended the
/// client's, and aborted the client's block, if any: the client's message ends with the
/// same error and runs nothing (`session::questions`), and nothing is learned from the
/// answer (it says nothing of the catalog). A timeout outside a block is an unanswered
/// question like any other (the worst is assumed): a client whose `statement_timeout` is
/// shorter than a question still runs its statements.
pub fn met_question(answer: &crate::precheck::Answer, sent: bool) -> bool {
    let aborted = answer.status == Some(TxStatus::Failed);
    answer.error.as_ref().is_some_and(|e| e.code == CANCELED) && (sent || aborted)
}

/// SQLSTATE query_canceled.
const CANCELED: &str = "57014";

/// After a pre-check that a cancel may have met (the session was `before`): asks the server
/// where the session stands (a Sync), rolls back a transaction of blastwall's own still open,
/// and turns the outcome into the client's cancel wherever the cancel undid the write or
/// left the state other than the outcome says.
pub async fn settle(b: &mut Backend<'_>, before: TxStatus, outcome: Outcome) -> Result<Outcome, PrecheckError> {
    let opened = before == TxStatus::Idle;
    b.send(&crate::wire::encode(fe::SYNC, &[])).await?;
    let mut status = b.answer().await?.status;
    let mut rolled_back = false;
    // Each ROLLBACK may meet another cancel of the client's; a few tries, then the truth.
    for _ in 0..5 {
        if !opened || status == Some(TxStatus::Idle) {
            break;
        }
        status = b.query("ROLLBACK").await?.status;
        rolled_back = true;
    }
    let status = status.unwrap_or(TxStatus::Failed);
    if opened && status != TxStatus::Idle {
        return Err(PrecheckError::Query("blastwall's transaction could not be rolled back after a cancel".into()));
    }
    let aborted = !opened && status == TxStatus::Failed;
    Ok(match outcome {
        Outcome::Deliver { bytes, status: said, counts, kept } => {
            if rolled_back || (aborted && said != TxStatus::Failed) {
                cancelled(Some(&bytes), status)
            } else {
                Outcome::Deliver { bytes: unkept(bytes, said), status: said, counts, kept }
            }
        }
        Outcome::Unverifiable(_) if opened || aborted => cancelled(None, status),
        Outcome::Unverifiable(_) => {
            // Rolled back to blastwall's savepoint, the client's block still open: aborted, as
            // the cancel of its statement would have left it.
            let a = b.query("SELECT 'blastwall: canceled'::pg_catalog.int4").await?;
            cancelled(None, a.status.unwrap_or(TxStatus::Failed))
        }
        refuse @ Outcome::Refuse { .. } => refuse,
    })
}

/// The server's cancel of the client's statement after that statement's CommandComplete (a
/// cancelled COMMIT, SET CONSTRAINTS or reading behind it): the write was not kept, so its
/// tag and rows are dropped and the client sees the cancel alone. Other replies stay.
pub fn unkept(bytes: BytesMut, status: TxStatus) -> BytesMut {
    let frames = frames(&bytes);
    let cancel = frames.iter().position(|f| f[0] == be::ERROR_RESPONSE && is_cancel(f));
    let result = frames.iter().position(|f| ends_prefix(f[0]));
    match (cancel, result) {
        (Some(c), Some(r)) if r < c => rebuild(&frames[..r], Some(frames[c]), status),
        _ => bytes,
    }
}

/// The client's statement cancelled: what its messages answered before any result, then the
/// server's 57014 (or blastwall's, in the same words), then ReadyForQuery.
fn cancelled(held: Option<&[u8]>, status: TxStatus) -> Outcome {
    let frames = held.map(frames).unwrap_or_default();
    let end = frames.iter().position(|f| ends_prefix(f[0])).unwrap_or(frames.len());
    let error = frames.iter().copied().find(|f| f[0] == be::ERROR_RESPONSE && is_cancel(f));
    let bytes = rebuild(&frames[..end], error, status);
    Outcome::Deliver { bytes, status, counts: vec![], kept: None }
}

fn rebuild(prefix: &[&[u8]], error: Option<&[u8]>, status: TxStatus) -> BytesMut {
    let mut out = BytesMut::new();
    prefix.iter().for_each(|f| out.extend_from_slice(f));
    match error {
        Some(e) => out.extend_from_slice(e),
        None => out.extend_from_slice(&crate::said::canceled().encode()),
    }
    out.extend_from_slice(&messages::ready_for_query(status));
    out
}

/// Replies that show a statement's result or end: none of them goes before a cancel.
fn ends_prefix(tag: u8) -> bool {
    matches!(tag, b'C' | b'D' | b'E' | b'I' | b's' | b'Z' | b'G' | b'H' | b'W' | b'd' | b'c')
}

fn is_cancel(frame: &[u8]) -> bool {
    frame[5..].split(|&b| b == 0).any(|f| f.strip_prefix(b"C") == Some(CANCELED.as_bytes()))
}

/// The whole frames of a byte stream of backend messages.
fn frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if len < 4 || rest.len() < 1 + len {
            break;
        }
        out.push(&rest[..1 + len]);
        rest = &rest[1 + len..];
    }
    out
}

/// A future cancelling a statement, as a client's CancelRequest for its backend key would.
pub type Cancelling = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Cancels a session's statement by its backend key, as its client's CancelRequest would
/// (counted like one, so that a cancel meeting blastwall's own statements is settled); `why`
/// names, in the log, whose wait it ends when it cannot be delivered.
pub fn by_blastwall<'a>(
    shared: &'a Arc<crate::shared::Shared>,
    why: &'static str,
) -> impl Fn(CancelKey) -> Cancelling + 'a {
    move |key| {
        let shared = shared.clone();
        Box::pin(async move {
            let _forwarding = shared.cancels.forwarding(&key);
            if let Err(e) = shared.upstream.cancel(&key).await {
                tracing::warn!(error = %e, "cancelling a write for {why} failed");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(tag: u8, body: &[u8]) -> Vec<u8> {
        crate::wire::encode(tag, body).to_vec()
    }

    #[test]
    fn a_cancel_after_the_tag_drops_the_tag() {
        let cancel = m(b'E', b"SERROR\0C57014\0Mcanceling statement due to user request\0\0");
        let bytes = [m(b'1', b""), m(b'2', b""), m(b'C', b"UPDATE 1\0"), cancel.clone(), m(b'Z', b"I")].concat();
        let out = unkept(BytesMut::from(&bytes[..]), TxStatus::Idle);
        assert_eq!(&out[..], &[m(b'1', b""), m(b'2', b""), cancel, m(b'Z', b"I")].concat()[..]);
        // Another error after the tag (a deferred constraint) is the server's to show.
        let other = m(b'E', b"SERROR\0C23503\0Mfk\0\0");
        let bytes = [m(b'C', b"UPDATE 1\0"), other, m(b'Z', b"I")].concat();
        assert_eq!(&unkept(BytesMut::from(&bytes[..]), TxStatus::Idle)[..], &bytes[..]);
    }
}
