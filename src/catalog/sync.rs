//! Following the store: the capture rows after the cursor (see `store::capture`) become
//! change events and a new catalog, read in one read transaction of the store so the
//! snapshot and the cursor always belong together.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::source::Source;
use super::{Boxes, Catalog, ChangeEvent, Snapshot, SyncError};
use crate::index::{self, Feature, IndexError, Layer, ReadLayer};
use crate::store::LayerDef;

/// More changed fids than this (or a tenth of the layer) reload the layer instead.
const MAX_FIDS: usize = 5000;

/// The reading side of the catalog: its own connection to the store and the cursor.
pub(super) struct Follower {
    source: Box<dyn Source>,
    /// The last capture row applied.
    cursor: i64,
    schema_version: i64,
    /// Layers without capture triggers.
    untracked: Vec<String>,
}

/// What changed in one layer.
#[derive(Default)]
struct Work {
    reload: bool,
    settings: bool,
    fids: BTreeSet<i64>,
}

impl Follower {
    /// Opens the store, loads every layer and sets the cursor, all from one snapshot.
    pub(super) fn start(source: Box<dyn Source>) -> Result<(Follower, Catalog), SyncError> {
        let mut f = Follower {
            source,
            cursor: 0,
            schema_version: -1,
            untracked: Vec::new(),
        };
        let catalog = f.read(|f| {
            let p = f.source.pending(i64::MAX)?;
            f.cursor = p.top;
            f.schema_version = f.source.schema_version()?;
            let defs = f.source.layers()?;
            f.untracked = f.source.untracked(&defs)?;
            // Reading is on this connection (one snapshot); transforming, indexing and
            // preparing tiles run on a thread per layer, overlapping the next read. The
            // largest layers are read first: their work is the longest chain.
            let mut order: Vec<(i64, usize)> = defs
                .iter()
                .enumerate()
                .map(|(i, d)| (f.source.rows_estimate(&d.table), i))
                .collect();
            order.sort_unstable_by(|a, b| b.cmp(a));
            let mut defs: Vec<Option<crate::store::LayerDef>> =
                defs.into_iter().map(Some).collect();
            let layers = std::thread::scope(|scope| -> Result<Vec<Arc<Snapshot>>, SyncError> {
                let mut building = Vec::new();
                for &(_, i) in &order {
                    let Some(def) = defs[i].take() else { continue };
                    let t = std::time::Instant::now();
                    let read = f.read_layer(def)?;
                    let read_ms = t.elapsed().as_millis() as u64;
                    building.push((
                        i,
                        scope.spawn(move || {
                            let t = std::time::Instant::now();
                            let layer = read.build(0)?;
                            let built = t.elapsed();
                            let snap = Snapshot::new(layer, None);
                            tracing::debug!(
                                layer = %snap.def.table,
                                read_ms,
                                index_ms = built.as_millis() as u64,
                                tiles_ms = (t.elapsed() - built).as_millis() as u64,
                                "layer loaded"
                            );
                            Ok::<_, SyncError>(Arc::new(snap))
                        }),
                    ));
                }
                let mut done: Vec<(usize, Arc<Snapshot>)> = building
                    .into_iter()
                    .map(|(i, h)| {
                        h.join()
                            .unwrap_or_else(|e| std::panic::resume_unwind(e))
                            .map(|s| (i, s))
                    })
                    .collect::<Result<_, _>>()?;
                // The catalog keeps the store's order.
                done.sort_unstable_by_key(|(i, _)| *i);
                Ok(done.into_iter().map(|(_, s)| s).collect())
            })?;
            Ok(Catalog::from_layers(layers, 0))
        })?;
        // The load's temporary arrays (raw features, coordinate arrays) are freed by now;
        // giving them back to the system takes ~0.1 s that serving need not wait for.
        std::thread::spawn(super::fold::release_memory);
        f.store_changed()?;
        Ok((f, catalog))
    }

    /// Whether another connection committed since the last call.
    pub(super) fn store_changed(&mut self) -> Result<bool, SyncError> {
        self.source.changed()
    }

    pub(super) fn untracked(&self) -> Vec<String> {
        self.untracked.clone()
    }

    /// Runs `f` inside one read transaction.
    fn read<T>(
        &mut self,
        f: impl FnOnce(&mut Follower) -> Result<T, SyncError>,
    ) -> Result<T, SyncError> {
        self.source.begin()?;
        let out = f(self);
        self.source.end();
        out
    }

    /// A layer's settings and features as stored.
    fn read_layer(&mut self, def: LayerDef) -> Result<ReadLayer, SyncError> {
        let meta = self.source.meta(&def.table)?;
        let features = self.source.features(&def, None)?;
        Ok(ReadLayer::new(def, meta, features))
    }

    /// A layer's snapshot as stored now.
    fn load_layer(&mut self, def: LayerDef, generation: u64) -> Result<Layer, SyncError> {
        Ok(self.read_layer(def)?.build(generation)?)
    }

    /// Features with the given fids, in EPSG:3857.
    fn load_features(&mut self, def: &LayerDef, fids: &[i64]) -> Result<Vec<Feature>, SyncError> {
        let mut features = self.source.features(def, Some(fids))?;
        index::to_mercator(def, &mut features).map_err(|source| IndexError::Crs {
            layer: def.table.clone(),
            source,
        })?;
        Ok(features)
    }

