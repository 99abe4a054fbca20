//! A simple Query that must be counted and also holds BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE
//! or `COPY … FROM STDIN` (psql's `\;`): it cannot run inside a check of its own (its own
//! transaction control would end blastwall's), so it runs as the extended batch that the
//! server treats alike — per statement Parse, Bind, Describe (portal), Execute on the unnamed
//! statement and portal, then one Sync (the implicit transaction of a multi-statement Query
//! and that of a batch before its Sync behave the same) — and each write is counted at its
//! Execute where it stands (`extended`, `counting`). The client sees the simple protocol's
//! replies: ParseComplete, BindComplete, NoData and CloseComplete are dropped, and an error's
//! position is moved from the statement's text to the whole message's.
//!
//! A `COPY … FROM STDIN` ends a segment: the statements after it go to the server only once
//! the client has ended the COPY (CopyDone, CopyFail) — the server would read them as
//! unexpected messages inside the COPY — or once the batch has failed before the COPY ran.
//!
//! Owns: which Queries can run so (`split`), the batch's messages (`segments`), and the
//! rewriting of its replies (`Replies`). Does not own: counting (`counting`), judging each
//! statement (`guard`, through `extended`).

use super::{Session, SessionError};
use crate::wire::messages::{self, fe};
use crate::wire::Frame;
use bytes::{BufMut, BytesMut};
use std::collections::VecDeque;

pub(super) use super::pieces::{modifies, Piece};

/// The batch's messages, cut after each `COPY … FROM STDIN`; the last segment ends in Sync.
pub(super) fn segments(sql: &[u8], pieces: &[Piece]) -> VecDeque<BytesMut> {
    let mut out = VecDeque::new();
    let mut seg = BytesMut::new();
    for p in pieces {
        let text = String::from_utf8_lossy(&sql[p.start..p.end]);
        seg.extend_from_slice(&messages::parse("", &text));
        // Bind: unnamed portal and statement, no parameters, text results.
        seg.extend_from_slice(&crate::wire::encode(fe::BIND, &[0, 0, 0, 0, 0, 0, 0, 0]));
        seg.extend_from_slice(&crate::wire::encode(fe::DESCRIBE, b"P\0"));
        seg.extend_from_slice(&crate::wire::encode(fe::EXECUTE, &[0, 0, 0, 0, 0]));
        if p.copy_in {
            out.push_back(std::mem::take(&mut seg));
        }
    }
    seg.extend_from_slice(&crate::wire::encode(fe::SYNC, &[]));
    out.push_back(seg);
    out
}

/// A Query running as an extended batch: the segments not yet sent.
pub(super) struct Running {
    rest: VecDeque<BytesMut>,
    /// The server answered the current segment's COPY with CopyInResponse.
    copying: bool,
    /// Messages of the last segment still in front of the client's own.
    injected: usize,
    /// The message being handled is one of them.
    taking: bool,
    /// The client sent another message during the COPY: the server ends the session.
    violated: bool,
}

/// Rewrites the replies of the batch, as they go to the client, into the simple protocol's,
/// up to and including its ReadyForQuery.
#[derive(Debug)]
pub(super) struct Replies {
    /// Characters before each statement in the Query's text, and whether its rows are stored.
    offsets: Vec<usize>,
    stored: Vec<bool>,
    /// The Describe's RowDescription of a stored statement, until its first row or tag.
    row_description: Option<Vec<u8>>,
    /// Statements that completed (CommandComplete): the next error or notice is the next's.
    done: usize,
    /// An incomplete message head (or a whole message still to rewrite) from the last write.
    carry: Vec<u8>,
    /// Bytes of the current message still to pass, or to drop.
    pass: usize,
    drop: usize,
}

impl Replies {
    fn new(pieces: &[Piece]) -> Self {
        Replies {
            offsets: pieces.iter().map(|p| p.chars_before).collect(),
            stored: pieces.iter().map(|p| p.stored).collect(),
            row_description: None,
            done: 0,
            carry: Vec::new(),
            pass: 0,
            drop: 0,
        }
    }

