//! blastwall's counter readings (and the point writes' assertion, `point`) as named statements
//! on the client's session, prepared once and then only bound and executed: parsing and
//! planning the reading (several catalogs, the protected objects' identity) cost the server
//! about 0.9 ms each time it was sent as text.
//!
//! The statement's name is `__blastwall_r` and a digest of its text (a new text, as when an
//! OID is learned or the policy changes, is a new statement). Its existence is mirrored: a
//! client's `DEALLOCATE ALL` or `DISCARD ALL`, confirmed by the server's command tag, forgets
//! every one (`on_tag`), and so does any error of a check that used one. A function can
//! deallocate it, or prepare a statement of its own under the name, without a tag blastwall
//! sees: so every check that used a prepared reading also runs [`check`] (a statement parsed
//! anew each time, on blastwall's own name, the names and texts bound as its parameters)
//! after the client's messages, which fails unless the statement under each name is the one
//! blastwall prepared — protocol-prepared (`from_sql` false: SQL `PREPARE`, the only way a
//! function or a client's text has, sets it) with exactly blastwall's text (a client's own
//! protocol Parse under the name, which blastwall relays, has `from_sql` false too). A statement cannot come back once replaced (only a
//! protocol Parse makes one with `from_sql` false, and blastwall sends that only before the
//! first reading), so one check after the last reading vouches for every reading of the check.
//! A write sent as one batch (`implicit`, `point`) runs the same check on the session's unnamed
//! statement instead ([`Prepared::check_unnamed`]): parsed there once and then only bound
//! while nothing of the client's reaches the server, since nothing but a protocol message can
//! change the unnamed statement.
//! Every name in the text is schema-qualified: re-planned after an invalidation, it still
//! means the same.
//!
//! Owns: which readings are prepared on the session, their messages, and the check. Does not
//! own: what a reading reads (`stats`, `identity`) or when it runs (`verify`, `inbatch`).

use bytes::{BufMut, BytesMut};
use sha2::{Digest, Sha256};

/// A Bind of a statement that never exists: fails a batch that lacks its check.
static MISSING: std::sync::LazyLock<BytesMut> =
    std::sync::LazyLock::new(|| super::own::bind_execute("", "__blastwall_no_check"));

/// The type of the check's parameters: `text`.
const TEXT: u32 = 25;

/// How many distinct readings a session keeps prepared (a policy has a few: with and without
/// the full identity, before and after an OID is learned).
const KEEP: usize = 8;

/// The readings prepared on one server session.
#[derive(Debug, Default)]
pub struct Prepared {
    /// (name, confirmed by the server): a name not yet confirmed is prepared again.
    names: Vec<(String, bool)>,
    /// Names to close on the server (forgotten to stay under `KEEP`).
    stale: Vec<String>,
    /// Whether the session's counters start at zero in the next check's transaction (`once`).
    pub flushed: super::once::Flushed,
    /// The names of the last texts read, so that a text used again is not digested again (a
    /// reading is a few KiB: its SHA-256 was a tenth of a counted write's CPU).
    named: Vec<(String, String)>,
    /// The readings of proven deletes, built once (`built`).
    pub built: super::built::Memo,
    /// The last check's messages, by the names and texts it checks.
    last_check: Option<(Checked, BytesMut)>,
    /// The last check on the unnamed statement: the names and texts it checks, how many
    /// readings, its Parse there, and the Bind of the unnamed portal to it with the names and
    /// texts and the Execute.
    last_unnamed: Option<(Checked, usize, BytesMut, BytesMut)>,
}

/// The names and texts a check checks.
type Checked = Vec<(String, String)>;

/// The messages of one reading on a prepared statement, without a Sync.
#[derive(Debug)]
pub struct Reading {
    /// The statement's name.
    pub name: String,
    /// For the first reading: Close and Parse of the statement when it is not known to be
    /// prepared, then what `again` holds.
    pub first: BytesMut,
    /// Bind, Execute and Close of blastwall's portal on it.
    pub again: BytesMut,
    /// How many completions (Parse, Bind, Close) and command tags `first` and `again` answer.
    pub first_replies: usize,
    pub again_replies: usize,
    /// The text, for the check.
    text: String,
}

/// blastwall's portal for a prepared reading (closed before and after each use).
const PORTAL: &str = "__blastwall_rp";

impl Prepared {
    /// The messages that run `sql` on a statement of blastwall's, prepared when needed.
    pub fn reading(&mut self, sql: &str) -> Reading {
        let name = self.name(sql);
        // The last used goes last: never the one closed to make room for another of a check.
        if let Some(i) = self.names.iter().position(|(n, _)| *n == name) {
            let used = self.names.remove(i);
            self.names.push(used);
        }
        let known = self.names.iter().any(|(n, ok)| *n == name && *ok);
        let mut first = BytesMut::new();
        let mut first_replies = 0;
        for old in self.stale.drain(..) {
            first.put_slice(&super::own::close(b'S', &old));
            first_replies += 1;
        }
        if !known {
            if !self.names.iter().any(|(n, _)| *n == name) {
                if self.names.len() >= KEEP {
                    let (old, _) = self.names.remove(0);
                    first.put_slice(&super::own::close(b'S', &old));
                    first_replies += 1;
                }
                self.names.push((name.clone(), false));
            }
            first.put_slice(&super::own::close(b'S', &name));
            first.put_slice(&crate::wire::messages::parse_typed(&name, sql, &[]));
            first_replies += 2;
        }
        let again = bind_execute(&name);
        first.put_slice(&again);
        Reading { name, first, again, first_replies: first_replies + 4, again_replies: 4, text: sql.to_string() }
    }

