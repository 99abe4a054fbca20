//! A put-back the session's own role may not make (forty-ninth pass H1: a DML role with
//! `USAGE, SELECT` on a protected sequence moved it by 100,000 with `SELECT nextval(…) FROM
//! generate_series(…)`; the statement was refused, but `setval` needs `UPDATE`, and the
//! sequence stayed moved). It is made on a connection of blastwall's own, as the
//! `[ddl_notify]` role (which needs `UPDATE` on the protected sequences), through the hook the
//! session provides for its task ([`ELSEWHERE`], set by `crate::session`):
//!
//! 1. asked on the session first whether the put-back is due — beyond the rule, and the
//!    sequence where this session's own last call left it (`currval`, which no other
//!    connection can ask) — and where the sequence stands (`putback::due_sql`);
//! 2. made on the other connection only while the sequence still stands exactly there
//!    (`putback::sql_elsewhere`): a value handed out since keeps it where it is.
//!
//! The session waits for it: its client hears the refusal once the sequence is back. A
//! statement that failed in the client's block has its put-backs run behind a marked reading
//! of which are due (`putback::due_marked_sql`), in one round trip: when the role may not make
//! them, those read due are made elsewhere ([`after_denied`]).
//! Without `[ddl_notify]` there is no such connection: logged as an error, and the sequence
//! stays moved (blastwall says so at startup when the policy protects sequences).
//!
//! Owns: that fallback and its hook. Does not own: the put-back statements (`putback`), the
//! connection (`catalog::listener`).

use super::putback::{due_sql, logged, on_session, sql_elsewhere, Moved};
use super::{Backend, PrecheckError};
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// Runs a statement on a connection of blastwall's own to the session's database: its rows.
pub type Hook = Arc<dyn Fn(String) -> BoxFuture<'static, Result<Vec<Vec<Option<String>>>, String>> + Send + Sync>;

tokio::task_local! {
    /// The session's way to its database on a connection of blastwall's own (`None`: no
    /// `[ddl_notify]`).
    pub static ELSEWHERE: Option<Hook>;
}

/// A put-back whose `currval` the session cannot answer (fifty-first pass H1: a function
/// body's `DISCARD SEQUENCES` made every put-back fail, for any role): judged without it, as
/// on another connection (`putback::sql_elsewhere`: beyond the rule, and no other session
/// holds the lock `nextval` takes on the sequence), on the session, or — its role may not
/// call `setval` — on blastwall's own connection.
pub(super) async fn without_currval(b: &mut Backend<'_>, m: &Moved, in_block: bool) -> Result<(), PrecheckError> {
    let a = on_session(b, &sql_elsewhere(m), in_block).await?;
    match &a.error {
        None => logged(m, &a.rows),
        Some(e) if e.code == super::putback::DENIED => made_by_hook(m, sql_elsewhere(m), None).await,
        Some(e) => tracing::warn!(sequence = m.oid, code = %e.code, error = %e.message,
            "a protected sequence could not be put back"),
    }
    Ok(())
}

/// Puts `m` back on blastwall's own connection, when it is due (see the module's doc).
pub(super) async fn put_back(b: &mut Backend<'_>, m: &Moved, in_block: bool) -> Result<(), PrecheckError> {
    let a = on_session(b, &due_sql(m), in_block).await?;
    if a.error.as_ref().is_some_and(|e| e.code == super::putback::NO_CURRVAL) {
        made_by_hook(m, sql_elsewhere(m), None).await;
        return Ok(());
    }
    if let Some(e) = &a.error {
        tracing::error!(sequence = m.oid, code = %e.code, error = %e.message,
            "a protected sequence the session's role may not put back could not be read: it stays moved");
        return Ok(());
    }
    // Not due: within the rule, or not where this session's last call left it.
    let Some(at) = a.rows.first().and_then(|r| r.first().cloned().flatten()).and_then(|v| v.parse::<i128>().ok())
    else {
        return Ok(());
    };
    made_elsewhere(m, at).await;
    Ok(())
}

/// After a statement that failed in the client's block, where blastwall's put-backs ran behind
/// [`due_marked_sql`](super::putback::due_marked_sql) and the first the role may not make
/// stopped the rest (fiftieth pass H1: `BEGIN; SELECT 1 / (count(nextval(…)) - n)::int FROM
/// generate_series(1, n)` left the sequence n on): those found due are made on blastwall's own
/// connection, while they still stand where they were found.
pub async fn after_denied(back: &[Moved], rows: &[Vec<Option<String>>]) {
    for (oid, at) in super::putback::dues(rows) {
        if let Some(m) = back.iter().find(|m| m.oid == oid) {
            made_elsewhere(m, at).await;
        }
    }
}

/// [`after_denied`] where the session could not answer `currval` (a function body's
/// `DISCARD SEQUENCES`, fifty-first pass H1): each judged without it ([`without_currval`]),
/// on blastwall's own connection (the client's block is failed).
pub async fn after_forgotten(back: &[Moved]) {
    for m in back {
        made_by_hook(m, sql_elsewhere(m), None).await;
    }
}

/// Puts `m` back on blastwall's own connection while the sequence stands at `at`.
async fn made_elsewhere(m: &Moved, at: i128) {
    made_by_hook(m, sql_elsewhere(&Moved { left_at: Some(Some(at)), ..m.clone() }), Some(at)).await
}

/// Runs the put-back `sql` of `m` on blastwall's own connection (`at`: where it must stand).
async fn made_by_hook(m: &Moved, sql: String, at: Option<i128>) {
    let hook = ELSEWHERE.try_with(|h| h.clone()).ok().flatten();
    let Some(hook) = hook else {
        return tracing::error!(sequence = m.oid, at = ?at,
            "a protected sequence moved by a statement that was not kept cannot be put back: the session's role lacks UPDATE on it, and without [ddl_notify] blastwall has no connection of its own: it stays moved");
    };
    match hook(sql).await {
        Ok(rows) if rows.is_empty() => tracing::warn!(sequence = m.oid, at = ?at,
            "a protected sequence moved by a statement that was not kept was not put back on blastwall's own connection: a value was handed out since, or another session holds it"),
        Ok(rows) => logged(m, &rows),
        Err(e) => tracing::error!(sequence = m.oid, error = %e,
            "a protected sequence moved by a statement that was not kept could not be put back on blastwall's own connection (the [ddl_notify] role needs UPDATE on it): it stays moved"),
    }
}
