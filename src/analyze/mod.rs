//! Analysis: SQL text → facts about what each statement would write, with `pg_query`
//! (PostgreSQL's own parser), exactly as the server reads the text.
//!
//! Owns: decoding the text as the server would (client encoding, `standard_conforming_strings`),
//! finding every write of every statement at any depth, and the shape of each WHERE predicate.
//! Does not own: policy (which tables and columns matter), I/O, or name resolution against the
//! live catalog — an unqualified name is reported as written.

pub mod budget;
mod builtins;
mod children;
pub mod deep;
pub mod directive;
mod nodes;
mod predicate;
mod restrict;
pub mod script;
mod sequences;
mod shape;
mod walk;

pub use builtins::{look_alikes, runs_given_code, BUILTINS, RUNNERS};
pub use predicate::{Cond, RangeKind, Where};
pub use shape::{key_hash, literal_shape, Shapes};
pub use walk::parse_qualified;

/// A relation as the statement names it (identifiers already folded by the parser).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelName {
    pub schema: Option<String>,
    pub name: String,
}

impl RelName {
    /// An unqualified name of digits only, which the server's `regclass` input reads as an OID
    /// when a string gives it (`setval('16387', …)`, `nextval('0016387')`): `Some(None)` when
    /// the digits are beyond an OID's range. (A quoted `'"16387"'` is a name, and is taken as
    /// an OID too: only stricter.)
    pub fn as_oid(&self) -> Option<Option<u32>> {
        let digits = self.schema.is_none() && !self.name.is_empty() && self.name.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| self.name.parse().ok())
    }
}

impl std::fmt::Display for RelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// What a write does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Delete,
    Update {
        columns: Vec<String>,
    },
    /// INSERT … ON CONFLICT … DO UPDATE: the conflict target's columns, or the constraint.
    Upsert {
        conflict_columns: Vec<String>,
        constraint: Option<String>,
        /// The columns its DO UPDATE SET sets.
        columns: Vec<String>,
    },
    MergeDelete,
    /// MERGE … WHEN … THEN UPDATE SET: the columns it sets.
    MergeUpdate {
        columns: Vec<String>,
    },
    Truncate {
        cascade: bool,
    },
    DropTable {
        cascade: bool,
    },
    DropSequence,
    DropSchema {
        cascade: bool,
    },
    DropDatabase,
    DropOwned,
    DropColumn(String),
    RenameTable,
    RenameColumn(String),
    /// `setval(…)` or ALTER SEQUENCE; `None` target when the sequence is not a constant.
    Setval,
    AlterSequence,
    /// `ALTER TABLE … SET UNLOGGED`, or `CREATE UNLOGGED TABLE … PARTITION OF`/`INHERITS` the
    /// target: crash recovery and failover to a replica empty an unlogged table (a truncation
    /// postponed).
    SetUnlogged,
}

impl Op {
    /// The statement word a DBA would use for it.
    pub fn verb(&self) -> &'static str {
        match self {
            Op::Delete => "DELETE",
            Op::Update { .. } => "UPDATE",
            Op::Upsert { .. } => "INSERT … ON CONFLICT DO UPDATE",
            Op::MergeDelete => "MERGE … DELETE",
            Op::MergeUpdate { .. } => "MERGE … UPDATE",
            Op::Truncate { .. } => "TRUNCATE",
            Op::DropTable { .. } => "DROP TABLE",
            Op::DropSequence => "DROP SEQUENCE",
            Op::DropSchema { .. } => "DROP SCHEMA",
            Op::DropDatabase => "DROP DATABASE",
            Op::DropOwned => "DROP OWNED",
            Op::DropColumn(_) => "ALTER TABLE … DROP COLUMN",
            Op::RenameTable => "ALTER TABLE … RENAME",
            Op::RenameColumn(_) => "ALTER TABLE … RENAME COLUMN",
            Op::Setval => "setval()",
            Op::AlterSequence => "ALTER SEQUENCE",
            Op::SetUnlogged => "SET UNLOGGED",
        }
    }

    /// The columns an UPDATE in any form (UPDATE, MERGE … UPDATE, ON CONFLICT DO UPDATE) sets.
    pub fn assigned(&self) -> &[String] {
        match self {
            Op::Update { columns } | Op::MergeUpdate { columns } | Op::Upsert { columns, .. } => columns,
            _ => &[],
        }
    }

    /// DELETE and UPDATE in any form: the writes whose WHERE is judged and whose rows count.
    pub fn is_row_write(&self) -> bool {
        matches!(self, Op::Delete | Op::Update { .. } | Op::MergeDelete | Op::MergeUpdate { .. })
    }
}

