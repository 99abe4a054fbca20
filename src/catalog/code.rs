//! Whether a write to a relation name runs someone's code that may write anywhere: a user
//! trigger, row security, a column of a domain, a default, `CHECK` or index over a function or
//! operator outside `pg_catalog`, a foreign table — on any relation of that name, on any of its
//! inheritance children or partitions (at any depth), or on a table a view of that name reads
//! (at any depth). Rules are not code here: a rule's actions are statements the server runs
//! as it says, and what they change must be what the judgement reached
//! (`guard::reached`). With no such code, a write changes only the rows of what it names, of
//! what a view or rule of it writes, and of what foreign keys' actions reach
//! (`super::cascades`).
//!
//! Asked in the same catalog question as the relation's other indirect effects (`super::query`),
//! cached and forgotten with them.
//!
//! Owns: the query's column, its answer and its cache. Does not own: what follows
//! (`guard::reached`).

use dashmap::DashMap;
use std::time::Instant;

/// (database, relation name) → it runs code when written, when learned.
#[derive(Default)]
pub(super) struct Cache(DashMap<(String, String), (bool, Instant)>);

impl Cache {
    pub(super) fn learn(&self, database: &str, name: &str, code: bool, at: Instant) {
        self.0.insert((database.to_string(), name.to_string()), (code, at));
    }

    pub(super) fn fresh(&self, database: &str, name: &str) -> Option<bool> {
        let e = self.0.get(&(database.to_string(), name.to_string()))?;
        (e.1.elapsed() < super::TTL).then_some(e.0)
    }

    pub(super) fn forget(&self, database: &str) {
        self.0.retain(|(db, _), _| db != database);
    }
}

/// The column of `super::query` (grouped by `c.relname`): `true` when some relation of the
/// name, a descendant of one, or a relation a view among them reads, runs code when its rows
/// change. Every operator and function is `pg_catalog`'s.
pub(super) fn column() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    format!(
        "pg_catalog.bool_or(EXISTS (WITH RECURSIVE {code}, \
           w(rel) AS (SELECT c.oid UNION SELECT n.rel FROM w CROSS JOIN LATERAL (\
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent{eq}w.rel \
             UNION ALL SELECT d.refobjid FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d \
               ON d.classid{eq}'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid{eq}r.oid \
               AND d.refclassid{eq}'pg_catalog.pg_class'::pg_catalog.regclass \
             WHERE r.ev_class{eq}w.rel AND d.refobjid OPERATOR(pg_catalog.<>) w.rel \
               AND EXISTS (SELECT FROM pg_catalog.pg_class v WHERE v.oid{eq}w.rel AND v.relkind{eq}'v'::pg_catalog.\"char\")\
           ) n(rel)) \
         SELECT FROM w WHERE w.rel{eq}ANY (SELECT code.rel FROM code) \
           OR EXISTS (SELECT FROM pg_catalog.pg_class f WHERE f.oid{eq}w.rel AND f.relkind{eq}'f'::pg_catalog.\"char\")))::pg_catalog.text",
        code = super::cascades::code_cte(false),
    )
}

/// Reads the column: only `false` says no code runs (NULL or anything else: it may).
pub(super) fn answer(value: Option<&str>, exists: bool) -> bool {
    exists && value != Some("false")
}

impl super::Catalog {
    /// Whether a write to `name` may run someone's code (see the module); `None` when not known
    /// and fresh (ask [`super::Question::Indirect`]).
    pub fn runs_code(&self, database: &str, name: &str) -> Option<bool> {
        self.code.fresh(database, name)
    }
}
