//! The fast path: one pass over a text's words that answers every question the guard asks of
//! a text before (or instead of) parsing it — whether it may write, name a cursor, change
//! what names resolve to, call something, or hold more than one statement.
//!
//! Owns: the proof by absence of write words, and the other word and byte questions of that
//! pass. Does not own: anything about text that might write (the analyzer reads it whole).

/// What one pass over a text found. Every flag errs on the side of `true`: words are cut more
/// finely than the server's lexer (and than `cursors::mentions_cursors` and
/// `names::path_effect`) cuts them, which can only find more of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// A word that every writing statement must contain (`delete`, `setval`, `do`, …), or a
    /// `U&` (an identifier that can spell any name with escapes): the text may write.
    pub writes: bool,
    /// `declare`, `fetch`, `move`, `close` or `discard`: it may be about a cursor.
    pub cursors: bool,
    /// A word of `names::path_effect` (`search_path`, `role`, `create`, `commit`, …): it may
    /// change what names resolve to, or end a transaction.
    pub path: bool,
    /// `blastwall`: it may carry an override directive.
    pub blastwall: bool,
    /// `copy`: it may be a COPY.
    pub copy: bool,
    /// A `(`: it may call a function.
    pub paren: bool,
    /// `analyze`, `vacuum`, `reindex`, `cluster` or `refresh`: it may evaluate index
    /// expressions as a write does (`maintenance`).
    pub maintenance: bool,
    /// A byte outside ASCII.
    pub non_ascii: bool,
    /// `client_encoding`, `names`, `reset`, `discard`, `set_config`, `do`, `call`, `execute`
    /// (a prepared statement's), `fetch` or `move` (a cursor's query), or a transaction's end (`rollback`, `abort`, `commit`, `end`,
    /// `prepare`: it undoes a `SET` or `SET LOCAL`): it may change the encoding the server
    /// decodes the next message in (`session`; so may a function call, `paren`).
    pub encoding: bool,
}

impl Scan {
    /// What is assumed of a text not scanned: everything.
    pub const UNKNOWN: Scan = Scan {
        writes: true,
        cursors: true,
        path: true,
        blastwall: true,
        copy: true,
        paren: true,
        maintenance: true,
        non_ascii: true,
        encoding: true,
    };
}

const WRITE: u8 = 1;
const CURSOR: u8 = 2;
const PATH: u8 = 4;
const BLASTWALL: u8 = 8;
const COPY: u8 = 16;
const MAINTAIN: u8 = 32;
const ENCODING: u8 = 64;

/// The words the pass looks for, and what each one means.
const WORDS: &[(&[u8], u8)] = &[
    // Every writing statement contains one of these, as a keyword or a function name.
    // `create`: DDL such as CREATE VIEW/TRIGGER/RULE/TABLE … INHERITS writes no row, but it
    // changes what a later write reaches, so the catalog's cached answers must be dropped
    // (the analyzer marks it as DDL).
    (b"delete", WRITE),
    (b"update", WRITE),
    (b"insert", WRITE),
    (b"merge", WRITE),
    (b"truncate", WRITE),
    (b"drop", WRITE | PATH),
    (b"alter", WRITE | PATH),
    (b"do", WRITE | ENCODING),
    (b"call", WRITE | ENCODING),
    (b"execute", WRITE | ENCODING),
    (b"explain", WRITE),
    (b"prepare", WRITE | ENCODING),
    (b"deallocate", WRITE),
    (b"setval", WRITE),
    (b"copy", WRITE | COPY),
    (b"blastwall", WRITE | BLASTWALL),
    (b"reset", WRITE | PATH | ENCODING),
    (b"discard", WRITE | CURSOR | PATH | ENCODING),
    (b"create", WRITE | PATH),
    // Cursors (`cursors`).
    (b"declare", CURSOR),
    (b"fetch", CURSOR | ENCODING),
    (b"move", CURSOR | ENCODING),
    (b"close", CURSOR),
    // What names resolve to (`names::path_effect`).
    (b"search_path", PATH),
    (b"set_config", PATH | ENCODING),
    (b"schema", PATH),
    (b"role", PATH),
    (b"authorization", PATH),
    (b"import", PATH),
    // Which schemas a role may use (a membership, a schema's privilege or owner).
    (b"grant", PATH),
    (b"revoke", PATH),
    (b"reassign", PATH),
    (b"rollback", PATH | ENCODING),
    (b"abort", PATH | ENCODING),
    (b"commit", PATH | ENCODING),
    (b"end", PATH | ENCODING),
    // Maintenance commands that evaluate index expressions (`maintenance`).
    (b"analyze", MAINTAIN),
    (b"analyse", MAINTAIN),
    (b"vacuum", MAINTAIN),
    (b"reindex", MAINTAIN),
    (b"cluster", MAINTAIN),
    (b"refresh", MAINTAIN),
    // What the server decodes the next message in (`encoding`).
    (b"client_encoding", ENCODING),
    (b"names", ENCODING),
];

