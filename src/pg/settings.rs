//! Layer settings in a PostGIS store (`nordgeo_layers`, the GeoPackage store's columns
//! plus where a published table is), written in one transaction that the capture sees.

use super::layers::{Candidate, valid_ident};
use super::{PgError, PgStore};
use crate::store::LayerMeta;

/// A layer's settings (defaults when none were stored).
pub fn meta(store: &mut PgStore, table: &str) -> Result<LayerMeta, PgError> {
    let registry = store.table("nordgeo_layers");
    if !store.has_table("nordgeo_layers")? {
        return Ok(LayerMeta::default());
    }
    let row = store
        .client()
        .query_opt(
            &format!(
                "SELECT title, description, attribution, municipality_column, public_properties,
                        internal_properties, min_zoom, max_zoom, restricted, boundaries,
                        boundary_margin_m, key_columns, rules
                 FROM {registry} WHERE table_name = $1"
            ),
            &[&table],
        )
        .map_err(|e| store.err(e))?;
    let Some(r) = row else {
        return Ok(LayerMeta::default());
    };
    let list = |s: Option<String>| -> Option<Vec<String>> {
        s.and_then(|s| serde_json::from_str::<Vec<String>>(&s).ok())
    };
    Ok(LayerMeta {
        title: r.get(0),
        description: r.get(1),
        attribution: r.get(2),
        municipality_column: r.get(3),
        public_properties: list(r.get(4)),
        internal_properties: list(r.get(5)).unwrap_or_default(),
        min_zoom: r.get::<_, Option<i32>>(6).map(|z| z.clamp(0, 24) as u8),
        max_zoom: r.get::<_, Option<i32>>(7).map(|z| z.clamp(0, 24) as u8),
        restricted: r.get(8),
        boundaries: r.get(9),
        boundary_margin_m: r.get(10),
        key: list(r.get(11)).filter(|k| !k.is_empty()),
        rules: list(r.get(12)).unwrap_or_default(),
    })
}

/// Writes a layer's settings and, for a published table, where it is.
pub fn write(
    store: &mut PgStore,
    table: &str,
    m: &LayerMeta,
    source: Option<&Candidate>,
) -> Result<(), PgError> {
    let registry = store.table("nordgeo_layers");
    let json = |v: &Option<Vec<String>>| v.as_ref().and_then(|v| serde_json::to_string(v).ok());
    let internal = serde_json::to_string(&m.internal_properties).ok();
    let rules = serde_json::to_string(&m.rules).ok();
    let (min_zoom, max_zoom) = (m.min_zoom.map(i32::from), m.max_zoom.map(i32::from));
    let (public, key) = (json(&m.public_properties), json(&m.key));
    let (src_schema, src_table, fid, geom) = match source {
        Some(c) => (
            Some(c.schema.clone()),
            Some(c.table.clone()),
            c.fid.clone(),
            c.geom.clone(),
        ),
        None => (None, None, None, None),
    };
    let sql = format!(
        "INSERT INTO {registry} (table_name, title, description, attribution, municipality_column,
             public_properties, internal_properties, min_zoom, max_zoom, restricted, boundaries,
             boundary_margin_m, key_columns, rules, source_schema, source_table, fid_column, geom_column)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (table_name) DO UPDATE SET title = EXCLUDED.title, description = EXCLUDED.description,
             attribution = EXCLUDED.attribution, municipality_column = EXCLUDED.municipality_column,
             public_properties = EXCLUDED.public_properties, internal_properties = EXCLUDED.internal_properties,
             min_zoom = EXCLUDED.min_zoom, max_zoom = EXCLUDED.max_zoom, restricted = EXCLUDED.restricted,
             boundaries = EXCLUDED.boundaries, boundary_margin_m = EXCLUDED.boundary_margin_m,
             key_columns = EXCLUDED.key_columns, rules = EXCLUDED.rules,
             source_schema = coalesce(EXCLUDED.source_schema, {registry}.source_schema),
             source_table = coalesce(EXCLUDED.source_table, {registry}.source_table),
             fid_column = coalesce(EXCLUDED.fid_column, {registry}.fid_column),
             geom_column = coalesce(EXCLUDED.geom_column, {registry}.geom_column)"
    );
    store
        .client()
        .execute(
            &sql,
            &[
                &table,
                &m.title,
                &m.description,
                &m.attribution,
                &m.municipality_column,
                &public,
                &internal,
                &min_zoom,
                &max_zoom,
                &m.restricted,
                &m.boundaries,
                &m.boundary_margin_m,
                &key,
                &rules,
                &src_schema,
                &src_table,
                &fid,
                &geom,
            ],
        )
        .map(|_| ())
        .map_err(|e| store.err(e))
}

/// The municipalities named in the boundary layer (the layer whose settings name a
/// `boundaries` column), sorted; none without one.
pub fn municipalities(store: &mut PgStore) -> Result<Vec<String>, PgError> {
    for (def, rel) in super::layers::list(store)? {
        let Some(col) = meta(store, &def.table)?.boundaries else {
            continue;
        };
        let c = super::layers::q(&col);
        let rows = store
            .client()
            .query(
                &format!(
                    "SELECT DISTINCT {c}::text FROM {} WHERE {c} IS NOT NULL ORDER BY 1",
                    rel.qualified()
                ),
                &[],
            )
            .map_err(|e| store.err(e))?;
        return Ok(rows.into_iter().map(|r| r.get(0)).collect());
    }
    Ok(Vec::new())
}

/// Parses `schema.table` (or `table` in the store's schema) for `--source`.
pub fn parse_source(
    store: &PgStore,
    layer: &str,
    s: &str,
    fid: Option<String>,
    geom: Option<String>,
) -> Result<Candidate, PgError> {
    let (schema, table) = match s.split_once('.') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (store.schema().to_string(), s.to_string()),
    };
    for part in [&schema, &table] {
        if !valid_ident(part) {
            return Err(PgError::Invalid(format!(
                "--source {s}: write SCHEMA.TABLE with letters, digits and _ only"
            )));
        }
    }
    if !valid_ident(layer) {
        return Err(PgError::Invalid(format!(
            "layer name '{layer}': use letters, digits and _ only"
        )));
    }
    Ok(Candidate {
        name: layer.to_string(),
        schema,
        table,
        fid,
        geom,
    })
}
