//! Feature-table descriptions, read from any GeoPackage (the store or a file being
//! imported), and the DDL that creates a feature table with its R-tree index.

use rusqlite::{Connection, OptionalExtension, params};

use crate::geom::{Bbox, GeometryKind};

/// Quotes an SQL identifier.
pub fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One attribute column.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Declared type as written in the table definition (e.g. `TEXT(80)`, `INTEGER`).
    pub decl_type: String,
    /// NOT NULL constraint.
    pub not_null: bool,
}

impl Column {
    /// A column that may hold NULL, of the declared type `decl_type`.
    pub fn nullable(name: &str, decl_type: &str) -> Column {
        Column {
            name: name.into(),
            decl_type: decl_type.into(),
            not_null: false,
        }
    }
}

/// The value family a declared column type stores, for type checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ValueClass {
    /// Integers (INTEGER, INT, MEDIUMINT, SMALLINT, TINYINT).
    Integer,
    /// BOOLEAN (0/1).
    Boolean,
    /// Floating point (REAL, FLOAT, DOUBLE).
    Real,
    /// Text (TEXT, DATE, DATETIME and anything unknown).
    Text,
    /// Binary.
    Blob,
}

impl Column {
    /// The value family of this column's declared type.
    pub fn class(&self) -> ValueClass {
        let t = self.decl_type.to_ascii_uppercase();
        if t.starts_with("BOOL") {
            ValueClass::Boolean
        } else if t.contains("INT") {
            ValueClass::Integer
        } else if t.starts_with("REAL") || t.starts_with("FLOAT") || t.starts_with("DOUBLE") {
            ValueClass::Real
        } else if t.starts_with("BLOB") {
            ValueClass::Blob
        } else {
            ValueClass::Text
        }
    }
}

/// A feature table as registered in `gpkg_contents` and `gpkg_geometry_columns`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerDef {
    /// Table name.
    pub table: String,
    /// Geometry column name; empty for an attributes-only table (a Kita contact list).
    pub geom_column: String,
    /// The INTEGER PRIMARY KEY column, if the table has one.
    pub fid_column: Option<String>,
    /// Declared geometry type.
    pub kind: GeometryKind,
    /// z flag of gpkg_geometry_columns (0 prohibited, 1 mandatory, 2 optional).
    pub z: u8,
    /// m flag.
    pub m: u8,
    /// srs_id of the geometry column.
    pub srs_id: i32,
    /// Attribute columns (without fid and geometry), in table order.
    pub columns: Vec<Column>,
    /// gpkg_contents.identifier.
    pub identifier: Option<String>,
    /// gpkg_contents.description.
    pub description: Option<String>,
    /// gpkg_contents bounds in the layer's CRS.
    pub bounds: Option<Bbox>,
}

#[cfg(test)]
impl LayerDef {
    /// A point layer `t` in EPSG:3857 with `(name, declared type)` columns, for unit tests.
    pub(crate) fn for_test(columns: &[(&str, &str)]) -> LayerDef {
        LayerDef {
            table: "t".into(),
            geom_column: "geom".into(),
            fid_column: Some("fid".into()),
            kind: crate::geom::GeometryKind::Point,
            z: 0,
            m: 0,
            srs_id: 3857,
            columns: columns
                .iter()
                .map(|(name, ty)| Column::nullable(name, ty))
                .collect(),
            identifier: None,
            description: None,
            bounds: None,
        }
    }
}

impl LayerDef {
    /// Whether the table has a geometry column (`gpkg_contents.data_type = 'features'`).
    pub fn has_geometry(&self) -> bool {
        !self.geom_column.is_empty()
    }

    /// The geometry column for a SELECT list: the quoted column, or NULL for an
    /// attributes-only table.
    pub fn geom_select(&self) -> String {
        if self.has_geometry() {
            q(&self.geom_column)
        } else {
            "NULL".into()
        }
    }

    /// The geometry column, when the table has one, for INSERT and UPDATE lists.
    pub fn geom_target(&self) -> Option<String> {
        self.has_geometry().then(|| q(&self.geom_column))
    }

    /// Whether two definitions describe the same table layout (the extent, which every
    /// edit may change, is left out).
    pub fn same_shape(&self, o: &LayerDef) -> bool {
        self.table == o.table
            && self.geom_column == o.geom_column
            && self.fid_column == o.fid_column
            && self.kind == o.kind
            && (self.z, self.m, self.srs_id) == (o.z, o.m, o.srs_id)
            && self.columns == o.columns
    }
}

