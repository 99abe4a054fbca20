//! `blastwall check`: the same analysis and static rules as the proxy, offline, over psql
//! scripts — for CI pipelines and for the 30-second look before a cleanup script runs.
//!
//! Owns: reading scripts and the files they include (`\i`, `\ir`; cycles and missing files are
//! errors), judging each query string the script sends, the findings only a script has (a
//! psql variable with no known value in a statement that writes, `\gexec`), reporting with
//! file:line as text or JSON, the count of statements checked. Does not own: the rules
//! (`policy`), the analysis (`analyze`), reading psql's syntax (`analyze::script`).

use crate::analyze::script::{Chunk, Item, Lexer, Text, Vars};
use crate::analyze::{self, ParseOptions};
use crate::guard::{Guard, SessionInfo};
use crate::policy::Mode;
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// One finding, as reported.
#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub line: usize,
    pub verdict: &'static str,
    pub rule: &'static str,
    pub mode: &'static str,
    pub message: String,
    pub hint: &'static str,
    pub policy: String,
    pub statement: String,
}

/// Who the scripts run as, and the variables given with `-v name=value`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub user: String,
    pub application_name: String,
    pub vars: Vars,
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reports: Vec<Report>,
    /// Some statement would be refused.
    pub refused: bool,
    /// Statements checked (a query string joined with `\;` counts each of its statements).
    pub statements: usize,
    /// Files read, includes counted.
    pub files: usize,
}

/// Why a check could not be done (exit status 2). No variant wraps its cause as a `source`,
/// so the cause is printed once.
#[derive(Debug, Error)]
pub enum CheckError {
    #[error("reading {file}: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("{at}: \\{command} {file}: {error}")]
    Include { at: String, command: &'static str, file: String, error: std::io::Error },
    #[error("{at}: include cycle: {chain}")]
    Cycle { at: String, chain: String },
    #[error("{at}: {message}")]
    Meta { at: String, message: String },
}

/// Checks the scripts (`-` is standard input).
pub fn run(guard: &Guard, files: &[PathBuf], opts: &Options) -> Result<Outcome, CheckError> {
    let mut walk = Walk { guard, opts, out: Outcome::default(), stack: Vec::new() };
    for f in files {
        let (name, dir, text) = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|error| CheckError::Read { file: "<stdin>".into(), error })?;
            ("<stdin>".to_string(), PathBuf::new(), s)
        } else {
            let name = f.display().to_string();
            let text = std::fs::read_to_string(f).map_err(|error| CheckError::Read { file: name.clone(), error })?;
            (name, f.parent().map(Path::to_path_buf).unwrap_or_default(), text)
        };
        // One session per script, as `psql -v … -f script`: PREPARE in a script is seen by
        // its EXECUTE; the variables start from the command line's.
        let mut session =
            Session { info: SessionInfo::new(&opts.user, &opts.application_name), vars: opts.vars.clone() };
        walk.stack.push((std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()), name.clone()));
        walk.script(&name, &dir, &text, &mut session)?;
        walk.stack.pop();
    }
    Ok(walk.out)
}

struct Session {
    info: SessionInfo,
    vars: Vars,
}

struct Walk<'a> {
    guard: &'a Guard,
    opts: &'a Options,
    out: Outcome,
    /// The files being read, outermost first: canonical path and name as shown.
    stack: Vec<(PathBuf, String)>,
}

