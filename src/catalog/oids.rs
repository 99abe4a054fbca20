//! Which relation an OID is, per database: asked for a sequence that a `setval` call gives as
//! a string of digits (`setval('16387', …)`), which the server's `regclass` input reads as an
//! OID, not as a name (twenty-seventh pass M1: the protected sequence moved by its OID while
//! blastwall judged a relation named `16387`).
//!
//! Owns: the cache of those answers and their query. Does not own: asking (`session::checks`)
//! or what the answer decides (`guard::setval`).

use dashmap::DashMap;
use std::time::Instant;

/// What an OID was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidName {
    /// A relation: its schema and name.
    Relation(String, String),
    /// No relation has it (a `setval` of it fails on the server).
    Nothing,
    /// Not known: the catalog could not be read, or cannot be asked now (the middle of a
    /// batch): the sequence is judged as one given by an expression.
    Unknown,
}

/// (database, OID) → what it is, when learned.
#[derive(Default)]
pub struct Cache(DashMap<(String, u32), (OidName, Instant)>);

impl Cache {
    /// The answer when known and fresh.
    pub fn get(&self, database: &str, oid: u32) -> Option<OidName> {
        let e = self.0.get(&(database.to_string(), oid))?;
        (e.1.elapsed() < super::TTL).then(|| e.0.clone())
    }

    /// Learns the answer of [`query`] (`None`: the question failed).
    pub fn learn(&self, database: &str, oid: u32, rows: Option<&[Vec<Option<String>>]>) {
        let answer = match rows {
            None => OidName::Unknown,
            Some(rows) => match rows.first() {
                None => OidName::Nothing,
                Some(r) => match (r.first().cloned().flatten(), r.get(1).cloned().flatten()) {
                    (Some(s), Some(n)) => OidName::Relation(s, n),
                    _ => OidName::Unknown,
                },
            },
        };
        self.0.insert((database.to_string(), oid), (answer, Instant::now()));
    }

    /// DDL passed (a rename changes what an OID is called).
    pub fn forget(&self, database: &str) {
        self.0.retain(|(db, _), _| db != database);
    }
}

/// The schema and name of the relation with this OID (no row: none has it).
pub fn query(oid: u32) -> String {
    format!(
        "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.oid OPERATOR(pg_catalog.=) {oid}::pg_catalog.oid"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_each_answer() {
        let c = Cache::default();
        let row = vec![vec![Some("public".to_string()), Some("s".to_string())]];
        c.learn("db", 7, Some(&row));
        c.learn("db", 8, Some(&[]));
        c.learn("db", 9, None);
        assert_eq!(c.get("db", 7), Some(OidName::Relation("public".into(), "s".into())));
        assert_eq!(c.get("db", 8), Some(OidName::Nothing));
        assert_eq!(c.get("db", 9), Some(OidName::Unknown));
        assert_eq!(c.get("other", 7), None);
        c.forget("db");
        assert_eq!(c.get("db", 7), None);
        assert!(query(7).contains("c.oid OPERATOR(pg_catalog.=) 7::pg_catalog.oid"), "{}", query(7));
    }
}
