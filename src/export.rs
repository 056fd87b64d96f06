//! `nordgeo export`: one layer as a fresh, standard GeoPackage any GIS can open.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use crate::store::LayerMeta;
use crate::store::layer::{self, LayerDef, SrsRow, q};
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
    /// Another store could not be read (its own message).
    #[error("{0}")]
    Backend(String),
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
    let meta = store.meta(name)?;
    let filter = match municipality {
        None => String::new(),
        Some(m) => {
            let known = crate::municipality::known(store)?;
            let (col, m) = municipality_scope(name, &meta, m, &known)?;
            format!(
                " WHERE nordgeo_slug({}) = '{}'",
                q(&col),
                functions::slug(&m).replace('\'', "''")
            )
        }
    };
    write(store, name, out, &filter, None)
}

/// The municipality column of layer `name` and `m` as the boundaries spell it (`known`),
/// for an export limited to that municipality.
pub fn municipality_scope(
    name: &str,
    meta: &LayerMeta,
    m: &str,
    known: &[String],
) -> Result<(String, String), ExportError> {
    let col = meta.municipality_column.clone().ok_or_else(|| {
        ExportError::Municipality(format!(
            "layer '{name}' has no municipality column, so it cannot be limited to {m}"
        ))
    })?;
    let m = crate::municipality::canonical(m, known).map_err(ExportError::Municipality)?;
    Ok((col, m))
}

/// A selection of a layer as one caller may have it (an items download): which features,
/// which columns, whose internal columns stay empty, in which CRS.
pub struct Selected<'a> {
    /// The features, by fid.
    pub fids: &'a [i64],
    /// The columns written (the caller sees them on some feature).
    pub columns: &'a [bool],
    /// The columns every reader sees; the others are left empty on `masked` features.
    pub public: &'a [bool],
    /// Features whose internal columns the caller does not see.
    pub masked: &'a [i64],
    /// The CRS id geometries are written in (the layer's own: as stored, curves kept).
    pub srs_id: i32,
}

/// Writes a selection of layer `name` to `out` (replacing it) as [`export`] writes a
/// whole layer. Returns the number of features written.
pub fn export_selected(
    store: &Store,
    name: &str,
    out: &Path,
    sel: &Selected,
) -> Result<i64, ExportError> {
    write(store, name, out, "", Some(sel))
}

/// A layer of the store as a file: `filter` (SQL) or `sel` chooses the rows.
fn write(
    store: &Store,
    name: &str,
    out: &Path,
    filter: &str,
    sel: Option<&Selected>,
) -> Result<i64, ExportError> {
    let def = store.layer(name)?;
    let meta = store.meta(name)?;
    let to_srs = sel.map_or(def.srs_id, |s| s.srs_id);
    let srs = if to_srs == def.srs_id {
        layer::srs_row(store.conn(), def.srs_id).map_err(|e| store.err(e))?
    } else {
        Some(schema::srs_row_for(to_srs))
    }
    .ok_or_else(|| {
        ExportError::Write(
            out.into(),
            format!("srs_id {} missing in the store", def.srs_id),
        )
    })?;
    let mut out_def = titled(&def, &meta);
    out_def.srs_id = to_srs;
    if let Some(s) = sel {
        out_def.columns = def
            .columns
            .iter()
            .zip(s.columns)
            .filter(|(_, shown)| **shown)
            .map(|(c, _)| c.clone())
            .collect();
    }
    write_geopackage(out, Some(store.path()), |tx| {
        add_layer(tx, &out_def, &srs, |tx| {
            fill(tx, &def, &out_def, to_srs, filter, sel)
        })
    })
}

/// Copies the chosen rows of the attached store's layer `def` into the new file's `out_def`.
fn fill(
    tx: &Connection,
    def: &LayerDef,
    out_def: &LayerDef,
    to_srs: i32,
    filter: &str,
    sel: Option<&Selected>,
) -> rusqlite::Result<i64> {
    {
        if let Some(s) = sel {
            tx.execute_batch("CREATE TEMP TABLE sel (fid INTEGER PRIMARY KEY)")?;
            let mut ins = tx.prepare("INSERT OR IGNORE INTO temp.sel VALUES (?1)")?;
            for fid in s.fids {
                ins.execute([fid])?;
            }
        }
        let fid_col = q(def.fid_column.as_deref().unwrap_or("fid"));
        let mut cols = vec![fid_col.clone()];
        let mut source = vec![fid_col.clone()];
        if let Some(g) = def.geom_target() {
            cols.push(g.clone());
            source.push(if to_srs == def.srs_id {
                g
            } else {
                reproject(tx, def.srs_id, to_srs)?;
                format!("nordgeo_reproject({g})")
            });
        }
        for c in &out_def.columns {
            cols.push(q(&c.name));
            source.push(q(&c.name));
        }
        let n = tx.execute(
            &format!(
                "INSERT INTO main.{t} ({}) SELECT {} FROM src.{t}{}",
                cols.join(", "),
                source.join(", "),
                if sel.is_some() {
                    format!(" WHERE {fid_col} IN (SELECT fid FROM temp.sel)")
                } else {
                    filter.to_string()
                },
                t = q(&def.table)
            ),
            [],
        )?;
        if let Some(s) = sel {
            let hidden: Vec<String> = out_def
                .columns
                .iter()
                .filter(|c| {
                    def.columns
                        .iter()
                        .position(|d| d.name == c.name)
                        .is_some_and(|i| !s.public[i])
                })
                .map(|c| format!("{} = NULL", q(&c.name)))
                .collect();
            if !hidden.is_empty() && !s.masked.is_empty() {
                let mut up = tx.prepare(&format!(
                    "UPDATE main.{} SET {} WHERE {fid_col} = ?1",
                    q(&def.table),
                    hidden.join(", ")
                ))?;
                for fid in s.masked {
                    up.execute([fid])?;
                }
            }
        }
        // The curve types the layer holds stay registered in the copy.
        tx.execute(
            "INSERT OR IGNORE INTO main.gpkg_extensions SELECT * FROM src.gpkg_extensions
             WHERE table_name = ?1 AND extension_name LIKE 'gpkg\\_geom\\_%' ESCAPE '\\'
               AND NOT EXISTS (SELECT 1 FROM main.gpkg_extensions m WHERE m.table_name = ?1
                               AND m.extension_name = src.gpkg_extensions.extension_name)",
            [&def.table],
        )?;
        Ok(n as i64)
    }
}

