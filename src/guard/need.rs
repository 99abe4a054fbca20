//! What the pre-check needs for a message: whether it must be counted, what to EXPLAIN first,
//! and whether it can be wrapped at all.
//!
//! Owns: those three questions. Does not own: running the check (`precheck`).

use super::SessionInfo;
use crate::analyze::{self, Op, Opaque, Statement};
use crate::contract::Insert;
use crate::policy::{self, Action, Mode, Policy};
use crate::precheck::KnownSteps;
use std::sync::Arc;

/// What the pre-check needs to know about a message.
pub(super) struct CheckNeed {
    pub(super) verb: &'static str,
    pub(super) target: Option<analyze::RelName>,
    /// Some write in it is in dry-run mode: it is always rolled back.
    pub(super) dry_run: bool,
    /// When not empty, the only reason to count it: a prepared statement's known sequence
    /// steps, spent at each Execute (`CheckPlan::known_steps`).
    pub(super) known: Vec<KnownSteps>,
    /// Nothing but a protected sequence's `nextval` asks for the count (`CheckPlan::only_moves`).
    pub(super) only_moves: bool,
}

/// Whether the statements need the pre-check: a DELETE when any row limit on deletes exists
/// (its cascades may reach a limited table), an UPDATE, MERGE or upsert on a table whose
/// updates are limited (anomaly and budget rules count as limits), a write whose foreign keys'
/// actions reach such a table (`catalog::cascades`), an INSERT into a relation
/// with triggers, rules or children (and, while a table has text rules, any write to one:
/// `guard::reached`), anything whose reach the text cannot prove while the
/// policy protects tables (DDL, TRUNCATE, calls of functions that are not well-known
/// built-ins, DO, CALL, any mention of `setval`: verified by identity on the server), and
/// anything in a dry-run session that may write (the static findings are `dry_run`).
pub(super) fn check_need(
    statements: &[Statement],
    info: &SessionInfo,
    policy: &Policy,
    catalog: &crate::catalog::Catalog,
    dry_run: bool,
    updates_limited_by_identity: bool,
) -> Result<Option<CheckNeed>, Vec<String>> {
    // The anomaly and budget rules count like limits (`contract`).
    let contract = crate::contract::enabled(policy);
    let any_update_limit =
        contract || policy.max_update_rows.is_some() || policy.tables.iter().any(|t| t.max_update_rows.is_some());
    let mut unknown = Vec::new();
    let any_delete_limit =
        contract || policy.max_delete_rows.is_some() || policy.tables.iter().any(|t| t.max_delete_rows.is_some());
    let cascades_matter =
        any_update_limit || any_delete_limit || policy.tables.iter().any(|t| !t.protected_columns.is_empty());
    let text_rules = policy.tables.iter().any(|t| t.judges_text());
    let mut need: Option<CheckNeed> = None;
    // A statement behind one that may change the path, in a database with a schema another
    // role may create in: its names may lead there (sixty-seventh pass H1, `catalog::opened`).
    // Looked for only in a message of several statements (no text is read otherwise).
    let open_schemas =
        statements.len() > 1 && super::hidden::with_callers(catalog, info, |s| s.has_open_schemas()).unwrap_or(true);
    let mut path_changed = false;
    let mut steps_known = Vec::new();
    let mut dry = dry_run;
    // Something other than a protected sequence's `nextval` asks for the count.
    let mut others = false;
    for st in statements {
        let led = path_changed;
        path_changed |= open_schemas && super::hidden::may_set_path(st.text.as_bytes());
        for w in &st.writes {
            let table = w.target.as_ref().and_then(|t| policy.tables.iter().find(|p| p.matches(t)));
            let mode = policy::mode_for(info.view(), policy, table);
            if mode == Mode::Off {
                continue;
            }
            let is_delete = matches!(w.op, Op::Delete | Op::MergeDelete);
            // An upsert's overwrites are counted as updates (`n_tup_upd`).
            let is_update = matches!(w.op, Op::Update { .. } | Op::MergeUpdate { .. } | Op::Upsert { .. });
            let mut update_limited = policy.max_update_rows.is_some()
                || policy.anomaly.enabled == Some(true)
                || updates_limited_by_identity
                || table.is_some_and(|t| t.max_update_rows.is_some() || crate::contract::applies(t));
            // An UPDATE of a view (or a table with rules, triggers or children) can change rows
            // of a limited table under another name: the catalog says which names can.
            if is_update && !update_limited && any_update_limit {
                if let Some(t) = &w.target {
                    match info.names.assumed.is_indirect(catalog, &info.database, &t.name) {
                        Some(indirect) => update_limited = indirect,
                        None => unknown.push(t.name.clone()),
                    }
                }
            }
            let write_dry = dry_run || mode == Mode::DryRun;
            let mut counted = write_dry || (is_delete && any_delete_limit) || (is_update && update_limited);
            // A write whose foreign keys' actions change a guarded table counts like one to it.
            if let (false, true, Some(t)) = (counted, (is_delete || is_update) && cascades_matter, &w.target) {
                match info.names.assumed.cascades_reach_guarded(catalog, &info.database, &t.name, is_delete, policy) {
                    Some(reach) => counted = reach,
                    None => unknown.push(t.name.clone()),
                }
            }
            // A relation with rules (or triggers, or a view) may write a table whose text rules
            // its judgement did not reach: counted, so that its counts can say
            // (`guard::reached`, `unjudged-write`).
            if let (false, true, Some(t)) = (counted, (is_delete || is_update) && text_rules, &w.target) {
                match info.names.assumed.is_indirect(catalog, &info.database, &t.name) {
                    Some(indirect) => counted = indirect,
                    None => unknown.push(t.name.clone()),
                }
            }
            if counted {
                let n = need.get_or_insert_with(|| CheckNeed {
                    verb: w.op.verb(),
                    target: w.target.clone(),
                    dry_run: false,
                    known: Vec::new(),
                    only_moves: false,
                });
                n.dry_run |= write_dry;
                others = true;
            }
        }
        let verify_opaque = st.opaque.iter().any(|o| policy.opaque.for_key(o.key()) == Action::Verify)
            || (st.calls_functions && policy.opaque.functions == Action::Verify);
        let session = policy::mode_for(info.view(), policy, None);
        let session_dry = dry_run || session == Mode::DryRun;
        dry |= session_dry;
        // The statement's INSERTs (and COPY … FROM, MERGE … INSERT), read once for both uses
        // below.
        let for_contract = contract && !st.copy_from_stdin;
        let for_limits = (any_delete_limit || any_update_limit || session_dry || text_rules) && st.opaque.is_empty();
        let found = std::cell::OnceCell::new();
        let inserts_here = || found.get_or_init(|| inserts_in(st)).clone();
        let inserts = if for_contract || for_limits { inserts_here() } else { Arc::default() };
        // The anomaly and budget rules count every row kept (`contract`): an INSERT into a
        // name whose rules, triggers or children may change other rows is counted too.
        if for_contract {
            for t in inserts.iter().filter(|i| i.verb == "INSERT").map(|i| &i.target) {
                match info.names.assumed.is_indirect_insert(catalog, &info.database, &t.name) {
                    Some(true) => {
                        need.get_or_insert(CheckNeed {
                            verb: "INSERT",
                            target: Some(t.clone()),
                            dry_run: false,
                            known: Vec::new(),
                            only_moves: false,
                        });
                        others = true;
                    }
                    Some(false) => {}
                    None => unknown.push(t.name.clone()),
                }
            }
        }
        // An INSERT counts when its relation can write elsewhere (a trigger, a rule, a view).
        let mut inserts_indirect = false;
        if for_limits {
            for ins in inserts.iter() {
                match info.names.assumed.is_indirect_insert(catalog, &info.database, &ins.target.name) {
                    Some(indirect) => inserts_indirect |= indirect,
                    None => unknown.push(ins.target.name.clone()),
                }
            }
        }
        // A protected sequence moved by nextval (issue 11): counted however few the calls
        // (unless their steps are known from the text, below), so that where it leaves the
        // sequence is read — its steps are spent from the creep budget
        // (`precheck::creep`: statement after statement of a few calls each moved it as far as
        // one liked), and a block's remembered moves are put back from there (`session::undone`:
        // an unread `SELECT nextval(…)` between writes looked like another session's value).
        // A sequence is one by its listed name, or by what it feeds whatever it is called now
        // (`catalog::owners_query`: a protected column's default or owner; seventy-fourth pass
        // H1, the protected sequence renamed); not asked (`guard::decide` asks): counted.
        let protected = |s: &crate::analyze::RelName| {
            policy.tables.iter().any(|t| t.sequences.iter().any(|p| p.name == s.name))
                || feeds_protected(policy, info.names.assumed.sequence_owners(catalog, &info.database, &s.name))
        };
        let moves = st.calls_nextval_of(protected);
        // … unless its steps are known from its text (`known_steps`): then they are spent from
        // the creep budget below, and it is relayed uncounted.
        let moves = moves
            && match super::steps::known_steps(st, info, policy) {
                Some(steps) => {
                    steps_known.extend(steps);
                    false
                }
                None => true,
            };
        // … and a user function run by a view, default or domain the statement mentions.
        // Asked only where it matters: a read that calls built-ins is parsed again to say.
        let wrote = std::cell::OnceCell::new();
        let writes = || *wrote.get_or_init(|| may_write(st, || st.opaque.is_empty() && !inserts_here().is_empty()));
        let hidden = (super::hidden::hidden_call(st, catalog, info, &writes, policy)
            && !super::copies::moves_one_per_row(st, catalog, info, &mut unknown))
            || super::taint::reaches(st, info)
            || (led && !st.transaction_control);
        let watched = !policy.tables.is_empty() && session != Mode::Off;
        let dry_write = session_dry && writes();
        let other = (dry_run && !st.opaque.is_empty())
            || verify_opaque
            || dry_write
            || inserts_indirect
            || (watched && (reaches_unseen(st) || hidden));
        others |= other;
        if other || (watched && moves) {
            let verb = if st.ddl { "DDL" } else { "statement" };
            let fresh = CheckNeed { verb, target: None, dry_run: session_dry, known: Vec::new(), only_moves: false };
            need.get_or_insert(fresh).dry_run |= session_dry;
        }
    }
    // Asked even when a count is already needed: a Query run statement by statement judges
    // each of its statements again, mid-batch, where the catalog cannot be asked.
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        return Err(unknown);
    }
    // Steps known from the text, spent where the message is relayed uncounted; one that does
    // not fit is counted, and refused by the creep budget there (`precheck::slices`). A
    // protocol Parse runs again at each Execute: its steps are spent there
    // (`session::extended`), and counted when they do not fit.
    if need.is_none() && !steps_known.is_empty() {
        let counted =
            |known| Some(CheckNeed { verb: "statement", target: None, dry_run: dry, known, only_moves: false });
        if info.names.persisting {
            need = counted(steps_known);
        } else if !super::steps::spend_known(policy, catalog, &info.database, &steps_known) {
            need = counted(Vec::new());
        }
    }
    // Counted for its sequence moves alone: a larger move it reads may be another session's
    // (`precheck::slices`). Anything else — user code above all (seventy-sixth pass H3, H4: a
    // cast of `nextval(…)` to a domain whose CHECK calls a function moved the sequence 20,000
    // steps) — is judged by what it moved.
    if let Some(n) = &mut need {
        n.only_moves = !others;
    }
    Ok(need)
}

