//! Counting in one round trip: a delete whose reach the catalog proves (`reach`), in a
//! transaction blastwall opens itself, judged by nothing but the row limits of the tables it
//! reaches, goes out as one write — BEGIN and the first reading, the client's Query, the second
//! reading with the check of its prepared statements, COMMIT — with the limits asserted on the
//! server inside the second reading. Over a limit (or counting off, the proof no longer true,
//! a prepared reading replaced), the second reading fails, the transaction is aborted and the
//! COMMIT rolls it back; the write is then counted again with two round trips, whose verdict
//! (refusal and its counts) is the client's. Within every limit, the COMMIT keeps it: no
//! verdict of the policy could have refused it.
//!
//! The counters of the current transaction are not zero at its BEGIN (PostgreSQL 15 adds a
//! session's counts to them until it reports them, at most once a second), so the first
//! reading stores what it read in settings local to the transaction, and the assertion
//! compares the second reading with them: the same difference the verdict judges. The second
//! reading also asks the server to report them at the next idle point
//! (`pg_stat_force_next_flush()`: at the ReadyForQuery after the COMMIT, which empties them),
//! so that when nothing else reached the server since ([`Flushed`]), the next such write's
//! counters start at zero: it goes out without a first reading, and its assertion compares
//! with zero. Were they not zero after all, the write would only be counted larger than it
//! is (every count is added, never taken away, until reported): kept only within its limits,
//! else counted again with two round trips.
//!
//! Owns: when a check may be kept in one round trip ([`limits`]), the stored values and the
//! assertion, and when the counters are known to start at zero ([`Flushed`]). Does not own:
//! the readings (`stats`), the exchange (`verify`).

use crate::policy::{Mode, Policy, SessionView};

/// The first column of its rows in a reading (skipped by `stats::snapshot`).
pub const MARK: &str = "blastwall:once";

/// The row limits of one table a proven delete reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub oid: u32,
    pub deleted: Option<u64>,
    pub updated: Option<u64>,
}

/// What the pre-check knows of a write that may be counted in one round trip.
pub struct Case<'a> {
    pub policy: &'a Policy,
    pub plan: &'a super::CheckPlan,
    pub who: SessionView<'a>,
    /// The tables the catalog proves it reaches: (schema, name, OID).
    pub reached: Vec<(String, String, u32)>,
    /// The policy's limited tables it does not reach (`stats::unreached` rows).
    pub others: Vec<String>,
    /// A name the catalog learned for an OID (a policy table renamed since): the verdict's.
    pub named: &'a dyn Fn(u32) -> Option<(String, String)>,
}

/// What the readings of a write kept in one round trip store and assert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Once {
    /// The tables it reaches, each within its limits.
    pub limits: Vec<Limit>,
    /// The limited tables it cannot reach (their trees, as `stats::tree_sql` reads them):
    /// asserted unchanged, as the catalog's proof says.
    pub others: Vec<String>,
    /// The counters start at zero in its transaction ([`Flushed`]): no first reading, and the
    /// assertion compares with zero.
    pub from_zero: bool,
    /// The assertion asks for the counters to be reported at the next idle point (the server
    /// has `pg_stat_force_next_flush()`, PostgreSQL 15 and later).
    pub flush: bool,
}

/// What to assert when only row limits can refuse the write: no dry run, override, anomaly
/// or budget rule. `None`: counted with two round trips.
pub fn limits(c: &Case<'_>) -> Option<Once> {
    let p = c.policy;
    if c.plan.dry_run
        || c.plan.override_rows.is_some()
        || p.anomaly.enabled == Some(true)
        || crate::contract::enabled(p)
        || c.who.session_mode == Some(Mode::DryRun)
        || c.reached.is_empty()
    {
        return None;
    }
    let out = c
        .reached
        .iter()
        .map(|(s, n, oid)| {
            // Under the name the verdict would use: the learned one, else the reading's.
            let (s, n) = (c.named)(*oid).unwrap_or_else(|| (s.clone(), n.clone()));
            let (deleted, updated, _) = crate::policy::limits_for(p, &s, &n);
            Limit { oid: *oid, deleted, updated }
        })
        .collect();
    Some(Once { limits: out, others: c.others.clone(), from_zero: false, flush: false })
}

