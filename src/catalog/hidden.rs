//! Hidden callers: the relations, types and operators whose use runs a function the statement
//! does not name — a view whose column calls it (`SELECT * FROM v`), a row-security policy, a
//! domain's `CHECK` (`SELECT 1::d`, or a write to a column of that domain), a column default
//! (an INSERT that leaves the column out), a table `CHECK`, an index expression, an operator or
//! a cast over it — and the views over any of those and the inheritance parents and
//! partitioned tables above them (a statement on a parent reaches its children: an INSERT is
//! routed to them, ANALYZE and REINDEX recurse, the planner opens them), at any depth. The
//! functions followed:
//! - every user function: one outside `pg_catalog` and `information_schema` that no extension
//!   owns, of any volatility (a function mislabeled `IMMUTABLE` can write too), and those of
//!   the extensions that run SQL in another session (`dblink`; listed too: `remote`);
//! - the built-ins that run SQL they are given (`query_to_xml` and its kin, `ts_stat`:
//!   `runners`), like user functions;
//! - the built-ins whose effect outlives their call: `set_config` (it changes what later names
//!   resolve to: a view over `set_config('search_path', …)` is a caller like a view over a user
//!   function), and `nextval`/`setval`, kept apart with the sequence each object moves (`*`:
//!   any), so that only objects moving a protected sequence count ([`HiddenCallers::moves`]).
//!
//! The answer is per database, learned once per [`super::TTL`] (or after DDL through
//! blastwall) by one catalog query on a client's session (its temporary schemas' part counts
//! only for the sessions that can reach them: `temporary`), and split by what runs the function:
//! reading the name (views, policies, domains, operators, casts) or writing it (defaults,
//! checks, index expressions, columns of a checked domain, policies, triggers' `WHEN`). A
//! temporary relation's index (the planner folds its constant expressions and predicates when
//! it opens the table) and its row type (a cast to it runs its columns' domain checks; so does
//! a literal compared with or assigned to a column of an array or row type over such a domain,
//! converted while the server analyzes the statement) run the function on reading too; so do
//! maintenance commands (`guard::maintenance`) for the writing callers, as do extended
//! statistics over an expression (`ANALYZE`). An operator whose
//! negator or commutator is one is one too (the planner rewrites `NOT (a === b)` to `a !== b`,
//! and may commute a comparison), though no `pg_depend` row links them. A cast over one makes
//! its user-defined source and target types hidden callers, and so the tables with columns of
//! them (an implicit cast runs in `SELECT a + 1 FROM t`). A
//! statement that mentions a name of the set — anywhere in its text: a mention is all it takes,
//! so a false one costs a check, never a miss; a schema another role may create in counts as
//! such a name, `opened` — is run in the pre-check like a call of a
//! function (row limits and the identity check hold for what it changes), and may change what
//! later names resolve to. In a database with no such objects the set is empty and nothing
//! else is looked at.
//!
//! Owns: the query, its answer, and the mention tests (the name search itself: `mentions`).
//! Does not own: when it is asked (`guard`) or what a mention leads to (`guard::need`,
//! `guard::hidden`).

mod mentions;
mod remote;
pub(super) mod runners;
use mentions::{has_u_amp, mentions, Haystack};