/// Whether a sequence's owners (`None`: not known) include a policy table's protected column,
/// of a table that lists protected sequences.
pub(super) fn feeds_protected(policy: &Policy, owners: Option<Vec<crate::catalog::Owner>>) -> bool {
    let Some(owners) = owners else { return true };
    owners.iter().any(|(schema, table, column)| {
        policy.tables.iter().any(|t| {
            !t.sequences.is_empty() && t.schema == *schema && t.name == *table && t.protected_columns.contains(column)
        })
    })
}

/// The text to EXPLAIN before a counted statement runs: one DELETE/UPDATE/MERGE statement with
/// no parameter references (EXPLAIN would need their values).
pub(super) fn estimate_text(statements: &[Statement], policy: &Policy) -> Option<String> {
    let [st] = statements else { return None };
    if !st.writes.iter().any(|w| w.op.is_row_write()) || !st.executes.is_empty() {
        return None;
    }
    // A write pinned to a few values of a protected column (an id) reaches a few rows: an
    // estimate would only cost a round trip.
    let pinned = |w: &analyze::Write| {
        let Some(analyze::Where::Cond(c)) = &w.predicate else { return false };
        let table = w.target.as_ref().and_then(|t| policy.tables.iter().find(|p| p.matches(t)));
        table.is_some_and(|t| {
            t.protected_columns.iter().any(|col| c.points.get(col).is_some_and(|n| n.is_some_and(|n| n <= 10)))
        })
    };
    if st.writes.iter().filter(|w| w.op.is_row_write()).all(pinned) {
        return None;
    }
    Some(st.text.trim_end_matches(';').to_string())
}

