//! The PostGIS store as the catalog follows it: one connection, one repeatable-read
//! transaction per look, reconnecting with backoff when the database goes away (the
//! catalog keeps serving what it has meanwhile).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::layers::Relation;
use super::{PgError, PgStore, capture, layers, read};
use crate::catalog::SyncError;
use crate::catalog::source::Source;
use crate::index::Feature;
use crate::store::capture::Pending;
use crate::store::{LayerDef, LayerMeta};

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A PostGIS store followed by the catalog.
pub struct PostGis {
    url: String,
    at: String,
    schema: String,
    store: Option<PgStore>,
    relations: HashMap<String, Relation>,
    /// Untracked tables and their write counters at the last look.
    untracked: Vec<u32>,
    writes: i64,
    retry_at: Instant,
    backoff: Duration,
}

impl PostGis {
    /// Connects (read-only use: a replica is fine).
    pub fn connect(url: &str, schema: &str) -> Result<PostGis, PgError> {
        let store = PgStore::connect(url, schema)?;
        Ok(PostGis {
            url: url.into(),
            at: store.at().to_string(),
            schema: schema.into(),
            store: Some(store),
            relations: HashMap::new(),
            untracked: Vec::new(),
            writes: 0,
            retry_at: Instant::now(),
            backoff: Duration::from_millis(250),
        })
    }

    /// The connection, reconnecting when it was lost (no more often than the backoff).
    fn store(&mut self) -> Result<&mut PgStore, PgError> {
        if self.store.as_ref().is_some_and(PgStore::is_closed) {
            tracing::warn!("the connection to the PostGIS store was lost; reconnecting");
            self.store = None;
        }
        if self.store.is_none() {
            if Instant::now() < self.retry_at {
                return Err(PgError::Lost(self.at.clone()));
            }
            match PgStore::connect(&self.url, &self.schema) {
                Ok(s) => {
                    tracing::info!(store = %s.at(), "reconnected to the PostGIS store");
                    self.backoff = Duration::from_millis(250);
                    self.store = Some(s);
                }
                Err(e) => {
                    self.retry_at = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return Err(e);
                }
            }
        }
        self.store
            .as_mut()
            .ok_or_else(|| PgError::Lost(self.at.clone()))
    }

    fn relation(&self, layer: &str) -> Result<Relation, PgError> {
        self.relations
            .get(layer)
            .cloned()
            .ok_or_else(|| PgError::NoSuchLayer(layer.into()))
    }
}

impl Source for PostGis {
    fn begin(&mut self) -> Result<(), SyncError> {
        let s = self.store()?;
        s.client()
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|e| s.err(e).into())
    }

    fn end(&mut self) {
        if let Some(s) = self.store.as_mut() {
            // A read-only transaction: ending it cannot lose anything.
            let _ = s.client().batch_execute("COMMIT");
        }
    }

    fn pending(&mut self, cursor: i64) -> Result<Pending, SyncError> {
        Ok(capture::pending(self.store()?, cursor)?)
    }

    fn layers(&mut self) -> Result<Vec<LayerDef>, SyncError> {
        let list = layers::list(self.store()?)?;
        self.relations = list
            .iter()
            .map(|(d, r)| (d.table.clone(), r.clone()))
            .collect();
        Ok(list.into_iter().map(|(d, _)| d).collect())
    }

    fn meta(&mut self, table: &str) -> Result<LayerMeta, SyncError> {
        Ok(super::settings::meta(self.store()?, table)?)
    }

    fn features(
        &mut self,
        def: &LayerDef,
        fids: Option<&[i64]>,
    ) -> Result<Vec<Feature>, SyncError> {
        let rel = self.relation(&def.table)?;
        Ok(read::features(self.store()?, def, &rel, fids)?)
    }

    fn schema_version(&mut self) -> Result<i64, SyncError> {
        let oids: Vec<u32> = self.relations.values().map(|r| r.oid).collect();
        let schema = self.schema.clone();
        let s = self.store()?;
        let row = s
            .client()
            .query_one(
                "SELECT coalesce(hashtext(string_agg(x, '|' ORDER BY x)), 0)::int8 FROM (
                   SELECT a.attrelid::text || ':' || a.attname || ':' || a.atttypid::text || ':'
                          || a.atttypmod::text AS x
                   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                   WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                     AND (c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
                          OR c.oid = ANY($2))
                   UNION ALL
                   SELECT 'key:' || indrelid::text || ':' || indkey::text FROM pg_index
                   WHERE indisprimary AND indrelid = ANY($2)
                   UNION ALL
                   SELECT 'geom:' || f_table_schema || '.' || f_table_name || ':' || f_geometry_column
                          || ':' || srid::text || ':' || type FROM geometry_columns
                   WHERE f_table_schema = $1) s",
                &[&schema, &oids],
            )
            .map_err(|e| s.err(e))?;
        Ok(row.get(0))
    }

    fn changed(&mut self) -> Result<bool, SyncError> {
        // Tracked tables report through the capture; only tables without triggers need a
        // sign of writes, which the statistics give (updated within about a second).
        if self.untracked.is_empty() {
            return Ok(false);
        }
        let oids = self.untracked.clone();
        let s = self.store()?;
        let n: i64 = s
            .client()
            .query_one(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8
                 FROM pg_stat_user_tables WHERE relid = ANY($1)",
                &[&oids],
            )
            .map_err(|e| s.err(e))?
            .get(0);
        let changed = n != self.writes;
        self.writes = n;
        Ok(changed)
    }

    fn untracked(&mut self, defs: &[LayerDef]) -> Result<Vec<String>, SyncError> {
        let mut names = Vec::new();
        let mut oids = Vec::new();
        for d in defs {
            let rel = self.relation(&d.table)?;
            if !capture::has_triggers(self.store()?, &rel)? {
                names.push(d.table.clone());
                oids.push(rel.oid);
            }
        }
        self.untracked = oids;
        Ok(names)
    }

    fn rows_estimate(&mut self, table: &str) -> i64 {
        let Ok(rel) = self.relation(table) else {
            return 0;
        };
        let Ok(s) = self.store() else { return 0 };
        s.client()
            .query_one(
                "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = $1",
                &[&rel.oid],
            )
            .map(|r| r.get(0))
            .unwrap_or(0)
    }
}
