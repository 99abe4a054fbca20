//! What a text may do to what names resolve to when it runs, read from its words alone (no
//! parse, no allocation): change them (`SET`/`RESET` of the path, `set_config`, `DISCARD`, a
//! role, DDL, `GRANT`/`REVOKE`/`REASSIGN OWNED`: which schemas a role may use) or end a transaction that may undo such a change. What objects a statement
//! mentions may do too is the guard's to say (`guard::hidden`).
//!
//! Owns: [`PathEffect`] and reading it from a text. Does not own: following a `SET
//! search_path` (`path`) or the cached answers (`session`).

/// What a text may do to what names resolve to when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEffect {
    None,
    /// Change the path (`SET`/`RESET` `search_path` or `SCHEMA`, `set_config`, `DISCARD`),
    /// the role (`$user`), the schemas a role may use (`GRANT`, `REVOKE`, `REASSIGN OWNED`),
    /// or the relations (DDL; `DO`, `CALL` and functions are DDL to the
    /// guard, which drops every session's answers for them: `Catalog::generation`).
    Change,
    /// End a transaction (or roll back to a savepoint), undoing a `SET LOCAL` or a `SET`.
    End,
}

/// [`PathEffect`] of a text, read as words, case-insensitively, with no allocation: a word in
/// a string or a comment only costs one question more.
pub fn path_effect(text: &[u8]) -> PathEffect {
    const CHANGE: &[&[u8]] = &[
        b"search_path",
        b"set_config",
        b"schema",
        b"reset",
        b"discard",
        b"role",
        b"authorization",
        b"create",
        b"alter",
        b"drop",
        b"import",
        b"grant",
        b"revoke",
        b"reassign",
    ];
    const END: &[&[u8]] = &[b"rollback", b"abort", b"commit", b"end"];
    // Word bytes, as cut: ASCII letters and digits, `_`, and every non-ASCII byte.
    const WORD: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
            b += 1;
        }
        t
    };
    // For each first letter, the lengths of the listed words that start with it (bit n =
    // length n): on the hot path (every Query with a `;`) most words are passed over after one
    // lookup, and only a word that could be one of the list is compared with it.
    const LENGTHS: [u16; 26] = {
        let mut t = [0u16; 26];
        let mut i = 0;
        while i < CHANGE.len() + END.len() {
            let w = if i < CHANGE.len() { CHANGE[i] } else { END[i - CHANGE.len()] };
            t[(w[0] - b'a') as usize] |= 1 << w.len();
            i += 1;
        }
        t
    };
    let mut effect = PathEffect::None;
    let mut i = 0;
    while i < text.len() {
        if !WORD[usize::from(text[i])] {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && WORD[usize::from(text[i])] {
            i += 1;
        }
        let w = &text[start..i];
        let first = w[0] | 0x20;
        let candidate =
            first.is_ascii_lowercase() && w.len() < 16 && LENGTHS[usize::from(first - b'a')] & (1 << w.len()) != 0;
        if !candidate {
            continue;
        }
        if CHANGE.iter().any(|x| w.eq_ignore_ascii_case(x)) {
            return PathEffect::Change;
        }
        if END.iter().any(|x| w.eq_ignore_ascii_case(x)) {
            effect = PathEffect::End;
        }
    }
    effect
}

#[cfg(test)]
mod path_effect_tests {
    use super::{path_effect, PathEffect};
    use proptest::prelude::*;

    /// The plain reading: every word compared with every listed word.
    fn reference(text: &[u8]) -> PathEffect {
        const CHANGE: &[&str] = &[
            "search_path",
            "set_config",
            "schema",
            "reset",
            "discard",
            "role",
            "authorization",
            "create",
            "alter",
            "drop",
            "import",
            "grant",
            "revoke",
            "reassign",
        ];
        const END: &[&str] = &["rollback", "abort", "commit", "end"];
        let mut effect = PathEffect::None;
        for w in text.split(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80)) {
            if CHANGE.iter().any(|x| w.eq_ignore_ascii_case(x.as_bytes())) {
                return PathEffect::Change;
            }
            if END.iter().any(|x| w.eq_ignore_ascii_case(x.as_bytes())) {
                effect = PathEffect::End;
            }
        }
        effect
    }

    proptest! {
        /// The length-and-letter filter passes over no word of the list.
        #[test]
        fn filtered_reading_matches_the_plain_one(
            words in proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(vec![
                        "Search_Path", "SET", "schemas", "ROLE", "rolE1", "end", "END;", "ending", "Commit",
                        "abort", "drop", "dro", "é", "_", "Authorization", "import", "1reset", "reset", "Revoke", "grant", "reassign",
                        "discard", "alter", "create", "set_config", "rollback", "select",
                    ])
                    .prop_map(String::from),
                    "[ -~\\u{80}-\\u{ff}]{0,12}",
                ],
                0..12,
            ),
            seps in proptest::collection::vec(prop_oneof![Just(" "), Just(";"), Just("("), Just(""), Just("é")], 12),
        ) {
            let mut text = String::new();
            for (i, w) in words.iter().enumerate() {
                text.push_str(w);
                text.push_str(seps[i % seps.len()]);
            }
            prop_assert_eq!(path_effect(text.as_bytes()), reference(text.as_bytes()), "{}", text);
        }
    }
}

/// Whether a text may change what names resolve to when it runs (either effect).
pub fn may_change_path(text: &[u8]) -> bool {
    path_effect(text) != PathEffect::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_changes_are_found_as_words() {
        for t in [
            "SET search_path TO archive",
            "set schema 'x'",
            "RESET ALL",
            "SELECT pg_catalog.set_config('search_path', 'a', false)",
            "DISCARD ALL",
            "ROLLBACK",
            "end",
            "SET ROLE app",
            "CREATE TEMP TABLE users (id int)",
            "REVOKE archivist FROM app",
            "grant archivist to app",
            "REASSIGN OWNED BY archivist TO migrator",
        ] {
            assert!(may_change_path(t.as_bytes()), "{t}");
        }
        for t in ["SELECT * FROM users WHERE id = 1", "DELETE FROM users WHERE id = $1", "UPDATE t SET a = 1", "BEGIN"]
        {
            assert!(!may_change_path(t.as_bytes()), "{t}");
        }
    }
}
