//! Portal names SQL may have made a cursor of since the client bound them (twenty-fourth pass
//! Q2, Q3): portals and cursors are one namespace on the server, so after a protocol Bind of
//! `cur1`, `CLOSE cur1` (or a `ROLLBACK TO` that drops it) and `DECLARE cur1 CURSOR FOR …`, an
//! Execute of `cur1` reads the cursor, not what the mirror says was bound. Each `DECLARE` the
//! guard reads (`guard::cursors`) and each cursor a counted statement opened
//! (`precheck::objects`) puts its name here until the client binds the name again; an
//! Execute of a name here is judged as reading that cursor, and may redirect any name.
//!
//! Owns: that set. Does not own: the mirror of portals (`statements`), the cursor's judgement
//! (`statements::execute_cursor`).

use std::collections::HashSet;

/// How many names a session keeps apart; past it, every named portal is taken as replaced.
const MAX_REPLACED: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct Replaced {
    names: HashSet<Vec<u8>>,
    /// More names than [`MAX_REPLACED`], or any name (a counted statement opened cursors
    /// blastwall could not list).
    lost: bool,
}

impl Replaced {
    /// SQL may have made a cursor named `name` (`None`: any name).
    pub(super) fn made(&mut self, name: Option<&[u8]>) {
        match name {
            Some(n) if self.names.len() < MAX_REPLACED => {
                self.names.insert(n.to_vec());
            }
            _ => self.lost = true,
        }
    }

    /// The client bound a portal of this name again: an Execute of it runs what was bound.
    pub(super) fn bound(&mut self, portal: &[u8]) {
        if !self.names.is_empty() {
            self.names.remove(portal);
        }
    }

    /// Whether an Execute of `portal` may read a cursor SQL made under its name (the unnamed
    /// portal is no cursor's).
    pub(super) fn may_be(&self, portal: &[u8]) -> bool {
        !portal.is_empty() && (self.lost || (!self.names.is_empty() && self.names.contains(portal)))
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
    fn a_name_is_replaced_until_bound_again() {
        let mut r = Replaced::default();
        assert!(!r.any() && !r.may_be(b"cur1"));
        r.made(Some(b"cur1"));
        assert!(r.may_be(b"cur1") && !r.may_be(b"cur2") && !r.may_be(b""));
        r.bound(b"cur1");
        assert!(!r.may_be(b"cur1"));
        r.made(None);
        assert!(r.may_be(b"anything") && !r.may_be(b""));
    }
}
