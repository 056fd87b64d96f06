//! Importing a GeoPackage into the store: all or nothing, nothing lost.
//!
//! Read path: open and check the file -> plan each layer against the store (mode, CRS,
//! columns, municipality) -> decode and check every feature -> only if nothing was
//! rejected, write everything in one SQLite transaction, keeping what it replaces in the
//! layer's history.

pub mod check;
pub mod report;
pub mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rusqlite::types::Value;

use crate::crs;
use crate::geom::{Bbox, bbox_union};
use crate::store::functions::slug;
use crate::store::history::{self, ChangeMeta};
use crate::store::layer::{self, Column, LayerDef, SrsRow, ValueClass, q};
use crate::store::{LayerMeta, Store, StoreError, capture, schema, write_meta};
pub use report::{ImportReport, LayerReport, Rejected};
pub use source::{Source, SourceError};

/// How an import treats the target layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The layer must not exist yet.
    Create,
    /// Replace the layer's features (or one municipality's).
    Replace,
    /// Add features to the layer.
    Append,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::Replace => "replace",
            Mode::Append => "append",
        }
    }
}

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The GeoPackage to import.
    pub file: PathBuf,
    /// Only this source layer.
    pub layer: Option<String>,
    /// Target layer name (only with one source layer).
    pub into: Option<String>,
    /// Mode.
    pub mode: Mode,
    /// Limit the import to one municipality.
    pub municipality: Option<String>,
    /// Check only.
    pub dry_run: bool,
    /// Repair invalid polygons.
    pub repair: bool,
    /// Reproject a new layer to this EPSG code (otherwise it keeps its CRS).
    pub target_crs: Option<i32>,
    /// Who is importing (recorded in the change log).
    pub actor: String,
    /// Show a progress bar on a terminal.
    pub progress: bool,
    /// How long the import may run; past it (or when cancelled) it stops and writes nothing.
    pub budget: crate::write::Budget,
}

/// Why an import did not happen; the store is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file itself.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request does not fit the store (mode, names, schema).
    #[error("{0}")]
    Plan(String),
    /// Features failed the checks.
    #[error("{count} feature(s) rejected; nothing was imported (the report above lists each one)")]
    Rejected {
        /// How many.
        count: usize,
        /// The full report.
        report: Box<ImportReport>,
    },
}

/// One source layer mapped onto its target.
struct Plan {
    source: LayerDef,
    source_epsg: i32,
    source_srs: SrsRow,
    target: LayerDef,
    exists: bool,
    /// For each target attribute column, the source value index that fills it.
    fill: Vec<Option<usize>>,
    new_columns: Vec<Column>,
    /// Source index of the municipality column, when the import is scoped.
    municipality_src: Option<usize>,
    municipality_col: Option<String>,
    meta: LayerMeta,
}

/// A checked feature, ready to insert.
struct Ready {
    fid: i64,
    blob: Option<Vec<u8>>,
    values: Vec<Value>,
}

/// Runs an import against the store at `store_path` (created by `--mode create` when
/// it does not exist yet).
pub fn run(store_path: &Path, opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    if store_path.exists() {
        let store = Store::open(store_path)?;
        import(Some(&store), store_path, opts)
    } else if opts.mode == Mode::Create {
        import(None, store_path, opts)
    } else {
        Err(StoreError::NotFound(store_path.into()).into())
    }
}

/// Runs an import on an open store (the server's write connection).
pub fn run_on(store: &Store, opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    import(Some(store), store.path(), opts)
}

fn import(
    store: Option<&Store>,
    store_path: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    match import_within_budget(store, store_path, opts) {
        // Whatever was interrupted (reading the file or writing), the budget says why.
        Err(_) if opts.budget.exhausted() => Err(StoreError::Interrupted.into()),
        other => other,
    }
}

