//! Framing of the PostgreSQL v3 protocol: bytes ↔ frames, length-checked, zero-copy.
//!
//! Owns: splitting a byte stream into messages by their length field, checking every length
//! before allocating, and handing out the original bytes untouched. Typed views of the few
//! messages later stages read live in [`messages`] and [`startup`].
//! Does not own: any SQL knowledge, sockets, or decisions about what to forward.

pub mod messages;
pub mod startup;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

/// The smallest legal value of a message's length field (the field counts itself).
pub const MIN_LEN: usize = 4;

/// Errors of the framing layer. Each one is caused by the peer that sent the bytes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("message length {len} of message type {tag:?} is below the minimum of 4")]
    TooShort { tag: char, len: u32 },
    #[error("message length {len} of message type {tag:?} exceeds the limit of {max} bytes")]
    TooLong { tag: char, len: u32, max: usize },
    #[error("malformed {what} message: {why}")]
    Malformed { what: &'static str, why: &'static str },
}

/// One item read off a stream: either a whole message that a stage wants to read, or a run of
/// bytes (whole or partial messages) that no stage reads and that is forwarded as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete message: tag byte, length field and body, exactly as received.
    Frame(Frame),
    /// Bytes of messages nobody inspects; may end in the middle of a message, whose rest
    /// follows in the next `Pass` items.
    Pass(Bytes),
}

/// What [`Framer::next_step`] did: handed out a whole message, or lent a run to pass through.
#[derive(Debug)]
pub enum Step {
    Frame(Frame),
    Passed,
}

/// What `Framer::next` found at the front of the buffer.
enum Found {
    Frame(Frame),
    /// This many bytes at the front pass through.
    Pass(usize),
}

/// A complete message, as received. `bytes` includes the tag and the length field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub bytes: Bytes,
}

impl Frame {
    /// The message body: what follows the tag and the length field.
    pub fn body(&self) -> &[u8] {
        self.bytes.get(5..).unwrap_or_default()
    }
}

/// Splits a buffered byte stream into [`Item`]s. Cancel-safe: it only looks at what has been
/// read into `buf`, so a read cancelled by `select!` loses nothing.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// Bytes of an uninspected message that are still to come and to pass through.
    pass_remaining: usize,
    /// The largest message, length field included, that may be buffered whole.
    max_len: usize,
}

impl Framer {
    pub fn new(max_len: usize) -> Self {
        Framer { buf: BytesMut::with_capacity(8 * 1024), pass_remaining: 0, max_len }
    }