impl Walk<'_> {
    fn script(&mut self, name: &str, dir: &Path, text: &str, s: &mut Session) -> Result<(), CheckError> {
        self.out.files += 1;
        let mut lexer = Lexer::new(text);
        while let Some(item) = lexer.next_item(&mut s.vars) {
            let at = |line: usize| format!("{name}:{line}");
            match item {
                Item::Sql(chunk) => self.judge(name, &chunk, &mut s.info),
                Item::Include { path, relative, line } => {
                    let command = if relative { "ir" } else { "i" };
                    let file = if relative { dir.join(&path) } else { PathBuf::from(&path) };
                    let shown = file.display().to_string();
                    let err = |error| CheckError::Include { at: at(line), command, file: shown.clone(), error };
                    let canonical = std::fs::canonicalize(&file).map_err(err)?;
                    if let Some(i) = self.stack.iter().position(|(p, _)| *p == canonical) {
                        let mut chain: Vec<&str> = self.stack[i..].iter().map(|(_, n)| n.as_str()).collect();
                        chain.push(&shown);
                        return Err(CheckError::Cycle { at: at(line), chain: chain.join(" → ") });
                    }
                    let text = std::fs::read_to_string(&file).map_err(err)?;
                    let sub = file.parent().map(Path::to_path_buf).unwrap_or_default();
                    self.stack.push((canonical, shown.clone()));
                    self.script(&shown, &sub, &text, s)?;
                    self.stack.pop();
                }
                Item::Connect { user, line: _ } => {
                    let user = user.unwrap_or_else(|| s.info.user.clone());
                    s.info = SessionInfo::new(&user, &self.opts.application_name);
                }
                Item::Gexec { line } => self.own_finding(
                    name,
                    line,
                    "gexec",
                    "\\gexec: runs every value its query returns as a statement, which cannot be seen before it runs".into(),
                    "Write the statements into the script, or check the generated statements with `blastwall check` before running them.",
                    "",
                ),
                Item::Error { line, message } => return Err(CheckError::Meta { at: at(line), message }),
            }
        }
        Ok(())
    }

    /// Judges one query string as the proxy would.
    fn judge(&mut self, name: &str, chunk: &Chunk, info: &mut SessionInfo) {
        // An unset variable is sent as written (`:uid`), which the server rejects — unless
        // the text parses that way (`arr[lo:hi]` is no variable). Otherwise its value, not
        // known here, decides what runs: the statement is judged with a placeholder.
        let unknown = !chunk.unset.is_empty() && analyze::deep::with_parse(&chunk.sent.sql, 0.into(), |r| r.is_err());
        let text: &Text = if unknown { &chunk.judged } else { &chunk.sent };
        self.out.statements += count(&text.sql);
        if let Ok((statements, decision)) = self.guard.decide_text(text.sql.as_bytes(), info) {
            for f in decision.findings {
                let offset = statements.iter().find(|s| s.text == f.statement).map_or(0, |s| s.offset);
                let verdict = match f.mode {
                    Mode::Enforce | Mode::DryRun => "refused",
                    Mode::Warn | Mode::Off => "warning",
                };
                self.out.refused |= verdict == "refused";
                let by_name = unqualified_note(&statements, &f, &self.guard.policy());
                self.out.reports.push(Report {
                    file: name.to_string(),
                    line: text.line_at(offset),
                    verdict,
                    rule: f.rule,
                    mode: f.mode.as_str(),
                    message: format!("{}: {}{by_name}", f.what, f.why),
                    hint: f.hint,
                    policy: f.source,
                    statement: f.statement,
                });
            }
        }
        if unknown && may_write(&text.sql) {
            let vars = chunk.unset.join(", ");
            self.own_finding(
                name,
                chunk.line,
                "unset-variable",
                format!("a statement that can write uses psql variable {vars}, which has no value known offline: what it changes depends on that value"),
                "Give the value the script will run with: blastwall check -v name=value (as psql -v), or \\set it in the script.",
                &chunk.sent.sql,
            );
        }
    }

    /// A finding only a script can have: always a refusal, whatever the policy's mode.
    fn own_finding(
        &mut self,
        file: &str,
        line: usize,
        rule: &'static str,
        message: String,
        hint: &'static str,
        sql: &str,
    ) {
        self.out.refused = true;
        self.out.reports.push(Report {
            file: file.to_string(),
            line,
            verdict: "refused",
            rule,
            mode: Mode::Enforce.as_str(),
            message,
            hint,
            policy: "blastwall check".into(),
            statement: sql.trim().to_string(),
        });
    }
}

/// Offline, an unqualified name is read as the policy's table of that name; the proxy
/// resolves it as the server will (`crate::names`). Says so when a finding depends on it.
fn unqualified_note(
    statements: &[analyze::Statement],
    f: &crate::policy::Finding,
    policy: &crate::policy::Policy,
) -> String {
    let names: Vec<String> = statements
        .iter()
        .filter(|s| s.text == f.statement)
        .flat_map(|s| &s.writes)
        .filter_map(|w| w.target.as_ref())
        .filter(|t| t.schema.is_none())
        .filter_map(|t| policy.tables.iter().find(|p| p.matches(t)).map(|p| format!("{} as {}", t.name, p.qualified())))
        .collect();
    match names.first() {
        None => String::new(),
        Some(n) => format!(
            " (read offline by name: the unqualified {n}; through blastwall it is the relation the session's search_path resolves it to)"
        ),
    }
}

/// Statements in a query string (one if it does not parse).
fn count(sql: &str) -> usize {
    analyze::deep::with_parse(sql, 0.into(), |r| r.map_or(1, |r| r.protobuf.stmts.len()))
}

/// Whether a statement may change data: it does not parse, or the analysis finds a write, an
/// opaque part, or a call of a function whose body may write.
fn may_write(sql: &str) -> bool {
    analyze::deep::with_parse(sql, 0.into(), |r| r.is_err())
        || analyze::analyze(sql, ParseOptions::default()).iter().any(|s| !s.is_harmless() || s.calls_functions)
}

pub fn print(reports: &[Report], format: Format) {
    match format {
        Format::Json => {
            for r in reports {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        Format::Text => {
            for r in reports {
                println!(
                    "{}:{}: {} {} [rule {}, mode {}, {}]",
                    r.file, r.line, r.verdict, r.message, r.rule, r.mode, r.policy
                );
                println!("    hint: {}", r.hint);
            }
        }
    }
}

/// The summary line: `checked 3 statements in 1 file: 2 findings, 2 refused`.
pub fn summary(out: &Outcome) -> String {
    let refused = out.reports.iter().filter(|r| r.verdict == "refused").count();
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "checked {} in {}: {}, {refused} refused",
        plural(out.statements, "statement", "statements"),
        plural(out.files, "file", "files"),
        plural(out.reports.len(), "finding", "findings"),
    )
}
