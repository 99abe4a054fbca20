//! The catalog's hidden callers as a session reads them: the database's answer (`hidden`,
//! split by temporary schema in `temporary`), learned, assumed when it cannot be asked, and
//! read through each session's own copy ([`HiddenCache`]) while nothing changed.
//!
//! Owns: those methods of [`Catalog`] and the session's copy. Does not own: the query
//! (`hidden`) or when a session asks (`guard`).

use super::{hidden, temporary, Catalog, HiddenCallers, OwnTemp, Whose, TTL};
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A session's copy of its database's hidden callers ([`Catalog::with_hidden_callers_cached`]):
/// the set it counts and until when it is fresh, and the catalog's `hidden_epoch` when it was
/// taken. Kept in a cell, so that the judgements that read the session's facts without
/// changing them (a Bind's, a Parse's) read through it too.
#[derive(Debug, Default, Clone)]
pub struct HiddenCache(RefCell<Option<Kept>>);

impl HiddenCache {
    /// Replaces the copy, unless a reading of it is under way (an `f` that reads the cache
    /// again): then it stays as it is and is checked again at the next reading.
    fn keep(&self, kept: Option<Kept>) {
        if let Ok(mut k) = self.0.try_borrow_mut() {
            *k = kept;
        }
    }
}

#[derive(Debug, Clone)]
struct Kept {
    set: Arc<HiddenCallers>,
    until: Instant,
    epoch: u64,
    /// The session's temporary schema the copy was merged for.
    temp: OwnTemp,
    /// The last answer of [`Catalog::binds_code_cached`] read from this copy: a driver parses
    /// the same unnamed statement again for every execution.
    binds: RefCell<Option<BindsAnswer>>,
}

/// Whether a Bind of `sql` with these declared parameter types may run code, by `set` alone.
#[derive(Debug, Clone)]
struct BindsAnswer {
    sql: Box<[u8]>,
    types: Box<[u32]>,
    answer: bool,
}

impl Catalog {
    /// `f` of the database's hidden callers of user functions that the session `whose` counts
    /// (`temporary`), when known and fresh (and the session knows its temporary schema).
    pub fn with_hidden_callers<R>(
        &self,
        database: &str,
        whose: Whose<'_>,
        f: impl FnOnce(&HiddenCallers) -> R,
    ) -> Option<R> {
        let e = self.hidden.get(database)?;
        let fresh = !e.2 && hidden::coarse_ms().saturating_sub(e.1) < TTL.as_millis() as u64;
        (fresh && !whose.temp.must_ask()).then(|| e.0.with(whose, f))
    }

    /// [`Catalog::with_hidden_callers`] through a session's copy of the set it counts: while
    /// nothing changed the answers since the copy was taken, the session's temporary schema is
    /// the one it was taken for, and the copy is younger than the answer's time to live, `f`
    /// reads the copy (no map lookup, no shared lock, one clock read). A session that must ask
    /// for its temporary schema, or assumes every one, takes no copy.
    pub fn with_hidden_callers_cached<R>(
        &self,
        database: &str,
        whose: Whose<'_>,
        cache: &HiddenCache,
        f: impl FnOnce(&HiddenCallers) -> R,
    ) -> Option<R> {
        if !matches!(whose.temp, OwnTemp::None | OwnTemp::Named(_)) {
            cache.keep(None);
            return self.with_hidden_callers(database, whose, f);
        }
        if let Some(k) = self.fresh_copy(whose, cache) {
            return Some(f(&k.set));
        }
        cache.keep(None);
        let epoch = self.hidden_epoch.load(Ordering::Acquire);
        let e = self.hidden.get(database)?;
        let age = hidden::coarse_ms().saturating_sub(e.1);
        let ttl = TTL.as_millis() as u64;
        if e.2 || age >= ttl {
            return None;
        }
        let set = e.0.set_for(whose);
        // A little short of the answer's own end (`coarse_ms` counts whole milliseconds).
        let until = Instant::now() + Duration::from_millis((ttl - age).saturating_sub(2));
        let binds = RefCell::new(None);
        cache.keep(Some(Kept { set: set.clone(), until, epoch, temp: whose.temp.clone(), binds }));
        Some(f(&set))
    }

