//! blastwall's own statements on a client's session (opening and ending a check, counter
//! readings, EXPLAIN estimates, catalog lookups) as extended-protocol messages on a statement
//! and portal of blastwall's, ending in Sync: a simple Query would destroy the client's
//! unnamed prepared statement and unnamed portal (libpq's `PQprepare(conn, "", …)` relies on
//! them across Syncs). The replies are those of a Query with the same statements, apart from
//! the Parse/Bind/Close completions, which nobody reads.
//!
//! Owns: that encoding. Does not own: what the statements are (`precheck`, `catalog`).

use crate::wire::messages::{self, fe};
use bytes::{BufMut, BytesMut};

/// blastwall's statement and portal for its own statements (never one of the client's).
pub(super) const NAME: &str = "__blastwall_own";

/// `sql`, one or more statements of blastwall's, as messages ending in Sync: each statement
/// on the same name, closed before (an error may have skipped the last Close) and after.
pub fn messages(sql: &str) -> BytesMut {
    let mut out = statements(sql);
    out.put_slice(&crate::wire::encode(fe::SYNC, &[]));
    out
}

/// One statement of blastwall's with `text` parameters (`with_params`), without a Sync.
pub fn statement_with(sql: &str, params: &[&str]) -> BytesMut {
    with_params(NAME, sql, params)
}

/// `sql` as `messages` sends it, without the Sync.
pub fn statements(sql: &str) -> BytesMut {
    let mut out = BytesMut::with_capacity(sql.len() + 128);
    for st in split(sql) {
        out.put_slice(&on_name(NAME, st));
    }
    out
}

/// blastwall's own SQL (no rule or `BEGIN ATOMIC` bodies) split into its statements: the
/// scanner splits it exactly, at a fraction of the grammar's cost (the parser's split was a
/// quarter of a counted write's CPU: the counter reading is long).
pub(super) fn split(sql: &str) -> impl Iterator<Item = &str> {
    let statements = pg_query::split_with_scanner(sql).unwrap_or_else(|_| vec![sql]);
    statements.into_iter().map(str::trim).filter(|s| !s.is_empty())
}

/// The client's Query text sent as one statement of a batch of blastwall's (`implicit`,
/// `point`), on blastwall's own statement and portal: the unnamed statement holds the check
/// of the prepared readings (`prepared::Prepared::check_unnamed`). Never spliced into a
/// string of blastwall's.
pub(super) fn client_text(sql: &str) -> BytesMut {
    on_name(NAME, sql)
}

/// One statement on statement and portal `name`, leaving nothing behind: Close both, Parse,
/// Bind, Execute (all rows, text results), Close both (seven replies when all goes well).
pub(super) fn on_name(name: &str, sql: &str) -> BytesMut {
    with_params(name, sql, &[])
}

/// [`on_name`] of a statement whose parameters `$1`… are of type `text`, bound to `params` (in
/// text format): values that never pass through the SQL lexer.
pub(super) fn with_params(name: &str, sql: &str, params: &[&str]) -> BytesMut {
    const TEXT: u32 = 25;
    let mut out =
        BytesMut::with_capacity(2 * name.len() + sql.len() + params.iter().map(|p| p.len() + 4).sum::<usize>() + 96);
    out.extend_from_slice(&close(b'P', name));
    out.extend_from_slice(&close(b'S', name));
    out.extend_from_slice(&messages::parse_typed(name, sql, &vec![TEXT; params.len()]));
    out.extend_from_slice(&bind_execute_with(name, name, params));
    out.extend_from_slice(&close(b'P', name));
    out.extend_from_slice(&close(b'S', name));
    out
}

/// Bind of portal `portal` to statement `statement` (no parameters, text results), Execute
/// of all its rows.
pub(super) fn bind_execute(portal: &str, statement: &str) -> BytesMut {
    bind_execute_with(portal, statement, &[])
}

/// [`bind_execute`] with parameters in text format.
pub(super) fn bind_execute_with(portal: &str, statement: &str, params: &[&str]) -> BytesMut {
    let cstr = |b: &mut BytesMut, s: &str| {
        b.put_slice(s.as_bytes());
        b.put_u8(0);
    };
    let size = portal.len() + statement.len() + params.iter().map(|p| p.len() + 4).sum::<usize>() + 16;
    let mut out = BytesMut::with_capacity(size + portal.len() + 16);
    let mut bind = BytesMut::with_capacity(size);
    cstr(&mut bind, portal);
    cstr(&mut bind, statement);
    bind.put_i16(0);
    bind.put_u16(u16::try_from(params.len()).unwrap_or(u16::MAX));
    for p in params {
        bind.put_i32(i32::try_from(p.len()).unwrap_or(i32::MAX));
        bind.put_slice(p.as_bytes());
    }
    bind.put_i16(0);
    out.extend_from_slice(&crate::wire::encode(fe::BIND, &bind));
    let mut exec = BytesMut::new();
    cstr(&mut exec, portal);
    exec.put_i32(0);
    out.extend_from_slice(&crate::wire::encode(fe::EXECUTE, &exec));
    out
}

/// Close of blastwall's statement (`kind` `S`) or portal (`P`) `name` (no error when it does
/// not exist).
pub(super) fn close(kind: u8, name: &str) -> bytes::Bytes {
    let mut body = BytesMut::new();
    body.put_u8(kind);
    body.put_slice(name.as_bytes());
    body.put_u8(0);
    crate::wire::encode(fe::CLOSE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_statement_gets_its_own_parse_and_one_sync_ends_them() {
        let out = messages("BEGIN; SELECT 'a;b'");
        let mut framer = crate::wire::Framer::new(usize::MAX);
        framer.buf_mut().extend_from_slice(&out);
        let mut tags = String::new();
        while let Ok(Some(crate::wire::Item::Frame(f))) = framer.next_item(|_| true) {
            tags.push(f.tag as char);
        }
        assert_eq!(tags, "CCPBECCCCPBECCS");
    }
}
