//! Names resolved as the server will resolve them: which relation a write's name reaches on the
//! client's own session (its `search_path`, its temporary schema, its role), so that every text
//! rule applies to the relation the server will touch, not to a spelling.
//!
//! Two answers from the catalog, both asked on the client's session with every function and
//! operator qualified with `pg_catalog`:
//! - per database (kept in `catalog::Catalog`): each policy table's identity — the OID its name
//!   resolves to now and the OID first seen under it (a renamed table keeps its rules), its name
//!   now, and the views over it. Only a write naming one of those relation names can reach a
//!   policy table; every other write needs no further question.
//! - per session and name ([`Resolutions`], kept in the session's `SessionInfo`): the OID the
//!   name resolves to (`to_regclass`, so the session's path and temporary schema decide), the
//!   view's base and column names when it is a view, and the columns of an `ON CONFLICT ON
//!   CONSTRAINT` constraint. Dropped on anything that may change what a name resolves to
//!   (`SET`/`RESET` of the path, `set_config`, `DISCARD`, transaction ends, role changes, DDL,
//!   a function the guard cannot see into), on DDL in any session, and after 30 s.
//!
//! A name after a statement of the same message that may change the path (or create the
//! relation) cannot be resolved before the message runs: it is judged as every relation it may
//! be (the policy's table of that name, and any policy table now called so), and the refusal
//! says why. A row write to a name that a statement the server runs first may turn into a view
//! over a policy table (earlier in the message, or sent earlier and not yet answered: an
//! Execute earlier in the batch) is refused while a policy table has protected columns
//! (`earlier`).
//!
//! Owns: the two questions and learning their answers, and the reach of one write (through
//! views and inheritance: `view`; its unqualified columns beside other relations: `columns`);
//! in submodules, the policy tables' identities and what stands in for them in the middle of
//! a batch (`identities`), the session's cache (`session`), what a text may do to names
//! (`effect`), a path set earlier in the message (`path`), statements that may redirect a name
//! (`earlier`; a `ROLLBACK TO` that returns within its message: `savepoints`), what DDL among
//! them can reach (`ddl`), DDL that concerns the sending session alone, which other
//! sessions are not told of (`own`), what a written name leads to for other
//! questions than the policy tables' (`written`), the sequence an unqualified `setval` name
//! resolves to (`setval`) and the SQL (`sql`).
//! Does not own: asking (`crate::session`), the rules (`policy::decide`).

use crate::analyze::{Op, RelName, Statement, Write};
use crate::policy::Policy;
use std::time::Duration;

mod columns;
mod ddl;
mod earlier;
mod effect;
mod expand;
mod identities;
mod own;
mod path;
pub mod rights;
mod savepoints;
mod session;
pub mod setval;
mod sql;
pub(crate) use sql::trusted;
mod view;
mod written;
pub use earlier::{
    keep, may_concern_others, may_redirect_unseen, redirected_by_others, two_phase, Earlier, Kind as EarlierKind,
};
pub use effect::{may_change_path, path_effect, PathEffect};
pub use identities::{before_batch, called, identities_answer, Asked, Identities};
use identities::{CALLED_SINCE, CHANGED_SINCE, NO_ANSWER, OWN, PARENT, RELATIVE};
use path::{effective_key, Paths};
pub use path::{is_path_key, sets_path_only, worth_asking_in_batch};
pub use session::{Resolutions, Resolved};
pub use sql::{constraint_query, identities_query, question_sql, relations_query};
pub use view::View;
pub use written::{judged_key, movable, pinned, written, written_oid, Written};

/// How long an answer is trusted when nothing seen changes it.
const TTL: Duration = Duration::from_secs(30);

/// Why a name is not resolved in the middle of a batch.
const IN_BATCH: &str = "it is sent in the middle of an extended-protocol batch, where blastwall cannot ask the catalog";

