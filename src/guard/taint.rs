//! The guard's side of a session's taint (`catalog::Taint`: its own temporary schema holds
//! code, or may; or its names may come to mean another role's new objects,
//! `catalog::opened`): every statement of a tainted session is judged as reaching a hidden caller
//! — run in the pre-check and counted, its row limits and the identity check holding for
//! whatever the code does, never kept uncounted by the point-write proof — except those that
//! run none of the session's code (transaction control, `DISCARD`, statements about databases,
//! tablespaces, subscriptions and the server's configuration, `DROP INDEX CONCURRENTLY`).
//! What would run the code but cannot run inside the pre-check's transaction (`VACUUM`,
//! `CREATE INDEX CONCURRENTLY`, `REINDEX CONCURRENTLY` or of a schema, system or database,
//! `CLUSTER` of every table, `DETACH PARTITION CONCURRENTLY`) and `COPY … FROM STDIN` are
//! refused, saying why; so is any statement inside a client's transaction block while the
//! schema holds deferrable constraints (their checks would run at COMMIT, after the count). Also: which judged messages make the answer stale.
//!
//! Owns: those rules. Does not own: the answer (`catalog::taint`), asking for it
//! (`session::taint`), or the pre-check.

use super::{refusal as decision, SessionInfo};
use crate::analyze::Statement;
use crate::policy::{Decision, Policy};

/// Whether the statement is judged as reaching a hidden caller because the session's
/// temporary schema holds code (or may: not known yet).
pub(super) fn reaches(st: &Statement, info: &SessionInfo) -> bool {
    let no_code = |s: &Statement| s.transaction_control || !may_run_code(s.text.as_bytes());
    // An EXECUTE (or a protocol Bind, judged as one) of a statement blastwall knows: what it
    // runs follows it in the list, judged statement by statement.
    let expanded = !st.executes.is_empty() && st.executes.iter().all(|ex| info.prepared.contains_key(&ex.name));
    info.taint.runs_code() && !no_code(st) && !expanded
}

/// Whether the taint must be asked before `text` is judged: a message since the last answer
/// may have changed the schema, or the session was never asked (a pooler behind blastwall may
/// have handed it a server session another client filled) and `text` may run code.
pub(super) fn must_ask(text: &[u8], info: &SessionInfo) -> bool {
    info.taint.must_ask() || (info.taint.is_unasked() && may_run_code(text))
}

/// Whether `text` (a message's, or a protocol Bind's statement) may run the session's code:
/// not transaction control, nor what runs none of it (binding a utility plans nothing).
pub(super) fn may_run_code(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    let first = text.trim_start().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
    let control = ["begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release", "prepare"];
    if control.iter().any(|w| first.eq_ignore_ascii_case(w))
        && crate::analyze::budget::parse(&text, 0).is_ok_and(|p| {
            p.protobuf.stmts.len() == 1
                && matches!(
                    p.protobuf.stmts[0].stmt.as_ref().and_then(|n| n.node.as_ref()),
                    Some(pg_query::NodeEnum::TransactionStmt(_))
                )
        })
    {
        return false;
    }
    kind(&text) != Kind::NoCode
}

/// The refusal of a statement of a tainted session that would run its code where it cannot
/// be counted, if one of `statements` is one.
pub(super) fn refusal(statements: &[Statement], info: &SessionInfo, policy: &Policy, text: String) -> Option<Decision> {
    if !info.taint.runs_code() {
        return None;
    }
    // In a block: the client's, one this message opens, or possibly one an unanswered
    // statement opened (a pipelined BEGIN; a batch's implicit transaction ends at its Sync,
    // after a count in its middle). Deferrable constraints: those the schema holds, or one
    // this message may make (`DEFERRABLE` in its DDL).
    let in_block = info.in_transaction || !info.settings_certain || statements.iter().any(|s| s.transaction_control);
    let makes = statements.iter().any(|s| s.ddl && s.text.to_ascii_lowercase().contains("deferrable"));
    let deferred = in_block && (info.taint.defers() || makes);
    let why = statements.iter().find_map(|st| match kind(&st.text) {
        Kind::OutsideBlocks(what) => Some(format!("PostgreSQL cannot run {what} inside one")),
        _ if st.copy_from_stdin => {
            Some("COPY … FROM STDIN cannot be counted (its rows come from the client while the count is held)".into())
        }
        Kind::Counted if deferred && !st.transaction_control => Some(
            "the deferrable constraints of its temporary tables run what this statement queues at COMMIT, after the count".into(),
        ),
        _ => None,
    })?;
    let why = format!("{}, so each statement is counted inside a transaction, and {why}", info.taint.reason());
    Some(decision("unverifiable", "statement".into(), why, HINT, &policy.source_names(), text))
}

const HINT: &str = "Drop the temporary functions and the temporary objects that call them (or DISCARD TEMP), and take off the search_path the schemas other roles may create in (or revoke their CREATE), and send it again, or send it from a session that has neither; a statement refused inside a transaction block for deferrable constraints runs counted outside one.";