/// One write found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub op: Op,
    /// The relation (or sequence, or schema/database name in `name`) written; `None` when the
    /// statement does not name it in a way the parser can see (e.g. `setval(some_expr, …)`).
    pub target: Option<RelName>,
    /// The predicate's shape, for DELETE/UPDATE/MERGE.
    pub predicate: Option<Where>,
    /// `ONLY relation` (DELETE, UPDATE, MERGE, TRUNCATE): the relation's inheritance children
    /// are not written.
    pub only: bool,
}

/// Something no parser can see into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opaque {
    DoBlock,
    Call(String),
    ExplainAnalyze,
    FunctionCallMessage,
    /// The text did not parse, and its tokens say it may write.
    Unparseable(String),
    /// The text cannot be decoded safely in the session's client encoding.
    Encoding(String),
    /// EXECUTE of a prepared statement this session never saw prepared.
    UnknownPrepared(String),
    /// The text's parse would not fit in the memory parsing may use (`budget`).
    TooLarge(String),
}

impl Opaque {
    pub fn describe(&self) -> String {
        match self {
            Opaque::DoBlock => "a DO block (its body is not visible to the parser)".into(),
            Opaque::Call(p) => {
                format!("CALL {p} (a procedure's body is not visible to the parser)")
            }
            Opaque::ExplainAnalyze => "EXPLAIN ANALYZE of a write (it executes the write)".into(),
            Opaque::FunctionCallMessage => "a FunctionCall protocol message".into(),
            Opaque::Unparseable(e) => format!(
                "a statement that does not parse ({e}) and may write; the parser's grammar (PostgreSQL 18) and the server's may disagree, so what the server would run cannot be known"
            ),
            Opaque::Encoding(e) => format!("text that cannot be decoded safely ({e})"),
            Opaque::UnknownPrepared(n) => {
                format!("EXECUTE of prepared statement \"{n}\", not prepared through blastwall")
            }
            Opaque::TooLarge(e) => format!("a text too large to analyze ({e})"),
        }
    }

    /// The policy key that says what to do with it.
    pub fn key(&self) -> &'static str {
        match self {
            Opaque::DoBlock => "do",
            Opaque::Call(_) => "call",
            Opaque::ExplainAnalyze => "explain_analyze",
            Opaque::FunctionCallMessage => "function_call",
            Opaque::Unparseable(_) | Opaque::Encoding(_) | Opaque::UnknownPrepared(_) | Opaque::TooLarge(_) => {
                "unparseable"
            }
        }
    }
}

/// SQL-level EXECUTE: the prepared name and the arguments, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    pub name: String,
    /// For each argument: the number of elements when it is an array literal.
    pub array_lens: Vec<Option<usize>>,
    /// Run by `EXPLAIN ANALYZE`: opaque when what it runs writes (see `guard::prepared`).
    pub explained: bool,
}

/// Facts about one statement of a query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statement {
    /// The statement's own text, for fingerprints and audit.
    pub text: String,
    /// Where the statement starts in the analyzed string (bytes).
    pub offset: usize,
    pub writes: Vec<Write>,
    pub opaque: Vec<Opaque>,
    /// `PREPARE name AS …`: the name and the facts of the prepared statement.
    pub prepare: Option<(String, Box<Statement>)>,
    pub executes: Vec<Execute>,
    /// `DEALLOCATE name` (`Some(name)`) or `DEALLOCATE ALL` (`None`).
    pub deallocate: Option<Option<String>>,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT and the like: a pre-check cannot wrap these.
    pub transaction_control: bool,
    /// `COPY … FROM STDIN`: its data comes from the client, during the statement.
    pub copy_from_stdin: bool,
    /// DDL that can change what a name resolves to (cached catalog facts are dropped).
    pub ddl: bool,
    /// It makes code the server may run for later statements — a function's or procedure's
    /// body, a rule's actions: what such code writes is not the statements' own
    /// (`guard::reached`).
    pub makes_code: bool,
    /// It makes a view (`CREATE [TEMP] VIEW`): a name written without a schema by code that
    /// runs after it in the same message may lead there (`guard::reached`).
    pub makes_view: bool,
    /// `SET blastwall.mode = '…'` (`Some(Some(value))`) or `RESET blastwall.mode` (`Some(None)`).
    pub session_mode: Option<Option<String>>,
    /// It calls a function that is not a well-known built-in: its body may write.
    pub calls_functions: bool,
    /// The names of those calls, as the server looks them up in the session's path: each
    /// unqualified one (lower-cased as the parser leaves it), and `*` for one qualified with a
    /// schema other than `pg_catalog` (a `pg_catalog.` call is a built-in's, and not listed).
    pub calls: Vec<String>,
    /// The function names of its calls qualified with a schema (the `*` of [`Statement::calls`]),
    /// whatever schema: which functions they may be by name (`guard::reached`).
    pub qualified_calls: Vec<String>,
    /// The sequences its `nextval(…)` calls name (`None`: not named by a constant).
    pub nextval: Vec<Option<RelName>>,
    /// Its `nextval` calls run once each (a SELECT of constants): see `sequences`.
    pub nextval_bounded: bool,
    /// Some fact above was read from a literal's value (a sequence in `setval('…')`, an array
    /// literal's length, `SET blastwall.mode = '…'`, an `EXPLAIN` option, a COPY file name):
    /// the facts cannot be shared with texts that differ only in literals (`shape`).
    pub reads_literals: bool,
}

