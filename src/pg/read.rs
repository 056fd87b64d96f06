//! Reading a layer's rows as the index's features (values as a GeoPackage holds them,
//! geometry from its ISO WKB, in the layer's CRS).

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use rusqlite::types::Value;

use super::layers::Relation;
use super::{PgError, PgStore};
use crate::index::Feature;
use crate::store::LayerDef;
use crate::store::layer::ValueClass;

/// Features in fid order: all, or those with the given fids.
pub fn features(
    store: &mut PgStore,
    def: &LayerDef,
    rel: &Relation,
    fids: Option<&[i64]>,
) -> Result<Vec<Feature>, PgError> {
    let fid = super::layers::q(&rel.fid);
    let mut cols = vec![format!("{fid}::int8")];
    cols.extend(rel.read_columns());
    let filter = if fids.is_some() {
        format!(" WHERE {fid} = ANY($1::int8[])")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {} FROM {}{filter} ORDER BY {fid}",
        cols.join(", "),
        rel.qualified()
    );
    let list: Vec<i64> = fids.map(<[i64]>::to_vec).unwrap_or_default();
    let params: Vec<&(dyn ToSql + Sync)> = if fids.is_some() {
        vec![&list]
    } else {
        Vec::new()
    };
    let classes: Vec<ValueClass> = def.columns.iter().map(|c| c.class()).collect();
    let mut out = Vec::new();
    let at = store.at().to_string();
    let mut rows = store
        .client()
        .query_raw(&sql, params)
        .map_err(|e| super::error_at(&at, e))?;
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => return Err(super::error_at(&at, e)),
        };
        let fid: i64 = row.try_get(0).unwrap_or_default();
        let wkb: Option<&[u8]> = row.try_get(1).ok().flatten();
        let geometry = wkb.and_then(|b| match crate::geom::wkb::decode(b) {
            Ok(d) => d.geometry,
            Err(e) => {
                tracing::warn!(layer = %def.table, fid, error = %e, "unreadable geometry; the feature is served without it");
                None
            }
        });
        let values = classes
            .iter()
            .enumerate()
            .map(|(i, class)| value(&row, i + 2, *class))
            .collect();
        out.push(Feature {
            fid,
            values,
            geometry,
        });
    }
    Ok(out)
}

/// Column `i` of a row read with the layer's SELECT expressions, as a GeoPackage value.
pub fn value(row: &postgres::Row, i: usize, class: ValueClass) -> Value {
    // The SELECT casts each column to the type its class reads, so a mismatch cannot
    // happen; were it to, the value is NULL rather than a panic.
    let v = match class {
        ValueClass::Integer | ValueClass::Boolean => row
            .try_get::<_, Option<i64>>(i)
            .map(|v| v.map(Value::Integer)),
        ValueClass::Real => row.try_get::<_, Option<f64>>(i).map(|v| v.map(Value::Real)),
        ValueClass::Text => row
            .try_get::<_, Option<String>>(i)
            .map(|v| v.map(Value::Text)),
        ValueClass::Blob => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map(|v| v.map(Value::Blob)),
    };
    v.ok().flatten().unwrap_or(Value::Null)
}
