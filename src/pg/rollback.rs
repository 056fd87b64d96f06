//! Rollbacks and undos on a PostGIS store, as `write::rollback` does them on a
//! GeoPackage: from the layer's history table (which mirrors its columns), recorded as
//! a change of their own so they can be undone too, in one transaction that holds the
//! store's capture turn. Dropped columns do not exist here (`--drop-column` is a
//! GeoPackage store's), so there is none to restore.

use super::PgStore;
use super::edit::PgRows;
use super::layers::q;
use crate::store::LayerDef;
use crate::store::history::ChangeMeta;
use crate::write::WriteError;
use crate::write::edit::Rows;
use crate::write::rollback::{Rollback, Rolled};

/// Runs `f` in one transaction of the store's rows (rolled back on any error).
fn in_transaction<T>(
    store: &mut PgStore,
    layer: &str,
    f: impl FnOnce(&mut PgRows, &LayerDef) -> Result<T, WriteError>,
) -> Result<T, WriteError> {
    let (def, _) = super::layers::find(store, layer).map_err(|e| match e {
        super::PgError::NoSuchLayer(_) => WriteError::NotFound(e.to_string()),
        other => crate::write::EditError::from(other).into(),
    })?;
    let mut rows = PgRows::new(store);
    rows.begin()?;
    match f(&mut rows, &def) {
        Ok(v) => {
            rows.commit()?;
            Ok(v)
        }
        Err(e) => {
            rows.rollback();
            Err(e)
        }
    }
}

/// The fid column and every column of the table as it is now (the history holds them
/// all, and a column may have come back since the layer was read).
fn columns(rows: &mut PgRows, def: &LayerDef) -> Result<(String, String), WriteError> {
    let rel = rows.rel(def)?;
    let cols: String = rows.query(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        &[&rel.qualified()],
    )?[0]
        .get(0);
    Ok((q(&rel.fid), cols))
}