    /// The catalog after every change since the cursor, and its events; `None` when
    /// nothing changed. `store_changed`: another connection committed (layers without
    /// capture triggers are then reloaded).
    pub(super) fn apply(
        &mut self,
        cat: &Catalog,
        store_changed: bool,
    ) -> Result<Option<(Catalog, Vec<ChangeEvent>)>, SyncError> {
        self.read(|f| f.apply_in_snapshot(cat, store_changed))
    }

    fn apply_in_snapshot(
        &mut self,
        cat: &Catalog,
        store_changed: bool,
    ) -> Result<Option<(Catalog, Vec<ChangeEvent>)>, SyncError> {
        let p = self.source.pending(self.cursor)?;
        let schema = self.source.schema_version()?;
        let retrack = store_changed && !self.untracked.is_empty();
        if p.top <= self.cursor && schema == self.schema_version && !retrack {
            return Ok(None);
        }
        let defs = self.source.layers()?;
        if schema != self.schema_version {
            self.untracked = self.source.untracked(&defs)?;
            self.schema_version = schema;
        }
        let mut work: HashMap<String, Work> = HashMap::new();
        for (layer, fid, what) in p.rows {
            let w = work.entry(layer).or_default();
            match (what.as_str(), fid) {
                ("feature", Some(fid)) => {
                    w.fids.insert(fid);
                }
                ("settings", _) => w.settings = true,
                _ => w.reload = true,
            }
        }
        for def in &defs {
            let reload = p.gap
                || (store_changed && self.untracked.contains(&def.table))
                || cat.get(&def.table).is_none_or(|s| !s.def.same_shape(def));
            if reload {
                work.entry(def.table.clone()).or_default().reload = true;
            }
        }
        let in_store: HashSet<&str> = defs.iter().map(|d| d.table.as_str()).collect();
        let mut generation = cat.generation;
        let mut events = Vec::new();
        for gone in cat
            .layers
            .iter()
            .filter(|l| !in_store.contains(l.def.table.as_str()))
        {
            generation += 1;
            events.push(ChangeEvent {
                layer: gone.def.table.clone(),
                generation,
                boxes: Boxes::Whole,
                settings_changed: true,
            });
        }
        let mut layers = Vec::with_capacity(defs.len());
        for def in defs {
            let snapshot = match (cat.get(&def.table), work.remove(&def.table)) {
                (Some(old), None) => {
                    layers.push(old.clone());
                    continue;
                }
                (Some(old), Some(w)) => {
                    generation += 1;
                    let (snapshot, boxes) = self.changed_layer(old, def, &w, generation)?;
                    events.push(ChangeEvent {
                        layer: snapshot.def.table.clone(),
                        generation,
                        boxes,
                        settings_changed: w.settings || w.reload,
                    });
                    snapshot
                }
                (None, _) => {
                    generation += 1;
                    let layer = self.load_layer(def, generation)?;
                    events.push(ChangeEvent {
                        layer: layer.def.table.clone(),
                        generation,
                        boxes: Boxes::Whole,
                        settings_changed: true,
                    });
                    Snapshot::new(layer, None)
                }
            };
            layers.push(Arc::new(snapshot));
        }
        self.cursor = p.top.max(self.cursor);
        if events.is_empty() {
            return Ok(None);
        }
        Ok(Some((Catalog::from_layers(layers, generation), events)))
    }

    /// The new snapshot of a layer that changed, and where it changed.
    fn changed_layer(
        &mut self,
        old: &Arc<Snapshot>,
        def: LayerDef,
        w: &Work,
        generation: u64,
    ) -> Result<(Snapshot, Boxes), SyncError> {
        let too_many = w.fids.len() > MAX_FIDS.max(old.len() / 10);
        if w.reload || too_many {
            let layer = self.load_layer(def, generation)?;
            return Ok((Snapshot::new(layer, None), Boxes::Whole));
        }
        let mut boxes = Vec::new();
        let mut layer = if w.fids.is_empty() {
            old.layer.with_meta(old.meta.clone(), generation)
        } else {
            let fids: Vec<i64> = w.fids.iter().copied().collect();
            let found = self.load_features(&def, &fids)?;
            let present: HashSet<i64> = found.iter().map(|f| f.fid).collect();
            for &fid in &fids {
                if let Some(b) = old.slot_of(fid).and_then(|s| old.bbox(s)) {
                    boxes.push(b);
                }
            }
            for f in &found {
                if let Some(b) = f.geometry.as_ref().and_then(crate::geom::bbox_of) {
                    boxes.push(b);
                }
            }
            let removed: Vec<i64> = fids
                .iter()
                .copied()
                .filter(|f| !present.contains(f) && old.slot_of(*f).is_some())
                .collect();
            old.layer.with_changes(found, &removed, generation)
        };
        // The extent in gpkg_contents moves with the edits.
        layer.def = def;
        let boxes = if w.settings {
            let meta = self.source.meta(&layer.def.table)?;
            layer = layer.with_meta(meta, generation);
            Boxes::Whole
        } else {
            Boxes::Some(boxes)
        };
        Ok((Snapshot::new(layer, Some(old)), boxes))
    }
}
