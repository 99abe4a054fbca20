//! The incident's contract, enforced over time: rule `anomaly` (a statement that changes far
//! more rows than it usually does), rule `budget` (rows per table per window, across sessions
//! and instances) and rule `explicit-id` (values supplied for columns a sequence mints).
//!
//! Owns: which of these rules apply to a counted write, the SQL that records and judges it in
//! the write's own transaction (`sql`, `state`), reading that SQL's answer into findings
//! (`verdict`), and the explicit-id rule (`inserts`, `explicit_id`). Does not own: running the
//! write or its transaction (the pre-check), rendering findings (`guard`), the policy file.
//!
//! # The one call the pre-check makes (anomaly, budget)
//!
//! After the client's write ran inside blastwall's transaction or savepoint, its per-table
//! counts were read and the row limits allow it — that is, where the pre-check would now send
//! its keep (`COMMIT` / `RELEASE SAVEPOINT`):
//!
//! 1. `contract::enabled(policy)` — false: nothing to do, ever (no state is created).
//! 2. `let check = contract::prepare(&contract::Request { counts, target, verb, fingerprint,
//!    statement, override_rows, who, policy, state_ready: catalog.state_ready(db, schema) })`
//!    — `None`: no rule applies to what it changed; keep as before.
//! 3. Send `format!("{}; {keep}", check.sql())` as one simple Query on the same backend (no
//!    extra round trip: the keep rides behind it). The SQL raises an error of its own
//!    ([`STOP`]) when the write must not be kept (an Enforce or DryRun finding), so the keep
//!    behind it never runs. Rows not tagged [`TAG`] may be ignored.
//! 4. `let d = check.judge(&answer.rows, answer.error.map(|e| e.message))`; then
//!    `catalog.learn_state_ready(db, check.schema(), check.judged_ready(error) && opened)` —
//!    `opened`: the transaction was blastwall's own (the session was idle) and is kept: state
//!    created inside a client's block is only there once the client commits, so until then
//!    every counted write carries the (idempotent) DDL again.
//!    - `d.mode()` is Enforce → the transaction is aborted: send the undo (ROLLBACK, or
//!      ROLLBACK TO SAVEPOINT + RELEASE) and refuse with `d` (render it as any decision).
//!    - DryRun → send the undo and report as a dry run.
//!    - otherwise the write is kept; `check.keep_failed(rows, error)` is the keep's own error
//!      (a deferred constraint at COMMIT), to report as today; Warn findings become the
//!      notice before the held results.
//!
//! `Counted::from(&TableCount)` leaves `oid` empty (the table is then found by its name); fill
//! it from `catalog.oid_of(…)` or the counters' relid where known, so that a table renamed
//! since keeps its history and budget. At startup (or a session's first write to a database),
//! `state::probe_sql(schema)` says in one row whether the role can use the state (`true` or
//! the reason), for a log line naming the tables that will fail closed.
//!
//! (The SQL may also be sent alone, then keep or undo by `d` — the tests do both.) An error of
//! the contract's SQL itself (state missing, no privileges, serialization failure) judges
//! `contract-state`, Enforce (DryRun in a dry run): the transaction is aborted and cannot be
//! kept. Undoing the write undoes its recorded run and spent budget with it: a write is kept
//! if and only if its budget was taken and its run recorded.
//!
//! # explicit-id (no transaction needed)
//!
//! In the guard: `statement_inserts(&statements, policy)`; `minted_questions(…)` asks the
//! catalog (`catalog::minted_query`, `catalog.learn_minted`) about each policy table an insert
//! names, and about each other relation an insert names (a view, child or partition may stand
//! for a protected column: the answer's `origins`); then `explicit_id_findings(&inserts, &|s, t|
//! catalog.minted_of(db, s, t), text, who, policy)` → findings to add to the static decision.
//! `blastwall check`: `explicit_id_offline(text, who, policy)`.
//!
//! # The state guards itself, budgets refuse what they cannot count
//!
//! In the guard, after the decision: `statement_findings(&statements, who, policy)` — a
//! client's write to the state schema (rule `contract-state`), TRUNCATE of a table with a
//! delete budget (rule `budget`). In `guard::need`: with the rules on, an INSERT into a name
//! with rules, triggers or children (`guard`'s check of `inserts`) and an upsert are counted.