/// Marks the answer stale when a message that may change the temporary schema goes to the
/// server: `changes` (DDL, a function call, DO, CALL, a statement reaching a hidden caller),
/// `DISCARD` in a session not known clean, or transaction control after an answer learned in
/// a transaction block (a rollback may undo what it saw).
pub(super) fn after_judging(statements: &[Statement], info: &mut SessionInfo, changes: bool) {
    let stale = changes
        || (info.taint.runs_code() && statements.iter().any(|s| kind(&s.text) == Kind::NoCode))
        || (info.taint.learned_in_block() && statements.iter().any(|s| s.transaction_control));
    if statements.iter().any(|s| s.makes_code) {
        info.taint.may_make_code();
    } else if stale {
        info.taint.may_change();
    }
    // A view (or a rule) it makes, or a block whose text is not judged, may be one a name
    // later code writes without a schema leads to (`catalog::Taint::may_redirect`).
    if statements.iter().any(|s| s.makes_view || s.makes_code || !s.opaque.is_empty()) {
        info.taint.may_make_view();
    }
}

/// Whether a statement mentions a hidden caller of a user function or `set_config` (unknown
/// set: yes), whose code may have made temporary objects: not one that only moves a sequence.
pub(super) fn reaches_caller(st: &Statement, catalog: &crate::catalog::Catalog, info: &SessionInfo) -> bool {
    !st.transaction_control
        && catalog
            .with_hidden_callers(&info.database, super::hidden::whose(info), |set| set.mentioned_in(&st.text, true))
            .unwrap_or(true)
}

/// What a statement is to a tainted session.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// It may run the session's code, and can be counted.
    Counted,
    /// It runs none of the session's code.
    NoCode,
    /// It may run the session's code, and PostgreSQL cannot run it inside a transaction.
    OutsideBlocks(&'static str),
}

/// [`Kind`] of one statement's text (one that does not parse is counted: the server's error
/// will say what is wrong with it).
fn kind(text: &str) -> Kind {
    use pg_query::protobuf::ReindexObjectType as R;
    use pg_query::NodeEnum as N;
    let first = text.trim_start().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
    let looked_at = ["discard", "create", "drop", "alter", "vacuum", "reindex", "cluster"];
    if !looked_at.iter().any(|w| first.eq_ignore_ascii_case(w)) {
        return Kind::Counted;
    }
    let Ok(parsed) = crate::analyze::budget::parse(text, 0) else { return Kind::Counted };
    let Some(node) = parsed.protobuf.stmts.first().and_then(|s| s.stmt.as_ref()).and_then(|n| n.node.as_ref()) else {
        return Kind::Counted;
    };
    let has = |options: &[pg_query::Node], name: &str| {
        options.iter().any(|o| matches!(&o.node, Some(N::DefElem(d)) if d.defname.eq_ignore_ascii_case(name)))
    };
    match node {
        N::DiscardStmt(_)
        | N::CreatedbStmt(_)
        | N::DropdbStmt(_)
        | N::AlterDatabaseStmt(_)
        | N::AlterDatabaseSetStmt(_)
        | N::CreateTableSpaceStmt(_)
        | N::DropTableSpaceStmt(_)
        | N::AlterSystemStmt(_)
        | N::CreateSubscriptionStmt(_)
        | N::AlterSubscriptionStmt(_)
        | N::DropSubscriptionStmt(_) => Kind::NoCode,
        N::DropStmt(d) if d.concurrent => Kind::NoCode,
        N::VacuumStmt(v) if v.is_vacuumcmd => Kind::OutsideBlocks("VACUUM"),
        N::IndexStmt(i) if i.concurrent => Kind::OutsideBlocks("CREATE INDEX CONCURRENTLY"),
        N::ReindexStmt(r)
            if has(&r.params, "concurrently")
                || [R::ReindexObjectSchema, R::ReindexObjectSystem, R::ReindexObjectDatabase]
                    .iter()
                    .any(|k| *k as i32 == r.kind) =>
        {
            Kind::OutsideBlocks("REINDEX CONCURRENTLY, or of a schema, system or database")
        }
        N::ClusterStmt(c) if c.relation.is_none() => Kind::OutsideBlocks("CLUSTER of every table"),
        N::AlterTableStmt(a)
            if a.cmds.iter().any(|c| {
                matches!(&c.node, Some(N::AlterTableCmd(c)) if c.def.as_ref().is_some_and(|d|
                    matches!(&d.node, Some(N::PartitionCmd(p)) if p.concurrent)))
            }) =>
        {
            Kind::OutsideBlocks("DETACH PARTITION CONCURRENTLY")
        }
        _ => Kind::Counted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_tainted_session_may_not_count_or_need_not() {
        let outside = |t: &str| matches!(kind(t), Kind::OutsideBlocks(_));
        for t in [
            "VACUUM b",
            "vacuum (analyze) pp",
            "VACUUM",
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "REINDEX TABLE CONCURRENTLY t",
            "REINDEX (CONCURRENTLY) INDEX i",
            "REINDEX SCHEMA public",
            "REINDEX DATABASE postgres",
            "CLUSTER",
            "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY",
        ] {
            assert!(outside(t), "{t}");
        }
        for t in ["DISCARD TEMP", "discard all", "DROP INDEX CONCURRENTLY i", "ALTER SYSTEM SET work_mem = '1MB'"] {
            assert_eq!(kind(t), Kind::NoCode, "{t}");
        }
        for t in [
            "ANALYZE pp",
            "REINDEX TABLE t",
            "CLUSTER t USING i",
            "CREATE INDEX i ON t (a)",
            "DROP TABLE t",
            "SELECT * FROM tp",
            "ALTER TABLE p DETACH PARTITION p1",
            "vacuum(",
        ] {
            assert_eq!(kind(t), Kind::Counted, "{t}");
        }
    }
}
