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
//! says why.
//!
//! Owns: the cache, the two queries and reading their answers, and the reach of one write
//! (through views and inheritance: `view`; its unqualified columns beside other relations:
//! `columns`).
//! Does not own: asking (`session`), the rules (`policy::decide`).

use crate::analyze::{Op, RelName, Statement, Write};
use crate::policy::Policy;
use std::collections::HashMap;
use std::time::{Duration, Instant};

mod columns;
mod path;
mod sql;
mod view;
use path::{effective_key, Paths};
pub use path::{is_path_key, path_before};
pub use sql::{constraint_query, identities_query, question_sql, relations_query};
use view::reaches_answer;
pub use view::View;

/// How long an answer is trusted when nothing seen changes it.
const TTL: Duration = Duration::from_secs(30);

/// What the policy tables are in one database, as the catalog said.
#[derive(Debug, Clone)]
pub struct Identities {
    /// The policy's tables this answer is for, in policy order ((schema, name)).
    key: Vec<(String, String)>,
    /// Per policy table: the OIDs it is known by (its name now; the OID first seen).
    pub oids: Vec<Vec<u32>>,
    /// Per policy table: the names it is called by now, each with how ([`OWN`]: its own;
    /// [`RELATIVE`]: a view's over it, a child's, a view's over those; [`PARENT`]: an
    /// inheritance parent's).
    relnames: Vec<Vec<(String, u8)>>,
    learned: Instant,
}

impl Identities {
    /// Whether the answer is still good for this policy.
    pub fn fresh_for(&self, policy: &Policy) -> bool {
        self.learned.elapsed() < TTL
            && self.key.len() == policy.tables.len()
            && self.key.iter().zip(&policy.tables).all(|((s, n), t)| *s == t.schema && *n == t.name)
    }
}

/// How a policy table is called by a name ([`Identities`]).
const OWN: u8 = 1;
const RELATIVE: u8 = 2;
const PARENT: u8 = 4;

/// Reads the answer of [`identities_query`] (a failed query: every table known by its
/// policy name only, every name of it may reach it).
pub fn identities_answer(policy: &Policy, rows: &[Vec<Option<String>>]) -> Identities {
    let n = policy.tables.len();
    let mut oids = vec![Vec::new(); n];
    let mut relnames: Vec<Vec<(String, u8)>> = policy.tables.iter().map(|t| vec![(t.name.clone(), OWN)]).collect();
    for r in rows {
        let get = |i: usize| r.get(i).and_then(|v| v.as_deref());
        let (Some(kind), Some(Ok(i)), Some(Ok(oid)), Some(name)) =
            (get(0), get(1).map(str::parse::<usize>), get(2).map(str::parse::<u32>), get(3))
        else {
            continue;
        };
        if i >= n {
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
        relnames,
        learned: Instant::now(),
    }
}

/// A relation name as `to_regclass` reads it, each part quoted.
pub fn quote(schema: &str, name: &str) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    if schema.is_empty() {
        q(name)
    } else {
        format!("{}.{}", q(schema), q(name))
    }
}

/// The key of a name as a statement wrote it.
pub fn key(r: &RelName) -> String {
    quote(r.schema.as_deref().unwrap_or(""), &r.name)
}

