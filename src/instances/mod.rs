//! Several blastwall instances in front of one server (ninth adversarial pass R4): the
//! registry of writes in flight and open DDL (`inflight`) is per process, so DDL through one
//! instance would race a write another judged and the server has not run. The instances find
//! each other through the server and keep the same two rules between them:
//!
//! - **Presence**: each instance's listening connection to a database (`[ddl_notify]`,
//!   `catalog::listener`) is its presence there. The live instances are the backends of
//!   `pg_stat_activity` in that database whose role is the `[ddl_notify]` role and whose
//!   `application_name` is [`APPLICATION`]: no other role can make one (a role cannot log in
//!   as another), and every role can see them.
//! - **DDL asks first**: before a message with DDL that may redirect a name (what `inflight`
//!   publishes) is forwarded, the instance announces it on [`CHANNEL`] from its listening
//!   connection (`begin`, with the names it changes or "any"), and forwards it only once every
//!   other live instance has answered (`ack`), within [`ACK_WAIT`]; else the session is ended
//!   (nothing of the message runs) and its client told why (`55P03`). When the DDL's
//!   transaction ends, it says so (`end`).
//! - **Others' DDL is kept like a session's**: an instance that hears `begin` from a live
//!   instance puts it in its own registry as another session's open DDL (writes judged
//!   meanwhile see it), waits for its own writes judged before it that the DDL may redirect
//!   (`inflight`'s wait, cancel and end), then answers `ack`. It takes it out at `end` from
//!   the same backend, or once that instance is no longer live and the server backend of the
//!   session that sent the DDL (named in `begin`) is gone too: the server runs what it
//!   received to its end, and commits it, until it next writes to the gone client. At a
//!   `PREPARE TRANSACTION` the instance says `prepared` instead of `end`, and the DDL stays
//!   open under its gid (`inflight::prepared`), whatever becomes of that instance.
//! - **Joining**: until an instance's listening connection has heard, from every instance live
//!   when it started listening, which DDL they have open (`hello`, answered by `open` per
//!   session and `synced`), its writes are judged as if another session's DDL that may change
//!   any name were open; so are they while the connection is down.
//!
//! A notification carries the sender's backend pid, which no one can choose: what another
//! backend says is ignored, so a role that sends `NOTIFY blastwall_peers` changes nothing.
//!
//! Owns: presence, the messages, announcing and waiting for the answers, and what other
//! instances announced (in this instance's registry). Does not own: the registry and its
//! waits (`inflight`), the listening connection (`catalog::listener`), a session's hooks
//! (`session::others`).

mod hearing;

pub use hearing::Hearing;

use crate::inflight::{Db, Mine};
use crate::names::Earlier;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The channel instances speak on.
pub const CHANNEL: &str = "blastwall_peers";

/// The `application_name` of a listening connection (an instance's presence).
pub const APPLICATION: &str = "blastwall DDL listener";

/// How long DDL waits for the other instances' answers: longer than they may take to wait
/// for, cancel and end their own writes (`inflight::DDL_WAIT` and twice `CANCEL_GRACE`).
pub const ACK_WAIT: Duration = Duration::from_secs(12);

/// How long a session waits, when it starts, for its instance to join the others.
pub const JOIN_WAIT: Duration = Duration::from_secs(3);

/// The registry's session standing for DDL not yet known (the instance has not joined).
const JOINING: u64 = u64::MAX;

/// Where the registry's sessions standing for other instances' sessions are numbered from.
const REMOTE: u64 = 1 << 62;

/// What fits in a NOTIFY payload (8000 bytes), with room to spare.
const MAX_PAYLOAD: usize = 7900;

/// What instances say (NOTIFY payloads, JSON).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "m", rename_all = "lowercase")]
pub(crate) enum Said {
    /// Session `s` sent DDL: answer `ack` with `k` once your writes it may redirect are done.
    /// `b`: the session's backend pid (its DDL may still commit after this instance is gone,
    /// while that backend runs).
    Begin {
        s: u64,
        k: u64,
        ddl: Vec<Ddl>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        b: Option<i32>,
    },
    Ack {
        to: i32,
        k: u64,
    },
    /// Session `s`'s transaction ended.
    End {
        s: u64,
    },
    /// Session `s`'s transaction ended behind `PREPARE TRANSACTION 'gid'`: its DDL stays open
    /// under the gid until the server says it is gone (`inflight::prepared`).
    Prepared {
        s: u64,
        gid: String,
    },
    /// A listening connection joined: say what you have open.
    Hello,
    Open {
        to: i32,
        s: u64,
        ddl: Vec<Ddl>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        b: Option<i32>,
    },
    Synced {
        to: i32,
    },
}

