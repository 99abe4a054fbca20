//! The server side of a session as the pre-check holds it (`Backend`): blastwall's own
//! statements and the client's held messages written to it, and their answers read up to
//! ReadyForQuery — notifications and parameter changes kept for the client, a FATAL noted.
//!
//! Owns: that I/O. Does not own: what is sent (`verify`, `inbatch`, `own`, `prepared`).

use super::{own, prepared, PrecheckError};
use crate::backend::BoxIo;
use crate::wire::messages::{self, be, ErrorFields, TxStatus};
use crate::wire::{Frame, FrameError, Framer, Item};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The server side of a session, lent to the pre-check.
pub struct Backend<'a> {
    pub io: &'a mut BoxIo,
    pub framer: &'a mut Framer,
    /// Asynchronous messages (NotificationResponse, ParameterStatus) that arrived meanwhile
    /// and belong to the client.
    pub for_client: BytesMut,
    /// Every ParameterStatus seen, so the session's view of the settings stays true.
    pub params: Vec<(String, String)>,
    /// The server's FATAL when it ended the session during the check: the client's to see.
    pub fatal: Option<Frame>,
    /// The session's prepared counter readings (`prepared`); without them a reading is sent
    /// as text.
    pub prepared: Option<&'a mut prepared::Prepared>,
    /// What the checked statement did to the session's prepared statements and cursors.
    pub objects: super::objects::Changes,
    /// Where the protected sequences stood when the checked run began (`slices`).
    pub positions: super::slices::Positions,
    /// The share of all sessions' held bytes that the replies held here take (`hold`).
    pub holding: super::hold::Holding,
    /// The protected sequences to put back should the check be abandoned (`putback`).
    pub put_back: Vec<super::putback::Moved>,
    /// Input: the client's block remembers moves (`session::undone`): a statement not kept
    /// there has where it left the protected sequences read (`unkept_moves`).
    pub read_ends: bool,
    /// Output: those moves, with their ends when read (`putback::ended`).
    pub unkept_moves: Vec<super::putback::Moved>,
    /// A COMMIT of the check's transaction was sent: should the server session end before
    /// its answer, the statement's rows may be kept (`session::orphan` puts nothing back).
    pub commit_sent: bool,
    /// The protected sequences a write kept in the client's block moved: undone should the
    /// block roll back (`session::undone`).
    pub kept_moves: Vec<super::putback::Moved>,
    /// Those moves went beyond the rows the write inserted into the tables that hold the
    /// sequences' values (`putback::beyond_rows`): values it took may be the client's.
    pub kept_beyond_rows: bool,
    /// The session's counters start at zero in a transaction this check opens: the clock of
    /// the reading that asked for them to be reported (`once::Flushed`).
    pub from_zero: Option<String>,
    /// Input: blastwall's own queries (`query`) go in the middle of the client's open batch
    /// (`inbatch::ask`): without a Sync of blastwall's, in the client's transaction.
    pub within_batch: bool,
    /// Output: the error that ended one of them there; the server now skips the client's
    /// batch to its Sync, and no further question is sent.
    pub batch_error: Option<ErrorFields>,
}

impl<'a> Backend<'a> {
    pub fn new(io: &'a mut BoxIo, framer: &'a mut Framer) -> Self {
        Backend {
            io,
            framer,
            for_client: BytesMut::new(),
            params: Vec::new(),
            fatal: None,
            prepared: None,
            objects: Default::default(),
            positions: Default::default(),
            holding: Default::default(),
            put_back: Vec::new(),
            commit_sent: false,
            read_ends: false,
            unkept_moves: Vec::new(),
            kept_moves: Vec::new(),
            kept_beyond_rows: false,
            from_zero: None,
            within_batch: false,
            batch_error: None,
        }
    }

    /// The same, reading the counters on the session's prepared statements.
    /// Whether the counters start at zero is known once, for this check (`once::Flushed`).
    pub fn with_prepared(mut self, prepared: &'a mut prepared::Prepared) -> Self {
        self.from_zero = prepared.flushed.take();
        self.prepared = Some(prepared);
        self
    }
}

/// The answer to an internal query.
#[derive(Debug, Default)]
pub struct Answer {
    pub rows: Vec<Vec<Option<String>>>,
    pub error: Option<ErrorFields>,
    pub status: Option<TxStatus>,
}

/// What the client's own statement answered, held until the verdict.
#[derive(Debug, Default)]
pub struct Held {
    pub frames: Vec<Frame>,
    pub bytes: usize,
    /// The held replies went past the limit and were dropped: they cannot be delivered.
    pub overflowed: bool,
    /// Why: the replies all sessions may hold were taken by others (else this statement's own
    /// were over the limit per statement).
    pub budget_full: bool,
    pub error: bool,
    pub status: Option<TxStatus>,
}