    /// Rewrites `input` into `out`; `false` once the batch's ReadyForQuery went through (the
    /// rest of `input` is copied as it is).
    pub(super) fn rewrite(&mut self, input: &[u8], out: &mut BytesMut) -> bool {
        let joined;
        let data: &[u8] = if self.carry.is_empty() {
            input
        } else {
            let mut c = std::mem::take(&mut self.carry);
            c.extend_from_slice(input);
            joined = c;
            &joined
        };
        let mut i = 0;
        while i < data.len() {
            let left = data.len() - i;
            if self.pass > 0 || self.drop > 0 {
                let n = left.min(self.pass.max(self.drop));
                if self.pass > 0 {
                    out.put_slice(&data[i..i + n]);
                    self.pass -= n;
                } else {
                    self.drop -= n;
                }
                i += n;
                continue;
            }
            if left < 5 {
                self.carry = data[i..].to_vec();
                return true;
            }
            let tag = data[i];
            let total = 1 + u32::from_be_bytes([data[i + 1], data[i + 2], data[i + 3], data[i + 4]]) as usize;
            let stored = self.stored.get(self.done).copied().unwrap_or(false);
            if matches!(tag, b'D' | b'C' | b'd' | b'H') {
                if let Some(t) = self.row_description.take() {
                    out.put_slice(&t);
                }
            }
            match tag {
                b'1' | b'2' | b'3' | b'n' => self.drop = total,
                b'E' | b'N' | b'Z' | b'T' if left < total => {
                    self.carry = data[i..].to_vec();
                    return true;
                }
                b'T' if stored => {
                    self.row_description = Some(data[i..i + total].to_vec());
                    i += total;
                }
                // The extended protocol's own notes (`parse …`, `bind …`): none for a Query.
                b'N' if super::notifications::is_protocol_step(&data[i + 5..i + total]) => i += total,
                b'E' | b'N' => {
                    if tag == b'E' {
                        // A statement that fails sends no RowDescription.
                        self.row_description = None;
                    }
                    let offset = self.offsets.get(self.done).or(self.offsets.last()).copied().unwrap_or(0);
                    out.put_slice(&shift_position(&data[i..i + total], offset));
                    i += total;
                }
                b'Z' => {
                    out.put_slice(&data[i..]);
                    return false;
                }
                b'C' => {
                    self.done += 1;
                    self.pass = total;
                }
                _ => self.pass = total,
            }
        }
        true
    }
}

/// How many whole messages `b` holds.
fn frames_in(b: &[u8]) -> usize {
    let (mut n, mut i) = (0, 0);
    while let Some(len) = b.get(i + 1..i + 5) {
        i += 1 + u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        n += 1;
    }
    n
}

/// blastwall's statement name and savepoint for the grammar's answer.
const PROBE: &str = "__blastwall_probe";

/// Whether an ErrorResponse has a position field.
fn has_position(f: &Frame) -> bool {
    let mut fields = f.body();
    while let Some((&kind, rest)) = fields.split_first() {
        if kind == 0 {
            return false;
        }
        if kind == b'P' {
            return true;
        }
        let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        fields = rest.get(len + 1..).unwrap_or_default();
    }
    false
}

/// An ErrorResponse or NoticeResponse with its position field (`P`, characters from 1) moved
/// by `offset` characters.
fn shift_position(msg: &[u8], offset: usize) -> BytesMut {
    let mut body = BytesMut::with_capacity(msg.len() + 4);
    let mut fields = msg.get(5..).unwrap_or_default();
    while let Some((&kind, rest)) = fields.split_first() {
        if kind == 0 {
            break;
        }
        let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let value = &rest[..len];
        body.put_u8(kind);
        match std::str::from_utf8(value).ok().and_then(|v| v.parse::<usize>().ok()) {
            Some(p) if kind == b'P' => body.put_slice((p + offset).to_string().as_bytes()),
            _ => body.put_slice(value),
        }
        body.put_u8(0);
        fields = rest.get(len + 1..).unwrap_or_default();
    }
    body.put_u8(0);
    BytesMut::from(&crate::wire::encode(msg[0], &body)[..])
}

