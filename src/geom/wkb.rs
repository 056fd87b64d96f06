//! ISO / extended WKB reading into `geo` types, keeping what 2-D `geo` cannot hold
//! (Z, M, unclosed rings) as facts about the blob, and in-place XY rewriting so a
//! reprojection never touches Z or M values.
//!
//! Curves (circular strings, compound curves, curve polygons, multi-curves and
//! multi-surfaces) are read into lines: each arc becomes chords whose distance from the
//! true arc is at most the arc tolerance (1 cm unless configured). The blob itself keeps
//! the arcs; only what `geo` holds is linear.

use geo::{
    Coord, Geometry, GeometryCollection, LineString, MultiLineString, MultiPoint, MultiPolygon,
    Point, Polygon,
};

use super::{GeomError, GeometryKind};

/// Nesting deeper than this is not a real-world geometry but an attack on the stack.
const MAX_DEPTH: usize = 32;

/// Chords per arc at most, whatever the tolerance: a malicious radius cannot make a
/// geometry of millions of points.
const MAX_CHORDS: usize = 4096;

/// The arc tolerance in metres, as f64 bits (0.01 m until configured).
static ARC_TOLERANCE_M: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0x3F84_7AE1_47AE_147B);

/// Sets how far (metres) a chord may deviate from the arc it replaces.
pub fn set_arc_tolerance_m(m: f64) {
    if m.is_finite() && m > 0.0 {
        ARC_TOLERANCE_M.store(m.to_bits(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// The arc tolerance in metres.
pub fn arc_tolerance_m() -> f64 {
    f64::from_bits(ARC_TOLERANCE_M.load(std::sync::atomic::Ordering::Relaxed))
}

/// The tolerance in the units of coordinates like these: degrees when they look like
/// longitude and latitude (a metre is about 1/111,320 degree; finer is harmless),
/// metres otherwise.
fn tolerance_for(cs: &[Coord<f64>]) -> f64 {
    let m = arc_tolerance_m();
    if cs.iter().all(|c| c.x.abs() <= 180.0 && c.y.abs() <= 90.0) {
        m / 111_320.0
    } else {
        m
    }
}

/// Appends the chords of the arc from `a` through `b` to `c` (after `a`, ending exactly
/// at `c`), each within `tol` of the circle.
pub fn arc(a: Coord<f64>, b: Coord<f64>, c: Coord<f64>, tol: f64, out: &mut Vec<Coord<f64>>) {
    use std::f64::consts::{PI, TAU};
    let full = a.x == c.x && a.y == c.y;
    // Centre, computed relative to `a` so large projected coordinates lose no precision.
    let (bx, by, cx, cy) = (b.x - a.x, b.y - a.y, c.x - a.x, c.y - a.y);
    let (ux, uy) = if full {
        (bx / 2.0, by / 2.0)
    } else {
        let d = 2.0 * (bx * cy - by * cx);
        let scale = (bx.abs() + by.abs() + cx.abs() + cy.abs()).max(f64::MIN_POSITIVE);
        if d.abs() <= 1e-12 * scale * scale {
            // Three points in a line: the "arc" is a straight piece.
            out.push(b);
            out.push(c);
            return;
        }
        let (b2, c2) = (bx * bx + by * by, cx * cx + cy * cy);
        ((cy * b2 - by * c2) / d, (bx * c2 - cx * b2) / d)
    };
    let r = (ux * ux + uy * uy).sqrt();
    let angle = |x: f64, y: f64| (y - uy).atan2(x - ux);
    let t0 = angle(0.0, 0.0);
    let ccw = full || (bx * (cy - by) - by * (cx - bx)) > 0.0;
    let sweep = if full {
        TAU
    } else {
        let t2 = angle(cx, cy);
        let d = if ccw { t2 - t0 } else { t0 - t2 };
        d.rem_euclid(TAU)
    };
    let step = if tol >= r {
        PI / 2.0
    } else {
        2.0 * (1.0 - tol / r).acos()
    };
    let n = ((sweep / step).ceil() as usize).clamp(1, MAX_CHORDS);
    let dir = if ccw { 1.0 } else { -1.0 };
    for k in 1..n {
        let t = t0 + dir * sweep * k as f64 / n as f64;
        out.push(Coord {
            x: a.x + ux + r * t.cos(),
            y: a.y + uy + r * t.sin(),
        });
    }
    out.push(c);
}

/// What a WKB geometry decodes to, and what the decoding noticed.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The geometry in two dimensions; `None` when it is empty.
    pub geometry: Option<Geometry<f64>>,
    /// The top-level type as written in the WKB.
    pub kind: GeometryKind,
    /// The WKB carries Z values.
    pub has_z: bool,
    /// The WKB carries M values.
    pub has_m: bool,
    /// A polygon ring whose last point is not its first (geo would silently close it).
    pub unclosed_ring: bool,
    /// An X, Y or Z value is NaN or infinite.
    pub non_finite: bool,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    little: bool,
    has_z: bool,
    has_m: bool,
    unclosed_ring: bool,
    non_finite: bool,
    /// When set, the byte offset and byte order of every XY pair is recorded.
    offsets: Option<Vec<(usize, bool)>>,
}

#[derive(Clone, Copy)]
struct TypeCode {
    base: u32,
    z: bool,
    m: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            little: true,
            has_z: false,
            has_m: false,
            unclosed_ring: false,
            non_finite: false,
            offsets: None,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], GeomError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(GeomError::Truncated { at: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, GeomError> {
        let b: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn f64(&mut self) -> Result<f64, GeomError> {
        let b: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
        Ok(if self.little {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        })
    }

    /// Reads a count and checks it against the bytes left, so garbage cannot make us allocate gigabytes.
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, GeomError> {
        let n = self.u32()? as usize;
        let left = self.buf.len() - self.pos;
        if n.saturating_mul(min_item_bytes) > left {
            return Err(GeomError::Truncated { at: self.pos });
        }
        Ok(n)
    }

    fn header(&mut self) -> Result<TypeCode, GeomError> {
        self.little = match self.take(1)?[0] {
            0 => false,
            1 => true,
            b => return Err(GeomError::ByteOrder(b)),
        };
        let raw = self.u32()?;
        // EWKB (PostGIS) flags in the high bits; ISO WKB adds 1000/2000/3000.
        let mut z = raw & 0x8000_0000 != 0;
        let mut m = raw & 0x4000_0000 != 0;
        if raw & 0x2000_0000 != 0 {
            self.u32()?; // embedded SRID, ignored: the GeoPackage header is authoritative
        }
        let code = raw & 0x0FFF_FFFF;
        let (base, dim) = (code % 1000, code / 1000);
        match dim {
            0 => {}
            1 => z = true,
            2 => m = true,
            3 => {
                z = true;
                m = true
            }
            _ => return Err(GeomError::UnknownType(raw)),
        }
        self.has_z |= z;
        self.has_m |= m;
        Ok(TypeCode { base, z, m })
    }

    fn coord(&mut self, t: TypeCode) -> Result<Coord<f64>, GeomError> {
        if let Some(o) = self.offsets.as_mut() {
            o.push((self.pos, self.little));
        }
        let x = self.f64()?;
        let y = self.f64()?;
        let mut finite = x.is_finite() && y.is_finite();
        if t.z {
            finite &= self.f64()?.is_finite();
        }
        if t.m {
            self.f64()?; // M may legitimately be NaN ("no measure")
        }
        if !finite {
            self.non_finite = true;
        }
        Ok(Coord { x, y })
    }

    fn coord_size(t: TypeCode) -> usize {
        8 * (2 + t.z as usize + t.m as usize)
    }

    fn line(&mut self, t: TypeCode) -> Result<LineString<f64>, GeomError> {
        let n = self.count(Self::coord_size(t))?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.coord(t)?);
        }
        Ok(LineString(v))
    }

    /// A circular string's points, each arc turned into chords.
    fn circular(&mut self, t: TypeCode) -> Result<Vec<Coord<f64>>, GeomError> {
        let pts = self.line(t)?.0;
        if pts.is_empty() {
            return Ok(pts);
        }
        if pts.len() < 3 || pts.len() % 2 == 0 {
            return Err(GeomError::BadArc(pts.len()));
        }
        let tol = tolerance_for(&pts);
        let mut out = vec![pts[0]];
        for w in pts.windows(3).step_by(2) {
            arc(w[0], w[1], w[2], tol, &mut out);
        }
        Ok(out)
    }

    /// A curve member (LineString, CircularString or CompoundCurve) with its header.
    fn curve(&mut self, depth: usize) -> Result<(GeometryKind, Vec<Coord<f64>>), GeomError> {
        if depth > MAX_DEPTH {
            return Err(GeomError::TooDeep);
        }
        let t = self.header()?;
        let kind = GeometryKind::from_wkb_code(t.base)?;
        let pts = match kind {
            GeometryKind::LineString => self.line(t)?.0,
            GeometryKind::CircularString => self.circular(t)?,
            GeometryKind::CompoundCurve => {
                let n = self.count(5)?;
                let mut out: Vec<Coord<f64>> = Vec::new();
                for _ in 0..n {
                    let (k, part) = self.curve(depth + 1)?;
                    if !matches!(k, GeometryKind::LineString | GeometryKind::CircularString) {
                        return Err(GeomError::BadMember {
                            outer: kind,
                            inner: k,
                        });
                    }
                    // Pieces share their joints.
                    let skip = usize::from(out.last().is_some() && out.last() == part.first());
                    out.extend(part.into_iter().skip(skip));
                }
                out
            }
            k => {
                return Err(GeomError::BadMember {
                    outer: GeometryKind::CompoundCurve,
                    inner: k,
                });
            }
        };
        Ok((kind, pts))
    }

    /// A curve polygon: rings that are curves with their own headers.
    fn curve_polygon(&mut self, depth: usize) -> Result<Option<Polygon<f64>>, GeomError> {
        let n = self.count(5)?;
        let mut rings = Vec::with_capacity(n);
        for _ in 0..n {
            let (_, ring) = self.curve(depth + 1)?;
            if let (Some(a), Some(b)) = (ring.first(), ring.last())
                && (a.x != b.x || a.y != b.y)
            {
                self.unclosed_ring = true;
            }
            rings.push(LineString(ring));
        }
        let mut rings = rings.into_iter();
        Ok(match rings.next() {
            None => None,
            Some(ext) if ext.0.is_empty() => None,
            Some(ext) => Some(Polygon::new(ext, rings.collect())),
        })
    }

    fn polygon(&mut self, t: TypeCode) -> Result<Option<Polygon<f64>>, GeomError> {
        let n = self.count(4)?;
        let mut rings = Vec::with_capacity(n);
        for _ in 0..n {
            let ring = self.line(t)?;
            if let (Some(a), Some(b)) = (ring.0.first(), ring.0.last())
                && (a.x != b.x || a.y != b.y)
            {
                self.unclosed_ring = true;
            }
            rings.push(ring);
        }
        let mut rings = rings.into_iter();
        Ok(match rings.next() {
            None => None,
            Some(ext) if ext.0.is_empty() => None,
            Some(ext) => Some(Polygon::new(ext, rings.collect())),
        })
    }

    fn geometry(
        &mut self,
        depth: usize,
    ) -> Result<(GeometryKind, Option<Geometry<f64>>), GeomError> {
        if depth > MAX_DEPTH {
            return Err(GeomError::TooDeep);
        }
        let start = self.pos;
        let t = self.header()?;
        let kind = GeometryKind::from_wkb_code(t.base)?;
        let g = match kind {
            GeometryKind::Point => {
                let c = self.coord(t)?;
                // WKB has no empty point; by convention it is written as NaN NaN.
                if c.x.is_nan() && c.y.is_nan() {
                    self.non_finite = false;
                    None
                } else {
                    Some(Geometry::Point(Point(c)))
                }
            }
            GeometryKind::LineString => {
                let l = self.line(t)?;
                (!l.0.is_empty()).then_some(Geometry::LineString(l))
            }
            GeometryKind::Polygon => self.polygon(t)?.map(Geometry::Polygon),
            GeometryKind::MultiPoint => {
                let n = self.count(5)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    match self.geometry(depth + 1)? {
                        (GeometryKind::Point, Some(Geometry::Point(p))) => v.push(p),
                        (GeometryKind::Point, _) => {}
                        (k, _) => {
                            return Err(GeomError::BadMember {
                                outer: kind,
                                inner: k,
                            });
                        }
                    }
                }
                (!v.is_empty()).then_some(Geometry::MultiPoint(MultiPoint(v)))
            }
            GeometryKind::MultiLineString => {
                let n = self.count(5)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    match self.geometry(depth + 1)? {
                        (GeometryKind::LineString, Some(Geometry::LineString(l))) => v.push(l),
                        (GeometryKind::LineString, _) => {}
                        (k, _) => {
                            return Err(GeomError::BadMember {
                                outer: kind,
                                inner: k,
                            });
                        }
                    }
                }
                (!v.is_empty()).then_some(Geometry::MultiLineString(MultiLineString(v)))
            }
            GeometryKind::MultiPolygon => {
                let n = self.count(5)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    match self.geometry(depth + 1)? {
                        (GeometryKind::Polygon, Some(Geometry::Polygon(p))) => v.push(p),
                        (GeometryKind::Polygon, _) => {}
                        (k, _) => {
                            return Err(GeomError::BadMember {
                                outer: kind,
                                inner: k,
                            });
                        }
                    }
                }
                (!v.is_empty()).then_some(Geometry::MultiPolygon(MultiPolygon(v)))
            }
            GeometryKind::CircularString => {
                let pts = self.circular(t)?;
                (!pts.is_empty()).then_some(Geometry::LineString(LineString(pts)))
            }
            GeometryKind::CompoundCurve => {
                // Read again from the header as a curve member.
                self.pos = start;
                let (_, pts) = self.curve(depth)?;
                (!pts.is_empty()).then_some(Geometry::LineString(LineString(pts)))
            }
            GeometryKind::CurvePolygon => self.curve_polygon(depth)?.map(Geometry::Polygon),
            GeometryKind::MultiCurve => {
                let n = self.count(5)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let (_, pts) = self.curve(depth + 1)?;
                    if !pts.is_empty() {
                        v.push(LineString(pts));
                    }
                }
                (!v.is_empty()).then_some(Geometry::MultiLineString(MultiLineString(v)))
            }
            GeometryKind::MultiSurface => {
                let n = self.count(5)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    match self.geometry(depth + 1)? {
                        (
                            GeometryKind::Polygon | GeometryKind::CurvePolygon,
                            Some(Geometry::Polygon(p)),
                        ) => v.push(p),
                        (GeometryKind::Polygon | GeometryKind::CurvePolygon, _) => {}
                        (k, _) => {
                            return Err(GeomError::BadMember {
                                outer: kind,
                                inner: k,
                            });
                        }
                    }
                }
                (!v.is_empty()).then_some(Geometry::MultiPolygon(MultiPolygon(v)))
            }
            GeometryKind::GeometryCollection | GeometryKind::Geometry => {
                let n = self.count(5)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    if let (_, Some(g)) = self.geometry(depth + 1)? {
                        v.push(g);
                    }
                }
                (!v.is_empty()).then_some(Geometry::GeometryCollection(GeometryCollection(v)))
            }
        };
        Ok((kind, g))
    }
}

