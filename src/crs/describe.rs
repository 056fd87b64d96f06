//! What PROJ's definition of a CRS says: whether the first axis points north
//! (EPSG:4326, EPSG:3035, the Gauss-Krüger zones), whether it is in degrees, and its WKT.
//! The `proj` crate has no safe API for these, so this is the one place with FFI.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::ptr;

use proj_sys as sys;

/// The axes of a CRS as PROJ defines them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axes {
    /// The first axis points north or south (latitude/northing first).
    pub north_first: bool,
    /// Angular units (degrees), i.e. a geographic CRS.
    pub angular: bool,
}

/// Frees PROJ objects on every path out.
struct Guard {
    ctx: *mut sys::PJ_CONTEXT,
    objs: Vec<*mut sys::PJ>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: every pointer was returned non-null by PROJ for this context and is
        // destroyed exactly once, before the context.
        unsafe {
            for o in self.objs.drain(..).rev() {
                sys::proj_destroy(o);
            }
            sys::proj_context_destroy(self.ctx);
        }
    }
}

impl Guard {
    fn keep(&mut self, p: *mut sys::PJ) -> Option<*mut sys::PJ> {
        (!p.is_null()).then(|| {
            self.objs.push(p);
            p
        })
    }
}

/// Runs `f` on the CRS PROJ makes of `definition` (its horizontal part for bound and
/// compound CRSs), freeing everything afterwards.
fn with_crs<R>(
    definition: &str,
    f: impl FnOnce(&mut Guard, *mut sys::PJ) -> Option<R>,
) -> Option<R> {
    let def = CString::new(definition).ok()?;
    // SAFETY: plain PROJ C API use; every object is owned by `g` and freed by its Drop.
    unsafe {
        let ctx = sys::proj_context_create();
        if ctx.is_null() {
            return None;
        }
        let mut g = Guard {
            ctx,
            objs: Vec::new(),
        };
        let mut crs = g.keep(sys::proj_create(ctx, def.as_ptr()))?;
        // A WKT1 CRS with TOWGS84 is a BoundCRS, one with a vertical part is compound:
        // the horizontal axes are those of the base or first part.
        if sys::proj_get_type(crs) == sys::PJ_TYPE_PJ_TYPE_BOUND_CRS {
            crs = g.keep(sys::proj_get_source_crs(ctx, crs))?;
        }
        if sys::proj_get_type(crs) == sys::PJ_TYPE_PJ_TYPE_COMPOUND_CRS {
            crs = g.keep(sys::proj_crs_get_sub_crs(ctx, crs, 0))?;
        }
        f(&mut g, crs)
    }
}

/// Copies a C string PROJ returned (owned by a live object) into Rust.
///
/// SAFETY: `p` is null or a NUL-terminated string that outlives this call.
unsafe fn string(p: *const c_char) -> Option<String> {
    // SAFETY: see the function's contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Reads the axes of a CRS given as `EPSG:n` or WKT; `None` if PROJ cannot tell.
pub fn axes(definition: &str) -> Option<Axes> {
    with_crs(definition, |g, crs| {
        // SAFETY: `crs` is a live CRS of `g.ctx`; out-pointers are valid locals.
        unsafe {
            let cs = g.keep(sys::proj_crs_get_coordinate_system(g.ctx, crs))?;
            let mut direction: *const c_char = ptr::null();
            let mut factor = 0.0;
            let mut unit: *const c_char = ptr::null();
            let ok = sys::proj_cs_get_axis_info(
                g.ctx,
                cs,
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                &mut direction,
                &mut factor,
                &mut unit,
                ptr::null_mut(),
                ptr::null_mut(),
            );
            if ok == 0 {
                return None;
            }
            let direction = string(direction)?.to_lowercase();
            let unit = string(unit).unwrap_or_default().to_lowercase();
            let t = sys::proj_get_type(crs);
            let angular = t == sys::PJ_TYPE_PJ_TYPE_GEOGRAPHIC_2D_CRS
                || t == sys::PJ_TYPE_PJ_TYPE_GEOGRAPHIC_3D_CRS
                || unit.contains("degree");
            Some(Axes {
                north_first: direction == "north" || direction == "south",
                angular,
            })
        }
    })
}

/// The CRS as OGC WKT 1 in GDAL's dialect (what GeoPackage writers store).
pub fn wkt1(definition: &str) -> Option<String> {
    with_crs(definition, |g, crs| {
        // SAFETY: `crs` is live until `g` drops, after the string is copied.
        unsafe {
            string(sys::proj_as_wkt(
                g.ctx,
                crs,
                sys::PJ_WKT_TYPE_PJ_WKT1_GDAL,
                ptr::null(),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_order_is_read_from_proj() {
        let a = |d: &str| axes(d).unwrap();
        assert!(a("EPSG:4326").north_first && a("EPSG:4326").angular);
        assert!(a("EPSG:4314").north_first && a("EPSG:4314").angular);
        assert!(a("EPSG:3035").north_first && !a("EPSG:3035").angular);
        assert!(a("EPSG:31468").north_first);
        assert!(!a("EPSG:25832").north_first && !a("EPSG:25832").angular);
        assert!(!a("EPSG:3857").north_first);
        assert_eq!(axes("not a crs"), None);
        assert!(
            wkt1("EPSG:3035")
                .unwrap()
                .starts_with("PROJCS[\"ETRS89-extended / LAEA Europe\"")
        );
    }
}
