//! OGC API Features Part 2: the CRS a response is written in (`crs`) and the CRS a
//! `bbox` is given in (`bbox-crs`), as OGC URIs, in each CRS's own axis order.

use geo::{Coord, Geometry};

use super::problem::Problem;
use crate::crs::{self, CrsError};
use crate::geom::Bbox;
use crate::index::for_each_coord_mut;

/// CRS84 (lon/lat), the default.
pub const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

/// EPSG codes offered besides CRS84 (a layer's storage CRS is offered too).
pub const OFFERED: &[i32] = &[4326, 4258, 25832, 25833, 3857, 31467, 31468, 31469];

/// CRSs whose first axis is latitude or northing (EPSG's axis order, which Part 2
/// requires): geographic ETRS89/WGS 84 and the DHDN Gauss-Krüger zones.
const NORTH_FIRST: &[i32] = &[4326, 4258, 31466, 31467, 31468, 31469];

/// A CRS for output or for a bbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutCrs {
    /// EPSG code; `None` for CRS84.
    pub epsg: Option<i32>,
    /// The URI, for `Content-Crs` and links.
    pub uri: String,
}

/// The OGC URI of an EPSG code.
pub fn epsg_uri(code: i32) -> String {
    format!("http://www.opengis.net/def/crs/EPSG/0/{code}")
}

impl OutCrs {
    /// CRS84.
    pub fn crs84() -> Self {
        OutCrs {
            epsg: None,
            uri: CRS84.into(),
        }
    }

    /// Parses an OGC CRS URI (or `EPSG:n`), accepting only what this collection offers.
    pub fn parse(s: &str, storage: i32) -> Result<Self, Problem> {
        let t = s.trim().trim_start_matches('[').trim_end_matches(']');
        if t == CRS84 || t.eq_ignore_ascii_case("OGC:CRS84") {
            return Ok(Self::crs84());
        }
        let code = t
            .strip_prefix("http://www.opengis.net/def/crs/EPSG/0/")
            .or_else(|| t.strip_prefix("EPSG:"))
            .and_then(|c| c.parse::<i32>().ok());
        match code {
            Some(c) if OFFERED.contains(&c) || c == storage => Ok(OutCrs {
                epsg: Some(c),
                uri: epsg_uri(c),
            }),
            _ => Err(Problem::bad_request(format!(
                "CRS '{s}' is not offered; use {CRS84} or one of {}",
                OFFERED
                    .iter()
                    .chain(std::iter::once(&storage))
                    .map(|c| epsg_uri(*c))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Whether the first axis is latitude or northing.
    pub fn north_first(&self) -> bool {
        self.epsg.is_some_and(|c| NORTH_FIRST.contains(&c))
    }

    /// Whether coordinates are degrees (for rounding).
    pub fn degrees(&self) -> bool {
        matches!(self.epsg, None | Some(4326) | Some(4258))
    }

    /// A Web Mercator geometry in this CRS, axes in the CRS's order.
    pub fn convert(&self, g: &Geometry<f64>) -> Result<Geometry<f64>, CrsError> {
        let mut g = g.clone();
        match self.epsg {
            None => for_each_coord_mut(&mut g, &mut |c| {
                let (lon, lat) = crs::mercator_to_lonlat(c.x, c.y);
                *c = Coord { x: lon, y: lat };
            }),
            Some(code) => {
                let mut xy = Vec::new();
                for_each_coord_mut(&mut g, &mut |c| xy.push((c.x, c.y)));
                crs::transform(crs::WEB_MERCATOR, code, &mut xy)?;
                let swap = self.north_first();
                let mut it = xy.into_iter();
                for_each_coord_mut(&mut g, &mut |c| {
                    if let Some((x, y)) = it.next() {
                        *c = if swap {
                            Coord { x: y, y: x }
                        } else {
                            Coord { x, y }
                        };
                    }
                });
            }
        }
        // Digits beyond 0.1 mm (1e-9 degrees, 1e-4 metres) are noise from the transforms.
        let scale = if self.degrees() { 1e9 } else { 1e4 };
        for_each_coord_mut(&mut g, &mut |c| {
            c.x = (c.x * scale).round() / scale;
            c.y = (c.y * scale).round() / scale;
        });
        Ok(g)
    }

    /// A geometry given in this CRS (its axis order) in Web Mercator.
    pub fn to_mercator(&self, mut g: Geometry<f64>) -> Result<Geometry<f64>, CrsError> {
        let swap = self.north_first();
        let mut xy = Vec::new();
        for_each_coord_mut(&mut g, &mut |c| {
            xy.push(if swap { (c.y, c.x) } else { (c.x, c.y) })
        });
        if self.degrees() {
            if let Some(&(lon, lat)) = xy.iter().find(|(x, y)| y.abs() > 90.0 || x.abs() > 180.0) {
                return Err(CrsError::Transform {
                    from: self.epsg.unwrap_or(crs::WGS84),
                    to: crs::WEB_MERCATOR,
                    msg: format!("{lon} {lat} is not a longitude/latitude pair"),
                });
            }
            for p in &mut xy {
                *p = crs::lonlat_to_mercator(p.0, p.1);
            }
        } else {
            crs::transform(self.epsg.unwrap_or(crs::WGS84), crs::WEB_MERCATOR, &mut xy)?;
        }
        let mut it = xy.into_iter();
        for_each_coord_mut(&mut g, &mut |c| {
            if let Some((x, y)) = it.next() {
                *c = Coord { x, y };
            }
        });
        Ok(g)
    }

    /// A bbox given in this CRS (its axis order) as an envelope in Web Mercator.
    pub fn bbox_to_mercator(&self, b: [f64; 4]) -> Result<Bbox, Problem> {
        let b = if self.north_first() {
            [b[1], b[0], b[3], b[2]]
        } else {
            b
        };
        if self.epsg.is_none() || self.degrees() {
            if b[1] < -90.0 || b[3] > 90.0 {
                return Err(Problem::bad_request("bbox latitudes must lie within ±90"));
            }
            let (x0, y0) = crs::lonlat_to_mercator(b[0], b[1]);
            let (x1, y1) = crs::lonlat_to_mercator(b[2], b[3]);
            return Ok([x0, y0, x1, y1]);
        }
        let code = self.epsg.unwrap_or(crs::WGS84);
        crs::transform_bounds(code, crs::WEB_MERCATOR, b)
            .map_err(|e| Problem::bad_request(format!("bbox cannot be transformed: {e}")))
    }
}
