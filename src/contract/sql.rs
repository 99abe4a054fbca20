//! The statements one counted write runs, in its own transaction, after it ran and before it is
//! kept: lock the budgets it spends, then — in one statement — record its run and its spend,
//! prune what no window or history needs any more, and return, per item, what was spent before
//! it and the history it is judged against.
//!
//! Owns: that SQL text. Follows `state`'s spelling rules (qualified names, pg_catalog types,
//! functions and operators). Does not own: what the answer decides (`verdict`).

use super::state::{ident, op};
use super::{Item, Kind};
use crate::policy::Mode;
use crate::precheck::literal;

/// The marker of the answer's rows.
pub const TAG: &str = "blastwall_contract";

/// The marker of the error the SQL raises itself when a write must not be kept (an Enforce or
/// DryRun finding), so that a keep (COMMIT / RELEASE) sent behind it in the same Query never
/// runs. The error's text carries the numbers of the item that stopped it:
/// `… "blastwall-contract-stop <item> <spent> <runs> <median>"`.
pub const STOP: &str = "blastwall-contract-stop";

/// Two statements (one when no budget is spent): the lock, then the record-and-read.
///
/// Budgets: the first statement upserts one row per (table, kind) into `budget_lock`, which
/// locks it until the write's transaction ends; a second instance spending the same budget
/// waits there, and, in READ COMMITTED, its next statement takes a new snapshot that sees the
/// spend of the first once it committed. So two writes racing for the last rows cannot both
/// see them free. (In REPEATABLE READ or SERIALIZABLE the waiting one fails with a
/// serialization error instead — and is refused: it fails closed.) Locks are taken in OID
/// order, so that two writes locking the same budgets cannot deadlock each other.
pub fn write_sql(schema: &str, fingerprint: &str, items: &[Item], override_rows: Option<u64>) -> String {
    let s = ident(schema);
    let (eq, lt, gt, minus) = (op("="), op("<"), op(">"), op("-"));
    let mut out = String::new();
    let locks: Vec<String> = items
        .iter()
        .filter(|i| i.budget.is_some() && i.rows > 0)
        .map(|i| format!("({}, {})", i.relid, literal(i.kind.key())))
        .collect();
    if !locks.is_empty() {
        out.push_str(&format!(
            "INSERT INTO {s}.budget_lock AS l (relid, kind) \
             SELECT v.relid, v.kind FROM (VALUES {}) v (relid, kind) WHERE v.relid IS NOT NULL ORDER BY v.relid \
             ON CONFLICT (relid, kind) DO UPDATE SET touched = pg_catalog.clock_timestamp(); ",
            locks.join(", ")
        ));
    }
    let values: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let (lim, win, bw) = match i.budget {
                Some(b) => (b.limit.to_string(), b.window_secs.to_string(), (b.window_secs / 120).max(1).to_string()),
                None => ("NULL".into(), "NULL".into(), "NULL".into()),
            };
            let (fp, runs, factor, min_runs, floor) = match i.anomaly {
                Some(a) => (
                    literal(fingerprint),
                    a.runs.to_string(),
                    a.factor.to_string(),
                    a.min_runs.to_string(),
                    a.floor.to_string(),
                ),
                None => ("NULL".into(), "NULL".into(), "NULL".into(), "NULL".into(), "NULL".into()),
            };
            let stops = matches!(i.mode, Mode::Enforce | Mode::DryRun);
            let over = override_rows.map_or("NULL".to_string(), |n| n.to_string());
            format!(
                "({n}::pg_catalog.int4, {}, {}::pg_catalog.text, {}::pg_catalog.int8, {lim}::pg_catalog.int8, \
                 {win}::pg_catalog.float8, {bw}::pg_catalog.float8, {fp}::pg_catalog.text, {runs}::pg_catalog.int8, {stops}, \
                 {factor}::pg_catalog.int8, {min_runs}::pg_catalog.int8, {floor}::pg_catalog.int8, {over}::pg_catalog.int8)",
                i.relid,
                literal(i.kind.key()),
                i.rows
            )
        })
        .collect();
    let same_budget = format!("s.relid{eq}i.relid AND s.kind{eq}i.kind");
    let same_run = format!("r.relid{eq}i.relid AND r.fingerprint{eq}i.fp AND r.kind{eq}i.kind");
    // OPERATOR(…) has one precedence for all: the subtraction must be parenthesized.
    // Spends are kept in buckets of 1/120 of the window (at least a second), so a check sums
    // at most ~121 rows; a bucket counts until all of it has left the window (never less).
    let window_start =
        format!("(pg_catalog.statement_timestamp(){minus}pg_catalog.make_interval(secs => i.win{}i.bw))", op("+"));
    let bucket = format!(
        "pg_catalog.to_timestamp(pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.statement_timestamp()){div}bw){times}bw)",
        div = op("/"),
        times = op("*")
    );
    let (plus, ge, le, times) = (op("+"), op(">="), op("<="), op("*"));
    let budgets = items.iter().any(|i| i.budget.is_some());
    let anomalies = items.iter().any(|i| i.anomaly.is_some());
    // Only the parts some item needs: less to plan.
    let mut ctes = vec![format!(
        "item (i, relid, kind, n, lim, win, bw, fp, runs, stops, factor, min_runs, floor, over) AS (VALUES {})",
        values.join(", ")
    )];
    let (mut spent, mut history, mut lateral) = (
        "0::pg_catalog.int8 AS spent".to_string(),
        "NULL::pg_catalog.int8 AS kept, NULL::pg_catalog.int8 AS median".to_string(),
        String::new(),
    );
    if budgets {
        ctes.push(format!(
            "spend AS (INSERT INTO {s}.budget_spent AS b (relid, kind, bucket, rows) \
             SELECT relid, kind, {bucket}, n FROM item WHERE lim IS NOT NULL AND relid IS NOT NULL AND n{gt}0 \
             ON CONFLICT (relid, kind, bucket) DO UPDATE SET rows = b.rows{plus}excluded.rows)"
        ));
        ctes.push(format!(
            "expired AS (DELETE FROM {s}.budget_spent s USING item i \
             WHERE i.lim IS NOT NULL AND {same_budget} AND s.bucket{lt}{window_start})"
        ));
        spent = format!(
            "coalesce((SELECT pg_catalog.sum(s.rows) FROM {s}.budget_spent s \
             WHERE i.lim IS NOT NULL AND {same_budget} AND s.bucket{gt}{window_start}), 0)::pg_catalog.int8 AS spent"
        );
    }
    if anomalies {
        ctes.push(format!(
            "run AS (INSERT INTO {s}.runs (relid, fingerprint, kind, rows) \
             SELECT relid, fp, kind, n FROM item WHERE fp IS NOT NULL AND relid IS NOT NULL)"
        ));
        ctes.push(format!(
            "old AS (DELETE FROM {s}.runs r USING item i WHERE i.fp IS NOT NULL AND {same_run} \
             AND r.at{lt}(SELECT r2.at FROM {s}.runs r2 WHERE r2.relid{eq}i.relid AND r2.fingerprint{eq}i.fp \
               AND r2.kind{eq}i.kind ORDER BY r2.at DESC OFFSET i.runs LIMIT 1))"
        ));
        history = "h.kept, h.median".into();
        lateral = format!(
            "LEFT JOIN LATERAL (SELECT pg_catalog.count(*) AS kept, \
               pg_catalog.percentile_disc(0.5::pg_catalog.float8) WITHIN GROUP (ORDER BY r.rows) AS median \
             FROM (SELECT r.rows FROM {s}.runs r WHERE i.fp IS NOT NULL AND {same_run} \
               ORDER BY r.at DESC LIMIT i.runs) r) h ON true"
        );
    }
    out.push_str(&format!(
        "WITH {ctes} \
         SELECT {tag}, x.i::pg_catalog.text, x.spent::pg_catalog.text, x.kept::pg_catalog.text, \
           x.median::pg_catalog.text, \
           CASE WHEN x.stops AND (\
             (x.relid IS NULL AND x.n{gt}0) \
             OR (x.lim IS NOT NULL AND (x.spent{plus}x.n){gt}x.lim) \
             OR (x.fp IS NOT NULL AND x.kept{ge}x.min_runs AND x.n{gt}x.floor \
               AND x.n{gt}(x.factor{times}coalesce(x.median, 0)) AND NOT coalesce(x.n{le}x.over, false))) \
           THEN pg_catalog.int4in(pg_catalog.concat({stop}, ' ', x.i, ' ', x.spent, ' ', coalesce(x.kept, 0), ' ', \
             coalesce(x.median, 0))::pg_catalog.cstring)::pg_catalog.text END \
         FROM (SELECT i.*, {history}, {spent} FROM item i {lateral}) x \
         ORDER BY x.i",
        ctes = ctes.join(", "),
        tag = literal(TAG),
        stop = literal(STOP),
    ));
    out
}

/// The SQL expression of a table's OID: the OID the pre-check read, else the name resolved
/// now (as the statement named it when `qualified` is false: the session's search_path is
/// what the statement itself used).
pub fn relid(schema: Option<&str>, name: &str, oid: Option<u32>) -> String {
    match (oid, schema) {
        (Some(o), _) if o != 0 => format!("{o}::pg_catalog.oid"),
        (_, Some(s)) => {
            format!("pg_catalog.to_regclass({})::pg_catalog.oid", literal(&format!("{}.{}", ident(s), ident(name))))
        }
        (_, None) => format!("pg_catalog.to_regclass({})::pg_catalog.oid", literal(&ident(name))),
    }
}

impl Kind {
    pub fn key(self) -> &'static str {
        match self {
            Kind::Delete => "delete",
            Kind::Update => "update",
        }
    }
}