/// The ids of the layer's changes after `to`, newest first.
fn changes_after(rows: &mut PgRows, layer: &str, to: i64) -> Result<Vec<i64>, WriteError> {
    let changes = rows.store_table("nordgeo_changes");
    Ok(rows
        .query(
            &format!("SELECT id FROM {changes} WHERE layer = $1 AND id > $2 ORDER BY id DESC"),
            &[&layer, &to],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Restores a layer (or one feature of it) to its state right after change `r.to`.
pub fn rollback(store: &mut PgStore, r: &Rollback) -> Result<Rolled, WriteError> {
    in_transaction(store, &r.layer, |rows, def| {
        let changes = rows.store_table("nordgeo_changes");
        let known = rows.query(
            &format!("SELECT max(id), bool_or(id = $2) FROM {changes} WHERE layer = $1"),
            &[&r.layer, &r.to],
        )?;
        let (last, found): (Option<i64>, Option<bool>) = (known[0].get(0), known[0].get(1));
        if found != Some(true) {
            return Err(WriteError::NotFound(format!(
                "collection '{}' has no change {}; its history lists the changes",
                r.layer, r.to
            )));
        }
        let previous = last.unwrap_or(r.to);
        let change = match r.feature {
            Some(fid) => feature(rows, def, r, fid)?,
            None => layer(rows, def, r)?,
        };
        Ok(Rolled {
            change,
            restores: r.to,
            previous,
        })
    })
}

/// The whole layer: every fid a later change touched gets its version of then.
fn layer(rows: &mut PgRows, def: &LayerDef, r: &Rollback) -> Result<i64, WriteError> {
    let later = changes_after(rows, &r.layer, r.to)?;
    let meta = ChangeMeta::rollback(
        &r.actor,
        format!(
            "restores the state after change {} (undoes {} later changes)",
            r.to,
            later.len()
        ),
    );
    let id = rows.begin_change(def, &meta)?;
    let (h, t) = (rows.history(def), rows.rel(def)?.qualified());
    let (fid, cols) = columns(rows, def)?;
    let touched = format!(
        "{fid} IN (SELECT {fid} FROM {h} WHERE change_id > $1 AND change_id < $2 AND {fid} IS NOT NULL)"
    );
    rows.exec(
        &format!("INSERT INTO {h} (change_id, change_op, {cols}) SELECT $2, 'removed', {cols} FROM {t} WHERE {touched}"),
        &[&r.to, &id],
    )?;
    let mut cols = cols;
    for c in later {
        if restore_column(rows, def, c)? {
            // Later re-inserted rows carry the column again.
            cols = columns(rows, def)?.1;
            continue;
        }
        undo_rows(rows, &h, &t, &fid, &cols, c)?;
    }
    rows.exec(
        &format!("INSERT INTO {h} (change_id, change_op, {fid}) SELECT $2, 'added', {fid} FROM {t} WHERE {touched}"),
        &[&r.to, &id],
    )?;
    rows.finish_change(def, id, None)?;
    Ok(id)
}

/// Takes back what change `c` did to the table: its added rows go, its removed ones
/// come back (replacing the versions it wrote).
fn undo_rows(
    rows: &mut PgRows,
    h: &str,
    t: &str,
    fid: &str,
    cols: &str,
    c: i64,
) -> Result<(), WriteError> {
    rows.exec(
        &format!(
            "DELETE FROM {t} WHERE {fid} IN (SELECT {fid} FROM {h} WHERE change_id = $1 AND change_op IN ('added', 'removed'))"
        ),
        &[&c],
    )?;
    rows.exec(
        &format!("INSERT INTO {t} ({cols}) SELECT {cols} FROM {h} WHERE change_id = $1 AND change_op = 'removed'"),
        &[&c],
    )?;
    Ok(())
}

/// One feature: its version right after `r.to` (removed if it did not exist then).
fn feature(
    rows: &mut PgRows,
    def: &LayerDef,
    r: &Rollback,
    fid_value: i64,
) -> Result<i64, WriteError> {
    let h = rows.history(def);
    let (fid, cols) = columns(rows, def)?;
    let t = rows.rel(def)?.qualified();
    // The first later change that touched the feature removed (kept) its version of
    // then; if that change only added it, the feature did not exist after `to`.
    let next: Option<i64> = rows.query(
        &format!("SELECT min(change_id) FROM {h} WHERE {fid} = $1 AND change_id > $2"),
        &[&fid_value, &r.to],
    )?[0]
        .get(0);
    let Some(next) = next else {
        return Err(WriteError::Conflict(format!(
            "feature {fid_value} of '{}' has not changed since change {}",
            r.layer, r.to
        )));
    };
    let existed = !rows
        .query(
            &format!(
                "SELECT 1 FROM {h} WHERE change_id = $1 AND change_op = 'removed' AND {fid} = $2"
            ),
            &[&next, &fid_value],
        )?
        .is_empty();
    let meta = ChangeMeta::rollback(
        &r.actor,
        format!("feature {fid_value} as it was right after change {}", r.to),
    );
    let id = rows.begin_change(def, &meta)?;
    rows.save_removed(def, id, fid_value)?;
    rows.delete(def, fid_value)?;
    if existed {
        rows.exec(
            &format!("INSERT INTO {t} ({cols}) SELECT {cols} FROM {h} WHERE change_id = $1 AND change_op = 'removed' AND {fid} = $2"),
            &[&next, &fid_value],
        )?;
        rows.save_added(def, id, fid_value)?;
    }
    rows.finish_change(def, id, None)?;
    Ok(id)
}

/// Undoes one change of a layer when no later change touched its features; `only_by`:
/// a maintainer undoes only their own changes. Returns the new change's id.
pub fn undo(
    store: &mut PgStore,
    layer: &str,
    change: i64,
    actor: &str,
    only_by: Option<&str>,
) -> Result<i64, WriteError> {
    in_transaction(store, layer, |rows, def| {
        let changes = rows.store_table("nordgeo_changes");
        let found = rows.query(
            &format!(
                "SELECT kind, actor, municipality FROM {changes} WHERE id = $1 AND layer = $2"
            ),
            &[&change, &layer],
        )?;
        let Some(row) = found.first() else {
            return Err(WriteError::NotFound(format!(
                "collection '{layer}' has no change {change}; its history lists the changes"
            )));
        };
        let (kind, by, municipality): (String, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        if only_by.is_some_and(|me| me != by) {
            return Err(WriteError::Forbidden(format!(
                "change {change} was made by {by}; you may undo only your own changes"
            )));
        }
        if kind == "settings" {
            return Err(WriteError::Conflict(
                crate::store::history::UndoError::Settings(change).to_string(),
            ));
        }
        let h = rows.history(def);
        let (fid, cols) = columns(rows, def)?;
        // The history table exists once any change of the layer wrote to it.
        let has_history: bool = rows.query("SELECT to_regclass($1) IS NOT NULL", &[&h])?[0].get(0);
        if has_history {
            let later = rows.query(
                &format!(
                    "SELECT c.id, c.kind, c.actor, c.at FROM {changes} c
                     WHERE c.layer = $2 AND c.id > $1 AND (c.kind = 'drop-column' OR EXISTS (
                       SELECT 1 FROM {h} x WHERE x.change_id = c.id AND x.{fid} IN (
                         SELECT {fid} FROM {h} WHERE change_id = $1)))
                     ORDER BY c.id LIMIT 1"
                ),
                &[&change, &layer],
            )?;
            if let Some(l) = later.first() {
                let (id, kind, actor, at): (i64, String, String, String) =
                    (l.get(0), l.get(1), l.get(2), l.get(3));
                return Err(WriteError::Conflict(
                    crate::store::history::UndoError::Later {
                        later: id,
                        kind,
                        actor,
                        at,
                    }
                    .to_string(),
                ));
            }
        }
        let meta = ChangeMeta {
            kind: "undo".into(),
            mode: None,
            municipality,
            source: None,
            actor: actor.into(),
            note: Some(format!("undoes change {change}")),
        };
        let id = rows.begin_change(def, &meta)?;
        if restore_column(rows, def, change)? {
            rows.finish_change(def, id, None)?;
            return Ok(id);
        }
        let t = rows.rel(def)?.qualified();
        let touched = format!("{fid} IN (SELECT {fid} FROM {h} WHERE change_id = $1)");
        rows.exec(
            &format!("INSERT INTO {h} (change_id, change_op, {cols}) SELECT $2, 'removed', {cols} FROM {t} WHERE {touched}"),
            &[&change, &id],
        )?;
        undo_rows(rows, &h, &t, &fid, &cols, change)?;
        rows.exec(
            &format!("INSERT INTO {h} (change_id, change_op, {fid}) SELECT $2, 'added', {fid} FROM {t} WHERE {touched}"),
            &[&change, &id],
        )?;
        rows.finish_change(def, id, None)?;
        Ok(id)
    })
}

/// Drops a column added by mistake as a change of its own: its values stay in the
/// history (as `column` rows), so undoing or rolling back the change brings it back whole.
pub fn drop_column(
    store: &mut PgStore,
    layer: &str,
    column: &str,
    actor: &str,
) -> Result<i64, WriteError> {
    let mut meta = super::settings::meta(store, layer).map_err(crate::write::EditError::from)?;
    let id = in_transaction(store, layer, |rows, def| {
        crate::write::settings::droppable(def, &meta, column)?;
        let rel = rows.rel(def)?;
        let i = def
            .columns
            .iter()
            .position(|c| c.name == column)
            .unwrap_or(0);
        let pg_type = rel.types.get(i).cloned().unwrap_or_else(|| "text".into());
        let change = ChangeMeta::drop_column(actor, column, &pg_type);
        let id = rows.begin_change(def, &change)?;
        let (h, t, fid, c) = (rows.history(def), rel.qualified(), q(&rel.fid), q(column));
        rows.exec(
            &format!("INSERT INTO {h} (change_id, change_op, {fid}, {c}) SELECT $1, 'column', {fid}, {c} FROM {t}"),
            &[&id],
        )?;
        rows.exec(&format!("ALTER TABLE {t} DROP COLUMN {c}"), &[])?;
        whole_layer(rows, layer)?;
        Ok(id)
    })?;
    if meta.internal_properties.iter().any(|p| p == column) {
        meta.internal_properties.retain(|p| p != column);
        super::settings::write(store, layer, &meta, None).map_err(crate::write::EditError::from)?;
    }
    Ok(id)
}

/// Tells every server the layer changed whole (a column came or went: no row trigger
/// says so).
fn whole_layer(rows: &mut PgRows, layer: &str) -> Result<(), WriteError> {
    let log = rows.store_table("nordgeo_capture");
    rows.exec(
        &format!("INSERT INTO {log} (layer, what) VALUES ($1, 'layer')"),
        &[&layer],
    )?;
    Ok(())
}

/// Brings back the column change `c` dropped, with every value it held; false when `c`
/// dropped no column.
fn restore_column(rows: &mut PgRows, def: &LayerDef, c: i64) -> Result<bool, WriteError> {
    let changes = rows.store_table("nordgeo_changes");
    let found = rows.query(
        &format!("SELECT note FROM {changes} WHERE id = $1 AND kind = 'drop-column'"),
        &[&c],
    )?;
    let Some(note) = found.first().and_then(|r| r.get::<_, Option<String>>(0)) else {
        return Ok(false);
    };
    let v: serde_json::Value = serde_json::from_str(&note).unwrap_or_default();
    let (Some(col), Some(ty)) = (v["column"].as_str(), v["decl_type"].as_str()) else {
        return Ok(false);
    };
    let rel = rows.rel(def)?;
    let (h, t, fid, col) = (rows.history(def), rel.qualified(), q(&rel.fid), q(col));
    // An undo of the drop may have brought it back already (a rollback over both).
    rows.exec(
        &format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {col} {ty}"),
        &[],
    )?;
    rows.exec(
        &format!("UPDATE {t} SET {col} = h.{col} FROM {h} h WHERE h.change_id = $1 AND h.change_op = 'column' AND h.{fid} = {t}.{fid}"),
        &[&c],
    )?;
    rows.forget(def);
    whole_layer(rows, &def.table)?;
    Ok(true)
}
