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

    /// Forgets a database's answers (DDL may have changed them).
    pub fn forget(&self, database: &str) {
        self.indirect.retain(|(db, _), _| db != database);
    }
}

/// The catalog query for a set of names: one row per name that exists, with whether a write
/// to any relation of that name (in any schema) can reach rows of other tables.
pub fn query(names: &[String]) -> String {
    let list = names.iter().map(|n| crate::precheck::literal(n)).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT c.relname::text, bool_or(c.relkind <> 'r' OR c.relhasrules OR c.relhassubclass \
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal))::text \
         FROM pg_catalog.pg_class c WHERE c.relname IN ({list}) GROUP BY 1"
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
