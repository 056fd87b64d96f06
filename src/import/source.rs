//! Reading a GeoPackage someone else wrote (QGIS, GDAL 3.6 ogr2ogr, pyogrio), checking
//! at file level what can be checked before any feature is looked at.

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::store::layer::{self, LayerDef, SrsRow, q};

/// File- and layer-level problems with a GeoPackage being imported.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Missing file.
    #[error("{0}: file not found")]
    NotFound(PathBuf),
    /// Cannot read.
    #[error("{0}: cannot read the file: {1}")]
    Unreadable(PathBuf, String),
    /// Not SQLite at all.
    #[error(
        "{0} is not a GeoPackage: it is not an SQLite database. In QGIS use Export > Save Features As… with Format 'GeoPackage'"
    )]
    NotSqlite(PathBuf),
    /// Damaged or truncated SQLite file.
    #[error(
        "{0} is damaged or truncated ({1}); copy or export the file again — nothing was imported"
    )]
    Damaged(PathBuf, String),
    /// SQLite but no GeoPackage tables.
    #[error(
        "{0} is not a GeoPackage: it is an SQLite database without the gpkg_contents/gpkg_geometry_columns tables"
    )]
    NotGeoPackage(PathBuf),
    /// No feature layers.
    #[error("{0} has no feature layers (gpkg_contents lists no table with data_type 'features')")]
    NoLayers(PathBuf),
    /// A layer is a view (or missing), not a table.
    #[error(
        "{file}: layer '{layer}' is a {kind}, not a table; nordgeo imports tables only (a view's query would run on the server). In QGIS, export the layer with Save Features As… into a new GeoPackage"
    )]
    NotATable {
        /// File.
        file: PathBuf,
        /// Layer.
        layer: String,
        /// What it is.
        kind: String,
    },
    /// --layer names a layer that is not there.
    #[error("{file}: there is no feature layer '{layer}'; the file has: {available}")]
    NoSuchLayer {
        /// File.
        file: PathBuf,
        /// Requested.
        layer: String,
        /// What exists.
        available: String,
    },
    /// The layer's srs_id has no row, is undefined, or PROJ does not know it.
    #[error("{file}, layer '{layer}': {why}")]
    Srs {
        /// File.
        file: PathBuf,
        /// Layer.
        layer: String,
        /// Explanation.
        why: String,
    },
    /// No usable feature id column, or duplicate ids.
    #[error("{file}, layer '{layer}': {why}")]
    Fid {
        /// File.
        file: PathBuf,
        /// Layer.
        layer: String,
        /// Explanation.
        why: String,
    },
    /// A column type GeoPackage does not allow.
    #[error(
        "{file}, layer '{layer}': column '{column}' has the type '{decl}', which GeoPackage does not allow"
    )]
    ColumnType {
        /// File.
        file: PathBuf,
        /// Layer.
        layer: String,
        /// Column.
        column: String,
        /// Declared type.
        decl: String,
    },
    /// Other SQLite failure while reading.
    #[error("{0}: cannot read: {1}")]
    Sqlite(PathBuf, String),
}

/// An open GeoPackage being imported.
pub struct Source {
    conn: Connection,
    path: PathBuf,
}

/// One feature row as read: fid, geometry blob, attribute values in column order.
pub struct RawFeature {
    /// Feature id.
    pub fid: i64,
    /// The geometry blob, `None` for NULL.
    pub blob: Option<Vec<u8>>,
    /// Attribute values.
    pub values: Vec<Value>,
}

/// A file from outside is untrusted: nothing in its schema may run on the way in. Views
/// and triggers are switched off (a view whose query recurses would otherwise run for
/// good), SQL functions in its schema may not have side effects (`trusted_schema`), and
/// the connection cannot write. Layers must be plain tables.
fn untrusted(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::config::DbConfig;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.execute_batch("PRAGMA query_only = ON;")
}

