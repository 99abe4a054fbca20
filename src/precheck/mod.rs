//! Pre-check: asks the client's own backend session what a write does, by reading
//! `pg_stat_xact_user_tables` before and after it (the delta is the exact per-table blast
//! radius, cascades, triggers and functions included): a lone write inside a transaction or
//! savepoint that blastwall opens, then commits, releases or rolls back (`verify`); a write in
//! the middle of an extended-protocol batch around its Execute (`inbatch`). The readings run
//! on statements prepared once per session (`prepared`); the I/O is `backend`'s. A point
//! write the catalog proves small runs uncounted (`point`); a delete whose reach it proves is
//! counted on those tables alone (`reach`), and kept in one round trip where only row limits
//! could refuse it (`once`). The names a write was judged by are read again around its run
//! (`named`); the identity read around DDL includes the code autovacuum would run unseen
//! (`background`) and whether a child let go from a policy table's tree was empty (`detach`);
//! the protected sequences' steps beyond the rows inserted are summed over a window across
//! statements and sessions (`creep`).
//!
//! Owns: the conversation with the backend during a check — none of its messages reaches the
//! client — and holding the statement's own replies until the verdict, then keeping or rolling
//! back as the policy judged the measured counts (`policy::judge_counts`). Does not own:
//! deciding which statements need a check (`guard`), judging the numbers (`policy`), or the
//! words of a refusal (`guard::render`).

mod backend;
mod background;
mod bound;
mod built;
mod content;
pub mod creep;
mod detach;
pub mod elsewhere;
mod estimate;
pub mod hold;
mod identity;
mod implicit;
pub mod inbatch;
mod named;
pub mod objects;
mod once;
mod outcome;
mod own;
mod plain;
mod plan;
pub mod point;
pub mod prepared;
pub mod putback;
mod reach;
pub mod slices;
mod stats;

use backend::data_row;
pub use backend::{Answer, Backend, Held};
use estimate::{estimate_findings, estimates};
pub use identity::deferred_in as identity_deferred;
pub use outcome::{as_dry_run, held_bytes};
use outcome::{dry_run_outcome, failed_at_end};
pub use plan::{CheckPlan, KnownSteps};

/// Learns the OIDs of the policy's tables and protected sequences from a reading taken before
/// a statement (`identity::learn_oids`).
pub fn learn_oids(catalog: &crate::catalog::Catalog, database: &str, policy: &Policy, rows: &[Vec<Option<String>>]) {
    identity::learn_oids(catalog, database, policy, &identity::read(rows));
}

pub use stats::{counter_reading, deltas, snapshot, stats_sql, with_earlier, Reading, TableCount, STATS_SQL};

use crate::policy::{Decision, Mode, Policy, SessionView};
use crate::wire::messages::ProxyMessage;