/// What one name resolves to on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// This relation (0: none; a write to it fails), and its (schema, name) and column
    /// names now.
    Oid { oid: u32, view: Option<View>, name: Option<(String, String)>, columns: Vec<String> },
    /// It could not be asked (in the middle of an extended batch): judged as everything it
    /// may be, for the judgement that asked only.
    Assumed(String),
}

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
    /// time it runs, after the path or temporary tables may have changed, so it is judged as
    /// what its names resolve to now and as every policy table its names may be.
    pub persisting: bool,
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
    pub fn after_message(&mut self, sql: &[u8], in_transaction: bool) {
        if self.is_empty() && !in_transaction && !self.changed_since_end && !sql.contains(&b';') {
            return;
        }
        match path_effect(sql) {
            PathEffect::Change => {
                self.clear();
                self.changed_since_end = true;
            }
            PathEffect::End if self.changed_since_end => {
                self.clear();
                self.changed_since_end = false;
            }
            _ => {}
        }
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
            let mut view = reaches_answer(get(2), get(3), get(4));
            if let Some(v) = view.as_mut() {
                v.below = get(8).unwrap_or("").split(',').filter_map(|b| b.parse().ok()).collect();
            }
            let name = get(5).zip(get(6)).map(|(s, n)| (s.to_string(), n.to_string()));
            let columns = get(7).map(|c| c.split('\u{1f}').map(str::to_string).collect()).unwrap_or_default();
            self.relations.insert(k.clone(), Resolved::Oid { oid, view, name, columns });
        }
    }

    pub fn learn_constraint(&mut self, key: &str, constraint: &str, rows: &[Vec<Option<String>>]) {
        self.learned.get_or_insert_with(Instant::now);
        let cols = rows.iter().filter_map(|r| r.first().cloned().flatten()).collect();
        self.constraints.insert((key.to_string(), constraint.to_string()), cols);
    }
}

/// Whether a write's target is a relation whose name the server resolves (not a sequence,
/// schema or database).
pub fn names_a_relation(w: &Write) -> bool {
    !matches!(
        w.op,
        Op::Setval | Op::AlterSequence | Op::DropSequence | Op::DropSchema { .. } | Op::DropDatabase | Op::DropOwned
    )
}

/// What a text may do to what names resolve to when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEffect {
    None,
    /// Change the path (`SET`/`RESET` `search_path` or `SCHEMA`, `set_config`, `DISCARD`),
    /// the role (`$user`), or the relations (DDL; `DO`, `CALL` and functions are DDL to the
    /// guard, which drops every session's answers for them: `Catalog::generation`).
    Change,
    /// End a transaction (or roll back to a savepoint), undoing a `SET LOCAL` or a `SET`.
    End,
}

/// [`PathEffect`] of a text, read as words, case-insensitively, with no allocation: a word in
/// a string or a comment only costs one question more.
pub fn path_effect(text: &[u8]) -> PathEffect {
    const CHANGE: &[&[u8]] = &[
        b"search_path",
        b"set_config",
        b"schema",
        b"reset",
        b"discard",
        b"role",
        b"authorization",
        b"create",
        b"alter",
        b"drop",
        b"import",
    ];
    const END: &[&[u8]] = &[b"rollback", b"abort", b"commit", b"end"];
    // Word bytes, as cut: ASCII letters and digits, `_`, and every non-ASCII byte.
    const WORD: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
            b += 1;
        }
        t
    };
    // For each first letter, the lengths of the listed words that start with it (bit n =
    // length n): on the hot path (every Query with a `;`) most words are passed over after one
    // lookup, and only a word that could be one of the list is compared with it.
    const LENGTHS: [u16; 26] = {
        let mut t = [0u16; 26];
        let mut i = 0;
        while i < CHANGE.len() + END.len() {
            let w = if i < CHANGE.len() { CHANGE[i] } else { END[i - CHANGE.len()] };
            t[(w[0] - b'a') as usize] |= 1 << w.len();
            i += 1;
        }
        t
    };
    let mut effect = PathEffect::None;
    let mut i = 0;
    while i < text.len() {
        if !WORD[usize::from(text[i])] {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && WORD[usize::from(text[i])] {
            i += 1;
        }
        let w = &text[start..i];
        let first = w[0] | 0x20;
        let candidate =
            first.is_ascii_lowercase() && w.len() < 16 && LENGTHS[usize::from(first - b'a')] & (1 << w.len()) != 0;
        if !candidate {
            continue;
        }
        if CHANGE.iter().any(|x| w.eq_ignore_ascii_case(x)) {
            return PathEffect::Change;
        }
        if END.iter().any(|x| w.eq_ignore_ascii_case(x)) {
            effect = PathEffect::End;
        }
    }
    effect
}

