//! The change log and per-layer history: nothing a change removes is lost.
//!
//! Every change (import, edit, rollback) gets a row in `nordgeo_changes` saying who, when
//! and what. The rows it removed or overwrote are copied, column for column and byte for
//! byte, into `nordgeo_history_<layer>` (op `removed`); the fids it wrote are listed there
//! too (op `added`). Undoing a change is then: delete its `added` fids, re-insert its
//! `removed` rows.

use rusqlite::{Connection, OptionalExtension, params};

use super::layer::{LayerDef, q};

/// Who made a change, and how.
#[derive(Debug, Clone)]
pub struct ChangeMeta {
    /// import, create, update, delete, rollback.
    pub kind: String,
    /// Import mode, if any.
    pub mode: Option<String>,
    /// Municipality scope, if any.
    pub municipality: Option<String>,
    /// Source file or request.
    pub source: Option<String>,
    /// Who made it.
    pub actor: String,
    /// Free text.
    pub note: Option<String>,
}

impl ChangeMeta {
    /// A rollback by `actor`, described by `note`.
    pub fn rollback(actor: &str, note: String) -> Self {
        ChangeMeta {
            kind: "rollback".into(),
            mode: None,
            municipality: None,
            source: None,
            actor: actor.into(),
            note: Some(note),
        }
    }

    /// Dropping `column` (declared `decl_type`) by `actor`; the note says how to bring
    /// it back.
    pub fn drop_column(actor: &str, column: &str, decl_type: &str) -> Self {
        ChangeMeta {
            kind: "drop-column".into(),
            mode: None,
            municipality: None,
            source: None,
            actor: actor.into(),
            note: Some(serde_json::json!({"column": column, "decl_type": decl_type}).to_string()),
        }
    }

    /// What change `id` of a store's change log was.
    pub fn of(conn: &Connection, id: i64) -> rusqlite::Result<Self> {
        let sql = format!("SELECT {CHANGE_COLUMNS} FROM nordgeo_changes WHERE id = ?1");
        let c = conn.query_row(&sql, [id], read_change)?;
        Ok(ChangeMeta {
            kind: c.kind,
            mode: c.mode,
            municipality: c.municipality,
            source: c.source,
            actor: c.actor,
            note: c.note,
        })
    }
}

/// The columns [`read_change`] reads, in its order.
const CHANGE_COLUMNS: &str =
    "id, layer, kind, mode, municipality, source, actor, at, added, removed, note";

/// One change-log row selected with [`CHANGE_COLUMNS`].
fn read_change(r: &rusqlite::Row<'_>) -> rusqlite::Result<Change> {
    Ok(Change {
        id: r.get(0)?,
        layer: r.get(1)?,
        kind: r.get(2)?,
        mode: r.get(3)?,
        municipality: r.get(4)?,
        source: r.get(5)?,
        actor: r.get(6)?,
        at: r.get(7)?,
        added: r.get(8)?,
        removed: r.get(9)?,
        note: r.get(10)?,
    })
}

/// One row of the change log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// Change id.
    pub id: i64,
    /// Layer.
    pub layer: String,
    /// Kind.
    pub kind: String,
    /// Mode.
    pub mode: Option<String>,
    /// Municipality scope.
    pub municipality: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Actor.
    pub actor: String,
    /// Timestamp (UTC, ISO 8601).
    pub at: String,
    /// Features written.
    pub added: i64,
    /// Features removed or overwritten (kept in history).
    pub removed: i64,
    /// Note.
    pub note: Option<String>,
}

/// The history table of a layer.
pub fn history_table(layer: &str) -> String {
    format!("nordgeo_history_{layer}")
}

fn all_columns(def: &LayerDef) -> Vec<String> {
    let mut cols = vec![def.fid_column.clone().unwrap_or_else(|| "fid".into())];
    if def.has_geometry() {
        cols.push(def.geom_column.clone());
    }
    cols.extend(def.columns.iter().map(|c| c.name.clone()));
    cols
}

