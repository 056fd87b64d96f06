//! Geometry encodings: GeoPackage binary blobs around ISO WKB.
//!
//! Hand-written rather than geozero's: the importer must keep the original WKB bytes
//! (coordinates are never rewritten), report *why* a blob is bad instead of panicking or
//! guessing, and compute the envelope geozero leaves to the caller.

pub mod geojson;
pub mod gpkg;
pub mod wkb;

use std::fmt;

/// What can be wrong with a geometry blob.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GeomError {
    /// The blob does not start with the GeoPackage magic.
    #[error("not a GeoPackage geometry (the blob does not start with 'GP')")]
    BadMagic,
    /// Unknown blob version.
    #[error("unsupported GeoPackage geometry version {0}")]
    BadVersion(u8),
    /// Envelope indicator outside 0-4.
    #[error("invalid envelope code {0} in the geometry header")]
    BadEnvelopeCode(u8),
    /// Ran out of bytes.
    #[error("geometry blob is truncated (ran out of bytes at offset {at})")]
    Truncated {
        /// Offset where bytes ran out.
        at: usize,
    },
    /// Bytes after the geometry.
    #[error("geometry blob has {0} unexpected bytes after the geometry")]
    TrailingBytes(usize),
    /// WKB byte-order marker not 0 or 1.
    #[error("invalid WKB byte order marker {0}")]
    ByteOrder(u8),
    /// A type code we do not know.
    #[error("unknown WKB geometry type code {0}")]
    UnknownType(u32),
    /// Curves, surfaces, TINs.
    #[error(
        "{0} geometries are not supported; convert curves to lines (QGIS: Vector > Geometry Tools > Segmentize) before exporting"
    )]
    Unsupported(&'static str),
    /// A Multi* with a member of the wrong type.
    #[error("a {outer} contains a {inner}")]
    BadMember {
        /// The collection type.
        outer: GeometryKind,
        /// The member type found.
        inner: GeometryKind,
    },
    /// Nesting too deep.
    #[error("geometry collections are nested too deeply")]
    TooDeep,
}

/// The simple-feature geometry types a GeoPackage layer may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum GeometryKind {
    /// Any type.
    Geometry,
    /// Point.
    Point,
    /// LineString.
    LineString,
    /// Polygon.
    Polygon,
    /// MultiPoint.
    MultiPoint,
    /// MultiLineString.
    MultiLineString,
    /// MultiPolygon.
    MultiPolygon,
    /// GeometryCollection.
    GeometryCollection,
}

impl GeometryKind {
    /// Parses the upper-case name used in `gpkg_geometry_columns` (case-insensitive).
    pub fn from_gpkg_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "GEOMETRY" => Self::Geometry,
            "POINT" => Self::Point,
            "LINESTRING" => Self::LineString,
            "POLYGON" => Self::Polygon,
            "MULTIPOINT" => Self::MultiPoint,
            "MULTILINESTRING" => Self::MultiLineString,
            "MULTIPOLYGON" => Self::MultiPolygon,
            "GEOMETRYCOLLECTION" => Self::GeometryCollection,
            _ => return None,
        })
    }

    /// The upper-case name for `gpkg_geometry_columns`.
    pub fn gpkg_name(self) -> &'static str {
        match self {
            Self::Geometry => "GEOMETRY",
            Self::Point => "POINT",
            Self::LineString => "LINESTRING",
            Self::Polygon => "POLYGON",
            Self::MultiPoint => "MULTIPOINT",
            Self::MultiLineString => "MULTILINESTRING",
            Self::MultiPolygon => "MULTIPOLYGON",
            Self::GeometryCollection => "GEOMETRYCOLLECTION",
        }
    }

    fn from_wkb_code(code: u32) -> Result<Self, GeomError> {
        Ok(match code {
            0 => Self::Geometry,
            1 => Self::Point,
            2 => Self::LineString,
            3 => Self::Polygon,
            4 => Self::MultiPoint,
            5 => Self::MultiLineString,
            6 => Self::MultiPolygon,
            7 => Self::GeometryCollection,
            8 => return Err(GeomError::Unsupported("CircularString")),
            9 => return Err(GeomError::Unsupported("CompoundCurve")),
            10 => return Err(GeomError::Unsupported("CurvePolygon")),
            11 => return Err(GeomError::Unsupported("MultiCurve")),
            12 => return Err(GeomError::Unsupported("MultiSurface")),
            15..=17 => return Err(GeomError::Unsupported("PolyhedralSurface/TIN")),
            c => return Err(GeomError::UnknownType(c)),
        })
    }

    fn wkb_code(self) -> u32 {
        match self {
            Self::Geometry => 0,
            Self::Point => 1,
            Self::LineString => 2,
            Self::Polygon => 3,
            Self::MultiPoint => 4,
            Self::MultiLineString => 5,
            Self::MultiPolygon => 6,
            Self::GeometryCollection => 7,
        }
    }

    /// The Multi* type that holds this single type, if any.
    pub fn multi(self) -> Option<Self> {
        match self {
            Self::Point => Some(Self::MultiPoint),
            Self::LineString => Some(Self::MultiLineString),
            Self::Polygon => Some(Self::MultiPolygon),
            _ => None,
        }
    }

    /// How a geometry of type `self` fits a column declared as `column`.
    pub fn fit(self, column: Self) -> Fit {
        if self == column
            || column == Self::Geometry
            || (column == Self::GeometryCollection && self != Self::Geometry)
        {
            Fit::AsIs
        } else if self.multi() == Some(column) {
            Fit::WrapInMulti
        } else {
            Fit::No
        }
    }
}

/// Whether a geometry can be stored in a column of a given declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Stored unchanged.
    AsIs,
    /// Stored as a one-member Multi* (coordinates unchanged).
    WrapInMulti,
    /// Does not fit.
    No,
}

impl fmt::Display for GeometryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Geometry => "Geometry",
            Self::Point => "Point",
            Self::LineString => "LineString",
            Self::Polygon => "Polygon",
            Self::MultiPoint => "MultiPoint",
            Self::MultiLineString => "MultiLineString",
            Self::MultiPolygon => "MultiPolygon",
            Self::GeometryCollection => "GeometryCollection",
        })
    }
}

/// An axis-aligned box `[minx, miny, maxx, maxy]`.
pub type Bbox = [f64; 4];

/// Grows `acc` to cover `b`.
pub fn bbox_union(acc: &mut Option<Bbox>, b: Bbox) {
    *acc = Some(match *acc {
        None => b,
        Some(a) => [
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[2].max(b[2]),
            a[3].max(b[3]),
        ],
    });
}

/// The bounding box of a geometry, `None` for an empty one.
pub fn bbox_of(g: &geo::Geometry<f64>) -> Option<Bbox> {
    use geo::BoundingRect;
    g.bounding_rect()
        .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y])
}