/// What a database's hidden callers are called, lower-cased: by the reading and by the writing
/// of them; and the callers of `nextval`/`setval` with the sequence each moves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HiddenCallers {
    read: Vec<String>,
    write: Vec<String>,
    /// (caller, whether only writing it runs the call, the sequence's `schema.name` or `*`).
    moves: Vec<(String, bool, String)>,
    /// The types whose input runs a user function (a domain whose `CHECK` calls one, and every
    /// array, domain, range and row type over one: of a table, view or composite type with a
    /// column of one, each column recorded in `pg_depend`), by OID, sorted: a protocol Bind
    /// converts a parameter of such a type (`guard::prepared`).
    types: Vec<u32>,
    /// The tables (and their inheritance parents) whose index expressions or predicates or
    /// extended statistics call one: what `ANALYZE`, `REINDEX`, `CLUSTER` and `VACUUM FULL`
    /// evaluate (they run no default, `CHECK`, trigger or policy). `summarized`: those whose
    /// BRIN index does, which plain `VACUUM` evaluates when it summarizes new page ranges.
    maintained: Vec<String>,
    summarized: Vec<String>,
    /// Such types of other sessions' temporary schemas, by OID, sorted: only a Bind that
    /// declares one by OID can reach them (no name of theirs resolves on this session).
    temp_types: Vec<u32>,
    /// The temporary schemas (`pg_temp_3`) holding other sessions' callers: only a text that
    /// names one can reach them (a superuser's; others have no USAGE on them).
    temp_schemas: Vec<String>,
    /// The functions that run SQL in another session, `extension.function`, sorted (`remote`).
    remote: Vec<String>,
    /// The relations a write to which reaches a foreign table, (OID, name), sorted (`remote`).
    foreign: Vec<(u32, String)>,
    /// The database has a schema another role may create in (`opened`; named in `read`).
    open_schemas: bool,
}

impl HiddenCallers {
    /// The set assumed when the catalog cannot be asked: every text mentions it.
    pub fn everything() -> Self {
        HiddenCallers {
            read: vec![String::new()],
            write: Vec::new(),
            moves: vec![(String::new(), false, "*".into())],
            ..Default::default()
        }
    }

    /// Whether converting a value to the type `oid` may run a user function (unknown set: yes).
    pub fn input_runs_code(&self, oid: u32) -> bool {
        self.unknown() || self.types.binary_search(&oid).is_ok() || self.temp_types.binary_search(&oid).is_ok()
    }

    /// Whether the database has any type whose input runs a user function (unknown set: yes).
    pub fn any_input_runs_code(&self) -> bool {
        self.unknown() || !self.types.is_empty()
    }

    fn unknown(&self) -> bool {
        self.read.first().is_some_and(String::is_empty)
    }

    /// Whether this is [`HiddenCallers::everything`] (the set assumed, not learned), told
    /// without making one to compare with.
    pub fn is_everything(&self) -> bool {
        matches!(&self.read[..], [r] if r.is_empty())
            && matches!(&self.moves[..], [(n, false, s)] if n.is_empty() && s == "*")
            && self.write.is_empty()
            && self.types.is_empty()
            && self.maintained.is_empty()
            && self.summarized.is_empty()
            && self.temp_types.is_empty()
            && self.temp_schemas.is_empty()
    }

    /// Whether the database has a schema another role may create in (`opened`): a message
    /// that changes the path may lead the statements after it there.
    pub fn has_open_schemas(&self) -> bool {
        self.open_schemas
    }

    /// Whether `text` mentions any of them, read or written.
    pub fn mentioned_at_all(&self, text: &str) -> bool {
        self.mentioned_in(text, true)
    }

    pub fn is_empty(&self) -> bool {
        self.read.is_empty() && self.write.is_empty() && self.moves.is_empty() && self.temp_schemas.is_empty()
    }

    /// Whether no caller runs anything when only read (a database whose only callers are
    /// tables' `serial` defaults): a read needs no look at its text.
    pub fn reading_runs_nothing(&self) -> bool {
        self.read.is_empty() && self.temp_schemas.is_empty() && self.moves.iter().all(|(_, write_only, _)| *write_only)
    }

    /// Whether a maintenance command that names no table evaluates one: some table's index or
    /// statistics expressions call one (unknown set: yes).
    pub fn has_maintained(&self) -> bool {
        self.unknown() || !self.maintained.is_empty()
    }

