//! Which tables are layers, and how each is read: every table with a geometry column in
//! the store's schema, and tables elsewhere published with `set-layer --source`.

use postgres::types::ToSql;

use super::{PgError, PgStore};
use crate::geom::GeometryKind;
use crate::store::{Column, LayerDef};

pub use crate::store::layer::q;

/// The table a layer reads and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// Schema of the table.
    pub schema: String,
    /// Table (or view) name.
    pub table: String,
    /// The integer key column that serves as fid.
    pub fid: String,
    /// The geometry column (empty: attributes only).
    pub geom: String,
    /// One SELECT expression per attribute column, in the layer's column order.
    pub select: Vec<String>,
    /// Each attribute column's PostgreSQL type (writes cast their values to it).
    pub types: Vec<String>,
    /// The table's object id (orders layers by creation, as a GeoPackage orders by import).
    pub oid: u32,
}

impl Relation {
    /// `"schema"."table"`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", q(&self.schema), q(&self.table))
    }

    /// What a row is read as: its geometry as ISO WKB (NULL without one), then the
    /// attribute expressions.
    pub fn read_columns(&self) -> Vec<String> {
        let geom = if self.geom.is_empty() {
            "NULL::bytea".to_string()
        } else {
            format!("ST_AsBinary({})", q(&self.geom))
        };
        std::iter::once(geom)
            .chain(self.select.iter().cloned())
            .collect()
    }
}

/// The layer called `name` and how its table is read.
pub fn find(store: &mut PgStore, name: &str) -> Result<(LayerDef, Relation), PgError> {
    list(store)?
        .into_iter()
        .find(|(d, _)| d.table == name)
        .ok_or_else(|| PgError::NoSuchLayer(name.into()))
}

/// Whether a name can be a PostgreSQL identifier nordgeo writes without surprises.
pub fn valid_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

/// A table to be published as a layer: (layer name, schema, table, fid, geometry).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The layer's name (the collection id).
    pub name: String,
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// The fid column, when not the primary key.
    pub fid: Option<String>,
    /// The geometry column, when not the first.
    pub geom: Option<String>,
}

/// Every layer of the store with its table, in creation order of the tables.
pub fn list(store: &mut PgStore) -> Result<Vec<(LayerDef, Relation)>, PgError> {
    let mut out = Vec::new();
    for c in candidates(store)? {
        match describe(store, &c) {
            Ok(Some(found)) => out.push(found),
            Ok(None) => {}
            Err(PgError::Invalid(why)) => tracing::warn!(layer = %c.name, "{why}; not served"),
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|(_, r)| r.oid);
    define_crs(store, &out)?;
    Ok(out)
}

/// The table of one layer (`None`: no such layer), without describing the others.
pub fn relation_of(store: &mut PgStore, layer: &str) -> Result<Option<Relation>, PgError> {
    let Some(c) = candidates(store)?.into_iter().find(|c| c.name == layer) else {
        return Ok(None);
    };
    Ok(describe(store, &c)?.map(|(_, r)| r))
}

/// Registered sources first (they win over a same-named table of the schema), then the
/// schema's own tables with a geometry column.
fn candidates(store: &mut PgStore) -> Result<Vec<Candidate>, PgError> {
    let schema = store.schema().to_string();
    let mut out: Vec<Candidate> = Vec::new();
    let registry = store.table("nordgeo_layers");
    let has_registry = store
        .client()
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&registry])
        .map_err(|e| store.err(e))?
        .get::<_, bool>(0);
    if has_registry {
        let rows = store
            .client()
            .query(
                &format!(
                    "SELECT table_name, source_schema, source_table, fid_column, geom_column
                     FROM {registry} WHERE source_table IS NOT NULL"
                ),
                &[],
            )
            .map_err(|e| store.err(e))?;
        for r in rows {
            out.push(Candidate {
                name: r.get(0),
                schema: r
                    .get::<_, Option<String>>(1)
                    .unwrap_or_else(|| schema.clone()),
                table: r.get(2),
                fid: r.get(3),
                geom: r.get(4),
            });
        }
    }
    let rows = store
        .client()
        .query(
            "SELECT DISTINCT f_table_name::text FROM geometry_columns
             WHERE f_table_schema = $1 AND f_table_name NOT LIKE 'nordgeo\\_%'",
            &[&schema],
        )
        .map_err(|e| store.err(e))?;
    for r in rows {
        let table: String = r.get(0);
        if out.iter().any(|c| c.name == table) {
            continue;
        }
        // Settings may name the key or geometry column of a table of the schema too.
        out.push(Candidate {
            name: table.clone(),
            schema: schema.clone(),
            table,
            fid: None,
            geom: None,
        });
    }
    if has_registry {
        let rows = store
            .client()
            .query(
                &format!(
                    "SELECT table_name, fid_column, geom_column FROM {registry}
                     WHERE source_table IS NULL AND (fid_column IS NOT NULL OR geom_column IS NOT NULL)"
                ),
                &[],
            )
            .map_err(|e| store.err(e))?;
        for r in rows {
            let name: String = r.get(0);
            if let Some(c) = out.iter_mut().find(|c| c.name == name) {
                c.fid = r.get(1);
                c.geom = r.get(2);
            }
        }
    }
    Ok(out)
}