/// The longest word of [`WORDS`].
const LONGEST: usize = 15;

/// A word of letters and `_`, each byte `| 0x20` (so `A` and `a` are one, and `_` becomes
/// 0x7f, which no other word byte becomes), packed into an integer byte by byte: two words
/// are the same exactly when their packings are (no word byte is 0).
const fn pack(w: &[u8]) -> u128 {
    let mut p = 0u128;
    let mut i = 0;
    while i < w.len() && i < 16 {
        p |= ((w[i] | 0x20) as u128) << (8 * i);
        i += 1;
    }
    p
}

/// The packed words of [`WORDS`], in the same order.
const PACKED: [u128; WORDS.len()] = {
    let mut t = [0u128; WORDS.len()];
    let mut i = 0;
    while i < WORDS.len() {
        t[i] = pack(WORDS[i].0);
        i += 1;
    }
    t
};

/// For each first letter (`a` = 0 … `z` = 25), which lengths a listed word starting with it
/// has (bit n = length n): most words are passed over after one lookup.
const FIRST_LETTER_LENGTHS: [u16; 26] = {
    let mut t = [0u16; 26];
    let mut i = 0;
    while i < WORDS.len() {
        let w = WORDS[i].0;
        t[(w[0] - b'a') as usize] |= 1 << w.len();
        i += 1;
    }
    t
};

/// Byte classes: 1 = part of a word (ASCII letter or `_`); 2 = `(`; 3 = `&`; 4 = non-ASCII;
/// 0 = anything else.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphabetic() || c == b'_' {
            1
        } else if c == b'(' {
            2
        } else if c == b'&' {
            3
        } else if c >= 0x80 {
            4
        } else {
            0
        };
        b += 1;
    }
    t
};

/// Reads a text's words once (see [`Scan`]); no allocation.
pub fn scan(text: &[u8]) -> Scan {
    let mut found = 0u8;
    let (mut paren, mut non_ascii, mut u_amp) = (false, false, false);
    let mut i = 0;
    while i < text.len() {
        match CLASS[text[i] as usize] {
            1 => {
                let start = i;
                while i < text.len() && CLASS[text[i] as usize] == 1 {
                    i += 1;
                }
                found |= word_meaning(&text[start..i]);
                continue;
            }
            2 => paren = true,
            3 => u_amp |= i > 0 && text[i - 1] | 0x20 == b'u',
            4 => non_ascii = true,
            _ => {}
        }
        i += 1;
    }
    Scan {
        writes: found & WRITE != 0 || u_amp,
        cursors: found & CURSOR != 0,
        path: found & PATH != 0,
        blastwall: found & BLASTWALL != 0,
        copy: found & COPY != 0,
        paren,
        maintenance: found & MAINTAIN != 0,
        non_ascii,
        encoding: found & ENCODING != 0,
    }
}

