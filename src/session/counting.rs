//! Counting a write at its Execute where it stands in a client's batch: the server is first
//! brought to the Execute, blastwall's own counter readings go around it on a statement and
//! portal of its own, only the Execute's replies are held, and the policy's verdict releases
//! them or fails the batch (see `extended` for when this path is taken).
//!
//! A portal run in slices (Execute with a row count, answered by PortalSuspended) is one
//! statement: each slice is judged by what the portal changed since its Bind (`PortalRuns`),
//! so that limits apply to the whole run, not to each slice; a SQL FETCH or MOVE of such a
//! portal is refused (`fetching_counted_portal`).
//!
//! Owns: the in-batch count's conversation and outcome, and the portals' runs so far. Does
//! not own: the readings' messages
//! (`precheck::inbatch`), the decision (`guard`, `policy`), or one-write batches and Queries
//! (`checks`).

use super::checks::{check_facts, uncounted, warned_facts, MAX_HOLD};
use super::statements::Op;
use super::{Session, SessionError};
use crate::guard::Verdict;
use crate::precheck::{self, Backend, CheckPlan};
use crate::wire::messages::{self, ProxyMessage};
use crate::wire::Frame;
use std::sync::Arc;
use std::time::Instant;

/// blastwall's statement and portal for counter readings inside a client's batch.
const READING: &str = "__blastwall_reading";

/// What each counted portal that the server suspended (PortalSuspended) has changed so far,
/// by portal name; a portal's entry goes when it completes, is bound again or closed, and
/// every entry when the transaction ends. A stale entry can only make a later count larger.
#[derive(Debug, Default)]
pub(super) struct PortalRuns(std::collections::HashMap<Vec<u8>, (Vec<precheck::TableCount>, Positions)>);

/// Where the protected sequences stood when a run began (`precheck::slices`).
type Positions = precheck::slices::Positions;
static NO_POSITIONS: Positions = Positions::new();

impl PortalRuns {
    /// What the portal changed in its earlier slices.
    pub(super) fn so_far(&self, portal: &[u8]) -> &[precheck::TableCount] {
        self.0.get(portal).map_or(&[], |r| r.0.as_slice())
    }

    /// Where the protected sequences stood when the portal's run began (empty: no run yet).
    pub(super) fn since(&self, portal: &[u8]) -> &Positions {
        self.0.get(portal).map_or(&NO_POSITIONS, |r| &r.1)
    }

