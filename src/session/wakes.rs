//! Which of a session's two sockets woke it: each socket's read is polled with a waker of its
//! own, which notes the wake-up before it wakes the session's task. A read that returned
//! `Pending` has registered that waker with its socket; until the waker fires, polling the
//! socket again can only return `Pending` again, so a wake-up polls the socket that has
//! something to say (and, after reading it, that one again to register), not both every time.
//! Half the socket polls of a round trip, each a lock of the socket's waiter list.
//!
//! Owns: the per-socket wake flags and when a poll may be skipped. Does not own: what is read
//! (`session`), the sockets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// One socket's read side, as the relay loop polls it.
pub(super) struct Side {
    shared: Arc<Flag>,
    /// `shared` as a waker (made once: a socket keeps it without cloning while it is the same).
    waker: Waker,
    /// The task's waker that `shared` forwards to, as last handed over.
    task: Option<Waker>,
    /// The last poll returned `Pending`: the socket holds this side's waker.
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

    /// Polls `read` with this side's waker, unless the socket still holds that waker from a
    /// `Pending` and has not used it since (then it is `Pending` without a poll).
    pub(super) fn poll<T>(&mut self, cx: &mut Context<'_>, read: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
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
        let r = read(&mut Context::from_waker(&self.waker));
        self.parked = r.is_pending();
        r
    }

    /// The socket may have been read another way (a pre-check reads the server itself): it is
    /// polled at the next turn whatever it said before.
    pub(super) fn unpark(&mut self) {
        self.parked = false;
    }
}
