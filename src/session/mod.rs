//! One client session: the opening handshake, then the straight pipeline that reads a frame,
//! judges it (`guard`), and forwards, refuses, or counts it (`relay`, `precheck`), and writes.
//!
//! Owns: the order of the stages, both sockets of one session, its timeouts and its end; the
//! extended protocol's mirror of statements and portals (`statements`) and where a counted
//! Execute is measured (`extended`, `checks`, `counting`); what the server's replies tell it
//! (`replies`); a Query with transaction control or COPY beside a counted write, run
//! statement by statement as an extended batch (`simple`).
//! Does not own: framing rules (`wire`), decisions (`guard`, `policy`), forwarding mechanics
//! (`relay`), the counting I/O (`precheck`).

use crate::backend::{BackendError, BoxIo};
use crate::guard::SessionInfo;
use crate::relay::Relay;
use crate::shared::{Phase, Shared};
use crate::wire::messages::{self, fe, TxStatus};
use crate::wire::startup::CancelKey;
use crate::wire::{Frame, FrameError, Framer, Step};

mod ages;
mod binds;
mod checks;
mod copyback;
mod copying;
mod counting;
mod departure;
mod dispatch;
mod ending;
mod extended;
mod firstlook;
mod judging;
mod names;
mod notifications;
mod opening;
mod orphan;
mod others;
mod owed;
mod parses;
mod pending;
mod pieces;
mod putback;
mod questions;
mod replaced;
mod replies;
mod simple;
mod sliced;
mod statements;
mod taint;
mod undone;
mod unseen;
mod wakes;
mod writes;

use crate::listen::{ClientStream, Peer};
use checks::Pending;
use extended::HeldBatch;
use opening::{is_replication, open_client, refuse_connection};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use tokio::io::AsyncWriteExt;

