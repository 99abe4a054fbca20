//! Per-table row counters of the current transaction (`pg_stat_xact_user_tables`), read before
//! and after a statement: the difference is what the statement changed, table by table.
//!
//! Owns: the query and the arithmetic. Does not own: the I/O (parent module).

use std::collections::BTreeMap;

/// The first row says whether counting is on at all; without it every delta would read 0.
/// Every function, operator and type is named with its schema, so nothing in the client's
/// `search_path` (a `=` or a `coalesce`-like function of its own) can change the answer.
macro_rules! track_counts {
    () => {
        "SELECT 'track_counts'::pg_catalog.text, pg_catalog.current_setting('track_counts'), \
         0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.oid"
    };
}
const TRACK_COUNTS: &str = track_counts!();

/// Every user table whose counters in this transaction are not zero (for dry runs, overrides
/// and default limits: every table counts). One pass over `pg_class` with the per-relation
/// counter functions, the schema name looked up only for the rows it returns — several times
/// cheaper than `pg_stat_xact_user_tables`, which joins and groups every table's indexes.
/// Tables with all-zero counters are left out of a reading: a table missing from the first
/// reading counts from zero.
pub const STATS_SQL: &str = concat!(
    track_counts!(),
    " UNION ALL SELECT (SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_namespace n \
     WHERE n.oid OPERATOR(pg_catalog.=) c.relnamespace), c.relname::pg_catalog.text, \
     pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid), pg_catalog.pg_stat_get_xact_tuples_updated(c.oid), \
     pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid), c.oid \
     FROM pg_catalog.pg_class c \
     WHERE c.relnamespace OPERATOR(pg_catalog.<>) 11::pg_catalog.oid \
     AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,m,p}'::pg_catalog.\"char\"[]) \
     AND c.relnamespace OPERATOR(pg_catalog.<>) coalesce((SELECT n.oid FROM pg_catalog.pg_namespace n \
     WHERE n.nspname OPERATOR(pg_catalog.=) 'information_schema'::pg_catalog.name), 0::pg_catalog.oid) \
     AND (pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid) OPERATOR(pg_catalog.<>) 0 \
     OR pg_catalog.pg_stat_get_xact_tuples_updated(c.oid) OPERATOR(pg_catalog.<>) 0 \
     OR pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid) OPERATOR(pg_catalog.<>) 0)"
);

/// The counters to read for a check: only the tables with limits (row limits, anomaly,
/// budget) when only their counts can decide (the statistics view plans and scans every table, several times slower), else all.
/// `deferred`: the check runs in a block of the client's (or in its batch), whose deferrable
/// constraint triggers fire after it: the snapshot counts them (`identity`).
pub fn stats_sql(
    policy: &crate::policy::Policy,
    plan: &super::CheckPlan,
    known: &dyn Fn(&str, &str) -> Option<u32>,
    deferred: bool,
) -> String {
    let everything = plan.dry_run
        || plan.override_rows.is_some()
        || policy.max_delete_rows.is_some()
        || policy.max_update_rows.is_some()
        || policy.anomaly.enabled == Some(true);
    let limited = limited(policy, known);
    // The protected objects' identity rides in the same statement (`identity`).
    // All of it for what the text cannot bound (DDL, function bodies, dry runs); for a row
    // write, what its triggers may do unseen: drop, move, truncate, and deferred triggers.
    let full = plan.dry_run || matches!(plan.verb, "DDL" | "statement");
    let rewritten = if full { super::content::rewritten(&plan.statement) } else { Vec::new() };
    let detached = if full { super::detach::detached(&plan.statement) } else { Vec::new() };
    let identity = super::identity::sql(policy, known, full, deferred, &rewritten, &detached)
        .map_or(String::new(), |i| format!(" UNION ALL {}", super::identity::as_reading(&i)));
    // So do the names its writes were judged by (`named`).
    let names = super::named::sql(&plan.names)
        .map_or(String::new(), |n| format!(" UNION ALL {}", super::identity::as_reading(&n)));
    // The session's prepared statements and cursors ride along too (`objects`).
    let identity = format!("{identity}{names} UNION ALL {}", super::objects::reading_sql());
    if limited.is_empty() {
        return format!("{STATS_SQL}{identity}");
    }
    // With them, the tables whose text rules a count may find were not applied (`watched`).
    let trees = tree_sql(&watched(policy, known).join(", "));
    if everything {
        // Every table, and each limited table again with its inheritance children and
        // partitions summed in (`snapshot` keeps the larger reading of a table read twice).
        return format!("{STATS_SQL} UNION ALL {trees}{identity}");
    }
    format!("{TRACK_COUNTS} UNION ALL {trees}{identity}")
}

