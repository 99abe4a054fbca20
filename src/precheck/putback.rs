//! Protected sequences put back where they stood when a statement that moved them is not
//! kept: refused by the identity rule (`identity::changes` judged the move), or ended without
//! a reading after it — failed by itself, cancelled, timed out, failed at a deferred trigger,
//! or abandoned by its client (fourth adversarial pass F3/F4: sequences are not
//! transactional, and a failed statement's move was kept). What a move beyond the rule is
//! (backward, reset, or forward by more than the rows inserted plus the slack) is decided on
//! the server in the same statement that puts it back, from where the sequence stood before.
//!
//! Never below a value another session took: a backward move (or a reset) is put forward
//! again only while the sequence still stands behind where it stood, which moves it past every
//! value handed out since; a forward move is put back only while the sequence stands where
//! this session's own last call left it — `currval` on the statement's own session, within
//! the session's cache — so that no value another session took after that call is handed out
//! again. A value another session took between two of the statement's own calls cannot be
//! told from the statement's own (PostgreSQL records no taker): that one can be handed out
//! again (README, "Where it falls short today").
//!
//! Owns: which sequences may need it (`candidates`, `from_changes`), the put-back statement
//! and running it. Does not own: the readings (`identity`) or when a check ends (`verify`).

use super::identity::{self, Change, Kind};
use super::{Backend, PrecheckError};

/// A protected sequence a statement may have moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub oid: u32,
    /// Where it stood when the run began, judged from (`None`: never called).
    pub start: Option<i128>,
    /// Where it stood before this statement: put back there.
    pub was: Option<i128>,
    /// Steps forward it may take without a verdict; `None`: judged beyond already.
    pub allowed: Option<u64>,
    /// Where the reading after the statement found it: put back only while it stands there.
    pub left_at: Option<Option<i128>>,
}

/// How far a protected sequence may move beyond the rows inserted (`identity`).
const SLACK: u64 = 1000;

/// The rows `counts` show inserted into the policy tables that list a protected sequence
/// (children and partitions summed in): the inserts that explain a move of one. Rows inserted
/// anywhere else do not (forty-second pass M1: `INSERT INTO web_messages … SELECT …
/// nextval('web_user_id_seq')` moved the users' sequence by as many rows, none of them users).
pub fn sequence_inserts(counts: &[super::TableCount], policy: &crate::policy::Policy) -> u64 {
    let takes = |c: &super::TableCount| {
        policy.tables.iter().any(|t| !t.sequences.is_empty() && t.schema == c.schema && t.name == c.name)
    };
    counts.iter().filter(|c| takes(c)).map(|c| c.inserted).sum()
}

/// The protected sequences of a reading before a statement that a put-back applies to (their
/// policy refuses or rehearses, never warn or off), each judged from where the run began
/// (`since`, an earlier slice's positions) with `inserted` rows (the run's kept ones).
pub fn candidates(
    before: &[Vec<Option<String>>],
    since: &super::slices::Positions,
    inserted: u64,
    who: crate::policy::SessionView<'_>,
    policy: &crate::policy::Policy,
) -> Vec<Moved> {
    let own = identity::read(before);
    own.iter()
        .filter(|((_, _, item), v)| item == "position" && v.as_str() != "unreadable")
        .filter_map(|(key @ (object, oid, _), v)| {
            let change =
                Change { object: object.clone(), kind: Kind::Sequence, what: String::new(), sequence_was: None };
            let refuses = identity::findings(&[change], who, policy, "", "")
                .iter()
                .any(|f| f.mode >= crate::policy::Mode::DryRun);
            let start = since.get(key).unwrap_or(v);
            if !refuses {
                return None;
            }
            Some(Moved {
                oid: oid.parse().ok()?,
                start: start.parse().ok(),
                was: v.parse().ok(),
                // Not kept (failed, refused, unverifiable): none of its own steps stays —
                // failure after failure, each under the slack, would creep past any budget
                // (`creep`); the earlier slices' rows explain theirs.
                allowed: Some(inserted),
                left_at: None,
            })
        })
        .collect()
}

