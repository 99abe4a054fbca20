//! The session's side of the pre-check: holding a message (or an extended batch) until the
//! server is idle, running it inside the check or asking the catalog first, relaying the
//! outcome, and recording each guarded decision (metrics, audit trail).
//!
//! Owns: when and how a held message is run. Does not own: the check itself (`precheck`) or
//! the decision (`guard`, `policy`).

pub(super) use super::pending::Pending;
use super::statements::Op;
use super::{Session, SessionError};
use crate::precheck::{self, Backend, CheckPlan, Outcome};
use crate::wire::messages::{self, fe, ProxyMessage, TxStatus};
use crate::wire::Frame;
use bytes::BytesMut;
use std::time::Instant;
use tokio::io::AsyncWriteExt;

impl Session {
    /// One decision event: a metric, and a line of the audit trail when it is on.
    pub(super) fn record(
        &self,
        facts: &crate::audit::Facts,
        counts: &[precheck::TableCount],
        precheck_us: Option<u64>,
    ) {
        let rule = facts.rule.as_deref().unwrap_or("none");
        self.shared.metrics.decision(rule, facts.mode.unwrap_or(""), facts.decision);
        self.shared.console.decision(self.id, &self.info.user, &self.info.database, facts);
        let refused = facts.decision == "refused";
        if !refused && self.shared.audit.is_none() {
            return;
        }
        let raw = self.shared.config.audit.as_ref().is_some_and(|a| a.raw_statements);
        let (fingerprint, statement) = crate::audit::statement_text(&facts.statement, raw);
        if refused {
            // The raw text only where the audit trail shows it too.
            let text = if raw { statement.as_str() } else { "" };
            tracing::warn!(session = self.id, user = %self.info.user, database = %self.info.database, rule, fingerprint = %fingerprint, statement = text, message = facts.message.as_deref().unwrap_or(""), "statement refused");
        }
        let Some(audit) = &self.shared.audit else { return };
        audit.emit(&crate::audit::Event {
            time: crate::audit::now(),
            session: self.id,
            user: &self.info.user,
            database: &self.info.database,
            application_name: &self.info.application_name,
            client: self.peer.to_string(),
            decision: facts.decision,
            rule: facts.rule.as_deref(),
            mode: facts.mode,
            fingerprint,
            statement,
            targets: &facts.targets,
            counts: crate::audit::CountField::from_counts(counts),
            message: facts.message.as_deref(),
            override_reason: facts.override_reason.as_deref(),
            precheck_us,
        });
    }

