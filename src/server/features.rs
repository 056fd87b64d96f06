//! GeoJSON feature access: collections and items with `bbox`, `limit` and `offset`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use geo::{Geometry, Intersects, Rect};
use rusqlite::types::Value;
use serde_json::json;

use super::AppState;
use super::crs_out::OutCrs;
use super::problem::Problem;
use crate::index::{Feature, Layer};
use crate::store::layer::ValueClass;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 10;
/// Largest page size; larger requests are clamped.
pub const MAX_LIMIT: usize = 10_000;

fn parse_bbox(s: &str) -> Result<[f64; 4], Problem> {
    let nums: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            Problem::bad_request(format!(
                "bbox '{s}' is not a list of numbers; expected minLon,minLat,maxLon,maxLat"
            ))
        })?;
    let b = match nums.as_slice() {
        [a, b, c, d] => [*a, *b, *c, *d],
        [a, b, _, c, d, _] => [*a, *b, *c, *d],
        _ => {
            return Err(Problem::bad_request(format!(
                "bbox must have 4 or 6 numbers, got {}",
                nums.len()
            )));
        }
    };
    if b.iter().any(|v| !v.is_finite()) || b[1] > b[3] {
        return Err(Problem::bad_request(format!(
            "bbox '{s}' is not a valid box (finite numbers, the second not above the fourth)"
        )));
    }
    Ok(b)
}

/// `GET /collections/{id}/items`.
pub async fn items(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let cat = state.catalog();
    let layer = cat
        .get(&id)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "there is no collection '{id}'; /collections lists them"
            ))
        })?
        .clone();
    let mut filters = Vec::new();
    for (k, v) in &params {
        if ["bbox", "bbox-crs", "crs", "limit", "offset", "f"].contains(&k.as_str()) {
            continue;
        }
        match layer.def.columns.iter().position(|c| &c.name == k) {
            Some(col) => filters.push((col, v.clone())),
            None => {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter '{k}': use bbox, limit, offset or a property of '{id}' ({})",
                    layer
                        .def
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                Problem::bad_request(format!("limit '{s}' must be a whole number of at least 1"))
            })?
            .min(MAX_LIMIT),
    };
    let offset = match params.get("offset") {
        None => 0,
        Some(s) => s.parse::<usize>().map_err(|_| {
            Problem::bad_request(format!("offset '{s}' must be a whole number of at least 0"))
        })?,
    };
    let out_crs = match params.get("crs") {
        Some(c) => OutCrs::parse(c, layer.def.srs_id)?,
        None => OutCrs::crs84(),
    };
    let bbox_crs = match params.get("bbox-crs") {
        Some(c) => OutCrs::parse(c, layer.def.srs_id)?,
        None => OutCrs::crs84(),
    };
    let bbox = match params.get("bbox") {
        Some(s) => Some(bbox_crs.bbox_to_mercator(parse_bbox(s)?)?),
        None => None,
    };
    let base = state.base_url(&headers);
    let content_crs = format!("<{}>", out_crs.uri);
    let body = tokio::task::spawn_blocking(move || {
        render_items(
            &layer,
            &ItemsQuery {
                bbox,
                filters,
                limit,
                offset,
                crs: out_crs,
            },
            &base,
            &params,
        )
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?;
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/geo+json"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_crs) {
        h.insert("content-crs", v);
    }
    Ok(res)
}

/// `name=value` on a property: the value as the column's type would read it.
fn equals(v: &Value, class: ValueClass, want: &str) -> bool {
    match v {
        Value::Null | Value::Blob(_) => false,
        Value::Text(t) => t == want,
        Value::Integer(i) if class == ValueClass::Boolean => {
            matches!(
                (want.to_ascii_lowercase().as_str(), *i != 0),
                ("true" | "1", true) | ("false" | "0", false)
            )
        }
        Value::Integer(i) => want.trim().parse::<i64>().is_ok_and(|w| w == *i),
        Value::Real(r) => want.trim().parse::<f64>().is_ok_and(|w| w == *r),
    }
}

/// Features whose geometry intersects a box in Web Mercator (a CRS84 box maps onto one
/// exactly; a box in another CRS is taken as its Web Mercator envelope).
fn matching(layer: &Layer, bbox: Option<[f64; 4]>) -> Vec<usize> {
    let Some(b) = bbox else {
        return (0..layer.features.len()).collect();
    };
    let rect = Rect::new((b[0], b[1]), (b[2], b[3]));
    layer
        .query(b)
        .into_iter()
        .filter(|&i| {
            layer.features[i]
                .geometry
                .as_ref()
                .is_some_and(|g| g.intersects(&rect))
        })
        .collect()
}

/// An items request after parsing.
struct ItemsQuery {
    /// Web Mercator box.
    bbox: Option<[f64; 4]>,
    /// (column, value) equality filters.
    filters: Vec<(usize, String)>,
    limit: usize,
    offset: usize,
    crs: OutCrs,
}

