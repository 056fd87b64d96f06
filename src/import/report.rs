//! The import report: what was found, what was (or would be) written, what was rejected.

use std::collections::BTreeMap;
use std::fmt;

use crate::crs;
use crate::geom::Bbox;

/// The whole import.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    /// Imported file.
    pub file: String,
    /// Store file.
    pub store: String,
    /// Checked only.
    pub dry_run: bool,
    /// The transaction committed.
    pub committed: bool,
    /// Per layer.
    pub layers: Vec<LayerReport>,
}

/// One rejected feature.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejected {
    /// Its fid in the file.
    pub fid: i64,
    /// Why.
    pub reason: String,
}

/// One source layer.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LayerReport {
    /// Layer in the file.
    pub source_layer: String,
    /// Layer in the store.
    pub target_layer: String,
    /// Mode.
    pub mode: String,
    /// Municipality scope.
    pub municipality: Option<String>,
    /// EPSG code in the file.
    pub source_crs: i32,
    /// EPSG code in the store.
    pub target_crs: i32,
    /// Declared geometry type of the target.
    pub geometry_type: String,
    /// Features read.
    pub features: u64,
    /// Features per geometry type.
    pub by_type: BTreeMap<String, u64>,
    /// NULL geometries (kept).
    pub null_geometries: u64,
    /// Empty geometries (kept).
    pub empty_geometries: u64,
    /// Single geometries stored as one-member Multi*.
    pub wrapped_in_multi: u64,
    /// Fids repaired with --repair.
    pub repaired: Vec<i64>,
    /// Columns added to the store's layer.
    pub added_columns: Vec<String>,
    /// Extent in the target CRS.
    pub bbox: Option<Bbox>,
    /// Extent in lon/lat.
    pub bbox_lonlat: Option<Bbox>,
    /// Features written.
    pub imported: u64,
    /// Features replaced (kept in history).
    pub replaced: u64,
    /// The change id in `nordgeo history`.
    pub change_id: Option<i64>,
    /// Rejected features.
    pub rejected: Vec<Rejected>,
}

fn fmt_bbox(b: &Option<Bbox>, decimals: usize) -> String {
    match b {
        Some(b) => format!(
            "{:.d$}, {:.d$} .. {:.d$}, {:.d$}",
            b[0],
            b[1],
            b[2],
            b[3],
            d = decimals
        ),
        None => "none".into(),
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.committed {
            "imported"
        } else if self.dry_run {
            "checked (dry run, nothing written)"
        } else {
            "checked, NOT imported"
        };
        writeln!(f, "{} -> {}: {verb}", self.file, self.store)?;
        for l in &self.layers {
            writeln!(
                f,
                "  layer {} -> {} ({}{})",
                l.source_layer,
                l.target_layer,
                l.mode,
                l.municipality
                    .as_deref()
                    .map(|m| format!(", municipality {m}"))
                    .unwrap_or_default()
            )?;
            writeln!(f, "    features:  {}", l.features)?;
            for (k, n) in &l.by_type {
                writeln!(f, "      {k:<22} {n}")?;
            }
            let crs_line = if l.source_crs == l.target_crs {
                crs::name(l.source_crs)
            } else {
                format!(
                    "{} reprojected to {}",
                    crs::name(l.source_crs),
                    crs::name(l.target_crs)
                )
            };
            writeln!(f, "    CRS:       {crs_line}")?;
            writeln!(
                f,
                "    extent:    {}  (lon/lat {})",
                fmt_bbox(&l.bbox, 3),
                fmt_bbox(&l.bbox_lonlat, 6)
            )?;
            if l.null_geometries + l.empty_geometries > 0 {
                writeln!(
                    f,
                    "    kept as they are: {} NULL and {} empty geometries",
                    l.null_geometries, l.empty_geometries
                )?;
            }
            if l.wrapped_in_multi > 0 {
                writeln!(
                    f,
                    "    {} single geometries stored as one-part {}",
                    l.wrapped_in_multi, l.geometry_type
                )?;
            }
            if !l.repaired.is_empty() {
                writeln!(f, "    repaired (--repair): fids {:?}", l.repaired)?;
            }
            if !l.added_columns.is_empty() {
                writeln!(f, "    new columns: {}", l.added_columns.join(", "))?;
            }
            if self.committed {
                writeln!(
                    f,
                    "    written:   {} features, {} replaced (kept in history), change {}",
                    l.imported,
                    l.replaced,
                    l.change_id.unwrap_or_default()
                )?;
            }
            if !l.rejected.is_empty() {
                writeln!(f, "    REJECTED:  {} features", l.rejected.len())?;
                for r in &l.rejected {
                    writeln!(f, "      fid {}: {}", r.fid, r.reason)?;
                }
            }
        }
        Ok(())
    }
}