/// Decodes one WKB geometry; trailing bytes are an error because they mean a corrupt blob.
pub fn decode(wkb: &[u8]) -> Result<Decoded, GeomError> {
    let mut r = Reader::new(wkb);
    let (kind, geometry) = r.geometry(0)?;
    if r.pos != wkb.len() {
        return Err(GeomError::TrailingBytes(wkb.len() - r.pos));
    }
    Ok(Decoded {
        geometry,
        kind,
        has_z: r.has_z,
        has_m: r.has_m,
        unclosed_ring: r.unclosed_ring,
        non_finite: r.non_finite,
    })
}

/// Rewrites every XY pair of a WKB geometry in place (Z and M untouched) through `f`,
/// which receives all pairs at once so a PROJ transformer can work on the whole array.
pub fn rewrite_xy<E>(
    wkb: &mut [u8],
    f: impl FnOnce(&mut [(f64, f64)]) -> Result<(), E>,
) -> Result<Result<(), E>, GeomError> {
    let offsets = {
        let mut r = Reader::new(wkb);
        r.offsets = Some(Vec::new());
        r.geometry(0)?;
        r.offsets.unwrap_or_default()
    };
    let read = |b: &[u8], at: usize, little: bool| {
        let a: [u8; 8] = b[at..at + 8].try_into().expect("8 bytes");
        if little {
            f64::from_le_bytes(a)
        } else {
            f64::from_be_bytes(a)
        }
    };
    let mut xy: Vec<(f64, f64)> = offsets
        .iter()
        .map(|&(at, le)| (read(wkb, at, le), read(wkb, at + 8, le)))
        .collect();
    if let Err(e) = f(&mut xy) {
        return Ok(Err(e));
    }
    for (&(at, le), &(x, y)) in offsets.iter().zip(&xy) {
        let (bx, by) = if le {
            (x.to_le_bytes(), y.to_le_bytes())
        } else {
            (x.to_be_bytes(), y.to_be_bytes())
        };
        wkb[at..at + 8].copy_from_slice(&bx);
        wkb[at + 8..at + 16].copy_from_slice(&by);
    }
    Ok(Ok(()))
}

