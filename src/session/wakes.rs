//! What the relay loop waits on, and which of it woke the session: one poll function over the
//! proxy's phase, both sockets and the two timers (idle, startup), kept across the loop's
//! turns instead of a `select!` whose futures are made again at every turn.
//!
//! Each socket's read (and the phase signal) is polled with a waker of its own, which notes the
//! wake-up before it wakes the session's task. A read that returned `Pending` has registered
//! that waker with its socket; until the waker fires, polling the socket again can only return
//! `Pending` again, so a wake-up polls the socket that has something to say (and, after reading
//! it, that one again to register), not both every time: half the socket polls of a round
//! trip, each a lock of the socket's waiter list. The phase signal is read only when it woke
//! the session (one atomic swap otherwise).
//!
//! The idle timer is one timer per session, made when first needed: the deadline the loop asks
//! for at each turn (the moment it starts waiting while idle, plus the timeout) is compared
//! when the timer fires, and the timer is set again only then if the session was active since
//! — the same deadline as a timer made at every turn, without registering and removing one in
//! the runtime's timer wheel twice per round trip.
//!
//! Owns: the per-side wake flags and when a poll may be skipped, the order of the polls
//! (phase first, then the two sockets alternately first), and the timers. Does not own: what
//! is read (`session`), the sockets.

use crate::backend::BoxIo;
use crate::shared::{Phase, PhaseChange, PhaseSignal};
use bytes::BytesMut;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, Sleep};

/// One source of wake-ups (a socket's read side, the phase signal), as the relay loop polls it.
pub(super) struct Side {
    shared: Arc<Flag>,
    /// `shared` as a waker (made once: a socket keeps it without cloning while it is the same).
    waker: Waker,
    /// The task's waker that `shared` forwards to, as last handed over.
    task: Option<Waker>,
    /// The last poll returned `Pending`: the source holds this side's waker.
    parked: bool,
}

struct Flag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(w) = self.task.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            w.wake_by_ref();
        }
    }
}

impl Side {
    pub(super) fn new() -> Side {
        let shared = Arc::new(Flag { woken: AtomicBool::new(false), task: Mutex::new(None) });
        Side { waker: Waker::from(shared.clone()), shared, task: None, parked: false }
    }

    /// Polls `source` with this side's waker, unless the source still holds that waker from a
    /// `Pending` and has not used it since (then it is `Pending` without a poll).
    pub(super) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        source: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // Cleared before the poll: a wake-up during it (another thread's driver) is kept.
        let woken = self.shared.woken.swap(false, Ordering::AcqRel);
        if self.parked && !woken {
            return Poll::Pending;
        }
        if !self.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            let w = cx.waker().clone();
            *self.shared.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(w.clone());
            self.task = Some(w);
        }
        let r = source(&mut Context::from_waker(&self.waker));
        self.parked = r.is_pending();
        r
    }

    /// The source may have been read another way (a pre-check reads the server itself): it is
    /// polled at the next turn whatever it said before.
    pub(super) fn unpark(&mut self) {
        self.parked = false;
    }
}

/// What woke the relay loop.
pub(super) enum Woke {
    /// The proxy's phase changed (or this session was killed: `Terminating`).
    Phase(Phase),
    Client(std::io::Result<usize>),
    Server(std::io::Result<usize>),
    /// The session was idle for the idle timeout.
    Idle,
    /// Authentication took longer than the startup timeout.
    Startup,
}

/// What one turn of the loop waits for.
pub(super) struct Turn {
    /// The client is read (not while a message of its waits).
    pub(super) reading_client: bool,
    /// When the session times out for idleness, if it is idle.
    pub(super) idle_deadline: Option<Instant>,
    /// When the startup times out, while authentication goes on.
    pub(super) startup_deadline: Option<Instant>,
}

/// The sockets and the buffers they are read into.
pub(super) struct Io<'s> {
    pub(super) client: &'s mut BoxIo,
    pub(super) client_buf: &'s mut BytesMut,
    pub(super) server: &'s mut BoxIo,
    pub(super) server_buf: &'s mut BytesMut,
}

/// Everything the relay loop waits on, kept across its turns.
pub(super) struct Waits<'a> {
    pub(super) client: Side,
    pub(super) server: Side,
    phase: Side,
    signal: &'a PhaseSignal,
    id: u64,
    phase_change: PhaseChange<'a>,
    idle: Option<Pin<Box<Sleep>>>,
    /// The idle timer as a source of wake-ups: polled only when it fired (the deadline asked
    /// for never moves earlier, so a timer not yet fired is not yet due either).
    idle_side: Side,
    startup: Option<Pin<Box<Sleep>>>,
    /// Which socket is polled first at the next turn (they take turns).
    client_first: bool,
}