mod explicit_id;
mod inserts;
pub mod keep;
mod own;
mod sql;
pub mod state;
mod verdict;

pub use explicit_id::{
    explicit_id_findings, explicit_id_offline, explicit_id_tables, minted_questions, statement_inserts, Minted,
};
pub use inserts::{inserts, Insert, Supplied};
pub use own::statement_findings;
pub use sql::{STOP, TAG};

use crate::analyze::RelName;
use crate::policy::{mode_for, Mode, Policy, SessionView, TablePolicy};
use crate::precheck::TableCount;

/// Built-in values of the anomaly rule's keys.
pub const DEFAULT_FACTOR: u64 = 10;
pub const DEFAULT_RUNS: u64 = 20;
pub const DEFAULT_MIN_RUNS: u64 = 5;
pub const DEFAULT_FLOOR: u64 = 10;

/// Rows one write changed in one table, as the pre-check measured them (cascades, triggers
/// included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub schema: String,
    pub name: String,
    /// The table's OID when the pre-check read it (else its name is resolved in the SQL).
    pub oid: Option<u32>,
    pub deleted: u64,
    pub updated: u64,
}

impl From<&TableCount> for Counted {
    fn from(c: &TableCount) -> Self {
        Counted { schema: c.schema.clone(), name: c.name.clone(), oid: None, deleted: c.deleted, updated: c.updated }
    }
}

/// What the pre-check knows about a write that ran and is not kept yet.
pub struct Request<'a> {
    pub counts: &'a [Counted],
    /// The table the statement names, as written: a run that changed no row of it is history
    /// too (a cleanup that usually finds nothing).
    pub target: Option<&'a RelName>,
    /// `DELETE`, `UPDATE`, `MERGE`, … (which count of the target a zero run is).
    pub verb: &'a str,
    /// pg_query's fingerprint of the statement (see [`fingerprint`]).
    pub fingerprint: &'a str,
    pub statement: &'a str,
    /// An override directive's stated count (from a role allowed to use it): waives the
    /// anomaly rule up to that many rows; budgets still apply.
    pub override_rows: Option<u64>,
    pub who: SessionView<'a>,
    pub policy: &'a Policy,
    /// Whether the state is known to exist in this database (`Catalog::state_ready`): when
    /// not, and `[state] create = true`, the SQL creates it first.
    pub state_ready: bool,
}