/// The reading of a delete whose reach the catalog proves (`reach`), in a transaction of
/// blastwall's own: the counters of the tables it can change and of the policy's limited
/// tables, by OID, the reading's clock (it can make no prepared statement or cursor), and the
/// proof's assertion —
/// no other table's counters, and no identity snapshot (nothing it runs can move, drop or
/// rewrite an object, or move a sequence). `asserted`: the reading after it.
pub fn reach_sql(
    policy: &crate::policy::Policy,
    plan: &super::CheckPlan,
    known: &dyn Fn(&str, &str) -> Option<u32>,
    reach: &super::reach::Reach,
    p: &super::point::Point,
    asserted: bool,
    once: Option<&super::once::Once>,
) -> String {
    if plan.dry_run || plan.override_rows.is_some() || policy.anomaly.enabled == Some(true) {
        return stats_sql(policy, plan, known, false);
    }
    // Its tables have no children (asserted): their own counters. A limited table it does
    // not reach, with its children's.
    let others = unreached(policy, known, reach);
    let own: Vec<String> = reach
        .values()
        .map(|(s, n, oid)| {
            let f = |what: &str| format!("pg_catalog.pg_stat_get_xact_tuples_{what}({oid}::pg_catalog.oid)");
            format!(
                "SELECT {s}::pg_catalog.text, {n}::pg_catalog.text, {}, {}, {}, {oid}::pg_catalog.oid",
                f("deleted"),
                f("updated"),
                f("inserted")
            )
        })
        .collect();
    let trees = match others.is_empty() {
        true => String::new(),
        false => format!(" UNION ALL {}", tree_sql(&others.join(", "))),
    };
    let mut assertion = match asserted {
        true => format!(" UNION ALL {}", reach.assertion(p)),
        false => String::new(),
    };
    // Kept in one round trip (`once`): the first reading stores its counters, the second
    // asserts the limits against them.
    if let Some(l) = once {
        let row = if asserted { super::once::assert_sql(l) } else { super::once::store_sql(l) };
        assertion.push_str(&format!(" UNION ALL {row}"));
    }
    format!(
        "{TRACK_COUNTS} UNION ALL {}{trees} UNION ALL {}{assertion}",
        own.join(" UNION ALL "),
        super::objects::clock_sql()
    )
}

/// The policy's watched tables (`watched`) that a proven delete does not reach.
pub fn unreached(
    policy: &crate::policy::Policy,
    known: &dyn Fn(&str, &str) -> Option<u32>,
    reach: &super::reach::Reach,
) -> Vec<String> {
    let reached: Vec<String> =
        reach.values().map(|(s, n, _)| format!("({s}::pg_catalog.text, {n}::pg_catalog.text,")).collect();
    watched(policy, known).into_iter().filter(|v| !reached.iter().any(|r| v.starts_with(r.as_str()))).collect()
}

/// The policy's tables with limits (row limits, anomaly, budget) as `tree_sql` rows.
fn limited(policy: &crate::policy::Policy, known: &dyn Fn(&str, &str) -> Option<u32>) -> Vec<String> {
    rows(policy, known, &|t| t.max_delete_rows.is_some() || t.max_update_rows.is_some() || crate::contract::applies(t))
}

/// [`limited`], and the tables with text rules: a change the judgement did not reach refuses
/// a write (`policy::counts`, `unjudged-write`), so their counters are read too.
fn watched(policy: &crate::policy::Policy, known: &dyn Fn(&str, &str) -> Option<u32>) -> Vec<String> {
    rows(policy, known, &|t| {
        t.max_delete_rows.is_some() || t.max_update_rows.is_some() || crate::contract::applies(t) || t.judges_text()
    })
}