impl Statement {
    pub fn is_harmless(&self) -> bool {
        self.writes.is_empty() && self.opaque.is_empty() && self.prepare.is_none() && self.executes.is_empty()
    }

    /// PostgreSQL's fingerprint of the statement (constants ignored), as 16 hex digits.
    pub fn fingerprint(&self) -> String {
        budget::within(&self.text, || pg_query::fingerprint(&self.text, 0, 0))
            .and_then(Result::ok)
            .map_or_else(|| "unparsed".into(), |f| f.hex)
    }
}

/// How the server will read the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    pub standard_conforming_strings: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { standard_conforming_strings: true }
    }
}

/// Decodes the raw bytes of a Query or Parse as the server would, or says why it cannot.
pub fn decode<'a>(sql: &'a [u8], client_encoding: &str) -> Result<std::borrow::Cow<'a, str>, Opaque> {
    if let Ok(s) = std::str::from_utf8(sql) {
        if sql.is_ascii() || is_utf8(client_encoding) {
            return Ok(std::borrow::Cow::Borrowed(s));
        }
    }
    if is_ascii_safe(client_encoding) {
        // In these encodings every byte ≥ 0x80 belongs to a non-ASCII character and no byte
        // of a non-ASCII character is below 0x80, so no quote, backslash or delimiter hides
        // inside one: a lossy decode keeps every token boundary where the server sees it.
        return Ok(String::from_utf8_lossy(sql));
    }
    Err(Opaque::Encoding(format!(
        "non-ASCII bytes in client_encoding {}",
        if client_encoding.is_empty() { "unknown" } else { client_encoding }
    )))
}

