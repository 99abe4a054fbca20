//! A cache key of (database, relation name) looked up without building one: a judgement asks
//! the caches about each name it writes several times, and two `String`s made for every
//! question were a large share of a write's cost (issue 14: about 750 instructions a look-up).
//!
//! Owns: [`NameKey`] and borrowing it as [`Pair`] (and a three-part key as [`Triple`]). Does not own: the caches (`code`,
//! `cascades`, `copies`).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// The key the caches store.
pub(super) type NameKey = (String, String);

/// A (database, name) pair, owned or borrowed, hashed and compared as a `NameKey` is.
pub(super) trait Pair {
    fn pair(&self) -> (&str, &str);
}

impl Pair for NameKey {
    fn pair(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl Pair for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn Pair + 'a> for NameKey {
    fn borrow(&self) -> &(dyn Pair + 'a) {
        self
    }
}

/// As a tuple of two strings hashes: each part in turn.
impl Hash for dyn Pair + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (a, b) = self.pair();
        a.hash(h);
        b.hash(h);
    }
}

impl PartialEq for dyn Pair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn Pair + '_ {}

/// A (database, schema, table) key, owned or borrowed, as [`Pair`] is for two parts.
pub(super) trait Triple {
    fn triple(&self) -> (&str, &str, &str);
}

impl Triple for (String, String, String) {
    fn triple(&self) -> (&str, &str, &str) {
        (&self.0, &self.1, &self.2)
    }
}

impl Triple for (&str, &str, &str) {
    fn triple(&self) -> (&str, &str, &str) {
        (self.0, self.1, self.2)
    }
}

impl<'a> Borrow<dyn Triple + 'a> for (String, String, String) {
    fn borrow(&self) -> &(dyn Triple + 'a) {
        self
    }
}

impl Hash for dyn Triple + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (a, b, c) = self.triple();
        a.hash(h);
        b.hash(h);
        c.hash(h);
    }
}

impl PartialEq for dyn Triple + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.triple() == other.triple()
    }
}

impl Eq for dyn Triple + '_ {}

/// The borrowed key of `database` and `name`, to look up a `NameKey` map with.
pub(super) fn of<'a>(database: &'a str, name: &'a str) -> (&'a str, &'a str) {
    (database, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_pair_finds_the_owned_key_and_only_it() {
        let m: dashmap::DashMap<NameKey, u8> = Default::default();
        m.insert(("db".into(), "users".into()), 1);
        m.insert(("dbu".into(), "sers".into()), 2);
        assert_eq!(m.get(&of("db", "users") as &dyn Pair).map(|e| *e), Some(1));
        assert_eq!(m.get(&of("dbu", "sers") as &dyn Pair).map(|e| *e), Some(2));
        assert!(m.get(&of("db", "user") as &dyn Pair).is_none());
        let t: dashmap::DashMap<(String, String, String), u8> = Default::default();
        t.insert(("db".into(), "public".into(), "users".into()), 3);
        assert_eq!(t.get(&("db", "public", "users") as &dyn Triple).map(|e| *e), Some(3));
        assert!(t.get(&("db", "publicu", "sers") as &dyn Triple).is_none());
    }
}