/// Why a session ended early. Each variant knows which side caused it.
#[derive(Debug, Error)]
enum SessionError {
    #[error("client connection: {0}")]
    ClientIo(std::io::Error),
    #[error("server connection: {0}")]
    ServerIo(std::io::Error),
    #[error("client protocol violation: {0}")]
    ClientProtocol(FrameError),
    #[error("server protocol violation: {0}")]
    ServerProtocol(FrameError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Ended after telling the client why (timeouts, refusal of the connection, shutdown).
    #[error("{0}")]
    Closed(String),
}

/// Runs one accepted connection to its end. Never panics on peer bytes; logs one line when
/// the session starts and one when it ends.
pub async fn run(shared: Arc<Shared>, sock: ClientStream, peer: Peer) {
    let open = shared.open_sessions.fetch_add(1, Ordering::AcqRel) + 1;
    shared.metrics.sessions_open.inc();
    shared.metrics.sessions_total.inc();
    let id = shared.session_id();
    let started = Instant::now();
    let mut stats = Stats::default();
    let result = handshake_and_relay(&shared, sock, &peer, id, open, &mut stats).await;
    shared.console.close(id);
    shared.open_sessions.fetch_sub(1, Ordering::AcqRel);
    shared.metrics.sessions_open.dec();
    if let Some(key) = &stats.key {
        shared.cancel_keys.remove(key);
        shared.cancels.forget(key);
    }
    let Some(who) = stats.who.take() else {
        // A cancel request, an SSL probe that went away, or a refused startup.
        if let Err(e) = result {
            tracing::debug!(session = id, client = %peer, error = %e, "connection closed before startup");
        }
        return;
    };
    let error = result.err().map(|e| e.to_string());
    tracing::info!(
        session = id,
        user = %who.user,
        database = %who.database,
        application_name = %who.application_name,
        client = %peer,
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        bytes_from_client = stats.bytes_in,
        bytes_to_client = stats.bytes_out,
        error = error.as_deref().unwrap_or(""),
        "session ended"
    );
}

#[derive(Default)]
struct Stats {
    who: Option<Who>,
    key: Option<CancelKey>,
    bytes_in: u64,
    bytes_out: u64,
}

#[derive(Clone)]
struct Who {
    user: String,
    database: String,
    application_name: String,
}

async fn handshake_and_relay(
    shared: &Arc<Shared>,
    sock: ClientStream,
    peer: &Peer,
    id: u64,
    open: usize,
    stats: &mut Stats,
) -> Result<(), SessionError> {
    let deadline = tokio::time::Instant::now() + shared.config.startup_timeout;
    let opened = tokio::time::timeout_at(deadline, open_client(shared, sock)).await;
    let (mut client, startup, tls) = match opened {
        Err(_) => return Err(SessionError::Closed("startup timed out".into())),
        Ok(r) => match r? {
            Some(x) => x,
            None => return Ok(()),
        },
    };
    if shared.client_tls.is_some() && shared.config.tls.as_ref().is_some_and(|t| t.require) && !tls {
        return refuse_connection(&mut client, peer, &startup, crate::said::tls_required()).await;
    }
    if open > shared.config.max_connections {
        return refuse_connection(
            &mut client,
            peer,
            &startup,
            crate::said::too_many_clients(shared.config.max_connections),
        )
        .await;
    }
    if is_replication(&startup) && !shared.config.allow_replication {
        return refuse_connection(&mut client, peer, &startup, crate::said::replication_refused()).await;
    }
    if crate::console::is_console(shared, &startup) {
        return crate::console::serve(shared, client, &startup, id, peer)
            .await
            .map_err(|e| SessionError::Closed(e.to_string()));
    }
    let (server, upstream_cert) = match shared.upstream.connect().await {
        Ok(x) => x,
        Err(e) => {
            shared.metrics.upstream_connect_errors_total.inc();
            let (user, database) = (startup.user(), startup.database());
            tracing::warn!(client = %peer, user, database, error = %e, "cannot reach the upstream server");
            let msg = crate::said::upstream_unreachable(matches!(e, BackendError::Connect { .. }), &e.to_string());
            let _ = client.write_all(&msg.encode()).await;
            return Err(e.into());
        }
    };
    let who = Who {
        user: startup.user().to_string(),
        database: startup.database().to_string(),
        application_name: startup.param("application_name").unwrap_or("").to_string(),
    };
    let mut info = SessionInfo::new(&who.user, &who.application_name);
    info.database = who.database.clone();
    info.taint = crate::catalog::Taint::unasked();
    info.inflight.session = id;
    if !who.database.is_empty() {
        let db = shared.guard.inflight.db(&who.database);
        // With other instances possible, this one joins them first (`instances`).
        if let Some(peers) = shared.instances.of(&who.database, &db).filter(|_| !is_replication(&startup)) {
            let catalog = &shared.guard.catalog;
            if !peers.joined(crate::instances::JOIN_WAIT, || catalog.listen_to(&who.database)).await {
                tracing::warn!(database = who.database, "not in touch with the other blastwall instances: row writes are judged as if another session had DDL open");
            }
        }
        info.inflight.db = Some(Arc::new(crate::inflight::DbHandle(db)));
    }
    let mut s = Session {
        shared: shared.clone(),
        client,
        server,
        cfr: Framer::new(shared.config.max_frame_bytes),
        sfr: Framer::new(shared.config.max_frame_bytes),
        relay: Relay::new(rand::random::<u64>() ^ id),
        // Offer what a server would offer on the client's link: channel binding never to a
        // plaintext client, and to a TLS client only when the certificate it saw is the
        // server's own (binding is to that certificate).
        strip_plus: upstream_cert.is_some() && (!tls || upstream_cert != shared.client_cert()),
        ready: false,
        closing: false,
        server_fatal: None,
        info,
        pending: None,
        held_batch: None,
        mirror: Default::default(),
        names: Default::default(),
        readings: Default::default(),
        simple: None,
        simple_replies: None,
        key: None,
        peer: peer.clone(),
        id,
        startup_deadline: deadline,
        holding: Default::default(),
        put_back: Vec::new(),
        failed_batch_ended: false,
        copy_word: true,
        copy_awaited: None,
        looked: is_replication(&startup),
        block: undone::Block::default(),
        block_held: false,
        lost_check: Vec::new(),
    };
    // The server holds blastwall.mode as blastwall enforces it, so that what it reports is true.
    if is_replication(&startup) {
        s.relay.to_server.extend_from_slice(&startup.bytes);
    } else {
        let mode = crate::policy::mode_for(s.info.view(), &shared.guard.policy(), None);
        s.relay.to_server.extend_from_slice(&crate::guard::startup_with_mode(&startup.bytes, mode));
    }
    shared.console.open(id, &who.user, &who.database, &who.application_name, peer);
    stats.who = Some(who);
    let _leave = others::Leave {
        shared: shared.clone(),
        db: s.info.inflight.db.clone(),
        database: s.info.database.clone(),
        session: id,
    };
    let hook = orphan::elsewhere(shared, &s.info.database);
    let ended = crate::precheck::elsewhere::ELSEWHERE
        .scope(hook, async {
            match s.relay_loop(stats).await {
                // The client's link broke (a write to it failed, a read reset): what the
                // session owes the server goes first, as for a client that closed (twenty-ninth
                // pass P3: the client dropped its link behind a message that ended its COPY;
                // the COPY's error, relayed to it, failed to write, and the owed put-back never
                // ran).
                Err(e @ (SessionError::ClientIo(_) | SessionError::ClientProtocol(_))) if s.owes_on_leaving() => {
                    let _ = s.client_gone().await;
                    Err(e)
                }
                r => r,
            }
        })
        .await;
    // What is still owed (the server ended the session, or the link broke): on blastwall's
    // own connection.
    s.orphan();
    ended
}

struct Session {
    shared: Arc<Shared>,
    client: BoxIo,
    server: BoxIo,
    cfr: Framer,
    sfr: Framer,
    relay: Relay,
    strip_plus: bool,
    /// The first ReadyForQuery has been relayed: authentication is over.
    ready: bool,
    /// The client sent Terminate.
    closing: bool,
    /// The server's FATAL (or PANIC) message, when it sent one: it is ending the session.
    server_fatal: Option<String>,
    info: SessionInfo,
    /// A message (or extended batch) waiting for the pre-check, which runs once the server
    /// has answered everything before it. The client is not read meanwhile.
    pending: Option<Pending>,
    /// A one-write extended batch being held (not forwarded) until its Sync.
    held_batch: Option<HeldBatch>,
    /// The server's prepared statements and portals that run counted writes.
    mirror: statements::Mirror,
    /// DEALLOCATEs and Closes of named statements waiting for the server's confirmation.
    names: names::Removals,
    /// blastwall's counter readings prepared on the server session (`precheck::prepared`).
    readings: crate::precheck::prepared::Prepared,
    /// A Query running as an extended batch (`simple`): the messages it has yet to send, and
    /// the rewriting of its replies.
    simple: Option<simple::Running>,
    simple_replies: Option<simple::Replies>,
    key: Option<CancelKey>,
    peer: Peer,
    id: u64,
    startup_deadline: tokio::time::Instant,
    /// The share of all sessions' held replies that this one's, not yet written, take.
    holding: crate::precheck::hold::Holding,
    /// Protected sequences to put back at the next quiet point (`putback`).
    put_back: Vec<crate::precheck::putback::Moved>,
    /// blastwall ended on the server a batch it failed, whose Sync the client has not sent
    /// yet, to put a sequence back (`putback`).
    failed_batch_ended: bool,
    /// The last text judged has the word `copy` (the guard's one pass said): only such a text
    /// can be a `COPY … FROM STDIN`.
    copy_word: bool,
    /// A relayed COPY that may move a protected sequence, read before it (`copyback`).
    copy_awaited: Option<copyback::Awaited>,
    /// The first look at the policy tables' OIDs was taken (or not owed: `firstlook`).
    looked: bool,
    /// Protected sequences moved by writes the client's transaction kept, until it ends
    /// (`undone`).
    block: undone::Block,
    /// The client was not read while `block_waits`.
    block_held: bool,
    /// Protected sequences a check the server session ended in the middle of may have moved
    /// (`orphan`).
    lost_check: Vec<crate::precheck::putback::Moved>,
}

impl Session {
    async fn relay_loop(&mut self, stats: &mut Stats) -> Result<(), SessionError> {
        let shared = self.shared.clone();
        let mut current = shared.phase.get();
        // Kept across turns: the phase signal's waker is registered once, the timers made once.
        let mut waits = wakes::Waits::new(&shared.phase, self.id, current);
        let idle = self.shared.config.idle_timeout;
        loop {
            if self.info.inflight.registered && self.pending.is_none() && !self.relay.is_busy() {
                self.inflight_answered();
            }
            if !self.put_back.is_empty() && self.relay.to_server.is_empty() && !self.relay.is_busy() {
                // Before the client hears the server is ready: a session that connects
                // directly could take a value meanwhile and keep the whole move (seventy-ninth
                // pass M1: a ROLLBACK answered before its put-back, 1 round in 3).
                waits.server.unpark();
                self.put_back_when_quiet().await?;
            }
            if !self.relay.to_server.is_empty() || !self.relay.to_client.is_empty() {
                // Most writes go at once; what cannot is waited for with the task's waker.
                if let Some(unflushed) = self.flush_at_once(stats)? {
                    self.finish_flush(unflushed).await?;
                    self.flush(stats).await?;
                }
            }
            if self.closing {
                if self.owes_on_leaving() {
                    return self.client_gone().await;
                }
                return Ok(());
            }
            if !self.put_back.is_empty() {
                waits.server.unpark();
                self.put_back_when_quiet().await?;
            }
            if self.block.mark_owed() {
                waits.server.unpark();
                self.set_block_mark().await?;
            }
            if self.block.read_owed() {
                waits.server.unpark();
                self.read_block_marks().await?;
                if !self.put_back.is_empty() {
                    // What it undid goes back at once, before the client is read (`undone`).
                    continue;
                }
            }
            if self.block_held && !self.block_waits() {
                // What the client sent behind the rollback is read now.
                self.block_held = false;
                waits.client.unpark();
                self.on_client_bytes()?;
                continue;
            }
            if self.first_look_owed() {
                waits.server.unpark();
                self.first_look().await;
            }
            if current == Phase::Terminating || (current == Phase::Draining && self.is_at_boundary()) {
                return self.close_for_shutdown().await;
            }
            // A held message waits to know where a COPY before it ended (`copying`).
            let copy_waits = self.held_waits_for_copy();
            if copy_waits && !self.relay.to_server.is_empty() {
                // The probe goes first.
                continue;
            }
            // A check waits for the server to answer what came before; an analysis needs only
            // a blocking thread (and may come in the middle of a batch).
            let runnable = !copy_waits
                && match &self.pending {
                    None => false,
                    Some(p) if p.is_analysis() => true,
                    Some(p) if p.is_count() || p.is_query_in_batch() || p.is_resolve_in_batch() => self.count_can_run(),
                    Some(p) if p.is_execute() => self.execute_can_be_judged(),
                    Some(p) if p.is_ended() => false,
                    Some(p) if p.is_copy_end() => !self.copy_unsettled(),
                    Some(p) if p.is_sync_in_copy() => self.copy_start_known(),
                    Some(p) if p.is_after_copy() => !self.relay.holds_client(),
                    Some(_) => !self.relay.is_busy(),
                };
            if runnable {
                // A pre-check reads the server itself (and may leave bytes ready there).
                waits.client.unpark();
                waits.server.unpark();
                self.run_pending().await?;
                self.on_client_bytes()?;
                continue;
            }
            if self.pending.is_none() && self.simple.is_some() && self.simple_next(false) {
                waits.client.unpark();
                self.on_client_bytes()?;
                continue;
            }
            let turn = wakes::Turn {
                // A held early message is not read past (it waits for the server to be ready).
                reading_client: self.pending.is_none()
                    && !self.holds_early_message()
                    && !self.relay.holds_client()
                    && !self.block_waits(),
                // From now: the idle time starts when the loop starts waiting.
                idle_deadline: idle
                    .filter(|_| self.ready && !self.relay.is_busy())
                    .map(|d| tokio::time::Instant::now() + d),
                startup_deadline: Some(self.startup_deadline).filter(|_| !self.ready),
            };
            let io = wakes::Io {
                client: &mut self.client,
                client_buf: self.cfr.buf_mut(),
                server: &mut self.server,
                server_buf: self.sfr.buf_mut(),
            };
            match waits.next(&turn, io).await {
                wakes::Woke::Phase(p) => {
                    current = p;
                    waits.phase_seen(current);
                }
                wakes::Woke::Client(r) => {
                    let n = r.map_err(SessionError::ClientIo)?;
                    if n == 0 {
                        return self.client_gone().await;
                    }
                    stats.bytes_in += n as u64;
                    if let Err(e) = self.on_client_bytes() {
                        return self.ends_owing(e, stats).await;
                    }
                }
                wakes::Woke::Server(r) => {
                    // A reset is the server gone without a word too.
                    match r {
                        Ok(0) => return self.server_gone(stats, None).await,
                        Err(e) => return self.server_gone(stats, Some(e)).await,
                        Ok(_) => {}
                    }
                    let (was_ready, held) = (self.ready, self.relay.holds_client());
                    self.on_server_bytes(stats)?;
                    if (!was_ready && self.ready) || (held && !self.relay.holds_client()) {
                        // What the client sent behind its login is judged now (or behind the
                        // Syncs of a COPY, once the server said which it answered: `copying`).
                        if let Err(e) = self.on_client_bytes() {
                            return self.ends_owing(e, stats).await;
                        }
                    }
                }
                wakes::Woke::Idle => {
                    let msg = crate::said::idle_timeout(self.relay.tx);
                    self.relay.to_client.extend_from_slice(&msg.encode());
                    self.relay.to_server.extend_from_slice(&messages::terminate());
                    self.flush(stats).await?;
                    return Err(SessionError::Closed("idle timeout".into()));
                }
                wakes::Woke::Startup => {
                    let msg = crate::said::authentication_timed_out();
                    let _ = self.client.write_all(&msg.encode()).await;
                    return Err(SessionError::Closed("startup timed out".into()));
                }
            }
        }
    }

