//! The replies the server still owes for the client's forwarded Parse, Bind, Close, Describe
//! and Execute messages, in order, with what an Execute's judgement asks of them found without
//! a pass over them (`statements::Mirror::execute_is_certain`): the last owed Bind of each
//! portal, the owed Parse and Close of each statement name, the owed Parse, Bind and Close of
//! each batch, and how many Executes are owed.
//!
//! A pass per Execute made a batch quadratic in its length: asyncpg's `executemany` sends
//! every row as a Bind and an Execute of one batch, and 20,000 rows took 5 s of blastwall's
//! CPU (against 0.2 s for the server), nearly all of it comparing portal names
//! (forty-sixth pass L1).
//!
//! Owns: that queue and its index. Does not own: what a reply confirms (`statements`).

use super::statements::Op;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// The owed replies: each message with the ordinal of the sync point that ends its batch.
#[derive(Debug, Default)]
pub(super) struct Owed {
    queue: VecDeque<(u64, Op)>,
    /// The number of the queue's front message (each message is numbered as it is owed).
    front: u64,
    /// Per portal, its last owed Bind: (batch, number); its statement is read in the queue.
    binds: HashMap<Vec<u8>, (u64, u64)>,
    /// Per statement name, its owed Parse and Close messages: (batch, number), in order.
    named: HashMap<Vec<u8>, VecDeque<(u64, u64)>>,
    /// Per batch, how many Parse, Bind and Close messages of it are owed (none: no entry).
    changes: BTreeMap<u64, usize>,
    executes: usize,
}

/// The statement name a Parse or a Close of a statement changes.
fn statement_named(op: &Op) -> Option<&[u8]> {
    match op {
        Op::Parse { name, .. } | Op::Close { portal: false, name } => Some(name),
        _ => None,
    }
}

impl Owed {
    pub(super) fn push_back(&mut self, ord: u64, op: Op) {
        let number = self.front + self.queue.len() as u64;
        match &op {
            Op::Bind { portal, .. } => match self.binds.get_mut(portal) {
                Some(last) => *last = (ord, number),
                None => drop(self.binds.insert(portal.clone(), (ord, number))),
            },
            Op::Execute => self.executes += 1,
            _ => {}
        }
        if let Some(name) = statement_named(&op) {
            self.named.entry(name.to_vec()).or_default().push_back((ord, number));
        }
        if matches!(op, Op::Parse { .. } | Op::Bind { .. } | Op::Close { .. }) {
            *self.changes.entry(ord).or_default() += 1;
        }
        self.queue.push_back((ord, op));
    }

    pub(super) fn pop_front(&mut self) -> Option<(u64, Op)> {
        let (ord, op) = self.queue.pop_front()?;
        let number = self.front;
        self.front += 1;
        match &op {
            Op::Bind { portal, .. } if self.binds.get(portal).is_some_and(|(_, n)| *n == number) => {
                self.binds.remove(portal);
            }
            Op::Execute => self.executes -= 1,
            _ => {}
        }
        if let Some(name) = statement_named(&op) {
            if let Some(list) = self.named.get_mut(name) {
                list.pop_front();
                if list.is_empty() {
                    self.named.remove(name);
                }
            }
        }
        if matches!(op, Op::Parse { .. } | Op::Bind { .. } | Op::Close { .. }) {
            if let Some(n) = self.changes.get_mut(&ord) {
                *n -= 1;
                if *n == 0 {
                    self.changes.remove(&ord);
                }
            }
        }
        Some((ord, op))
    }

    /// Keeps only the messages `keep` takes (the batches the server skipped are dropped:
    /// rare, so the index is made again).
    pub(super) fn retain(&mut self, keep: impl Fn(u64) -> bool) -> bool {
        let before = self.queue.len();
        let kept: Vec<(u64, Op)> = self.queue.drain(..).filter(|(o, _)| keep(*o)).collect();
        let front = self.front + before as u64;
        *self = Owed { front, ..Owed::default() };
        for (ord, op) in kept {
            self.push_back(ord, op);
        }
        self.queue.len() != before
    }