fn import_within_budget(
    store: Option<&Store>,
    store_path: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    if let Some(into) = &opts.into
        && !layer::valid_name(into)
    {
        return Err(ImportError::Plan(format!(
            "'{into}' cannot be a layer name: use letters, digits and '_' (starting with a letter), at most 63 characters, not starting with gpkg, rtree_, nordgeo_ or sqlite"
        )));
    }
    if opts.mode != Mode::Create && opts.target_crs.is_some() {
        return Err(ImportError::Plan(
            "--target-crs applies to new layers (--mode create); replace and append always use the layer's CRS".into(),
        ));
    }
    let src = Source::open(&opts.file)?;
    let _watch_source = opts.budget.watch(src.conn());
    let layers = src.layers(opts.layer.as_deref())?;
    if opts.into.is_some() && layers.len() > 1 {
        return Err(ImportError::Plan(format!(
            "--into needs a single source layer, but {} has {}: pick one with --layer",
            opts.file.display(),
            layers.len()
        )));
    }
    let existing = match &store {
        Some(s) => s.layers()?,
        None => Vec::new(),
    };

    let mut plans = Vec::new();
    for def in layers {
        plans.push(plan(&src, def, &existing, store, opts)?);
    }

    let mut report = ImportReport {
        file: opts.file.display().to_string(),
        store: store_path.display().to_string(),
        dry_run: opts.dry_run,
        committed: false,
        layers: Vec::new(),
    };
    let total: u64 = plans
        .iter()
        .map(|p| src.count(&p.source))
        .sum::<Result<u64, _>>()?;
    let bar = progress_bar(opts.progress, total, "checking");
    let mut batches = Vec::new();
    for p in &plans {
        let (lr, rows) = check_layer(&src, p, opts, &bar)?;
        report.layers.push(lr);
        batches.push(rows);
    }
    bar.finish_and_clear();
    let rejected: usize = report.layers.iter().map(|l| l.rejected.len()).sum();
    if rejected > 0 {
        return Err(ImportError::Rejected {
            count: rejected,
            report: Box::new(report),
        });
    }
    if let Some(empty) = report.layers.iter().find(|l| l.features == 0) {
        return Err(ImportError::Plan(format!(
            "layer '{}' in {} has no features; nothing was imported (an empty import would {} the layer)",
            empty.source_layer,
            opts.file.display(),
            if opts.mode == Mode::Replace {
                "empty"
            } else {
                "not change"
            }
        )));
    }
    if opts.dry_run {
        return Ok(report);
    }

    let created;
    let store = match store {
        Some(s) => s,
        None => {
            created = Store::create(store_path)?;
            &created
        }
    };
    let _watch_store = opts.budget.watch(store.conn());
    let bar = progress_bar(opts.progress, total, "writing");
    write(store, &plans, batches, &mut report, opts, &bar)?;
    bar.finish_and_clear();
    report.committed = true;
    Ok(report)
}

