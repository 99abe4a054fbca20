//! What a session waits for before it reads its client again: a message or batch held for
//! the pre-check, a catalog question, an analysis off the event loop, the server's answer.
//!
//! Owns: [`Pending`]. Does not own: running it (`checks`) or when it can run (`Session`'s loop).

use super::statements::Op;
use crate::precheck::CheckPlan;
use crate::wire::Frame;
use bytes::BytesMut;
use std::sync::Arc;

/// What waits for the server to be idle.
pub(super) enum Pending {
    /// Run these client messages inside the pre-check (for an extended batch: what its
    /// messages do to the mirror of statements and portals).
    Verify(BytesMut, Box<CheckPlan>, Vec<Op>),
    /// Count this Execute where it stands in its batch, once the server answered what came
    /// before it.
    Count(Frame, Arc<CheckPlan>),
    /// Judge this Execute once the earlier batches are answered (its plan depends on them).
    Execute(Frame),
    /// A Query that must be counted, sent in the middle of an extended batch: once the server
    /// answered the batch so far, dropped if the batch failed (the server skips it), else
    /// refused (it cannot be counted there).
    QueryInBatch(Box<CheckPlan>),
    /// Ask the catalog about these names, then judge the frame again.
    Resolve(Frame, Vec<crate::catalog::Question>),
    /// The same for a Query in the middle of an extended batch that ran nothing: once the
    /// server answered the batch so far, blastwall ends it with a Sync of its own (the Query
    /// would end its implicit transaction anyway) and asks.
    ResolveInBatch(Frame, Vec<crate::catalog::Question>),
    /// Analyze the frame's long text on a blocking thread, then judge it again.
    Analyze(Frame),
    /// Run this Query as an extended batch, statement by statement (`simple`).
    Simple(Frame, Vec<super::simple::Piece>),
    /// The client's CopyDone or CopyFail, once the server said whether the Execute before it
    /// started a COPY (which makes it ignore the Syncs sent since): `Session::copy_end`.
    CopyEnd(Frame),
    /// A client's Sync behind a Query or Execute that may start a COPY FROM STDIN, once the
    /// server said whether it did (`copying`).
    SyncInCopy(Frame),
    /// A client message that came during a COPY FROM STDIN behind Syncs whose answer is
    /// uncertain: handled once blastwall's marker said where the server stands
    /// (`relay::uncertain`), the marker going in its place as a probe meanwhile.
    AfterCopy(Frame),
    /// A lone `COPY … FROM STDIN` Query, judged harmless (forwarded with this action), once
    /// the protected sequences it may move were read (`copyback`).
    CopyReading(Frame, crate::relay::Action),
    /// The server is ending the session: a client message came during its COPY FROM STDIN
    /// (`copying`). Nothing more is read from the client.
    Ended,
}

impl Pending {
    pub(super) fn is_analysis(&self) -> bool {
        matches!(self, Pending::Analyze(_))
    }

    pub(super) fn is_count(&self) -> bool {
        matches!(self, Pending::Count(..))
    }

    pub(super) fn is_query_in_batch(&self) -> bool {
        matches!(self, Pending::QueryInBatch(..))
    }

    pub(super) fn is_resolve_in_batch(&self) -> bool {
        matches!(self, Pending::ResolveInBatch(..))
    }

    pub(super) fn is_execute(&self) -> bool {
        matches!(self, Pending::Execute(..))
    }

    pub(super) fn is_copy_end(&self) -> bool {
        matches!(self, Pending::CopyEnd(..))
    }

    pub(super) fn is_sync_in_copy(&self) -> bool {
        matches!(self, Pending::SyncInCopy(..))
    }

    pub(super) fn is_after_copy(&self) -> bool {
        matches!(self, Pending::AfterCopy(..))
    }

    pub(super) fn is_ended(&self) -> bool {
        matches!(self, Pending::Ended)
    }

    /// The type of the first client message it holds back from the server (the one the
    /// server would read first), if it holds one.
    pub(super) fn client_tag(&self) -> Option<u8> {
        match self {
            Pending::Verify(bytes, ..) => bytes.first().copied(),
            Pending::QueryInBatch(_) => Some(b'Q'),
            Pending::Count(f, _)
            | Pending::Execute(f)
            | Pending::Resolve(f, _)
            | Pending::ResolveInBatch(f, _)
            | Pending::Analyze(f)
            | Pending::AfterCopy(f)
            | Pending::Simple(f, _)
            | Pending::CopyReading(f, _) => Some(f.tag),
            Pending::CopyEnd(_) | Pending::SyncInCopy(_) | Pending::Ended => None,
        }
    }
}
