//! Protected sequences moved by counted writes the client's transaction kept, until that
//! transaction ends (twenty-seventh pass H2): a write's move is judged against the rows it
//! inserted, but a later `ROLLBACK`, `ROLLBACK TO SAVEPOINT`, a failed block's end or a
//! disconnect drops those rows while the sequence stays moved — 20,000 to 50,000 steps per
//! statement with no row kept. Each such move is remembered, with a mark, until the server
//! says what became of it:
//!
//! - a `COMMIT` tag: kept, forgotten;
//! - a ReadyForQuery outside a block after a `ROLLBACK` tag or an error (a failed block's
//!   `ROLLBACK` or `COMMIT`, a failed implicit transaction): all undone, put back;
//!   outside a block with neither (an implicit transaction that ended well): kept;
//! - a `ROLLBACK` tag that leaves a block open (`ROLLBACK TO SAVEPOINT`, `ROLLBACK AND
//!   CHAIN`): which were undone is read from the server. With each remembered move blastwall
//!   sets a transaction-local setting, `blastwall.kept`, to its mark (`SET LOCAL`'s scope:
//!   a savepoint rolled back restores the value it had, a transaction's end drops it); the
//!   value read after the `ROLLBACK` tag is the last mark still standing, and the moves
//!   marked after it were undone;
//! - the client gone: the server rolls back, all are put back (`ending`).
//!
//! What is undone is put back as a failed statement's move is (`putback`): each sequence to
//! where it stood before the earliest undone write, when it moved beyond 1,000 steps since
//! and stands where this session's own last call left it. A `ROLLBACK TO` and the block's
//! `COMMIT` in one round trip leave no moment to read the setting: a Query that holds both
//! after such writes (or while moves are remembered) is refused, and so is `PREPARE
//! TRANSACTION` (a prepared transaction is rolled back by anyone, later): `refusal`.
//!
//! Owns: the remembered moves, their marks, and what each server reply makes of them. Does
//! not own: the readings (`precheck`), running the put-back (`putback`).

use super::Session;
use crate::guard::Verdict;
use crate::precheck::putback::Moved;
use crate::wire::messages::TxStatus;
use pg_query::protobuf::TransactionStmtKind as Tx;
use pg_query::NodeEnum;

/// The transaction-local setting that carries the last mark.
pub(super) const SETTING: &str = "blastwall.kept";

/// At most this many moves are remembered per transaction (past it, a write's move is
/// judged by its own rows only, as before, and a warning is logged).
const MAX_MOVES: usize = 100_000;

#[derive(Debug, Default)]
pub(super) struct Block {
    /// Each remembered move with its mark, in order.
    moves: Vec<(u64, Moved)>,
    /// The last mark given.
    marks: u64,
    /// A random word that a mark read back must carry (the client cannot forge one).
    nonce: u64,
    /// A `ROLLBACK` tag or an error came since the moves were last resolved.
    rolled: bool,
    errored: bool,
    /// A ROLLBACK tag left a block open: the setting is to be read.
    read_owed: bool,
    /// A mark to set (`record_later`).
    mark_owed: Option<String>,
}