/// The layer definition and relation of a candidate; `None` when its table is gone.
pub fn describe(
    store: &mut PgStore,
    c: &Candidate,
) -> Result<Option<(LayerDef, Relation)>, PgError> {
    let qualified = format!("{}.{}", q(&c.schema), q(&c.table));
    let oid: Option<u32> = store
        .client()
        .query_one("SELECT to_regclass($1)::oid", &[&qualified])
        .map_err(|e| store.err(e))?
        .get(0);
    let Some(oid) = oid else {
        tracing::warn!(layer = %c.name, "table {}.{} does not exist; the layer is not served", c.schema, c.table);
        return Ok(None);
    };
    let geoms = store
        .client()
        .query(
            "SELECT f_geometry_column::text, coord_dimension, srid, type FROM geometry_columns
             WHERE f_table_schema = $1 AND f_table_name = $2 ORDER BY f_geometry_column",
            &[&c.schema, &c.table],
        )
        .map_err(|e| store.err(e))?;
    let geom = match &c.geom {
        Some(g) => Some(
            geoms
                .iter()
                .find(|r| r.get::<_, String>(0) == *g)
                .ok_or_else(|| {
                    PgError::Invalid(format!(
                        "{}.{} has no geometry column '{g}'",
                        c.schema, c.table
                    ))
                })?,
        ),
        None => geoms.first(),
    };
    let (geom_column, dims, srid, type_name) = match geom {
        Some(r) => (
            r.get::<_, String>(0),
            r.get::<_, i32>(1),
            r.get::<_, i32>(2),
            r.get::<_, String>(3),
        ),
        None => (String::new(), 2, 0, "GEOMETRY".to_string()),
    };
    let params: [&(dyn ToSql + Sync); 1] = [&oid];
    let attrs = store
        .client()
        .query(
            "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod),
                    a.attnotnull, coalesce(i.indisprimary, false)
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
                                  AND i.indnatts = 1 AND i.indkey[0] = a.attnum
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            &params,
        )
        .map_err(|e| store.err(e))?;
    let is_int = |t: &str| matches!(t, "int2" | "int4" | "int8");
    let fid = match &c.fid {
        Some(f) => {
            let ok = attrs
                .iter()
                .any(|r| r.get::<_, String>(0) == *f && is_int(&r.get::<_, String>(1)));
            if !ok {
                return Err(PgError::Invalid(format!(
                    "{}.{} has no integer column '{f}' for --fid",
                    c.schema, c.table
                )));
            }
            f.clone()
        }
        None => attrs
            .iter()
            .find(|r| r.get::<_, bool>(4) && is_int(&r.get::<_, String>(1)))
            .map(|r| r.get::<_, String>(0))
            .ok_or_else(|| {
                PgError::Invalid(format!(
                    "{}.{} has no integer primary key; publish it with `nordgeo set-layer {} --source {}.{} --fid COLUMN` naming a unique integer column",
                    c.schema, c.table, c.name, c.schema, c.table
                ))
            })?,
    };
    let mut columns = Vec::new();
    let mut select = Vec::new();
    let mut types = Vec::new();
    for r in &attrs {
        let name: String = r.get(0);
        let typname: String = r.get(1);
        if name == fid || matches!(typname.as_str(), "geometry" | "geography" | "raster") {
            continue;
        }
        let formatted: String = r.get(2);
        let (decl_type, expr) = column_type(&name, &typname, &formatted);
        types.push(formatted);
        columns.push(Column {
            name,
            decl_type,
            not_null: r.get(3),
        });
        select.push(expr);
    }
    let upper = type_name.to_ascii_uppercase();
    // PostGIS writes a measured type with a trailing M (POINTM), a Z type as plain.
    let measured = upper.ends_with('M') && GeometryKind::from_gpkg_name(&upper).is_none();
    let kind = GeometryKind::from_gpkg_name(&upper)
        .or_else(|| GeometryKind::from_gpkg_name(upper.trim_end_matches('M')))
        .unwrap_or(GeometryKind::Geometry);
    let z = u8::from(dims >= 4 || (dims == 3 && !measured));
    let def = LayerDef {
        table: c.name.clone(),
        geom_column: geom_column.clone(),
        fid_column: Some(fid.clone()),
        kind,
        z,
        m: u8::from(measured || dims >= 4),
        srs_id: srid,
        columns,
        identifier: None,
        description: None,
        bounds: None,
    };
    let rel = Relation {
        schema: c.schema.clone(),
        table: c.table.clone(),
        fid,
        geom: geom_column,
        select,
        types,
        oid,
    };
    Ok(Some((def, rel)))
}