/// Wraps a single geometry's WKB as a one-member Multi* of the same dimensions, byte for byte.
pub fn wrap_in_multi(wkb: &[u8], multi: GeometryKind) -> Result<Vec<u8>, GeomError> {
    let mut r = Reader::new(wkb);
    let t = r.header()?;
    let code = multi.wkb_code() + if t.z { 1000 } else { 0 } + if t.m { 2000 } else { 0 };
    let mut out = Vec::with_capacity(wkb.len() + 9);
    out.push(1);
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(wkb);
    Ok(out)
}

/// The one member of a one-member Multi*, byte for byte.
pub fn unwrap_one(wkb: &[u8]) -> Result<Vec<u8>, GeomError> {
    let mut r = Reader::new(wkb);
    r.header()?;
    if r.count(5)? != 1 {
        return Err(GeomError::BadMember {
            outer: GeometryKind::GeometryCollection,
            inner: GeometryKind::Geometry,
        });
    }
    let member = r.pos;
    r.geometry(1)?;
    if r.pos != wkb.len() {
        return Err(GeomError::TrailingBytes(wkb.len() - r.pos));
    }
    Ok(wkb[member..].to_vec())
}

/// The top-level geometry type of a WKB geometry.
pub fn kind_of(wkb: &[u8]) -> Result<GeometryKind, GeomError> {
    let mut r = Reader::new(wkb);
    let t = r.header()?;
    GeometryKind::from_wkb_code(t.base)
}