/// Why a message cannot be run inside a pre-check, if it cannot.
pub(super) fn unverifiable(statements: &[Statement]) -> Option<&'static str> {
    if statements.iter().any(|s| s.transaction_control) {
        return Some("the same message ends or opens a transaction (BEGIN, COMMIT, ROLLBACK, SAVEPOINT …)");
    }
    if statements.iter().any(|s| s.copy_from_stdin) {
        return Some("the same message reads COPY data from the client");
    }
    if statements.iter().any(|s| {
        super::maintenance::of(&s.text).is_some_and(|m| m.outside_blocks)
            || super::maintenance::index_build(&s.text).is_some_and(|(_, concurrent)| concurrent)
    }) {
        return Some(
            "PostgreSQL cannot run it inside a transaction (VACUUM, CREATE INDEX or REINDEX CONCURRENTLY, REINDEX of a schema or database, CLUSTER of every table): run ANALYZE, CREATE INDEX, REINDEX TABLE or CLUSTER of one table instead, which can be counted",
        );
    }
    None
}

/// How many statement shapes [`inserts_in`] keeps the INSERTs of (then it starts over).
const INSERT_SHAPES: usize = 10_000;

/// The INSERTs of statements by shape (`analyze::literal_shape`): which columns an INSERT
/// supplies, and where, is read from its tree's structure, never from a literal's value, so
/// every text of one shape has the same. Only found INSERTs are kept (a text that does not
/// parse has none, and another of its shape may parse).
static INSERTS: std::sync::OnceLock<ShapeInserts> = std::sync::OnceLock::new();

