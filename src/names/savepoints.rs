//! Savepoints in a message or a batch (twentieth pass FPx): a `ROLLBACK TO x` that returns to
//! a `SAVEPOINT x` set in the same message, or the same sync point, undoes only what ran since
//! — each statement of which is judged as an earlier statement itself — and leaves names
//! leading where they did when it was set. One that may return to a savepoint of an earlier
//! message may undo DDL blastwall's answers show as done, and stays a rollback that may
//! redirect any name (`earlier::Kind::Rollback`).
//!
//! Owns: reading a savepoint's name and matching a `ROLLBACK TO` with its `SAVEPOINT`. Does
//! not own: the list of earlier statements (`earlier`), following the path (`path`).

use super::earlier::{first_words, Earlier, Kind};
use crate::analyze::Statement;

/// A transaction-control statement's savepoint, as the server reads it (names folded).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Savepoint {
    Set(String),
    RollbackTo(String),
    Release(String),
    /// Any other transaction control (`RELEASE`, `COMMIT`, `ROLLBACK`, …), or one that does not
    /// parse alone here.
    Other,
}

pub(super) fn savepoint(st: &Statement) -> Savepoint {
    savepoint_of(&st.text)
}

fn savepoint_of(text: &str) -> Savepoint {
    use pg_query::protobuf::TransactionStmtKind as K;
    crate::analyze::deep::with_parse(text, pg_query::ParserOptions::DEFAULT, |tree| {
        let Ok(t) = tree else { return Savepoint::Other };
        let [one] = t.protobuf.stmts.as_slice() else { return Savepoint::Other };
        let Some(pg_query::NodeEnum::TransactionStmt(x)) = one.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            return Savepoint::Other;
        };
        match x.kind {
            k if k == K::TransStmtSavepoint as i32 => Savepoint::Set(x.savepoint_name.clone()),
            k if k == K::TransStmtRollbackTo as i32 => Savepoint::RollbackTo(x.savepoint_name.clone()),
            k if k == K::TransStmtRelease as i32 => Savepoint::Release(x.savepoint_name.clone()),
            _ => Savepoint::Other,
        }
    })
}

/// Whether `message[i]` is a `ROLLBACK TO SAVEPOINT x` that returns to a `SAVEPOINT x` set
/// earlier in the same message, with no transaction control between them but other
/// savepoints set and rollbacks to `x`. A `RELEASE` (of `x`, or of a savepoint set before it,
/// which releases `x` too), a `ROLLBACK TO` another savepoint or a transaction's end between
/// them may leave `x` naming a savepoint of an earlier message, behind DDL blastwall's answers
/// show as done (`SAVEPOINT a; CREATE TEMP TABLE users …`, then `SAVEPOINT a; RELEASE a;
/// ROLLBACK TO a; DELETE FROM users …`).
pub(super) fn returns_within(message: &[Statement], i: usize) -> bool {
    returns_to(message, i).is_some()
}

/// The index of the `SAVEPOINT` of the same message that `message[i]` returns to
/// ([`returns_within`]).
pub(super) fn returns_to(message: &[Statement], i: usize) -> Option<usize> {
    let st = &message[i];
    if !st.transaction_control || !first_words(st.text.as_bytes()).0.eq_ignore_ascii_case(b"rollback") {
        return None;
    }
    let Savepoint::RollbackTo(name) = savepoint(st) else { return None };
    for (j, before) in message[..i].iter().enumerate().rev() {
        // An SQL `EXECUTE` may run a statement prepared with the protocol: a `RELEASE` too.
        if !before.executes.is_empty() {
            return None;
        }
        if !before.transaction_control {
            continue;
        }
        match savepoint(before) {
            Savepoint::Set(n) if n == name => return Some(j),
            Savepoint::Set(_) => {}
            Savepoint::RollbackTo(n) if n == name => {}
            _ => return None,
        }
    }
    None
}

impl Earlier {
    /// This statement as one of `candidates` statements a name may stand for (a prepared
    /// name's, `session::names`): a `SAVEPOINT` among several may not be the one that runs
    /// (twenty-second pass S1: Parsed as `SAVEPOINT a`, replaced by `SELECT 1` in the same
    /// batch, then bound), so it sets no savepoint a `ROLLBACK TO` may be taken to return to.
    pub fn among(mut self, candidates: usize) -> Earlier {
        if candidates > 1 && self.kind == Kind::Mark {
            self.point = None;
        }
        self
    }
}

