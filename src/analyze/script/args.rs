//! The arguments of a psql meta-command (`\set name value`, `\i file`), read as psql reads
//! them: separated by blanks, `'…'` quoted (with `''` and backslash escapes), `"…"` kept with
//! its quotes, `:name`, `:'name'` and `:"name"` replaced by variables, `` `…` `` (a shell
//! command) unknown offline.
//!
//! Owns: that reading. Does not own: what the commands do (`script`).

use super::Vars;

/// One argument: its value, or (when it depends on something unknown offline) as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Known(String),
    Unknown(String),
}

/// The arguments in `raw` (the text after the command's name).
pub fn meta_args(raw: &str, vars: &Vars) -> Vec<Arg> {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let begin = i;
        let mut value = String::new();
        let mut known = true;
        while i < chars.len() && !chars[i].is_whitespace() {
            match chars[i] {
                '\'' => {
                    i += 1;
                    while i < chars.len() {
                        match chars[i] {
                            '\'' if chars.get(i + 1) == Some(&'\'') => {
                                value.push('\'');
                                i += 2;
                            }
                            '\'' => break,
                            '\\' if i + 1 < chars.len() => {
                                value.push(match chars[i + 1] {
                                    'n' => '\n',
                                    't' => '\t',
                                    'r' => '\r',
                                    c => c,
                                });
                                i += 2;
                            }
                            c => {
                                value.push(c);
                                i += 1;
                            }
                        }
                    }
                    i += 1;
                }
                '"' => {
                    value.push('"');
                    i += 1;
                    while i < chars.len() {
                        value.push(chars[i]);
                        i += 1;
                        if chars[i - 1] == '"' {
                            break;
                        }
                    }
                }
                '`' => {
                    known = false;
                    i += 1;
                    while i < chars.len() && chars[i] != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                ':' => match variable(&chars[i..], vars) {
                    Some((len, Some(v))) => {
                        value.push_str(&v);
                        i += len;
                    }
                    Some((len, None)) => {
                        known = false;
                        i += len;
                    }
                    None => {
                        value.push(':');
                        i += 1;
                    }
                },
                c => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        let written: String = chars[begin..i.min(chars.len())].iter().collect();
        out.push(if known { Arg::Known(value) } else { Arg::Unknown(written) });
    }
    out
}

/// A variable reference at the start of `s`: its length and value (`None`: unset).
fn variable(s: &[char], vars: &Vars) -> Option<(usize, Option<String>)> {
    let is_var = |c: &char| c.is_alphanumeric() || *c == '_';
    let quote = s.get(1).filter(|c| **c == '\'' || **c == '"').copied();
    let skip = if quote.is_some() { 2 } else { 1 };
    let name: String = s[skip.min(s.len())..].iter().take_while(|c| is_var(c)).collect();
    if name.is_empty() {
        return None;
    }
    let mut len = skip + name.chars().count();
    if let Some(q) = quote {
        if s.get(len) != Some(&q) {
            return None;
        }
        len += 1;
    }
    let value = vars.get(&name).map(|v| match quote {
        Some('\'') => format!("'{}'", v.replace('\'', "''")),
        Some(_) => format!("\"{}\"", v.replace('"', "\"\"")),
        None => v.clone(),
    });
    Some((len, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_variables() {
        let mut vars = Vars::new();
        vars.insert("dir".into(), "sql/parts".into());
        let a = meta_args(" 'it''s here' :dir/x.sql `date` :nope \"Id\"", &vars);
        assert_eq!(
            a,
            vec![
                Arg::Known("it's here".into()),
                Arg::Known("sql/parts/x.sql".into()),
                Arg::Unknown("`date`".into()),
                Arg::Unknown(":nope".into()),
                Arg::Known("\"Id\"".into()),
            ]
        );
    }
}
