//! What the proxy learns from PostgreSQL's catalogs about a relation name: whether a write to
//! it may change other rows than its own (a view, rules, user triggers, inheritance children)
//! and so must be counted by the pre-check. Asked on a client's own session (its database, its
//! role's view of the catalog), cached per database and name, dropped when DDL passes through
//! or is notified (`listener`) and after a short time.
//!
//! Also the identities of policy tables per database (OIDs, protected columns' attnums, what
//! `names` learned of them), kept across restarts in the identities file when configured, and
//! which database each name stands for (`incarnation`: a database made again is another).
//! What is assumed where blastwall cannot ask is never stored here (`assumed`): it stands for
//! the one judgement that assumed it.
//!
//! Owns: the cache and the catalog query. Does not own: the I/O (`precheck`) or what is done
//! with the answer (`guard`).

mod assumed;
mod callers;
mod cascades;
mod code;
mod copies;
mod hidden;
mod incarnation;
mod keys;
pub mod listener;
mod minted;
mod namekey;
pub mod oids;
mod opened;
mod persisted;
mod taint;
mod temporary;

pub use assumed::Assumed;
pub use callers::HiddenCache;
pub use cascades::AssignedColumn;
pub use code::Runs;
pub use copies::RowMoves;
pub use hidden::HiddenCallers;
pub use incarnation::database_oid;
pub use minted::{minted_answer, minted_query};
pub use oids::OidName;
pub use opened::path_query;
pub use taint::{first_query as taint_first_query, learn_first_path, never_had_one, query as taint_query, Taint, Undo};
pub use temporary::{OwnTemp, Whose};

use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an answer is trusted when no DDL passes through blastwall.
const TTL: Duration = Duration::from_secs(30);

/// How old the last answer about a name may be to stand in when blastwall cannot ask.
const LAST_ANSWER_USABLE: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Catalog {
    /// (database, relation name) → (a write may reach other rows, when learned).
    /// The second flag: the same for an INSERT (`is_indirect_insert`).
    indirect: DashMap<(String, String), (bool, bool, Instant)>,
    /// (database, relation name) → what its foreign keys' actions reach (`cascades`), learned
    /// with `indirect`.
    cascades: cascades::Cache,
    /// (database, relation name) → what a row written into it evaluates that may move a
    /// sequence (`copies`), learned with `indirect`.
    copies: copies::Cache,
    /// (database, relation name) → a write to it runs someone's code (`code`), learned with
    /// `indirect`.
    code: code::Cache,
    /// The identity of policy tables: (database, schema, name) → OID, as first seen, so that
    /// their counters are found (and named) after a rename.
    oids: DashMap<(String, String, String), u32>,
    /// Protected columns by identity: (database, schema, table) → their attnums as first seen
    /// and their names now.
    columns: DashMap<(String, String, String), Columns>,
    /// (database, sequence name) → the (schema, table, column) that own sequences of that name.
    owners: DashMap<(String, String), (Vec<Owner>, Instant)>,
    /// (database, OID) → the relation it is (`oids`: a sequence `setval` is given by OID).
    pub oid_names: oids::Cache,
    /// (database, schema, table) → its columns and which of them a sequence mints.
    minted: DashMap<(String, String, String), (Vec<TableColumn>, Instant)>,
    /// (database, state schema) known to exist and be usable (see `crate::contract`).
    state_ready: DashMap<(String, String), ()>,
    /// (database, state schema) already reported as unusable in the log.
    state_warned: DashMap<(String, String), ()>,
    /// Per database: the hidden callers of user functions (see `hidden`, split by temporary
    /// schema: `temporary`), when learned, and whether DDL has passed since (then it is asked
    /// again before it is used, unless it cannot be asked: see
    /// [`Catalog::assume_hidden_callers`]).
    hidden: DashMap<String, (std::sync::Arc<temporary::Answer>, u64, bool), std::hash::BuildHasherDefault<hidden::Fnv>>,
    /// Bumped after every change to `hidden`: a session's copy of an answer
    /// ([`HiddenCache`]) stands while it has not moved.
    hidden_epoch: AtomicU64,
    /// Per database: what the policy tables are now (see `crate::names`).
    identities: DashMap<String, std::sync::Arc<crate::names::Identities>>,
    /// Bumped whenever answers are forgotten: sessions' resolved names older than it go too.
    generation: AtomicU64,
    /// Bumped whenever the policy tables' identities may have changed ([`Catalog::forget`]):
    /// an answer about them asked before may not stand in.
    identity_generation: AtomicU64,
    /// Where the OIDs of policy tables are kept across restarts, when configured.
    persist: Option<std::path::PathBuf>,
    /// Databases created through blastwall (`CREATE DATABASE` relayed): until a policy table
    /// is seen in one, it holds none, and may be dropped.
    created: dashmap::DashSet<String>,
    /// Where to ask for a connection listening for DDL (`listener`), and the databases asked.
    listen: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
    listening: dashmap::DashSet<String>,
    /// Database name → its OID when last seen (`incarnation`).
    incarnations: DashMap<String, u32>,
    /// Database name → when a session last took its first look at the policy tables' OIDs
    /// there (`session::firstlook`): once per TTL while some are unknown.
    first_looks: DashMap<String, Instant>,
    /// The protected sequences' creep budgets (`precheck::creep`), per database and OID.
    pub creep: crate::precheck::creep::Creep,
}