#[cfg(test)]
mod path_effect_tests {
    use super::{path_effect, PathEffect};
    use proptest::prelude::*;

    /// The plain reading: every word compared with every listed word.
    fn reference(text: &[u8]) -> PathEffect {
        const CHANGE: &[&str] = &[
            "search_path",
            "set_config",
            "schema",
            "reset",
            "discard",
            "role",
            "authorization",
            "create",
            "alter",
            "drop",
            "import",
        ];
        const END: &[&str] = &["rollback", "abort", "commit", "end"];
        let mut effect = PathEffect::None;
        for w in text.split(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80)) {
            if CHANGE.iter().any(|x| w.eq_ignore_ascii_case(x.as_bytes())) {
                return PathEffect::Change;
            }
            if END.iter().any(|x| w.eq_ignore_ascii_case(x.as_bytes())) {
                effect = PathEffect::End;
            }
        }
        effect
    }

    proptest! {
        /// The length-and-letter filter passes over no word of the list.
        #[test]
        fn filtered_reading_matches_the_plain_one(
            words in proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(vec![
                        "Search_Path", "SET", "schemas", "ROLE", "rolE1", "end", "END;", "ending", "Commit",
                        "abort", "drop", "dro", "é", "_", "Authorization", "import", "1reset", "reset",
                        "discard", "alter", "create", "set_config", "rollback", "select",
                    ])
                    .prop_map(String::from),
                    "[ -~\\u{80}-\\u{ff}]{0,12}",
                ],
                0..12,
            ),
            seps in proptest::collection::vec(prop_oneof![Just(" "), Just(";"), Just("("), Just(""), Just("é")], 12),
        ) {
            let mut text = String::new();
            for (i, w) in words.iter().enumerate() {
                text.push_str(w);
                text.push_str(seps[i % seps.len()]);
            }
            prop_assert_eq!(path_effect(text.as_bytes()), reference(text.as_bytes()), "{}", text);
        }
    }
}

/// Whether a text may change what names resolve to when it runs (either effect).
pub fn may_change_path(text: &[u8]) -> bool {
    path_effect(text) != PathEffect::None
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

/// Whether statement `index` runs a statement prepared earlier (an `EXECUTE`'s expansion):
/// the server resolves its names with the `search_path` of its `PREPARE`, not today's.
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
    policy: &Policy,
    questions: &mut Vec<crate::catalog::Question>,
) -> Option<std::sync::Arc<Identities>> {
    info.names.expire(catalog.generation());
    let ids = catalog.identities(&info.database, policy);
    questions.extend(self::questions(statements, policy, ids.as_deref(), &info.names));
    ids
}

/// What to ask before the writes of `statements` can be judged by what they reach.
pub fn questions(
    statements: &[Statement],
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
    if ids.is_none() {
        let any = statements.iter().flat_map(|s| &s.writes).any(|w| relevant(w).is_some());
        return if any { vec![Question::Identities] } else { Vec::new() };
    }
    let mut keys: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let paths = Paths::of(statements);
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
    /// What each statement's names resolve against, found once for the message.
    paths: Paths,
}