impl Block {
    pub(super) fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6b65_7074);
        Block { nonce: h.finish(), ..Default::default() }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// A counted write kept in the client's transaction moved these: remembered under a new
    /// mark, returned with the statement that sets it (`None`: nothing moved, or too many).
    pub(super) fn record(&mut self, moved: Vec<Moved>) -> Option<String> {
        if moved.is_empty() {
            return None;
        }
        if self.moves.len() + moved.len() > MAX_MOVES {
            tracing::warn!("too many protected sequence moves in one transaction to remember; later ones are not");
            return None;
        }
        self.marks += 1;
        let mark = self.marks;
        self.moves.extend(moved.into_iter().map(|m| (mark, m)));
        Some(format!("SELECT pg_catalog.set_config('{SETTING}', '{}:{mark}', true)", self.nonce))
    }

    /// The same for moves known at a ReadyForQuery (a COPY's), whose mark is set at the
    /// session's next quiet point, before the client is read again (`mark_owed`).
    pub(super) fn record_later(&mut self, moved: Vec<Moved>) {
        if let Some(sql) = self.record(moved) {
            self.mark_owed = Some(sql);
        }
    }

    /// The statement that sets a mark owed, taken.
    pub(super) fn take_mark(&mut self) -> Option<String> {
        self.mark_owed.take()
    }

    pub(super) fn mark_owed(&self) -> bool {
        self.mark_owed.is_some()
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
                    // `refusal`; pipelined in extended batches it is not seen before).
                    tracing::warn!(
                        "a ROLLBACK and a COMMIT in one round trip after writes that moved a protected sequence: their moves are kept"
                    );
                }
                self.forget();
            }
            b"ROLLBACK" => self.rolled = true,
            _ => {}
        }
    }

    /// An ErrorResponse.
    pub(super) fn on_error(&mut self) {
        if !self.moves.is_empty() {
            self.errored = true;
        }
    }

    /// A ReadyForQuery: what is undone is returned (to be put back).
    pub(super) fn on_ready(&mut self, status: TxStatus) -> Vec<Moved> {
        if self.moves.is_empty() {
            return Vec::new();
        }
        match status {
            TxStatus::Idle => {
                let undone = self.rolled || self.errored;
                let all = std::mem::take(&mut self.moves);
                self.forget();
                match undone {
                    true => earliest(all.into_iter().map(|(_, m)| m)),
                    false => Vec::new(),
                }
            }
            TxStatus::InBlock => {
                if self.rolled {
                    self.read_owed = true;
                }
                self.rolled = false;
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

    /// Whether the setting is to be read (the server idle in an open block).
    pub(super) fn read_owed(&self) -> bool {
        self.read_owed && !self.moves.is_empty()
    }

    pub(super) fn read_sql() -> String {
        format!("SELECT pg_catalog.current_setting('{SETTING}', true)")
    }

    /// The setting as read: the moves marked after the last mark standing were undone
    /// (all of them when it carries none of this session's marks).
    pub(super) fn on_read(&mut self, value: Option<&str>) -> Vec<Moved> {
        self.read_owed = false;
        let standing = value
            .and_then(|v| v.split_once(':'))
            .filter(|(n, _)| n.parse::<u64>().ok() == Some(self.nonce))
            .and_then(|(_, m)| m.parse::<u64>().ok())
            .unwrap_or(0);
        let at = self.moves.partition_point(|(mark, _)| *mark <= standing);
        let undone = self.moves.split_off(at);
        earliest(undone.into_iter().map(|(_, m)| m))
    }

    /// The client left: its transaction is rolled back by the server; all is undone.
    pub(super) fn on_leaving(&mut self) -> Vec<Moved> {
        let all = std::mem::take(&mut self.moves);
        self.forget();
        earliest(all.into_iter().map(|(_, m)| m))
    }

    fn forget(&mut self) {
        self.moves.clear();
        self.rolled = false;
        self.errored = false;
        self.read_owed = false;
        self.mark_owed = None;
    }
}

impl Session {
    /// While moves are remembered, the client is read one sync point at a time: a message
    /// behind a `ROLLBACK TO` (another Query, pipelined) waits until the server answered it and
    /// the setting was read — else a `COMMIT` behind it would leave no moment to read it.
    pub(super) fn block_waits(&self) -> bool {
        // A COPY's data is the server's to read meanwhile; a COPY in the client's block may
        // be the first to move one.
        let remembers = !self.block.is_empty() || (self.copy_awaited.is_some() && self.relay.tx == TxStatus::InBlock);
        remembers
            && !self.relay.server_in_copy()
            && (self.relay.syncs_sent() > self.relay.syncs_done() || self.block.read_owed() || self.block.mark_owed())
    }

    /// A text that would end the client's transaction where blastwall cannot see what it
    /// undid, after writes that moved a protected sequence (remembered, or earlier in the same
    /// Query): refused while the session enforces (see the module's doc). `verdict`: the
    /// text's own.
    pub(super) fn undone_refusal(&mut self, sql: &[u8], verdict: Verdict) -> Verdict {
        // Only after such writes, or beside one that is counted (the hot path: neither).
        if self.block.is_empty() && !matches!(verdict, Verdict::Check(_) | Verdict::Split(_)) {
            return verdict;
        }
        let word = |w: &[u8]| sql.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w));
        if !word(b"rollback") && !word(b"abort") && !word(b"prepare") {
            return verdict;
        }
        let policy = self.shared.guard.policy();
        if !policy.tables.iter().any(|t| !t.sequences.is_empty())
            || crate::policy::mode_for(self.info.view(), &policy, None) != crate::policy::Mode::Enforce
        {
            return verdict;
        }
        let Some((verb, why, hint)) = unseen_end(&String::from_utf8_lossy(sql), !self.block.is_empty()) else {
            return verdict;
        };
        let m = crate::guard::refusal_message(&crate::guard::refusal(
            "unverifiable",
            verb.into(),
            format!("{MOVED}; {why}"),
            hint,
            "blastwall",
            String::from_utf8_lossy(sql).into_owned(),
        ));
        self.record_split_refusal(sql, &m);
        Verdict::Refuse(m)
    }
}

const MOVED: &str = "writes in this transaction moved a protected sequence, and a rollback that drops their rows leaves it moved: blastwall puts it back when it sees the rollback";

