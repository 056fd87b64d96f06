//! The one write path: every change to the store — a feature edit, an import, a
//! rollback, a layer setting, a vacuum — runs through here, from the command line and
//! over HTTP alike, in one SQLite transaction that records who made it.
//!
//! Nothing here updates a server's memory: each commit leaves rows in the store's change
//! capture (`store::capture`), and every running server's catalog turns them into change
//! events (`catalog`). Changes by other programs take the same way, so there is one kind
//! of event whoever wrote.

pub mod edit;
pub mod rollback;
pub mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::store::{Store, StoreError, capture, history};

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
}

/// How long a write may run, and flags that stop it (the client went away, the server
/// is stopping). A write stopped either way is rolled back: it never commits after its
/// caller gave up.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    /// Stop at this moment.
    pub deadline: Option<Instant>,
    /// Stop when any of these is set.
    pub cancel: Vec<Arc<AtomicBool>>,
}

impl Budget {
    /// A budget of `limit` from now, stopped early when one of `cancel` is set.
    pub fn new(limit: Duration, cancel: Vec<Arc<AtomicBool>>) -> Budget {
        Budget {
            deadline: Some(Instant::now() + limit),
            cancel,
        }
    }

    /// Whether the write must stop now.
    pub fn exhausted(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.cancel.iter().any(|c| c.load(Ordering::Relaxed))
    }

    /// Makes SQLite give up on `conn` once the budget is exhausted, until the returned
    /// guard is dropped: a watchdog thread interrupts whatever statement runs then.
    pub fn watch(&self, conn: &Connection) -> BudgetGuard {
        if self.deadline.is_none() && self.cancel.is_empty() {
            return BudgetGuard { stop: None };
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let handle = conn.get_interrupt_handle();
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("write-budget".into())
            .spawn(move || {
                // Polls until the guard is dropped (the sender goes away).
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(50))
                {
                    if me.exhausted() {
                        handle.interrupt();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot watch a write's time budget");
        }
        BudgetGuard { stop: Some(stop) }
    }
}

/// Ends a budget's watch when dropped.
pub struct BudgetGuard {
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        self.stop.take();
    }
}

/// Commits a write transaction after forgetting capture rows every reader has long seen.
pub fn commit(tx: rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    capture::prune(&tx)?;
    tx.commit()
}

/// Deletes the history rows of changes made before `cutoff` (RFC 3339); the change log
/// itself stays. Returns how many rows went.
pub fn vacuum(store: &Store, cutoff: &str) -> Result<usize, WriteError> {
    let err = |e| WriteError::Store(store.err(e));
    let tx = rusqlite::Transaction::new_unchecked(
        store.conn(),
        rusqlite::TransactionBehavior::Immediate,
    )
    .map_err(err)?;
    let n = history::vacuum(&tx, cutoff).map_err(err)?;
    commit(tx).map_err(err)?;
    Ok(n)
}