fn progress_bar(show: bool, total: u64, what: &'static str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>9} [{bar:40}] {pos}/{len} features, {per_sec}, eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

fn plan(
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
            "{}: the layer name '{}' cannot be used as a table name; choose one with --into NAME (letters, digits, '_')",
            opts.file.display(),
            target_name.escape_debug()
        )));
    }
    for c in &def.columns {
        // Column names are always quoted in SQL, so "Fläche (m²)" is fine; only names
        // no client could display or type are refused.
        if c.name.trim().is_empty() || c.name.chars().any(char::is_control) {
            return Err(ImportError::Plan(format!(
                "{}, layer '{}': the column name '{}' cannot be used; rename the column",
                opts.file.display(),
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
            return Err(ImportError::Plan(format!(
                "layer '{target_name}' does not exist yet; import it with --mode create first"
            )));
        }
        _ => {}
    }

    let (target, exists, meta) = match found {
        Some(t) => {
            let meta = store
                .map(|s| s.meta(&t.table))
                .transpose()?
                .unwrap_or_default();
            (t, true, meta)
        }
        None => {
            let epsg = opts.target_crs.unwrap_or(source_epsg);
            crs::facts(epsg).map_err(|e| ImportError::Plan(format!("--target-crs: {e}")))?;
            let t = LayerDef {
                table: target_name.clone(),
                geom_column: "geom".into(),
                fid_column: Some("fid".into()),
                kind: def.kind,
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
            let is_polygon = matches!(
                def.kind,
                crate::geom::GeometryKind::Polygon | crate::geom::GeometryKind::MultiPolygon
            );
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
                ..LayerMeta::default()
            };
            (t, false, meta)
        }
    };
    if exists && target.m == 0 && def.m != 0 {
        return Err(ImportError::Plan(format!(
            "layer '{}' in the file has M values but the store's layer '{}' does not",
            def.table, target.table
        )));
    }

    // Columns: by name, case-insensitively; new ones are added, nothing is dropped.
    let mut target = target;
    let mut new_columns = Vec::new();
    for c in &def.columns {
        match target
            .columns
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(&c.name))
        {
            Some(t) => {
                let (a, b) = (c.class(), t.class());
                let ok = a == b
                    || b == ValueClass::Text
                    || (b == ValueClass::Real
                        && matches!(a, ValueClass::Integer | ValueClass::Boolean))
                    || (matches!(a, ValueClass::Integer | ValueClass::Boolean)
                        && matches!(b, ValueClass::Integer | ValueClass::Boolean));
                if !ok {
                    return Err(ImportError::Plan(format!(
                        "column '{}' is {} in the file but {} in the store's layer '{}'; convert it in the file first",
                        c.name, c.decl_type, t.decl_type, target.table
                    )));
                }
            }
            None if exists => {
                let nc = Column {
                    not_null: false,
                    ..c.clone()
                };
                new_columns.push(nc.clone());
                target.columns.push(nc);
            }
            None => {}
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
    if let Some((t, _)) = target
        .columns
        .iter()
        .zip(&fill)
        .find(|(t, f)| t.not_null && f.is_none())
    {
        return Err(ImportError::Plan(format!(
            "the store's layer '{}' requires column '{}' (NOT NULL), which layer '{}' in the file does not have",
            target.table, t.name, def.table
        )));
    }

    let municipality_col = meta.municipality_column.clone();
    let municipality_src = match &opts.municipality {
        None => None,
        Some(m) => {
            let col = municipality_col.as_ref().ok_or_else(|| {
                ImportError::Plan(format!(
                    "--municipality {m}: layer '{}' has no municipality column (expected a column named 'municipality')",
                    target.table
                ))
            })?;
            Some(
                def.columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(col))
                    .ok_or_else(|| {
                        ImportError::Plan(format!(
                            "--municipality {m}: layer '{}' in the file has no column '{col}'",
                            def.table
                        ))
                    })?,
            )
        }
    };
    Ok(Plan {
        source: def,
        source_epsg,
        source_srs,
        target,
        exists,
        fill,
        new_columns,
        municipality_src,
        municipality_col,
        meta,
    })
}

fn value_fits(v: &Value, class: ValueClass) -> bool {
    match (v, class) {
        (Value::Null, _) => true,
        (_, ValueClass::Text) => !matches!(v, Value::Blob(_)),
        (Value::Integer(_), ValueClass::Integer | ValueClass::Real) => true,
        (Value::Integer(i), ValueClass::Boolean) => *i == 0 || *i == 1,
        (Value::Real(_), ValueClass::Real) => true,
        (Value::Blob(_), ValueClass::Blob) => true,
        _ => false,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Text(t) => format!("'{}' (text)", t.chars().take(40).collect::<String>()),
        Value::Blob(b) => format!("{} bytes of binary data", b.len()),
    }
}

fn check_layer(
    src: &Source,
    p: &Plan,
    opts: &ImportOptions,
    bar: &ProgressBar,
) -> Result<(LayerReport, Vec<Ready>), ImportError> {
    let source_facts = crs::facts(p.source_epsg).map_err(|e| ImportError::Plan(e.to_string()))?;
    let rules = check::GeomRules {
        source_layer: p.source.table.clone(),
        source_srs_id: p.source.srs_id,
        source_kind: p.source.kind,
        source_epsg: p.source_epsg,
        plausible: source_facts.plausible,
        target_layer: p.target.table.clone(),
        target_kind: p.target.kind,
        target_z: p.target.z,
        target_epsg: p.target.srs_id,
        repair: opts.repair,
    };
    let want = opts.municipality.as_deref().map(slug);
    let mut lr = LayerReport {
        source_layer: p.source.table.clone(),
        target_layer: p.target.table.clone(),
        mode: opts.mode.as_str().into(),
        municipality: opts.municipality.clone(),
        source_crs: p.source_epsg,
        target_crs: p.target.srs_id,
        geometry_type: p.target.kind.gpkg_name().into(),
        added_columns: p.new_columns.iter().map(|c| c.name.clone()).collect(),
        ..LayerReport::default()
    };
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut bbox: Option<Bbox> = None;
    let mut implausible: Option<Bbox> = None;
    let mut rows = Vec::new();
    let mut rejected_idx = Vec::new();
    src.for_each(&p.source, |f| {
        bar.inc(1);
        lr.features += 1;
        let mut reasons = Vec::new();
        let blob = match f.blob {
            None => {
                lr.null_geometries += 1;
                *by_type.entry("NULL".into()).or_default() += 1;
                None
            }
            Some(b) => match check::check_geometry(&b, &rules) {
                Ok(c) => {
                    let name = if c.empty {
                        format!("{} (empty)", c.kind)
                    } else {
                        c.kind.to_string()
                    };
                    *by_type.entry(name).or_default() += 1;
                    lr.empty_geometries += c.empty as u64;
                    lr.wrapped_in_multi += c.wrapped as u64;
                    if c.repaired {
                        lr.repaired.push(f.fid);
                    }
                    if let Some(b) = c.bbox {
                        bbox_union(&mut bbox, b);
                    }
                    Some(c.blob)
                }
                Err(r) => {
                    if let Some(b) = r.implausible {
                        bbox_union(&mut implausible, b);
                        rejected_idx.push(lr.rejected.len());
                    }
                    reasons.push(r.reason);
                    None
                }
            },
        };
        if let (Some(want), Some(i)) = (&want, p.municipality_src) {
            let ok = matches!(&f.values[i], Value::Text(t) if &slug(t) == want);
            if !ok {
                reasons.push(format!(
                    "belongs to municipality {} but this import is limited to '{}'",
                    describe(&f.values[i]),
                    opts.municipality.as_deref().unwrap_or_default()
                ));
            }
        }
        let mut values = Vec::with_capacity(p.fill.len());
        for (col, idx) in p.target.columns.iter().zip(&p.fill) {
            let v = idx.map(|i| f.values[i].clone()).unwrap_or(Value::Null);
            if !value_fits(&v, col.class()) {
                reasons.push(format!(
                    "property '{}' is {} but the column holds {:?} values",
                    col.name,
                    describe(&v),
                    col.class()
                ));
            } else if col.not_null && v == Value::Null {
                reasons.push(format!(
                    "property '{}' is NULL but the column requires a value",
                    col.name
                ));
            }
            values.push(v);
        }
        if reasons.is_empty() {
            rows.push(Ready {
                fid: f.fid,
                blob,
                values,
            });
        } else {
            lr.rejected.push(Rejected {
                fid: f.fid,
                reason: reasons.join("; "),
            });
        }
    })?;
    if let Some(b) = implausible {
        let hint = match crs::check_plausible(p.source_epsg, b) {
            Err(crs::Implausible {
                looks_like: Some(code),
            }) => format!(
                " — looks like {}; set the layer's CRS correctly in QGIS and export again",
                crs::name(code)
            ),
            _ => " — check the layer's CRS in QGIS and export again".into(),
        };
        for i in rejected_idx {
            lr.rejected[i].reason.push_str(&hint);
        }
    }
    lr.by_type = by_type;
    lr.bbox = bbox;
    lr.bbox_lonlat = bbox.and_then(|b| crs::transform_bounds(p.target.srs_id, crs::WGS84, b).ok());
    Ok((lr, rows))
}

fn write(
    store: &Store,
    plans: &[Plan],
    batches: Vec<Vec<Ready>>,
    report: &mut ImportReport,
    opts: &ImportOptions,
    bar: &ProgressBar,
) -> Result<(), ImportError> {
    let err = |e| store.err(e);
    let tx = store.conn().unchecked_transaction().map_err(err)?;
    for ((p, rows), lr) in plans.iter().zip(batches).zip(report.layers.iter_mut()) {
        let t = &p.target;
        schema::ensure_srs(
            &tx,
            &SrsRow {
                srs_id: t.srs_id,
                code: t.srs_id,
                ..p.source_srs.clone()
            },
        )
        .map_err(err)?;
        let whole = opts.mode == Mode::Create
            || (opts.mode == Mode::Replace && opts.municipality.is_none());
        if !p.exists {
            if t.srs_id != p.source_epsg {
                let (code, name, wkt) = crs::BUILTIN
                    .iter()
                    .find(|(c, _, _)| *c == t.srs_id)
                    .ok_or_else(|| {
                        ImportError::Plan(format!(
                            "--target-crs EPSG:{} is not one of the CRSs nordgeo can store",
                            t.srs_id
                        ))
                    })?;
                schema::ensure_srs(
                    &tx,
                    &SrsRow {
                        srs_id: *code,
                        name: name.to_string(),
                        organization: "EPSG".into(),
                        code: *code,
                        definition: wkt.to_string(),
                    },
                )
                .map_err(err)?;
            }
            layer::create_feature_table(&tx, t).map_err(err)?;
            write_meta(&tx, &t.table, &p.meta).map_err(err)?;
        }
        for c in &p.new_columns {
            layer::add_column(&tx, &t.table, c).map_err(err)?;
        }
        // A whole-layer rewrite records itself once instead of once per feature.
        if whole || !p.new_columns.is_empty() {
            capture::drop(&tx, t).map_err(err)?;
        }
        history::ensure_history_table(&tx, t).map_err(err)?;
        let meta = ChangeMeta {
            kind: "import".into(),
            mode: Some(opts.mode.as_str().into()),
            municipality: opts.municipality.clone(),
            source: Some(format!(
                "{}{}",
                opts.file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                if p.source.table != t.table {
                    format!(" (layer {})", p.source.table)
                } else {
                    String::new()
                }
            )),
            actor: opts.actor.clone(),
            note: None,
        };
        let change = history::begin_change(&tx, &t.table, &meta).map_err(err)?;
        if opts.mode == Mode::Replace {
            match (&opts.municipality, &p.municipality_col) {
                (Some(m), Some(col)) => {
                    let filter = format!("nordgeo_slug({}) = ?2", q(col));
                    let s = slug(m);
                    lr.replaced =
                        history::save_removed(&tx, t, change, &filter, &[&s]).map_err(err)? as u64;
                    tx.execute(
                        &format!(
                            "DELETE FROM {} WHERE {}",
                            q(&t.table),
                            filter.replace("?2", "?1")
                        ),
                        [&s],
                    )
                    .map_err(err)?;
                }
                _ => {
                    lr.replaced =
                        history::save_removed(&tx, t, change, "1", &[]).map_err(err)? as u64;
                    layer::drop_rtree_triggers(&tx, t).map_err(err)?;
                    tx.execute_batch(&format!(
                        "DELETE FROM {}; DELETE FROM {};",
                        q(&t.table),
                        q(&layer::rtree_name(t))
                    ))
                    .map_err(err)?;
                }
            }
        }
        // Whole-layer writes keep the file's fids (stable ids for clients); writes next
        // to other features get fresh ones, so they can never collide.
        let added = insert_rows(&tx, t, rows, whole, bar, &opts.budget).map_err(err)?;
        if whole {
            layer::load_rtree(&tx, t).map_err(err)?;
            layer::create_rtree_triggers(&tx, t).map_err(err)?;
        }
        if opts.mode == Mode::Create {
            tx.execute(
                "UPDATE nordgeo_changes SET added = ?2 WHERE id = ?1",
                rusqlite::params![change, added.len() as i64],
            )
            .map_err(err)?;
        } else {
            let mut stmt = tx
                .prepare(&format!(
                    "INSERT INTO {} (change_id, change_op, {}) VALUES (?1, 'added', ?2)",
                    q(&history::history_table(&t.table)),
                    q(t.fid_column.as_deref().unwrap_or("fid"))
                ))
                .map_err(err)?;
            for fid in &added {
                stmt.execute([change, *fid]).map_err(err)?;
            }
            drop(stmt);
            history::finish_change(&tx, t, change).map_err(err)?;
        }
        layer::refresh_contents(&tx, t).map_err(err)?;
        if whole || !p.new_columns.is_empty() {
            capture::ensure(&tx, t).map_err(err)?;
            capture::whole_layer(&tx, &t.table).map_err(err)?;
        }
        lr.imported = added.len() as u64;
        lr.change_id = Some(change);
    }
    // The last moment to give up: past the budget the answer would come too late.
    if opts.budget.exhausted() {
        return Err(StoreError::Interrupted.into());
    }
    crate::write::commit(tx).map_err(err)?;
    Ok(())
}

fn insert_rows(
    tx: &rusqlite::Connection,
    t: &LayerDef,
    rows: Vec<Ready>,
    keep_fids: bool,
    bar: &ProgressBar,
    budget: &crate::write::Budget,
) -> rusqlite::Result<Vec<i64>> {
    let fid = t.fid_column.as_deref().unwrap_or("fid");
    let mut cols = Vec::new();
    if keep_fids {
        cols.push(q(fid));
    }
    cols.push(q(&t.geom_column));
    cols.extend(t.columns.iter().map(|c| q(&c.name)));
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let mut stmt = tx.prepare(&format!(
        "INSERT INTO {} ({}) VALUES ({})",
        q(&t.table),
        cols.join(", "),
        marks.join(", ")
    ))?;
    let mut fids = Vec::with_capacity(rows.len());
    for (n, r) in rows.into_iter().enumerate() {
        // Between two rows no statement runs for SQLite's interrupt to stop.
        if n % 1024 == 0 && budget.exhausted() {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
                None,
            ));
        }
        bar.inc(1);
        let mut params: Vec<Value> = Vec::with_capacity(cols.len());
        if keep_fids {
            params.push(Value::Integer(r.fid));
        }
        params.push(r.blob.map(Value::Blob).unwrap_or(Value::Null));
        params.extend(r.values);
        stmt.execute(rusqlite::params_from_iter(params))?;
        fids.push(tx.last_insert_rowid());
    }
    Ok(fids)
}