/// A row of gpkg_spatial_ref_sys.
#[derive(Debug, Clone, PartialEq)]
pub struct SrsRow {
    /// srs_id.
    pub srs_id: i32,
    /// srs_name.
    pub name: String,
    /// organization (e.g. EPSG).
    pub organization: String,
    /// organization_coordsys_id.
    pub code: i32,
    /// WKT definition.
    pub definition: String,
}

impl SrsRow {
    /// The EPSG code this row stands for, when the organization is EPSG.
    pub fn epsg(&self) -> Option<i32> {
        self.organization
            .eq_ignore_ascii_case("EPSG")
            .then_some(self.code)
    }
}

/// Reads one gpkg_spatial_ref_sys row.
pub fn srs_row(conn: &Connection, srs_id: i32) -> rusqlite::Result<Option<SrsRow>> {
    conn.query_row(
        "SELECT srs_id, srs_name, organization, organization_coordsys_id, definition
         FROM gpkg_spatial_ref_sys WHERE srs_id = ?1",
        [srs_id],
        |r| {
            Ok(SrsRow {
                srs_id: r.get(0)?,
                name: r.get(1)?,
                organization: r.get(2)?,
                code: r.get(3)?,
                definition: r.get(4)?,
            })
        },
    )
    .optional()
}

/// Makes the store's CRS ids known to the CRS module: a row of another organization
/// (or an EPSG row under another srs_id) stands for its definition.
pub fn define_crs(conn: &Connection, defs: &[LayerDef]) -> rusqlite::Result<()> {
    let mut ids: Vec<i32> = defs.iter().map(|d| d.srs_id).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let Some(row) = srs_row(conn, id)? else {
            continue;
        };
        let defined = match row.epsg() {
            Some(code) if code == id => continue,
            Some(code) => crate::crs::Defined {
                name: row.name,
                definition: format!("EPSG:{code}"),
                epsg: Some(code),
            },
            None if id <= 0 || row.definition.trim().eq_ignore_ascii_case("undefined") => continue,
            None => crate::crs::Defined {
                name: row.name,
                definition: row.definition.trim().to_string(),
                epsg: None,
            },
        };
        if let Err(e) = crate::crs::define(id, defined) {
            tracing::warn!("srs_id {id}: {e}");
        }
    }
    Ok(())
}

/// Lists the feature layers of a GeoPackage in gpkg_contents order.
pub fn feature_layers(conn: &Connection) -> rusqlite::Result<Vec<LayerDef>> {
    // Attributes-only tables are layers without geometry; the tables other software
    // keeps there (QGIS's layer_styles, nordgeo's own) are not.
    let mut stmt = conn.prepare(
        "SELECT c.table_name, coalesce(g.column_name, ''), coalesce(g.geometry_type_name, 'GEOMETRY'),
                coalesce(g.z, 0), coalesce(g.m, 0), coalesce(g.srs_id, 4326),
                c.identifier, c.description, c.min_x, c.min_y, c.max_x, c.max_y
         FROM gpkg_contents c LEFT JOIN gpkg_geometry_columns g ON g.table_name = c.table_name
         WHERE (c.data_type = 'features' AND g.table_name IS NOT NULL)
            OR (c.data_type = 'attributes' AND substr(c.table_name, 1, 8) <> 'nordgeo_'
                AND substr(c.table_name, 1, 5) <> 'gpkg_'
                AND c.table_name NOT IN ('layer_styles', 'qgis_projects'))
         ORDER BY c.rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        let b: [Option<f64>; 4] = [r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?];
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i32>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, Option<String>>(7)?,
            match b {
                [Some(a), Some(b), Some(c), Some(d)] => Some([a, b, c, d]),
                _ => None,
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (table, geom_column, type_name, z, m, srs_id, identifier, description, bounds) = row?;
        let (fid_column, columns) = table_columns(conn, &table, &geom_column)?;
        out.push(LayerDef {
            kind: GeometryKind::from_gpkg_name(&type_name).unwrap_or(GeometryKind::Geometry),
            table,
            geom_column,
            fid_column,
            z: z.clamp(0, 2) as u8,
            m: m.clamp(0, 2) as u8,
            srs_id,
            columns,
            identifier,
            description,
            bounds,
        });
    }
    Ok(out)
}

/// The INTEGER PRIMARY KEY column and the attribute columns of a table.
fn table_columns(
    conn: &Connection,
    table: &str,
    geom_column: &str,
) -> rusqlite::Result<(Option<String>, Vec<Column>)> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", q(table)))?;
    let cols: Vec<(String, String, bool, i64)> = stmt
        .query_map([], |r| {
            Ok((r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0, r.get(5)?))
        })?
        .collect::<Result<_, _>>()?;
    let pks = cols.iter().filter(|c| c.3 > 0).count();
    let fid = cols
        .iter()
        .find(|c| pks == 1 && c.3 == 1 && c.1.eq_ignore_ascii_case("INTEGER"))
        .map(|c| c.0.clone());
    let columns = cols
        .into_iter()
        .filter(|c| Some(&c.0) != fid.as_ref() && !c.0.eq_ignore_ascii_case(geom_column))
        .map(|(name, decl_type, not_null, _)| Column {
            name,
            decl_type: if decl_type.is_empty() {
                "TEXT".into()
            } else {
                decl_type
            },
            not_null,
        })
        .collect();
    Ok((fid, columns))
}

