//! CSV for spreadsheets and GDAL: one header row, the geometry as WKT in a column named
//! `WKT` (which GDAL's CSV driver reads as the geometry without options), UTF-8.

use std::fmt::Write as _;

use geo::{Coord, Geometry, LineString, Polygon};
use rusqlite::types::Value;

use crate::index::{Feature, Layer};
use crate::store::layer::ValueClass;

/// The header row: WKT, fid, then the columns written.
pub fn header(layer: &Layer, columns: &[bool]) -> String {
    let mut out = String::from("WKT,fid");
    for (c, _) in layer.def.columns.iter().zip(columns).filter(|(_, s)| **s) {
        out.push(',');
        field(&mut out, &c.name);
    }
    out.push_str("\r\n");
    out
}

/// One feature as a row; `shown` says which of the written columns it shows (the others
/// stay empty), `geometry` is already in the output CRS.
pub fn row(
    out: &mut String,
    f: &Feature,
    layer: &Layer,
    geometry: Option<&Geometry<f64>>,
    columns: &[bool],
    shown: &[bool],
) {
    if let Some(g) = geometry {
        out.push('"');
        wkt(out, g);
        out.push('"');
    }
    let _ = write!(out, ",{}", f.fid);
    for ((c, v), (&written, &show)) in layer
        .def
        .columns
        .iter()
        .zip(&f.values)
        .zip(columns.iter().zip(shown))
    {
        if !written {
            continue;
        }
        out.push(',');
        if !show {
            continue;
        }
        match v {
            Value::Null => {}
            Value::Integer(i) if c.class() == ValueClass::Boolean => {
                out.push_str(if *i != 0 { "true" } else { "false" })
            }
            Value::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Real(r) => {
                let _ = write!(out, "{r}");
            }
            Value::Text(t) => field(out, t),
            Value::Blob(b) => {
                let _ = write!(out, "<{} bytes>", b.len());
            }
        }
    }
    out.push_str("\r\n");
}

/// A text field, quoted when it holds a separator, a quote or a line break (RFC 4180).
fn field(out: &mut String, t: &str) {
    if t.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&t.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(t);
    }
}

fn coords(out: &mut String, cs: &[Coord<f64>]) {
    out.push('(');
    for (i, c) in cs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{} {}", c.x, c.y);
    }
    out.push(')');
}

fn polygon(out: &mut String, p: &Polygon<f64>) {
    out.push('(');
    coords(out, &p.exterior().0);
    for r in p.interiors() {
        out.push(',');
        coords(out, &r.0);
    }
    out.push(')');
}

fn list<T>(out: &mut String, items: &[T], mut f: impl FnMut(&mut String, &T)) {
    if items.is_empty() {
        out.push_str(" EMPTY");
        return;
    }
    out.push_str(" (");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, it);
    }
    out.push(')');
}

/// A geometry as WKT (OGC Simple Features).
pub fn wkt(out: &mut String, g: &Geometry<f64>) {
    match g {
        Geometry::Point(p) => {
            let _ = write!(out, "POINT ({} {})", p.x(), p.y());
        }
        Geometry::LineString(l) => {
            out.push_str("LINESTRING ");
            coords(out, &l.0);
        }
        Geometry::Polygon(p) => {
            out.push_str("POLYGON ");
            polygon(out, p);
        }
        Geometry::MultiPoint(m) => {
            out.push_str("MULTIPOINT");
            list(out, &m.0, |o, p| coords(o, &[p.0]));
        }
        Geometry::MultiLineString(m) => {
            out.push_str("MULTILINESTRING");
            list(out, &m.0, |o, l: &LineString<f64>| coords(o, &l.0));
        }
        Geometry::MultiPolygon(m) => {
            out.push_str("MULTIPOLYGON");
            list(out, &m.0, polygon);
        }
        Geometry::GeometryCollection(c) => {
            out.push_str("GEOMETRYCOLLECTION");
            list(out, &c.0, wkt);
        }
        Geometry::Rect(r) => wkt(out, &r.to_polygon().into()),
        Geometry::Triangle(t) => wkt(out, &t.to_polygon().into()),
        Geometry::Line(l) => wkt(out, &LineString(vec![l.start, l.end]).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wkt_and_quoting() {
        let mut s = String::new();
        wkt(
            &mut s,
            &geo::MultiLineString(vec![LineString::from(vec![(1.5, 2.0), (3.0, 4.25)])]).into(),
        );
        assert_eq!(s, "MULTILINESTRING ((1.5 2,3 4.25))");
        let mut f = String::new();
        field(&mut f, "Weg \"Alt\", Nord");
        assert_eq!(f, "\"Weg \"\"Alt\"\", Nord\"");
    }
}
