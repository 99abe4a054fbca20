//! The guard: judges one message's SQL text — analysis (cached), `policy::decide`, what needs
//! counting — into a typed [`Verdict`] with the audit facts of the same decision, and renders
//! the words a client sees from the decision's findings (`render`: every refusal and warning
//! of a rule, blastwall's own included).
//!
//! Owns: the per-session facts that outlive one message (SQL-level prepared statements, the
//! session's own stricter mode), the cheap pre-filter, and the policy handle that reloads swap.
//! Does not own: the rules (`policy`), the parser (`analyze`), or carrying the verdict out
//! (`session`, `relay`).

use crate::analyze::{self, Op, Opaque, ParseOptions, Statement};
use crate::policy::{self, Action, Decision, Mode, Policy, SessionView};
use crate::precheck::CheckPlan;

mod analysis;
pub mod cursors;
mod hidden;
mod maintenance;
mod need;
mod prefilter;
mod prepared;
use prepared::{remember_prepared, with_prepared};
mod render;
mod words;

use crate::wire::messages::ProxyMessage;
pub use analysis::{Preanalyzed, Reading};
use need::{check_need, estimate_text, unverifiable, CheckNeed};
use render::audit_facts;
pub use render::{refusal_message, render};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use words::{effects, lone_mode_change, session_mode_change};
pub use words::{note_ignored_directive, startup_with_mode};

/// What the relay does with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Forward, after sending this NoticeResponse.
    Notice(ProxyMessage),
    /// Do not forward; the client gets this ErrorResponse.
    Refuse(ProxyMessage),
    /// Forward inside a pre-check on the client's own session, which counts the rows it
    /// changes and keeps or undoes them.
    Check(Box<CheckPlan>),
    /// Ask the server's catalog these questions first, then judge again.
    Resolve(Vec<crate::catalog::Question>),
    /// The text is long: analyze it off the event loop ([`Guard::preanalyze`]), then judge again.
    Analyze,
    /// A Query whose writes must be counted, holding transaction control or `COPY … FROM
    /// STDIN` (no check of its own can wrap it): run it statement by statement as an extended
    /// batch and count each write where it stands (`session::simple`); where the session
    /// cannot, refuse it with this message.
    Split(Box<ProxyMessage>),
}

/// Texts at least this long are analyzed on a blocking thread, not on the event loop that
/// runs other sessions too (parsing takes about half a microsecond per byte).
pub const ANALYZE_OFF_LOOP_BYTES: usize = 16 * 1024;

/// A verdict, and what the audit trail records of it (`None`: nothing to record).
#[derive(Debug)]
pub struct Judged {
    pub verdict: Verdict,
    pub facts: Option<crate::audit::Facts>,
}

impl Verdict {
    /// The warning to send, if this verdict carries one.
    pub fn notice(&self) -> Option<&ProxyMessage> {
        match self {
            Verdict::Notice(n) => Some(n),
            _ => None,
        }
    }
}

/// Per-session facts the guard keeps.
#[derive(Debug, Default, Clone)]
pub struct SessionInfo {
    pub user: String,
    pub database: String,
    pub application_name: String,
    pub standard_conforming_strings: bool,
    /// False while a statement that could have changed `standard_conforming_strings` may still
    /// be running: the text is then read both ways.
    pub settings_certain: bool,
    pub client_encoding: String,
    pub in_transaction: bool,
    /// Every statement prepared under a name (SQL PREPARE, protocol Parse) since the server
    /// confirmed its last DEALLOCATE or Close (the server keeps the first that succeeded; all
    /// are judged, so none can hide). Kept by `session::names`.
    pub prepared: HashMap<String, Vec<Statement>>,
    /// DEALLOCATEs judged and not yet confirmed: the name, and how many of its entries in
    /// `prepared` were there when it was sent (those are the ones it removes).
    pub unprepared: Vec<(String, usize)>,
    /// The message just judged may change what names resolve to when it runs (DDL, or a body
    /// the guard cannot see into): the catalog's answers were dropped, and are dropped again
    /// once it has run (another session may have asked meanwhile).
    pub changes_names: bool,
    /// What the names this session wrote resolve to on it (`crate::names`).
    pub names: crate::names::Resolutions,
    pub session_mode: Option<Mode>,
    /// The session's cursors that are read without a count (`cursors`).
    pub cursors: cursors::Cursors,
}

