//! A lone `COPY … FROM STDIN` (a Query) that blastwall relays uncounted and that may move a
//! sequence — a column it leaves out has a default that calls `nextval` (the incident's
//! `users.id`): the protected sequences are read before it goes (the counted statements'
//! own identity reading, one round trip more, inside the client's block in a savepoint of
//! blastwall's), and when the COPY fails — a bad row, a trigger, the client's CopyFail, a
//! cancel — what it moved is owed a put-back (`putback`), run at the session's next quiet
//! point: at once outside a block, once the client's failed block ends inside one. The same
//! rules as for a counted statement that failed by itself: moved beyond the rows it kept (none)
//! plus 1,000, and standing where this session's own last call left it (twenty-seventh pass
//! H3: 50,000 rows then a NULL in a `NOT NULL` column moved `web_user_id_seq` 50,001 with no
//! row kept).
//!
//! A client that leaves during the COPY, at a message boundary, has the COPY ended by a
//! CopyFail of blastwall's and the sequences put back before its server session ends; one
//! that ended the COPY and left before its answer has them put back only when the server's
//! answer is an error (a COPY that was kept keeps its move: its rows hold those values).
//!
//! Where the reading cannot be taken — a Parse of such a COPY, one beside other statements in
//! a Query, one behind messages of an open batch — it is refused while the session enforces
//! (`copy_unread_refusal`; thirtieth pass H2); a lone COPY Query behind a batch that ran
//! nothing has the batch ended by blastwall first (`Pending::ResolveInBatch`), then read.
//!
//! Owns: when the reading is taken, what a COPY's answer makes owed, and the refusal of a COPY
//! that cannot be read before. Does not own: the
//! reading and the put-back statement (`precheck::putback`), which COPY may move a sequence
//! (`guard::copies`).

use super::checks::Pending;
use super::{Session, SessionError};
use crate::guard::Verdict;
use crate::precheck::putback::{self, Moved};
use crate::precheck::Backend;
use crate::relay::Action;
use crate::wire::messages::{self, fe, TxStatus};
use crate::wire::Frame;

/// A relayed COPY whose answer is awaited: its sync point, what it may have moved, and
/// whether the server answered it with an error.
#[derive(Debug)]
pub(super) struct Awaited {
    ord: u64,
    pub(super) moved: Vec<Moved>,
    failed: bool,
    /// The client ended the COPY (CopyDone or CopyFail went on).
    pub(super) ended: bool,
}

const SP: &str = "blastwall_copy_reading";

impl Session {
    /// A Query judged harmless that is a lone `COPY … FROM STDIN` which may move a protected
    /// sequence: it waits for the reading (`true`). Not in the middle of an extended batch
    /// (the server cannot be asked there) nor in a failed block (the COPY fails unrun).
    pub(super) fn copy_needs_reading(&self, sql: &[u8]) -> bool {
        if !self.copy_word || !super::copying::may_copy(sql) {
            return false;
        }
        if self.relay.batch_has_messages() || self.relay.tx == TxStatus::Failed {
            return false;
        }
        let policy = self.shared.guard.policy();
        if !policy.tables.iter().any(|t| !t.sequences.is_empty()) {
            return false;
        }
        let Ok(text) = std::str::from_utf8(sql) else { return false };
        crate::guard::may_move_a_sequence(text, &self.shared.guard.catalog, &self.info)
    }

