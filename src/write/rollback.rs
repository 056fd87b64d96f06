//! Rollbacks: a layer, or one feature of it, restored to its state right after an
//! earlier change — recorded as a change of its own, so a rollback can be undone too.

use rusqlite::TransactionBehavior;

use super::WriteError;
use crate::store::{Store, history, layer};

/// What to restore.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// Layer name.
    pub layer: String,
    /// The change to return to.
    pub to: i64,
    /// Only this feature (the others keep their later changes).
    pub feature: Option<i64>,
    /// Who rolls back (recorded).
    pub actor: String,
}

/// What a rollback did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rolled {
    /// The change the rollback was recorded as.
    pub change: i64,
    /// The change it returned to.
    pub restores: i64,
    /// The change before the rollback (rolling back to it undoes the rollback).
    pub previous: i64,
}

/// Runs a rollback in one transaction.
pub fn rollback(store: &Store, r: &Rollback) -> Result<Rolled, WriteError> {
    let def = store.layer(&r.layer)?;
    let err = |e| WriteError::Store(store.err(e));
    let tx = rusqlite::Transaction::new_unchecked(store.conn(), TransactionBehavior::Immediate)
        .map_err(err)?;
    let changes = history::list(&tx, Some(&r.layer)).map_err(err)?;
    if !changes.iter().any(|c| c.id == r.to) {
        return Err(WriteError::NotFound(format!(
            "collection '{}' has no change {}; its history lists the changes",
            r.layer, r.to
        )));
    }
    let previous = changes.last().map_or(r.to, |c| c.id);
    let change = match r.feature {
        Some(fid) => history::rollback_feature(&tx, &def, r.to, fid, &r.actor)
            .map_err(err)?
            .ok_or_else(|| {
                WriteError::Conflict(format!(
                    "feature {fid} of '{}' has not changed since change {}",
                    r.layer, r.to
                ))
            })?,
        None => history::rollback(&tx, &def, r.to, &r.actor).map_err(err)?,
    };
    layer::refresh_contents(&tx, &def).map_err(err)?;
    super::commit(tx).map_err(err)?;
    Ok(Rolled {
        change,
        restores: r.to,
        previous,
    })
}

/// Undoes one change of a layer when no later change touched its features. `only_by`:
/// a maintainer undoes only changes made with their own token.
pub fn undo(
    store: &Store,
    layer: &str,
    change: i64,
    actor: &str,
    only_by: Option<&str>,
) -> Result<i64, WriteError> {
    let def = store.layer(layer)?;
    let err = |e| WriteError::Store(store.err(e));
    let tx = rusqlite::Transaction::new_unchecked(store.conn(), TransactionBehavior::Immediate)
        .map_err(err)?;
    if let Some(me) = only_by {
        let by: Option<String> = tx
            .query_row(
                "SELECT actor FROM nordgeo_changes WHERE id = ?1 AND layer = ?2",
                rusqlite::params![change, layer],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(err)?;
        if by.as_deref().is_some_and(|b| b != me) {
            return Err(WriteError::Forbidden(format!(
                "change {change} was made by {}; you may undo only your own changes",
                by.unwrap_or_default()
            )));
        }
    }
    let id = history::undo(&tx, &def, change, actor).map_err(|e| match e {
        history::UndoError::Sql(e) => err(e),
        history::UndoError::NotFound(..) => WriteError::NotFound(e.to_string()),
        other => WriteError::Conflict(other.to_string()),
    })?;
    layer::refresh_contents(&tx, &def).map_err(err)?;
    super::commit(tx).map_err(err)?;
    Ok(id)
}