/// How a column's value is minted when a write does not supply it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mint {
    /// Not by a sequence.
    None,
    /// Its default calls a sequence (serial, bigserial, `DEFAULT nextval(…)`).
    SequenceDefault,
    /// `GENERATED BY DEFAULT AS IDENTITY`.
    IdentityByDefault,
    /// `GENERATED ALWAYS AS IDENTITY` (a supplied value needs OVERRIDING SYSTEM VALUE).
    IdentityAlways,
}

/// A column of a table, in attnum order (dropped columns left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableColumn {
    pub attnum: i64,
    pub name: String,
    pub mint: Mint,
    /// The minted columns it stands for (schema, table, column): a view's base column, an
    /// inheritance child's or partition's column in its parents (rule `explicit-id`).
    pub origins: Vec<Owner>,
    /// It stands for a minted column but has a default of its own that takes no sequence
    /// (`ALTER VIEW v ALTER id SET DEFAULT -91111150`): an INSERT that leaves it out mints an
    /// id by hand.
    pub hand_default: bool,
}

/// A column that owns a sequence: (schema, table, column).
pub type Owner = (String, String, String);

/// A table's protected columns: (policy name, attnum) as first seen; (policy name, name now).
#[derive(Debug, Clone, Default)]
struct Columns {
    attnums: Vec<(String, i64)>,
    current: Vec<(String, String)>,
    learned: Option<Instant>,
    /// When the names now were last asked, and under which identity generation (a rename
    /// through blastwall since: they may not stand in; [`Catalog::columns_stand_in`]).
    asked: Option<(Instant, u64)>,
}

/// Something to ask the catalog before a statement can be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// Whether a write to this relation name can reach other rows (views, rules, …).
    Indirect(String),
    /// The current names of a policy table's protected columns.
    Columns { schema: String, table: String },
    /// Which columns own sequences of this name.
    SequenceOwner(String),
    /// Which relation this OID is (a sequence given to `setval` as a string of digits).
    RelationOfOid(u32),
    /// Which columns of a policy table a sequence mints (rule `explicit-id`).
    Minted { schema: String, table: String },
    /// The database's hidden callers of user functions (see `hidden`).
    HiddenCallers,
    /// Whether the session's temporary schema holds code (see `taint`).
    Taint,
    /// What the policy tables are in this database now (`names::identities_query`).
    Identities,
    /// What these names (`names::key`) resolve to on this session.
    Relations(Vec<String>),
    /// The columns of a constraint of the relation a name resolves to on this session.
    Constraint { relation: String, constraint: String },
    /// Which of these prepared transactions (gids) are still there (`inflight::prepared`).
    Prepared(Vec<String>),
}