    /// A `COPY … FROM STDIN` that may move a protected sequence where the reading before it
    /// cannot be taken — a Parse (`parse`: an extended-protocol COPY), beside other statements
    /// in one Query, behind messages of an open batch — is refused while the session enforces
    /// (thirtieth pass H2: such a COPY kept in a block the client then rolled back left the
    /// sequence moved 50,000 with no row, and one that failed was never put back).
    pub(super) fn copy_unread_refusal(&mut self, sql: &[u8], verdict: Verdict, parse: bool) -> Verdict {
        let judged = matches!(verdict, Verdict::Allow | Verdict::Notice(_) | Verdict::Split(_));
        if !judged || !self.copy_word || !super::copying::may_copy(sql) || self.relay.tx == TxStatus::Failed {
            return verdict;
        }
        if !parse && self.copy_needs_reading(sql) {
            return verdict;
        }
        let policy = self.shared.guard.policy();
        if !policy.tables.iter().any(|t| !t.sequences.is_empty())
            || crate::policy::mode_for(self.info.view(), &policy, None) != crate::policy::Mode::Enforce
        {
            return verdict;
        }
        let Ok(text) = std::str::from_utf8(sql) else { return verdict };
        let catalog = &self.shared.guard.catalog;
        let protected: Vec<String> =
            policy.tables.iter().flat_map(|t| &t.sequences).map(|s| s.name.to_lowercase()).collect();
        if !crate::guard::any_may_move_a_sequence(text, catalog, &self.info, &protected) {
            return verdict;
        }
        // A lone COPY behind a batch that ran nothing (Parse, Describe, Close: asyncpg's
        // `copy_records_to_table`): the batch is ended by a Sync of blastwall's, as for a
        // catalog question (`Pending::ResolveInBatch`), and the COPY judged again, read first.
        let ends_unseen = self.relay.batch_ends_unseen() && !self.mirror.batch_failed(self.relay.syncs_sent());
        if !parse
            && self.relay.batch_has_messages()
            && ends_unseen
            && crate::guard::may_move_a_sequence(text, catalog, &self.info)
        {
            return Verdict::Resolve(Vec::new());
        }
        let how = match parse {
            true => "sent as an extended-protocol Parse",
            false => "sent beside other statements, or behind other messages of an open batch",
        };
        let m = crate::guard::refusal_message(&crate::guard::refusal(
            "unverifiable",
            "COPY".into(),
            format!("this COPY … FROM STDIN may move a protected sequence (a column it leaves out has a default that calls nextval), and it is {how}: blastwall reads where the sequences stand before a COPY only when it is a Query of its own, so what it moves could not be put back should its rows be dropped"),
            "Send the COPY as a simple-protocol Query of its own (psql's \\copy and COPY … FROM STDIN alone do), or supply the column whose default calls nextval.",
            "blastwall",
            text.to_string(),
        ));
        self.record_split_refusal(sql, &m);
        Verdict::Refuse(m)
    }

    /// Holds the Query for the reading (`Pending::CopyReading`).
    pub(super) fn wait_for_copy_reading(&mut self, f: Frame, action: Action) {
        self.pending = Some(Pending::CopyReading(f, action));
    }

    /// Reads where the protected sequences stand, then relays the COPY; a reading that fails
    /// refuses it (`unverifiable`: what it moves could not be put back).
    pub(super) async fn read_before_copy(&mut self, f: Frame, action: Action) -> Result<(), SessionError> {
        let sql = messages::query_text(&f).map_err(|e| self.protocol_violation(e))?.to_vec();
        if self.relay.tx == TxStatus::Failed {
            self.forward_query(&sql, action, &f.bytes);
            return Ok(());
        }
        self.flush_to_client().await?;
        let policy = self.shared.guard.policy();
        let catalog = &self.shared.guard.catalog;
        let known = |s: &str, t: &str| catalog.oid_of(&self.info.database, s, t);
        let Some(reading) = putback::reading_sql(&policy, &known) else {
            self.forward_query(&sql, action, &f.bytes);
            return Ok(());
        };
        let in_block = self.relay.tx != TxStatus::Idle;
        let mut b = Backend::new(&mut self.server, &mut self.sfr);
        let answer = match in_block {
            false => b.query(&reading).await,
            true => match b.query(&format!("SAVEPOINT {SP}; {reading}")).await {
                Ok(a) => {
                    let end = match a.error {
                        Some(_) => format!("ROLLBACK TO SAVEPOINT {SP}; RELEASE SAVEPOINT {SP}"),
                        None => format!("RELEASE SAVEPOINT {SP}"),
                    };
                    b.query(&end).await.map(|_| a)
                }
                Err(e) => Err(e),
            },
        };
        let Backend { for_client, params, .. } = b;
        self.take_for_client(for_client, params);
        let answer = answer.map_err(|e| SessionError::Closed(format!("reading the protected sequences: {e}")))?;
        if let Some(e) = answer.error {
            let d = crate::guard::refusal(
                "unverifiable",
                "COPY".into(),
                format!("reading where the protected sequences stand before it failed: {}", e.message),
                HINT_READING,
                "blastwall",
                String::from_utf8_lossy(&sql).into_owned(),
            );
            self.relay.refuse_sync_point(crate::guard::refusal_message(&d));
            return Ok(());
        }
        let moved = putback::before_uncounted(&answer.rows, self.info.view(), &policy);
        self.forward_query(&sql, action, &f.bytes);
        if !moved.is_empty() {
            self.copy_awaited = Some(Awaited { ord: self.relay.syncs_sent(), moved, failed: false, ended: false });
        }
        Ok(())
    }