impl Session {
    /// Whether a Query that the guard could only count statement by statement can run as an
    /// extended batch now; `Err`: why not.
    pub(super) fn simple_pieces(&self, sql: &[u8]) -> Result<Vec<Piece>, &'static str> {
        if self.relay.batch_has_messages() {
            return Err("it came in the middle of an extended-protocol batch");
        }
        let utf8 = self.relay.client_encoding().eq_ignore_ascii_case("UTF8");
        let in_block = self.relay.tx != messages::TxStatus::Idle;
        super::pieces::split_at(sql, utf8, self.relay.standard_conforming_strings(), in_block)
    }

    /// Starts the batch of a Query (the server has answered everything before it): its first
    /// segment goes in front of what the client sent next, to be handled message by message.
    pub(super) async fn start_simple(&mut self, frame: Frame, pieces: Vec<Piece>) -> Result<(), SessionError> {
        self.flush_to_client().await?;
        let sql = messages::query_text(&frame).map_err(|e| self.protocol_violation(e))?.to_vec();
        if !self.grammar_accepts(&sql).await.map_err(|e| SessionError::Closed(format!("pre-check: {e}")))? {
            // The server's grammar rejects the text (blastwall's parser is of a newer
            // version): as a Query, nothing of it runs, and the server says why.
            self.relay.forward_sync_point(&frame.bytes);
            return Ok(());
        }
        let sql = &sql[..];
        let mut rest = segments(sql, &pieces);
        self.simple_replies = Some(Replies::new(&pieces));
        let first = rest.pop_front().unwrap_or_default();
        // Without a COPY the whole batch goes at once: nothing is left to wait for.
        self.simple =
            (!rest.is_empty()).then_some(Running { rest, copying: false, injected: 0, taking: false, violated: false });
        self.inject(&first);
        Ok(())
    }

    /// Whether the server's grammar accepts the whole text, as a Query's is read before any
    /// of it runs (statement by statement, those before a statement the grammar rejects
    /// would run): a Parse of the whole text on a name of blastwall's, which the server
    /// reads with its grammar first and then refuses as more than one command. Inside the
    /// client's block it runs under a savepoint of blastwall's, so that its error does not
    /// fail the block. Only a syntax error with a position counts as a rejection.
    async fn grammar_accepts(&mut self, sql: &[u8]) -> Result<bool, crate::precheck::PrecheckError> {
        let in_block = self.relay.tx == messages::TxStatus::InBlock;
        let mut b = crate::precheck::Backend::new(&mut self.server, &mut self.sfr);
        if in_block {
            b.query(&format!("SAVEPOINT {PROBE}")).await?;
        }
        let mut body = Vec::with_capacity(sql.len() + PROBE.len() + 4);
        body.extend_from_slice(PROBE.as_bytes());
        body.push(0);
        body.extend_from_slice(sql);
        body.extend_from_slice(&[0, 0, 0]);
        let mut probe = BytesMut::from(&crate::wire::encode(fe::PARSE, &body)[..]);
        probe.extend_from_slice(&crate::wire::encode(fe::SYNC, &[]));
        b.send(&probe).await?;
        let mut rejected = false;
        loop {
            let f = b.next_frame().await?;
            match f.tag {
                b'E' => {
                    let code = messages::error_fields(&f).map(|e| e.code).unwrap_or_default();
                    rejected = code == "42601" && has_position(&f);
                }
                b'Z' => break,
                // Its DEBUG notes are the probe's own (the Query's come with its statements).
                b'N' if super::notifications::is_debug(f.body()) => {}
                b'N' | b'A' | b'S' => b.for_client.extend_from_slice(&f.bytes),
                _ => {}
            }
        }
        if in_block {
            b.query(&format!("ROLLBACK TO SAVEPOINT {PROBE}; RELEASE SAVEPOINT {PROBE}")).await?;
        }
        let crate::precheck::Backend { for_client, params, .. } = b;
        self.take_for_client(for_client, params);
        Ok(!rejected)
    }

    /// Puts messages in front of what the client sent (the framer is between messages).
    fn inject(&mut self, msgs: &[u8]) {
        if let Some(r) = &mut self.simple {
            r.injected += frames_in(msgs);
        }
        let buf = self.cfr.buf_mut();
        let after = buf.split();
        buf.extend_from_slice(msgs);
        buf.extend_from_slice(&after);
    }

    /// The server answered a COPY of the batch with CopyInResponse.
    pub(super) fn simple_copy_started(&mut self) {
        if let Some(r) = &mut self.simple {
            r.copying = true;
        }
    }

    /// Sends what follows a COPY once the client has ended it, or all that is left once the
    /// batch has failed before its COPY ran (the server skips it to the Sync).
    /// A Sync or Flush of the client's in front while the COPY reads its data is dropped (and
    /// counts as progress): the server ignores both in COPY-in, and the client's Query is one
    /// message to it.
    pub(super) fn simple_next(&mut self, copy_ended: bool) -> bool {
        if !copy_ended && self.ignored_in_copy() {
            return true;
        }
        let Some(r) = self.simple.as_mut().filter(|r| !r.violated) else { return false };
        let failed = self.relay.is_skipping() || self.relay.is_discarding();
        let between = self.cfr.next_tag().is_some() || self.cfr.is_at_boundary();
        // A client that sends its copy data without waiting may end the COPY before the
        // server has answered its Execute: the next segment goes behind it all the same.
        let next = if copy_ended {
            r.copying = false;
            r.rest.pop_front()
        } else if failed && !r.copying && between {
            Some(r.rest.drain(..).flat_map(|b| b.to_vec()).collect())
        } else {
            return false;
        };
        if r.rest.is_empty() {
            self.simple = None;
        }
        let Some(msgs) = next else { return false };
        self.inject(&msgs);
        true
    }

    /// Drops a whole Sync or Flush of the client's from the front while the batch's COPY is
    /// reading data (red-team F7: it waited in front of the COPY's data, forever).
    /// Any other message but the COPY's own (and Terminate) is a protocol violation that the
    /// server answers by reading its type byte alone (08P01, then FATAL, and it closes the
    /// connection): it gets that type byte with an empty body, never the client's message.
    fn ignored_in_copy(&mut self) -> bool {
        let copying = self.simple.as_ref().is_some_and(|r| r.copying && r.injected == 0 && !r.violated);
        let Some(tag) = self.cfr.next_tag().filter(|_| copying) else { return false };
        match tag {
            fe::SYNC | fe::FLUSH => {
                let buf = self.cfr.buf_mut();
                if buf.get(..5) != Some(&[tag, 0, 0, 0, 4][..]) {
                    return false;
                }
                let _ = buf.split_to(5);
                true
            }
            fe::COPY_DATA | fe::COPY_DONE | fe::COPY_FAIL | fe::TERMINATE => false,
            _ => {
                self.relay.forward_raw(&[tag, 0, 0, 0, 4]);
                if let Some(r) = &mut self.simple {
                    r.violated = true;
                }
                true
            }
        }
    }

    /// Records a Query refused because it could not run statement by statement.
    pub(super) fn record_split_refusal(&self, sql: &[u8], m: &messages::ProxyMessage) {
        let facts = crate::audit::Facts {
            decision: "refused",
            rule: Some("unverifiable".into()),
            mode: Some(crate::policy::Mode::Enforce.as_str()),
            statement: String::from_utf8_lossy(sql).into_owned(),
            targets: Vec::new(),
            message: Some(m.message.clone()),
            override_reason: None,
        };
        self.record(&facts, &[], None);
    }

    /// Whether the client's next message waits: the batch has segments still to send and the
    /// message in front is the client's own, not one the COPY reads (what a client pipelines
    /// behind the Query goes to the server after the batch's Sync, as it would after the Query).
    pub(super) fn simple_waits(&self) -> bool {
        self.simple.as_ref().is_some_and(|r| r.injected == 0)
            && self.cfr.next_tag().is_some_and(|t| !matches!(t, fe::COPY_DATA | fe::COPY_DONE | fe::COPY_FAIL))
    }

    /// A message was taken from the client's framer: one of the batch's, if any are in front.
    pub(super) fn simple_took(&mut self) {
        if let Some(r) = &mut self.simple {
            r.taking = r.injected > 0;
            r.injected -= usize::from(r.taking);
        }
    }

    /// The message being handled was put back in front of the client's framer.
    pub(super) fn simple_put_back(&mut self) {
        if let Some(r) = &mut self.simple {
            r.injected += usize::from(r.taking);
        }
    }

    /// The replies owed to the client, rewritten while a Query's batch answers.
    pub(super) fn rewrite_outgoing(&mut self) {
        let Some(r) = &mut self.simple_replies else { return };
        if self.relay.to_client.is_empty() {
            return;
        }
        let mut out = BytesMut::with_capacity(self.relay.to_client.len());
        if !r.rewrite(&self.relay.to_client, &mut out) {
            self.simple_replies = None;
        }
        self.relay.to_client = out;
    }
}

