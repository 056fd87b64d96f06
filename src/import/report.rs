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
    /// Rejected features (the first ones; `rejected_total` counts all).
    pub rejected: Vec<Rejected>,
    /// How many features were rejected.
    pub rejected_total: u64,
    /// Rejected features by kind of problem (geometry, property, key, rule, …).
    pub problems: BTreeMap<String, u64>,
    /// Things to look at that did not stop the import.
    pub warnings: Vec<String>,
    /// The columns features are matched by, when the collection has a key.
    pub keyed_by: Option<Vec<String>>,
    /// Features that passed the checks.
    pub staged: u64,
    /// Features that lie far outside the collection's extent.
    pub far_away: u64,
    /// Features the import adds (new fids).
    pub added: u64,
    /// Stored features it changes in place (same fid, old version in the history).
    pub changed: u64,
    /// Stored features that are already as in the file (left alone).
    pub unchanged: u64,
    /// Stored features it removes (kept in the history).
    pub removed: u64,
    /// Curve types among the features (registered as GeoPackage extensions).
    pub curve_types: Vec<String>,
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
            if l.geometry_type == super::stage::NO_GEOMETRY {
                writeln!(
                    f,
                    "    a table without geometry (attributes): served as features with \"geometry\": null, no tiles"
                )?;
            }
            for (k, n) in &l.by_type {
                if l.geometry_type == super::stage::NO_GEOMETRY {
                    break;
                }
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
            let geometry = l.geometry_type != super::stage::NO_GEOMETRY;
            if geometry {
                writeln!(f, "    CRS:       {crs_line}")?;
                writeln!(
                    f,
                    "    extent:    {}  (lon/lat {})",
                    fmt_bbox(&l.bbox, 3),
                    fmt_bbox(&l.bbox_lonlat, 6)
                )?;
            }
            if geometry && l.null_geometries + l.empty_geometries > 0 {
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
            if let Some(k) = &l.keyed_by {
                writeln!(f, "    matched by: {}", k.join(", "))?;
            }
            if l.rejected_total == 0 {
                writeln!(
                    f,
                    "    {}: {} added, {} changed, {} unchanged, {} removed (kept in history){}",
                    if self.committed {
                        "written"
                    } else {
                        "would be"
                    },
                    l.added,
                    l.changed,
                    l.unchanged,
                    l.removed,
                    match l.change_id {
                        Some(c) if self.committed => format!(", change {c}"),
                        _ => String::new(),
                    }
                )?;
            }
            for w in &l.warnings {
                writeln!(f, "    WARNING:   {w}")?;
            }
            if l.rejected_total > 0 {
                let kinds: Vec<String> =
                    l.problems.iter().map(|(k, n)| format!("{n} {k}")).collect();
                writeln!(
                    f,
                    "    REJECTED:  {} features ({})",
                    l.rejected_total,
                    kinds.join(", ")
                )?;
                for r in &l.rejected {
                    writeln!(f, "      fid {}: {}", r.fid, r.reason)?;
                }
                if l.rejected_total > l.rejected.len() as u64 {
                    writeln!(
                        f,
                        "      … and {} more",
                        l.rejected_total - l.rejected.len() as u64
                    )?;
                }
            }
        }
        Ok(())
    }
}
