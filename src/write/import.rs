//! The second pass of an import: a checked, staged import (`import::stage`) merged into
//! the store in one transaction, recording what it removed or overwrote in the layer's
//! history.
//!
//! - `create`, and `replace` of a whole layer without a key: the layer's rows are the
//!   file's, with the file's fids (one capture row says the layer was rewritten).
//! - a layer with a key (`set-layer --key`), and a scoped `replace` without one: stored
//!   features are matched by key (without a key: by identical geometry and properties).
//!   Unchanged ones keep their fid, bytes and history; changed ones are updated in place
//!   with the old version in the history; new ones get new fids; `replace` removes the
//!   unmatched rest of its scope. An import that changes nothing records nothing.
//! - `append` without a key adds every feature with a new fid.

use std::path::Path;

use crate::import::stage::{key_of, same_geometry, same_row, scope};
use crate::import::{ImportError, ImportOptions, ImportReport, LayerReport, Mode, Plan, Staged};
use crate::store::functions::slug;
use crate::store::history::{self, ChangeMeta};
use crate::store::layer::{self, SrsRow, q};
use crate::store::{Store, StoreError, capture, schema, write_meta};

/// Runs an import against the store at `store_path` (created by `--mode create` when
/// it does not exist yet): checked whole first, then written.
pub fn run(store_path: &Path, opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    if store_path.exists() {
        let store = Store::open(store_path)?;
        run_on(&store, opts)
    } else if opts.mode == Mode::Create {
        within_budget(opts, || {
            let staged = crate::import::stage(None, opts)?;
            if opts.dry_run {
                return Ok(staged.report);
            }
            create_store(store_path, staged, opts)
        })
    } else {
        Err(StoreError::NotFound(store_path.into()).into())
    }
}

/// Runs an import on an open store (the server checks on a read-only connection first
/// and writes on its write connection; see `server::edit::import`).
pub fn run_on(store: &Store, opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    within_budget(opts, || {
        let staged = crate::import::stage(Some(store), opts)?;
        if opts.dry_run {
            return Ok(staged.report);
        }
        apply(store, staged, opts)
    })
}

/// A new store is built whole in a file beside it and put in place once complete: its
/// one big import is written once, without a journal, and a failure or a kill leaves
/// no half-made store behind (only the hidden file, removed on failure).
fn create_store(
    store_path: &Path,
    staged: Staged,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let io = |e: std::io::Error| StoreError::Io {
        path: store_path.into(),
        msg: e.to_string(),
    };
    let dir = match store_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".nordgeo-new-")
        .suffix(".gpkg")
        .tempfile_in(dir)
        .map_err(io)?
        .into_temp_path();
    // Store::create makes the file itself.
    std::fs::remove_file(&tmp).map_err(io)?;
    let report = {
        let store = Store::create(&tmp)?;
        store.begin_bulk()?;
        let report = apply(&store, staged, opts)?;
        store.finish_bulk()?;
        report
    };
    // A link, unlike a rename, never replaces a store that appeared meanwhile.
    std::fs::hard_link(&tmp, store_path).map_err(io)?;
    Ok(report)
}

/// Whatever was interrupted (reading the file or writing), the budget says why.
fn within_budget(
    opts: &ImportOptions,
    f: impl FnOnce() -> Result<ImportReport, ImportError>,
) -> Result<ImportReport, ImportError> {
    match f() {
        Err(_) if opts.budget.exhausted() => Err(StoreError::Interrupted.into()),
        other => other,
    }
}

/// Writes a staged import in one transaction of the store.
pub fn apply(
    store: &Store,
    staged: Staged,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let conn = store.conn();
    let err = |e| ImportError::Store(store.err(e));
    let _watch = opts.budget.watch(conn);
    // ATTACH cannot run inside a transaction.
    conn.execute("ATTACH ?1 AS st", [staged.db.to_string_lossy()])
        .map_err(err)?;
    let mut report = staged.report;
    let result = (|| {
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(err)?;
        for (i, (p, lr)) in staged
            .plans
            .iter()
            .zip(report.layers.iter_mut())
            .enumerate()
        {
            merge_layer(&tx, i, p, lr, opts).map_err(err)?;
        }
        // The last moment to give up: past the budget the answer would come too late.
        if opts.budget.exhausted() {
            return Err(StoreError::Interrupted.into());
        }
        super::commit(tx).map_err(err)
    })();
    let _ = conn.execute_batch("DETACH st");
    result?;
    report.committed = true;
    Ok(report)
}

/// The strategy of one layer's merge.
#[derive(PartialEq)]
enum Merge {
    /// The layer's rows become the file's, with its fids.
    Rewrite,
    /// Matched by key or content, changed in place, the rest added (and removed).
    Match,
    /// Every feature added with a new fid.
    Add,
}

