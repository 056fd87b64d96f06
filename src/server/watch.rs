//! Follows the store: when another process (an import, QGIS editing the file) commits,
//! the changed layers are reloaded, swapped in atomically, and exactly the cached tiles
//! that touch a changed feature's old or new extent are purged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rstar::{AABB, RTree, primitives::Rectangle};

use super::AppState;
use crate::geom::{Bbox, bbox_of};
use crate::index::{Catalog, Layer};
use crate::store::Store;

/// How often the store is polled for commits.
pub const POLL: Duration = Duration::from_millis(200);

/// Per-layer signature: changes when the layer's content changes.
fn signatures(store: &Store) -> rusqlite::Result<HashMap<String, String>> {
    let mut stmt = store.conn().prepare(
        "SELECT c.table_name, coalesce(c.last_change, '') || '/' ||
                coalesce((SELECT max(id) FROM nordgeo_changes n WHERE n.layer = c.table_name), 0)
         FROM gpkg_contents c WHERE c.data_type = 'features'",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

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
            let mut last_version = version(&store);
            if let Ok(sigs) = signatures(&store)
                && let Ok(mut a) = state.applied.lock()
            {
                *a = sigs;
            }
            loop {
                std::thread::sleep(POLL);
                let v = version(&store);
                if v == last_version {
                    continue;
                }
                last_version = v;
                state.set_tokens(token_table(&store));
                // Hold the write lock: this server's own writes commit, swap their
                // snapshot and mark it applied under it, so a reload here can never
                // swap in a snapshot older than one a write has already served.
                let _writes = state.writer.lock();
                let sigs = match signatures(&store) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "store watcher could not read the store");
                        continue;
                    }
                };
                // Edits made by this server are applied already and update `applied`.
                let last_sigs = state.applied.lock().map(|a| a.clone()).unwrap_or_default();
                let changed: Vec<String> = sigs
                    .iter()
                    .filter(|(k, v)| last_sigs.get(*k) != Some(v))
                    .map(|(k, _)| k.clone())
                    .chain(last_sigs.keys().filter(|k| !sigs.contains_key(*k)).cloned())
                    .collect();
                for name in changed {
                    if let Err(e) = reload(&state, &store, &name) {
                        tracing::warn!(layer = %name, error = %e, "reloading a changed layer failed; serving the previous data");
                    }
                }
                if let Ok(mut a) = state.applied.lock() {
                    *a = sigs;
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the store watcher"));
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

/// Marks a layer's current store content as applied, so the watcher does not reload it.
pub fn mark_applied(state: &AppState, store: &Store, name: &str) {
    if let Ok(sigs) = signatures(store)
        && let Ok(mut a) = state.applied.lock()
    {
        match sigs.get(name) {
            Some(v) => a.insert(name.to_string(), v.clone()),
            None => a.remove(name),
        };
    }
}

/// Reloads one layer, swaps it in and purges the cached tiles its changes touch.
pub fn reload(state: &AppState, store: &Store, name: &str) -> Result<(), crate::index::IndexError> {
    let new_layer = match store.layers()?.into_iter().find(|d| d.table == name) {
        Some(def) => Some(Arc::new(crate::index::load_layer(store, def)?)),
        None => None,
    };
    swap_layer(state, name, new_layer);
    Ok(())
}

/// Swaps in a new snapshot of one layer and purges exactly the cached tiles that touch
/// a feature that differs.
pub fn swap_layer(state: &AppState, name: &str, new_layer: Option<Arc<Layer>>) {
    let started = std::time::Instant::now();
    let old = state.catalog();
    let boxes = changed_boxes(old.get(name).map(|l| l.as_ref()), new_layer.as_deref());
    state.swap_catalog(old.with_layer(name, new_layer));
    let tree = RTree::bulk_load(
        boxes
            .iter()
            .map(|b| Rectangle::from_corners([b[0], b[1]], [b[2], b[3]]))
            .collect(),
    );
    let purged = state.cache.purge(name, &|tb: Bbox| {
        tree.locate_in_envelope_intersecting(&AABB::from_corners([tb[0], tb[1]], [tb[2], tb[3]]))
            .next()
            .is_some()
    });
    tracing::info!(
        layer = name,
        changed_features = boxes.len(),
        purged_tiles = purged,
        ms = started.elapsed().as_millis() as u64,
        "layer swapped in"
    );
}

/// Extents (EPSG:3857) of every feature that differs between two snapshots, old and new.
fn changed_boxes(old: Option<&Layer>, new: Option<&Layer>) -> Vec<Bbox> {
    let empty: &[crate::index::Feature] = &[];
    let a = old.map_or(empty, |l| &l.features[..]);
    let b = new.map_or(empty, |l| &l.features[..]);
    let same_columns = match (old, new) {
        (Some(o), Some(n)) => o.def.columns == n.def.columns,
        _ => false,
    };
    let bbox = |f: &crate::index::Feature| f.geometry.as_ref().and_then(bbox_of);
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    // Both snapshots are in fid order: a merge finds removed, added and changed features.
    while i < a.len() || j < b.len() {
        let (fa, fb) = (a.get(i), b.get(j));
        match (fa, fb) {
            (Some(x), Some(y)) if x.fid == y.fid => {
                if !same_columns || x.geometry != y.geometry || x.values != y.values {
                    out.extend(bbox(x));
                    out.extend(bbox(y));
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.fid < y.fid => {
                out.extend(bbox(x));
                i += 1;
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                out.extend(bbox(y));
                j += 1;
            }
            (Some(x), None) => {
                out.extend(bbox(x));
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

impl Catalog {
    /// A new catalog with one layer replaced, added (`Some` for a new name) or removed (`None`).
    pub fn with_layer(&self, name: &str, layer: Option<Arc<Layer>>) -> Catalog {
        let mut layers: Vec<Arc<Layer>> = self
            .layers
            .iter()
            .filter(|l| l.def.table != name)
            .cloned()
            .collect();
        if let Some(l) = layer {
            match self.layers.iter().position(|x| x.def.table == name) {
                Some(pos) => layers.insert(pos.min(layers.len()), l),
                None => layers.push(l),
            }
        }
        Catalog::from_layers(layers)
    }
}
