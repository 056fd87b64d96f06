//! Per-feature checks: everything is decoded and checked before anything is written.
//! A feature either comes out ready to store (blob bytes unchanged unless reprojected,
//! wrapped into a Multi* or repaired on request) or with a reason a person can act on.

use geo::{Geometry, MakeValid, MultiPolygon, Validation};

use crate::crs;
use crate::geom::{Bbox, Fit, GeometryKind, bbox_of, gpkg, wkb};

/// What the checks need to know about the source and target layer.
pub struct GeomRules {
    /// Source layer name (for messages).
    pub source_layer: String,
    /// srs_id declared by the source layer.
    pub source_srs_id: i32,
    /// Declared type of the source layer.
    pub source_kind: GeometryKind,
    /// EPSG code of the source layer.
    pub source_epsg: i32,
    /// Plausible extent of the source CRS.
    pub plausible: Bbox,
    /// Target layer name (for messages).
    pub target_layer: String,
    /// Declared type of the target layer.
    pub target_kind: GeometryKind,
    /// z flag of the target layer.
    pub target_z: u8,
    /// EPSG code (= srs_id) of the target layer.
    pub target_epsg: i32,
    /// Repair invalid polygons instead of rejecting them.
    pub repair: bool,
}

/// A geometry ready to store, and what happened to it.
#[derive(Debug)]
pub struct Checked {
    /// The blob to store.
    pub blob: Vec<u8>,
    /// The geometry's type (as delivered).
    pub kind: GeometryKind,
    /// Empty geometry.
    pub empty: bool,
    /// Extent in the target CRS.
    pub bbox: Option<Bbox>,
    /// Made valid with `--repair`.
    pub repaired: bool,
    /// Stored as a one-member Multi*.
    pub wrapped: bool,
}

/// Why a geometry was rejected; `implausible` marks the degrees/metres kind so the
/// caller can add one CRS guess for the whole layer.
#[derive(Debug)]
pub struct Rejection {
    /// The reason.
    pub reason: String,
    /// Source-CRS extent when the coordinates did not fit the CRS.
    pub implausible: Option<Bbox>,
}

fn reject(reason: impl Into<String>) -> Rejection {
    Rejection {
        reason: reason.into(),
        implausible: None,
    }
}