/// Whether the session's counters were reported (emptied) since the last write kept in one
/// round trip, with nothing of the client's sent to the server after it: the session's count
/// of sync points relayed (`at`, set before each check) is what it was then. Any check
/// consumes it ([`Flushed::take`]); only a write kept in one round trip sets it again.
#[derive(Debug, Default)]
pub struct Flushed {
    /// The session's sync points relayed, as of this check (`None`: a batch of its is open).
    relayed: Option<u64>,
    /// The count then, and the clock of that write's second reading (`objects`: what a
    /// failed statement made is read since it).
    at: Option<(u64, String)>,
    /// The server has no `pg_stat_force_next_flush()` (before PostgreSQL 15): never asked.
    unsupported: bool,
    /// The session's unnamed statement holds the check of the prepared readings of this many
    /// readings (its text is made from that number alone: `prepared::Prepared::check_unnamed`),
    /// as of the sync points relayed then: left
    /// there by a write kept with it. Nothing but a protocol message on the connection can
    /// change the unnamed statement (SQL cannot name it, and `DEALLOCATE ALL` leaves it), so
    /// it holds as long as nothing of the client's reached the server since.
    unnamed: Option<(u64, usize)>,
    /// The same, for the check under way ([`Flushed::at`] moved it here).
    unnamed_now: Option<usize>,
}

impl Flushed {
    /// The session's sync points relayed so far (`None`: a batch is open), before a check.
    pub fn at(&mut self, relayed: Option<u64>) {
        self.relayed = relayed;
        // Consumed by every check: only a write kept with it leaves it for the next one.
        self.unnamed_now = match (self.unnamed.take(), relayed) {
            (Some((then, n)), Some(now)) if then == now => Some(n),
            _ => None,
        };
    }

    /// Bytes of the client's went to the server outside a check: the unnamed statement may be
    /// the client's now.
    pub fn client_sent(&mut self) {
        self.unnamed = None;
        self.unnamed_now = None;
    }

    /// Whether the unnamed statement holds the check of `n` readings in this check.
    pub fn unnamed_holds(&self, n: usize) -> bool {
        self.unnamed_now == Some(n)
    }

    /// A batch that used (or parsed) the check of `n` readings on the unnamed statement was
    /// answered without an error and kept: the unnamed statement holds it, for this check and,
    /// while nothing of the client's reaches the server, the next.
    pub fn unnamed_kept(&mut self, n: usize) {
        self.unnamed_now = Some(n);
        self.unnamed = self.relayed.map(|r| (r, n));
    }

    /// The clock of the last reading when the counters start at zero; consumed.
    pub fn take(&mut self) -> Option<String> {
        match (self.at.take(), self.relayed) {
            (Some((then, clock)), Some(now)) if then == now => Some(clock),
            _ => None,
        }
    }

    /// A write kept in one round trip asked for the counters to be reported at its COMMIT,
    /// which succeeded; `clock`: its second reading's.
    pub fn kept(&mut self, clock: Option<String>) {
        self.at = self.relayed.zip(clock).filter(|_| !self.unsupported);
    }

    /// Something failed around a reading: not known to start at zero, and the unnamed
    /// statement is parsed again before its next use.
    pub fn forget(&mut self) {
        self.at = None;
        self.unnamed = None;
        self.unnamed_now = None;
    }

    /// Whether the assertion may ask for the counters to be reported.
    pub fn supported(&self) -> bool {
        !self.unsupported
    }

    /// A second reading failed: when for want of `pg_stat_force_next_flush()` (missing, or
    /// its EXECUTE revoked), it is never asked again on this session (the write is counted
    /// again, as after any failure).
    pub fn failed(&mut self, e: &crate::wire::messages::ErrorFields) {
        self.at = None;
        if e.message.contains("pg_stat_force_next_flush") {
            self.unsupported = true;
        }
    }
}

fn setting(what: &str, oid: u32) -> String {
    format!("'blastwall.counted_{what}_{oid}'")
}

fn counter(what: &str, oid: u32) -> String {
    format!("pg_catalog.pg_stat_get_xact_tuples_{what}({oid}::pg_catalog.oid)")
}

