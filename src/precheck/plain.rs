//! Whether a point write's text runs nothing but built-in code beside its pinned rows, as far
//! as the text can tell (the catalog tells the rest, `point`): its WHERE is a plain tail
//! (`tail`: columns, constants, `=`, `IN (…)`, `ANY (…)`), and the whole text names no function,
//! subquery, other relation (`USING`, `FROM`), `DEFAULT`, cast to a type the session could
//! redefine (a temporary domain named `int4` is found before `pg_catalog.int4`; only the SQL
//! keywords' types are pinned to `pg_catalog`), typed literal, or operator word (`BETWEEN`,
//! `LIKE`, `IS`, …) — and which operators it uses (`operators`), so that the catalog can say no
//! user's operator of those names exists in any schema (an operator of a user's is code, and
//! one named `=` earlier on the search_path is found before the built-in one).
//!
//! Owns: those two readings of the text. Does not own: the catalog's side (`point`).

/// Whether the text from its first `where` on has nothing but column references, constants,
/// operators, `IN (…)` and `ANY (…)`: no call, `COLLATE`, nested array, parameter or `RETURNING`.
pub fn tail(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let Some(at) = lower.find("where") else { return false };
    let tail = &lower[at..];
    if ["collate", "returning", "null", "$", "{{", "[["].iter().any(|w| tail.contains(w))
        || tail.matches("array").count() > 1
        || tail.matches('{').count() > 1
    {
        return false;
    }
    for (i, _) in tail.match_indices('(') {
        let head = tail[..i].trim_end();
        let word: String =
            head.chars().rev().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
        let word: String = word.chars().rev().collect();
        let after_operator = head.ends_with(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '"'));
        if !(matches!(word.as_str(), "in" | "any" | "some") || (word.is_empty() && after_operator)) {
            return false;
        }
    }
    true
}

/// Words that run code or reach other rows without a parenthesis or an operator sign.
const WORDS: &[&str] = &[
    "between",
    "like",
    "ilike",
    "similar",
    "is",
    "isnull",
    "notnull",
    "not",
    "overlaps",
    "distinct",
    "at",
    "collate",
    "escape",
    "uescape",
    "default",
    "using",
    "from",
    "returning",
    "select",
    "values",
    "table",
    "with",
    "exists",
    "operator",
    "cast",
    "lateral",
    "join",
    "row",
    "filter",
    "over",
    "within",
    "xmlparse",
    "treat",
];

/// Type names the grammar itself resolves in `pg_catalog` (keywords), the only casts allowed.
const KEYWORD_TYPES: &[&str] = &[
    "bigint",
    "integer",
    "int",
    "smallint",
    "boolean",
    "real",
    "numeric",
    "decimal",
    "varchar",
    "character",
    "char",
    "float",
    "double",
];

/// Words a string literal may follow (anything else before one is a typed literal or a prefix).
const BEFORE_STRING: &[&str] = &["and", "or", "where", "set", "then", "else", "when", "in", "any", "some", "all"];

/// Characters of an operator's name.
const OPERATOR_CHARS: &str = "+-*/<>=~!@#%^&|`?";

#[derive(PartialEq)]
enum Token {
    Start,
    Word(String),
    Other,
}

