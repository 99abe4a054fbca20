//! What a counted message that ran quietly leaves of the taint. A message that may run code
//! (a read of a relation another role owns, a call) marks the taint stale when it is judged,
//! and the next statement asks both catalog questions again — about 10 ms of planning on the
//! server per read. When the check's readings say the statement ran quietly
//! (`precheck::objects::Changes::quiet`: its transaction wrote nothing, so no catalog row and
//! no temporary object, and the `search_path` and roles are as before it), nothing the answer
//! was drawn from changed by its doing: the answer held before the message is taken back.
//!
//! Only the message the check ran: the state is remembered when the message's judgement first
//! marks it stale ([`Taint::begin_message`] forgets an older one), stamped when its judgement
//! ends, and given back only while nothing was marked or learned since the stamp.
//!
//! Owns: that remembering and giving back. Does not own: what "quiet" means
//! (`precheck::objects`), or when a check hands it back (`session::checks`).

use super::Taint;

/// The taint before a message marked it stale, and the marks and answers it had then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undo {
    before: Taint,
    /// `changes` once the message was judged (every mark it made counted).
    changes: Option<u64>,
    learned: u64,
    /// Handed to the check of the message that remembered it.
    for_check: bool,
}

impl Taint {
    /// A message's judgement begins: what an earlier one remembered is no longer its to give.
    pub fn begin_message(&mut self) {
        self.undo = None;
    }

    /// The message's judgement ended: what it remembered is stamped with the marks it made.
    pub fn end_message(&mut self) {
        let changes = self.changes;
        if let Some(u) = self.undo.as_mut() {
            u.changes = Some(changes);
        }
    }

    /// The message just judged goes to its check (a Query's `Pending::Verify`): what it
    /// remembered is kept for that check alone ([`Taint::take_for_check`]).
    pub fn to_check(&mut self) {
        let changes = self.changes;
        if let Some(u) = self.undo.as_mut().filter(|u| u.changes == Some(changes)) {
            u.for_check = true;
        }
    }

    /// At a check's start: what its message remembered ([`Taint::to_check`]), for
    /// [`Taint::ran_quietly`]; nothing else, and nothing is left for a later check.
    pub fn take_for_check(&mut self) -> Option<Box<Undo>> {
        self.undo.take().filter(|u| u.for_check)
    }

    /// The message's check says it ran quietly: the answer held before it stands again, unless
    /// something was marked or learned since its judgement.
    pub fn ran_quietly(&mut self, undo: &Undo) {
        if undo.changes != Some(self.changes) || undo.learned != self.learned {
            return;
        }
        let before = &undo.before;
        self.state = before.state.clone();
        self.path = before.path.clone();
        self.defers = before.defers;
        self.functions = before.functions;
        self.redirects = before.redirects;
        self.learned_in_block = before.learned_in_block;
        self.learned += 1;
    }

    /// Called by every mark: remembers the state before the message's first one.
    pub(super) fn remember(&mut self) {
        if self.undo.is_none() {
            let before = Taint { undo: None, ..self.clone() };
            self.undo = Some(Box::new(Undo { before, changes: None, learned: self.learned, for_check: false }));
        }
    }
}
