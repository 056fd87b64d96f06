//! What the catalog follows: one implementation per store kind (the GeoPackage file
//! here, PostGIS in `crate::pg`). The follower needs consistent reads of the layers and
//! of the change capture after its cursor; everything above it is the same for both.

use super::SyncError;
use crate::index::{Feature, read_features};
use crate::store::capture::{self, Pending};
use crate::store::{LayerDef, LayerMeta, Store};

/// A store as the catalog reads it.
pub trait Source: Send {
    /// Starts one consistent read: everything until [`Source::end`] sees one commit.
    fn begin(&mut self) -> Result<(), SyncError>;
    /// Ends the read started by [`Source::begin`].
    fn end(&mut self);
    /// The capture rows after `cursor`.
    fn pending(&mut self, cursor: i64) -> Result<Pending, SyncError>;
    /// Every feature layer, in store order.
    fn layers(&mut self) -> Result<Vec<LayerDef>, SyncError>;
    /// A layer's settings.
    fn meta(&mut self, table: &str) -> Result<LayerMeta, SyncError>;
    /// Features in fid order (all, or those with the given fids), in the layer's CRS.
    fn features(&mut self, def: &LayerDef, fids: Option<&[i64]>)
    -> Result<Vec<Feature>, SyncError>;
    /// Changes whenever a table's layout may have changed (no capture row says so).
    fn schema_version(&mut self) -> Result<i64, SyncError>;
    /// Whether anything was committed since the last call (cheap; may say yes wrongly).
    fn changed(&mut self) -> Result<bool, SyncError>;
    /// The layers among `defs` whose changes the capture does not see.
    fn untracked(&mut self, defs: &[LayerDef]) -> Result<Vec<String>, SyncError>;
    /// About how many rows a table has, for the load order (0 when unknown).
    fn rows_estimate(&mut self, table: &str) -> i64;
}

/// The GeoPackage store, read through its own read-only connection.
pub struct GeoPackage {
    store: Store,
    data_version: Option<i64>,
}

impl GeoPackage {
    /// Wraps a store opened read-only.
    pub fn new(store: Store) -> Self {
        GeoPackage {
            store,
            data_version: None,
        }
    }

    fn pragma(&self, name: &str) -> Result<i64, SyncError> {
        self.store
            .conn()
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(|e| self.store.err(e).into())
    }
}

impl Source for GeoPackage {
    fn begin(&mut self) -> Result<(), SyncError> {
        self.store
            .conn()
            .execute_batch("BEGIN")
            .map_err(|e| self.store.err(e).into())
    }

    fn end(&mut self) {
        // A read transaction: ending it cannot lose anything.
        let _ = self.store.conn().execute_batch("COMMIT");
    }

    fn pending(&mut self, cursor: i64) -> Result<Pending, SyncError> {
        capture::pending(self.store.conn(), cursor).map_err(|e| self.store.err(e).into())
    }

    fn layers(&mut self) -> Result<Vec<LayerDef>, SyncError> {
        Ok(self.store.layers()?)
    }

    fn meta(&mut self, table: &str) -> Result<LayerMeta, SyncError> {
        Ok(self.store.meta(table)?)
    }

    fn features(
        &mut self,
        def: &LayerDef,
        fids: Option<&[i64]>,
    ) -> Result<Vec<Feature>, SyncError> {
        read_features(self.store.conn(), def, fids).map_err(|e| self.store.err(e).into())
    }

    fn schema_version(&mut self) -> Result<i64, SyncError> {
        self.pragma("schema_version")
    }

    fn changed(&mut self) -> Result<bool, SyncError> {
        let v = self.pragma("data_version")?;
        let changed = self.data_version != Some(v);
        self.data_version = Some(v);
        Ok(changed)
    }

    fn untracked(&mut self, defs: &[LayerDef]) -> Result<Vec<String>, SyncError> {
        let mut out = Vec::new();
        for d in defs {
            if !capture::has_triggers(self.store.conn(), d).map_err(|e| self.store.err(e))? {
                out.push(d.table.clone());
            }
        }
        Ok(out)
    }

    fn rows_estimate(&mut self, table: &str) -> i64 {
        // The largest rowid: no scan.
        self.store
            .conn()
            .query_row(
                &format!(
                    "SELECT coalesce(max(rowid), 0) FROM {}",
                    crate::store::layer::q(table)
                ),
                [],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }
}
