//! The catalog: every layer's current snapshot with its tile data, behind one atomic
//! pointer, and the only code that changes it.
//!
//! ```text
//!   any commit (nordgeo over HTTP or CLI, QGIS, GDAL, sqlite3)
//!        -> capture rows in the store (store::capture triggers)
//!        -> sync::apply: one ChangeEvent per layer, with a new generation
//!        -> a new Catalog (edited layers get an overlay, rewritten ones a new base)
//!        -> Recent (the tile cache checks cached tiles against it)
//!   fold: a layer whose overlay grew is rebuilt in the background and swapped in
//! ```
//!
//! A long-running server therefore serves exactly what a freshly started one would:
//! both read the same rows, in fid order, through the same code.

pub mod changes;
mod fold;
pub mod source;
mod sync;

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;

pub use changes::{Boxes, ChangeEvent, Recent};

use crate::geom::Bbox;
use crate::index::{IndexError, Layer};
use crate::store::{Store, StoreError};
use crate::tiles::Prepared;

/// Why the catalog could not follow the store.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer could not be loaded.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Another kind of store (PostGIS) could not be read; its own message.
    #[error("{0}")]
    Source(String),
}

/// A layer snapshot with its tile data.
pub struct Snapshot {
    /// Features and indexes.
    pub layer: Layer,
    /// What the layer contributes to vector tiles.
    pub tiles: Prepared,
    /// The layer's name as a tile cache key's layer list, made once, not per request.
    pub key: Arc<[String]>,
}

impl Snapshot {
    /// Prepares the tile data of a layer (reusing `previous`'s where it still applies).
    pub fn new(layer: Layer, previous: Option<&Snapshot>) -> Snapshot {
        let tiles = Prepared::new(&layer, previous.map(|p| &p.tiles));
        let key = Arc::from(vec![layer.def.table.clone()]);
        Snapshot { layer, tiles, key }
    }
}

impl Deref for Snapshot {
    type Target = Layer;
    fn deref(&self) -> &Layer {
        &self.layer
    }
}

/// All layers, by name, in store order.
#[derive(Default)]
pub struct Catalog {
    /// Layers in store order.
    pub layers: Vec<Arc<Snapshot>>,
    by_name: HashMap<String, usize>,
    /// The generation of the newest change applied.
    pub generation: u64,
}

impl Catalog {
    /// Loads every layer of the store.
    pub fn load(store: &Store) -> Result<Catalog, IndexError> {
        let mut layers = Vec::new();
        for def in store.layers()? {
            let layer = crate::index::load_layer(store, def, 0)?;
            layers.push(Arc::new(Snapshot::new(layer, None)));
        }
        Ok(Catalog::from_layers(layers, 0))
    }

    /// A catalog of the given layers.
    pub fn from_layers(layers: Vec<Arc<Snapshot>>, generation: u64) -> Catalog {
        let by_name = layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.def.table.clone(), i))
            .collect();
        Catalog {
            layers,
            by_name,
            generation,
        }
    }

    /// A layer by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Snapshot>> {
        self.by_name.get(name).map(|&i| &self.layers[i])
    }

    /// The layer of municipality boundaries and the position of its name column.
    pub fn boundaries(&self) -> Option<(&Arc<Snapshot>, usize)> {
        self.layers.iter().find_map(|l| {
            let col = l.meta.boundaries.as_ref()?;
            Some((l, l.def.columns.iter().position(|c| &c.name == col)?))
        })
    }

    /// The municipalities named in the boundary layer, sorted (none without one).
    pub fn municipalities(&self) -> Vec<String> {
        let Some((l, col)) = self.boundaries() else {
            return Vec::new();
        };
        let mut names: Vec<String> = l
            .slots()
            .into_iter()
            .filter_map(|s| match &l.feature(s).values[col] {
                rusqlite::types::Value::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The position of a layer in store order.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

/// The catalog a server serves, kept in step with the store.
pub struct Live {
    current: ArcSwap<Catalog>,
    recent: RwLock<Recent>,
    follower: Mutex<sync::Follower>,
    folding: Mutex<HashSet<String>>,
}

impl Live {
    /// Loads every layer of the GeoPackage store at `path` and starts following it.
    pub fn open(path: &Path) -> Result<Arc<Live>, SyncError> {
        let store = Store::open_read_only(path)?;
        Live::follow(Box::new(source::GeoPackage::new(store)))
    }

    /// Loads every layer of a store and starts following its changes.
    pub fn follow(source: Box<dyn source::Source>) -> Result<Arc<Live>, SyncError> {
        let (follower, catalog) = sync::Follower::start(source)?;
        Ok(Arc::new(Live {
            current: ArcSwap::from_pointee(catalog),
            recent: RwLock::new(Recent::default()),
            follower: Mutex::new(follower),
            folding: Mutex::new(HashSet::new()),
        }))
    }

    /// The current catalog (readers keep theirs while a newer one is swapped in).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Whether `layer` changed within `bounds` after generation `since`, up to `until`.
    pub fn changed(&self, layer: &str, since: u64, until: u64, bounds: Bbox) -> bool {
        match self.recent.read() {
            Ok(r) => r.changed(layer, since, until, bounds),
            Err(_) => true,
        }
    }

    /// Applies every change committed since the last call and returns its events.
    /// A write calls this after its commit, so its answer comes after the change is
    /// visible; the store watcher calls it when another program committed.
    pub fn catch_up(self: &Arc<Self>) -> Result<Vec<ChangeEvent>, SyncError> {
        self.run(false)
    }

    /// Like [`Live::catch_up`], but only when the store changed since the last look;
    /// returns whether it did (then the caller reloads what else it keeps, the tokens).
    pub fn poll(self: &Arc<Self>) -> Result<bool, SyncError> {
        // A catch-up in progress (a large reload) will see what changed; waiting for it
        // would hold up whatever else the caller does between looks.
        let mut f = match self.follower.try_lock() {
            Ok(f) => f,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(false),
        };
        if !f.store_changed()? {
            return Ok(false);
        }
        drop(f);
        self.run(true)?;
        Ok(true)
    }

    /// Layers without change capture (made by another program after this server's
    /// writer opened the store): each store change reloads them whole.
    pub fn untracked(&self) -> Vec<String> {
        self.lock().untracked()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, sync::Follower> {
        // A panic while applying leaves the previous catalog in place: keep following.
        self.follower.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(self: &Arc<Self>, store_changed: bool) -> Result<Vec<ChangeEvent>, SyncError> {
        let mut f = self.lock();
        let cat = self.current.load_full();
        let Some((next, events)) = f.apply(&cat, store_changed)? else {
            return Ok(Vec::new());
        };
        // Record the events before the catalog that shows them: a tile rendered from
        // the new catalog is then always checked against them.
        if let Ok(mut r) = self.recent.write() {
            r.push(&events);
        }
        self.current.store(Arc::new(next));
        drop(f);
        for e in &events {
            self.maybe_fold(&e.layer);
        }
        Ok(events)
    }
}
