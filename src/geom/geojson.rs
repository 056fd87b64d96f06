//! GeoJSON geometry objects into `geo` geometries (filters' literals, edited features).

use geo::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use serde_json::Value;

fn coord(v: &Value) -> Result<Coord<f64>, String> {
    match v.as_array().map(|a| a.as_slice()) {
        Some([x, y, ..]) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if x.is_finite() && y.is_finite() => Ok(Coord { x, y }),
            _ => Err(format!("position {v} must hold numbers")),
        },
        _ => Err(format!("position {v} must be [x, y] or [x, y, z]")),
    }
}

fn list<T>(v: &Value, f: impl Fn(&Value) -> Result<T, String>) -> Result<Vec<T>, String> {
    v.as_array()
        .ok_or_else(|| format!("expected an array of positions, got {v}"))?
        .iter()
        .map(f)
        .collect()
}

fn line(v: &Value) -> Result<LineString<f64>, String> {
    list(v, coord).map(LineString)
}

fn polygon(v: &Value) -> Result<Polygon<f64>, String> {
    let mut rings = list(v, line)?;
    if rings.is_empty()
        || rings
            .iter()
            .any(|r| r.0.len() < 4 || r.0.first() != r.0.last())
    {
        return Err(
            "a polygon ring needs at least 4 positions and must end where it starts".to_string(),
        );
    }
    let exterior = rings.remove(0);
    Ok(Polygon::new(exterior, rings))
}

/// A GeoJSON geometry object (positions' third ordinate is dropped).
pub fn parse(v: &Value) -> Result<Geometry<f64>, String> {
    let t = v.get("type").and_then(Value::as_str).unwrap_or_default();
    let c = || {
        v.get("coordinates")
            .ok_or_else(|| format!("{t} needs \"coordinates\""))
    };
    Ok(match t {
        "Point" => Point(coord(c()?)?).into(),
        "LineString" => line(c()?)?.into(),
        "Polygon" => polygon(c()?)?.into(),
        "MultiPoint" => MultiPoint(list(c()?, |p| coord(p).map(Point))?).into(),
        "MultiLineString" => MultiLineString(list(c()?, line)?).into(),
        "MultiPolygon" => MultiPolygon(list(c()?, polygon)?).into(),
        "GeometryCollection" => Geometry::GeometryCollection(geo::GeometryCollection(list(
            v.get("geometries")
                .ok_or_else(|| "GeometryCollection needs \"geometries\"".to_string())?,
            parse,
        )?)),
        other => return Err(format!("'{other}' is not a GeoJSON geometry type")),
    })
}
