//! Feature edits in a PostGIS store: the rows of `write::edit` (its checks, change log
//! and history are the same for every store). Values are sent as text and cast to each
//! column's own type, so a table of any origin takes them; the row being changed is
//! locked, so two edits of one feature cannot both pass the same `If-Match`.

use std::collections::HashMap;

use postgres::types::ToSql;
use rusqlite::types::Value;

use super::layers::{Relation, q};
use super::{PgError, PgStore, layers, read};
use crate::geom::{Bbox, gpkg};
use crate::index::{Feature, to_mercator};
use crate::store::LayerDef;
use crate::store::history::ChangeMeta;
use crate::write::edit::{EditError, HistoryEntry, Row, Rows};

/// A PostGIS store's rows, for one edit.
pub struct PgRows<'a> {
    store: &'a mut PgStore,
    relations: HashMap<String, Relation>,
}

impl<'a> PgRows<'a> {
    /// The rows of the store's layers, each table described (as it is now) when an edit
    /// first touches it.
    pub fn new(store: &'a mut PgStore) -> PgRows<'a> {
        PgRows {
            store,
            relations: HashMap::new(),
        }
    }

    /// How the layer's table is read and written.
    pub(super) fn rel(&mut self, def: &LayerDef) -> Result<Relation, EditError> {
        if let Some(r) = self.relations.get(&def.table) {
            return Ok(r.clone());
        }
        let r = layers::relation_of(self.store, &def.table)?
            .ok_or_else(|| PgError::NoSuchLayer(def.table.clone()))?;
        self.relations.insert(def.table.clone(), r.clone());
        Ok(r)
    }

    /// Describes the layer's table anew at its next use (its columns changed).
    pub(super) fn forget(&mut self, def: &LayerDef) {
        self.relations.remove(&def.table);
    }

    /// Runs a statement; returns the rows it changed.
    pub(super) fn exec(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, EditError> {
        let store = &mut *self.store;
        match store.client().execute(sql, params) {
            Ok(n) => Ok(n),
            Err(e) => Err(store.err(e).into()),
        }
    }

    /// Runs a query.
    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, EditError> {
        let store = &mut *self.store;
        match store.client().query(sql, params) {
            Ok(rows) => Ok(rows),
            Err(e) => Err(store.err(e).into()),
        }
    }

    /// One of nordgeo's tables, qualified.
    pub(super) fn store_table(&self, name: &str) -> String {
        self.store.table(name)
    }

    /// The layer's history table, qualified.
    pub(super) fn history(&self, def: &LayerDef) -> String {
        self.store
            .table(&crate::store::history::history_table(&def.table))
    }

    /// The geometry and value expressions of a row's columns, with their parameters
    /// (numbered from `first`).
    fn row_sql(
        &self,
        def: &LayerDef,
        rel: &Relation,
        row: &Row,
        first: usize,
    ) -> (Vec<String>, Vec<String>, Vec<Box<dyn ToSql + Sync>>) {
        let mut cols = Vec::new();
        let mut exprs = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        if !rel.geom.is_empty() {
            cols.push(q(&rel.geom));
            let wkb: Option<Vec<u8>> = row.0.as_deref().and_then(|blob| {
                gpkg::header(blob)
                    .ok()
                    .map(|h| blob[h.wkb_offset..].to_vec())
            });
            let n = first + params.len();
            let g = format!("ST_SetSRID(ST_GeomFromWKB(${n}::bytea), {})", def.srs_id);
            exprs.push(if def.z == 1 {
                format!("ST_Force3D({g})")
            } else {
                g
            });
            params.push(Box::new(wkb));
        }
        for (i, c) in def.columns.iter().enumerate() {
            cols.push(q(&c.name));
            let n = first + params.len();
            let ty = rel.types.get(i).map_or("text", String::as_str);
            match &row.1[i] {
                Value::Blob(b) => {
                    exprs.push(format!("${n}::bytea"));
                    params.push(Box::new(b.clone()));
                }
                v => {
                    exprs.push(format!("${n}::text::{ty}"));
                    params.push(Box::new(text_of(v)));
                }
            }
        }
        (cols, exprs, params)
    }
}

/// The stored row read from column `first` on (its geometry as ISO WKB, then the layer's
/// SELECT expressions), as a GeoPackage row.
fn row_at(def: &LayerDef, row: &postgres::Row, first: usize) -> Row {
    let wkb: Option<Vec<u8>> = row.try_get(first).ok().flatten();
    let blob = wkb.map(|w| {
        let envelope = crate::geom::wkb::decode(&w)
            .ok()
            .and_then(|d| d.geometry)
            .as_ref()
            .and_then(crate::geom::bbox_of);
        gpkg::encode(def.srs_id, envelope, &w)
    });
    let values = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| read::value(row, first + 1 + i, c.class()))
        .collect();
    (blob, values)
}

/// A GeoPackage value as PostgreSQL reads it from text (`None`: NULL).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string()),
        // Rust prints the shortest text that reads back as the same double.
        Value::Real(f) => Some(f.to_string()),
        Value::Text(t) => Some(t.clone()),
        Value::Blob(_) => None,
    }
}