impl Question {
    /// The query of a question answered by one lookup in the catalog ([`Catalog::learn_lookup`]).
    pub fn lookup_sql(&self) -> Option<String> {
        match self {
            Question::SequenceOwner(seq) => Some(owners_query(seq)),
            Question::RelationOfOid(oid) => Some(oids::query(*oid)),
            _ => None,
        }
    }
}

impl Catalog {
    /// Learns the answer to a [`Question::lookup_sql`] (`None`: the query failed; no owner is
    /// known then, and the OID's relation is not known).
    pub fn learn_lookup(&self, database: &str, q: &Question, rows: Option<&[Vec<Option<String>>]>) {
        match q {
            Question::SequenceOwner(seq) => self.learn_owners(database, seq, rows.unwrap_or(&[])),
            Question::RelationOfOid(oid) => self.oid_names.learn(database, *oid, rows),
            _ => {}
        }
    }

    /// `Some(answer)` when known and fresh.
    pub fn is_indirect(&self, database: &str, name: &str) -> Option<bool> {
        let e = self.indirect.get(&namekey::of(database, name) as &dyn namekey::Parts<2>)?;
        (e.2.elapsed() < TTL).then_some(e.0)
    }

    /// Whether an INSERT (or COPY … FROM) into this name can reach other rows: a view or a
    /// partitioned table, rules, inheritance children, or user triggers that fire on INSERT
    /// (a trigger on DELETE or UPDATE only does not).
    pub fn is_indirect_insert(&self, database: &str, name: &str) -> Option<bool> {
        let e = self.indirect.get(&namekey::of(database, name) as &dyn namekey::Parts<2>)?;
        (e.2.elapsed() < TTL).then_some(e.1)
    }

    /// Learns both answers as one (`true` when blastwall cannot ask: fail closed).
    pub fn learn(&self, database: &str, name: &str, indirect: bool) {
        self.learn_both(database, name, indirect, indirect);
        let reach = if indirect { cascades::Cascades::everything() } else { Default::default() };
        self.cascades.learn(database, name, reach, Instant::now());
        let moves = if indirect { copies::unknown() } else { Default::default() };
        self.copies.learn(database, name, moves, Instant::now());
        // Not known: no code assumed, so that any change a count finds where the judgement
        // did not reach refuses the write (`guard::reached`).
        let runs = code::Runs { unanswered: indirect, partitioned: indirect, ..Default::default() };
        self.code.learn(database, name, runs, Instant::now());
    }

    fn learn_both(&self, database: &str, name: &str, indirect: bool, on_insert: bool) {
        self.indirect.insert((database.to_string(), name.to_string()), (indirect, on_insert, Instant::now()));
    }

    /// Records a `CREATE DATABASE` relayed through blastwall.
    pub fn created_database(&self, database: &str) {
        self.created.insert(database.to_string());
    }

    /// Whether a database may hold this policy table: blastwall has seen it there, or knows
    /// nothing of the database (any database may; fail closed) — only one created through
    /// blastwall and never seen holding it does not.
    pub fn may_hold(&self, database: &str, schema: &str, name: &str) -> bool {
        self.oid_of(database, schema, name).is_some() || !self.created.contains(database)
    }

    pub fn oid_of(&self, database: &str, schema: &str, name: &str) -> Option<u32> {
        self.oids.get(&(database, schema, name) as &dyn namekey::Parts<3>).map(|o| *o)
    }

    /// The policy table name an OID was first seen under.
    pub fn name_of(&self, database: &str, oid: u32) -> Option<(String, String)> {
        self.oids
            .iter()
            .find(|e| e.key().0 == database && *e.value() == oid)
            .map(|e| (e.key().1.clone(), e.key().2.clone()))
    }