    /// Whether a maintenance command's `text` may name a table whose index or statistics
    /// expressions call one (`brin`: a BRIN index's, all plain `VACUUM` evaluates), or names no
    /// table (`every_table`) in a database that has one; in the sense of
    /// [`HiddenCallers::mentioned_in`] (unknown set: yes).
    pub fn maintenance_reaches(&self, text: &str, brin: bool, every_table: bool) -> bool {
        let list = if brin { &self.summarized } else { &self.maintained };
        if self.unknown() {
            return true;
        }
        if list.is_empty() && self.temp_schemas.is_empty() {
            return false;
        }
        if (every_table && !list.is_empty()) || has_u_amp(text) {
            return true;
        }
        let haystack = Haystack::of(text);
        list.iter().chain(&self.temp_schemas).any(|w| mentions(&haystack, w))
    }

    /// Whether `text` may use one of them: by name, in any case, anywhere (also inside a longer
    /// word or a string: conservative), or through a `U&` identifier that may spell one. The
    /// writing callers count only for a statement that may write (`writes`).
    pub fn mentioned_in(&self, text: &str, writes: bool) -> bool {
        if self.read.is_empty() && self.temp_schemas.is_empty() && (!writes || self.write.is_empty()) {
            return false;
        }
        let words = self.read.iter().chain(&self.temp_schemas).chain(self.write.iter().filter(|_| writes));
        let haystack = Haystack::of(text);
        has_u_amp(text) || words.into_iter().any(|w| mentions(&haystack, w))
    }

    /// Adds `other`'s callers to these (a session's own temporary ones to the database's).
    pub(super) fn absorb(&mut self, other: &HiddenCallers) {
        fn union<T: PartialEq + Clone>(to: &mut Vec<T>, from: &[T]) {
            for x in from {
                if !to.contains(x) {
                    to.push(x.clone());
                }
            }
        }
        union(&mut self.read, &other.read);
        union(&mut self.write, &other.write);
        union(&mut self.moves, &other.moves);
        union(&mut self.maintained, &other.maintained);
        union(&mut self.summarized, &other.summarized);
        self.open_schemas |= other.open_schemas;
        self.types.extend(&other.types);
        self.types.sort_unstable();
        self.types.dedup();
    }

    /// Records callers of other sessions' temporary schema `schema`: reachable only by a text
    /// that names the schema, or a Bind that declares one of its types by OID.
    pub(super) fn note_foreign(&mut self, schema: &str, theirs: &HiddenCallers) {
        if !self.temp_schemas.iter().any(|s| s == schema) {
            self.temp_schemas.push(schema.to_string());
        }
        self.temp_types.extend(&theirs.types);
        self.temp_types.sort_unstable();
        self.temp_types.dedup();
    }

    /// Whether `text` may use an object that moves a sequence `protected` says is protected
    /// (given its `schema.name`; `*`, a sequence not named by a constant, is asked too), in the
    /// same sense as [`HiddenCallers::mentioned_in`].
    pub fn moves(&self, text: &str, writes: bool, protected: &dyn Fn(&str) -> bool) -> bool {
        let mut callers = self.moves.iter().filter(|(_, w, s)| (writes || !w) && protected(s)).peekable();
        if callers.peek().is_none() {
            return false;
        }
        let haystack = Haystack::of(text);
        has_u_amp(text) || callers.any(|(name, ..)| mentions(&haystack, name))
    }
}

/// FNV-1a, for the per-database map of sets that every harmless message looks up: its keys are
/// the few databases that answered a catalog query, so a keyed hash buys nothing, and SipHash
/// was most of the lookup's cost.
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A monotonic clock in milliseconds (since the first call).
pub(super) fn coarse_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
}

/// Reads the rows of [`query`] (`rows`: name, `r`, `w` or `b`, and the sequence moved or
/// null) as one set, temporary schemas or not (`temporary::Answer::read` splits them).
#[cfg(test)]
pub fn answer(rows: &[Vec<Option<String>>]) -> HiddenCallers {
    let mut h = HiddenCallers::default();
    for r in rows {
        h.add(r);
    }
    h
}