    /// Runs the waiting message inside the pre-check and relays its outcome.
    pub(super) async fn run_pending(&mut self) -> Result<(), SessionError> {
        // What the message's judgement marked stale, should it run quietly (`catalog::Undo`).
        let undo = self.info.taint.take_for_check();
        // A message with DDL waits for the writes other sessions sent before it (`inflight`).
        if self.info.inflight.must_wait() {
            self.wait_for_others().await?;
        }
        let (bytes, plan, ops) = match self.pending.take() {
            None => return Ok(()),
            Some(Pending::Verify(bytes, plan, ops)) => (bytes, plan, ops),
            Some(Pending::Count(frame, plan)) => return self.run_count(frame, plan).await,
            Some(Pending::Execute(frame)) => return self.on_extended(frame, None),
            Some(Pending::Ended) => {
                self.pending = Some(Pending::Ended);
                return Ok(());
            }
            Some(Pending::CopyEnd(frame)) => {
                self.copy_end(&frame);
                return Ok(());
            }
            Some(Pending::AfterCopy(frame)) => return self.on_client_frame(frame),
            Some(Pending::SyncInCopy(frame)) => {
                self.sync_after_copy_start(&frame);
                return Ok(());
            }
            Some(Pending::QueryInBatch(plan)) => {
                if !self.relay.is_skipping() {
                    let policy = self.shared.guard.policy();
                    let why = "it is a Query message in the middle of an extended-protocol batch".to_string();
                    self.relay.refuse_sync_point(uncounted(&plan, why, &policy));
                }
                return Ok(());
            }
            Some(Pending::Resolve(frame, names)) => return self.ask_bounded(frame, names, false).await,
            Some(Pending::ResolveInBatch(frame, names)) => return self.ask_bounded(frame, names, true).await,
            Some(Pending::Analyze(frame)) => return self.analyze_then_judge(frame).await,
            Some(Pending::Simple(frame, pieces)) => return self.start_simple(frame, pieces).await,
            Some(Pending::CopyReading(frame, action)) => return self.read_before_copy(frame, action).await,
        };
        if self.relay.tx == TxStatus::Failed {
            if ops.is_empty() && self.may_end_the_failed_transaction(&bytes) {
                let policy = self.shared.guard.policy();
                self.relay.refuse_sync_point(uncounted(&plan, FAILED_TX_WHY.to_string(), &policy));
                return Ok(());
            }
            // The server refuses everything until ROLLBACK; let it say so.
            if ops.is_empty() {
                self.relay.forward_sync_point(&bytes);
            } else {
                self.release_unchecked(&bytes, ops);
            }
            return Ok(());
        }
        self.flush_to_client().await?;
        let policy = self.shared.guard.policy();
        let started = Instant::now();
        let (portal, earlier, since) = self.portal_run(&bytes, &ops);
        // Whether the counters start at zero (`precheck::once`): nothing relayed since.
        self.readings.flushed.at((!self.relay.is_busy()).then(|| self.relay.syncs_sent()));
        let drops = super::names::may_drop_readings(&[&bytes, plan.statement.as_bytes()], &mut self.readings);
        let mut backend = Backend::new(&mut self.server, &mut self.sfr);
        if !drops {
            backend = backend.with_prepared(&mut self.readings);
        }
        backend.holding = self.shared.held_budget.share();
        backend.read_ends = !self.block.is_empty();
        let opts =
            precheck::VerifyOptions { max_hold: MAX_HOLD, statement_timeout: self.shared.config.precheck_timeout };
        let req = precheck::Request {
            earlier: &earlier,
            since: &since,
            msgs: &bytes,
            tx: self.relay.tx,
            plan: &plan,
            policy: &policy,
            who: self.info.view(),
            opts,
            catalog: &self.shared.guard.catalog,
            proofs: &self.shared.guard.proofs,
            database: &self.info.database,
        };
        let (tx, mark) = (self.relay.tx, self.shared.cancels.mark(self.key.as_ref()));
        // A client that leaves meanwhile has its statement cancelled, never kept.
        let verify = precheck::point::verify(&mut backend, req);
        let verified = super::departure::unless_left(&mut self.client, &mut self.cfr, verify).await;
        let Some(mut outcome) = verified else {
            let back = std::mem::take(&mut backend.put_back);
            drop(backend);
            return self.left_during_check(back).await;
        };
        if self.shared.cancels.since(self.key.as_ref(), mark) {
            outcome = match outcome {
                Ok(o) => crate::cancels::settle(&mut backend, tx, o).await,
                e => e,
            };
        }
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                // Ended in the middle of the check: the statement's rows rolled back with it,
                // unless a COMMIT went (`orphan`).
                if !backend.commit_sent {
                    self.lost_check = std::mem::take(&mut backend.put_back);
                }
                let (for_client, fatal) = (backend.for_client, backend.fatal);
                return self.check_lost_server(e, for_client, fatal);
            }
        };
        let Backend {
            for_client,
            params,
            objects,
            positions,
            holding,
            kept_moves,
            kept_beyond_rows,
            put_back,
            unkept_moves,
            ..
        } = backend;
        self.holding.merge(holding);
        // PostgreSQL sends notifications just before a ReadyForQuery (never among a
        // statement's rows): those that came during the check follow the delivered replies.
        let (for_client, notifications) = super::notifications::split(for_client);
        let micros = self.after_check(for_client, params, started);
        if let (true, Some(u)) = (objects.quiet, undo) {
            self.info.taint.ran_quietly(&u);
        }
        self.objects_changed(objects);
        let mut facts = check_facts(&plan);
        match &outcome {
            Outcome::Deliver { counts, kept, .. } => {
                warned_facts(&mut facts, &plan, kept.as_ref());
                self.record(&facts, counts, Some(micros))
            }
            Outcome::Refuse { decision, counts } => {
                let first = decision.findings.first();
                facts.decision = "refused";
                facts.rule = first.map(|f| f.rule.to_string());
                facts.mode = first.map(|f| f.mode.as_str());
                facts.message = first.map(|f| format!("{}: {}", f.what, f.why));
                self.record(&facts, counts, Some(micros));
            }
            Outcome::Unverifiable(why) => {
                facts.decision = "refused";
                facts.rule = Some("unverifiable".into());
                facts.message = Some(why.clone());
                self.record(&facts, &[], Some(micros));
            }
        }
        let succeeded = matches!(&outcome, Outcome::Deliver { bytes, .. } if !has_error(bytes));
        let extended = !ops.is_empty();
        self.mirror.apply_checked(&ops, succeeded);
        match outcome {
            Outcome::Deliver { bytes, status, counts, kept } => {
                if let Some(decision) = kept {
                    if let Some(n) = &plan.notice {
                        self.relay.notify_client(n);
                    }
                    if let Some(n) = crate::guard::render(&decision).notice() {
                        self.relay.notify_client(n);
                    }
                }
                tracing::info!(session = self.id, verb = plan.verb, dry_run = plan.dry_run, counts = %crate::policy::describe_counts(&counts), precheck_us = micros, "write verified");
                super::notifications::before_ready(&mut self.relay.to_client, &bytes, &notifications);
                self.relay.tx = status;
                self.mirror.on_ready(self.relay.syncs_done(), status);
                self.portal_ran(portal, &bytes, &counts, positions);
                // Undone should the client's block roll back (`undone`).
                if !kept_moves.is_empty() && !has_error(&bytes) {
                    self.remember_kept(kept_moves, kept_beyond_rows || plan.hands_out()).await?;
                }
            }
            Outcome::Refuse { decision, counts } => {
                self.relay.to_client.extend_from_slice(&notifications);
                tracing::info!(session = self.id, verb = plan.verb, counts = %crate::policy::describe_counts(&counts), precheck_us = micros, "write over its row limit rolled back");
                let mut msg = crate::guard::refusal_message(&decision);
                if plan.ignored_directive {
                    crate::guard::note_ignored_directive(&mut msg, &self.info.user);
                }
                self.refuse_checked(msg, extended);
            }
            Outcome::Unverifiable(why) => {
                self.relay.to_client.extend_from_slice(&notifications);
                self.refuse_checked(uncounted(&plan, why, &policy), extended);
            }
        }
        // Not kept, after writes the block remembers: what it moved within its allowance
        // follows them, its end unread (thirty-third pass H1: a failed INSERT's one step made
        // the block's 200,000 look taken by another session once the server ended it).
        if !succeeded && !self.block.is_empty() && self.relay.tx != TxStatus::Idle {
            let moves = match unkept_moves.is_empty() {
                true => precheck::putback::unread(&put_back),
                false => unkept_moves,
            };
            self.block.record(moves, None, false);
        }
        Ok(())
    }

    /// Refuses a message run inside the pre-check. An extended batch is refused by a marker
    /// batch (Parse, Sync), not a marker Query: a Query would destroy the client's unnamed
    /// statement and portal, which its batch may not have touched.
    pub(super) fn refuse_checked(&mut self, msg: ProxyMessage, extended: bool) {
        if extended {
            self.refuse_in_batch(msg);
            self.relay.forward_sync(&crate::wire::encode(fe::SYNC, &[]));
        } else {
            self.relay.refuse_sync_point(msg);
        }
    }

    /// Asks the catalog about relation names on this session, then judges the frame again.
    pub(super) async fn resolve(
        &mut self,
        frame: Frame,
        questions: Vec<crate::catalog::Question>,
        within_batch: bool,
    ) -> Result<(), SessionError> {
        use crate::catalog::Question;
        let db = self.info.database.clone();
        if self.relay.tx == TxStatus::Failed
            && questions.iter().all(|q| matches!(q, Question::HiddenCallers | Question::Taint))
        {
            // Not askable now: every text is taken as mentioning one (a ROLLBACK mentions none).
            self.assume_answers(&questions);
            return self.judge_and_record(frame);
        }
        if self.relay.tx == TxStatus::Failed {
            // The server refuses everything until ROLLBACK, and cannot be asked either.
            if frame.tag == fe::QUERY && self.may_end_the_failed_transaction(&frame.bytes) {
                let text = messages::query_text(&frame).map(|t| String::from_utf8_lossy(t).into_owned());
                let d = crate::guard::refusal(
                    "unverifiable",
                    "this message".into(),
                    FAILED_TX_WHY.into(),
                    HINT_FAILED_TX,
                    "blastwall",
                    text.unwrap_or_default(),
                );
                self.relay.refuse_sync_point(crate::guard::refusal_message(&d));
                return Ok(());
            }
            if frame.tag == fe::QUERY {
                self.relay.apply_sync_point(crate::relay::Action::Forward, &frame.bytes);
            } else {
                let name = messages::parse_msg(&frame).map(|m| m.name.to_vec()).unwrap_or_default();
                self.forward_op(&frame, Op::Parse { name, plan: None, facts: None });
            }
            return Ok(());
        }
        self.flush_to_client().await?;
        let policy = self.shared.guard.policy();
        let catalog = &self.shared.guard.catalog;
        let mut backend = Backend::new(&mut self.server, &mut self.sfr);
        backend.within_batch = within_batch;
        let names: Vec<String> = questions
            .iter()
            .filter_map(|q| if let Question::Indirect(n) = q { Some(n.clone()) } else { None })
            .collect();
        // A cancel of the client's that meets a question ends the client's message there, and
        // nothing is learned from that answer (`questions`).
        let mark = self.shared.cancels.mark(self.key.as_ref());
        macro_rules! unless_cancelled {
            ($answer:expr) => {{
                let answer = $answer;
                if crate::cancels::met_question(&answer, self.shared.cancels.since(self.key.as_ref(), mark)) {
                    let Backend { for_client, params, .. } = backend;
                    self.take_for_client(for_client, params);
                    self.question_cancelled(&frame, answer);
                    return Ok(());
                }
                answer
            }};
        }
        // A session's first question comes first: it says which database this is
        // (`catalog::incarnation`), before any answer about it is learned.
        let mut settled = false;
        if questions.contains(&Question::Taint) && self.info.taint.is_unasked() {
            let first = match backend.query(&crate::catalog::taint_first_query(&policy)).await {
                Ok(a) => a,
                Err(e) => return Err(self.lost_asking(format!("catalog lookup: {e}")).await),
            };
            let first = unless_cancelled!(first);
            if let Some(oid) = first.error.is_none().then(|| crate::catalog::database_oid(&first.rows)).flatten() {
                catalog.learn_incarnation(&db, oid);
            }
            let key_pid = self.key.as_ref().map(|k| k.pid);
            settled = super::taint::settled_by_first(&first, &mut self.info.taint, self.relay.tx, &db, key_pid);
        }
        if !names.is_empty() {
            let answer = unless_cancelled!(backend
                .query(&crate::catalog::query(&names, &policy))
                .await
                .map_err(|e| SessionError::Closed(format!("catalog lookup: {e}")))?);
            if answer.error.is_some() {
                // Not allowed to read the catalog: count the write, to be safe.
                names.iter().for_each(|n| catalog.learn(&db, n, true));
            } else {
                crate::catalog::learn_answer(catalog, &db, &names, &answer.rows);
            }
        }
        for q in &questions {
            if let Some(sql) = q.lookup_sql() {
                let answer = unless_cancelled!(backend
                    .query(&sql)
                    .await
                    .map_err(|e| SessionError::Closed(format!("catalog lookup: {e}")))?);
                catalog.learn_lookup(&db, q, answer.error.is_none().then_some(&answer.rows[..]));
                continue;
            }
            if let Question::Taint = q {
                if settled {
                    continue;
                }
                // Only the path, when nothing else may have changed: the small question.
                let path_only = self.info.taint.only_path_stale();
                let sql = match path_only {
                    true => crate::catalog::path_query(&policy),
                    false => crate::catalog::taint_query(&policy),
                };
                let answer = match backend.query(&sql).await {
                    Ok(a) => a,
                    Err(e) => return Err(self.lost_asking(format!("catalog lookup: {e}")).await),
                };
                let answer = unless_cancelled!(answer);
                let learn = if path_only { super::taint::learn_path } else { super::taint::learn };
                learn(&answer, &mut self.info.taint, self.relay.tx, &db);
                continue;
            }
            if let Question::Prepared(gids) = q {
                let answer = unless_cancelled!(backend
                    .query(&crate::inflight::prepared_query(gids))
                    .await
                    .map_err(|e| SessionError::Closed(format!("catalog lookup: {e}")))?);
                let rows = answer.error.is_none().then_some(&answer.rows[..]);
                if self.info.inflight.learn_prepared(gids, rows) {
                    catalog.forget(&db);
                }
                continue;
            }
            if let Question::HiddenCallers = q {
                let answer = match backend.query(&crate::catalog::hidden_callers_query(&policy)).await {
                    Ok(a) => a,
                    Err(e) => return Err(self.lost_asking(format!("catalog lookup: {e}")).await),
                };
                let answer = unless_cancelled!(answer);
                let rows = answer.error.is_none().then_some(&answer.rows[..]);
                catalog.learn_hidden_callers(&db, rows, &mut self.info.temp);
                continue;
            }
            if let Question::Minted { schema, table } = q {
                let sql = crate::catalog::minted_query(schema, table, catalog.oid_of(&db, schema, table));
                let answer = unless_cancelled!(backend
                    .query(&sql)
                    .await
                    .map_err(|e| SessionError::Closed(format!("catalog lookup: {e}")))?);
                catalog.learn_minted(&db, schema, table, if answer.error.is_some() { &[] } else { &answer.rows });
                continue;
            }
            if let Some(sql) = crate::names::question_sql(q, &policy, &|s, t| catalog.oid_of(&db, s, t)) {
                let answer = unless_cancelled!(backend
                    .query(&sql)
                    .await
                    .map_err(|e| SessionError::Closed(format!("catalog lookup: {e}")))?);
                let rows = answer.error.is_none().then_some(&answer.rows[..]);
                crate::names::learn(q, rows, &mut self.info.names, catalog, &db, &policy);
                continue;
            }
            let Question::Columns { schema, table } = q else { continue };
            let Some(t) = policy.tables.iter().find(|t| &t.schema == schema && &t.name == table) else { continue };
            let sql = crate::catalog::columns_query(schema, table, catalog.oid_of(&db, schema, table));
            let answer = unless_cancelled!(backend
                .query(&sql)
                .await
                .map_err(|e| SessionError::Closed(format!("catalog lookup: {e}")))?);
            let rows = if answer.error.is_some() { Vec::new() } else { answer.rows };
            let asked = self.info.names.identities_asked_at.1;
            catalog.learn_columns_asked(&db, schema, table, &t.protected_columns, &rows, asked);
        }
        let Backend { for_client, params, batch_error, .. } = backend;
        self.take_for_client(for_client, params);
        match batch_error {
            Some(e) => {
                self.question_failed_batch(&frame, e);
                Ok(())
            }
            None => self.judge_and_record(frame),
        }
    }

    /// What the server sent during a check that is the client's, and the settings it reported.
    pub(super) fn take_for_client(&mut self, for_client: BytesMut, params: Vec<(String, String)>) {
        self.relay.to_client.extend_from_slice(&for_client);
        for (k, v) in params {
            self.relay.set_param(k, v);
        }
    }

    /// Ends a check's I/O: [`Session::take_for_client`], and the time it took (µs, also
    /// observed in the metrics).
    pub(super) fn after_check(&mut self, for_client: BytesMut, params: Vec<(String, String)>, started: Instant) -> u64 {
        self.take_for_client(for_client, params);
        self.shared.metrics.precheck_seconds.observe(started.elapsed().as_secs_f64());
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(super) async fn flush_to_client(&mut self) -> Result<(), SessionError> {
        self.rewrite_outgoing();
        if !self.relay.to_client.is_empty() {
            self.client.write_all(&self.relay.to_client).await.map_err(SessionError::ClientIo)?;
            self.client.flush().await.map_err(SessionError::ClientIo)?;
            self.relay.to_client.clear();
            self.holding.clear();
        }
        if !self.relay.to_server.is_empty() {
            self.server.write_all(&self.relay.to_server).await.map_err(SessionError::ServerIo)?;
            self.relay.to_server.clear();
            self.readings.flushed.client_sent();
        }
        Ok(())
    }
}

