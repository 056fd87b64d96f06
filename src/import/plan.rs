//! Planning one source layer against its target: mode, CRS, columns (which must fit),
//! the key features are matched by, the municipality scope and the layer's rules.

use super::{ImportError, ImportOptions, Mode, Source};
use crate::crs;
use crate::filter::Pred;
use crate::geom::{Bbox, GeometryKind};
use crate::store::layer::{self, Column, LayerDef, SrsRow, ValueClass};
use crate::store::{LayerMeta, Store};

/// One source layer mapped onto its target.
pub struct Plan {
    /// The layer in the file.
    pub source: LayerDef,
    /// EPSG code of the file's CRS.
    pub source_epsg: i32,
    /// The file's `gpkg_spatial_ref_sys` row.
    pub source_srs: SrsRow,
    /// The layer in the store (as it will be).
    pub target: LayerDef,
    /// Whether the target exists already.
    pub exists: bool,
    /// For each target attribute column, the source value index that fills it.
    pub fill: Vec<Option<usize>>,
    /// Columns the import adds to the target (only with `add-columns`).
    pub new_columns: Vec<Column>,
    /// Source index of the municipality column, when the import is scoped.
    pub municipality_src: Option<usize>,
    /// Target index of the municipality column, if the layer has one.
    pub municipality_col: Option<usize>,
    /// Target indices of the key columns, if the layer has a key.
    pub key: Option<Vec<usize>>,
    /// The layer's rules: (text, bound predicate).
    pub rules: Vec<(String, Pred)>,
    /// The target's settings.
    pub meta: LayerMeta,
    /// The target's extent (its CRS) before the import, for the distance warning.
    pub extent: Option<Bbox>,
    /// A new layer declared single but holding Multi*s is made the Multi* type.
    pub promoted: bool,
}