impl HiddenCallers {
    /// Adds one row of [`query`]'s answer (a row of another kind than `r`, `w`, `b`, `t` adds
    /// nothing).
    pub(super) fn add(&mut self, r: &[Option<String>]) {
        let (Some(Some(name)), Some(Some(kind))) = (r.first(), r.get(1)) else { return };
        if kind == "x" {
            return self.add_remote(name, r.get(2).cloned().flatten());
        }
        if kind == "y" {
            return self.add_foreign(name, r.get(2).cloned().flatten());
        }
        if kind == "t" {
            if let Ok(oid) = name.parse::<u32>() {
                if let Err(at) = self.types.binary_search(&oid) {
                    self.types.insert(at, oid);
                }
            }
            return;
        }
        if !matches!(kind.as_str(), "r" | "w" | "b" | "i" | "v" | "o") {
            return;
        }
        self.open_schemas |= kind == "o";
        let name = name.to_ascii_lowercase();
        if let Some(Some(seq)) = r.get(2) {
            let m = (name, kind == "w", seq.clone());
            if !self.moves.contains(&m) {
                self.moves.push(m);
            }
            return;
        }
        for list in match kind.as_str() {
            "i" => vec![&mut self.maintained],
            "v" => vec![&mut self.maintained, &mut self.summarized],
            "w" => vec![&mut self.write],
            "b" => vec![&mut self.read, &mut self.write],
            _ => vec![&mut self.read],
        } {
            if !list.contains(&name) {
                list.push(name.clone());
            }
        }
    }
}