/// Why a message that may end a failed transaction is not relayed unjudged.
const FAILED_TX_WHY: &str = "it was sent in a failed transaction and may end it (ROLLBACK, COMMIT, ABORT), so what follows in it could run uncounted";
const HINT_FAILED_TX: &str = "Send ROLLBACK in a message of its own first, then the statement.";

impl Session {
    /// In a failed transaction the server runs nothing until the transaction ends, so a
    /// message can go unjudged — unless it ends the transaction itself (`ROLLBACK; DELETE …`).
    /// Whether this Query may; a text that cannot be read counts as one that may.
    fn may_end_the_failed_transaction(&self, bytes: &[u8]) -> bool {
        let mut framer = crate::wire::Framer::new(self.shared.config.max_frame_bytes);
        framer.buf_mut().extend_from_slice(bytes);
        let Ok(Some(crate::wire::Item::Frame(f))) = framer.next_item(|_| true) else { return true };
        let Ok(sql) = messages::query_text(&f) else { return true };
        self.shared
            .guard
            .statements_of(sql, &self.info, None)
            .iter()
            .any(|s| s.transaction_control || !s.opaque.is_empty())
    }
}

/// The name of the statement and portal an extended-protocol estimate uses.
const ESTIMATE: &str = "__blastwall_estimate";

