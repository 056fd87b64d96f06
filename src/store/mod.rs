//! The store: one GeoPackage 1.4 file that QGIS and GDAL open directly.
//!
//! Only one read-write connection exists per process (the writer); every write runs in
//! one SQLite transaction, so a crash or kill leaves the previous state.

pub mod access_log;
pub mod budget;
pub mod capture;
pub mod functions;
pub mod history;
pub mod layer;
pub mod packed_rtree;
pub mod schema;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

pub use layer::{Column, LayerDef};

/// Errors at the store boundary, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file does not exist.
    #[error(
        "store {0} does not exist; create it with `nordgeo import FILE.gpkg --mode create --store {0}`"
    )]
    NotFound(PathBuf),
    /// The file exists but is not a GeoPackage.
    #[error("store {path} is not a GeoPackage: {why}")]
    NotGeoPackage {
        /// File.
        path: PathBuf,
        /// Reason.
        why: String,
    },
    /// The file or its directory is not writable.
    #[error(
        "store {0} is read-only: check the permissions of the file and of its directory (SQLite writes a journal next to it); nothing was changed"
    )]
    ReadOnly(PathBuf),
    /// The disk is full (or the store hit its size limit).
    #[error(
        "the disk holding {0} is full; the change was rolled back and nothing was written. Free some space and try again"
    )]
    DiskFull(PathBuf),
    /// Damaged file.
    #[error(
        "store {0} is damaged ({1}); restore it from a backup (see README, 'Backup and restore')"
    )]
    Corrupt(PathBuf, String),
    /// Busy beyond the timeout.
    #[error("store {0} is locked by another writer; try again when the other import has finished")]
    Busy(PathBuf),
    /// Stopped by its time budget or because its client went away.
    #[error(
        "the change was stopped (it ran out of time, or its client went away); nothing was changed"
    )]
    Interrupted,
    /// Unknown layer.
    #[error("layer '{0}' does not exist in the store; `nordgeo layers` lists the layers")]
    NoSuchLayer(String),
    /// A file operation on the store failed.
    #[error("store {path}: {msg}")]
    Io {
        /// File.
        path: PathBuf,
        /// What the system said.
        msg: String,
    },
    /// Any other SQLite error.
    #[error("store {path}: {source}")]
    Sqlite {
        /// File.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Classifies an SQLite error on `path` into the variant a user can act on.
    pub fn from_sqlite(path: &Path, e: rusqlite::Error) -> Self {
        let p = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(p),
            Some(ErrorCode::DiskFull) => StoreError::DiskFull(p),
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                StoreError::Corrupt(p, e.to_string())
            }
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => StoreError::Busy(p),
            Some(ErrorCode::OperationInterrupted) => StoreError::Interrupted,
            Some(ErrorCode::CannotOpen) if !path.exists() => StoreError::NotFound(p),
            Some(ErrorCode::CannotOpen) => StoreError::ReadOnly(p),
            _ => StoreError::Sqlite { path: p, source: e },
        }
    }
}

/// Layer metadata GeoPackage has no place for (table `nordgeo_layers`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LayerMeta {
    /// Human title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Attribution (shown on maps).
    pub attribution: Option<String>,
    /// The column naming the municipality a feature belongs to.
    pub municipality_column: Option<String>,
    /// Properties shown to anonymous users (None: all but internal ones).
    pub public_properties: Option<Vec<String>>,
    /// Properties never shown to anonymous users.
    pub internal_properties: Vec<String>,
    /// Tile zoom range.
    pub min_zoom: Option<u8>,
    /// Tile zoom range.
    pub max_zoom: Option<u8>,
    /// Readable only with a token.
    pub restricted: bool,
    /// This layer holds the municipalities' boundaries; the column naming each one.
    pub boundaries: Option<String>,
    /// How far (metres) outside its boundary a maintainer may still place a feature.
    pub boundary_margin_m: Option<f64>,
    /// The columns that identify a feature (imports match by them).
    pub key: Option<Vec<String>>,
    /// CQL2 conditions every feature must meet (checked on import and every edit).
    pub rules: Vec<String>,
}

/// An open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// A test hook: caps the store's size in pages so the "disk full" path can be exercised
/// without filling a real disk. Never set in production.
const MAX_PAGES_ENV: &str = "NORDGEO_TEST_MAX_PAGES";