/// The catalog query: every object that depends on a user function, found through `pg_depend`
/// alone (its two indexes: what depends on an object, what an object belongs to) from the
/// function to what uses it, at any depth up to 12 — down to the objects that call it (a view's
/// rule, a default, a `CHECK`, a policy, an index, a cast, an operator), up to the relation or
/// type each belongs to, and on to the views over those relations, the row-security policies
/// that read them (the policy's table, when reading them runs the function), their inheritance
/// parents (`pg_inherits`, partitions included), every partition below a partitioned table
/// whose key calls it (a write to a partition checks its whole partition constraint: kind
/// `k`, named `b`) and the columns and domains of those types — each named with what runs the
/// function (`r`: reading the name; `w`: writing it; `b`: both). And every user function named like a built-in the analyzer takes as
/// harmless (`upper`): the server may resolve a call of that name to it (`upper(1::bigint)`
/// finds no built-in). Every function and operator is `pg_catalog`'s; the estimated cost stays
/// under the server's JIT threshold (a JIT compile costs a second).
///
/// Each row also names the temporary schema the object is in (null outside one) and, there,
/// the role that owns it; rows of kind `g` name each role (first) granted to another (third),
/// and one row of kind `m` the asking session's own temporary schema (empty: none):
/// `temporary` keeps each session to the temporary callers it can reach.
///
/// The same climb starts from the objects whose stored expression calls a built-in with an
/// effect on what follows ([`builtin_callers`]), found by the built-in's OID in the expression
/// (PostgreSQL records no dependency on a built-in): those of `set_config` are named like
/// callers of a user function (third column null), those of `nextval`/`setval` with each
/// sequence they move (`*`: one not named by a constant).
pub fn query(rules: &crate::policy::Policy) -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let cls = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass::pg_catalog.oid");
    let (proc, class, typ, rewrite, attrdef, constraint, policy, cast, operator, trigger, statistic) = (
        cls("pg_proc"),
        cls("pg_class"),
        cls("pg_type"),
        cls("pg_rewrite"),
        cls("pg_attrdef"),
        cls("pg_constraint"),
        cls("pg_policy"),
        cls("pg_cast"),
        cls("pg_operator"),
        cls("pg_trigger"),
        cls("pg_statistic_ext"),
    );
    let builtins = crate::analyze::look_alikes().map(|b| format!("'{b}'")).collect::<Vec<_>>().join(", ");
    // A temporary relation (its row type, its indexes): reading it may run what it calls too.
    let temporary = |oid: &str| {
        format!(
            "EXISTS (SELECT FROM pg_catalog.pg_class t WHERE t.oid{eq}{oid} \
               AND t.relpersistence{eq}'t'::pg_catalog.\"char\")"
        )
    };
    let deptypes = |t: &str| format!("ARRAY[{t}]::pg_catalog.\"char\"[]");
    format!(
        "WITH RECURSIVE f AS (SELECT p.oid, p.proname, p.pronamespace, p.proowner FROM pg_catalog.pg_proc p \
           JOIN pg_catalog.pg_namespace n ON n.oid{eq}p.pronamespace \
           WHERE p.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
             AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]) \
             AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e WHERE e.classid{eq}{proc} AND e.objid{eq}p.oid \
               AND e.deptype{eq}'e'::pg_catalog.\"char\" AND e.refobjid OPERATOR(pg_catalog.<>) ALL ({remote_ext}))), \
         {seeds}, \
         reach(classid, objid, kind, depth, seq) AS (\
           SELECT {proc}, f.oid, ''::pg_catalog.text, 0, NULL::pg_catalog.text FROM f \
           UNION ALL SELECT h.classid, h.objid, h.kind, 1, h.seq FROM hits h{others} \
           UNION \
           SELECT n.classid, n.objid, n.kind, r.depth OPERATOR(pg_catalog.+) 1, r.seq FROM reach r CROSS JOIN LATERAL (\
             SELECT d.classid, d.objid, \
                 CASE WHEN r.classid{eq}{typ} AND d.classid{eq}{class} THEN CASE WHEN {temp_d} THEN 'b' ELSE 'w' END ELSE r.kind END \
               FROM pg_catalog.pg_depend d \
               WHERE d.refclassid{eq}r.classid AND d.refobjid{eq}r.objid \
                 AND d.deptype OPERATOR(pg_catalog.=) ANY ({down}) \
                 AND CASE WHEN r.classid{eq}{proc} THEN d.classid OPERATOR(pg_catalog.<>) {proc} \
                   WHEN r.classid{eq}{operator} THEN true \
                   WHEN r.classid{eq}{class} THEN d.classid{eq}{rewrite} \
                     OR (d.classid{eq}{policy} AND r.kind OPERATOR(pg_catalog.<>) 'w') \
                   WHEN r.classid{eq}{typ} THEN d.classid OPERATOR(pg_catalog.=) ANY (ARRAY[{class}, {typ}]) \
                   ELSE false END \
             UNION ALL SELECT u.refclassid, u.refobjid, CASE \
                 WHEN r.classid{eq}{rewrite} THEN CASE WHEN r.kind{eq}'' THEN 'r' ELSE r.kind END \
                 WHEN r.classid{eq}{constraint} THEN CASE WHEN u.refclassid{eq}{typ} THEN 'r' ELSE 'w' END \
                 WHEN r.classid{eq}{policy} THEN 'b' WHEN r.classid{eq}{cast} THEN 'r' \
                 WHEN r.classid{eq}{class} THEN CASE WHEN {temp_u} THEN 'b' ELSE 'w' END ELSE 'w' END \
               FROM pg_catalog.pg_depend u \
               WHERE u.classid{eq}r.classid AND u.objid{eq}r.objid AND u.deptype OPERATOR(pg_catalog.=) ANY ({up}) \
                 AND u.refclassid OPERATOR(pg_catalog.=) ANY (ARRAY[{class}, {typ}]) \
                 AND r.classid OPERATOR(pg_catalog.=) ANY (ARRAY[{rewrite}, {attrdef}, {constraint}, {policy}, {cast}, {trigger}, {class}, {statistic}]) \
                 AND (r.classid OPERATOR(pg_catalog.<>) {class} OR r.kind{eq}'') \
             UNION ALL SELECT {operator}, o.oid, r.kind FROM pg_catalog.pg_operator o \
               WHERE r.classid{eq}{operator} AND (o.oprnegate{eq}r.objid OR o.oprcom{eq}r.objid) \
             UNION ALL SELECT {class}, i.inhparent, r.kind FROM pg_catalog.pg_inherits i \
               WHERE r.classid{eq}{class} AND r.kind OPERATOR(pg_catalog.<>) 'k' AND i.inhrelid{eq}r.objid \
             UNION ALL SELECT {class}, i.inhrelid, 'k' FROM pg_catalog.pg_inherits i \
               JOIN pg_catalog.pg_partitioned_table pt ON pt.partrelid{eq}i.inhparent \
               WHERE r.classid{eq}{class} AND r.kind OPERATOR(pg_catalog.=) ANY (ARRAY['', 'k']) AND i.inhparent{eq}r.objid \
             UNION ALL SELECT {typ}, t.oid, 'r' FROM pg_catalog.pg_cast k \
               JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) ANY (ARRAY[k.castsource, k.casttarget]) \
               WHERE r.classid{eq}{cast} AND k.oid{eq}r.objid AND t.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
           ) n WHERE r.depth OPERATOR(pg_catalog.<) 12), \
         maintained(rel, brin) AS (SELECT x.indrelid, c.relam{eq}{brin_am} FROM reach r \
             JOIN pg_catalog.pg_index x ON r.classid{eq}{class} AND x.indexrelid{eq}r.objid \
             JOIN pg_catalog.pg_class c ON c.oid{eq}x.indexrelid \
           UNION SELECT s.stxrelid, false FROM reach r JOIN pg_catalog.pg_statistic_ext s \
             ON r.classid{eq}{statistic} AND s.oid{eq}r.objid \
           UNION SELECT i.inhparent, m.brin FROM maintained m JOIN pg_catalog.pg_inherits i ON i.inhrelid{eq}m.rel), \
         risky(oid) AS (SELECT r.objid FROM reach r WHERE r.classid{eq}{typ} \
           UNION SELECT CASE WHEN d.classid{eq}{typ} THEN d.objid ELSE c.reltype END \
             FROM risky k JOIN pg_catalog.pg_depend d ON d.refclassid{eq}{typ} AND d.refobjid{eq}k.oid \
               AND d.classid OPERATOR(pg_catalog.=) ANY (ARRAY[{typ}, {class}]) \
             LEFT JOIN pg_catalog.pg_class c ON d.classid{eq}{class} AND c.oid{eq}d.objid) \
         SELECT x.name::pg_catalog.text, CASE WHEN x.kind{eq}'' THEN 'r' WHEN x.kind{eq}'k' THEN 'b' ELSE x.kind END, x.seq, \
             s.nspname::pg_catalog.text, CASE WHEN s.oid IS NOT NULL THEN pg_catalog.pg_get_userbyid(x.owner)::pg_catalog.text END \
         FROM (\
           SELECT c.relname, r.kind, r.seq, c.relnamespace, c.relowner FROM reach r \
             JOIN pg_catalog.pg_class c ON r.classid{eq}{class} AND c.oid{eq}r.objid \
           UNION ALL SELECT t.typname, r.kind, r.seq, t.typnamespace, t.typowner FROM reach r \
             JOIN pg_catalog.pg_type t ON r.classid{eq}{typ} AND t.oid{eq}r.objid \
           UNION ALL SELECT c.relname, CASE WHEN m.brin THEN 'v' ELSE 'i' END, NULL, c.relnamespace, c.relowner \
             FROM maintained m JOIN pg_catalog.pg_class c ON c.oid{eq}m.rel \
           UNION ALL SELECT o.oprname, 'r', r.seq, o.oprnamespace, o.oprowner FROM reach r JOIN pg_catalog.pg_operator o \
             ON r.classid{eq}{operator} AND o.oid{eq}r.objid \
           UNION ALL SELECT f.proname, 'r', NULL, f.pronamespace, f.proowner FROM f \
             WHERE f.proname OPERATOR(pg_catalog.=) ANY (ARRAY[{builtins}]::pg_catalog.name[]) \
           UNION ALL SELECT k.oid::pg_catalog.text::pg_catalog.name, 't', NULL, t.typnamespace, t.typowner FROM risky k \
             JOIN pg_catalog.pg_type t ON t.oid{eq}k.oid \
           UNION ALL SELECT t.typname, 'r', NULL, t.typnamespace, t.typowner FROM risky k JOIN pg_catalog.pg_type t ON t.oid{eq}k.oid \
             WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid{eq}t.typrelid \
               AND c.relkind OPERATOR(pg_catalog.<>) 'c'::pg_catalog.\"char\" \
               AND c.relpersistence OPERATOR(pg_catalog.<>) 't'::pg_catalog.\"char\"){opened}\
         ) x(name, kind, seq, ns, owner) LEFT JOIN pg_catalog.pg_namespace s ON s.oid{eq}x.ns \
           AND s.nspname OPERATOR(pg_catalog.~) '^pg_(toast_)?temp_[0-9]+$' \
         UNION SELECT coalesce((SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_namespace n \
           WHERE n.oid{eq}pg_catalog.pg_my_temp_schema()), ''), 'm', NULL, NULL, NULL \
         UNION {remote_rows} \
         UNION SELECT pg_catalog.pg_get_userbyid(a.member)::pg_catalog.text, 'g', \
           pg_catalog.pg_get_userbyid(a.roleid)::pg_catalog.text, NULL, NULL FROM pg_catalog.pg_auth_members a",
        seeds = builtin_callers(),
        others = super::code::others_seeds(rules, &class, &typ),
        opened = super::opened::schemas_rows(rules),
        remote_ext = remote::extensions(),
        remote_rows = remote::rows(),
        brin_am = "(SELECT a.oid FROM pg_catalog.pg_am a WHERE a.amname OPERATOR(pg_catalog.=) 'brin'::pg_catalog.name)",
        down = deptypes("'n', 'a'"),
        temp_d = temporary("d.objid"),
        temp_u = temporary("u.refobjid"),
        up = deptypes("'a', 'i'"),
    )
}

