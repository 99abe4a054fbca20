//! The policy's judgement of measured numbers: what a statement changed, as the pre-check
//! counted it on the server (cascades, triggers, rules, children included), against the row
//! limits or against an override directive's stated count. Pure: the pre-check measures and
//! keeps or rolls back; this says which.
//!
//! Owns: `row-limit`, `override-exceeded` and `unjudged-write` findings, and what a judgement
//! reached (`ReachedTable`), which the last judge by. Does not own: the
//! counting (`precheck`), which tables the judgement reached (`guard::reached`).

use super::decide::{defaults_source, describe_counts, limits_for, mode_for, HINT_LIMIT, HINT_LIMIT_WARN};
use super::{Decision, Finding, Mode, Policy, SessionView, TableCount, TablePolicy};
use crate::analyze::directive::Override;
use crate::analyze::RelName;

/// What was measured: the statement, its first target, and an override's count if it had one.
pub struct Measured<'a> {
    pub verb: &'static str,
    pub target: Option<&'a RelName>,
    pub override_rows: Option<&'a Override>,
    pub statement: &'a str,
    /// The policy tables the judgement reached, when nothing else can change one
    /// (`guard::reached`).
    pub reached: Option<&'a [ReachedTable]>,
}

/// A policy table a judgement reached, and how what it judged may change its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachedTable {
    pub schema: String,
    pub name: String,
    /// A judged write may delete its rows (a DELETE, a MERGE, a foreign key's action).
    pub deletes: bool,
    /// … may update them (an UPDATE, an upsert, a MERGE, a foreign key's action).
    pub updates: bool,
    /// … may insert rows into it (an INSERT, COPY or MERGE naming it, an upsert, an UPDATE
    /// that may move rows between partitions): the rule `explicit-id` judged them.
    pub inserts: bool,
    /// At most how many rows the judged writes insert into it (`VALUES` lists), when every one
    /// says; `None`: any number.
    pub inserts_at_most: Option<u64>,
    /// Written beside these relations, whose rules could not be asked about when it ran (the
    /// middle of a batch): what it changed here may be theirs, and explains nothing.
    pub beside: Option<String>,
    /// The session's temporary schema holds code (these objects) that any of its statements
    /// may run: nothing a count finds changed here is explained (`guard::reached`).
    pub own_code: Option<String>,
}

/// The measured counts (the target's table first) and the decision over them: the override's
/// count when the statement has one, else every applicable row limit.
pub fn judge_counts(
    m: Measured<'_>,
    mut counts: Vec<TableCount>,
    who: SessionView<'_>,
    policy: &Policy,
) -> (Vec<TableCount>, Decision) {
    if let Some(t) = m.target {
        counts.sort_by_key(|c| !(c.name == t.name && t.schema.as_ref().is_none_or(|s| *s == c.schema)));
    }
    let what = match (m.target, counts.first()) {
        (Some(_), Some(first)) => format!("{} on {}", m.verb, first.qualified()),
        _ => m.verb.to_string(),
    };
    let mut decision = match m.override_rows {
        Some(ov) => override_findings(&counts, ov, &what, m.statement),
        None => limit_findings(&counts, &what, m.statement, who, policy),
    };
    // An override waives the text rules of its statement: what they did not reach too.
    if let (Some(reached), None) = (m.reached, m.override_rows) {
        decision.findings.extend(unjudged_findings(&counts, reached, m.verb, m.statement, who, policy));
    }
    (counts, decision)
}