impl Rows for PgRows<'_> {
    fn begin(&mut self) -> Result<(), EditError> {
        self.exec("BEGIN", &[])?;
        // Capture rows are numbered in commit order only if every writer waits its turn
        // from its first change; an edit takes the turn before it reads.
        let lock = super::schema::capture_lock(self.store);
        self.exec(&lock, &[]).map(|_| ())
    }

    fn rollback(&mut self) {
        let _ = self.store.client().batch_execute("ROLLBACK");
    }

    fn commit(&mut self) -> Result<(), EditError> {
        self.exec("COMMIT", &[]).map(|_| ())
    }

    fn read_row(&mut self, def: &LayerDef, fid: i64) -> Result<Option<Row>, EditError> {
        let rel = self.rel(def)?;
        let cols = rel.read_columns();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = $1::int8 FOR UPDATE",
            cols.join(", "),
            rel.qualified(),
            q(&rel.fid)
        );
        let store = &mut *self.store;
        let row = store
            .client()
            .query_opt(&sql, &[&fid])
            .map_err(|e| store.err(e))?;
        Ok(row.map(|row| row_at(def, &row, 0)))
    }

    fn history_of(&mut self, def: &LayerDef, fid: i64) -> Result<Vec<HistoryEntry>, EditError> {
        let rel = self.rel(def)?;
        let h = self.history(def);
        let store = &mut *self.store;
        let exists: bool = store
            .client()
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&h])
            .map_err(|e| store.err(e))?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let cols = rel.read_columns();
        // The history's columns are read in a subquery of their own: names such as
        // `municipality` or `source` are also the change log's.
        let sql = format!(
            "SELECT c.kind, c.actor, c.at, c.source, x.* FROM
               (SELECT change_id, change_op, {} FROM {h} WHERE {} = $1::int8) x
             JOIN {} c ON c.id = x.change_id ORDER BY x.change_id, x.change_op DESC",
            cols.join(", "),
            q(&rel.fid),
            store.table("nordgeo_changes")
        );
        let rows = store
            .client()
            .query(&sql, &[&fid])
            .map_err(|e| store.err(e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let added = r.get::<_, String>(5) == "added";
                HistoryEntry {
                    change: r.get(4),
                    added,
                    kind: r.get(0),
                    actor: r.get(1),
                    at: r.get(2),
                    source: r.get(3),
                    before: (!added).then(|| row_at(def, r, 6)),
                }
            })
            .collect())
    }

    fn feature(&mut self, def: &LayerDef, fid: i64) -> Result<Option<Feature>, EditError> {
        let rel = self.rel(def)?;
        let mut found = read::features(self.store, def, &rel, Some(&[fid]))?;
        to_mercator(def, &mut found).map_err(|source| crate::index::IndexError::Crs {
            layer: def.table.clone(),
            source,
        })?;
        Ok(found.pop())
    }

    fn begin_change(&mut self, def: &LayerDef, m: &ChangeMeta) -> Result<i64, EditError> {
        let rel = self.rel(def)?;
        let h = self.history(def);
        // The history table mirrors the layer's columns (types included); columns the
        // layer gained since are added.
        self.exec(
            &format!(
                "CREATE TABLE IF NOT EXISTS {h} AS SELECT 0::bigint AS change_id, ''::text AS change_op, *
                 FROM {} WITH NO DATA",
                rel.qualified()
            ),
            &[],
        )?;
        let store = &mut *self.store;
        let have: Vec<String> = store
            .client()
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                &[&h],
            )
            .map_err(|e| store.err(e))?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        for (i, c) in def.columns.iter().enumerate() {
            if !have.contains(&c.name) {
                let ty = rel.types.get(i).map_or("text", String::as_str);
                self.exec(
                    &format!("ALTER TABLE {h} ADD COLUMN {} {ty}", q(&c.name)),
                    &[],
                )?;
            }
        }
        let changes = self.store.table("nordgeo_changes");
        let store = &mut *self.store;
        let id: i64 = store
            .client()
            .query_one(
                &format!(
                    "INSERT INTO {changes} (layer, kind, mode, municipality, source, actor, note)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
                ),
                &[
                    &def.table,
                    &m.kind,
                    &m.mode,
                    &m.municipality,
                    &m.source,
                    &m.actor,
                    &m.note,
                ],
            )
            .map_err(|e| store.err(e))?
            .get(0);
        Ok(id)
    }

    fn save_removed(&mut self, def: &LayerDef, change: i64, fid: i64) -> Result<(), EditError> {
        let rel = self.rel(def)?;
        let mut cols = vec![q(&rel.fid)];
        if !rel.geom.is_empty() {
            cols.push(q(&rel.geom));
        }
        cols.extend(def.columns.iter().map(|c| q(&c.name)));
        let cols = cols.join(", ");
        let sql = format!(
            "INSERT INTO {} (change_id, change_op, {cols}) SELECT $1, 'removed', {cols} FROM {} WHERE {} = $2::int8",
            self.history(def),
            rel.qualified(),
            q(&rel.fid)
        );
        self.exec(&sql, &[&change, &fid]).map(|_| ())
    }

    fn save_added(&mut self, def: &LayerDef, change: i64, fid: i64) -> Result<(), EditError> {
        let rel = self.rel(def)?;
        let sql = format!(
            "INSERT INTO {} (change_id, change_op, {}) VALUES ($1, 'added', $2::int8)",
            self.history(def),
            q(&rel.fid)
        );
        self.exec(&sql, &[&change, &fid]).map(|_| ())
    }

    fn delete(&mut self, def: &LayerDef, fid: i64) -> Result<(), EditError> {
        let rel = self.rel(def)?;
        let sql = format!(
            "DELETE FROM {} WHERE {} = $1::int8",
            rel.qualified(),
            q(&rel.fid)
        );
        self.exec(&sql, &[&fid]).map(|_| ())
    }

    fn insert(&mut self, def: &LayerDef, row: &Row) -> Result<i64, EditError> {
        let rel = self.rel(def)?;
        let (cols, exprs, params) = self.row_sql(def, &rel, row, 1);
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING {}::int8",
            rel.qualified(),
            cols.join(", "),
            exprs.join(", "),
            q(&rel.fid)
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        let store = &mut *self.store;
        let fid = store
            .client()
            .query_one(&sql, &refs)
            .map_err(|e| store.err(e))?
            .get(0);
        Ok(fid)
    }

    fn update(&mut self, def: &LayerDef, fid: i64, row: &Row) -> Result<(), EditError> {
        let rel = self.rel(def)?;
        let (cols, exprs, mut params) = self.row_sql(def, &rel, row, 1);
        let sets: Vec<String> = cols
            .iter()
            .zip(&exprs)
            .map(|(c, e)| format!("{c} = {e}"))
            .collect();
        params.push(Box::new(fid));
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ${}::int8",
            rel.qualified(),
            sets.join(", "),
            q(&rel.fid),
            params.len()
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        self.exec(&sql, &refs).map(|_| ())
    }

    fn finish_change(
        &mut self,
        def: &LayerDef,
        change: i64,
        _extent: Option<Bbox>,
    ) -> Result<(), EditError> {
        // PostGIS keeps no extent to maintain: readers compute it.
        let h = self.history(def);
        let sql = format!(
            "UPDATE {} SET
               added = (SELECT count(*) FROM {h} WHERE change_id = $1 AND change_op = 'added'),
               removed = (SELECT count(*) FROM {h} WHERE change_id = $1 AND change_op = 'removed')
             WHERE id = $1",
            self.store.table("nordgeo_changes")
        );
        self.exec(&sql, &[&change]).map(|_| ())
    }
}
