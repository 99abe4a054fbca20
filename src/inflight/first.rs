//! DDL the server will refuse for lack of privilege (ninth adversarial pass D2) must not
//! hold other sessions' writes: a DML-only role's `ALTER TABLE users RENAME TO x` would
//! otherwise wait for, and after 5 seconds cancel, every other session's write to `users`.
//!
//! Whether the role may run it is asked on its own session (`names::rights`), which is only
//! sound when nothing of the session runs between that question and the DDL that may change
//! the answer: so the waits are skipped only for one message, judged when the server had
//! answered everything the session sent before, whose first DDL comes first or after
//! statements that change neither the role nor what names lead to (`BEGIN`/`START
//! TRANSACTION`, `SET`/`RESET` of a setting other than `role`, `session_authorization`,
//! `search_path`; [`neutral`]) (if the server refuses that DDL, it runs nothing after it in
//! the message), and only when that message's DDL is the only one whose waits are pending.
//! Anything else waits as before. What the message publishes stays
//! published until its answer either way: other sessions' writes judged meanwhile are judged
//! with it (it may have run).
//!
//! Also: the Query whose DDL may change only the session's own temporary relations by
//! unqualified names ([`temporary`]), asked about the same way.
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
        let first = statements.iter().position(|st| Earlier::for_others(st).is_some());
        let this =
            first.filter(|i| quiet && statements[..*i].iter().all(neutral)).map(|i| (ord, statements[i].text.clone()));
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

/// The text of a Query's DDL that may change only the session's own temporary relations by
/// unqualified names (`names::rights::own_temporary_query`: `CREATE TEMP TABLE t …; DROP
/// TABLE t CASCADE`), asked about before it is forwarded and taken back from other sessions'
/// view if so (forty-eighth pass M1): the only statement of `statements` published to others,
/// first or after [`neutral`] ones (nothing of the session runs between the question and it),
/// in a whole Query judged when everything before was answered (`quiet`; not an extended
/// Parse, whose Execute may come after other statements of its batch).
pub(super) fn temporary(statements: &[Statement], quiet: bool, whole_query: bool) -> Option<String> {
    if !quiet || !whole_query {
        return None;
    }
    let mut published = statements.iter().enumerate().filter(|(_, st)| Earlier::for_others(st).is_some());
    let (Some((i, st)), None) = (published.next(), published.next()) else { return None };
    let own = statements[..i].iter().all(neutral) && crate::names::rights::own_temporary_query(&st.text).is_some();
    own.then(|| st.text.clone())
}

/// Whether a statement before the DDL leaves what the role may do, and what the DDL's names
/// lead to, as the question saw them: `BEGIN`/`START TRANSACTION`, or `SET`/`RESET` of one
/// setting other than `role`, `session_authorization` and `search_path` (not `RESET ALL`).
fn neutral(st: &Statement) -> bool {
    use pg_query::protobuf::{TransactionStmtKind as T, VariableSetKind as V};
    use pg_query::NodeEnum as N;
    if st.calls_functions || !st.opaque.is_empty() || !st.writes.is_empty() || st.ddl || st.text.contains('\\') {
        return false;
    }
    crate::analyze::deep::with_parse(&st.text, pg_query::ParserOptions::DEFAULT, |tree| {
        let Ok(t) = tree else { return false };
        let [one] = t.protobuf.stmts.as_slice() else { return false };
        match one.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(N::TransactionStmt(x)) => x.kind == T::TransStmtBegin as i32 || x.kind == T::TransStmtStart as i32,
            Some(N::VariableSetStmt(v)) => {
                let name = v.name.to_ascii_lowercase();
                v.kind != V::VarResetAll as i32
                    && !name.is_empty()
                    && !["role", "session_authorization", "search_path"].contains(&name.as_str())
            }
            _ => false,
        }
    })
}

impl super::Db {
    /// Whether DDL of a session other than `me` (or of a prepared transaction) is open: it may
    /// change what `me`'s role may do before `me`'s DDL runs.
    pub fn open_elsewhere(&self, me: u64) -> bool {
        let s = self.lock();
        s.ddl.iter().any(|(id, ..)| *id != me) || !s.prepared.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::statements;
    use super::*;

    fn skips(sql: &str) -> Option<String> {
        let mut f = First::default();
        f.judged(&statements(sql), true, 3, true, true);
        f.take().map(|(_, text)| text)
    }

    #[test]
    fn the_first_ddl_after_statements_that_change_nothing_it_depends_on_is_asked_about() {
        let rename = "ALTER TABLE notes RENAME TO old_notes";
        assert_eq!(skips(rename).as_deref(), Some(rename));
        for before in [
            "BEGIN",
            "START TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "SET lock_timeout = '5s'",
            "SET LOCAL statement_timeout = 0",
            "RESET lock_timeout",
        ] {
            assert_eq!(skips(&format!("{before}; {rename}")).as_deref(), Some(rename), "{before}");
        }
        for before in [
            "SET ROLE migrator",
            "SET SESSION AUTHORIZATION migrator",
            "SET search_path = archive",
            "RESET ALL",
            "RESET role",
            "SELECT set_config('role', 'migrator', false)",
            "SELECT 1",
            "DELETE FROM notes WHERE id = 1",
            "COMMIT",
            "ROLLBACK TO SAVEPOINT s",
        ] {
            assert_eq!(skips(&format!("{before}; {rename}")), None, "{before}");
        }
        // DDL first: the one asked about (refused, nothing after it runs).
        let owner = "ALTER TABLE notes OWNER TO trust_user";
        assert_eq!(skips(&format!("{owner}; {rename}")).as_deref(), Some(owner));
        // Not quiet: something sent before is unanswered.
        let mut f = First::default();
        f.judged(&statements(rename), false, 3, true, true);
        assert!(f.take().is_none());
    }
}
