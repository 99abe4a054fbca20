//! What the proxy learns from PostgreSQL's catalogs about a relation name: whether a write to
//! it may change other rows than its own (a view, rules, user triggers, inheritance children)
//! and so must be counted by the pre-check. Asked on a client's own session (its database, its
//! role's view of the catalog), cached per database and name, dropped when DDL passes through
//! and after a short time.
//!
//! Owns: the cache and the catalog query. Does not own: the I/O (`precheck`) or what is done
//! with the answer (`guard`).

use dashmap::DashMap;
use std::time::{Duration, Instant};

/// How long an answer is trusted when no DDL passes through blastwall.
const TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Catalog {
    /// (database, relation name) → (a write may reach other rows, when learned).
    indirect: DashMap<(String, String), (bool, Instant)>,
    /// The identity of policy tables: (database, schema, name) → OID, as first seen, so that
    /// their counters are found (and named) after a rename.
    oids: DashMap<(String, String, String), u32>,
    /// Protected columns by identity: (database, schema, table) → their attnums as first seen
    /// and their names now.
    columns: DashMap<(String, String, String), Columns>,
    /// (database, sequence name) → the (schema, table, column) that own sequences of that name.
    owners: DashMap<(String, String), (Vec<Owner>, Instant)>,
}

/// A column that owns a sequence: (schema, table, column).
pub type Owner = (String, String, String);

/// A table's protected columns: (policy name, attnum) as first seen; (policy name, name now).
#[derive(Debug, Clone, Default)]
struct Columns {
    attnums: Vec<(String, i64)>,
    current: Vec<(String, String)>,
    learned: Option<Instant>,
}

/// Something to ask the catalog before a statement can be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// Whether a write to this relation name can reach other rows (views, rules, …).
    Indirect(String),
    /// The current names of a policy table's protected columns.
    Columns { schema: String, table: String },
    /// Which columns own sequences of this name.
    SequenceOwner(String),
}

impl Catalog {
    /// `Some(answer)` when known and fresh.
    pub fn is_indirect(&self, database: &str, name: &str) -> Option<bool> {
        let e = self.indirect.get(&(database.to_string(), name.to_string()))?;
        (e.1.elapsed() < TTL).then_some(e.0)
    }

    pub fn learn(&self, database: &str, name: &str, indirect: bool) {
        self.indirect.insert((database.to_string(), name.to_string()), (indirect, Instant::now()));
    }

    pub fn oid_of(&self, database: &str, schema: &str, name: &str) -> Option<u32> {
        self.oids.get(&(database.to_string(), schema.to_string(), name.to_string())).map(|o| *o)
    }

    /// The policy table name an OID was first seen under.
    pub fn name_of(&self, database: &str, oid: u32) -> Option<(String, String)> {
        self.oids
            .iter()
            .find(|e| e.key().0 == database && *e.value() == oid)
            .map(|e| (e.key().1.clone(), e.key().2.clone()))
    }

    /// Remembers a policy table's OID the first time it is seen (a table dropped and created
    /// again under the name is found by name first; see `stats_sql`).
    pub fn learn_oid(&self, database: &str, schema: &str, name: &str, oid: u32) {
        if oid != 0 {
            self.oids.entry((database.to_string(), schema.to_string(), name.to_string())).or_insert(oid);
        }
    }

    /// The protected columns of a table as (policy name, name now), when known and fresh.
    pub fn columns_of(&self, database: &str, schema: &str, table: &str) -> Option<Vec<(String, String)>> {
        let e = self.columns.get(&(database.to_string(), schema.to_string(), table.to_string()))?;
        e.learned.filter(|t| t.elapsed() < TTL).map(|_| e.current.clone())
    }