impl Said {
    fn payload(&self) -> String {
        let p = serde_json::to_string(self).unwrap_or_default();
        if p.len() <= MAX_PAYLOAD {
            return p;
        }
        // Too many names: any name, which is what they may change at most.
        let any = vec![Ddl::any()];
        let smaller = match self {
            Said::Begin { s, k, b, .. } => Said::Begin { s: *s, k: *k, ddl: any, b: *b },
            Said::Open { to, s, b, .. } => Said::Open { to: *to, s: *s, ddl: any, b: *b },
            other => other.clone(),
        };
        serde_json::to_string(&smaller).unwrap_or_default()
    }

    fn parse(payload: &str) -> Option<Said> {
        serde_json::from_str(payload).ok()
    }
}

/// DDL as announced: the relation names it changes (`only`), or any name.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct Ddl {
    names: Vec<String>,
    only: bool,
}

impl Ddl {
    fn of(e: &Earlier) -> Ddl {
        let (names, only) = e.reach();
        Ddl { names: names.to_vec(), only }
    }

    fn any() -> Ddl {
        Ddl { names: Vec::new(), only: false }
    }

    fn earlier(&self) -> Earlier {
        let text = match (self.only, self.names.is_empty()) {
            (true, false) => format!("DDL on {} through another blastwall instance", self.names.join(", ")),
            _ => "DDL through another blastwall instance".to_string(),
        };
        Earlier::elsewhere(&text, self.names.clone(), self.only)
    }
}

/// Every database's instances, when `[ddl_notify]` is on.
pub struct Instances {
    on: bool,
    dbs: DashMap<String, Arc<Peers>>,
}

impl Instances {
    pub fn new(on: bool) -> Instances {
        Instances { on, dbs: DashMap::new() }
    }

    /// `database`'s side of it (made on first use, not joined), with its registry `db`; `None`
    /// without `[ddl_notify]`.
    pub fn of(&self, database: &str, db: &Arc<Db>) -> Option<Arc<Peers>> {
        if !self.on {
            return None;
        }
        if let Some(p) = self.dbs.get(database) {
            return Some(p.clone());
        }
        Some(self.dbs.entry(database.to_string()).or_insert_with(|| Arc::new(Peers::new(db.clone()))).clone())
    }
}

/// A listening connection: its client and its backend pid.
#[derive(Clone)]
pub struct Link {
    pub client: Arc<tokio_postgres::Client>,
    pub pid: i32,
}

/// One database's instances, as this one knows them.
pub struct Peers {
    state: Mutex<State>,
    /// Woken when an answer comes, an instance leaves, or this one joins.
    changed: tokio::sync::Notify,
    db: Arc<Db>,
}

#[derive(Default)]
struct State {
    link: Option<Link>,
    joined: bool,
    /// The listening connection has ended at least once (sessions no longer wait to join).
    failed: bool,
    /// Instances whose `synced` this one waits for.
    syncing: Vec<i32>,
    /// The live instances, as last asked.
    present: Vec<i32>,
    /// Backends that spoke and were not live instances, and when they were asked about.
    denied: HashMap<i32, std::time::Instant>,
    /// Announcements waiting for answers: token → instances that have not answered.
    waiting: HashMap<u64, Vec<i32>>,
    /// Other instances' transactions with DDL open: (pid, transaction) → this registry's session.
    remote: HashMap<(i32, u64), Remote>,
    /// Those of instances gone whose session's backend may still run (and commit): this
    /// registry's session and that backend's pid.
    orphans: Vec<(u64, i32)>,
    /// This instance's sessions with DDL announced and open: the number their transaction is
    /// announced under (a new one for each: an `end` that comes late ends only its own), and
    /// what was announced.
    mine: HashMap<u64, Announced>,
    next: u64,
}

