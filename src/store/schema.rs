//! The GeoPackage 1.4 base schema plus nordgeo's registered extension tables.

use rusqlite::{Connection, params};

use crate::crs;

/// `PRAGMA application_id` of a GeoPackage ('GPKG').
pub const APPLICATION_ID: i32 = 0x4750_4B47;
/// `PRAGMA user_version` for GeoPackage 1.4.0.
pub const USER_VERSION: i32 = 10400;

const BASE: &str = "
CREATE TABLE gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL PRIMARY KEY,
  organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL,
  definition TEXT NOT NULL,
  description TEXT
);
CREATE TABLE gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY,
  data_type TEXT NOT NULL,
  identifier TEXT UNIQUE,
  description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE,
  min_y DOUBLE,
  max_x DOUBLE,
  max_y DOUBLE,
  srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id)
);
CREATE TABLE gpkg_geometry_columns (
  table_name TEXT NOT NULL,
  column_name TEXT NOT NULL,
  geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL,
  z TINYINT NOT NULL,
  m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id)
);
CREATE TABLE gpkg_extensions (
  table_name TEXT,
  column_name TEXT,
  extension_name TEXT NOT NULL,
  definition TEXT NOT NULL,
  scope TEXT NOT NULL,
  CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name)
);
";

/// nordgeo's own tables. Registered in gpkg_extensions (GeoPackage clause 2.3) so other
/// software knows they are an extension it may ignore.
const NORDGEO: &str = "
CREATE TABLE IF NOT EXISTS nordgeo_layers (
  table_name TEXT NOT NULL PRIMARY KEY,
  title TEXT,
  description TEXT,
  attribution TEXT,
  municipality_column TEXT,
  public_properties TEXT,
  internal_properties TEXT,
  min_zoom INTEGER,
  max_zoom INTEGER,
  restricted INTEGER NOT NULL DEFAULT 0,
  boundaries TEXT,
  boundary_margin_m REAL,
  key_columns TEXT,
  rules TEXT
);
CREATE TABLE IF NOT EXISTS nordgeo_changes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  layer TEXT NOT NULL,
  kind TEXT NOT NULL,
  mode TEXT,
  municipality TEXT,
  source TEXT,
  actor TEXT NOT NULL,
  at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  added INTEGER NOT NULL DEFAULT 0,
  removed INTEGER NOT NULL DEFAULT 0,
  note TEXT
);
CREATE INDEX IF NOT EXISTS nordgeo_changes_layer ON nordgeo_changes(layer, id);
";

/// The token table: names, roles and scopes; only SHA-256 hashes of the secrets.
pub const TOKENS: &str = "
CREATE TABLE IF NOT EXISTS nordgeo_tokens (
  name TEXT NOT NULL PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL,
  municipality TEXT,
  collections TEXT,
  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
  expires TEXT,
  revoked TEXT
);";

/// The extension name nordgeo registers its tables under.
pub const EXTENSION: &str = "nordgeo_layer_metadata";
const EXTENSION_DEF: &str =
    "nordgeo README, section 'The store': layer metadata, change log and per-layer history";

/// Creates a new, empty GeoPackage 1.4 in an open (empty) database.
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    conn.pragma_update(None, "user_version", USER_VERSION)?;
    conn.execute_batch(BASE)?;
    let mut ins = conn.prepare(
        "INSERT INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization, organization_coordsys_id, definition, description)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    ins.execute(params![
        "Undefined cartesian SRS",
        -1,
        "NONE",
        -1,
        "undefined",
        "undefined cartesian coordinate reference system"
    ])?;
    ins.execute(params![
        "Undefined geographic SRS",
        0,
        "NONE",
        0,
        "undefined",
        "undefined geographic coordinate reference system"
    ])?;
    for (code, name, wkt) in crs::BUILTIN {
        ins.execute(params![name, code, "EPSG", code, wkt, ""])?;
    }
    Ok(())
}

/// Adds nordgeo's extension tables if missing (a store may start as a GDAL-made file).
pub fn ensure_nordgeo(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(NORDGEO)?;
    // Stores made by earlier versions lack the later settings columns.
    let have: Vec<String> = conn
        .prepare("PRAGMA table_info(nordgeo_layers)")?
        .query_map([], |r| r.get(1))?
        .collect::<Result<_, _>>()?;
    for (col, decl) in [
        ("boundaries", "TEXT"),
        ("boundary_margin_m", "REAL"),
        ("key_columns", "TEXT"),
        ("rules", "TEXT"),
    ] {
        if !have.iter().any(|h| h == col) {
            conn.execute_batch(&format!(
                "ALTER TABLE nordgeo_layers ADD COLUMN {col} {decl}"
            ))?;
        }
    }
    conn.execute_batch(TOKENS)?;
    conn.execute_batch(super::capture::DDL)?;
    conn.execute_batch(super::access_log::DDL)?;
    for table in [
        "nordgeo_layers",
        "nordgeo_changes",
        "nordgeo_tokens",
        "nordgeo_capture",
        "nordgeo_access_log",
    ] {
        register_table(conn, table, EXTENSION_DEF)?;
    }
    Ok(())
}

/// Registers a nordgeo table in gpkg_extensions once (the UNIQUE constraint does not
/// catch repeats because column_name is NULL).
pub fn register_table(conn: &Connection, table: &str, definition: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope)
         SELECT ?1, NULL, ?2, ?3, 'read-write'
         WHERE NOT EXISTS (SELECT 1 FROM gpkg_extensions WHERE table_name = ?1 AND extension_name = ?2)",
        params![table, EXTENSION, definition],
    )?;
    Ok(())
}

/// Makes sure `srs_id` exists in the store, copying the definition from `row` if needed.
pub fn ensure_srs(conn: &Connection, row: &crate::store::layer::SrsRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization, organization_coordsys_id, definition, description)
         VALUES (?1, ?2, ?3, ?4, ?5, '')",
        params![row.name, row.srs_id, row.organization, row.code, row.definition],
    )?;
    Ok(())
}

/// The gpkg_spatial_ref_sys row nordgeo writes for a CRS id: the built-in WKT, PROJ's
/// WKT 1 of another EPSG code, or the definition of a CRS known only by its WKT.
pub fn srs_row_for(id: i32) -> crate::store::layer::SrsRow {
    use crate::store::layer::SrsRow;
    if let Some(d) = crate::crs::lookup(id).filter(|d| d.epsg.is_none()) {
        return SrsRow {
            srs_id: id,
            name: d.name,
            organization: "NONE".into(),
            code: id,
            definition: d.definition,
        };
    }
    let code = crate::crs::epsg_of(id).unwrap_or(id);
    let (name, definition) = match crate::crs::BUILTIN.iter().find(|(c, _, _)| *c == code) {
        Some((_, name, wkt)) => (name.to_string(), wkt.to_string()),
        None => (
            format!("EPSG:{code}"),
            crate::crs::wkt1(&format!("EPSG:{code}")).unwrap_or_else(|| "undefined".into()),
        ),
    };
    SrsRow {
        srs_id: id,
        name,
        organization: "EPSG".into(),
        code,
        definition,
    }
}
