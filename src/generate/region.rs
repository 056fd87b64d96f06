//! The modelled region: its rectangle in EPSG:25832, four municipalities with their
//! villages, municipality boundaries, and the municipality a point lies in.

use geo::{Area, Coord, LineString, Polygon, Validation};

use super::GenerateError;
use super::rng::{noise, tag};
use crate::crs;

/// The CRS of every generated layer.
pub const SRID: i32 = 25832;

/// The region in lon/lat: west, south, east, north.
pub const BBOX_LONLAT: [f64; 4] = [10.55, 51.38, 11.10, 51.65];

/// A municipality as written to the `municipalities` layer.
#[derive(Debug, Clone)]
pub struct Municipality {
    /// Name, as it appears in every layer's `municipality` column.
    pub name: &'static str,
    /// Municipality key in the format of the official AGS.
    pub ags: &'static str,
    /// The point its Voronoi cell is built around.
    pub centre: Coord<f64>,
}

/// A village: the seed of parcel blocks, trails, parking and Kitas.
#[derive(Debug, Clone)]
pub struct Village {
    /// Name.
    pub name: &'static str,
    /// Index into [`World::munis`].
    pub muni: usize,
    /// Position in EPSG:25832.
    pub pos: Coord<f64>,
    /// The municipality's main place (larger built-up area).
    pub main: bool,
}

struct MuniDef {
    name: &'static str,
    ags: &'static str,
    lon: f64,
    lat: f64,
    /// Villages, main place first, with positions placed at least ~1.7 km inside the
    /// municipality's Voronoi cell so boundary noise never moves them out of it.
    villages: &'static [(&'static str, f64, f64)],
}

// The keys follow the AGS layout (Land 16, Kreis 062 Nordhausen / 065 Kyffhäuserkreis);
// they are illustrative, like everything else in this dataset.
const MUNICIPALITIES: [MuniDef; 4] = [
    MuniDef {
        name: "Ellrich",
        ags: "16062005",
        lon: 10.67,
        lat: 51.58,
        villages: &[
            ("Ellrich", 10.670, 51.580),
            ("Sülzhayn", 10.706, 51.607),
            ("Werna", 10.619, 51.576),
            ("Appenrode", 10.648, 51.553),
            ("Gudersleben", 10.634, 51.564),
            ("Woffleben", 10.692, 51.571),
            ("Rothesütte", 10.684, 51.629),
        ],
    },
    MuniDef {
        name: "Werther",
        ags: "16062063",
        lon: 10.75,
        lat: 51.53,
        villages: &[
            ("Werther", 10.750, 51.530),
            ("Großwechsungen", 10.707, 51.499),
            ("Haferungen", 10.733, 51.510),
            ("Pützlingen", 10.685, 51.512),
            ("Fronderode", 10.793, 51.548),
            ("Kehmstedt", 10.678, 51.481),
            ("Mauderode", 10.772, 51.559),
        ],
    },
    MuniDef {
        name: "Heringen/Helme",
        ags: "16062064",
        lon: 10.88,
        lat: 51.45,
        villages: &[
            ("Heringen", 10.880, 51.450),
            ("Auleben", 10.909, 51.428),
            ("Hamma", 10.844, 51.437),
            ("Uthleben", 10.830, 51.472),
            ("Windehausen", 10.858, 51.477),
            ("Görsbach", 10.902, 51.477),
        ],
    },
    MuniDef {
        name: "Kyffhäuserland",
        ags: "16065017",
        lon: 11.00,
        lat: 51.43,
        villages: &[
            ("Bendeleben", 11.000, 51.430),
            ("Badra", 10.978, 51.457),
            ("Rottleben", 11.043, 51.403),
            ("Steinthaleben", 10.971, 51.408),
            ("Seega", 11.050, 51.443),
            ("Hachelbich", 10.993, 51.396),
            ("Göllingen", 11.065, 51.419),
            ("Günserode", 11.029, 51.395),
        ],
    },
];

/// Boundary noise: (amplitude m, wavelength m) per octave. The summed slope stays well
/// below 1, so the displacement cannot fold a boundary over itself.
const OCTAVES: [(f64, f64); 2] = [(200.0, 3000.0), (50.0, 1000.0)];
/// The noise fades to zero over this distance from the region's edge, which stays straight.
const TAPER: f64 = 2500.0;
/// Spacing of boundary vertices before the noise is applied.
const DENSIFY: f64 = 200.0;
/// Farther than this from every Voronoi bisector, the noise cannot change the answer.
const SAFE_MARGIN: f64 = 250.0 * std::f64::consts::SQRT_2 + 30.0;

