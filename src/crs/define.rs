//! CRSs known by their definition rather than an EPSG code: a GeoPackage's
//! `gpkg_spatial_ref_sys` row with another organization, or only WKT (GDAL's srs_id
//! 100000 and up). Each gets a CRS id the rest of nordgeo uses like an EPSG code.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use super::CrsError;

/// The id range for CRSs known only by their WKT (above EPSG codes and GDAL's 100000+).
const CUSTOM_FIRST: i32 = 1_000_000;

/// What a CRS id stands for when it is not an EPSG code.
#[derive(Debug, Clone, PartialEq)]
pub struct Defined {
    /// The CRS's name, for messages and the `/crs/{id}` document.
    pub name: String,
    /// What PROJ is given: `EPSG:n` for an alias, else the WKT.
    pub definition: String,
    /// The EPSG code this id stands for, if it is an alias of one.
    pub epsg: Option<i32>,
}

fn registry() -> &'static RwLock<HashMap<i32, Defined>> {
    static R: OnceLock<RwLock<HashMap<i32, Defined>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The id a WKT-only CRS gets: derived from the definition (FNV-1a), so the same CRS has
/// the same id in every import, store and process.
pub fn custom_id(wkt: &str) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in wkt.trim().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    CUSTOM_FIRST + (h % 2_000_000_000) as i32
}

/// Makes `id` stand for a CRS given by WKT (or for an EPSG code), after checking that
/// PROJ can transform it to WGS 84.
pub fn define(id: i32, d: Defined) -> Result<(), CrsError> {
    if lookup(id).is_some_and(|known| known == d) {
        return Ok(());
    }
    proj::Proj::new_known_crs(&d.definition, "EPSG:4326", None)
        .map_err(|e| CrsError::Unknown(id, format!("'{}': {e}", d.name)))?;
    registry()
        .write()
        .map_err(|_| CrsError::Unknown(id, "internal lock poisoned".into()))?
        .insert(id, d);
    Ok(())
}

/// The definition behind an id, if it is not a plain EPSG code.
pub fn lookup(id: i32) -> Option<Defined> {
    registry().read().ok()?.get(&id).cloned()
}

/// What PROJ is given for a CRS id.
pub fn proj_definition(id: i32) -> String {
    match lookup(id) {
        Some(d) => d.definition,
        None => format!("EPSG:{id}"),
    }
}

/// The EPSG code a CRS id stands for; `None` for a CRS known only by its WKT.
pub fn epsg_of(id: i32) -> Option<i32> {
    match lookup(id) {
        Some(d) => d.epsg,
        None => Some(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wkt_crs_gets_a_stable_id_and_transforms() {
        let wkt = crate::crs::describe::wkt1(
            "+proj=tmerc +lat_0=0 +lon_0=10.5 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs +type=crs",
        )
        .unwrap();
        let id = custom_id(&wkt);
        assert_eq!(id, custom_id(&format!("  {wkt}\n")));
        assert!(id >= CUSTOM_FIRST);
        define(
            id,
            Defined {
                name: "unknown".into(),
                definition: wkt,
                epsg: None,
            },
        )
        .unwrap();
        let mut p = [(10.5, 51.0)];
        crate::crs::transform(4326, id, &mut p).unwrap();
        assert!((p[0].0 - 500_000.0).abs() < 1e-6, "{p:?}");
        assert_eq!(epsg_of(id), None);
        assert_eq!(epsg_of(25832), Some(25832));
    }
}