/// The policy's tables that `which` keeps, as `tree_sql` rows.
fn rows(
    policy: &crate::policy::Policy,
    known: &dyn Fn(&str, &str) -> Option<u32>,
    which: &dyn Fn(&crate::policy::TablePolicy) -> bool,
) -> Vec<String> {
    policy
        .tables
        .iter()
        .filter(|t| which(t))
        .map(|t| {
            let qualified = format!("\"{}\".\"{}\"", t.schema.replace('"', "\"\""), t.name.replace('"', "\"\""));
            // A table seen before is also found by its identity, so a rename does not hide it;
            // and while it exists, what holds its name now is counted with it (a table swapped
            // in under the policy's name, a view over the old one: rows changed in either).
            let oid = known(&t.schema, &t.name).map_or("NULL".to_string(), |o| format!("{o}"));
            format!(
                "({}::pg_catalog.text, {}::pg_catalog.text, pg_catalog.to_regclass({})::pg_catalog.oid, {oid}::pg_catalog.oid)",
                super::literal(&t.schema),
                super::literal(&t.name),
                super::literal(&qualified)
            )
        })
        .collect()
}

/// The counters of each listed table (`(schema, name, oid of the name now, oid remembered)`
/// rows) summed over the table and every table that inherits from it, at any depth
/// (inheritance children and partitions): rows deleted through a child or a partition count
/// against the policy table's limit. The table is the relation remembered for it while that
/// exists, else the one its name leads to; while both exist and differ (a table swapped in
/// under the policy's name, or a view over the old one), both are summed in: the policy
/// table's limit holds for the rows it had, whatever name reaches them, and for the one that
/// took its name. The reading's OID is the remembered one while it exists.
pub(super) fn tree_sql(values: &str) -> String {
    format!(
        "SELECT v.s, v.t, x.d, x.u, x.i, x.r FROM (VALUES {values}) v(s, t, n, k) \
         CROSS JOIN LATERAL (SELECT coalesce((SELECT c.oid FROM pg_catalog.pg_class c \
           WHERE c.oid OPERATOR(pg_catalog.=) v.k), v.n) r) w \
         CROSS JOIN LATERAL (WITH RECURSIVE tree(rel) AS (SELECT b.rel FROM (VALUES (w.r), (v.n)) b(rel) \
           WHERE b.rel IS NOT NULL UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i, tree \
           WHERE i.inhparent OPERATOR(pg_catalog.=) tree.rel) \
         SELECT coalesce(pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_deleted(tree.rel)), 0)::pg_catalog.int8, \
         coalesce(pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_updated(tree.rel)), 0)::pg_catalog.int8, \
         coalesce(pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_inserted(tree.rel)), 0)::pg_catalog.int8, w.r \
         FROM tree) x(d, u, i, r) WHERE w.r IS NOT NULL"
    )
}

pub use crate::policy::TableCount;

type Snapshot = BTreeMap<(String, String), (u64, u64, u64)>;

/// Reads a stats answer; `None` when `track_counts` is off (nothing can be measured).
/// A table of a snapshot: its name, and its OID.
pub type Seen = ((String, String), u32);

/// Reads a stats answer; `None` when `track_counts` is off (nothing can be measured). A
/// table whose OID `named` knows (a policy table seen before, perhaps renamed since) is
/// reported under the policy's name. Also returns every (name, OID) read.
pub fn snapshot(
    rows: &[Vec<Option<String>>],
    named: &dyn Fn(u32) -> Option<(String, String)>,
) -> Option<(Snapshot, Vec<Seen>)> {
    let mut out = Snapshot::new();
    let mut seen = Vec::new();
    for r in rows.iter().filter(|r| r.len() == 6) {
        let get = |i: usize| r.get(i).and_then(|v| v.as_deref()).unwrap_or("");
        if [super::identity::MARK, super::objects::MARK, super::reach::MARK, super::once::MARK].contains(&get(0)) {
            continue;
        }
        if get(0) == "track_counts" {
            if get(1) != "on" {
                return None;
            }
            continue;
        }
        let n = |i: usize| get(i).parse::<u64>().unwrap_or(0);
        let oid = get(5).parse::<u32>().unwrap_or(0);
        let key = named(oid).unwrap_or_else(|| (get(0).to_string(), get(1).to_string()));
        seen.push((key.clone(), oid));
        // A table read twice (alone, and with its children summed in): the larger reading.
        let (d, u, i) = out.get(&key).copied().unwrap_or((0, 0, 0));
        out.insert(key, (d.max(n(2)), u.max(n(3)), i.max(n(4))));
    }
    Some((out, seen))
}