    fn is_at_boundary(&self) -> bool {
        self.ready
            && self.relay.tx == TxStatus::Idle
            && !self.relay.is_busy()
            && self.pending.is_none()
            && self.held_batch.is_none()
            && self.simple.is_none()
            && self.cfr.is_at_boundary()
            && self.sfr.is_at_boundary()
    }

    /// Client messages: the ones a stage reads come whole; CopyData streams through.
    fn on_client_bytes(&mut self) -> Result<(), SessionError> {
        // The client's place among Syncs sent during a COPY is not known yet (`copying`).
        if self.relay.holds_client() {
            return Ok(());
        }
        // What a rollback undid is read before anything after it goes (`undone`).
        if self.block_waits() {
            self.block_held = true;
            return Ok(());
        }
        if self.ready && self.cfr.holds_one(fe::QUERY) && self.nothing_held() {
            if let Some(done) = self.lone_query() {
                return done;
            }
        }
        loop {
            if self.pending.is_some() || self.holds_early_message() || self.simple_waits() || self.relay.holds_client()
            {
                return Ok(());
            }
            if self.block_waits() {
                self.block_held = true;
                return Ok(());
            }
            let discarding = self.relay.is_discarding();
            let ready = self.ready;
            let relay = &mut self.relay;
            let step = self
                .cfr
                .next_step(
                    |tag| if ready { discarding || tag != fe::COPY_DATA } else { tag == fe::PASSWORD },
                    |run| relay.forward_raw(run),
                )
                .map_err(|e| self.protocol_violation(e))?;
            match step {
                None => return Ok(()),
                Some(Step::Passed) => {}
                Some(Step::Frame(f)) => {
                    self.simple_took();
                    self.on_client_frame(f)?
                }
            }
        }
    }

