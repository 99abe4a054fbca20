//! A write kept in one round trip (`once`) sent as one extended-protocol batch: the reading
//! before (when the counters do not start at zero), the client's Query text as Parse, Bind and
//! Execute on a statement and portal of blastwall's own name (never spliced into a string of
//! blastwall's), the reading after with its assertions, the check of the prepared readings (on
//! the unnamed statement, `prepared::Prepared::check_unnamed`), and one Sync. PostgreSQL runs everything before a Sync in
//! one implicit transaction and commits it at the Sync unless something failed, so no BEGIN
//! or COMMIT is sent: a failed assertion (over a limit, counting off, the proof no longer
//! true, a prepared reading replaced) makes the server skip to the Sync and roll the write
//! back, exactly as the COMMIT behind a failed assertion did. The server answers with one
//! ReadyForQuery (one flush) instead of four.
//!
//! Taken only where nothing would wait for the COMMIT or need a block: no table the write
//! reaches has a deferrable trigger (asserted by the reading after it), no `statement_timeout`
//! of blastwall's (`SET LOCAL` needs a block), the readings prepared on the session, and the
//! client's message a single Query. The client sees what its Query would have sent: the
//! extended protocol's completions (Parse, Bind, Close) and everything of blastwall's are
//! dropped.
//!
//! Owns: that batch and splitting its answer. Does not own: what the readings are (`stats`,
//! `once`) or the verdict (`verify`).

use super::backend::data_row;
use super::{Answer, Backend, Held, PrecheckError};
use crate::wire::messages::{self, be, fe};
use bytes::BytesMut;

/// The client's Query text, when `msgs` is exactly one Query message of UTF-8 text.
pub fn query_text(msgs: &[u8]) -> Option<&str> {
    let (&tag, rest) = msgs.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    if tag != fe::QUERY || len + 1 != msgs.len() || len < 5 {
        return None;
    }
    let text = msgs.get(5..msgs.len() - 1)?;
    std::str::from_utf8(text).ok()
}

/// The batch: `before` (the reading before, prepared when needed), the client's `text`,
/// `after` (the reading after, prepared when needed) and `check`, one Sync.
pub fn batch(before: &[u8], text: &str, after: &[u8], check: &[&[u8]; 2]) -> BytesMut {
    let size = before.len() + text.len() + after.len() + check[0].len() + check[1].len() + 160;
    let mut out = BytesMut::with_capacity(size);
    out.extend_from_slice(before);
    out.extend_from_slice(&super::own::client_text(text));
    out.extend_from_slice(after);
    check.iter().for_each(|c| out.extend_from_slice(c));
    out.extend_from_slice(&crate::wire::encode(fe::SYNC, &[]));
    out
}

/// The answer to [`batch`], split as the separate exchanges it replaces would have answered.
#[derive(Debug, Default)]
pub struct Answers {
    /// The reading before (its rows, or its error: then nothing after it ran).
    pub open: Answer,
    /// The client's replies, ending with the batch's ReadyForQuery.
    pub held: Held,
    /// The reading after and the check (their rows, or the first error).
    pub after: Answer,
}

/// Where in the batch an answer is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Before,
    Client,
    After,
}

/// Reads the answer to [`batch`] up to its ReadyForQuery; `before`: the batch has a reading
/// before the client's statement. The client's replies are held as `Backend::held` holds them
/// (bounded by `max_bytes` and the replies all sessions may hold); blastwall's are read.
pub async fn read(b: &mut Backend<'_>, before: bool, max_bytes: usize) -> Result<Answers, PrecheckError> {
    let mut out = Answers::default();
    let mut part = if before { Part::Before } else { Part::Client };
    loop {
        let f = match b.next_frame().await {
            Ok(f) => f,
            Err(e) => {
                // The server ended the session: what it answered the client before is its.
                if b.fatal.is_some() {
                    out.held.frames.iter().for_each(|f| b.for_client.extend_from_slice(&f.bytes));
                }
                return Err(e);
            }
        };
        match (f.tag, part) {
            (be::READY_FOR_QUERY, _) => {
                let status = messages::ready_status(&f).ok();
                (out.open.status, out.after.status, out.held.status) = (status, status, status);
                out.held.frames.push(f);
                return Ok(out);
            }
            // The completions of the extended protocol's messages, which a Query does not send.
            (b'1' | b'2' | b'3', _) => {}
            (_, Part::Client) => {
                let done = f.tag == b'C';
                b.hold(&mut out.held, f, max_bytes).await;
                if done {
                    part = Part::After;
                }
            }
            // Notifications and parameter changes are the client's, whenever they come.
            (b'A' | be::PARAMETER_STATUS, _) => b.for_client.extend_from_slice(&f.bytes),
            (tag, Part::Before | Part::After) => {
                let a = if part == Part::Before { &mut out.open } else { &mut out.after };
                match tag {
                    b'D' => a.rows.push(data_row(&f)?),
                    // The first error: the server skips the rest to the Sync.
                    be::ERROR_RESPONSE => a.error = Some(messages::error_fields(&f)?),
                    b'C' if part == Part::Before => part = Part::Client,
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_whole_query_of_utf8_text() {
        let q = |body: &[u8]| {
            let mut b = body.to_vec();
            b.push(0);
            crate::wire::encode(fe::QUERY, &b).to_vec()
        };
        assert_eq!(query_text(&q(b"DELETE FROM t WHERE id = 1;")), Some("DELETE FROM t WHERE id = 1;"));
        let mut two = q(b"DELETE FROM t WHERE id = 1");
        two.extend_from_slice(&q(b"SELECT 1"));
        assert_eq!(query_text(&two), None);
        assert_eq!(query_text(&q(b"DELETE \xff")), None);
        assert_eq!(query_text(&crate::wire::encode(fe::SYNC, &[])), None);
        assert_eq!(query_text(&[]), None);
    }
}
