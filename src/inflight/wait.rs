//! DDL waiting for the writes other sessions had judged before it (`super`): the wait, the
//! cancel after [`DDL_WAIT`], the end of the sessions that still have not answered
//! [`CANCEL_GRACE`] later — and two sessions whose DDL waits for each other's writes.
//!
//! A cycle: session A's DDL waits for a write of B, and B's DDL for a write of A (each write
//! judged before the other's DDL, each held unsent behind its own session's wait, or the
//! extended batch that holds it not ended by its Sync). Neither write can be answered, and
//! without a rule both sessions would cancel and end each other (and, ended while waiting,
//! still send what they held). The session that began waiting first wins: a waiting session
//! never cancels or ends an older waiting session that waits, directly or through others, for
//! it; it waits until that one's writes are answered or it is itself ended by that one's wait
//! (then it sends nothing: [`Waited::Gone`]). So a cycle ends with one session ended, the
//! younger, and the older's DDL runs.
//!
//! Owns: the waiting, cancelling and ending, and that rule. Does not own: what waits for
//! what (`super`), the cancel and the end themselves (`crate::session`).

use super::{Db, State};
use crate::wire::startup::CancelKey;
use std::time::Duration;

/// How long DDL waits for the writes judged before it before they are cancelled.
pub const DDL_WAIT: Duration = Duration::from_secs(5);

/// How long a cancelled write's session has to answer before it is ended.
pub const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// What waiting for other sessions' writes took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    Drained,
    Cancelled,
    Ended,
    /// The waiting session was itself ended by an older session's wait (a cycle): it must
    /// send nothing more.
    Gone,
}

/// A session waiting for others' writes, as the registry keeps it.
pub(super) struct Waiting {
    session: u64,
    /// When it began, as an order (smaller: older).
    order: u64,
    on: Vec<u64>,
}

impl State {
    /// Whether `other`, waiting and older than `me`'s wait, waits (directly or through other
    /// waiting sessions whose writes are still in flight) for `me`.
    fn older_partner(&self, me: u64, other: u64) -> bool {
        let order = |id: u64| self.waiting.iter().find(|w| w.session == id).map(|w| w.order);
        let (Some(mine), Some(theirs)) = (order(me), order(other)) else { return false };
        if theirs > mine {
            return false;
        }
        let mut seen = vec![other];
        let mut next = vec![other];
        while let Some(x) = next.pop() {
            let Some(w) = self.waiting.iter().find(|w| w.session == x) else { continue };
            for y in &w.on {
                if *y == me && self.writes.iter().any(|wr| wr.session == me) {
                    return true;
                }
                if !seen.contains(y) && self.writes.iter().any(|wr| wr.session == *y) {
                    seen.push(*y);
                    next.push(*y);
                }
            }
        }
        false
    }
}

/// Takes a session out of the waiting ones when its wait ends (however it ends).
struct Begun<'a>(&'a Db, u64);

impl Drop for Begun<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting.retain(|w| w.session != self.1);
        self.0.changed.notify_waiters();
    }
}

impl Db {
    /// Which of `sessions` still have writes in flight, with their backend keys.
    pub(super) fn still(&self, sessions: &[u64]) -> Vec<(u64, Option<CancelKey>)> {
        let s = self.lock();
        let mut out: Vec<(u64, Option<CancelKey>)> = Vec::new();
        for w in s.writes.iter().filter(|w| sessions.contains(&w.session)) {
            if !out.iter().any(|(id, _)| *id == w.session) {
                out.push((w.session, w.key.clone()));
            }
        }
        out
    }

    /// [`Db::still`] but for the older waiting sessions that wait for `me` (they are not
    /// cancelled nor ended by `me`'s wait).
    fn victims(&self, me: u64, sessions: &[u64]) -> Vec<(u64, Option<CancelKey>)> {
        let still = self.still(sessions);
        let s = self.lock();
        still.into_iter().filter(|(id, _)| !s.older_partner(me, *id)).collect()
    }

