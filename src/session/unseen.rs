//! What would end the client's transaction where blastwall cannot see what it undid, after
//! writes whose moves of protected sequences it remembers (`undone`): refused while the
//! session enforces (`unverifiable`) — `PREPARE TRANSACTION`, a rollback with statements after
//! it in one Query, a `RELEASE` with a `ROLLBACK TO` after it, `DISCARD SEQUENCES`/`ALL`.
//!
//! Owns: that refusal. Does not own: what is remembered (`undone`).

use super::Session;
use crate::guard::Verdict;
use pg_query::protobuf::TransactionStmtKind as Tx;
use pg_query::NodeEnum;

impl Session {
    /// A text that would end the client's transaction where blastwall cannot see what it
    /// undid, after writes that moved a protected sequence (remembered, or earlier in the same
    /// Query): refused while the session enforces (see the module's doc). `verdict`: the
    /// text's own.
    pub(super) fn undone_refusal(&mut self, sql: &[u8], verdict: Verdict) -> Verdict {
        // Only after such writes, or beside one that is counted (the hot path: neither).
        let remembered = !self.block.is_empty() || !self.put_back.is_empty();
        if !remembered && !matches!(verdict, Verdict::Check(_) | Verdict::Split(_)) {
            return verdict;
        }
        let word = |w: &[u8]| sql.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w));
        if ![&b"rollback"[..], b"abort", b"prepare", b"release", b"discard"].iter().any(|w| word(w)) {
            return verdict;
        }
        let policy = self.shared.guard.policy();
        if !policy.tables.iter().any(|t| !t.sequences.is_empty())
            || crate::policy::mode_for(self.info.view(), &policy, None) != crate::policy::Mode::Enforce
        {
            return verdict;
        }
        let Some((verb, why, hint)) = unseen_end(&String::from_utf8_lossy(sql), remembered) else {
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

/// Said of writes that *may* have moved a sequence (forty-eighth pass L2: "moved" was said
/// where none had).
const MOVED: &str = "statements in this transaction (or before it in this message) may have moved a protected sequence, and a rollback that drops their rows would leave it moved: blastwall puts it back when it sees the rollback on its own";

/// Whether `text` would undo writes where blastwall cannot see what was undone, or leave it
/// unable to put their moves back — after writes that may have moved a protected sequence
/// (`remembered`, or a statement before it in the text that inserts, calls a function or
/// `nextval`, or runs code). The refusal's verb, reason and hint:
/// - `PREPARE TRANSACTION`: rolled back later, by any session;
/// - a `ROLLBACK` (whole, `TO SAVEPOINT`, `AND CHAIN`) with anything after it in the same text
///   (`ROLLBACK TO s; RELEASE s` aside), and a `RELEASE SAVEPOINT` with a `ROLLBACK TO` after
///   it: blastwall reads what they did, and puts back, before anything else runs (thirty-first
///   pass M1, M2: a `RELEASE` and a later `ROLLBACK TO`, or writes behind the rollback, in one
///   message were misread; H1: a `SET TRANSACTION READ ONLY` behind it made the put-back fail);
/// - `DISCARD SEQUENCES` or `DISCARD ALL`: it forgets the session's last sequence values, by
///   which a put-back tells this session's own move from values another session took (thirty-
///   first pass H2).
fn unseen_end(text: &str, remembered: bool) -> Option<(&'static str, &'static str, &'static str)> {
    let parsed = crate::analyze::budget::parse(text, 0).ok()?;
    let nodes: Vec<Option<&NodeEnum>> =
        parsed.protobuf.stmts.iter().map(|raw| raw.stmt.as_ref().and_then(|n| n.node.as_ref())).collect();
    fn tx(n: Option<&NodeEnum>) -> Option<(Tx, bool, &str)> {
        match n {
            Some(NodeEnum::TransactionStmt(t)) => {
                Tx::try_from(t.kind).ok().map(|k| (k, t.chain, t.savepoint_name.as_str()))
            }
            _ => None,
        }
    }
    // Statements before it that may move a sequence (a DELETE or an UPDATE of plain values
    // cannot).
    let moves: Vec<bool> = parsed
        .protobuf
        .stmts
        .iter()
        .zip(&nodes)
        .map(|(raw, n)| match n {
            _ if tx(*n).is_some() => false,
            Some(
                NodeEnum::InsertStmt(_)
                | NodeEnum::MergeStmt(_)
                | NodeEnum::CopyStmt(_)
                | NodeEnum::CallStmt(_)
                | NodeEnum::DoStmt(_)
                | NodeEnum::ExecuteStmt(_),
            ) => true,
            _ => {
                let start = usize::try_from(raw.stmt_location).unwrap_or(0);
                let end = match usize::try_from(raw.stmt_len) {
                    Ok(0) | Err(_) => text.len(),
                    Ok(n) => start + n,
                };
                let slice = text.get(start..end).unwrap_or(text);
                crate::analyze::analyze(slice, Default::default())
                    .iter()
                    .any(|st| st.calls_functions || !st.nextval.is_empty() || !st.opaque.is_empty())
            }
        })
        .collect();
    let wrote_before = |i: usize| remembered || moves[..i].iter().any(|m| *m);
    for (i, n) in nodes.iter().enumerate() {
        if !wrote_before(i) {
            continue;
        }
        if let Some(NodeEnum::DiscardStmt(d)) = n {
            use pg_query::protobuf::DiscardMode;
            if matches!(DiscardMode::try_from(d.target), Ok(DiscardMode::DiscardAll | DiscardMode::DiscardSequences)) {
                return Some((
                    "DISCARD",
                    "DISCARD SEQUENCES forgets the session's last sequence values, by which blastwall tells its own move from values other sessions took when it puts one back",
                    "Run it once the transaction ended and nothing is owed (after its COMMIT, or a moment after its ROLLBACK).",
                ));
            }
        }
        match tx(*n) {
            Some((Tx::TransStmtPrepare, _, _)) => {
                return Some((
                    "PREPARE TRANSACTION",
                    "a prepared transaction is rolled back later, by any session, where blastwall cannot",
                    "Commit or roll back the transaction in this session instead of preparing it.",
                ))
            }
            // A RELEASE hands its writes to the parent: harmful only when a rollback follows
            // it in the same message (whose target may be a savepoint made after it).
            Some((Tx::TransStmtRelease, _, _))
                if nodes[i + 1..].iter().any(|r| {
                    matches!(tx(*r), Some((Tx::TransStmtRollbackTo, _, _)) | Some((Tx::TransStmtRollback, true, _)))
                }) =>
            {
                return Some((
                    "RELEASE",
                    "a RELEASE SAVEPOINT and a later ROLLBACK TO SAVEPOINT in one message leave no moment to see which writes the rollback dropped",
                    "Send the RELEASE SAVEPOINT as a message of its own, then the rest.",
                ));
            }
            Some((Tx::TransStmtRollbackTo | Tx::TransStmtRollback, _, name)) => {
                let rest = &nodes[i + 1..];
                // `ROLLBACK TO s; RELEASE s` (psycopg's end of a failed nested transaction).
                let idiom = matches!(rest, [r] if matches!(tx(*r), Some((Tx::TransStmtRelease, _, n)) if n == name))
                    && matches!(tx(*n), Some((Tx::TransStmtRollbackTo, _, _)));
                if !rest.is_empty() && !idiom {
                    return Some((
                        "ROLLBACK",
                        "a ROLLBACK, ROLLBACK TO SAVEPOINT or ROLLBACK AND CHAIN with other statements after it in one message leaves no moment to see what it dropped, and to put it back, before they run",
                        "Send the rollback as a message of its own (ROLLBACK TO s; RELEASE s may go together), then the rest.",
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(unseen_end("ROLLBACK", true).is_none());
        assert!(unseen_end("ROLLBACK PREPARED 'x'", true).is_none());
        assert!(unseen_end("ROLLBACK TO s; RELEASE s", true).is_none());
        assert!(unseen_end("SAVEPOINT s; SELECT 1; RELEASE s", false).is_none());
        // Anything behind a rollback or a release, once writes moved a sequence.
        assert!(unseen_end("ROLLBACK TO s; SELECT 1", true).is_some());
        assert!(unseen_end("RELEASE s1; SAVEPOINT s2; ROLLBACK TO s2", true).is_some());
        assert!(unseen_end("ROLLBACK TO a; SET LOCAL transaction_read_only = on", true).is_some());
        assert!(unseen_end("INSERT INTO t VALUES (1); ROLLBACK TO a; INSERT INTO t VALUES (2)", false).is_some());
        assert!(unseen_end("ROLLBACK TO s; RELEASE t", true).is_some());
        assert!(unseen_end("ROLLBACK; SELECT 1", true).is_some());
        assert!(unseen_end("DISCARD SEQUENCES", true).is_some());
        assert!(unseen_end("DISCARD ALL", true).is_some());
        assert!(unseen_end("DISCARD TEMP", true).is_none());
        assert!(unseen_end("DISCARD SEQUENCES", false).is_none());
        // A RELEASE with a COMMIT or a write behind it keeps what it released.
        assert!(
            unseen_end("BEGIN; INSERT INTO t VALUES (1); SAVEPOINT a; SELECT 1; RELEASE a; COMMIT", false).is_none()
        );
        assert!(unseen_end("RELEASE a; INSERT INTO t VALUES (1)", true).is_none());
        // Writes before it that cannot move a sequence.
        assert!(unseen_end(
            "SAVEPOINT a; DELETE FROM t WHERE id = 1; ROLLBACK TO a; DELETE FROM t WHERE id = 2",
            false
        )
        .is_none());
        assert!(unseen_end("SAVEPOINT a; UPDATE t SET x = nextval('s'); ROLLBACK TO a; SELECT 1", false).is_some());
    }
}
