//! Where notifications go in what a counted statement's client receives. PostgreSQL sends a
//! NotificationResponse only between statements: just before a ReadyForQuery when the session is
//! outside a transaction block (self-notifications at that transaction's commit, other
//! sessions' whenever they arrived), or while idle waiting for the client — never among a
//! statement's rows (`postgres.c`: `ProcessNotifyInterrupt` before `ReadyForQuery`). The
//! pre-check reads blastwall's own statements around the client's (readings, `COMMIT`), and the
//! notifications that come with those are moved to just before the delivered replies'
//! ReadyForQuery, where the server would have sent them.
//!
//! The same for notifications that come while blastwall holds back the rest of an open batch
//! (a write counted where it stands, a Bind waiting for its Execute): the server, waiting for
//! that rest outside a transaction, sends them early; they wait for the batch's ReadyForQuery
//! (`Relay::defer_notifications`).
//!
//! And which NoticeResponses of a Query run statement by statement (`simple`) are blastwall's
//! doing, not the client's: the `DEBUG` notes of the extended protocol's own steps (`parse …`,
//! `bind … to …`, at `client_min_messages = debug2` and below), which a Query never causes, and
//! every `DEBUG` note of blastwall's grammar probe.
//!
//! Owns: that split and placement, and that reading of a notice. Does not own: the pre-check's
//! I/O (`precheck::backend`) or when replies are delivered (`checks`).

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

/// A field of an ErrorResponse or NoticeResponse body.
fn field(body: &[u8], kind: u8) -> Option<&[u8]> {
    let mut fields = body;
    while let Some((&k, rest)) = fields.split_first() {
        if k == 0 {
            return None;
        }
        let len = rest.iter().position(|&b| b == 0)?;
        if k == kind {
            return Some(&rest[..len]);
        }
        fields = &rest[len + 1..];
    }
    None
}

/// Whether a NoticeResponse body has severity `DEBUG` (its untranslated severity).
pub(super) fn is_debug(body: &[u8]) -> bool {
    field(body, b'V').or_else(|| field(body, b'S')) == Some(b"DEBUG")
}

/// Whether a NoticeResponse body is the `DEBUG` note of a Parse or Bind message.
pub(super) fn is_protocol_step(body: &[u8]) -> bool {
    is_debug(body) && matches!(field(body, b'R'), Some(b"exec_parse_message" | b"exec_bind_message"))
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

    #[test]
    fn a_parse_or_bind_debug_note_is_a_protocol_step() {
        let parse = b"SDEBUG\0VDEBUG\0C00000\0Mparse <unnamed>: SELECT 1\0Fpostgres.c\0L1363\0Rexec_parse_message\0\0";
        let bind = b"SDEBUG\0VDEBUG\0C00000\0Mbind <unnamed> to <unnamed>\0Rexec_bind_message\0\0";
        let raised = b"SDEBUG\0VDEBUG\0C00000\0Mdbg 7\0Rexec_stmt_raise\0\0";
        let notice = b"SNOTICE\0VNOTICE\0C00000\0Mexec_parse_message\0Rexec_parse_message\0\0";
        assert!(is_protocol_step(parse) && is_protocol_step(bind));
        assert!(!is_protocol_step(raised) && is_debug(raised));
        assert!(!is_protocol_step(notice) && !is_debug(notice));
        assert!(!is_debug(b"") && !is_debug(b"VDEBUG"));
    }
}