    /// Learns a table's columns (`rows`: name, attnum). The first time, the protected columns'
    /// attnums are remembered; after that their names are looked up by attnum, so a renamed
    /// column stays protected.
    pub fn learn_columns(
        &self,
        database: &str,
        schema: &str,
        table: &str,
        protected: &std::collections::BTreeSet<String>,
        rows: &[Vec<Option<String>>],
    ) {
        let cols: Vec<(String, i64)> =
            rows.iter().filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.as_deref()?.parse().ok()?))).collect();
        let mut e = self.columns.entry((database.to_string(), schema.to_string(), table.to_string())).or_default();
        if e.attnums.is_empty() {
            e.attnums = protected
                .iter()
                .filter_map(|p| cols.iter().find(|(n, _)| n == p).map(|(_, a)| (p.clone(), *a)))
                .collect();
        }
        e.current = protected
            .iter()
            .map(|p| {
                let now = e
                    .attnums
                    .iter()
                    .find(|(q, _)| q == p)
                    .and_then(|(_, a)| cols.iter().find(|(_, b)| b == a))
                    .map(|(n, _)| n.clone());
                (p.clone(), now.unwrap_or_else(|| p.clone()))
            })
            .collect();
        e.learned = Some(Instant::now());
    }

    pub fn sequence_owners(&self, database: &str, sequence: &str) -> Option<Vec<Owner>> {
        let e = self.owners.get(&(database.to_string(), sequence.to_string()))?;
        (e.1.elapsed() < TTL).then(|| e.0.clone())
    }

    /// Learns a sequence-owner answer (`rows`: schema, table, column).
    pub fn learn_owners(&self, database: &str, sequence: &str, rows: &[Vec<Option<String>>]) {
        let owners =
            rows.iter().filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?, r.get(2)?.clone()?))).collect();
        self.owners.insert((database.to_string(), sequence.to_string()), (owners, Instant::now()));
    }

    /// Forgets a database's answers (DDL may have changed them); the identities stay.
    pub fn forget(&self, database: &str) {
        self.indirect.retain(|(db, _), _| db != database);
        self.owners.retain(|(db, _), _| db != database);
        for mut e in self.columns.iter_mut() {
            if e.key().0 == database {
                e.learned = None;
            }
        }
    }
}

/// The catalog query for a set of names: one row per name that exists, with whether a write
/// to any relation of that name (in any schema) can reach rows of other tables.
pub fn query(names: &[String]) -> String {
    let list = names.iter().map(|n| literal(n)).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT c.relname::text, bool_or(c.relkind <> 'r' OR c.relhasrules OR c.relhassubclass \
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal))::text \
         FROM pg_catalog.pg_class c WHERE c.relname IN ({list}) GROUP BY 1"
    )
}

/// The columns of a policy table (by name, or by the OID first seen under that name).
pub fn columns_query(schema: &str, table: &str, oid: Option<u32>) -> String {
    let qualified = format!("\"{}\".\"{}\"", schema.replace('"', "\"\""), table.replace('"', "\"\""));
    format!(
        "SELECT attname::text, attnum::text FROM pg_catalog.pg_attribute \
         WHERE attrelid = coalesce(pg_catalog.to_regclass({})::oid, {}::oid) AND attnum > 0 AND NOT attisdropped",
        literal(&qualified),
        oid.unwrap_or(0)
    )
}

/// The columns that own sequences named `sequence` (serial, identity, `OWNED BY`).
pub fn owners_query(sequence: &str) -> String {
    format!(
        "SELECT n.nspname::text, c.relname::text, a.attname::text \
         FROM pg_catalog.pg_depend d \
         JOIN pg_catalog.pg_class s ON s.oid = d.objid \
         JOIN pg_catalog.pg_class c ON c.oid = d.refobjid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid \
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.deptype IN ('a', 'i') AND s.relkind = 'S' AND s.relname = {}",
        literal(sequence)
    )
}

/// Reads the answer: names missing from it do not exist (a write to them fails).
pub fn learn_answer(cat: &Catalog, database: &str, names: &[String], rows: &[Vec<Option<String>>]) {
    for n in names {
        let indirect = rows.iter().any(|r| {
            r.first().and_then(|v| v.as_deref()) == Some(n) && r.get(1).and_then(|v| v.as_deref()) == Some("true")
        });
        cat.learn(database, n, indirect);
    }
}

/// Quotes a string as an SQL literal that reads the same whatever `standard_conforming_strings`
/// says (an E'' string).
pub fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'").replace('\0', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_are_forgotten() {
        let c = Catalog::default();
        assert_eq!(c.is_indirect("db", "v"), None);
        learn_answer(&c, "db", &["v".into(), "t".into()], &[vec![Some("v".into()), Some("true".into())]]);
        assert_eq!(c.is_indirect("db", "v"), Some(true));
        assert_eq!(c.is_indirect("db", "t"), Some(false));
        c.forget("db");
        assert_eq!(c.is_indirect("db", "v"), None);
        assert!(query(&["o'brien".into()]).contains("E'o\\'brien'"));
    }
}