/// Rows deleted or updated in a policy table with text rules that the judgement did not
/// reach, by a statement that can change no table but those it reached (`guard::reached`):
/// the server wrote a relation the judgement did not look at — a rule of the written relation
/// writes into it, or the name led there by the time the statement ran (DDL in another
/// session, in a function's body, between the judgement and the run). Its text rules were
/// applied to none of those rows.
fn unjudged_findings(
    counts: &[TableCount],
    reached: &[ReachedTable],
    verb: &str,
    statement: &str,
    who: SessionView<'_>,
    policy: &Policy,
) -> Option<Finding> {
    let mut unjudged = Vec::new();
    let mut strictest: Option<(Mode, &TablePolicy)> = None;
    let mut beside: Option<String> = None;
    let mut own_code: Option<String> = None;
    for c in counts.iter() {
        let Some(t) = policy.tables.iter().find(|t| t.schema == c.schema && t.name == c.name) else { continue };
        // Rows inserted matter where a text rule judges an INSERT's values (`explicit-id`: a
        // rule inserting hand-picked ids, sixteenth pass M4, A4).
        let inserted = if t.forbid.contains(&super::Forbid::ExplicitId) { c.inserted } else { 0 };
        if c.deleted + c.updated + inserted == 0 {
            continue;
        }
        // Rows deleted where the judgement reached no delete, updated where it reached no
        // update (a point UPDATE of `users` beside a redirected DELETE does not explain it),
        // inserted where it reached no INSERT.
        let would = |r: &&ReachedTable| {
            r.schema == t.schema
                && r.name == t.name
                && (c.deleted == 0 || r.deletes)
                && (c.updated == 0 || r.updates)
                && (inserted == 0 || r.inserts)
        };
        // … nor one written beside relations whose rules could not be asked about now: what
        // they changed cannot be told apart (seventeenth pass V1: a point UPDATE of `users`
        // matching no row, beside a temporary table whose rule deleted ten users).
        // Rows inserted only, no more than the judged INSERTs' VALUES lists insert (each of
        // their rows is inserted or the statement fails): those rows are the statement's own
        // (nineteenth pass FPq: a signup beside an insert into another table).
        let counted =
            |r: &ReachedTable| c.deleted == 0 && c.updated == 0 && r.inserts_at_most.is_some_and(|n| inserted <= n);
        // … nor anything, in a session whose temporary schema holds code (its own functions,
        // triggers, rules, written by the client and never judged: eighteenth pass X1, X2).
        let explained =
            reached.iter().filter(would).any(|r| r.own_code.is_none() && (r.beside.is_none() || counted(r)));
        if !t.judges_text() || explained {
            continue;
        }
        if own_code.is_none() {
            own_code = reached.iter().filter(would).find_map(|r| r.own_code.clone());
        }
        if beside.is_none() {
            beside = reached.iter().filter(would).find_map(|r| r.beside.clone());
        }
        let mode = mode_for(who, policy, Some(t));
        if mode == Mode::Off {
            continue;
        }
        let ins = if inserted > 0 { format!(", {inserted} inserted") } else { String::new() };
        unjudged.push(format!("{} deleted and {} updated{ins} in {}", c.deleted, c.updated, c.qualified()));
        if strictest.is_none_or(|(m, _)| mode > m) {
            strictest = Some((mode, t));
        }
    }
    let (mode, t) = strictest?;
    let (why, hint) = match (own_code, beside) {
        (Some(objects), _) => (
            format!(
                "it changed rows of a protected table ({}) in a session whose temporary schema holds code ({objects}) that any of its statements may run: rows that code changed there cannot be told from rows its own write changed, and its text rules were applied to none of the former",
                unjudged.join(", ")
            ),
            HINT_OWN_CODE,
        ),
        (None, Some(names)) => (
            format!(
                "it changed rows of a protected table ({}) while it also writes {names}, whose rules blastwall could not ask the server about here (in the middle of an extended batch, or the catalog could not be read): rows their rules changed there cannot be told from the rows its own write changed, and its text rules were applied to none of the former",
                unjudged.join(", ")
            ),
            HINT_BESIDE,
        ),
        (None, None) => (
            format!(
                "it changed rows of a protected table it does not name ({}): its text rules were applied to none of them — its name led there by the time it ran (DDL committed in between, by a function's body in another session or on a direct connection), a rule blastwall had not seen yet writes there, or (rows inserted) it names a view or child of that table whose columns blastwall could not ask about here (in the middle of an extended batch)",
                unjudged.join(", ")
            ),
            HINT_UNJUDGED,
        ),
    };
    Some(Finding {
        rule: "unjudged-write",
        mode,
        what: format!("{verb} reaching {}", t.qualified()),
        why,
        hint,
        source: t.source.clone(),
        statement: statement.to_string(),
    })
}

const HINT_OWN_CODE: &str = "Drop the session's temporary functions, triggers and rules (DISCARD TEMP), or write protected tables from a session without them; code that writes protected tables belongs in the schema, made by a role whose policy allows it.";

const HINT_BESIDE: &str = "Send it first in its batch or in a message of its own (blastwall then asks the server about the other relation's rules), or write the protected table in a statement of its own.";

const HINT_UNJUDGED: &str = "Write the protected table by its own name, so that its rules apply; if a rule redirects this write, drop the rule or write the table it writes.";