    /// Remembers a policy table's OID the first time it is seen (a table dropped and created
    /// again under the name is found by name first; see `stats_sql`), and writes it to the
    /// identities file when one is configured.
    pub fn learn_oid(&self, database: &str, schema: &str, name: &str, oid: u32) {
        if oid == 0 {
            return;
        }
        let mut fresh = false;
        self.oids.entry((database.to_string(), schema.to_string(), name.to_string())).or_insert_with(|| {
            fresh = true;
            oid
        });
        if fresh {
            self.record(&serde_json::json!({"database": database, "schema": schema, "name": name, "oid": oid}));
        }
    }

    /// Replaces a policy table's remembered OID `old`, no relation's any more, with `new`, the
    /// one its name leads to now; its protected columns' attnums are learned again (the new
    /// table's). Recorded with what it replaces, so that the identities file reads it over the
    /// older line.
    fn replace_oid(&self, database: &str, schema: &str, name: &str, old: u32, new: u32) {
        let key = (database.to_string(), schema.to_string(), name.to_string());
        self.oids.insert(key.clone(), new);
        if let Some(mut e) = self.columns.get_mut(&key) {
            e.attnums.clear();
            e.learned = None;
        }
        self.record(
            &serde_json::json!({"database": database, "schema": schema, "name": name, "oid": new, "replaces": old}),
        );
    }

    /// What the policy tables are in this database, when known, fresh for this policy, and
    /// asked since blastwall last forgot its answers (an answer asked before and learned
    /// after is asked again).
    pub fn identities(
        &self,
        database: &str,
        policy: &crate::policy::Policy,
    ) -> Option<std::sync::Arc<crate::names::Identities>> {
        let now = (self.generation(), self.identity_generation());
        self.identities.get(database).filter(|i| i.fresh_for(policy) && i.current(now)).map(|i| i.clone())
    }

    /// The last answer about the policy tables, however old (`names::ask` decides whether it
    /// may stand in).
    pub fn last_identities(&self, database: &str) -> Option<std::sync::Arc<crate::names::Identities>> {
        self.identities.get(database).map(|i| i.clone())
    }

    /// Learns the answer of `names::identities_query`, asked under the catalog's generations
    /// `asked`; a policy table found by its name is remembered by OID from now on.
    pub fn learn_identities(
        &self,
        database: &str,
        policy: &crate::policy::Policy,
        rows: &[Vec<Option<String>>],
        asked: crate::names::Asked,
    ) {
        let ids = crate::names::identities_answer(policy, rows, asked);
        for ((t, oids), gone) in policy.tables.iter().zip(&ids.oids).zip(&ids.gone) {
            // With nothing remembered, the only OID in the answer is the one the name has now;
            // with a remembered one that no relation has any more (dropped), the one the name
            // has now replaces it (a table dropped and created again keeps its rules once it
            // is renamed).
            match (self.oid_of(database, &t.schema, &t.name), oids.as_slice()) {
                (None, [o]) => self.learn_oid(database, &t.schema, &t.name, *o),
                (Some(r), [o]) if r == *gone && r != *o => self.replace_oid(database, &t.schema, &t.name, r, *o),
                _ => {}
            }
        }
        self.identities.insert(database.to_string(), std::sync::Arc::new(ids));
    }

    /// Bumped by every [`Catalog::forget`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Bumped by [`Catalog::forget`], not by [`Catalog::forget_new_tables`].
    pub fn identity_generation(&self) -> u64 {
        self.identity_generation.load(Ordering::Acquire)
    }

    /// The protected columns of a table as (policy name, name now), when known and fresh.
    pub fn columns_of(&self, database: &str, schema: &str, table: &str) -> Option<Vec<(String, String)>> {
        let e = self.columns.get(&(database, schema, table) as &dyn namekey::Parts<3>)?;
        e.learned.filter(|t| t.elapsed() < TTL).map(|_| e.current.clone())
    }