/// The declared type nordgeo's checks and encoders use for a PostgreSQL column, and the
/// expression reading it as one of the values a GeoPackage holds (integer, real, text,
/// blob): booleans as 0/1, dates and times as GeoPackage text.
fn column_type(name: &str, typname: &str, formatted: &str) -> (String, String) {
    let c = q(name);
    match typname {
        "int2" | "int4" | "int8" => ("INTEGER".into(), format!("{c}::int8")),
        "bool" => ("BOOLEAN".into(), format!("{c}::int4::int8")),
        "float4" | "float8" | "numeric" => ("DOUBLE".into(), format!("{c}::float8")),
        "date" => ("DATE".into(), format!("to_char({c}, 'YYYY-MM-DD')")),
        "timestamptz" => (
            "DATETIME".into(),
            format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"),
        ),
        "timestamp" => (
            "DATETIME".into(),
            format!("to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"),
        ),
        "bytea" => ("BLOB".into(), c),
        "varchar" | "bpchar" => {
            let len = formatted
                .split_once('(')
                .and_then(|(_, r)| r.trim_end_matches(')').parse::<u32>().ok());
            match len {
                Some(n) => (format!("TEXT({n})"), format!("{c}::text")),
                None => ("TEXT".into(), format!("{c}::text")),
            }
        }
        _ => ("TEXT".into(), format!("{c}::text")),
    }
}

/// Makes SRIDs that are not EPSG codes known by their definition.
fn define_crs(store: &mut PgStore, layers: &[(LayerDef, Relation)]) -> Result<(), PgError> {
    let mut ids: Vec<i32> = layers
        .iter()
        .filter(|(d, _)| d.has_geometry() && d.srs_id > 0)
        .map(|(d, _)| d.srs_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let row = store
            .client()
            .query_opt(
                "SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys WHERE srid = $1",
                &[&id],
            )
            .map_err(|e| store.err(e))?;
        let Some(row) = row else { continue };
        let auth: Option<String> = row.get(0);
        let code: Option<i32> = row.get(1);
        let wkt: Option<String> = row.get(2);
        let defined = match (auth.as_deref(), code) {
            (Some(a), Some(code)) if a.eq_ignore_ascii_case("EPSG") => {
                if code == id {
                    continue;
                }
                crate::crs::Defined {
                    name: format!("EPSG:{code}"),
                    definition: format!("EPSG:{code}"),
                    epsg: Some(code),
                }
            }
            _ => match wkt {
                Some(w) if !w.trim().is_empty() => crate::crs::Defined {
                    name: format!("SRID {id}"),
                    definition: w,
                    epsg: None,
                },
                _ => continue,
            },
        };
        if let Err(e) = crate::crs::define(id, defined) {
            tracing::warn!("srid {id}: {e}");
        }
    }
    Ok(())
}

/// The PostgreSQL type of a GeoPackage column.
pub fn pg_type(class: crate::store::layer::ValueClass, decl: &str) -> String {
    use crate::store::layer::ValueClass;
    let upper = decl.to_ascii_uppercase();
    match class {
        ValueClass::Integer => "bigint".into(),
        ValueClass::Boolean => "boolean".into(),
        ValueClass::Real => "double precision".into(),
        ValueClass::Blob => "bytea".into(),
        ValueClass::Text if upper == "DATE" => "date".into(),
        ValueClass::Text if upper == "DATETIME" => "timestamptz".into(),
        ValueClass::Text => match upper
            .strip_prefix("TEXT(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.parse::<u32>().ok())
        {
            Some(n) if n > 0 => format!("varchar({n})"),
            _ => "text".into(),
        },
    }
}