/// What changed between two snapshots, tables with no change left out.
pub fn deltas(before: &Snapshot, after: &Snapshot) -> Vec<TableCount> {
    after
        .iter()
        .filter_map(|(k, &(d, u, i))| {
            let (d0, u0, i0) = before.get(k).copied().unwrap_or((0, 0, 0));
            let c = TableCount {
                schema: k.0.clone(),
                name: k.1.clone(),
                deleted: d.saturating_sub(d0),
                updated: u.saturating_sub(u0),
                inserted: i.saturating_sub(i0),
            };
            (c.deleted + c.updated + c.inserted > 0).then_some(c)
        })
        .collect()
}

/// Counter values per table, as one reading gave them.
pub type Reading = std::collections::BTreeMap<(String, String), (u64, u64, u64)>;

/// Reads a counter reading's rows (`None`: counting is off on the server) and learns the
/// OIDs of policy tables from it, so that a rename does not hide them later.
pub fn counter_reading(
    rows: &[Vec<Option<String>>],
    catalog: &crate::catalog::Catalog,
    database: &str,
    policy: &crate::policy::Policy,
) -> Option<Reading> {
    let named = |oid: u32| catalog.name_of(database, oid);
    snapshot(rows, &named).map(|(snap, seen)| {
        for ((s, t), oid) in seen {
            if policy.tables.iter().any(|p| p.schema == s && p.name == t) {
                catalog.learn_oid(database, &s, &t, oid);
            }
        }
        snap
    })
}

/// The counts of a portal's earlier slices (see `session::counting`) added to one slice's.
pub fn with_earlier(earlier: &[TableCount], mut now: Vec<TableCount>) -> Vec<TableCount> {
    for e in earlier {
        match now.iter_mut().find(|c| c.schema == e.schema && c.name == e.name) {
            Some(c) => {
                c.deleted += e.deleted;
                c.updated += e.updated;
                c.inserted += e.inserted;
            }
            None => now.push(e.clone()),
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn deltas_count_only_changes() {
        let none = |_| None;
        let before = snapshot(
            &[row(&["track_counts", "on", "0", "0", "0", "0"]), row(&["public", "users", "2", "0", "0", "10"])],
            &none,
        )
        .unwrap()
        .0;
        // A renamed table is reported under the name its OID was first seen with.
        let renamed = |oid| (oid == 10).then(|| ("public".to_string(), "users".to_string()));
        let after = snapshot(
            &[
                row(&["track_counts", "on", "0", "0", "0", "0"]),
                row(&["public", "users_renamed", "15", "0", "0", "10"]),
                row(&["public", "subscriptions", "13", "0", "0", "11"]),
            ],
            &renamed,
        )
        .unwrap()
        .0;
        let d = deltas(&before, &after);
        assert_eq!(d.len(), 2);
        assert_eq!(d.iter().find(|c| c.name == "users").unwrap().deleted, 13);
    }

    #[test]
    fn counting_off_is_not_zero() {
        assert!(snapshot(&[row(&["track_counts", "off", "0", "0", "0", "0"])], &|_| None).is_none());
    }

    #[test]
    fn earlier_slices_add_to_the_same_table() {
        let c =
            |n: &str, d| TableCount { schema: "public".into(), name: n.into(), deleted: d, updated: 0, inserted: 0 };
        let sum = with_earlier(&[c("a", 5), c("b", 2)], vec![c("a", 1)]);
        assert_eq!(sum, vec![c("a", 6), c("b", 2)]);
    }
}