#[cfg(test)]
mod tests {
    use super::super::pieces::split;
    use super::*;

    #[test]
    fn non_ascii_after_a_statement_that_may_change_the_encoding_is_not_split() {
        let ok = |sql: &str| split(sql.as_bytes(), true, true).is_ok();
        assert!(ok("BEGIN; UPDATE t SET a = 'é' WHERE id = 1; COMMIT"));
        assert!(ok("BEGIN; INSERT INTO t VALUES (1, 'x'); UPDATE t SET a = 'é'; COMMIT"));
        assert!(ok("BEGIN; SAVEPOINT s; UPDATE t SET a = 'é'; RELEASE s; COMMIT"));
        assert!(!ok("ROLLBACK; BEGIN; UPDATE t SET a = 'é'; COMMIT"));
        let outside = |sql: &str| super::super::pieces::split_at(sql.as_bytes(), true, true, false).is_ok();
        assert!(outside("DELETE FROM t WHERE a = 'é'; COMMIT; SELECT 'ü'"));
        assert!(!outside("SET client_encoding = 'SJIS'; COMMIT; SELECT 'ü'"));
        assert!(!ok("BEGIN; ROLLBACK TO SAVEPOINT s; UPDATE t SET a = 'é'; COMMIT"));
        assert!(!ok("BEGIN; INSERT INTO t VALUES (f(), 'x'); UPDATE t SET a = 'é'; COMMIT"));
        assert!(ok("BEGIN; INSERT INTO t VALUES (now(), 'x'); UPDATE t SET a = 'é'; COMMIT"));
        assert!(!ok("BEGIN; EXECUTE e; UPDATE t SET a = 'é'; COMMIT"));
        assert!(!ok(
            "SELECT pg_catalog.set_config('client_encoding', 'SJIS', false); BEGIN; UPDATE t SET a = 'é'; COMMIT"
        ));
    }