/// What the limited tables it cannot reach have changed in this transaction, in all.
fn others_sql(others: &[String]) -> String {
    format!(
        "(SELECT coalesce(pg_catalog.sum(o.d OPERATOR(pg_catalog.+) o.u), 0)::pg_catalog.text FROM ({}) o(s, t, d, u, i, r))",
        super::stats::tree_sql(&others.join(", "))
    )
}

/// The first reading's row that stores the counters it read, local to the transaction.
pub fn store_sql(once: &Once) -> String {
    let mut sets: Vec<String> = once
        .limits
        .iter()
        .flat_map(|l| ["deleted", "updated"].map(|w| (w, l.oid)))
        .map(|(w, oid)| {
            format!("pg_catalog.set_config({}, {}::pg_catalog.text, true)", setting(w, oid), counter(w, oid))
        })
        .collect();
    if !once.others.is_empty() {
        sets.push(format!("pg_catalog.set_config('blastwall.counted_others', {}, true)", others_sql(&once.others)));
    }
    format!(
        "SELECT '{MARK}'::pg_catalog.text, pg_catalog.concat({}), 0::pg_catalog.int8, 0::pg_catalog.int8, \
         0::pg_catalog.int8, 0::pg_catalog.oid",
        sets.join(", ")
    )
}

/// The second reading's row that fails unless counting is on and every table's change since
/// the first reading is within its limits.
pub fn assert_sql(once: &Once) -> String {
    let mut conds = vec!["pg_catalog.current_setting('track_counts') OPERATOR(pg_catalog.=) 'on'".to_string()];
    if !once.others.is_empty() {
        let stored = match once.from_zero {
            true => "'0'".to_string(),
            false => "pg_catalog.current_setting('blastwall.counted_others')".to_string(),
        };
        conds.push(format!("{} OPERATOR(pg_catalog.=) {stored}", others_sql(&once.others)));
    }
    for l in &once.limits {
        for (w, max) in [("deleted", l.deleted), ("updated", l.updated)] {
            if let Some(max) = max {
                let since = match once.from_zero {
                    true => String::new(),
                    false => {
                        format!(
                            " OPERATOR(pg_catalog.-) pg_catalog.current_setting({})::pg_catalog.int8",
                            setting(w, l.oid)
                        )
                    }
                };
                conds.push(format!("{}{since} OPERATOR(pg_catalog.<=) {max}::pg_catalog.int8", counter(w, l.oid)));
            }
        }
    }
    // The counters reported at the next idle point, the COMMIT's (see the module's comment).
    let flush = if once.flush { "pg_catalog.pg_stat_force_next_flush(), " } else { "" };
    format!(
        "SELECT '{MARK}'::pg_catalog.text, pg_catalog.concat({flush}(CASE WHEN {} THEN '0' \
         ELSE 'blastwall: over a row limit, or not counted' END)::pg_catalog.int4), \
         0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.oid",
        conds.join(" AND ")
    )
}

