//! The listening side of `crate::instances`: what a listening connection hears from the other
//! instances, handled in order, one worker per database (what is heard is registered before
//! the next message is read: an `end` never overtakes its `begin`). Waiting for this
//! instance's own writes before an `ack` runs apart, so that the worker keeps hearing.
//!
//! Owns: [`Hearing`] (the listener's hooks) and the handling of each message. Does not own:
//! the connection (`catalog::listener`) or the state (`instances::Peers`).

use super::{presence, say, Link, Peers, Said};
use crate::catalog::listener::Hooks;
use crate::catalog::Catalog;
use crate::shared::Shared;
use dashmap::DashMap;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// The listener's hooks, holding the proxy's shared state (made by `server`, kept only by the
/// listening task).
pub struct Hearing {
    shared: Arc<Shared>,
    workers: DashMap<String, UnboundedSender<Event>>,
}

enum Event {
    Joined(Link),
    Heard(i32, String),
    Tick,
    Left,
}

impl Hearing {
    pub fn new(shared: Arc<Shared>) -> Hearing {
        Hearing { shared, workers: DashMap::new() }
    }

    fn send(&self, database: &str, e: Event) {
        let Some(peers) = self.peers(database) else { return };
        let tx = self.workers.entry(database.to_string()).or_insert_with(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let worker = Worker { shared: self.shared.clone(), database: database.to_string(), peers };
            tokio::spawn(worker.run(rx));
            tx
        });
        let _ = tx.send(e);
    }

    fn peers(&self, database: &str) -> Option<Arc<Peers>> {
        let db = self.shared.guard.inflight.db(database);
        self.shared.instances.of(database, &db)
    }
}

impl Hooks for Hearing {
    fn catalog(&self) -> &Catalog {
        &self.shared.guard.catalog
    }

    fn state_schema(&self) -> String {
        self.shared.guard.policy().state.schema.clone()
    }

    fn joined(&self, database: &str, client: Arc<tokio_postgres::Client>, pid: i32) {
        self.send(database, Event::Joined(Link { client, pid }));
    }

    fn heard(&self, database: &str, pid: i32, payload: &str) {
        self.send(database, Event::Heard(pid, payload.to_string()));
    }

    fn tick(&self, database: &str) {
        self.send(database, Event::Tick);
    }

    fn left(&self, database: &str) {
        self.send(database, Event::Left);
    }
}

struct Worker {
    shared: Arc<Shared>,
    database: String,
    peers: Arc<Peers>,
}

/// How often the live instances may be asked again because an unknown backend spoke.
const ASK_AGAIN: std::time::Duration = std::time::Duration::from_secs(1);

impl Worker {
    async fn run(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) {
        while let Some(e) = rx.recv().await {
            match e {
                Event::Joined(link) => self.joined(link).await,
                Event::Heard(pid, payload) => {
                    if let Some(said) = Said::parse(&payload) {
                        self.heard(pid, said).await;
                    }
                }
                Event::Tick => self.tick().await,
                Event::Left => self.left(),
            }
        }
    }

    fn link(&self) -> Option<Link> {
        self.peers.link()
    }

    /// The listening connection listens: what other instances said before is forgotten (they
    /// say it again, answering `hello`) and, until they have, writes see unknown DDL open.
    async fn joined(&self, link: Link) {
        {
            let mut s = self.peers.lock();
            s.link = Some(link.clone());
            s.joined = false;
            s.syncing.clear();
        }
        let present = match presence(&link).await {
            Ok(p) => p,
            Err(e) => return tracing::warn!(error = %e, "cannot ask which blastwall instances are live"),
        };
        {
            // The live instances say again what they have open; the others' may still run.
            let mut s = self.peers.lock();
            self.peers.end_remote(&mut s, |(pid, _)| present.contains(pid));
            self.peers.orphan_remote(&mut s, |_| true);
        }
        self.orphans(&link).await;
        // The prepared transactions already there are held open before writes are judged
        // without the others' DDL.
        if let Err(e) = self.prepared(&link).await {
            return tracing::warn!(error = %e, "cannot ask the server for its prepared transactions");
        }
        {
            let mut s = self.peers.lock();
            s.present = present.clone();
            s.syncing = present.clone();
            self.peers.join(&mut s);
        }
        if !present.is_empty() {
            if let Err(e) = say(&link, &[Said::Hello]).await {
                tracing::warn!(error = %e, "cannot greet the other blastwall instances");
            }
        }
        tracing::info!(database = self.database, others = ?present, "joined the other blastwall instances on the server");
        self.can_put_back(&link).await;
    }