/// Writes a 2-D geometry as little-endian ISO WKB (used for repaired or generated geometries).
pub fn encode(g: &Geometry<f64>) -> Vec<u8> {
    let mut out = Vec::new();
    write_geometry(&mut out, g);
    out
}

fn put_header(out: &mut Vec<u8>, kind: GeometryKind) {
    out.push(1);
    out.extend_from_slice(&kind.wkb_code().to_le_bytes());
}

fn put_coords(out: &mut Vec<u8>, cs: &[Coord<f64>]) {
    out.extend_from_slice(&(cs.len() as u32).to_le_bytes());
    for c in cs {
        out.extend_from_slice(&c.x.to_le_bytes());
        out.extend_from_slice(&c.y.to_le_bytes());
    }
}

fn put_polygon(out: &mut Vec<u8>, p: &Polygon<f64>) {
    put_header(out, GeometryKind::Polygon);
    out.extend_from_slice(&(1 + p.interiors().len() as u32).to_le_bytes());
    put_coords(out, &p.exterior().0);
    for r in p.interiors() {
        put_coords(out, &r.0);
    }
}

fn write_geometry(out: &mut Vec<u8>, g: &Geometry<f64>) {
    match g {
        Geometry::Point(p) => {
            put_header(out, GeometryKind::Point);
            out.extend_from_slice(&p.x().to_le_bytes());
            out.extend_from_slice(&p.y().to_le_bytes());
        }
        Geometry::LineString(l) => {
            put_header(out, GeometryKind::LineString);
            put_coords(out, &l.0);
        }
        Geometry::Polygon(p) => put_polygon(out, p),
        Geometry::MultiPoint(mp) => {
            put_header(out, GeometryKind::MultiPoint);
            out.extend_from_slice(&(mp.0.len() as u32).to_le_bytes());
            for p in &mp.0 {
                write_geometry(out, &Geometry::Point(*p));
            }
        }
        Geometry::MultiLineString(ml) => {
            put_header(out, GeometryKind::MultiLineString);
            out.extend_from_slice(&(ml.0.len() as u32).to_le_bytes());
            for l in &ml.0 {
                put_header(out, GeometryKind::LineString);
                put_coords(out, &l.0);
            }
        }
        Geometry::MultiPolygon(mp) => {
            put_header(out, GeometryKind::MultiPolygon);
            out.extend_from_slice(&(mp.0.len() as u32).to_le_bytes());
            for p in &mp.0 {
                put_polygon(out, p);
            }
        }
        Geometry::GeometryCollection(gc) => {
            put_header(out, GeometryKind::GeometryCollection);
            out.extend_from_slice(&(gc.0.len() as u32).to_le_bytes());
            for g in &gc.0 {
                write_geometry(out, g);
            }
        }
        Geometry::Line(l) => {
            write_geometry(out, &Geometry::LineString(LineString(vec![l.start, l.end])))
        }
        Geometry::Rect(r) => write_geometry(out, &Geometry::Polygon(r.to_polygon())),
        Geometry::Triangle(t) => write_geometry(out, &Geometry::Polygon(t.to_polygon())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{line_string, point, polygon};

    #[test]
    fn roundtrip_2d() {
        let g: Geometry<f64> =
            polygon![(x: 0., y: 0.), (x: 4., y: 0.), (x: 4., y: 4.), (x: 0., y: 0.)].into();
        let d = decode(&encode(&g)).unwrap();
        assert_eq!(d.kind, GeometryKind::Polygon);
        assert_eq!(d.geometry, Some(g));
        assert!(!d.unclosed_ring && !d.non_finite && !d.has_z);
    }

    #[test]
    fn z_values_survive_xy_rewrite() {
        // LineString Z, ISO code 1002, big-endian to exercise byte order.
        let mut wkb = vec![0u8];
        wkb.extend_from_slice(&1002u32.to_be_bytes());
        wkb.extend_from_slice(&1u32.to_be_bytes());
        for v in [1.0f64, 2.0, 300.5] {
            wkb.extend_from_slice(&v.to_be_bytes());
        }
        let d = decode(&wkb).unwrap();
        assert!(d.has_z);
        rewrite_xy(&mut wkb, |xy| {
            for p in xy.iter_mut() {
                *p = (p.0 * 10.0, p.1 * 10.0);
            }
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(f64::from_be_bytes(wkb[9..17].try_into().unwrap()), 10.0);
        assert_eq!(f64::from_be_bytes(wkb[25..33].try_into().unwrap()), 300.5);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\x01",
            b"\x07\x01\x00\x00\x00",
            b"\x01\x02\x00\x00\x00\xff\xff\xff\xff",
        ] {
            assert!(decode(bad).is_err());
        }
    }

    #[test]
    fn unclosed_ring_and_nan_are_noticed() {
        let mut wkb = vec![1u8];
        wkb.extend_from_slice(&3u32.to_le_bytes());
        wkb.extend_from_slice(&1u32.to_le_bytes());
        wkb.extend_from_slice(&4u32.to_le_bytes());
        for v in [0.0f64, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0] {
            wkb.extend_from_slice(&v.to_le_bytes());
        }
        assert!(decode(&wkb).unwrap().unclosed_ring);
        let p = encode(&point!(x: f64::INFINITY, y: 1.0).into());
        assert!(decode(&p).unwrap().non_finite);
    }

    #[test]
    fn wrap_makes_a_multi() {
        let l: Geometry<f64> = line_string![(x: 0., y: 0.), (x: 1., y: 1.)].into();
        let w = wrap_in_multi(&encode(&l), GeometryKind::MultiLineString).unwrap();
        let d = decode(&w).unwrap();
        assert_eq!(d.kind, GeometryKind::MultiLineString);
    }
}
