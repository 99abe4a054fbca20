//! The statements one counted write runs, in its own transaction, after it ran and before it is
//! kept: lock the budgets it spends, then — in one statement — record its run and its spend,
//! prune what no window or history needs any more, and return, per item, what was spent before
//! it and the history it is judged against.
//!
//! Owns: that SQL text. Follows `state`'s spelling rules (qualified names, pg_catalog types,
//! functions and operators). Does not own: what the answer decides (`verdict`).

use super::state::{ident, op};
use super::{Item, Kind};
use crate::precheck::literal;

/// The marker of the answer's rows.
pub const TAG: &str = "blastwall_contract";

/// Two statements (one when no budget is spent): the lock, then the record-and-read.
///
/// Budgets: the first statement upserts one row per (table, kind) into `budget_lock`, which
/// locks it until the write's transaction ends; a second instance spending the same budget
/// waits there, and, in READ COMMITTED, its next statement takes a new snapshot that sees the
/// spend of the first once it committed. So two writes racing for the last rows cannot both
/// see them free. (In REPEATABLE READ or SERIALIZABLE the waiting one fails with a
/// serialization error instead — and is refused: it fails closed.)
pub fn write_sql(schema: &str, fingerprint: &str, items: &[Item]) -> String {
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
            "INSERT INTO {s}.budget_lock AS l (relid, kind) VALUES {} \
             ON CONFLICT (relid, kind) DO UPDATE SET touched = pg_catalog.clock_timestamp(); ",
            locks.join(", ")
        ));
    }
    let values: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let (lim, win) = match i.budget {
                Some(b) => (b.limit.to_string(), b.window_secs.to_string()),
                None => ("NULL".into(), "NULL".into()),
            };
            let (fp, runs) = match i.anomaly {
                Some(a) => (literal(fingerprint), a.runs.to_string()),
                None => ("NULL".into(), "NULL".into()),
            };
            format!(
                "({n}::pg_catalog.int4, {}, {}::pg_catalog.text, {}::pg_catalog.int8, {lim}::pg_catalog.int8, \
                 {win}::pg_catalog.float8, {fp}::pg_catalog.text, {runs}::pg_catalog.int8)",
                i.relid,
                literal(i.kind.key()),
                i.rows
            )
        })
        .collect();
    let same_budget = format!("s.relid{eq}i.relid AND s.kind{eq}i.kind");
    let same_run = format!("r.relid{eq}i.relid AND r.fingerprint{eq}i.fp AND r.kind{eq}i.kind");
    // OPERATOR(…) has one precedence for all: the subtraction must be parenthesized.
    let window_start = format!("(pg_catalog.clock_timestamp(){minus}pg_catalog.make_interval(secs => i.win))");
    out.push_str(&format!(
        "WITH item (i, relid, kind, n, lim, win, fp, runs) AS (VALUES {values}), \
         spend AS (INSERT INTO {s}.budget_spent (relid, kind, rows) \
           SELECT relid, kind, n FROM item WHERE lim IS NOT NULL AND relid IS NOT NULL AND n{gt}0), \
         expired AS (DELETE FROM {s}.budget_spent s USING item i \
           WHERE i.lim IS NOT NULL AND {same_budget} AND s.at{lt}{window_start}), \
         run AS (INSERT INTO {s}.runs (relid, fingerprint, kind, rows) \
           SELECT relid, fp, kind, n FROM item WHERE fp IS NOT NULL AND relid IS NOT NULL), \
         old AS (DELETE FROM {s}.runs r USING item i WHERE i.fp IS NOT NULL AND {same_run} \
           AND r.at{lt}(SELECT r2.at FROM {s}.runs r2 WHERE r2.relid{eq}i.relid AND r2.fingerprint{eq}i.fp \
             AND r2.kind{eq}i.kind ORDER BY r2.at DESC OFFSET i.runs LIMIT 1)) \
         SELECT {tag}, i.i::pg_catalog.text, \
           (SELECT pg_catalog.sum(s.rows) FROM {s}.budget_spent s \
             WHERE i.lim IS NOT NULL AND {same_budget} AND s.at{gt}{window_start})::pg_catalog.text, \
           h.runs::pg_catalog.text, h.median::pg_catalog.text, (i.relid IS NOT NULL)::pg_catalog.text \
         FROM item i LEFT JOIN LATERAL (\
           SELECT pg_catalog.count(*) AS runs, \
             pg_catalog.percentile_disc(0.5::pg_catalog.float8) WITHIN GROUP (ORDER BY r.rows) AS median \
           FROM (SELECT r.rows FROM {s}.runs r WHERE i.fp IS NOT NULL AND {same_run} \
             ORDER BY r.at DESC LIMIT i.runs) r) h ON true \
         ORDER BY i.i",
        values = values.join(", "),
        tag = literal(TAG),
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
