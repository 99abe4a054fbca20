//! Counting one Execute where it stands in the client's extended-protocol batch: blastwall's
//! own counter readings go around the client's Execute as extended-protocol messages on a
//! statement and portal of blastwall's, followed by a Flush, and only the Execute's replies
//! are held. Nothing the client sent after the Execute is on the wire yet.
//!
//! Owns: that conversation (I/O only). Does not own: judging the numbers (`policy`) or what
//! the relay does with them (`session`).

use super::{data_row, Backend, PrecheckError};
use crate::wire::messages::{be, fe};
use crate::wire::Frame;
use bytes::BytesMut;

/// What to send.
pub struct Request<'a> {
    /// The client's Execute message, as it came.
    pub execute: &'a [u8],
    /// The counter reading (see `stats::stats_sql`).
    pub stats_sql: &'a str,
    /// blastwall's statement and portal name (never one of the client's).
    pub name: &'a str,
    /// The most bytes of the Execute's replies held while counting.
    pub max_hold: usize,
    /// The protected sequences to put back, from the reading before, should the count be
    /// abandoned (its client left while the Execute ran): kept in `Backend::put_back`.
    pub candidates: &'a Candidates<'a>,
}

/// The put-back candidates of a reading's rows (`putback::candidates`, as the session judges).
pub type Candidates<'a> = dyn Fn(&[Vec<Option<String>>]) -> Vec<super::putback::Moved> + Sync + 'a;

/// What happened.
#[derive(Debug)]
pub enum Counted {
    /// A reading failed with this error: the server now skips to the client's Sync (the
    /// Execute did not run, or its transaction is aborted).
    /// `rows`: the reading before, when it was the reading after that failed.
    ReadingFailed { before: bool, error: Frame, rows: Rows },
    /// The client's Execute failed by itself: its replies, ending with the server's error.
    /// The server skips to Sync, as it would have directly. `before`: the reading before it
    /// (the protected sequences it may have moved, `putback`).
    Failed { replies: Vec<Frame>, before: Rows },
    /// It ran: its replies (dropped past the limit) and the two readings' rows.
    Ran { replies: Vec<Frame>, overflowed: bool, before: Rows, after: Rows },
}

pub type Rows = Vec<Vec<Option<String>>>;

/// Frames a reading sent as text answers: Close both, Parse, Bind, Execute, Close both.
const READING_REPLIES: usize = 7;

/// Sends the readings around the client's Execute and reads everything back. Messages that
/// arrive meanwhile and belong to the client (notifications, parameter changes; notices
/// inside the Execute) are kept in order: in `b.for_client` when outside the Execute, in its
/// replies inside it.
pub async fn count_execute(b: &mut Backend<'_>, req: Request<'_>) -> Result<Counted, PrecheckError> {
    // On the session's prepared statement (checked after the Execute, `prepared`), or as text.
    let prepared = b.prepared.as_deref_mut().map(|p| p.reading(req.stats_sql));
    let (first, again, check) = match &prepared {
        Some(r) => (
            (r.first.clone(), r.first_replies),
            (r.again.clone(), r.again_replies),
            Some(super::prepared::check_on(req.name, &[r])),
        ),
        None => {
            let text = reading(req.name, req.stats_sql);
            ((text.clone(), READING_REPLIES), (text, READING_REPLIES), None)
        }
    };
    let mut out = BytesMut::new();
    // Read before too, even for the first statement of a transaction: on PostgreSQL 15 the
    // "transaction" counters also hold earlier transactions' counts until the backend
    // flushes its statistics (at most once a second, when idle).
    out.extend_from_slice(&first.0);
    // Flushed before the Execute runs: the reading before is read while it runs, so that a
    // client that leaves meanwhile has what it moved put back (fiftieth pass H2).
    out.extend_from_slice(&crate::wire::encode(fe::FLUSH, &[]));
    out.extend_from_slice(req.execute);
    out.extend_from_slice(check.as_deref().unwrap_or_default());
    out.extend_from_slice(&again.0);
    out.extend_from_slice(&crate::wire::encode(fe::FLUSH, &[]));
    b.send(&out).await?;
    let before = match read_reading(b, first.1).await? {
        Ok(rows) => rows,
        Err(error) => {
            b.forget_prepared();
            return Ok(Counted::ReadingFailed { before: true, error, rows: Vec::new() });
        }
    };
    b.confirm_prepared(prepared.as_ref());
    // Fiftieth pass H2: a client that left while the Execute ran (`BEGIN; SELECT
    // count(nextval(…)) FROM generate_series(…)` as one Query, run as a batch) had nothing put
    // back.
    b.put_back = (req.candidates)(&before);
    let mut replies = Vec::new();
    let mut held = 0usize;
    let mut overflowed = false;
    loop {
        let f = b.next_frame().await?;
        match f.tag {
            be::ERROR_RESPONSE => {
                replies.push(f);
                return Ok(Counted::Failed { replies, before });
            }
            // COPY FROM STDIN would wait for the client, who is not listening now.
            be::COPY_IN_RESPONSE => {
                let mut body = b"blastwall: COPY FROM STDIN cannot run inside a counted write".to_vec();
                body.push(0);
                b.send(&crate::wire::encode(fe::COPY_FAIL, &body)).await?;
                continue;
            }
            _ => {}
        }
        let last = matches!(f.tag, b'C' | b'I' | b's');
        let small = matches!(f.tag, b'N' | b'A' | be::PARAMETER_STATUS);
        // Past either bound nothing more is held but notices (all-session budget: `hold`).
        if !small && (overflowed || held + f.bytes.len() > req.max_hold || !b.holding.take(f.bytes.len()).await) {
            overflowed = true;
        } else {
            held += f.bytes.len();
            replies.push(f);
        }
        if last {
            break;
        }
    }
    let checked = match check {
        Some(_) => read_reading(b, READING_REPLIES).await?.map(|_| ()),
        None => Ok(()),
    };
    let after = match checked {
        Ok(()) => read_reading(b, again.1).await?,
        Err(e) => Err(e),
    };
    match after {
        Ok(after) => Ok(Counted::Ran { replies, overflowed, before, after }),
        Err(error) => {
            b.forget_prepared();
            Ok(Counted::ReadingFailed { before: false, error, rows: before })
        }
    }
}