    /// Whether the protected columns' names now were asked under the identity generation
    /// `generation` and at most `usable` ago: they may stand in where they cannot be asked (in
    /// the middle of a batch; `names::before_batch` asks them before one otherwise).
    pub fn columns_stand_in(
        &self,
        database: &str,
        schema: &str,
        table: &str,
        generation: u64,
        usable: Duration,
    ) -> bool {
        let e = self.columns.get(&(database, schema, table) as &dyn namekey::Parts<3>);
        e.and_then(|e| e.asked).is_some_and(|(at, g)| g == generation && at.elapsed() < usable)
    }

    /// Learns a table's columns (`rows`: name, attnum). The first time, the protected columns'
    /// attnums are remembered; after that their names are looked up by attnum, so a renamed
    /// column stays protected.
    pub fn learn_columns(
        &self,
        database: &str,
        schema: &str,
        table: &str,
        protected: &std::collections::BTreeSet<String>,
        rows: &[Vec<Option<String>>],
    ) {
        self.learn_columns_asked(database, schema, table, protected, rows, self.identity_generation());
    }

    /// [`Catalog::learn_columns`], asked under the identity generation `asked`.
    pub fn learn_columns_asked(
        &self,
        database: &str,
        schema: &str,
        table: &str,
        protected: &std::collections::BTreeSet<String>,
        rows: &[Vec<Option<String>>],
        asked: u64,
    ) {
        let cols: Vec<(String, i64)> =
            rows.iter().filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.as_deref()?.parse().ok()?))).collect();
        let mut e = self.columns.entry((database.to_string(), schema.to_string(), table.to_string())).or_default();
        if e.attnums.is_empty() {
            e.attnums = protected
                .iter()
                .filter_map(|p| cols.iter().find(|(n, _)| n == p).map(|(_, a)| (p.clone(), *a)))
                .collect();
            for (column, attnum) in &e.attnums {
                let line = serde_json::json!({"database": database, "schema": schema, "name": table, "column": column, "attnum": attnum});
                self.record(&line);
            }
        }
        e.current = protected
            .iter()
            .map(|p| {
                let now = e
                    .attnums
                    .iter()
                    .find(|(q, _)| q == p)
                    .and_then(|(_, a)| cols.iter().find(|(_, b)| b == a))
                    .map(|(n, _)| n.clone());
                (p.clone(), now.unwrap_or_else(|| p.clone()))
            })
            .collect();
        e.learned = Some(Instant::now());
        e.asked = Some((Instant::now(), asked));
    }

    pub fn sequence_owners(&self, database: &str, sequence: &str) -> Option<Vec<Owner>> {
        let e = self.owners.get(&namekey::of(database, sequence) as &dyn namekey::Parts<2>)?;
        (e.1.elapsed() < TTL).then(|| e.0.clone())
    }

    /// Learns a sequence-owner answer (`rows`: schema, table, column).
    pub fn learn_owners(&self, database: &str, sequence: &str, rows: &[Vec<Option<String>>]) {
        let owners =
            rows.iter().filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?, r.get(2)?.clone()?))).collect();
        self.owners.insert((database.to_string(), sequence.to_string()), (owners, Instant::now()));
    }

    /// A table's columns and how each is minted, when known and fresh.
    pub fn minted_of(&self, database: &str, schema: &str, table: &str) -> Option<Vec<TableColumn>> {
        let e = self.minted.get(&(database, schema, table) as &dyn namekey::Parts<3>)?;
        (e.1.elapsed() < TTL).then(|| e.0.clone())
    }

    /// [`Catalog::minted_of`] as last answered, of any age (DDL through blastwall forgets it).
    pub fn minted_last(&self, database: &str, schema: &str, table: &str) -> Option<Vec<TableColumn>> {
        self.minted.get(&(database, schema, table) as &dyn namekey::Parts<3>).map(|e| e.0.clone())
    }

    /// Learns the answer of [`minted_query`] (`rows`: attnum, name, kind).
    pub fn learn_minted(&self, database: &str, schema: &str, table: &str, rows: &[Vec<Option<String>>]) {
        let cols = minted_answer(rows);
        self.minted.insert((database.to_string(), schema.to_string(), table.to_string()), (cols, Instant::now()));
    }

    /// Whether blastwall's state schema is known to be usable in this database.
    pub fn state_ready(&self, database: &str, schema: &str) -> bool {
        self.state_ready.contains_key(&namekey::of(database, schema) as &dyn namekey::Parts<2>)
    }

    /// After the contract SQL ran: it worked (ready), or failed (create or check it again).
    pub fn learn_state_ready(&self, database: &str, schema: &str, ready: bool) {
        let key = (database.to_string(), schema.to_string());
        if ready {
            self.state_ready.insert(key, ());
        } else if self.state_ready.remove(&key).is_some() || self.state_warned.insert(key, ()).is_none() {
            // Said once per database (and again whenever a usable state stops being usable):
            // the writes whose rules need it are refused until it is fixed.
            tracing::warn!(
                database,
                schema,
                "blastwall's state schema cannot be used here (missing, or its functions not executable by this role): \
                 writes to tables with anomaly or budget rules are refused (rule contract-state) until a DBA runs \
                 `blastwall init-state` or grants EXECUTE"
            );
        }
    }

    /// Forgets a database's answers (DDL may have changed them); the identities stay.
    pub fn forget(&self, database: &str) {
        self.identity_generation.fetch_add(1, Ordering::AcqRel);
        self.forget_answers(database);
    }

    /// [`Catalog::forget`] after what cannot change the policy tables' identities (their
    /// names, the views and children over them; `names::changes_identities`): new plain
    /// tables, a function called. Those stay usable.
    pub fn forget_new_tables(&self, database: &str) {
        self.forget_answers(database);
    }

    fn forget_answers(&self, database: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(mut e) = self.hidden.get_mut(database) {
            e.2 = true;
        }
        self.hidden_epoch.fetch_add(1, Ordering::AcqRel);
        self.minted.retain(|(db, _, _), _| db != database);
        self.indirect.retain(|(db, _), _| db != database);
        self.cascades.forget(database);
        self.copies.forget(database);
        self.code.forget(database);
        self.owners.retain(|(db, _), _| db != database);
        self.oid_names.forget(database);
        for mut e in self.columns.iter_mut() {
            if e.key().0 == database {
                e.learned = None;
            }
        }
    }
}