/// The operators a plain point write uses (`=` always: `IN` and `ANY` compare with it), or
/// `None` when the text is not plain (see the module's doc).
pub fn operators(text: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = text.to_lowercase().chars().collect();
    let mut ops = vec!["=".to_string()];
    let mut prev = Token::Start;
    let mut words = 0usize;
    let mut cast = false;
    let mut i = 0;
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || !c.is_ascii();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if cast && !is_word(c) {
            return None;
        }
        if c == '\'' {
            if matches!(&prev, Token::Word(w) if !BEFORE_STRING.contains(&w.as_str())) {
                return None;
            }
            i = past_quoted(&chars, i)?;
            prev = Token::Other;
        } else if c == '"' {
            i = past_quoted(&chars, i)?;
            prev = Token::Word(String::new());
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if chars.get(i) == Some(&'e') {
                i += 1;
                if matches!(chars.get(i), Some('+' | '-')) {
                    i += 1;
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if chars.get(i).is_some_and(|c| is_word(*c)) {
                return None;
            }
            prev = Token::Other;
        } else if is_word(c) {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            words += 1;
            let after_delete = words == 2 && prev == Token::Word("delete".into());
            if (WORDS.contains(&word.as_str()) && !(word == "from" && after_delete))
                || (cast && !KEYWORD_TYPES.contains(&word.as_str()))
            {
                return None;
            }
            cast = false;
            // A call: only the comparison forms take a parenthesis after a word.
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if next == Some(&'(') && !matches!(word.as_str(), "in" | "any" | "some" | "all") {
                return None;
            }
            prev = Token::Word(word);
        } else if c == ':' {
            if chars.get(i + 1) != Some(&':') {
                return None;
            }
            cast = true;
            i += 2;
            prev = Token::Other;
        } else if "(),;[].".contains(c) {
            i += 1;
            prev = Token::Other;
        } else if OPERATOR_CHARS.contains(c) {
            let start = i;
            while i < chars.len() && OPERATOR_CHARS.contains(chars[i]) {
                i += 1;
            }
            let mut op: String = chars[start..i].iter().collect();
            if op.contains("--") || op.contains("/*") {
                return None;
            }
            // The lexer's rule: a trailing + or - is not part of a longer operator unless it
            // has one of these characters.
            while op.len() > 1 && op.ends_with(['+', '-']) && !op.contains(|c| "~!@#%^&|`?".contains(c)) {
                op.pop();
                i -= 1;
            }
            // A minus before a number is its sign (the grammar folds it into the constant).
            let operand_before = matches!(prev, Token::Word(ref w) if !BEFORE_STRING.contains(&w.as_str()))
                || (prev == Token::Other
                    && chars[..start]
                        .iter()
                        .rev()
                        .find(|c| !c.is_whitespace())
                        .is_some_and(|c| ")]'\"".contains(*c) || c.is_alphanumeric()));
            let sign = op == "-"
                && !operand_before
                && chars[i..].iter().find(|c| !c.is_whitespace()).is_some_and(char::is_ascii_digit);
            if !sign {
                let name = if op == "!=" { "<>".to_string() } else { op };
                if !ops.contains(&name) {
                    ops.push(name);
                }
            }
            prev = Token::Other;
        } else {
            return None;
        }
    }
    if cast {
        return None;
    }
    ops.sort();
    Some(ops)
}

/// Where a literal or quoted name opening at `i` ends (its quote doubled inside it).
fn past_quoted(chars: &[char], mut i: usize) -> Option<usize> {
    let q = chars[i];
    i += 1;
    loop {
        match chars.get(i) {
            None => return None,
            Some(c) if *c == q && chars.get(i + 1) == Some(&q) => i += 2,
            Some(c) if *c == q => return Some(i + 1),
            Some(_) => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_with_calls_or_nested_arrays_do_not_qualify() {
        assert!(tail("DELETE FROM t WHERE id = 5"));
        assert!(tail("DELETE FROM t WHERE id IN (1, 2) AND k = ANY ('{3,4}')"));
        assert!(tail("UPDATE t SET n = now() WHERE id = ANY (ARRAY[1,2])"));
        assert!(!tail("DELETE FROM t WHERE id = floor(random() * 9)::int"));
        assert!(!tail("DELETE FROM t WHERE id = ANY (ARRAY[ARRAY[1,2],ARRAY[3,4]])"));
        assert!(!tail("DELETE FROM t WHERE id = ANY ('{{1,2},{3,4}}')"));
        assert!(!tail("DELETE FROM t WHERE name = 'a' COLLATE \"x\""));
        assert!(!tail("DELETE FROM t WHERE id = 1 RETURNING *"));
        assert!(!tail("DELETE FROM t WHERE id = $1"));
        assert!(!tail("DELETE FROM t"));
    }

    #[test]
    fn the_operators_of_a_plain_text_and_what_is_not_plain() {
        let ops = |t: &str| operators(t).map(|o| o.join(" "));
        assert_eq!(ops("DELETE FROM t WHERE id = -5").as_deref(), Some("="));
        assert_eq!(ops("DELETE FROM ONLY s.t WHERE id IN (1, -2) AND k = 'a''b'").as_deref(), Some("="));
        assert_eq!(ops("UPDATE t SET v = v + -3, w = 'x' WHERE id = 1").as_deref(), Some("+ ="));
        assert_eq!(ops("UPDATE t SET v = v-1 WHERE id=-1").as_deref(), Some("- ="));
        assert_eq!(ops("DELETE FROM t WHERE id = 1 AND v ### 0").as_deref(), Some("### ="));
        assert_eq!(ops("DELETE FROM t WHERE id = 1 AND v != 0").as_deref(), Some("<> ="));
        assert_eq!(ops("DELETE FROM t WHERE id = ANY ('{1,2}'::bigint[])").as_deref(), Some("="));
        assert_eq!(ops("DELETE FROM t WHERE id = 1.5e-3").as_deref(), Some("="));
        for not in [
            "DELETE FROM t WHERE id = 13::pd",
            "DELETE FROM t WHERE id = 13::int4",
            "DELETE FROM t WHERE id = int4 '13'",
            "DELETE FROM t WHERE k = E'a\\'b'",
            "DELETE FROM t USING v WHERE t.id = 1",
            "UPDATE t SET v = 1 FROM v WHERE t.id = 1",
            "UPDATE t SET v = DEFAULT WHERE id = 1",
            "UPDATE t SET v = f(1) WHERE id = 1",
            "DELETE FROM t WHERE id = 1 AND v BETWEEN 1 AND 2",
            "DELETE FROM t WHERE id = 1 AND v IS DISTINCT FROM 2",
            "DELETE FROM t WHERE id = (SELECT 1)",
            "DELETE FROM t WHERE id = 1 -- x",
            "DELETE FROM t WHERE id = 1 /* x */",
            "DELETE FROM t WHERE id = $1",
            "DELETE FROM t WHERE id = 1 AND v = OPERATOR(pg_catalog.=) 1",
        ] {
            assert_eq!(operators(not), None, "{not}");
        }
    }
}