/// Whether a name is safe as a table or column name we create (letters, digits, '_').
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.to_ascii_lowercase().starts_with("gpkg")
        && !name.to_ascii_lowercase().starts_with("rtree_")
        && !name.to_ascii_lowercase().starts_with("nordgeo_")
        && !name.to_ascii_lowercase().starts_with("sqlite")
}

/// Whether a declared column type is one GeoPackage allows (so it can be copied into DDL).
pub fn valid_decl_type(t: &str) -> bool {
    let u = t.trim().to_ascii_uppercase();
    let (base, arg) = match u.split_once('(') {
        Some((b, rest)) => (b.trim(), Some(rest)),
        None => (u.as_str(), None),
    };
    let arg_ok = arg.is_none_or(|a| {
        a.strip_suffix(')')
            .is_some_and(|n| !n.is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()))
    });
    arg_ok
        && matches!(
            base,
            "BOOLEAN"
                | "TINYINT"
                | "SMALLINT"
                | "MEDIUMINT"
                | "INT"
                | "INTEGER"
                | "FLOAT"
                | "DOUBLE"
                | "REAL"
                | "TEXT"
                | "BLOB"
                | "DATE"
                | "DATETIME"
        )
}

/// Creates an empty feature table and registers it (contents, geometry column, R-tree
/// table and extension row). The R-tree triggers are added by [`create_rtree_triggers`]
/// after any bulk load, as GDAL does, because per-row triggers make bulk loads slow.
pub fn create_feature_table(conn: &Connection, def: &LayerDef) -> rusqlite::Result<()> {
    let fid = def.fid_column.as_deref().unwrap_or("fid");
    let mut ddl = format!(
        "CREATE TABLE {} ({} INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
        q(&def.table),
        q(fid),
    );
    if def.has_geometry() {
        ddl.push_str(&format!(
            ", {} {}",
            q(&def.geom_column),
            def.kind.gpkg_name()
        ));
    }
    for c in &def.columns {
        ddl.push_str(&format!(", {} {}", q(&c.name), c.decl_type));
        if c.not_null {
            ddl.push_str(" NOT NULL");
        }
    }
    ddl.push(')');
    conn.execute_batch(&ddl)?;
    if !def.has_geometry() {
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description)
             VALUES (?1, 'attributes', ?2, ?3)",
            params![
                def.table,
                def.identifier.as_deref().unwrap_or(&def.table),
                def.description.as_deref().unwrap_or(""),
            ],
        )?;
        return Ok(());
    }
    conn.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id)
         VALUES (?1, 'features', ?2, ?3, ?4)",
        params![
            def.table,
            def.identifier.as_deref().unwrap_or(&def.table),
            def.description.as_deref().unwrap_or(""),
            def.srs_id
        ],
    )?;
    conn.execute(
        "INSERT INTO gpkg_geometry_columns (table_name, column_name, geometry_type_name, srs_id, z, m)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![def.table, def.geom_column, def.kind.gpkg_name(), def.srs_id, def.z, def.m],
    )?;
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE {} USING rtree(id, minx, maxx, miny, maxy)",
        q(&rtree_name(def))
    ))?;
    conn.execute(
        "INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope)
         VALUES (?1, ?2, 'gpkg_rtree_index', 'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
        params![def.table, def.geom_column],
    )?;
    register_geometry_types(conn, def, [])
}