    pub(super) fn front(&self) -> Option<&(u64, Op)> {
        self.queue.front()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &(u64, Op)> {
        self.queue.iter()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(super) fn executes(&self) -> bool {
        self.executes > 0
    }

    /// The statement of the last Bind of `portal` owed in batch `ord`, and its number; `ord`
    /// is the batch being sent (no message of a later one is owed).
    pub(super) fn bind_in(&self, portal: &[u8], ord: u64) -> Option<(u64, &[u8])> {
        let (_, number) = self.binds.get(portal).filter(|(o, _)| *o == ord)?;
        match self.queue.get(usize::try_from(number - self.front).ok()?) {
            Some((_, Op::Bind { statement, .. })) => Some((*number, statement.as_slice())),
            _ => None,
        }
    }

    /// Whether a Parse, Bind or Close of a batch before `ord` is owed.
    pub(super) fn changes_before(&self, ord: u64) -> bool {
        self.changes.range(..ord).next().is_some()
    }

    /// Whether a Parse or Close of statement `name` is owed in batch `ord` before message
    /// `number`, and whether one is owed in a batch before `ord`.
    pub(super) fn names_statement(&self, name: &[u8], ord: u64, number: u64) -> (bool, bool) {
        let Some(list) = self.named.get(name) else { return (false, false) };
        let current = list.iter().any(|(o, n)| *o == ord && *n < number);
        let earlier = list.front().is_some_and(|(o, _)| *o < ord);
        (current, earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Op {
        Op::Parse { name: name.into(), plan: None, facts: None }
    }

    fn bind(portal: &str, statement: &str) -> Op {
        Op::Bind { portal: portal.into(), statement: statement.into() }
    }

    /// The index answers what a pass over the queue answers, after any pushes, pops and
    /// retains.
    #[test]
    fn the_index_answers_as_a_pass_over_the_queue() {
        let ops = |i: u64| match i % 7 {
            0 => parse(["s", "t", ""][(i % 3) as usize]),
            1 | 4 => bind(["", "p"][(i % 2) as usize], ["s", "t", ""][(i % 3) as usize]),
            2 | 5 => Op::Execute,
            3 => Op::Close { portal: i.is_multiple_of(2), name: ["s", "t"][(i % 2) as usize].into() },
            _ => Op::Describe,
        };
        let mut owed = Owed::default();
        let mut ord = 1;
        for step in 0..3_000u64 {
            let r = step.wrapping_mul(2_654_435_761) % 100;
            match r {
                0..=54 => owed.push_back(ord, ops(step)),
                55..=84 => drop(owed.pop_front()),
                85..=94 => ord += 1,
                _ => drop(owed.retain(|o| o % 3 != step % 3)),
            }
            check(&owed, ord);
        }
    }

    fn check(owed: &Owed, ord: u64) {
        let all: Vec<(u64, u64, &Op)> =
            owed.queue.iter().enumerate().map(|(i, (o, op))| (*o, owed.front + i as u64, op)).collect();
        let changes = all
            .iter()
            .any(|(o, _, op)| *o < ord && matches!(op, Op::Parse { .. } | Op::Bind { .. } | Op::Close { .. }));
        assert_eq!(owed.changes_before(ord), changes);
        assert_eq!(owed.executes(), all.iter().any(|(_, _, op)| matches!(op, Op::Execute)));
        for portal in [&b""[..], b"p"] {
            let last = all
                .iter()
                .rev()
                .find(|(o, _, op)| *o == ord && matches!(op, Op::Bind { portal: p, .. } if p == portal));
            let want = last.map(|(_, n, op)| match op {
                Op::Bind { statement, .. } => (*n, statement.as_slice()),
                _ => unreachable!(),
            });
            assert_eq!(owed.bind_in(portal, ord), want);
            let Some((number, statement)) = want else { continue };
            let names = |op: &Op| statement_named(op) == Some(statement);
            let current = all.iter().any(|(o, n, op)| *o == ord && *n < number && names(op));
            let earlier = all.iter().any(|(o, _, op)| *o < ord && names(op));
            assert_eq!(owed.names_statement(statement, ord, number), (current, earlier));
        }
    }
}
