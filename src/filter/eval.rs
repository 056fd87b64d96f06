//! Evaluation on one feature, in SQL's three-valued logic: a comparison with NULL is
//! unknown, and only a definite `true` selects the feature.

use std::borrow::Cow;
use std::cmp::Ordering;

use geo::{Geometry, Intersects, Relate};
use rusqlite::types::Value;

use super::bind::{Kind, Lit, Operand, Pred, fold};
use super::{CmpOp, SpatialOp, like, time};

/// A value during evaluation.
#[derive(Debug, PartialEq)]
enum V<'a> {
    Null,
    Num(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    Time(f64),
}

fn value<'a>(o: &'a Operand, row: &'a [Value]) -> V<'a> {
    match o {
        Operand::Lit(Lit::Num(n)) => V::Num(*n),
        Operand::Lit(Lit::Str(s)) => V::Str(Cow::Borrowed(s)),
        Operand::Lit(Lit::Bool(b)) => V::Bool(*b),
        Operand::Lit(Lit::Time(t)) => V::Time(*t),
        Operand::Col(i, kind) => match (row.get(*i), kind) {
            (None | Some(Value::Null | Value::Blob(_)), _) => V::Null,
            (Some(Value::Integer(n)), Kind::Bool) => V::Bool(*n != 0),
            (Some(Value::Integer(n)), _) => V::Num(*n as f64),
            (Some(Value::Real(r)), _) => V::Num(*r),
            (Some(Value::Text(t)), Kind::Time) => time::parse_instant(t).map_or(V::Null, V::Time),
            (Some(Value::Text(t)), _) => V::Str(Cow::Borrowed(t)),
        },
        Operand::Fold {
            inner,
            case,
            accents,
        } => match value(inner, row) {
            V::Str(s) => V::Str(Cow::Owned(fold(&s, *case, *accents))),
            other => other,
        },
    }
}

fn compare(a: &V, b: &V) -> Option<Ordering> {
    match (a, b) {
        (V::Num(x), V::Num(y)) | (V::Time(x), V::Time(y)) => x.partial_cmp(y),
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn spatial(op: SpatialOp, g: &Geometry<f64>, lit: &Geometry<f64>) -> bool {
    match op {
        SpatialOp::Intersects => g.intersects(lit),
        SpatialOp::Disjoint => !g.intersects(lit),
        _ => {
            let m = g.relate(lit);
            match op {
                SpatialOp::Within => m.is_within(),
                SpatialOp::Contains => m.is_contains(),
                SpatialOp::Touches => m.is_touches(),
                SpatialOp::Crosses => m.is_crosses(),
                SpatialOp::Overlaps => m.is_overlaps(),
                SpatialOp::Equals => m.is_equal_topo(),
                SpatialOp::Intersects | SpatialOp::Disjoint => unreachable!("handled above"),
            }
        }
    }
}

impl Pred {
    /// Whether a feature (its values and its EPSG:3857 geometry) matches.
    pub fn matches(&self, row: &[Value], geom: Option<&Geometry<f64>>) -> bool {
        self.eval(row, geom) == Some(true)
    }

    /// Whether a feature breaks a condition: only a definite `false` does, as an SQL
    /// CHECK constraint reads it (a rule about a NULL property holds).
    pub fn rejects(&self, row: &[Value], geom: Option<&Geometry<f64>>) -> bool {
        self.eval(row, geom) == Some(false)
    }

    fn eval(&self, row: &[Value], geom: Option<&Geometry<f64>>) -> Option<bool> {
        match self {
            Pred::Const(b) => Some(*b),
            Pred::And(v) => {
                let mut unknown = false;
                for p in v {
                    match p.eval(row, geom) {
                        Some(false) => return Some(false),
                        None => unknown = true,
                        Some(true) => {}
                    }
                }
                (!unknown).then_some(true)
            }
            Pred::Or(v) => {
                let mut unknown = false;
                for p in v {
                    match p.eval(row, geom) {
                        Some(true) => return Some(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                (!unknown).then_some(false)
            }
            Pred::Not(p) => p.eval(row, geom).map(|b| !b),
            Pred::Cmp(op, a, b) => {
                let o = compare(&value(a, row), &value(b, row))?;
                Some(match op {
                    CmpOp::Eq => o == Ordering::Equal,
                    CmpOp::Ne => o != Ordering::Equal,
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::Ge => o != Ordering::Less,
                })
            }
            Pred::Like(a, pattern) => match value(a, row) {
                V::Str(s) => Some(like::matches(pattern, &s)),
                _ => None,
            },
            Pred::IsNull(a) => Some(value(a, row) == V::Null),
            Pred::Spatial(op, lit) => geom.map(|g| spatial(*op, g, lit)),
        }
    }
}
