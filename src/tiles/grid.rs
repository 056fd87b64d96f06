//! WebMercatorQuad tile maths: z/x/y to bounds in EPSG:3857 and back.

use crate::geom::Bbox;

/// Half the width of the Web Mercator square, metres.
pub const ORIGIN: f64 = 20_037_508.342_789_244;

/// Deepest zoom level served.
pub const MAX_ZOOM: u8 = 24;

/// OGC URI of this tile matrix set (the one served, by the store and by archives).
pub const WEB_MERCATOR_QUAD: &str =
    "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad";

/// A tile address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    /// Zoom.
    pub z: u8,
    /// Column.
    pub x: u32,
    /// Row (from the top).
    pub y: u32,
}

impl TileId {
    /// A tile address if it lies inside the matrix of its zoom level.
    pub fn new(z: u32, x: u32, y: u32) -> Option<TileId> {
        if z > MAX_ZOOM as u32 {
            return None;
        }
        let n = 1u64 << z;
        ((x as u64) < n && (y as u64) < n).then_some(TileId { z: z as u8, x, y })
    }

    /// Width of the tile in metres.
    pub fn size(self) -> f64 {
        2.0 * ORIGIN / (1u64 << self.z) as f64
    }

    /// Bounds in EPSG:3857 `[minx, miny, maxx, maxy]`.
    pub fn bounds(self) -> Bbox {
        let s = self.size();
        let minx = -ORIGIN + self.x as f64 * s;
        let maxy = ORIGIN - self.y as f64 * s;
        [minx, maxy - s, minx + s, maxy]
    }

    /// Bounds grown by `buffer` tile units on each side (of `extent` units per tile).
    pub fn buffered_bounds(self, buffer: u32, extent: u32) -> Bbox {
        let b = self.bounds();
        let m = self.size() * buffer as f64 / extent as f64;
        [b[0] - m, b[1] - m, b[2] + m, b[3] + m]
    }

    /// The tiles of zoom `z` that a box in EPSG:3857 touches (inclusive ranges).
    pub fn range(z: u8, b: Bbox) -> (u32, u32, u32, u32) {
        let n = (1u64 << z) as f64;
        let s = 2.0 * ORIGIN / n;
        let clamp = |v: f64| v.clamp(0.0, n - 1.0) as u32;
        let x0 = clamp(((b[0] + ORIGIN) / s).floor());
        let x1 = clamp(((b[2] + ORIGIN) / s).floor());
        let y0 = clamp(((ORIGIN - b[3]) / s).floor());
        let y1 = clamp(((ORIGIN - b[1]) / s).floor());
        (x0, y0, x1, y1)
    }
}

/// Whether two boxes overlap (touching counts).
pub fn intersects(a: Bbox, b: Bbox) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_ranges() {
        let t = TileId::new(0, 0, 0).unwrap();
        assert_eq!(t.bounds(), [-ORIGIN, -ORIGIN, ORIGIN, ORIGIN]);
        let t = TileId::new(1, 1, 0).unwrap();
        assert_eq!(t.bounds(), [0.0, 0.0, ORIGIN, ORIGIN]);
        assert!(TileId::new(1, 2, 0).is_none());
        assert!(TileId::new(25, 0, 0).is_none());
        let t = TileId::new(14, 8678, 5389).unwrap();
        let (x0, y0, x1, y1) = TileId::range(14, t.bounds().map(|v| v * 0.999_999_9 + 0.0));
        assert!(x0 <= 8678 && x1 >= 8678 && y0 <= 5389 && y1 >= 5389);
    }
}
