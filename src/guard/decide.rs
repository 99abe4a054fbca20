//! A message's decision: its statements (analyzed, cached), the catalog's answers it needs
//! first (protected columns' current names, sequence owners, minted columns, what each write's
//! relation resolves to on this session), then `policy::decide` and the contract's findings.
//!
//! Owns: asking for catalog answers as data and calling the policy with them. Does not own:
//! the rules (`policy`, `contract`), resolving names (`names`), or the verdict (`plan`).

use super::prepared::{remember_prepared, with_prepared};
use super::{Guard, Preanalyzed, Scan, SessionInfo};
use crate::analyze::{self, Op, Statement};
use crate::policy::{self, Decision, Mode};
use std::sync::Arc;

impl Guard {
    /// Analyzes and decides a message's SQL text; remembers what it prepares unless refused.
    /// `Err`: the catalog must be asked first (the current names of protected columns).
    pub fn decide_text(
        &self,
        sql: &[u8],
        info: &mut SessionInfo,
    ) -> Result<(Arc<Vec<Statement>>, Decision), Vec<crate::catalog::Question>> {
        let (scan, harmless) = self.read_text(sql, &info.client_encoding);
        if harmless {
            return Ok((Arc::default(), Decision::default()));
        }
        self.decide_analyzed(sql, info, None, &scan)
    }

