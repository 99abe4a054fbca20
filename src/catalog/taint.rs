//! A session's taint: whether its own temporary schema holds code. PostgreSQL runs stored
//! code in more places than a statement's text shows — planning (constraint exclusion folds a
//! child's `CHECK`, extended statistics' expressions, index predicates), referential actions
//! and checks (a cascade into a table with a trigger, an RI query planned over a table with a
//! statistics expression), generated columns, row-security policies, BRIN summarization — so
//! following each object's reach is not sound for objects a session attaches to itself. The
//! rule instead: once the session's temporary schema holds a function, or a temporary object
//! whose stored expression or dependency (at any depth: a domain, a composite type, a view, a
//! referenced table) calls a user function (as in `hidden`: outside `pg_catalog` and
//! `information_schema`, owned by no extension) or a built-in whose effect outlives its call
//! (`set_config`; `nextval`/`setval` of a sequence that is not one of the session's own
//! temporary sequences, nor a column's own `serial` sequence), every statement of the session
//! is taken as reaching a hidden caller (`guard::taint`). So is every statement of a session
//! whose names may come to mean objects another role makes while a statement waits
//! (`opened`: its `search_path` lists a schema such a role may create in, or such a role may
//! create schemas), asked in the same questions; after a message that may change the path
//! alone, only that part is asked again (`opened::path_query`).
//!
//! The answer is per session, asked on the session itself (`pg_my_temp_schema()`: zero rows
//! and no work when the session never made a temporary object): first before the session's
//! first statement that may run code (a pooler behind blastwall may hand a new client session
//! a server session whose temporary schema another client filled; [`first_query`] answers
//! for a server session that never had one without planning the full query), then again only
//! after the server answered a message that may have changed the temporary schema
//! (`session::taint`).
//!
//! Owns: the state, the query and reading its answer. Does not own: when it is asked
//! (`session::taint`) or what a taint leads to (`guard::taint`).

/// What blastwall knows of a session's temporary schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taint {
    state: State,
    /// The answer was learned inside a transaction block: a ROLLBACK may undo what it saw.
    learned_in_block: bool,
    /// The schema holds deferrable constraints (foreign keys, constraint triggers): their
    /// checks run at a client's COMMIT, after every count.
    defers: bool,
    /// How many messages that may change the schema were judged (`may_change`): what was
    /// judged before one is older than it (`session::ages`).
    changes: u64,
    /// The server session answering is not the one whose BackendKeyData the client got (a
    /// pooler between blastwall and the server: [`first_query`]): a transaction pooler may
    /// run each transaction on another server session, so the answer lasts one transaction.
    pooled: bool,
    /// Whether the code includes a user function (one that may write tables: any statement of
    /// the session may then write through it, `guard::reached`), as the last answer said or a
    /// message made since; `None`: not known.
    functions: Option<bool>,
    /// Whether the schema holds a relation with rules (a view): a name some code writes
    /// without a schema may lead there, first on the session's path, and on to what its rule
    /// writes (fifty-eighth pass H3); `None`: not known.
    redirects: Option<bool>,
    /// Whether the session's names may come to mean objects another role makes while a
    /// statement waits (`opened`): its `search_path` lists a schema another role may create
    /// in, or another role may create schemas. Any statement is then counted, as for code.
    path: Path,
    /// How many answers (or assumptions) were taken in: what was remembered before one is
    /// older than it (`quiet`).
    learned: u64,
    /// What it was before the message being judged marked it stale (`quiet`).
    undo: Option<Box<quiet::Undo>>,
}