/// The region, its municipalities and villages.
#[derive(Debug, Clone)]
pub struct World {
    /// The seed everything is derived from.
    pub seed: u64,
    /// The largest EPSG:25832 rectangle inside [`BBOX_LONLAT`]: minx, miny, maxx, maxy.
    pub rect: [f64; 4],
    /// The four municipalities.
    pub munis: Vec<Municipality>,
    /// All villages.
    pub villages: Vec<Village>,
    /// Village indices interleaved by municipality (E0 W0 H0 K0 E1 ...), main places
    /// first, so consumers taking villages in turn cover every municipality at once.
    pub village_order: Vec<usize>,
    /// Municipality boundaries (index as in `munis`), sharing their common vertices.
    pub boundaries: Vec<Polygon<f64>>,
}

/// Rounds to centimetres, the precision of cadastral coordinates.
pub fn round_cm(c: Coord<f64>) -> Coord<f64> {
    Coord {
        x: (c.x * 100.0).round() / 100.0,
        y: (c.y * 100.0).round() / 100.0,
    }
}

impl World {
    /// Places the region for `seed` (positions are fixed; only boundary noise uses the seed).
    pub fn new(seed: u64) -> Result<World, GenerateError> {
        let rect = region_rect()?;
        let mut lonlat: Vec<(f64, f64)> = MUNICIPALITIES.iter().map(|m| (m.lon, m.lat)).collect();
        for m in &MUNICIPALITIES {
            lonlat.extend(m.villages.iter().map(|v| (v.1, v.2)));
        }
        crs::transform(crs::WGS84, SRID, &mut lonlat)?;
        let mut xy = lonlat.into_iter().map(|(x, y)| round_cm(Coord { x, y }));
        let mut munis = Vec::new();
        for m in &MUNICIPALITIES {
            let centre = xy.next().ok_or_else(|| internal("missing centre"))?;
            munis.push(Municipality {
                name: m.name,
                ags: m.ags,
                centre,
            });
        }
        let mut villages = Vec::new();
        for (mi, m) in MUNICIPALITIES.iter().enumerate() {
            for (k, v) in m.villages.iter().enumerate() {
                let pos = xy.next().ok_or_else(|| internal("missing village"))?;
                villages.push(Village {
                    name: v.0,
                    muni: mi,
                    pos,
                    main: k == 0,
                });
            }
        }
        let per_muni: Vec<Vec<usize>> = (0..munis.len())
            .map(|mi| {
                (0..villages.len())
                    .filter(|&i| villages[i].muni == mi)
                    .collect()
            })
            .collect();
        let most = per_muni.iter().map(Vec::len).max().unwrap_or(0);
        let village_order = (0..most)
            .flat_map(|round| {
                per_muni
                    .iter()
                    .filter_map(move |list| list.get(round).copied())
            })
            .collect();
        let mut world = World {
            seed,
            rect,
            munis,
            villages,
            village_order,
            boundaries: Vec::new(),
        };
        world.boundaries = world.build_boundaries()?;
        Ok(world)
    }

    /// The municipality (index) a point belongs to: inside its (noisy) boundary.
    pub fn municipality_at(&self, p: Coord<f64>) -> usize {
        let (nearest, margin) = self.nearest_centre(p);
        if margin > SAFE_MARGIN {
            return nearest;
        }
        (0..self.boundaries.len())
            .find(|&k| in_ring(&self.boundaries[k].exterior().0, p))
            .unwrap_or(nearest)
    }

