//! CQL2 filters (OGC API Features Part 3): parsed from cql2-text or cql2-json into one
//! syntax tree, bound to a layer's typed columns, and evaluated on in-memory features.
//! Nothing here ever becomes SQL.

use geo::Geometry;

pub mod bind;
mod eval;
mod json;
mod like;
pub mod rules;
mod text;
pub mod time;

pub use bind::{Pred, Schema};

/// Why a filter was refused: always the user's input, so always a 400.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FilterError {
    /// The text could not be parsed.
    #[error("CQL2 text, at character {pos}: {msg}")]
    Syntax {
        /// 1-based character position.
        pos: usize,
        /// What was expected.
        msg: String,
    },
    /// The JSON could not be read as CQL2.
    #[error("CQL2 JSON: {0}")]
    Json(String),
    /// The expression is well-formed but does not fit the collection.
    #[error("{0}")]
    Meaning(String),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Spatial predicates (the `spatial-functions` conformance class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpatialOp {
    /// `S_INTERSECTS`
    Intersects,
    /// `S_DISJOINT`
    Disjoint,
    /// `S_WITHIN`
    Within,
    /// `S_CONTAINS`
    Contains,
    /// `S_TOUCHES`
    Touches,
    /// `S_CROSSES`
    Crosses,
    /// `S_OVERLAPS`
    Overlaps,
    /// `S_EQUALS`
    Equals,
}

impl SpatialOp {
    /// Looks up a function name (any case, with or without the `S_` prefix's case).
    fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "s_intersects" => Self::Intersects,
            "s_disjoint" => Self::Disjoint,
            "s_within" => Self::Within,
            "s_contains" => Self::Contains,
            "s_touches" => Self::Touches,
            "s_crosses" => Self::Crosses,
            "s_overlaps" => Self::Overlaps,
            "s_equals" => Self::Equals,
            _ => return None,
        })
    }
}

/// A value-producing operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A property by name.
    Property(String),
    /// A character string literal.
    Str(String),
    /// A numeric literal.
    Num(f64),
    /// `TRUE` / `FALSE`.
    Bool(bool),
    /// `DATE('…')`, as seconds since 1970 at 00:00 UTC.
    Date(f64),
    /// `TIMESTAMP('…')`, as seconds since 1970.
    Timestamp(f64),
    /// `CASEI(…)`: compared without regard to case.
    Casei(Box<Scalar>),
    /// `ACCENTI(…)`: compared without regard to accents.
    Accenti(Box<Scalar>),
    /// A geometry literal in the filter CRS (axis order as written).
    Geometry(Geometry<f64>),
}

/// A CQL2 boolean expression, before it is bound to a layer.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All must hold.
    And(Vec<Expr>),
    /// One must hold.
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// `TRUE` / `FALSE`.
    Const(bool),
    /// `a op b`.
    Cmp(CmpOp, Scalar, Scalar),
    /// `a LIKE pattern`.
    Like(Scalar, Scalar),
    /// `a BETWEEN lo AND hi`.
    Between(Scalar, Scalar, Scalar),
    /// `a IN (list)`.
    In(Scalar, Vec<Scalar>),
    /// `a IS NULL`.
    IsNull(Scalar),
    /// `S_…(a, b)`.
    Spatial(SpatialOp, Scalar, Scalar),
}

/// The two encodings of Part 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// `cql2-text`
    Text,
    /// `cql2-json`
    Json,
}

impl Lang {
    /// Reads a `filter-lang` value.
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        match s {
            "cql2-text" => Ok(Lang::Text),
            "cql2-json" => Ok(Lang::Json),
            other => Err(FilterError::Meaning(format!(
                "filter-lang '{other}' is not supported; use cql2-text or cql2-json"
            ))),
        }
    }
}

/// Parses a filter in the given encoding.
pub fn parse(src: &str, lang: Lang) -> Result<Expr, FilterError> {
    match lang {
        Lang::Text => text::parse(src),
        Lang::Json => json::parse(src),
    }
}

/// Conformance classes this module implements (CQL2 1.0 and Features Part 3).
pub const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
];
