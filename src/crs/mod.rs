//! Coordinate reference systems: PROJ behind a small API, plausibility checks and the
//! exact Web Mercator formulas the index uses.
//!
//! `proj::Proj` is neither `Send` nor `Sync`, so transformers live in a thread-local
//! cache keyed by (from, to); the plain-data facts (areas of use) are shared.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use proj::Proj;

use crate::geom::Bbox;

mod define;
mod describe;
mod utm;

pub use define::{Defined, custom_id, define, epsg_of, lookup};
pub use describe::wkt1;

/// Errors from CRS lookups and transformations.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CrsError {
    /// PROJ does not know the code.
    #[error("EPSG:{0} is not a coordinate reference system PROJ knows ({1})")]
    Unknown(i32, String),
    /// A transformation failed.
    #[error("cannot transform coordinates from EPSG:{from} to EPSG:{to}: {msg}")]
    Transform {
        /// Source code.
        from: i32,
        /// Target code.
        to: i32,
        /// PROJ's message.
        msg: String,
    },
}

/// EPSG code of WGS 84 geographic (stored lon/lat in GeoPackage and GeoJSON).
pub const WGS84: i32 = 4326;
/// EPSG code of Web Mercator.
pub const WEB_MERCATOR: i32 = 3857;

/// CRS definitions written into every new store (OGC WKT 1, as GDAL writes them).
pub const BUILTIN: &[(i32, &str, &str)] = &[
    (4326, "WGS 84", include_str!("wkt/4326.wkt")),
    (4258, "ETRS89", include_str!("wkt/4258.wkt")),
    (
        25832,
        "ETRS89 / UTM zone 32N",
        include_str!("wkt/25832.wkt"),
    ),
    (
        25833,
        "ETRS89 / UTM zone 33N",
        include_str!("wkt/25833.wkt"),
    ),
    (
        3857,
        "WGS 84 / Pseudo-Mercator",
        include_str!("wkt/3857.wkt"),
    ),
    (
        31467,
        "DHDN / 3-degree Gauss-Kruger zone 3",
        include_str!("wkt/31467.wkt"),
    ),
    (
        31468,
        "DHDN / 3-degree Gauss-Kruger zone 4",
        include_str!("wkt/31468.wkt"),
    ),
    (
        31469,
        "DHDN / 3-degree Gauss-Kruger zone 5",
        include_str!("wkt/31469.wkt"),
    ),
];

/// Codes tried, in this order, when guessing what CRS mis-declared coordinates are in.
const GUESSES: &[i32] = &[25832, 4326, 31468, 25833, 31467, 31469, 4258];

/// The region the guesses must land in: Germany with a margin, lon/lat.
const SERVICE_REGION: Bbox = [5.0, 46.5, 16.0, 56.0];

/// Facts about one CRS, shareable across threads.
#[derive(Debug, Clone, Copy)]
pub struct CrsFacts {
    /// Degrees (true) or a projected system.
    pub geographic: bool,
    /// Area of use in lon/lat.
    pub area_lonlat: Bbox,
    /// Area of use in the CRS's own coordinates, widened by a margin, for plausibility checks.
    pub plausible: Bbox,
    /// The first axis is latitude or northing (EPSG:4326, EPSG:3035, Gauss-Krüger), as
    /// PROJ defines the CRS; OGC API output follows it.
    pub north_first: bool,
}

thread_local! {
    static TRANSFORMERS: RefCell<HashMap<(i32, i32), Proj>> = RefCell::new(HashMap::new());
}

fn facts_cache() -> &'static Mutex<HashMap<i32, Result<CrsFacts, CrsError>>> {
    static CACHE: OnceLock<Mutex<HashMap<i32, Result<CrsFacts, CrsError>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Looks up a CRS in PROJ's database and returns its area of use (cached).
pub fn facts(epsg: i32) -> Result<CrsFacts, CrsError> {
    if let Some(f) = facts_cache().lock().map_err(poisoned)?.get(&epsg) {
        return f.clone();
    }
    let f = compute_facts(epsg);
    facts_cache()
        .lock()
        .map_err(poisoned)?
        .insert(epsg, f.clone());
    f
}

fn poisoned<T>(_: T) -> CrsError {
    CrsError::Unknown(0, "internal lock poisoned".into())
}