    /// The nearest municipality centre and the distance to the nearest bisector.
    fn nearest_centre(&self, p: Coord<f64>) -> (usize, f64) {
        let d2 = |c: Coord<f64>| (p.x - c.x) * (p.x - c.x) + (p.y - c.y) * (p.y - c.y);
        let mut best = 0;
        for (i, m) in self.munis.iter().enumerate() {
            if d2(m.centre) < d2(self.munis[best].centre) {
                best = i;
            }
        }
        let ci = self.munis[best].centre;
        let margin = self
            .munis
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != best)
            .map(|(_, m)| {
                (d2(m.centre) - d2(ci)) / (2.0 * (m.centre - ci).x.hypot((m.centre - ci).y))
            })
            .fold(f64::INFINITY, f64::min);
        (best, margin)
    }

    /// The nearest village (index).
    pub fn nearest_village(&self, p: Coord<f64>) -> usize {
        let mut best = 0;
        let mut bd = f64::INFINITY;
        for (i, v) in self.villages.iter().enumerate() {
            let d = (p.x - v.pos.x).powi(2) + (p.y - v.pos.y).powi(2);
            if d < bd {
                bd = d;
                best = i;
            }
        }
        best
    }

    /// Clamps a point into the region, `margin` metres from its edge.
    pub fn clamp(&self, p: Coord<f64>, margin: f64) -> Coord<f64> {
        let r = self.rect;
        Coord {
            x: p.x.clamp(r[0] + margin, r[2] - margin),
            y: p.y.clamp(r[1] + margin, r[3] - margin),
        }
    }

    /// Whether a point lies in the region, at least `margin` from its edge.
    pub fn inside(&self, p: Coord<f64>, margin: f64) -> bool {
        let r = self.rect;
        p.x >= r[0] + margin && p.x <= r[2] - margin && p.y >= r[1] + margin && p.y <= r[3] - margin
    }

    /// The boundary displacement at `p`: smooth, zero on the region's edge.
    fn displacement(&self, p: Coord<f64>) -> Coord<f64> {
        let r = self.rect;
        let edge = (p.x - r[0]).min(r[2] - p.x).min(p.y - r[1]).min(r[3] - p.y);
        if edge <= 0.0 {
            return Coord { x: 0.0, y: 0.0 };
        }
        let t = (edge / TAPER).min(1.0);
        let taper = t * t * (3.0 - 2.0 * t);
        let base = self.seed ^ tag("boundary");
        let mut d = Coord { x: 0.0, y: 0.0 };
        for (k, (amp, wave)) in OCTAVES.iter().enumerate() {
            let k = 2 * k as u64;
            d.x += amp * noise(base.wrapping_add(k), p.x / wave, p.y / wave);
            d.y += amp * noise(base.wrapping_add(k + 1), p.x / wave, p.y / wave);
        }
        Coord {
            x: d.x * taper,
            y: d.y * taper,
        }
    }

    /// Voronoi cells of the centres in the rectangle, densified and displaced by noise.
    fn build_boundaries(&self) -> Result<Vec<Polygon<f64>>, GenerateError> {
        let r = self.rect;
        let rect = vec![
            Coord { x: r[0], y: r[1] },
            Coord { x: r[2], y: r[1] },
            Coord { x: r[2], y: r[3] },
            Coord { x: r[0], y: r[3] },
        ];
        let mut cells = Vec::new();
        for (i, mi) in self.munis.iter().enumerate() {
            let mut cell = rect.clone();
            for (j, mj) in self.munis.iter().enumerate() {
                if i != j {
                    let n = mj.centre - mi.centre;
                    let mid = (mi.centre + mj.centre) / 2.0;
                    cell = clip_half_plane(&cell, n, n.x * mid.x + n.y * mid.y);
                }
            }
            cells.push(cell);
        }
        // Clipping computes a shared Voronoi vertex separately for each cell; snap the
        // near-equal copies to one value so neighbours share their vertices exactly.
        let mut canon: Vec<Coord<f64>> = Vec::new();
        for cell in &mut cells {
            for c in cell.iter_mut() {
                match canon
                    .iter()
                    .find(|k| (k.x - c.x).abs() < 1e-3 && (k.y - c.y).abs() < 1e-3)
                {
                    Some(k) => *c = *k,
                    None => canon.push(*c),
                }
            }
            cell.dedup();
            while cell.len() > 1 && cell.first() == cell.last() {
                cell.pop();
            }
        }
        let mut out = Vec::new();
        for cell in &cells {
            let mut ring = Vec::new();
            for k in 0..cell.len() {
                densify(cell[k], cell[(k + 1) % cell.len()], &mut ring);
            }
            let mut ring: Vec<Coord<f64>> = ring
                .into_iter()
                .map(|p| round_cm(p + self.displacement(p)))
                .collect();
            ring.dedup();
            if let Some(&first) = ring.first() {
                ring.push(first);
            }
            let poly = Polygon::new(LineString(ring), vec![]);
            if let Err(e) = poly.check_validation() {
                return Err(internal(&format!(
                    "a municipality boundary is invalid: {e}"
                )));
            }
            out.push(poly);
        }
        // Valid cells inside the rectangle whose areas add up to it neither overlap nor
        // leave gaps (an overlap would have to be matched by a gap of equal area, which
        // the intersection test in this module's tests rules out).
        let total: f64 = out.iter().map(|p| p.unsigned_area()).sum();
        if (total - (r[2] - r[0]) * (r[3] - r[1])).abs() > 1.0 {
            return Err(internal("municipality boundaries leave gaps or overlap"));
        }
        Ok(out)
    }
}

fn internal(what: &str) -> GenerateError {
    GenerateError::Internal(what.to_string())
}