/// The catalog query for a set of names: one row per name that exists, with whether a write
/// to any relation of that name (in any schema) can reach rows of other tables, and whether an
/// INSERT can (user triggers that fire on INSERT only: `tgtype` bit 4), and what its foreign
/// keys' actions reach (`cascades`), what a row written into it evaluates that may move a
/// sequence (`copies`), and whether a write to it runs someone's code and what its rules reach
/// (`code`). Every operator and
/// function is `pg_catalog`'s: the client's `search_path` cannot change the answer, which
/// other sessions share.
///
/// A relation another role than the policy tables' owners may give code (it owns it, or holds
/// `TRIGGER` on it) counts as one that reaches other rows, whatever it has now: code committed
/// by another session while a write waits for the relation's lock runs in that write
/// (sixty-fourth pass: a trigger that deleted 20 users, created by the table's owner on a
/// direct connection while an INSERT through blastwall waited). Such a write is counted, and
/// its counts say what the code did.
pub fn query(names: &[String], policy: &crate::policy::Policy) -> String {
    let list = names.iter().map(|n| literal(n)).collect::<Vec<_>>().join(", ");
    let others_code = code::others_may_give(policy);
    let trigger = |extra: &str| {
        format!(
            "EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid OPERATOR(pg_catalog.=) c.oid \
             AND NOT t.tgisinternal{extra})"
        )
    };
    let plain = format!("c.relkind OPERATOR(pg_catalog.<>) 'r' OR c.relhasrules OR c.relhassubclass OR {others_code}");
    format!(
        "SELECT c.relname::pg_catalog.text, pg_catalog.bool_or({plain} OR {any})::pg_catalog.text, \
         pg_catalog.bool_or({plain} OR {insert})::pg_catalog.text, {reach}, {moves}, {runs} \
         FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.=) ANY (ARRAY[{list}]::pg_catalog.name[]) GROUP BY c.relname",
        any = trigger(""),
        insert = trigger(" AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 4) OPERATOR(pg_catalog.<>) 0"),
        reach = cascades::column(),
        moves = copies::column(),
        runs = code::columns(),
    )
}