/// The candidates (`candidates`) that a write kept in the client's block moved — their
/// position in the reading after it (`after`) differs from the one before (`before`) — as
/// moves a rollback of the block would leave with no row: put back to where they stood
/// before it when they moved beyond the slack (`session::undone`). `left_at`: where the
/// reading after found it (the block keeps it as its last sight, not as a condition).
pub fn kept_moves(back: &[Moved], before: &[Vec<Option<String>>], after: &[Vec<Option<String>>]) -> Vec<Moved> {
    if back.is_empty() {
        return Vec::new();
    }
    let (before, after) = (&identity::read(before), identity::read(after));
    let position = |id: &identity::Identity, oid: u32| {
        id.iter().find(|((_, o, item), _)| item == "position" && o.parse() == Ok(oid)).map(|(_, v)| v.clone())
    };
    back.iter()
        .filter(|m| position(before, m.oid) != position(&after, m.oid))
        .map(|m| {
            // Where it stands after the write: the block's last sight of it (`undone`).
            let at = position(&after, m.oid).map(|v| v.parse().ok());
            Moved { oid: m.oid, start: m.was, was: m.was, allowed: Some(SLACK), left_at: at }
        })
        .collect()
}

/// Whether a write's kept moves (`kept_moves`) went further than the `inserted` rows it put
/// into the tables that hold the sequences' values: the values beyond them went somewhere
/// else — to the client (a temporary view or a temporary table's default over `nextval`,
/// seventy-ninth pass H1), or nowhere (a conflict skipped). Measured in values, at least the
/// steps whatever the increment; a move whose end was not read counts as beyond.
pub fn beyond_rows(moves: &[Moved], inserted: u64) -> bool {
    moves.iter().any(|m| match (m.was, m.left_at) {
        (Some(was), Some(Some(end))) => (end - was).unsigned_abs() > u128::from(inserted),
        _ => true,
    })
}

/// The candidates (`candidates`) of a statement in the client's block that was not kept
/// (failed, refused): what it moved within its allowance stays moved with no row, and where
/// it left the sequences was never read — for `session::undone`, which puts a block's moves
/// back as one run only while each follows the one before.
pub fn unread(back: &[Moved]) -> Vec<Moved> {
    back.iter().map(|m| Moved { oid: m.oid, start: m.was, was: m.was, allowed: Some(SLACK), left_at: None }).collect()
}

/// Marks the row of [`ends_sql`].
const ENDS: &str = "blastwall:ends";

/// A statement that reads where the sequences `oids` stand now, as one row: [`ENDS`], then
/// `oid=position,…` (`unset`: never called; a sequence the role may not read is left out).
pub fn ends_sql(oids: impl Iterator<Item = u32>) -> String {
    let oids = oids.map(|o| o.to_string()).collect::<Vec<_>>().join(",");
    format!(
        "SELECT '{ENDS}'::pg_catalog.text, pg_catalog.string_agg(o::pg_catalog.text OPERATOR(pg_catalog.||) '=' \
           OPERATOR(pg_catalog.||) coalesce(pg_catalog.pg_sequence_last_value(o::pg_catalog.regclass)::pg_catalog.text, 'unset'), ',') \
         FROM pg_catalog.unnest('{{{oids}}}'::pg_catalog.oid[]) o WHERE pg_catalog.has_sequence_privilege(o, 'SELECT,USAGE')"
    )
}

/// What [`ends_sql`]'s row among `rows` says: each sequence read, with its position.
pub fn ends(rows: &[Vec<Option<String>>]) -> Vec<(u32, Option<i128>)> {
    let row = rows.iter().find(|r| r.first().and_then(|v| v.as_deref()) == Some(ENDS));
    let text = row.and_then(|r| r.get(1).cloned().flatten()).unwrap_or_default();
    text.split(',')
        .filter_map(|p| p.split_once('='))
        .filter_map(|(o, v)| Some((o.parse().ok()?, v.parse().ok())))
        .collect()
}