/// Hash of a statement shape (`analyze::key_hash`) → the shape and its INSERTs.
type ShapeInserts = dashmap::DashMap<u64, (Box<[u8]>, Arc<Vec<Insert>>)>;

/// The INSERTs (and COPY … FROM, MERGE … INSERT) of a statement that may insert: parsed once
/// per statement shape (a write with literal values is a new text every time).
pub(crate) fn inserts_in(st: &Statement) -> Arc<Vec<Insert>> {
    // A judgement asks this of each statement from several rules (five for a write): the
    // answer is a function of the text alone, so the last few texts' answers are kept.
    RECENT.with(|r| {
        let mut r = r.borrow_mut();
        let text = st.text.as_bytes();
        if let Some((_, found)) = r.iter().find(|(t, _)| t[..] == *text) {
            return found.clone();
        }
        let found = inserts_uncached(st);
        let next = r.1;
        r.1 = (next + 1) % RECENT_TEXTS;
        let slot = &mut r.0[next];
        slot.0.clear();
        slot.0.extend_from_slice(text);
        slot.1 = found.clone();
        found
    })
}

/// How many texts' answers [`inserts_in`] keeps per thread.
const RECENT_TEXTS: usize = 4;

/// The last texts [`inserts_in`] answered (their buffers reused) and the next slot to fill.
struct Recent([(Vec<u8>, Arc<Vec<Insert>>); RECENT_TEXTS], usize);