    #[test]
    fn splits_statements_with_their_character_offsets() {
        let sql = "BEGIN; DELETE FROM t WHERE a = 'é'; COPY t FROM STDIN; COMMIT";
        let p = split(sql.as_bytes(), true, true).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(&sql[p[1].start..p[1].end], "DELETE FROM t WHERE a = 'é'");
        assert_eq!(p[3].chars_before, sql[..p[3].start].chars().count());
        assert!(p[3].chars_before < p[3].start);
        assert!(p[2].copy_in && !p[1].copy_in);
        let segs = segments(sql.as_bytes(), &p);
        assert_eq!(segs.len(), 2);
    }

    #[test]
    fn splits_renames_as_alter_table() {
        for sql in [
            "BEGIN; ALTER TABLE t RENAME TO t2; COMMIT",
            "BEGIN; ALTER TABLE t RENAME COLUMN a TO b; COMMIT",
            "BEGIN; ALTER TABLE t ADD COLUMN b int; COMMIT",
        ] {
            assert_eq!(split(sql.as_bytes(), true, true).map(|p| p.len()), Ok(3), "{sql}");
        }
    }

    #[test]
    fn refuses_what_runs_differently() {
        for sql in [
            "BEGIN; DELETE FROM t; VACUUM t",
            "DECLARE c CURSOR FOR SELECT 1; DELETE FROM t",
            "SET LOCAL a = 1; DELETE FROM t",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; DELETE FROM t",
            "COMMIT AND CHAIN; DELETE FROM t",
            "LOCK t; DELETE FROM t",
            "DELETE FROM t",
        ] {
            assert!(split(sql.as_bytes(), true, true).is_err(), "{sql}");
        }
        assert!(split(b"BEGIN; DELETE FROM t", true, false).is_err());
        assert!(split("BEGIN; DELETE FROM t WHERE a = 'é'".as_bytes(), false, true).is_err());
    }

    #[test]
    fn replies_lose_completions_and_errors_move() {
        let p = split(b"SELECT 1; SELECT x", true, true).unwrap();
        let mut r = Replies::new(&p);
        let err = crate::wire::encode(b'E', b"SERROR\0C42703\0Mno\0P8\0\0");
        let stream = [
            crate::wire::encode(b'1', &[]),
            crate::wire::encode(b'2', &[]),
            crate::wire::encode(b'C', b"SELECT 1\0"),
            crate::wire::encode(b'1', &[]),
            err,
            crate::wire::encode(b'Z', b"I"),
            crate::wire::encode(b'Z', b"I"),
        ]
        .concat();
        let mut out = BytesMut::new();
        // Byte by byte: heads and messages split across writes.
        let mut active = true;
        for b in &stream {
            if active {
                active = r.rewrite(&[*b], &mut out);
            } else {
                out.put_u8(*b);
            }
        }
        assert!(!active);
        let want = [
            crate::wire::encode(b'C', b"SELECT 1\0"),
            crate::wire::encode(b'E', b"SERROR\0C42703\0Mno\0P18\0\0"),
            crate::wire::encode(b'Z', b"I"),
            crate::wire::encode(b'Z', b"I"),
        ]
        .concat();
        assert_eq!(&out[..], &want[..]);
    }
}
