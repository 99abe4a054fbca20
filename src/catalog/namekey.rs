//! A cache key of (database, relation name) — or (database, schema, table) — looked up without
//! building one: a judgement asks the caches about each name it writes several times, and the
//! `String`s made for every question were a large share of a write's cost (issue 14: about
//! 750 instructions a look-up).
//!
//! Owns: [`NameKey`] and borrowing an owned key of `N` strings as [`Parts`]. Does not own: the
//! caches (`code`, `cascades`, `copies` and the catalog's own maps).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// The key the caches of a name store.
pub(super) type NameKey = (String, String);

/// A key of `N` strings, owned or borrowed, hashed and compared as the tuple of `String`s is.
pub(super) trait Parts<const N: usize> {
    fn parts(&self) -> [&str; N];
}

impl Parts<2> for NameKey {
    fn parts(&self) -> [&str; 2] {
        [&self.0, &self.1]
    }
}

impl Parts<2> for (&str, &str) {
    fn parts(&self) -> [&str; 2] {
        [self.0, self.1]
    }
}

impl Parts<3> for (String, String, String) {
    fn parts(&self) -> [&str; 3] {
        [&self.0, &self.1, &self.2]
    }
}

impl Parts<3> for (&str, &str, &str) {
    fn parts(&self) -> [&str; 3] {
        [self.0, self.1, self.2]
    }
}

impl<'a> Borrow<dyn Parts<2> + 'a> for NameKey {
    fn borrow(&self) -> &(dyn Parts<2> + 'a) {
        self
    }
}

impl<'a> Borrow<dyn Parts<3> + 'a> for (String, String, String) {
    fn borrow(&self) -> &(dyn Parts<3> + 'a) {
        self
    }
}

/// As a tuple of strings hashes: each part in turn.
impl<const N: usize> Hash for dyn Parts<N> + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().iter().for_each(|p| p.hash(h));
    }
}

impl<const N: usize> PartialEq for dyn Parts<N> + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl<const N: usize> Eq for dyn Parts<N> + '_ {}

/// The borrowed key of `database` and `name`, to look up a `NameKey` map with.
pub(super) fn of<'a>(database: &'a str, name: &'a str) -> (&'a str, &'a str) {
    (database, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_key_finds_the_owned_key_and_only_it() {
        let m: dashmap::DashMap<NameKey, u8> = Default::default();
        m.insert(("db".into(), "users".into()), 1);
        m.insert(("dbu".into(), "sers".into()), 2);
        assert_eq!(m.get(&of("db", "users") as &dyn Parts<2>).map(|e| *e), Some(1));
        assert_eq!(m.get(&of("dbu", "sers") as &dyn Parts<2>).map(|e| *e), Some(2));
        assert!(m.get(&of("db", "user") as &dyn Parts<2>).is_none());
        let t: dashmap::DashMap<(String, String, String), u8> = Default::default();
        t.insert(("db".into(), "public".into(), "users".into()), 3);
        assert_eq!(t.get(&("db", "public", "users") as &dyn Parts<3>).map(|e| *e), Some(3));
        assert!(t.get(&("db", "publicu", "sers") as &dyn Parts<3>).is_none());
    }
}