/// Whether a message's statements may change the policy tables' identities (their names, the
/// views and children over them, their columns' names): DDL other than a new plain table
/// (`CREATE [TEMP] TABLE` without a parent, a partition or a function called), a `DO` block,
/// a text that could not be read. A function called outside DDL is not counted here (what its
/// body does is not seen): it changes the calling session's answers only ([`called`]).
pub fn changes_identities(statements: &[Statement]) -> bool {
    use crate::analyze::Opaque;
    statements.iter().any(|s| {
        s.ddl && Earlier::of(s, 0).is_some()
            || s.opaque.iter().any(|o| {
                matches!(o, Opaque::DoBlock | Opaque::Unparseable(_) | Opaque::TooLarge(_) | Opaque::Encoding(_))
            })
    })
}

/// A relation name as `to_regclass` reads it, each part quoted.
pub fn quote(schema: &str, name: &str) -> String {
    // One allocation (a key is made for every write judged).
    fn push(out: &mut String, s: &str) {
        out.push('"');
        for (i, part) in s.split('"').enumerate() {
            if i > 0 {
                out.push_str("\"\"");
            }
            out.push_str(part);
        }
        out.push('"');
    }
    let mut out = String::with_capacity(schema.len() + name.len() + 5);
    if !schema.is_empty() {
        push(&mut out, schema);
        out.push('.');
    }
    push(&mut out, name);
    out
}

/// The key of a name as a statement wrote it.
pub fn key(r: &RelName) -> String {
    quote(r.schema.as_deref().unwrap_or(""), &r.name)
}

/// Whether a write's target is a relation whose name the server resolves (not a sequence,
/// schema or database).
pub fn names_a_relation(w: &Write) -> bool {
    !matches!(
        w.op,
        Op::Setval | Op::AlterSequence | Op::DropSequence | Op::DropSchema { .. } | Op::DropDatabase | Op::DropOwned
    )
}

/// The policy tables a written name may reach when it cannot be resolved: the policy's table
/// of that name (any schema when unqualified), and every policy table called so now (its own
/// name or a view over it; with `only`, not a name only its inheritance parents have; for a
/// name qualified with `pg_temp`, a temporary relation, not its own name).
pub fn unresolved_reach(policy: &Policy, ids: Option<&Identities>, target: &RelName, only: bool) -> Vec<usize> {
    let temp = target.schema.as_deref().is_some_and(|s| s == "pg_temp" || s.starts_with("pg_temp_"));
    let called = |ids: &Identities, i: usize| {
        let how = ids.relnames.get(i).and_then(|n| n.iter().find(|(x, _)| *x == target.name)).map_or(0, |r| r.1);
        // A temporary relation is never the policy table itself; ONLY a parent does not
        // write its children.
        how & OWN != 0 && !temp || how & RELATIVE != 0 || how & PARENT != 0 && !only
    };
    policy
        .tables
        .iter()
        .enumerate()
        .filter(|(i, t)| t.matches(target) || ids.is_some_and(|ids| called(ids, *i)))
        .map(|(i, _)| i)
        .collect()
}

/// Whether a relation called by this name is another relation over policy table `i` — a view
/// over it, a child — whose columns may be named otherwise than the table's: also when the
/// table itself is called so (a view `s1.users(uid)` over `public.users(id)`), since which of
/// them the name leads to is not known.
fn called_relative(ids: &Identities, i: usize, target: &RelName) -> bool {
    let how = ids.relnames.get(i).and_then(|n| n.iter().find(|(x, _)| *x == target.name)).map_or(0, |r| r.1);
    how & RELATIVE != 0
}

/// Whether statement `index` runs a statement prepared earlier (an `EXECUTE`'s expansion):
/// the server resolves its names again when it runs, which cannot be asked before.
fn prepared_earlier(statements: &[Statement], index: usize) -> bool {
    let Some(st) = statements.get(index) else { return false };
    statements[..index].iter().any(|e| !e.executes.is_empty() && e.offset == st.offset && e.text == st.text)
}