    /// A confirmed Bind or Close of a portal starts or ends it.
    pub(super) fn confirmed(&mut self, op: &Op) {
        if let Op::Bind { portal: name, .. } | Op::Close { portal: true, name } = op {
            // Nearly always empty: no hashing then.
            if !self.0.is_empty() {
                self.0.remove(name);
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// A slice ran and was kept: `counts` (its run so far) stay while the server suspended it.
    fn ran(&mut self, portal: Vec<u8>, counts: &[precheck::TableCount], start: Positions, suspended: bool) {
        match suspended {
            true => self.0.insert(portal, (counts.to_vec(), start)),
            false => self.0.remove(&portal),
        };
    }
}

impl Session {
    /// A Query of several statements of which more than one writes rows, to be counted: it runs
    /// statement by statement as the extended batch the server treats alike (`simple`), each
    /// write counted at its Execute, so that row limits apply per statement (one check of the
    /// whole Query would add the statements' counts together). `None`: one check of the whole
    /// Query — a single write (no round trip per statement), a dry run or an override (they
    /// apply to the whole message), or a Query that cannot run so (its sum is then judged,
    /// which can only be larger).
    pub(super) fn per_statement(&self, sql: &[u8], plan: &CheckPlan) -> Option<Vec<super::simple::Piece>> {
        if plan.dry_run || plan.override_rows.is_some() || plan.ignored_directive || !sql.contains(&b';') {
            return None;
        }
        // No `;` but at its end: one statement at most, without a parse (drivers and pgbench
        // end a single statement with one; a `;` in a literal or comment is parsed).
        if sql.iter().rev().skip_while(|&&b| b == b';' || b.is_ascii_whitespace()).all(|&b| b != b';') {
            return None;
        }
        let parsed = crate::analyze::budget::parse(std::str::from_utf8(sql).ok()?, 0).ok()?;
        let writes =
            parsed.protobuf.stmts.iter().filter(|s| writes_rows(s.stmt.as_ref().and_then(|n| n.node.as_ref()))).count();
        if writes < 2 {
            return None;
        }
        self.simple_pieces(sql).ok()
    }

    /// Counts an Execute where it stands in its batch (see `extended`), then releases its
    /// replies or fails the batch.
    pub(super) async fn run_count(&mut self, frame: Frame, plan: Arc<CheckPlan>) -> Result<(), SessionError> {
        let ord = self.relay.syncs_sent();
        if self.relay.is_skipping() || self.mirror.batch_failed(ord) {
            // The server skips the rest of the batch: the Execute will not run.
            self.forward_op(&frame, Op::Execute);
            return Ok(());
        }
        self.flush_to_client().await?;
        let shared = self.shared.clone();
        let policy = shared.guard.policy();
        let catalog = &shared.guard.catalog;
        let known = |s: &str, t: &str| catalog.oid_of(&self.info.database, s, t);
        let stats = crate::precheck::stats_sql(&policy, &plan, &known, true);
        let started = Instant::now();
        self.readings.flushed.at(None);
        let drops = super::names::may_drop_readings(&[plan.statement.as_bytes()], &mut self.readings);
        let mut backend = Backend::new(&mut self.server, &mut self.sfr);
        if !drops {
            backend = backend.with_prepared(&mut self.readings);
        }
        backend.holding = shared.held_budget.share();
        let portal = super::extended::execute_portal(&frame).unwrap_or_default();
        let (since, view) = (self.mirror.runs.since(&portal), self.info.view());
        let candidates =
            |before: &[Vec<Option<String>>]| precheck::putback::candidates(before, since, 0, view, &policy);
        let req = precheck::inbatch::Request {
            execute: &frame.bytes,
            stats_sql: &stats,
            name: READING,
            max_hold: MAX_HOLD,
            candidates: &candidates,
        };
        let count = precheck::inbatch::count_execute(&mut backend, req);
        let counted = super::departure::unless_left(&mut self.client, &mut self.cfr, count).await;
        let Some(counted) = counted else {
            let back = std::mem::take(&mut backend.put_back);
            drop(backend);
            return self.left_during_check(back).await;
        };
        let counted = counted.map_err(|e| SessionError::Closed(format!("pre-check: {e}")))?;
        let Backend { for_client, params, holding, .. } = backend;
        self.holding.merge(holding);
        let for_client = self.notifications_to_ready(for_client);
        let micros = self.after_check(for_client, params, started);
        let mut facts = check_facts(&plan);
        let unverifiable = |why: String| uncounted(&plan, why, &policy);
        let (replies, overflowed, before, after) = match counted {
            precheck::inbatch::Counted::ReadingFailed { before, error, rows } => {
                self.owe_put_back(&frame, &rows);
                self.mirror.failed(ord);
                self.skip_to_sync();
                let fields = messages::error_fields(&error).unwrap_or_default();
                // The client's block was failed already, or the client's cancel met the reading
                // (`cancels`): the Execute gets the same error.
                if (before && fields.code == "25P02") || fields.code == "57014" {
                    self.relay.to_client.extend_from_slice(&error.bytes);
                } else {
                    let msg = unverifiable(format!("reading the row counters failed: {}", fields.message));
                    facts.decision = "refused";
                    facts.rule = Some("unverifiable".into());
                    facts.message = Some(msg.message.clone());
                    self.record(&facts, &[], Some(micros));
                    self.relay.to_client.extend_from_slice(&msg.encode());
                }
                return Ok(());
            }
            precheck::inbatch::Counted::Failed { replies, before } => {
                // Protected sequences it moved are put back once the batch ends (`putback`).
                self.owe_put_back(&frame, &before);
                // What a body it ran did to the prepared statements cannot be read now.
                if matches!(plan.verb, "statement" | "DDL") {
                    self.objects_changed(precheck::objects::Changes::all_unknown());
                }
                // The statement failed by itself: exactly the server's answer.
                self.mirror.failed(ord);
                self.skip_to_sync();
                replies.iter().for_each(|f| self.deliver(f));
                return Ok(());
            }
            precheck::inbatch::Counted::Ran { replies, overflowed, before, after } => {
                (replies, overflowed, before, after)
            }
        };
        let db = self.info.database.clone();
        let rows = (before.clone(), after.clone());
        precheck::learn_oids(catalog, &db, &policy, &rows.0);
        let before = precheck::counter_reading(&before, catalog, &db, &policy);
        let after = precheck::counter_reading(&after, catalog, &db, &policy);
        let (Some(before), Some(after)) = (before, after) else {
            self.owe_put_back(&frame, &rows.0);
            let msg = unverifiable("track_counts is off on the server, so changed rows cannot be counted".into());
            self.refuse_counted(msg, &replies, facts, &[], micros);
            return Ok(());
        };
        let portal = super::extended::execute_portal(&frame).unwrap_or_default();
        let counted = precheck::with_earlier(self.mirror.runs.so_far(&portal), precheck::deltas(&before, &after));
        let (counts, mut decision) = crate::policy::judge_counts(plan.measured(), counted, self.info.view(), &policy);
        // What it did to the protected objects (`precheck::identity`).
        // What it did to the session's prepared statements and cursors (`precheck::objects`).
        let objects = precheck::objects::changes(&rows.0, &rows.1);
        // The portal counted, when it is the client's own (not a cursor SQL made under its
        // name), is not one either because the reading found it.
        let own = !self.mirror.replaced.may_be(&portal);
        self.objects_changed(objects.clone());
        if own {
            self.mirror.replaced.bound(&portal);
        }
        let view = self.info.view();
        let since = self.mirror.runs.since(&portal);
        let start = precheck::slices::run_start(since, &rows.0);
        let (changed, findings) = precheck::slices::judge_since(
            since,
            (&rows.0, &rows.1),
            &counts,
            view,
            &policy,
            &plan,
            (&catalog.creep, &db),
        );
        decision.findings.extend(findings);
        // Owed unless it is kept (`putback`): a refusal fails the batch, so the rows it
        // inserted explain no move either (`putback::unkept`).
        let owed = self.put_back.len();
        let back = precheck::putback::candidates(&rows.0, since, 0, view, &policy);
        self.put_back.extend(precheck::putback::unkept(&back, &changed, plan.dry_run));
        decision.findings.extend(precheck::objects::findings(&objects, view, &policy, &plan.statement, plan.verb));
        // Deferred constraint triggers fire at the batch's end or the client's COMMIT, after
        // this count: refused while the database has any (rule `deferred-trigger`).
        decision.findings.extend(precheck::identity_deferred(&rows.0, &rows.1, view, &policy, &plan));
        if overflowed {
            let msg = unverifiable(format!(
                "its results are larger than blastwall holds while it counts the rows ({MAX_HOLD} bytes per statement, {} across sessions while their clients have not read them)",
                shared.held_budget.total()
            ));
            self.refuse_counted(msg, &replies, facts, &counts, micros);
            return Ok(());
        }
        if plan.dry_run || decision.mode() == Some(crate::policy::Mode::DryRun) {
            let why = format!(
                "a dry run would {}, but a write in the middle of a batch cannot be rolled back alone: the batch was rolled back",
                crate::policy::describe_counts(&counts)
            );
            let msg = crate::guard::refusal_message(&crate::guard::refusal(
                "dry-run",
                plan.verb.into(),
                why,
                "Send the write in a batch of its own (ending with Sync) to see its dry run.",
                &policy.source_names(),
                plan.statement.clone(),
            ));
            facts.decision = "dry-run";
            self.refuse_counted(msg, &replies, facts, &counts, micros);
            return Ok(());
        }
        // The anomaly and budget rules (`contract`), behind the Execute in its batch.
        if !matches!(crate::guard::render(&decision), Verdict::Refuse(_)) {
            let write = crate::contract::keep::Write {
                plan: &plan,
                counts: &counts,
                who: self.info.view(),
                policy: &policy,
                catalog,
                database: &db,
                opened: false,
            };
            let mut backend = Backend::new(&mut self.server, &mut self.sfr);
            let judged = write.in_batch(&mut backend, READING).await;
            let Backend { for_client, params, .. } = backend;
            let for_client = self.notifications_to_ready(for_client);
            self.take_for_client(for_client, params);
            match judged.map_err(|e| SessionError::Closed(format!("pre-check: {e}")))? {
                // The server failed the batch: its error was blastwall's, the refusal is owed.
                Some((d, true)) => {
                    let first = d.findings.first();
                    facts.decision = "refused";
                    facts.rule = first.map(|f| f.rule.to_string());
                    facts.mode = first.map(|f| f.mode.as_str());
                    facts.message = first.map(|f| format!("{}: {}", f.what, f.why));
                    self.record(&facts, &counts, Some(micros));
                    self.mirror.failed(ord);
                    self.skip_to_sync();
                    replies.iter().filter(|f| matches!(f.tag, b'N' | b'A' | b'S')).for_each(|f| self.deliver(f));
                    self.relay.to_client.extend_from_slice(&crate::guard::refusal_message(&d).encode());
                    return Ok(());
                }
                Some((d, false)) => decision.findings.extend(d.findings),
                None => {}
            }
        }
        match crate::guard::render(&decision) {
            Verdict::Refuse(msg) => {
                let first = decision.findings.first();
                facts.rule = first.map(|f| f.rule.to_string());
                facts.mode = first.map(|f| f.mode.as_str());
                facts.message = first.map(|f| format!("{}: {}", f.what, f.why));
                tracing::info!(session = self.id, verb = plan.verb, counts = %crate::policy::describe_counts(&counts), precheck_us = micros, "write over its row limit failed in its batch");
                if self.put_back.len() > owed && !self.put_back_in_batch(owed).await? {
                    // blastwall's put-back failed the batch itself: the refusal is owed.
                    facts.decision = "refused";
                    self.record(&facts, &counts, Some(micros));
                    self.mirror.failed(ord);
                    self.skip_to_sync();
                    replies.iter().filter(|f| matches!(f.tag, b'N' | b'A' | b'S')).for_each(|f| self.deliver(f));
                    self.relay.to_client.extend_from_slice(&msg.encode());
                    return Ok(());
                }
                self.refuse_counted(msg, &replies, facts, &counts, micros);
            }
            v => {
                warned_facts(&mut facts, &plan, Some(&decision));
                self.record(&facts, &counts, Some(micros));
                if let Some(n) = &plan.notice {
                    self.relay.notify_client(n);
                }
                if let Some(n) = v.notice() {
                    self.relay.notify_client(n);
                }
                self.put_back.truncate(owed);
                // Undone should the client's transaction roll back (`undone`).
                if !self.remember_in_batch(&rows, READING, (&plan, &counts)).await? {
                    self.mirror.failed(ord);
                    self.skip_to_sync();
                }
                replies.iter().for_each(|f| self.deliver(f));
                let suspended = replies.iter().any(|f| f.tag == b's');
                self.mirror.runs.ran(portal, &counts, start, suspended);
            }
        }
        Ok(())
    }

    /// A SQL FETCH or MOVE of a portal bound to a counted statement runs it where blastwall
    /// cannot count it (the rest of a suspended run, or all of it): refused while the session
    /// enforces. `verdict`: the text's own.
    pub(super) fn fetching_counted_portal(&self, sql: &[u8], verdict: Verdict) -> Verdict {
        // A count of the FETCH alone (a name a function may have opened, `guard::cursors`)
        // would not add the portal's earlier slices: refused as well.
        if !matches!(verdict, Verdict::Allow | Verdict::Notice(_) | Verdict::Check(_) | Verdict::Split(_)) {
            return verdict;
        }
        // The cursor words as the guard reads them (whole words, no copy of the text: this runs
        // on every message).
        if !crate::guard::cursors::mentions_cursors(sql) {
            return verdict;
        }
        let Ok(parsed) = crate::analyze::budget::parse(&String::from_utf8_lossy(sql), 0) else { return verdict };
        let portal = parsed.protobuf.stmts.iter().find_map(|s| match s.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(pg_query::NodeEnum::FetchStmt(f)) if self.mirror.portal_plan(f.portalname.as_bytes()).is_some() => {
                Some(f.portalname.clone())
            }
            _ => None,
        });
        let policy = self.shared.guard.policy();
        let Some(portal) = portal else { return verdict };
        if crate::policy::mode_for(self.info.view(), &policy, None) != crate::policy::Mode::Enforce {
            return verdict;
        }
        let m = crate::guard::refusal_message(&crate::guard::refusal(
            "unverifiable",
            "FETCH".into(),
            format!(
                "portal {portal} runs a statement whose changes must be counted, and a FETCH or MOVE of it cannot be"
            ),
            "Run the portal with the protocol's Execute (its whole run is counted).",
            "blastwall",
            String::from_utf8_lossy(sql).into_owned(),
        ));
        // In the audit trail as an unverifiable refusal, as a Query that cannot be split is.
        self.record_split_refusal(sql, &m);
        Verdict::Refuse(m)
    }

    /// The portal a held batch executes, if any, and what it changed in its earlier slices (none
    /// when the batch binds it anew).
    pub(super) fn portal_run(
        &self,
        held: &[u8],
        ops: &[Op],
    ) -> (Option<Vec<u8>>, Vec<precheck::TableCount>, Positions) {
        let mut framer = crate::wire::Framer::new(usize::MAX);
        framer.buf_mut().extend_from_slice(held);
        let mut portal = None;
        while let Ok(Some(crate::wire::Item::Frame(f))) = framer.next_item(|_| true) {
            if f.tag == crate::wire::messages::fe::EXECUTE {
                portal = super::extended::execute_portal(&f).ok();
            }
        }
        // A SQL FETCH or MOVE of a cursor continues its run too (`sliced`).
        let Some(p) = portal.or_else(|| super::sliced::fetched_cursor(held)) else {
            return (None, Vec::new(), Positions::new());
        };
        let bound = ops.iter().any(|op| matches!(op, Op::Bind { portal, .. } if *portal == p));
        if bound {
            return (Some(p), Vec::new(), Positions::new());
        }
        (Some(p.clone()), self.mirror.runs.so_far(&p).to_vec(), self.mirror.runs.since(&p).clone())
    }

    /// A held batch's slice of a portal was kept (`bytes`: its replies): its run so far stays
    /// while the server suspended it inside the client's transaction.
    pub(super) fn portal_ran(
        &mut self,
        portal: Option<Vec<u8>>,
        bytes: &[u8],
        counts: &[precheck::TableCount],
        start: Positions,
    ) {
        let Some(portal) = portal else { return };
        let mut framer = crate::wire::Framer::new(usize::MAX);
        framer.buf_mut().extend_from_slice(bytes);
        let mut suspended = false;
        while let Ok(Some(crate::wire::Item::Frame(f))) = framer.next_item(|_| true) {
            suspended |= f.tag == b's' || super::sliced::read_a_cursor(f.tag, f.body());
        }
        let open = self.relay.tx != crate::wire::messages::TxStatus::Idle;
        self.mirror.runs.ran(portal, counts, start, suspended && open);
    }

    /// Fails the batch of a counted Execute: the client gets the refusal (and the notices its
    /// statement raised), never its rows or command tag.
    fn refuse_counted(
        &mut self,
        msg: ProxyMessage,
        replies: &[Frame],
        mut facts: crate::audit::Facts,
        counts: &[precheck::TableCount],
        micros: u64,
    ) {
        if facts.decision != "dry-run" {
            facts.decision = "refused";
        }
        if facts.rule.is_none() && facts.decision == "refused" {
            facts.rule = Some("unverifiable".into());
            facts.message = Some(msg.message.clone());
        }
        self.record(&facts, counts, Some(micros));
        replies.iter().filter(|f| matches!(f.tag, b'N' | b'A' | b'S')).for_each(|f| self.deliver(f));
        self.refuse_in_batch(msg);
    }

    /// Puts back, right behind the refused Execute in its batch, the protected sequences it moved
    /// (owed from `owed` on): `setval` is not transactional, so the batch's failure keeps it,
    /// and no client's Sync, idle time or close is waited for (nineteenth pass F6: a driver's
    /// pipeline left the sequence moved while its client was idle). `false`: a put-back failed,
    /// and the server now skips the batch (those stay owed for the next quiet point).
    async fn put_back_in_batch(&mut self, owed: usize) -> Result<bool, SessionError> {
        let mut now: Vec<_> = self.put_back.drain(owed..).collect();
        now.reverse();
        // Which are due read first (no effect), then the put-backs: one the role may not make
        // (`setval` needs `UPDATE`) fails the batch, and it and those after it are made on a
        // connection of blastwall's own while they stand where they were read.
        let mut sqls: Vec<String> = now.iter().map(precheck::putback::due_marked_sql).collect();
        sqls.extend(precheck::putback::sqls(&now));
        let mut backend = Backend::new(&mut self.server, &mut self.sfr);
        let done = precheck::inbatch::run_after_partly(&mut backend, READING, &sqls).await;
        let Backend { for_client, params, .. } = backend;
        let for_client = self.notifications_to_ready(for_client);
        self.take_for_client(for_client, params);
        let (rows, ran, error) =
            done.map_err(|e| SessionError::Closed(format!("putting a protected sequence back: {e}")))?;
        let code = error.as_ref().and_then(|f| crate::wire::messages::error_fields(f).ok()).map(|e| e.code);
        let unmade = ran.checked_sub(now.len()).map(|i| &now[i..]).filter(|_| error.is_some());
        match (code.as_deref(), unmade) {
            (Some(precheck::putback::DENIED), Some(rest)) => {
                precheck::elsewhere::after_denied(rest, &rows).await;
                return Ok(false);
            }
            (Some(precheck::putback::NO_CURRVAL), _) => {
                precheck::elsewhere::after_forgotten(&now).await;
                return Ok(false);
            }
            _ => {}
        }
        match error.map_or(Ok(rows), Err) {
            Ok(rows) => {
                tracing::warn!(
                    session = self.id,
                    put_back = now.len(),
                    rows = rows.len(),
                    "protected sequences a refused statement moved were put back in its batch"
                );
                Ok(true)
            }
            Err(_) => {
                now.reverse();
                self.put_back.extend(now);
                Ok(false)
            }
        }
    }

    /// What came for the client while a write was counted in the middle of its batch, without
    /// the notifications: those wait for the batch's ReadyForQuery, where the server would
    /// have sent them (never among a statement's rows, never inside a transaction).
    pub(super) fn notifications_to_ready(&mut self, for_client: bytes::BytesMut) -> bytes::BytesMut {
        let (rest, notifications) = super::notifications::split(for_client);
        self.relay.defer_notifications(&notifications);
        rest
    }

    /// A server message for the client, read by the pre-check.
    fn deliver(&mut self, f: &Frame) {
        if f.tag == b'A' {
            self.relay.defer_notifications(&f.bytes);
        } else if f.tag == b'S' {
            self.relay.on_parameter_status(f);
        } else {
            self.relay.to_client.extend_from_slice(&f.bytes);
        }
    }
}

/// A statement that writes rows: INSERT, UPDATE, DELETE, MERGE, or a SELECT with one in WITH.
fn writes_rows(node: Option<&pg_query::NodeEnum>) -> bool {
    use pg_query::NodeEnum as N;
    match node {
        Some(N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_)) => true,
        Some(N::SelectStmt(s)) => s.with_clause.as_ref().is_some_and(super::simple::modifies),
        _ => false,
    }
}