impl Store {
    /// Opens an existing store for writing (the one writer of this process).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        check_file(path)?;
        // Honour a store marked read-only even when running as root, which SQLite would not.
        if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
            return Err(StoreError::ReadOnly(path.into()));
        }
        let err = |e| StoreError::from_sqlite(path, e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        check_header(&conn, path)?;
        let store = Store {
            conn,
            path: path.into(),
        };
        store.configure()?;
        store.check_geopackage()?;
        // Probe writability now rather than after a long validation.
        store
            .conn
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(err)?;
        schema::ensure_nordgeo(&store.conn).map_err(err)?;
        store.ensure_capture()?;
        Ok(store)
    }

    /// Adds the change-capture triggers to layers that lack them (a layer GDAL or QGIS
    /// created in the store), so their later changes are seen by running servers.
    pub fn ensure_capture(&self) -> Result<(), StoreError> {
        for def in self.layers()? {
            if !capture::has_triggers(&self.conn, &def).map_err(|e| self.err(e))? {
                capture::ensure(&self.conn, &def).map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// Opens a store for reading only.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        check_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::from_sqlite(path, e))?;
        check_header(&conn, path)?;
        let store = Store {
            conn,
            path: path.into(),
        };
        functions::register(&store.conn).map_err(|e| store.err(e))?;
        store.check_geopackage()?;
        Ok(store)
    }

    /// Creates a new, empty store; an existing file is opened instead.
    pub fn create(path: &Path) -> Result<Store, StoreError> {
        let err = |e| StoreError::from_sqlite(path, e);
        if path.exists() {
            return Store::open(path);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        let store = Store {
            conn,
            path: path.into(),
        };
        let tx = store.conn.unchecked_transaction().map_err(err)?;
        schema::create(&tx).map_err(err)?;
        schema::ensure_nordgeo(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        store.configure()?;
        Ok(store)
    }

    /// Switches a store being built whole (not yet seen by anyone) to writing without a
    /// journal: its first import is written once instead of twice (WAL, then the file).
    /// [`Store::finish_bulk`] makes it a normal WAL store again.
    pub fn begin_bulk(&self) -> Result<(), StoreError> {
        let _: String = self
            .conn
            .query_row("PRAGMA journal_mode = OFF", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        self.conn
            .execute_batch("PRAGMA synchronous = OFF;")
            .map_err(|e| self.err(e))
    }

    /// Ends [`Store::begin_bulk`]: back to WAL, and everything on disk.
    pub fn finish_bulk(&self) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(err)?;
        let _: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        std::fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::Io {
                path: self.path.clone(),
                msg: e.to_string(),
            })
    }

    fn configure(&self) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        functions::register(&self.conn).map_err(err)?;
        self.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        // WAL: readers never wait for the writer; a killed writer leaves the last commit.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "store could not switch to WAL journal mode");
        }
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536;")
            .map_err(err)?;
        if let Some(pages) = std::env::var(MAX_PAGES_ENV)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
        {
            self.conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(err)?;
        }
        Ok(())
    }

    fn check_geopackage(&self) -> Result<(), StoreError> {
        let has: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('gpkg_contents', 'gpkg_spatial_ref_sys', 'gpkg_geometry_columns')",
                [],
                |r| r.get::<_, i64>(0).map(|n| n == 3),
            )
            .map_err(|e| self.err(e))?;
        if has {
            Ok(())
        } else {
            Err(StoreError::NotGeoPackage {
                path: self.path.clone(),
                why: "it has no gpkg_contents/gpkg_spatial_ref_sys/gpkg_geometry_columns tables"
                    .into(),
            })
        }
    }

    /// Maps an SQLite error on this store.
    pub fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.path, e)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection (for the import and export paths).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// All feature layers.
    pub fn layers(&self) -> Result<Vec<LayerDef>, StoreError> {
        let defs = layer::feature_layers(&self.conn).map_err(|e| self.err(e))?;
        layer::define_crs(&self.conn, &defs).map_err(|e| self.err(e))?;
        Ok(defs)
    }

    /// One layer by table name.
    pub fn layer(&self, name: &str) -> Result<LayerDef, StoreError> {
        self.layers()?
            .into_iter()
            .find(|l| l.table == name)
            .ok_or_else(|| StoreError::NoSuchLayer(name.into()))
    }

    /// Number of rows of a layer.
    pub fn count(&self, def: &LayerDef) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT count(*) FROM {}", layer::q(&def.table)),
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Metadata of a layer (defaults when none was stored).
    pub fn meta(&self, table: &str) -> Result<LayerMeta, StoreError> {
        let columns: Vec<String> = self
            .conn
            .prepare("PRAGMA table_info(nordgeo_layers)")
            .and_then(|mut st| st.query_map([], |r| r.get(1))?.collect())
            .map_err(|e| self.err(e))?;
        if columns.is_empty() {
            return Ok(LayerMeta::default());
        }
        // A store of an earlier version opened read-only has not got the later columns.
        let or_null = |c: &str| {
            if columns.iter().any(|x| x == c) {
                c.to_string()
            } else {
                "NULL".into()
            }
        };
        let list = |s: Option<String>| -> Option<Vec<String>> {
            s.and_then(|s| serde_json::from_str::<Vec<String>>(&s).ok())
        };
        self.conn
            .query_row(
                &format!(
                    "SELECT title, description, attribution, municipality_column, public_properties,
                            internal_properties, min_zoom, max_zoom, restricted, {}, {}, {}, {}
                     FROM nordgeo_layers WHERE table_name = ?1",
                    or_null("boundaries"),
                    or_null("boundary_margin_m"),
                    or_null("key_columns"),
                    or_null("rules"),
                ),
                [table],
                |r| {
                    Ok(LayerMeta {
                        title: r.get(0)?,
                        description: r.get(1)?,
                        attribution: r.get(2)?,
                        municipality_column: r.get(3)?,
                        public_properties: list(r.get(4)?),
                        internal_properties: list(r.get(5)?).unwrap_or_default(),
                        min_zoom: r.get::<_, Option<i64>>(6)?.map(|z| z.clamp(0, 24) as u8),
                        max_zoom: r.get::<_, Option<i64>>(7)?.map(|z| z.clamp(0, 24) as u8),
                        restricted: r.get::<_, i64>(8)? != 0,
                        boundaries: r.get(9)?,
                        boundary_margin_m: r.get(10)?,
                        key: list(r.get(11)?).filter(|k| !k.is_empty()),
                        rules: list(r.get(12)?).unwrap_or_default(),
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }
}

/// Writes a layer's metadata row (inside the caller's transaction).
pub fn write_meta(conn: &Connection, table: &str, m: &LayerMeta) -> rusqlite::Result<()> {
    let json = |v: &Option<Vec<String>>| v.as_ref().and_then(|v| serde_json::to_string(v).ok());
    conn.execute(
        "INSERT OR REPLACE INTO nordgeo_layers (table_name, title, description, attribution, municipality_column,
             public_properties, internal_properties, min_zoom, max_zoom, restricted, boundaries, boundary_margin_m,
             key_columns, rules)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            table,
            m.title,
            m.description,
            m.attribution,
            m.municipality_column,
            json(&m.public_properties),
            serde_json::to_string(&m.internal_properties).ok(),
            m.min_zoom,
            m.max_zoom,
            m.restricted as i64,
            m.boundaries,
            m.boundary_margin_m,
            json(&m.key),
            serde_json::to_string(&m.rules).ok()
        ],
    )?;
    Ok(())
}

/// Checks that a path names an existing regular file, without opening it: closing any
/// descriptor of a database file drops every SQLite lock this process holds on it (POSIX
/// advisory locks are per process), after which another program closing the store
/// would delete the write-ahead log under the server's feet.
fn check_file(path: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(StoreError::NotGeoPackage {
            path: path.into(),
            why: "it is not a file".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(StoreError::NotFound(path.into()))
        }
        Err(e) => Err(StoreError::NotGeoPackage {
            path: path.into(),
            why: e.to_string(),
        }),
    }
}

/// Reads the database header through SQLite, so a file that is not SQLite at all gets
/// its own message (a damaged one is reported as damaged).
fn check_header(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    match conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            Err(StoreError::NotGeoPackage {
                path: path.into(),
                why: "it is not an SQLite database (wrong file header)".into(),
            })
        }
        Err(e) => Err(StoreError::from_sqlite(path, e)),
    }
}