    /// [`name_of`] `sql`, remembered for the last `KEEP` texts.
    fn name(&mut self, sql: &str) -> String {
        if let Some((_, name)) = self.named.iter().find(|(text, _)| text == sql) {
            return name.clone();
        }
        let name = name_of(sql);
        if self.named.len() >= KEEP {
            self.named.remove(0);
        }
        self.named.push((sql.to_string(), name.clone()));
        name
    }

    /// [`check`] of `rs`, the last one again when it checked the same names and texts (the
    /// messages hold every reading's text: a few KiB copied twice per write).
    pub fn check_of(&mut self, rs: &[&Reading]) -> BytesMut {
        if let Some((last, msgs)) = &self.last_check {
            if last.len() == rs.len() && last.iter().zip(rs).all(|((n, t), r)| *n == r.name && *t == r.text) {
                return msgs.clone();
            }
        }
        let msgs = check(rs);
        self.last_check = Some((rs.iter().map(|r| (r.name.clone(), r.text.clone())).collect(), msgs.clone()));
        msgs
    }

    /// The check of `rs` on the session's unnamed statement, for a write sent as one batch
    /// whose own text goes on a statement of blastwall's name (`implicit`, `point`): parsed
    /// there once and then only bound and executed while nothing of the client's reaches the
    /// server (`once::Flushed`). Neither SQL nor a function can name, replace or remove the
    /// unnamed statement (SQL `PREPARE`, `EXECUTE` and `DEALLOCATE` take identifiers, which
    /// are never empty; `DEALLOCATE ALL` leaves it; `DISCARD ALL` cannot run in a function),
    /// so what is bound there is blastwall's check, planned anew only when the catalog's
    /// invalidations say so (every name in it is schema-qualified). It is bound after the
    /// client's statement ran, as the check parsed anew was: the unnamed portal, unlike the
    /// unnamed statement, can be reached by PL/pgSQL (a `refcursor` set to `''`).
    /// Returns how many readings it checks (its text is made from that number alone), for
    /// [`Prepared::unnamed_messages`] and `once::Flushed::unnamed_kept`.
    pub fn check_unnamed(&mut self, rs: &[&Reading]) -> usize {
        if let Some((last, n, _, _)) = &self.last_unnamed {
            if last.len() == rs.len() && last.iter().zip(rs).all(|((n, t), r)| *n == r.name && *t == r.text) {
                return *n;
            }
        }
        let (sql, params) = checked(rs);
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let parse = BytesMut::from(&crate::wire::messages::parse_typed("", &sql, &vec![TEXT; params.len()])[..]);
        let run = super::own::bind_execute_with("", "", &params);
        let n = params.len() / 2;
        self.last_unnamed = Some((rs.iter().map(|r| (r.name.clone(), r.text.clone())).collect(), n, parse, run));
        n
    }

    /// The messages of the last [`Prepared::check_unnamed`] (of `n` readings), without a Sync:
    /// its Parse (empty when the unnamed statement is known to hold it, `once::Flushed`), then
    /// its Bind and Execute.
    pub fn unnamed_messages(&self, n: usize) -> [&[u8]; 2] {
        match &self.last_unnamed {
            Some((_, m, parse, run)) if *m == n => match self.flushed.unnamed_holds(n) {
                true => [&[], run],
                false => [parse, run],
            },
            // Never: the check was just made. Fails the batch (no such statement) if it were.
            _ => [&[], &MISSING],
        }
    }

    /// The server answered the messages of `r.first` without an error: the statement exists.
    pub fn confirm(&mut self, r: &Reading) {
        if let Some(e) = self.names.iter_mut().find(|(n, _)| *n == r.name) {
            e.1 = true;
        }
    }

    /// Something failed around a reading: every statement is prepared again before its next use.
    pub fn forget(&mut self) {
        self.flushed.forget();
        let names = std::mem::take(&mut self.names);
        self.stale.extend(names.into_iter().map(|(n, _)| n));
        self.stale.truncate(KEEP * 2);
    }

    /// A command tag the server sent on the session: `DEALLOCATE ALL` and `DISCARD ALL` removed
    /// every prepared statement, blastwall's too.
    /// Whether any reading is (or may be) prepared: the server's tags then matter (`on_tag`).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.stale.is_empty()
    }

    pub fn on_tag(&mut self, tag: &[u8]) {
        let tag = tag.strip_suffix(&[0]).unwrap_or(tag);
        if tag == b"DEALLOCATE ALL" || tag == b"DISCARD ALL" {
            self.names.clear();
            self.stale.clear();
        }
    }
}