fn compute_facts(epsg: i32) -> Result<CrsFacts, CrsError> {
    let def = define::proj_definition(epsg);
    let crs = Proj::new(&def).map_err(|e| CrsError::Unknown(epsg, e.to_string()))?;
    let axes = describe::axes(&def);
    let (area, known_area) = match crs.area_of_use() {
        Ok((Some(a), _)) => ([a.west, a.south, a.east, a.north], true),
        _ => ([-180.0, -90.0, 180.0, 90.0], false),
    };
    // Geographic iff converting a lon/lat point to it is the identity.
    let probe = [((area[0] + area[2]) / 2.0, (area[1] + area[3]) / 2.0)];
    let mut p = probe;
    transform(WGS84, epsg, &mut p)?;
    let geographic = axes.map_or_else(
        || (p[0].0 - probe[0].0).abs() < 1e-3 && (p[0].1 - probe[0].1).abs() < 1e-3,
        |a| a.angular,
    );
    // Data just outside a zone is common (Thuringia straddles UTM 32/33), so widen.
    let wide = [
        (area[0] - 3.0).max(-180.0),
        (area[1] - 1.0).max(-90.0),
        (area[2] + 3.0).min(180.0),
        (area[3] + 1.0).min(90.0),
    ];
    let anything = [f64::MIN, f64::MIN, f64::MAX, f64::MAX];
    let plausible = if geographic {
        [-180.0, -90.0, 180.0, 90.0]
    } else if epsg == WEB_MERCATOR {
        let m = 20_037_508.342_789_244;
        [-m, -m, m, m]
    } else if !known_area {
        // A CRS known only by its WKT has no area of use: nothing is implausible in it.
        anything
    } else {
        transform_bounds(WGS84, epsg, wide).unwrap_or(anything)
    };
    Ok(CrsFacts {
        geographic,
        area_lonlat: area,
        plausible,
        north_first: axes.is_some_and(|a| a.north_first),
    })
}

fn with_transformer<R>(
    from: i32,
    to: i32,
    f: impl FnOnce(&Proj) -> Result<R, String>,
) -> Result<R, CrsError> {
    let err = |msg: String| CrsError::Transform { from, to, msg };
    TRANSFORMERS.with(|cell| {
        let mut map = cell.borrow_mut();
        let p = match map.entry((from, to)) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(
                Proj::new_known_crs(
                    &define::proj_definition(from),
                    &define::proj_definition(to),
                    None,
                )
                .map_err(|e| err(e.to_string()))?,
            ),
        };
        f(p).map_err(err)
    })
}

/// Transforms XY pairs in place (lon/lat or easting/northing order, whatever the CRS).
pub fn transform(from: i32, to: i32, xy: &mut [(f64, f64)]) -> Result<(), CrsError> {
    if from == to || xy.is_empty() {
        return Ok(());
    }
    // UTM to Web Mercator (the stores' usual case) without the PROJ pipeline: an EPSG
    // code, or a file's srs_id standing for one; a CRS given by a file's own WKT goes to
    // PROJ.
    let epsg = match define::lookup(from) {
        None => Some(from),
        Some(d) => d.epsg.filter(|c| d.definition == format!("EPSG:{c}")),
    };
    let direct = epsg.filter(|_| to == WEB_MERCATOR).and_then(utm::zone_of);
    if let Some(zone) = direct {
        for p in xy.iter_mut() {
            *p = zone.to_web_mercator(p.0, p.1);
        }
    } else {
        with_transformer(from, to, |p| {
            p.convert_array(xy).map(|_| ()).map_err(|e| e.to_string())
        })?;
    }
    if xy.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return Err(CrsError::Transform {
            from,
            to,
            msg: "coordinates fall outside the area where the transformation is defined".into(),
        });
    }
    Ok(())
}

/// Arrays at least this long are split across cores: below it, making a thread's own
/// PROJ transformer costs more than the split saves.
const PARALLEL_MIN: usize = 200_000;

/// [`transform`] on every core for a large array (each thread with its own PROJ
/// transformer; PROJ objects are not shared between threads).
pub fn transform_parallel(from: i32, to: i32, xy: &mut [(f64, f64)]) -> Result<(), CrsError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if from == to || xy.len() < PARALLEL_MIN || cores < 2 {
        return transform(from, to, xy);
    }
    let chunk = xy.len().div_ceil(cores);
    std::thread::scope(|s| {
        let parts: Vec<_> = xy
            .chunks_mut(chunk)
            .map(|part| s.spawn(move || transform(from, to, part)))
            .collect();
        parts
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect::<Result<Vec<()>, CrsError>>()
            .map(|_| ())
    })
}

/// Transforms a bounding box, densifying its edges so curved images are covered.
pub fn transform_bounds(from: i32, to: i32, b: Bbox) -> Result<Bbox, CrsError> {
    if from == to {
        return Ok(b);
    }
    with_transformer(from, to, |p| {
        p.transform_bounds(b[0], b[1], b[2], b[3], 21)
            .map_err(|e| e.to_string())
    })
}

/// Why coordinates do not fit the CRS they are declared in.
#[derive(Debug, Clone, PartialEq)]
pub struct Implausible {
    /// A CRS the coordinates would fit, if one does.
    pub looks_like: Option<i32>,
}

