//! The creep budget of a protected sequence: the steps statements moved it beyond the rows
//! they inserted ("unexplained" steps: ids fetched ahead, or a sequence pushed on purpose),
//! summed over a trailing window across the sessions of this blastwall, per database and
//! sequence OID. One statement may move a sequence up to 1,000 steps beyond its rows
//! (`identity`); without a sum over time, statement after statement each under that moved it
//! as far as one liked (sixty-ninth pass F2: 200 statements of 900 `nextval` calls, 180,000
//! steps in 3.3 s). A statement whose steps would take the window past the table's
//! `sequence_creep` is refused and the sequence put back, as for a move past the allowance.
//!
//! Spends are kept in slices of 1/60 of the window (at least a second); a slice counts until
//! all of it has left the window, so the budget is never exceeded and steps come back at
//! most 1/60 of the window late. Steps of a statement refused for its move are not spent
//! (they are put back); steps of a statement refused for another reason are (its `nextval`
//! calls are not undone by its rollback). A refused move that could not be put back
//! (another session took values after it) is charged whatever the window holds; while a
//! window has no room, a statement that takes values ahead is refused before it runs
//! (`guard::steps`).
//!
//! Owns: the windows and the arithmetic of one statement's unexplained steps. Does not own:
//! where the sequences stood (`identity`, `slices`), putting them back (`putback`), or the
//! budget's keys (`policy`).

use dashmap::DashMap;
use std::collections::VecDeque;
use std::time::Instant;

/// How many slices a window is kept in.
const SLICES: u64 = 60;

/// The windows of every protected sequence seen moved, per (database, sequence OID).
#[derive(Debug)]
pub struct Creep {
    windows: DashMap<(String, u32), VecDeque<(u64, u64)>>,
    epoch: Instant,
}

impl Default for Creep {
    fn default() -> Self {
        Creep { windows: DashMap::new(), epoch: Instant::now() }
    }
}

/// A spend that did not fit: what the window already held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Over {
    pub spent: u64,
}

impl Creep {
    /// Adds `steps` to the window of `(database, oid)` when the window's spend plus them stays
    /// within `budget` steps per `window_secs`; otherwise spends nothing and says what was
    /// spent. Checked and spent under the entry's lock: two sessions cannot both take the
    /// last steps.
    pub fn take(&self, database: &str, oid: u32, steps: u64, budget: u64, window_secs: u64) -> Result<(), Over> {
        self.take_at(database, oid, steps, budget, window_secs, self.epoch.elapsed().as_secs())
    }

    fn take_at(
        &self,
        database: &str,
        oid: u32,
        steps: u64,
        budget: u64,
        window_secs: u64,
        now: u64,
    ) -> Result<(), Over> {
        if steps == 0 {
            return Ok(());
        }
        self.with_window(database, oid, window_secs, now, |w, slice| {
            let spent = spent(w);
            if spent.saturating_add(steps) > budget {
                return Err(Over { spent });
            }
            add(w, slice, steps);
            Ok(())
        })
    }

    /// The steps still free in the window of `(database, oid)`: none once it is spent, or
    /// overdrawn by a move that could not be put back ([`Creep::charge`]).
    pub fn room(&self, database: &str, oid: u32, budget: u64, window_secs: u64) -> u64 {
        self.room_at(database, oid, budget, window_secs, self.epoch.elapsed().as_secs())
    }

    fn room_at(&self, database: &str, oid: u32, budget: u64, window_secs: u64, now: u64) -> u64 {
        self.with_window(database, oid, window_secs, now, |w, _| budget.saturating_sub(spent(w)))
    }

    /// Adds `steps` to the window whatever it holds: a move refused but left where it stands
    /// (another session took values after it, `putback`) has happened, and counts against
    /// the budget like any other. Past the budget, the window refuses every statement that
    /// takes values ahead before it runs (`guard::steps::no_room`), until the charge leaves
    /// it: sessions that together went past it cannot do so again and again (seventy-eighth
    /// pass M2: 12 concurrent statements of 60 calls left +660 against a budget of 300).
    pub fn charge(&self, database: &str, oid: u32, steps: u64, window_secs: u64) {
        self.charge_at(database, oid, steps, window_secs, self.epoch.elapsed().as_secs());
    }

    fn charge_at(&self, database: &str, oid: u32, steps: u64, window_secs: u64, now: u64) {
        if steps > 0 {
            self.with_window(database, oid, window_secs, now, |w, slice| add(w, slice, steps));
        }
    }

    /// Runs `f` on the window of `(database, oid)` with the slices that left it dropped, and
    /// the slice `now` falls in, under the entry's lock.
    fn with_window<T>(
        &self,
        database: &str,
        oid: u32,
        window_secs: u64,
        now: u64,
        f: impl FnOnce(&mut VecDeque<(u64, u64)>, u64) -> T,
    ) -> T {
        let slice_secs = (window_secs / SLICES).max(1);
        let slice = now / slice_secs;
        let mut w = self.windows.entry((database.to_string(), oid)).or_default();
        // The window is the seconds after `now - window_secs` up to `now`: a slice has left it
        // when its last second, `(s + 1) * slice_secs - 1`, is at or before `now - window_secs`.
        while w.front().is_some_and(|(s, _)| (s + 1) * slice_secs + window_secs <= now + 1) {
            w.pop_front();
        }
        f(&mut w, slice)
    }
}