fn render_items(
    layer: &Layer,
    q: &ItemsQuery,
    base: &str,
    params: &HashMap<String, String>,
) -> String {
    let ItemsQuery {
        bbox,
        filters,
        limit,
        offset,
        crs: out_crs,
    } = q;
    let (limit, offset) = (*limit, *offset);
    let mut hits = matching(layer, *bbox);
    if !filters.is_empty() {
        hits.retain(|&i| {
            filters.iter().all(|(col, want)| {
                equals(
                    &layer.features[i].values[*col],
                    layer.def.columns[*col].class(),
                    want,
                )
            })
        });
    }
    let page: Vec<usize> = hits.iter().copied().skip(offset).take(limit).collect();
    let id = &layer.def.table;
    let link = |off: usize| {
        let mut q = url_query(
            params,
            &[("offset", off.to_string()), ("limit", limit.to_string())],
        );
        q.insert(0, '?');
        format!("{base}/collections/{id}/items{q}")
    };
    let mut links =
        vec![json!({"rel": "self", "type": "application/geo+json", "href": link(offset)})];
    if offset + page.len() < hits.len() {
        links.push(
            json!({"rel": "next", "type": "application/geo+json", "href": link(offset + limit)}),
        );
    }
    if offset > 0 {
        links.push(json!({"rel": "prev", "type": "application/geo+json", "href": link(offset.saturating_sub(limit))}));
    }
    let mut out = String::with_capacity(256 + page.len() * 256);
    out.push_str("{\"type\":\"FeatureCollection\",\"numberMatched\":");
    let _ = write!(
        out,
        "{},\"numberReturned\":{},\"links\":{},\"features\":[",
        hits.len(),
        page.len(),
        serde_json::Value::Array(links)
    );
    for (n, &i) in page.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_feature(&mut out, &layer.features[i], layer, out_crs);
    }
    out.push_str("]}");
    out
}

fn url_query(params: &HashMap<String, String>, set: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !set.iter().any(|(s, _)| s == k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.sort();
    pairs.extend(set.iter().map(|(k, v)| (k.to_string(), v.clone())));
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~,".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Writes one feature of `layer` as GeoJSON in `crs` into `out`.
pub fn write_feature(out: &mut String, f: &Feature, layer: &Layer, crs: &OutCrs) {
    let _ = write!(out, "{{\"type\":\"Feature\",\"id\":{},\"geometry\":", f.fid);
    match f.geometry.as_ref().map(|g| crs.convert(g)) {
        Some(Ok(g)) => write_geometry(out, &g),
        Some(Err(e)) => {
            tracing::warn!(layer = %layer.def.table, fid = f.fid, error = %e, "geometry cannot be written in the requested CRS");
            out.push_str("null");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"properties\":{");
    for (n, (c, v)) in layer.def.columns.iter().zip(&f.values).enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(c.name.clone()).to_string());
        out.push(':');
        out.push_str(&value_json(v, c.class()).to_string());
    }
    out.push_str("}}");
}

/// A property value as JSON (BOOLEAN columns as true/false, as GeoPackage means them).
pub fn value_json(v: &Value, class: ValueClass) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) if class == ValueClass::Boolean => json!(*i != 0),
        Value::Integer(i) => json!(i),
        Value::Real(r) => json!(r),
        Value::Text(t) => json!(t),
        Value::Blob(b) => json!(format!("<{} bytes>", b.len())),
    }
}

fn write_coord(out: &mut String, c: geo::Coord<f64>) {
    let _ = write!(out, "[{},{}]", c.x, c.y);
}

fn write_ring(out: &mut String, cs: &[geo::Coord<f64>]) {
    out.push('[');
    for (i, c) in cs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_coord(out, *c);
    }
    out.push(']');
}

fn write_polygon(out: &mut String, p: &geo::Polygon<f64>) {
    out.push('[');
    write_ring(out, &p.exterior().0);
    for r in p.interiors() {
        out.push(',');
        write_ring(out, &r.0);
    }
    out.push(']');
}

fn write_list<T>(out: &mut String, items: &[T], mut f: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, it);
    }
    out.push(']');
}

fn write_geometry(out: &mut String, g: &Geometry<f64>) {
    match g {
        Geometry::Point(p) => {
            out.push_str("{\"type\":\"Point\",\"coordinates\":");
            write_coord(out, p.0);
        }
        Geometry::LineString(l) => {
            out.push_str("{\"type\":\"LineString\",\"coordinates\":");
            write_ring(out, &l.0);
        }
        Geometry::Polygon(p) => {
            out.push_str("{\"type\":\"Polygon\",\"coordinates\":");
            write_polygon(out, p);
        }
        Geometry::MultiPoint(m) => {
            out.push_str("{\"type\":\"MultiPoint\",\"coordinates\":");
            write_list(out, &m.0, |o, p| write_coord(o, p.0));
        }
        Geometry::MultiLineString(m) => {
            out.push_str("{\"type\":\"MultiLineString\",\"coordinates\":");
            write_list(out, &m.0, |o, l| write_ring(o, &l.0));
        }
        Geometry::MultiPolygon(m) => {
            out.push_str("{\"type\":\"MultiPolygon\",\"coordinates\":");
            write_list(out, &m.0, write_polygon);
        }
        Geometry::GeometryCollection(c) => {
            out.push_str("{\"type\":\"GeometryCollection\",\"geometries\":");
            write_list(out, &c.0, write_geometry);
            out.push('}');
            return;
        }
        // geo's helper types never come out of a GeoPackage; written as what they are.
        Geometry::Rect(r) => return write_geometry(out, &r.to_polygon().into()),
        Geometry::Triangle(t) => return write_geometry(out, &t.to_polygon().into()),
        Geometry::Line(l) => {
            return write_geometry(out, &geo::LineString(vec![l.start, l.end]).into());
        }
    }
    out.push('}');
}
