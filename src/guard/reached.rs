//! The policy tables a message's judgement reached, for the count that follows it: the
//! tables its row writes resolve to (their text rules were applied to those rows), and the
//! tables foreign keys' actions reach from them. When nothing else can change a policy table's
//! rows — no statement calls a function, runs DDL or hides what it does, and no relation
//! written runs anyone's code (`catalog::code`: triggers, row security, …; rules are not
//! code) — rows of another policy table changed when the statement ran mean that the server
//! wrote a relation the judgement did not look at: a rule of the written relation that writes
//! into a policy table, or a name that led elsewhere by the time the statement ran (DDL in a
//! function's body, in another session, between the judgement and the run). Its text rules
//! were applied to none of those rows: the count refuses it (`policy::counts`, rule
//! `unjudged-write`).
//!
//! Owns: which tables are reached, and when that is known. Does not own: the judgement of the
//! counts (`policy::counts`), the catalog's answers (`catalog`).

use crate::analyze::{Op, Statement, Write};
use crate::policy::{Policy, Reach};

/// The (schema, name) of every policy table the judgement of `statements` reached, or `None`
/// when what the message may change is not closed (a function, DDL, code on a written
/// relation, a catalog answer missing): then only the row limits judge its counts.
pub(super) fn reached(
    statements: &[Statement],
    reach: &dyn Fn(usize, &Write) -> Option<Reach>,
    catalog: &crate::catalog::Catalog,
    database: &str,
    policy: &Policy,
) -> Option<Vec<(String, String)>> {
    if database.is_empty() || !policy.tables.iter().any(|t| t.judges_text()) {
        return None;
    }
    let mut out: Vec<usize> = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        if st.calls_functions || st.ddl || !st.opaque.is_empty() || st.prepare.is_some() || st.copy_from_stdin {
            return None;
        }
        for w in &st.writes {
            let delete = match w.op {
                Op::Delete | Op::MergeDelete => Some(true),
                Op::Update { .. } | Op::Upsert { .. } => Some(false),
                // A MERGE's other actions may delete or update: both kinds are followed.
                Op::MergeUpdate { .. } => None,
                _ => return None,
            };
            let target = w.target.as_ref()?;
            match reach(i, w) {
                Some(r) => out.extend(r.tables.iter().map(|(t, _)| *t)),
                None => out.extend(policy.tables.iter().enumerate().filter(|(_, t)| t.matches(target)).map(|(i, _)| i)),
            }
            if catalog.runs_code(database, &target.name) != Some(false) {
                return None;
            }
            for kind in [true, false].into_iter().filter(|k| delete.is_none_or(|d| d == *k)) {
                out.extend(catalog.cascades_into_policy(database, &target.name, kind, policy)?);
            }
        }
        for ins in super::need::inserts_in(st).iter() {
            if catalog.runs_code(database, &ins.target.name) != Some(false) {
                return None;
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out.into_iter().filter_map(|i| policy.tables.get(i)).map(|t| (t.schema.clone(), t.name.clone())).collect())
}