    /// The server's ErrorResponse: the awaited COPY failed, when it is its answer.
    pub(super) fn copy_error_seen(&mut self) {
        let done = self.relay.syncs_done();
        if let Some(a) = self.copy_awaited.as_mut().filter(|a| done < a.ord) {
            a.failed = true;
        }
    }

    /// A ReadyForQuery: once it answers the awaited COPY, what a failed one moved is owed.
    pub(super) fn copy_answered(&mut self) {
        let done = self.relay.syncs_done();
        if self.copy_awaited.as_ref().is_some_and(|a| done >= a.ord) {
            let a = self.copy_awaited.take().expect("checked");
            if a.failed {
                self.put_back.extend(a.moved);
            } else if self.relay.tx == TxStatus::InBlock {
                // Kept in the client's block: undone should it roll back (`undone`).
                self.block.record_later(a.moved);
            }
        }
    }

    /// The client's CopyDone or CopyFail went on: the awaited COPY's outcome is the server's
    /// answer to it.
    pub(super) fn copy_ended_by_client(&mut self) {
        if let Some(a) = self.copy_awaited.as_mut() {
            a.ended = true;
        }
    }

    /// A client message other than the COPY's own (a Query, a Parse, a Close) while the awaited
    /// COPY still reads its data: the server would answer it with `08P01` and end the session
    /// (FATAL), its COPY's transaction rolled back with the sequence moved (twenty-eighth pass
    /// N1). A CopyFail of blastwall's goes first, as if the client had sent it: the COPY fails
    /// with the reason, its move is put back, and the message is then judged as any other.
    pub(super) fn copy_intruded(&self, f: &Frame) -> Option<Frame> {
        let open = self.copy_awaited.as_ref().is_some_and(|a| !a.ended);
        if super::copying::copy_message(f.tag) || !open || !self.relay.server_in_copy() || self.cfr.passing() {
            return None;
        }
        let why = format!("{INTRUDED} ({:?})\0", f.tag as char);
        Some(Frame { tag: fe::COPY_FAIL, bytes: crate::wire::encode(fe::COPY_FAIL, why.as_bytes()) })
    }

    /// The client left with the awaited COPY unanswered: what it moved is owed before the
    /// server session ends (`ending`) when it failed — its error seen; or, ended by the
    /// client, the server's answer (read now, within a bound) is an error; or, still reading
    /// the client's data at a message boundary, blastwall ends it with a CopyFail of its own
    /// (the server reads messages whole: a half-sent CopyData cannot be ended; after the
    /// COPY's own error the server drops a CopyFail). One the client
    /// ended whose answer does not come, or one it left in the middle of a message, is not
    /// put back: it may have been kept.
    pub(super) async fn copy_left(&mut self) {
        let Some(a) = self.copy_awaited.take() else { return };
        let owed = match (a.failed, a.ended) {
            (true, _) => true,
            (false, true) => {
                let mut b = Backend::new(&mut self.server, &mut self.sfr);
                let answer = tokio::time::timeout(ANSWER_WITHIN, b.answer()).await;
                matches!(answer, Ok(Ok(x)) if x.error.is_some())
            }
            (false, false) if self.cfr.passing() => false,
            (false, false) => {
                let fail = crate::wire::encode(fe::COPY_FAIL, b"the client left\0");
                Backend::new(&mut self.server, &mut self.sfr).send(&fail).await.is_ok()
            }
        };
        if owed {
            self.put_back.extend(a.moved);
        }
    }
}

/// Whether `tag` is a frontend message type the server knows after the login (any other ends
/// the session on the server: `08P01`, FATAL).
pub(super) fn known_type(tag: u8) -> bool {
    matches!(
        tag,
        fe::QUERY
            | fe::PARSE
            | fe::BIND
            | fe::EXECUTE
            | fe::DESCRIBE
            | fe::CLOSE
            | fe::SYNC
            | fe::FLUSH
            | fe::FUNCTION_CALL
            | fe::COPY_DATA
            | fe::COPY_DONE
            | fe::COPY_FAIL
            | fe::TERMINATE
    )
}

/// The reason blastwall's CopyFail gives when another message came in the middle of a COPY.
const INTRUDED: &str = "blastwall: the client sent another message before the COPY's end, which ends it";

/// How long a departed client's COPY answer is waited for.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

const HINT_READING: &str = "Send the COPY again; or load the rows with INSERT, which is counted.";