/// What blastwall knows of the session's `search_path` (`opened::path_open`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Path {
    /// No schema on it is open to another role (or the session was never asked: `State`
    /// says so).
    #[default]
    Closed,
    /// A message that may change it was judged: asked before the next judgement.
    Stale,
    /// Open: why, as the server said.
    Open(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum State {
    /// The schema holds no code.
    #[default]
    Clean,
    /// A new client session's server session, never asked: a pooler behind blastwall may have
    /// handed it a server session another client filled (without `DISCARD ALL`). Asked before
    /// the first statement that may run code is judged, cheaply when the server session never
    /// had a temporary schema.
    Unasked,
    /// A message that may change it was judged: asked before the next judgement (which waits
    /// for the server to be idle, so for that message to have run).
    Unknown,
    /// Not known, and cannot be asked now (a failed transaction, the middle of a batch): taken
    /// as tainted until the next ReadyForQuery.
    Assumed,
    /// It holds code: these objects (a few of them, as the server describes them).
    Tainted(Vec<String>),
}

impl Taint {
    /// A new client session's: not known until asked (see [`State::Unasked`]).
    pub fn unasked() -> Self {
        Taint { state: State::Unasked, ..Default::default() }
    }

    /// Whether the catalog must be asked before the session's next statement is judged (a
    /// session never asked: before its next one that may run code).
    pub fn must_ask(&self) -> bool {
        self.state == State::Unknown || (self.path == Path::Stale && self.state != State::Unasked)
    }

    /// Whether only the path must be asked (the schema's answer stands): the cheap question
    /// (`opened::path_query`).
    pub fn only_path_stale(&self) -> bool {
        self.path == Path::Stale && matches!(self.state, State::Clean | State::Tainted(_))
    }

    /// Whether the session was never asked (its first question may be the cheap one:
    /// [`first_query`]).
    pub fn is_unasked(&self) -> bool {
        self.state == State::Unasked
    }

    /// Whether any statement of the session may run code it does not name (not known: yes).
    pub fn runs_code(&self) -> bool {
        self.state != State::Clean || self.path != Path::Closed
    }

    /// Whether the schema may hold a relation with rules (a view), which a name written by
    /// code without a schema may lead to: as last answered (a session that never had the
    /// schema: no), or since a message that may have made one ([`Taint::may_make_view`]);
    /// never asked: yes.
    pub fn may_redirect(&self) -> bool {
        match self.state {
            State::Unasked => true,
            _ => self.redirects != Some(false),
        }
    }

    /// A message that may make a view or a rule in the schema goes to the server: taken to
    /// hold one until asked again (fifty-ninth pass H2: a temporary view made earlier in the
    /// same Query as the write whose owner's trigger wrote through it).
    pub fn may_make_view(&mut self) {
        self.may_change();
        self.redirects = Some(true);
    }

    /// Whether the schema holds a user function (that may write tables) and the last answer
    /// knew it; not known: yes, when it holds code.
    pub fn holds_functions(&self) -> bool {
        (matches!(self.state, State::Tainted(_)) && self.functions != Some(false)) || self.unsure_with_functions()
    }

    /// Not known now (a message since may have changed the schema; asked again, or assumed
    /// where it cannot be: the middle of a batch), and the last answer found user functions:
    /// they may still be there (nineteenth pass T1b: a temporary function's body made a rule
    /// into `users`, fired in the middle of the batch behind the call).
    fn unsure_with_functions(&self) -> bool {
        matches!(self.state, State::Assumed | State::Unknown) && self.functions == Some(true)
    }

    /// Why any statement of the session is counted, for a refusal's words: what holds the
    /// code, and why its names may come to mean another role's new objects.
    pub fn reason(&self) -> String {
        let code = (self.state != State::Clean).then(|| {
            format!("this session's temporary schema holds code ({}) that any statement may run", self.what())
        });
        let path = match &self.path {
            Path::Closed => None,
            Path::Stale => Some("blastwall has not yet asked what this session's search_path now leads to".to_string()),
            Path::Open(why) => Some(format!(
                "{why}, so any name a statement uses may come to mean an object another session makes while the statement waits for a lock"
            )),
        };
        code.into_iter().chain(path).collect::<Vec<_>>().join("; ")
    }

    /// What holds the code, for a refusal's words.
    pub fn what(&self) -> String {
        match &self.state {
            State::Tainted(objects) if !objects.is_empty() => objects.join(", "),
            State::Clean => String::new(),
            _ if self.functions == Some(true) => {
                "functions or rules it held or made since blastwall last asked".to_string()
            }
            _ => "objects blastwall could not ask about".to_string(),
        }
    }

    /// A message that may change the temporary schema (DDL, a function call, DO, a statement
    /// that reaches a hidden caller, DISCARD, transaction control after an answer learned in a
    /// block) goes to the server: the answer is asked again before the next judgement.
    pub fn may_change(&mut self) {
        self.remember();
        self.state = State::Unknown;
        self.path = Path::Stale;
        self.changes = self.changes.wrapping_add(1);
    }

    /// A message that may change what the session's `search_path` leads to (`SET`, `RESET`,
    /// `set_config`, a role, `DISCARD`: `names::may_change_path`) goes to the server: the path
    /// alone is asked again before the next judgement (a session never asked asks it all).
    pub fn may_change_path(&mut self) {
        if self.state != State::Unasked {
            self.remember();
            self.path = Path::Stale;
        }
    }

    /// Learns the answer of [`crate::catalog::path_query`] (`None`: the server refused it —
    /// taken as open).
    pub fn learn_path(&mut self, rows: Option<&[Vec<Option<String>>]>, in_block: bool) {
        self.learned += 1;
        self.learned_in_block |= in_block;
        self.path = path_of(rows.map(|r| r.first().and_then(|r| r.first()).cloned().flatten()));
    }

    /// A message that makes code (a function, a rule: `Statement::makes_code`) goes
    /// to the server: as [`Taint::may_change`], and until asked again the schema is taken to
    /// hold user functions (twentieth pass N5: a temporary function made and called in one
    /// pipeline).
    pub fn may_make_code(&mut self) {
        self.may_change();
        self.functions = Some(true);
    }

    /// How many messages that may change the schema were judged so far.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Whether a tainted schema holds deferrable constraints (not known: yes; assumed where it
    /// cannot be asked: as last learned — in a failed transaction nothing runs, and what an
    /// extended batch makes is learned at its end).
    pub fn defers(&self) -> bool {
        match self.state {
            State::Clean => false,
            State::Tainted(_) | State::Assumed => self.defers,
            State::Unknown | State::Unasked => true,
        }
    }

    /// Whether transaction control now may undo what the answer saw.
    pub fn learned_in_block(&self) -> bool {
        self.learned_in_block
    }

    /// The server answered a sync point: an assumption ends (the next judgement asks).
    pub fn on_ready(&mut self) {
        if self.state == State::Assumed {
            self.learned += 1;
            self.state = State::Unknown;
        }
    }

    /// A transaction ended (ReadyForQuery, idle): behind a pooler, the next one may run on
    /// another server session, never asked.
    pub fn transaction_ended(&mut self) {
        if self.pooled && self.state != State::Unknown {
            self.learned += 1;
            self.state = State::Unasked;
            self.functions = None;
            self.path = Path::Closed;
        }
    }

    /// Learns from [`first_query`]'s answer whether the server session answering is the one
    /// whose key the session's BackendKeyData gave (`key_pid`); not known: taken as pooled.
    pub fn learn_backend(&mut self, rows: Option<&[Vec<Option<String>>]>, key_pid: Option<i32>) {
        let pid = rows.and_then(|r| r.first()).and_then(|r| r.get(1)).and_then(|v| v.as_deref());
        let pid = pid.and_then(|p| p.parse::<i32>().ok());
        self.pooled |= pid.is_none() || pid != key_pid;
    }

    /// Whether a pooler stands between blastwall and the server (see `pooled`).
    pub fn pooled(&self) -> bool {
        self.pooled
    }

    /// The catalog cannot be asked now: tainted until the next ReadyForQuery.
    pub fn assume(&mut self) {
        self.learned += 1;
        self.state = State::Assumed;
        // Held as tainted, the path is asked with the rest at the next ReadyForQuery.
        self.path = Path::Closed;
    }

    /// Learns the answer of [`query`] (`None`: the server refused it — fail closed), asked
    /// inside a transaction block or not.
    pub fn learn(&mut self, rows: Option<&[Vec<Option<String>>]>, in_block: bool) {
        self.learned += 1;
        self.learned_in_block = in_block;
        let kind = |r: &Vec<Option<String>>, k: &str| r.get(1).and_then(|v| v.as_deref()) == Some(k);
        self.defers = rows.is_none_or(|rows| rows.iter().any(|r| kind(r, "d")));
        self.functions = rows.map(|rows| rows.iter().any(|r| kind(r, "f")));
        self.redirects = rows.map(|rows| rows.iter().any(|r| kind(r, "v")));
        self.path =
            path_of(rows.map(|rows| rows.iter().find(|r| kind(r, "p")).and_then(|r| r.first().cloned().flatten())));
        self.state = match rows {
            None => State::Tainted(Vec::new()),
            Some(rows) if !rows.iter().any(|r| kind(r, "c")) => State::Clean,
            Some(rows) => State::Tainted(
                rows.iter().filter(|r| kind(r, "c")).filter_map(|r| r.first().cloned().flatten()).collect(),
            ),
        };
    }
}

/// The path's state from an answer: `None`, not asked or refused (open: not known);
/// `Some(None)`, closed; `Some(Some(why))`, open.
fn path_of(answer: Option<Option<String>>) -> Path {
    match answer {
        None => Path::Open("blastwall could not ask what this session's search_path leads to".to_string()),
        Some(None) => Path::Closed,
        Some(Some(why)) => Path::Open(why),
    }
}

/// Learns the path's part of [`first_query`]'s rows (its fourth column).
pub fn learn_first_path(taint: &mut Taint, rows: &[Vec<Option<String>>]) {
    taint.path = path_of(rows.first().map(|r| r.get(3).cloned().flatten()));
}

/// The first question of a session never asked: whether its server session ever had a
/// temporary schema (`pg_my_temp_schema()` is 0 until the backend makes a temporary object; a
/// rolled-back creation resets it) — `t`: none, so clean, with no planning of [`query`] —
/// and which server process answers (`pg_backend_pid()`: the BackendKeyData's process on a
/// direct connection; a pooler gives its own key), the database's OID (`incarnation`: a
/// database dropped and created again under its name is another), and whether the session's
/// names may come to mean another role's new objects (`opened::path_open`).
pub fn first_query(policy: &crate::policy::Policy) -> String {
    format!(
        "SELECT pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.=) 0::pg_catalog.oid, pg_catalog.pg_backend_pid(), \
         (SELECT d.oid FROM pg_catalog.pg_database d \
          WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()), {}",
        super::opened::path_open(policy)
    )
}

/// Whether [`first_query`]'s rows say the server session never had a temporary schema.
pub fn never_had_one(rows: &[Vec<Option<String>>]) -> bool {
    rows.first().and_then(|r| r.first()).and_then(|v| v.as_deref()) == Some("t")
}

/// How many of the objects holding code the answer names.
const NAMED: usize = 3;

/// The catalog query: up to [`NAMED`] descriptions of objects that make the session tainted
/// (kind `c`; none: clean), whether the schema holds a deferrable constraint (kind `d`), and why
/// the session's names may come to mean another role's new objects (kind `p`: `opened`). From every object of the session's temporary schema (relations, types,
/// functions, operators, statistics) it follows `pg_depend` down to what belongs to each
/// (defaults, generated columns, constraints, indexes, triggers, rules, policies, statistics,
/// row types) and on to what each uses (functions, operators, types, domains, and the
/// session's own temporary relations), at any depth, leaving out the system's own objects and
/// permanent relations and their row types (their code is the shared hidden callers'
/// business: `hidden`, found by the mention of their names). Tainted: a user function
/// among them, or a stored expression (or a temporary operator's function) among them calling
/// `set_config` or a built-in that runs SQL (`hidden::runners`), or `nextval`/`setval`
/// of a sequence not named by a constant, or of one named that is not the session's own
/// temporary sequence — except a column's default taking from the sequence that column owns.
/// Every function and operator is `pg_catalog`'s.
pub fn query(rules: &crate::policy::Policy) -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let cls = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass::pg_catalog.oid");
    let (proc, class, typ, operator, statistic, attrdef, constraint, policy, trigger, rewrite) = (
        cls("pg_proc"),
        cls("pg_class"),
        cls("pg_type"),
        cls("pg_operator"),
        cls("pg_statistic_ext"),
        cls("pg_attrdef"),
        cls("pg_constraint"),
        cls("pg_policy"),
        cls("pg_trigger"),
        cls("pg_rewrite"),
    );
    let oid = |f: &str| format!("'pg_catalog.{f}'::pg_catalog.regprocedure::pg_catalog.oid::pg_catalog.text");
    let cat = |parts: &[&str]| format!("({})", parts.join(" OPERATOR(pg_catalog.||) "));
    let seqs = cat(&[
        &oid("nextval(pg_catalog.regclass)"),
        "'|'",
        &oid("setval(pg_catalog.regclass,pg_catalog.int8)"),
        "'|'",
        &oid("setval(pg_catalog.regclass,pg_catalog.int8,pg_catalog.bool)"),
    ]);
    let moves = cat(&["':funcid ('", &seqs, "') '"]);
    let constant = cat(&["':funcid ('", &seqs, "') [^{}]*:args [(][{]CONST :consttype 2205 '"]);
    let set_config = cat(&["':funcid '", &oid("set_config(pg_catalog.text,pg_catalog.text,pg_catalog.bool)"), "' '"]);
    let runs = super::hidden::runners::pattern();
    let chr = "::pg_catalog.\"char\"";
    // Named on every row, not once in a CTE: the planner then estimates a few rows (a
    // temporary object's OID is past the system's), which keeps the query's estimated cost
    // under the server's JIT threshold (a JIT compile costs seconds; the query, milliseconds).
    let temp = "pg_catalog.pg_my_temp_schema()";
    let user = " OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid";
    format!(
        "WITH RECURSIVE o(classid, objid) AS (\
           SELECT {class}, c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace{eq}{temp} AND c.oid{user} \
           UNION SELECT {typ}, t.oid FROM pg_catalog.pg_type t WHERE t.typnamespace{eq}{temp} AND t.oid{user} \
           UNION SELECT {proc}, p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace{eq}{temp} AND p.oid{user} \
           UNION SELECT {operator}, x.oid FROM pg_catalog.pg_operator x WHERE x.oprnamespace{eq}{temp} AND x.oid{user} \
           UNION SELECT {statistic}, s.oid FROM pg_catalog.pg_statistic_ext s WHERE s.stxnamespace{eq}{temp} AND s.oid{user} \
           UNION SELECT n.classid, n.objid FROM o CROSS JOIN LATERAL (\
             SELECT d.classid, d.objid FROM pg_catalog.pg_depend d \
               WHERE d.refclassid{eq}o.classid AND d.refobjid{eq}o.objid \
                 AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']{chr}[]) \
             UNION ALL SELECT d.refclassid, d.refobjid FROM pg_catalog.pg_depend d \
               WHERE d.classid{eq}o.classid AND d.objid{eq}o.objid \
                 AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['n', 'a', 'i']{chr}[]) \
                 AND d.refobjid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
                 AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE d.refclassid{eq}{class} \
                   AND c.oid{eq}d.refobjid AND c.relnamespace OPERATOR(pg_catalog.<>) {temp}) \
                 AND NOT EXISTS (SELECT FROM pg_catalog.pg_type t WHERE d.refclassid{eq}{typ} \
                   AND t.oid{eq}d.refobjid AND t.typnamespace OPERATOR(pg_catalog.<>) {temp} \
                   AND t.typrelid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid)) n), \
         ex(classid, objid, tree) AS (\
           SELECT o.classid, o.objid, d.adbin::pg_catalog.text FROM o JOIN pg_catalog.pg_attrdef d \
             ON o.classid{eq}{attrdef} AND d.oid{eq}o.objid \
           UNION ALL SELECT o.classid, o.objid, k.conbin::pg_catalog.text FROM o JOIN pg_catalog.pg_constraint k \
             ON o.classid{eq}{constraint} AND k.oid{eq}o.objid WHERE k.conbin IS NOT NULL \
           UNION ALL SELECT o.classid, o.objid, coalesce(i.indexprs::pg_catalog.text, '') \
               OPERATOR(pg_catalog.||) coalesce(i.indpred::pg_catalog.text, '') \
             FROM o JOIN pg_catalog.pg_index i ON o.classid{eq}{class} AND i.indexrelid{eq}o.objid \
           UNION ALL SELECT o.classid, o.objid, coalesce(s.stxexprs::pg_catalog.text, '') \
             FROM o JOIN pg_catalog.pg_statistic_ext s ON o.classid{eq}{statistic} AND s.oid{eq}o.objid \
           UNION ALL SELECT o.classid, o.objid, coalesce(p.polqual::pg_catalog.text, '') \
               OPERATOR(pg_catalog.||) coalesce(p.polwithcheck::pg_catalog.text, '') \
             FROM o JOIN pg_catalog.pg_policy p ON o.classid{eq}{policy} AND p.oid{eq}o.objid \
           UNION ALL SELECT o.classid, o.objid, coalesce(g.tgqual::pg_catalog.text, '') \
             FROM o JOIN pg_catalog.pg_trigger g ON o.classid{eq}{trigger} AND g.oid{eq}o.objid \
           UNION ALL SELECT o.classid, o.objid, w.ev_action::pg_catalog.text \
               OPERATOR(pg_catalog.||) coalesce(w.ev_qual::pg_catalog.text, '') \
             FROM o JOIN pg_catalog.pg_rewrite w ON o.classid{eq}{rewrite} AND w.oid{eq}o.objid \
           UNION ALL SELECT o.classid, o.objid, y.typdefaultbin::pg_catalog.text \
             FROM o JOIN pg_catalog.pg_type y ON o.classid{eq}{typ} AND y.oid{eq}o.objid \
             WHERE y.typdefaultbin IS NOT NULL \
           UNION ALL SELECT o.classid, o.objid, ':funcid ' OPERATOR(pg_catalog.||) x.oprcode::pg_catalog.oid::pg_catalog.text \
               OPERATOR(pg_catalog.||) ' ' \
             FROM o JOIN pg_catalog.pg_operator x ON o.classid{eq}{operator} AND x.oid{eq}o.objid), \
         hit(classid, objid) AS (\
           SELECT o.classid, o.objid FROM o JOIN pg_catalog.pg_proc p ON o.classid{eq}{proc} AND p.oid{eq}o.objid \
             JOIN pg_catalog.pg_namespace n ON n.oid{eq}p.pronamespace \
             WHERE p.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
               AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e WHERE e.classid{eq}{proc} AND e.objid{eq}p.oid \
                 AND e.deptype{eq}'e'{chr}) \
           UNION ALL SELECT e.classid, e.objid FROM ex e \
             WHERE pg_catalog.strpos(e.tree, {set_config}) OPERATOR(pg_catalog.>) 0 \
               OR e.tree OPERATOR(pg_catalog.~) {runs} \
               OR (e.tree OPERATOR(pg_catalog.~) {moves} \
                 AND (pg_catalog.regexp_replace(e.tree, {constant}, '', 'g') OPERATOR(pg_catalog.~) {moves} \
                   OR EXISTS (SELECT FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid{eq}d.refobjid \
                     WHERE d.classid{eq}e.classid AND d.objid{eq}e.objid AND d.refclassid{eq}{class} \
                       AND c.relkind{eq}'S'{chr} AND c.relnamespace OPERATOR(pg_catalog.<>) {temp} \
                       AND NOT EXISTS (SELECT FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_depend w \
                         ON w.classid{eq}{class} AND w.objid{eq}c.oid AND w.refclassid{eq}{class} \
                         AND w.refobjid{eq}a.adrelid AND w.refobjsubid{eq}a.adnum AND w.deptype{eq}'a'{chr} \
                         WHERE e.classid{eq}{attrdef} AND a.oid{eq}e.objid))))) \
         (SELECT pg_catalog.pg_describe_object(h.classid, h.objid, 0), 'c' FROM hit h LIMIT {NAMED}) \
         UNION ALL (SELECT '', 'd' FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid{eq}k.conrelid \
           WHERE c.relnamespace{eq}{temp} AND c.oid{user} AND k.condeferrable LIMIT 1) \
         UNION ALL (SELECT '', 'f' FROM hit h WHERE h.classid{eq}{proc} LIMIT 1) \
         UNION ALL (SELECT '', 'v' FROM pg_catalog.pg_class c WHERE c.relnamespace{eq}{temp} AND c.relhasrules LIMIT 1) \
         UNION ALL SELECT x.why, 'p' FROM (SELECT {path}) x(why) WHERE x.why IS NOT NULL",
        path = super::opened::path_open(rules),
    )
}

mod quiet;
pub use quiet::Undo;

#[cfg(test)]
mod tests;

/// Prints the query, to try it on a server by hand (`cargo test --lib print_taint_query --
/// --ignored --nocapture`).
#[cfg(test)]
#[test]
#[ignore = "prints the query for a look by hand"]
fn print_taint_query() {
    println!("{}", query(&crate::demo::incident_policy().unwrap()));
}
