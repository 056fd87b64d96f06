//! Binding: property names become column positions, literals take the column's type,
//! geometry literals move into the index CRS. Type mistakes are reported here, once,
//! instead of silently matching nothing.

use std::sync::Arc;

use geo::{BoundingRect, Geometry};

use super::like::{self, Part};
use super::{CmpOp, Expr, FilterError, Scalar, SpatialOp, time};
use crate::geom::Bbox;
use crate::store::layer::{Column, ValueClass};

/// What a filter may refer to in one collection.
pub struct Schema<'a> {
    /// Collection id, for messages.
    pub collection: &'a str,
    /// Attribute columns.
    pub columns: &'a [Column],
    /// Which columns the caller may see; the others do not exist for the filter.
    pub visible: &'a [bool],
    /// Name of the geometry property (`geometry` is accepted too).
    pub geom_column: &'a str,
    /// Moves a literal geometry from the filter CRS into the index CRS (EPSG:3857).
    pub to_index: &'a dyn Fn(Geometry<f64>) -> Result<Geometry<f64>, String>,
}

/// The type a value compares as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Integer or real.
    Num,
    /// Text.
    Str,
    /// Boolean.
    Bool,
    /// DATE / DATETIME, as seconds.
    Time,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Num => "a number",
            Kind::Str => "text",
            Kind::Bool => "a boolean",
            Kind::Time => "a date/time",
        }
    }
}

/// The comparison type of a column: DATE/DATETIME/TIMESTAMP columns compare as time.
pub fn column_kind(c: &Column) -> Option<Kind> {
    let t = c.decl_type.to_ascii_uppercase();
    if t.starts_with("DATE") || t.starts_with("TIMESTAMP") {
        return Some(Kind::Time);
    }
    match c.class() {
        ValueClass::Integer | ValueClass::Real => Some(Kind::Num),
        ValueClass::Boolean => Some(Kind::Bool),
        ValueClass::Text => Some(Kind::Str),
        ValueClass::Blob => None,
    }
}

/// A literal after binding.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// Number.
    Num(f64),
    /// Text.
    Str(String),
    /// Boolean.
    Bool(bool),
    /// Seconds since 1970.
    Time(f64),
}

/// A bound operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// Column `0` of the feature's values.
    Col(usize, Kind),
    /// A constant.
    Lit(Lit),
    /// Text folded for comparison (`CASEI` lower-cases, `ACCENTI` strips accents).
    Fold {
        /// What is folded.
        inner: Box<Operand>,
        /// Lower-case.
        case: bool,
        /// Strip accents.
        accents: bool,
    },
}

/// A bound predicate, ready to evaluate on features.
#[derive(Debug, Clone)]
pub enum Pred {
    /// Constant.
    Const(bool),
    /// All.
    And(Vec<Pred>),
    /// Any.
    Or(Vec<Pred>),
    /// Negation (unknown stays unknown).
    Not(Box<Pred>),
    /// Comparison of two same-typed operands.
    Cmp(CmpOp, Operand, Operand),
    /// Text against a compiled LIKE pattern (folded like the operand).
    Like(Operand, Vec<Part>),
    /// NULL test.
    IsNull(Operand),
    /// The feature's geometry `op` a literal in EPSG:3857.
    Spatial(SpatialOp, Arc<Geometry<f64>>),
}

fn meaning(msg: impl Into<String>) -> FilterError {
    FilterError::Meaning(msg.into())
}

