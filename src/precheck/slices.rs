//! A portal run in slices (protocol Execute with a row count) or a cursor read by repeated
//! `FETCH` is one statement for the protected-sequence rule as for the row limits: each slice
//! is judged by how far the protected sequences moved since the portal's first counted slice
//! (its Bind, the cursor's first FETCH after DECLARE), against the rows the whole run inserted
//! plus the slack, not by its own movement alone (red-team F10: 30 slices of 900 `nextval`
//! calls each moved a sequence 27,000 steps past a rule of 1,000).
//!
//! Owns: [`Positions`] (where the protected sequences stood when a run began) and judging a
//! slice's identity from them. Does not own: the readings (`identity`), which runs are one
//! (`session::counting`).

use super::identity::{self, Change, Identity};

/// A raw counter reading.
type Rows<'a> = &'a [Vec<Option<String>>];

/// The "position" items of an identity reading: where each protected sequence stood.
pub type Positions = Identity;

/// Where the protected sequences stand in a raw counter reading.
pub fn positions(rows: &[Vec<Option<String>>]) -> Positions {
    identity::read(rows).into_iter().filter(|((_, _, item), _)| item == "position").collect()
}

/// The run's start: `since` (an earlier slice's) when there is one, else this reading's.
pub fn run_start(since: &Positions, before: &[Vec<Option<String>>]) -> Positions {
    if since.is_empty() {
        positions(before)
    } else {
        since.clone()
    }
}

/// The identity findings of a check from its two counter readings, for a slice whose run
/// began at `since` (empty: this slice is the run, as for any check): the sequences' positions
/// are compared with where the run began, with the rows the whole run inserted (`counts`,
/// earlier slices included), and their unexplained steps spent from the creep budget of
/// `creep`'s database (`creep`). A sequence put back after a refusal goes
/// back to where it stood before this slice only (the earlier slices' values were delivered).
pub fn judge_since(
    since: &Positions,
    (before, after): (Rows<'_>, Rows<'_>),
    counts: &[super::TableCount],
    who: crate::policy::SessionView<'_>,
    policy: &crate::policy::Policy,
    plan: &super::CheckPlan,
    creep: (&super::creep::Creep, &str),
) -> (Vec<Change>, Vec<crate::policy::Finding>) {
    let own = identity::read(before);
    let mut start = own.clone();
    for (key, was) in since {
        if let Some(v) = start.get_mut(key) {
            v.clone_from(was);
        }
    }
    let inserted = super::putback::sequence_inserts(counts, policy);
    let after = identity::read(after);
    let mut changed = identity::changes(&start, &after, inserted);
    // PostgreSQL counts a row inserted inside a subtransaction that was rolled back (a
    // function's `EXCEPTION` block) as inserted: a statement that runs code cannot show that its
    // inserted rows were kept, so its move is judged without them (thirtieth session: a
    // function that inserts 20,000 users and catches its own error moved the sequence 20,000).
    if inserted > 0 && runs_code(&plan.statement) {
        for mut c in identity::changes(&start, &after, 0) {
            if c.kind == identity::Kind::Sequence && !changed.iter().any(|d| d.object == c.object && d.kind == c.kind) {
                c.what.push_str(RUNS_CODE);
                changed.push(c);
            }
        }
    }
    for c in &mut changed {
        if let Some((oid, was, _)) = &mut c.sequence_was {
            let key = (c.object.clone(), oid.to_string(), "position".to_string());
            *was = own.get(&key).and_then(|v| v.parse().ok());
        }
    }
    // A statement of settings alone (`SET ROLE tenant`, `BEGIN; SET LOCAL ROLE tenant`) runs
    // no code and moves no sequence: one it leaves unreadable is one the new role may not
    // read (seventy-fourth pass FP2: such a `SET ROLE` was refused as a move "to unreadable").
    if changed.iter().any(|c| c.kind == identity::Kind::Sequence) && only_settings(&plan.statement) {
        changed.retain(|c| {
            let now = c
                .sequence_was
                .and_then(|(oid, _, _)| after.get(&(c.object.clone(), oid.to_string(), "position".to_string())));
            !(c.kind == identity::Kind::Sequence && now.is_some_and(|v| v == "unreadable"))
        });
    }
    // A statement whose only moves are a few `nextval` calls, each run once (relayed uncounted
    // elsewhere: counted in a block with remembered moves only to read where it leaves the
    // sequence, `session::undone`), moves it by at most those calls: a larger move it reads is
    // another session's — an import beside it (thirty-fifth pass M2: such moves refused one
    // `SELECT nextval(…)` in four, and their put-backs went under the import's values).
    // Only when nothing else asked for its count (`CheckPlan::only_moves`): user code beside
    // the calls — a cast to a domain whose CHECK calls a function, an operator of the
    // session's own schema — may call `nextval` as often as it likes (seventy-sixth pass H3,
    // H4: 20,000 steps per written call, kept).
    let bounded = only_bounded_nextval(&plan.statement).filter(|_| plan.only_moves);
    if bounded.is_some() {
        changed.retain(|c| !(c.kind == identity::Kind::Sequence && c.sequence_was.is_some()));
    }
    crept(&start, &own, &after, inserted, bounded, policy, creep, &mut changed);
    let mut findings = identity::findings(&changed, who, policy, &plan.statement, plan.verb);
    findings.extend(super::named::findings(&plan.names, &own, &after, who, policy, &plan.statement, plan.verb));
    (changed, findings)
}

