//! The session's own prepared statements and cursors, read on the server before and after a
//! checked statement: a function body, DO block, procedure or trigger can `PREPARE` or
//! `DEALLOCATE` by dynamic SQL (a name blastwall judged as `SELECT 1` then runs a `DELETE`) and
//! open cursors (whose query runs later, at the client's `FETCH`) where blastwall cannot see.
//!
//! Each counter reading carries, as rows of its own (mark [`MARK`]), every prepared statement
//! and cursor made since the transaction began (`prepare_time`/`creation_time` at or after
//! `now()`; the server stamps both with the start of the statement that made them), and the
//! reading's own statement start. Anything made or remade between the two readings is a
//! change: a prepared name the session judged before is then unknown (an `EXECUTE` or Bind of it
//! is refused until the client prepares it again), a cursor is counted at `FETCH`, and a
//! cursor opened `WITH HOLD` is refused (rule `cursor`): it runs the rest of its query at
//! `COMMIT`, where no count can reach. Prepared statements are not transactional: a statement
//! that failed or was rolled back may still have changed them, so a failed one is read again
//! once its transaction is rolled back, or, where it cannot be (the client's own block is
//! aborted), every name is taken as unknown.
//!
//! The same rows say whether the statement ran quietly ([`Changes::quiet`]): its transaction
//! wrote nothing (`txid_current_if_assigned()` still NULL after it) and the `search_path` and
//! roles stayed as they were.
//!
//! Owns: that reading, the comparison and the `cursor` finding. Does not own: what the
//! session does with the changes (`session::names`) or judging `FETCH` (`guard::cursors`).

use std::collections::BTreeSet;

/// The first column of the rows this module adds to a counter reading.
pub const MARK: &str = "blastwall:objects";

/// blastwall's own statement and portal (never one of the client's; see `own`).
const OWN: &str = "__blastwall_own";

/// The rows of a counter reading (six columns, as `stats` reads them: zero counters).
pub fn reading_sql() -> String {
    let row = |what: &str, from: &str| {
        format!(
            "SELECT '{MARK}'::pg_catalog.text, pg_catalog.concat_ws(pg_catalog.chr(1), {what}), \
             0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.oid{from}"
        )
    };
    let since = |col: &str, name: &str| {
        format!(
            " WHERE {col} OPERATOR(pg_catalog.>=) pg_catalog.now() \
             AND {name} OPERATOR(pg_catalog.<>) '{OWN}'::pg_catalog.text"
        )
    };
    [
        row(
            &format!("'prepared', p.name, {}", stamp("p.prepare_time")),
            &format!(" FROM pg_catalog.pg_prepared_statements p{}", since("p.prepare_time", "p.name")),
        ),
        row(
            &format!("'cursor', c.name, {}, c.is_holdable::pg_catalog.text", stamp("c.creation_time")),
            &format!(" FROM pg_catalog.pg_cursors c{}", since("c.creation_time", "c.name")),
        ),
        // Whether the transaction wrote anything yet (no transaction ID: no catalog row, no
        // temporary object, nothing at all), and the path and roles names are read under.
        row(
            &format!("'session', '', (pg_catalog.txid_current_if_assigned() IS NOT NULL)::pg_catalog.text, {SETTINGS}"),
            "",
        ),
        clock_sql(),
    ]
    .join(" UNION ALL ")
}

/// The reading's clock row alone: for a statement that cannot make a prepared statement or a
/// cursor (`reach`), whose failure is still read since it.
pub fn clock_sql() -> String {
    format!(
        "SELECT '{MARK}'::pg_catalog.text, pg_catalog.concat_ws(pg_catalog.chr(1), 'clock', {}), \
         0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.oid",
        stamp("pg_catalog.statement_timestamp()")
    )
}

/// The path and roles names are read under, as the session row of a reading carries them.
const SETTINGS: &str = "pg_catalog.current_setting('search_path'), CURRENT_USER, SESSION_USER";

/// A run the readings found quiet stays quiet only if, once blastwall's own transaction is
/// committed, the path and roles are still what the reading before it found: a `SET LOCAL`
/// (in a function's body, `set_config(…, true)`) hides from the reading after a `SET` made
/// beneath it in the same transaction, which its COMMIT brings into force (seventieth pass F1:
/// the path moved to a role's schema unseen). Asked only for a quiet run, one round trip.
pub(super) async fn still_quiet(b: &mut super::Backend<'_>, before: &Rows) -> Result<bool, super::PrecheckError> {
    let a = b.query(&format!("SELECT pg_catalog.concat_ws(pg_catalog.chr(1), {SETTINGS})")).await?;
    let now = a.rows.first().and_then(|r| r.first()).and_then(|v| v.clone());
    let then = items(before).remove(&("session".to_string(), String::new()));
    let then = then.as_deref().and_then(|v| v.split_once('\u{1}')).map(|(_, rest)| rest.to_string());
    Ok(a.error.is_none() && now.is_some() && now == then)
}

