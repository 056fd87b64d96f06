//! Follows the store: when another process (an import, QGIS editing the file) commits,
//! the catalog applies the change (see `catalog`) and the tokens are read again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use crate::store::Store;

/// How often the store is looked at for commits by other programs.
pub const POLL: Duration = Duration::from_millis(100);

/// Starts the watcher thread.
pub fn spawn(state: Arc<AppState>, path: PathBuf) {
    std::thread::Builder::new()
        .name("store-watch".into())
        .spawn(move || {
            let store = match Store::open_read_only(&path) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "store watcher cannot open the store; changes made by other processes will not show until restart");
                    return;
                }
            };
            let version = |s: &Store| s.conn().query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)).ok();
            let mut last = version(&store);
            let mut untracked = Vec::new();
            loop {
                std::thread::sleep(POLL);
                // Tokens first: a revocation must not wait behind a long layer reload.
                let v = version(&store);
                if v != last {
                    last = v;
                    state.set_tokens(token_table(&store));
                }
                if let Err(e) = state.live.poll() {
                    tracing::warn!(error = %e, "following the store failed; serving the previous data");
                }
                let now = state.live.untracked();
                if !now.is_empty() && now != untracked {
                    track_new_layers(&state);
                }
                untracked = now;
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the store watcher"));
}

/// Gives layers another program created their change capture, through the writer.
fn track_new_layers(state: &AppState) {
    let Ok(mut guard) = state.writer.lock() else {
        return;
    };
    if guard.is_none() {
        *guard = Store::open(&state.config.store).ok();
    }
    if let Some(w) = guard.as_ref()
        && let Err(e) = w.ensure_capture()
    {
        tracing::debug!(error = %e, "cannot add change capture to new layers; they are reloaded on every change");
    }
}

/// The tokens of the store by hash (empty when it has none or cannot be read).
pub fn token_table(store: &Store) -> crate::auth::TokenTable {
    match crate::auth::load(store.conn()) {
        Ok(list) => list.into_iter().map(|(h, t)| (h, Arc::new(t))).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the tokens; only anonymous access works");
            Default::default()
        }
    }
}

/// Starts the watcher of a PostGIS store: woken by its notifications, looking by itself
/// at least every [`POLL_POSTGIS`]; tokens are read again when they changed.
pub fn spawn_postgis(state: Arc<AppState>, schema: &str) {
    let url = state.config.store.to_string_lossy().into_owned();
    let schema = schema.to_string();
    std::thread::Builder::new()
        .name("store-watch".into())
        .spawn(move || {
            let mut listener = crate::pg::listen::Listener::new(&url, &schema);
            let mut tokens_from: Option<crate::pg::PgStore> = None;
            let mut untracked = Vec::new();
            // Said once when following starts failing and once when it works again: an
            // outage of the database must not flood the log.
            let mut failing = false;
            loop {
                let woken = listener.wait(POLL_POSTGIS);
                if woken.tokens {
                    if tokens_from.as_ref().is_none_or(crate::pg::PgStore::is_closed) {
                        tokens_from = crate::pg::PgStore::connect(&url, &schema).ok();
                    }
                    if let Some(s) = tokens_from.as_mut() {
                        match crate::pg::tokens::load(s) {
                            Ok(list) => state.set_tokens(
                                list.into_iter().map(|(h, t)| (h, Arc::new(t))).collect(),
                            ),
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot read the tokens; keeping the previous ones");
                                tokens_from = None;
                            }
                        }
                    }
                }
                if woken.data {
                    // The capture is read at every look; `poll` adds the tables without
                    // it when their statistics moved.
                    let looked = match state.live.poll() {
                        Ok(true) => Ok(()),
                        Ok(false) => state.live.catch_up().map(|_| ()),
                        Err(e) => Err(e),
                    };
                    match looked {
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(error = %e, "following the store failed; serving the previous data and retrying");
                        }
                        Ok(()) if failing => {
                            failing = false;
                            tracing::info!("following the store again");
                        }
                        _ => {}
                    }
                }
                let now = state.live.untracked();
                if !now.is_empty() && now != untracked {
                    // Opening for writing gives new tables their change capture.
                    if let Err(e) = crate::pg::PgStore::open(&url, &schema) {
                        tracing::debug!(error = %e, "cannot add change capture to new tables");
                    }
                }
                untracked = now;
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the store watcher"));
}

/// Longest a PostGIS store goes unlooked-at (a notification wakes the watcher earlier).
pub const POLL_POSTGIS: Duration = Duration::from_millis(300);
