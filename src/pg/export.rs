//! `nordgeo export` from a PostGIS store: one layer as a fresh, standard GeoPackage, the
//! same file a GeoPackage store writes (`export::write_geopackage`). Geometries are
//! copied as PostGIS writes them in ISO WKB, so curves and Z values stay as stored.

use std::path::Path;

use rusqlite::types::Value;

use super::layers::{Relation, q};
use super::{PgError, PgStore, layers, read, settings};
use crate::export::ExportError;
use crate::store::{LayerDef, functions};

impl From<PgError> for ExportError {
    fn from(e: PgError) -> Self {
        ExportError::Backend(e.to_string())
    }
}

/// Writes layer `name` (only one municipality's features when given) to `out`; returns
/// the number of features written.
pub fn export(
    store: &mut PgStore,
    name: &str,
    out: &Path,
    force: bool,
    municipality: Option<&str>,
) -> Result<i64, ExportError> {
    if out.exists() && !force {
        return Err(ExportError::Exists(out.into()));
    }
    let (def, rel) = layers::find(store, name)?;
    let meta = settings::meta(store, name)?;
    // The municipality column's position among the attributes and the slug it must have.
    let only = match municipality {
        None => None,
        Some(m) => {
            let known = settings::municipalities(store)?;
            let (col, m) = crate::export::municipality_scope(name, &meta, m, &known)?;
            let i = def.columns.iter().position(|c| c.name == col).ok_or_else(|| {
                ExportError::Municipality(format!(
                    "layer '{name}' has no column '{col}' any more; set its municipality column again"
                ))
            })?;
            Some((i, functions::slug(&m)))
        }
    };
    let out_def = crate::export::titled(&def, &meta);
    let mut failed = None;
    let written = crate::export::write_geopackage(out, None, |tx| {
        copy_layer(
            store,
            &def,
            &rel,
            &out_def,
            tx,
            Rows::Some(only.as_ref()),
            &mut failed,
        )
    });
    match (written, failed) {
        (_, Some(e)) => Err(e.into()),
        (w, None) => w,
    }
}

/// A GeoPackage store at `path` holding the features `fids` of layer `name` as stored
/// (its CRS, columns and settings), for a download to be cut from as from any store.
pub fn selection(
    store: &mut PgStore,
    name: &str,
    fids: &[i64],
    path: &Path,
) -> Result<crate::store::Store, ExportError> {
    let (def, rel) = layers::find(store, name)?;
    let meta = settings::meta(store, name)?;
    let copy = scratch_store(path)?;
    let werr = |e: rusqlite::Error| ExportError::Write(path.into(), e.to_string());
    let tx = copy.conn().unchecked_transaction().map_err(werr)?;
    let mut failed = None;
    let done = copy_layer(store, &def, &rel, &def, &tx, Rows::Fids(fids), &mut failed)
        .and_then(|_| crate::store::write_meta(&tx, name, &meta));
    if let Some(e) = failed {
        return Err(e.into());
    }
    done.map_err(werr)?;
    tx.commit().map_err(werr)?;
    Ok(copy)
}

/// A new GeoPackage store for a copy written once and read once: a served store's large
/// page cache would only hold memory.
pub(super) fn scratch_store(path: &Path) -> Result<crate::store::Store, crate::store::StoreError> {
    let copy = crate::store::Store::create(path)?;
    copy.conn()
        .execute_batch("PRAGMA cache_size = -2000")
        .map_err(|e| copy.err(e))?;
    Ok(copy)
}