/// The name of a relation a write names.
fn relevant(w: &Write) -> Option<&RelName> {
    w.target.as_ref().filter(|_| names_a_relation(w))
}

/// The policy tables' identities in the session's database, when known; what to ask first
/// otherwise, or before the writes of `statements` can be judged by what they reach.
pub fn ask(
    catalog: &crate::catalog::Catalog,
    info: &mut crate::guard::SessionInfo,
    statements: &[Statement],
    changing: &[bool],
    policy: &Policy,
    questions: &mut Vec<crate::catalog::Question>,
) -> Option<std::sync::Arc<Identities>> {
    info.names.expire(catalog.generation());
    info.names.identities_asked_at = (catalog.generation(), catalog.identity_generation());
    // Nothing is in flight once the server answered everything (sync points answered inside
    // a pre-check are not all seen by the session's bookkeeping).
    if info.settings_certain && !info.names.earlier.is_empty() {
        info.names.earlier.clear();
    }
    let ids = catalog.identities(&info.database, policy);
    questions.extend(self::questions(statements, changing, policy, ids.as_deref(), &info.names));
    match ids {
        Some(ids) => {
            info.names.last_identities = Some(ids.clone());
            Some(ids)
        }
        // Not askable (the middle of a batch, after DDL dropped them or they aged): the last
        // answer (the database's, or this session's), within five minutes, stands in — only if
        // nothing blastwall saw since could have changed it (`Identities::stands_in`: a
        // rename, a view made, through blastwall; sixth adversarial pass F3, F6). Otherwise
        // every written name is taken as possibly any policy table or a view over one
        // (`anything`). DDL elsewhere is seen at the next question blastwall can ask.
        None if info.names.assumed_identities => {
            let generation = info.names.identities_asked_at.1;
            let known = [catalog.last_identities(&info.database), info.names.last_identities.clone()];
            // The one the batch began with, when its own statements sent before (DDL, calls:
            // `earlier`, judged by what each may redirect) may explain the changes since.
            let own = |e: &Earlier| matches!(e.kind, EarlierKind::Ddl | EarlierKind::Call);
            let began = info.names.batch_stand_in.filter(|_| info.names.earlier.iter().any(own));
            // Not one learned before a function this session called since (`called`).
            let after_call = |i: &Identities| info.names.called_at.is_none_or(|t| i.learned > t);
            let stands = |i: &Identities| {
                i.stands_in(policy, generation) && after_call(i) || began.is_some_and(|g| i.stands_in(policy, g))
            };
            let usable = known.iter().flatten().find(|i| stands(i)).cloned();
            // None usable: known, but asked before a change blastwall saw (a name may lead
            // somewhere the last answer does not show), or none at all (nothing says where
            // a name leads: a temporary view over a policy table made before, on a freshly
            // started blastwall, eighth adversarial pass F3): every name may be any policy
            // table or a view over one. `before_batch` asks before a batch starts, so that
            // ordinary pipelines have one.
            let changed = known.iter().flatten().any(|i| !i.asked_at(generation));
            let called = known.iter().flatten().any(|i| !after_call(i));
            info.names.stale_identities = match usable {
                Some(_) => None,
                None if changed => Some(CHANGED_SINCE),
                None if called => Some(CALLED_SINCE),
                None => Some(NO_ANSWER),
            };
            usable
        }
        None => None,
    }
}