impl Schema<'_> {
    fn queryables(&self) -> String {
        self.columns
            .iter()
            .zip(self.visible)
            .filter(|(_, v)| **v)
            .map(|(c, _)| c.name.as_str())
            .chain(std::iter::once(self.geom_column))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn has(&self, name: &str) -> bool {
        self.columns
            .iter()
            .zip(self.visible)
            .any(|(c, v)| *v && c.name == name)
    }

    fn is_geometry(&self, name: &str) -> bool {
        name == self.geom_column || (name == "geometry" && !self.has(name))
    }

    fn column(&self, name: &str) -> Result<Operand, FilterError> {
        if self.is_geometry(name) {
            return Err(meaning(format!(
                "'{name}' is the geometry; compare it with S_INTERSECTS, S_WITHIN and the other spatial functions"
            )));
        }
        let (i, c) = self
            .columns
            .iter()
            .enumerate()
            .find(|(i, c)| c.name == name && self.visible.get(*i) == Some(&true))
            .ok_or_else(|| {
                meaning(format!(
                    "unknown property '{name}' in the filter; the queryables of '{}' are: {}",
                    self.collection,
                    self.queryables()
                ))
            })?;
        let kind = column_kind(c).ok_or_else(|| {
            meaning(format!(
                "property '{name}' holds binary data and cannot be filtered"
            ))
        })?;
        Ok(Operand::Col(i, kind))
    }

    fn operand(&self, s: &Scalar) -> Result<Operand, FilterError> {
        Ok(match s {
            Scalar::Property(p) => self.column(p)?,
            Scalar::Str(v) => Operand::Lit(Lit::Str(v.clone())),
            Scalar::Num(n) => Operand::Lit(Lit::Num(*n)),
            Scalar::Bool(b) => Operand::Lit(Lit::Bool(*b)),
            Scalar::Date(t) | Scalar::Timestamp(t) => Operand::Lit(Lit::Time(*t)),
            Scalar::Casei(inner) | Scalar::Accenti(inner) => {
                let inner = self.operand(inner)?;
                if kind_of(&inner) != Kind::Str {
                    return Err(meaning("CASEI and ACCENTI apply to text only"));
                }
                let case = matches!(s, Scalar::Casei(_));
                folded(inner, case, !case)
            }
            Scalar::Geometry(_) => {
                return Err(meaning(
                    "a geometry literal can only be used in a spatial function such as S_INTERSECTS",
                ));
            }
        })
    }

    /// Two operands of one comparison, with a text literal read as a date/time where the
    /// other side is one (so `opened > '2024-01-01'` works as users expect).
    fn pair(&self, a: &Scalar, b: &Scalar, what: &str) -> Result<(Operand, Operand), FilterError> {
        let (mut x, mut y) = (self.operand(a)?, self.operand(b)?);
        coerce_time(&mut x, &y);
        coerce_time(&mut y, &x);
        let (kx, ky) = (kind_of(&x), kind_of(&y));
        if kx != ky {
            return Err(meaning(format!(
                "{what} compares {} with {}: {} is {}, {} is {}",
                show(a),
                show(b),
                show(a),
                kx.name(),
                show(b),
                ky.name()
            )));
        }
        Ok((x, y))
    }

    /// Binds an expression to this schema.
    pub fn bind(&self, e: &Expr) -> Result<Pred, FilterError> {
        Ok(match e {
            Expr::Const(b) => Pred::Const(*b),
            Expr::And(v) => Pred::And(v.iter().map(|e| self.bind(e)).collect::<Result<_, _>>()?),
            Expr::Or(v) => Pred::Or(v.iter().map(|e| self.bind(e)).collect::<Result<_, _>>()?),
            Expr::Not(e) => Pred::Not(Box::new(self.bind(e)?)),
            Expr::Cmp(op, a, b) => {
                let (x, y) = self.pair(a, b, "the comparison")?;
                if kind_of(&x) == Kind::Bool && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(meaning("booleans can only be compared with = and <>"));
                }
                Pred::Cmp(*op, x, y)
            }
            Expr::Like(a, p) => {
                let x = self.operand(a)?;
                if kind_of(&x) != Kind::Str {
                    return Err(meaning(format!(
                        "LIKE needs text, but {} is {}",
                        show(a),
                        kind_of(&x).name()
                    )));
                }
                let (pattern, case, accents) = match self.operand(p)? {
                    Operand::Lit(Lit::Str(s)) => (s, false, false),
                    Operand::Fold {
                        inner,
                        case,
                        accents,
                    } => match *inner {
                        Operand::Lit(Lit::Str(s)) => (s, case, accents),
                        _ => return Err(meaning("the LIKE pattern must be a text literal")),
                    },
                    _ => return Err(meaning("the LIKE pattern must be a text literal")),
                };
                let pattern = fold(&pattern, case, accents);
                let x = if case || accents {
                    folded(x, case, accents)
                } else {
                    x
                };
                Pred::Like(x, like::compile(&pattern))
            }
            Expr::Between(a, lo, hi) => {
                let (x, l) = self.pair(a, lo, "BETWEEN")?;
                let (x2, h) = self.pair(a, hi, "BETWEEN")?;
                if kind_of(&x) == Kind::Bool {
                    return Err(meaning("BETWEEN needs numbers, text or dates"));
                }
                Pred::And(vec![
                    Pred::Cmp(CmpOp::Ge, x, l),
                    Pred::Cmp(CmpOp::Le, x2, h),
                ])
            }
            Expr::In(a, list) => Pred::Or(
                list.iter()
                    .map(|item| {
                        let (x, y) = self.pair(a, item, "IN")?;
                        Ok(Pred::Cmp(CmpOp::Eq, x, y))
                    })
                    .collect::<Result<_, FilterError>>()?,
            ),
            Expr::IsNull(a) => Pred::IsNull(self.operand(a)?),
            Expr::Spatial(op, a, b) => self.spatial(*op, a, b)?,
        })
    }

    fn spatial(&self, op: SpatialOp, a: &Scalar, b: &Scalar) -> Result<Pred, FilterError> {
        let prop = |s: &Scalar| matches!(s, Scalar::Property(p) if self.is_geometry(p));
        let (lit, op) = match (a, b) {
            (x, Scalar::Geometry(g)) if prop(x) => (g, op),
            // Literal first: the relation turns around (A within B = B contains A).
            (Scalar::Geometry(g), y) if prop(y) => (
                g,
                match op {
                    SpatialOp::Within => SpatialOp::Contains,
                    SpatialOp::Contains => SpatialOp::Within,
                    o => o,
                },
            ),
            (Scalar::Geometry(_), Scalar::Geometry(_)) => {
                return Err(meaning(
                    "a spatial function needs the geometry property on one side",
                ));
            }
            (Scalar::Property(p), _) | (_, Scalar::Property(p)) if !self.is_geometry(p) => {
                if self.has(p) {
                    return Err(meaning(format!(
                        "'{p}' is not a geometry; the geometry of '{}' is '{}'",
                        self.collection, self.geom_column
                    )));
                }
                self.column(p)?;
                unreachable!("column() fails for names that are not columns")
            }
            _ => {
                return Err(meaning(format!(
                    "a spatial function compares '{}' with a geometry literal",
                    self.geom_column
                )));
            }
        };
        let g = (self.to_index)(lit.clone()).map_err(meaning)?;
        Ok(Pred::Spatial(op, Arc::new(g)))
    }
}