    /// This connection's role puts back the protected sequences a session the server ended
    /// had moved (`session::orphan`): where it may not (it needs UPDATE, and SELECT or USAGE, on each),
    /// that is said now rather than when a put-back fails.
    async fn can_put_back(&self, link: &Link) {
        let policy = self.shared.guard.policy();
        let names: Vec<String> = policy
            .tables
            .iter()
            .flat_map(|t| {
                t.sequences.iter().map(|s| format!("{}.{}", s.schema.as_deref().unwrap_or(&t.schema), s.name))
            })
            .collect();
        let sql = "SELECT n FROM pg_catalog.unnest($1::pg_catalog.text[]) n \
                   WHERE pg_catalog.to_regclass(n) IS NOT NULL \
                   AND NOT (pg_catalog.has_sequence_privilege(pg_catalog.to_regclass(n), 'UPDATE') \
                     AND pg_catalog.has_sequence_privilege(pg_catalog.to_regclass(n), 'SELECT,USAGE'))";
        match link.client.query(sql, &[&names]).await {
            Ok(rows) => {
                for r in rows {
                    let sequence: String = r.get(0);
                    tracing::warn!(database = self.database, sequence, "the [ddl_notify] role may not put this protected sequence back (it needs UPDATE, and SELECT or USAGE, on it): what a session the server ends had moved stays moved");
                }
            }
            Err(e) => {
                tracing::warn!(database = self.database, error = %e, "cannot ask whether the [ddl_notify] role may put the protected sequences back")
            }
        }
    }

    /// Whether `pid` is a live instance's listening connection (asked again when it is not one
    /// known, at most once a second for the same backend: a backend that speaks has its role
    /// and name from its start, so a newcomer is found at once).
    async fn is_live(&self, link: &Link, pid: i32) -> bool {
        {
            let s = self.peers.lock();
            if s.present.contains(&pid) {
                return true;
            }
            if s.denied.get(&pid).is_some_and(|t| t.elapsed() < ASK_AGAIN) {
                return false;
            }
        }
        let live = self.refresh(link).await.is_some_and(|p| p.contains(&pid));
        if !live {
            let mut s = self.peers.lock();
            if s.denied.len() >= 4096 {
                s.denied.clear();
            }
            s.denied.insert(pid, std::time::Instant::now());
        }
        live
    }

    /// Asks the server for its prepared transactions (`inflight::prepared`): those gone
    /// leave the registry (and the catalog forgets), those with DDL unknown here are held.
    async fn prepared(&self, link: &Link) -> Result<(), tokio_postgres::Error> {
        let asked = std::time::Instant::now();
        let rows = link.client.query(crate::inflight::SERVER_QUERY, &[]).await?;
        let now: Vec<crate::inflight::OnServer> = rows
            .iter()
            .map(|r| crate::inflight::OnServer {
                gid: r.get(0),
                xid: r.get(1),
                ddl: r.get::<_, Option<bool>>(2) != Some(false),
            })
            .collect();
        if self.peers.db.learn_server(asked, &now) {
            self.shared.guard.catalog.forget(&self.database);
        }
        Ok(())
    }

    /// Asks which instances are live; those gone answer nothing any more and their DDL is over
    /// (unless it was prepared: the server is asked first).
    async fn refresh(&self, link: &Link) -> Option<Vec<i32>> {
        let present = presence(link).await.ok()?;
        let leaving = self.peers.lock().remote.keys().any(|(pid, _)| !present.contains(pid));
        if leaving {
            // Prepared before its instance went, told or not: held from the server's word.
            self.prepared(link).await.ok()?;
        }
        let gone = {
            let mut s = self.peers.lock();
            s.present = present.clone();
            for left in s.waiting.values_mut() {
                left.retain(|p| present.contains(p));
            }
            s.syncing.retain(|p| present.contains(p));
            self.peers.join(&mut s);
            self.peers.orphan_remote(&mut s, |(pid, _)| !present.contains(pid))
        };
        self.peers.changed.notify_waiters();
        if gone {
            self.shared.guard.catalog.forget(&self.database);
        }
        self.orphans(link).await;
        Some(present)
    }

    /// Gone instances' DDL whose session's backend no longer runs ends (asked of the server
    /// while there is any; not answered, it stays).
    async fn orphans(&self, link: &Link) {
        let backends: Vec<i32> = self.peers.lock().orphans.iter().map(|(_, b)| *b).collect();
        if backends.is_empty() {
            return;
        }
        let sql = "SELECT pid FROM pg_catalog.pg_stat_activity WHERE pid OPERATOR(pg_catalog.=) ANY ($1)";
        let Ok(rows) = link.client.query(sql, &[&backends]).await else { return };
        let running: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        let ended = {
            let mut s = self.peers.lock();
            self.peers.end_orphans(&mut s, &running)
        };
        if ended {
            self.shared.guard.catalog.forget(&self.database);
        }
    }