/// What to ask before the writes of `statements` can be judged by what they reach
/// (`changing`: which of them the guard says may change what later names resolve to).
pub fn questions(
    statements: &[Statement],
    changing: &[bool],
    policy: &Policy,
    ids: Option<&Identities>,
    session: &Resolutions,
) -> Vec<crate::catalog::Question> {
    use crate::catalog::Question;
    if session.assumed_identities {
        return Vec::new();
    }
    if policy.tables.is_empty() {
        return Vec::new();
    }
    let paths = Paths::of(statements, changing);
    // A setval's sequence, as the session resolves it (`setval`): no identity needed.
    let mut keys: Vec<String> = Vec::new();
    setval::keys(statements, &paths, session, &mut keys);
    if ids.is_none() {
        let any = statements.iter().flat_map(|s| &s.writes).any(|w| relevant(w).is_some());
        return match (any, keys.is_empty()) {
            (true, _) => vec![Question::Identities],
            (false, false) => vec![Question::Relations(keys)],
            (false, true) => Vec::new(),
        };
    }
    let mut out = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        if st.writes.iter().all(|w| relevant(w).is_none()) || prepared_earlier(statements, i) {
            continue;
        }
        for w in &st.writes {
            let Some(t) = relevant(w) else { continue };
            let Ok(k) = effective_key(&paths, i, t) else { continue };
            if session.relation(&k).is_none() && !keys.contains(&k) {
                keys.push(k.clone());
            }
            // The relations beside it, when its WHERE has unqualified names the catalog can
            // place (`columns::mine`).
            for b in columns::beside_of(st, w) {
                let Ok(bk) = effective_key(&paths, i, b) else { continue };
                if session.relation(&bk).is_none() && !keys.contains(&bk) {
                    keys.push(bk);
                }
            }
            if is_path_key(&k) {
                continue;
            }
            if let Op::Upsert { constraint: Some(c), .. } = &w.op {
                let q = Question::Constraint { relation: k.clone(), constraint: c.clone() };
                if session.constraint(&k, c).is_none() && !out.contains(&q) {
                    out.push(q);
                }
            }
        }
    }
    if !keys.is_empty() {
        out.insert(0, Question::Relations(keys));
    }
    out
}

/// What a message's writes are resolved against.
pub struct Context<'a> {
    pub statements: &'a [Statement],
    pub policy: &'a Policy,
    pub ids: Option<&'a Identities>,
    pub session: &'a Resolutions,
    /// Other sessions' DDL whose transaction has not ended (`crate::inflight`).
    pub others: &'a [Earlier],
    /// What each statement's names resolve against, found once for the message.
    paths: Paths,
    /// The message's statements that may redirect a later name (`earlier::in_message`), found
    /// at the first write that asks.
    mine: std::cell::OnceCell<Vec<(usize, Earlier)>>,
}

impl<'a> Context<'a> {
    /// `changing`: which statements the guard says may change what later names resolve to.
    pub fn new(
        statements: &'a [Statement],
        changing: &[bool],
        policy: &'a Policy,
        ids: Option<&'a Identities>,
        session: &'a Resolutions,
    ) -> Context<'a> {
        let paths = Paths::of(statements, changing);
        Context { statements, policy, ids, session, others: &[], paths, mine: Default::default() }
    }

    /// The statement of the message before `index`, or one sent earlier and not yet answered,
    /// that may make `target` name something else (`earlier::redirected`).
    fn redirected(&self, index: usize, target: &RelName) -> Option<String> {
        let mine = self.mine.get_or_init(|| earlier::in_message(self.statements));
        earlier::redirected_before(mine, index, &self.session.earlier, target)
    }

    /// With other sessions' open DDL to judge the writes against.
    pub fn with_others(self, others: &'a [Earlier]) -> Context<'a> {
        Context { others, ..self }
    }
}

/// [`reach`], and the key of a name that names a policy table but resolved elsewhere (a
/// shadowing table, another schema first on the path): that answer is used once and asked
/// again next time, since DDL in another session (dropping the shadow) would lead the name
/// back to the policy table without blastwall seeing it.
pub fn reach_once(cx: &Context<'_>, index: usize, w: &Write) -> (Option<crate::policy::Reach>, Option<String>) {
    let r = reach(cx, index, w);
    let shadowed = match (&r, &w.target) {
        (Some(r), Some(t)) if r.unresolved.is_none() => {
            let by_name = unresolved_reach(cx.policy, cx.ids, t, w.only);
            let k = effective_key(&cx.paths, index, t).unwrap_or_else(|_| key(t));
            by_name.iter().any(|i| !r.tables.iter().any(|(j, _)| j == i)).then_some(k)
        }
        _ => None,
    };
    (r, shadowed)
}

