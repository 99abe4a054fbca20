//! A counted write in one round trip: when blastwall opens the transaction itself and only the
//! row limits of policy tables can judge the write, the opening, the first counter reading,
//! the client's statement, the second reading, an assertion of the limits and COMMIT go out
//! in one flight. The assertion compares, on the server, each limited table's counters with
//! the first reading (kept in a transaction-local setting) and fails when a limit that would
//! refuse the write (enforce or dry-run mode) is exceeded: the transaction is then aborted and
//! the COMMIT behind it only rolls back. blastwall judges the same counts itself afterwards,
//! with the same limits, and reports what the server did.
//!
//! Owns: when a write may go in one flight, the assertion's SQL, and reading the answers.
//! Does not own: the counting itself (`stats`), the limits (`policy`), the verdict's words.

use super::{dry_run_outcome, held_bytes, judge_counts, own, Backend, Outcome, PrecheckError, Request};
use crate::policy::{limits_for, mode_for, Mode};
use crate::wire::messages::{fe, ProxyMessage, TxStatus};
use bytes::BytesMut;

/// The setting that holds the first reading for the assertion.
const BEFORE: &str = "blastwall.before";

/// The limited tables the assertion checks: (schema, name, OID known, most deleted, most
/// updated), the limits only where exceeding them would undo the write.
type Limited = Vec<(String, String, Option<u32>, Option<u64>, Option<u64>)>;

/// Whether the write may go in one flight, and the limits to assert.
fn limited(req: &Request<'_>) -> Option<Limited> {
    let Request { msgs, tx, plan, policy, who, catalog, database, .. } = *req;
    let simple = msgs.first() == Some(&fe::QUERY);
    let only_tables = policy.max_delete_rows.is_none()
        && policy.max_update_rows.is_none()
        && policy.anomaly.enabled != Some(true)
        && !crate::contract::enabled(policy);
    if tx != TxStatus::Idle
        || !simple
        || plan.point.is_none()
        || plan.dry_run
        || plan.override_rows.is_some()
        || plan.estimate_sql.is_some()
        || !only_tables
    {
        return None;
    }
    Some(
        policy
            .tables
            .iter()
            .filter(|t| t.max_delete_rows.is_some() || t.max_update_rows.is_some())
            .map(|t| {
                let (d, u, table) = limits_for(policy, &t.schema, &t.name);
                let undoes = undoes(mode_for(who, policy, table));
                let oid = catalog.oid_of(database, &t.schema, &t.name);
                (t.schema.clone(), t.name.clone(), oid, d.filter(|_| undoes), u.filter(|_| undoes))
            })
            .collect(),
    )
}

/// A limit exceeded in this mode leaves nothing of the write.
fn undoes(m: Mode) -> bool {
    !matches!(m, Mode::Off | Mode::Warn)
}

/// One counter (`deleted` or `updated`) of a table summed with its inheritance children and
/// partitions, as `stats` reads it.
fn counter(schema: &str, name: &str, oid: Option<u32>, which: &str) -> String {
    let qualified = format!("\"{}\".\"{}\"", schema.replace('"', "\"\""), name.replace('"', "\"\""));
    let oid = oid.map_or("NULL::pg_catalog.oid".to_string(), |o| format!("{o}::pg_catalog.oid"));
    format!(
        "(WITH RECURSIVE tree(rel) AS (SELECT coalesce(pg_catalog.to_regclass({})::pg_catalog.oid, {oid}) UNION \
           SELECT i.inhrelid FROM pg_catalog.pg_inherits i, tree WHERE i.inhparent OPERATOR(pg_catalog.=) tree.rel) \
         SELECT coalesce(pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_{which}(tree.rel)), 0)::pg_catalog.int8 FROM tree)",
        super::literal(&qualified)
    )
}

/// The first reading kept in `BEFORE` (one number per limit, in order).
fn keep_sql(limits: &Limited) -> String {
    let mut parts = vec!["'0'::pg_catalog.text".to_string()];
    for (s, t, oid, d, u) in limits {
        for (which, lim) in [("deleted", d), ("updated", u)] {
            if lim.is_some() {
                parts.push(format!("{}::pg_catalog.text", counter(s, t, *oid, which)));
            }
        }
    }
    format!("SELECT pg_catalog.set_config('{BEFORE}', pg_catalog.concat_ws(',', {}), true)", parts.join(", "))
}

/// Fails unless every limit holds between the first reading and now.
fn assert_sql(limits: &Limited) -> String {
    // Counting off: every counter reads zero, nothing could be judged.
    let mut over = vec!["pg_catalog.current_setting('track_counts') OPERATOR(pg_catalog.<>) 'on'".to_string()];
    let mut i = 1;
    for (s, t, oid, d, u) in limits {
        for (which, lim) in [("deleted", d), ("updated", u)] {
            if let Some(m) = lim {
                i += 1;
                over.push(format!(
                    "{} OPERATOR(pg_catalog.-) pg_catalog.split_part(pg_catalog.current_setting('{BEFORE}'), ',', {i})::pg_catalog.int8 \
                     OPERATOR(pg_catalog.>) {m}::pg_catalog.int8",
                    counter(s, t, *oid, which)
                ));
            }
        }
    }
    format!("SELECT (CASE WHEN {} THEN 'blastwall: over a row limit' ELSE '0' END)::pg_catalog.int4", over.join(" OR "))
}

