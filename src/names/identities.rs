//! The policy tables' identities in one database (`Identities`: the OIDs each is known by, the
//! names it is called by now, whether a function of the database may run DDL), read from the
//! answer of `sql::identities_query`; and what may stand in for them where they cannot be
//! asked (in the middle of an extended batch): the last answer, asked since the last change
//! blastwall saw — DDL through blastwall (the catalog's identity generation), and for the
//! session that called it, a function that may run DDL (`called`). So that a batch has one,
//! they are asked before its first message when none may stand in (`before_batch`).
//!
//! Owns: that answer, when it stands in, and asking before a batch. Does not own: asking
//! (`crate::session`), the stand-in's use in a judgement (`super::ask`).

use super::{Policy, Statement, TTL};
use std::time::{Duration, Instant};

/// How old a session's last answer about the policy tables' identities may be to stand in
/// where they cannot be asked (in the middle of an extended batch).
const LAST_IDENTITIES_USABLE: Duration = Duration::from_secs(300);

/// How long a stand-in must still be usable when a batch starts: it is asked again before the
/// batch otherwise ([`before_batch`]), so that the batch's middle does not outlive it.
const STAND_IN_MARGIN: Duration = Duration::from_secs(60);

/// Why a name in the middle of a batch has nothing to stand in for an answer: DDL through
/// blastwall since the last answer (the stale case), or no answer at all.
pub const CHANGED_SINCE: &str = "DDL passed through blastwall since this session's last answer";
pub const CALLED_SINCE: &str = "a function this session called since its last answer may have run DDL";
pub const NO_ANSWER: &str = "blastwall has no answer about the policy tables in this database that may stand in here (none since it started, or the last is over five minutes old)";

/// What the policy tables are in one database, as the catalog said.
#[derive(Debug, Clone)]
pub struct Identities {
    /// The policy's tables this answer is for, in policy order ((schema, name)).
    key: Vec<(String, String)>,
    /// Per policy table: the OIDs it is known by (its name now; the OID first seen).
    pub oids: Vec<Vec<u32>>,
    /// Per policy table: the OID remembered for it when asked, if no relation has it any more
    /// (dropped), else 0: the one its name leads to now takes its place
    /// (`Catalog::learn_identities`).
    pub gone: Vec<u32>,
    /// Per policy table: the names it is called by now, each with how ([`OWN`]: its own;
    /// [`RELATIVE`]: a view's over it, a child's, a view's over those; [`PARENT`]: an
    /// inheritance parent's).
    pub(super) relnames: Vec<Vec<(String, u8)>>,
    pub(super) learned: Instant,
    /// The catalog's generation and identity generation when it was asked ([`Asked`]): DDL
    /// through blastwall since then may have renamed a policy table or made a view over one.
    asked: Asked,
    /// Some function of the database may itself run DDL (`sql::ddl_functions`; unknown: may).
    ddl_functions: bool,
    /// The database has code a role other than the policy tables' owners wrote
    /// (`sql::untrusted_code`; unknown: it has).
    pub untrusted_code: bool,
    /// Some function writes a name without a schema and searches the caller's temporary
    /// schema first (`sql::temp_steerable`; unknown: one does).
    pub temp_steerable: bool,
    /// The names of the functions whose caller can steer what they write (`sql::steered`),
    /// sorted; `None`: not answered (every call may be one).
    pub steered: Option<Vec<String>>,
    /// Some trigger function is one of those, or a stored object (a constraint, a default, an
    /// index, a view, a policy, a domain, a cast, an operator) uses one (unknown: one is).
    pub steered_triggers: bool,
    /// The names of the database's functions outside `pg_catalog` (`sql::user_function_names`),
    /// sorted; `None`: not answered.
    pub user_functions: Option<Vec<String>>,
}

impl Identities {
    /// Whether the answer is still good for this policy.
    pub fn fresh_for(&self, policy: &Policy) -> bool {
        self.learned.elapsed() < TTL && self.for_policy(policy)
    }