/// The OIDs write `w` of statement `index` resolves to on the session, when its name was
/// asked: the relation's and, for a view, those of every relation it reaches at any level and
/// of every relation one of its columns comes from, and 1 when a view's rule (at any level)
/// reads a relation `initdb` made, on which the server records no dependency
/// (`guard::catalog_write`: a system catalog's OID is below 16384).
pub fn resolved_oids(cx: &Context<'_>, index: usize, w: &Write) -> Option<Vec<u32>> {
    let k = effective_key(&cx.paths, index, relevant(w)?).ok()?;
    match cx.session.relation(&k)? {
        Resolved::Oid { oid, view, reads_system, .. } => {
            let bases = view.iter().flat_map(|v| v.bases.iter().copied().chain(v.columns.iter().map(|c| c.1)));
            // A view whose rule reads one: a system OID stands for it.
            let system = reads_system.then_some(1);
            Some(std::iter::once(*oid).chain(bases).chain(system).collect())
        }
        Resolved::Assumed(_) => None,
    }
}

/// What write `w` of statement `index` reaches, as the server will resolve its name (`None`:
/// judged by its name, as offline — a sequence, a schema, an unnamed target).
fn reach(cx: &Context<'_>, index: usize, w: &Write) -> Option<crate::policy::Reach> {
    let Context { statements, policy, ids, session, others, ref paths, .. } = *cx;
    use crate::policy::Reach;
    let target = w.target.as_ref().filter(|_| names_a_relation(w))?;
    let row_write = w.op.is_row_write() || matches!(w.op, Op::Upsert { .. });
    // A statement the server runs first — earlier in the message, or sent earlier and not yet
    // answered (an Execute earlier in the batch) — may make the name a view over any policy
    // table (`CREATE TEMP VIEW v AS SELECT * FROM users; DELETE FROM v …`, a ROLLBACK that
    // brings an older definition back), whatever blastwall's answers say: no table's rules can
    // be applied to it.
    // So may another session's DDL whose transaction has not ended: the server may reach this
    // write after it commits (eighth adversarial pass N1; `crate::inflight`).
    let by = row_write.then(|| {
        let mine = cx.redirected(index, target);
        let hint = "send the write in a message of its own, after the server answered that one";
        let theirs = "send it again once that transaction has ended";
        mine.map(|b| (b, hint)).or_else(|| {
            let constraint = matches!(&w.op, Op::Upsert { constraint: Some(_), .. });
            earlier::redirected_by_others(others, target, constraint).map(|b| (b, theirs))
        })
    });
    if let Some((by, hint)) = by.flatten() {
        let protected: Vec<usize> =
            (0..policy.tables.len()).filter(|i| !policy.tables[*i].protected_columns.is_empty()).collect();
        if !protected.is_empty() {
            return Some(Reach {
                tables: protected.into_iter().map(|i| (i, None)).collect(),
                unresolved: Some(format!("{target} could not be resolved before the message runs")),
                constraint_columns: None,
                taken_over: Some(format!(
                    "{target} could not be resolved before the message runs, and {by} may make it a view over a protected table; {hint}"
                )),
                mine: Vec::new(),
                predicate: None,
            });
        }
    }
    let unresolved = |why: String| {
        let tables: Vec<usize> = unresolved_reach(policy, ids, target, w.only);
        // A name that is only another relation's over a policy table (a view, a child) maps its
        // columns in a way blastwall cannot read here: its text rules cannot be applied.
        let unmapped = tables
            .iter()
            .filter_map(|i| policy.tables.get(*i).map(|t| (*i, t)))
            .find(|(i, t)| !t.protected_columns.is_empty() && ids.is_some_and(|ids| called_relative(ids, *i, target)));
        let unmapped = unmapped.map(|(_, t)| t);
        let taken_over = unmapped.filter(|_| row_write).map(|t| {
            format!(
                "{target} could not be resolved before the message runs ({why}), and a relation of that name is a view or child of {}, whose columns blastwall cannot follow to its protected columns here",
                t.qualified()
            )
        });
        Reach {
            tables: tables.into_iter().map(|i| (i, None)).collect(),
            unresolved: Some(format!("{target} could not be resolved before the message runs: {why}")),
            constraint_columns: None,
            taken_over,
            mine: Vec::new(),
            predicate: None,
        }
    };
    let Some(ids) = ids else {
        return Some(match session.stale_identities {
            Some(why) => anything(policy, target, row_write, why),
            None => unresolved(IN_BATCH.into()),
        });
    };
    if prepared_earlier(statements, index) {
        return Some(unresolved(
            "a prepared statement resolves names again when it runs, under the search_path the session has then".into(),
        ));
    }
    let k = match effective_key(paths, index, target) {
        Ok(k) => k,
        Err(why) => return Some(unresolved(why)),
    };
    let (oid, view, now) = match session.relation(&k) {
        Some(Resolved::Oid { oid, view, name, .. }) => (*oid, view.as_ref(), name.as_ref()),
        Some(Resolved::Assumed(why)) => return Some(unresolved(why.clone())),
        None if session.assumed_identities => return Some(unresolved(IN_BATCH.into())),
        None => return Some(unresolved("the catalog was not asked".into())),
    };
    let mut tables: Vec<(usize, Option<crate::policy::ViewColumns>)> = Vec::new();
    for (i, t) in policy.tables.iter().enumerate() {
        let known = &ids.oids[i];
        // By identity; or by the name it has now (a table created since the identities were
        // learned); a policy table the catalog does not know (absent): by its name, as offline.
        let named = now.is_some_and(|(s, n)| *s == t.schema && *n == t.name);
        if known.contains(&oid) || named || (known.is_empty() && t.matches(target)) {
            tables.push((i, None));
        } else if let Some(v) =
            view.filter(|v| v.bases.iter().any(|b| known.contains(b) && !(w.only && v.below.contains(b))))
        {
            // The names it has for the table's columns, at whatever depth the table is.
            let columns = v.columns.iter().filter(|(_, r, _)| known.contains(r));
            tables.push((i, Some(columns.map(|(c, _, b)| (c.clone(), b.clone())).collect())));
        }
    }
    // A view on the way whose INSTEAD OF trigger or rule takes the write over: where it goes
    // is the trigger's business, and the table's rules cannot be mapped onto it.
    let taken_over = view
        .filter(|_| !tables.is_empty())
        .and_then(|v| v.taken_over(&w.op))
        .map(|v| format!("{v} has an INSTEAD OF trigger or a rule for this kind of write: the write goes wherever its body says, not through the view's columns to the table"));
    let (predicate, taken_over) = expand::through(view, now, w, &statements[index].text, taken_over);
    let constraint_columns = match &w.op {
        Op::Upsert { constraint: Some(c), .. } if !is_path_key(&k) => session.constraint(&k, c).cloned(),
        _ => None,
    };
    let mine = columns::mine(statements, paths, index, w, &k, session);
    Some(Reach { tables, unresolved: None, constraint_columns, taken_over, mine, predicate })
}