    /// Before the first ReadyForQuery only authentication goes on: a message a client sent
    /// behind its login (a Query pipelined after the StartupMessage under trust, or in the same
    /// write as its last SCRAM message) waits, unread, and is judged like any other once the
    /// server is ready.
    fn holds_early_message(&self) -> bool {
        !self.ready && self.cfr.next_tag().is_some_and(|t| t != fe::PASSWORD)
    }

    /// A client frame that violates the protocol: answered with 08P01 and the session ends;
    /// nothing of it reaches the server.
    fn protocol_violation(&mut self, e: FrameError) -> SessionError {
        let msg = crate::said::protocol_violation(&e.to_string());
        self.relay.to_client.extend_from_slice(&msg.encode());
        // What blastwall itself sends to end a COPY whose move it owes stays (`copyback`).
        if self.copy_awaited.is_none() {
            self.relay.to_server.clear();
        }
        // A put-back owed (a sequence a COPY or a refused statement moved) goes before the
        // server session ends (`ends_owing`): no Terminate yet.
        if !self.owes_on_leaving() {
            self.relay.to_server.extend_from_slice(&messages::terminate());
        }
        SessionError::ClientProtocol(e)
    }

    /// Whether a session that ends now owes the server something first: a protected sequence
    /// to put back, or a COPY whose move may be.
    pub(super) fn owes_on_leaving(&self) -> bool {
        !self.put_back.is_empty() || self.copy_awaited.is_some() || !self.block.is_empty()
    }

