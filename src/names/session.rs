//! A session's resolved names (`Resolutions`, kept in its `SessionInfo`): what each written name
//! resolves to on the session (`to_regclass`), a view's reach, an `ON CONFLICT ON CONSTRAINT`
//! constraint's columns — and when those answers are dropped: a message that may change them,
//! the transaction end after one, DDL in any session (the catalog's generation), 30 s. Also
//! the statements sent and not yet answered that may redirect names (`earlier`).
//!
//! Owns: the cache and its expiry. Does not own: asking (`session`), what may change a name
//! (`effect`, `guard::hidden`).

use super::effect::PathEffect;
use super::view::{reaches_answer, View};
use super::TTL;
use std::collections::HashMap;
use std::time::Instant;

/// What one name resolves to on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// This relation (0: none; a write to it fails), and its (schema, name) and column
    /// names now.
    /// `reads_system`: it is a view whose rule, at some level, reads a relation `initdb` made
    /// (a system catalog: `guard::catalog_write`).
    /// `movable`: a role that does not own the policy tables may make the name lead elsewhere
    /// while a write waits (`sql::movable`).
    Oid {
        oid: u32,
        view: Option<View>,
        name: Option<(String, String)>,
        columns: Vec<String>,
        reads_system: bool,
        movable: bool,
    },
    /// It could not be asked (in the middle of an extended batch): judged as everything it
    /// may be, for the judgement that asked only.
    Assumed(String),
}

/// Why a name the session's server would resolve otherwise once it computes its search path
/// again is judged as every relation it may be (`sql::stale_path`).
const STALE_PATH: &str = "the session's server still resolves names by a search path computed before \
     a schema privilege or role membership was taken away, and resolves this name otherwise once it \
     computes it again (which another session can make it do)";

/// A session's resolved names.
#[derive(Debug, Clone, Default)]
pub struct Resolutions {
    generation: u64,
    learned: Option<Instant>,
    relations: HashMap<String, Resolved>,
    /// (relation key, constraint) → the constraint's columns (empty: no such constraint).
    constraints: HashMap<(String, String), Vec<String>>,
    /// The identities could not be asked: every name judged as everything it may be, once.
    pub assumed_identities: bool,
    /// A message that may change the path was judged since the last transaction end: the
    /// next end (`COMMIT`, `ROLLBACK`, …) may undo it (`SET LOCAL`, a `SET` rolled back).
    changed_since_end: bool,
    /// The text being judged is a protocol Parse: the server resolves its names again each
    /// time it runs, after the path or temporary tables may have changed. Its relations are
    /// judged as they resolve now (a write whose name may lead elsewhere is counted, and where
    /// it leads is read around each run: `precheck::named`); an answer that only holds for
    /// one run (a `setval` sequence, a relation other questions need by OID) is not used.
    pub persisting: bool,
    /// Statements sent to the server and not yet answered (its ReadyForQuery) that may make a
    /// name lead elsewhere (`earlier`): the server runs them before what is judged now, and
    /// the answers above cannot show what they did. Kept by `crate::session`.
    pub earlier: Vec<super::Earlier>,
    /// The last answer about the policy tables' identities this session was judged with
    /// (`names::ask`: it stands in where they cannot be asked).
    pub last_identities: Option<std::sync::Arc<super::Identities>>,
    /// What the catalog could not be asked and was assumed, for the judgement that asked only
    /// (`catalog::Assumed`: never stored where another judgement takes it for an answer).
    pub assumed: crate::catalog::Assumed,
    /// The catalog's generations when the last judgement began (what an answer about the
    /// policy tables asked for it is stamped with).
    pub identities_asked_at: super::Asked,
    /// The last judgement found no answer about the policy tables that may stand in, and why
    /// (`names::ask`: asked before a change blastwall saw, or none): its names are taken as
    /// possibly any policy table.
    pub stale_identities: Option<&'static str>,
    /// Until when, and under which identity generation, a stand-in was found usable before a
    /// batch (`names::before_batch`).
    stand_in: Option<(Instant, u64)>,
    /// The identity generation the stand-in was found usable under when the current batch
    /// began: changes since then made by the batch's own statements (kept in `earlier`) do
    /// not keep it from standing in (`names::ask`).
    pub batch_stand_in: Option<u64>,
    /// When this session last let through a call of a function that may have run DDL
    /// (`names::called`): answers about the policy tables learned before do not stand in.
    pub called_at: Option<Instant>,
    /// A message judged since the catalog's answers were last dropped after it ran may have
    /// changed the policy tables' identities (not only made new plain tables).
    pub identities_may_change: bool,
    /// Relations written beside a policy table with text rules whose rules this judgement
    /// asked the catalog about, and when (`guard::reached::beside`): an answer learned since
    /// is the server's now; the list ends with the judgement.
    pub runs_asked: Vec<(String, Instant)>,
    /// The relation names this session's DDL named (`ddl::Class::Named`: a rule, trigger or
    /// policy made on them, …), or any name (`ddl_any`: DDL that may change what any name
    /// leads to): where their rules are not known, a write of one is not explained by its own
    /// count (`guard::reached::shadowed`).
    pub ddl_named: Vec<String>,
    pub ddl_any: bool,
}

