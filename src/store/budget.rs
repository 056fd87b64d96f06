//! The time budget of a write: how long it may run and the flags that stop it (its
//! client went away, the server is stopping). SQLite is interrupted when the budget runs
//! out, so a stopped write rolls back: it never commits after its caller gave up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

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