/// Spends each protected sequence's unexplained steps of this statement from its table's
/// creep budget (`creep`); one that does not fit is a change (refused, and put back to where
/// it stood before this statement). A sequence already changed otherwise spends nothing.
/// A statement of bounded `nextval` calls only spends at most its calls (a larger move is
/// another session's).
#[allow(clippy::too_many_arguments)]
fn crept(
    start: &Identity,
    own: &Identity,
    after: &Identity,
    inserted: u64,
    bounded: Option<u64>,
    policy: &crate::policy::Policy,
    (creep, database): (&super::creep::Creep, &str),
    changed: &mut Vec<Change>,
) {
    for ((object, oid, item), now) in after {
        if item != "position" || changed.iter().any(|c| c.object == *object && c.kind == identity::Kind::Sequence) {
            continue;
        }
        let table = policy.tables.iter().find(|t| {
            t.sequences.iter().any(|s| format!("{}.{}", s.schema.as_deref().unwrap_or(&t.schema), s.name) == *object)
        });
        let key = |i: &str| (object.clone(), oid.clone(), i.to_string());
        let pos = |s: &Identity| s.get(&key("position")).and_then(|v| v.parse::<i128>().ok());
        let (Some(table), Some(from), Some(was), Ok(now_at), Ok(seq)) =
            (table, pos(start), pos(own), now.parse::<i128>(), oid.parse::<u32>())
        else {
            continue;
        };
        let step = start
            .get(&key("definition"))
            .and_then(|d| d.split(' ').next()?.parse::<i128>().ok())
            .filter(|s| *s != 0)
            .unwrap_or(1);
        let steps = |p: i128| (p - from) * step.signum() / step.abs();
        let mut u = super::creep::unexplained(steps(was), steps(now_at), inserted);
        if let Some(calls) = bounded {
            u = u.min(calls);
        }
        let budget = table.creep;
        if let Err(over) = creep.take(database, seq, u, budget.steps, budget.window_secs) {
            changed.push(Change {
                object: object.clone(),
                kind: identity::Kind::Sequence,
                what: format!(
                    "sequence moved from {was} to {now_at}, {u} steps beyond the rows inserted, and {} such steps were taken in the last {} (budget: sequence_creep = {} per sequence_creep_window)",
                    over.spent,
                    window(budget.window_secs),
                    budget.steps
                ),
                sequence_was: Some((seq, Some(was), Some(now_at))),
            });
        }
    }
}

