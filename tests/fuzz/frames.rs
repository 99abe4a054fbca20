//! The framer on valid-looking streams: messages with correct lengths (a few far larger than the
//! limit), inspected and pass-through tags interleaved as a client or a server sends them, read
//! in random pieces, optionally ending in a corrupt header. The reference is the plain reading
//! of the stream the generator built: message by message, by length.

use blastwall::wire::{encode, FrameError, Framer, Item};
use proptest::prelude::*;

/// Frontend and backend tags; the inspected ones are what the session reads.
const FRONTEND: &[u8] = b"QPBEDCSHFXdcfp";
const FRONTEND_INSPECTED: &[u8] = b"QPBEDCSHFXfp";
const BACKEND: &[u8] = b"RKSZENvGHWTDCd1n23stAI";
const BACKEND_INSPECTED: &[u8] = b"RKSZENvGHWC12n3st";
const MAX: usize = 512;

#[derive(Debug, Clone)]
pub struct Stream {
    /// The messages in order: (tag, body).
    pub messages: Vec<(u8, Vec<u8>)>,
    /// How the stream ends: `None` cleanly, or with a header of this length field.
    pub bad_tail: Option<(u8, u32)>,
    pub inspected: &'static [u8],
    /// Read sizes, cycled.
    pub cuts: Vec<usize>,
}

impl Stream {
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (tag, body) in &self.messages {
            out.extend_from_slice(&encode(*tag, body));
        }
        if let Some((tag, len)) = self.bad_tail {
            out.push(tag);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&[0u8; 16]);
        }
        out
    }
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    // Mostly small, sometimes around the limit, sometimes far over it (a large DataRow or
    // CopyData that must stream through, or an inspected message that must be refused).
    prop_oneof![
        24 => proptest::collection::vec(any::<u8>(), 0..40),
        2 => proptest::collection::vec(any::<u8>(), MAX - 8..MAX + 8),
        1 => (MAX..4 * MAX).prop_map(|n| vec![b'x'; n]),
    ]
}

pub fn stream() -> impl Strategy<Value = Stream> {
    prop_oneof![Just((FRONTEND, FRONTEND_INSPECTED)), Just((BACKEND, BACKEND_INSPECTED))].prop_flat_map(
        |(tags, inspected)| {
            let message = (proptest::sample::select(tags), body());
            let bad_tail = proptest::option::weighted(
                0.15,
                (proptest::sample::select(tags), prop_oneof![0u32..4, Just(u32::MAX), (MAX as u32)..(MAX as u32 * 4)]),
            );
            let cuts = proptest::collection::vec(prop_oneof![1usize..8, 8usize..700], 1..16);
            (proptest::collection::vec(message, 0..24), bad_tail, cuts)
                .prop_map(move |(messages, bad_tail, cuts)| Stream { messages, bad_tail, inspected, cuts })
        },
    )
}

/// What the plain reading of the stream expects: each inspected message whole (or the
/// error its length earns), everything else passed through.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Frame(Vec<u8>),
    Error,
}

fn reference(s: &Stream) -> (Vec<Expect>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    for (tag, body) in &s.messages {
        let total = body.len() + 5;
        if s.inspected.contains(tag) {
            if total > MAX {
                out.push(Expect::Error);
                return (out, pos);
            }
            out.push(Expect::Frame(encode(*tag, body).to_vec()));
        }
        pos += total;
    }
    if let Some((tag, len)) = s.bad_tail {
        let too_long = (len as usize).saturating_add(1) > MAX && s.inspected.contains(&tag);
        if len < 4 || too_long {
            out.push(Expect::Error);
        }
    }
    (out, pos)
}