/// What a window's slices hold.
fn spent(w: &VecDeque<(u64, u64)>) -> u64 {
    w.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n))
}

/// Adds `steps` to the window's slice `slice` (the last, or a new one).
fn add(w: &mut VecDeque<(u64, u64)>, slice: u64, steps: u64) {
    match w.back_mut() {
        Some((s, n)) if *s == slice => *n = n.saturating_add(steps),
        _ => w.push_back((slice, steps)),
    }
}

/// The steps a statement adds to the run's unexplained ones: with the run's move before this
/// statement (`before`: 0 for a statement that is its own run, a slice's earlier slices
/// otherwise) and after it, both in steps from where the run began, and the rows the run
/// inserted that take values from the sequence.
pub fn unexplained(before: i128, after: i128, inserted: u64) -> u64 {
    let over = |f: i128| (f - i128::from(inserted)).max(0);
    u64::try_from((over(after) - over(before)).max(0)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_the_budget_across_statements_and_lets_go_of_old_slices() {
        let c = Creep::default();
        // 1,000 per hour (slices of 60 s): statement after statement under it, until it is spent.
        for i in 0..10 {
            assert_eq!(c.take_at("db", 7, 100, 1000, 3600, i), Ok(()), "{i}");
        }
        assert_eq!(c.take_at("db", 7, 1, 1000, 3600, 10), Err(Over { spent: 1000 }));
        // Another sequence, another database: windows of their own.
        assert_eq!(c.take_at("db", 8, 1000, 1000, 3600, 10), Ok(()));
        assert_eq!(c.take_at("other", 7, 1000, 1000, 3600, 10), Ok(()));
        // Still within the hour: spent.
        assert!(c.take_at("db", 7, 1, 1000, 3600, 3599).is_err());
        // The slice of seconds 0–59 has left the window once it covers seconds 60–3659.
        assert!(c.take_at("db", 7, 1, 1000, 3600, 3658).is_err());
        assert_eq!(c.take_at("db", 7, 1000, 1000, 3600, 3659), Ok(()));
        assert!(c.take_at("db", 7, 1, 1000, 3600, 3660).is_err());
    }

    #[test]
    fn a_refused_spend_takes_nothing_and_zero_always_fits() {
        let c = Creep::default();
        assert_eq!(c.take_at("db", 1, 900, 1000, 60, 0), Ok(()));
        assert_eq!(c.take_at("db", 1, 200, 1000, 60, 1), Err(Over { spent: 900 }));
        assert_eq!(c.take_at("db", 1, 100, 1000, 60, 2), Ok(()));
        assert_eq!(c.take_at("db", 1, 0, 1000, 60, 3), Ok(()));
        assert_eq!(c.take_at("db", 2, 1, 0, 60, 3), Err(Over { spent: 0 }));
    }

    #[test]
    fn a_charge_overdraws_the_window_until_it_leaves_it() {
        let c = Creep::default();
        assert_eq!(c.room_at("db", 1, 300, 600, 0), 300);
        assert_eq!(c.take_at("db", 1, 120, 300, 600, 0), Ok(()));
        assert_eq!(c.room_at("db", 1, 300, 600, 1), 180);
        // A move left where it stands is charged past the budget: no room, nothing fits.
        c.charge_at("db", 1, 660, 600, 2);
        assert_eq!(c.room_at("db", 1, 300, 600, 3), 0);
        assert_eq!(c.take_at("db", 1, 1, 300, 600, 3), Err(Over { spent: 780 }));
        // Another sequence keeps its room; the charge leaves with its slice.
        assert_eq!(c.room_at("db", 2, 300, 600, 3), 300);
        assert_eq!(c.room_at("db", 1, 300, 600, 608), 0);
        assert_eq!(c.room_at("db", 1, 300, 600, 609), 300);
        c.charge_at("db", 1, 0, 600, 611);
        assert_eq!(c.room_at("db", 1, 300, 600, 611), 300);
    }

    #[test]
    fn a_run_adds_only_what_goes_beyond_its_rows_and_its_earlier_slices() {
        // A statement alone: 900 calls, no row inserted.
        assert_eq!(unexplained(0, 900, 0), 900);
        // Its rows explain its move.
        assert_eq!(unexplained(0, 900, 900), 0);
        assert_eq!(unexplained(0, 900, 1000), 0);
        // A slice after 500 unexplained steps of its run adds only its own.
        assert_eq!(unexplained(500, 1400, 0), 900);
        assert_eq!(unexplained(500, 1400, 1000), 400);
        // Backwards (put back, or another session's setval) adds nothing.
        assert_eq!(unexplained(0, -5, 0), 0);
    }
}