/// The moves of `back` (a statement in the client's block that was not kept) as [`unread`]
/// gives them, each with where [`ends_sql`]'s row among `rows` found its sequence (its end;
/// none found: unread).
pub fn ended(back: &[Moved], rows: &[Vec<Option<String>>]) -> Vec<Moved> {
    let at = ends(rows);
    unread(back)
        .into_iter()
        .map(|m| Moved { left_at: at.iter().find(|(o, _)| *o == m.oid).map(|(_, v)| *v), ..m })
        .collect()
}

/// The rows of a simple query run on a connection of blastwall's own (`tokio_postgres`), as
/// the session's backend gives them.
pub fn simple_rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The reading of where the protected sequences stand (the counted statements' own identity
/// reading, as rows of a counter reading), taken before a statement blastwall relays uncounted
/// that may move one — a `COPY … FROM STDIN` (`session::copyback`). `None`: no policy table.
pub fn reading_sql(policy: &crate::policy::Policy, known: &dyn Fn(&str, &str) -> Option<u32>) -> Option<String> {
    identity::sql(policy, known, false, false, &[], &[]).map(|s| identity::as_reading(&s))
}

/// [`candidates`] of a reading taken before a statement that keeps no row should it fail.
pub fn before_uncounted(
    before: &[Vec<Option<String>>],
    who: crate::policy::SessionView<'_>,
    policy: &crate::policy::Policy,
) -> Vec<Moved> {
    candidates(before, &super::slices::Positions::new(), 0, who, policy)
}

/// The sequences a refused statement moved (`identity::changes` judged them).
pub fn from_changes(changed: &[Change]) -> Vec<Moved> {
    changed
        .iter()
        .filter_map(|c| c.sequence_was)
        .map(|(oid, was, now)| Moved { oid, start: was, was, allowed: None, left_at: Some(now) })
        .collect()
}

/// The statement that puts `m` back when it moved beyond the rule and may be put back (see
/// the module's doc); a row (where it stood, where it is put) when it did.
pub fn sql(m: &Moved) -> String {
    statement(m, true, true)
}

/// [`sql`] without the `setval`: where the sequence stands (one row) when the put-back is due.
pub fn due_sql(m: &Moved) -> String {
    statement(m, true, false)
}

const DUE: &str = "blastwall:due";

/// [`due_sql`] with a mark and the sequence's OID, to run among other statements of
/// blastwall's (read back by [`dues`]).
pub fn due_marked_sql(m: &Moved) -> String {
    format!("SELECT '{DUE}'::pg_catalog.text, '{}'::pg_catalog.text, d.lv FROM ({}) d(lv)", m.oid, due_sql(m))
}

/// What [`due_marked_sql`]'s rows among `rows` say: each sequence whose put-back is due, and
/// where it stands.
pub fn dues(rows: &[Vec<Option<String>>]) -> Vec<(u32, i128)> {
    rows.iter()
        .filter(|r| r.len() == 3 && r[0].as_deref() == Some(DUE))
        .filter_map(|r| Some((r[1].as_deref()?.parse().ok()?, r[2].as_deref()?.parse().ok()?)))
        .collect()
}

/// [`sql`] for a connection other than the session's (its server session ended with the
/// move undone, `session::orphan`), where `currval` cannot be asked. When `m.left_at` (where
/// the session's last reading found it) is known, the sequence must stand exactly there: no
/// value handed out since. When it is not (the session ended in the middle of the
/// statement), no other session may hold the lock `nextval` takes on the sequence (row
/// exclusive, until its transaction ends; a reader's lock does not count: thirty-fifth pass
/// M1) — so that no value in use by an open transaction is handed out again;
/// a value another session took and committed in the meantime cannot be told from the
/// statement's own (as within a statement, see the module's doc).
pub fn sql_elsewhere(m: &Moved) -> String {
    statement(m, false, true)
}

fn statement(m: &Moved, own_session: bool, set: bool) -> String {
    let oid = m.oid;
    let op = |o: &str| format!("OPERATOR(pg_catalog.{o})");
    let (minus, times, lt, gt, ge, le, eq) = (op("-"), op("*"), op("<"), op(">"), op(">="), op("<="), op("="));
    let num = "pg_catalog.numeric";
    let sign = format!("pg_catalog.sign(x.inc::{num})");
    let abs = format!("pg_catalog.abs(x.inc::{num})");
    // Steps from `from` to `to` in the sequence's direction.
    let steps = |to: &str, from: &str| format!("((({to})::{num} {minus} ({from})::{num}) {times} {sign})");
    let start = match m.start {
        Some(s) => s.to_string(),
        // Never called: its first value is its start.
        None => format!("(x.st {minus} x.inc)"),
    };
    let moved = steps("x.lv", &start);
    let (target, called, behind) = match m.was {
        Some(w) => (w.to_string(), "true", format!("{} {lt} 0", steps("x.lv", &w.to_string()))),
        None => ("x.st".to_string(), "false", "true".to_string()),
    };
    let beyond = match m.allowed {
        Some(n) => format!("{moved} {gt} ({n}::{num} {times} {abs})"),
        None => "true".into(),
    };
    let left = match (m.left_at, own_session) {
        (Some(Some(v)), _) => format!("x.lv {eq} {v}::pg_catalog.int8"),
        (None, true) => "true".to_string(),
        (Some(None), true) => "false".to_string(),
        (_, false) => format!(
            "NOT EXISTS (SELECT FROM pg_catalog.pg_locks l WHERE l.locktype {eq} 'relation' \
               AND l.relation {eq} {oid}::pg_catalog.oid AND l.mode {eq} 'RowExclusiveLock' \
               AND l.pid {ne} pg_catalog.pg_backend_pid())",
            ne = op("<>")
        ),
    };
    // Its last value is this session's own, or in the block this session's last call cached
    // (elsewhere: `left`, exact).
    let ours = match own_session {
        false => "true".to_string(),
        true => format!(
            "{d} {ge} 0 AND {d} {le} ((x.cache {minus} 1)::{num} {times} {abs})",
            d = steps("x.lv", &format!("pg_catalog.currval({oid}::pg_catalog.regclass)"))
        ),
    };
    let setval = match set {
        true => format!(", pg_catalog.setval({oid}::pg_catalog.regclass, {target}, {called})::pg_catalog.text"),
        false => String::new(),
    };
    format!(
        "SELECT x.lv::pg_catalog.text{setval} \
         FROM (SELECT pg_catalog.pg_sequence_last_value({oid}::pg_catalog.regclass), q.seqincrement, q.seqcache, q.seqstart \
           FROM pg_catalog.pg_sequence q WHERE q.seqrelid {eq} {oid}::pg_catalog.oid) x(lv, inc, cache, st) \
         WHERE CASE WHEN x.lv IS NULL THEN {known} WHEN {moved} {lt} 0 THEN {behind} \
           WHEN {beyond} THEN ({left}) AND ({ours}) ELSE false END",
        known = m.start.is_some(),
    )
}

/// [`sql`] for each, to run where a statement of blastwall's may fail without harm (one that
/// fails — `currval` of a sequence this session never called: not its move — stops the rest).
pub fn sqls(moved: &[Moved]) -> Vec<String> {
    moved.iter().map(sql).collect()
}

/// Runs the put-backs, each on its own (inside the client's block, in a savepoint of
/// blastwall's, so that a failure cannot abort it), and logs what was put back. One the
/// session's role may not make (`setval` needs `UPDATE`) is made on a connection of
/// blastwall's own (`super::elsewhere`).
pub async fn run(b: &mut Backend<'_>, moved: &[Moved], in_block: bool) -> Result<(), PrecheckError> {
    run_left(b, moved, in_block).await.map(drop)
}

/// [`run`], saying which of `moved` it left where they stand (the statement ran and found the
/// put-back not due, or not possible).
async fn run_left(b: &mut Backend<'_>, moved: &[Moved], in_block: bool) -> Result<Vec<u32>, PrecheckError> {
    let mut left = Vec::new();
    for m in moved {
        let a = on_session(b, &sql(m), in_block).await?;
        match &a.error {
            Some(e) if e.code == DENIED => super::elsewhere::put_back(b, m, in_block).await?,
            Some(e) if e.code == NO_CURRVAL => super::elsewhere::without_currval(b, m, in_block).await?,
            Some(e) => {
                tracing::warn!(sequence = m.oid, code = %e.code, error = %e.message, "a protected sequence could not be put back")
            }
            None if a.rows.is_empty() => left.push(m.oid),
            None => logged(m, &a.rows),
        }
    }
    Ok(left)
}

/// `setval` refused: the session's role lacks `UPDATE` on the sequence.
pub const DENIED: &str = "42501";

/// `currval` refused: the session never called `nextval` of the sequence — or forgot it: a
/// function body's `DISCARD SEQUENCES` (fifty-first pass H1).
pub const NO_CURRVAL: &str = "55000";

/// Runs one statement of blastwall's on the session where it may fail without harm: inside the
/// client's block in a savepoint of blastwall's; outside one, again in a read-write
/// transaction of its own when the session is read-only by default.
pub(super) async fn on_session(
    b: &mut Backend<'_>,
    statement: &str,
    in_block: bool,
) -> Result<super::backend::Answer, PrecheckError> {
    const SP: &str = "blastwall_putback";
    Ok(match in_block {
        // Thirty-first pass H1: `default_transaction_read_only = on`, the write in
        // `BEGIN READ WRITE`, made the put-back's `setval` fail.
        false => {
            use crate::wire::messages::TxStatus;
            let a = b.query(statement).await?;
            match &a.error {
                // Read-only by the session's default (`25006`), and outside a block: again,
                // read-write.
                Some(e) if e.code == "25006" && a.status == Some(TxStatus::Idle) => {
                    let a = b.query(&format!("BEGIN READ WRITE; {statement}; COMMIT")).await?;
                    if a.status == Some(TxStatus::Failed) {
                        b.query("ROLLBACK").await?;
                    }
                    a
                }
                _ => a,
            }
        }
        true => {
            let a = b.query(&format!("SAVEPOINT {SP}; {statement}")).await?;
            let end = match a.error {
                Some(_) => format!("ROLLBACK TO SAVEPOINT {SP}; RELEASE SAVEPOINT {SP}"),
                None => format!("RELEASE SAVEPOINT {SP}"),
            };
            b.query(&end).await?;
            a
        }
    })
}

/// Logs the rows of a put-back.
pub fn logged(m: &Moved, rows: &[Vec<Option<String>>]) {
    for r in rows {
        let at = r.first().cloned().flatten().unwrap_or_else(|| "unset".into());
        tracing::warn!(sequence = m.oid, from = %at, to = ?m.was, "a protected sequence moved by a statement that was not kept was put back");
    }
}

/// A check abandoned where it stood (its client left; the statement cancelled): the server
/// is brought to the end of what blastwall sent (a Parse that fails whatever batch is open,
/// a Sync, then a ROLLBACK of whatever transaction stands and a mark to read up to), and the
/// candidates are put back.
/// `block`: the moves of the client's block and the transaction IDs they were written under —
/// put back too, unless one of those IDs committed (a `COMMIT` the client sent before it left,
/// answered after: the rows are kept).
pub async fn after_leaving(
    b: &mut Backend<'_>,
    moved: &[Moved],
    block: (&[u32], &[Moved]),
) -> Result<(), PrecheckError> {
    const MARK: &str = "blastwall:left";
    // A batch the client left before its Sync is failed first (a Parse that cannot parse):
    // a Sync alone commits its implicit transaction, where the server, left by its client,
    // rolls it back (forty-fourth pass M1: a DELETE and an INSERT of an abandoned pipeline
    // were kept). Outside a batch it fails nothing but itself.
    b.send(&crate::wire::messages::parse("", "blastwall: the client left before its batch's Sync")).await?;
    b.send(&crate::wire::encode(crate::wire::messages::fe::SYNC, &[])).await?;
    b.send(&super::own::messages(&format!("ROLLBACK; SELECT '{MARK}'::pg_catalog.text"))).await?;
    loop {
        let a = b.answer().await?;
        if a.rows.iter().any(|r| r.first().and_then(|v| v.as_deref()) == Some(MARK)) {
            break;
        }
    }
    let (xids, block) = block;
    let committed = match xids.is_empty() || block.is_empty() {
        true => false,
        false => {
            let list = xids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let a = b.query(&xid_status_sql(&format!("'{{{list}}}'"))).await?;
            a.error.is_some() || a.rows.iter().any(|r| r.get(1).and_then(|v| v.as_deref()) != Some("aborted"))
        }
    };
    if committed {
        tracing::warn!(
            "the departed client's transaction committed before it ended: its protected sequence moves are kept"
        );
    }
    let all: Vec<Moved> = moved.iter().chain(block.iter().filter(|_| !committed)).cloned().collect();
    run(b, &all, false).await
}

/// Each transaction ID of `array` (an `int8[]` expression: a literal, or a parameter) with its
/// status (`committed`, `aborted`, `in progress`), the 32-bit ID widened to the one nearest the
/// server's next.
pub fn xid_status_sql(array: &str) -> String {
    format!(
        "SELECT x::pg_catalog.text, pg_catalog.txid_status(n \
           OPERATOR(pg_catalog.+) (x OPERATOR(pg_catalog.-) n OPERATOR(pg_catalog.%) 4294967296 \
           OPERATOR(pg_catalog.+) 6442450944) OPERATOR(pg_catalog.%) 4294967296 OPERATOR(pg_catalog.-) 2147483648) \
         FROM (SELECT pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot())) s(n), \
           pg_catalog.unnest({array}::pg_catalog.int8[]) x"
    )
}

/// What a statement that is not kept (refused, or rolled back by a dry run) leaves to put
/// back: the moves judged beyond the rule (`changed`), and every other candidate's move beyond
/// the slack alone, since the rows it inserted are gone with it and explain nothing
/// (forty-third pass M1: a dry run's `INSERT INTO users … FROM generate_series(1, 200000)`,
/// rolled back by blastwall, left the users' sequence 200,000 on; a client's own ROLLBACK was
/// put back already, `session::undone`).
///
/// A dry run (`whole`) keeps none of its steps: rehearsed again and again, each under the
/// slack, it moved the sequence as far as one liked (seventy-eighth pass H1: 100 dry-run
/// INSERTs of 999 users, +99,900 in 2.7 s); its moves are put back whole, as a failed
/// statement's are (`candidates`).
pub fn unkept(back: &[Moved], changed: &[Change], whole: bool) -> Vec<Moved> {
    let mut out = from_changes(changed);
    let judged: Vec<u32> = out.iter().map(|m| m.oid).collect();
    let left = match whole {
        true => back.iter().map(|m| Moved { left_at: None, ..m.clone() }).collect(),
        false => unread(back),
    };
    out.extend(left.into_iter().filter(|m| !judged.contains(&m.oid)));
    out
}

/// Where a move left where it stands is charged: the creep windows, the session's database,
/// and the policy that says each sequence's window.
pub type Ledger<'a> = (&'a super::creep::Creep, &'a str, &'a crate::policy::Policy);

