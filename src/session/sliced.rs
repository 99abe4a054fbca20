//! Which run a counted message continues: a protocol Execute of a suspended portal (found by
//! `counting`), or a SQL `FETCH`/`MOVE` of a cursor read in the pre-check — the cursor's
//! earlier counted reads in the same transaction are the same run (red-team F10). Cursors and
//! portals share one namespace on the server, and so do their runs here. A name declared again
//! in the same transaction continues the earlier cursor's run (stricter, never looser: a
//! failed DECLARE inside a savepoint leaves the old cursor open).
//!
//! Owns: finding the cursor a held Query reads, and whether a reply ended a cursor read.
//! Does not own: the runs (`counting::PortalRuns`), the count (`precheck`).

use crate::wire::messages::{self, fe};
use crate::wire::{Framer, Item};

/// The cursor a held Query reads (`FETCH`/`MOVE`), when it is one.
pub(super) fn fetched_cursor(held: &[u8]) -> Option<Vec<u8>> {
    let mut framer = Framer::new(usize::MAX);
    framer.buf_mut().extend_from_slice(held);
    let Ok(Some(Item::Frame(f))) = framer.next_item(|_| true) else { return None };
    if f.tag != fe::QUERY {
        return None;
    }
    let sql = messages::query_text(&f).ok()?;
    if !crate::guard::cursors::mentions_cursors(sql) {
        return None;
    }
    let parsed = crate::analyze::budget::parse(&String::from_utf8_lossy(sql), 0).ok()?;
    parsed.protobuf.stmts.iter().find_map(|s| match s.stmt.as_ref().and_then(|n| n.node.as_ref()) {
        Some(pg_query::NodeEnum::FetchStmt(f)) => Some(f.portalname.clone().into_bytes()),
        _ => None,
    })
}

/// Whether a reply is a cursor read's end (`FETCH n`, `MOVE n`): its run goes on while the
/// transaction does, as a suspended portal's.
pub(super) fn read_a_cursor(tag: u8, body: &[u8]) -> bool {
    tag == b'C' && (body.starts_with(b"FETCH ") || body.starts_with(b"MOVE "))
}