impl Recent {
    fn iter(&self) -> impl Iterator<Item = &(Vec<u8>, Arc<Vec<Insert>>)> {
        self.0.iter().filter(|(t, _)| !t.is_empty())
    }
}

thread_local! {
    static RECENT: std::cell::RefCell<Recent> = std::cell::RefCell::new(Recent(Default::default(), 0));
}

fn inserts_uncached(st: &Statement) -> Arc<Vec<Insert>> {
    if !may_insert(st.text.as_bytes()) {
        return Arc::default();
    }
    let Some(shape) = analyze::literal_shape(&st.text) else { return Arc::new(crate::contract::inserts(&st.text)) };
    let cache = INSERTS.get_or_init(Default::default);
    let hash = analyze::key_hash(|h| std::hash::Hash::hash(&shape[..], h));
    if let Some(hit) = cache.get(&hash).filter(|e| *e.0 == shape[..]) {
        return hit.1.clone();
    }
    let found = Arc::new(crate::contract::inserts(&st.text));
    if !found.is_empty() {
        if cache.len() >= INSERT_SHAPES {
            cache.clear();
        }
        cache.insert(hash, (shape.into(), found.clone()));
    }
    found
}

/// Whether a text holds `insert`, `copy` or `merge` anywhere (any case, even inside a longer
/// word, a string or a comment): a statement without one inserts nothing. One pass, no
/// allocation (it runs for every statement judged).
fn may_insert(text: &[u8]) -> bool {
    any_letter_at(text, b"icm", |i| at_ci(text, i, b"insert") || at_ci(text, i, b"copy") || at_ci(text, i, b"merge"))
}

/// Whether `found(i)` holds at a position `i` of `hay` whose byte is one of `letters` (lower
/// case ASCII letters) in either case. Bytes are tested eight at a time (a byte of `x` is zero
/// when `(x - 0x01…) & !x & 0x80…` flags it; a byte above a zero one may be flagged too, which
/// `found` then rejects): most texts have few such letters, and this runs for every write.
fn any_letter_at(hay: &[u8], letters: &[u8], found: impl Fn(usize) -> bool) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = hay.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) | (LO * 0x20);
        let mut flagged = 0;
        for &l in letters {
            let y = x ^ (LO * u64::from(l));
            flagged |= y.wrapping_sub(LO) & !y & HI;
        }
        while flagged != 0 {
            if found(at + (flagged.trailing_zeros() / 8) as usize) {
                return true;
            }
            flagged &= flagged - 1;
        }
        at += 8;
    }
    chunks.remainder().iter().enumerate().any(|(k, &c)| letters.contains(&(c | 0x20)) && found(at + k))
}

/// Whether `word` (lower case) is at `i` in `text`, in any case.
fn at_ci(text: &[u8], i: usize, word: &[u8]) -> bool {
    text.get(i..i + word.len()).is_some_and(|x| x.eq_ignore_ascii_case(word))
}

/// Whether a statement may write in a dry-run session, where it is then run and rolled back:
/// anything but a statement that only reads (SET, SHOW and plain SELECTs of built-ins stay
/// unwrapped: a rollback would undo a SET). `inserts`: whether it has INSERTs, when it has
/// nothing opaque (an opaque one is judged as a whole; asked only when needed).
fn may_write(st: &Statement, inserts: impl FnOnce() -> bool) -> bool {
    !st.is_harmless() || st.ddl || st.calls_functions || inserts() || !reads_only(&st.text)
}