impl super::Backend<'_> {
    /// The opening with `r` was answered without an error.
    pub(super) fn confirm_prepared(&mut self, r: Option<&Reading>) {
        if let (Some(p), Some(r)) = (self.prepared.as_deref_mut(), r) {
            p.confirm(r);
        }
    }

    /// A check failed: the session's readings are prepared again before their next use.
    pub(super) fn forget_prepared(&mut self) {
        if let Some(p) = self.prepared.as_deref_mut() {
            p.forget();
        }
    }

    /// The command tags of the client's statements run during a check (`Prepared::on_tag`).
    pub(super) fn note_tags(&mut self, frames: &[crate::wire::Frame]) {
        if let Some(p) = self.prepared.as_deref_mut() {
            frames.iter().filter(|f| f.tag == b'C').for_each(|f| p.on_tag(f.body()));
        }
    }
}

/// The check (sent as a statement parsed anew each time, after the client's messages, on
/// blastwall's own name: see [`check_on`]).
pub fn check(rs: &[&Reading]) -> BytesMut {
    let (sql, params) = checked(rs);
    super::own::statement_with(&sql, &params.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The statement and portal `name`'s messages (seven replies) of a statement that fails
/// unless the statement under each reading's name is blastwall's: protocol-prepared
/// (`from_sql` false) with exactly its text. The names and texts are its parameters, bound as
/// text, so that its own text stays short whatever the readings' (the server parses and plans
/// it every time: a prepared check could be replaced as the readings can), and nothing of
/// them passes through the SQL lexer: a text converted from the client's encoding as the
/// Parse's was, compared byte for byte.
pub fn check_on(name: &str, rs: &[&Reading]) -> BytesMut {
    let (sql, params) = checked(rs);
    super::own::with_params(name, &sql, &params.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The check's text and parameters: one scan of the session's prepared statements, counting
/// those that are blastwall's (each name once: the server has one statement per name).
fn checked(rs: &[&Reading]) -> (String, Vec<String>) {
    let eq = "OPERATOR(pg_catalog.=)";
    let mut params: Vec<String> = Vec::new();
    for r in rs {
        if !params.iter().step_by(2).any(|n| *n == r.name) {
            params.push(r.name.clone());
            params.push(r.text.clone());
        }
    }
    let each = (0..params.len() / 2)
        .map(|i| format!("p.name {eq} ${} AND p.statement {eq} ${}", 2 * i + 1, 2 * i + 2))
        .collect::<Vec<_>>()
        .join(" OR ");
    let sql = format!(
        "SELECT (CASE WHEN pg_catalog.count(*) {eq} {} THEN '0' \
         ELSE 'blastwall: its prepared statement is missing or was replaced on this session' END)::pg_catalog.int4 \
         FROM pg_catalog.pg_prepared_statement() p WHERE NOT p.from_sql AND ({each})",
        params.len() / 2
    );
    (sql, params)
}

/// The name of the statement for a reading's text.
fn name_of(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("__blastwall_r{hex}")
}

/// Close of blastwall's portal, Bind of it to statement `name`, Execute (all rows), Close:
/// four completions and a command tag.
fn bind_execute(name: &str) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_slice(&super::own::close(b'P', PORTAL));
    out.put_slice(&super::own::bind_execute(PORTAL, name));
    out.put_slice(&super::own::close(b'P', PORTAL));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(b: &[u8]) -> String {
        let mut framer = crate::wire::Framer::new(usize::MAX);
        framer.buf_mut().extend_from_slice(b);
        let mut out = String::new();
        while let Ok(Some(crate::wire::Item::Frame(f))) = framer.next_item(|_| true) {
            out.push(f.tag as char);
        }
        out
    }

    #[test]
    fn prepared_once_until_confirmed_and_again_after_deallocate_all() {
        let mut p = Prepared::default();
        let r = p.reading("SELECT 1");
        assert_eq!(tags(&r.first), "CPCBEC");
        assert_eq!(r.first_replies, 6);
        // Not confirmed (the answer failed): prepared again.
        assert_eq!(tags(&p.reading("SELECT 1").first), "CPCBEC");
        p.confirm(&r);
        let again = p.reading("SELECT 1");
        assert_eq!(tags(&again.first), "CBEC");
        assert_eq!(again.first_replies, 4);
        p.on_tag(b"DEALLOCATE ALL\0");
        assert_eq!(tags(&p.reading("SELECT 1").first), "CPCBEC");
        p.confirm(&r);
        p.forget();
        // Forgotten: closed, then prepared again.
        let r = p.reading("SELECT 1");
        assert_eq!((tags(&r.first).as_str(), r.first_replies), ("CCPCBEC", 7));
        assert!(r.name.starts_with("__blastwall_r") && r.name != p.reading("SELECT 2").name);
        assert_eq!(p.name("SELECT 1"), name_of("SELECT 1"), "remembered as digested");
        let (sql, params) = checked(&[&r, &r, &again]);
        assert!(sql.contains("NOT p.from_sql") && sql.contains("count(*) OPERATOR(pg_catalog.=) 1 "), "{sql}");
        assert_eq!(params, [r.name.clone(), "SELECT 1".to_string()], "each name once");
    }
}