impl Resolutions {
    pub fn is_empty(&self) -> bool {
        self.relations.is_empty() && self.constraints.is_empty()
    }

    pub fn clear(&mut self) {
        self.relations.clear();
        self.constraints.clear();
        self.learned = None;
    }

    /// Once a message is judged: drops the answers it may make wrong when it runs. Free on a
    /// session that has resolved nothing and is not in a transaction block, for a message of
    /// one statement (select-only): it can neither change an answer nor open a transaction
    /// whose end undoes a change (`BEGIN; SET LOCAL …` is two).
    /// `effect`: the message's `names::path_effect`, read once by the caller.
    pub fn after_message(&mut self, effect: PathEffect, sql: &[u8], in_transaction: bool) {
        if self.is_empty() && !in_transaction && !self.changed_since_end && !sql.contains(&b';') {
            return;
        }
        match effect {
            PathEffect::Change => self.changed(),
            PathEffect::End if self.changed_since_end => {
                self.clear();
                self.changed_since_end = false;
            }
            _ => {}
        }
    }

    /// A message judged now may change what names resolve to in a way its words do not show
    /// (an object it mentions runs `set_config`, an `EXECUTE` or `FETCH` of one): its answers
    /// are dropped, and again at the next transaction end, which may undo the change.
    pub fn changed(&mut self) {
        self.clear();
        self.changed_since_end = true;
    }

    /// Drops the answers when DDL was seen since (the catalog's `generation`) or they are old.
    pub fn expire(&mut self, generation: u64) {
        if self.generation != generation || self.learned.is_some_and(|t| t.elapsed() >= TTL) {
            self.clear();
            self.generation = generation;
        }
    }

    /// After a judgement: drops what was assumed for it, and the answers used once.
    pub fn after_judging(&mut self, once: &[String]) {
        self.relations.retain(|k, r| !matches!(r, Resolved::Assumed(_)) && !once.contains(k));
        self.assumed_identities = false;
        self.stale_identities = None;
        self.runs_asked.clear();
        if !self.assumed.is_empty() {
            self.assumed.decided();
        }
    }