/// Puts back what a statement not kept leaves ([`unkept`]).
pub async fn after_unkept(
    b: &mut Backend<'_>,
    back: &[Moved],
    changed: &[Change],
    (opened, dry_run): (bool, bool),
    (creep, database, policy): Ledger<'_>,
) -> Result<(), PrecheckError> {
    let left = run_left(b, &unkept(back, changed, dry_run), !opened).await?;
    // A move judged beyond the rule is always due (`from_changes`): left, it no longer stood
    // where the reading after the statement found it — another session took values since
    // (seventy-third pass H1, L1). Putting it back would hand those out again. It has
    // happened: charged to the sequence's creep budget, past it if need be (`creep::charge`).
    for (m, c) in from_changes(changed).iter().zip(changed.iter().filter(|c| c.sequence_was.is_some())) {
        if !left.contains(&m.oid) {
            continue;
        }
        let (was, at) = (m.was.map_or("unset".into(), |v| v.to_string()), m.left_at.flatten());
        tracing::warn!(
            sequence = m.oid,
            %was,
            left_at = ?at,
            "a protected sequence moved by a refused statement was left where it stands: another session took values after the statement's last call, and putting it back would hand them out again"
        );
        let window = policy.tables.iter().find(|t| {
            t.sequences.iter().any(|s| format!("{}.{}", s.schema.as_deref().unwrap_or(&t.schema), s.name) == c.object)
        });
        creep.charge(database, m.oid, left_steps(m.was, at), window.map_or(3600, |t| t.creep.window_secs));
    }
    Ok(())
}