/// Row limits against what a statement changed, as the pre-check measured it: counts include
/// rows deleted by ON DELETE CASCADE and rows changed by triggers and functions. One finding
/// names every table over its limit; it applies in the strictest of their modes.
fn limit_findings(
    counts: &[TableCount],
    verb: &str,
    statement: &str,
    who: SessionView<'_>,
    policy: &Policy,
) -> Decision {
    let mut over = Vec::new();
    let mut first_table: Option<&TablePolicy> = None;
    let mut mode: Option<Mode> = None;
    for c in counts {
        let (max_del, max_upd, table) = limits_for(policy, &c.schema, &c.name);
        for (what, n, max) in [("deleted", c.deleted, max_del), ("updated", c.updated, max_upd)] {
            if let Some(m) = max.filter(|m| n > *m) {
                over.push(format!("{n} {what} in {} is over its limit of {m}", c.qualified()));
                let table_mode = mode_for(who, policy, table);
                if mode.is_none_or(|x| table_mode > x) {
                    mode = Some(table_mode);
                    first_table = table;
                }
            }
        }
    }
    let mut d = Decision::default();
    let Some(mode) = mode.filter(|m| *m != Mode::Off) else { return d };
    let source = first_table.map(|t| t.source.clone()).unwrap_or_else(|| defaults_source(policy));
    d.findings.push(Finding {
        rule: "row-limit",
        mode,
        what: verb.to_string(),
        why: format!("would {}; {}", describe_counts(counts), over.join(", ")),
        hint: if mode == Mode::Warn { HINT_LIMIT_WARN } else { HINT_LIMIT },
        source,
        statement: statement.to_string(),
    });
    d
}

/// An override states how many rows the statement may change in all (deleted and updated,
/// cascades included); more than that is rolled back, whatever the mode.
fn override_findings(counts: &[TableCount], ov: &Override, what: &str, statement: &str) -> Decision {
    let total: u64 = counts.iter().map(|c| c.deleted + c.updated).sum();
    let mut d = Decision::default();
    if total > ov.rows {
        d.findings.push(Finding {
            rule: "override-exceeded",
            mode: Mode::Enforce,
            what: what.to_string(),
            why: format!(
                "would {}: {total} rows in all, more than the {} the override allows (reason: {})",
                describe_counts(counts),
                ov.rows,
                ov.reason
            ),
            hint: "The statement changes more rows than expected: look at what else it reaches before raising the number.",
            source: "override directive".into(),
            statement: statement.to_string(),
        });
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn policy() -> Policy {
        let text = "[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\nmax_delete_rows = 10\n\n\
                    [[table]]\nname = \"public.orders\"\nmax_delete_rows = 10\n";
        crate::policy::file::compile(&[(Path::new("p.toml"), text)]).unwrap()
    }

    fn count(name: &str, deleted: u64) -> TableCount {
        TableCount { schema: "public".into(), name: name.into(), deleted, updated: 0, inserted: 0 }
    }

    fn judged(reached: Option<&[ReachedTable]>, counts: Vec<TableCount>) -> Vec<&'static str> {
        let p = policy();
        let m = Measured { verb: "DELETE", target: None, override_rows: None, statement: "s", reached };
        let (_, d) = judge_counts(m, counts, SessionView::offline("u", "a", None), &p);
        d.findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn rows_of_a_protected_table_the_judgement_did_not_reach_refuse() {
        let reached = |deletes, updates| ReachedTable {
            schema: "public".into(),
            name: "users".into(),
            deletes,
            updates,
            inserts: false,
            inserts_at_most: None,
            beside: None,
            own_code: None,
        };
        let users = [reached(true, false)];
        // Reached nothing, yet 3 users were deleted: refused, within the limit as it is.
        assert_eq!(judged(Some(&[]), vec![count("staging", 3), count("users", 3)]), ["unjudged-write"]);
        // Reached (its own name, or a cascade the catalog showed): counted only.
        assert!(judged(Some(&users), vec![count("users", 3)]).is_empty());
        // Reached by an UPDATE only: rows deleted there are not what it judged.
        assert_eq!(judged(Some(&[reached(false, true)]), vec![count("users", 3)]), ["unjudged-write"]);
        // A table with limits only has no text rule to escape.
        assert!(judged(Some(&[]), vec![count("orders", 3)]).is_empty());
        // Not known (code may run anywhere): the row limits alone.
        assert!(judged(None, vec![count("users", 3)]).is_empty());
        // Nothing changed there.
        assert!(judged(Some(&[]), vec![count("users", 0)]).is_empty());
        // Reached, but beside a relation whose rules could not be asked about: refused.
        let beside = ReachedTable { beside: Some("st".into()), ..reached(true, true) };
        assert_eq!(judged(Some(std::slice::from_ref(&beside)), vec![count("users", 3)]), ["unjudged-write"]);
        assert!(judged(Some(&[beside]), vec![count("users", 0)]).is_empty());
        // Reached, in a session whose temporary schema holds code: refused.
        let own = ReachedTable { own_code: Some("function pg_temp.f()".into()), ..reached(true, true) };
        assert_eq!(judged(Some(std::slice::from_ref(&own)), vec![count("users", 1)]), ["unjudged-write"]);
        assert!(judged(Some(&[own]), vec![count("users", 0), count("orders", 3)]).is_empty());
    }
}
