//! Douglas–Peucker importance of every vertex of the lines and polygon rings of a layer,
//! computed once per snapshot and used at every zoom: simplification in a tile is then a
//! comparison per vertex instead of a Douglas–Peucker run per ring and tile.
//!
//! A vertex's importance is the squared distance (EPSG:3857 metres) at which
//! Douglas–Peucker would drop it, capped by its parent split's, so keeping the vertices
//! whose importance exceeds t² gives Douglas–Peucker's result at tolerance t. It is kept
//! as one byte on a logarithmic scale (steps of 2^¼ in squared distance, 9 % in distance):
//! a quarter of the memory of an `f32`, the same per-tile work, and a tolerance rounded to
//! that grid. The cap keeps the codes monotone, so a kept vertex's parents are kept too.

use geo::{Coord, Geometry, LineString};

use crate::index::Feature;

/// Code of the end points of a line or ring: always kept.
const ALWAYS: u8 = u8::MAX;

/// The importance code of a squared distance: 0 for none, [`ALWAYS`] for infinite.
pub fn code(d2: f64) -> u8 {
    if d2.is_infinite() {
        return ALWAYS;
    }
    if d2.is_nan() || d2 <= 0.0 {
        return 0;
    }
    (d2.log2() * 4.0 + 128.0)
        .floor()
        .clamp(1.0, (ALWAYS - 1) as f64) as u8
}

/// Importance codes of the vertices of every line and polygon feature of a base, all in
/// one array (a feature's vertices in the order [`rings`] visits them).
#[derive(Debug, Default)]
pub struct LayerImportance {
    codes: Vec<u8>,
    /// `codes[start[i]..start[i + 1]]` belongs to feature `i`.
    start: Vec<u32>,
}

impl LayerImportance {
    /// Computes the codes of every feature.
    pub fn build(features: &[Feature]) -> LayerImportance {
        let mut codes = Vec::new();
        let mut start = Vec::with_capacity(features.len() + 1);
        let mut stack = Vec::new();
        start.push(0);
        for f in features {
            let before = codes.len();
            if let Some(g) = &f.geometry {
                append(g, &mut codes, &mut stack);
            }
            // Past 4 billion vertices a feature simply goes without (it is simplified
            // per tile instead).
            match u32::try_from(codes.len()) {
                Ok(end) => start.push(end),
                Err(_) => {
                    codes.truncate(before);
                    start.push(before as u32);
                }
            }
        }
        codes.shrink_to_fit();
        LayerImportance { codes, start }
    }

    /// The codes of feature `i`, if it is a line or polygon.
    pub fn of(&self, i: usize) -> Option<&[u8]> {
        let (a, b) = (
            *self.start.get(i)? as usize,
            *self.start.get(i + 1)? as usize,
        );
        (b > a).then(|| &self.codes[a..b])
    }
}

/// The codes of one geometry (an edited feature's), if it is a line or polygon.
pub fn of_geometry(g: &Geometry<f64>) -> Option<Box<[u8]>> {
    let mut codes = Vec::new();
    append(g, &mut codes, &mut Vec::new());
    (!codes.is_empty()).then(|| codes.into_boxed_slice())
}

/// The lines or rings of a geometry in the order their codes are stored: lines in order;
/// per polygon its exterior, then its holes. Empty for points and collections.
pub fn rings(g: &Geometry<f64>) -> impl Iterator<Item = &LineString<f64>> {
    let (lines, polygons): (&[LineString<f64>], &[geo::Polygon<f64>]) = match g {
        Geometry::LineString(l) => (std::slice::from_ref(l), &[]),
        Geometry::MultiLineString(m) => (&m.0, &[]),
        Geometry::Polygon(p) => (&[], std::slice::from_ref(p)),
        Geometry::MultiPolygon(m) => (&[], &m.0),
        _ => (&[], &[]),
    };
    lines.iter().chain(
        polygons
            .iter()
            .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors())),
    )
}

fn append(g: &Geometry<f64>, out: &mut Vec<u8>, stack: &mut Vec<(usize, usize, u8)>) {
    for r in rings(g) {
        dp_codes(&r.0, out, stack);
    }
}

/// Appends the codes of one line or closed ring. A closed ring's first and last points
/// coincide, so its first split is at the point farthest from them, as Douglas–Peucker on
/// the closed ring does.
fn dp_codes(p: &[Coord<f64>], out: &mut Vec<u8>, stack: &mut Vec<(usize, usize, u8)>) {
    let base = out.len();
    out.resize(base + p.len(), 0);
    if p.is_empty() {
        return;
    }
    out[base] = ALWAYS;
    out[base + p.len() - 1] = ALWAYS;
    stack.clear();
    stack.push((0, p.len() - 1, ALWAYS));
    while let Some((a, b, cap)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (mut best, mut best_d) = (a + 1, -1.0f64);
        for (i, c) in p.iter().enumerate().take(b).skip(a + 1) {
            let d = seg_dist2(*c, p[a], p[b]);
            if d > best_d {
                best = i;
                best_d = d;
            }
        }
        let imp = code(best_d).min(cap);
        out[base + best] = imp;
        stack.push((a, best, imp));
        stack.push((best, b, imp));
    }
}

fn seg_dist2(p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.x - a.x) * dx + (p.y - a.y) * dy) / len2).clamp(0.0, 1.0)
    };
    let (x, y) = (a.x + t * dx - p.x, a.y + t * dy - p.y);
    x * x + y * y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_monotone_and_bounded() {
        assert_eq!(code(0.0), 0);
        assert_eq!(code(f64::INFINITY), ALWAYS);
        assert!(code(1e-30) >= 1 && code(1e30) < ALWAYS);
        let mut last = 0;
        for k in -200..200 {
            let c = code(1.1f64.powi(k));
            assert!(c >= last);
            last = c;
        }
        // Four steps per doubling of the squared distance.
        assert_eq!(code(2.0), code(1.0) + 4);
        assert_eq!(code(16.0), code(1.0) + 16);
    }

    #[test]
    fn a_bend_outlives_a_wiggle() {
        let pts: Vec<Coord<f64>> = [(0.0, 0.0), (1.0, 0.1), (2.0, 0.0), (2.0, 5.0)]
            .iter()
            .map(|&(x, y)| Coord { x, y })
            .collect();
        let mut out = Vec::new();
        dp_codes(&pts, &mut out, &mut Vec::new());
        assert_eq!((out[0], out[3]), (ALWAYS, ALWAYS));
        // (2, 0) is the bend, (1, 0.1) a wiggle 0.1 off the line that remains.
        assert!(out[2] > out[1]);
        assert!(out[1] <= code(0.01) && out[1] >= code(0.01) - 1);
    }
}