impl<'a> Waits<'a> {
    pub(super) fn new(signal: &'a PhaseSignal, id: u64, seen: Phase) -> Waits<'a> {
        Waits {
            client: Side::new(),
            server: Side::new(),
            phase: Side::new(),
            signal,
            id,
            phase_change: signal.changed(id, seen),
            idle: None,
            idle_side: Side::new(),
            startup: None,
            client_first: false,
        }
    }

    /// The phase the session now acts on: the next change is one from it.
    pub(super) fn phase_seen(&mut self, seen: Phase) {
        self.phase_change = self.signal.changed(self.id, seen);
        self.phase.unpark();
    }

    /// Waits for the next thing the session must act on. Both sockets in turn, alternately the
    /// client's first and the server's first (fair with no random number drawn at every
    /// turn): a side that always has bytes ready cannot keep the other unread (a replication
    /// client's feedback, a pipelining client's replies).
    pub(super) async fn next(&mut self, turn: &Turn, mut io: Io<'_>) -> Woke {
        self.client_first = !self.client_first;
        if turn.startup_deadline.is_none() && self.startup.is_some() {
            self.startup = None;
        }
        std::future::poll_fn(|cx| self.poll(cx, turn, &mut io)).await
    }

    fn poll(&mut self, cx: &mut Context<'_>, turn: &Turn, io: &mut Io<'_>) -> Poll<Woke> {
        let phase_change = &mut self.phase_change;
        if let Poll::Ready(p) = self.phase.poll(cx, |cx| Pin::new(phase_change).poll(cx)) {
            return Poll::Ready(Woke::Phase(p));
        }
        let reading_client = turn.reading_client;
        if self.client_first && reading_client {
            if let Poll::Ready(r) = self.client.poll(cx, |cx| read(cx, io.client, io.client_buf)) {
                return Poll::Ready(Woke::Client(r));
            }
        }
        if let Poll::Ready(r) = self.server.poll(cx, |cx| read(cx, io.server, io.server_buf)) {
            return Poll::Ready(Woke::Server(r));
        }
        if !self.client_first && reading_client {
            if let Poll::Ready(r) = self.client.poll(cx, |cx| read(cx, io.client, io.client_buf)) {
                return Poll::Ready(Woke::Client(r));
            }
        }
        if let Some(deadline) = turn.idle_deadline {
            let idle = &mut self.idle;
            if self.idle_side.poll(cx, |cx| poll_deadline(idle, cx, deadline)).is_ready() {
                return Poll::Ready(Woke::Idle);
            }
        }
        if let Some(deadline) = turn.startup_deadline {
            if poll_deadline(&mut self.startup, cx, deadline).is_ready() {
                return Poll::Ready(Woke::Startup);
            }
        }
        Poll::Pending
    }
}

/// Reads what a socket has into `buf` (room made first).
fn read(cx: &mut Context<'_>, io: &mut BoxIo, buf: &mut BytesMut) -> Poll<std::io::Result<usize>> {
    reserve(buf);
    std::pin::pin!(io.read_buf(buf)).poll(cx)
}

/// Room for at least 4 KiB in a buffer a socket is read into.
pub(super) fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
}

/// Whether `deadline` has passed, by one timer kept in `timer` (made at the first poll): a
/// timer that fires for an earlier deadline than the one asked for now (the session was active
/// since it was set) is set again, to this one.
fn poll_deadline(timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if sleep.deadline() > deadline {
        sleep.as_mut().reset(deadline);
    }
    loop {
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if sleep.deadline() >= deadline {
            return Poll::Ready(());
        }
        sleep.as_mut().reset(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A timer that fired for an earlier deadline is set again: the deadline asked for last
    /// is the one that counts, whenever the timer was made.
    #[tokio::test]
    async fn a_deadline_moved_later_is_waited_for() {
        let ms = Duration::from_millis;
        let mut timer = None;
        let start = Instant::now();
        let pending = |timer: &mut Option<_>, deadline| {
            let waker = Waker::noop();
            poll_deadline(timer, &mut Context::from_waker(waker), deadline).is_pending()
        };
        assert!(pending(&mut timer, start + ms(60)));
        // Active at 30 ms: the deadline is now 90 ms.
        tokio::time::sleep(ms(30)).await;
        let later = Instant::now() + ms(60);
        std::future::poll_fn(|cx| poll_deadline(&mut timer, cx, later)).await;
        assert!(Instant::now() >= later);
        // An earlier deadline than the timer's (never asked for, but honoured).
        let mut timer = None;
        let now = Instant::now();
        assert!(pending(&mut timer, now + ms(10_000)));
        std::future::poll_fn(|cx| poll_deadline(&mut timer, cx, now + ms(20))).await;
        assert!(Instant::now() - now < ms(5_000));
    }
}