    /// Whether it may stand in where the catalog cannot be asked (in the middle of a batch):
    /// nothing blastwall saw could have changed it since it was asked (no DDL but new plain
    /// tables passed through blastwall: the catalog's identity `generation` is the same), and
    /// it is at most five minutes old.
    pub fn stands_in(&self, policy: &Policy, generation: u64) -> bool {
        self.asked.1 == generation && self.learned.elapsed() < LAST_IDENTITIES_USABLE && self.for_policy(policy)
    }

    /// Until when it may stand in (its generation still current), less [`STAND_IN_MARGIN`].
    fn stand_in_until(&self) -> Instant {
        self.learned + (LAST_IDENTITIES_USABLE - STAND_IN_MARGIN)
    }

    /// Whether it was asked under the catalog's identity generation `generation`.
    pub fn asked_at(&self, generation: u64) -> bool {
        self.asked.1 == generation
    }

    /// Whether nothing was forgotten since it was asked (it is a real answer then).
    pub fn current(&self, now: Asked) -> bool {
        self.asked == now
    }

    fn for_policy(&self, policy: &Policy) -> bool {
        self.key.len() == policy.tables.len()
            && self.key.iter().zip(&policy.tables).all(|((s, n), t)| *s == t.schema && *n == t.name)
    }
}

/// How a policy table is called by a name ([`Identities`]).
pub(super) const OWN: u8 = 1;
pub(super) const RELATIVE: u8 = 2;
pub(super) const PARENT: u8 = 4;

/// The catalog's generation and identity generation (`Catalog::generation`,
/// `Catalog::identity_generation`) when a question was asked.
pub type Asked = (u64, u64);

/// Reads the answer of `sql::identities_query`, asked under the catalog's generations `asked` (a
/// failed query: every table known by its policy name only, every name of it may reach it).
pub fn identities_answer(policy: &Policy, rows: &[Vec<Option<String>>], asked: Asked) -> Identities {
    let n = policy.tables.len();
    let mut oids = vec![Vec::new(); n];
    let mut relnames: Vec<Vec<(String, u8)>> = policy.tables.iter().map(|t| vec![(t.name.clone(), OWN)]).collect();
    let mut ddl_functions = true;
    let mut untrusted_code = true;
    let mut temp_steerable = true;
    let mut steered = None;
    let mut steered_triggers = true;
    let mut user_functions = None;
    let mut gone = vec![0; n];
    for r in rows {
        let get = |i: usize| r.get(i).and_then(|v| v.as_deref());
        let names = |v: &str| {
            let mut names: Vec<String> = v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
            names.sort_unstable();
            names
        };
        match (get(0), get(2)) {
            (Some(k @ ("f" | "x" | "z" | "w")), v) => {
                let yes = v != Some("false");
                match k {
                    "f" => ddl_functions = yes,
                    "x" => untrusted_code = yes,
                    "z" => temp_steerable = yes,
                    _ => steered_triggers = yes,
                }
                continue;
            }
            (Some("u"), Some(v)) => {
                user_functions = Some(names(v));
                continue;
            }
            (Some("y"), Some(v)) => {
                steered = Some(names(v));
                continue;
            }
            _ => {}
        }
        let (Some(kind), Some(Ok(i)), Some(Ok(oid)), Some(name)) =
            (get(0), get(1).map(str::parse::<usize>), get(2).map(str::parse::<u32>), get(3))
        else {
            continue;
        };
        if i >= n {
            continue;
        }
        if kind == "g" {
            gone[i] = oid;
            continue;
        }
        if kind == "t" && !oids[i].contains(&oid) {
            oids[i].push(oid);
        }
        let how = match kind {
            "t" => OWN,
            "p" => PARENT,
            _ => RELATIVE,
        };
        match relnames[i].iter_mut().find(|(x, _)| x == name) {
            Some(r) => r.1 |= how,
            None => relnames[i].push((name.to_string(), how)),
        }
    }
    Identities {
        key: policy.tables.iter().map(|t| (t.schema.clone(), t.name.clone())).collect(),
        oids,
        gone,
        relnames,
        learned: Instant::now(),
        asked,
        ddl_functions,
        untrusted_code,
        temp_steerable,
        steered,
        steered_triggers,
        user_functions,
    }
}