/// Checks one geometry blob and prepares what to store.
pub fn check_geometry(blob: &[u8], r: &GeomRules) -> Result<Checked, Rejection> {
    let header = gpkg::header(blob).map_err(|e| reject(format!("invalid geometry: {e}")))?;
    if header.srs_id != r.source_srs_id {
        return Err(reject(format!(
            "geometry is tagged with srs_id {} but layer '{}' uses srs_id {}; the file is inconsistent — export it again",
            header.srs_id, r.source_layer, r.source_srs_id
        )));
    }
    let wkb_bytes = &blob[header.wkb_offset..];
    let d = wkb::decode(wkb_bytes).map_err(|e| reject(format!("invalid geometry: {e}")))?;
    if d.non_finite {
        return Err(reject(
            "a coordinate is not a finite number (NaN or infinity)",
        ));
    }
    let Some(geometry) = d.geometry.as_ref().filter(|_| !header.empty) else {
        // Empty geometries are kept as such, retagged only if the CRS changes.
        let out = if r.source_epsg == r.target_epsg {
            blob.to_vec()
        } else {
            gpkg::encode(r.target_epsg, None, wkb_bytes)
        };
        return Ok(Checked {
            blob: out,
            kind: d.kind,
            empty: true,
            bbox: None,
            repaired: false,
            wrapped: false,
        });
    };
    if d.kind.fit(r.source_kind) == Fit::No && r.source_kind != GeometryKind::Geometry {
        return Err(reject(format!(
            "is a {} but layer '{}' is declared {} (mixed geometry types)",
            d.kind,
            r.source_layer,
            r.source_kind.gpkg_name()
        )));
    }
    let fit = d.kind.fit(r.target_kind);
    if fit == Fit::UnwrapOne {
        let parts = match geometry {
            Geometry::MultiPoint(m) => m.0.len(),
            Geometry::MultiLineString(m) => m.0.len(),
            Geometry::MultiPolygon(m) => m.0.len(),
            _ => 0,
        };
        if parts != 1 {
            let single = r.target_kind.gpkg_name().to_lowercase();
            return Err(reject(format!(
                "is a {} of {parts} parts but layer '{}' holds single {single}s; split it in QGIS \
                 (Vector > Geometry Tools > Multipart to Singleparts) and import again, or have an \
                 administrator make the layer {}",
                d.kind,
                r.target_layer,
                r.target_kind
                    .multi()
                    .map_or("GEOMETRY", GeometryKind::gpkg_name)
            )));
        }
    }
    if fit == Fit::No {
        return Err(reject(format!(
            "is a {} but the target layer '{}' holds {} geometries",
            d.kind,
            r.target_layer,
            r.target_kind.gpkg_name()
        )));
    }
    if d.has_z && r.target_z == 0 {
        return Err(reject(format!(
            "has Z values but the target layer '{}' is two-dimensional",
            r.target_layer
        )));
    }
    if !d.has_z && r.target_z == 1 {
        return Err(reject(format!(
            "has no Z values but the target layer '{}' requires them",
            r.target_layer
        )));
    }
    let bbox = bbox_of(geometry).unwrap_or([0.0; 4]);
    // The boundary belongs to the area (a country touching -180°), and writers round
    // -180 to -180.00000000000003: allow a nanometre-scale tolerance.
    let p = r.plausible;
    let tol = |v: f64| 1e-9 * v.abs().max(1.0);
    if bbox[0] < p[0] - tol(p[0])
        || bbox[1] < p[1] - tol(p[1])
        || bbox[2] > p[2] + tol(p[2])
        || bbox[3] > p[3] + tol(p[3])
    {
        return Err(Rejection {
            reason: format!(
                "coordinates ({}, {}) are out of range for {} (outside its area of use)",
                short(bbox[0]),
                short(bbox[1]),
                crs::name(r.source_epsg)
            ),
            implausible: Some(bbox),
        });
    }

    let mut repaired: Option<Geometry<f64>> = None;
    if matches!(d.kind, GeometryKind::Polygon | GeometryKind::MultiPolygon) {
        let problem = if d.unclosed_ring {
            Some("a polygon ring is not closed (its last point differs from its first)".to_string())
        } else {
            geometry
                .check_validation()
                .err()
                .map(|e| format!("invalid polygon: {e}"))
        };
        if let Some(problem) = problem {
            if !r.repair {
                return Err(reject(format!(
                    "{problem}; fix it in QGIS (Vector > Geometry Tools > Fix Geometries) or import with --repair"
                )));
            }
            if d.has_z {
                return Err(reject(format!(
                    "{problem}; --repair cannot fix geometries with Z values"
                )));
            }
            repaired = Some(
                make_valid(geometry, r.target_kind)
                    .map_err(|e| reject(format!("{problem}; --repair failed: {e}")))?,
            );
        }
    }

    let mut kind_out = d.kind;
    let mut out_wkb: Vec<u8> = match &repaired {
        Some(g) => {
            kind_out = match g {
                Geometry::Polygon(_) => GeometryKind::Polygon,
                _ => GeometryKind::MultiPolygon,
            };
            wkb::encode(g)
        }
        None => wkb_bytes.to_vec(),
    };
    let wrapped = kind_out.fit(r.target_kind) == Fit::WrapInMulti;
    if wrapped {
        out_wkb = wkb::wrap_in_multi(&out_wkb, r.target_kind)
            .map_err(|e| reject(format!("invalid geometry: {e}")))?;
    }
    let unwrapped = repaired.is_none() && kind_out.fit(r.target_kind) == Fit::UnwrapOne;
    if unwrapped {
        out_wkb =
            wkb::unwrap_one(&out_wkb).map_err(|e| reject(format!("invalid geometry: {e}")))?;
    }
    let mut bbox_out = repaired.as_ref().and_then(bbox_of).unwrap_or(bbox);
    if r.source_epsg != r.target_epsg {
        let (from, to) = (r.source_epsg, r.target_epsg);
        let mut b = None;
        wkb::rewrite_xy(&mut out_wkb, |xy| {
            crs::transform(from, to, xy)?;
            for &(x, y) in xy.iter() {
                crate::geom::bbox_union(&mut b, [x, y, x, y]);
            }
            Ok::<(), crs::CrsError>(())
        })
        .map_err(|e| reject(format!("invalid geometry: {e}")))?
        .map_err(|e| reject(e.to_string()))?;
        bbox_out = b.unwrap_or(bbox_out);
    }
    let unchanged = repaired.is_none()
        && !wrapped
        && !unwrapped
        && r.source_epsg == r.target_epsg
        && header.srs_id == r.target_epsg;
    let blob_out = if unchanged {
        blob.to_vec()
    } else {
        gpkg::encode(r.target_epsg, Some(bbox_out), &out_wkb)
    };
    Ok(Checked {
        blob: blob_out,
        kind: d.kind,
        empty: false,
        bbox: Some(bbox_out),
        repaired: repaired.is_some(),
        wrapped,
    })
}