/// The EXPLAIN of a held batch's statement, bound to the client's own parameter values and
/// formats (its first Bind), as Close/Parse/Bind/Execute/Close/Sync on a name of the proxy's.
pub(super) fn extended_estimate(plan: &CheckPlan, held: &[u8], max_len: usize) -> Option<bytes::Bytes> {
    let sql = plan.estimate_sql.as_deref()?;
    let mut framer = crate::wire::Framer::new(max_len);
    framer.buf_mut().extend_from_slice(held);
    let bind = loop {
        match framer.next_item(|_| true) {
            Ok(Some(crate::wire::Item::Frame(f))) if f.tag == fe::BIND => break f,
            Ok(Some(_)) => continue,
            _ => return None,
        }
    };
    let mut out = BytesMut::new();
    out.extend_from_slice(&messages::close_statement(ESTIMATE));
    out.extend_from_slice(&messages::parse_typed(
        ESTIMATE,
        &format!("EXPLAIN (VERBOSE, FORMAT JSON) {sql}"),
        &plan.param_types,
    ));
    out.extend_from_slice(&messages::rebind(&bind, ESTIMATE).ok()?);
    out.extend_from_slice(&messages::execute_close_sync(ESTIMATE));
    Some(out.freeze())
}

/// The most a verified statement may return while its rows are counted (RETURNING, or a
/// SELECT in the same message); past it the statement is rolled back and refused.
pub(super) const MAX_HOLD: usize = 16 * 1024 * 1024;