use crate::wire::messages::{fe, ErrorFields, TxStatus};
use crate::wire::FrameError;
use bytes::BytesMut;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PrecheckError {
    #[error("server connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("server protocol violation: {0}")]
    Protocol(#[from] FrameError),
    #[error("the server closed the connection during a pre-check")]
    Closed,
    #[error("pre-check query failed: {0}")]
    Query(String),
}

/// The end of a check.
#[derive(Debug)]
pub enum Outcome {
    /// The statement ran (and stays, or was rolled back for a dry run): these bytes are the
    /// client's, ending with ReadyForQuery.
    /// `kept`: the decision on a statement kept after counting (its warnings, if any, go
    /// before these bytes, with the plan's own notice).
    Deliver { bytes: BytesMut, status: TxStatus, counts: Vec<TableCount>, kept: Option<Decision> },
    /// The statement was rolled back: refuse it with this decision.
    Refuse { decision: Decision, counts: Vec<TableCount> },
    /// It could not be measured; rolled back.
    Unverifiable(String),
}

const SAVEPOINT: &str = "blastwall_verify";

/// Runs the client's messages (`msgs`, ending in Query or Sync) inside a transaction (when the
/// session is idle) or a savepoint (inside the client's own block), measures what they change,
/// and keeps or undoes it by the policy's row limits.
pub async fn verify(b: &mut Backend<'_>, req: Request<'_>) -> Result<Outcome, PrecheckError> {
    verify_with(b, req, None).await
}

/// [`verify`]; `reach`: the tables the catalog proves the write can change (`reach`), the only
/// counters its readings then read. Kept in one round trip where only the limits it asserts on
/// the server could refuse it (`once`); rolled back there, counted again with two.
async fn verify_with(
    b: &mut Backend<'_>,
    req: Request<'_>,
    reach: Option<&reach::Reach>,
) -> Result<Outcome, PrecheckError> {
    if let Some(o) = counted(b, req, reach, true).await? {
        return Ok(o);
    }
    tracing::info!(database = req.database, "a write rolled back by its one-round-trip assertion: counted again");
    let again = counted(b, req, reach, false).await?;
    Ok(again.unwrap_or_else(|| Outcome::Unverifiable("the write could not be counted".into())))
}

/// One count of the write; `None`: tried in one round trip (`once`), and its second reading
/// failed, which rolled it back.
async fn counted(
    b: &mut Backend<'_>,
    req: Request<'_>,
    reach: Option<&reach::Reach>,
    try_once: bool,
) -> Result<Option<Outcome>, PrecheckError> {
    let Request { msgs, tx, plan, policy, who, opts, catalog, database, earlier, proofs, since, .. } = req;
    // A reading that fails with a proof of what the write reaches: the proof is asked again.
    let unproven = || {
        if let (Some(_), Some(p)) = (reach, plan.point.as_ref()) {
            proofs.drop_reach(database, p);
        }
    };
    let max_hold = opts.max_hold;
    let named = |oid: u32| catalog.name_of(database, oid);
    let known = |s: &str, t: &str| catalog.oid_of(database, s, t);
    let opened = tx == TxStatus::Idle;
    let (open, keep, undo, status) = if opened {
        ("BEGIN".to_string(), "COMMIT".to_string(), "ROLLBACK".to_string(), TxStatus::Idle)
    } else {
        (
            format!("SAVEPOINT {SAVEPOINT}"),
            format!("RELEASE SAVEPOINT {SAVEPOINT}"),
            format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"),
            TxStatus::InBlock,
        )
    };
    // A timeout of the proxy's own can only be scoped to a transaction it opened itself.
    let timeout = match opts.statement_timeout {
        Some(t) if opened => format!("SET LOCAL statement_timeout = {}; ", t.as_millis()),
        _ => String::new(),
    };
    // A simple Query is EXPLAINed as text (when it has no parameter references); an
    // extended batch with its own parameters, by messages the session built.
    let simple = msgs.first() == Some(&fe::QUERY);
    // The estimate is a message of its own behind the opening, so that its failure (a
    // statement the server's grammar rejects fails before anything of its message runs)
    // cannot take the savepoint with it: the savepoint stands, and rolling back to it leaves
    // the client's transaction as it was.
    let explain = plan
        .estimate_sql
        .as_deref()
        .filter(|s| simple && !s.as_bytes().windows(2).any(|w| w[0] == b'$' && w[1].is_ascii_digit()))
        .map(|s| own::messages(&format!("EXPLAIN (VERBOSE, FORMAT JSON) {s}")));
    let estimate = explain.as_deref().or(plan.estimate_msgs.as_deref().filter(|_| !simple));
    // Counters that start at zero (`once::Flushed`): no reading before the write. The clock
    // of the last reading stands for it (what a failed statement made is read since then).
    let zero_clock = b.from_zero.take().filter(|_| b.prepared.is_some() && reach.is_some());
    // The protected objects' identity is read with each counter reading (`identity`); in a
    // block of the client's, the deferrable triggers that fire at its COMMIT too.
    // A delete whose reach the catalog proves reads those tables alone, and asserts the proof
    // only after it ran (`reach`): a reading before of its own; only the row limits of the
    // tables it reaches can refuse it, asserted on the server and kept at once (`once`). Built
    // once per session for what they are built from (`built`).
    let (stats, opening, once) = match (reach, plan.point.as_ref()) {
        (Some(r), Some(p)) if opened => {
            if try_once {
                tracing::info!(database, table = %p.name, "a delete counted on the tables the catalog proves it reaches");
            }
            let flush = b.prepared.as_deref().is_some_and(|p| p.flushed.supported());
            let inputs = built::Inputs {
                policy,
                plan,
                who,
                known: &known,
                named: &named,
                reach: r,
                point: p,
                once: try_once && estimate.is_none(),
                zero: zero_clock.is_some(),
                flush,
            };
            let built = built::Memo::readings(b.prepared.as_deref_mut().map(|p| &mut p.built), &inputs);
            (built.after.clone(), built.before.clone(), built.once.clone())
        }
        _ => (stats::stats_sql(policy, plan, &known, !opened), None, None),
    };
    let from_zero = once.as_ref().is_some_and(|o| o.from_zero);
    // Kept in one round trip: the COMMIT goes with the statement.
    b.commit_sent |= once.is_some();
    // On statements prepared once per session when there are (`prepared`), checked after the
    // client's messages; else as text.
    // The reading before first: the statements to close go out in the opening (closed after
    // the opening's Parse, one of them could be that very statement).
    let before = opening.as_deref().and_then(|s| b.prepared.as_deref_mut().map(|p| p.reading(s)));
    let reading = b.prepared.as_deref_mut().map(|p| p.reading(&stats));
    let (first, again, checks) = match (&reading, &before) {
        // The second reading may be prepared after the check's opening: checked behind it.
        (Some(r), Some(o)) => (o.first.clone(), r.first.clone(), vec![o, r]),
        // No reading before: the one after is prepared behind the client's messages.
        (Some(r), None) if from_zero => (BytesMut::new(), r.first.clone(), vec![r]),
        (Some(r), None) => (r.first.clone(), r.again.clone(), vec![r]),
        (None, _) => (own::statements(opening.as_deref().unwrap_or(&stats)), own::statements(&stats), vec![]),
    };
    let paired = before.is_some() || from_zero;
    let sync = crate::wire::encode(fe::SYNC, &[]);
    // In a transaction of blastwall's own, deferred constraint triggers fire before the
    // second reading, not at the COMMIT after the verdict: unless the write is kept in one
    // round trip and no table it reaches has a deferrable trigger (asserted by the reading
    // after it, `reach`): then nothing is deferred.
    let constraints = opened && !(once.is_some() && reach.is_some_and(|r| !r.defers()));
    // Not built for a write kept as one implicit transaction, which sends no opening.
    let implicit_text = implicit::query_text(msgs)
        .filter(|_| reading.is_some() && once.is_some() && !constraints && timeout.is_empty() && estimate.is_none());
    // One batch: checked on the unnamed statement (`prepared::Prepared::check_unnamed`); else
    // by a statement parsed anew.
    let unnamed = implicit_text.and(b.prepared.as_deref_mut()).map(|p| p.check_unnamed(&checks));
    let check = match (&unnamed, checks.is_empty()) {
        (Some(_), _) | (None, true) => BytesMut::new(),
        (None, false) => checked(b, &checks),
    };
    let open_msgs = match implicit_text.is_some() {
        true => Vec::new(),
        false => [&own::statements(&format!("{open}; {timeout}"))[..], &first, &sync].concat(),
    };
    let mut after = match constraints {
        true => own::messages("SET CONSTRAINTS ALL IMMEDIATE").to_vec(),
        false => Vec::new(),
    };
    match paired {
        true => [&again, &check].iter().for_each(|m| after.extend_from_slice(m)),
        false => [&check, &again].iter().for_each(|m| after.extend_from_slice(m)),
    }
    after.extend_from_slice(&sync);
    // Without an estimate to wait for, the opening, the client's messages and the second
    // reading go out in one write: two round trips in all with the verdict's.
    let pipelined = estimate.is_none();
    // Kept in one round trip with nothing deferred and no timeout of blastwall's to set: one
    // implicit transaction, no BEGIN or COMMIT (`implicit`).
    let single = implicit_text.zip(unnamed).map(|(text, n)| {
        let check = b.prepared.as_deref().map(|p| p.unnamed_messages(n)).unwrap_or_default();
        implicit::batch(&first, text, &again, &check)
    });
    let one_batch = single.is_some();
    let mut out = BytesMut::from(&open_msgs[..]);
    match (estimate, single) {
        (_, Some(batch)) => out = batch,
        (None, None) => {
            out.extend_from_slice(msgs);
            out.extend_from_slice(&after);
            if once.is_some() {
                out.extend_from_slice(&own::messages("COMMIT"));
            }
        }
        (Some(e), None) => out.extend_from_slice(&bound::wrapped(e)),
    }
    b.send(&out).await?;
    let mut answers = match one_batch {
        true => Some(implicit::read(b, !first.is_empty(), max_hold).await?),
        false => None,
    };
    let mut a = match answers.as_mut() {
        Some(x) => std::mem::take(&mut x.open),
        None => b.answer().await?,
    };
    let mut estimate_rows = Vec::new();
    if estimate.is_some() {
        // Its rows are the EXPLAIN's, had within its bound (`bound`) and rolled back to its own
        // savepoint; when that failed, the check is undone and opened again.
        let (rows, restored) = bound::answers(b).await?;
        if a.error.is_none() && !restored {
            b.query(if opened { "ROLLBACK" } else { &undo }).await?;
            b.send(&open_msgs).await?;
            a = b.answer().await?;
        } else {
            estimate_rows = rows;
        }
    }
    if let Some(e) = a.error {
        // A prepared reading may be what failed (deallocated by a function): prepared again.
        b.forget_prepared();
        if answers.is_some() {
            // Nothing of the client's ran: counted again with two round trips.
            b.holding.clear();
            return Ok(None);
        }
        if pipelined {
            // What was sent behind it failed too (the transaction is aborted): read it away.
            let held = b.held(max_hold).await?;
            b.note_tags(&held.frames);
            read_after(b, constraints, once.is_some()).await?;
        }
        b.query(if opened { "ROLLBACK" } else { &undo }).await?;
        unproven();
        return Ok(Some(Outcome::Unverifiable(format!("opening the check failed: {}", e.message))));
    }
    match paired {
        true => b.confirm_prepared(before.as_ref()),
        false => b.confirm_prepared(reading.as_ref()),
    }
    let before = counter_reading(&a.rows, catalog, database, policy);
    let before_rows = std::mem::take(&mut a.rows);
    let identity_before = identity::read(&before_rows);
    b.positions = slices::run_start(since, &before_rows);
    // What to put back should the statement end without a reading after it (`putback`).
    let inserted = putback::sequence_inserts(earlier, policy);
    let back = putback::candidates(&before_rows, since, inserted, who, policy);
    b.put_back.clone_from(&back);
    identity::learn_oids(catalog, database, policy, &identity_before);
    if !pipelined {
        // Far over a limit by the planner's estimate: refused without running anything.
        let estimates: Vec<_> =
            estimate_rows.iter().filter(|r| r.len() == 1).filter_map(|r| r[0].as_deref()).flat_map(estimates).collect();
        let decision = estimate_findings(estimates.iter().cloned(), plan, who, policy);
        // A guess is not a count: refused only when an exact, bounded count agrees (or none
        // can be made); within its limit by the count, it runs and is counted as any other.
        if decision.mode() == Some(Mode::Enforce)
            && before.is_some()
            && !estimate::counted_within(b, plan, &estimates, policy).await?
        {
            b.query(&undo).await?;
            return Ok(Some(Outcome::Refuse { decision, counts: vec![] }));
        }
        if before.is_some() {
            b.send(&[msgs, &after[..]].concat()).await?;
        }
    }
    let Some(before) = before else {
        if pipelined && answers.is_none() {
            let held = b.held(max_hold).await?;
            b.note_tags(&held.frames);
            read_after(b, constraints, once.is_some()).await?;
        }
        b.query(&undo).await?;
        putback::run(b, &back, !opened).await?;
        return Ok(Some(Outcome::Unverifiable(
            "track_counts is off on the server, so changed rows cannot be counted".into(),
        )));
    };
    let (held, (deferred, a, commit)) = match answers {
        Some(x) => (x.held, (None, x.after, Some(Answer::default()))),
        None => (b.held(max_hold).await?, read_after(b, constraints, once.is_some()).await?),
    };
    b.note_tags(&held.frames);
    let clock = objects::clock(&before_rows).or(zero_clock);
    b.objects = objects::changes(&before_rows, &a.rows);
    if held.error {
        // The statement failed by itself: the client sees exactly the server's answer. In the
        // client's own block the failure aborts it, as it would have directly. What it did to
        // the session's prepared statements (not undone by a rollback) is read once undone.
        // Protected sequences it moved are put back (`putback`).
        if opened {
            b.objects = objects::after_failure(b, clock.as_deref(), None, &[]).await?;
            putback::run(b, &back, false).await?;
            return Ok(Some(Outcome::Deliver {
                bytes: held_bytes(&held, TxStatus::Idle),
                status: TxStatus::Idle,
                counts: vec![],
                kept: None,
            }));
        }
        let st = held.status.unwrap_or(TxStatus::Failed);
        match st {
            TxStatus::Failed => {
                // Each read as due first: one the role may not make is made elsewhere (in the
                // order they ran before, each behind its reading: a statement that fails still
                // stops the rest).
                let mut then: Vec<String> =
                    back.iter().flat_map(|m| [putback::due_marked_sql(m), putback::sql(m)]).collect();
                // Where it left them, after remembered writes (`session::undone`).
                if b.read_ends && !back.is_empty() {
                    then.push(putback::ends_sql(back.iter().map(|m| m.oid)));
                }
                let (objects, rows, code) =
                    objects::after_failure_reading(b, clock.as_deref(), Some(SAVEPOINT), &then).await?;
                match code.as_deref() {
                    Some(putback::DENIED) => elsewhere::after_denied(&back, &rows).await,
                    Some(putback::NO_CURRVAL) => elsewhere::after_forgotten(&back).await,
                    _ => {}
                }
                b.objects = objects;
                if b.read_ends {
                    b.unkept_moves = putback::ended(&back, &rows);
                }
            }
            _ => putback::run(b, &back, true).await?,
        }
        return Ok(Some(Outcome::Deliver { bytes: held_bytes(&held, st), status: st, counts: vec![], kept: None }));
    }
    if let Some(e) = deferred {
        // A deferred constraint (or its trigger) failed: as at the end of the implicit
        // transaction, the client gets that error and nothing stays.
        b.query(&undo).await?;
        putback::run(b, &back, false).await?;
        b.objects = objects::read_since(b, clock.as_deref()).await?;
        return Ok(Some(Outcome::Deliver {
            bytes: failed_at_end(&held, e),
            status: TxStatus::Idle,
            counts: vec![],
            kept: None,
        }));
    }
    if let Some(e) = a.error {
        // The second reading, or the check of its prepared statement, failed.
        b.forget_prepared();
        if let (Some(_), Some(p)) = (&once, b.prepared.as_deref_mut()) {
            p.flushed.failed(&e);
        }
        if once.is_some() {
            // Over a limit, or unsure: its COMMIT rolled it back.
            b.holding.clear();
            return Ok(None);
        }
        unproven();
        b.query(&undo).await?;
        putback::run(b, &back, !opened).await?;
        b.objects = objects::read_since(b, clock.as_deref()).await?;
        return Ok(Some(Outcome::Unverifiable(format!("reading the row counters failed: {}", e.message))));
    }
    if paired {
        b.confirm_prepared(reading.as_ref());
    }
    let Some((after, _)) = snapshot(&a.rows, &named) else {
        b.query(&undo).await?;
        putback::run(b, &back, !opened).await?;
        return Ok(Some(Outcome::Unverifiable("reading the row counters failed".into())));
    };
    // Undone should the client's block roll back (`session::undone`).
    let kept_moves = if opened { Vec::new() } else { putback::kept_moves(&back, &before_rows, &a.rows) };
    // A slice of a suspended portal is judged with what the portal changed before it.
    let measured = with_earlier(earlier, deltas(&before, &after));
    let (counts, mut decision) = crate::policy::judge_counts(plan.measured(), measured, who, policy);
    // Protected objects dropped, moved, rewritten or changed by what the text did not show.
    let (changed, findings) =
        slices::judge_since(since, (&before_rows, &a.rows), &counts, who, policy, plan, (&catalog.creep, database));
    decision.findings.extend(findings);
    // A cursor opened WITH HOLD runs its query at COMMIT, after this count (`objects`).
    decision.findings.extend(objects::findings(&b.objects, who, policy, &plan.statement, plan.verb));
    if !opened {
        decision.findings.extend(identity::deferred_findings(
            &identity_before,
            &identity::read(&a.rows),
            who,
            policy,
            &plan.statement,
            plan.verb,
        ));
    }
    if let Some(c) = commit {
        // Committed with the statement: the path after the COMMIT is not read (`objects`).
        b.objects.quiet = false;
        tracing::info!(database, from_zero, one_batch, "a counted write kept in one round trip");
        if let (None, Some(p)) = (&c.error, b.prepared.as_deref_mut()) {
            p.flushed.kept(objects::clock(&a.rows));
            if let Some(n) = unnamed {
                p.flushed.unnamed_kept(n);
            }
        }
        return Ok(Some(once::kept(b, &held, c, counts, decision, max_hold)));
    }
    // The anomaly and budget rules (`contract`), judged where the write would be kept.
    let ledger = (&catalog.creep, database, policy);
    let write = crate::contract::keep::Write { plan, counts: &counts, who, policy, catalog, database, opened };
    if plan.dry_run || decision.mode() == Some(Mode::DryRun) {
        decision.findings.extend(write.dry_run(b, &undo).await?.findings);
        putback::after_unkept(b, &back, &changed, (opened, true), ledger).await?;
        return Ok(Some(dry_run_outcome(plan, &held, counts, &decision, status)));
    }
    if held.overflowed || decision.mode() == Some(Mode::Enforce) {
        b.query(&undo).await?;
        putback::after_unkept(b, &back, &changed, (opened, false), ledger).await?;
        if !opened && b.read_ends && !back.is_empty() {
            let rows = b.query(&putback::ends_sql(back.iter().map(|m| m.oid))).await?.rows;
            b.unkept_moves = putback::ended(&back, &rows);
        }
        if held.overflowed && decision.mode() != Some(Mode::Enforce) {
            return Ok(Some(Outcome::Unverifiable(format!(
                "its results are larger than blastwall holds while it counts the rows ({max_hold} bytes per statement, and all sessions' together while their clients have not read them)"
            ))));
        }
        return Ok(Some(Outcome::Refuse { decision, counts }));
    }
    let a = match write.keep(b, &keep, &undo).await? {
        crate::contract::keep::Kept::Kept(a, warn) => {
            decision.findings.extend(warn.findings);
            a
        }
        crate::contract::keep::Kept::Refused(d) => {
            putback::after_unkept(b, &back, &changed, (opened, false), ledger).await?;
            return Ok(Some(Outcome::Refuse { decision: d, counts }));
        }
        crate::contract::keep::Kept::DryRun(d) => {
            putback::after_unkept(b, &back, &changed, (opened, true), ledger).await?;
            return Ok(Some(dry_run_outcome(plan, &held, counts, &d, status)));
        }
    };
    let mut bytes = BytesMut::new();
    if let Some(e) = a.error {
        // COMMIT can fail (deferred constraints): the client gets that error, as it would
        // have at the end of its implicit transaction.
        let bytes = failed_at_end(&held, e);
        return Ok(Some(Outcome::Deliver { bytes, status: TxStatus::Idle, counts, kept: Some(decision) }));
    }
    bytes.extend_from_slice(&held_bytes(&held, status));
    // Quiet only in a transaction of blastwall's own, with the path and roles as they were
    // once it is committed (a client's block keeps a `SET LOCAL` to its own end).
    if b.objects.quiet {
        b.objects.quiet = opened && objects::still_quiet(b, &before_rows).await?;
    }
    // DDL, or a body blastwall cannot see into, may have changed what names resolve to: the
    // catalog's answers (another session may have asked while it ran) are dropped again —
    // unless it ran quietly (`objects::Changes::quiet`: it wrote no catalog row).
    if matches!(plan.verb, "DDL" | "statement") && !b.objects.quiet {
        if crate::names::changes_identities(&crate::analyze::analyze(&plan.statement, Default::default())) {
            catalog.forget(database);
        } else {
            catalog.forget_new_tables(database);
        }
    }
    b.kept_beyond_rows = putback::beyond_rows(&kept_moves, putback::sequence_inserts(&counts, policy));
    b.kept_moves = kept_moves;
    Ok(Some(Outcome::Deliver { bytes, status, counts, kept: Some(decision) }))
}

/// The check of prepared readings `rs` (`prepared::check`), the session's last one again when
/// for the same readings.
fn checked(b: &mut Backend<'_>, rs: &[&prepared::Reading]) -> BytesMut {
    match b.prepared.as_deref_mut() {
        Some(p) => p.check_of(rs),
        None => prepared::check(rs),
    }
}

/// The answer to the second reading; `constraints`: after the answer to `SET CONSTRAINTS ALL
/// IMMEDIATE` (in a transaction of blastwall's own), whose error (a deferred trigger's) comes
/// first. `once`: and the answer to the COMMIT behind it.
async fn read_after(
    b: &mut Backend<'_>,
    constraints: bool,
    once: bool,
) -> Result<(Option<ErrorFields>, Answer, Option<Answer>), PrecheckError> {
    let constraints = if constraints { b.answer().await?.error } else { None };
    let reading = b.answer().await?;
    let commit = if once { Some(b.answer().await?) } else { None };
    Ok((constraints, reading, commit))
}

/// What the client of a write that stays is told when its replies could not be held: over the
/// limit per statement, or the replies all sessions may hold together taken by others.
pub(crate) fn kept_unheld(held: &Held, max_hold: usize, holding: &hold::Holding) -> ProxyMessage {
    match (held.budget_full, holding.total()) {
        (true, Some(total)) => crate::said::kept_but_hold_full(total),
        _ => crate::said::kept_but_too_large(max_hold),
    }
}

/// What to verify, and with what.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The client's messages, ending in Query or Sync.
    pub msgs: &'a [u8],
    /// The session's transaction status before them.
    pub tx: TxStatus,
    pub plan: &'a CheckPlan,
    pub policy: &'a Policy,
    pub who: SessionView<'a>,
    pub opts: VerifyOptions,
    pub catalog: &'a crate::catalog::Catalog,
    /// Point writes proven small (`point`).
    pub proofs: &'a point::Proofs,
    pub database: &'a str,
    /// What the portal it executes changed in its earlier slices (Execute with a row count).
    pub earlier: &'a [TableCount],
    /// Where the protected sequences stood when that portal's run began (`slices`).
    pub since: &'a slices::Positions,
}

/// How a verification is bounded.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// The most bytes of replies held while counting.
    pub max_hold: usize,
    /// `statement_timeout` for a statement run in a transaction blastwall opened.
    pub statement_timeout: Option<std::time::Duration>,
}

pub use crate::catalog::literal;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_survive_either_string_mode() {
        assert_eq!(literal("a'b\\c"), "E'a\\'b\\\\c'");
    }
}
