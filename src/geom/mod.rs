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
    /// Polyhedral surfaces and TINs.
    #[error(
        "{0} geometries are not supported; convert them to polygons (QGIS: Vector > Geometry Tools > Multipart to Singleparts, or export as MultiPolygon) before exporting"
    )]
    Unsupported(&'static str),
    /// A circular string without an odd number (≥ 3) of points.
    #[error("a circular string needs an odd number of at least 3 points, this one has {0}")]
    BadArc(usize),
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
    /// CircularString (arcs through three points each).
    CircularString,
    /// CompoundCurve (line and arc pieces joined).
    CompoundCurve,
    /// CurvePolygon (rings that may contain arcs).
    CurvePolygon,
    /// MultiCurve.
    MultiCurve,
    /// MultiSurface.
    MultiSurface,
}

impl GeometryKind {
    /// Whether this is one of the curve types of the GeoPackage geometry-types extension.
    pub fn is_curve(self) -> bool {
        matches!(
            self,
            Self::CircularString
                | Self::CompoundCurve
                | Self::CurvePolygon
                | Self::MultiCurve
                | Self::MultiSurface
        )
    }

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
            "CIRCULARSTRING" => Self::CircularString,
            "COMPOUNDCURVE" => Self::CompoundCurve,
            "CURVEPOLYGON" => Self::CurvePolygon,
            "MULTICURVE" => Self::MultiCurve,
            "MULTISURFACE" => Self::MultiSurface,
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
            Self::CircularString => "CIRCULARSTRING",
            Self::CompoundCurve => "COMPOUNDCURVE",
            Self::CurvePolygon => "CURVEPOLYGON",
            Self::MultiCurve => "MULTICURVE",
            Self::MultiSurface => "MULTISURFACE",
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
            8 => Self::CircularString,
            9 => Self::CompoundCurve,
            10 => Self::CurvePolygon,
            11 => Self::MultiCurve,
            12 => Self::MultiSurface,
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
            Self::CircularString => 8,
            Self::CompoundCurve => 9,
            Self::CurvePolygon => 10,
            Self::MultiCurve => 11,
            Self::MultiSurface => 12,
        }
    }

    /// The Multi* type that holds this single type, if any.
    pub fn multi(self) -> Option<Self> {
        match self {
            Self::Point => Some(Self::MultiPoint),
            Self::LineString => Some(Self::MultiLineString),
            Self::Polygon => Some(Self::MultiPolygon),
            Self::CircularString | Self::CompoundCurve => Some(Self::MultiCurve),
            Self::CurvePolygon => Some(Self::MultiSurface),
            _ => None,
        }
    }

    /// The single type a Multi* holds, if this is one of the simple ones.
    pub fn single(self) -> Option<Self> {
        match self {
            Self::MultiPoint => Some(Self::Point),
            Self::MultiLineString => Some(Self::LineString),
            Self::MultiPolygon => Some(Self::Polygon),
            _ => None,
        }
    }

    /// How a geometry of type `self` fits a column declared as `column`: unchanged when
    /// it is that type or one of its subtypes (a Polygon is a CurvePolygon without arcs),
    /// wrapped when the column holds the Multi* of it.
    pub fn fit(self, column: Self) -> Fit {
        let subtype = matches!(
            (self, column),
            (Self::Polygon, Self::CurvePolygon)
                | (Self::MultiPolygon, Self::MultiSurface)
                | (Self::MultiLineString, Self::MultiCurve)
                | (Self::LineString | Self::CircularString, Self::CompoundCurve)
        );
        if self == column
            || subtype
            || column == Self::Geometry
            || (column == Self::GeometryCollection && self != Self::Geometry)
        {
            Fit::AsIs
        } else if self.multi() == Some(column)
            || matches!(
                (self, column),
                (Self::Polygon, Self::MultiSurface) | (Self::LineString, Self::MultiCurve)
            )
        {
            Fit::WrapInMulti
        } else if column.multi() == Some(self) || self.single() == Some(column) {
            Fit::UnwrapOne
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
    /// A Multi* whose one member is stored as that member (more members do not fit).
    UnwrapOne,
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
            Self::CircularString => "CircularString",
            Self::CompoundCurve => "CompoundCurve",
            Self::CurvePolygon => "CurvePolygon",
            Self::MultiCurve => "MultiCurve",
            Self::MultiSurface => "MultiSurface",
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