    /// [`Guard::decide_text`] for text already known not to be harmless (`scan`: the one
    /// pass over it).
    pub(super) fn decide_analyzed(
        &self,
        sql: &[u8],
        info: &mut SessionInfo,
        pre: Option<&Preanalyzed>,
        scan: &Scan,
    ) -> Result<(Arc<Vec<Statement>>, Decision), Vec<crate::catalog::Question>> {
        let policy = self.policy();
        let statements = self.statements_of(sql, info, pre);
        // The protected columns' names now, asked of the catalog once per table and judgement.
        let known_columns = KnownColumns::default();
        // Protected columns are followed by identity: ask the catalog what they are called now
        // (once per table and 30 s, or after DDL). Offline (`blastwall check`) there is no
        // database, and the policy's names are used.
        let mut questions = Vec::new();
        if !info.database.is_empty() {
            for w in statements.iter().flat_map(|s| &s.writes).filter(|w| w.op.is_row_write()) {
                let Some(t) = w.target.as_ref().and_then(|t| policy.tables.iter().find(|p| p.matches(t))) else {
                    continue;
                };
                if !t.protected_columns.is_empty() && known_columns.of(t, &self.catalog, info).is_none() {
                    let q = crate::catalog::Question::Columns { schema: t.schema.clone(), table: t.name.clone() };
                    if !questions.contains(&q) {
                        questions.push(q);
                    }
                }
            }
        }
        // The message's statements with those each EXECUTE runs.
        let decided: std::borrow::Cow<'_, [Statement]> = if statements.iter().all(|s| s.executes.is_empty()) {
            std::borrow::Cow::Borrowed(&statements[..])
        } else {
            std::borrow::Cow::Owned(with_prepared(&statements, info))
        };
        // A setval's sequence given as an OID, judged as the relation it is.
        let decided = super::setval::by_oid(decided, &self.catalog, info, &mut questions);
        // A sequence a policy does not list may still feed a protected column: ask who owns it.
        let setval_matters = policy.tables.iter().any(|t| t.forbid.contains(&policy::Forbid::Setval));
        let nextval_matters = policy.tables.iter().any(|t| !t.sequences.is_empty());
        if (setval_matters || nextval_matters) && !info.database.is_empty() {
            let setvals = decided.iter().flat_map(|s| &s.writes).filter_map(|w| match (&w.op, &w.target) {
                (Op::Setval | Op::AlterSequence | Op::DropSequence, Some(seq)) if setval_matters => Some(seq),
                _ => None,
            });
            // … and a `nextval` of one a policy does not list, which may be a protected one
            // under another name (`need::feeds_protected`).
            let nextvals =
                decided.iter().flat_map(|s| &s.nextval).flatten().filter(|s| nextval_matters && s.as_oid().is_none());
            for seq in setvals.chain(nextvals) {
                let listed = policy.tables.iter().any(|t| t.sequences.iter().any(|s| s.name == seq.name));
                if !listed && info.names.assumed.sequence_owners(&self.catalog, &info.database, &seq.name).is_none() {
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
            let known = |s: &str, t: &str| info.names.assumed.minted_of(&self.catalog, &info.database, s, t).is_some();
            questions.extend(crate::contract::minted_questions(&inserts, &policy, &known));
        }
        // Each write's relation as the server will resolve it on this session.
        let online = !info.database.is_empty();
        // What the one pass found holds for the message's own statements (an EXECUTE runs
        // prepared ones): a cursor is read only where it found a cursor's word.
        let cursors = scan.cursors || matches!(decided, std::borrow::Cow::Owned(_));
        let changing = super::hidden::changing_names(&decided, &self.catalog, info, cursors);
        // Registered with the session's other writes and DDL in flight, and judged against
        // other sessions' open DDL (`inflight`), under one lock.
        if online {
            info.inflight.judging(&decided, info.settings_certain);
            questions.extend(info.inflight.two_phase.question());
        }
        let ids = online
            .then(|| crate::names::ask(&self.catalog, info, &decided, &changing, &policy, &mut questions))
            .flatten();
        // Which calls are of a user's function (the count's check of `reached` stays on for
        // the others) is in the identities' answer: asked once per database, when a call
        // needs it (sixteenth pass A7d: never asked, every call was taken as a user's).
        let text_rules = policy.tables.iter().any(|t| t.judges_text());
        let calls = || decided.iter().any(|s| s.calls_functions && !s.calls.is_empty());
        // And whether code on a written relation (a trigger) was written by the policy tables'
        // owners, which lets it explain rows of a policy table it changed (`reached`).
        let writes = || {
            decided.iter().any(|s| {
                s.writes.iter().any(|w| w.op.is_row_write() || matches!(w.op, Op::Upsert { .. }))
                    || !super::need::inserts_in(s).is_empty()
            })
        };
        if online && text_rules && self.catalog.last_identities(&info.database).is_none() && (calls() || writes()) {
            let q = crate::catalog::Question::Identities;
            if !questions.contains(&q) {
                questions.push(q);
            }
        }
        // A setval's unqualified sequence, as the session resolves it.
        let mut setval_once = Vec::new();
        let decided = match online && questions.is_empty() {
            true => super::setval::by_name(decided, &changing, &policy, ids.as_deref(), info, &mut setval_once),
            false => decided,
        };
        let once = std::cell::RefCell::new(setval_once);
        let any_shadowed = std::cell::Cell::new(false);
        let cx = crate::names::Context::new(&decided, &changing, &policy, ids.as_deref(), &info.names)
            .with_others(&info.inflight.others);
        // Asked for the same write by the columns' questions and by the decision: found once.
        // By the write's place (a message of thousands of writes must not scan a list per
        // write: forty-sixth pass M1).
        let reached: std::cell::RefCell<std::collections::HashMap<(usize, usize), Option<policy::Reach>>> =
            Default::default();
        let reach = |i: usize, w: &analyze::Write| {
            let at = (i, std::ptr::from_ref(w) as usize);
            if let Some(r) = reached.borrow().get(&at) {
                return r.clone();
            }
            let (r, shadowed) = crate::names::reach_once(&cx, i, w);
            any_shadowed.set(any_shadowed.get() || shadowed.is_some());
            once.borrow_mut().extend(shadowed);
            reached.borrow_mut().insert(at, r.clone());
            r
        };
        // The protected columns' names now, of the tables reached under another name.
        if online && questions.is_empty() {
            questions.extend(crate::names::columns_questions(&decided, &reach, &policy, &self.catalog, info));
        }
        // Foreign keys' actions that set protected columns (`fk_assign`).
        let fk_columns = |t: &policy::TablePolicy| known_columns.of(t, &self.catalog, info);
        let fk = super::fk_assign::findings(
            &decided,
            &|i, w| crate::names::written_oid(&cx, i, w),
            info,
            &policy,
            &self.catalog,
            &fk_columns,
        );
        for q in fk.as_ref().err().into_iter().flatten() {
            if !questions.contains(q) {
                questions.push(q.clone());
            }
        }
        // Relations written beside a policy table with text rules: their rules as the server
        // has them now (asked for this judgement), or the count is taken as unexplained.
        let (mut unverified, mut to_ask) = (Vec::new(), Vec::new());
        if online {
            let beside = super::reached::beside(&decided, &reach, &policy);
            (unverified, to_ask) = verify_beside(beside, &self.catalog, info, &mut questions);
            let unknown =
                |n: &str| info.names.ddl_touched(n) && self.catalog.runs_with(&info.database, n, |_| ()).is_none();
            unverified.extend(super::reached::shadowed(&decided, &policy, &unknown));
        }
        if !questions.is_empty() {
            info.names.runs_asked.append(&mut to_ask);
            return Err(questions);
        }
        let db = info.database.clone();
        let assumed = &info.names.assumed;
        let columns = |t: &policy::TablePolicy| known_columns.of_assumed(t, &self.catalog, assumed, &db);
        let owners = |seq: &analyze::RelName| assumed.sequence_owners(&self.catalog, &db, &seq.name);
        let mut view = info.view();
        view.columns = Some(&columns);
        view.sequence_owners = Some(&owners);
        let seen = |d: &str, t: &policy::TablePolicy| self.catalog.may_hold(d, &t.schema, &t.name);
        if online {
            view.seen_in = Some(&seen);
        }
        let reach_of: Option<&policy::TablesOf<'_>> = if online { Some(&reach) } else { None };
        let mut decision = policy::decide_resolved(&decided, view, &policy, reach_of);
        if online {
            decision.updates_limited_by_identity = updates_limited_by_identity(&decided, &reach, &policy);
        }
        let minted = |s: &str, t: &str| assumed.minted_of(&self.catalog, &db, s, t);
        for (i, ins) in &inserts {
            let text = &statements[*i].text;
            decision.findings.extend(crate::contract::explicit_id_findings(ins, &minted, text, view, &policy).findings);
        }
        decision.findings.extend(fk.unwrap_or_default());
        // Writes to blastwall's own state, TRUNCATE of a budgeted table (`contract`).
        decision.findings.extend(crate::contract::statement_findings(&statements, view, &policy));
        // Rows of a system catalog written by hand (`catalog_write`), by name and by what the
        // written names resolve to.
        let resolved = |i: usize, w: &analyze::Write| crate::names::resolved_oids(&cx, i, w);
        decision.findings.extend(super::catalog_write::findings(&decided, view, &policy, &resolved));
        // Code that may write through another session (`dblink`) cannot be verified.
        decision.findings.extend(super::remote::findings(&decided, info, &policy, &self.catalog, &cx));
        // Rules that write a policy table in the write's place; what the count that follows
        // may find changed (`reached`).
        if online {
            decision.findings.extend(super::reached::rule_findings(
                &decided,
                &self.catalog,
                &info.database,
                view,
                &policy,
            ));
            decision.reached = super::reached::reached(
                &decided,
                &reach,
                &self.catalog,
                &info.database,
                &policy,
                super::reached::Unknown {
                    unverified: &unverified,
                    own: info.taint.holds_functions().then_some(&info.taint),
                    redirects: info.taint.may_redirect() || decided.iter().any(|s| s.makes_view),
                    movable: decided.iter().enumerate().any(|(i, s)| {
                        s.writes.iter().any(|w| {
                            (w.op.is_row_write() || matches!(w.op, Op::Upsert { .. }))
                                && !crate::names::pinned(&cx, i, w)
                        })
                    }),
                },
                // What an INSERT's relation stands for: assumed in the middle of a batch (none
                // for a relation the policy does not name), where the last answer says more.
                &|s: &str, t: &str| {
                    minted(s, t).filter(|c| !c.is_empty()).or_else(|| self.catalog.minted_last(&db, s, t))
                },
            );
        }
        // The names its writes were judged by, read again around the run (`precheck::named`),
        // unless the message itself may lead them elsewhere (DDL, a path change, a body). A
        // message without row writes (every select) is not read again.
        let row_write = |w: &&analyze::Write| w.op.is_row_write() || matches!(w.op, analyze::Op::Upsert { .. });
        if online
            && decided.iter().any(|s| s.writes.iter().any(|w| row_write(&w)))
            && decided
                .iter()
                .all(|s| !s.ddl && s.opaque.is_empty() && !crate::names::may_change_path(s.text.as_bytes()))
        {
            for (i, st) in decided.iter().enumerate() {
                for w in st.writes.iter().filter(row_write) {
                    if let Some(k) = crate::names::judged_key(&cx, i, w).filter(|k| !decision.names.contains(k)) {
                        decision.names.push(k);
                    }
                    decision.recheck |= crate::names::movable(&cx, i, w);
                }
            }
        }
        drop(cx);
        decision.recheck |= any_shadowed.get();
        info.names.after_judging(&once.into_inner());
        for st in decided.iter().filter(|s| s.ddl) {
            info.names.ddl_judged(&st.text);
        }
        if changing.contains(&true) {
            info.names.changed();
        }
        if !decision.findings.iter().any(|f| f.mode >= Mode::DryRun) {
            remember_prepared(&statements, info);
        }
        Ok((statements, decision))
    }
}

/// Whether an update among `statements` reaches a policy table whose updates are limited
/// under a name that is not the policy's (`Reach` follows the table's OID: renamed, swapped
/// out for a new table under the policy's name, moved to another schema): the name alone
/// would leave it uncounted (twenty-seventh pass H1).
fn updates_limited_by_identity(
    statements: &[Statement],
    reach: &dyn Fn(usize, &analyze::Write) -> Option<policy::Reach>,
    policy: &policy::Policy,
) -> bool {
    let limited = |t: &policy::TablePolicy| t.max_update_rows.is_some() || crate::contract::applies(t);
    statements.iter().enumerate().any(|(i, st)| {
        st.writes.iter().filter(|w| matches!(w.op, Op::Update { .. } | Op::MergeUpdate { .. } | Op::Upsert { .. })).any(
            |w| {
                let named = |t: &policy::TablePolicy| w.target.as_ref().is_some_and(|n| t.matches(n));
                reach(i, w).is_some_and(|r| {
                    r.tables.iter().filter_map(|(t, _)| policy.tables.get(*t)).any(|t| limited(t) && !named(t))
                })
            },
        )
    })
}

/// Of the relations written beside a policy table with text rules (`reached::beside`), those
/// whose rules cannot be known as the server has them now: asked of the catalog once per
/// judgement (a rule a DBA added on a direct connection within the answer's 30 s, seventeenth
/// pass V4), and not known where the question could not be asked (the middle of a batch: the
/// session assumed its answer) or the catalog could not be read.
/// Also returns the names newly asked, with when.
fn verify_beside(
    beside: Vec<(String, bool)>,
    catalog: &crate::catalog::Catalog,
    info: &SessionInfo,
    questions: &mut Vec<crate::catalog::Question>,
) -> (Vec<String>, Vec<(String, std::time::Instant)>) {
    let (mut unverified, mut to_ask) = (Vec::new(), Vec::new());
    for (name, route) in beside {
        // Asked for this judgement (a list a judgement that never ended left is not).
        let recent = |at: &std::time::Instant| at.elapsed() < std::time::Duration::from_secs(10);
        let asked = info.names.runs_asked.iter().find(|(n, at)| *n == name && recent(at)).map(|(_, at)| *at);
        let answered = asked.and_then(|at| catalog.runs_answered_since(&info.database, &name, at));
        match answered {
            Some(true) => {}
            Some(false) => unverified.push(name),
            // Not askable here: unknown, unless it is the write's own way to the table, which
            // the session's answer (standing in) says.
            None if info.names.assumed.assumes_indirect(&name) => {
                if !route {
                    unverified.push(name);
                }
            }
            None => {
                if asked.is_none() {
                    to_ask.push((name.clone(), std::time::Instant::now()));
                }
                let q = crate::catalog::Question::Indirect(name);
                if !questions.contains(&q) {
                    questions.push(q);
                }
            }
        }
    }
    (unverified, to_ask)
}

/// A table's protected columns' names now, as the catalog (or the judgement's assumptions)
/// said them: read once per table and judgement (the decision asks for each rule, and each
/// read builds the catalog's key and reads the clock).
type ColumnNames = Option<Vec<(String, String)>>;

#[derive(Default)]
struct KnownColumns(std::sync::Mutex<Vec<(TableKey, ColumnNames)>>);

/// A policy table's schema and name.
type TableKey = (String, String);

impl KnownColumns {
    fn of(&self, t: &policy::TablePolicy, catalog: &crate::catalog::Catalog, info: &SessionInfo) -> ColumnNames {
        self.of_assumed(t, catalog, &info.names.assumed, &info.database)
    }

    fn of_assumed(
        &self,
        t: &policy::TablePolicy,
        catalog: &crate::catalog::Catalog,
        assumed: &crate::catalog::Assumed,
        database: &str,
    ) -> ColumnNames {
        // By the schema and name the answer is kept under (`Assumed::columns_of`).
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, names)) = known.iter().find(|((s, n), _)| *s == t.schema && *n == t.name) {
            return names.clone();
        }
        let names = assumed.columns_of(catalog, database, &t.schema, &t.name);
        known.push(((t.schema.clone(), t.name.clone()), names.clone()));
        names
    }
}
