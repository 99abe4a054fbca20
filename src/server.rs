//! The listener: accepts clients, spawns one session task each, caps their number, forwards
//! CancelRequests to the backend that owns the key, and shuts down at protocol boundaries.
//!
//! Owns: the accept loop, the event loops sessions run on, and driving the shutdown phases
//! (the handles every session gets and the phase they watch are in `shared`).
//! Does not own: anything said on a connection after it is accepted (see `session`).

use crate::backend::Upstream;
use crate::config::Config;
use crate::guard::Guard;
// Kept for the binary and the tests, which name them here.
pub use crate::shared::{Phase, Shared};
use dashmap::DashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot open the audit file {path}: {source}")]
    Audit { path: String, source: std::io::Error },
}

/// A bound, not yet running proxy.
pub struct Server {
    listeners: Vec<crate::listen::Listener>,
    admin: Option<TcpListener>,
    shared: Arc<Shared>,
    /// Where sessions run: handed out in turn; none = the runtime that runs the server.
    loops: Vec<tokio::runtime::Handle>,
}

/// Session event loops: one thread each, running a single-threaded runtime, so that a
/// session's messages never cross threads (no work-stealing hand-offs, no cross-thread
/// wake-ups) while every core still relays. Dropping it ends the loops (and any session
/// still on them).
pub struct EventLoops {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl EventLoops {
    pub fn start(n: usize) -> std::io::Result<EventLoops> {
        let mut loops = EventLoops { handles: Vec::new(), stops: Vec::new(), threads: Vec::new() };
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            loops.handles.push(rt.handle().clone());
            loops.stops.push(stop);
            let thread = std::thread::Builder::new().name(format!("blastwall-loop-{i}"));
            // Sessions parse their statements on this thread: it gets the parser's deep stack.
            loops.threads.push(thread.stack_size(crate::analyze::deep::STACK).spawn(move || {
                crate::analyze::deep::mark_deep_stack();
                // Runs the sessions spawned onto it until told to stop (or the sender is gone).
                rt.block_on(async move {
                    let _ = stopped.await;
                });
            })?);
        }
        Ok(loops)
    }

    pub fn handles(&self) -> Vec<tokio::runtime::Handle> {
        self.handles.clone()
    }

    /// Ends the loops and waits for their threads.
    pub fn stop(mut self) {
        self.stops.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Asks a running server to shut down (as SIGTERM does); asked again during the grace period,
/// it closes every session at once.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<tokio::sync::Notify>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.0.notify_one();
    }
}

impl Server {
    pub async fn bind(config: Config, mut guard: Guard) -> Result<Server, ServerError> {
        crate::analyze::budget::set_limit(config.max_analysis_bytes);
        if let Some(path) = &config.identities_file {
            guard.catalog.persist_to(path.clone());
        }
        let addresses = config
            .listen_addresses()
            .map_err(|e| ServerError::Bind { addr: config.listen.clone(), source: std::io::Error::other(e) })?;
        let mut listeners = Vec::new();
        for a in &addresses {
            let l = crate::listen::Listener::bind(a)
                .await
                .map_err(|source| ServerError::Bind { addr: a.to_string(), source })?;
            listeners.push(l);
        }
        let upstream = Upstream::new(&config)?;
        let (client_tls, client_tls_cert) = match config.tls.as_ref().map(crate::tls::acceptor).transpose()? {
            Some((acceptor, cert)) => (Some(acceptor), Some(cert)),
            None => (None, None),
        };
        let admin = match &config.admin {
            Some(a) => {
                Some(TcpListener::bind(a).await.map_err(|source| ServerError::Bind { addr: a.clone(), source })?)
            }
            None => None,
        };
        let metrics = crate::metrics::Metrics::new()?;
        metrics.set_policy(&guard.policy().hash);
        let audit = match &config.audit {
            None => None,
            Some(a) => Some(match &a.file {
                None => crate::audit::Audit::stdout(),
                Some(p) => crate::audit::Audit::file(p.clone(), a.max_bytes, a.keep)
                    .map_err(|source| ServerError::Audit { path: p.display().to_string(), source })?,
            }),
        };
        let held_budget = crate::precheck::hold::Budget::new(config.max_held_bytes);
        let instances = crate::instances::Instances::new(config.ddl_notify.is_some());
        if config.ddl_notify.is_none() && guard.policy().tables.iter().any(|t| !t.sequences.is_empty()) {
            tracing::warn!("the policy protects sequences and [ddl_notify] is not set: a move the server rolls back as it ends a session (pg_terminate_backend, idle_in_transaction_session_timeout), and a move by a role without UPDATE on the sequence (setval is not its to call), cannot be put back without a connection of blastwall's own");
        }
        let shared = Arc::new(Shared {
            instances,
            config,
            upstream,
            client_tls,
            client_tls_cert,
            guard,
            cancel_keys: DashSet::new(),
            cancels: Default::default(),
            held_budget,
            open_sessions: AtomicUsize::new(0),
            next_session_id: AtomicU64::new(1),
            phase: crate::shared::PhaseSignal::new(),
            metrics,
            audit,
            console: Default::default(),
        });
        Ok(Server { listeners, admin, shared, loops: Vec::new() })
    }