/// Whether `text` ends its transaction where blastwall cannot see what was undone: `PREPARE
/// TRANSACTION` (rolled back later, by any session), or a `ROLLBACK TO SAVEPOINT` / `ROLLBACK
/// AND CHAIN` followed by the transaction's `COMMIT` in the same text — after writes that may
/// have moved a protected sequence (`remembered`, or any statement before it in the text).
/// The refusal's verb, reason and hint.
fn unseen_end(text: &str, remembered: bool) -> Option<(&'static str, &'static str, &'static str)> {
    let parsed = crate::analyze::budget::parse(text, 0).ok()?;
    let kinds: Vec<Option<(Tx, bool)>> = parsed
        .protobuf
        .stmts
        .iter()
        .map(|raw| match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::TransactionStmt(t)) => Tx::try_from(t.kind).ok().map(|k| (k, t.chain)),
            _ => None,
        })
        .collect();
    let wrote_before = |i: usize| remembered || kinds[..i].iter().any(Option::is_none);
    for (i, k) in kinds.iter().enumerate() {
        match k {
            Some((Tx::TransStmtPrepare, _)) if wrote_before(i) => {
                return Some((
                    "PREPARE TRANSACTION",
                    "a prepared transaction is rolled back later, by any session, where blastwall cannot",
                    "Commit or roll back the transaction in this session instead of preparing it.",
                ))
            }
            Some((Tx::TransStmtRollbackTo, _)) | Some((Tx::TransStmtRollback, true)) if wrote_before(i) => {
                let ends =
                    kinds[i + 1..].iter().any(|k| matches!(k, Some((Tx::TransStmtCommit | Tx::TransStmtPrepare, _))));
                if ends {
                    return Some((
                        "ROLLBACK",
                        "a ROLLBACK TO SAVEPOINT (or AND CHAIN) and the transaction's COMMIT in one message leave no moment to see what the rollback dropped",
                        "Send the ROLLBACK TO SAVEPOINT as a message of its own, then the rest.",
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

/// Per sequence, the earliest undone move: put back to where it stood before the earliest
/// undone write (every row after that is gone).
fn earliest(moves: impl Iterator<Item = Moved>) -> Vec<Moved> {
    let mut out: Vec<Moved> = Vec::new();
    for m in moves {
        if !out.iter().any(|o| o.oid == m.oid) {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(oid: u32, was: i128) -> Moved {
        Moved { oid, start: Some(was), was: Some(was), allowed: Some(1000), left_at: None }
    }

    #[test]
    fn a_commit_keeps_and_a_rollback_undoes() {
        let mut b = Block::new();
        assert!(b.record(vec![moved(1, 10)]).is_some());
        b.on_tag(b"COMMIT\0");
        assert!(b.is_empty());
        b.record(vec![moved(1, 10)]);
        b.record(vec![moved(1, 50_010)]);
        b.on_tag(b"ROLLBACK\0");
        assert_eq!(b.on_ready(TxStatus::Idle), vec![moved(1, 10)]);
        assert!(b.is_empty());
    }

    #[test]
    fn an_implicit_transaction_that_ended_well_keeps() {
        let mut b = Block::new();
        b.record(vec![moved(1, 10)]);
        assert!(b.on_ready(TxStatus::Idle).is_empty());
        b.record(vec![moved(1, 10)]);
        b.on_error();
        assert_eq!(b.on_ready(TxStatus::Idle).len(), 1);
    }

    #[test]
    fn a_savepoint_rolled_back_undoes_what_was_marked_after_it() {
        let mut b = Block::new();
        b.record(vec![moved(1, 10)]);
        b.record(vec![moved(1, 20)]);
        b.record(vec![moved(1, 30)]);
        b.on_tag(b"ROLLBACK\0");
        assert!(b.on_ready(TxStatus::InBlock).is_empty());
        assert!(b.read_owed());
        let v = format!("{}:1", b.nonce);
        assert_eq!(b.on_read(Some(&v)), vec![moved(1, 20)]);
        assert!(!b.read_owed());
        // A forged or missing mark: all undone.
        assert_eq!(b.on_read(Some("7:9")), vec![moved(1, 10)]);
    }

    #[test]
    fn ends_that_hide_what_was_undone() {
        assert!(unseen_end("BEGIN; SAVEPOINT s; INSERT INTO t VALUES (1); ROLLBACK TO s; COMMIT", false).is_some());
        assert!(unseen_end("ROLLBACK TO s; COMMIT", true).is_some());
        assert!(unseen_end("ROLLBACK AND CHAIN; END", true).is_some());
        assert!(unseen_end("INSERT INTO t VALUES (1); PREPARE TRANSACTION 'x'", false).is_some());
        assert!(unseen_end("PREPARE TRANSACTION 'x'", true).is_some());
        // Nothing moved before it, or nothing ends the transaction after it.
        assert!(unseen_end("ROLLBACK TO s; COMMIT", false).is_none());
        assert!(unseen_end("PREPARE TRANSACTION 'x'", false).is_none());
        assert!(unseen_end("ROLLBACK TO s; SELECT 1", true).is_none());
        assert!(unseen_end("ROLLBACK", true).is_none());
        assert!(unseen_end("ROLLBACK PREPARED 'x'", true).is_none());
    }

    #[test]
    fn no_move_no_mark() {
        let mut b = Block::new();
        assert!(b.record(Vec::new()).is_none());
        b.on_tag(b"ROLLBACK\0");
        assert!(b.on_ready(TxStatus::Idle).is_empty());
    }
}
