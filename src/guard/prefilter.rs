//! The fast path: deciding, without parsing, that a text cannot write.
//!
//! Owns: the proof by absence of write words. Does not own: anything about text that might
//! write (the analyzer reads it whole).

/// Whether the text provably cannot write: it contains none of the words that every writing
/// statement must contain, as a keyword or a function name (`delete`, `setval`, `do`, …).
/// Keywords cannot be escaped in SQL, so absence anywhere — even inside strings and comments
/// — is proof. Words are cut more finely than the server's lexer cuts them (at digits, `$`
/// and non-ASCII bytes too), which can only find more of them: `do$$…` or `1delete` count.
/// `U&` identifiers can spell a name with escapes, so they always take the full path.
pub(super) fn cannot_write(text: &str) -> bool {
    // Byte classes: true = part of a word (ASCII letter or `_`).
    const WORD: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphabetic() || c == b'_';
            b += 1;
        }
        t
    };
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !WORD[bytes[i] as usize] {
            if bytes[i] == b'&' && i > 0 && bytes[i - 1] | 0x20 == b'u' {
                return false;
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && WORD[bytes[i] as usize] {
            i += 1;
        }
        if is_write_word(&bytes[start..i]) {
            return false;
        }
    }
    true
}

/// For each first letter (`a` = bit 0 … `z` = bit 25), which lengths a write word starting with
/// it has (bit n = length n): most words are rejected by one lookup.
const FIRST_LETTER_LENGTHS: [u16; 26] = {
    // `create`: DDL such as CREATE VIEW/TRIGGER/RULE/TABLE … INHERITS writes no row, but it
    // changes what a later write reaches, so the catalog's cached answers must be dropped
    // (the analyzer marks it as DDL).
    const WORDS: [&[u8]; 19] = [
        b"delete",
        b"update",
        b"insert",
        b"merge",
        b"truncate",
        b"drop",
        b"alter",
        b"do",
        b"call",
        b"execute",
        b"explain",
        b"prepare",
        b"deallocate",
        b"setval",
        b"copy",
        b"blastwall",
        b"reset",
        b"discard",
        b"create",
    ];
    let mut t = [0u16; 26];
    let mut i = 0;
    while i < WORDS.len() {
        t[(WORDS[i][0] - b'a') as usize] |= 1 << WORDS[i].len();
        i += 1;
    }
    t
};

/// Whether a word (ASCII letters and `_`) is one of the write words, in any case.
fn is_write_word(w: &[u8]) -> bool {
    let first = (w[0] | 0x20).wrapping_sub(b'a');
    if w.len() > 10 || first >= 26 || FIRST_LETTER_LENGTHS[first as usize] & (1 << w.len()) == 0 {
        return false;
    }
    let mut lower = [0u8; 10];
    for (l, b) in lower.iter_mut().zip(w) {
        *l = b | 0x20;
    }
    matches!(
        &lower[..w.len()],
        b"delete"
            | b"update"
            | b"insert"
            | b"merge"
            | b"truncate"
            | b"drop"
            | b"alter"
            | b"do"
            | b"call"
            | b"execute"
            | b"explain"
            | b"prepare"
            | b"deallocate"
            | b"setval"
            | b"copy"
            | b"blastwall"
            | b"reset"
            | b"discard"
            | b"create"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    /// Every word the prefilter must treat as a possible write.
    const WRITE_WORDS: [&str; 19] = [
        "delete",
        "update",
        "insert",
        "merge",
        "truncate",
        "drop",
        "alter",
        "do",
        "call",
        "execute",
        "explain",
        "prepare",
        "deallocate",
        "setval",
        "copy",
        "blastwall",
        "reset",
        "discard",
        "create",
    ];

    /// The words a reference reading finds: split at every byte that is not an ASCII letter or `_`.
    fn cannot_write_reference(text: &str) -> bool {
        let lower = text.to_ascii_lowercase();
        !lower.contains("u&")
            && !lower.split(|c: char| !(c.is_ascii_alphabetic() || c == '_')).any(|w| WRITE_WORDS.contains(&w))
    }

    #[test]
    fn prefilter_is_conservative() {
        assert!(cannot_write("SELECT * FROM users WHERE id BETWEEN 1 AND 5"));
        assert!(cannot_write("select abalance from pgbench_accounts where aid = $1"));
        assert!(!cannot_write("SELECT 1; DELETE FROM users"));
        assert!(!cannot_write("select 'delete'"));
        assert!(!cannot_write("SELECT U&\"\\0073etval\"('s', 1)"));
        assert!(!cannot_write("WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x"));
        assert!(!cannot_write("do $$ begin end $$"));
        // Cut more finely than the lexer: glued words still count.
        assert!(!cannot_write("DO$$begin perform 1; end$$"));
        assert!(!cannot_write("select 1;delete from users"));
        assert!(!cannot_write("SELECT 1delete"));
        assert!(!cannot_write("u&\"\\0064elete\""));
        assert!(!cannot_write("select * from t where a = 'x'/*c*/;TRUNCATE t"));
        assert!(cannot_write("SELECT updated_at, deleted FROM t WHERE aid = $1"));
        assert!(cannot_write("select 'dé'"));
        // Every write word, alone, in either case, is found; near misses are not.
        for w in WRITE_WORDS {
            assert!(!cannot_write(&format!("select 1 {w}")), "{w}");
            assert!(!cannot_write(&format!("{}(1)", w.to_ascii_uppercase())), "{w}");
            assert!(cannot_write(&format!("select {w}s, x{w}")), "{w}");
        }
    }

    proptest::proptest! {
        /// The byte-class scan finds exactly the words the plain split finds.
        #[test]
        fn prefilter_matches_its_reference(parts in proptest::collection::vec(proptest::prop_oneof![
            proptest::sample::select(vec![
                "DELETE", "Update", "insert", "merge", "truncate", "drop", "alter", "do", "call",
                "execute", "explain", "prepare", "deallocate", "setval", "copy", "blastwall",
                "deletes", "updated_at", "od", "lapp", "select", "from", "where",
            ]).prop_map(str::to_string),
            "[a-zA-Z_]{1,11}",
            proptest::sample::select(vec![" ", "&", "u", "U", "1", "$", "é", ";", "'", "(", "\n"])
                .prop_map(str::to_string),
        ], 0..14)) {
            let text = parts.concat();
            proptest::prop_assert_eq!(cannot_write(&text), cannot_write_reference(&text), "{:?}", text);
        }
    }
}