/// The statement's fingerprint as the anomaly history keys it (pg_query's; the text itself
/// when it does not parse).
pub fn fingerprint(statement: &str) -> String {
    crate::audit::texts::pair(statement, false).fingerprint.clone().unwrap_or_else(|| statement.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Delete,
    Update,
}

/// The anomaly rule as it applies to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnomalyRule {
    pub factor: u64,
    pub runs: u64,
    pub min_runs: u64,
    pub floor: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetRule {
    pub limit: u64,
    pub window_secs: u64,
}

/// One (table, kind) of a write the contract records and judges.
#[derive(Debug, Clone)]
pub struct Item {
    pub table: String,
    pub relid: String,
    pub kind: Kind,
    pub rows: u64,
    pub budget: Option<BudgetRule>,
    pub anomaly: Option<AnomalyRule>,
    pub mode: Mode,
    pub source: String,
}

/// The SQL to run for a write, and how to read its answer.
#[derive(Debug, Clone)]
pub struct Check {
    sql: String,
    items: Vec<Item>,
    statement: String,
    verb: String,
    override_rows: Option<u64>,
    schema: String,
}

impl Check {
    /// Run it on the write's own backend, in its transaction, before keeping the write.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Whether the state can be taken as ready after this answer (for `learn_state_ready`).
    pub fn judged_ready(&self, error: Option<&str>) -> bool {
        error.is_none()
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }
}

/// The anomaly rule for a table as the server names it: the table's keys over `[defaults]`'
/// over the built-in values; `None` when off.
pub fn anomaly_for(policy: &Policy, table: Option<&TablePolicy>) -> Option<AnomalyRule> {
    let t = table.map(|t| t.anomaly).unwrap_or_default();
    let d = policy.anomaly;
    if !t.enabled.or(d.enabled).unwrap_or(false) {
        return None;
    }
    Some(AnomalyRule {
        factor: t.factor.or(d.factor).unwrap_or(DEFAULT_FACTOR),
        runs: t.runs.or(d.runs).unwrap_or(DEFAULT_RUNS),
        min_runs: t.min_runs.or(d.min_runs).unwrap_or(DEFAULT_MIN_RUNS),
        floor: t.floor.or(d.floor).unwrap_or(DEFAULT_FLOOR),
    })
}

/// Whether any table of the policy (or its defaults) uses the anomaly or budget rules: when
/// not, the pre-check never calls [`prepare`] and nothing is created.
pub fn enabled(policy: &Policy) -> bool {
    policy.anomaly.enabled == Some(true) || policy.tables.iter().any(applies)
}

/// Whether a table's own section turns on the anomaly rule or sets a budget (its writes, and
/// those that may cascade into it, are counted).
pub fn applies(t: &TablePolicy) -> bool {
    t.anomaly.enabled == Some(true) || t.budget.is_some()
}

/// The items of a write: each (table, kind) some rule applies to, with the rows it changed.
fn items(req: &Request<'_>) -> Vec<Item> {
    let policy = req.policy;
    let mut out = Vec::new();
    let mut add = |schema: Option<&str>, name: &str, oid: Option<u32>, kind: Kind, rows: u64| {
        let table = match schema {
            Some(s) => policy.tables.iter().find(|t| t.schema == s && t.name == name),
            None => policy.tables.iter().find(|t| t.matches(&RelName { schema: None, name: name.to_string() })),
        };
        let budget = table.and_then(|t| t.budget).and_then(|b| {
            let limit = match kind {
                Kind::Delete => b.delete_rows,
                Kind::Update => b.update_rows,
            }?;
            Some(BudgetRule { limit, window_secs: b.window_secs })
        });
        let anomaly = anomaly_for(policy, table);
        let mode = mode_for(req.who, policy, table);
        if (budget.is_none() && anomaly.is_none()) || mode == Mode::Off {
            return;
        }
        let qualified = match schema {
            Some(s) => format!("{s}.{name}"),
            None => name.to_string(),
        };
        out.push(Item {
            table: qualified,
            relid: sql::relid(schema, name, oid),
            kind,
            rows,
            budget,
            anomaly,
            mode,
            source: table.map(|t| t.source.clone()).unwrap_or_else(|| format!("defaults of {}", policy.source_names())),
        });
    };
    // The contract's own tables are not judged by it.
    for c in req.counts.iter().filter(|c| c.schema != policy.state.schema) {
        for (kind, rows) in [(Kind::Delete, c.deleted), (Kind::Update, c.updated)] {
            if rows > 0 {
                add(Some(&c.schema), &c.name, c.oid, kind, rows);
            }
        }
    }
    // The target changed no row: a run of 0 is history (never a budget spend).
    let kind = match req.verb {
        "DELETE" => Some(Kind::Delete),
        "UPDATE" => Some(Kind::Update),
        _ => None,
    };
    if let (Some(t), Some(kind)) = (req.target, kind) {
        let counted = req.counts.iter().any(|c| c.name == t.name && t.schema.as_ref().is_none_or(|s| *s == c.schema));
        if !counted {
            add(t.schema.as_deref(), &t.name, None, kind, 0);
            out.retain(|i| i.rows > 0 || i.anomaly.is_some());
        }
    }
    out
}

/// What must run in the write's transaction before it is kept; `None` when no anomaly or
/// budget rule applies to any table it changed.
pub fn prepare(req: &Request<'_>) -> Option<Check> {
    let items = items(req);
    if items.is_empty() {
        return None;
    }
    let state = &req.policy.state;
    let mut text = String::new();
    if !req.state_ready && state.create {
        text.push_str(&state::ensure_sql(&state.schema));
    }
    text.push_str(&sql::write_sql(&state.schema, req.fingerprint, &items, req.override_rows));
    Some(Check {
        sql: text,
        items,
        statement: req.statement.to_string(),
        verb: req.verb.to_string(),
        override_rows: req.override_rows,
        schema: state.schema.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn policy(text: &str) -> Policy {
        crate::policy::file::compile(&[(Path::new("p.toml"), text)]).unwrap()
    }

    fn request<'a>(p: &'a Policy, counts: &'a [Counted], target: Option<&'a RelName>) -> Request<'a> {
        Request {
            counts,
            target,
            verb: "DELETE",
            fingerprint: "f",
            statement: "DELETE FROM users WHERE night = 1",
            override_rows: None,
            who: SessionView::offline("app", "", None),
            policy: p,
            state_ready: true,
        }
    }

    fn counted(schema: &str, name: &str, deleted: u64) -> Counted {
        Counted { schema: schema.into(), name: name.into(), oid: Some(42), deleted, updated: 0 }
    }

    #[test]
    fn what_the_rules_apply_to() {
        let p = policy("[defaults]\nanomaly = true\n[[table]]\nname = \"logs\"\nanomaly = false\n");
        assert!(enabled(&p));
        // The contract's own tables and tables that opt out are not judged.
        let c = [counted("blastwall", "runs", 3), counted("public", "logs", 3)];
        assert!(prepare(&request(&p, &c, None)).is_none());
        // A run that changed nothing of its target is history, not a budget spend.
        let t = RelName { schema: None, name: "users".into() };
        let check = prepare(&request(&p, &[], Some(&t))).unwrap();
        assert_eq!((check.items.len(), check.items[0].rows), (1, 0));
        assert!(!check.sql().contains("budget_lock") && !check.sql().contains("CREATE SCHEMA"));
        let off = policy("[defaults]\nmode = \"off\"\nanomaly = true\n");
        assert!(prepare(&request(&off, &[counted("public", "users", 3)], None)).is_none());
        assert!(!enabled(&policy("[[table]]\nname = \"users\"\n")));
    }

    fn statements(sql: &str) -> Vec<crate::analyze::Statement> {
        crate::analyze::analyze(sql, crate::analyze::ParseOptions::default())
    }

    #[test]
    fn writes_to_the_state_and_truncates_of_budgets_are_found() {
        let p = policy("[[table]]\nname = \"users\"\nbudget_delete_rows = 5\nbudget_window = \"1h\"\n");
        let found = |sql: &str| {
            statement_findings(&statements(sql), request(&p, &[], None).who, &p)
                .into_iter()
                .map(|f| f.rule)
                .collect::<Vec<_>>()
        };
        assert_eq!(found("DELETE FROM blastwall.budget_spent WHERE rows > 0"), ["contract-state"]);
        assert_eq!(found("INSERT INTO blastwall.runs VALUES (1)"), ["contract-state"]);
        assert_eq!(found("DROP SCHEMA blastwall CASCADE"), ["contract-state"]);
        assert_eq!(found("TRUNCATE users"), ["budget"]);
        assert_eq!(found("TRUNCATE other CASCADE"), ["budget"]);
        assert!(found("TRUNCATE other").is_empty());
        assert!(found("DELETE FROM blastwall_audit WHERE id = 1").is_empty());
        assert!(found("SELECT * FROM blastwall.runs").is_empty());
        assert_eq!(
            found("SET search_path = blastwall; SELECT record_run(NULL, NULL, NULL, NULL, NULL)"),
            ["contract-state"]
        );
        // Without the rules, nothing is looked at.
        let off = policy("[[table]]\nname = \"users\"\n");
        assert!(statement_findings(&statements("TRUNCATE users"), request(&off, &[], None).who, &off).is_empty());
    }

    #[test]
    fn budgets_lock_and_first_use_creates() {
        let p = policy("[[table]]\nname = \"users\"\nbudget_delete_rows = 5\nbudget_window = \"1h\"\n");
        let c = [counted("public", "users", 3)];
        let mut r = request(&p, &c, None);
        r.state_ready = false;
        let sql = prepare(&r).unwrap().sql().to_string();
        assert!(
            sql.starts_with("DO $blastwall$") && sql.contains("pg_advisory_xact_lock") && sql.contains("budget_lock"),
            "{sql}"
        );
        assert!(sql.contains("42::pg_catalog.oid"), "the OID given is used: {sql}");
        // Once the state is there, the bookkeeping of a write is one statement (both rules).
        let both =
            policy("[[table]]\nname = \"users\"\nanomaly = true\nbudget_delete_rows = 5\nbudget_window = \"1h\"\n");
        r = request(&both, &c, None);
        let sql = prepare(&r).unwrap().sql().to_string();
        assert_eq!(pg_query::split_with_parser(&sql).unwrap().len(), 1, "{sql}");
        assert!(sql.contains("take_budget(") && sql.contains("record_run("), "{sql}");
    }
}
