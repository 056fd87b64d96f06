//! Recording answers that show internal properties (owner data) before they go out: a
//! writer thread with its own store connection commits them in groups, and a handler
//! waits for its group's commit. An access that cannot be recorded is not answered.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use axum::http::StatusCode;

use super::problem::Problem;
use crate::auth::Caller;
use crate::store::Store;
use crate::store::access_log::{self, Access};

/// Accesses waiting to be written; beyond this, answers with owner data wait their turn
/// by being refused (503), so a flood cannot grow memory.
const QUEUE: usize = 10_000;
/// Most accesses written in one transaction.
const GROUP: usize = 1_000;
/// How long an answer waits for its access to be committed.
const WAIT: Duration = Duration::from_secs(15);

struct Job {
    access: Access,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The access-log writer.
pub struct AccessLog {
    tx: SyncSender<Job>,
}

impl AccessLog {
    /// Starts the writer thread for a store (`pg`: the PostGIS schema, `store` its URL).
    pub fn start(store: PathBuf, pg: Option<String>) -> AccessLog {
        let (tx, rx) = sync_channel(QUEUE);
        let spawned =
            std::thread::Builder::new()
                .name("access-log".into())
                .spawn(move || match pg {
                    Some(schema) => postgis_loop(&store.to_string_lossy(), &schema, &rx),
                    None => geopackage_loop(&store, &rx),
                });
        if let Err(e) = spawned {
            // Without the thread every record fails and owner data is never shown.
            tracing::error!(error = %e, "the access-log writer cannot start");
        }
        AccessLog { tx }
    }

    /// Records that `who` was shown the internal properties of `fids` (nothing when the
    /// list is empty); returns once it is committed.
    pub async fn record(
        &self,
        who: &Caller,
        collection: &str,
        fids: Vec<i64>,
        request: String,
    ) -> Result<(), Problem> {
        if fids.is_empty() {
            return Ok(());
        }
        let token = match who {
            Caller::Token(t) => t.name.clone(),
            Caller::Anonymous => "anonymous".into(),
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        let job = Job {
            access: Access {
                at: String::new(),
                token,
                collection: collection.to_string(),
                fids,
                request,
            },
            done,
        };
        let refused = || {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this answer contains owner data, and the access to it cannot be recorded right now; nothing was shown, try again in a minute",
            )
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(refused()),
        }
        match tokio::time::timeout(WAIT, wait).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "an access could not be recorded");
                Err(refused())
            }
            _ => Err(refused()),
        }
    }
}

/// Writes the queued accesses in groups, each group in one transaction, until the
/// queue closes; `write` is the store's.
fn write_loop(rx: &Receiver<Job>, mut write: impl FnMut(&[Access]) -> Result<(), String>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let rows: Vec<Access> = jobs.iter().map(|j| j.access.clone()).collect();
        let result = write(&rows);
        for j in jobs {
            let _ = j.done.send(result.clone());
        }
    }
}

fn geopackage_loop(path: &std::path::Path, rx: &Receiver<Job>) {
    let mut store: Option<Store> = None;
    write_loop(rx, |rows| {
        let result = write(path, &mut store, rows);
        if result.is_err() {
            // Reopen next time: the file may have been replaced or repaired.
            store = None;
        }
        result
    });
}

fn postgis_loop(url: &str, schema: &str, rx: &Receiver<Job>) {
    let mut store: Option<crate::pg::PgStore> = None;
    write_loop(rx, |rows| {
        // A connection the database dropped (a restart) shows only when used: one fresh
        // attempt then, so the first answer after a restart is not refused for it.
        for _ in 0..2 {
            if store.as_ref().is_none_or(crate::pg::PgStore::is_closed) {
                store = crate::pg::PgStore::connect(url, schema).ok();
            }
            match store
                .as_mut()
                .map(|s| crate::pg::access_log::insert(s, rows))
            {
                Some(Ok(())) => return Ok(()),
                Some(Err(crate::pg::PgError::Lost(_))) => store = None,
                Some(Err(e)) => return Err(e.to_string()),
                None => break,
            }
        }
        Err("the PostGIS store cannot be reached".into())
    });
}

fn write(path: &std::path::Path, store: &mut Option<Store>, rows: &[Access]) -> Result<(), String> {
    if store.is_none() {
        *store = Some(Store::open(path).map_err(|e| e.to_string())?);
    }
    let Some(s) = store.as_ref() else {
        return Err("the store is not open".into());
    };
    let err = |e: rusqlite::Error| s.err(e).to_string();
    let tx =
        rusqlite::Transaction::new_unchecked(s.conn(), rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
    access_log::insert(&tx, rows).map_err(err)?;
    tx.commit().map_err(err)
}

/// The request as it is recorded: method, path and query.
pub fn request_line(method: &str, path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{method} {path}?{q}"),
        _ => format!("{method} {path}"),
    }
}