fn merge_layer(
    tx: &rusqlite::Connection,
    i: usize,
    p: &Plan,
    lr: &mut LayerReport,
    opts: &ImportOptions,
) -> rusqlite::Result<()> {
    let t = &p.target;
    let table = q(&t.table);
    let fid = q(t.fid_column.as_deref().unwrap_or("fid"));
    let geom = t.geom_target();
    let cols: Vec<String> = t.columns.iter().map(|c| q(&c.name)).collect();
    let staged_cols: Vec<String> = (0..cols.len()).map(|c| format!("c{c}")).collect();
    let list = |first: &str, v: &[String]| -> String {
        std::iter::once(first.to_string())
            .chain(v.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let merge = match (opts.mode, &p.key) {
        (Mode::Create, _) => Merge::Rewrite,
        (Mode::Replace, None) if opts.municipality.is_none() => Merge::Rewrite,
        (Mode::Append, None) => Merge::Add,
        _ => Merge::Match,
    };
    if t.srs_id == p.source_epsg {
        schema::ensure_srs(
            tx,
            &SrsRow {
                srs_id: t.srs_id,
                code: t.srs_id,
                ..p.source_srs.clone()
            },
        )?;
    } else if !p.exists {
        schema::ensure_srs(tx, &schema::srs_row_for(t.srs_id))?;
    }
    if !p.exists {
        layer::create_feature_table(tx, t)?;
        write_meta(tx, &t.table, &p.meta)?;
    }
    for c in &p.new_columns {
        layer::add_column(tx, &t.table, c)?;
    }
    history::ensure_history_table(tx, t)?;
    let meta = |mode: Mode| ChangeMeta {
        kind: "import".into(),
        mode: Some(mode.as_str().into()),
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
    let slug_arg = opts.municipality.as_deref().map(slug).unwrap_or_default();
    let scope = scope(p, opts);
    let args: &[&dyn rusqlite::ToSql] = if scope.contains("?1") {
        &[&slug_arg]
    } else {
        &[]
    };
    let hist = q(&history::history_table(&t.table));
    match merge {
        Merge::Rewrite => {
            let change = history::begin_change(tx, &t.table, &meta(opts.mode))?;
            // One capture row says the layer was rewritten, instead of one per feature.
            capture::drop(tx, t)?;
            let replaced = if p.exists {
                let n = history::save_removed(tx, t, change, "1", &[])?;
                layer::drop_rtree_triggers(tx, t)?;
                tx.execute_batch(&format!(
                    "DELETE FROM {table}; DELETE FROM {};",
                    q(&layer::rtree_name(t))
                ))?;
                n
            } else {
                0
            };
            tx.execute(
                &format!(
                    "INSERT INTO {table} ({}) SELECT {} FROM st.s{i} ORDER BY src_fid",
                    list(
                        &geom
                            .as_ref()
                            .map_or_else(|| fid.clone(), |g| format!("{fid}, {g}")),
                        &cols
                    ),
                    list(
                        if geom.is_some() {
                            "src_fid, geom"
                        } else {
                            "src_fid"
                        },
                        &staged_cols
                    )
                ),
                [],
            )?;
            layer::load_rtree(tx, t)?;
            layer::create_rtree_triggers(tx, t)?;
            if p.exists {
                tx.execute(
                    &format!(
                        "INSERT INTO {hist} (change_id, change_op, {fid}) SELECT ?1, 'added', {fid} FROM {table}"
                    ),
                    [change],
                )?;
                history::finish_change(tx, t, change)?;
            } else {
                tx.execute(
                    &format!("UPDATE nordgeo_changes SET added = (SELECT count(*) FROM st.s{i}) WHERE id = ?1"),
                    [change],
                )?;
            }
            capture::ensure(tx, t)?;
            capture::whole_layer(tx, &t.table)?;
            lr.added = lr.staged;
            lr.removed = replaced as u64;
            lr.change_id = Some(change);
        }
        Merge::Add => {
            let change = history::begin_change(tx, &t.table, &meta(opts.mode))?;
            let added = insert_unmatched(tx, i, p, change, false)?;
            history::finish_change(tx, t, change)?;
            lr.added = added;
            lr.change_id = Some(change);
        }
        Merge::Match => {
            let on = match &p.key {
                Some(k) => format!("s.key = {}", key_of(p, k)),
                None => format!("{} AND {}", same_geometry(p), same_row(p)),
            };
            tx.execute_batch("DROP TABLE IF EXISTS temp.nordgeo_match")?;
            // One stored feature per staged feature and the other way round.
            tx.execute(
                &format!(
                    "CREATE TEMP TABLE nordgeo_match AS
                     SELECT min(t.{fid}) AS fid, s.src_fid AS src, max({same}) AS same
                     FROM {table} t JOIN st.s{i} s ON {on} WHERE {scope} GROUP BY s.src_fid",
                    same = same_row(p)
                ),
                args,
            )?;
            tx.execute_batch(
                "DELETE FROM temp.nordgeo_match WHERE rowid NOT IN (SELECT min(rowid) FROM temp.nordgeo_match GROUP BY fid);
                 CREATE INDEX temp.nordgeo_match_fid ON nordgeo_match (fid);
                 CREATE INDEX temp.nordgeo_match_src ON nordgeo_match (src);",
            )?;
            let count = |sql: &str, a: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<u64> {
                tx.query_row(sql, a, |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
            };
            let matched = count("SELECT count(*) FROM temp.nordgeo_match", &[])?;
            let changed = count(
                "SELECT count(*) FROM temp.nordgeo_match WHERE NOT same",
                &[],
            )?;
            let new = lr.staged - matched;
            let gone_filter = format!(
                "{fid} IN (SELECT t.{fid} FROM {table} t WHERE {scope} AND t.{fid} NOT IN (SELECT fid FROM temp.nordgeo_match))"
            );
            let removed = if opts.mode == Mode::Replace {
                count(
                    &format!("SELECT count(*) FROM {table} WHERE {gone_filter}"),
                    args,
                )?
            } else {
                0
            };
            lr.unchanged = matched - changed;
            lr.changed = changed;
            lr.added = new;
            lr.removed = removed;
            if changed + new + removed == 0 {
                // Nothing to do: no change, no history, no capture row.
                tx.execute_batch("DROP TABLE temp.nordgeo_match")?;
                return Ok(());
            }
            let change = history::begin_change(tx, &t.table, &meta(opts.mode))?;
            let changed_filter =
                format!("{fid} IN (SELECT fid FROM temp.nordgeo_match WHERE NOT same)");
            if changed > 0 {
                history::save_removed(tx, t, change, &changed_filter, &[])?;
                let sets: Vec<String> = geom
                    .iter()
                    .map(|g| format!("{g} = s.geom"))
                    .chain(
                        cols.iter()
                            .zip(&staged_cols)
                            .map(|(c, s)| format!("{c} = s.{s}")),
                    )
                    .collect();
                tx.execute(
                    &format!(
                        "UPDATE {table} SET {} FROM temp.nordgeo_match m JOIN st.s{i} s ON s.src_fid = m.src
                         WHERE {table}.{fid} = m.fid AND NOT m.same",
                        sets.join(", ")
                    ),
                    [],
                )?;
                history::save_added(tx, t, change, &changed_filter, &[])?;
            }
            if removed > 0 {
                // `?2` is the slug here: save_removed binds the change id as ?1.
                let filter = gone_filter.replace("?1", "?2");
                let a: Vec<&dyn rusqlite::ToSql> = if filter.contains("?2") {
                    vec![&slug_arg]
                } else {
                    vec![]
                };
                history::save_removed(tx, t, change, &filter, &a)?;
                tx.execute(&format!("DELETE FROM {table} WHERE {gone_filter}"), args)?;
            }
            if new > 0 {
                insert_unmatched(tx, i, p, change, true)?;
            }
            history::finish_change(tx, t, change)?;
            tx.execute_batch("DROP TABLE temp.nordgeo_match")?;
            lr.change_id = Some(change);
        }
    }
    layer::register_geometry_types(tx, t, lr.curve_types.iter().map(String::as_str))?;
    layer::refresh_contents(tx, t)?;
    lr.imported = lr.added + lr.changed;
    lr.replaced = lr.removed + lr.changed;
    Ok(())
}

/// Inserts the staged rows (only those not matched, when `only_unmatched`) with new fids
/// and lists them as added by `change`; returns how many.
fn insert_unmatched(
    tx: &rusqlite::Connection,
    i: usize,
    p: &Plan,
    change: i64,
    only_unmatched: bool,
) -> rusqlite::Result<u64> {
    let t = &p.target;
    let table = q(&t.table);
    let fid = q(t.fid_column.as_deref().unwrap_or("fid"));
    // AUTOINCREMENT: every new fid is above both the largest and the last one given.
    let before: i64 = tx.query_row(
        &format!(
            "SELECT max(coalesce((SELECT max({fid}) FROM {table}), 0),
                        coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?1), 0))"
        ),
        [&t.table],
        |r| r.get(0),
    )?;
    let cols: Vec<String> = t
        .geom_target()
        .into_iter()
        .chain(t.columns.iter().map(|c| q(&c.name)))
        .collect();
    let staged: Vec<String> = t
        .has_geometry()
        .then(|| "geom".to_string())
        .into_iter()
        .chain((0..t.columns.len()).map(|c| format!("c{c}")))
        .collect();
    let filter = if only_unmatched {
        "WHERE src_fid NOT IN (SELECT src FROM temp.nordgeo_match)"
    } else {
        ""
    };
    let n = tx.execute(
        &format!(
            "INSERT INTO {table} ({}) SELECT {} FROM st.s{i} {filter} ORDER BY src_fid",
            cols.join(", "),
            staged.join(", ")
        ),
        [],
    )?;
    tx.execute(
        &format!(
            "INSERT INTO {} (change_id, change_op, {fid}) SELECT ?1, 'added', {fid} FROM {table} WHERE {fid} > ?2",
            q(&history::history_table(&t.table))
        ),
        rusqlite::params![change, before],
    )?;
    Ok(n as u64)
}