    /// The session ends for the client's error `e`: what it owes goes first (`client_gone`).
    async fn ends_owing(&mut self, e: SessionError, stats: &mut Stats) -> Result<(), SessionError> {
        // Tell the client why before closing (the 08P01 is queued).
        let _ = self.flush(stats).await;
        if self.owes_on_leaving() {
            let _ = self.client_gone().await;
        }
        Err(e)
    }

    fn on_client_frame(&mut self, f: Frame) -> Result<(), SessionError> {
        let Some(f) = self.intrudes_on_copy(f) else {
            return Ok(());
        };
        // A message other than the COPY's own in the middle of a COPY that may have moved a
        // protected sequence: the COPY is ended first (`copyback`).
        if let Some(fail) = self.copy_intruded(&f) {
            self.judge_and_record(fail)?;
            // One of no type the server knows: it would end the session (FATAL 08P01); so does
            // blastwall, once the COPY's move is put back (`ends_owing`).
            if !copyback::known_type(f.tag) {
                let why = FrameError::Malformed { what: "client", why: "a message of no known type during COPY" };
                return Err(self.protocol_violation(why));
            }
        }
        if matches!(f.tag, fe::QUERY | fe::PARSE | fe::FUNCTION_CALL) {
            self.shared.metrics.statements_total.inc();
        }
        self.judge_and_record(f)
    }
}
