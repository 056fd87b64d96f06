//! The GeoPackage geometry blob: `GP`, version, flags, srs_id, optional envelope, WKB.

use super::{Bbox, GeomError, wkb};

/// The parsed header of a GeoPackage geometry blob.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The srs_id written in the blob.
    pub srs_id: i32,
    /// The empty-geometry flag.
    pub empty: bool,
    /// The envelope as `[minx, miny, maxx, maxy]` when the header has one.
    pub envelope: Option<Bbox>,
    /// Where the WKB starts.
    pub wkb_offset: usize,
}

/// Parses the header of a GeoPackage geometry blob.
pub fn header(blob: &[u8]) -> Result<Header, GeomError> {
    if blob.len() < 8 || &blob[0..2] != b"GP" {
        return Err(GeomError::BadMagic);
    }
    if blob[2] != 0 {
        return Err(GeomError::BadVersion(blob[2]));
    }
    let flags = blob[3];
    let little = flags & 1 == 1;
    let env_code = (flags >> 1) & 0b111;
    let empty = flags & 0b1_0000 != 0;
    let read_i32 = |b: [u8; 4]| {
        if little {
            i32::from_le_bytes(b)
        } else {
            i32::from_be_bytes(b)
        }
    };
    let srs_id = read_i32(blob[4..8].try_into().expect("4 bytes"));
    let doubles = match env_code {
        0 => 0,
        1 => 4,
        2 | 3 => 6,
        4 => 8,
        c => return Err(GeomError::BadEnvelopeCode(c)),
    };
    let wkb_offset = 8 + 8 * doubles;
    if blob.len() < wkb_offset {
        return Err(GeomError::Truncated { at: blob.len() });
    }
    let envelope = (doubles > 0).then(|| {
        let d = |i: usize| {
            let b: [u8; 8] = blob[8 + 8 * i..16 + 8 * i].try_into().expect("8 bytes");
            if little {
                f64::from_le_bytes(b)
            } else {
                f64::from_be_bytes(b)
            }
        };
        // On disk the order is minx, maxx, miny, maxy.
        [d(0), d(2), d(1), d(3)]
    });
    Ok(Header {
        srs_id,
        empty,
        envelope,
        wkb_offset,
    })
}

/// A fully decoded blob: its header and its geometry.
#[derive(Debug, Clone)]
pub struct Blob {
    /// The header.
    pub header: Header,
    /// The decoded WKB.
    pub decoded: wkb::Decoded,
}

/// Decodes a whole blob, header and WKB.
pub fn decode(blob: &[u8]) -> Result<Blob, GeomError> {
    let header = header(blob)?;
    let decoded = wkb::decode(&blob[header.wkb_offset..])?;
    Ok(Blob { header, decoded })
}

/// Builds a blob: little-endian header, XY envelope unless empty, then `wkb` unchanged.
pub fn encode(srs_id: i32, envelope: Option<Bbox>, wkb: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 32 + wkb.len());
    out.extend_from_slice(b"GP");
    out.push(0);
    match envelope {
        Some(e) => {
            out.push(0b0000_0011);
            out.extend_from_slice(&srs_id.to_le_bytes());
            for v in [e[0], e[2], e[1], e[3]] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        None => {
            out.push(0b0001_0001);
            out.extend_from_slice(&srs_id.to_le_bytes());
        }
    }
    out.extend_from_slice(wkb);
    out
}

/// The XY envelope of a blob, from its header when present, otherwise from its WKB;
/// `None` for empty or undecodable geometries (what the R-tree triggers need).
pub fn envelope(blob: &[u8]) -> Option<Bbox> {
    let h = header(blob).ok()?;
    if h.empty {
        return None;
    }
    if let Some(e) = h.envelope
        && e.iter().all(|v| v.is_finite())
    {
        return Some(e);
    }
    let d = wkb::decode(&blob[h.wkb_offset..]).ok()?;
    d.geometry.as_ref().and_then(super::bbox_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::wkb;
    use geo::{Geometry, point};

    #[test]
    fn encode_then_decode() {
        let g: Geometry<f64> = point!(x: 615989.6362, y: 5715654.0034).into();
        let w = wkb::encode(&g);
        let env = crate::geom::bbox_of(&g);
        let b = encode(25832, env, &w);
        let d = decode(&b).unwrap();
        assert_eq!(d.header.srs_id, 25832);
        assert_eq!(d.header.envelope, env);
        assert_eq!(d.decoded.geometry, Some(g));
        assert_eq!(&b[d.header.wkb_offset..], &w[..]);
    }

    #[test]
    fn empty_blob_has_no_envelope() {
        let b = encode(
            4326,
            None,
            &wkb::encode(&Geometry::MultiPoint(geo::MultiPoint(vec![]))),
        );
        let h = header(&b).unwrap();
        assert!(h.empty);
        assert_eq!(envelope(&b), None);
    }

    #[test]
    fn bad_headers() {
        assert_eq!(header(b"XY\0\x01\0\0\0\0"), Err(GeomError::BadMagic));
        assert_eq!(
            header(b"GP\0\x0b\0\0\0\0"),
            Err(GeomError::BadEnvelopeCode(5))
        );
        assert!(matches!(
            header(b"GP\0\x03\0\0\0\0\0"),
            Err(GeomError::Truncated { .. })
        ));
    }
}
