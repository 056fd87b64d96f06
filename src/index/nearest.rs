//! Nearest features to a point, walking the R-tree outwards by envelope distance and
//! stopping once no unseen envelope can hold anything nearer.

use std::collections::HashSet;

use geo::{Closest, ClosestPoint, Distance, Geodesic, Point};

use super::Layer;
use crate::crs;

/// Web Mercator stretches ground distances by 1/cos(latitude); envelopes are walked in
/// Mercator units, so the ground bound uses the query latitude with this margin for
/// the change of scale across a search (1 % covers ±70 km at 51°N).
const SCALE_MARGIN: f64 = 0.98;

/// A nearest-features search.
#[derive(Debug, Clone, Copy)]
pub struct Near {
    /// The point in EPSG:3857.
    pub point: [f64; 2],
    /// Only features within this many metres.
    pub max_metres: Option<f64>,
}

impl Near {
    fn lonlat(&self) -> Point<f64> {
        let (lon, lat) = crs::mercator_to_lonlat(self.point[0], self.point[1]);
        Point::new(lon, lat)
    }

    /// Mercator units → a lower bound on ground metres near the query point.
    fn ground_factor(&self) -> f64 {
        self.lonlat().y().to_radians().cos().max(1e-6) * SCALE_MARGIN
    }
}

impl Layer {
    /// Geodesic distance in metres from the query point to the feature in `slot` (0
    /// inside a polygon); `None` for a feature without geometry. The closest point is
    /// found in Web Mercator, then measured on the ellipsoid.
    pub fn distance_metres(&self, near: &Near, slot: usize) -> Option<f64> {
        let g = self.feature(slot).geometry.as_ref()?;
        let q = Point::new(near.point[0], near.point[1]);
        let c = match g.closest_point(&q) {
            Closest::Intersection(_) => return Some(0.0),
            Closest::SinglePoint(p) => p,
            Closest::Indeterminate => return None,
        };
        let (lon, lat) = crs::mercator_to_lonlat(c.x(), c.y());
        Some(Geodesic.distance(near.lonlat(), Point::new(lon, lat)))
    }

    /// Features for which `keep` holds, nearest first (ties by fid), with their distance
    /// in metres: the first `n`, or all within `near.max_metres` when `n` is `None`.
    pub fn nearest(
        &self,
        near: &Near,
        n: Option<usize>,
        keep: impl Fn(usize) -> bool,
    ) -> Vec<(usize, f64)> {
        if n == Some(0) {
            return Vec::new();
        }
        let factor = near.ground_factor();
        let mut seen = HashSet::new();
        // (distance, fid, slot): ties are broken by fid, as a fresh snapshot would.
        let mut best: Vec<(f64, i64, usize)> = Vec::new();
        let consider = |slot: usize, best: &mut Vec<(f64, i64, usize)>| {
            if !keep(slot) {
                return;
            }
            let Some(d) = self.distance_metres(near, slot) else {
                return;
            };
            if near.max_metres.is_some_and(|m| d > m) {
                return;
            }
            let fid = self.feature(slot).fid;
            let at = best.partition_point(|&(dj, fj, _)| (dj, fj) < (d, fid));
            best.insert(at, (d, fid, slot));
            if let Some(n) = n {
                best.truncate(n);
            }
        };
        for (hit, d2) in self.base().nearest_iter(&near.point) {
            let lower = d2.sqrt() * factor;
            if near.max_metres.is_some_and(|m| lower > m) {
                break;
            }
            if let Some(n) = n
                && best.len() >= n
                && best.get(n - 1).is_some_and(|(d, _, _)| lower > *d)
            {
                break;
            }
            let slot = hit.feature as usize;
            if self.overlay().hides(hit.feature) || !seen.insert(slot) {
                continue;
            }
            consider(slot, &mut best);
        }
        // The overlay is small: every changed feature is measured.
        let first = self.base().len();
        for (j, e) in self.overlay().entries().iter().enumerate() {
            if e.feature.is_some() {
                consider(first + j, &mut best);
            }
        }
        best.into_iter().map(|(d, _, s)| (s, d)).collect()
    }
}
