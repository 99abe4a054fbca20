//! A session's first look at its database's policy tables: at its first quiet point after the
//! login (no reply owed, nothing waiting, no transaction open), the OIDs of the policy tables
//! its database holds are learned when blastwall knows none yet for them
//! (`Catalog::learn_oid`: the first OID seen stays the policy table's while it exists). Before,
//! only a judged write taught them: a policy table swapped out on a direct connection — renamed,
//! and a new table made under its name — while blastwall had only relayed reads there left the
//! new table taken as the policy table, and the old one's rows went uncounted by its new name
//! (twenty-eighth pass N2: 10 real users deleted through `users_old`). One question per
//! database every 30 s at most while some of its policy tables are unknown (a database that
//! holds none), none once all are known; never on a replication connection.
//!
//! Owns: when that question is asked and what is learned from it. Does not own: the identities
//! (`catalog`).

use super::Session;
use crate::precheck::Backend;
use crate::wire::messages::TxStatus;

impl Session {
    /// Whether the first look is still owed and the session is quiet enough to take it.
    pub(super) fn first_look_owed(&self) -> bool {
        !self.looked
            && self.ready
            && self.pending.is_none()
            && self.held_batch.is_none()
            && !self.relay.is_busy()
            && self.relay.tx == TxStatus::Idle
            && self.relay.to_server.is_empty()
    }

    /// Asks which relations the policy tables' names lead to, once, when some are unknown.
    pub(super) async fn first_look(&mut self) {
        self.looked = true;
        let db = self.info.database.clone();
        let policy = self.shared.guard.policy();
        let shared = self.shared.clone();
        let catalog = &shared.guard.catalog;
        let unknown: Vec<(String, String)> = policy
            .tables
            .iter()
            .filter(|t| catalog.oid_of(&db, &t.schema, &t.name).is_none())
            .map(|t| (t.schema.clone(), t.name.clone()))
            .collect();
        if db.is_empty() || unknown.is_empty() || !catalog.first_look_due(&db) {
            return;
        }
        let oids: Vec<String> = unknown
            .iter()
            .map(|(s, t)| {
                let q = format!("\"{}\".\"{}\"", s.replace('"', "\"\""), t.replace('"', "\"\""));
                format!("pg_catalog.to_regclass({})::pg_catalog.oid::pg_catalog.text", crate::catalog::literal(&q))
            })
            .collect();
        let sql = format!(
            "SELECT (SELECT d.oid FROM pg_catalog.pg_database d \
             WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())::pg_catalog.text, {}",
            oids.join(", ")
        );
        let mut b = Backend::new(&mut self.server, &mut self.sfr);
        let answer = b.query(&sql).await;
        let Backend { for_client, params, .. } = b;
        self.take_for_client(for_client, params);
        // The server went away (or broke the protocol): the loop finds that out at its next
        // read or write of the server, and tells the client as for any other message.
        let Ok(answer) = answer else { return };
        // Not allowed to read them (a schema without USAGE): learned at the first write.
        let Some(row) = answer.rows.first().filter(|_| answer.error.is_none()) else { return };
        let value = |i: usize| row.get(i).cloned().flatten().and_then(|v| v.parse::<u32>().ok());
        // Which database this is comes first (`catalog::incarnation`).
        if let Some(oid) = value(0) {
            catalog.learn_incarnation(&db, oid);
        }
        for (i, (s, t)) in unknown.iter().enumerate() {
            if let Some(oid) = value(i + 1) {
                catalog.learn_oid(&db, s, t, oid);
            }
        }
    }
}
