//! psql's meta-commands, as they bear on what a script runs: `\g` and friends send the query,
//! `\set`/`\unset`/`\prompt` change variables, `\i`/`\ir` include, `\c` changes the user,
//! `\gexec` runs what its query returns, `\copy (query) …` runs the query. Every other
//! meta-command is skipped.
//!
//! Owns: reading a meta-command and acting on it. Does not own: the lexer (`script`).

use super::args::{meta_args, Arg};
use super::{is_var_char, Chunk, Item, Lexer, Text, Vars};

impl Lexer {
    /// A backslash command: its name, and its arguments up to the end of the line (or `\\`).
    pub(super) fn meta(&mut self, vars: &mut Vars) {
        let line = self.line;
        self.bump();
        let mut name = Vec::new();
        while let Some(b) = self.peek(0).filter(|&b| !b.is_ascii_whitespace() && b != b'\\') {
            name.push(b);
            self.bump();
            if !is_var_char(b) {
                break;
            }
        }
        let name = String::from_utf8_lossy(&name).into_owned();
        let whole_line = matches!(name.as_str(), "copy" | "!" | "setenv" | "sf" | "sv" | "ef" | "ev" | "h" | "help");
        let mut raw = Vec::new();
        while let Some(b) = self.peek(0).filter(|&b| b != b'\n') {
            if !whole_line && b == b'\\' && self.peek(1) == Some(b'\\') {
                self.bump();
                self.bump();
                break;
            }
            raw.push(b);
            self.bump();
        }
        let raw = String::from_utf8_lossy(&raw).into_owned();
        self.command(&name, &raw, line, vars);
        // The meta-command's line end is not part of the query.
        if self.peek(0) == Some(b'\n') {
            self.bump();
            self.after_newline();
        }
    }

    fn command(&mut self, name: &str, raw: &str, line: usize, vars: &mut Vars) {
        let args = || meta_args(raw, vars);
        match name {
            "g" | "gx" | "gset" | "gdesc" | "crosstabview" | "watch" | "gexec" => {
                self.flush();
                if name == "gexec" {
                    self.items.push_back(Item::Gexec { line });
                }
            }
            "i" | "include" | "ir" | "include_relative" => {
                let relative = name.starts_with("ir") || name == "include_relative";
                match args().into_iter().next() {
                    Some(Arg::Known(path)) => self.items.push_back(Item::Include { path, relative, line }),
                    Some(Arg::Unknown(written)) => self.items.push_back(Item::Error {
                        line,
                        message: format!(
                            "\\{name} {written}: the file name is not known offline (set its variables with -v)"
                        ),
                    }),
                    None => self.items.push_back(Item::Error { line, message: format!("\\{name} needs a file name") }),
                }
            }
            "set" => {
                let a = args();
                let Some(Arg::Known(var)) = a.first() else { return };
                let mut value = String::new();
                for v in &a[1..] {
                    match v {
                        Arg::Known(s) => value.push_str(s),
                        Arg::Unknown(_) => {
                            vars.remove(var);
                            return;
                        }
                    }
                }
                vars.insert(var.clone(), value);
            }
            "unset" => {
                if let Some(Arg::Known(var)) = args().first() {
                    vars.remove(var);
                }
            }
            "prompt" => {
                if let Some(Arg::Known(var)) = args().last() {
                    vars.remove(var);
                }
            }
            "c" | "connect" => {
                let a = args();
                let user = match a.get(1) {
                    Some(Arg::Known(u)) if u != "-" => Some(u.clone()),
                    _ => None,
                };
                self.items.push_back(Item::Connect { user, line });
            }
            "copy" => self.meta_copy(raw, line),
            _ => {}
        }
    }

    /// `\copy (query) to …` runs the query on the server; `\copy … from stdin` reads data from
    /// the script's next lines.
    fn meta_copy(&mut self, raw: &str, line: usize) {
        let t = raw.trim_start();
        if t.starts_with('(') {
            let mut depth = 0;
            let mut quote = None;
            for (i, ch) in t.char_indices() {
                match (quote, ch) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '\'' | '"') => quote = Some(ch),
                    (None, '(') => depth += 1,
                    (None, ')') => {
                        depth -= 1;
                        if depth == 0 {
                            let mut sql = Text::default();
                            sql.push(&t.as_bytes()[1..i], line);
                            let sql = sql.finish();
                            self.items.push_back(Item::Sql(Chunk {
                                line,
                                sent: sql.clone(),
                                judged: sql,
                                unset: Vec::new(),
                            }));
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        let lower = raw.to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        if words.windows(2).any(|w| w[0] == "from" && w[1] == "stdin") {
            self.copy_pending = true;
        }
    }
}
