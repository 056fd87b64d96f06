//! Imports into a PostGIS store that match stored features: `--mode append`, a layer with
//! a key (`set-layer --key`) and a municipality's part (`--municipality`). They run the
//! GeoPackage store's planner and merge unchanged on an exact copy of the layers they
//! touch (and the municipality boundaries), made in a temporary GeoPackage while the
//! store's capture turn is held, so nothing changes under them. What the merge wrote in
//! the copy's history is then replayed on the tables in the same transaction through the
//! edit path's rows (`write::edit::Rows`): the checks, matching and counts are those of
//! any import, and the change log and history are those of any edit.

use std::collections::BTreeSet;

use super::{PgError, PgStore, edit::PgRows, export, layers, settings};
use crate::import::{ImportError, ImportOptions, ImportReport, Mode};
use crate::store::history::{ChangeMeta, history_table};
use crate::store::layer::q;
use crate::store::{LayerDef, Store};
use crate::write::edit::{EditError, GeoPackageRows, Rows};

impl From<EditError> for ImportError {
    fn from(e: EditError) -> Self {
        ImportError::Plan(e.to_string())
    }
}

/// The layers an import writes: the file's (or the one it picks), or `--into`.
fn targets(opts: &ImportOptions) -> Result<BTreeSet<String>, ImportError> {
    Ok(crate::import::Source::open(&opts.file)?
        .layers(opts.layer.as_deref())?
        .into_iter()
        .map(|l| opts.into.clone().unwrap_or(l.table))
        .collect())
}

