//! Portal names SQL may have made a cursor of since the client bound them (twenty-fourth pass
//! Q2, Q3): portals and cursors are one namespace on the server, so after a protocol Bind of
//! `cur1`, `CLOSE cur1` (or a `ROLLBACK TO` that drops it) and `DECLARE cur1 CURSOR FOR …`, an
//! Execute of `cur1` reads the cursor, not what the mirror says was bound. Each `DECLARE` the
//! guard reads (`guard::cursors`) and each cursor a counted statement opened
//! (`precheck::objects`) puts its name here until the server confirms a Bind of the name
//! that the client sent after it (twenty-fifth pass R2: a Bind the server refused or
//! skipped made nothing); an Execute of a name here is judged as reading that cursor, and
//! may redirect any name.
//!
//! Owns: that set. Does not own: the mirror of portals (`statements`), the cursor's judgement
//! (`statements::execute_cursor`).

use std::collections::{HashMap, VecDeque};

/// How many names a session keeps apart; past it, every named portal is taken as replaced.
const MAX_REPLACED: usize = 4096;

/// How many Binds sent and not yet confirmed a session keeps in order; past it, a Bind is not
/// kept, and its confirmation clears nothing.
const MAX_PENDING: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Replaced {
    /// Each name, with the event at which SQL last made it.
    names: HashMap<Vec<u8>, u64>,
    /// Binds sent while any name is kept, in order, with the event at which each was sent.
    /// Confirmations come in the same order; a Bind the server refused or skipped stays in
    /// front of later ones of its name (then such a later one is judged by the stale one,
    /// which was sent before it: a name made after the stale one stays).
    pending: VecDeque<(Vec<u8>, u64)>,
    /// Events counted: makes and Binds sent.
    events: u64,
    /// More names than [`MAX_REPLACED`], or any name (a counted statement opened cursors
    /// blastwall could not list).
    lost: bool,
}

impl Replaced {
    /// SQL may have made a cursor named `name` (`None`: any name).
    pub(super) fn made(&mut self, name: Option<&[u8]>) {
        self.events += 1;
        match name {
            Some(n) if self.names.len() < MAX_REPLACED => {
                self.names.insert(n.to_vec(), self.events);
            }
            _ => self.lost = true,
        }
    }

    /// The client sent a Bind of `portal`.
    pub(super) fn bind_sent(&mut self, portal: &[u8]) {
        if self.names.is_empty() || self.pending.len() >= MAX_PENDING {
            return;
        }
        self.events += 1;
        self.pending.push_back((portal.to_vec(), self.events));
    }

    /// The server confirmed a Bind of `portal` (BindComplete): when it was sent after SQL
    /// last made the name, an Execute of it runs what was bound.
    pub(super) fn bind_confirmed(&mut self, portal: &[u8]) {
        if self.names.is_empty() {
            self.pending.clear();
            return;
        }
        let Some(i) = self.pending.iter().position(|(p, _)| p == portal) else { return };
        let Some((_, sent)) = self.pending.remove(i) else { return };
        if self.names.get(portal).is_some_and(|made| sent > *made) {
            self.names.remove(portal);
        }
    }

    /// A Bind counted inside a check, confirmed there (its portal is the client's own).
    pub(super) fn bound(&mut self, portal: &[u8]) {
        if !self.names.is_empty() {
            self.names.remove(portal);
        }
    }

    /// Whether an Execute of `portal` may read a cursor SQL made under its name (the unnamed
    /// portal is no cursor's).
    pub(super) fn may_be(&self, portal: &[u8]) -> bool {
        !portal.is_empty() && (self.lost || (!self.names.is_empty() && self.names.contains_key(portal)))
    }

    /// Whether any name may be.
    pub(super) fn any(&self) -> bool {
        self.lost || !self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_replaced_until_a_bind_sent_after_it_is_confirmed() {
        let mut r = Replaced::default();
        assert!(!r.any() && !r.may_be(b"cur1"));
        r.made(Some(b"cur1"));
        assert!(r.may_be(b"cur1") && !r.may_be(b"cur2") && !r.may_be(b""));
        // Sent, not confirmed (refused or skipped): still the cursor.
        r.bind_sent(b"cur1");
        assert!(r.may_be(b"cur1"));
        r.bind_sent(b"cur1");
        r.bind_confirmed(b"cur1");
        assert!(!r.may_be(b"cur1"));
        // A Bind sent before the name was made again clears nothing when confirmed.
        r.made(Some(b"cur2"));
        r.bind_sent(b"cur2");
        r.made(Some(b"cur2"));
        r.bind_confirmed(b"cur2");
        assert!(r.may_be(b"cur2"));
        r.bound(b"cur2");
        assert!(!r.may_be(b"cur2"));
        r.made(None);
        assert!(r.may_be(b"anything") && !r.may_be(b""));
    }
}