/// The largest EPSG:25832 rectangle inside the lon/lat box, in whole metres.
fn region_rect() -> Result<[f64; 4], GenerateError> {
    let [w, s, e, n] = BBOX_LONLAT;
    const STEPS: usize = 20;
    let along = |a: (f64, f64), b: (f64, f64)| -> Vec<(f64, f64)> {
        (0..=STEPS)
            .map(|k| {
                let t = k as f64 / STEPS as f64;
                (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
            })
            .collect()
    };
    let mut west = along((w, s), (w, n));
    let mut east = along((e, s), (e, n));
    let mut south = along((w, s), (e, s));
    let mut north = along((w, n), (e, n));
    for edge in [&mut west, &mut east, &mut south, &mut north] {
        crs::transform(crs::WGS84, SRID, edge)?;
    }
    let max =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).fold(f64::MIN, f64::max);
    let min =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).fold(f64::MAX, f64::min);
    Ok([
        max(&west, |p| p.0).ceil(),
        max(&south, |p| p.1).ceil(),
        min(&east, |p| p.0).floor(),
        min(&north, |p| p.1).floor(),
    ])
}

/// Keeps the part of a convex polygon where `n·p <= c` (Sutherland-Hodgman, one plane).
fn clip_half_plane(poly: &[Coord<f64>], n: Coord<f64>, c: f64) -> Vec<Coord<f64>> {
    let side = |p: Coord<f64>| n.x * p.x + n.y * p.y - c;
    let mut out = Vec::with_capacity(poly.len() + 1);
    for k in 0..poly.len() {
        let (p, q) = (poly[k], poly[(k + 1) % poly.len()]);
        let (dp, dq) = (side(p), side(q));
        if dp <= 0.0 {
            out.push(p);
        }
        if (dp < 0.0 && dq > 0.0) || (dp > 0.0 && dq < 0.0) {
            out.push(p + (q - p) * (dp / (dp - dq)));
        }
    }
    out
}

/// Appends `a` and the points splitting `a`-`b` into pieces of at most [`DENSIFY`],
/// computed from the lexicographically smaller end so both neighbours get equal values.
fn densify(a: Coord<f64>, b: Coord<f64>, out: &mut Vec<Coord<f64>>) {
    out.push(a);
    let n = ((b - a).x.hypot((b - a).y) / DENSIFY).ceil().max(1.0) as usize;
    let forward = (a.x, a.y) <= (b.x, b.y);
    let (lo, hi) = if forward { (a, b) } else { (b, a) };
    let mut inner: Vec<Coord<f64>> = (1..n)
        .map(|s| lo + (hi - lo) * (s as f64 / n as f64))
        .collect();
    if !forward {
        inner.reverse();
    }
    out.extend(inner);
}

/// Crossing-number point-in-ring test (closed ring).
pub fn in_ring(ring: &[Coord<f64>], p: Coord<f64>) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        if (a.y > p.y) != (b.y > p.y) && p.x < a.x + (p.y - a.y) / (b.y - a.y) * (b.x - a.x) {
            inside = !inside;
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::BooleanOps;

    #[test]
    fn boundaries_tile_the_rectangle() {
        for seed in [1, 2, 20240607] {
            let w = World::new(seed).unwrap();
            let r = w.rect;
            let total: f64 = w.boundaries.iter().map(|p| p.unsigned_area()).sum();
            let rect_area = (r[2] - r[0]) * (r[3] - r[1]);
            assert!(
                (total - rect_area).abs() < 1.0,
                "gap or overlap: {total} vs {rect_area}"
            );
            for i in 0..4 {
                for j in i + 1..4 {
                    let overlap = w.boundaries[i]
                        .intersection(&w.boundaries[j])
                        .unsigned_area();
                    assert!(overlap < 1e-3, "{i} and {j} overlap by {overlap} m²");
                }
            }
            for b in &w.boundaries {
                assert!(b.exterior().0.len() > 20);
            }
        }
    }

    #[test]
    fn villages_lie_in_their_municipality() {
        let w = World::new(5).unwrap();
        assert_eq!(w.village_order.len(), w.villages.len());
        assert_eq!(
            &w.village_order[..4]
                .iter()
                .map(|&i| w.villages[i].muni)
                .collect::<Vec<_>>(),
            &[0, 1, 2, 3]
        );
        for v in &w.villages {
            assert_eq!(w.municipality_at(v.pos), v.muni, "{}", v.name);
            assert!(w.inside(v.pos, 1000.0), "{}", v.name);
        }
    }

    #[test]
    fn fast_path_agrees_with_the_polygons() {
        let w = World::new(9).unwrap();
        let r = w.rect;
        for i in 0..60 {
            for j in 0..60 {
                let p = Coord {
                    x: r[0] + (i as f64 + 0.5) * (r[2] - r[0]) / 60.0,
                    y: r[1] + (j as f64 + 0.5) * (r[3] - r[1]) / 60.0,
                };
                let by_polygon = (0..4).find(|&k| in_ring(&w.boundaries[k].exterior().0, p));
                assert_eq!(by_polygon, Some(w.municipality_at(p)));
            }
        }
    }
}
