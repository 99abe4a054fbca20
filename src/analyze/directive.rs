//! The override directive: `/* blastwall: allow rows<=120 reason="ticket 4711 test cleanup" */`.
//!
//! Owns: finding it in real comments (never in string literals, never across statements) and
//! parsing it. Does not own: who may use it (policy) or what it does (guard, pre-check).

use super::ParseOptions;

/// An explicit, stated expectation: at most `rows` rows changed, for `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub rows: u64,
    pub reason: String,
}

/// The directive in the comments of `sql`, if any: a comment whose text starts with
/// `blastwall: allow` (or says `rows<=` or `reason=` after `blastwall:`). `Err` when such a comment does not say what a directive must. Any other
/// comment, `-- blastwall: this table is guarded` included, is an ordinary comment.
pub fn find(sql: &str, opts: ParseOptions) -> Result<Option<Override>, String> {
    // The scanner reads strings with standard_conforming_strings on; with it off a comment
    // could hide inside what it takes for a string, or the reverse: no directive then.
    if !opts.standard_conforming_strings && sql.contains('\\') {
        return Ok(None);
    }
    if !sql.contains("blastwall:") {
        return Ok(None);
    }
    let Some(Ok(scan)) = super::budget::within(sql, || pg_query::scan(sql)) else { return Ok(None) };
    let mut found = None;
    for t in &scan.tokens {
        let is_comment = t.token == pg_query::protobuf::Token::CComment as i32
            || t.token == pg_query::protobuf::Token::SqlComment as i32;
        if !is_comment {
            continue;
        }
        let text = sql.get(usize::try_from(t.start).unwrap_or(0)..usize::try_from(t.end).unwrap_or(0)).unwrap_or("");
        let body = text.trim_start_matches("/*").trim_end_matches("*/").trim_start_matches("--").trim();
        let Some(rest) = body.strip_prefix("blastwall:") else { continue };
        let first_word = rest.split_whitespace().next().unwrap_or("");
        // A directive, or an attempt at one (then refused, so that a typo is not silently a
        // plain comment): it starts with `allow`, or says `rows<=` or `reason=`.
        if !first_word.starts_with("allow") && !rest.contains("rows<=") && !rest.contains("reason=") {
            continue;
        }
        if found.is_some() {
            return Err("more than one blastwall directive".into());
        }
        found = Some(parse(rest.trim())?);
    }
    Ok(found)
}

fn parse(s: &str) -> Result<Override, String> {
    let bad =
        |why: &str| format!("blastwall directive {s:?}: {why}; write /* blastwall: allow rows<=N reason=\"why\" */");
    let rest = s.strip_prefix("allow").ok_or_else(|| bad("it must start with allow"))?.trim_start();
    let rest = rest.strip_prefix("rows<=").ok_or_else(|| bad("rows<=N is missing"))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let rows: u64 = digits.parse().map_err(|_| bad("N must be a whole number"))?;
    let rest = rest[digits.len()..].trim_start();
    let rest = rest.strip_prefix("reason=\"").ok_or_else(|| bad("reason=\"…\" is missing"))?;
    let end = rest.find('"').ok_or_else(|| bad("the reason's closing quote is missing"))?;
    let reason = rest[..end].trim().to_string();
    if reason.is_empty() {
        return Err(bad("the reason is empty"));
    }
    if !rest[end + 1..].trim().is_empty() {
        return Err(bad("unexpected text after the reason"));
    }
    Ok(Override { rows, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(sql: &str) -> Result<Option<Override>, String> {
        find(sql, ParseOptions::default())
    }

    #[test]
    fn finds_the_directive_in_comments_only() {
        let o = f("/* blastwall: allow rows<=120 reason=\"ticket 4711\" */ DELETE FROM users WHERE id < 0")
            .unwrap()
            .unwrap();
        assert_eq!(o, Override { rows: 120, reason: "ticket 4711".into() });
        assert!(f("DELETE FROM users -- blastwall: allow rows<=5 reason=\"x\"\nWHERE id < 0").unwrap().is_some());
        assert_eq!(f("SELECT '/* blastwall: allow rows<=5 reason=\"x\" */'").unwrap(), None);
        assert_eq!(f("SELECT $$ -- blastwall: allow rows<=5 reason=\"x\" $$").unwrap(), None);
        assert!(f("/* blastwall: allow everything */ DELETE FROM users").is_err());
        assert!(f("/* blastwall: allowrows<=5 */ DELETE FROM users").is_err());
        // Ordinary comments that mention blastwall are not directives.
        assert_eq!(f("-- blastwall: users is guarded, see the runbook\nDELETE FROM users WHERE id = 1").unwrap(), None);
        assert_eq!(f("/* blastwall: */ /*blastwall:note*/ SELECT 1").unwrap(), None);
        assert!(f("/* blastwall: allow rows<=5 reason=\"\" */ DELETE FROM users").is_err());
        assert!(f("/* blastwall: allow rows<=5 reason=\"a\" */ /* blastwall: allow rows<=9 reason=\"b\" */").is_err());
    }
}
