//! Protected sequences moved by counted writes the client's transaction kept, until that
//! transaction ends (twenty-seventh pass H2): a write's move is judged against the rows it
//! inserted, but a later `ROLLBACK`, `ROLLBACK TO SAVEPOINT`, a failed block's end or a
//! disconnect drops those rows while the sequence stays moved — 20,000 to 50,000 steps per
//! statement with no row kept. Each such move is remembered until the server says what became
//! of it:
//!
//! - a `COMMIT` tag: kept, forgotten;
//! - a ReadyForQuery outside a block after a `ROLLBACK` tag or an error (a failed block's
//!   `ROLLBACK` or `COMMIT`, a failed implicit transaction): all undone, put back;
//!   outside a block with neither (an implicit transaction that ended well): kept;
//! - a `ROLLBACK` tag that leaves a block open (`ROLLBACK TO SAVEPOINT`, `ROLLBACK AND
//!   CHAIN`), or a `RELEASE`: what they did is read from the server's locks. A (sub)transaction
//!   that writes holds a lock on its transaction ID until it ends: a savepoint rolled back
//!   lets it go, and so does one released (its rows then share its parent's fate, and the
//!   parent, which has an ID too, holds its own). Right after each remembered write blastwall
//!   reads the newest transaction ID its session holds — the one the write's rows share their
//!   fate with. After a `ROLLBACK` tag the writes from the first whose ID is gone were undone;
//!   after a `RELEASE` alone, those whose ID is gone now go with the newest ID held. The
//!   client is read one sync point at a time meanwhile (`block_waits`), and a tag met before
//!   a write is resolved before it is remembered, so that each reading follows one kind of
//!   step. A client cannot take a lock on a transaction ID, nor let one go (thirtieth pass
//!   H1: a transaction-local setting used as the mark before could be read and set by the
//!   client, and a forged one kept a 100,000-step move);
//! - the client gone: the server rolls back, all are put back (`ending`);
//! - the server session gone (the server ended it, the link broke): on a connection of
//!   blastwall's own, by each move's transaction ID's fate (`orphan`), from where the
//!   session last saw each sequence.
//!
//! What is undone is put back as a failed statement's move is (`putback`): each sequence to
//! where it stood before the earliest undone write that the later ones follow without a gap
//! (values another session took between two writes are in use: `contiguous_with_end`), when
//! it moved beyond 1,000 steps since and stands where this session's own last call left it. A `ROLLBACK TO` and the block's
//! `COMMIT` in one round trip leave no moment to read the locks: a Query that holds both
//! after such writes (or while moves are remembered) is refused, and so is `PREPARE
//! TRANSACTION` (a prepared transaction is rolled back by anyone, later): `unseen`.
//!
//! Owns: the remembered moves, their marks, and what each server reply makes of them. Does
//! not own: the readings (`precheck`), running the put-back (`putback`).

use super::Session;
use crate::precheck::putback::Moved;
use crate::wire::messages::TxStatus;

/// The newest transaction ID this session holds a lock on (`pg_locks`, every operator and
/// function `pg_catalog`'s).
pub(super) const NEWEST_XID: &str = "SELECT l.transactionid::pg_catalog.text FROM pg_catalog.pg_locks l \
    WHERE l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() \
    AND l.locktype OPERATOR(pg_catalog.=) 'transactionid' ORDER BY pg_catalog.age(l.transactionid) LIMIT 1";

/// Every transaction ID this session holds a lock on, newest first, as one text.
pub(super) const HELD_XIDS: &str = "SELECT pg_catalog.string_agg(l.transactionid::pg_catalog.text, ',' \
    ORDER BY pg_catalog.age(l.transactionid)) FROM pg_catalog.pg_locks l \
    WHERE l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() \
    AND l.locktype OPERATOR(pg_catalog.=) 'transactionid'";

/// At most this many moves are remembered per transaction (past it, a write's move is
/// judged by its own rows only, as before, and a warning is logged).
const MAX_MOVES: usize = 100_000;

#[derive(Debug, Default)]
pub(super) struct Block {
    /// Each remembered move with the transaction ID its write's fate is read by (`None`: the
    /// transaction holds none — the write wrote no row, so it moved at most the slack), and
    /// whether its values were handed out ([`Block::record`]).
    moves: Vec<(Option<u32>, Moved, bool)>,
    /// Since the moves were last resolved: a `ROLLBACK` tag, a `RELEASE` tag, an error.
    rolled: bool,
    released: bool,
    errored: bool,
    /// The block is open and idle after such a tag: the locks are to be read.
    read_owed: bool,
    /// A COPY's moves whose transaction ID is to be read (`record_later`).
    mark_owed: usize,
    /// Where the put-backs owed in a failed block left their sequences, read on blastwall's
    /// own connection as the block failed (`owed_ends`); `None`: not read yet.
    owed_ends: Option<Vec<(u32, Option<i128>)>>,
}

