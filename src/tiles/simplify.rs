//! Douglas–Peucker simplification in tile units (iterative, no recursion).

use super::clip::Pt;

/// Keeps the points of `pts` that matter at tolerance `tol` (tile units); the first and
/// last points are always kept.
pub fn simplify(pts: &[Pt], tol: f64, out: &mut Vec<Pt>) {
    SCRATCH.with(|k| {
        let (keep, stack) = &mut *k.borrow_mut();
        simplify_with(pts, tol, out, keep, stack)
    });
}

/// Which points to keep, and the Douglas–Peucker work stack; reused per thread.
type Buffers = (Vec<bool>, Vec<(usize, usize)>);

thread_local! {
    static SCRATCH: std::cell::RefCell<Buffers> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

fn simplify_with(
    pts: &[Pt],
    tol: f64,
    out: &mut Vec<Pt>,
    keep: &mut Vec<bool>,
    stack: &mut Vec<(usize, usize)>,
) {
    out.clear();
    let n = pts.len();
    if n <= 3 || tol <= 0.0 {
        out.extend_from_slice(pts);
        return;
    }
    keep.clear();
    keep.resize(n, false);
    keep[0] = true;
    keep[n - 1] = true;
    let tol2 = tol * tol;
    stack.clear();
    stack.push((0usize, n - 1));
    while let Some((a, b)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (mut best, mut best_d) = (0, -1.0);
        for (i, &p) in pts.iter().enumerate().take(b).skip(a + 1) {
            let d = seg_dist2(p, pts[a], pts[b]);
            if d > best_d {
                best = i;
                best_d = d;
            }
        }
        if best_d > tol2 {
            keep[best] = true;
            stack.push((a, best));
            stack.push((best, b));
        }
    }
    out.extend(
        pts.iter()
            .zip(keep.iter())
            .filter(|(_, k)| **k)
            .map(|(p, _)| *p),
    );
}

fn seg_dist2(p: Pt, a: Pt, b: Pt) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    };
    let (x, y) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    x * x + y * y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn straight_points_go_bends_stay() {
        let mut out = Vec::new();
        simplify(
            &[[0.0, 0.0], [1.0, 0.1], [2.0, 0.0], [2.0, 5.0]],
            0.5,
            &mut out,
        );
        assert_eq!(out, vec![[0.0, 0.0], [2.0, 0.0], [2.0, 5.0]]);
    }
}
