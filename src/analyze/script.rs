//! psql scripts for `blastwall check`: what a script sends to the server, read the way psql's
//! own lexer reads it.
//!
//! Owns: splitting a script into the query strings psql sends (at `;` outside quotes, comments
//! and parentheses; `\;` joins statements into one query string; `\g` and friends send), psql
//! variables (`:name` re-read as SQL, `:'name'` as a literal, `:"name"` as an identifier,
//! `:{?name}`; `\set`, `\unset`), the meta-commands that matter to what runs (`\i`, `\ir`,
//! `\include`, `\include_relative`, `\c`, `\gexec`, `\copy (query) …`), and skipping the
//! inline data that follows `COPY … FROM STDIN` (or `\copy … from stdin`) up to `\.`.
//! Does not own: reading files and following includes (`check`), SQL analysis.

mod args;
mod meta;
use std::collections::{HashMap, VecDeque};

/// psql variables: name → value. A variable whose value cannot be known offline (set from a
/// backtick command, `\prompt`, `\gset`) is absent.
pub type Vars = HashMap<String, String>;

/// Query text and the script line each of its bytes came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    pub sql: String,
    lines: Vec<usize>,
    raw: Vec<u8>,
}

impl Text {
    fn push(&mut self, s: &[u8], line: usize) {
        self.raw.extend_from_slice(s);
        self.lines.resize(self.raw.len(), line);
    }

    fn finish(mut self) -> Text {
        // Split only at ASCII bytes, so the text stays valid UTF-8.
        self.sql = String::from_utf8_lossy(&std::mem::take(&mut self.raw)).into_owned();
        self.lines.resize(self.sql.len(), self.lines.last().copied().unwrap_or(1));
        self
    }

    /// The script line of the first non-blank byte at or after `offset`.
    pub fn line_at(&self, offset: usize) -> usize {
        let b = self.sql.as_bytes();
        let mut i = offset.min(b.len());
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        self.lines.get(i).or(self.lines.last()).copied().unwrap_or(1)
    }
}

/// One query string psql would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The line the query starts on.
    pub line: usize,
    /// The text as psql sends it (an unset variable is left as written, as psql does).
    pub sent: Text,
    /// The text with each unset variable replaced by a placeholder (`$n`, a literal, an
    /// identifier), for judging the statement's shape.
    pub judged: Text,
    /// Variables used but unset, in order of use (`:name`, `:'name'`, `:"name"`).
    pub unset: Vec<String>,
}

/// What a script does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Sql(Chunk),
    /// `\i`/`\include` (relative: `false`) or `\ir`/`\include_relative` (`true`).
    Include {
        path: String,
        relative: bool,
        line: usize,
    },
    /// `\c … user`: later statements run as this user.
    Connect {
        user: Option<String>,
        line: usize,
    },
    /// `\gexec`: every value the query returns is run as a statement.
    Gexec {
        line: usize,
    },
    /// A meta-command blastwall cannot follow (an include whose name is not known).
    Error {
        line: usize,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Normal,
    Quoted { escapes: bool },
    Ident,
    Dollar(Vec<u8>),
    Comment(u32),
}

/// A variable's value being read as SQL (psql pushes it onto its lexer's input).
struct Pushed {
    text: Vec<u8>,
    pos: usize,
    name: String,
}

/// Reads a script item by item; variables set by one item apply to the next.
pub struct Lexer {
    base: Vec<u8>,
    pos: usize,
    line: usize,
    pushed: Vec<Pushed>,
    state: State,
    parens: u32,
    sent: Text,
    judged: Text,
    unset: Vec<String>,
    start: usize,
    placeholders: usize,
    /// A COPY … FROM STDIN was sent: its data starts at the next line.
    copy_pending: bool,
    items: VecDeque<Item>,
}

fn is_var_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

impl Lexer {
    pub fn new(script: &str) -> Lexer {
        Lexer {
            base: script.as_bytes().to_vec(),
            pos: 0,
            line: 1,
            pushed: Vec::new(),
            state: State::Normal,
            parens: 0,
            sent: Text::default(),
            judged: Text::default(),
            unset: Vec::new(),
            start: 1,
            placeholders: 0,
            copy_pending: false,
            items: VecDeque::new(),
        }
    }

    /// The next item, or `None` at the end of the script (which sends what is left).
    pub fn next_item(&mut self, vars: &mut Vars) -> Option<Item> {
        while self.items.is_empty() {
            if !self.step(vars) {
                self.flush();
                break;
            }
        }
        self.items.pop_front()
    }

    fn peek(&self, k: usize) -> Option<u8> {
        match self.pushed.last() {
            Some(p) => p.text.get(p.pos + k).copied(),
            None => self.base.get(self.pos + k).copied(),
        }
    }