/// What a written name reaches where neither a current answer nor one that may stand in is
/// known (in the middle of a batch, after DDL through blastwall since the last answer, or
/// with no answer at all: `since`): any policy table, by every rule of each; and since it may
/// be a view over one whose columns blastwall cannot follow, a row write is refused while a
/// policy table has protected columns.
fn anything(policy: &Policy, target: &RelName, row_write: bool, since: &str) -> crate::policy::Reach {
    let why = format!("{target} could not be resolved before the message runs: {IN_BATCH}, and {since}");
    let protected = policy.tables.iter().find(|t| !t.protected_columns.is_empty()).filter(|_| row_write);
    crate::policy::Reach {
        tables: (0..policy.tables.len()).map(|i| (i, None)).collect(),
        taken_over: protected.map(|t| {
            format!("{why}, so it may now be {} renamed or a view over it, whose columns blastwall cannot follow here; send the write first in its batch or in a message of its own", t.qualified())
        }),
        unresolved: Some(why),
        constraint_columns: None,
        mine: Vec::new(),
        predicate: None,
    }
}

/// The current names of the protected columns of every policy table a row write reaches
/// under another name (renamed, or through a view), when not known.
pub fn columns_questions(
    statements: &[Statement],
    reach: &dyn Fn(usize, &Write) -> Option<crate::policy::Reach>,
    policy: &Policy,
    catalog: &crate::catalog::Catalog,
    info: &crate::guard::SessionInfo,
) -> Vec<crate::catalog::Question> {
    let mut out = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        for w in st.writes.iter().filter(|w| w.op.is_row_write()) {
            for (t, _) in reach(i, w).into_iter().flat_map(|r| r.tables) {
                let Some(t) = policy.tables.get(t).filter(|t| !t.protected_columns.is_empty()) else { continue };
                if info.names.assumed.columns_known(catalog, &info.database, &t.schema, &t.name) {
                    continue;
                }
                let q = crate::catalog::Question::Columns { schema: t.schema.clone(), table: t.name.clone() };
                if !out.contains(&q) {
                    out.push(q);
                }
            }
        }
    }
    out
}