impl Backend<'_> {
    pub(crate) async fn next_frame(&mut self) -> Result<Frame, PrecheckError> {
        loop {
            if let Some(item) = self.framer.next_item(|_| true)? {
                match item {
                    Item::Frame(f) => {
                        if f.tag == be::ERROR_RESPONSE
                            && messages::error_fields(&f)
                                .is_ok_and(|e| matches!(e.severity.as_str(), "FATAL" | "PANIC"))
                        {
                            // The server is ending the session; the next read finds it closed.
                            self.fatal = Some(f);
                            continue;
                        }
                        if f.tag == be::PARAMETER_STATUS {
                            if let Ok(p) = messages::parameter_status(&f) {
                                self.params.push(p);
                            }
                        }
                        return Ok(f);
                    }
                    // The rest of a message that started streaming to the client before.
                    Item::Pass(b) => self.for_client.extend_from_slice(&b),
                }
                continue;
            }
            let buf = self.framer.buf_mut();
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            match self.io.read_buf(self.framer.buf_mut()).await {
                Ok(0) => return Err(PrecheckError::Closed),
                Ok(_) => {}
                // After its FATAL the server may reset the connection (blastwall's own messages
                // were still unread): it closed, as it said.
                Err(_) if self.fatal.is_some() => return Err(PrecheckError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs SQL of the proxy's own (as extended-protocol messages, see `own`) and reads its
    /// answer to ReadyForQuery.
    pub async fn query(&mut self, sql: &str) -> Result<Answer, PrecheckError> {
        if self.within_batch {
            return super::inbatch::ask(self, sql).await;
        }
        self.send(&own::messages(sql)).await?;
        self.answer().await
    }

    /// Writes messages without waiting for their answers (pipelining).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), PrecheckError> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Reads the answer to one internal query, up to its ReadyForQuery.
    pub async fn answer(&mut self) -> Result<Answer, PrecheckError> {
        let mut a = Answer::default();
        loop {
            let f = self.next_frame().await?;
            match f.tag {
                b'D' => a.rows.push(data_row(&f)?),
                be::ERROR_RESPONSE => a.error = Some(messages::error_fields(&f)?),
                be::READY_FOR_QUERY => {
                    a.status = messages::ready_status(&f).ok();
                    return Ok(a);
                }
                // Notifications and parameter changes are the client's, whenever they come.
                b'A' | be::PARAMETER_STATUS => self.for_client.extend_from_slice(&f.bytes),
                _ => {}
            }
        }
    }

    /// Sends the client's messages and holds every reply up to ReadyForQuery.
    pub async fn run_held(&mut self, msgs: &[u8], max_bytes: usize) -> Result<Held, PrecheckError> {
        self.send(msgs).await?;
        self.held(max_bytes).await
    }

    /// Reads and holds the replies to the client's messages, up to their ReadyForQuery.
    pub async fn held(&mut self, max_bytes: usize) -> Result<Held, PrecheckError> {
        let mut h = Held::default();
        loop {
            let f = match self.next_frame().await {
                Ok(f) => f,
                Err(e) => {
                    // The server ended the session: what it answered before is the client's.
                    if self.fatal.is_some() {
                        h.frames.iter().for_each(|f| self.for_client.extend_from_slice(&f.bytes));
                    }
                    return Err(e);
                }
            };
            match f.tag {
                be::READY_FOR_QUERY => {
                    h.status = messages::ready_status(&f).ok();
                    h.frames.push(f);
                    return Ok(h);
                }
                // COPY FROM STDIN would wait for the client, who is not listening now.
                be::COPY_IN_RESPONSE => {
                    let mut body = b"blastwall: COPY FROM STDIN cannot run inside a verified write".to_vec();
                    body.push(0);
                    self.io.write_all(&crate::wire::encode(b'f', &body)).await?;
                    self.io.flush().await?;
                    continue;
                }
                _ => {}
            }
            self.hold(&mut h, f, max_bytes).await;
        }
    }

    /// Holds one reply of the client's statement: within `max_bytes` and the share of the
    /// replies all sessions may hold (`hold`), else every reply is dropped and `h` overflowed.
    pub(super) async fn hold(&mut self, h: &mut Held, f: Frame, max_bytes: usize) {
        if f.tag == be::ERROR_RESPONSE {
            h.error = true;
        }
        let own = h.bytes + f.bytes.len() > max_bytes;
        if own || (!h.overflowed && !self.holding.take(f.bytes.len()).await) {
            h.budget_full |= !own && !h.overflowed;
            h.overflowed = true;
            h.frames.clear();
            self.holding.clear();
        }
        if !h.overflowed {
            h.bytes += f.bytes.len();
            h.frames.push(f);
        }
    }
}

/// The text-format values of a DataRow.
pub(super) fn data_row(f: &Frame) -> Result<Vec<Option<String>>, FrameError> {
    let mut r = crate::wire::BodyReader::new(f.body(), "DataRow");
    let n = usize::try_from(r.i16()?).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.i32()?;
        match usize::try_from(len) {
            Ok(l) => out.push(Some(String::from_utf8_lossy(r.take(l)?).into_owned())),
            Err(_) => out.push(None),
        }
    }
    Ok(out)
}