fn column_list(def: &LayerDef) -> String {
    all_columns(def)
        .iter()
        .map(|c| q(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates the history table of a layer, or adds columns the layer gained since.
pub fn ensure_history_table(conn: &Connection, def: &LayerDef) -> rusqlite::Result<()> {
    let t = history_table(&def.table);
    let exists: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [&t],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !exists {
        let mut ddl = format!(
            "CREATE TABLE {} (change_id INTEGER NOT NULL, change_op TEXT NOT NULL, {} INTEGER",
            q(&t),
            q(def.fid_column.as_deref().unwrap_or("fid")),
        );
        if let Some(g) = def.geom_target() {
            ddl.push_str(&format!(", {g} BLOB"));
        }
        for c in &def.columns {
            ddl.push_str(&format!(", {} {}", q(&c.name), c.decl_type));
        }
        ddl.push_str(&format!(
            "); CREATE INDEX {} ON {} (change_id, change_op);",
            q(&format!("{t}_change")),
            q(&t)
        ));
        conn.execute_batch(&ddl)?;
        super::schema::register_table(
            conn,
            &t,
            "nordgeo README, section 'The store': history of a layer",
        )?;
        return Ok(());
    }
    let have: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info({})", q(&t)))?
        .query_map([], |r| r.get(1))?
        .collect::<Result<_, _>>()?;
    for c in &def.columns {
        if !have.iter().any(|h| h.eq_ignore_ascii_case(&c.name)) {
            super::layer::add_column(
                conn,
                &t,
                &super::layer::Column {
                    not_null: false,
                    ..c.clone()
                },
            )?;
        }
    }
    Ok(())
}

/// Opens a change; its counts are filled in by [`finish_change`].
pub fn begin_change(conn: &Connection, layer: &str, m: &ChangeMeta) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO nordgeo_changes (layer, kind, mode, municipality, source, actor, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            layer,
            m.kind,
            m.mode,
            m.municipality,
            m.source,
            m.actor,
            m.note
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Records the counts of a change from its history rows.
pub fn finish_change(conn: &Connection, def: &LayerDef, id: i64) -> rusqlite::Result<()> {
    let t = q(&history_table(&def.table));
    conn.execute(
        &format!(
            "UPDATE nordgeo_changes SET
               added = (SELECT count(*) FROM {t} WHERE change_id = ?1 AND change_op = 'added'),
               removed = (SELECT count(*) FROM {t} WHERE change_id = ?1 AND change_op = 'removed')
             WHERE id = ?1"
        ),
        [id],
    )?;
    Ok(())
}

/// Copies the rows matching `filter` (an SQL condition on the layer, with `?2`.. bound
/// from `args`) into history as removed by change `id`. Returns how many.
pub fn save_removed(
    conn: &Connection,
    def: &LayerDef,
    id: i64,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<usize> {
    record(conn, def, id, "removed", &column_list(def), filter, args)
}

/// Lists the fids matching `filter` as added by change `id`.
pub fn save_added(
    conn: &Connection,
    def: &LayerDef,
    id: i64,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<usize> {
    let fid = q(def.fid_column.as_deref().unwrap_or("fid"));
    record(conn, def, id, "added", &fid, filter, args)
}

/// Copies `cols` of the layer rows matching `filter` into history under change `id`.
fn record(
    conn: &Connection,
    def: &LayerDef,
    id: i64,
    op: &str,
    cols: &str,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<usize> {
    let sql = format!(
        "INSERT INTO {h} (change_id, change_op, {cols}) SELECT ?1, '{op}', {cols} FROM {t} WHERE {filter}",
        h = q(&history_table(&def.table)),
        t = q(&def.table),
    );
    let mut all: Vec<&dyn rusqlite::ToSql> = vec![&id];
    all.extend_from_slice(args);
    conn.execute(&sql, all.as_slice())
}

/// The change log of a layer (all layers when `None`), oldest first.
pub fn list(conn: &Connection, layer: Option<&str>) -> rusqlite::Result<Vec<Change>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {CHANGE_COLUMNS} FROM nordgeo_changes WHERE ?1 IS NULL OR layer = ?1 ORDER BY id"
    ))?;
    stmt.query_map([layer], read_change)?.collect()
}

/// Restores a layer to its state right after change `to`, as a new change of its own
/// (so a rollback can itself be undone). Returns the new change id.
pub fn rollback(conn: &Connection, def: &LayerDef, to: i64, actor: &str) -> rusqlite::Result<i64> {
    let later: Vec<i64> = conn
        .prepare("SELECT id FROM nordgeo_changes WHERE layer = ?1 AND id > ?2 ORDER BY id DESC")?
        .query_map(params![def.table, to], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let meta = ChangeMeta::rollback(
        actor,
        format!(
            "restores the state after change {to} (undoes {} later changes)",
            later.len()
        ),
    );
    let id = begin_change(conn, &def.table, &meta)?;
    let h = q(&history_table(&def.table));
    let t = q(&def.table);
    let fid = q(def.fid_column.as_deref().unwrap_or("fid"));
    let cols = column_list(def);
    // Every fid any undone change touched: their current rows are this change's "removed",
    // their rows afterwards its "added"; so undoing the rollback restores the present.
    let touched = format!(
        "{fid} IN (SELECT {fid} FROM {h} WHERE change_id > ?2 AND change_id < ?3 AND {fid} IS NOT NULL)"
    );
    save_removed(conn, def, id, &touched, &[&to, &id])?;
    let mut cols = cols;
    for c in &later {
        if restore_column(conn, def, *c)? {
            // The table has that column again: later re-inserted rows carry it.
            if let Some(now) = super::layer::feature_layers(conn)?
                .into_iter()
                .find(|l| l.table == def.table)
            {
                cols = column_list(&now);
            }
            continue;
        }
        conn.execute(
            &format!("DELETE FROM {t} WHERE {fid} IN (SELECT {fid} FROM {h} WHERE change_id = ?1 AND change_op = 'added')"),
            [c],
        )?;
        conn.execute(
            &format!(
                "INSERT OR REPLACE INTO {t} ({cols}) SELECT {cols} FROM {h} WHERE change_id = ?1 AND change_op = 'removed'"
            ),
            [c],
        )?;
    }
    save_added(conn, def, id, &touched, &[&to, &id])?;
    finish_change(conn, def, id)?;
    Ok(id)
}

/// Deletes the history rows of changes made before `cutoff` (RFC 3339); returns how many.
pub fn vacuum(conn: &Connection, cutoff: &str) -> rusqlite::Result<usize> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'nordgeo\\_history\\_%' ESCAPE '\\'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for t in tables {
        n += conn.execute(
            &format!(
                "DELETE FROM {} WHERE change_id IN (SELECT id FROM nordgeo_changes WHERE at < ?1)",
                q(&t)
            ),
            [cutoff],
        )?;
    }
    Ok(n)
}

/// Restores one feature to its version right after change `to` (removing it if it did not
/// exist then), as a change of its own; `None` when no later change touched it.
pub fn rollback_feature(
    conn: &Connection,
    def: &LayerDef,
    to: i64,
    fid: i64,
    actor: &str,
) -> rusqlite::Result<Option<i64>> {
    let h = q(&history_table(&def.table));
    let t = q(&def.table);
    let fid_col = q(def.fid_column.as_deref().unwrap_or("fid"));
    // The first later change that touched the feature removed (kept) its version of then;
    // if that change only added it, the feature did not exist after `to`.
    let next: Option<i64> = conn.query_row(
        &format!("SELECT min(change_id) FROM {h} WHERE {fid_col} = ?1 AND change_id > ?2"),
        params![fid, to],
        |r| r.get(0),
    )?;
    let Some(next) = next else {
        return Ok(None);
    };
    let existed: bool = conn.query_row(
        &format!(
            "SELECT count(*) FROM {h} WHERE change_id = ?1 AND change_op = 'removed' AND {fid_col} = ?2"
        ),
        params![next, fid],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let meta = ChangeMeta::rollback(
        actor,
        format!("feature {fid} as it was right after change {to}"),
    );
    let id = begin_change(conn, &def.table, &meta)?;
    let by_fid = format!("{fid_col} = ?2");
    save_removed(conn, def, id, &by_fid, &[&fid])?;
    conn.execute(&format!("DELETE FROM {t} WHERE {fid_col} = ?1"), [fid])?;
    if existed {
        let cols = column_list(def);
        conn.execute(
            &format!(
                "INSERT INTO {t} ({cols}) SELECT {cols} FROM {h}
                 WHERE change_id = ?1 AND change_op = 'removed' AND {fid_col} = ?2"
            ),
            params![next, fid],
        )?;
        save_added(conn, def, id, &by_fid, &[&fid])?;
    }
    finish_change(conn, def, id)?;
    Ok(Some(id))
}

/// The column a `drop-column` change removed: (name, declared type).
fn dropped_column(conn: &Connection, change: i64) -> rusqlite::Result<Option<(String, String)>> {
    let note: Option<(String, Option<String>)> = conn
        .query_row(
            "SELECT kind, note FROM nordgeo_changes WHERE id = ?1",
            [change],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some(("drop-column", Some(note))) = note.as_ref().map(|(k, n)| (k.as_str(), n.clone()))
    else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(&note).unwrap_or_default();
    Ok(v["column"]
        .as_str()
        .zip(v["decl_type"].as_str())
        .map(|(c, d)| (c.to_string(), d.to_string())))
}

/// Undoes a `drop-column` change: the column comes back with every value it held.
/// Returns whether `change` was one.
fn restore_column(conn: &Connection, def: &LayerDef, change: i64) -> rusqlite::Result<bool> {
    let Some((col, decl)) = dropped_column(conn, change)? else {
        return Ok(false);
    };
    let (t, h) = (q(&def.table), q(&history_table(&def.table)));
    let fid = q(def.fid_column.as_deref().unwrap_or("fid"));
    // An undo of the drop may have brought it back already (a rollback over both).
    let present: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [&def.table, &col],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !present {
        conn.execute_batch(&format!("ALTER TABLE {t} ADD COLUMN {} {decl}", q(&col)))?;
    }
    conn.execute(
        &format!(
            "UPDATE {t} SET {c} = (SELECT h.{c} FROM {h} h WHERE h.change_id = ?1 AND h.change_op = 'column' AND h.{fid} = {t}.{fid})",
            c = q(&col)
        ),
        [change],
    )?;
    Ok(true)
}

/// Drops a column (added by mistake) as a change of its own: its values stay in the
/// history, so undoing or rolling back the change brings the column back whole.
pub fn drop_column(
    conn: &Connection,
    def: &LayerDef,
    column: &str,
    actor: &str,
) -> rusqlite::Result<i64> {
    let c = def
        .columns
        .iter()
        .find(|c| c.name == column)
        .ok_or(rusqlite::Error::InvalidColumnName(column.into()))?;
    ensure_history_table(conn, def)?;
    let id = begin_change(
        conn,
        &def.table,
        &ChangeMeta::drop_column(actor, &c.name, &c.decl_type),
    )?;
    let fid = q(def.fid_column.as_deref().unwrap_or("fid"));
    conn.execute(
        &format!(
            "INSERT INTO {h} (change_id, change_op, {fid}, {c}) SELECT ?1, 'column', {fid}, {c} FROM {t}",
            h = q(&history_table(&def.table)),
            c = q(column),
            t = q(&def.table)
        ),
        [id],
    )?;
    conn.execute_batch(&format!(
        "ALTER TABLE {} DROP COLUMN {}",
        q(&def.table),
        q(column)
    ))?;
    Ok(id)
}

/// Why a change cannot be undone on its own.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// The store failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// No such change of this layer.
    #[error("collection '{0}' has no change {1}")]
    NotFound(String, i64),
    /// A later change touched the same features.
    #[error(
        "change {later} ({kind} by {actor} at {at}) changed the same features afterwards; undo that one first"
    )]
    Later {
        /// The later change.
        later: i64,
        /// Its kind.
        kind: String,
        /// Who made it.
        actor: String,
        /// When.
        at: String,
    },
    /// Settings changes are changed back with set-layer.
    #[error("change {0} changed the collection's settings; set them back with `nordgeo set-layer`")]
    Settings(i64),
}

/// Undoes one change, when no later change touched the same features, as a change of
/// its own (so it can be undone too). Returns the new change's id.
pub fn undo(conn: &Connection, def: &LayerDef, change: i64, actor: &str) -> Result<i64, UndoError> {
    let kind: Option<String> = conn
        .query_row(
            "SELECT kind FROM nordgeo_changes WHERE id = ?1 AND layer = ?2",
            params![change, def.table],
            |r| r.get(0),
        )
        .optional()?;
    let Some(kind) = kind else {
        return Err(UndoError::NotFound(def.table.clone(), change));
    };
    if kind == "settings" {
        return Err(UndoError::Settings(change));
    }
    ensure_history_table(conn, def)?;
    let h = q(&history_table(&def.table));
    let t = q(&def.table);
    let fid = q(def.fid_column.as_deref().unwrap_or("fid"));
    let later: Option<(i64, String, String, String)> = conn
        .query_row(
            &format!(
                "SELECT c.id, c.kind, c.actor, c.at FROM nordgeo_changes c
                 WHERE c.layer = ?2 AND c.id > ?1 AND (c.kind = 'drop-column' OR EXISTS (
                   SELECT 1 FROM {h} x WHERE x.change_id = c.id AND x.{fid} IN (
                     SELECT {fid} FROM {h} WHERE change_id = ?1)))
                 ORDER BY c.id LIMIT 1"
            ),
            params![change, def.table],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    if let Some((later, kind, actor, at)) = later {
        return Err(UndoError::Later {
            later,
            kind,
            actor,
            at,
        });
    }
    let id = begin_change(
        conn,
        &def.table,
        &ChangeMeta {
            kind: "undo".into(),
            mode: None,
            municipality: conn
                .query_row(
                    "SELECT municipality FROM nordgeo_changes WHERE id = ?1",
                    [change],
                    |r| r.get(0),
                )
                .optional()?
                .flatten(),
            source: None,
            actor: actor.into(),
            note: Some(format!("undoes change {change}")),
        },
    )?;
    if restore_column(conn, def, change)? {
        finish_change(conn, def, id)?;
        return Ok(id);
    }
    let touched = format!("{fid} IN (SELECT {fid} FROM {h} WHERE change_id = ?2)");
    save_removed(conn, def, id, &touched, &[&change])?;
    conn.execute(
        &format!("DELETE FROM {t} WHERE {fid} IN (SELECT {fid} FROM {h} WHERE change_id = ?1 AND change_op = 'added')"),
        [change],
    )?;
    let cols = column_list(def);
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO {t} ({cols}) SELECT {cols} FROM {h} WHERE change_id = ?1 AND change_op = 'removed'"
        ),
        [change],
    )?;
    save_added(conn, def, id, &touched, &[&change])?;
    finish_change(conn, def, id)?;
    Ok(id)
}