/// Whether every statement of `statement` is a `SET`/`RESET` (of a role too) or the start of a
/// block or savepoint: nothing that runs code (a `COMMIT` fires deferred triggers).
fn only_settings(statement: &str) -> bool {
    use pg_query::protobuf::TransactionStmtKind as Tx;
    use pg_query::NodeEnum;
    let Ok(parsed) = pg_query::parse(statement, pg_query::ParserOptions::DEFAULT) else { return false };
    let nodes: Vec<_> = parsed.protobuf.stmts.iter().map(|r| r.stmt.as_ref().and_then(|n| n.node.as_ref())).collect();
    !nodes.is_empty()
        && nodes.iter().all(|n| match n {
            Some(NodeEnum::VariableSetStmt(_)) => true,
            Some(NodeEnum::TransactionStmt(t)) => {
                matches!(Tx::try_from(t.kind), Ok(Tx::TransStmtBegin | Tx::TransStmtStart | Tx::TransStmtSavepoint))
            }
            _ => false,
        })
}

/// A window in seconds as a policy spells it.
fn window(secs: u64) -> String {
    match secs {
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// How many `nextval` calls `statement` makes when every statement of it writes nothing,
/// runs no code of its own, and calls `nextval` only a bounded number of times, once each
/// (and `setval` nowhere), with at least one such call; `None` otherwise.
fn only_bounded_nextval(statement: &str) -> Option<u64> {
    if statement.to_ascii_lowercase().contains("setval") {
        return None;
    }
    let sts = crate::analyze::analyze(statement, Default::default());
    let quiet = |st: &crate::analyze::Statement| {
        st.writes.is_empty() && st.opaque.is_empty() && !st.calls_functions && !st.copy_from_stdin && !st.ddl
    };
    let only = sts.iter().all(|st| quiet(st) && (st.nextval.is_empty() || st.nextval_bounded))
        && sts.iter().any(|st| !st.nextval.is_empty());
    only.then(|| sts.iter().map(|st| st.nextval.len() as u64).sum())
}

/// Why a statement's inserted rows do not count for its sequence moves.
const RUNS_CODE: &str = " by a statement that runs functions: rows inserted in a subtransaction it rolled back count as inserted on the server, so its inserts cannot show the move was used";

/// Whether a statement calls code of its own (a function that is not a well-known built-in, a
/// body the analysis cannot see into).
pub(super) fn runs_code(statement: &str) -> bool {
    crate::analyze::analyze(statement, Default::default()).iter().any(|st| st.calls_functions || !st.opaque.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_alone_run_nothing() {
        assert!(super::only_settings("SET ROLE tenant"));
        assert!(super::only_settings("BEGIN; SET LOCAL ROLE tenant"));
        assert!(super::only_settings("RESET ROLE"));
        assert!(!super::only_settings("SET ROLE tenant; SELECT * FROM v"));
        assert!(!super::only_settings("SET ROLE tenant; COMMIT"));
        assert!(!super::only_settings("SELECT set_config('role', 'tenant', false)"));
        assert!(!super::only_settings("not sql"));
    }

    #[test]
    fn a_few_nextval_calls_and_nothing_else() {
        assert_eq!(super::only_bounded_nextval("SELECT nextval('web_user_id_seq')"), Some(1));
        assert_eq!(super::only_bounded_nextval("SELECT -nextval('s') AS id, nextval('s')"), Some(2));
        assert!(super::only_bounded_nextval("SELECT nextval('s') FROM generate_series(1, 1000)").is_none());
        assert!(super::only_bounded_nextval("SELECT nextval('s'), setval('s', 1)").is_none());
        assert!(super::only_bounded_nextval("INSERT INTO t VALUES (nextval('s'))").is_none());
        assert!(super::only_bounded_nextval("SELECT nextval('s'), f()").is_none());
        assert!(super::only_bounded_nextval("SELECT 1").is_none());
    }
}