/// The part of [`query`] that finds what calls a built-in with an effect on later statements,
/// by the built-in's OID in the stored expression (`:funcid N ` in the node tree): `set_config`
/// (a `search_path`, a role: what later names resolve to) and the built-ins that run SQL
/// (`runners`: whatever that SQL calls), named like callers of a user function, and
/// `nextval`/`setval` (a protected sequence moved). Looked at: the rules of views and tables (those of the system's own views
/// only for writes: `pg_settings`' UPDATE rule calls `set_config`), column and domain defaults,
/// `CHECK`s of tables and domains, row-security policies, triggers' `WHEN` and user operators. Two CTEs:
/// `seeds` (classid, objid, kind, the expression as text) and `hits` (classid, objid, kind, the
/// sequence moved or null for `set_config`). A sequence call whose argument is not a `regclass`
/// constant may move any sequence (`*`); one that is names a sequence the object depends on —
/// except a column's default taking from the sequence that column owns (`serial`): it moves
/// by the rows inserted into that table, which the identity check allows anyway.
fn builtin_callers() -> String {
    let cls = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass::pg_catalog.oid");
    let (rewrite, attrdef, constraint, policy, trigger, operator, class, typ) = (
        cls("pg_rewrite"),
        cls("pg_attrdef"),
        cls("pg_constraint"),
        cls("pg_policy"),
        cls("pg_trigger"),
        cls("pg_operator"),
        cls("pg_class"),
        cls("pg_type"),
    );
    let eq = " OPERATOR(pg_catalog.=) ";
    let oid = |f: &str| format!("'pg_catalog.{f}'::pg_catalog.regprocedure::pg_catalog.oid::pg_catalog.text");
    let (set_config, nextval, setval, setval3) = (
        oid("set_config(pg_catalog.text,pg_catalog.text,pg_catalog.bool)"),
        oid("nextval(pg_catalog.regclass)"),
        oid("setval(pg_catalog.regclass,pg_catalog.int8)"),
        oid("setval(pg_catalog.regclass,pg_catalog.int8,pg_catalog.bool)"),
    );
    let runs = runners::pattern();
    format!(
        "b(set_config, moves, constant, runs) AS (SELECT ':funcid ' OPERATOR(pg_catalog.||) {set_config} OPERATOR(pg_catalog.||) ' ', \
             ':funcid (' OPERATOR(pg_catalog.||) {nextval} OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) {setval} \
               OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) {setval3} OPERATOR(pg_catalog.||) ') ', \
             ':funcid (' OPERATOR(pg_catalog.||) {nextval} OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) {setval} \
               OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) {setval3} \
               OPERATOR(pg_catalog.||) ') [^{{}}]*:args [(][{{]CONST :consttype 2205 ', {runs}), \
         seeds(classid, objid, kind, tree) AS (\
           SELECT {rewrite}, w.oid, CASE WHEN w.ev_type{eq}'1'::pg_catalog.\"char\" THEN '' ELSE 'w' END, \
               w.ev_action::pg_catalog.text OPERATOR(pg_catalog.||) coalesce(w.ev_qual::pg_catalog.text, '') \
             FROM pg_catalog.pg_rewrite w WHERE w.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
               OR w.ev_type OPERATOR(pg_catalog.<>) '1'::pg_catalog.\"char\" \
           UNION ALL SELECT {attrdef}, d.oid, '', d.adbin::pg_catalog.text FROM pg_catalog.pg_attrdef d \
           UNION ALL SELECT {constraint}, c.oid, '', c.conbin::pg_catalog.text FROM pg_catalog.pg_constraint c \
             WHERE c.conbin IS NOT NULL \
           UNION ALL SELECT {policy}, p.oid, '', coalesce(p.polqual::pg_catalog.text, '') \
               OPERATOR(pg_catalog.||) coalesce(p.polwithcheck::pg_catalog.text, '') FROM pg_catalog.pg_policy p \
           UNION ALL SELECT {trigger}, t.oid, 'w', t.tgqual::pg_catalog.text FROM pg_catalog.pg_trigger t \
             WHERE t.tgqual IS NOT NULL \
           UNION ALL SELECT {typ}, y.oid, '', y.typdefaultbin::pg_catalog.text FROM pg_catalog.pg_type y \
             WHERE y.typdefaultbin IS NOT NULL \
           UNION ALL SELECT {operator}, o.oid, '', ':funcid ' OPERATOR(pg_catalog.||) o.oprcode::pg_catalog.oid::pg_catalog.text \
               OPERATOR(pg_catalog.||) ' ' FROM pg_catalog.pg_operator o WHERE o.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid), \
         hits(classid, objid, kind, seq) AS (\
           SELECT s.classid, s.objid, s.kind, NULL::pg_catalog.text FROM seeds s, b \
             WHERE pg_catalog.strpos(s.tree, b.set_config) OPERATOR(pg_catalog.>) 0 \
               OR s.tree OPERATOR(pg_catalog.~) b.runs \
           UNION ALL SELECT s.classid, s.objid, s.kind, q.seq FROM seeds s CROSS JOIN b CROSS JOIN LATERAL (\
             SELECT '*'::pg_catalog.text \
               WHERE pg_catalog.regexp_replace(s.tree, b.constant, '', 'g') OPERATOR(pg_catalog.~) b.moves \
             UNION ALL SELECT n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname \
               FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid{eq}d.refobjid \
               JOIN pg_catalog.pg_namespace n ON n.oid{eq}c.relnamespace \
               WHERE d.classid{eq}s.classid AND d.objid{eq}s.objid AND d.refclassid{eq}{class} \
                 AND c.relkind{eq}'S'::pg_catalog.\"char\" \
                 AND NOT EXISTS (SELECT FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_depend o \
                   ON o.classid{eq}{class} AND o.objid{eq}c.oid AND o.refclassid{eq}{class} \
                   AND o.refobjid{eq}a.adrelid AND o.refobjsubid{eq}a.adnum AND o.deptype{eq}'a'::pg_catalog.\"char\" \
                   WHERE s.classid{eq}{attrdef} AND a.oid{eq}s.objid)) q(seq) \
             WHERE s.tree OPERATOR(pg_catalog.~) b.moves)"
    )
}

#[cfg(test)]
mod tests;