impl SessionInfo {
    pub fn new(user: &str, application_name: &str) -> Self {
        SessionInfo {
            user: user.to_string(),
            application_name: application_name.to_string(),
            standard_conforming_strings: true,
            settings_certain: true,
            ..Default::default()
        }
    }

    pub fn view(&self) -> SessionView<'_> {
        SessionView {
            user: &self.user,
            application_name: &self.application_name,
            session_mode: self.session_mode,
            columns: None,
            sequence_owners: None,
            seen_in: None,
        }
    }
}

/// A cached analysis: the text, `standard_conforming_strings`, and the statements.
type CachedAnalysis = (Box<str>, bool, Arc<Vec<Statement>>);

/// Holds the policy in force; a reload swaps it for the next statement of every session.
pub struct Guard {
    policy: RwLock<Arc<Policy>>,
    /// Analysis by text: hash → (text, standard_conforming_strings, statements).
    analysis_cache: dashmap::DashMap<u64, CachedAnalysis>,
    /// Bytes of text in `analysis_cache` (approximate under concurrent inserts; reset with it).
    analysis_cache_bytes: AtomicUsize,
    /// Analysis by statement shape, for texts not seen before (`analyze::Shapes`).
    shapes: analyze::Shapes,
    /// What the server's catalogs said about relation names.
    pub catalog: crate::catalog::Catalog,
    /// Point writes the catalog proved small (`precheck::point`).
    pub proofs: crate::precheck::point::Proofs,
    /// `--mode` / config `mode`: replaces the policy's default mode.
    mode_override: Option<Mode>,
    /// Whether the policy in force looks at function calls (`[opaque] functions`): read
    /// without taking the policy lock, so that harmless text is decided lock-free.
    calls_matter: AtomicBool,
}