/// A message let through that calls a function other than a well-known built-in (`SELECT
/// f()`, `CALL p()`), in a database where a function may itself run DDL (as the last answer
/// about the policy tables said, `sql::ddl_functions`, or no answer asked since the last
/// change of their identities is known): the answers about the policy tables learned before
/// it no longer stand in for this session (a temporary view over a policy table made by the
/// function's body). They are asked again before its next batch (`before_batch`). Other
/// sessions' answers stay: counting every such call as a change for all of them made every
/// session ask again, and refused their batches whenever another's call landed in the middle
/// (measured: README "Names").
pub fn called(statements: &[Statement], catalog: &crate::catalog::Catalog, info: &mut crate::guard::SessionInfo) {
    use crate::analyze::Opaque;
    let calls = statements.iter().any(|s| s.calls_functions || s.opaque.iter().any(|o| matches!(o, Opaque::Call(_))));
    if calls && !info.database.is_empty() && functions_may_run_ddl(catalog, &info.database) {
        info.names.called_now();
    }
}

/// Whether a function of `database` may itself run DDL, as the last answer about the policy
/// tables asked since the last change of their identities says (none: it may).
fn functions_may_run_ddl(catalog: &crate::catalog::Catalog, database: &str) -> bool {
    let last = catalog.last_identities(database);
    last.is_none_or(|i| !i.asked_at(catalog.identity_generation()) || i.ddl_functions)
}

/// What to ask before a batch's first message (empty: nothing): a write in the batch's middle
/// cannot ask, and with no answer about the policy tables that may stand in it is refused
/// (`anything`); with no current names for their protected columns, a renamed one would be
/// missed. So when either is missing (blastwall started, DDL through blastwall since, five
/// minutes old), the policy tables' identities and their protected columns' names are asked
/// first (and the judgement generations to stamp them with are set). The answers are the
/// database's: one round of questions per database, whatever the session. Cheap when the
/// session's last check still holds (one atomic load, one clock read).
pub fn before_batch(
    catalog: &crate::catalog::Catalog,
    info: &mut crate::guard::SessionInfo,
    policy: &Policy,
) -> Vec<crate::catalog::Question> {
    use crate::catalog::Question;
    let generation = catalog.identity_generation();
    if info.names.stand_in_holds(generation) {
        return Vec::new();
    }
    if info.database.is_empty() || policy.tables.is_empty() {
        info.names.stand_in_until(Instant::now() + STAND_IN_MARGIN, generation);
        return Vec::new();
    }
    let usable = LAST_IDENTITIES_USABLE - STAND_IN_MARGIN;
    let known = [catalog.last_identities(&info.database), info.names.last_identities.clone()];
    let after_call = |i: &Identities| info.names.called_at.is_none_or(|t| i.learned > t);
    let ids = known.into_iter().flatten().filter(|i| i.stands_in(policy, generation) && after_call(i));
    let ids = ids.max_by_key(|i| i.learned);
    let ids = ids.filter(|i| i.learned.elapsed() < usable);
    let mut questions: Vec<Question> = policy
        .tables
        .iter()
        .filter(|t| !t.protected_columns.is_empty())
        .filter(|t| !catalog.columns_stand_in(&info.database, &t.schema, &t.name, generation, usable))
        .map(|t| Question::Columns { schema: t.schema.clone(), table: t.name.clone() })
        .collect();
    match ids {
        Some(ids) if questions.is_empty() => {
            // The columns' answers were asked at most `usable` ago too: a margin's time.
            let until = ids.stand_in_until().min(Instant::now() + STAND_IN_MARGIN);
            info.names.stand_in_until(until, generation);
            info.names.last_identities = Some(ids);
        }
        Some(_) => {}
        None => questions.insert(0, Question::Identities),
    }
    if !questions.is_empty() {
        info.names.identities_asked_at = (catalog.generation(), generation);
    }
    questions
}