/// The texts a session's one pass read last, and what it found for each: a driver that sends
/// the same text for every execution (the extended protocol's unnamed statement, parsed again
/// each time) has it read once, and so does one that sends the same statements with other
/// numbers in them (literal values: `UPDATE … + -31 WHERE aid = 12345`, then `UPDATE … + -7
/// WHERE aid = 678`, with other statements between them, as pgbench's tpcb-like `-M simple`
/// does). The pass depends on the bytes alone, and on a run of digits only as a place where
/// no word goes on ([`same_words`]).
#[derive(Debug, Default, Clone)]
pub struct LastScan {
    /// Up to [`REMEMBERED`] texts, each with its pass, the oldest replaced first.
    seen: Vec<(Box<[u8]>, Scan)>,
    /// Where the next text goes once `seen` is full.
    next: usize,
}

/// How many texts a session remembers, and how long one may be (a copy of each is kept: at
/// most 8 KiB per session).
const REMEMBERED: usize = 8;
const REMEMBERED_BYTES: usize = 1024;

impl LastScan {
    /// [`scan`] of `text`, from a text read before when it is the same but for the runs of
    /// digits in it ([`same_words`]).
    pub fn scan(&mut self, text: &[u8]) -> Scan {
        // (The very same text first: a driver's unnamed statement, parsed for every execution;
        // its last eight bytes compared before the rest, where literal values tend to differ.)
        let last8 =
            |t: &[u8]| t.len().checked_sub(8).map(|k| u64::from_le_bytes(t[k..].try_into().unwrap_or_default()));
        let tail = last8(text);
        let identical = |t: &[u8]| t.len() == text.len() && last8(t) == tail && t == text;
        if let Some((_, s)) = self.seen.iter().find(|(t, _)| identical(t) || same_words(t, text)) {
            return *s;
        }
        let s = scan(text);
        if text.len() <= REMEMBERED_BYTES {
            let entry = (Box::from(text), s);
            if self.seen.len() < REMEMBERED {
                self.seen.push(entry);
            } else {
                self.seen[self.next] = entry;
                self.next = (self.next + 1) % REMEMBERED;
            }
        }
        s
    }
}

/// Whether `a` and `b` are the same bytes but for their runs of ASCII digits, which may differ
/// in value and length but not be missing on either side: `a = P0 X1 P1 … Xn Pn` and `b = P0
/// Y1 P1 … Yn Pn`, each `X` and `Y` a run of digits, none empty, the `P` the same bytes. Then
/// [`scan`] finds the same in both: digits are no word's bytes, nor `(`, `&`, or non-ASCII, so
/// each text's words lie wholly in the `P`, cut at the same places (a word that ends a `P`
/// or begins one is cut by a digit in both); a `&` that begins a `P` follows a digit in both
/// (no `U&`). A run left empty on one side would join two words there: not the same. Equal
/// stretches are compared eight bytes at a time; a difference is allowed only inside a run of
/// digits on both sides.
fn same_words(a: &[u8], b: &[u8]) -> bool {
    let digits = |t: &[u8]| t.iter().take_while(|c| c.is_ascii_digit()).count();
    let (mut i, mut j) = (0, 0);
    loop {
        let equal = common_prefix(&a[i..], &b[j..]);
        (i, j) = (i + equal, j + equal);
        if i == a.len() && j == b.len() {
            return true;
        }
        // The bytes here differ (or one side ended). The bytes before are the same on both
        // sides (or both end a run of digits, and then the bytes here are no digits): a run
        // of digits that began there goes on here on either side or both; one that begins
        // here must on both.
        let (da, db) = (digits(&a[i..]), digits(&b[j..]));
        let in_run = i > 0 && a[i - 1].is_ascii_digit() && j > 0 && b[j - 1].is_ascii_digit();
        if da + db == 0 || (!in_run && (da == 0 || db == 0)) {
            return false;
        }
        (i, j) = (i + da, j + db);
    }
}

