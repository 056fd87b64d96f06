//! The one write path: every change to the store — a feature edit, an import, a
//! rollback, a layer setting, a vacuum — runs through here, from the command line and
//! over HTTP alike, in one SQLite transaction that records who made it.
//!
//! Nothing here updates a server's memory: each commit leaves rows in the store's change
//! capture (`store::capture`), and every running server's catalog turns them into change
//! events (`catalog`). Changes by other programs take the same way, so there is one kind
//! of event whoever wrote.

pub mod edit;
pub mod import;
pub mod rollback;
pub mod settings;

use crate::store::{Store, StoreError, capture, history};

pub use crate::store::budget::Budget;

pub use edit::{Edit, EditError, Op, Outcome};

/// Why a write did not happen; nothing was changed in every case.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request does not fit the data.
    #[error("{0}")]
    Invalid(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The data is not in the state the request assumes.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The store cannot be reached now (nothing was changed; try again).
    #[error("{0}")]
    Unavailable(String),
    /// Another kind of store (PostGIS) refused or failed; its own message.
    #[error("{0}")]
    Backend(String),
}

impl From<edit::EditError> for WriteError {
    fn from(e: edit::EditError) -> Self {
        match e {
            edit::EditError::Unavailable(m) => WriteError::Unavailable(m),
            edit::EditError::NotFound(..) => WriteError::NotFound(e.to_string()),
            edit::EditError::Forbidden(m) => WriteError::Forbidden(m),
            edit::EditError::Store(s) => WriteError::Store(s),
            other => WriteError::Backend(other.to_string()),
        }
    }
}

/// Commits a write transaction after forgetting capture rows every reader has long seen.
pub fn commit(tx: rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    capture::prune(&tx)?;
    tx.commit()
}

/// Deletes the history rows of changes made before `history` and the access-log rows
/// recorded before `access_log` (RFC 3339 each, either may be absent); the change log
/// itself stays. Returns how many rows of each went.
pub fn vacuum(
    store: &Store,
    history: Option<&str>,
    access_log: Option<&str>,
) -> Result<(usize, usize), WriteError> {
    let err = |e| WriteError::Store(store.err(e));
    let tx = rusqlite::Transaction::new_unchecked(
        store.conn(),
        rusqlite::TransactionBehavior::Immediate,
    )
    .map_err(err)?;
    let h = match history {
        Some(cutoff) => history::vacuum(&tx, cutoff).map_err(err)?,
        None => 0,
    };
    let a = match access_log {
        Some(cutoff) => crate::store::access_log::prune(&tx, cutoff).map_err(err)?,
        None => 0,
    };
    commit(tx).map_err(err)?;
    Ok((h, a))
}
