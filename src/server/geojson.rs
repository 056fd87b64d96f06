//! GeoJSON writing straight into a string buffer: features are written one by one while
//! a page streams out, without building a JSON tree per feature.

use std::fmt::Write as _;

use geo::Geometry;
use rusqlite::types::Value;
use serde_json::json;

use super::crs_out::OutCrs;
use crate::audience::Audience;
use crate::index::{Feature, Layer};
use crate::store::layer::ValueClass;

/// Writes one feature of `layer` as GeoJSON in `crs` into `out`.
/// Only the columns the audience sees on this feature are written.
pub fn write_feature(out: &mut String, f: &Feature, layer: &Layer, crs: &OutCrs, aud: &Audience) {
    let visible = aud.mask(&f.values);
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
    let mut first = true;
    for (c, v) in shown(layer, f, visible) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&serde_json::Value::String(c.name.clone()).to_string());
        out.push(':');
        out.push_str(&value_json(v, c.class()).to_string());
    }
    out.push_str("}}");
}

/// The (column, value) pairs of a feature the caller may see.
pub fn shown<'a>(
    layer: &'a Layer,
    f: &'a Feature,
    visible: &'a [bool],
) -> impl Iterator<Item = (&'a crate::store::Column, &'a Value)> {
    layer
        .def
        .columns
        .iter()
        .zip(&f.values)
        .zip(visible)
        .filter(|(_, vis)| **vis)
        .map(|(cv, _)| cv)
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

/// Writes a geometry as a GeoJSON geometry object.
pub fn write_geometry(out: &mut String, g: &Geometry<f64>) {
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