/// A timestamp as text that no `DateStyle` or `TimeZone` setting changes, to the microsecond.
fn stamp(expr: &str) -> String {
    format!("pg_catalog.to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
}

/// What a checked statement did to the session's prepared statements and cursors.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Prepared statements made or remade (by any name).
    pub prepared: BTreeSet<String>,
    /// Cursors (and portals) opened or reopened.
    pub cursors: BTreeSet<String>,
    /// Of those, the ones opened `WITH HOLD`.
    pub holdable: BTreeSet<String>,
    /// What changed cannot be known: every prepared name and cursor is to be taken as unknown.
    pub unknown: bool,
    /// The statement ran quietly: by the reading after it, its transaction had written
    /// nothing at all (no transaction ID was assigned: no catalog row, so no object made,
    /// dropped or altered, temporary or not), and the `search_path`, the current and the
    /// session role were as the reading before it found them. What the session learned of
    /// its temporary schema and its path (`catalog::Taint`) and the database's catalog
    /// answers still hold after it, whatever code it ran (`session::checks`).
    pub quiet: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.prepared.is_empty() && self.cursors.is_empty() && !self.unknown
    }

    /// Everything is unknown (a statement that may have changed them failed unread).
    pub fn all_unknown() -> Self {
        Changes { unknown: true, ..Changes::default() }
    }
}

type Rows = [Vec<Option<String>>];

/// The items of one reading: (kind, name) → stamp (and `t`/`f` for a cursor's hold).
fn items(rows: &Rows) -> std::collections::BTreeMap<(String, String), String> {
    rows.iter()
        .filter(|r| r.len() == 6 && r[0].as_deref() == Some(MARK))
        .filter_map(|r| {
            let joined = r[1].as_deref()?;
            let mut parts = joined.splitn(3, '\u{1}');
            let kind = parts.next()?.to_string();
            let (name, rest) = match kind.as_str() {
                "clock" => (String::new(), parts.collect::<Vec<_>>().join("\u{1}")),
                _ => (parts.next()?.to_string(), parts.next().unwrap_or("").to_string()),
            };
            Some(((kind, name), rest))
        })
        .collect()
}

/// The statement start of the reading (`None`: the reading did not carry it).
pub fn clock(rows: &Rows) -> Option<String> {
    items(rows).remove(&("clock".to_string(), String::new()))
}

/// What changed between the reading before a statement and the one after it. A reading
/// without the objects' rows at all (an older blastwall's, or a failed one) is no evidence:
/// the caller reads again or takes everything as unknown.
pub fn changes(before: &Rows, after: &Rows) -> Changes {
    let (b, a) = (items(before), items(after));
    let mut out = Changes::default();
    if !a.contains_key(&("clock".to_string(), String::new())) {
        return Changes::all_unknown();
    }
    let session = ("session".to_string(), String::new());
    out.quiet = a.get(&session).is_some_and(|v| v.starts_with("false\u{1}") && b.get(&session) == Some(v));
    for ((kind, name), v) in &a {
        if b.get(&(kind.clone(), name.clone())) == Some(v) {
            continue;
        }
        match kind.as_str() {
            "prepared" => {
                out.prepared.insert(name.clone());
            }
            "cursor" => {
                out.cursors.insert(name.clone());
                if v.ends_with("\u{1}true") {
                    out.holdable.insert(name.clone());
                }
            }
            _ => {}
        }
    }
    out
}

/// The prepared statements and cursors made at or after `clock` (the statement start of the
/// reading before a statement), read on its own once the statement failed and its
/// transaction or savepoint was rolled back (cursors opened inside it are gone by then; the
/// prepared statements stay).
pub fn since_sql(clock: &str) -> String {
    let at = format!("({}::pg_catalog.timestamp AT TIME ZONE 'UTC')", super::literal(clock));
    format!(
        "SELECT '{MARK}'::pg_catalog.text, pg_catalog.concat_ws(pg_catalog.chr(1), 'prepared', p.name, ''), \
         0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.oid \
         FROM pg_catalog.pg_prepared_statements p WHERE p.prepare_time OPERATOR(pg_catalog.>=) {at} \
         UNION ALL SELECT '{MARK}'::pg_catalog.text, pg_catalog.concat_ws(pg_catalog.chr(1), 'clock', ''), \
         0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.oid"
    )
}

/// Reads what a failed statement changed (see [`since_sql`]); everything unknown when it
/// cannot be read.
pub async fn read_since(b: &mut super::Backend<'_>, clock: Option<&str>) -> Result<Changes, super::PrecheckError> {
    let Some(clock) = clock else { return Ok(Changes::all_unknown()) };
    let a = b.query(&since_sql(clock)).await?;
    if a.error.is_some() {
        return Ok(Changes::all_unknown());
    }
    Ok(changes(&[], &a.rows))
}

/// After a statement failed: its transaction rolled back (`None`: blastwall's own), or, in
/// the client's own block (now aborted), back to the savepoint blastwall set before it; what
/// it made read; `then` (blastwall's statements that need the block alive: protected sequences
/// put back, `putback`); and the client's block aborted again by an error of blastwall's own
/// (the client already has the statement's error, and every later statement of its block
/// fails as it would have).
pub async fn after_failure(
    b: &mut super::Backend<'_>,
    clock: Option<&str>,
    savepoint: Option<&str>,
    then: &[String],
) -> Result<Changes, super::PrecheckError> {
    after_failure_reading(b, clock, savepoint, then).await.map(|(c, _, _)| c)
}