    /// Runs sessions on these event loops, in turn, instead of on the server's own runtime.
    pub fn on_event_loops(mut self, loops: Vec<tokio::runtime::Handle>) -> Server {
        self.loops = loops;
        self
    }

    /// The first TCP listen address (0.0.0.0:0 when every listener is a Unix socket).
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners
            .iter()
            .find_map(|l| match l {
                crate::listen::Listener::Tcp(t) => t.local_addr().ok(),
                crate::listen::Listener::Unix(..) => None,
            })
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Every listen address, as bound.
    pub fn addresses(&self) -> Vec<crate::listen::Address> {
        self.listeners.iter().map(|l| l.address()).collect()
    }

    /// The admin listener's address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Runs until `shutdown` fires, then drains sessions within the grace period.
    pub async fn run(self, shutdown: ShutdownHandle) {
        let Server { listeners, admin, shared, loops } = self;
        let admin_task = admin.map(|a| tokio::spawn(crate::admin::serve(a, shared.clone())));
        // One accept task per listen address, all feeding this loop.
        let (accepted_tx, mut accepted) = tokio::sync::mpsc::channel(64);
        let mut acceptors = JoinSet::new();
        for l in listeners {
            if let crate::listen::Listener::Unix(_, path) = &l {
                tracing::info!(socket = %path.display(), "blastwall listening on a Unix socket");
            }
            let tx = accepted_tx.clone();
            acceptors.spawn(async move {
                loop {
                    match l.accept().await {
                        Ok(conn) => {
                            if tx.send(conn).await.is_err() {
                                return;
                            }
                        }
                        // Out of file descriptors and the like: keep serving the others.
                        Err(e) => {
                            tracing::warn!(error = %e, listen = %l.address(), "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        }
        drop(accepted_tx);
        // The connections listening for DDL (`[ddl_notify]`) end with the acceptors.
        if let Some(cfg) = shared.config.ddl_notify.clone() {
            let hearing = Arc::new(crate::instances::Hearing::new(shared.clone()));
            acceptors.spawn(crate::catalog::listener::run(cfg, shared.upstream.clone(), hearing));
        }
        let mut sessions = JoinSet::new();
        let mut turn = 0usize;
        loop {
            tokio::select! {
                _ = shutdown.0.notified() => break,
                Some((std, addr)) = accepted.recv() => {
                    let shared = shared.clone();
                    // Boxed: the task then holds a pointer, and the session's large future is
                    // not copied again when the task is made and when it ends.
                    let start = Box::pin(async move {
                        match std.register(shared.console.pause.clone()) {
                            Ok((sock, control)) => {
                                crate::session::run(shared, sock, crate::listen::Peer { addr, control }).await
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot register a client socket"),
                        }
                    });
                    if loops.is_empty() {
                        sessions.spawn(start);
                        continue;
                    }
                    turn = turn.wrapping_add(1);
                    // A socket belongs to the reactor that registered it: it was handed over
                    // unregistered, and is registered on the loop that runs the session.
                    sessions.spawn_on(start, &loops[turn % loops.len()]);
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        // Stops accepting (a Unix socket file is removed with its listener).
        acceptors.shutdown().await;
        let open = sessions.len();
        tracing::info!(open_sessions = open, grace_secs = shared.config.shutdown_grace.as_secs(), "shutting down");
        shared.phase.set(Phase::Draining);
        let deadline = tokio::time::sleep(shared.config.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = sessions.join_next() => if joined.is_none() { break },
                // Asked again (a second Ctrl-C): the grace period ends now.
                _ = shutdown.0.notified() => deadline.as_mut().reset(tokio::time::Instant::now()),
                _ = &mut deadline => {
                    shared.phase.set(Phase::Terminating);
                    // Sessions close at once now; give them a moment to say goodbye.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                        while sessions.join_next().await.is_some() {}
                    }).await;
                    sessions.abort_all();
                    break;
                }
            }
        }
        if let Some(t) = admin_task {
            t.abort();
        }
        tracing::info!("shutdown complete");
    }
}

/// Builds a shutdown handle and its trigger.
pub fn shutdown_handle() -> ShutdownHandle {
    ShutdownHandle(Arc::new(tokio::sync::Notify::new()))
}