/// Whether every statement of a text is of a kind that writes no data and no schema (a query,
/// SET/SHOW, EXPLAIN, transaction control, cursors, LISTEN/NOTIFY, LOCK, VACUUM, …). Anything
/// else — CREATE INDEX, REFRESH MATERIALIZED VIEW, COMMENT, GRANT, CLUSTER, … — may write.
fn reads_only(text: &str) -> bool {
    use pg_query::NodeEnum as N;
    let Ok(parsed) = crate::analyze::budget::parse(text, 0) else { return false };
    parsed.protobuf.stmts.iter().all(|s| {
        matches!(
            s.stmt.as_ref().and_then(|n| n.node.as_ref()),
            Some(
                N::SelectStmt(_)
                    | N::VariableSetStmt(_)
                    | N::VariableShowStmt(_)
                    | N::ExplainStmt(_)
                    | N::TransactionStmt(_)
                    | N::DeclareCursorStmt(_)
                    | N::FetchStmt(_)
                    | N::ClosePortalStmt(_)
                    | N::ListenStmt(_)
                    | N::UnlistenStmt(_)
                    | N::NotifyStmt(_)
                    | N::LockStmt(_)
                    | N::VacuumStmt(_)
                    | N::CheckPointStmt(_)
                    | N::DiscardStmt(_)
                    | N::PrepareStmt(_)
                    | N::ExecuteStmt(_)
                    | N::DeallocateStmt(_)
            )
        )
    })
}

/// Whether a statement may reach a protected object in a way its text cannot prove: DDL (a
/// rename, a move, a CASCADE, a type change, a new parent), TRUNCATE and other writes that are
/// not row writes, a function or procedure whose body is unseen, or any use of `setval`
/// (through a view, an operator, a renamed sequence). Statements PostgreSQL cannot run in a
/// transaction block (and that cannot reach a table's rows) are left out, unless they call a
/// function.
fn reaches_unseen(st: &Statement) -> bool {
    let text = st.text.as_bytes();
    let mut words = st.text.split_whitespace();
    let (first, second, third) = (words.next(), words.next(), words.next());
    let is = |w: Option<&str>, any: &[&str]| w.is_some_and(|w| any.iter().any(|x| w.eq_ignore_ascii_case(x)));
    let outside_blocks = (is(first, &["create", "drop", "alter"])
        && is(second, &["database", "tablespace", "subscription", "system"]))
        || (is(first, &["drop"]) && is(second, &["index"]) && is(third, &["concurrently"]))
        || (is(first, &["create", "drop", "reindex"]) && contains_ci(text, b"concurrently"));
    // What such a statement's own text runs (`CREATE INDEX CONCURRENTLY … (f(x))`) still
    // counts: it is then refused as `unverifiable`.
    if outside_blocks {
        return st.calls_functions;
    }
    st.ddl
        || st.calls_functions
        || contains_ci(text, b"setval")
        || st.writes.iter().any(|w| !w.op.is_row_write() && !matches!(w.op, Op::Upsert { .. } | Op::DropDatabase))
        || st.opaque.iter().any(|o| matches!(o, Opaque::DoBlock | Opaque::Call(_)))
}

/// Whether `needle` (lower case) is in `hay`, in any case.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    any_letter_at(hay, &needle[..1], |i| at_ci(hay, i, needle))
}

