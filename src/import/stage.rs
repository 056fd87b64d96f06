//! The first pass of an import: every feature of the file is read, checked and put,
//! exactly as it would be written, into a staging database on disk — memory stays flat
//! whatever the file's size — and compared with the store for the report. No lock on
//! the store is held, so a slow or hostile file never holds up other writes; the
//! second pass (`write::import`) merges the staging database in one transaction.

use std::collections::BTreeMap;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rusqlite::Connection;
use rusqlite::types::Value;

use super::plan::{Plan, plan};
use super::{ImportError, ImportOptions, ImportReport, LayerReport, Mode, Rejected, Source, check};
use crate::crs;
use crate::geom::{Bbox, bbox_union};
use crate::store::functions::slug;
use crate::store::layer::{ValueClass, q};
use crate::store::{Store, StoreError};

/// The geometry type reported for a table without geometry.
pub const NO_GEOMETRY: &str = "NONE";

/// Rows handed to the staging writer at a time (a few MB of parcels).
const BATCH: usize = 512;

/// Rejected features listed by name in a report; the rest are counted by kind.
const LISTED: usize = 100;

/// An import checked and staged, ready to be merged.
pub struct Staged {
    /// What was found and what the import would do.
    pub report: ImportReport,
    /// Each source layer against its target.
    pub plans: Vec<Plan>,
    /// The staging database: table `s<i>` holds plan i's rows (`src_fid`, `key`,
    /// `geom`, then one column per target column).
    pub db: tempfile::TempPath,
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

/// SQL that tells whether a stored row (alias `t`) is the staged row (alias `s`)
/// byte for byte: its geometry and every property.
pub fn same_row(p: &Plan) -> String {
    let mut parts: Vec<String> = p
        .target
        .geom_target()
        .map(|g| format!("t.{g} IS s.geom"))
        .into_iter()
        .collect();
    if parts.is_empty() && p.target.columns.is_empty() {
        parts.push("1".into());
    }
    parts.extend(
        p.target
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("t.{} IS s.c{i}", q(&c.name))),
    );
    parts.join(" AND ")
}

/// SQL: the staged row (alias `s`) has the stored row's (alias `t`) geometry — an
/// indexable join for content matching; always true for tables without geometry.
pub fn same_geometry(p: &Plan) -> String {
    p.target
        .geom_target()
        .map_or_else(|| "1".into(), |g| format!("s.geom = t.{g}"))
}

/// SQL for a stored row's key (alias `t`), as the staging table holds it.
pub fn key_of(p: &Plan, key: &[usize]) -> String {
    let cols: Vec<String> = key
        .iter()
        .map(|&i| format!("t.{}", q(&p.target.columns[i].name)))
        .collect();
    format!("json_array({})", cols.join(", "))
}

/// SQL condition limiting stored rows (alias `t`) to the import's municipality; `?1`
/// is bound to its slug.
pub fn scope(p: &Plan, opts: &ImportOptions) -> String {
    match (&opts.municipality, p.municipality_col) {
        (Some(_), Some(i)) => format!("nordgeo_slug(t.{}) = ?1", q(&p.target.columns[i].name)),
        _ => "1".into(),
    }
}