impl Session {
    /// Parses a long message text on a blocking thread, so that the other sessions of this
    /// event loop go on meanwhile, and judges the message again with that analysis.
    async fn analyze_then_judge(&mut self, frame: Frame) -> Result<(), SessionError> {
        let f = frame.clone();
        let encoding = self.relay.client_encoding().to_string();
        let scs = self.relay.standard_conforming_strings();
        let certain = !self.relay.is_busy();
        let shared = self.shared.clone();
        let analysis = tokio::task::spawn_blocking(move || {
            let sql = if f.tag == fe::QUERY {
                messages::query_text(&f).ok()
            } else {
                messages::parse_msg(&f).ok().map(|m| m.sql)
            };
            sql.map(|sql| shared.guard.preanalyze(sql, &encoding, scs, certain)).unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        // Judged with the analysis at hand; a reading it lacks is made inline.
        self.on_client_message(frame, Some(&analysis))
    }
}

/// Whether replies contain an ErrorResponse.
pub(super) fn has_error(bytes: &[u8]) -> bool {
    let mut framer = crate::wire::Framer::new(usize::MAX);
    framer.buf_mut().extend_from_slice(bytes);
    while let Ok(Some(item)) = framer.next_item(|t| t == b'E') {
        if matches!(item, crate::wire::Item::Frame(_)) {
            return true;
        }
    }
    false
}

/// The audit facts of a counted statement, before its outcome is known.
pub(super) fn check_facts(plan: &CheckPlan) -> crate::audit::Facts {
    crate::audit::Facts {
        decision: if plan.dry_run {
            "dry-run"
        } else if plan.override_rows.is_some() {
            "overridden"
        } else {
            "verified"
        },
        rule: None,
        mode: None,
        statement: plan.statement.clone(),
        targets: plan.target.iter().map(|t| t.to_string()).collect(),
        message: None,
        override_reason: plan.override_rows.as_ref().map(|o| o.reason.clone()),
    }
}

/// A kept statement that drew a warning (a warn-mode rule before it ran, or a row limit in
/// warn mode after it was counted) is recorded as warned, with that rule.
pub(super) fn warned_facts(facts: &mut crate::audit::Facts, plan: &CheckPlan, kept: Option<&crate::policy::Decision>) {
    if facts.decision != "verified" {
        return;
    }
    let counted = kept.and_then(|d| d.findings.iter().find(|f| f.mode == crate::policy::Mode::Warn));
    let rule = counted.map(|f| f.rule).or(plan.warned_rule);
    if let Some(rule) = rule {
        facts.decision = "warned";
        facts.rule = Some(rule.to_string());
        facts.mode = Some(crate::policy::Mode::Warn.as_str());
        facts.message = counted.map(|f| format!("{}: {}", f.what, f.why));
    }
}

/// The refusal of a statement whose rows could not be counted (it was rolled back).
pub(super) fn uncounted(plan: &CheckPlan, why: String, policy: &crate::policy::Policy) -> ProxyMessage {
    crate::guard::refusal_message(&crate::guard::refusal(
        "unverifiable",
        plan.verb.into(),
        format!("the rows it changes could not be counted: {why}; it was rolled back"),
        "Count fewer rows per statement, or turn track_counts on; the statement changed nothing.",
        &policy.source_names(),
        plan.statement.clone(),
    ))
}
