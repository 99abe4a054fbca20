//! Policy: what the operators wrote, compiled, and the pure decision over analysis facts.
//!
//! Owns: the compiled policy types and `decide` — a pure function of (facts, session, policy).
//! Does not own: the file format (see `file`), parsing SQL (`analyze`), or the wire (`relay`).

mod counts;
mod decide;
pub mod file;

pub use counts::{judge_counts, Measured, ReachedTable};
pub use decide::{
    decide, decide_resolved, describe_counts, limits_for, mode_for, Decision, Finding, Reach, SessionView, TableCount,
    TablesOf, ViewColumns,
};
pub use file::{PolicyError, DEFAULT_POLICY};

use crate::analyze::RelName;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// How a rule is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Forward silently.
    Off,
    /// Forward, and tell the client in a NoticeResponse.
    Warn,
    /// Never let it change anything; tell the client what it would have done.
    DryRun,
    /// Refuse.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Warn => "warn",
            Mode::DryRun => "dry-run",
            Mode::Enforce => "enforce",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Mode::Off),
            "warn" => Ok(Mode::Warn),
            "dry-run" => Ok(Mode::DryRun),
            "enforce" => Ok(Mode::Enforce),
            _ => Err(format!("{s:?} is not a mode (enforce, warn, dry-run, off)")),
        }
    }
}

/// What to do with statements no parser can see into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Block,
    Warn,
    Allow,
    /// Run it inside the pre-check, so the row limits apply to what it changes.
    Verify,
}

/// Operations a table can forbid outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forbid {
    Truncate,
    Drop,
    AlterDropColumn,
    Rename,
    UpsertOverwrite,
    Setval,
    /// An INSERT or COPY that supplies a value for a protected column the sequence mints.
    ExplicitId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpaqueActions {
    pub do_block: Action,
    pub call: Action,
    pub explain_analyze: Action,
    pub function_call: Action,
    pub unparseable: Action,
    /// Statements that call functions other than well-known built-ins (whose bodies may write).
    pub functions: Action,
}

impl OpaqueActions {
    pub fn for_key(&self, key: &str) -> Action {
        match key {
            "do" => self.do_block,
            "call" => self.call,
            "explain_analyze" => self.explain_analyze,
            "function_call" => self.function_call,
            "functions" => self.functions,
            _ => self.unparseable,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TablePolicy {
    pub schema: String,
    pub name: String,
    pub protected_columns: BTreeSet<String>,
    pub sequences: Vec<RelName>,
    pub max_delete_rows: Option<u64>,
    pub max_update_rows: Option<u64>,
    pub forbid: BTreeSet<Forbid>,
    pub mode: Option<Mode>,
    pub require_where: Option<bool>,
    /// `allow_protected_update = true`: an UPDATE (in any form) may set a protected column
    /// (rule `protected-assign` otherwise refuses it).
    pub allow_protected_update: bool,
    /// The anomaly rule's keys as this table sets them (the rest from `[defaults]`).
    pub anomaly: AnomalyKeys,
    /// Rows per window across all sessions and instances (rule `budget`).
    pub budget: Option<Budget>,
    /// Steps its protected sequences may move beyond the rows inserted, per window, summed
    /// across statements and sessions (rule `identity`; `precheck::creep`).
    pub creep: Creep,
    /// `file line N`, for messages.
    pub source: String,
}

/// The keys of the anomaly rule as one section sets them; unset keys fall back to
/// `[defaults]`, then to the built-in values (see `crate::contract::anomaly_for`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnomalyKeys {
    pub enabled: Option<bool>,
    /// k: a run over k × the usual count is an anomaly.
    pub factor: Option<u64>,
    /// N: the usual is the median of the last N kept runs.
    pub runs: Option<u64>,
    /// No verdict before this many kept runs.
    pub min_runs: Option<u64>,
    /// A run of at most this many rows is never an anomaly.
    pub floor: Option<u64>,
}

/// A table's budget: at most this many rows deleted / updated in any window of `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub delete_rows: Option<u64>,
    pub update_rows: Option<u64>,
    pub window_secs: u64,
}

/// A table's creep budget: at most `steps` unexplained steps of each protected sequence in
/// any window of `window_secs` (`sequence_creep`, `sequence_creep_window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Creep {
    pub steps: u64,
    pub window_secs: u64,
}

impl Default for Creep {
    fn default() -> Self {
        Creep { steps: 10_000, window_secs: 3600 }
    }
}

/// Where the anomaly histories and budgets live (`[state]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// The schema blastwall owns in the guarded database.
    pub schema: String,
    /// Create it on first use (else a DBA runs `blastwall init-state`).
    pub create: bool,
}

impl TablePolicy {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Whether a relation as a statement names it may be this table. An unqualified name may
    /// resolve to any schema on the search_path, so it matches the table in every schema.
    pub fn matches(&self, r: &RelName) -> bool {
        r.name == self.name && r.schema.as_deref().is_none_or(|s| s == self.schema)
    }

    /// It has rules that judge a write's text, not only its count: protected columns
    /// (`protected-range`, `protected-assign`), `upsert_overwrite`, its own `require_where`.
    pub fn judges_text(&self) -> bool {
        !self.protected_columns.is_empty()
            || self.forbid.contains(&Forbid::UpsertOverwrite)
            || self.require_where.is_some()
    }
}

/// A role or an application_name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub mode: Option<Mode>,
    pub may_override: bool,
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub sources: Vec<PathBuf>,
    pub hash: String,
    pub mode: Mode,
    pub require_where: bool,
    pub max_in_list: usize,
    pub max_delete_rows: Option<u64>,
    pub max_update_rows: Option<u64>,
    pub opaque: OpaqueActions,
    pub tables: Vec<TablePolicy>,
    pub roles: HashMap<String, Subject>,
    pub applications: HashMap<String, Subject>,
    /// The anomaly rule's keys in `[defaults]`.
    pub anomaly: AnomalyKeys,
    pub state: StateConfig,
}

impl Policy {
    /// The defaults before any file: enforce, WHERE required, opaque statements blocked.
    pub fn empty() -> Policy {
        Policy {
            sources: Vec::new(),
            hash: String::new(),
            mode: Mode::Enforce,
            require_where: true,
            max_in_list: 100,
            max_delete_rows: None,
            max_update_rows: None,
            opaque: OpaqueActions {
                do_block: Action::Block,
                call: Action::Block,
                explain_analyze: Action::Block,
                function_call: Action::Block,
                unparseable: Action::Block,
                functions: Action::Allow,
            },
            tables: Vec::new(),
            roles: HashMap::new(),
            applications: HashMap::new(),
            anomaly: AnomalyKeys::default(),
            state: StateConfig { schema: "blastwall".into(), create: true },
        }
    }

    pub fn source_names(&self) -> String {
        if self.sources.is_empty() {
            return "<built-in default>".into();
        }
        self.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}