    /// Resolves once none of `sessions` has a write in flight (true), or once `me` was ended
    /// by another session's wait (false).
    async fn drained(&self, me: u64, sessions: &[u64]) -> bool {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().ended.contains(&me) {
                return false;
            }
            if self.still(sessions).is_empty() {
                return true;
            }
            notified.await;
        }
    }

    /// Waits until none of `sessions` has a write in flight: [`DDL_WAIT`], then their
    /// statements are cancelled (`cancel`), then after [`CANCEL_GRACE`] the sessions are
    /// ended (`end`) and waited for — except older waiting sessions that wait for `me` (see
    /// the module's comment). Returns what it had to do, for the log.
    pub async fn wait_for<C, F, E>(&self, me: u64, sessions: &[u64], cancel: C, end: E) -> Waited
    where
        C: Fn(CancelKey) -> F,
        F: std::future::Future<Output = ()>,
        E: Fn(u64),
    {
        self.wait_within(me, sessions, (DDL_WAIT, CANCEL_GRACE), cancel, end).await
    }

    /// [`Db::wait_for`] with its two bounds given.
    pub(crate) async fn wait_within<C, F, E>(
        &self,
        me: u64,
        sessions: &[u64],
        bounds: (Duration, Duration),
        cancel: C,
        end: E,
    ) -> Waited
    where
        C: Fn(CancelKey) -> F,
        F: std::future::Future<Output = ()>,
        E: Fn(u64),
    {
        let (wait, grace) = bounds;
        {
            let mut s = self.lock();
            s.next_wait += 1;
            let order = s.next_wait;
            s.waiting.retain(|w| w.session != me);
            s.waiting.push(Waiting { session: me, order, on: sessions.to_vec() });
        }
        let _begun = Begun(self, me);
        let gone = |drained: bool| if drained { None } else { Some(Waited::Gone) };
        if let Ok(d) = tokio::time::timeout(wait, self.drained(me, sessions)).await {
            return gone(d).unwrap_or(Waited::Drained);
        }
        let mut outcome = Waited::Drained;
        for (_, key) in self.victims(me, sessions) {
            outcome = Waited::Cancelled;
            if let Some(k) = key {
                cancel(k).await;
            }
        }
        if let Ok(d) = tokio::time::timeout(grace, self.drained(me, sessions)).await {
            return gone(d).unwrap_or(outcome);
        }
        let victims: Vec<u64> = self.victims(me, sessions).into_iter().map(|(id, _)| id).collect();
        for id in &victims {
            outcome = Waited::Ended;
            self.lock().ended.push(*id);
            end(*id);
        }
        self.changed.notify_waiters();
        // An ended session leaves the registry as it ends; one that cannot (stuck) is taken
        // out: its server session ends with its connection.
        match tokio::time::timeout(grace, self.drained(me, sessions)).await {
            Ok(d) => return gone(d).unwrap_or(outcome),
            Err(_) => {
                let mut s = self.lock();
                s.writes.retain(|w| !victims.contains(&w.session));
            }
        }
        // What is left is older waiting sessions' writes: they end this one, or are answered.
        gone(self.drained(me, sessions).await).unwrap_or(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{mine, statements};
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_write_that_does_not_end_is_cancelled_then_its_session_ended() {
        let db = Arc::new(Db::default());
        let mut app = mine(&db, 1, 0);
        app.key = Some(CancelKey { pid: 7, secret: bytes::Bytes::from_static(&[1, 2, 3, 4]) });
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        let cancelled = std::sync::Mutex::new(Vec::new());
        let ended = std::sync::Mutex::new(Vec::new());
        let waited = db
            .wait_within(
                2,
                &[1],
                (Duration::from_millis(20), Duration::from_millis(20)),
                |k| {
                    cancelled.lock().unwrap().push(k.pid);
                    async {}
                },
                |id| ended.lock().unwrap().push(id),
            )
            .await;
        assert_eq!(waited, Waited::Ended);
        assert_eq!(*cancelled.lock().unwrap(), vec![7]);
        assert_eq!(*ended.lock().unwrap(), vec![1]);
        assert!(db.still(&[1]).is_empty(), "a stuck session is taken out");
    }

    /// Two sessions whose DDL waits for the other's write: the one that began waiting first
    /// ends the other, and is not ended by it (even when the other's wait is over first).
    #[tokio::test]
    async fn a_cycle_ends_the_younger_waiter_only() {
        let db = Arc::new(Db::default());
        let (mut a, mut b) = (mine(&db, 1, 0), mine(&db, 2, 0));
        a.judging(&statements("DELETE FROM t2 WHERE id = 1"), false);
        b.judging(&statements("DELETE FROM t1 WHERE id = 1"), false);
        a.judging(&statements("ALTER TABLE t1 RENAME TO x1"), false);
        b.judging(&statements("ALTER TABLE t2 RENAME TO x2"), false);
        assert_eq!((a.wait_for.clone(), b.wait_for.clone()), (vec![2], vec![1]));
        let ended = std::sync::Mutex::new(Vec::new());
        // The younger's bounds are the shorter: it would end the older first.
        let wait = |me: u64, on: u64, ms: u64| {
            let bounds = (Duration::from_millis(ms), Duration::from_millis(ms));
            let (db, ended) = (db.clone(), &ended);
            async move {
                let waited = db.wait_within(me, &[on], bounds, |_| async {}, |id| ended.lock().unwrap().push(id)).await;
                if waited == Waited::Gone {
                    // Its session ends: its writes leave the registry.
                    db.answered(me, 0, true);
                }
                waited
            }
        };
        let younger = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            wait(2, 1, 10).await
        };
        let (older, younger) = tokio::join!(wait(1, 2, 60), younger);
        assert_eq!((older, younger), (Waited::Ended, Waited::Gone));
        assert_eq!(*ended.lock().unwrap(), vec![2], "the older waiter was ended too");
        assert_eq!(db.still(&[1]).len(), 1, "the older waiter's writes were taken out");
    }
}
