//! psql scripts for `blastwall check`: the SQL a script sends, with the line it starts on.
//!
//! Owns: skipping psql meta-commands (`\set`, `\copy`, …) and the inline data that follows
//! `COPY … FROM STDIN` (or `\copy … from stdin`) up to `\.`. Does not own: SQL analysis.

/// A run of SQL text from a script, and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub line: usize,
    pub sql: String,
}

/// Splits a script into chunks of SQL, leaving out meta-commands and COPY data. Each chunk
/// ends where psql would send it: at a meta-command, or where COPY data begins.
pub fn chunks(script: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 1usize;
    let mut in_data = false;
    for (i, line) in script.lines().enumerate() {
        let n = i + 1;
        if in_data {
            if line.trim_end() == "\\." {
                in_data = false;
                start = n + 1;
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('\\') && !inside_literal(&cur) {
            flush(&mut out, &mut cur, start);
            let lower = trimmed.to_ascii_lowercase();
            in_data = lower.starts_with("\\copy") && ends_with_stdin(&lower);
            start = n + 1;
            continue;
        }
        if cur.is_empty() {
            start = n;
        }
        cur.push_str(line);
        cur.push('\n');
        if trimmed.trim_end().ends_with(';') && last_is_copy_from_stdin(&cur) {
            flush(&mut out, &mut cur, start);
            in_data = true;
        }
    }
    flush(&mut out, &mut cur, start);
    out
}

fn flush(out: &mut Vec<Chunk>, cur: &mut String, line: usize) {
    if !cur.trim().is_empty() {
        out.push(Chunk { line, sql: std::mem::take(cur) });
    }
    cur.clear();
}

/// Whether the text ends inside a string, identifier or comment (so a backslash line is data).
fn inside_literal(text: &str) -> bool {
    !text.is_empty() && pg_query::scan(text).is_err()
}

fn ends_with_stdin(lower: &str) -> bool {
    let words: Vec<&str> = lower.split_whitespace().collect();
    words.windows(2).any(|w| w[0] == "from" && (w[1] == "stdin" || w[1] == "pstdin"))
}

fn last_is_copy_from_stdin(text: &str) -> bool {
    let Ok(stmts) = pg_query::split_with_scanner(text) else {
        return false;
    };
    let Some(last) = stmts.iter().rev().find(|s| !s.trim().is_empty()) else {
        return false;
    };
    let lower = last.to_ascii_lowercase();
    lower.trim_start().starts_with("copy") && ends_with_stdin(&lower)
}

/// The 1-based line of `offset` within `chunk`.
pub fn line_at(chunk: &Chunk, offset: usize) -> usize {
    chunk.line + chunk.sql.get(..offset.min(chunk.sql.len())).map_or(0, |t| t.matches('\n').count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_data_is_not_sql() {
        let s = "\\set x 1\nCOPY users FROM STDIN;\n1\tDELETE FROM users;\n\\.\nDELETE FROM users\n  WHERE id BETWEEN 1 AND 2;\n";
        let c = chunks(s);
        assert_eq!(c.len(), 2);
        assert!(c[0].sql.starts_with("COPY"));
        assert_eq!(c[1].line, 5);
        assert!(c[1].sql.contains("BETWEEN"));
    }

    #[test]
    fn statement_after_copy_is_seen() {
        // The bypass the brief warns about: text after COPY … FROM STDIN; on the same line.
        let c = chunks("COPY t FROM STDIN; DELETE FROM users;\n\\.\n");
        assert!(c[0].sql.contains("DELETE"));
    }

    #[test]
    fn meta_copy_from_stdin_skips_data() {
        let c = chunks("\\copy users from stdin\nDELETE FROM users;\n\\.\nSELECT 1;\n");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].sql.trim(), "SELECT 1;");
    }
}