fn names(cols: &[Column]) -> String {
    if cols.is_empty() {
        return "(none)".into();
    }
    cols.iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The nearest name in a list (for "did you mean"), when it is close enough.
pub fn nearest<'a>(want: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let dist = |a: &str, b: &str| -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (
            a.to_lowercase().chars().collect(),
            b.to_lowercase().chars().collect(),
        );
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut prev = row[0];
            row[0] = i;
            for j in 1..=b.len() {
                let cur = row[j];
                row[j] = (row[j] + 1)
                    .min(row[j - 1] + 1)
                    .min(prev + usize::from(a[i - 1] != b[j - 1]));
                prev = cur;
            }
        }
        row[b.len()]
    };
    names
        .into_iter()
        .map(|n| (dist(want, n), n))
        .filter(|(d, n)| *d <= 2.max(n.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Plans one source layer.
pub fn plan(
    src: &Source,
    def: LayerDef,
    existing: &[LayerDef],
    store: Option<&Store>,
    opts: &ImportOptions,
) -> Result<Plan, ImportError> {
    src.check_columns(&def)?;
    let target_name = opts.into.clone().unwrap_or_else(|| def.table.clone());
    if !layer::valid_name(&target_name) {
        return Err(ImportError::Plan(format!(
            "the layer name '{}' cannot be used as a table name; choose one with --into NAME (letters, digits, '_')",
            target_name.escape_debug()
        )));
    }
    for c in &def.columns {
        // Column names are always quoted in SQL, so "Fläche (m²)" is fine; only names
        // no client could display or type are refused.
        if c.name.trim().is_empty() || c.name.chars().any(char::is_control) {
            return Err(ImportError::Plan(format!(
                "layer '{}': the column name '{}' cannot be used; rename the column",
                def.table,
                c.name.escape_debug()
            )));
        }
    }
    let (source_epsg, source_srs) = src.srs(&def)?;
    let found = existing.iter().find(|l| l.table == target_name).cloned();
    match (opts.mode, &found) {
        (Mode::Create, Some(_)) => {
            return Err(ImportError::Plan(format!(
                "layer '{target_name}' already exists; use --mode replace to replace its features or --mode append to add to them"
            )));
        }
        (Mode::Replace | Mode::Append, None) => {
            let hint = match nearest(&target_name, existing.iter().map(|l| l.table.as_str())) {
                Some(n) => format!(
                    "did you mean '{n}'? (the layers are: {})",
                    layer_names(existing)
                ),
                None => format!(
                    "the layers are: {}; a new layer is imported with --mode create",
                    layer_names(existing)
                ),
            };
            return Err(ImportError::Plan(format!(
                "layer '{target_name}' does not exist; {hint}"
            )));
        }
        _ => {}
    }

    let (mut target, exists, meta, extent) = match found {
        Some(t) => {
            let meta = store
                .map(|s| s.meta(&t.table))
                .transpose()?
                .unwrap_or_default();
            let extent = t.bounds;
            (t, true, meta, extent)
        }
        None => {
            let epsg = opts.target_crs.unwrap_or(source_epsg);
            crs::facts(epsg).map_err(|e| ImportError::Plan(format!("--target-crs: {e}")))?;
            // A Shapefile converted as it is (and QGIS with mixed data) declares POLYGON
            // for a layer of polygons and multipolygons, GeoJSON converted declares
            // GEOMETRY: the new layer is the Multi* type.
            let kind = match def.kind.multi() {
                Some(m) if def.kind.single().is_none() && src.kinds(&def)?.contains(&m) => m,
                None if def.kind == GeometryKind::Geometry => {
                    one_family(&src.kinds(&def)?).unwrap_or(def.kind)
                }
                _ => def.kind,
            };
            let t = LayerDef {
                table: target_name.clone(),
                geom_column: if def.has_geometry() { "geom" } else { "" }.into(),
                fid_column: Some("fid".into()),
                kind,
                z: def.z,
                m: def.m,
                srs_id: epsg,
                columns: def.columns.clone(),
                identifier: Some(target_name.clone()),
                description: def.description.clone(),
                bounds: None,
            };
            let municipality_column = def
                .columns
                .iter()
                .find(|c| {
                    ["municipality", "gemeinde"]
                        .iter()
                        .any(|n| c.name.eq_ignore_ascii_case(n))
                })
                .map(|c| c.name.clone());
            // A layer of municipality boundaries named as such says which municipalities
            // there are and where each one's maintainers may place features.
            let is_polygon = matches!(def.kind, GeometryKind::Polygon | GeometryKind::MultiPolygon);
            let boundaries = (is_polygon
                && ["municipalities", "gemeinden"]
                    .contains(&target_name.to_ascii_lowercase().as_str()))
            .then(|| {
                def.columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case("name"))
                    .map(|c| c.name.clone())
            })
            .flatten();
            let meta = LayerMeta {
                title: def.identifier.clone().filter(|i| i != &def.table),
                description: def.description.clone().filter(|d| !d.is_empty()),
                municipality_column,
                boundaries,
                internal_properties: src.marked_internal(&def),
                ..LayerMeta::default()
            };
            (t, false, meta, None)
        }
    };
    if exists && target.m == 0 && def.m != 0 {
        return Err(ImportError::Plan(format!(
            "layer '{}' in the file has M values but the store's layer '{}' does not",
            def.table, target.table
        )));
    }

    // Columns, by name, case-insensitively: the file's must be the layer's. A file with
    // other columns is most likely another layer's export (it would add columns for good
    // and leave the layer's own empty); new columns need an explicit `add-columns`.
    let mut new_columns = Vec::new();
    if exists {
        let has = |cols: &[Column], n: &str| cols.iter().any(|c| c.name.eq_ignore_ascii_case(n));
        let extra: Vec<Column> = def
            .columns
            .iter()
            .filter(|c| !has(&target.columns, &c.name))
            .cloned()
            .collect();
        let missing: Vec<Column> = target
            .columns
            .iter()
            .filter(|c| !has(&def.columns, &c.name))
            .cloned()
            .collect();
        if !missing.is_empty() || (!extra.is_empty() && !opts.add_columns) {
            return Err(ImportError::Plan(format!(
                "the columns of layer '{}' in the file do not fit collection '{}'. The file has: {}. \
                 The collection has: {}. Missing in the file: {}. Not in the collection: {}. \
                 Check that you chose the right collection and file{}",
                def.table,
                target.table,
                names(&def.columns),
                names(&target.columns),
                names(&missing),
                names(&extra),
                if missing.is_empty() {
                    "; an administrator can add the new columns with --add-columns"
                } else {
                    ""
                }
            )));
        }
        for c in extra {
            let nc = Column {
                not_null: false,
                ..c
            };
            new_columns.push(nc.clone());
            target.columns.push(nc);
        }
        for c in &def.columns {
            let Some(t) = target
                .columns
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(&c.name))
            else {
                continue;
            };
            let (a, b) = (c.class(), t.class());
            let ok = a == b
                || b == ValueClass::Text
                || (b == ValueClass::Real
                    && matches!(a, ValueClass::Integer | ValueClass::Boolean))
                || (matches!(a, ValueClass::Integer | ValueClass::Boolean)
                    && matches!(b, ValueClass::Integer | ValueClass::Boolean));
            if !ok {
                return Err(ImportError::Plan(format!(
                    "column '{}' is {} in the file but {} in collection '{}'; convert it in the file first",
                    c.name, c.decl_type, t.decl_type, target.table
                )));
            }
        }
    }
    let fill: Vec<Option<usize>> = target
        .columns
        .iter()
        .map(|t| {
            def.columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(&t.name))
        })
        .collect();
    let position = |name: &str| target.columns.iter().position(|c| c.name == name);
    let municipality_col = meta.municipality_column.as_deref().and_then(position);
    let municipality_src = match &opts.municipality {
        None => None,
        Some(m) => {
            let col = meta.municipality_column.as_ref().ok_or_else(|| {
                ImportError::Plan(format!(
                    "municipality {m}: collection '{}' has no municipality column (expected a column named 'municipality')",
                    target.table
                ))
            })?;
            Some(
                def.columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(col))
                    .ok_or_else(|| {
                        ImportError::Plan(format!(
                            "municipality {m}: layer '{}' in the file has no column '{col}'",
                            def.table
                        ))
                    })?,
            )
        }
    };
    let key = match &meta.key {
        None => None,
        Some(cols) => Some(
            cols.iter()
                .map(|c| {
                    position(c).ok_or_else(|| {
                        ImportError::Plan(format!(
                            "collection '{}' is keyed by '{c}', which it does not have; fix it with set-layer --key",
                            target.table
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let rules = meta
        .rules
        .iter()
        .map(|r| {
            crate::filter::rules::compile(r, &target)
                .map(|p| (r.clone(), p))
                .map_err(|e| {
                    ImportError::Plan(format!(
                        "the rule '{r}' of collection '{}' cannot be used: {e}",
                        target.table
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let promoted = !exists && target.kind != def.kind;
    Ok(Plan {
        promoted,
        source: def,
        source_epsg,
        source_srs,
        target,
        exists,
        fill,
        new_columns,
        municipality_src,
        municipality_col,
        key,
        rules,
        meta,
        extent,
    })
}

fn layer_names(list: &[LayerDef]) -> String {
    list.iter()
        .map(|l| l.table.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Multi* type of geometries that are all of one family (Polygon and MultiPolygon,
/// ...) with at least one multi among them; `None` otherwise.
fn one_family(kinds: &[GeometryKind]) -> Option<GeometryKind> {
    let multi_of = |k: GeometryKind| {
        if k.single().is_some() {
            Some(k)
        } else {
            k.multi()
        }
    };
    let first = multi_of(*kinds.first()?)?;
    (kinds.iter().all(|k| multi_of(*k) == Some(first)) && kinds.contains(&first)).then_some(first)
}
