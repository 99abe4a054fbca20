//! The statements of a Query text that blastwall runs as an extended batch (`simple`): where
//! each one is in the text, and whether the whole text can run so with the same outcome as a
//! simple Query (what behaves otherwise in a batch, and non-ASCII text after a statement that
//! may change `client_encoding`, which the server would decode anew for each Parse).
//!
//! Owns: [`split`] and [`Piece`]. Does not own: running the batch (`simple`).

use pg_query::protobuf::TransactionStmtKind as Tx;
use pg_query::NodeEnum;

/// One statement of the Query: its bytes in the text and the characters before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Piece {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Characters of the text before the statement (an error's position counts characters).
    pub(super) chars_before: usize,
    /// `COPY … FROM STDIN`: the rest waits for its data.
    pub(super) copy_in: bool,
    /// Its rows are produced whole before they are sent (RETURNING, a data-modifying WITH,
    /// SHOW): the simple protocol sends its RowDescription after what the statement raised
    /// while it ran, and none if it failed.
    pub(super) stored: bool,
}

/// The statements of a Query text, if it can run as an extended batch with the same outcome
/// as a simple Query; else why not. Statements whose behaviour differs between the two are
/// left out: those that refuse to run in a transaction block or a pipeline (VACUUM, CREATE
/// DATABASE, … `CONCURRENTLY`), those that need a transaction block (DECLARE, LOCK, SET
/// LOCAL, SET TRANSACTION: an implicit block of a Query counts as one, a batch's does not),
/// two-phase commit, `AND CHAIN`, and everything not listed below.
#[cfg(test)]
pub(super) fn split(sql: &[u8], utf8: bool, scs: bool) -> Result<Vec<Piece>, &'static str> {
    split_at(sql, utf8, scs, true)
}

/// [`split`], for a Query that comes inside a transaction block or not (`in_block`: only then
/// can a transaction's end in it undo a `SET LOCAL` made before it).
pub(super) fn split_at(sql: &[u8], utf8: bool, scs: bool, in_block: bool) -> Result<Vec<Piece>, &'static str> {
    if !scs {
        return Err("standard_conforming_strings is off");
    }
    if !utf8 && !sql.is_ascii() {
        return Err("its text is not ASCII and client_encoding is not UTF8");
    }
    let text = std::str::from_utf8(sql).map_err(|_| "its text is not valid UTF-8")?;
    let parsed = crate::analyze::budget::parse(text, 0).map_err(|_| "its text does not parse")?;
    let mut pieces = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let node = raw.stmt.as_ref().and_then(|n| n.node.as_ref()).ok_or("a statement is empty")?;
        let copy_in = match node {
            NodeEnum::CopyStmt(c) => c.is_from && !c.is_program && c.filename.is_empty(),
            _ => false,
        };
        if !runs_alike(node) {
            return Err("a statement in it behaves differently in an extended-protocol batch");
        }
        let start = usize::try_from(raw.stmt_location).map_err(|_| "a statement has no location")?;
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => text.len(),
            Ok(n) => start + n,
        };
        let body = text.get(start..end).ok_or("a statement's bounds are not in the text")?;
        if body.trim().is_empty() {
            continue;
        }
        let chars_before = text[..start].chars().count();
        let stored = match node {
            NodeEnum::SelectStmt(s) => s.with_clause.as_ref().is_some_and(modifies),
            _ => true,
        };
        pieces.push(Piece { start, end, chars_before, copy_in, stored });
    }
    if pieces.len() < 2 {
        return Err("it is a single statement");
    }
    // As a Query the server decodes the whole text in the encoding it had when the message
    // came; as a batch, each statement's Parse in the encoding of that moment: a statement
    // that may change `client_encoding` (SET, RESET, DISCARD, a function, DO, CALL, EXECUTE,
    // a transaction's end that undoes a SET) would make the non-ASCII statements after it
    // other statements than the ones judged.
    if !sql.is_ascii() && may_change_encoding(text, &parsed, &pieces, in_block) {
        return Err("its text is not ASCII and a statement in it may change client_encoding before the rest is read");
    }
    Ok(pieces)
}