impl<'a> Context<'a> {
    pub fn new(
        statements: &'a [Statement],
        policy: &'a Policy,
        ids: Option<&'a Identities>,
        session: &'a Resolutions,
    ) -> Context<'a> {
        Context { statements, policy, ids, session, paths: Paths::of(statements) }
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

/// What write `w` of statement `index` reaches, as the server will resolve its name (`None`:
/// judged by its name, as offline — a sequence, a schema, an unnamed target).
fn reach(cx: &Context<'_>, index: usize, w: &Write) -> Option<crate::policy::Reach> {
    let Context { statements, policy, ids, session, ref paths } = *cx;
    use crate::policy::Reach;
    let target = w.target.as_ref().filter(|_| names_a_relation(w))?;
    let unresolved = |why: String| Reach {
        tables: unresolved_reach(policy, ids, target, w.only).into_iter().map(|i| (i, None)).collect(),
        unresolved: Some(format!("{target} could not be resolved before the message runs: {why}")),
        constraint_columns: None,
        taken_over: None,
        mine: Vec::new(),
    };
    let Some(ids) = ids else {
        return Some(unresolved(
            "it is sent in the middle of an extended-protocol batch, where blastwall cannot ask the catalog".into(),
        ));
    };
    if prepared_earlier(statements, index) {
        return Some(unresolved("a prepared statement resolves names with the search_path of its PREPARE".into()));
    }
    let k = match effective_key(paths, index, target) {
        Ok(k) => k,
        Err(why) => return Some(unresolved(why)),
    };
    let (oid, view, now) = match session.relation(&k) {
        Some(Resolved::Oid { oid, view, name, .. }) => (*oid, view.as_ref(), name.as_ref()),
        Some(Resolved::Assumed(why)) => return Some(unresolved(why.clone())),
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
    if session.persisting {
        for i in unresolved_reach(policy, cx.ids, target, w.only) {
            if !tables.iter().any(|(j, _)| *j == i) {
                tables.push((i, None));
            }
        }
    }
    let constraint_columns = match &w.op {
        Op::Upsert { constraint: Some(c), .. } if !is_path_key(&k) => session.constraint(&k, c).cloned(),
        _ => None,
    };
    let mine = columns::mine(statements, paths, index, w, &k, session);
    Some(Reach { tables, unresolved: None, constraint_columns, taken_over, mine })
}

/// The current names of the protected columns of every policy table a row write reaches
/// under another name (renamed, or through a view), when not known.
pub fn columns_questions(
    statements: &[Statement],
    reach: &dyn Fn(usize, &Write) -> Option<crate::policy::Reach>,
    policy: &Policy,
    catalog: &crate::catalog::Catalog,
    database: &str,
) -> Vec<crate::catalog::Question> {
    let mut out = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        for w in st.writes.iter().filter(|w| w.op.is_row_write()) {
            for (t, _) in reach(i, w).into_iter().flat_map(|r| r.tables) {
                let Some(t) = policy.tables.get(t).filter(|t| !t.protected_columns.is_empty()) else { continue };
                let q = crate::catalog::Question::Columns { schema: t.schema.clone(), table: t.name.clone() };
                if catalog.columns_of(database, &t.schema, &t.name).is_none() && !out.contains(&q) {
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
    session.expire(catalog.generation());
    match q {
        // A failed query leaves every table known by its name only (judged by name).
        Question::Identities => catalog.learn_identities(database, policy, rows.unwrap_or(&[])),
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
    const WHY: &str = "it is sent in the middle of an extended-protocol batch, where blastwall cannot ask the catalog";
    match q {
        Question::Identities => session.assumed_identities = true,
        Question::Relations(keys) => keys.iter().for_each(|k| session.assume(k, WHY)),
        Question::Constraint { relation, .. } => session.assume(relation, WHY),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_changes_are_found_as_words() {
        for t in [
            "SET search_path TO archive",
            "set schema 'x'",
            "RESET ALL",
            "SELECT pg_catalog.set_config('search_path', 'a', false)",
            "DISCARD ALL",
            "ROLLBACK",
            "end",
            "SET ROLE app",
            "CREATE TEMP TABLE users (id int)",
        ] {
            assert!(may_change_path(t.as_bytes()), "{t}");
        }
        for t in ["SELECT * FROM users WHERE id = 1", "DELETE FROM users WHERE id = $1", "UPDATE t SET a = 1", "BEGIN"]
        {
            assert!(!may_change_path(t.as_bytes()), "{t}");
        }
    }

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