/// Registers the GeoPackage geometry-types extension for each curve type a layer's
/// column declares or holds (GeoPackage 1.4, annex F.1), so other software knows them.
pub fn register_geometry_types<'a>(
    conn: &Connection,
    def: &LayerDef,
    names: impl IntoIterator<Item = &'a str>,
) -> rusqlite::Result<()> {
    if !def.has_geometry() {
        return Ok(());
    }
    let mut all: Vec<&str> = names.into_iter().collect();
    if def.kind.is_curve() {
        all.push(def.kind.gpkg_name());
    }
    for n in all {
        conn.execute(
            "INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope)
             SELECT ?1, ?2, ?3, 'http://www.geopackage.org/spec/#extension_geometry_types', 'read-write'
             WHERE NOT EXISTS (SELECT 1 FROM gpkg_extensions WHERE table_name = ?1 AND column_name = ?2 AND extension_name = ?3)",
            params![def.table, def.geom_column, format!("gpkg_geom_{n}")],
        )?;
    }
    Ok(())
}

/// Most features whose R-tree is packed in memory (about 40 bytes each); beyond, boxes
/// are inserted one by one and memory stays flat.
const PACKED_RTREE_MAX: i64 = 5_000_000;

/// The R-tree table name of a layer.
pub fn rtree_name(def: &LayerDef) -> String {
    format!("rtree_{}_{}", def.table, def.geom_column)
}

/// Fills the R-tree from the table in one statement (after a bulk load).
pub fn load_rtree(conn: &Connection, def: &LayerDef) -> rusqlite::Result<()> {
    if !def.has_geometry() {
        return Ok(());
    }
    let (t, c, i) = names(def);
    let rt = rtree_name(def);
    let empty: bool = conn.query_row(
        &format!("SELECT NOT EXISTS (SELECT 1 FROM {})", q(&rt)),
        [],
        |r| r.get(0),
    )?;
    let rows: i64 = conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?;
    if empty && rows <= PACKED_RTREE_MAX {
        let mut st = conn.prepare(&format!("SELECT {i}, {c} FROM {t} WHERE {c} NOT NULL"))?;
        let mut entries = Vec::with_capacity(rows as usize);
        let mut it = st.query([])?;
        while let Some(r) = it.next()? {
            if let rusqlite::types::ValueRef::Blob(b) = r.get_ref(1)?
                && let Some(e) = crate::geom::gpkg::envelope(b)
            {
                entries.push((r.get::<_, i64>(0)?, e));
            }
        }
        return super::packed_rtree::load(conn, &rt, entries);
    }
    conn.execute_batch(&format!(
        "INSERT OR REPLACE INTO {rt} SELECT {i}, ST_MinX({c}), ST_MaxX({c}), ST_MinY({c}), ST_MaxY({c})
         FROM {t} WHERE {c} NOT NULL AND NOT ST_IsEmpty({c})",
        rt = q(&rtree_name(def))
    ))
}

fn names(def: &LayerDef) -> (String, String, String) {
    (
        q(&def.table),
        q(&def.geom_column),
        q(def.fid_column.as_deref().unwrap_or("fid")),
    )
}

const TRIGGERS: [&str; 7] = [
    "insert", "update2", "update4", "update5", "update6", "update7", "delete",
];

/// Drops the R-tree triggers (before a bulk rewrite of a layer).
pub fn drop_rtree_triggers(conn: &Connection, def: &LayerDef) -> rusqlite::Result<()> {
    if !def.has_geometry() {
        return Ok(());
    }
    for t in TRIGGERS {
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {}",
            q(&format!("{}_{t}", rtree_name(def)))
        ))?;
    }
    Ok(())
}