/// Checks that a bbox lies in the (widened) area of use of `epsg`; on failure, guesses
/// which CRS the numbers were really in.
pub fn check_plausible(epsg: i32, b: Bbox) -> Result<(), Implausible> {
    let ok = |code: i32, strict: bool| -> bool {
        let Ok(f) = facts(code) else { return false };
        let within = |e: Bbox| b[0] >= e[0] && b[1] >= e[1] && b[2] <= e[2] && b[3] <= e[3];
        if !within(f.plausible) {
            return false;
        }
        if !strict {
            return true;
        }
        let mut c = [((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)];
        transform(code, WGS84, &mut c).is_ok() && {
            let (lon, lat) = c[0];
            lon >= SERVICE_REGION[0]
                && lat >= SERVICE_REGION[1]
                && lon <= SERVICE_REGION[2]
                && lat <= SERVICE_REGION[3]
        }
    };
    if ok(epsg, false) {
        return Ok(());
    }
    let looks_like = GUESSES.iter().copied().find(|&g| g != epsg && ok(g, true));
    Err(Implausible { looks_like })
}

/// For coordinates declared in `epsg` that lie far from where a layer is (`near`, both
/// in `epsg`): a CRS in which the same numbers would land within `distance` of it — the
/// CRS the data were really in ("looks like EPSG:25833").
pub fn guess_crs(epsg: i32, far: Bbox, near: Bbox, distance: f64) -> Option<i32> {
    GUESSES.iter().copied().filter(|&g| g != epsg).find(|&g| {
        let mut c = [((far[0] + far[2]) / 2.0, (far[1] + far[3]) / 2.0)];
        transform(g, epsg, &mut c).is_ok() && {
            let (x, y) = c[0];
            x >= near[0] - distance
                && x <= near[2] + distance
                && y >= near[1] - distance
                && y <= near[3] + distance
        }
    })
}

/// The display name of a CRS, for messages.
pub fn name(epsg: i32) -> String {
    if let Some(d) = lookup(epsg) {
        return match d.epsg {
            Some(code) => name(code),
            None => format!("the file's own CRS '{}'", d.name),
        };
    }
    BUILTIN
        .iter()
        .find(|(c, _, _)| *c == epsg)
        .map(|(c, n, _)| format!("EPSG:{c} ({n})"))
        .unwrap_or_else(|| format!("EPSG:{epsg}"))
}

const EARTH_RADIUS: f64 = 6_378_137.0;

/// Lon/lat (degrees, WGS 84) to Web Mercator metres; latitudes are clamped to ±85.06°.
pub fn lonlat_to_mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-85.051_128_779_806_59, 85.051_128_779_806_59);
    let x = EARTH_RADIUS * lon.to_radians();
    let y = EARTH_RADIUS
        * (std::f64::consts::FRAC_PI_4 + lat.to_radians() / 2.0)
            .tan()
            .ln();
    (x, y)
}

/// Web Mercator metres to lon/lat degrees (WGS 84).
pub fn mercator_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = (x / EARTH_RADIUS).to_degrees();
    let lat = (y / EARTH_RADIUS).sinh().atan().to_degrees();
    (lon, lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_points_match_proj_cli() {
        // Values from cs2cs (PROJ 9.1.1), see ../shared/deps.md.
        let mut p = [(10.674, 51.580)];
        transform(4326, 25832, &mut p).unwrap();
        assert!((p[0].0 - 615989.6362).abs() < 1e-3 && (p[0].1 - 5715654.0034).abs() < 1e-3);
        let mut q = [(4407350.0, 5717380.0)];
        transform(31468, 4326, &mut q).unwrap();
        assert!((q[0].0 - 10.661790925).abs() < 1e-8 && (q[0].1 - 51.583244066).abs() < 1e-8);
    }

    #[test]
    fn mercator_matches_proj() {
        let mut p = [(10.674, 51.580)];
        transform(4326, 3857, &mut p).unwrap();
        let (x, y) = lonlat_to_mercator(10.674, 51.580);
        assert!((p[0].0 - x).abs() < 1e-6 && (p[0].1 - y).abs() < 1e-6);
        let (lon, lat) = mercator_to_lonlat(x, y);
        assert!((lon - 10.674).abs() < 1e-12 && (lat - 51.580).abs() < 1e-12);
    }

    #[test]
    fn degrees_metres_confusion_is_caught_with_a_hint() {
        let utm = [615989.0, 5715654.0, 616989.0, 5716654.0];
        assert_eq!(
            check_plausible(4326, utm),
            Err(Implausible {
                looks_like: Some(25832)
            })
        );
        let lonlat = [10.6, 51.5, 10.7, 51.6];
        assert_eq!(
            check_plausible(25832, lonlat),
            Err(Implausible {
                looks_like: Some(4326)
            })
        );
        assert!(check_plausible(25832, utm).is_ok());
        assert!(check_plausible(4326, lonlat).is_ok());
    }

    #[test]
    fn unknown_code_is_an_error() {
        assert!(matches!(facts(990001), Err(CrsError::Unknown(990001, _))));
    }
}
