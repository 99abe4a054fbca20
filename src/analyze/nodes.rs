//! Reading pg_query's protobuf nodes: an optional child, a list's items, a string node, a
//! constant's text — and the record that a fact was read from a literal's value (for the shape
//! cache, `shape`). Shared by the walk (`walk`) and the predicate reading (`predicate`).
//!
//! Owns: those accessors and the per-thread literal-read flag.

use pg_query::protobuf as pb;
use pg_query::NodeRef as R;

/// The node an optional child holds.
pub(super) fn opt(x: &Option<Box<pb::Node>>) -> Option<R<'_>> {
    x.as_deref().and_then(|n| n.node.as_ref()).map(|n| n.to_ref())
}

/// The nodes of a list, skipping empty ones.
pub(super) fn items(x: &[pb::Node]) -> impl Iterator<Item = R<'_>> {
    x.iter().filter_map(|n| n.node.as_ref()).map(|n| n.to_ref())
}

/// The string value of a `String` node.
pub(super) fn sval(v: &pb::Node) -> Option<&str> {
    match v.node.as_ref()? {
        pb::node::Node::String(s) => Some(&s.sval),
        _ => None,
    }
}

thread_local! {
    /// Whether the statement being walked had a literal's value read (see `shape`).
    static READ_LITERAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Records that a fact depends on a literal's value. Every read of a literal's value (a
/// constant, an option's argument, a file name) must call it, or the shape cache would share
/// facts between texts that differ in that literal.
pub(super) fn literal_read() {
    READ_LITERAL.with(|r| r.set(true));
}

/// The string of a constant (`'text'`).
pub(super) fn const_str(v: R<'_>) -> Option<&str> {
    match v {
        R::AConst(c) => match c.val.as_ref().inspect(|_| literal_read())? {
            pb::a_const::Val::Sval(s) => Some(&s.sval),
            _ => None,
        },
        _ => None,
    }
}

/// Starts recording literal reads for one statement's walk.
pub(super) fn start_literal_reads() {
    READ_LITERAL.with(|r| r.set(false));
}

/// Whether a literal's value was read since `start_literal_reads`.
pub(super) fn literals_read() -> bool {
    READ_LITERAL.with(|r| r.get())
}
