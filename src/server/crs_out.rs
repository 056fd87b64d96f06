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

/// A CRS for output or for a bbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutCrs {
    /// CRS id (an EPSG code, or a file's own CRS); `None` for CRS84.
    pub epsg: Option<i32>,
}

/// The OGC URI of an EPSG code.
pub fn epsg_uri(code: i32) -> String {
    format!("http://www.opengis.net/def/crs/EPSG/0/{code}")
}

/// The URI of a CRS id: the OGC URI of its EPSG code, or for a CRS known only by its
/// WKT, this server's `/crs/{id}` document.
pub fn crs_uri(id: i32, base: &str) -> String {
    match crs::epsg_of(id) {
        Some(code) => epsg_uri(code),
        None => format!("{base}/crs/{id}"),
    }
}

impl OutCrs {
    /// CRS84.
    pub fn crs84() -> Self {
        OutCrs { epsg: None }
    }

    /// The URI, for `Content-Crs` and links.
    pub fn uri(&self, base: &str) -> String {
        self.epsg
            .map_or_else(|| CRS84.to_string(), |id| crs_uri(id, base))
    }

    /// Parses an OGC CRS URI (or `EPSG:n`, or this server's `/crs/{id}`), accepting only
    /// what this collection offers.
    pub fn parse(s: &str, storage: i32) -> Result<Self, Problem> {
        let t = s.trim().trim_start_matches('[').trim_end_matches(']');
        if t == CRS84 || t.eq_ignore_ascii_case("OGC:CRS84") {
            return Ok(Self::crs84());
        }
        let code = t
            .strip_prefix("http://www.opengis.net/def/crs/EPSG/0/")
            .or_else(|| t.strip_prefix("EPSG:"))
            .and_then(|c| c.parse::<i32>().ok());
        let own = crs::epsg_of(storage).is_none()
            && t.rsplit_once("/crs/")
                .is_some_and(|(_, id)| id.parse::<i32>().ok() == Some(storage));
        match code {
            _ if own => Ok(OutCrs {
                epsg: Some(storage),
            }),
            Some(c) if OFFERED.contains(&c) || Some(c) == crs::epsg_of(storage) => {
                Ok(OutCrs { epsg: Some(c) })
            }
            _ => Err(Problem::bad_request(format!(
                "CRS '{s}' is not offered; use {CRS84} or one of {}",
                OFFERED
                    .iter()
                    .copied()
                    .chain(crs::epsg_of(storage))
                    .map(epsg_uri)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Whether the first axis is latitude or northing, as PROJ defines the CRS.
    pub fn north_first(&self) -> bool {
        self.epsg
            .is_some_and(|c| crs::facts(c).is_ok_and(|f| f.north_first))
    }

    /// Whether coordinates are degrees (for rounding).
    pub fn degrees(&self) -> bool {
        self.epsg
            .is_none_or(|c| crs::facts(c).is_ok_and(|f| f.geographic))
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

    /// A bbox given in this CRS (its axis order) as envelopes in Web Mercator: two when a
    /// longitude/latitude box crosses the antimeridian (west > east, OGC API Features
    /// Part 1, 7.15.3), else one.
    pub fn bbox_to_mercator_boxes(&self, b: [f64; 4]) -> Result<Vec<Bbox>, Problem> {
        let b = if self.north_first() {
            [b[1], b[0], b[3], b[2]]
        } else {
            b
        };
        if b[1] > b[3] {
            return Err(Problem::bad_request(
                "bbox: the south edge lies above the north edge",
            ));
        }
        if self.epsg.is_none() || self.degrees() {
            if b[1] < -90.0 || b[3] > 90.0 {
                return Err(Problem::bad_request("bbox latitudes must lie within ±90"));
            }
            let merc = |w: f64, e: f64| {
                let (x0, y0) = crs::lonlat_to_mercator(w, b[1]);
                let (x1, y1) = crs::lonlat_to_mercator(e, b[3]);
                [x0, y0, x1, y1]
            };
            return Ok(if b[0] > b[2] {
                vec![merc(b[0], 180.0), merc(-180.0, b[2])]
            } else {
                vec![merc(b[0], b[2])]
            });
        }
        if b[0] > b[2] {
            return Err(Problem::bad_request(
                "bbox: the west edge lies east of the east edge; only a longitude/latitude bbox may cross the antimeridian",
            ));
        }
        let code = self.epsg.unwrap_or(crs::WGS84);
        crs::transform_bounds(code, crs::WEB_MERCATOR, b)
            .map(|m| vec![m])
            .map_err(|e| Problem::bad_request(format!("bbox cannot be transformed: {e}")))
    }
}