/// The end of a write kept in one round trip (its COMMIT answered `c`): the client's replies;
/// the COMMIT's error in place of its ReadyForQuery when it failed; when the replies could not
/// be held, the write stays and the client is told why (`kept_unheld`).
pub fn kept(
    b: &super::Backend<'_>,
    held: &super::Held,
    c: super::Answer,
    counts: Vec<super::TableCount>,
    decision: crate::policy::Decision,
    max_hold: usize,
) -> super::Outcome {
    use crate::wire::messages::{ready_for_query, TxStatus};
    if matches!(decision.mode(), Some(Mode::Enforce | Mode::DryRun)) {
        // Cannot be: only the row limits it asserted could find anything.
        tracing::error!(?decision, "a write kept in one round trip has a finding its assertion did not");
    }
    let bytes = match (c.error, held.overflowed) {
        (Some(e), _) => super::failed_at_end(held, e),
        (None, true) => {
            let mut out = bytes::BytesMut::from(&super::kept_unheld(held, max_hold, &b.holding).encode()[..]);
            out.extend_from_slice(&ready_for_query(TxStatus::Idle));
            out
        }
        (None, false) => super::held_bytes(held, TxStatus::Idle),
    };
    super::Outcome::Deliver { bytes, status: TxStatus::Idle, counts, kept: Some(decision) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_is_asserted_against_the_stored_reading() {
        let l = Once {
            limits: vec![
                Limit { oid: 10, deleted: Some(3), updated: None },
                Limit { oid: 11, deleted: Some(0), updated: Some(2) },
            ],
            others: vec![],
            from_zero: false,
            flush: false,
        };
        let store = store_sql(&l);
        assert_eq!(store.matches("set_config(").count(), 4);
        assert!(store.contains("'blastwall.counted_deleted_10', pg_catalog.pg_stat_get_xact_tuples_deleted(10::"));
        let a = assert_sql(&l);
        assert_eq!(a.matches("OPERATOR(pg_catalog.<=)").count(), 3);
        assert!(a.contains("track_counts"));
        assert!(
            a.contains("current_setting('blastwall.counted_deleted_11')::pg_catalog.int8 OPERATOR(pg_catalog.<=) 0::")
        );
        assert!(!a.contains("counted_others"));
        // A limited table it cannot reach: unchanged, as stored.
        let o =
            Once { others: vec!["('public'::pg_catalog.text, 'w'::pg_catalog.text, 12::pg_catalog.oid)".into()], ..l };
        assert!(store_sql(&o).contains("set_config('blastwall.counted_others', (SELECT coalesce(pg_catalog.sum("));
        assert!(
            assert_sql(&o).contains("OPERATOR(pg_catalog.=) pg_catalog.current_setting('blastwall.counted_others')")
        );
        // Counters known to start at zero: compared with zero, nothing stored read.
        assert!(!assert_sql(&o).contains("pg_stat_force_next_flush"));
        let z = assert_sql(&Once { from_zero: true, flush: true, ..o });
        assert!(!z.contains("current_setting('blastwall."), "{z}");
        assert!(z.contains("pg_stat_get_xact_tuples_deleted(11::pg_catalog.oid) OPERATOR(pg_catalog.<=) 0::"), "{z}");
        assert!(z.contains("OPERATOR(pg_catalog.=) '0'") && z.contains("pg_stat_force_next_flush()"), "{z}");
    }

    #[test]
    fn counters_start_at_zero_only_when_nothing_reached_the_server_since_a_kept_write() {
        let mut f = Flushed::default();
        f.at(Some(3));
        assert_eq!(f.take(), None);
        f.kept(Some("clock".into()));
        f.at(Some(3));
        assert_eq!(f.take().as_deref(), Some("clock"));
        // Consumed by any check.
        assert_eq!(f.take(), None);
        f.at(Some(4));
        f.kept(Some("c".into()));
        f.at(Some(5));
        assert_eq!(f.take(), None, "a statement of the client's went to the server since");
        f.at(Some(5));
        f.kept(Some("c".into()));
        f.at(None);
        assert_eq!(f.take(), None, "a batch is open");
        // A server without pg_stat_force_next_flush(): never asked again, never from zero.
        let missing = crate::wire::messages::ErrorFields {
            code: "42883".into(),
            message: "function pg_stat_force_next_flush() does not exist".into(),
            ..Default::default()
        };
        assert!(f.supported());
        f.failed(&missing);
        assert!(!f.supported());
        f.at(Some(6));
        f.kept(Some("c".into()));
        assert_eq!(f.take(), None);
    }

    #[test]
    fn the_unnamed_check_is_trusted_only_while_nothing_of_the_clients_reached_the_server() {
        let mut f = Flushed::default();
        f.at(Some(1));
        assert!(!f.unnamed_holds(2));
        f.unnamed_kept(2);
        assert!(f.unnamed_holds(2) && !f.unnamed_holds(1));
        f.at(Some(1));
        assert!(f.unnamed_holds(2), "nothing since");
        f.at(Some(1));
        assert!(!f.unnamed_holds(2), "consumed by a check that did not keep it");
        f.unnamed_kept(2);
        f.at(Some(2));
        assert!(!f.unnamed_holds(2), "a sync point of the client's since");
        f.unnamed_kept(2);
        f.at(None);
        assert!(!f.unnamed_holds(2), "a batch of the client's is open");
        f.at(Some(3));
        f.unnamed_kept(2);
        f.client_sent();
        f.at(Some(3));
        assert!(!f.unnamed_holds(2), "bytes of the client's went to the server (a Parse, a blastwall's Sync after it)");
        f.unnamed_kept(2);
        f.forget();
        f.at(Some(3));
        assert!(!f.unnamed_holds(2), "something failed");
    }
}