/// The query that finds a database's hidden callers of user functions (see `hidden`).
pub fn hidden_callers_query(policy: &crate::policy::Policy) -> String {
    hidden::query(policy)
}

/// The columns of a policy table (by name, or by the OID first seen under that name).
pub fn columns_query(schema: &str, table: &str, oid: Option<u32>) -> String {
    let qualified = format!("\"{}\".\"{}\"", schema.replace('"', "\"\""), table.replace('"', "\"\""));
    format!(
        "SELECT attname::pg_catalog.text, attnum::pg_catalog.text FROM pg_catalog.pg_attribute \
         WHERE attrelid OPERATOR(pg_catalog.=) coalesce(pg_catalog.to_regclass({})::pg_catalog.oid, {}::pg_catalog.oid) \
         AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped",
        literal(&qualified),
        oid.unwrap_or(0)
    )
}

/// The columns that own sequences named `sequence` (serial, identity, `OWNED BY`), or whose
/// default takes from one (`DEFAULT -nextval('s')` records that dependency): the sequence
/// feeds them whatever it is called now (seventy-fourth pass H1: the protected sequence
/// renamed, then `setval` by its new name).
pub fn owners_query(sequence: &str) -> String {
    format!(
        "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text, a.attname::pg_catalog.text \
         FROM pg_catalog.pg_depend d \
         JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) d.objid \
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.refobjid \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid \
           AND a.attnum OPERATOR(pg_catalog.=) d.refobjsubid \
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::pg_catalog.\"char\"[]) \
           AND s.relkind OPERATOR(pg_catalog.=) 'S'::pg_catalog.\"char\" AND s.relname OPERATOR(pg_catalog.=) {seq} \
         UNION \
         SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text, a.attname::pg_catalog.text \
         FROM pg_catalog.pg_depend d \
         JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) d.refobjid \
         JOIN pg_catalog.pg_attrdef f ON f.oid OPERATOR(pg_catalog.=) d.objid \
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) f.adrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid \
           AND a.attnum OPERATOR(pg_catalog.=) f.adnum \
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass \
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND s.relkind OPERATOR(pg_catalog.=) 'S'::pg_catalog.\"char\" AND s.relname OPERATOR(pg_catalog.=) {seq}",
        seq = literal(sequence)
    )
}

/// Reads the answer: names missing from it do not exist (a write to them fails).
pub fn learn_answer(cat: &Catalog, database: &str, names: &[String], rows: &[Vec<Option<String>>]) {
    for n in names {
        let says = |col: usize| {
            rows.iter().any(|r| {
                r.first().and_then(|v| v.as_deref()) == Some(n) && r.get(col).and_then(|v| v.as_deref()) == Some("true")
            })
        };
        cat.learn_both(database, n, says(1), says(2));
        let row = rows.iter().find(|r| r.first().and_then(|v| v.as_deref()) == Some(n));
        let reach = cascades::answer(row.and_then(|r| r.get(3)).and_then(|v| v.as_deref()));
        cat.cascades.learn(database, n, reach, Instant::now());
        let moves = copies::answer(row.and_then(|r| r.get(4)).and_then(|v| v.as_deref()));
        cat.copies.learn(database, n, moves, Instant::now());
        let col = |i: usize| row.and_then(|r| r.get(i)).and_then(|v| v.as_deref());
        cat.code.learn(database, n, code::answer(col(5), col(6), row.is_some()), Instant::now());
    }
}

/// Quotes a string as an SQL literal that reads the same whatever `standard_conforming_strings`
/// says (an E'' string).
pub fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'").replace('\0', ""))
}

#[cfg(test)]
mod tests;
