//! The guard: judges one message's SQL text — analysis (cached), `policy::decide`, what needs
//! counting — into a typed [`Verdict`] with the audit facts of the same decision, and renders
//! the words a client sees from the decision's findings (`render`: every refusal and warning
//! of a rule, blastwall's own included).
//!
//! Owns: the per-session facts that outlive one message (SQL-level prepared statements, the
//! session's own stricter mode), the order of one judgement (the one pass over the text
//! (`prefilter`), the decision (`decide`), the verdict (`plan`)), and the policy handle that
//! reloads swap.
//! Does not own: the rules (`policy`), the parser (`analyze`), or carrying the verdict out
//! (`session`, `relay`).

use crate::analyze::{self, Opaque, Statement};
use crate::policy::{self, Action, Decision, Mode, Policy, SessionView};
use crate::precheck::CheckPlan;

mod analysis;
mod catalog_write;
mod copies;
pub mod cursors;
mod decide;
mod fk_assign;
mod hidden;
mod maintenance;
mod need;
pub(crate) use need::inserts_in;
mod plan;
mod prefilter;
mod prepared;
mod reached;
use prepared::with_prepared;
mod remote;
mod render;
mod setval;
mod steps;
mod taint;
mod words;

use crate::wire::messages::ProxyMessage;
pub use analysis::{Preanalyzed, Reading};
pub use copies::{any_may_move_a_sequence, may_move_a_sequence};
pub use prefilter::Scan;
use render::audit_facts;
pub use render::{refusal_message, render};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use words::{lone_mode_change, session_mode_change};
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
    pub facts: Option<Box<crate::audit::Facts>>,
    /// What the one pass over the text found ([`Scan::UNKNOWN`] when it was not read).
    pub scan: Scan,
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
    /// A statement that may change `client_encoding` was sent and the server has not answered
    /// everything since: a later message's non-ASCII text may be decoded otherwise than the
    /// reported encoding says (`session`), and is read as in an unknown encoding.
    pub encoding_in_flight: bool,
    pub in_transaction: bool,
    /// The session's transaction holds writes whose moves of protected sequences are
    /// remembered (`session::undone`): a statement that calls `nextval` of one is counted
    /// even when its steps are known from its text, so that where it leaves the sequence is
    /// read (thirty-fourth pass H1, H2: an unread `SELECT nextval(…)` between writes looked
    /// like another session's value, and the writes before it were never put back).
    pub moves_remembered: bool,
    /// … and a rollback now would put one back (a run of them beyond its allowance): a value
    /// taken ahead now would lie above what that put-back goes under (`steps::takes_ahead`).
    pub moves_beyond_slack: bool,
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
    /// The session's temporary schema, for the hidden callers it counts (`catalog::OwnTemp`).
    pub temp: crate::catalog::OwnTemp,
    /// The session's copy of its database's hidden callers (read for every statement).
    pub hidden: crate::catalog::HiddenCache,
    /// Whether the session's temporary schema holds code (`taint`).
    pub taint: crate::catalog::Taint,
    /// What the session has in flight, and other sessions' open DDL (`inflight`).
    pub inflight: crate::inflight::Mine,
    /// The last text the one pass read (`prefilter::LastScan`).
    pub last_scan: prefilter::LastScan,
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
    /// Writes and DDL in flight per database, across sessions (`inflight`).
    pub inflight: crate::inflight::Inflight,
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
            inflight: Default::default(),
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
        let (scan, harmless) = match pre {
            // Even the one pass over a long text is left to the blocking thread.
            None if sql.len() >= ANALYZE_OFF_LOOP_BYTES => {
                return Judged { verdict: Verdict::Analyze, facts: None, scan: Scan::UNKNOWN }
            }
            None => self.read_scanned(sql, info.last_scan.scan(sql), &info.client_encoding),
            Some(p) => (p.scan, p.harmless),
        };
        let (verdict, facts) = self.judge_once(sql, info, pre, &scan, harmless);
        // What was assumed for its rounds of questions stands for this judgement only.
        if !matches!(verdict, Verdict::Resolve(_) | Verdict::Analyze) {
            info.names.assumed.judged();
        }
        // What names resolve to may change when this message runs: the answers it was judged
        // with are dropped once judged (only a text with a word that may change them is read).
        if scan.path && !matches!(verdict, Verdict::Resolve(_) | Verdict::Analyze) {
            let effect = crate::names::path_effect(sql);
            info.names.after_message(effect, sql, info.in_transaction);
            // … and whether they may come to mean another role's new objects (`taint`).
            if effect == crate::names::PathEffect::Change {
                info.taint.may_change_path();
            }
        }
        Judged { verdict, facts, scan }
    }

    fn judge_once(
        &self,
        sql: &[u8],
        info: &mut SessionInfo,
        pre: Option<&Preanalyzed>,
        scan: &Scan,
        harmless: bool,
    ) -> (Verdict, Option<Box<crate::audit::Facts>>) {
        let plain = |verdict| (verdict, None);
        // A FETCH or MOVE of a cursor that is not plain may run what its query calls
        // (`cursors`): judged, never relayed as harmless.
        let reads_cursor = scan.cursors && cursors::note(sql, info) && self.calls_matter.load(Ordering::Acquire);
        // A relation, type or operator whose use runs a user function (a view's column, a
        // domain's CHECK): the text names no function, but is judged like a call of one.
        let harmless = match self.mentions_hidden_caller(sql, info, harmless, scan.maintenance) {
            Ok(mentioned) => harmless && !mentioned,
            Err(ask) => return plain(ask),
        };
        if harmless && !reads_cursor {
            // A function body may change what names resolve to (CREATE RULE in a function):
            // the catalog's answers do not outlive a call the guard cannot see into.
            if scan.paren && !info.database.is_empty() {
                let statements = self.statements_of(sql, info, pre);
                if statements.iter().any(|s| s.calls_functions) {
                    self.names_may_change(info, false);
                    crate::names::called(&statements, &self.catalog, info);
                    info.taint.may_change();
                }
            }
            if info.taint.learned_in_block() {
                taint::after_judging(&self.statements_of(sql, info, pre), info, false);
            }
            return plain(Verdict::Allow);
        }
        let (statements, decision) = match self.decide_analyzed(sql, info, pre, scan) {
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
                    return (verdict, facts);
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
                return (verdict, facts);
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
        // What the one pass found holds for the statements that run only when they are the
        // message's own (an EXECUTE runs prepared ones).
        let scan = if matches!(run, std::borrow::Cow::Borrowed(_)) { *scan } else { Scan::UNKNOWN };
        // A cursor's query runs when it is read (`cursors`).
        if scan.cursors {
            cursors::reads_marked(&mut run, info);
        }
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
        if let Some(d) = scan.cursors.then(|| cursors::hold_refusal(&run, info, &self.policy())).flatten() {
            let verdict = render(&d);
            let facts = facts_of(&verdict, &d);
            return (verdict, facts);
        }
        let (verdict, decision) = self.judge_decided(sql, &scan, &run, decision, info);
        let facts = facts_of(&verdict, &decision);
        let goes_through = !matches!(verdict, Verdict::Refuse(_) | Verdict::Resolve(_));
        if let (Some(m), true) = (new_mode, goes_through) {
            info.session_mode = m;
        }
        if goes_through {
            // What ran a user function may have changed the session's temporary schema
            // (`taint`); a default's `nextval` cannot.
            // Unknown while the policy judges no calls (the set is never asked): nothing is
            // judged by the taint then.
            let reached = matches!(verdict, Verdict::Check(_))
                && self.calls_matter.load(Ordering::Acquire)
                && !info.taint.runs_code()
                && statements.iter().any(|s| taint::reaches_caller(s, &self.catalog, info));
            taint::after_judging(&statements, info, ddl || reached);
        }
        if ddl && goes_through {
            self.names_may_change(info, crate::names::changes_identities(&run));
            crate::names::called(&run, &self.catalog, info);
            for name in statements.iter().filter_map(|s| created_database(&s.text)) {
                self.catalog.created_database(&name);
            }
            for (old, new) in statements.iter().filter_map(|s| renamed_database(&s.text)) {
                self.catalog.renamed_database(&old, &new);
            }
            let dropped =
                statements.iter().flat_map(|s| &s.writes).filter(|w| matches!(w.op, analyze::Op::DropDatabase));
            for name in dropped.filter_map(|w| w.target.as_ref()) {
                self.catalog.renamed_database(&name.name, &name.name);
            }
        }
        (verdict, facts)
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
        Judged { verdict, facts, scan: Scan::UNKNOWN }
    }
}

/// Whether function calls must be looked at: the policy judges them (`[opaque] functions`),
/// or it protects tables, which a function's unseen body may reach (verified on the server).
fn calls_matter(policy: &Policy) -> bool {
    policy.opaque.functions != Action::Allow || !policy.tables.is_empty()
}

/// The texts of a message's statements, as the audit trail and refusals show them.
pub(super) fn joined(statements: &[Statement]) -> String {
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
        ..Default::default()
    }
}

/// The database an `ALTER DATABASE … RENAME TO …` renames, and its new name.
fn renamed_database(text: &str) -> Option<(String, String)> {
    let head = text.trim_start().get(..5)?;
    if !head.eq_ignore_ascii_case("alter") || !text.to_ascii_lowercase().contains("database") {
        return None;
    }
    let parsed = analyze::budget::parse(text, 0).ok()?;
    match parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()? {
        pg_query::NodeEnum::RenameStmt(r) if r.rename_type() == pg_query::protobuf::ObjectType::ObjectDatabase => {
            Some((r.subname.clone(), r.newname.clone()))
        }
        _ => None,
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
