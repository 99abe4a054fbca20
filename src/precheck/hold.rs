//! The bytes of replies that all sessions together hold for their clients while a write is
//! counted and until those bytes have been written to the client (red-team F9: 60 sessions
//! whose clients did not read their counted writes' RETURNING rows made the proxy hold
//! 1.35 GB). Each session may hold `MAX_HOLD` (16 MiB) while it counts; all of a server's
//! sessions together [`TOTAL_HOLD`] (`Config::max_held_bytes`). A session that finds the total
//! taken waits for others' clients to read (meanwhile it does not read the server:
//! backpressure), up to [`WAIT`]; then its statement is treated as one whose results are too
//! large to hold. After the verdict the held replies go to the client as the session writes
//! them, the server not read meanwhile, and their share of the total is given back once
//! written.
//!
//! Owns: that budget and each check's share of it ([`Holding`]). Does not own: what is held
//! (`backend`, `inbatch`) or when it is written (`session`).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The most bytes of held replies across a server's sessions, by default.
pub const TOTAL_HOLD: usize = 64 << 20;

/// How long a session waits for room in the budget.
pub const WAIT: Duration = Duration::from_secs(10);

/// The budget's unit: a share is taken in whole KiB.
const UNIT: usize = 1024;

/// A server's budget of held bytes.
#[derive(Debug, Clone)]
pub struct Budget {
    total: usize,
    room: Arc<Semaphore>,
}

impl Budget {
    pub fn new(total: usize) -> Self {
        let units = (total / UNIT).min(Semaphore::MAX_PERMITS);
        Budget { total: units * UNIT, room: Arc::new(Semaphore::new(units)) }
    }

    /// The most bytes it holds.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The bytes taken now, by every session.
    pub fn held_now(&self) -> usize {
        self.total - self.room.available_permits() * UNIT
    }

    /// An empty share of it.
    pub fn share(&self) -> Holding {
        Holding { budget: Some(self.clone()), bytes: 0, permit: None }
    }
}

/// One session's share of its server's budget, given back when dropped. Without a budget
/// (the default), every take succeeds.
#[derive(Debug, Default)]
pub struct Holding {
    budget: Option<Budget>,
    bytes: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Holding {
    /// Takes `n` more bytes, waiting up to [`WAIT`] for room; `false` when there was none.
    pub async fn take(&mut self, n: usize) -> bool {
        let Some(budget) = &self.budget else { return true };
        let want = (self.bytes + n).div_ceil(UNIT);
        let have = self.permit.as_ref().map_or(0, |p| p.num_permits());
        if want > have {
            let Ok(more) = u32::try_from(want - have) else { return false };
            match tokio::time::timeout(WAIT, budget.room.clone().acquire_many_owned(more)).await {
                Ok(Ok(p)) => self.add(p),
                _ => {
                    tracing::warn!(
                        total = budget.total,
                        "no room to hold a counted write's replies: other sessions' clients are not reading theirs"
                    );
                    return false;
                }
            }
        }
        self.bytes += n;
        true
    }

    /// The most bytes all sessions may hold (`None`: no budget).
    pub fn total(&self) -> Option<usize> {
        self.budget.as_ref().map(Budget::total)
    }

    /// Gives back what was taken (the budget stays).
    pub fn clear(&mut self) {
        self.bytes = 0;
        self.permit = None;
    }

    /// Adds another share to this one (a session's replies not yet written).
    pub fn merge(&mut self, other: Holding) {
        self.bytes += other.bytes;
        if let Some(p) = other.permit {
            self.add(p);
        }
    }

    fn add(&mut self, p: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(q) => q.merge(p),
            None => self.permit = Some(p),
        }
    }
}