/// Creates the GeoPackage 1.4 R-tree trigger set.
pub fn create_rtree_triggers(conn: &Connection, def: &LayerDef) -> rusqlite::Result<()> {
    if !def.has_geometry() {
        return Ok(());
    }
    let (t, c, i) = names(def);
    let rt = rtree_name(def);
    let tr = |n: &str| q(&format!("{rt}_{n}"));
    let rt = q(&rt);
    let set =
        format!("NEW.{i}, ST_MinX(NEW.{c}), ST_MaxX(NEW.{c}), ST_MinY(NEW.{c}), ST_MaxY(NEW.{c})");
    conn.execute_batch(&format!(
        "CREATE TRIGGER {ins} AFTER INSERT ON {t}
           WHEN (new.{c} NOT NULL AND NOT ST_IsEmpty(NEW.{c}))
         BEGIN INSERT OR REPLACE INTO {rt} VALUES ({set}); END;
         CREATE TRIGGER {u2} AFTER UPDATE OF {c} ON {t}
           WHEN OLD.{i} = NEW.{i} AND (NEW.{c} ISNULL OR ST_IsEmpty(NEW.{c}))
         BEGIN DELETE FROM {rt} WHERE id = OLD.{i}; END;
         CREATE TRIGGER {u4} AFTER UPDATE ON {t}
           WHEN OLD.{i} != NEW.{i} AND (NEW.{c} ISNULL OR ST_IsEmpty(NEW.{c}))
         BEGIN DELETE FROM {rt} WHERE id IN (OLD.{i}, NEW.{i}); END;
         CREATE TRIGGER {u5} AFTER UPDATE ON {t}
           WHEN OLD.{i} != NEW.{i} AND (NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c}))
         BEGIN DELETE FROM {rt} WHERE id = OLD.{i}; INSERT OR REPLACE INTO {rt} VALUES ({set}); END;
         CREATE TRIGGER {u6} AFTER UPDATE OF {c} ON {t}
           WHEN OLD.{i} = NEW.{i} AND (NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c}))
                AND (OLD.{c} NOTNULL AND NOT ST_IsEmpty(OLD.{c}))
         BEGIN UPDATE {rt} SET minx = ST_MinX(NEW.{c}), maxx = ST_MaxX(NEW.{c}),
                               miny = ST_MinY(NEW.{c}), maxy = ST_MaxY(NEW.{c})
               WHERE id = NEW.{i}; END;
         CREATE TRIGGER {u7} AFTER UPDATE OF {c} ON {t}
           WHEN OLD.{i} = NEW.{i} AND (NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c}))
                AND (OLD.{c} ISNULL OR ST_IsEmpty(OLD.{c}))
         BEGIN INSERT INTO {rt} VALUES ({set}); END;
         CREATE TRIGGER {del} AFTER DELETE ON {t} WHEN old.{c} NOT NULL
         BEGIN DELETE FROM {rt} WHERE id = OLD.{i}; END;",
        ins = tr("insert"),
        u2 = tr("update2"),
        u4 = tr("update4"),
        u5 = tr("update5"),
        u6 = tr("update6"),
        u7 = tr("update7"),
        del = tr("delete"),
    ))
}

/// Recomputes a layer's exact extent from its geometries and writes it to gpkg_contents.
pub fn refresh_contents(conn: &Connection, def: &LayerDef) -> rusqlite::Result<Option<Bbox>> {
    if !def.has_geometry() {
        return Ok(None);
    }
    let (t, c, _) = names(def);
    let b: [Option<f64>; 4] = conn.query_row(
        &format!(
            "SELECT min(ST_MinX({c})), min(ST_MinY({c})), max(ST_MaxX({c})), max(ST_MaxY({c})) FROM {t}"
        ),
        [],
        |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
    )?;
    let bounds = match b {
        [Some(a), Some(b), Some(c), Some(d)] => Some([a, b, c, d]),
        _ => None,
    };
    let [x0, y0, x1, y1] = bounds.map_or([None; 4], |b| b.map(Some));
    conn.execute(
        "UPDATE gpkg_contents SET min_x = ?2, min_y = ?3, max_x = ?4, max_y = ?5,
                last_change = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE table_name = ?1",
        params![def.table, x0, y0, x1, y1],
    )?;
    Ok(bounds)
}

/// Adds an attribute column to an existing layer.
pub fn add_column(conn: &Connection, table: &str, col: &Column) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        q(table),
        q(&col.name),
        col.decl_type
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        assert!(valid_name("trails"));
        assert!(valid_name("_x1"));
        assert!(!valid_name("parcels\"; DROP TABLE gpkg_contents; --"));
        assert!(!valid_name("gpkg_contents"));
        assert!(!valid_name("1abc"));
        assert!(valid_decl_type("TEXT(80)"));
        assert!(valid_decl_type("datetime"));
        assert!(!valid_decl_type("TEXT); DROP TABLE x; --"));
    }
}
