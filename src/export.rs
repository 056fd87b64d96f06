//! `nordgeo export`: one layer as a fresh, standard GeoPackage any GIS can open.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use crate::store::layer::{self, q};
use crate::store::{Store, StoreError, functions, schema};

/// Why an export did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Target exists.
    #[error("{0} already exists; choose another file name or pass --force to overwrite it")]
    Exists(PathBuf),
    /// Store problem.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, String),
    /// The layer cannot be limited to a municipality.
    #[error("{0}")]
    Municipality(String),
}

/// Writes layer `name` of the store to `out` (via a temporary file, renamed when complete).
/// Returns the number of features written.
pub fn export(store: &Store, name: &str, out: &Path, force: bool) -> Result<i64, ExportError> {
    export_where(store, name, out, force, None)
}

/// Like [`export`], only one municipality's features when `municipality` is given.
pub fn export_where(
    store: &Store,
    name: &str,
    out: &Path,
    force: bool,
    municipality: Option<&str>,
) -> Result<i64, ExportError> {
    if out.exists() && !force {
        return Err(ExportError::Exists(out.into()));
    }
    let def = store.layer(name)?;
    let meta = store.meta(name)?;
    let filter = match municipality {
        None => String::new(),
        Some(m) => {
            let col = meta.municipality_column.as_ref().ok_or_else(|| {
                ExportError::Municipality(format!(
                    "layer '{name}' has no municipality column, so it cannot be limited to {m}"
                ))
            })?;
            let known = crate::municipality::known(store)?;
            let m = crate::municipality::canonical(m, &known).map_err(ExportError::Municipality)?;
            format!(
                " WHERE nordgeo_slug({}) = '{}'",
                q(col),
                functions::slug(&m).replace('\'', "''")
            )
        }
    };
    let srs = layer::srs_row(store.conn(), def.srs_id)
        .map_err(|e| store.err(e))?
        .ok_or_else(|| {
            ExportError::Write(
                out.into(),
                format!("srs_id {} missing in the store", def.srs_id),
            )
        })?;
    let tmp = out.with_extension("gpkg.partial");
    let _ = std::fs::remove_file(&tmp);
    let werr = |e: rusqlite::Error| ExportError::Write(out.into(), e.to_string());
    let written = (|| -> rusqlite::Result<i64> {
        let conn = Connection::open(&tmp)?;
        functions::register(&conn)?;
        conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF;")?;
        conn.execute(
            "ATTACH DATABASE ?1 AS src",
            params![store.path().to_string_lossy()],
        )?;
        let tx = conn.unchecked_transaction()?;
        schema::create(&tx)?;
        schema::ensure_srs(&tx, &srs)?;
        let mut out_def = def.clone();
        out_def.description = meta.description.clone().or(def.description.clone());
        out_def.identifier = meta.title.clone().or(def.identifier.clone());
        layer::create_feature_table(&tx, &out_def)?;
        let mut cols = vec![q(def.fid_column.as_deref().unwrap_or("fid"))];
        cols.extend(def.geom_target());
        cols.extend(def.columns.iter().map(|c| q(&c.name)));
        let cols = cols.join(", ");
        let n = tx.execute(
            &format!(
                "INSERT INTO main.{t} ({cols}) SELECT {cols} FROM src.{t}{filter}",
                t = q(&def.table)
            ),
            [],
        )?;
        // The curve types the layer holds stay registered in the copy.
        tx.execute(
            "INSERT OR IGNORE INTO main.gpkg_extensions SELECT * FROM src.gpkg_extensions
             WHERE table_name = ?1 AND extension_name LIKE 'gpkg\\_geom\\_%' ESCAPE '\\'
               AND NOT EXISTS (SELECT 1 FROM main.gpkg_extensions m WHERE m.table_name = ?1
                               AND m.extension_name = src.gpkg_extensions.extension_name)",
            [&def.table],
        )?;
        layer::load_rtree(&tx, &out_def)?;
        layer::create_rtree_triggers(&tx, &out_def)?;
        layer::refresh_contents(&tx, &out_def)?;
        tx.commit()?;
        conn.execute("DETACH DATABASE src", [])?;
        Ok(n as i64)
    })()
    .map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        werr(e)
    })?;
    std::fs::rename(&tmp, out).map_err(|e| ExportError::Write(out.into(), e.to_string()))?;
    Ok(written)
}