/// How many bytes `a` and `b` begin with alike, compared eight at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut n = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_le_bytes(y.try_into().unwrap_or_default());
        if x != y {
            return n + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + a[n..].iter().zip(&b[n..]).take_while(|(x, y)| x == y).count()
}

/// What a word (ASCII letters and `_`) means, in any case (0: nothing).
fn word_meaning(w: &[u8]) -> u8 {
    let first = (w[0] | 0x20).wrapping_sub(b'a');
    if w.len() > LONGEST || first >= 26 || FIRST_LETTER_LENGTHS[first as usize] & (1 << w.len()) == 0 {
        return 0;
    }
    let packed = pack(w);
    PACKED.iter().position(|p| *p == packed).map_or(0, |i| WORDS[i].1)
}

/// Whether the text provably cannot write: it contains none of the words that every writing
/// statement must contain, as a keyword or a function name (`delete`, `setval`, `do`, …).
/// Keywords cannot be escaped in SQL, so absence anywhere — even inside strings and comments
/// — is proof. Words are cut more finely than the server's lexer cuts them (at digits, `$`
/// and non-ASCII bytes too), which can only find more of them: `do$$…` or `1delete` count.
/// `U&` identifiers can spell a name with escapes, so they always take the full path.
#[cfg(test)]
pub(super) fn cannot_write(text: &str) -> bool {
    !scan(text.as_bytes()).writes
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

    #[test]
    fn the_last_text_is_read_once_and_only_for_the_same_bytes() {
        let mut last = LastScan::default();
        assert!(!last.scan(b"SELECT a FROM t WHERE id = $1").writes);
        assert!(last.scan(b"DELETE FROM t WHERE id = $1").writes);
        assert!(last.scan(b"DELETE FROM t WHERE id = $1").writes);
        assert!(!last.scan(b"SELECT a FROM t WHERE id = $1").paren);
        assert!(last.scan(b"SELECT a(1) FROM t WHERE id = $1").paren);
        // The same length, other bytes.
        assert!(!last.scan(b"select x from t").writes && last.scan(b"delete x from t").writes);
        let long = format!("SELECT 1 {}", " ".repeat(REMEMBERED_BYTES));
        assert!(!last.scan(long.as_bytes()).writes && last.seen.iter().all(|(t, _)| t.len() <= REMEMBERED_BYTES));
        assert!(last.scan(format!("{long} delete").as_bytes()).writes);
    }

    #[test]
    fn a_text_that_differs_in_runs_of_digits_is_not_read_again() {
        let same = |a: &str, b: &str| same_words(a.as_bytes(), b.as_bytes());
        assert!(same("SELECT a FROM t WHERE aid = 12345;", "SELECT a FROM t WHERE aid = 678;"));
        assert!(same("SELECT a FROM t WHERE aid = 5;", "SELECT a FROM t WHERE aid = 15;"));
        assert!(same("SELECT a FROM t WHERE aid = 15", "SELECT a FROM t WHERE aid = 5"));
        assert!(same("select 1", "select 2") && same("7", "8") && same("x", "x"));
        // Several runs, of other lengths, one inside a word on both sides.
        assert!(same("select 1 from t1", "select 22 from t2"));
        assert!(same("UPDATE a SET b = b + -5 WHERE c = 7;", "UPDATE a SET b = b + -123456789 WHERE c = 123456789;"));
        assert!(same("select 123456789012", "select 123456789013") && same("select 12345678x", "select 1x"));
        // Digits that cut a word, or that are gone, or a sign that is: read again.
        assert!(!same("select a1b", "select ab") && !same("select ab", "select a1b"));
        assert!(!same("select 12345678", "select ") && !same("select x", "select x1"));
        assert!(!same("UPDATE a SET b = b + -5;", "UPDATE a SET b = b + 5;"));
        assert!(!same("select 1", "select x") && !same("select 1", "select 1."));
        // `u1&` is no `U&`, `u&` is.
        assert!(!same("select u1&x", "select u&x"));
        let mut last = LastScan::default();
        assert!(!last.scan(b"SELECT a FROM t WHERE aid = 12345;").writes);
        assert!(!last.scan(b"SELECT a FROM t WHERE aid = 6;").writes);
        assert!(last.scan(b"SELECT a FROM t WHERE aid = 6;DELETE FROM t").writes);
        assert!(last.scan(b"SELECT a FROM t WHERE aid = 6;DELETE FROM t").writes);
        assert!(!last.scan(b"SELECT a FROM t WHERE aid = 6;DELETEFROM t").writes);
        // pgbench's tpcb-like `-M simple`: each statement's text comes back after the others.
        let mut last = LastScan::default();
        for (aid, delta) in [(12345, -31), (6, 4000), (77, -2)] {
            for text in [
                "BEGIN;".to_string(),
                format!("UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid};"),
                format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"),
                format!("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, {aid}, {delta}, CURRENT_TIMESTAMP);"),
                "END;".to_string(),
            ] {
                assert_eq!(last.scan(text.as_bytes()), scan(text.as_bytes()), "{text}");
            }
        }
        // Both signs of the delta, each remembered once; the oldest text is replaced first.
        assert_eq!(last.seen.len(), 7);
        for i in 0..REMEMBERED {
            last.scan(format!("select x{} from t{i}", "y".repeat(i)).as_bytes());
        }
        assert_eq!(last.seen.len(), REMEMBERED);
        assert!(last.seen.iter().all(|(t, _)| !t.starts_with(b"BEGIN")));
    }

    #[test]
    fn one_pass_answers_every_question() {
        let s = scan(b"SELECT abalance FROM pgbench_accounts WHERE aid = 5;");
        assert_eq!(
            s,
            Scan {
                writes: false,
                cursors: false,
                path: false,
                blastwall: false,
                copy: false,
                paren: false,
                maintenance: false,
                non_ascii: false,
                encoding: false
            }
        );
        let s = scan("select now(); fetch all c; COMMIT; -- blastwall: x é".as_bytes());
        assert!(s.paren && s.cursors && s.path && s.blastwall && s.writes && s.non_ascii && !s.copy);
        assert!(scan(b"Copy t TO PROGRAM 'x'").copy);
        assert!(scan(b"SET search_path = x").path && !scan(b"SET search_path = x").writes);
        assert!(scan(b"discard all").cursors && scan(b"discard all").path);
        for t in [
            "SET client_encoding = 'SJIS'",
            "set names 'x'",
            "RESET ALL",
            "discard all",
            "select set_config('a', 'b', false)",
            "DO $$ $$",
            "call p()",
        ] {
            assert!(scan(t.as_bytes()).encoding, "{t}");
        }
        assert!(!scan(b"SET search_path = x").encoding && !scan(b"SELECT now()").encoding);
    }

    proptest::proptest! {
        /// Cursor and path words are found wherever the guard's exact readings find them.
        #[test]
        fn the_pass_finds_what_the_exact_readings_find(parts in proptest::collection::vec(proptest::prop_oneof![
            proptest::sample::select(vec![
                "FETCH", "declare", "Move", "close", "discard", "search_path", "set_config", "schema",
                "reset", "role", "authorization", "create", "alter", "drop", "import", "rollback",
                "abort", "commit", "end", "ends", "fetches", "x", "select", "grant", "Revoke", "reassign",
            ]).prop_map(str::to_string),
            "[a-zA-Z_]{1,6}",
            proptest::sample::select(vec![" ", "1", "$", "é", ";", "'", "(", "\n", "_"])
                .prop_map(str::to_string),
        ], 0..10)) {
            let text = parts.concat();
            let s = scan(text.as_bytes());
            if super::super::cursors::mentions_cursors(text.as_bytes()) {
                proptest::prop_assert!(s.cursors, "{:?}", text);
            }
            if crate::names::path_effect(text.as_bytes()) != crate::names::PathEffect::None {
                proptest::prop_assert!(s.path, "{:?}", text);
            }
        }

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
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// What the remembered pass answers for a text is what a pass over that text finds,
        /// whatever came before it: texts that differ in a run of digits, and any others.
        #[test]
        fn the_remembered_pass_is_the_pass(
            parts in proptest::collection::vec(proptest::prop_oneof![
                proptest::sample::select(vec![
                    "delete", "select", "u", "U", "&", "(", "é", " ", ";", "do", "x", "_", "fetch",
                    "de", "lete", "fet", "ch", "d", "o",
                ]).prop_map(str::to_string),
                "[0-9]{1,4}",
                "[a-z_]{1,4}",
            ], 0..7),
            at in 0usize..7,
            with in proptest::collection::vec(
                proptest::prop_oneof![3 => "[0-9]{0,3}", 1 => "[a-z&(]{0,2}", 1 => "[0-9a-z&]{1,3}"], 2),
            keep in proptest::bool::ANY,
        ) {
            let first = parts.concat();
            // Two texts after it, each the first with one part replaced (or kept).
            let changed = |with: &str| {
                let mut changed = parts.clone();
                if !changed.is_empty() && !keep {
                    let i = at % changed.len();
                    changed[i] = with.to_string();
                }
                changed.concat()
            };
            let (second, third) = (changed(&with[0]), changed(&with[1]));
            let mut last = LastScan::default();
            for text in [&first, &second, &third] {
                proptest::prop_assert_eq!(last.scan(text.as_bytes()), scan(text.as_bytes()), "{:?}, {:?}, {:?}", first, second, third);
            }
        }

        /// Texts that differ in several places, read among others: the remembered pass is the
        /// pass, and two texts are taken for one exactly when they are the same once each run
        /// of digits is written as one `0`.
        #[test]
        fn texts_that_differ_in_runs_of_digits_share_a_pass(
            parts in proptest::collection::vec(proptest::prop_oneof![
                proptest::sample::select(vec![
                    "delete", "select", "u", "U", "&", "(", "é", " ", ";", "do", "x", "_", "fetch",
                    "de", "lete", "fet", "ch", "d", "o", "-", "update pgbench_accounts ",
                ]).prop_map(str::to_string),
                "[0-9]{1,12}",
                "[a-z_]{1,4}",
            ], 0..12),
            changes in proptest::collection::vec((0usize..12, proptest::prop_oneof![
                4 => "[0-9]{0,12}", 1 => "[a-z&(]{0,2}", 1 => "[0-9a-z&-]{1,3}"]), 0..4),
            others in proptest::collection::vec("[a-z0-9 &(]{0,20}", 0..10),
        ) {
            let first = parts.concat();
            let mut changed = parts.clone();
            for (at, with) in &changes {
                if !changed.is_empty() {
                    let i = at % changed.len();
                    changed[i] = with.clone();
                }
            }
            let second = changed.concat();
            let collapsed = |t: &str| {
                let mut out = Vec::new();
                for &c in t.as_bytes() {
                    if !(c.is_ascii_digit() && out.last().is_some_and(u8::is_ascii_digit)) {
                        out.push(if c.is_ascii_digit() { b'0' } else { c });
                    }
                }
                out
            };
            proptest::prop_assert_eq!(
                same_words(first.as_bytes(), second.as_bytes()),
                collapsed(&first) == collapsed(&second),
                "{:?} / {:?}", first, second
            );
            let mut last = LastScan::default();
            let texts = std::iter::once(&first).chain(&others).chain([&second, &first]).chain(&others).chain([&second]);
            for text in texts {
                proptest::prop_assert_eq!(last.scan(text.as_bytes()), scan(text.as_bytes()), "{:?} / {:?}", first, text);
            }
        }
    }
}