/// Checks and stages the import: the report, or the report of what was rejected.
pub fn stage(store: Option<&Store>, opts: &ImportOptions) -> Result<Staged, ImportError> {
    if let Some(into) = &opts.into
        && !crate::store::layer::valid_name(into)
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
            "the file has {} layers ({}); pick one with --layer",
            layers.len(),
            layers
                .iter()
                .map(|l| l.table.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let existing = match store {
        Some(s) => s.layers()?,
        None => Vec::new(),
    };
    let known = match store {
        Some(s) => crate::municipality::known(s)?,
        None => Vec::new(),
    };
    let mut plans = Vec::new();
    for def in layers {
        plans.push(plan(&src, def, &existing, store, opts)?);
    }
    let db = tempfile::Builder::new()
        .prefix("nordgeo-staging-")
        .suffix(".sqlite")
        .tempfile()
        .map_err(|e| ImportError::Plan(format!("cannot make a staging file: {e}")))?
        .into_temp_path();
    let conn = Connection::open(&db).map_err(staging)?;
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(staging)?;
    crate::store::functions::register(&conn).map_err(staging)?;
    let _watch_staging = opts.budget.watch(&conn);
    let mut report = ImportReport {
        file: opts.file.display().to_string(),
        store: store
            .map(|s| s.path().display().to_string())
            .unwrap_or_default(),
        dry_run: opts.dry_run,
        committed: false,
        layers: Vec::new(),
    };
    let total: u64 = plans
        .iter()
        .map(|p| src.count(&p.source))
        .sum::<Result<u64, _>>()?;
    let bar = progress_bar(opts.progress, total, "checking");
    for (i, p) in plans.iter().enumerate() {
        report
            .layers
            .push(stage_layer(&src, &conn, i, p, opts, &known, &bar)?);
    }
    bar.finish_and_clear();
    if let Some(s) = store {
        for (i, (p, lr)) in plans.iter().zip(report.layers.iter_mut()).enumerate() {
            if p.exists {
                compare(&conn, s, i, p, opts, lr)?;
            }
        }
    }
    let rejected: u64 = report.layers.iter().map(|l| l.rejected_total).sum();
    if rejected > 0 {
        return Err(ImportError::Rejected {
            count: rejected as usize,
            report: Box::new(report),
        });
    }
    if let Some(empty) = report.layers.iter().find(|l| l.features == 0) {
        return Err(ImportError::Plan(format!(
            "layer '{}' in the file has no features; nothing was imported (an empty import would {} the layer)",
            empty.source_layer,
            if opts.mode == Mode::Replace {
                "empty"
            } else {
                "not change"
            }
        )));
    }
    drop(conn);
    Ok(Staged { report, plans, db })
}

fn staging(e: rusqlite::Error) -> ImportError {
    ImportError::Plan(format!("the staging database failed: {e}"))
}

/// Records a rejected feature: listed among the first ones, always counted by kind.
fn reject(lr: &mut LayerReport, fid: i64, kind: &str, reason: String) {
    lr.rejected_total += 1;
    *lr.problems.entry(kind.to_string()).or_default() += 1;
    if lr.rejected.len() < LISTED {
        lr.rejected.push(Rejected { fid, reason });
    }
}

fn stage_layer(
    src: &Source,
    conn: &Connection,
    i: usize,
    p: &Plan,
    opts: &ImportOptions,
    known: &[String],
    bar: &ProgressBar,
) -> Result<LayerReport, ImportError> {
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
        geometry_type: if p.target.has_geometry() {
            p.target.kind.gpkg_name()
        } else {
            NO_GEOMETRY
        }
        .into(),
        added_columns: p.new_columns.iter().map(|c| c.name.clone()).collect(),
        keyed_by: p.key.as_ref().map(|k| {
            k.iter()
                .map(|&c| p.target.columns[c].name.clone())
                .collect()
        }),
        ..LayerReport::default()
    };
    if p.source.table != p.target.table && opts.into.is_some() {
        lr.warnings.push(format!(
            "the file's layer is called '{}' but it is imported into '{}': check that this is the right file",
            p.source.table, p.target.table
        ));
    }
    let n = p.target.columns.len();
    let mut ddl = format!("CREATE TABLE s{i} (src_fid INTEGER PRIMARY KEY, key TEXT, geom BLOB");
    for c in 0..n {
        ddl.push_str(&format!(", c{c}"));
    }
    ddl.push_str(");");
    conn.execute_batch(&ddl).map_err(staging)?;
    // Values are ?4.. in target column order; the key is made by SQLite from them, so
    // it is spelt exactly as `json_array` spells a stored row's key.
    let key_sql = match &p.key {
        Some(k) => format!(
            "json_array({})",
            k.iter()
                .map(|c| format!("?{}", c + 4))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "NULL".into(),
    };
    let marks: Vec<String> = (0..n).map(|c| format!("?{}", c + 4)).collect();
    let sql = format!(
        "INSERT INTO s{i} VALUES (?1, {key_sql}, ?3{}{}) ",
        if n > 0 { ", " } else { "" },
        marks.join(", ")
    );
    // Checking and writing run on both cores: this thread reads and checks, a writer
    // with its own connection to the staging file inserts what passed, in batches.
    let writer_conn = Connection::open(conn.path().unwrap_or_default()).map_err(staging)?;
    writer_conn
        .execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(staging)?;
    let _watch_writer = opts.budget.watch(&writer_conn);
    let (batches, received) = std::sync::mpsc::sync_channel::<Vec<Vec<Value>>>(4);
    let writer = std::thread::Builder::new()
        .name("import-staging".into())
        .spawn(move || -> rusqlite::Result<()> {
            writer_conn.execute_batch("BEGIN")?;
            {
                let mut insert = writer_conn.prepare(&sql)?;
                for batch in received {
                    for row in batch {
                        insert.execute(rusqlite::params_from_iter(row.iter()))?;
                    }
                }
            }
            writer_conn.execute_batch("COMMIT")
        })
        .map_err(|e| ImportError::Plan(format!("cannot start the staging writer: {e}")))?;
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(BATCH);
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut bbox: Option<Bbox> = None;
    let mut implausible: Option<Bbox> = None;
    let mut far: Option<Bbox> = None;
    let mut implausible_idx = Vec::new();
    let distance = opts.max_distance_m;
    let near = |b: &Bbox| {
        p.extent.is_none_or(|e| {
            b[0] <= e[2] + distance
                && b[2] >= e[0] - distance
                && b[1] <= e[3] + distance
                && b[3] >= e[1] - distance
        })
    };
    let read = src.try_for_each(&p.source, |f| -> Result<(), ImportError> {
        bar.inc(1);
        lr.features += 1;
        let mut reasons: Vec<(&str, String)> = Vec::new();
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
                    if c.repaired && lr.repaired.len() < LISTED {
                        lr.repaired.push(f.fid);
                    }
                    if let Some(b) = c.bbox {
                        bbox_union(&mut bbox, b);
                        if !near(&b) {
                            lr.far_away += 1;
                            bbox_union(&mut far, b);
                        }
                    }
                    Some(c.blob)
                }
                Err(r) => {
                    if let Some(b) = r.implausible {
                        bbox_union(&mut implausible, b);
                        implausible_idx.push(lr.rejected.len());
                    }
                    reasons.push(("geometry", r.reason));
                    None
                }
            },
        };
        if let (Some(want), Some(i)) = (&want, p.municipality_src) {
            let ok = matches!(&f.values[i], Value::Text(t) if &slug(t) == want);
            if !ok {
                reasons.push((
                    "municipality",
                    format!(
                        "belongs to municipality {} but this import is limited to '{}'",
                        super::describe(&f.values[i]),
                        opts.municipality.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        let mut values = Vec::with_capacity(n);
        for (c, (col, idx)) in p.target.columns.iter().zip(&p.fill).enumerate() {
            let mut v = idx.map(|i| f.values[i].clone()).unwrap_or(Value::Null);
            if !value_fits(&v, col.class()) {
                reasons.push((
                    "property",
                    format!(
                        "property '{}' is {} but the column holds {:?} values",
                        col.name,
                        super::describe(&v),
                        col.class()
                    ),
                ));
            } else if col.not_null && v == Value::Null {
                reasons.push((
                    "property",
                    format!(
                        "property '{}' is NULL but the column requires a value",
                        col.name
                    ),
                ));
            }
            if Some(c) == p.municipality_col
                && let Value::Text(t) = &v
            {
                match crate::municipality::canonical(t, known) {
                    Ok(m) => v = Value::Text(m),
                    Err(e) => {
                        reasons.push(("municipality", format!("property '{}': {e}", col.name)))
                    }
                }
            }
            values.push(v);
        }
        if let Some(key) = &p.key
            && let Some(&c) = key.iter().find(|&&c| values[c] == Value::Null)
        {
            reasons.push((
                "key",
                format!(
                    "has no value for '{}', which identifies the features of '{}'",
                    p.target.columns[c].name, p.target.table
                ),
            ));
        }
        for (text, rule) in &p.rules {
            if rule.rejects(&values, None) {
                reasons.push((
                    "rule",
                    crate::filter::rules::broken(text, &p.target, &values),
                ));
            }
        }
        if let (Some(place), Some(b)) = (&opts.placement, blob.as_deref()) {
            let m = p.municipality_col.and_then(|c| match &values[c] {
                Value::Text(t) => Some(t.as_str()),
                _ => None,
            });
            if let Err(e) = place(m, b) {
                reasons.push(("placement", e));
            }
        }
        if !reasons.is_empty() {
            let kind = reasons[0].0;
            let text: Vec<String> = reasons.into_iter().map(|r| r.1).collect();
            reject(&mut lr, f.fid, kind, text.join("; "));
            return Ok(());
        }
        let mut row = Vec::with_capacity(n + 3);
        row.push(Value::Integer(f.fid));
        row.push(Value::Null);
        row.push(blob.map(Value::Blob).unwrap_or(Value::Null));
        row.extend(values);
        batch.push(row);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            // A closed channel means the writer failed: its error is reported below.
            if batches.send(full).is_err() {
                return Err(ImportError::Plan("the staging writer stopped".into()));
            }
        }
        Ok(())
    });
    if read.is_ok() && !batch.is_empty() {
        let _ = batches.send(std::mem::take(&mut batch));
    }
    drop(batches);
    let written = writer
        .join()
        .map_err(|_| ImportError::Plan("the staging writer panicked".into()))?;
    // The writer's error (disk full, interrupted) explains a stopped reader best.
    written.map_err(staging)?;
    read?;
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
        for i in implausible_idx {
            if let Some(r) = lr.rejected.get_mut(i) {
                r.reason.push_str(&hint);
            }
        }
    }
    if let (Some(f), Some(e)) = (far, p.extent) {
        let guess = crs::guess_crs(p.target.srs_id, f, e, distance)
            .map(|code| {
                format!(
                    " — it looks like {}; check the layer's CRS in QGIS",
                    crs::name(code)
                )
            })
            .unwrap_or_default();
        lr.warnings.push(format!(
            "{} features lie more than {:.0} km outside the collection's extent{guess}",
            lr.far_away,
            distance / 1000.0
        ));
    }
    if p.key.is_some() {
        let mut st = conn
            .prepare(&format!(
                "SELECT key, group_concat(src_fid, ', ') FROM s{i} GROUP BY key HAVING count(*) > 1 LIMIT {LISTED}"
            ))
            .map_err(staging)?;
        let dups: Vec<(String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(staging)?;
        for (key, fids) in dups {
            let first = fids
                .split(", ")
                .next()
                .and_then(|f| f.parse().ok())
                .unwrap_or(0);
            reject(
                &mut lr,
                first,
                "key",
                format!("the key {key} appears more than once in the file: fids {fids}"),
            );
        }
    }
    // The indexes serve matching against stored features; a layer written anew (create,
    // a whole-layer replace without key) matches nothing, and indexing a million
    // geometries would cost more than writing them.
    let rewrite = opts.mode == Mode::Create
        || (opts.mode == Mode::Replace && p.key.is_none() && opts.municipality.is_none());
    if !rewrite {
        conn.execute_batch(&format!(
            "CREATE INDEX s{i}_key ON s{i} (key); CREATE INDEX s{i}_geom ON s{i} (geom);"
        ))
        .map_err(staging)?;
    }
    if p.promoted {
        lr.warnings.push(format!(
            "the file's layer is declared {} but holds {}s: the new layer is {}, and {} single geometries are stored as one-part {}s",
            p.source.kind.gpkg_name(),
            p.target.kind,
            p.target.kind.gpkg_name(),
            lr.wrapped_in_multi,
            p.target.kind
        ));
    }
    lr.curve_types = by_type
        .keys()
        .filter_map(|k| {
            let name = k.trim_end_matches(" (empty)");
            [
                crate::geom::GeometryKind::CircularString,
                crate::geom::GeometryKind::CompoundCurve,
                crate::geom::GeometryKind::CurvePolygon,
                crate::geom::GeometryKind::MultiCurve,
                crate::geom::GeometryKind::MultiSurface,
            ]
            .into_iter()
            .find(|g| g.to_string() == name)
            .map(|g| g.gpkg_name().to_string())
        })
        .collect();
    lr.by_type = by_type;
    lr.bbox = bbox;
    lr.bbox_lonlat = bbox.and_then(|b| crs::transform_bounds(p.target.srs_id, crs::WGS84, b).ok());
    lr.staged = conn
        .query_row(&format!("SELECT count(*) FROM s{i}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(staging)? as u64;
    Ok(lr)
}

/// Compares the staged rows with the store: what the import would add, change, keep
/// and remove; features of another municipality with the same key, and exact copies
/// of stored features in an append, are rejected.
fn compare(
    conn: &Connection,
    store: &Store,
    i: usize,
    p: &Plan,
    opts: &ImportOptions,
    lr: &mut LayerReport,
) -> Result<(), ImportError> {
    let uri = format!(
        "file:{}?mode=ro",
        percent_encoding::utf8_percent_encode(&store.path().display().to_string(), &PATH_ESCAPES)
    );
    conn.execute("ATTACH ?1 AS store", [&uri])
        .map_err(|e| store_error(store, e))?;
    let result = compare_attached(conn, i, p, opts, lr);
    let _ = conn.execute_batch("DETACH store");
    result.map_err(|e| store_error(store, e))
}

fn store_error(store: &Store, e: rusqlite::Error) -> ImportError {
    ImportError::Store(StoreError::from_sqlite(store.path(), e))
}

/// Characters escaped in a `file:` URI path.
const PATH_ESCAPES: percent_encoding::AsciiSet = percent_encoding::CONTROLS
    .add(b'?')
    .add(b'#')
    .add(b'%')
    .add(b' ');

fn compare_attached(
    conn: &Connection,
    i: usize,
    p: &Plan,
    opts: &ImportOptions,
    lr: &mut LayerReport,
) -> rusqlite::Result<()> {
    let t = format!("store.{}", q(&p.target.table));
    let fid = q(p.target.fid_column.as_deref().unwrap_or("fid"));
    let slug_arg = opts.municipality.as_deref().map(slug).unwrap_or_default();
    let scope = scope(p, opts);
    // Only a scoped query names ?1.
    let count = |sql: &str| -> rusqlite::Result<u64> {
        let args: &[&dyn rusqlite::ToSql] = if sql.contains("?1") {
            &[&slug_arg]
        } else {
            &[]
        };
        conn.query_row(sql, args, |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
    };
    let in_scope = count(&format!("SELECT count(*) FROM {t} t WHERE {scope}"))?;
    let same = same_row(p);
    match (&p.key, opts.mode) {
        (_, Mode::Create) => {}
        (None, Mode::Replace) if opts.municipality.is_none() => {
            lr.added = lr.staged;
            lr.removed = in_scope;
        }
        (None, Mode::Append) => {
            lr.added = lr.staged;
            if !opts.allow_duplicates {
                let mut st = conn.prepare(&format!(
                    "SELECT s.src_fid, t.{fid} FROM s{i} s JOIN {t} t ON {g} AND {same} LIMIT {LISTED}",
                    g = same_geometry(p)
                ))?;
                let copies: Vec<(i64, i64)> = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                for (src, stored) in copies {
                    reject(
                        lr,
                        src,
                        "duplicate",
                        format!(
                            "is already in '{}' as feature {stored} (same geometry and properties); importing it again would list it twice — leave it out of the file, or import with allow-duplicates",
                            p.target.table
                        ),
                    );
                }
            }
        }
        (key, mode) => {
            // Matched by key, or (without a key, in a scoped replace) by content.
            let on = match key {
                Some(k) => format!("s.key = {}", key_of(p, k)),
                None => format!("{} AND {same}", same_geometry(p)),
            };
            let matched = count(&format!(
                "SELECT count(DISTINCT s.src_fid) FROM {t} t JOIN s{i} s ON {on} WHERE {scope}"
            ))?;
            let unchanged = count(&format!(
                "SELECT count(DISTINCT s.src_fid) FROM {t} t JOIN s{i} s ON {on} WHERE ({scope}) AND {same}"
            ))?;
            lr.unchanged = unchanged;
            lr.changed = matched - unchanged;
            lr.added = lr.staged - matched;
            if mode == Mode::Replace {
                lr.removed = in_scope.saturating_sub(count(&format!(
                    "SELECT count(DISTINCT t.{fid}) FROM {t} t JOIN s{i} s ON {on} WHERE {scope}"
                ))?);
            }
            if let Some(k) = key
                && opts.municipality.is_some()
            {
                let mut st = conn.prepare(&format!(
                    "SELECT s.src_fid, t.{fid}, s.key FROM {t} t JOIN s{i} s ON s.key = {} WHERE NOT ({scope}) LIMIT {LISTED}",
                    key_of(p, k)
                ))?;
                let clashes: Vec<(i64, i64, String)> = st
                    .query_map([&slug_arg], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                for (src, stored, key) in clashes {
                    reject(
                        lr,
                        src,
                        "key",
                        format!(
                            "has the key {key} of feature {stored}, which belongs to another municipality"
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}