/// [`after_failure`], with the rows of `then` (each of blastwall's statements there answers
/// rows of its own shape, which the reading of objects ignores) and the SQLSTATE that ended
/// them (the last statement's deliberate one when nothing before it failed).
pub async fn after_failure_reading(
    b: &mut super::Backend<'_>,
    clock: Option<&str>,
    savepoint: Option<&str>,
    then: &[String],
) -> Result<(Changes, Vec<Vec<Option<String>>>, Option<String>), super::PrecheckError> {
    let since = since_sql(clock.unwrap_or(""));
    let sql = match savepoint {
        None => format!("ROLLBACK; {since}"),
        Some(s) => format!(
            "ROLLBACK TO SAVEPOINT {s}; RELEASE SAVEPOINT {s}; {since}; {}SELECT pg_catalog.int4(''::pg_catalog.text)",
            then.iter().map(|t| format!("{t}; ")).collect::<String>()
        ),
    };
    let a = b.query(&sql).await?;
    let code = a.error.as_ref().map(|e| e.code.clone());
    if clock.is_none() || (savepoint.is_none() && a.error.is_some()) {
        return Ok((Changes::all_unknown(), a.rows, code));
    }
    Ok((changes(&[], &a.rows), a.rows, code))
}

const HINT_CURSOR: &str = "Open the cursor WITHOUT HOLD, inside a transaction block, and FETCH from it there (blastwall counts each FETCH), or run the query without a cursor.";

/// Rule `cursor`: a cursor opened `WITH HOLD` by what the statement ran runs the rest of its
/// query at `COMMIT` (of blastwall's check, or of the client's block), after the count.
pub fn findings(
    c: &Changes,
    who: crate::policy::SessionView<'_>,
    policy: &crate::policy::Policy,
    statement: &str,
    verb: &str,
) -> Vec<crate::policy::Finding> {
    if c.holdable.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = c.holdable.iter().map(|n| format!("\"{n}\"")).collect();
    vec![crate::policy::Finding {
        rule: "cursor",
        mode: crate::policy::mode_for(who, policy, None),
        what: verb.to_string(),
        why: format!(
            "it opened cursor {} WITH HOLD, which runs the rest of its query at COMMIT, where blastwall cannot count it",
            names.join(", ")
        ),
        hint: HINT_CURSOR,
        source: policy.source_names(),
        statement: statement.to_string(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(joined: &str) -> Vec<Option<String>> {
        [MARK, joined, "0", "0", "0", "0"].iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn a_remade_statement_and_a_new_cursor_are_changes() {
        let before = vec![row("clock\u{1}t0"), row("prepared\u{1}foo\u{1}t0"), row("cursor\u{1}a\u{1}t0\u{1}false")];
        let after = vec![
            row("clock\u{1}t2"),
            row("prepared\u{1}foo\u{1}t1"),
            row("cursor\u{1}a\u{1}t0\u{1}false"),
            row("cursor\u{1}h\u{1}t1\u{1}true"),
        ];
        let c = changes(&before, &after);
        assert_eq!(c.prepared.iter().collect::<Vec<_>>(), ["foo"]);
        assert_eq!(c.cursors.iter().collect::<Vec<_>>(), ["h"]);
        assert_eq!(c.holdable.iter().collect::<Vec<_>>(), ["h"]);
        assert!(changes(&before, &before).is_empty());
        // No reading after: nothing is known.
        assert!(changes(&before, &[]).unknown);
        assert_eq!(clock(&before).as_deref(), Some("t0"));
    }

    #[test]
    fn quiet_is_no_write_and_the_same_path_and_roles_on_both_sides() {
        let reading = |session: &str| vec![row("clock\u{1}t0"), row(&format!("session\u{1}\u{1}{session}"))];
        let clean = "false\u{1}\"$user\", public\u{1}app\u{1}app";
        assert!(changes(&reading(clean), &reading(clean)).quiet);
        // A transaction ID assigned (anything written, a temporary table made): not quiet.
        let wrote = "true\u{1}\"$user\", public\u{1}app\u{1}app";
        assert!(!changes(&reading(wrote), &reading(wrote)).quiet);
        assert!(!changes(&reading(clean), &reading(wrote)).quiet);
        // The path or a role changed by code (`set_config`): not quiet.
        assert!(!changes(&reading(clean), &reading("false\u{1}app_own, public\u{1}app\u{1}app")).quiet);
        assert!(!changes(&reading(clean), &reading("false\u{1}\"$user\", public\u{1}owner\u{1}app")).quiet);
        // Either reading without the row: not known, not quiet.
        assert!(!changes(&[row("clock\u{1}t0")], &reading(clean)).quiet);
        assert!(!changes(&reading(clean), &[row("clock\u{1}t0")]).quiet);
    }
}