/// Runs the framer over the stream; returns (items, bytes out, largest buffer seen, whether it
/// stands at a message boundary at the end).
fn run(s: &Stream) -> (Vec<Expect>, Vec<u8>, usize, bool) {
    let data = s.bytes();
    let mut f = Framer::new(MAX);
    let mut got = Vec::new();
    let mut out = Vec::new();
    let mut most = 0;
    let (mut pos, mut ci) = (0, 0);
    let inspect = |t: u8| s.inspected.contains(&t);
    'feed: while pos < data.len() {
        let n = s.cuts[ci % s.cuts.len()].min(data.len() - pos);
        ci += 1;
        f.buf_mut().extend_from_slice(&data[pos..pos + n]);
        pos += n;
        loop {
            match f.next_item(inspect) {
                Ok(Some(Item::Frame(fr))) => {
                    assert_eq!(fr.tag, fr.bytes[0]);
                    out.extend_from_slice(&fr.bytes);
                    got.push(Expect::Frame(fr.bytes.to_vec()));
                }
                Ok(Some(Item::Pass(b))) => {
                    assert!(!b.is_empty(), "an empty pass-through item");
                    out.extend_from_slice(&b);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e, FrameError::TooShort { .. } | FrameError::TooLong { .. }), "{e:?}");
                    got.push(Expect::Error);
                    break 'feed;
                }
            }
            most = most.max(f.buf_mut().len());
        }
        most = most.max(f.buf_mut().len());
    }
    (got, out, most, f.is_at_boundary())
}

proptest! {
    #![proptest_config(crate::config(512))]

    /// Frames come out whole and in order, exactly the inspected messages; every byte comes out
    /// once, in order, up to the first bad header; what is buffered stays under the limit plus
    /// one read.
    #[test]
    fn framer_agrees_with_the_plain_reading(s in stream()) {
        let (want, clean_end) = reference(&s);
        let (got, out, most, boundary) = run(&s);
        let data = s.bytes();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(&out[..], &data[..out.len()], "bytes changed or reordered");
        if want.last() != Some(&Expect::Error) {
            prop_assert_eq!(out.len(), data.len(), "bytes lost");
            // A stream of whole messages ends at a boundary; one cut inside a message does not.
            prop_assert_eq!(boundary, s.bad_tail.is_none(), "at a boundary: {}", boundary);
        } else {
            // Nothing of the bad message or after it comes out.
            prop_assert!(out.len() <= clean_end, "{} bytes out, the bad header at {}", out.len(), clean_end);
        }
        let biggest_read = s.cuts.iter().max().copied().unwrap_or(0);
        prop_assert!(most <= MAX + biggest_read, "buffered {} bytes", most);
    }
}

/// The generator reaches deep states: most streams yield several whole frames, many pass
/// through messages larger than the limit, and both the clean end and each error occur.
#[test]
fn stream_generator_reaches_deep_states() {
    let samples = crate::sample(&stream(), 1000);
    let (mut frames3, mut big_pass, mut errors, mut clean) = (0, 0, 0, 0);
    for s in &samples {
        let (got, _, _, _) = run(s);
        if got.iter().filter(|e| matches!(e, Expect::Frame(_))).count() >= 3 {
            frames3 += 1;
        }
        if s.messages.iter().any(|(t, b)| !s.inspected.contains(t) && b.len() + 5 > MAX) {
            big_pass += 1;
        }
        match got.last() {
            Some(Expect::Error) => errors += 1,
            _ => clean += 1,
        }
    }
    assert!(frames3 > 400, "{frames3} of 1000 streams gave 3 or more frames");
    assert!(big_pass > 150, "{big_pass} streams passed an oversized message through");
    assert!(errors > 100 && clean > 300, "errors {errors}, clean ends {clean}");
}

/// The old property fed random bytes: almost every case ended at the first header. Kept as
/// a plain regression: one message split byte by byte.
#[test]
fn one_byte_reads_keep_every_frame() {
    let s = Stream {
        messages: vec![(b'Q', b"SELECT 1\0".to_vec()), (b'd', vec![1; 700]), (b'P', b"\0SELECT 2\0\0\0".to_vec())],
        bad_tail: None,
        inspected: FRONTEND_INSPECTED,
        cuts: vec![1],
    };
    let (got, out, _, boundary) = run(&s);
    assert!(boundary);
    assert_eq!(got, reference(&s).0);
    assert_eq!(out, s.bytes());
}