/// Whether a statement before the last non-ASCII one may change `client_encoding`: one that
/// sets, resets or discards settings, runs code (a function call, DO, CALL, EXECUTE), or — in
/// a Query sent inside a block — ends the transaction or goes back to a savepoint (which undoes
/// a `SET` or `SET LOCAL` made in it).
fn may_change_encoding(text: &str, parsed: &pg_query::ParseResult, pieces: &[Piece], in_block: bool) -> bool {
    let Some(last) = pieces.iter().rposition(|p| !text.as_bytes()[p.start..p.end].is_ascii()) else { return false };
    let nodes = parsed.protobuf.stmts.iter().filter_map(|raw| raw.stmt.as_ref().and_then(|n| n.node.as_ref()));
    // Empty statements were left out of the pieces: they are matched by position.
    let starts: Vec<usize> = pieces[..last].iter().map(|p| p.start).collect();
    parsed.protobuf.stmts.iter().zip(nodes).any(|(raw, node)| {
        let Ok(at) = usize::try_from(raw.stmt_location) else { return true };
        if !starts.contains(&at) {
            return false;
        }
        let changes = match node {
            NodeEnum::VariableSetStmt(_)
            | NodeEnum::DiscardStmt(_)
            | NodeEnum::DoStmt(_)
            | NodeEnum::CallStmt(_)
            | NodeEnum::ExecuteStmt(_) => true,
            // Outside a block at the Query's start, a SET before it in the Query is refused
            // above; a `SET` made earlier in the client's block is undone by its end.
            NodeEnum::TransactionStmt(t) => {
                in_block
                    && !matches!(
                        Tx::try_from(t.kind),
                        Ok(Tx::TransStmtBegin | Tx::TransStmtStart | Tx::TransStmtSavepoint | Tx::TransStmtRelease)
                    )
            }
            _ => false,
        };
        let piece = pieces.iter().find(|p| p.start == at);
        changes
            || piece.is_none_or(|p| {
                // `set_config` is a built-in the analysis does not count as a call.
                let body = &text[p.start..p.end];
                let statements = crate::analyze::analyze(body, Default::default());
                body.to_ascii_lowercase().contains("set_config")
                    || statements.iter().any(|st| st.calls_functions || !st.opaque.is_empty())
            })
    })
}

/// Whether a WITH clause holds a data-modifying statement.
pub(super) fn modifies(w: &pg_query::protobuf::WithClause) -> bool {
    w.ctes.iter().any(|c| match &c.node {
        Some(NodeEnum::CommonTableExpr(cte)) => matches!(
            cte.ctequery.as_ref().and_then(|q| q.node.as_ref()),
            Some(NodeEnum::InsertStmt(_) | NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) | NodeEnum::MergeStmt(_))
        ),
        _ => false,
    })
}

/// Whether a statement does the same in a multi-statement Query and in an extended batch.
fn runs_alike(node: &NodeEnum) -> bool {
    match node {
        NodeEnum::SelectStmt(_)
        | NodeEnum::InsertStmt(_)
        | NodeEnum::UpdateStmt(_)
        | NodeEnum::DeleteStmt(_)
        | NodeEnum::MergeStmt(_)
        | NodeEnum::CopyStmt(_)
        | NodeEnum::VariableShowStmt(_)
        | NodeEnum::CreateStmt(_)
        | NodeEnum::AlterTableStmt(_)
        // `ALTER … RENAME` (a table, a column, an index, …): its own node, as ADD COLUMN is not
        // (twenty-seventh pass L3). None of them refuses a block or needs one.
        | NodeEnum::RenameStmt(_)
        | NodeEnum::TruncateStmt(_)
        | NodeEnum::CreateTableAsStmt(_)
        | NodeEnum::ViewStmt(_)
        | NodeEnum::CommentStmt(_)
        | NodeEnum::GrantStmt(_) => true,
        // SET TRANSACTION warns outside a block: an implicit block of a Query counts as one.
        NodeEnum::VariableSetStmt(s) => !s.is_local && !s.name.eq_ignore_ascii_case("transaction"),
        NodeEnum::IndexStmt(s) => !s.concurrent,
        NodeEnum::DropStmt(s) => !s.concurrent,
        NodeEnum::TransactionStmt(t) => {
            !t.chain
                && matches!(
                    Tx::try_from(t.kind),
                    Ok(Tx::TransStmtBegin
                        | Tx::TransStmtStart
                        | Tx::TransStmtCommit
                        | Tx::TransStmtRollback
                        | Tx::TransStmtSavepoint
                        | Tx::TransStmtRelease
                        | Tx::TransStmtRollbackTo)
                )
        }
        _ => false,
    }
}