    /// The buffer that the socket reads into.
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Whether bytes have been read that were not yet handed out.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Takes back the bytes read but not handed out (used when a stream changes hands, e.g.
    /// for the TLS handshake).
    pub fn take_buffered(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// The type byte of the next message, once it has begun to arrive and no earlier message
    /// is still passing through.
    pub fn next_tag(&self) -> Option<u8> {
        if self.pass_remaining > 0 {
            None
        } else {
            self.buf.first().copied()
        }
    }

    /// Whether part of a message passed through already and the rest has not.
    pub fn passing(&self) -> bool {
        self.pass_remaining != 0
    }

    /// Whether the stream stands at a message boundary: nothing half-read.
    pub fn is_at_boundary(&self) -> bool {
        self.buf.is_empty() && self.pass_remaining == 0
    }

    /// The next item, or `None` when more bytes are needed. `inspect(tag)` says whether the
    /// message with that tag must be handed out whole; all others pass through in runs, so
    /// a large DataRow or CopyData never has to fit in memory at once.
    pub fn next_item(&mut self, inspect: impl Fn(u8) -> bool) -> Result<Option<Item>, FrameError> {
        Ok(match self.next(inspect)? {
            None => None,
            Some(Found::Frame(f)) => Some(Item::Frame(f)),
            Some(Found::Pass(n)) => Some(Item::Pass(self.buf.split_to(n).freeze())),
        })
    }

    /// As [`Framer::next_item`], but a run of bytes that passes through is lent to `pass` and
    /// dropped from the buffer, not split off into a `Bytes` of its own (the relay's hot
    /// path copies it into its outgoing buffer anyway).
    pub fn next_step(
        &mut self,
        inspect: impl Fn(u8) -> bool,
        pass: impl FnOnce(&[u8]),
    ) -> Result<Option<Step>, FrameError> {
        Ok(match self.next(inspect)? {
            None => None,
            Some(Found::Frame(f)) => Some(Step::Frame(f)),
            Some(Found::Pass(n)) => {
                pass(&self.buf[..n]);
                bytes::Buf::advance(&mut self.buf, n);
                Some(Step::Passed)
            }
        })
    }

    /// A whole ReadyForQuery at the front (the end of most round trips), taken as a copy of
    /// its six bytes rather than split off as a frame: `None` when the front is anything else.
    /// Checked like any frame: its length is 5, as the server sends it.
    pub fn take_ready(&mut self) -> Option<[u8; 6]> {
        if self.pass_remaining > 0 {
            return None;
        }
        let z: [u8; 6] = self.buf.get(..6)?.try_into().ok()?;
        if z[..5] != [b'Z', 0, 0, 0, 5] {
            return None;
        }
        bytes::Buf::advance(&mut self.buf, 6);
        Some(z)
    }

    /// Whether the buffer holds exactly one whole message, of type `tag`, within the length
    /// limit (a client's lone Query, read as it arrived).
    pub fn holds_one(&self, tag: u8) -> bool {
        if self.pass_remaining > 0 || self.buf.first() != Some(&tag) {
            return false;
        }
        matches!(self.header_at(0), Ok(Some((_, total))) if total == self.buf.len() && total <= self.max_len)
    }

    /// When the buffer holds whole messages only, each of a type that `passes` (so no stage
    /// reads it), but the last, a ReadyForQuery as the server sends it (length 5): that
    /// message's six bytes, the buffer left as it is. The end of most round trips arrives so;
    /// the relay then passes the buffer on in one piece (checked like any frames: every
    /// length at least 4). `None` when it holds anything else.
    pub fn round_trip(&self, passes: impl Fn(u8) -> bool) -> Option<[u8; 6]> {
        if self.pass_remaining > 0 {
            return None;
        }
        let end = self.buf.len().checked_sub(6)?;
        let mut pos = 0usize;
        while pos < end {
            let h = self.buf.get(pos..pos + 5)?;
            let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
            if !passes(h[0]) || len < 4 {
                return None;
            }
            pos = pos.checked_add(usize::try_from(len).ok()?)?.checked_add(1)?;
        }
        let z: [u8; 6] = self.buf.get(pos..)?.try_into().ok()?;
        (z[..5] == [b'Z', 0, 0, 0, 5]).then_some(z)
    }

    /// The next frame (split off), or the length of the run at the front that passes through.
    fn next(&mut self, inspect: impl Fn(u8) -> bool) -> Result<Option<Found>, FrameError> {
        if self.pass_remaining > 0 {
            let n = self.pass_remaining.min(self.buf.len());
            if n == 0 {
                return Ok(None);
            }
            self.pass_remaining -= n;
            return Ok(Some(Found::Pass(n)));
        }
        let mut pos = 0usize;
        while let Some((tag, total)) = self.header_at(pos)? {
            if inspect(tag) {
                if pos > 0 {
                    break;
                }
                if total > self.max_len {
                    return Err(FrameError::TooLong {
                        tag: char::from(tag),
                        len: u32::try_from(total - 1).unwrap_or(u32::MAX),
                        max: self.max_len,
                    });
                }
                if self.buf.len() >= total {
                    return Ok(Some(Found::Frame(Frame { tag, bytes: self.buf.split_to(total).freeze() })));
                }
                // Length already checked against the limit, so this reservation is bounded.
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            let end = pos.saturating_add(total);
            if end <= self.buf.len() {
                pos = end;
                continue;
            }
            self.pass_remaining = end - self.buf.len();
            pos = self.buf.len();
            break;
        }
        if pos > 0 {
            return Ok(Some(Found::Pass(pos)));
        }
        Ok(None)
    }

    /// Reads the header at `pos`: `(tag, total length including the tag)`, or `None` when
    /// fewer than five bytes are buffered there.
    #[inline]
    fn header_at(&self, pos: usize) -> Result<Option<(u8, usize)>, FrameError> {
        let Some(h) = self.buf.get(pos..pos.saturating_add(5)) else {
            return Ok(None);
        };
        let tag = h[0];
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if len_usize < MIN_LEN {
            return Err(FrameError::TooShort { tag: char::from(tag), len });
        }
        Ok(Some((tag, len_usize.saturating_add(1))))
    }
}

/// Builds a message: tag, length field, body.
pub fn encode(tag: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.extend_from_slice(&[tag]);
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out.freeze()
}

/// A reader of a message body: NUL-terminated strings and big-endian integers, never
/// reading past the end and never panicking.
#[derive(Debug, Clone)]
pub struct BodyReader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> BodyReader<'a> {
    pub fn new(body: &'a [u8], what: &'static str) -> Self {
        BodyReader { rest: body, what }
    }

    fn err(&self, why: &'static str) -> FrameError {
        FrameError::Malformed { what: self.what, why }
    }

    pub fn cstr(&mut self) -> Result<&'a [u8], FrameError> {
        // memchr, not a byte loop: a Query's text can be tens of megabytes.
        let nul = memchr::memchr(0, self.rest).ok_or_else(|| self.err("unterminated string"))?;
        let (s, rest) = self.rest.split_at(nul);
        self.rest = rest.get(1..).unwrap_or_default();
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, FrameError> {
        let (&b, rest) = self.rest.split_first().ok_or(self.err("truncated"))?;
        self.rest = rest;
        Ok(b)
    }

    /// A count as the server reads it (`pq_getmsgint(msg, 2)`: unsigned, 0 to 65,535).
    pub fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i16(&mut self) -> Result<i16, FrameError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Result<i32, FrameError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.rest.len() < n {
            return Err(self.err("truncated"));
        }
        let (a, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(a)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(f: &mut Framer, b: &[u8]) {
        f.buf_mut().extend_from_slice(b);
    }

    #[test]
    fn splits_by_length_and_keeps_bytes() {
        let mut f = Framer::new(1024);
        let q = encode(b'Q', b"SELECT 1\0");
        let d = encode(b'd', b"abc");
        feed(&mut f, &q);
        feed(&mut f, &d);
        feed(&mut f, &q);
        let all = |t: u8| t == b'Q';
        assert_eq!(f.next_item(all).unwrap(), Some(Item::Frame(Frame { tag: b'Q', bytes: q.clone() })));
        assert_eq!(f.next_item(all).unwrap(), Some(Item::Pass(d.clone())));
        assert_eq!(f.next_item(all).unwrap(), Some(Item::Frame(Frame { tag: b'Q', bytes: q })));
        assert_eq!(f.next_item(all).unwrap(), None);
        assert!(f.is_at_boundary());
    }

    #[test]
    fn a_whole_ready_for_query_at_the_front_is_taken_as_it_is() {
        let mut f = Framer::new(1024);
        let z = encode(b'Z', b"I");
        // Only at the front, only whole, only with the length it has.
        feed(&mut f, &encode(b'C', b"SELECT 1\0"));
        feed(&mut f, &z[..3]);
        assert_eq!(f.take_ready(), None);
        assert!(matches!(f.next_item(|t| t == b'Z').unwrap(), Some(Item::Pass(_))));
        assert_eq!(f.take_ready(), None);
        feed(&mut f, &z[3..]);
        assert_eq!(f.take_ready().map(|b| b.to_vec()), Some(z.to_vec()));
        assert!(f.is_at_boundary());
        feed(&mut f, &[b'Z', 0, 0, 0, 6, b'I', b'I']);
        assert_eq!(f.take_ready(), None);
        // Not in the middle of a message that passes through.
        let mut f = Framer::new(1024);
        let d = encode(b'D', &[b'Z', 0, 0, 0, 5, b'I', 0, 0]);
        feed(&mut f, &d[..5]);
        assert!(matches!(f.next_item(|_| false).unwrap(), Some(Item::Pass(_))));
        feed(&mut f, &d[5..]);
        assert_eq!(f.take_ready(), None);
    }

    #[test]
    fn one_whole_message_is_found_as_it_is() {
        let q = encode(b'Q', b"SELECT 1\0");
        let mut f = Framer::new(1024);
        feed(&mut f, &q[..6]);
        assert!(!f.holds_one(b'Q'));
        feed(&mut f, &q[6..]);
        assert!(f.holds_one(b'Q') && !f.holds_one(b'P'));
        feed(&mut f, &q);
        assert!(!f.holds_one(b'Q'));
        // Past the limit, or a bad length: the framer's own checks decide.
        let mut f = Framer::new(8);
        feed(&mut f, &q);
        assert!(!f.holds_one(b'Q'));
        let mut f = Framer::new(1024);
        feed(&mut f, &[b'Q', 0, 0, 0, 3]);
        assert!(!f.holds_one(b'Q'));
    }

    #[test]
    fn a_round_trip_is_found_whole_or_not_at_all() {
        let row = |f: &mut Framer| {
            feed(f, &encode(b'T', b"\0\0"));
            feed(f, &encode(b'D', b"\0\x01\0\0\0\x011"));
            feed(f, &encode(b'C', b"SELECT 1\0"));
        };
        let passes = |t: u8| matches!(t, b'T' | b'D' | b'C');
        let mut f = Framer::new(1024);
        row(&mut f);
        assert_eq!(f.round_trip(passes), None);
        feed(&mut f, &encode(b'Z', b"I"));
        assert_eq!(f.round_trip(passes), Some([b'Z', 0, 0, 0, 5, b'I']));
        // The buffer is left as it is.
        assert_eq!(f.buf.len(), 7 + 12 + 14 + 6);
        // A message no stage may skip, a second round trip, a ReadyForQuery not last or cut,
        // a bad length, a message still passing through: none.
        assert_eq!(f.round_trip(|t| t != b'D'), None);
        feed(&mut f, &encode(b'Z', b"I"));
        assert_eq!(f.round_trip(passes), None);
        let mut f = Framer::new(1024);
        feed(&mut f, &encode(b'Z', b"I")[..5]);
        assert_eq!(f.round_trip(passes), None);
        let mut f = Framer::new(1024);
        feed(&mut f, &[b'C', 0, 0, 0, 3]);
        feed(&mut f, &encode(b'Z', b"I"));
        assert_eq!(f.round_trip(passes), None);
        let mut f = Framer::new(1024);
        feed(&mut f, &[b'D', 0, 0, 0, 20]);
        assert!(matches!(f.next_item(|_| false).unwrap(), Some(Item::Pass(_))));
        feed(&mut f, &[0; 10]);
        feed(&mut f, &encode(b'Z', b"I"));
        assert_eq!(f.round_trip(passes), None);
        // A lone ReadyForQuery is one too.
        let mut f = Framer::new(1024);
        feed(&mut f, &encode(b'Z', b"T"));
        assert_eq!(f.round_trip(passes), Some([b'Z', 0, 0, 0, 5, b'T']));
    }

    #[test]
    fn partial_passthrough_streams() {
        let mut f = Framer::new(16);
        let big = encode(b'D', &[7u8; 100]);
        feed(&mut f, &big[..30]);
        let none = |_| false;
        assert_eq!(f.next_item(none).unwrap(), Some(Item::Pass(big.slice(..30))));
        assert!(!f.is_at_boundary());
        feed(&mut f, &big[30..]);
        assert_eq!(f.next_item(none).unwrap(), Some(Item::Pass(big.slice(30..))));
        assert!(f.is_at_boundary());
    }

    #[test]
    fn rejects_bad_lengths_before_allocating() {
        let mut f = Framer::new(64);
        feed(&mut f, &[b'Q', 0, 0, 0, 3]);
        assert!(matches!(f.next_item(|_| true), Err(FrameError::TooShort { .. })));
        let mut f = Framer::new(64);
        feed(&mut f, &[b'Q', 0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(f.next_item(|_| true), Err(FrameError::TooLong { .. })));
        assert!(f.buf.capacity() < 1 << 20);
    }

    #[test]
    fn query_cannot_read_into_next_message() {
        // A Query whose length ends before its text's NUL must not swallow the next message.
        let mut f = Framer::new(1024);
        let mut bytes = encode(b'Q', b"SELECT 1").to_vec();
        bytes.extend_from_slice(&encode(b'Q', b"DELETE FROM users\0"));
        feed(&mut f, &bytes);
        let Some(Item::Frame(first)) = f.next_item(|_| true).unwrap() else { panic!() };
        assert_eq!(first.body(), b"SELECT 1");
        let Some(Item::Frame(second)) = f.next_item(|_| true).unwrap() else { panic!() };
        assert_eq!(second.body(), b"DELETE FROM users\0");
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes, in any read sizes: no panic, and what comes out is exactly what went
            /// in, in order, until the first error.
            #[test]
            fn framer_is_lossless_and_never_panics(
                data in proptest::collection::vec(any::<u8>(), 0..2048),
                cuts in proptest::collection::vec(1usize..64, 1..64),
                mask in any::<u8>(),
            ) {
                let mut f = Framer::new(1024);
                let mut out = Vec::new();
                let mut pos = 0;
                let mut ci = 0;
                'outer: while pos < data.len() {
                    let n = cuts[ci % cuts.len()].min(data.len() - pos);
                    ci += 1;
                    f.buf_mut().extend_from_slice(&data[pos..pos + n]);
                    pos += n;
                    loop {
                        match f.next_item(|t| t & mask == 0) {
                            Ok(Some(Item::Frame(fr))) => {
                                prop_assert!(fr.bytes.len() >= 5 && fr.bytes.len() <= 1024);
                                out.extend_from_slice(&fr.bytes);
                            }
                            Ok(Some(Item::Pass(b))) => out.extend_from_slice(&b),
                            Ok(None) => break,
                            Err(_) => break 'outer,
                        }
                    }
                }
                prop_assert_eq!(&out[..], &data[..out.len()]);
            }

            /// `next_step` hands out the same frames and passes the same runs as `next_item`.
            #[test]
            fn steps_are_items_without_the_split(
                data in proptest::collection::vec(any::<u8>(), 0..2048),
                cuts in proptest::collection::vec(1usize..64, 1..64),
                mask in any::<u8>(),
            ) {
                let (mut a, mut b) = (Framer::new(1024), Framer::new(1024));
                let (mut items, mut steps) = (Vec::new(), Vec::new());
                let mut pos = 0;
                let mut ci = 0;
                'outer: while pos < data.len() {
                    let n = cuts[ci % cuts.len()].min(data.len() - pos);
                    ci += 1;
                    a.buf_mut().extend_from_slice(&data[pos..pos + n]);
                    b.buf_mut().extend_from_slice(&data[pos..pos + n]);
                    pos += n;
                    loop {
                        let item = a.next_item(|t| t & mask == 0);
                        let mut passed = Vec::new();
                        let step = b.next_step(|t| t & mask == 0, |run| passed.extend_from_slice(run));
                        match (item, step) {
                            (Ok(Some(Item::Frame(x))), Ok(Some(Step::Frame(y)))) => {
                                items.push((true, x.bytes.to_vec()));
                                steps.push((true, y.bytes.to_vec()));
                            }
                            (Ok(Some(Item::Pass(x))), Ok(Some(Step::Passed))) => {
                                items.push((false, x.to_vec()));
                                steps.push((false, passed));
                            }
                            (Ok(None), Ok(None)) => break,
                            (Err(x), Err(y)) => {
                                prop_assert_eq!(x, y);
                                break 'outer;
                            }
                            (x, y) => prop_assert!(false, "next_item {:?}, next_step {:?}", x, y),
                        }
                    }
                }
                prop_assert_eq!(items, steps);
            }

            #[test]
            fn startup_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut with_len = (u32::try_from(data.len() + 4).unwrap()).to_be_bytes().to_vec();
                with_len.extend_from_slice(&data);
                let _ = startup::parse(Bytes::from(with_len));
                if data.len() >= 4 {
                    let _ = startup::check_len([data[0], data[1], data[2], data[3]]);
                }
            }

            #[test]
            fn message_views_never_panic(tag in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
                let f = Frame { tag, bytes: encode(tag, &body) };
                let _ = messages::query_text(&f);
                let _ = messages::parse_msg(&f);
                let _ = messages::bind_names(&f);
                let _ = messages::ready_status(&f);
                let _ = messages::parameter_status(&f);
                let _ = messages::backend_key(&f);
                let _ = messages::error_fields(&f);
                let _ = messages::auth_kind(&f);
                let _ = messages::strip_channel_binding(&f);
            }
        }
    }
}
