//! Which database a name stands for: the OID `pg_database` gives it, learned from every
//! session's first question (`taint::first_query`'s third column). A database dropped and
//! created again under the same name (a test suite's reset, a restore) on a direct connection
//! is another database: what blastwall knew of the old one — the policy tables' OIDs and
//! attnums, the contract's state, every cached answer — goes, and is asked again. Before,
//! those answers stood until they aged, and the policy tables' OIDs for ever: the contract's
//! run records were refused for every write until blastwall restarted (nineteenth pass FPs),
//! and writes of policy tables and their children were refused for up to 30 s (FPd, F3).
//!
//! Also when a session of a database last took its first look at the policy tables' OIDs
//! (`session::firstlook`).
//!
//! Owns: the database OID per name, the forgetting, and its line in the identities file
//! (`{"database", "incarnation"}`: read back at start, so that a database re-created while
//! blastwall was stopped drops the identities recorded for the old one).

use super::Catalog;
use std::sync::atomic::Ordering;

impl Catalog {
    /// Whether a session of `database` should look for the policy tables' OIDs now: none
    /// did in the last [`super::TTL`] (the first to ask takes it).
    pub fn first_look_due(&self, database: &str) -> bool {
        let now = std::time::Instant::now();
        let mut due = false;
        self.first_looks
            .entry(database.to_string())
            .and_modify(|t| {
                if t.elapsed() >= super::TTL {
                    (*t, due) = (now, true);
                }
            })
            .or_insert_with(|| {
                due = true;
                now
            });
        due
    }

    /// Learns the OID of `database` as a session's first question found it. A different OID
    /// than the one known: the database was dropped and created again, everything known of
    /// the old one is forgotten; returns true then.
    pub fn learn_incarnation(&self, database: &str, oid: u32) -> bool {
        if oid == 0 {
            return false;
        }
        let before = self.incarnations.insert(database.to_string(), oid);
        if before == Some(oid) {
            return false;
        }
        self.record(&serde_json::json!({"database": database, "incarnation": oid}));
        let Some(old) = before else { return false };
        tracing::info!(
            database,
            old,
            new = oid,
            "the database was dropped and created again: what blastwall knew of it is asked again"
        );
        self.forget_database(database);
        true
    }

    /// `ALTER DATABASE old RENAME TO new` relayed (or `DROP DATABASE name`, as `name` to
    /// `name`): each name now stands for another database (or none), so what was known under
    /// either goes — the mark of a database created through blastwall too, which would let
    /// the one renamed into its name be dropped (twentieth pass N6: a new database renamed
    /// away, the real one renamed into its name, then dropped).
    pub fn renamed_database(&self, old: &str, new: &str) {
        for name in [old, new] {
            self.forget_database(name);
            self.incarnations.remove(name);
        }
    }

    /// The OID `database` had when last seen, if any.
    pub fn incarnation(&self, database: &str) -> Option<u32> {
        self.incarnations.get(database).map(|o| *o)
    }

    /// Forgets everything known of `database`: its answers, the policy tables' identities
    /// there, the contract's state, whether it was created through blastwall.
    fn forget_database(&self, database: &str) {
        self.forget(database);
        self.identity_generation.fetch_add(1, Ordering::AcqRel);
        self.oids.retain(|(db, _, _), _| db != database);
        self.columns.retain(|(db, _, _), _| db != database);
        self.state_ready.retain(|(db, _), _| db != database);
        self.state_warned.retain(|(db, _), _| db != database);
        self.identities.remove(database);
        self.hidden.remove(database);
        self.hidden_epoch.fetch_add(1, Ordering::AcqRel);
        self.created.remove(database);
        self.first_looks.remove(database);
    }

    /// An identities file's `incarnation` line, read at start: a database recorded under
    /// another OID before has lost the identities recorded for it until then.
    pub(super) fn read_incarnation(&mut self, database: String, oid: u32) {
        if self.incarnations.get(&database).is_some_and(|o| *o != oid) {
            self.oids.retain(|(db, _, _), _| *db != database);
            self.columns.retain(|(db, _, _), _| *db != database);
        }
        self.incarnations.insert(database, oid);
    }
}

/// The database OID in the rows of the session's first question (`taint::first_query`).
pub fn database_oid(rows: &[Vec<Option<String>>]) -> Option<u32> {
    rows.first()?.get(2)?.as_deref()?.parse().ok()
}
