//! cql2-json: `{"op": …, "args": […]}` objects into the same syntax tree as cql2-text.

use geo::Geometry;
use serde_json::Value;

use super::{CmpOp, Expr, FilterError, Scalar, SpatialOp, time};

fn bad(msg: impl Into<String>) -> FilterError {
    FilterError::Json(msg.into())
}

/// Parses a cql2-json document.
pub fn parse(src: &str) -> Result<Expr, FilterError> {
    let v: Value = serde_json::from_str(src)
        .map_err(|e| bad(format!("the filter is not valid JSON ({e})")))?;
    expr(&v)
}

fn args(v: &Value, op: &str) -> Result<Vec<Value>, FilterError> {
    v.get("args")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| bad(format!("operation '{op}' needs an \"args\" array")))
}

fn arity<const N: usize>(a: Vec<Value>, op: &str) -> Result<[Value; N], FilterError> {
    let n = a.len();
    a.try_into()
        .map_err(|_| bad(format!("operation '{op}' takes {N} arguments, got {n}")))
}

fn expr(v: &Value) -> Result<Expr, FilterError> {
    if let Value::Bool(b) = v {
        return Ok(Expr::Const(*b));
    }
    let op = v.get("op").and_then(Value::as_str).ok_or_else(|| {
        bad(format!(
            "expected an object with \"op\" and \"args\", got {v}"
        ))
    })?;
    let a = args(v, op)?;
    let cmp = |c: CmpOp, a: Vec<Value>| -> Result<Expr, FilterError> {
        let [x, y] = arity(a, op)?;
        Ok(Expr::Cmp(c, scalar(&x)?, scalar(&y)?))
    };
    Ok(match op.to_ascii_lowercase().as_str() {
        "and" | "or" => {
            if a.len() < 2 {
                return Err(bad(format!("'{op}' needs at least two arguments")));
            }
            let terms = a.iter().map(expr).collect::<Result<Vec<_>, _>>()?;
            if op.eq_ignore_ascii_case("and") {
                Expr::And(terms)
            } else {
                Expr::Or(terms)
            }
        }
        "not" => {
            let [x] = arity(a, op)?;
            Expr::Not(Box::new(expr(&x)?))
        }
        "=" => cmp(CmpOp::Eq, a)?,
        "<>" => cmp(CmpOp::Ne, a)?,
        "<" => cmp(CmpOp::Lt, a)?,
        "<=" => cmp(CmpOp::Le, a)?,
        ">" => cmp(CmpOp::Gt, a)?,
        ">=" => cmp(CmpOp::Ge, a)?,
        "like" => {
            let [x, p] = arity(a, op)?;
            Expr::Like(scalar(&x)?, scalar(&p)?)
        }
        "between" => {
            let [x, lo, hi] = arity(a, op)?;
            Expr::Between(scalar(&x)?, scalar(&lo)?, scalar(&hi)?)
        }
        "in" => {
            let [x, list] = arity(a, op)?;
            let list = list
                .as_array()
                .ok_or_else(|| bad("the second argument of 'in' must be an array"))?
                .iter()
                .map(scalar)
                .collect::<Result<Vec<_>, _>>()?;
            Expr::In(scalar(&x)?, list)
        }
        "isnull" => {
            let [x] = arity(a, op)?;
            Expr::IsNull(scalar(&x)?)
        }
        name => match SpatialOp::from_name(name) {
            Some(s) => {
                let [x, y] = arity(a, op)?;
                Expr::Spatial(s, scalar(&x)?, scalar(&y)?)
            }
            None => {
                return Err(bad(format!(
                    "unknown operation '{op}'; supported are and, or, not, =, <>, <, <=, >, >=, like, between, in, isNull, casei, accenti and s_intersects, s_within, s_contains, s_disjoint, s_touches, s_crosses, s_overlaps, s_equals"
                )));
            }
        },
    })
}

