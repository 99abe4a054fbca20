//! Answers assumed for one judgement where the catalog cannot be asked (in the middle of a
//! client's extended-protocol batch): the worst each question may be answered with. They are
//! kept in the session (`names::Resolutions::assumed`) and dropped once the judgement that
//! assumed them is made — never stored in the shared catalog, where another judgement (of this
//! session or another) would take them for real answers (sixth adversarial pass F7: the
//! policy's column names, assumed for a mid-batch write after `RENAME COLUMN id TO uid`,
//! stood for 30 s as the protected columns' names now, and `WHERE uid BETWEEN …` ran alone
//! from any session).
//!
//! Owns: the per-judgement answers, what the worst is for the protected columns' names, and
//! reading an assumed answer before the shared one. Does not own: what is worst for the other
//! questions (`session::checks::assume_answers`), the shared cache (`super`).

use super::{Catalog, Owner, TableColumn};

/// A table's protected columns as (policy name, name now).
type Names = Vec<(String, String)>;

/// A judgement's assumed answers ((schema, table) or a sequence name → the answer).
#[derive(Debug, Clone, Default)]
pub struct Assumed {
    columns: Vec<((String, String), Names)>,
    owners: Vec<(String, Vec<Owner>)>,
    minted: Vec<((String, String), Vec<TableColumn>)>,
}

impl Assumed {
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty() && self.owners.is_empty() && self.minted.is_empty()
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