/// Which rows a copy takes.
pub(super) enum Rows<'a> {
    /// None: the table's columns only.
    None,
    /// All, or only those whose column `.0` has the municipality slug `.1`.
    Some(Option<&'a (usize, String)>),
    /// Those with these fids.
    Fids(&'a [i64]),
}

/// Adds layer `def` (read from `rel`) to an open GeoPackage as `out_def` with the rows
/// `which` chooses. A database error ends the copy with a placeholder SQLite error and
/// is put in `failed`.
pub(super) fn copy_layer(
    store: &mut PgStore,
    def: &LayerDef,
    rel: &Relation,
    out_def: &LayerDef,
    tx: &rusqlite::Connection,
    which: Rows,
    failed: &mut Option<PgError>,
) -> rusqlite::Result<i64> {
    // A cursor's statement takes no parameters: the fids are written out.
    let fid_filter = match &which {
        Rows::Fids(fids) => format!(
            " WHERE {}::int8 = ANY('{{{}}}'::int8[])",
            q(&rel.fid),
            fids.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        _ => String::new(),
    };
    let (only, filter) = match which {
        Rows::None => (None, " WHERE false"),
        Rows::Some(only) => (only, ""),
        Rows::Fids(_) => (None, fid_filter.as_str()),
    };
    let srs = crate::store::schema::srs_row_for(def.srs_id);
    let mut cols = vec![format!("{}::int8", q(&rel.fid))];
    cols.extend(rel.read_columns());
    let sql = format!(
        "SELECT {} FROM {}{filter} ORDER BY {}",
        cols.join(", "),
        rel.qualified(),
        q(&rel.fid)
    );
    let classes: Vec<_> = def.columns.iter().map(|c| c.class()).collect();
    let at = store.at().to_string();
    // Read in batches through a cursor: the client library would otherwise take in the
    // whole answer as fast as the database sends it, however large the layer.
    if let Err(e) = store.client().batch_execute(&format!(
        "DECLARE nordgeo_copy NO SCROLL CURSOR WITH HOLD FOR {sql}"
    )) {
        *failed = Some(super::error_at(&at, e));
        return Err(rusqlite::Error::InvalidQuery);
    }
    let mut batch: std::vec::IntoIter<postgres::Row> = Vec::new().into_iter();
    let mut next = |store: &mut PgStore| -> Result<Option<postgres::Row>, postgres::Error> {
        if let Some(row) = batch.next() {
            return Ok(Some(row));
        }
        batch = store
            .client()
            .query("FETCH FORWARD 2000 FROM nordgeo_copy", &[])?
            .into_iter();
        Ok(batch.next())
    };
    let copied = crate::export::add_layer(tx, out_def, &srs, |tx| {
        let mut names = vec![q(def.fid_column.as_deref().unwrap_or("fid"))];
        if def.has_geometry() {
            names.push(q(&def.geom_column));
        }
        names.extend(out_def.columns.iter().map(|c| q(&c.name)));
        let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        let mut ins = tx.prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            q(&def.table),
            names.join(", "),
            marks.join(", ")
        ))?;
        let mut curves = std::collections::BTreeSet::new();
        let mut n = 0;
        loop {
            let row = match next(store) {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    *failed = Some(super::error_at(&at, e));
                    return Err(rusqlite::Error::InvalidQuery);
                }
            };
            let values: Vec<Value> = classes
                .iter()
                .enumerate()
                .map(|(i, class)| read::value(&row, i + 2, *class))
                .collect();
            if let Some((i, slug)) = only
                && !matches!(&values[*i], Value::Text(t) if functions::slug(t) == *slug)
            {
                continue;
            }
            let mut params = vec![Value::Integer(row.try_get(0).unwrap_or_default())];
            if def.has_geometry() {
                let wkb: Option<&[u8]> = row.try_get(1).ok().flatten();
                params.push(match wkb {
                    None => Value::Null,
                    Some(b) => {
                        let decoded = crate::geom::wkb::decode(b).ok();
                        if let Some(d) = &decoded
                            && d.kind.is_curve()
                        {
                            curves.insert(d.kind.gpkg_name());
                        }
                        let env = decoded
                            .and_then(|d| d.geometry)
                            .and_then(|g| crate::geom::bbox_of(&g));
                        Value::Blob(crate::geom::gpkg::encode(def.srs_id, env, b))
                    }
                });
            }
            params.extend(values);
            ins.execute(rusqlite::params_from_iter(params))?;
            n += 1;
        }
        crate::store::layer::register_geometry_types(tx, out_def, curves)?;
        Ok(n)
    });
    // In a transaction that failed the cursor is gone with it; closing may then fail.
    let _ = store.client().batch_execute("CLOSE nordgeo_copy");
    copied
}

/// `nordgeo publish` from a PostGIS store: every layer with its rows and settings, and
/// the tokens, as they were at one moment (one read-only snapshot of the database), in a
/// GeoPackage store any nordgeo serves (a read replica away from the database). The
/// change log and history stay in the database, which PostgreSQL's own tools back up.
/// Returns the number of layers written.
pub fn publish(store: &mut PgStore, out: &Path) -> Result<usize, ExportError> {
    let part = out.with_extension("part");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", part.display()));
    }
    let at = store.at().to_string();
    store
        .client()
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .map_err(|e| super::error_at(&at, e))?;
    let result = publish_in(store, &part);
    let _ = store.client().batch_execute("ROLLBACK");
    let n = result.inspect_err(|_| {
        let _ = std::fs::remove_file(&part);
    })?;
    std::fs::rename(&part, out).map_err(|e| ExportError::Write(out.into(), e.to_string()))?;
    Ok(n)
}

fn publish_in(store: &mut PgStore, path: &Path) -> Result<usize, ExportError> {
    let layers = layers::list(store)?;
    let copy = scratch_store(path)?;
    let werr = |e: rusqlite::Error| ExportError::Write(path.into(), e.to_string());
    let tx = copy.conn().unchecked_transaction().map_err(werr)?;
    for (def, rel) in &layers {
        let meta = settings::meta(store, &def.table)?;
        let mut failed = None;
        let done = copy_layer(store, def, rel, def, &tx, Rows::Some(None), &mut failed)
            .and_then(|_| crate::store::write_meta(&tx, &def.table, &meta));
        if let Some(e) = failed {
            return Err(e.into());
        }
        done.map_err(werr)?;
    }
    if store.has_table("nordgeo_tokens")? {
        let tokens = store.table("nordgeo_tokens");
        let rows = store
            .client()
            .query(
                &format!("SELECT name, hash, role, municipality, collections, created, expires, revoked FROM {tokens}"),
                &[],
            )
            .map_err(|e| store.err(e))?;
        tx.execute_batch(crate::store::schema::TOKENS)
            .map_err(werr)?;
        for r in rows {
            let v: Vec<Option<String>> = (0..8).map(|i| r.get(i)).collect();
            tx.execute(
                "INSERT INTO nordgeo_tokens (name, hash, role, municipality, collections, created, expires, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params_from_iter(v),
            )
            .map_err(werr)?;
        }
    }
    tx.commit().map_err(werr)?;
    // One file, nothing beside it: the copy leaves WAL mode before it is moved.
    copy.conn()
        .query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .map_err(werr)?;
    Ok(layers.len())
}
