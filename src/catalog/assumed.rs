//! Answers assumed for one judgement where the catalog cannot be asked (in the middle of a
//! client's extended-protocol batch): the worst each question may be answered with. They are
//! kept in the session (`names::Resolutions::assumed`) and dropped once the judgement that
//! assumed them is made — never stored in the shared catalog, where another judgement (of this
//! session or another) would take them for real answers (sixth adversarial pass F7: the
//! policy's column names, assumed for a mid-batch write after `RENAME COLUMN id TO uid`,
//! stood for 30 s as the protected columns' names now, and `WHERE uid BETWEEN …` ran alone
//! from any session).
//!
//! So is what a write to a name may reach besides its own rows (`Question::Indirect`: a
//! view, rules, triggers, children, foreign keys' actions, what a row evaluates): the last
//! answer the catalog gave within five minutes, else the worst. It was once kept in the shared
//! cache for a second, where another session's judgement could take it for its answer; it is
//! kept until the judgement that assumed it reaches its verdict (`Assumed::judged`: its
//! rounds of questions may assume other answers in between).
//!
//! Owns: the per-judgement answers, what the worst is for the protected columns' names and
//! for a name's indirect effects, and reading an assumed answer before the shared one. Does
//! not own: what is worst for the other questions (`session::questions::assume_answers`), the
//! shared cache (`super`).

use super::cascades::{AssignedColumn, Cascades, ColumnNames};
use super::copies::RowMoves;
use super::{Catalog, Owner, TableColumn};
use crate::policy::Policy;
use std::sync::Arc;

/// A table's protected columns as (policy name, name now).
type Names = Vec<(String, String)>;

/// A judgement's assumed answers ((schema, table) or a sequence name → the answer).
#[derive(Debug, Clone, Default)]
pub struct Assumed {
    columns: Vec<((String, String), Names)>,
    owners: Vec<(String, Vec<Owner>)>,
    minted: Vec<((String, String), Vec<TableColumn>)>,
    /// OIDs whose relation cannot be asked now (`Question::RelationOfOid`).
    oids: Vec<u32>,
    /// Relation name → what a write to it may reach, until the judgement's verdict.
    indirect: Vec<(String, Indirect)>,
}

/// An assumed answer to `Question::Indirect`.
#[derive(Debug, Clone)]
struct Indirect {
    /// A write may reach other rows; an INSERT may.
    any: bool,
    insert: bool,
    cascades: Arc<Cascades>,
    moves: Arc<RowMoves>,
}

