//! Finding a hidden caller's name in a statement's text, in any case, as a whole identifier
//! (or anywhere, for an operator), without a lower-cased copy of a short text.
//!
//! Owns: the search. Does not own: which names are searched (`hidden`).

/// PostgreSQL's `NAMEDATALEN`: identifiers are at most one byte less.
const NAMEDATALEN: usize = 64;

/// A text searched for names: a short one as it is (compared in place, with no copy), a long
/// one lower-cased once for all the names searched in it (each found in linear time).
pub(super) enum Haystack<'a> {
    Short(&'a str),
    Lowered(String),
}

/// Texts up to this long are searched in place.
const SEARCHED_IN_PLACE: usize = 1024;

impl<'a> Haystack<'a> {
    pub(super) fn of(text: &'a str) -> Haystack<'a> {
        match text.len() <= SEARCHED_IN_PLACE {
            true => Haystack::Short(text),
            false => Haystack::Lowered(text.to_ascii_lowercase()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Haystack::Short(t) => t.as_bytes(),
            Haystack::Lowered(t) => t.as_bytes(),
        }
    }
}

/// Whether `name` (lower case) appears in the text in any case: an identifier as a whole word
/// (not inside a longer identifier: `d` is not in `id`), an operator anywhere.
pub(super) fn mentions(text: &Haystack<'_>, name: &str) -> bool {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    if name.is_empty() || !name.bytes().all(ident) {
        return name.is_empty() || occurs(text, name, |_| true);
    }
    // PostgreSQL cuts an identifier to 63 bytes (fewer when that would split a character): a
    // longer spelling whose head is the name names it too.
    let truncated = name.len() >= NAMEDATALEN - 1 - 3;
    let bytes = text.bytes();
    occurs(text, name, |at| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + name.len()).copied();
        !before.is_some_and(ident) && (truncated || !after.is_some_and(ident))
    })
}

/// Whether `name` (non-empty, lower case) begins at a position `at` of the text read in lower
/// case (ASCII letters only, as `str::to_ascii_lowercase` reads it) where `ok(at)` holds. In a
/// short text, only where its first byte is (in either case) is the rest compared.
fn occurs(text: &Haystack<'_>, name: &str, ok: impl Fn(usize) -> bool) -> bool {
    let t = match text {
        Haystack::Lowered(lower) => return lower.match_indices(name).any(|(at, _)| ok(at)),
        Haystack::Short(t) => t.as_bytes(),
    };
    let n = name.as_bytes();
    let Some(last) = t.len().checked_sub(n.len()) else { return false };
    let here = |at: usize| {
        at <= last && t[at + 1..at + n.len()].iter().zip(&n[1..]).all(|(a, b)| a.to_ascii_lowercase() == *b) && ok(at)
    };
    match (n[0], n[0].to_ascii_uppercase()) {
        (lower, upper) if lower != upper => memchr::memchr2_iter(lower, upper, t).any(here),
        (byte, _) => memchr::memchr_iter(byte, t).any(here),
    }
}

/// Whether `text` has a `U&` (in any case): an identifier that may spell any name.
pub(super) fn has_u_amp(text: &str) -> bool {
    let t = text.as_bytes();
    memchr::memchr_iter(b'&', t).any(|i| i > 0 && t[i - 1].eq_ignore_ascii_case(&b'u'))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Searched in place, a name is found exactly where the lower-cased text shows it (a
        /// long text is searched in a lower-cased copy made once).
        #[test]
        fn found_in_place_as_in_the_lower_cased_text(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "d", "D", "id", "pv", "PV", "p", "_", " ", "$", "é", "&", "U", "u", "###", "#", "(",
            ]), 0..24),
            name in proptest::sample::select(vec!["d", "pv", "p_v", "###", "u", "é", "d$"]),
            repeat in proptest::sample::select(vec![1usize, 3000]),
        ) {
            let text = parts.concat().repeat(repeat);
            let lower = text.to_ascii_lowercase();
            let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
            let whole = name.bytes().all(ident);
            let expected = lower.match_indices(name).any(|(at, _)| {
                !whole
                    || (!at.checked_sub(1).is_some_and(|i| ident(lower.as_bytes()[i]))
                        && !lower.as_bytes().get(at + name.len()).is_some_and(|b| ident(*b)))
            });
            proptest::prop_assert_eq!(mentions(&Haystack::of(&text), name), expected, "{:?} in {:?}", name, text);
            proptest::prop_assert_eq!(has_u_amp(&text), lower.contains("u&"));
        }
    }
}