/// [`returns_within`] for statements sent and not yet answered, as kept in their order
/// (`earlier::keep`): a `ROLLBACK TO x` returns to a `SAVEPOINT x` of the same sync point,
/// with nothing between them but other savepoints set, rollbacks to `x`, DDL and calls (each
/// an earlier statement itself). Only the same sync point: after an error the server skips to
/// the Sync, so a `SAVEPOINT x` that failed (in a failed block) is followed by nothing of its
/// sync point, while a `ROLLBACK TO x` of the next one would return to an older `x`.
pub(super) fn returns_within_sent(sent: &[Earlier], i: usize) -> bool {
    let Some(x) = sent[i].point.as_ref().filter(|_| sent[i].kind == Kind::Rollback) else { return false };
    for before in sent[..i].iter().rev() {
        if before.ord != sent[i].ord {
            return false;
        }
        match (before.kind, &before.point) {
            (Kind::Mark, Some(p)) if p == x => return true,
            (Kind::Mark, Some(_)) | (Kind::Ddl | Kind::Call, _) => {}
            (Kind::Rollback, Some(p)) if p == x => {}
            _ => return false,
        }
    }
    false
}

/// Keeps `list` (statements sent and not yet answered, `earlier::keep`) as short as what the
/// server's savepoints are, when `e` is a savepoint statement of the same sync point as the
/// savepoints set last (forty-seventh pass L2: 35 `SAVEPOINT a; ROLLBACK TO a` blocks in one
/// Query filled the list, and a later write was refused as unresolvable):
/// - `SAVEPOINT x` with only savepoints set since an `x`: nothing to keep (the older `x`
///   stands for both: a later `ROLLBACK TO x` or `RELEASE x` then destroys more of the list
///   than of the server's savepoints, so a later `ROLLBACK TO` is only less often found to
///   return within);
/// - `ROLLBACK TO x` with only savepoints set since `x`: they are destroyed, nothing ran
///   between, and `x` stays: the list ends at `x`;
/// - `RELEASE x` with only savepoints set since `x`: they and `x` are destroyed, the list
///   ends before `x`, and a later `ROLLBACK TO` an older savepoint still returns within.
///
/// Whether `e` was folded (then it is not to be kept).
pub(super) fn folded(list: &mut Vec<Earlier>, e: &Earlier) -> bool {
    let since = |x: &str| -> Option<usize> {
        for (j, before) in list.iter().enumerate().rev() {
            match (before.ord == e.ord, before.kind, before.point.as_deref()) {
                (true, Kind::Mark, Some(p)) if p == x => return Some(j),
                (true, Kind::Mark, Some(_)) => {}
                _ => return None,
            }
        }
        None
    };
    match (e.kind, e.point.as_deref()) {
        (Kind::Mark, Some(x)) => since(x).is_some(),
        (Kind::Rollback, Some(x)) => since(x).map(|j| list.truncate(j + 1)).is_some(),
        (Kind::Mark, None) => match savepoint_of(&e.text) {
            Savepoint::Release(x) => since(&x).map(|j| list.truncate(j)).is_some(),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::path::Paths;

    fn st(text: &str) -> Statement {
        let lower = text.to_lowercase();
        let tc = ["savepoint", "release", "rollback", "commit", "begin"].iter().any(|w| lower.starts_with(w));
        Statement { text: text.into(), transaction_control: tc, ddl: lower.starts_with("drop"), ..Default::default() }
    }

    fn message(texts: &[&str]) -> Vec<Statement> {
        texts.iter().map(|t| st(t)).collect()
    }

    #[test]
    fn a_rollback_returns_within_the_message_only_to_its_own_savepoint() {
        let within = |texts: &[&str]| returns_within(&message(texts), texts.len() - 1);
        assert!(within(&["SAVEPOINT a", "DELETE FROM t WHERE id = 1", "ROLLBACK TO a"]));
        assert!(within(&["SAVEPOINT a", "SAVEPOINT b", "ROLLBACK TO a", "ROLLBACK TO SAVEPOINT a"]));
        // A rollback to another savepoint between them is not followed (read conservatively).
        assert!(!within(&["SAVEPOINT a", "SAVEPOINT b", "ROLLBACK TO b", "ROLLBACK TO a"]));
        assert!(within(&["savepoint \"A\"", "ROLLBACK TRANSACTION TO \"A\""]));
        assert!(!within(&["savepoint \"A\"", "ROLLBACK TO a"]));
        assert!(!within(&["ROLLBACK TO a"]));
        assert!(!within(&["SAVEPOINT a", "RELEASE a", "ROLLBACK TO a"]));
        assert!(!within(&["SAVEPOINT a", "SAVEPOINT b", "RELEASE b", "ROLLBACK TO a"]));
        assert!(!within(&["SAVEPOINT a", "ROLLBACK TO b", "ROLLBACK TO a"]));
        assert!(!within(&["SAVEPOINT a", "COMMIT", "BEGIN", "ROLLBACK TO a"]));
        assert!(!within(&["SAVEPOINT a", "ROLLBACK"]));
        // An SQL EXECUTE between them may run a RELEASE prepared with the protocol.
        let mut m = message(&["SAVEPOINT a", "EXECUTE rel", "ROLLBACK TO a"]);
        m[1].executes.push(crate::analyze::Execute { name: "rel".into(), array_lens: vec![], explained: false });
        assert!(!returns_within(&m, 2));
    }

    #[test]
    fn a_rollback_sent_returns_only_within_its_sync_point() {
        let kept = |list: &[(&str, u64)]| -> Vec<Earlier> {
            let mut out = Vec::new();
            for (t, ord) in list {
                crate::names::keep(&mut out, Earlier::of(&st(t), *ord).unwrap());
            }
            out
        };
        let last = |l: &[Earlier]| returns_within_sent(l, l.len() - 1);
        // DDL between them: kept, and the rollback returns within.
        let ddl = ("DROP TABLE t CASCADE", 2);
        let l = kept(&[("SAVEPOINT a", 2), ("SAVEPOINT b", 2), ddl, ("ROLLBACK TO a", 2)]);
        assert!(l.len() == 4 && last(&l));
        assert!(!last(&kept(&[("SAVEPOINT a", 1), ddl, ("ROLLBACK TO a", 2)])), "another sync point");
        assert!(!last(&kept(&[("SAVEPOINT a", 2), ddl, ("RELEASE a", 2), ("ROLLBACK TO a", 2)])));
        // The same text again keeps its order: the second ROLLBACK TO is after the RELEASE.
        let l = kept(&[("SAVEPOINT a", 2), ddl, ("ROLLBACK TO a", 2), ("RELEASE a", 2), ("ROLLBACK TO a", 2)]);
        assert_eq!(l.len(), 5);
        assert!(returns_within_sent(&l, 2) && !last(&l));
    }

    #[test]
    fn savepoints_that_undo_one_another_are_folded() {
        let kept = |list: &[(&str, u64)]| -> Vec<String> {
            let mut out = Vec::new();
            for (t, ord) in list {
                crate::names::keep(&mut out, Earlier::of(&st(t), *ord).unwrap());
            }
            out.iter().map(|e| e.shown()).collect()
        };
        // Forty-seventh pass L2: many blocks leave one savepoint, not a full list.
        let blocks: Vec<(String, u64)> = (0..200)
            .flat_map(|i| [(format!("SAVEPOINT s{}", i % 3), 4), (format!("ROLLBACK TO s{}", i % 3), 4)])
            .collect();
        let blocks: Vec<(&str, u64)> = blocks.iter().map(|(t, o)| (t.as_str(), *o)).collect();
        // (The second `SAVEPOINT s0` stands in the first's place: the `ROLLBACK TO s0` after
        // it destroys `s1` and `s2` in the list, not on the server.)
        assert_eq!(kept(&blocks), ["SAVEPOINT s0", "SAVEPOINT s1"]);
        let nested: Vec<(String, u64)> =
            (0..200).flat_map(|i| [(format!("SAVEPOINT n{i}"), 4), (format!("RELEASE SAVEPOINT n{i}"), 4)]).collect();
        let nested: Vec<(&str, u64)> = nested.iter().map(|(t, o)| (t.as_str(), *o)).collect();
        assert!(kept(&nested).is_empty());
        // A ROLLBACK TO destroys the savepoints set since; an older one of that name is kept.
        let l = kept(&[("SAVEPOINT b", 4), ("SAVEPOINT a", 4), ("SAVEPOINT b", 4), ("ROLLBACK TO a", 4)]);
        assert_eq!(l, ["SAVEPOINT b", "SAVEPOINT a"]);
        let l = kept(&[("SAVEPOINT b", 4), ("SAVEPOINT a", 4), ("RELEASE a", 4)]);
        assert_eq!(l, ["SAVEPOINT b"]);
        // Not across a sync point, DDL, or a rollback that may return to an older message.
        assert_eq!(kept(&[("SAVEPOINT a", 3), ("ROLLBACK TO a", 4)]).len(), 2);
        assert_eq!(kept(&[("SAVEPOINT a", 3), ("DROP TABLE t", 3), ("ROLLBACK TO a", 3)]).len(), 3);
        assert_eq!(kept(&[("SAVEPOINT a", 3), ("ROLLBACK TO b", 3), ("SAVEPOINT c", 3), ("RELEASE a", 3)]).len(), 4);
        assert_eq!(kept(&[("SAVEPOINT a", 3), ("RELEASE b", 3)]).len(), 2);
    }

    #[test]
    fn a_path_set_since_the_savepoint_is_undone_with_it() {
        let m = message(&[
            "SAVEPOINT a",
            "SET LOCAL search_path = archive",
            "ROLLBACK TO a",
            "DELETE FROM users",
            "SELECT 1",
        ]);
        let paths = Paths::of(&m, &[]);
        assert_eq!(paths.before(2), &Ok(Some(vec!["archive".to_string()])));
        assert_eq!(paths.before(3), &Ok(None));
        // After a RELEASE, the rollback may return to an older savepoint: not followed.
        let m = message(&["SAVEPOINT a", "RELEASE a", "ROLLBACK TO a", "DELETE FROM users", "SELECT 1"]);
        assert!(Paths::of(&m, &[]).before(3).is_err());
    }
}
