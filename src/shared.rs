//! What every session shares, passed in and never global: the config, the upstream, the
//! guard, the live backend keys, metrics, audit, the console's records, and the proxy's phase
//! (running, draining, terminating) that every session watches.
//!
//! Owns: those handles and the phase signal. Does not own: accepting (`server`), a session's
//! conversation (`session`), the HTTP endpoints (`admin`). It depends on none of them, so
//! that `server`, `session` and `admin` all depend on it and not on one another.

use crate::backend::Upstream;
use crate::config::Config;
use crate::guard::Guard;
use crate::wire::startup::CancelKey;
use dashmap::DashSet;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

/// Where the proxy is in its life; sessions watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// Stop accepting; each session closes at its next protocol boundary.
    Draining,
    /// The grace period is over: close every session now.
    Terminating,
}

/// The proxy's phase, which every session checks at every wake-up. Reading it is one atomic
/// load; a session registers its waker once (not once per wake-up, as a channel's waiter
/// would), and a change wakes every registered session.
#[derive(Debug)]
pub struct PhaseSignal {
    phase: AtomicU8,
    sessions: Mutex<HashMap<u64, Waker>>,
    /// Sessions ended from the console (`KILL`): for them alone the phase is Terminating.
    killed: Mutex<std::collections::HashSet<u64>>,
    /// How many of those have not yet been told: while none, a session's wake-up reads one
    /// atomic instead of locking and hashing (the hot path polls this at every wake-up).
    kills_pending: AtomicUsize,
}

impl PhaseSignal {
    pub(crate) fn new() -> Self {
        PhaseSignal {
            phase: AtomicU8::new(Phase::Running as u8),
            sessions: Mutex::default(),
            killed: Mutex::default(),
            kills_pending: AtomicUsize::new(0),
        }
    }

    pub fn get(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Running,
            1 => Phase::Draining,
            _ => Phase::Terminating,
        }
    }

    pub(crate) fn set(&self, p: Phase) {
        // Stored before the wakers are read: a session that registers meanwhile either is
        // among them or reads the new phase after registering.
        self.phase.store(p as u8, Ordering::SeqCst);
        let wakers: Vec<Waker> = self.lock().values().cloned().collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves to the phase once it is no longer `seen`. `id` names the session.
    pub fn changed(&self, id: u64, seen: Phase) -> PhaseChange<'_> {
        PhaseChange { signal: self, id, seen, waker: None }
    }

    /// Ends one session as the grace period's end would (57P01 at once). False when no live
    /// session has this id.
    pub fn kill(&self, id: u64) -> bool {
        let waker = self.lock().get(&id).cloned();
        let Some(w) = waker else { return false };
        if self.killed.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
            self.kills_pending.fetch_add(1, Ordering::SeqCst);
        }
        w.wake();
        true
    }

    /// A session that ends by itself after being killed (`inflight`: while it waited for
    /// other sessions' writes) takes its kill back, so that no kill stays pending.
    pub fn forget_kill(&self, id: u64) {
        self.take_killed(id);
    }

    /// Whether the session was killed (told once: the kill is consumed).
    fn take_killed(&self, id: u64) -> bool {
        // Counted after the insertion and before the wake-up: a woken session sees it.
        if self.kills_pending.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let removed = self.killed.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        if removed {
            self.kills_pending.fetch_sub(1, Ordering::SeqCst);
        }
        removed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waker>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// See [`PhaseSignal::changed`]. Keep it across wake-ups: creating it registers a waker.
pub struct PhaseChange<'a> {
    signal: &'a PhaseSignal,
    id: u64,
    seen: Phase,
    waker: Option<Waker>,
}

impl std::future::Future for PhaseChange<'_> {
    type Output = Phase;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Phase> {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let w = cx.waker().clone();
            self.signal.lock().insert(self.id, w.clone());
            self.waker = Some(w);
        }
        match self.signal.get() {
            _ if self.seen != Phase::Terminating && self.signal.take_killed(self.id) => {
                std::task::Poll::Ready(Phase::Terminating)
            }
            p if p != self.seen => std::task::Poll::Ready(p),
            _ => std::task::Poll::Pending,
        }
    }
}

impl Drop for PhaseChange<'_> {
    fn drop(&mut self) {
        if self.waker.is_some() {
            self.signal.lock().remove(&self.id);
        }
    }
}

/// What every session shares. Passed in, never global.
pub struct Shared {
    pub config: Config,
    pub upstream: Arc<Upstream>,
    pub client_tls: Option<tokio_rustls::TlsAcceptor>,
    /// The proxy's own certificate, reloadable: when it is the server's too, SCRAM channel
    /// binding works end to end and is left alone (see [`Shared::client_cert`]).
    pub client_tls_cert: Option<Arc<crate::tls::ServerCert>>,
    pub guard: Guard,
    /// Backend keys of live sessions: a CancelRequest is forwarded only for one of these.
    pub cancel_keys: DashSet<CancelKey>,
    /// The cancels forwarded for each of those keys (`cancels`).
    pub cancels: crate::cancels::Requests,
    /// The bytes of replies all sessions may hold while counting (`precheck::hold`).
    pub held_budget: crate::precheck::hold::Budget,
    pub open_sessions: AtomicUsize,
    pub next_session_id: AtomicU64,
    pub phase: PhaseSignal,
    pub metrics: crate::metrics::Metrics,
    pub audit: Option<crate::audit::Audit>,
    /// The admin console's records (sessions, recent decisions) and the PAUSE gate.
    pub console: crate::console::state::ConsoleState,
    /// The other blastwall instances in front of the same server (`instances`).
    pub instances: crate::instances::Instances,
}

impl Shared {
    /// The certificate clients are shown now (DER), when TLS is on.
    pub fn client_cert(&self) -> Option<Vec<u8>> {
        self.client_tls_cert.as_ref().map(|c| c.leaf())
    }

    pub fn session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Swaps in a reloaded policy, or records that a reload failed (the old policy stays).
    pub fn reload(&self, result: Result<crate::policy::Policy, crate::policy::PolicyError>) {
        let _ = self.apply_policy(result);
    }

    fn apply_policy(&self, result: Result<crate::policy::Policy, crate::policy::PolicyError>) -> Result<(), String> {
        match result {
            Ok(p) => {
                tracing::info!(policies = %p.source_names(), hash = %p.hash, "policy reloaded");
                self.metrics.set_policy(&p.hash);
                self.metrics.policy_reloads_total.with_label_values(&["ok"]).inc();
                self.guard.replace(p);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "policy reload failed; the previous policy stays in force");
                self.metrics.policy_reloads_total.with_label_values(&["failed"]).inc();
                Err(format!("policy reload failed; the previous policy stays in force: {e}"))
            }
        }
    }

    /// What SIGHUP and the console's RELOAD do: reopen the audit file, reload the policy files
    /// (when the policy comes from files) and the client TLS certificate and key. What fails
    /// is reported and the old one stays in force.
    pub fn reload_all(&self) -> Result<(), String> {
        if let Some(a) = &self.audit {
            a.reopen();
        }
        let mut errors = Vec::new();
        if let Some(cert) = &self.client_tls_cert {
            match cert.reload() {
                Ok(()) => tracing::info!("TLS certificate and key reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; the previous certificate stays in use");
                    errors.push(format!("TLS reload failed; the previous certificate stays in use: {e}"));
                }
            }
        }
        if !self.config.policies.is_empty() {
            if let Err(e) = self.apply_policy(crate::policy::file::load(&self.config.policies)) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}
