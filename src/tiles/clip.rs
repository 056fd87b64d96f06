//! Clipping to the buffered tile square, in tile coordinates.
//!
//! Lines are cut into the parts inside the box (Liang–Barsky per segment); polygon rings
//! are clipped with Sutherland–Hodgman, which keeps rings and holes apart and may leave
//! edges along the box border — harmless, because they lie in the buffer outside the
//! visible tile.

/// A point in tile units.
pub type Pt = [f64; 2];

/// An axis-aligned clip box `[min, max]` on both axes (the buffered tile).
#[derive(Debug, Clone, Copy)]
pub struct ClipBox {
    /// Lower bound on x and y.
    pub min: f64,
    /// Upper bound on x and y.
    pub max: f64,
}

impl ClipBox {
    fn inside(&self, p: Pt) -> bool {
        p[0] >= self.min && p[0] <= self.max && p[1] >= self.min && p[1] <= self.max
    }

    /// Whether a bbox `[minx, miny, maxx, maxy]` lies entirely inside.
    pub fn contains_bbox(&self, b: [f64; 4]) -> bool {
        b[0] >= self.min && b[1] >= self.min && b[2] <= self.max && b[3] <= self.max
    }
}

/// Clips a polyline; appends each inside part (≥ 2 points) to `out` and its end
/// offset to `ends` (one flat buffer, so clipping allocates nothing per part).
pub fn clip_line(line: &[Pt], b: ClipBox, out: &mut Vec<Pt>, ends: &mut Vec<usize>) {
    let mut start = out.len();
    let close = |out: &mut Vec<Pt>, ends: &mut Vec<usize>, start: &mut usize| {
        if out.len() - *start >= 2 {
            ends.push(out.len());
        } else {
            out.truncate(*start);
        }
        *start = out.len();
    };
    for w in line.windows(2) {
        match clip_segment(w[0], w[1], b) {
            None => close(out, ends, &mut start),
            Some((p, q, q_clipped)) => {
                if out.len() == start || out.last() != Some(&p) {
                    close(out, ends, &mut start);
                    out.push(p);
                }
                out.push(q);
                if q_clipped {
                    close(out, ends, &mut start);
                }
            }
        }
    }
    close(out, ends, &mut start);
}

/// Liang–Barsky: the part of segment a-b inside the box, and whether b was cut off.
fn clip_segment(a: Pt, b: Pt, bx: ClipBox) -> Option<(Pt, Pt, bool)> {
    if bx.inside(a) && bx.inside(b) {
        return Some((a, b, false));
    }
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a[0] - bx.min),
        (dx, bx.max - a[0]),
        (-dy, a[1] - bx.min),
        (dy, bx.max - a[1]),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                if r > t1 {
                    return None;
                }
                t0 = t0.max(r);
            } else {
                if r < t0 {
                    return None;
                }
                t1 = t1.min(r);
            }
        }
    }
    let at = |t: f64| [a[0] + t * dx, a[1] + t * dy];
    let p = if t0 > 0.0 { at(t0) } else { a };
    let q = if t1 < 1.0 { at(t1) } else { b };
    Some((p, q, t1 < 1.0))
}

/// Clips a closed ring (first point repeated at the end or not); returns the clipped
/// ring without the closing point, empty when nothing is inside.
pub fn clip_ring(ring: &[Pt], b: ClipBox) -> Vec<Pt> {
    let mut out = Vec::new();
    clip_ring_into(ring, b, &mut out, &mut Vec::new());
    out
}

/// [`clip_ring`] into `out`, with `spare` as its second buffer (both reused by the
/// caller, so clipping allocates nothing per ring).
pub fn clip_ring_into(ring: &[Pt], b: ClipBox, out: &mut Vec<Pt>, spare: &mut Vec<Pt>) {
    out.clear();
    out.extend_from_slice(ring);
    if out.len() > 1 && out.first() == out.last() {
        out.pop();
    }
    if out.iter().all(|&p| b.inside(p)) {
        return;
    }
    // Each edge: (is point inside, intersection of segment with the edge line).
    type Edge = (fn(Pt, f64) -> bool, fn(Pt, Pt, f64) -> Pt, f64);
    let edges: [Edge; 4] = [
        (|p, v| p[0] >= v, |a, c, v| lerp_x(a, c, v), b.min),
        (|p, v| p[0] <= v, |a, c, v| lerp_x(a, c, v), b.max),
        (|p, v| p[1] >= v, |a, c, v| lerp_y(a, c, v), b.min),
        (|p, v| p[1] <= v, |a, c, v| lerp_y(a, c, v), b.max),
    ];
    for (inside, cut, v) in edges {
        if out.is_empty() {
            break;
        }
        spare.clear();
        let mut prev = out[out.len() - 1];
        let mut prev_in = inside(prev, v);
        for &p in out.iter() {
            let p_in = inside(p, v);
            if p_in {
                if !prev_in {
                    spare.push(cut(prev, p, v));
                }
                spare.push(p);
            } else if prev_in {
                spare.push(cut(prev, p, v));
            }
            prev = p;
            prev_in = p_in;
        }
        std::mem::swap(out, spare);
    }
}

fn lerp_x(a: Pt, b: Pt, x: f64) -> Pt {
    let t = (x - a[0]) / (b[0] - a[0]);
    [x, a[1] + t * (b[1] - a[1])]
}

fn lerp_y(a: Pt, b: Pt, y: f64) -> Pt {
    let t = (y - a[1]) / (b[1] - a[1]);
    [a[0] + t * (b[0] - a[0]), y]
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: ClipBox = ClipBox {
        min: 0.0,
        max: 10.0,
    };

    #[test]
    fn line_is_cut_into_inside_parts() {
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        let line = [
            [-5.0, 5.0],
            [5.0, 5.0],
            [5.0, 15.0],
            [5.0, 20.0],
            [8.0, 8.0],
            [9.0, 9.0],
        ];
        clip_line(&line, B, &mut out, &mut ends);
        assert_eq!(ends.len(), 2);
        assert_eq!(&out[..ends[0]], &[[0.0, 5.0], [5.0, 5.0], [5.0, 10.0]]);
        assert_eq!(out.last(), Some(&[9.0, 9.0]));
    }

    #[test]
    fn ring_is_clipped_to_the_box() {
        let r = clip_ring(
            &[
                [-5.0, -5.0],
                [15.0, -5.0],
                [15.0, 15.0],
                [-5.0, 15.0],
                [-5.0, -5.0],
            ],
            B,
        );
        assert_eq!(r.len(), 4);
        assert!(
            r.iter()
                .all(|p| (0.0..=10.0).contains(&p[0]) && (0.0..=10.0).contains(&p[1]))
        );
        assert!(clip_ring(&[[20.0, 20.0], [30.0, 20.0], [30.0, 30.0]], B).is_empty());
    }
}