/// Whether an import must match stored features (rather than write whole layers).
pub fn needed(store: &mut PgStore, opts: &ImportOptions) -> Result<bool, ImportError> {
    if opts.mode == Mode::Append || opts.municipality.is_some() {
        return Ok(true);
    }
    if opts.mode != Mode::Replace {
        return Ok(false);
    }
    for t in targets(opts)? {
        if settings::meta(store, &t)
            .map_err(|e| ImportError::Plan(e.to_string()))?
            .key
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Runs a matching import: checked and merged on the copy, then replayed in one
/// transaction.
pub fn run(store: &mut PgStore, opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    let pg = |e: PgError| ImportError::Plan(e.to_string());
    let all = layers::list(store).map_err(pg)?;
    let targets = targets(opts)?;
    let dir = tempfile::tempdir()
        .map_err(|e| ImportError::Plan(format!("no temporary directory: {e}")))?;
    store
        .client()
        .batch_execute("BEGIN")
        .map_err(|e| pg(store.err(e)))?;
    let result = (|| {
        let lock = super::schema::capture_lock(store);
        store
            .client()
            .batch_execute(&lock)
            .map_err(|e| pg(store.err(e)))?;
        let copy = snapshot(store, &all, &targets, true, &dir.path().join("copy.gpkg"))
            .map_err(|e| working_copy(e, dir.path(), store.at()))?;
        let mut report = crate::write::import::run_on(&copy, opts)
            .map_err(|e| working_copy(e, dir.path(), store.at()))?;
        report.store = store.at().to_string();
        if !report.committed {
            return Ok(report);
        }
        let mut rows = PgRows::new(store);
        for lr in &mut report.layers {
            let Some(change) = lr.change_id else { continue };
            let (def, _) = all
                .iter()
                .find(|(d, _)| d.table == lr.target_layer)
                .ok_or_else(|| pg(PgError::NoSuchLayer(lr.target_layer.clone())))?;
            lr.change_id = Some(replay(&copy, &mut rows, def, change)?);
        }
        Ok(report)
    })();
    let end = match &result {
        Ok(r) if r.committed => "COMMIT",
        _ => "ROLLBACK",
    };
    if let Err(e) = store.client().batch_execute(end) {
        let _ = store.client().batch_execute("ROLLBACK");
        return Err(pg(store.err(e)));
    }
    result
}

/// An error of the working copy in the words of the store: the copy's place is nobody's
/// business (and no answer names a path on the server).
fn working_copy(e: ImportError, dir: &std::path::Path, at: &str) -> ImportError {
    match e {
        ImportError::Rejected { count, mut report } => {
            report.store = at.to_string();
            ImportError::Rejected { count, report }
        }
        other => ImportError::Plan(
            other
                .to_string()
                .replace(&dir.join("copy.gpkg").display().to_string(), "the store")
                .replace(&dir.display().to_string(), "the store"),
        ),
    }
}

/// A GeoPackage store made at `path` of the layers an import is checked against, with
/// their settings: the `targets` (with their rows when `rows`, else with their columns
/// and extent only) and the layer of municipality boundaries (whole).
fn snapshot(
    store: &mut PgStore,
    all: &[(LayerDef, layers::Relation)],
    targets: &BTreeSet<String>,
    rows: bool,
    path: &std::path::Path,
) -> Result<Store, ImportError> {
    let pg = |e: PgError| ImportError::Plan(e.to_string());
    let copy = export::scratch_store(path)?;
    let mut failed = None;
    let conn = copy.conn();
    let tx = conn.unchecked_transaction().map_err(|e| copy.err(e))?;
    for (def, rel) in all {
        let meta = settings::meta(store, &def.table).map_err(pg)?;
        let target = targets.contains(&def.table);
        let which = if meta.boundaries.is_some() || (target && rows) {
            export::Rows::Some(None)
        } else if target {
            export::Rows::None
        } else {
            continue;
        };
        let empty = matches!(which, export::Rows::None);
        let done = export::copy_layer(store, def, rel, def, &tx, which, &mut failed)
            .and_then(|_| crate::store::write_meta(&tx, &def.table, &meta));
        if let Some(e) = failed.take() {
            return Err(pg(e));
        }
        done.map_err(|e| copy.err(e))?;
        // Without its rows the copy still has the layer's extent, which the import's
        // distance warning compares with.
        if empty && !rel.geom.is_empty() {
            let g = q(&rel.geom);
            let e = store
                .client()
                .query_one(
                    &format!(
                        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent({g})::geometry AS e FROM {}) x",
                        rel.qualified()
                    ),
                    &[],
                )
                .map_err(|e| pg(store.err(e)))?;
            let b: [Option<f64>; 4] = [e.get(0), e.get(1), e.get(2), e.get(3)];
            tx.execute(
                "UPDATE gpkg_contents SET min_x = ?1, min_y = ?2, max_x = ?3, max_y = ?4 WHERE table_name = ?5",
                rusqlite::params![b[0], b[1], b[2], b[3], def.table],
            )
            .map_err(|e| copy.err(e))?;
        }
    }
    tx.commit().map_err(|e| copy.err(e))?;
    Ok(copy)
}

/// Checks and stages an import that writes whole layers against a copy of the targets'
/// columns, settings and extent (no rows) and the municipality boundaries, so its checks
/// are those of a GeoPackage store's import. The copy is made outside any transaction:
/// a slow file holds up nobody.
pub fn stage_whole(
    store: &mut PgStore,
    opts: &ImportOptions,
) -> Result<crate::import::Staged, ImportError> {
    let all = layers::list(store).map_err(|e| ImportError::Plan(e.to_string()))?;
    let targets = targets(opts)?;
    let dir = tempfile::tempdir()
        .map_err(|e| ImportError::Plan(format!("no temporary directory: {e}")))?;
    let at = store.at().to_string();
    let copy = snapshot(store, &all, &targets, false, &dir.path().join("copy.gpkg"))
        .map_err(|e| working_copy(e, dir.path(), &at))?;
    let mut staged =
        crate::import::stage(Some(&copy), opts).map_err(|e| working_copy(e, dir.path(), &at))?;
    staged.report.store = at;
    Ok(staged)
}

/// Replays change `change` of the copy on the store's table of `def`: the removed and
/// overwritten rows go to the history, then rows are deleted, overwritten or added as
/// the copy's history says. Returns the store's change id.
fn replay(
    copy: &Store,
    rows: &mut PgRows,
    def: &LayerDef,
    change: i64,
) -> Result<i64, ImportError> {
    let err = |e: rusqlite::Error| ImportError::Store(copy.err(e));
    let conn = copy.conn();
    let meta = ChangeMeta::of(conn, change).map_err(err)?;
    let fids = |op: &str| -> Result<BTreeSet<i64>, ImportError> {
        let mut st = conn
            .prepare(&format!(
                "SELECT {} FROM {} WHERE change_id = ?1 AND change_op = ?2",
                q(def.fid_column.as_deref().unwrap_or("fid")),
                q(&history_table(&def.table))
            ))
            .map_err(err)?;
        st.query_map(rusqlite::params![change, op], |r| r.get(0))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)
    };
    let (removed, added) = (fids("removed")?, fids("added")?);
    // The copy's layer is the table's plus the columns the import added (add-columns).
    let copy_def = copy.layer(&def.table)?;
    let table = rows.rel(def)?.qualified();
    for c in &copy_def.columns {
        if !def.columns.iter().any(|d| d.name == c.name) {
            rows.exec(
                &format!(
                    "ALTER TABLE {table} ADD COLUMN {} {}",
                    q(&c.name),
                    layers::pg_type(c.class(), &c.decl_type)
                ),
                &[],
            )?;
        }
    }
    rows.forget(def);
    let def = &copy_def;
    let mut source = GeoPackageRows(copy);
    let id = rows.begin_change(def, &meta)?;
    for &fid in &removed {
        rows.save_removed(def, id, fid)?;
        if !added.contains(&fid) {
            rows.delete(def, fid)?;
        }
    }
    for &fid in &added {
        let row = source
            .read_row(def, fid)?
            .ok_or_else(|| ImportError::Plan(format!("feature {fid} vanished from the copy")))?;
        // A new feature takes the table's next key (its sequence), as an edit's does.
        let fid = if removed.contains(&fid) {
            rows.update(def, fid, &row)?;
            fid
        } else {
            rows.insert(def, &row)?
        };
        rows.save_added(def, id, fid)?;
    }
    rows.finish_change(def, id, None)?;
    Ok(id)
}