/// An encoding name as PostgreSQL compares it (`clean_encoding_name`): letters and digits
/// only, lower case.
fn clean_encoding_name(enc: &str) -> String {
    enc.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

fn is_utf8(enc: &str) -> bool {
    matches!(clean_encoding_name(enc).as_str(), "utf8" | "unicode" | "")
}

/// Whether PostgreSQL can use the encoding on the server side (`PG_VALID_BE_ENCODING`), by
/// any name `pg_char_to_encoding` accepts for it: exactly the encodings in which ASCII bytes
/// are always ASCII characters. The client-only ones (SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC,
/// GB18030, JOHAB, and their aliases such as WIN932, CP936, MSKANJI) have multibyte characters
/// whose second byte can be `'` or `\`; they and unknown names are not safe.
fn is_ascii_safe(enc: &str) -> bool {
    let e = clean_encoding_name(enc);
    let numbered = |prefix: &str, ok: &[&str]| e.strip_prefix(prefix).is_some_and(|n| ok.contains(&n));
    const WIN: &[&str] = &["866", "874", "1250", "1251", "1252", "1253", "1254", "1255", "1256", "1257", "1258"];
    matches!(
        e.as_str(),
        "sqlascii"
            | "utf8"
            | "unicode"
            | "eucjp"
            | "euccn"
            | "euckr"
            | "euctw"
            | "eucjis2004"
            | "muleinternal"
            | "koi8"
            | "koi8r"
            | "koi8u"
            | "alt"
            | "win"
            | "abc"
            | "tcvn"
            | "tcvn5712"
            | "vscii"
    ) || numbered("latin", &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"])
        || numbered("iso8859", &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "13", "14", "15", "16"])
        || numbered("win", WIN)
        || numbered("windows", WIN)
        || numbered("cp", WIN)
}

/// Analyzes a whole query string: every statement, in order. The tree is parsed, walked and
/// dropped on a deep stack (see `deep`).
pub fn analyze(sql: &str, opts: ParseOptions) -> Vec<Statement> {
    let sql = sql.to_string();
    deep::on_deep_stack(move || analyze_here(&sql, opts))
}

fn analyze_here(sql: &str, opts: ParseOptions) -> Vec<Statement> {
    // Declared first, dropped last: the permit covers the tree until it is gone.
    let _permit = match budget::admit(sql, opts.standard_conforming_strings) {
        Ok(p) => p,
        Err(e) => {
            let mut st = Statement { text: sql.trim().to_string(), ..Statement::default() };
            st.opaque.push(Opaque::TooLarge(e.to_string()));
            return vec![st];
        }
    };
    let parser_opts = if opts.standard_conforming_strings {
        pg_query::ParserOptions::DEFAULT
    } else {
        pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    };
    match pg_query::parse(sql, parser_opts) {
        Ok(p) => statements(sql, &p.protobuf, &[]),
        Err(e) => {
            // A name the parser's newer grammar reserves (`system_user`, a keyword since
            // PostgreSQL 16) is read as the older server reads it: an identifier.
            let quoted = newer_keywords_quoted(sql, opts);
            match quoted.as_ref().and_then(|(q, _)| pg_query::parse(q, parser_opts).ok()) {
                Some(p) => statements(sql, &p.protobuf, quoted.as_ref().map_or(&[], |(_, at)| at)),
                None => vec![unparsed(sql, &e.to_string(), opts)],
            }
        }
    }
}

/// The facts of every statement of a parse of `sql` — or of `sql` with the keywords at
/// `quoted` (byte offsets in `sql`) quoted, two bytes longer each.
fn statements(sql: &str, tree: &pg_query::protobuf::ParseResult, quoted: &[usize]) -> Vec<Statement> {
    // An offset in the parsed text, as an offset in `sql`.
    let original = |at: usize| {
        let before = quoted.iter().enumerate().filter(|&(i, &p)| p + 2 * i < at).count();
        at - 2 * before
    };
    let mut out = Vec::with_capacity(tree.stmts.len());
    for raw in &tree.stmts {
        let loc = usize::try_from(raw.stmt_location).unwrap_or(0);
        let len = usize::try_from(raw.stmt_len).unwrap_or(0);
        let start = original(loc).min(sql.len());
        let end = if len == 0 { sql.len() } else { original(loc.saturating_add(len)).min(sql.len()) };
        let text = sql.get(start..end).unwrap_or(sql);
        let lead = text.len() - text.trim_start().len();
        let mut st = Statement { text: text.trim().to_string(), offset: start + lead, ..Statement::default() };
        if let Some(node) = nodes::opt(&raw.stmt) {
            st.reads_literals = walk::statement(node, &mut st);
        }
        out.push(st);
    }
    out
}

/// `sql` with every `system_user` keyword token double-quoted, and where each was; `None`
/// when there is none (or the scanner cannot read the text as the server would).
fn newer_keywords_quoted(sql: &str, opts: ParseOptions) -> Option<(String, Vec<usize>)> {
    if !opts.standard_conforming_strings && sql.contains('\\') {
        return None;
    }
    let scan = pg_query::scan(sql).ok()?;
    let at: Vec<usize> = scan
        .tokens
        .iter()
        .filter(|t| t.token == pg_query::protobuf::Token::SystemUser as i32)
        .filter_map(|t| usize::try_from(t.start).ok())
        .collect();
    if at.is_empty() {
        return None;
    }
    let mut quoted = String::with_capacity(sql.len() + 2 * at.len());
    let mut from = 0;
    for &p in &at {
        let end = p + "system_user".len();
        quoted.push_str(sql.get(from..p)?);
        quoted.push('"');
        quoted.push_str(&sql.get(p..end)?.to_ascii_lowercase());
        quoted.push('"');
        from = end;
    }
    quoted.push_str(sql.get(from..)?);
    Some((quoted, at))
}

/// A statement that did not parse. The server rejects it too, so it is harmless — unless its
/// tokens contain a word that writes, in which case nobody can be sure what it does.
fn unparsed(sql: &str, error: &str, opts: ParseOptions) -> Statement {
    let mut st = Statement { text: sql.trim().to_string(), ..Statement::default() };
    if may_write(sql, opts) {
        st.opaque.push(Opaque::Unparseable(error.to_string()));
    }
    st
}

/// Whether the tokens of unparseable text include a keyword or function that writes. When
/// even the scanner fails, the answer is yes.
fn may_write(sql: &str, opts: ParseOptions) -> bool {
    // The scanner always reads with standard_conforming_strings on; with it off, assume the
    // worst rather than tokenise differently from the server.
    if !opts.standard_conforming_strings && sql.contains('\\') {
        return true;
    }
    let Some(Ok(scan)) = budget::within(sql, || pg_query::scan(sql)) else {
        return true;
    };
    const WRITERS: &[&str] = &[
        "DELETE", "UPDATE", "INSERT", "MERGE", "TRUNCATE", "DROP", "ALTER", "DO", "CALL", "EXECUTE", "COPY", "CREATE",
        "GRANT", "REVOKE", "SETVAL",
    ];
    scan.tokens.iter().any(|t| {
        let is_word = t.keyword_kind != 0 || t.token == pg_query::protobuf::Token::Ident as i32;
        let start = usize::try_from(t.start).unwrap_or(0);
        let end = usize::try_from(t.end).unwrap_or(0);
        is_word && WRITERS.iter().any(|w| sql.get(start..end).is_some_and(|word| word.eq_ignore_ascii_case(w)))
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_restrict;