    /// The session's copy, while nothing changed the answers since it was taken, the session's
    /// temporary schema is the one it was taken for, and it is younger than the answer's time
    /// to live (one clock read).
    fn fresh_copy<'c>(&self, whose: Whose<'_>, cache: &'c HiddenCache) -> Option<std::cell::Ref<'c, Kept>> {
        if !matches!(whose.temp, OwnTemp::None | OwnTemp::Named(_)) {
            return None;
        }
        let epoch = self.hidden_epoch.load(Ordering::Acquire);
        let kept = cache.0.try_borrow().ok()?;
        std::cell::Ref::filter_map(kept, |k| {
            k.as_ref().filter(|k| k.epoch == epoch && k.temp == *whose.temp && Instant::now() < k.until)
        })
        .ok()
    }

    /// [`Catalog::with_hidden_callers_cached`] of `f`, a function of the set, the text `sql`
    /// and the declared parameter `types` alone (`Guard::binds_code`'s reading of the set):
    /// while the session's copy is the same, its answer for the same text and types is the
    /// one `f` gave them last, without reading the text again.
    pub fn binds_code_cached(
        &self,
        database: &str,
        whose: Whose<'_>,
        cache: &HiddenCache,
        sql: &[u8],
        types: &[u32],
        f: impl FnOnce(&HiddenCallers) -> bool,
    ) -> Option<bool> {
        let Some(k) = self.fresh_copy(whose, cache) else {
            return self.with_hidden_callers_cached(database, whose, cache, f);
        };
        // (A reading under way of the same answer: read again, not kept.)
        let Ok(mut last) = k.binds.try_borrow_mut() else { return Some(f(&k.set)) };
        if let Some(a) = last.as_ref().filter(|a| *a.sql == *sql && *a.types == *types) {
            return Some(a.answer);
        }
        let answer = f(&k.set);
        *last = Some(BindsAnswer { sql: sql.into(), types: types.into(), answer });
        Some(answer)
    }

    /// `f` of the database's hidden callers as last learned or assumed, fresh or not (every
    /// temporary schema's counted while the session's own is not known): for a judgement
    /// that cannot ask (the middle of a batch) and must not make a stale answer fresh for
    /// other sessions. `None`: never learned.
    pub fn with_last_hidden_callers<R>(
        &self,
        database: &str,
        whose: Whose<'_>,
        f: impl FnOnce(&HiddenCallers) -> R,
    ) -> Option<R> {
        Some(self.hidden.get(database)?.0.with(whose, f))
    }

    /// Learns the answer of [`hidden_callers_query`], asked on a session whose temporary
    /// schema is `own` (`None`: it could not be read — then every text is taken as mentioning
    /// one, for a second, after which it is asked again).
    pub fn learn_hidden_callers(&self, database: &str, rows: Option<&[Vec<Option<String>>]>, own: &mut OwnTemp) {
        let (answer, at) = match rows {
            Some(rows) => {
                let (answer, mine) = temporary::Answer::read(rows);
                *own = mine;
                self.listen_to(database);
                (answer, hidden::coarse_ms())
            }
            None => {
                *own = OwnTemp::Assumed(hidden::coarse_ms() + 1000);
                (temporary::Answer::everything(), Self::for_a_second())
            }
        };
        // A changed answer (DDL that did not pass through blastwall, seen at the next asking)
        // is as good as a forget: prepared statements judged before it are judged again.
        if self.hidden.get(database).is_some_and(|e| *e.0 != answer) {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.hidden.insert(database.to_string(), (std::sync::Arc::new(answer), at, false));
        self.hidden_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Where the set cannot be asked now (in the middle of a batch, in a failed transaction):
    /// the last answer, stale or not, is used for a second (with DDL of this session
    /// through blastwall in between, what that DDL created is not in it: `guard` asks at the
    /// next message that can); with none, every text is taken as mentioning one. A session
    /// that does not know its temporary schema counts every session's for that second.
    pub fn assume_hidden_callers(&self, database: &str, own: &mut OwnTemp) {
        if own.must_ask() {
            *own = OwnTemp::Assumed(hidden::coarse_ms() + 1000);
        }
        let last = self.hidden.get(database).map(|e| e.0.clone());
        let set = last.unwrap_or_else(|| std::sync::Arc::new(temporary::Answer::everything()));
        self.hidden.insert(database.to_string(), (set, Self::for_a_second(), false));
        self.hidden_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// A learning time that leaves an answer fresh for one more second.
    fn for_a_second() -> u64 {
        hidden::coarse_ms().saturating_sub((TTL - Duration::from_secs(1)).as_millis() as u64)
    }
}