/// Another instance's transaction with DDL open, in this registry.
struct Remote {
    id: u64,
    /// Its session's backend pid, when it was said.
    backend: Option<i32>,
}

/// A session's transaction with DDL announced.
struct Announced {
    /// The number it is announced under.
    tx: u64,
    /// The session's backend pid.
    backend: Option<i32>,
    ddl: Vec<Ddl>,
    /// Whether another instance was told (else its end is not said).
    told: bool,
}

/// An announcement waiting for answers, taken out when dropped.
struct Asked<'a> {
    peers: &'a Peers,
    k: u64,
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        self.peers.lock().waiting.remove(&self.k);
    }
}

/// The live instances of the link's database other than itself.
pub(crate) async fn presence(link: &Link) -> Result<Vec<i32>, tokio_postgres::Error> {
    let sql = "SELECT pid FROM pg_catalog.pg_stat_activity \
               WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database() \
               AND usename OPERATOR(pg_catalog.=) SESSION_USER AND application_name OPERATOR(pg_catalog.=) $1 \
               AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()";
    let rows = link.client.query(sql, &[&APPLICATION]).await?;
    Ok(rows.iter().map(|r| r.get::<_, i32>(0)).collect())
}

/// Says `said`, in order, in one transaction (delivered together).
pub(crate) async fn say(link: &Link, said: &[Said]) -> Result<(), tokio_postgres::Error> {
    let payloads: Vec<String> = said.iter().map(Said::payload).collect();
    let sql = "SELECT pg_catalog.pg_notify($1, p) FROM pg_catalog.unnest($2::pg_catalog.text[]) AS p";
    link.client.execute(sql, &[&CHANNEL, &payloads]).await.map(|_| ())
}

impl Peers {
    fn new(db: Arc<Db>) -> Peers {
        let p = Peers { state: Mutex::default(), changed: tokio::sync::Notify::new(), db };
        let _ = p.unknown_open();
        p
    }