/// Runs the write in one flight when it may; `None`: it goes the usual way (`super::verify`).
pub async fn verify(b: &mut Backend<'_>, req: &Request<'_>) -> Result<Option<Outcome>, PrecheckError> {
    let Some(limits) = limited(req) else { return Ok(None) };
    let Request { msgs, plan, policy, who, catalog, database, opts, .. } = *req;
    let known = |s: &str, t: &str| catalog.oid_of(database, s, t);
    let stats = super::stats_sql(policy, plan, &known);
    let timeout = opts.statement_timeout.map(|t| format!("SET LOCAL statement_timeout = {}", t.as_millis()));
    let keep = keep_sql(&limits);
    let mut opening = vec!["BEGIN"];
    opening.extend(timeout.as_deref());
    opening.extend([stats.as_str(), keep.as_str()]);
    let mut out = own::each(&opening);
    out.extend_from_slice(msgs);
    out.extend_from_slice(&own::each(&[stats.as_str(), &assert_sql(&limits)]));
    out.extend_from_slice(&own::each(&["COMMIT"]));
    b.send(&out).await?;
    let opened = b.answer().await?;
    let held = b.held(opts.max_hold).await?;
    let reading = b.answer().await?;
    let commit = b.answer().await?;
    let kept = commit.error.is_none() && commit.status == Some(TxStatus::Idle) && reading.error.is_none();
    if let Some(e) = opened.error {
        return Ok(Some(Outcome::Unverifiable(format!("opening the check failed: {}", e.message))));
    }
    if held.error {
        // The statement failed by itself: the client sees exactly the server's answer.
        let bytes = held_bytes(&held, TxStatus::Idle);
        return Ok(Some(Outcome::Deliver { bytes, status: TxStatus::Idle, counts: vec![], kept: None }));
    }
    let before = super::counter_reading(&opened.rows, catalog, database, policy);
    let named = |oid: u32| catalog.name_of(database, oid);
    let after = super::snapshot(&reading.rows, &named).map(|(a, _)| a);
    let (Some(before), Some(after)) = (before, after) else {
        return Ok(Some(if kept {
            committed_unjudged(opts.max_hold)
        } else {
            Outcome::Unverifiable("track_counts is off on the server, so changed rows cannot be counted".into())
        }));
    };
    let (counts, decision) = judge_counts(plan, super::deltas(&before, &after), who, policy);
    let undone = decision.mode().is_some_and(undoes);
    match (kept, undone) {
        (false, true) if decision.mode() == Some(Mode::DryRun) => {
            Ok(Some(dry_run_outcome(plan, &held, counts, &decision, TxStatus::Idle)))
        }
        (false, true) => Ok(Some(Outcome::Refuse { decision, counts })),
        (true, false) if !held.overflowed => Ok(Some(Outcome::Deliver {
            bytes: held_bytes(&held, TxStatus::Idle),
            status: TxStatus::Idle,
            counts,
            kept: Some(decision),
        })),
        (true, false) => Ok(Some(committed_unjudged(opts.max_hold))),
        (false, false) => match (reading.error, commit.error) {
            (None, Some(e)) => {
                // COMMIT failed by itself (a deferred constraint): the client gets that error,
                // as it would have at the end of its implicit transaction.
                let mut bytes = held_bytes(&held, TxStatus::Idle);
                bytes.truncate(bytes.len().saturating_sub(6));
                bytes.extend_from_slice(&ProxyMessage::error(super::sqlstate_of(&e.code), e.message).encode());
                bytes.extend_from_slice(&crate::wire::messages::ready_for_query(TxStatus::Idle));
                Ok(Some(Outcome::Deliver { bytes, status: TxStatus::Idle, counts, kept: Some(decision) }))
            }
            (e, _) => {
                let why = e.map_or_else(|| "the transaction was rolled back".into(), |e| e.message);
                Ok(Some(Outcome::Unverifiable(format!("counting the rows failed: {why}"))))
            }
        },
        (true, true) => {
            // Cannot happen: the assertion holds exactly the limits judged here.
            tracing::error!(verb = plan.verb, "a write over its limit was committed by the one-flight check");
            Ok(Some(Outcome::Refuse { decision, counts }))
        }
    }
}

/// The write was kept, and its replies cannot be shown.
fn committed_unjudged(max_hold: usize) -> Outcome {
    let mut bytes = BytesMut::new();
    let msg = ProxyMessage::error(
        "XX000",
        format!("blastwall: the write was kept, but its replies were larger than the {max_hold} bytes blastwall holds"),
    );
    bytes.extend_from_slice(&msg.encode());
    bytes.extend_from_slice(&crate::wire::messages::ready_for_query(TxStatus::Idle));
    Outcome::Deliver { bytes, status: TxStatus::Idle, counts: vec![], kept: None }
}