/// `o` folded as well for case and/or accents.
fn folded(o: Operand, case: bool, accents: bool) -> Operand {
    match o {
        Operand::Fold {
            inner,
            case: c,
            accents: a,
        } => Operand::Fold {
            inner,
            case: c || case,
            accents: a || accents,
        },
        other => Operand::Fold {
            inner: Box::new(other),
            case,
            accents,
        },
    }
}

fn show(s: &Scalar) -> String {
    match s {
        Scalar::Property(p) => format!("'{p}'"),
        Scalar::Str(v) => format!("'{v}'"),
        Scalar::Num(n) => n.to_string(),
        Scalar::Bool(b) => b.to_string().to_uppercase(),
        Scalar::Date(_) => "DATE(…)".into(),
        Scalar::Timestamp(_) => "TIMESTAMP(…)".into(),
        Scalar::Casei(i) => format!("CASEI({})", show(i)),
        Scalar::Accenti(i) => format!("ACCENTI({})", show(i)),
        Scalar::Geometry(_) => "a geometry".into(),
    }
}

fn coerce_time(x: &mut Operand, other: &Operand) {
    if kind_of(other) == Kind::Time
        && let Operand::Lit(Lit::Str(s)) = x
        && let Some(t) = time::parse_instant(s)
    {
        *x = Operand::Lit(Lit::Time(t));
    }
}

/// The comparison type of an operand.
pub fn kind_of(o: &Operand) -> Kind {
    match o {
        Operand::Col(_, k) => *k,
        Operand::Lit(Lit::Num(_)) => Kind::Num,
        Operand::Lit(Lit::Str(_)) | Operand::Fold { .. } => Kind::Str,
        Operand::Lit(Lit::Bool(_)) => Kind::Bool,
        Operand::Lit(Lit::Time(_)) => Kind::Time,
    }
}

/// Folds text for CASEI / ACCENTI.
pub fn fold(s: &str, case: bool, accents: bool) -> String {
    let s = if accents {
        strip_accents(s)
    } else {
        s.to_string()
    };
    if case { s.to_lowercase() } else { s }
}

/// Latin letters with diacritics → base letters (what German, Sorbian, Polish and Czech
/// place names use); `ß` is not an accented letter and stays.
fn strip_accents(s: &str) -> String {
    const FROM: &str =
        "ÀÁÂÃÄÅàáâãäåÇçĆćČčĎďÈÉÊËèéêëĚěÌÍÎÏìíîïŁłÑñŃńŇňÒÓÔÕÖØòóôõöøŘřŚśŠšŤťÙÚÛÜùúûüŮůÝýÿŹźŻżŽž";
    const TO: &str =
        "AAAAAAaaaaaaCcCcCcDdEEEEeeeeEeIIIIiiiiLlNnNnNnOOOOOOooooooRrSsSsTtUUUUuuuuUuYyyZzZzZz";
    s.chars()
        .map(|c| match FROM.chars().position(|f| f == c) {
            Some(i) => TO.chars().nth(i).unwrap_or(c),
            None => c,
        })
        .collect()
}

impl Pred {
    /// A box (EPSG:3857) every matching feature's envelope must intersect, if the
    /// predicate implies one: the R-tree then narrows the candidates before evaluation.
    pub fn search_box(&self) -> Option<Bbox> {
        match self {
            Pred::Spatial(
                SpatialOp::Intersects
                | SpatialOp::Within
                | SpatialOp::Contains
                | SpatialOp::Touches
                | SpatialOp::Crosses
                | SpatialOp::Overlaps
                | SpatialOp::Equals,
                g,
            ) => g
                .bounding_rect()
                .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]),
            Pred::And(v) => v.iter().filter_map(Pred::search_box).reduce(|a, b| {
                [
                    a[0].max(b[0]),
                    a[1].max(b[1]),
                    a[2].min(b[2]),
                    a[3].min(b[3]),
                ]
            }),
            Pred::Or(v) => v
                .iter()
                .map(Pred::search_box)
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .reduce(|a, b| {
                    [
                        a[0].min(b[0]),
                        a[1].min(b[1]),
                        a[2].max(b[2]),
                        a[3].max(b[3]),
                    ]
                }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_and_case_fold() {
        assert_eq!(fold("Ölmühle Großer Weg", true, true), "olmuhle großer weg");
        assert_eq!(fold("Žatec", false, true), "Zatec");
    }
}
