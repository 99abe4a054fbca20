//! DDL the server will refuse for lack of privilege (ninth adversarial pass D2) must not
//! hold other sessions' writes: a DML-only role's `ALTER TABLE users RENAME TO x` would
//! otherwise wait for, and after 5 seconds cancel, every other session's write to `users`.
//!
//! Whether the role may run it is asked on its own session (`names::rights`), which is only
//! sound when nothing of the session runs between that question and the DDL: so the waits
//! are skipped only for one message, judged when the server had answered everything the
//! session sent before, whose first statement is the DDL (if the server refuses that one, it
//! runs nothing after it in the message), and only when that message's DDL is the only one
//! whose waits are pending. Anything else waits as before. What the message publishes stays
//! published until its answer either way: other sessions' writes judged meanwhile are judged
//! with it (it may have run).
//!
//! Owns: which message that is. Does not own: the question (`names::rights`), asking it and
//! the waiting (`crate::session`, `super::wait`).

use crate::analyze::Statement;
use crate::names::Earlier;

/// The message the session's pending waits are for, if it is the only one and came first.
#[derive(Debug, Clone, Default)]
pub struct First {
    /// Its sync point and its first statement's text.
    message: Option<(u64, String)>,
    /// Waits of another message (or of none known) are pending too.
    mixed: bool,
}

impl First {
    /// A judgement of `statements` (sync point `ord`; `quiet`: everything sent before was
    /// answered; `none_before`: no wait was pending) that waits (`waits`) or not.
    pub(super) fn judged(&mut self, statements: &[Statement], quiet: bool, ord: u64, none_before: bool, waits: bool) {
        if !waits {
            return;
        }
        let this =
            statements.first().filter(|st| quiet && Earlier::for_others(st).is_some()).map(|st| (ord, st.text.clone()));
        match (&self.message, this) {
            (Some(m), Some(t)) if *m == t => {}
            (None, Some(t)) if none_before && !self.mixed => self.message = Some(t),
            _ => self.mixed(),
        }
    }

    /// Waits of something else are pending too: every one is waited for.
    pub(super) fn mixed(&mut self) {
        self.message = None;
        self.mixed = true;
    }

    /// The waits are done with (waited for, or skipped): the message whose DDL they were for,
    /// as its sync point and its first statement's text, when it was the only one.
    pub fn take(&mut self) -> Option<(u64, String)> {
        let message = self.message.take();
        match std::mem::take(&mut self.mixed) {
            true => None,
            false => message,
        }
    }
}

impl super::Db {
    /// Whether DDL of a session other than `me` (or of a prepared transaction) is open: it may
    /// change what `me`'s role may do before `me`'s DDL runs.
    pub fn open_elsewhere(&self, me: u64) -> bool {
        let s = self.lock();
        s.ddl.iter().any(|(id, ..)| *id != me) || !s.prepared.is_empty()
    }
}