    /// The listening connection, while it is up (also blastwall's own reader of the server
    /// for a session whose transaction cannot be asked: `session::undone`).
    pub fn link(&self) -> Option<Link> {
        self.lock().link.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Until this instance has joined, writes are judged as if DDL that may change any name
    /// were open in another session. The sessions with writes in flight (which such DDL
    /// waits for).
    fn unknown_open(&self) -> Vec<u64> {
        let e = Earlier::elsewhere(
            "DDL of another blastwall instance (this one is out of touch with them)",
            Vec::new(),
            false,
        );
        self.db.judging(&Mine { session: JOINING, ..Default::default() }, &[], &[e]).1
    }

    /// Whether this instance has joined the others (waiting up to `within`, unless its
    /// listening connection has already failed once). `ask` asks for the connection.
    pub async fn joined(&self, within: Duration, ask: impl Fn()) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if s.joined || s.failed {
                    return s.joined;
                }
            }
            ask();
            let step = tokio::time::Instant::now() + Duration::from_millis(100);
            if tokio::time::timeout_at(step.min(deadline), notified).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return false;
            }
        }
    }

    /// Announces session `session`'s DDL `ddl` (sent on backend `backend`) to the other live
    /// instances and waits until each has answered (its writes the DDL may redirect are done).
    /// `Err`: why the DDL must not be forwarded.
    pub async fn announce(&self, session: u64, backend: Option<i32>, ddl: &[Earlier]) -> Result<(), String> {
        let (link, tx, k, new) = {
            let mut s = self.lock();
            let Some(link) = s.link.clone().filter(|_| s.joined) else {
                return Err(
                    "this instance's listening connection ([ddl_notify]) is not in touch with the server".into()
                );
            };
            s.next += 1;
            let fresh = s.next;
            let a =
                s.mine.entry(session).or_insert_with(|| Announced { tx: fresh, backend, ddl: Vec::new(), told: false });
            let new: Vec<Ddl> = ddl.iter().map(Ddl::of).filter(|d| !a.ddl.contains(d)).collect();
            if new.is_empty() {
                return Ok(());
            }
            // Kept before the others are asked: an instance that joins meanwhile hears it as
            // open (`hello`).
            a.ddl.extend(new.iter().cloned());
            let tx = a.tx;
            s.next += 1;
            (link, tx, s.next, new)
        };
        let fail =
            |e: tokio_postgres::Error| format!("this instance could not reach the others through the server: {e}");
        let present = presence(&link).await.map_err(fail)?;
        if present.is_empty() {
            return Ok(());
        }
        {
            let mut s = self.lock();
            if let Some(a) = s.mine.get_mut(&session) {
                a.told = true;
            }
            s.waiting.insert(k, present);
        }
        // Taken out however this ends (the session may be dropped while it waits).
        let _asked = Asked { peers: self, k };
        say(&link, &[Said::Begin { s: tx, k, ddl: new, b: backend }]).await.map_err(fail)?;
        self.answered(k, link.pid).await
    }

    /// Waits until every instance asked for announcement `k` has answered or left.
    async fn answered(&self, k: u64, pid: i32) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if s.link.as_ref().map(|l| l.pid) != Some(pid) {
                    return Err("this instance's listening connection ([ddl_notify]) dropped while it waited".into());
                }
                match s.waiting.get(&k) {
                    Some(left) if !left.is_empty() => {}
                    _ => return Ok(()),
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let left = self.lock().waiting.get(&k).cloned().unwrap_or_default();
                let pids: Vec<String> = left.iter().map(|p| p.to_string()).collect();
                return Err(format!(
                    "another blastwall instance (listening connection pid {}) did not answer within {} seconds",
                    pids.join(", "),
                    ACK_WAIT.as_secs()
                ));
            }
        }
    }

    /// Session `session`'s transaction ended (or the session did): the others are told, when
    /// it had announced DDL to any (a single instance says nothing).
    pub fn ended(&self, session: u64) {
        self.ended_as(session, None)
    }

    /// [`Peers::ended`], behind `PREPARE TRANSACTION 'gid'` when `prepared` is that gid: the
    /// others keep its DDL open under the gid, whatever becomes of this instance.
    pub fn ended_as(&self, session: u64, prepared: Option<String>) {
        let (link, tx) = {
            let mut s = self.lock();
            let Some(a) = s.mine.remove(&session).filter(|a| a.told) else { return };
            (s.link.clone(), a.tx)
        };
        let (Some(link), Ok(rt)) = (link, tokio::runtime::Handle::try_current()) else { return };
        let said = match prepared {
            Some(gid) => Said::Prepared { s: tx, gid },
            None => Said::End { s: tx },
        };
        rt.spawn(async move {
            if let Err(e) = say(&link, &[said]).await {
                tracing::warn!(error = %e, "could not tell the other blastwall instances that DDL's transaction ended");
            }
        });
    }

    /// Registers another instance's session's DDL as open in this registry; the sessions whose
    /// writes it must wait for.
    fn register(&self, s: &mut State, from: (i32, u64), ddl: &[Ddl], backend: Option<i32>) -> Vec<u64> {
        let id = match s.remote.get(&from) {
            Some(r) => r.id,
            None => {
                s.next += 1;
                let id = REMOTE + s.next;
                s.remote.insert(from, Remote { id, backend });
                id
            }
        };
        let ddl: Vec<Earlier> = ddl.iter().map(Ddl::earlier).collect();
        self.db.judging(&Mine { session: id, ..Default::default() }, &[], &ddl).1
    }

    /// Takes out the other instances' sessions that `gone` says are over; whether any was.
    fn end_remote(&self, s: &mut State, gone: impl Fn(&(i32, u64)) -> bool) -> bool {
        self.leave_remote(s, gone, false)
    }

    /// The other instances' sessions of instances that `gone` says are gone: over, but those
    /// whose backend is known stay open as orphans until that backend is gone too
    /// ([`Peers::end_orphans`]): the server runs what it received to its end (and commits it)
    /// until it next writes to the gone client. Whether any ended.
    fn orphan_remote(&self, s: &mut State, gone: impl Fn(&(i32, u64)) -> bool) -> bool {
        self.leave_remote(s, gone, true)
    }

    fn leave_remote(&self, s: &mut State, gone: impl Fn(&(i32, u64)) -> bool, orphan: bool) -> bool {
        let left: Vec<(i32, u64)> = s.remote.keys().filter(|k| gone(k)).copied().collect();
        let mut ended = false;
        for k in &left {
            match s.remote.remove(k) {
                Some(Remote { id, backend: Some(b) }) if orphan => s.orphans.push((id, b)),
                Some(r) => {
                    self.db.transaction_ended(r.id);
                    ended = true;
                }
                None => {}
            }
        }
        ended
    }

    /// The orphans whose backend is not among `running` end; whether any did.
    fn end_orphans(&self, s: &mut State, running: &[i32]) -> bool {
        let mut done = Vec::new();
        s.orphans.retain(|(id, b)| {
            let runs = running.contains(b);
            if !runs {
                done.push(*id);
            }
            runs
        });
        for id in &done {
            self.db.transaction_ended(*id);
        }
        !done.is_empty()
    }

    /// This instance has joined (or is no longer waiting for anyone).
    fn join(&self, s: &mut State) {
        if !s.joined && s.syncing.is_empty() && s.link.is_some() {
            s.joined = true;
            self.db.transaction_ended(JOINING);
            self.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_instances_say_reads_back_and_stays_under_the_payload_limit() {
        let begin = Said::Begin { s: 3, k: 9, ddl: vec![Ddl { names: vec!["users".into()], only: true }], b: Some(7) };
        assert_eq!(Said::parse(&begin.payload()), Some(begin));
        let many = Said::Begin { s: 3, k: 9, ddl: vec![Ddl { names: vec!["x".repeat(60); 200], only: true }], b: None };
        let p = many.payload();
        assert!(p.len() <= MAX_PAYLOAD, "{}", p.len());
        assert_eq!(Said::parse(&p), Some(Said::Begin { s: 3, k: 9, ddl: vec![Ddl::any()], b: None }));
        // What an older instance says (no backend) still reads.
        let old = r#"{"m":"begin","s":3,"k":9,"ddl":[]}"#;
        assert_eq!(Said::parse(old), Some(Said::Begin { s: 3, k: 9, ddl: Vec::new(), b: None }));
        assert_eq!(Said::parse("NOTIFY"), None);
    }

    #[test]
    fn until_joined_writes_see_unknown_ddl_and_others_ddl_is_kept_until_it_ends() {
        let db = Arc::new(Db::default());
        let peers = Peers::new(db.clone());
        let mut w =
            Mine { db: Some(Arc::new(crate::inflight::DbHandle(db.clone()))), session: 1, ..Default::default() };
        w.judging(&crate::analyze::analyze("DELETE FROM members WHERE id = 1", Default::default()), false);
        assert_eq!(w.others.len(), 1, "not joined: a write sees DDL that may change any name");
        {
            let mut s = peers.lock();
            s.joined = true;
            db.transaction_ended(JOINING);
            let waits =
                peers.register(&mut s, (77, 5), &[Ddl { names: vec!["members".into()], only: true }], Some(900));
            assert_eq!(waits, vec![1], "another instance's rename waits for the write judged before it");
        }
        w.ord = 1;
        w.judging(&crate::analyze::analyze("DELETE FROM notes WHERE id = 1", Default::default()), false);
        let notes = crate::analyze::RelName { schema: None, name: "notes".into() };
        assert!(w.others.iter().all(|e| e.redirects_elsewhere(&notes).is_none()));
        w.judging(&crate::analyze::analyze("DELETE FROM members WHERE id = 1", Default::default()), false);
        assert!(!w.others.is_empty(), "a write judged while the other instance's DDL is open sees it");
        let mut s = peers.lock();
        assert!(!peers.end_remote(&mut s, |k| k.0 == 78), "another backend's end ends nothing");
        // Its instance gone, the DDL stays open while its session's backend runs.
        assert!(!peers.orphan_remote(&mut s, |k| k.0 == 77));
        assert!(!peers.end_orphans(&mut s, &[900]));
        drop(s);
        w.judging(&crate::analyze::analyze("DELETE FROM members WHERE id = 1", Default::default()), false);
        assert!(!w.others.is_empty(), "the DDL of a gone instance whose backend runs was taken as ended");
        let mut s = peers.lock();
        assert!(peers.end_orphans(&mut s, &[901]));
        drop(s);
        w.judging(&crate::analyze::analyze("DELETE FROM members WHERE id = 1", Default::default()), false);
        assert!(w.others.is_empty());
    }
}