/// A text of the server's: a transaction ID, or several newest first (none: `None`).
pub(super) fn xids(value: Option<&str>) -> Vec<u32> {
    value.unwrap_or_default().split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

impl Block {
    pub(super) fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// Whether a `ROLLBACK` or `RELEASE` since the last reading is to be resolved before a
    /// new move is remembered (a move's transaction ID read after it would be read among
    /// what they did).
    pub(super) fn unresolved(&self) -> bool {
        !self.moves.is_empty() && (self.rolled || self.released)
    }

    /// A counted write kept in the client's transaction moved these, its rows written under
    /// `xid` (the newest transaction ID the session held right after it: `NEWEST_XID`).
    /// `handed`: a statement that takes values ahead (`guard::steps::takes_ahead`) — they are
    /// the client's, and no put-back may go under them: what came before in the block stays
    /// moved (charged, [`contiguous`]), and a put-back goes down to where they end at most.
    pub(super) fn record(&mut self, moved: Vec<Moved>, xid: Option<u32>, handed: bool) {
        if self.moves.len() + moved.len() > MAX_MOVES {
            tracing::warn!("too many protected sequence moves in one transaction to remember; later ones are not");
            return;
        }
        self.moves.extend(moved.into_iter().map(|m| (xid, m, handed)));
    }

    /// The oids of the moves `record_later` remembered whose transaction ID is owed.
    pub(super) fn unmarked(&self) -> Vec<u32> {
        let len = self.moves.len();
        self.moves[len.saturating_sub(self.mark_owed)..].iter().map(|(_, m, _)| m.oid).collect()
    }

    /// The session ends with the moves still remembered, its server session gone (or going):
    /// each with the transaction ID its fate is read by and where it left the sequence, for
    /// `orphan`.
    /// Moves made before values were handed out stay where they are (never put back under
    /// them) and are not returned.
    pub(super) fn orphaned(&mut self) -> Vec<(Option<u32>, Moved)> {
        let all = std::mem::take(&mut self.moves);
        self.forget();
        let last_handed = |oid: u32| all.iter().rposition(|(_, m, h)| *h && m.oid == oid);
        all.iter()
            .enumerate()
            .filter(|(i, (_, m, _))| last_handed(m.oid).is_none_or(|h| *i > h))
            .map(|(_, (x, m, _))| (*x, m.clone()))
            .collect()
    }

    /// The same for moves known at a ReadyForQuery (a COPY's), whose transaction ID is read at
    /// the session's next quiet point, before the client is read again (`marked`).
    pub(super) fn record_later(&mut self, moved: Vec<Moved>) {
        let before = self.moves.len();
        self.record(moved, None, false);
        self.mark_owed += self.moves.len() - before;
    }

    pub(super) fn mark_owed(&self) -> bool {
        self.mark_owed > 0
    }

    /// The transaction ID read for the moves `record_later` remembered, and where the
    /// sequences stood then (`at`: what they left them at).
    pub(super) fn marked(&mut self, xid: Option<u32>, at: &[(u32, Option<i128>)]) {
        let n = std::mem::take(&mut self.mark_owed);
        let len = self.moves.len();
        for (x, m, _) in &mut self.moves[len.saturating_sub(n)..] {
            *x = xid;
            m.left_at = at.iter().find(|(o, _)| *o == m.oid).map(|(_, v)| *v);
        }
    }

    /// A CommandComplete's tag (its body).
    pub(super) fn on_tag(&mut self, body: &[u8]) {
        if self.moves.is_empty() {
            return;
        }
        let tag = body.strip_suffix(b"\0").unwrap_or(body);
        match tag {
            b"COMMIT" | b"PREPARE TRANSACTION" => {
                if self.rolled {
                    // A ROLLBACK TO and the COMMIT in one round trip (refused in a Query,
                    // `unseen`; pipelined in extended batches it is not seen before).
                    tracing::warn!(
                        "a ROLLBACK and a COMMIT in one round trip after writes that moved a protected sequence: their moves are kept"
                    );
                }
                self.forget();
            }
            b"ROLLBACK" => self.rolled = true,
            b"RELEASE" => self.released = true,
            _ => {}
        }
    }

    /// An ErrorResponse.
    pub(super) fn on_error(&mut self) {
        if !self.moves.is_empty() {
            self.errored = true;
        }
    }

    /// A ReadyForQuery: what is undone is returned (to be put back; `charge` as in
    /// [`contiguous`]).
    pub(super) fn on_ready(&mut self, status: TxStatus, charge: Charge<'_>) -> Vec<Moved> {
        if self.moves.is_empty() {
            return Vec::new();
        }
        match status {
            TxStatus::Idle => {
                let undone = self.rolled || self.errored;
                let all = std::mem::take(&mut self.moves);
                self.forget();
                match undone {
                    true => contiguous(all.into_iter().map(|(_, m, h)| (m, h)), charge),
                    false => Vec::new(),
                }
            }
            TxStatus::InBlock => {
                self.read_owed = self.rolled || self.released;
                self.errored = false;
                Vec::new()
            }
            // A failed block: read once it is open again (ROLLBACK TO), or all undone at its end.
            TxStatus::Failed => {
                self.errored = false;
                Vec::new()
            }
        }
    }

    /// Whether a rollback now would put a sequence back: a run of the remembered moves ends
    /// beyond its allowance (or was judged beyond it).
    pub(super) fn would_put_back(&self) -> bool {
        let runs = runs(self.moves.iter().map(|(_, m, h)| (m.clone(), *h))).0;
        runs.iter().any(|m| match (m.was, m.left_at, m.allowed) {
            (_, _, None) => true,
            (Some(was), Some(Some(end)), Some(allowed)) => end - was > i128::from(allowed),
            _ => false,
        })
    }

    /// Whether the locks are to be read (the server idle in an open block).
    pub(super) fn read_owed(&self) -> bool {
        self.read_owed && !self.moves.is_empty()
    }

    /// The transaction IDs the session holds, newest first, as read once a `ROLLBACK` or
    /// `RELEASE` went (no move remembered since): a move whose ID is no longer held was
    /// undone by the rollback, and every move after it; after a `RELEASE` alone its rows now
    /// share the fate of the savepoint's parent, the newest ID held. (Both since the last
    /// reading, with no move between: a `RELEASE` and a `ROLLBACK TO` that both ran left no
    /// savepoint under the one rolled back — `ROLLBACK TO s; RELEASE s`, or a `RELEASE` of a
    /// savepoint inside the one rolled back — so a move whose ID is gone was undone.)
    pub(super) fn resolve(&mut self, held: &[u32], charge: Charge<'_>) -> Vec<Moved> {
        self.read_owed = false;
        let (rolled, released) = (std::mem::take(&mut self.rolled), std::mem::take(&mut self.released));
        let gone = |x: &Option<u32>| x.is_some_and(|x| !held.contains(&x));
        if !rolled && !released {
            return Vec::new();
        }
        if released && !rolled {
            let parent = held.first().copied();
            self.moves.iter_mut().filter(|(x, _, _)| gone(x)).for_each(|(x, _, _)| *x = parent);
            return Vec::new();
        }
        let Some(at) = self.moves.iter().position(|(x, _, _)| gone(x)) else {
            return Vec::new();
        };
        let undone = self.moves.split_off(at);
        contiguous(undone.into_iter().map(|(_, m, h)| (m, h)), charge)
    }

    /// Whether the ends of the put-backs owed in a failed block are still to be read.
    pub(super) fn owed_ends_unread(&self) -> bool {
        self.owed_ends.is_none()
    }

    /// They were read (or could not be: empty); forgotten once the put-backs ran.
    pub(super) fn set_owed_ends(&mut self, ends: Option<Vec<(u32, Option<i128>)>>) {
        self.owed_ends = ends;
    }

    /// Where a put-back owed for `oid` was left, as read (`orphan`).
    pub(super) fn owed_end(&self, oid: u32) -> Option<Option<i128>> {
        self.owed_ends.as_ref()?.iter().find(|(o, _)| *o == oid).map(|(_, v)| *v)
    }

    /// The transaction IDs the remembered moves were written under.
    pub(super) fn xids(&self) -> Vec<u32> {
        let mut x: Vec<u32> = self.moves.iter().filter_map(|(x, _, _)| *x).collect();
        x.sort_unstable();
        x.dedup();
        x
    }

    /// The session ends from blastwall's side: its transaction is rolled back by the server;
    /// all is undone. The moves stay remembered until the put-back ran (`orphaned` clears them).
    pub(super) fn leaving(&self, charge: Charge<'_>) -> Vec<Moved> {
        contiguous(self.moves.iter().map(|(_, m, h)| (m.clone(), *h)), charge)
    }

    fn forget(&mut self) {
        self.moves.clear();
        self.rolled = false;
        self.released = false;
        self.errored = false;
        self.read_owed = false;
        self.mark_owed = 0;
    }
}

impl Session {
    /// While moves are remembered, the client is read one sync point at a time: a message
    /// behind a `ROLLBACK TO` (another Query, pipelined) waits until the server answered it and
    /// the locks were read — else a `COMMIT` behind it would leave no moment to read them.
    pub(super) fn block_waits(&self) -> bool {
        // A COPY's data is the server's to read meanwhile; a COPY in the client's block may
        // be the first to move one.
        let remembers = !self.block.is_empty() || (self.copy_awaited.is_some() && self.relay.tx == TxStatus::InBlock);
        // What a `ROLLBACK TO` undid is put back before anything behind it runs (thirty-first
        // pass H1: a `SET TRANSACTION READ ONLY` behind it made the put-back fail).
        let owed = !self.put_back.is_empty() && self.relay.tx == TxStatus::InBlock && !self.relay.batch_has_messages();
        owed || remembers
            && !self.relay.server_in_copy()
            && (self.relay.syncs_sent() > self.relay.syncs_done() || self.block.read_owed() || self.block.mark_owed())
    }
}

/// Per sequence, what undone moves (in the order they were made, each with where it left the
/// sequence in `left_at`) are put back to: where it stood before the earliest of the last run
/// of them that follow each other — each standing where the one before left it. Values
/// another session took between two of them (thirty-third pass H3: three signups committed
/// between a block's two writes, then a ROLLBACK put the sequence back under them) lie in a
/// gap, and the run stops there: what came before it stays moved. The sequence's position
/// after the last of them, when known, stays in `left_at` (`orphan`'s condition); `None`
/// when a move's end was never read. The session's own put-back judges by `currval`
/// instead (`putback`): `left_at` is cleared for it by [`for_session`].
pub(super) fn contiguous_with_end(moves: impl Iterator<Item = Moved>) -> Vec<Moved> {
    runs(moves.map(|m| (m, false))).0
}

/// [`contiguous_with_end`] of moves each marked whether its values were handed out
/// ([`Block::record`]): such a move is never put back, and the run before it can no longer
/// be (it lies under them). Those runs come second: left moved, their rows gone.
fn runs(moves: impl Iterator<Item = (Moved, bool)>) -> (Vec<Moved>, Vec<Moved>) {
    let mut runs: Vec<(Moved, Option<Option<i128>>)> = Vec::new();
    let mut under = Vec::new();
    for (m, handed) in moves {
        if handed {
            if let Some(i) = runs.iter().position(|(r, _)| r.oid == m.oid) {
                let (r, end) = runs.remove(i);
                under.push(Moved { left_at: end, ..r });
            }
            continue;
        }
        match runs.iter_mut().find(|(r, _)| r.oid == m.oid) {
            // It follows the run: the run grows; else a new run starts from it.
            Some((_, end)) if *end == Some(m.was) && m.was.is_some() => *end = m.left_at,
            Some((r, end)) => {
                *end = m.left_at;
                *r = m;
            }
            None => {
                let end = m.left_at;
                runs.push((m, end));
            }
        }
    }
    (runs.into_iter().map(|(r, end)| Moved { left_at: end, ..r }).collect(), under)
}

/// Spends a run's steps from its sequence's creep budget (the OID, the steps, and whether they
/// are spent whatever the budget holds: `precheck::creep::charge`): false when they do not
/// fit.
pub(super) type Charge<'a> = &'a mut dyn FnMut(u32, u64, bool) -> bool;

/// [`contiguous_with_end`] for the session's own put-back. A run within its allowance is left
/// moved with its rows gone: its steps are spent from the creep budget (`charge`), and when
/// they do not fit it is put back whole (seventy-eighth pass H1: `BEGIN; INSERT` of 1,000 users
/// `; ROLLBACK`, again and again, moved the sequence 100,000 steps in 8 s, none of them spent).
/// A run under values handed out stays moved whatever its size, its steps charged.
fn contiguous(moves: impl Iterator<Item = (Moved, bool)>, charge: Charge<'_>) -> Vec<Moved> {
    let steps = |m: &Moved| match (m.was, m.left_at) {
        (Some(was), Some(Some(end))) if end > was => u64::try_from(end - was).ok(),
        _ => None,
    };
    let (runs, under) = runs(moves);
    for m in &under {
        if let Some(s) = steps(m) {
            charge(m.oid, s, true);
        }
    }
    let runs = runs.into_iter().map(|m| match (steps(&m), m.allowed) {
        (Some(s), Some(allowed)) if s <= allowed && !charge(m.oid, s, false) => Moved { allowed: Some(0), ..m },
        _ => m,
    });
    for_session(runs.collect())
}

/// Moves put back on the session itself: judged by its `currval`, not by where they ended.
fn for_session(moves: Vec<Moved>) -> Vec<Moved> {
    moves.into_iter().map(|m| Moved { left_at: None, ..m }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(oid: u32, was: i128) -> Moved {
        Moved { oid, start: Some(was), was: Some(was), allowed: Some(1000), left_at: None }
    }

    #[test]
    fn a_put_back_spans_only_the_last_run_of_moves_that_follow_each_other() {
        let at = |oid, was, left| Moved { left_at: Some(Some(left)), ..moved(oid, was) };
        // 10 → 11, then others took 12..14, then 14 → 5014 and 5014 → 6014: back to 14.
        let runs = contiguous_with_end([at(1, 10, 11), at(2, 5, 6), at(1, 14, 5014), at(1, 5014, 6014)].into_iter());
        assert_eq!(
            runs.iter().map(|m| (m.oid, m.was, m.left_at)).collect::<Vec<_>>(),
            [(1, Some(14), Some(Some(6014))), (2, Some(5), Some(Some(6)))]
        );
        // A move whose end was never read ends the run's known end, and nothing follows it.
        let unread = Moved { left_at: None, ..moved(1, 11) };
        let runs = contiguous_with_end([at(1, 10, 11), unread.clone(), at(1, 12, 20)].into_iter());
        assert_eq!(runs.iter().map(|m| (m.was, m.left_at)).collect::<Vec<_>>(), [(Some(12), Some(Some(20)))]);
        let runs = contiguous_with_end([at(1, 10, 11), unread].into_iter());
        assert_eq!(runs.iter().map(|m| (m.was, m.left_at)).collect::<Vec<_>>(), [(Some(10), None)]);
        // The session's own put-back judges by currval: no end.
        let mut b = Block::default();
        b.record(vec![at(1, 10, 11)], Some(7), false);
        b.record(vec![at(1, 14, 5014)], Some(7), false);
        b.on_tag(b"ROLLBACK\0");
        assert_eq!(b.on_ready(TxStatus::Idle, &mut |_, _, _| true), vec![Moved { left_at: None, ..moved(1, 14) }]);
    }

    #[test]
    fn values_handed_out_are_never_put_back_under_and_what_lies_under_them_is_charged() {
        let at = |was, left| Moved { left_at: Some(Some(left)), ..moved(1, was) };
        // 10 → 12 by an INSERT, 12 → 14 handed to the client, 14 → 2014 by a bulk INSERT.
        let mut b = Block::default();
        b.record(vec![at(10, 12)], Some(7), false);
        b.record(vec![at(12, 14)], Some(7), true);
        b.record(vec![at(14, 2014)], Some(7), false);
        assert!(b.would_put_back(), "the bulk run alone goes beyond the slack");
        let (runs, under) = runs(b.moves.iter().map(|(_, m, h)| (m.clone(), *h)));
        assert_eq!(runs.iter().map(|m| (m.was, m.left_at)).collect::<Vec<_>>(), [(Some(14), Some(Some(2014)))]);
        assert_eq!(under.iter().map(|m| (m.was, m.left_at)).collect::<Vec<_>>(), [(Some(10), Some(Some(12)))]);
        b.on_tag(b"ROLLBACK\0");
        let mut charged = Vec::new();
        let back = b.on_ready(TxStatus::Idle, &mut |oid, steps, force| {
            charged.push((oid, steps, force));
            true
        });
        assert_eq!(back, vec![Moved { left_at: None, ..moved(1, 14) }], "back to where the handed values end");
        assert_eq!(charged, [(1, 2, true)], "the INSERT's run under them stays moved, charged");
        // Orphaned, the moves up to the last handed one are not put back.
        b.record(vec![at(10, 12)], Some(7), false);
        b.record(vec![at(12, 14)], Some(7), true);
        b.record(vec![at(14, 2014)], Some(7), false);
        assert_eq!(b.orphaned(), vec![(Some(7), at(14, 2014))]);
    }

    #[test]
    fn a_commit_keeps_and_a_rollback_undoes() {
        let mut b = Block::default();
        b.record(vec![moved(1, 10)], Some(7), false);
        b.on_tag(b"COMMIT\0");
        assert!(b.is_empty());
        // The second write began where the first left it: both go back.
        b.record(vec![Moved { left_at: Some(Some(50_010)), ..moved(1, 10) }], Some(7), false);
        b.record(vec![moved(1, 50_010)], Some(8), false);
        b.on_tag(b"ROLLBACK\0");
        assert_eq!(b.on_ready(TxStatus::Idle, &mut |_, _, _| true), vec![moved(1, 10)]);
        assert!(b.is_empty());
    }

    #[test]
    fn an_implicit_transaction_that_ended_well_keeps() {
        let mut b = Block::default();
        b.record(vec![moved(1, 10)], Some(7), false);
        assert!(b.on_ready(TxStatus::Idle, &mut |_, _, _| true).is_empty());
        b.record(vec![moved(1, 10)], Some(7), false);
        b.on_error();
        assert_eq!(b.on_ready(TxStatus::Idle, &mut |_, _, _| true).len(), 1);
    }

    #[test]
    fn a_savepoint_rolled_back_undoes_the_writes_whose_transaction_ids_are_gone() {
        let mut b = Block::default();
        for (was, xid) in [(10, 700), (20, 702), (30, 705)] {
            b.record(vec![Moved { left_at: Some(Some(was + 10)), ..moved(1, was) }], Some(xid), false);
        }
        b.on_tag(b"ROLLBACK\0");
        assert!(b.on_ready(TxStatus::InBlock, &mut |_, _, _| true).is_empty());
        assert!(b.read_owed() && b.unresolved());
        assert_eq!(b.resolve(&[701, 700, 699], &mut |_, _, _| true), vec![moved(1, 20)]);
        assert!(!b.read_owed() && !b.unresolved());
        // No tag since: nothing is undone whatever is held.
        assert!(b.resolve(&[], &mut |_, _, _| true).is_empty());
        // A write with no transaction ID stands (it began where the one before left it).
        b.record(vec![moved(1, 20)], None, false);
        b.on_tag(b"ROLLBACK\0");
        assert_eq!(b.resolve(&[], &mut |_, _, _| true), vec![moved(1, 10)]);
    }

    #[test]
    fn a_savepoint_released_hands_its_writes_to_its_parent() {
        let mut b = Block::default();
        b.record(vec![moved(1, 10)], Some(700), false);
        b.record(vec![moved(1, 20)], Some(702), false);
        b.on_tag(b"RELEASE\0");
        assert!(b.on_ready(TxStatus::InBlock, &mut |_, _, _| true).is_empty());
        assert!(b.read_owed());
        assert!(b.resolve(&[701, 700], &mut |_, _, _| true).is_empty());
        // The parent rolled back later: both gone.
        b.on_tag(b"ROLLBACK\0");
        b.on_ready(TxStatus::InBlock, &mut |_, _, _| true);
        assert_eq!(b.resolve(&[700], &mut |_, _, _| true), vec![moved(1, 20)]);
        // ROLLBACK TO s; RELEASE s in one round trip: what is gone was undone.
        b.record(vec![moved(1, 30)], Some(710), false);
        b.on_tag(b"ROLLBACK\0");
        b.on_tag(b"RELEASE\0");
        b.on_ready(TxStatus::InBlock, &mut |_, _, _| true);
        assert_eq!(b.resolve(&[700], &mut |_, _, _| true), vec![moved(1, 30)]);
    }

    #[test]
    fn a_copy_is_marked_later() {
        let mut b = Block::default();
        b.record(vec![moved(1, 10)], Some(700), false);
        b.record_later(vec![moved(1, 20), moved(2, 5)]);
        assert!(b.mark_owed());
        b.marked(Some(703), &[(1, Some(40)), (2, Some(9))]);
        assert!(!b.mark_owed());
        b.on_tag(b"ROLLBACK\0");
        assert_eq!(b.resolve(&[700], &mut |_, _, _| true), vec![moved(1, 20), moved(2, 5)]);
    }
}