    /// Records the names a DDL statement of this session judged now may have changed.
    pub fn ddl_judged(&mut self, text: &str) {
        const KEPT: usize = 64;
        // A function, procedure, type or operator made or dropped puts no rule on a relation
        // (nineteenth pass FPp: `CREATE FUNCTION pg_temp.f()` made every later write of a
        // policy table in a batch unexplained).
        let words: Vec<String> = text.split_whitespace().take(4).map(|w| w.to_ascii_lowercase()).collect();
        let object = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["create", "or", "replace", o, ..] | ["create" | "alter" | "drop", o, ..] => Some(o.to_string()),
            _ => None,
        };
        const NO_RULES: [&str; 6] = ["function", "procedure", "aggregate", "operator", "type", "domain"];
        if object.is_some_and(|o| NO_RULES.contains(&o.as_str())) {
            return;
        }
        match super::ddl::classify(text) {
            super::ddl::Class::Nothing => {}
            super::ddl::Class::Named(names) => {
                for n in names.iter() {
                    if !self.ddl_named.iter().any(|m| m.eq_ignore_ascii_case(n)) {
                        self.ddl_named.push(n.to_ascii_lowercase());
                    }
                }
                if self.ddl_named.len() > KEPT {
                    self.ddl_named.clear();
                    self.ddl_any = true;
                }
            }
            super::ddl::Class::Any(_) => self.ddl_any = true,
        }
    }

    /// Whether this session's DDL may have changed what a write to `name` runs.
    pub fn ddl_touched(&self, name: &str) -> bool {
        self.ddl_any || self.ddl_named.iter().any(|m| m.eq_ignore_ascii_case(name))
    }

    /// The server answered every sync point up to `answered`: what was sent for them is
    /// no longer earlier than anything judged from now on.
    pub fn answered(&mut self, answered: u64) {
        if !self.earlier.is_empty() {
            self.earlier.retain(|e| e.ord > answered);
        }
    }

    /// Whether a stand-in found before a batch still holds (`names::before_batch`); it is the
    /// batch's then.
    pub fn stand_in_holds(&mut self, generation: u64) -> bool {
        let holds = self.stand_in.is_some_and(|(until, g)| g == generation && Instant::now() < until);
        if holds {
            self.batch_stand_in = Some(generation);
        }
        holds
    }

    /// A function called now may have run DDL (`names::called`).
    pub fn called_now(&mut self) {
        self.called_at = Some(Instant::now());
        self.stand_in = None;
    }

    pub(super) fn stand_in_until(&mut self, until: Instant, generation: u64) {
        self.stand_in = Some((until, generation));
        self.batch_stand_in = Some(generation);
    }

    pub fn relation(&self, key: &str) -> Option<&Resolved> {
        self.relations.get(key)
    }

    pub fn constraint(&self, key: &str, constraint: &str) -> Option<&Vec<String>> {
        self.constraints.get(&(key.to_string(), constraint.to_string()))
    }

    pub fn assume(&mut self, key: &str, why: &str) {
        self.relations.insert(key.to_string(), Resolved::Assumed(why.to_string()));
    }

    /// Reads the answer of [`relations_query`] for `keys` (a failed query: as assumed).
    pub fn learn_relations(&mut self, keys: &[String], rows: Option<&[Vec<Option<String>>]>) {
        self.learned.get_or_insert_with(Instant::now);
        for (i, k) in keys.iter().enumerate() {
            let Some(rows) = rows else {
                self.assume(k, "the catalog could not be read on this session");
                continue;
            };
            let row = rows.iter().find(|r| r.first().and_then(|v| v.as_deref()) == Some(&(i + 1).to_string()));
            let get = |j: usize| row.and_then(|r| r.get(j)).and_then(|v| v.as_deref());
            let oid = get(1).and_then(|o| o.parse().ok()).unwrap_or(0);
            let mut view = reaches_answer(get(2), get(3), get(4)).map(|v| v.with_defs(get(9)));
            if let Some(v) = view.as_mut() {
                v.below = get(8).unwrap_or("").split(',').filter_map(|b| b.parse().ok()).collect();
            }
            let name = get(5).zip(get(6)).map(|(s, n)| (s.to_string(), n.to_string()));
            let columns = get(7).map(|c| c.split('\u{1f}').map(str::to_string).collect()).unwrap_or_default();
            let reads_system = get(10) == Some("t");
            if get(11) == Some("t") {
                self.assume(k, STALE_PATH);
                continue;
            }
            let movable = get(12) == Some("t");
            self.relations.insert(k.clone(), Resolved::Oid { oid, view, name, columns, reads_system, movable });
        }
    }

    pub fn learn_constraint(&mut self, key: &str, constraint: &str, rows: &[Vec<Option<String>>]) {
        self.learned.get_or_insert_with(Instant::now);
        let cols = rows.iter().filter_map(|r| r.first().cloned().flatten()).collect();
        self.constraints.insert((key.to_string(), constraint.to_string()), cols);
    }
}