impl Assumed {
    /// Whether nothing but the indirect answers is assumed (those stay until [`Assumed::judged`]).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty() && self.owners.is_empty() && self.minted.is_empty() && self.oids.is_empty()
    }

    /// Drops what was assumed except the indirect answers (`names::Resolutions::after_judging`:
    /// the judgement's names are decided; its count is not yet).
    pub fn decided(&mut self) {
        self.columns.clear();
        self.owners.clear();
        self.minted.clear();
        self.oids.clear();
    }

    /// The judgement that assumed them reached its verdict: nothing assumed stays.
    pub fn judged(&mut self) {
        if !self.indirect.is_empty() {
            self.indirect.clear();
        }
    }

    /// What is assumed of a name's indirect effects where blastwall cannot ask (in the middle
    /// of a client's extended batch): the last answer, if the catalog gave one within
    /// `LAST_ANSWER_USABLE` (DDL through blastwall forgets it; DDL run elsewhere since is seen
    /// at the next question blastwall can ask), else the worst.
    pub fn assume_indirect(&mut self, catalog: &Catalog, database: &str, name: &str) {
        let key = (database.to_string(), name.to_string());
        let usable = super::LAST_ANSWER_USABLE;
        let last = catalog.indirect.get(&key).map(|e| *e).filter(|e| e.2.elapsed() < usable);
        let cascades = last.and(catalog.cascades.last(database, name, usable));
        let ((any, insert), cascades) = match (last, cascades) {
            (Some((any, insert, _)), Some(cascades)) => ((any, insert), cascades),
            _ => ((true, true), Arc::new(Cascades::everything())),
        };
        // What a row evaluates that moves a sequence: never assumed harmless.
        let answer = Indirect { any, insert, cascades, moves: Arc::new(super::copies::unknown()) };
        self.indirect.retain(|(n, _)| n != name);
        self.indirect.push((name.to_string(), answer));
    }

    /// Whether this judgement assumed what a write to `name` reaches (it could not ask).
    pub fn assumes_indirect(&self, name: &str) -> bool {
        self.indirect(name).is_some()
    }

    fn indirect(&self, name: &str) -> Option<&Indirect> {
        self.indirect.iter().find(|(n, _)| n == name).map(|(_, i)| i)
    }

    /// [`Catalog::is_indirect`], or what this judgement assumed of it.
    pub fn is_indirect(&self, catalog: &Catalog, database: &str, name: &str) -> Option<bool> {
        self.indirect(name).map(|i| i.any).or_else(|| catalog.is_indirect(database, name))
    }

    /// [`Catalog::is_indirect_insert`], or what this judgement assumed of it.
    pub fn is_indirect_insert(&self, catalog: &Catalog, database: &str, name: &str) -> Option<bool> {
        self.indirect(name).map(|i| i.insert).or_else(|| catalog.is_indirect_insert(database, name))
    }

    /// [`Catalog::row_moves`], or what this judgement assumed of it.
    pub fn row_moves(&self, catalog: &Catalog, database: &str, name: &str) -> Option<Arc<RowMoves>> {
        self.indirect(name).map(|i| i.moves.clone()).or_else(|| catalog.row_moves(database, name))
    }

    /// [`Catalog::cascades_reach_guarded`], or the same of what this judgement assumed.
    pub fn cascades_reach_guarded(
        &self,
        catalog: &Catalog,
        database: &str,
        name: &str,
        delete: bool,
        policy: &Policy,
    ) -> Option<bool> {
        match self.indirect(name) {
            Some(i) => Some(catalog.reach_guarded(&i.cascades, database, delete, policy)),
            None => catalog.cascades_reach_guarded(database, name, delete, policy),
        }
    }

    /// [`Catalog::fk_assignments`], or the same of what this judgement assumed.
    #[allow(clippy::too_many_arguments)]
    pub fn fk_assignments(
        &self,
        catalog: &Catalog,
        database: &str,
        name: &str,
        delete: bool,
        assigned: &[String],
        policy: &Policy,
        columns: &ColumnNames<'_>,
    ) -> Option<Result<Vec<AssignedColumn>, usize>> {
        match self.indirect(name) {
            Some(i) => Some(catalog.assignments(&i.cascades, database, delete, assigned, policy, columns)),
            None => catalog.fk_assignments(database, name, delete, assigned, policy, columns),
        }
    }

    /// The worst for a table's protected columns' names: each by its policy name and by every
    /// name blastwall last knew it by (a rename it saw answered), however old that answer.
    pub fn assume_columns(
        &mut self,
        catalog: &Catalog,
        database: &str,
        schema: &str,
        table: &str,
        protected: &std::collections::BTreeSet<String>,
    ) {
        let mut names: Vec<(String, String)> = protected.iter().map(|p| (p.clone(), p.clone())).collect();
        let key = (database.to_string(), schema.to_string(), table.to_string());
        if let Some(e) = catalog.columns.get(&key) {
            for (p, now) in &e.current {
                if !names.contains(&(p.clone(), now.clone())) {
                    names.push((p.clone(), now.clone()));
                }
            }
        }
        self.columns.push(((schema.to_string(), table.to_string()), names));
    }

    pub fn assume_owners(&mut self, sequence: &str, owners: Vec<Owner>) {
        self.owners.push((sequence.to_string(), owners));
    }

    pub fn assume_minted(&mut self, schema: &str, table: &str, columns: Vec<TableColumn>) {
        self.minted.push(((schema.to_string(), table.to_string()), columns));
    }

    /// [`Catalog::columns_of`], or what this judgement assumed of them.
    /// Whether [`Assumed::columns_of`] has an answer (none copied, as `Catalog::columns_of` reads it).
    pub fn columns_known(&self, catalog: &Catalog, database: &str, schema: &str, table: &str) -> bool {
        let known = catalog.columns.get(&(database, schema, table) as &dyn super::namekey::Parts<3>);
        self.columns.iter().any(|((s, t), _)| s == schema && t == table)
            || known.is_some_and(|e| e.learned.is_some_and(|t| t.elapsed() < super::TTL))
    }

    pub fn columns_of(
        &self,
        catalog: &Catalog,
        database: &str,
        schema: &str,
        table: &str,
    ) -> Option<Vec<(String, String)>> {
        match self.columns.iter().find(|((s, t), _)| s == schema && t == table) {
            Some((_, c)) => Some(c.clone()),
            None => catalog.columns_of(database, schema, table),
        }
    }

    /// An OID's relation cannot be asked for this judgement: not known.
    pub fn assume_oid(&mut self, oid: u32) {
        self.oids.push(oid);
    }

    /// The relation an OID is ([`super::oids`]), or not known where this judgement assumed so.
    pub fn relation_of_oid(&self, catalog: &Catalog, database: &str, oid: u32) -> Option<super::OidName> {
        match self.oids.contains(&oid) {
            true => Some(super::OidName::Unknown),
            false => catalog.oid_names.get(database, oid),
        }
    }

    /// [`Catalog::sequence_owners`], or what this judgement assumed of them.
    pub fn sequence_owners(&self, catalog: &Catalog, database: &str, sequence: &str) -> Option<Vec<Owner>> {
        match self.owners.iter().find(|(s, _)| s == sequence) {
            Some((_, o)) => Some(o.clone()),
            None => catalog.sequence_owners(database, sequence),
        }
    }

    /// [`Catalog::minted_of`], or what this judgement assumed of them.
    pub fn minted_of(&self, catalog: &Catalog, database: &str, schema: &str, table: &str) -> Option<Vec<TableColumn>> {
        match self.minted.iter().find(|((s, t), _)| s == schema && t == table) {
            Some((_, c)) => Some(c.clone()),
            None => catalog.minted_of(database, schema, table),
        }
    }
}