/// Learns the answer to a question of this module (`rows`: `None` when the query failed).
pub fn learn(
    q: &crate::catalog::Question,
    rows: Option<&[Vec<Option<String>>]>,
    session: &mut Resolutions,
    catalog: &crate::catalog::Catalog,
    database: &str,
    policy: &Policy,
) {
    use crate::catalog::Question;
    // The catalog's generations when the judgement that asked began.
    let asked = session.identities_asked_at;
    session.expire(catalog.generation());
    match q {
        // A failed query leaves every table known by its name only (judged by name).
        Question::Identities => catalog.learn_identities(database, policy, rows.unwrap_or(&[]), asked),
        Question::Relations(keys) => session.learn_relations(keys, rows),
        Question::Constraint { relation, constraint } => match rows {
            Some(rows) => session.learn_constraint(relation, constraint, rows),
            None => session.assume(relation, "the catalog could not be read on this session"),
        },
        _ => {}
    }
}

/// A question of this module that cannot be asked now (in the middle of an extended batch):
/// the judgement that asked it takes every name as everything it may be.
pub fn assume(q: &crate::catalog::Question, session: &mut Resolutions) {
    use crate::catalog::Question;
    match q {
        Question::Identities => session.assumed_identities = true,
        Question::Relations(keys) => keys.iter().for_each(|k| session.assume(k, IN_BATCH)),
        Question::Constraint { relation, .. } => session.assume(relation, IN_BATCH),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::view::reaches_answer;
    use super::*;

    #[test]
    fn a_relations_reach_is_read_from_its_answer() {
        let v = reaches_answer(
            Some("16387,16447"),
            Some("uid2\u{1f}16447\u{1f}uid\u{1e}uid2\u{1f}16387\u{1f}id\u{1e}plan\u{1f}16387\u{1f}plan"),
            Some("d\u{1f}public.v2"),
        )
        .unwrap();
        assert_eq!(v.bases, vec![16387, 16447]);
        assert!(v.columns.contains(&("uid2".into(), 16387, "id".into())), "{v:?}");
        assert_eq!(v.taken_over(&Op::Delete), Some("public.v2"));
        assert_eq!(v.taken_over(&Op::Update { columns: vec![] }), None);
        assert_eq!(reaches_answer(None, Some(""), None), None);
        assert_eq!(quote("pub\"lic", "users"), "\"pub\"\"lic\".\"users\"");
    }
}