/// blastwall's own statements behind the client's counted Execute (the contract's), each as a
/// reading, then a Flush: their rows, or the error that stopped them (the server then skips
/// to the client's Sync, and its transaction is aborted).
pub async fn run_after(b: &mut Backend<'_>, name: &str, sql: &[String]) -> Result<Result<Rows, Frame>, PrecheckError> {
    let (rows, _, error) = run_after_partly(b, name, sql).await?;
    Ok(error.map_or(Ok(rows), Err))
}

/// [`run_after`], keeping what ran before an error: the rows read, how many statements ran,
/// and the error that stopped the rest.
pub async fn run_after_partly(
    b: &mut Backend<'_>,
    name: &str,
    sql: &[String],
) -> Result<(Rows, usize, Option<Frame>), PrecheckError> {
    let mut out = BytesMut::new();
    sql.iter().for_each(|s| out.extend_from_slice(&reading(name, s)));
    out.extend_from_slice(&crate::wire::encode(fe::FLUSH, &[]));
    b.send(&out).await?;
    let mut rows = Vec::new();
    for ran in 0..sql.len() {
        match read_reading(b, READING_REPLIES).await? {
            Ok(r) => rows.extend(r),
            Err(e) => return Ok((rows, ran, Some(e))),
        }
    }
    Ok((rows, sql.len(), None))
}

/// One of blastwall's own queries (a catalog question) asked in the middle of the client's
/// batch, where a Sync of blastwall's would end the client's implicit transaction
/// (`Backend::within_batch`): its statements as readings, then a Flush. The answer has no
/// transaction status. An error ends the client's batch on the server (it skips to the
/// client's Sync): it is kept in `Backend::batch_error`, and every later question gets it
/// without being sent.
pub async fn ask(b: &mut Backend<'_>, sql: &str) -> Result<super::Answer, PrecheckError> {
    use crate::wire::messages::error_fields;
    if let Some(e) = &b.batch_error {
        return Ok(super::Answer { rows: Vec::new(), error: Some(e.clone()), status: None });
    }
    let statements: Vec<String> = super::own::split(sql).map(str::to_string).collect();
    match run_after(b, super::own::NAME, &statements).await? {
        Ok(rows) => Ok(super::Answer { rows, error: None, status: None }),
        Err(frame) => {
            let e = error_fields(&frame)?;
            b.batch_error = Some(e.clone());
            Ok(super::Answer { rows: Vec::new(), error: Some(e), status: None })
        }
    }
}

/// One counter reading on blastwall's own statement and portal, leaving nothing behind.
fn reading(name: &str, sql: &str) -> BytesMut {
    super::own::on_name(name, sql)
}

/// Reads the replies to one reading (`replies` completions and command tags): its rows, or
/// the error that stopped it.
async fn read_reading(b: &mut Backend<'_>, replies: usize) -> Result<Result<Rows, Frame>, PrecheckError> {
    let mut rows = Vec::new();
    let mut ends = 0;
    while ends < replies {
        let f = b.next_frame().await?;
        match f.tag {
            b'1' | b'2' | b'3' | b'C' => ends += 1,
            b'D' => rows.push(data_row(&f)?),
            be::ERROR_RESPONSE => return Ok(Err(f)),
            // A notice here is the reading's own (`DEBUG` notes of its Parse and Bind).
            b'A' | be::PARAMETER_STATUS => b.for_client.extend_from_slice(&f.bytes),
            _ => {}
        }
    }
    Ok(Ok(rows))
}