    fn bump(&mut self) -> Option<u8> {
        loop {
            match self.pushed.last_mut() {
                Some(p) if p.pos < p.text.len() => {
                    p.pos += 1;
                    return Some(p.text[p.pos - 1]);
                }
                Some(_) => {
                    self.pushed.pop();
                }
                None => {
                    let b = *self.base.get(self.pos)?;
                    self.pos += 1;
                    if b == b'\n' {
                        self.line += 1;
                    }
                    return Some(b);
                }
            }
        }
    }

    fn at_end(&mut self) -> bool {
        while self.pushed.last().is_some_and(|p| p.pos >= p.text.len()) {
            self.pushed.pop();
        }
        self.pushed.is_empty() && self.pos >= self.base.len()
    }

    fn emit(&mut self, s: &[u8]) {
        if self.sent.raw.is_empty() {
            self.start = self.line;
        }
        self.sent.push(s, self.line);
        self.judged.push(s, self.line);
    }

    /// Reads one token; `false` at the end of the script.
    fn step(&mut self, vars: &mut Vars) -> bool {
        if self.at_end() {
            return false;
        }
        let c = self.peek(0).unwrap_or(0);
        match self.state.clone() {
            State::Quoted { escapes } => {
                self.bump();
                self.emit(&[c]);
                if escapes && c == b'\\' {
                    if let Some(n) = self.bump() {
                        self.emit(&[n]);
                    }
                } else if c == b'\'' {
                    if self.peek(0) == Some(b'\'') {
                        self.bump();
                        self.emit(b"'");
                    } else {
                        self.state = State::Normal;
                    }
                }
            }
            State::Ident => {
                self.bump();
                self.emit(&[c]);
                if c == b'"' {
                    if self.peek(0) == Some(b'"') {
                        self.bump();
                        self.emit(b"\"");
                    } else {
                        self.state = State::Normal;
                    }
                }
            }
            State::Dollar(tag) => {
                if self.looking_at(&tag) {
                    for _ in 0..tag.len() {
                        self.bump();
                    }
                    self.emit(&tag);
                    self.state = State::Normal;
                } else {
                    self.bump();
                    self.emit(&[c]);
                }
            }
            State::Comment(depth) => {
                if self.looking_at(b"*/") {
                    self.take(2);
                    self.state = if depth == 1 { State::Normal } else { State::Comment(depth - 1) };
                } else if self.looking_at(b"/*") {
                    self.take(2);
                    self.state = State::Comment(depth + 1);
                } else {
                    self.take(1);
                }
            }
            State::Normal => self.normal(c, vars),
        }
        true
    }

    fn looking_at(&self, s: &[u8]) -> bool {
        s.iter().enumerate().all(|(k, &b)| self.peek(k) == Some(b))
    }