/// The steps a move left where it stands is charged: the distance from where it stood to
/// where the reading after the statement found it, in values (at least the steps, whatever
/// the increment). One that cannot be measured (never called before, or not read after)
/// spends the window whole.
fn left_steps(was: Option<i128>, at: Option<i128>) -> u64 {
    match (was, at) {
        (Some(w), Some(a)) => u64::try_from((a - w).abs()).unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_judges_on_the_server_and_names_everything_with_its_schema() {
        let m = Moved { oid: 7, start: Some(100), was: Some(100), allowed: Some(1000), left_at: None };
        let s = sql(&m);
        assert!(s.contains("pg_catalog.setval(7::pg_catalog.regclass, 100, true)"), "{s}");
        assert!(s.contains("pg_catalog.currval(7::pg_catalog.regclass)"), "{s}");
        assert!(!s.contains(" = ") && !s.contains(" - "), "an operator the search_path could change: {s}");
        let never = sql(&Moved { start: None, was: None, ..m });
        assert!(never.contains("x.st, false") && never.contains("WHEN x.lv IS NULL THEN false"), "{never}");
    }

    #[test]
    fn elsewhere_the_sequence_stands_where_the_session_last_saw_it_or_no_one_holds_it() {
        let m = Moved { oid: 7, start: Some(100), was: Some(100), allowed: Some(1000), left_at: None };
        let unseen = sql_elsewhere(&m);
        assert!(unseen.contains("NOT EXISTS (SELECT FROM pg_catalog.pg_locks l"), "{unseen}");
        assert!(!unseen.contains("currval") && !unseen.contains("x.lv OPERATOR(pg_catalog.=) "), "{unseen}");
        let s = sql_elsewhere(&Moved { left_at: Some(Some(20100)), ..m });
        assert!(!s.contains("currval"), "another connection has no currval of the session's: {s}");
        assert!(s.contains("x.lv OPERATOR(pg_catalog.=) 20100::pg_catalog.int8"), "{s}");
        assert!(s.contains("pg_catalog.setval(7::pg_catalog.regclass, 100, true)"), "{s}");
    }
}