fn scalar(v: &Value) -> Result<Scalar, FilterError> {
    Ok(match v {
        Value::String(s) => Scalar::Str(s.clone()),
        Value::Number(n) => Scalar::Num(n.as_f64().ok_or_else(|| bad(format!("bad number {n}")))?),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Object(o) => {
            if let Some(p) = o.get("property") {
                let name = p
                    .as_str()
                    .ok_or_else(|| bad("\"property\" must name a property as a string"))?;
                Scalar::Property(name.to_string())
            } else if let Some(d) = o.get("date") {
                let s = d.as_str().unwrap_or_default();
                Scalar::Date(
                    time::parse_date(s)
                        .ok_or_else(|| bad(format!("{d} is not a date (YYYY-MM-DD)")))?,
                )
            } else if let Some(t) = o.get("timestamp") {
                let s = t.as_str().unwrap_or_default();
                Scalar::Timestamp(
                    time::parse_timestamp(s)
                        .ok_or_else(|| bad(format!("{t} is not an RFC 3339 timestamp")))?,
                )
            } else if let Some(b) = o.get("bbox") {
                Scalar::Geometry(bbox(b)?)
            } else if o.contains_key("type") {
                Scalar::Geometry(geometry(v)?)
            } else if let Some(op) = o.get("op").and_then(Value::as_str) {
                let a = args(v, op)?;
                match op.to_ascii_lowercase().as_str() {
                    "casei" => Scalar::Casei(Box::new(scalar(&arity::<1>(a, op)?[0])?)),
                    "accenti" => Scalar::Accenti(Box::new(scalar(&arity::<1>(a, op)?[0])?)),
                    _ => {
                        return Err(bad(format!(
                            "'{op}' cannot be used as a value; casei and accenti can"
                        )));
                    }
                }
            } else {
                return Err(bad(format!(
                    "cannot read {v} as a value: expected a literal, {{\"property\": …}}, {{\"date\": …}}, {{\"timestamp\": …}}, {{\"bbox\": …}} or a GeoJSON geometry"
                )));
            }
        }
        Value::Null | Value::Array(_) => {
            return Err(bad(format!("{v} is not a value here")));
        }
    })
}

fn bbox(v: &Value) -> Result<Geometry<f64>, FilterError> {
    let n: Vec<f64> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let (a, b) = match n.as_slice() {
        [x0, y0, x1, y1] => ((*x0, *y0), (*x1, *y1)),
        [x0, y0, _, x1, y1, _] => ((*x0, *y0), (*x1, *y1)),
        _ => return Err(bad(format!("bbox {v} must be 4 or 6 numbers"))),
    };
    Ok(Geometry::Polygon(geo::Rect::new(a, b).to_polygon()))
}

/// A GeoJSON geometry object.
fn geometry(v: &Value) -> Result<Geometry<f64>, FilterError> {
    crate::geom::geojson::parse(v).map_err(FilterError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_standard_forms() {
        let e = parse(r#"{"op":"and","args":[{"op":"=","args":[{"property":"kind"},"park"]},{"op":"in","args":[{"property":"n"},[1,2]]}]}"#).unwrap();
        assert!(matches!(e, Expr::And(v) if v.len() == 2));
        assert!(parse(r#"{"op":"s_intersects","args":[{"property":"geom"},{"type":"Point","coordinates":[10.5,51.5]}]}"#).is_ok());
        assert!(
            parse(r#"{"op":"s_within","args":[{"property":"geom"},{"bbox":[10,51,11,52]}]}"#)
                .is_ok()
        );
        assert!(parse(r#"{"op":">","args":[{"property":"d"},{"date":"2024-01-01"}]}"#).is_ok());
        assert!(parse(r#"{"op":"isNull","args":[{"property":"d"}]}"#).is_ok());
        assert!(parse(r#"{"op":"like","args":[{"op":"casei","args":[{"property":"n"}]},{"op":"casei","args":["a%"]}]}"#).is_ok());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(parse("not json").is_err());
        assert!(parse(r#"{"op":"frobnicate","args":[]}"#).is_err());
        assert!(parse(r#"{"op":"=","args":[1]}"#).is_err());
        assert!(parse(r#"{"op":"=","args":[{"property":"a"},null]}"#).is_err());
    }
}