    async fn heard(&self, pid: i32, said: Said) {
        let Some(link) = self.link() else { return };
        if pid == link.pid {
            return;
        }
        match said {
            Said::Ack { to, k } if to == link.pid => {
                if let Some(left) = self.peers.lock().waiting.get_mut(&k) {
                    left.retain(|p| *p != pid);
                }
                self.peers.changed.notify_waiters();
            }
            Said::Begin { s, k, ddl, b } if self.is_live(&link, pid).await => {
                let waits = {
                    let mut st = self.peers.lock();
                    self.peers.register(&mut st, (pid, s), &ddl, b)
                };
                let (shared, peers) = (self.shared.clone(), self.peers.clone());
                tokio::spawn(async move {
                    if !waits.is_empty() {
                        let waited = wait_for_writes(&shared, &peers.db, &waits).await;
                        tracing::info!(others = ?waits, outcome = ?waited, "another blastwall instance's DDL waited for writes judged here before it");
                    }
                    if let Err(e) = say(&link, &[Said::Ack { to: pid, k }]).await {
                        tracing::warn!(error = %e, "cannot answer another blastwall instance's DDL");
                    }
                });
            }
            Said::Prepared { s, gid } => {
                let mut st = self.peers.lock();
                if let Some(r) = st.remote.remove(&(pid, s)) {
                    self.peers.db.prepare(r.id, gid);
                }
            }
            Said::End { s } => {
                let ended = {
                    let mut st = self.peers.lock();
                    self.peers.end_remote(&mut st, |k| *k == (pid, s))
                };
                if ended {
                    // Other sessions may have asked between the DDL's answer and its COMMIT.
                    self.shared.guard.catalog.forget(&self.database);
                }
            }
            Said::Hello if self.is_live(&link, pid).await => {
                let mut said: Vec<Said> = {
                    let mut st = self.peers.lock();
                    let open = st.mine.values_mut().map(|a| {
                        a.told = true;
                        Said::Open { to: pid, s: a.tx, ddl: a.ddl.clone(), b: a.backend }
                    });
                    open.collect()
                };
                said.push(Said::Synced { to: pid });
                if let Err(e) = say(&link, &said).await {
                    return tracing::warn!(error = %e, "cannot answer a blastwall instance that joined");
                }
                // It may have missed an announcement made as it started listening; it has
                // none of its own writes to wait for (judged as with DDL open until it is in
                // touch, which the `open`s just said come before): it need not answer that.
                for left in self.peers.lock().waiting.values_mut() {
                    left.retain(|p| *p != pid);
                }
                self.peers.changed.notify_waiters();
            }
            Said::Open { to, s, ddl, b } if to == link.pid => {
                let mut st = self.peers.lock();
                if st.syncing.contains(&pid) {
                    self.peers.register(&mut st, (pid, s), &ddl, b);
                }
            }
            Said::Synced { to } if to == link.pid => {
                let mut st = self.peers.lock();
                st.syncing.retain(|p| *p != pid);
                self.peers.join(&mut st);
            }
            _ => {}
        }
    }

    /// Once a second: the server's prepared transactions, and, while anything depends on
    /// other instances, which are still live.
    async fn tick(&self) {
        let Some(link) = self.link() else { return };
        if let Err(e) = self.prepared(&link).await {
            tracing::warn!(error = %e, "cannot ask the server for its prepared transactions");
        }
        let busy = {
            let s = self.peers.lock();
            !(s.remote.is_empty() && s.syncing.is_empty() && s.waiting.is_empty() && s.orphans.is_empty())
        };
        if busy {
            self.refresh(&link).await;
        }
    }

    /// The listening connection ended: the others no longer see this instance, so its writes
    /// see unknown DDL open, and its sessions with DDL announced and open are ended (the others
    /// take that DDL as over once they see the connection gone: it must not commit).
    fn left(&self) {
        let (sessions, writing) = {
            let mut s = self.peers.lock();
            s.failed = true;
            s.link = None;
            let joined = std::mem::take(&mut s.joined);
            s.syncing.clear();
            // Writes judged while it was in touch were judged without the others' DDL since.
            let writing = self.peers.unknown_open();
            let writing = if joined { writing } else { Vec::new() };
            (s.mine.drain().map(|(id, _)| id).collect::<Vec<u64>>(), writing)
        };
        self.peers.changed.notify_waiters();
        for id in sessions {
            tracing::warn!(
                session = id,
                "ending a session whose DDL the other blastwall instances can no longer be told the end of"
            );
            self.shared.phase.kill(id);
        }
        // The others' DDL no longer waits for this instance's writes in flight: cancelled now.
        if !writing.is_empty() {
            tracing::warn!(sessions = ?writing, "cancelling writes in flight: the other blastwall instances can no longer wait for them");
            let (shared, db) = (self.shared.clone(), self.peers.db.clone());
            tokio::spawn(async move {
                let bounds = (std::time::Duration::ZERO, crate::inflight::CANCEL_GRACE);
                db.wait_within(
                    crate::inflight::FOREIGN,
                    &writing,
                    bounds,
                    crate::cancels::by_blastwall(&shared, "another instance's DDL"),
                    |id| {
                        shared.phase.kill(id);
                    },
                )
                .await;
            });
        }
    }
}

/// Waits for this instance's sessions' writes that another instance's DDL must wait for:
/// `inflight`'s wait, then their cancel, then their end.
async fn wait_for_writes(shared: &Arc<Shared>, db: &crate::inflight::Db, sessions: &[u64]) -> crate::inflight::Waited {
    db.wait_for(
        crate::inflight::FOREIGN,
        sessions,
        crate::cancels::by_blastwall(shared, "another instance's DDL"),
        |id| {
            shared.phase.kill(id);
        },
    )
    .await
}