impl Guard {
    pub fn new(mut policy: Policy, mode_override: Option<Mode>) -> Self {
        if let Some(m) = mode_override {
            policy.mode = m;
        }
        Guard {
            calls_matter: AtomicBool::new(calls_matter(&policy)),
            policy: RwLock::new(Arc::new(policy)),
            analysis_cache: Default::default(),
            analysis_cache_bytes: AtomicUsize::new(0),
            shapes: Default::default(),
            catalog: Default::default(),
            proofs: Default::default(),
            mode_override,
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().map(|p| p.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Swaps in a new policy (hot reload).
    pub fn replace(&self, mut policy: Policy) {
        if let Some(m) = self.mode_override {
            policy.mode = m;
        }
        let calls_matter = calls_matter(&policy);
        let mut current = self.policy.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(policy);
        // Under the lock: a reader that sees the old flag also saw the old policy.
        self.calls_matter.store(calls_matter, Ordering::Release);
    }

    /// Judges the SQL text of a Query or Parse message (the verdict only).
    pub fn judge_sql(&self, sql: &[u8], info: &mut SessionInfo) -> Verdict {
        self.judge(sql, info, None).verdict
    }

    /// Judges the SQL text of a Query or Parse message, with its analysis made ahead (off the
    /// event loop) when there is one: the verdict, and what the audit trail records of it.
    pub fn judge(&self, sql: &[u8], info: &mut SessionInfo, pre: Option<&Preanalyzed>) -> Judged {
        let judged = self.judge_once(sql, info, pre);
        // What names resolve to may change when this message runs: the answers it was judged
        // with are dropped once judged (nothing to scan on a select-only session).
        if !matches!(judged.verdict, Verdict::Resolve(_) | Verdict::Analyze) {
            info.names.after_message(sql, info.in_transaction);
        }
        judged
    }

    fn judge_once(&self, sql: &[u8], info: &mut SessionInfo, pre: Option<&Preanalyzed>) -> Judged {
        let plain = |verdict| Judged { verdict, facts: None };
        let harmless = match pre {
            // Even the prefilter's scan is left to the blocking thread for a long text.
            None if sql.len() >= ANALYZE_OFF_LOOP_BYTES => return plain(Verdict::Analyze),
            None => self.is_harmless(sql, info),
            Some(p) => p.harmless,
        };
        // A FETCH or MOVE of a cursor that is not plain may run what its query calls
        // (`cursors`): judged, never relayed as harmless.
        let reads_cursor = cursors::note(sql, info) && self.calls_matter.load(Ordering::Acquire);
        // A relation, type or operator whose use runs a user function (a view's column, a
        // domain's CHECK): the text names no function, but is judged like a call of one.
        let harmless = match self.mentions_hidden_caller(sql, info, harmless) {
            Ok(mentioned) => harmless && !mentioned,
            Err(ask) => return plain(ask),
        };
        if harmless && !reads_cursor {
            // A function body may change what names resolve to (CREATE RULE in a function):
            // the catalog's answers do not outlive a call the guard cannot see into.
            if sql.contains(&b'(') && !info.database.is_empty() {
                let statements = self.statements_of(sql, info, pre);
                if statements.iter().any(|s| s.calls_functions) {
                    self.catalog.forget(&info.database);
                    info.changes_names = true;
                }
            }
            return plain(Verdict::Allow);
        }
        let (statements, decision) = match self.decide_analyzed(sql, info, pre) {
            Ok(x) => x,
            Err(questions) => return plain(Verdict::Resolve(questions)),
        };
        // Text that cannot write (the common case on the hot path): nothing else to judge.
        if statements.is_empty() && decision.findings.is_empty() {
            return plain(Verdict::Allow);
        }
        let requested = statements.iter().filter_map(|s| s.session_mode.clone()).next_back();
        let new_mode = match requested {
            None => None,
            Some(r) => match session_mode_change(info.session_mode, r.as_deref()) {
                Ok(m) => Some(m),
                Err((why, hint)) => {
                    let text = joined(&statements);
                    let d = refusal("session-mode", "SET blastwall.mode".into(), why, hint, "blastwall", text.clone());
                    let verdict = render(&d);
                    let facts = audit_facts(&verdict, &d, text, Vec::new());
                    return Judged { verdict, facts };
                }
            },
        };
        // A change of mode must stand alone, outside a transaction block: the statements of
        // its message were judged under the old mode, and a rollback (the client's, or a dry
        // run's) would undo it on the server while blastwall kept it.
        if let Some(m) = new_mode.filter(|m| *m != info.session_mode) {
            if let Some(why) = lone_mode_change(statements.len(), info.in_transaction, m) {
                let text = joined(&statements);
                let d = refusal(
                    "session-mode",
                    "SET blastwall.mode".into(),
                    why,
                    words::HINT_LONE_MODE,
                    "blastwall",
                    text.clone(),
                );
                let verdict = render(&d);
                let facts = audit_facts(&verdict, &d, text, Vec::new());
                return Judged { verdict, facts };
            }
        }
        // DDL, and what the guard cannot see into (a function's body, DO, CALL), may change
        // what a name resolves to.
        let ddl = statements.iter().any(|s| {
            s.ddl || s.calls_functions || s.opaque.iter().any(|o| matches!(o, Opaque::DoBlock | Opaque::Call(_)))
        });
        // An SQL-level EXECUTE is counted like the statements it may run.
        let mut run: std::borrow::Cow<'_, [Statement]> = if statements.iter().any(|s| !s.executes.is_empty()) {
            std::borrow::Cow::Owned(with_prepared(&statements, info))
        } else {
            std::borrow::Cow::Borrowed(&statements[..])
        };
        // A cursor's query runs when it is read (`cursors`).
        cursors::reads_marked(&mut run, info);
        // What the audit trail records (nothing of a plain allowed message).
        let facts_of = |verdict: &Verdict, decision: &Decision| {
            if matches!(verdict, Verdict::Allow) {
                return None;
            }
            let text = joined(&statements);
            let targets: Vec<String> = statements
                .iter()
                .flat_map(|s| &s.writes)
                .filter_map(|w| w.target.as_ref().map(|t| t.to_string()))
                .collect();
            audit_facts(verdict, decision, text, targets)
        };
        if let Some(d) = cursors::hold_refusal(&run, info, &self.policy()) {
            let verdict = render(&d);
            let facts = facts_of(&verdict, &d);
            return Judged { verdict, facts };
        }
        let (verdict, decision) = self.judge_decided(sql, &run, decision, info);
        let facts = facts_of(&verdict, &decision);
        let goes_through = !matches!(verdict, Verdict::Refuse(_) | Verdict::Resolve(_));
        if let (Some(m), true) = (new_mode, goes_through) {
            info.session_mode = m;
        }
        if ddl && goes_through {
            self.catalog.forget(&info.database);
            info.changes_names = true;
            for name in statements.iter().filter_map(|s| created_database(&s.text)) {
                self.catalog.created_database(&name);
            }
        }
        Judged { verdict, facts }
    }

    fn judge_decided(
        &self,
        sql: &[u8],
        statements: &[Statement],
        decision: Decision,
        info: &mut SessionInfo,
    ) -> (Verdict, Decision) {
        let policy = self.policy();
        // An EXECUTE's prepared statements carry its text: each text once.
        let text = || {
            let mut texts: Vec<&str> = statements.iter().map(|s| s.text.as_str()).collect();
            texts.dedup();
            texts.join("; ")
        };
        // COPY … PROGRAM runs a program on the server: opaque in every mode.
        if !policy.tables.is_empty() && need::copy_program(statements) {
            let why = "COPY … PROGRAM runs a program on the server, which can change anything blastwall protects without a trace it can count".to_string();
            let d = refusal("copy-program", "COPY".into(), why, HINT_COPY_PROGRAM, "blastwall", text());
            return (render(&d), d);
        }
        let directive = match find_directive(sql, info, statements.len()) {
            Ok(d) => d,
            Err(why) => {
                let d = refusal(
                    "override-directive",
                    "statement".into(),
                    why,
                    HINT_DIRECTIVE,
                    "override directive",
                    text(),
                );
                return (render(&d), d);
            }
        };
        let may_override = policy.roles.get(&info.user).is_some_and(|s| s.may_override)
            || policy.applications.get(&info.application_name).is_some_and(|s| s.may_override);
        // An override waives the rules about the shape and size of one statement, never the
        // forbidden operations or what cannot be seen; other roles get the normal refusal.
        let decision = match &directive {
            Some(_) if may_override => Decision {
                findings: decision
                    .findings
                    .into_iter()
                    .filter(|f| !matches!(f.rule, "protected-range" | "require-where" | "current-of"))
                    .collect(),
            },
            _ => decision,
        };
        let ignored_directive = directive.is_some() && !may_override;
        let overriding = directive.filter(|_| may_override);
        let mut verdict = render(&decision);
        let dry_run = decision.mode() == Some(Mode::DryRun);
        if let (Verdict::Refuse(m), false) = (&mut verdict, dry_run) {
            if ignored_directive {
                note_ignored_directive(m, &info.user);
            }
            return (verdict, decision);
        }
        let need = match check_need(statements, info, &policy, &self.catalog, dry_run) {
            Ok(n) => n,
            Err(names) => {
                let questions = names.into_iter().map(crate::catalog::Question::Indirect).collect();
                return (Verdict::Resolve(questions), decision);
            }
        };
        let need = need.or_else(|| {
            overriding.as_ref().map(|_| CheckNeed {
                verb: statements.iter().flat_map(|s| &s.writes).map(|w| w.op.verb()).next().unwrap_or("statement"),
                target: statements.iter().flat_map(|s| &s.writes).find_map(|w| w.target.clone()),
                dry_run,
            })
        });
        let Some(CheckNeed { verb, target, dry_run }) = need else { return (verdict, decision) };
        if let Some(why) = unverifiable(statements) {
            let why = format!("it must be counted before it is kept, and {why}");
            let d = refusal("unverifiable", verb.into(), why, HINT_UNVERIFIABLE, &policy.source_names(), text());
            return match render(&d) {
                Verdict::Refuse(m) if overriding.is_none() && statements.len() > 1 => (Verdict::Split(Box::new(m)), d),
                v => (v, d),
            };
        }
        // A dry run rolls the statement back; a sequence moved by setval() stays moved.
        if dry_run && statements.iter().flat_map(|s| &s.writes).any(|w| matches!(w.op, Op::Setval)) {
            let why = "a dry run is rolled back, but setval() is not undone by a rollback (sequences are not transactional); it was not run".to_string();
            let d = refusal("dry-run", verb.into(), why, HINT_DRY_RUN_SETVAL, &policy.source_names(), text());
            return (render(&d), d);
        }
        if let Some(ov) = &overriding {
            tracing::warn!(user = %info.user, application_name = %info.application_name, rows = ov.rows, reason = %ov.reason, "override directive used");
        }
        let verdict_notice = verdict.notice().cloned();
        let plan = Verdict::Check(Box::new(CheckPlan {
            verb,
            target,
            dry_run,
            dry_run_reason: dry_run.then(|| decision.findings.first().map(|f| f.why.clone())).flatten(),
            statement: text(),
            effects: effects(statements),
            ignored_directive,
            warned_rule: verdict_notice
                .as_ref()
                .and_then(|_| decision.findings.iter().find(|f| f.mode == Mode::Warn))
                .map(|f| f.rule),
            notice: verdict_notice,
            override_rows: overriding,
            estimate_sql: estimate_text(statements, &policy),
            estimate_msgs: None,
            param_types: Vec::new(),
            point: crate::precheck::point::candidate(statements),
        }));
        (plan, decision)
    }

    /// Analyzes and decides a message's SQL text; remembers what it prepares unless refused.
    /// `Err`: the catalog must be asked first (the current names of protected columns).
    pub fn decide_text(
        &self,
        sql: &[u8],
        info: &mut SessionInfo,
    ) -> Result<(Arc<Vec<Statement>>, Decision), Vec<crate::catalog::Question>> {
        if self.is_harmless(sql, info) {
            return Ok((Arc::default(), Decision::default()));
        }
        self.decide_analyzed(sql, info, None)
    }

    /// [`Guard::decide_text`] for text already known not to be harmless.
    fn decide_analyzed(
        &self,
        sql: &[u8],
        info: &mut SessionInfo,
        pre: Option<&Preanalyzed>,
    ) -> Result<(Arc<Vec<Statement>>, Decision), Vec<crate::catalog::Question>> {
        let policy = self.policy();
        let statements = self.statements_of(sql, info, pre);
        // Protected columns are followed by identity: ask the catalog what they are called now
        // (once per table and 30 s, or after DDL). Offline (`blastwall check`) there is no
        // database, and the policy's names are used.
        let mut questions = Vec::new();
        if !info.database.is_empty() {
            for w in statements.iter().flat_map(|s| &s.writes).filter(|w| w.op.is_row_write()) {
                let Some(t) = w.target.as_ref().and_then(|t| policy.tables.iter().find(|p| p.matches(t))) else {
                    continue;
                };
                if !t.protected_columns.is_empty()
                    && self.catalog.columns_of(&info.database, &t.schema, &t.name).is_none()
                {
                    let q = crate::catalog::Question::Columns { schema: t.schema.clone(), table: t.name.clone() };
                    if !questions.contains(&q) {
                        questions.push(q);
                    }
                }
            }
        }
        // A sequence a policy does not list may still feed a protected column: ask who owns it.
        let setval_matters = policy.tables.iter().any(|t| t.forbid.contains(&policy::Forbid::Setval));
        if setval_matters && !info.database.is_empty() {
            for w in statements.iter().flat_map(|s| &s.writes) {
                let (Op::Setval | Op::AlterSequence | Op::DropSequence, Some(seq)) = (&w.op, &w.target) else {
                    continue;
                };
                let listed = policy.tables.iter().any(|t| t.sequences.iter().any(|s| s.name == seq.name));
                if !listed && self.catalog.sequence_owners(&info.database, &seq.name).is_none() {
                    let q = crate::catalog::Question::SequenceOwner(seq.name.clone());
                    if !questions.contains(&q) {
                        questions.push(q);
                    }
                }
            }
        }
        // Explicit ids (`contract`): which columns of the tables a sequence mints.
        let inserts = crate::contract::statement_inserts(&statements, &policy);
        if !info.database.is_empty() {
            let known = |s: &str, t: &str| self.catalog.minted_of(&info.database, s, t).is_some();
            questions.extend(crate::contract::minted_questions(&inserts, &policy, &known));
        }
        // Each write's relation as the server will resolve it on this session.
        let online = !info.database.is_empty();
        let decided: std::borrow::Cow<'_, [Statement]> = if statements.iter().all(|s| s.executes.is_empty()) {
            std::borrow::Cow::Borrowed(&statements[..])
        } else {
            std::borrow::Cow::Owned(with_prepared(&statements, info))
        };
        let changing = hidden::changing_names(&decided, &self.catalog, info);
        let ids = online
            .then(|| crate::names::ask(&self.catalog, info, &decided, &changing, &policy, &mut questions))
            .flatten();
        let once = std::cell::RefCell::new(Vec::new());
        let cx = crate::names::Context::new(&decided, &changing, &policy, ids.as_deref(), &info.names);
        // Asked for the same write by the columns' questions and by the decision: found once.
        let reached: std::cell::RefCell<Vec<(usize, *const analyze::Write, Option<policy::Reach>)>> =
            Default::default();
        let reach = |i: usize, w: &analyze::Write| {
            let at: *const analyze::Write = w;
            if let Some((.., r)) = reached.borrow().iter().find(|(j, p, _)| *j == i && std::ptr::eq(*p, at)) {
                return r.clone();
            }
            let (r, shadowed) = crate::names::reach_once(&cx, i, w);
            once.borrow_mut().extend(shadowed);
            reached.borrow_mut().push((i, at, r.clone()));
            r
        };
        // The protected columns' names now, of the tables reached under another name.
        if online && questions.is_empty() {
            questions.extend(crate::names::columns_questions(&decided, &reach, &policy, &self.catalog, &info.database));
        }
        if !questions.is_empty() {
            return Err(questions);
        }
        let db = info.database.clone();
        let columns = |t: &policy::TablePolicy| self.catalog.columns_of(&db, &t.schema, &t.name);
        let owners = |seq: &analyze::RelName| self.catalog.sequence_owners(&db, &seq.name);
        let mut view = info.view();
        view.columns = Some(&columns);
        view.sequence_owners = Some(&owners);
        let seen = |d: &str, t: &policy::TablePolicy| self.catalog.may_hold(d, &t.schema, &t.name);
        if online {
            view.seen_in = Some(&seen);
        }
        let reach_of: Option<&policy::TablesOf<'_>> = if online { Some(&reach) } else { None };
        let mut decision = policy::decide_resolved(&decided, view, &policy, reach_of);
        let minted = |s: &str, t: &str| self.catalog.minted_of(&db, s, t);
        for (i, ins) in &inserts {
            let text = &statements[*i].text;
            decision.findings.extend(crate::contract::explicit_id_findings(ins, &minted, text, view, &policy).findings);
        }
        // Writes to blastwall's own state, TRUNCATE of a budgeted table (`contract`).
        decision.findings.extend(crate::contract::statement_findings(&statements, view, &policy));
        info.names.after_judging(&once.into_inner());
        if changing.contains(&true) {
            info.names.changed();
        }
        if !decision.findings.iter().any(|f| f.mode >= Mode::DryRun) {
            remember_prepared(&statements, info);
        }
        Ok((statements, decision))
    }

    /// Judges a FunctionCall protocol message (a function called by OID; its body is unseen).
    pub fn judge_function_call(&self, info: &SessionInfo) -> Judged {
        let st = Statement {
            text: "<FunctionCall message>".into(),
            opaque: vec![Opaque::FunctionCallMessage],
            ..Default::default()
        };
        let decision = policy::decide(&[st], info.view(), &self.policy());
        let verdict = render(&decision);
        let facts = audit_facts(&verdict, &decision, "<FunctionCall message>".into(), Vec::new());
        Judged { verdict, facts }
    }
}

/// Whether function calls must be looked at: the policy judges them (`[opaque] functions`),
/// or it protects tables, which a function's unseen body may reach (verified on the server).
fn calls_matter(policy: &Policy) -> bool {
    policy.opaque.functions != Action::Allow || !policy.tables.is_empty()
}

const HINT_DRY_RUN_SETVAL: &str =
    "Read the sequence's state with SELECT last_value instead; run setval() in enforce mode.";
const HINT_COPY_PROGRAM: &str = "Copy to or from the client instead (COPY … TO STDOUT / FROM STDIN, psql's \\copy).";
const HINT_DIRECTIVE: &str = "Put the directive in a message of one statement, as the README shows.";
const HINT_UNVERIFIABLE: &str =
    "Send the write in a message of its own (psql: one statement per line, or -1 instead of BEGIN/COMMIT in the text).";

/// The texts of a message's statements, as the audit trail and refusals show them.
fn joined(statements: &[Statement]) -> String {
    statements.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("; ")
}

/// A decision of one enforce-mode finding that blastwall makes itself (not a policy rule).
pub fn refusal(
    rule: &'static str,
    what: String,
    why: String,
    hint: &'static str,
    source: &str,
    statement: String,
) -> Decision {
    Decision {
        findings: vec![policy::Finding {
            rule,
            mode: Mode::Enforce,
            what,
            why,
            hint,
            source: source.to_string(),
            statement,
        }],
    }
}

/// The override directive of a message, if it has one. It counts only in a message of a
/// single statement, so it cannot be carried over to a second one.
fn find_directive(
    sql: &[u8],
    info: &SessionInfo,
    statements: usize,
) -> Result<Option<analyze::directive::Override>, String> {
    if !sql.windows(10).any(|w| w == b"blastwall:") {
        return Ok(None);
    }
    let Ok(text) = analyze::decode(sql, &info.client_encoding) else { return Ok(None) };
    let opts = ParseOptions { standard_conforming_strings: info.standard_conforming_strings };
    match analyze::directive::find(&text, opts)? {
        Some(_) if statements > 1 => Err("a blastwall directive applies to a message of one statement only".into()),
        d => Ok(d),
    }
}

/// The database a `CREATE DATABASE` statement creates.
fn created_database(text: &str) -> Option<String> {
    let head = text.trim_start().get(..6)?;
    if !head.eq_ignore_ascii_case("create") || !text.to_ascii_lowercase().contains("database") {
        return None;
    }
    let parsed = analyze::budget::parse(text, 0).ok()?;
    match parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()? {
        pg_query::NodeEnum::CreatedbStmt(c) => Some(c.dbname.clone()),
        _ => None,
    }
}