/// The layer as exported: its title and description from the layer settings.
pub fn titled(def: &LayerDef, meta: &LayerMeta) -> LayerDef {
    let mut out = def.clone();
    out.description = meta.description.clone().or(def.description.clone());
    out.identifier = meta.title.clone().or(def.identifier.clone());
    out
}

/// The one way a file is written, whatever the store: a fresh GeoPackage (with `src`
/// attached when given) whose content `body` writes in one transaction, written to a
/// temporary file renamed when complete. Returns what `body` counted.
pub fn write_geopackage(
    out: &Path,
    src: Option<&Path>,
    body: impl FnOnce(&Connection) -> rusqlite::Result<i64>,
) -> Result<i64, ExportError> {
    let tmp = out.with_extension("gpkg.partial");
    let _ = std::fs::remove_file(&tmp);
    let werr = |e: rusqlite::Error| ExportError::Write(out.into(), e.to_string());
    let written = (|| -> rusqlite::Result<i64> {
        let conn = Connection::open(&tmp)?;
        functions::register(&conn)?;
        conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF;")?;
        if let Some(src) = src {
            conn.execute("ATTACH DATABASE ?1 AS src", params![src.to_string_lossy()])?;
        }
        let tx = conn.unchecked_transaction()?;
        schema::create(&tx)?;
        let n = body(&tx)?;
        tx.commit()?;
        if src.is_some() {
            conn.execute("DETACH DATABASE src", [])?;
        }
        Ok(n)
    })()
    .map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        werr(e)
    })?;
    std::fs::rename(&tmp, out).map_err(|e| ExportError::Write(out.into(), e.to_string()))?;
    Ok(written)
}

/// Adds the feature table `def` (CRS `srs`) to an open GeoPackage: `fill` writes its rows
/// and says how many, then its R-tree and contents entry are made.
pub fn add_layer(
    tx: &Connection,
    def: &LayerDef,
    srs: &SrsRow,
    fill: impl FnOnce(&Connection) -> rusqlite::Result<i64>,
) -> rusqlite::Result<i64> {
    schema::ensure_srs(tx, srs)?;
    layer::create_feature_table(tx, def)?;
    let n = fill(tx)?;
    layer::load_rtree(tx, def)?;
    layer::create_rtree_triggers(tx, def)?;
    layer::refresh_contents(tx, def)?;
    Ok(n)
}

/// Registers `nordgeo_reproject(blob)`: a GeoPackage geometry from CRS `from` to `to`
/// (curves linearized, as any reprojection of an arc must be).
fn reproject(conn: &Connection, from: i32, to: i32) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
    conn.create_scalar_function(
        "nordgeo_reproject",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let ValueRef::Blob(blob) = ctx.get_raw(0) else {
                return Ok(None);
            };
            let fail = |e: String| rusqlite::Error::UserFunctionError(e.into());
            let decoded = crate::geom::gpkg::decode(blob).map_err(|e| fail(e.to_string()))?;
            let Some(mut g) = decoded.decoded.geometry else {
                // An empty geometry stays empty, only its CRS changes.
                let wkb = &blob[decoded.header.wkb_offset..];
                return Ok(Some(crate::geom::gpkg::encode(to, None, wkb)));
            };
            let mut xy = Vec::new();
            crate::index::for_each_coord_mut(&mut g, &mut |c| xy.push((c.x, c.y)));
            crate::crs::transform(from, to, &mut xy).map_err(|e| fail(e.to_string()))?;
            let mut it = xy.into_iter();
            crate::index::for_each_coord_mut(&mut g, &mut |c| {
                if let Some((x, y)) = it.next() {
                    (c.x, c.y) = (x, y);
                }
            });
            let env = crate::geom::bbox_of(&g);
            Ok(Some(crate::geom::gpkg::encode(
                to,
                env,
                &crate::geom::wkb::encode(&g),
            )))
        },
    )
}