/// A coordinate for a message: plain for sane values, scientific for absurd ones.
fn short(v: f64) -> String {
    if v.abs() < 1e9 {
        format!("{v:.3}")
    } else {
        format!("{v:e}")
    }
}

fn make_valid(g: &Geometry<f64>, target: GeometryKind) -> Result<Geometry<f64>, String> {
    let mp: MultiPolygon<f64> = match g {
        Geometry::Polygon(p) => p.make_valid().map_err(|e| e.to_string())?,
        Geometry::MultiPolygon(m) => m.make_valid().map_err(|e| e.to_string())?,
        _ => return Err("not a polygon".into()),
    };
    match (mp.0.len(), target) {
        (0, _) => Err("nothing of the polygon is left (zero area)".into()),
        (1, _) => Ok(Geometry::Polygon(
            mp.0.into_iter().next().expect("one polygon"),
        )),
        (_, GeometryKind::Polygon) => Err(format!(
            "the repaired polygon falls apart into {} polygons, which a POLYGON layer cannot hold; import into a MULTIPOLYGON layer",
            mp.0.len()
        )),
        _ => Ok(Geometry::MultiPolygon(mp)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn rules(kind: GeometryKind, repair: bool) -> GeomRules {
        GeomRules {
            source_layer: "s".into(),
            source_srs_id: 25832,
            source_kind: kind,
            source_epsg: 25832,
            plausible: crs::facts(25832).unwrap().plausible,
            target_layer: "t".into(),
            target_kind: kind,
            target_z: 0,
            target_epsg: 25832,
            repair,
        }
    }

    fn blob(g: &Geometry<f64>) -> Vec<u8> {
        gpkg::encode(25832, bbox_of(g), &wkb::encode(g))
    }

    #[test]
    fn valid_blob_is_stored_byte_for_byte() {
        let g: Geometry<f64> = polygon![(x: 615000., y: 5715000.), (x: 615100., y: 5715000.), (x: 615100., y: 5715100.), (x: 615000., y: 5715000.)].into();
        let b = blob(&g);
        let c = check_geometry(&b, &rules(GeometryKind::Polygon, false)).unwrap();
        assert_eq!(c.blob, b);
    }

    #[test]
    fn bowtie_is_rejected_or_repaired() {
        let g: Geometry<f64> = polygon![(x: 615000., y: 5715000.), (x: 615100., y: 5715100.), (x: 615100., y: 5715000.), (x: 615000., y: 5715100.), (x: 615000., y: 5715000.)].into();
        let e = check_geometry(&blob(&g), &rules(GeometryKind::MultiPolygon, false)).unwrap_err();
        assert!(e.reason.contains("self-intersection"), "{}", e.reason);
        let c = check_geometry(&blob(&g), &rules(GeometryKind::MultiPolygon, true)).unwrap();
        assert!(c.repaired);
        let d = gpkg::decode(&c.blob).unwrap();
        assert!(d.decoded.geometry.unwrap().is_valid());
    }
}