    /// Moves `n` bytes from the input to the query.
    fn take(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(b) = self.bump() {
                self.emit(&[b]);
            }
        }
    }

    fn normal(&mut self, c: u8, vars: &mut Vars) {
        let empty = self.sent.raw.is_empty();
        match c {
            b'\n' => {
                self.bump();
                if !empty {
                    self.emit(b"\n");
                }
                self.after_newline();
            }
            _ if c.is_ascii_whitespace() => {
                self.bump();
                if !empty {
                    self.emit(&[c]);
                }
            }
            b'-' if self.peek(1) == Some(b'-') => {
                // psql drops comments before a statement and keeps those inside it.
                while let Some(b) = self.peek(0).filter(|&b| b != b'\n') {
                    self.bump();
                    if !empty {
                        self.emit(&[b]);
                    }
                }
            }
            b'/' if self.peek(1) == Some(b'*') => {
                self.take(2);
                self.state = State::Comment(1);
            }
            b'\'' => {
                let prev = &self.sent.raw;
                let escapes = matches!(prev.last(), Some(b'e' | b'E'))
                    && !prev.len().checked_sub(2).is_some_and(|i| is_var_char(prev[i]) || prev[i] == b'$');
                self.take(1);
                self.state = State::Quoted { escapes };
            }
            b'"' => {
                self.take(1);
                self.state = State::Ident;
            }
            b'$' => {
                let prev = self.sent.raw.last().copied();
                match self.dollar_tag() {
                    Some(tag) if !prev.is_some_and(|p| is_var_char(p) || p == b'$') => {
                        self.take(tag.len());
                        self.state = State::Dollar(tag);
                    }
                    _ => self.take(1),
                }
            }
            b'(' => {
                self.parens += 1;
                self.take(1);
            }
            b')' => {
                self.parens = self.parens.saturating_sub(1);
                self.take(1);
            }
            b';' => {
                self.take(1);
                if self.parens == 0 {
                    self.flush();
                }
            }
            b':' => self.variable(vars),
            b'\\' => match self.peek(1) {
                Some(b';') | Some(b':') => {
                    self.bump();
                    self.take(1);
                }
                _ => self.meta(vars),
            },
            _ => self.take(1),
        }
    }

    /// `$tag$` or `$$` at the input (a dollar quote's delimiter), not `$1`.
    fn dollar_tag(&self) -> Option<Vec<u8>> {
        let mut tag = vec![b'$'];
        let mut k = 1;
        while let Some(b) = self.peek(k) {
            if b == b'$' {
                tag.push(b);
                return Some(tag);
            }
            if !(is_var_char(b) && !(k == 1 && b.is_ascii_digit())) {
                return None;
            }
            tag.push(b);
            k += 1;
        }
        None
    }

    /// `:name`, `:'name'`, `:"name"`, `:{?name}`, or a `::` cast.
    fn variable(&mut self, vars: &Vars) {
        if self.peek(1) == Some(b':') {
            return self.take(2);
        }
        let quote = self.peek(1).filter(|&q| q == b'\'' || q == b'"');
        let test = self.looking_at(b":{?");
        let skip = if test {
            3
        } else if quote.is_some() {
            2
        } else {
            1
        };
        let mut name = Vec::new();
        while let Some(b) = self.peek(skip + name.len()).filter(|&b| is_var_char(b)) {
            name.push(b);
        }
        let close = match (test, quote) {
            (true, _) => Some(b'}'),
            (false, q) => q,
        };
        let closed = close.is_none_or(|q| self.peek(skip + name.len()) == Some(q));
        if name.is_empty() || !closed {
            return self.take(1);
        }
        let len = skip + name.len() + usize::from(close.is_some());
        let written: Vec<u8> = (0..len).filter_map(|k| self.peek(k)).collect();
        for _ in 0..len {
            self.bump();
        }
        let name = String::from_utf8_lossy(&name).into_owned();
        if test {
            let v: &[u8] = if vars.contains_key(&name) { b"TRUE" } else { b"FALSE" };
            return self.emit(v);
        }
        match (vars.get(&name), quote) {
            (Some(v), None) if !self.pushed.iter().any(|p| p.name == name) => {
                // psql reads a variable's value as more SQL (it may hold several statements).
                self.pushed.push(Pushed { text: v.as_bytes().to_vec(), pos: 0, name });
            }
            (Some(_), None) => self.emit(&written),
            (Some(v), Some(b'\'')) => self.emit(quote_literal(v).as_bytes()),
            (Some(v), Some(_)) => self.emit(format!("\"{}\"", v.replace('"', "\"\"")).as_bytes()),
            (None, q) => {
                let placeholder = match q {
                    None => {
                        self.placeholders += 1;
                        format!("${}", self.placeholders)
                    }
                    Some(b'\'') => format!("':{name}'"),
                    Some(_) => format!("\"{name}\""),
                };
                if self.sent.raw.is_empty() {
                    self.start = self.line;
                }
                self.sent.push(&written, self.line);
                self.judged.push(placeholder.as_bytes(), self.line);
                self.unset.push(String::from_utf8_lossy(&written).into_owned());
            }
        }
    }

    /// Ends the current query string: psql sends it.
    fn flush(&mut self) {
        let sent = std::mem::take(&mut self.sent).finish();
        let judged = std::mem::take(&mut self.judged).finish();
        let unset = std::mem::take(&mut self.unset);
        self.placeholders = 0;
        self.parens = 0;
        if sent.sql.trim().is_empty() {
            return;
        }
        if is_copy_from_stdin(&sent.sql) {
            self.copy_pending = true;
        }
        self.items.push_back(Item::Sql(Chunk { line: self.start, sent, judged, unset }));
    }

    /// At the start of a line: COPY data follows a COPY … FROM STDIN just sent.
    fn after_newline(&mut self) {
        if self.copy_pending && self.pushed.is_empty() {
            self.copy_pending = false;
            self.skip_copy_data();
        }
    }

    /// Skips COPY data lines up to and including `\.`.
    fn skip_copy_data(&mut self) {
        while self.pos < self.base.len() {
            let end = self.base[self.pos..].iter().position(|&b| b == b'\n').map_or(self.base.len(), |i| self.pos + i);
            let line = String::from_utf8_lossy(&self.base[self.pos..end]).into_owned();
            self.pos = (end + 1).min(self.base.len());
            self.line += 1;
            if line.trim_end() == "\\." {
                return;
            }
        }
    }
}

/// psql's `:'name'`: a literal, `E'…'` when the value holds a backslash.
fn quote_literal(v: &str) -> String {
    let body = v.replace('\'', "''");
    if v.contains('\\') {
        format!(" E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

fn is_copy_from_stdin(sql: &str) -> bool {
    let Ok(stmts) = pg_query::split_with_scanner(sql) else {
        return false;
    };
    let Some(last) = stmts.iter().rev().find(|s| !s.trim().is_empty()) else {
        return false;
    };
    let lower = last.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    words.first() == Some(&"copy") && words.windows(2).any(|w| w[0] == "from" && w[1] == "stdin")
}

/// Every item of a script, with the given variables (for tests and simple callers).
pub fn items(script: &str, vars: &mut Vars) -> Vec<Item> {
    let mut lexer = Lexer::new(script);
    std::iter::from_fn(|| lexer.next_item(vars)).collect()
}

#[cfg(test)]
mod tests;