impl Source {
    /// The file's connection.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Opens and sanity-checks a GeoPackage file.
    pub fn open(path: &Path) -> Result<Source, SourceError> {
        use std::io::Read;
        let p = path.to_path_buf();
        let mut f = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound(p.clone()),
            _ => SourceError::Unreadable(p.clone(), e.to_string()),
        })?;
        let mut head = [0u8; 100];
        let n = f
            .read(&mut head)
            .map_err(|e| SourceError::Unreadable(p.clone(), e.to_string()))?;
        if n < 16 || &head[..16] != b"SQLite format 3\0" {
            return Err(SourceError::NotSqlite(p));
        }
        // The header states the database size in pages; a shorter file was cut off.
        let page_size = match u16::from_be_bytes([head[16], head[17]]) {
            1 => 65536u64,
            s => s as u64,
        };
        let pages = u32::from_be_bytes([head[28], head[29], head[30], head[31]]) as u64;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if n == 100 && pages > 0 && page_size * pages > len {
            return Err(SourceError::Damaged(
                p,
                format!(
                    "the file is {len} bytes but its header says {} bytes",
                    page_size * pages
                ),
            ));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| SourceError::Unreadable(p.clone(), e.to_string()))?;
        untrusted(&conn).map_err(|e| SourceError::Unreadable(p.clone(), e.to_string()))?;
        conn.create_scalar_function(
            "nordgeo_geom_kind",
            1,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8
                | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| {
                let kind = ctx.get_raw(0).as_blob_or_null()?.and_then(|b| {
                    let h = crate::geom::gpkg::header(b).ok()?;
                    crate::geom::wkb::kind_of(&b[h.wkb_offset..]).ok()
                });
                Ok(kind.map(|k| k.gpkg_name()))
            },
        )
        .map_err(|e| SourceError::Unreadable(p.clone(), e.to_string()))?;
        let src = Source { conn, path: p };
        let has: i64 = src
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('gpkg_contents', 'gpkg_geometry_columns', 'gpkg_spatial_ref_sys')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| src.err(e))?;
        if has < 3 {
            return Err(SourceError::NotGeoPackage(src.path.clone()));
        }
        Ok(src)
    }

    /// Maps an SQLite error while reading this file.
    pub fn err(&self, e: rusqlite::Error) -> SourceError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                SourceError::Damaged(self.path.clone(), e.to_string())
            }
            _ => SourceError::Sqlite(self.path.clone(), e.to_string()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The feature layers, optionally only the one named.
    pub fn layers(&self, only: Option<&str>) -> Result<Vec<LayerDef>, SourceError> {
        let all = layer::feature_layers(&self.conn).map_err(|e| self.err(e))?;
        if all.is_empty() {
            return Err(SourceError::NoLayers(self.path.clone()));
        }
        let picked: Vec<LayerDef> = match only {
            None => all.clone(),
            Some(name) => all.iter().filter(|l| l.table == name).cloned().collect(),
        };
        if picked.is_empty() {
            return Err(SourceError::NoSuchLayer {
                file: self.path.clone(),
                layer: only.unwrap_or_default().into(),
                available: all
                    .iter()
                    .map(|l| l.table.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        for l in &picked {
            let kind: Option<String> = self
                .conn
                .query_row(
                    "SELECT type FROM sqlite_master WHERE name = ?1",
                    [&l.table],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if kind.as_deref() != Some("table") {
                return Err(SourceError::NotATable {
                    file: self.path.clone(),
                    layer: l.table.clone(),
                    kind: kind.unwrap_or_else(|| "missing".into()),
                });
            }
        }
        Ok(picked)
    }

    /// The CRS of a layer as a CRS id PROJ knows, plus its gpkg_spatial_ref_sys row:
    /// the srs_id is resolved through the file's row (organization and code), and a CRS
    /// without an EPSG code through its WKT.
    pub fn srs(&self, def: &LayerDef) -> Result<(i32, SrsRow), SourceError> {
        let fail = |why: String| SourceError::Srs {
            file: self.path.clone(),
            layer: def.table.clone(),
            why,
        };
        let row = layer::srs_row(&self.conn, def.srs_id)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| {
                fail(format!(
                    "srs_id {} is not listed in gpkg_spatial_ref_sys",
                    def.srs_id
                ))
            })?;
        let wkt = row.definition.trim();
        let no_wkt = wkt.is_empty() || wkt.eq_ignore_ascii_case("undefined");
        if (def.srs_id <= 0 && row.epsg().is_none()) || (row.epsg().is_none() && no_wkt) {
            return Err(fail(format!(
                "the layer has an undefined CRS (srs_id {}); set the layer's CRS in QGIS (e.g. EPSG:25832) and export again",
                def.srs_id
            )));
        }
        if let Some(epsg) = row.epsg() {
            match crate::crs::facts(epsg) {
                Ok(_) => return Ok((epsg, row)),
                Err(e) if no_wkt => {
                    return Err(fail(format!(
                        "unknown SRS EPSG:{epsg} ({e}); reproject the layer to EPSG:25832 before exporting"
                    )));
                }
                // An EPSG code this PROJ does not know, with a WKT: go by the WKT.
                Err(_) => {}
            }
        }
        let id = crate::crs::custom_id(wkt);
        crate::crs::define(
            id,
            crate::crs::Defined {
                name: row.name.clone(),
                definition: wkt.to_string(),
                epsg: None,
            },
        )
        .and_then(|()| crate::crs::facts(id))
        .map_err(|e| {
            fail(format!(
                "the CRS '{}' (organization '{}', id {}) cannot be used ({e}); reproject the layer to EPSG:25832 before exporting",
                row.name, row.organization, row.code
            ))
        })?;
        Ok((
            id,
            SrsRow {
                srs_id: id,
                code: id,
                organization: "NONE".into(),
                definition: wkt.to_string(),
                ..row
            },
        ))
    }

    /// Columns a nordgeo file (a generated sample, an export) marks as internal: a new
    /// layer keeps them internal, so personal data never arrives public.
    pub fn marked_internal(&self, def: &LayerDef) -> Vec<String> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT internal_properties FROM nordgeo_layers WHERE table_name = ?1",
                [&def.table],
                |r| r.get(0),
            )
            .ok()
            .flatten();
        let listed: Vec<String> = json
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        listed
            .into_iter()
            .filter(|n| def.columns.iter().any(|c| &c.name == n))
            .collect()
    }

    /// The SQL expression that yields a unique feature id, after checking the table.
    fn fid_expr(&self, def: &LayerDef) -> Result<String, SourceError> {
        if let Some(fid) = &def.fid_column {
            return Ok(q(fid));
        }
        let fail = |why: String| SourceError::Fid {
            file: self.path.clone(),
            layer: def.table.clone(),
            why,
        };
        let Some(col) = def.columns.iter().find(|c| {
            ["fid", "id", "ogc_fid"]
                .iter()
                .any(|n| c.name.eq_ignore_ascii_case(n))
        }) else {
            return Ok("rowid".into());
        };
        let dups: Vec<String> = self
            .conn
            .prepare(&format!(
                "SELECT {c} FROM {t} GROUP BY {c} HAVING count(*) > 1 ORDER BY {c} LIMIT 10",
                c = q(&col.name),
                t = q(&def.table)
            ))
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, Value>(0))?
                    .map(|v| {
                        v.map(|v| match v {
                            Value::Integer(i) => i.to_string(),
                            Value::Text(t) => format!("'{t}'"),
                            other => format!("{other:?}"),
                        })
                    })
                    .collect()
            })
            .map_err(|e| self.err(e))?;
        if !dups.is_empty() {
            return Err(fail(format!(
                "duplicate fid values in column '{}': {} — a GeoPackage feature table needs a unique INTEGER PRIMARY KEY; export the layer again from QGIS or GDAL",
                col.name,
                dups.join(", ")
            )));
        }
        Err(fail(format!(
            "column '{}' looks like a feature id but is not the table's INTEGER PRIMARY KEY; export the layer again from QGIS or GDAL",
            col.name
        )))
    }

    /// Checks the columns' declared types.
    pub fn check_columns(&self, def: &LayerDef) -> Result<(), SourceError> {
        for c in &def.columns {
            if !layer::valid_decl_type(&c.decl_type) {
                return Err(SourceError::ColumnType {
                    file: self.path.clone(),
                    layer: def.table.clone(),
                    column: c.name.clone(),
                    decl: c.decl_type.clone(),
                });
            }
        }
        Ok(())
    }

    /// The top-level geometry types a layer's features have.
    pub fn kinds(&self, def: &LayerDef) -> Result<Vec<crate::geom::GeometryKind>, SourceError> {
        if !def.has_geometry() {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT DISTINCT nordgeo_geom_kind({}) FROM {}",
                q(&def.geom_column),
                q(&def.table)
            ))
            .map_err(|e| self.err(e))?;
        let names: Vec<Option<String>> = st
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        Ok(names
            .into_iter()
            .flatten()
            .filter_map(|n| crate::geom::GeometryKind::from_gpkg_name(&n))
            .collect())
    }

    /// Number of features in a layer.
    pub fn count(&self, def: &LayerDef) -> Result<u64, SourceError> {
        self.conn
            .query_row(
                &format!("SELECT count(*) FROM {}", q(&def.table)),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Calls `f` for every feature of a layer, in fid order, until it fails.
    pub fn try_for_each<E: From<SourceError>>(
        &self,
        def: &LayerDef,
        mut f: impl FnMut(RawFeature) -> Result<(), E>,
    ) -> Result<(), E> {
        let fid = self.fid_expr(def)?;
        let mut cols = vec![fid.clone(), def.geom_select()];
        cols.extend(def.columns.iter().map(|c| q(&c.name)));
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {fid}",
            cols.join(", "),
            q(&def.table)
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let n = def.columns.len();
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let fid: i64 = r.get(0).map_err(|e| self.err(e))?;
            let blob = match r.get_ref(1).map_err(|e| self.err(e))? {
                rusqlite::types::ValueRef::Blob(b) => Some(b.to_vec()),
                rusqlite::types::ValueRef::Null => None,
                // Text or numbers where a geometry belongs: keep the bytes, the decoder rejects them.
                other => Some(match other {
                    rusqlite::types::ValueRef::Text(t) => t.to_vec(),
                    _ => Vec::new(),
                }),
            };
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(r.get::<_, Value>(i + 2).map_err(|e| self.err(e))?);
            }
            f(RawFeature { fid, blob, values })?;
        }
        Ok(())
    }
}
