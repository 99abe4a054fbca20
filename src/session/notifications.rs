//! Where notifications go in what a counted statement's client receives. PostgreSQL sends a
//! NotificationResponse only between statements: just before a ReadyForQuery when the session is
//! outside a transaction block (self-notifications at that transaction's commit, other
//! sessions' whenever they arrived), or while idle waiting for the client — never among a
//! statement's rows (`postgres.c`: `ProcessNotifyInterrupt` before `ReadyForQuery`). The
//! pre-check reads blastwall's own statements around the client's (readings, `COMMIT`), and the
//! notifications that come with those are moved to just before the delivered replies'
//! ReadyForQuery, where the server would have sent them.
//!
//! Owns: that split and placement. Does not own: the pre-check's I/O (`precheck::backend`) or
//! when replies are delivered (`checks`).

use crate::wire::messages::be;
use bytes::BytesMut;

/// NotificationResponse.
const NOTIFICATION: u8 = b'A';

/// `for_client` (frames the server sent during a check that are the client's) without its
/// NotificationResponses, and those, in order.
pub(super) fn split(for_client: BytesMut) -> (BytesMut, BytesMut) {
    let (mut rest, mut notifications) = (BytesMut::new(), BytesMut::new());
    let mut framer = crate::wire::Framer::new(usize::MAX);
    framer.buf_mut().extend_from_slice(&for_client);
    while let Ok(Some(crate::wire::Item::Frame(f))) = framer.next_item(|_| true) {
        let to = if f.tag == NOTIFICATION { &mut notifications } else { &mut rest };
        to.extend_from_slice(&f.bytes);
    }
    // Anything left unframed (not expected: whole frames only) stays where it was.
    rest.extend_from_slice(framer.buf_mut());
    (rest, notifications)
}

/// Appends `replies` to `out` with `notifications` just before their last frame when that is a
/// ReadyForQuery (after them otherwise).
pub(super) fn before_ready(out: &mut BytesMut, replies: &[u8], notifications: &[u8]) {
    const READY: usize = 6;
    let ends_ready = replies.len() >= READY
        && replies[replies.len() - READY] == be::READY_FOR_QUERY
        && replies[replies.len() - READY + 1..replies.len() - 1] == [0, 0, 0, 5];
    let cut = if ends_ready { replies.len() - READY } else { replies.len() };
    out.extend_from_slice(&replies[..cut]);
    out.extend_from_slice(notifications);
    out.extend_from_slice(&replies[cut..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode;

    #[test]
    fn notifications_go_just_before_the_ready_for_query() {
        let a = encode(NOTIFICATION, b"\0\0\0\x07ch\0hello\0");
        let s = encode(be::PARAMETER_STATUS, b"x\0y\0");
        let mut during = BytesMut::from(&a[..]);
        during.extend_from_slice(&s);
        let (rest, notes) = split(during);
        assert_eq!((&rest[..], &notes[..]), (&s[..], &a[..]));
        let (t, z) = (encode(b'C', b"SELECT 1\0"), encode(be::READY_FOR_QUERY, b"I"));
        let mut replies = t.to_vec();
        replies.extend_from_slice(&z);
        let mut out = BytesMut::new();
        before_ready(&mut out, &replies, &notes);
        assert_eq!(&out[..], [&t[..], &a[..], &z[..]].concat());
        let mut out = BytesMut::new();
        before_ready(&mut out, &t, &notes);
        assert_eq!(&out[..], [&t[..], &a[..]].concat());
    }
}
