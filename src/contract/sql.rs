//! The statement one counted write runs, in its own transaction, after it ran and before it is
//! kept: through the state's two functions (`state`), take its budgets and record its run,
//! and return, per item, what was spent before it and the history it is judged against —
//! raising [`STOP`] itself when an Enforce or DryRun item must not be kept.
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

/// `ARRAY[…]::pg_catalog.<ty>[]` of one value per item.
fn array(items: &[Item], ty: &str, value: impl Fn(&Item) -> String) -> String {
    format!("ARRAY[{}]::pg_catalog.{ty}[]", items.iter().map(value).collect::<Vec<_>>().join(", "))
}

/// One statement. Budgets: `take_budget` locks each budget row it spends until the write's
/// transaction ends (in OID order, so two writes locking the same budgets cannot deadlock);
/// a second instance spending the same budget waits there, and, in READ COMMITTED, the
/// function's next statement takes a new snapshot that sees the spend of the first once it
/// committed. So two writes racing for the last rows cannot both see them free. (In
/// REPEATABLE READ or SERIALIZABLE the waiting one fails with a serialization error instead —
/// and is refused: it fails closed.)
pub fn write_sql(schema: &str, fingerprint: &str, items: &[Item], override_rows: Option<u64>) -> String {
    let s = ident(schema);
    let (eq, gt) = (op("="), op(">"));
    let values: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let lim = i.budget.map_or("NULL".to_string(), |b| b.limit.to_string());
            let (fp, factor, min_runs, floor) = match i.anomaly {
                Some(a) => (literal(fingerprint), a.factor.to_string(), a.min_runs.to_string(), a.floor.to_string()),
                None => ("NULL".into(), "NULL".into(), "NULL".into(), "NULL".into()),
            };
            let stops = matches!(i.mode, Mode::Enforce | Mode::DryRun);
            let over = override_rows.map_or("NULL".to_string(), |n| n.to_string());
            format!(
                "({n}::pg_catalog.int4, {}, {}::pg_catalog.int8, {lim}::pg_catalog.int8, {fp}::pg_catalog.text, {stops}, \
                 {factor}::pg_catalog.int8, {min_runs}::pg_catalog.int8, {floor}::pg_catalog.int8, {over}::pg_catalog.int8)",
                i.relid, i.rows
            )
        })
        .collect();
    let relids = array(items, "oid", |i| i.relid.clone());
    let kinds = array(items, "text", |i| literal(i.kind.key()));
    let ns = array(items, "int8", |i| i.rows.to_string());
    let (plus, ge, le, times) = (op("+"), op(">="), op("<="), op("*"));
    // Only the calls some item needs: less to run.
    let mut ctes = vec![format!(
        "item (i, relid, n, lim, fp, stops, factor, min_runs, floor, over) AS (VALUES {})",
        values.join(", ")
    )];
    let mut joins = String::new();
    let (mut spent, mut history) = (
        "0::pg_catalog.int8".to_string(),
        "NULL::pg_catalog.int8 AS kept, NULL::pg_catalog.int8 AS median".to_string(),
    );
    if items.iter().any(|i| i.budget.is_some()) {
        let wins = array(items, "float8", |i| i.budget.map_or("NULL".into(), |b| b.window_secs.to_string()));
        ctes.push(format!("spend AS (SELECT * FROM {s}.take_budget({relids}, {kinds}, {ns}, {wins}))"));
        joins.push_str(&format!(" LEFT JOIN spend b ON b.k{eq}(i.i{plus}1)"));
        spent = "coalesce(b.spent, 0)::pg_catalog.int8".into();
    }
    if items.iter().any(|i| i.anomaly.is_some()) {
        let keeps = array(items, "int8", |i| i.anomaly.map_or("NULL".into(), |a| a.runs.to_string()));
        ctes.push(format!(
            "run AS (SELECT * FROM {s}.record_run({relids}, {kinds}, {ns}, {}::pg_catalog.text, {keeps}))",
            literal(fingerprint)
        ));
        joins.push_str(&format!(" LEFT JOIN run h ON h.k{eq}(i.i{plus}1)"));
        history = "h.kept, h.median".into();
    }
    format!(
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
         FROM (SELECT i.*, {history}, {spent} AS spent FROM item i{joins}) x \
         ORDER BY x.i",
        ctes = ctes.join(", "),
        tag = literal(TAG),
        stop = literal(STOP),
    )
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