/// `COPY … TO PROGRAM` or `FROM PROGRAM`: the server runs a program, which can do anything.
pub(super) fn copy_program(statements: &[Statement]) -> bool {
    statements.iter().any(|st| {
        let lower = st.text.to_ascii_lowercase();
        lower.contains("copy")
            && lower.contains("program")
            && crate::analyze::budget::parse(&st.text, 0).is_ok_and(|p| {
                p.protobuf.nodes().iter().any(|(n, ..)| matches!(n, pg_query::NodeRef::CopyStmt(c) if c.is_program))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_words_are_found_in_any_case_anywhere() {
        for t in [
            "INSERT INTO t VALUES (1)",
            "with x as (Insert into t values (1)) select 1",
            "cOpY t FROM STDIN",
            "MERGE INTO t",
            "select inserted_at from t",
        ] {
            assert!(may_insert(t.as_bytes()), "{t}");
        }
        for t in ["UPDATE t SET a = 1 WHERE id = 2", "SELECT abalance FROM pgbench_accounts", "", "insrt cpy mrge"] {
            assert!(!may_insert(t.as_bytes()), "{t}");
        }
        assert!(contains_ci(b"select SetVal('s', 1)", b"setval"));
        assert!(!contains_ci(b"select setva", b"setval"));
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// Eight bytes at a time, the words are found where a byte-by-byte reading finds them.
        #[test]
        fn words_are_found_as_byte_by_byte(parts in proptest::collection::vec(proptest::prop_oneof![
            proptest::sample::select(vec![
                "insert", "INSERT", "copy", "Merge", "setval", "SETVAL", "setva", "ins", "s", "S", "i",
                "c", "m", "3", "s\u{0}", "é", " ", "\u{53}", "\u{73}", "\u{93}", "\u{f3}",
            ]).prop_map(str::to_string),
            "[a-zA-Z ]{0,9}",
        ], 0..12)) {
            let text = parts.concat();
            let b = text.as_bytes();
            let reference = |word: &[u8]| (0..b.len()).any(|i| at_ci(b, i, word));
            proptest::prop_assert_eq!(
                may_insert(b),
                reference(b"insert") || reference(b"copy") || reference(b"merge"),
                "{:?}", text
            );
            proptest::prop_assert_eq!(contains_ci(b, b"setval"), reference(b"setval"), "{:?}", text);
        }
    }

    /// The texts answered last are answered again as before, each its own, in any order and
    /// past the number kept.
    #[test]
    fn the_last_texts_inserts_are_each_their_own() {
        let st = |text: &str| Statement { text: text.into(), ..Default::default() };
        let texts: Vec<String> = (0..RECENT_TEXTS + 2)
            .map(|i| match i % 2 {
                0 => format!("INSERT INTO t{i} (a) VALUES ({i})"),
                _ => format!("UPDATE t{i} SET a = {i}"),
            })
            .collect();
        for round in 0..3 {
            for t in texts.iter().rev().skip(round) {
                let found = inserts_in(&st(t));
                assert_eq!(found, inserts_uncached(&st(t)), "{t}");
                let again = inserts_in(&st(t));
                assert!(Arc::ptr_eq(&found, &again), "{t}: not kept");
                assert_eq!(
                    found.first().map(|i| i.target.name.clone()),
                    t.starts_with("INSERT").then(|| t[12..14].to_string())
                );
            }
        }
    }

    #[test]
    fn statements_outside_blocks_are_read_from_their_first_words() {
        let st = |text: &str| Statement { text: text.into(), ..Default::default() };
        for t in
            ["CREATE DATABASE x", "drop   Tablespace t", "DROP INDEX CONCURRENTLY i", "reindex table concurrently t"]
        {
            // DDL that PostgreSQL runs outside a transaction block (and that cannot reach a
            // table's rows) is left out.
            let mut s = st(t);
            s.ddl = true;
            assert!(!reaches_unseen(&s), "{t}");
        }
        for t in ["ALTER TABLE t DROP COLUMN c", "select setval('s', 1)"] {
            let mut s = st(t);
            s.ddl = t.starts_with("ALTER");
            assert!(reaches_unseen(&s), "{t}");
        }
        // A statement PostgreSQL runs outside blocks still counts when its text calls a function.
        let mut s = st("CREATE INDEX CONCURRENTLY i ON t (f(x))");
        s.calls_functions = true;
        assert!(reaches_unseen(&s));
    }
}
