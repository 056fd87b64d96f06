//! Change capture: every committed change to a layer's rows or settings leaves a row in
//! `nordgeo_capture`, whoever made it — nordgeo's own writes, QGIS, GDAL, the sqlite3
//! shell — because plain SQL triggers on each layer table write it. The catalog of a
//! running server reads the rows after its cursor and turns them into change events,
//! so no commit is ever missed and none is applied twice.
//!
//! `fid` NULL with `what = 'layer'` means "the whole layer was rewritten" (a full import
//! drops the triggers for its bulk insert and writes this one row instead of one per
//! feature); `what = 'settings'` marks a change of the layer's settings.

use rusqlite::{Connection, params};

use super::layer::{LayerDef, q};

/// Rows kept: a reader that falls further behind reloads everything instead.
pub const KEEP: i64 = 200_000;

/// The capture table and the triggers on nordgeo's settings table.
pub const DDL: &str = "
CREATE TABLE IF NOT EXISTS nordgeo_capture (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  layer TEXT NOT NULL,
  fid INTEGER,
  what TEXT NOT NULL DEFAULT 'feature'
);
CREATE TRIGGER IF NOT EXISTS nordgeo_capture_settings_insert AFTER INSERT ON nordgeo_layers
BEGIN INSERT INTO nordgeo_capture (layer, what) VALUES (NEW.table_name, 'settings'); END;
CREATE TRIGGER IF NOT EXISTS nordgeo_capture_settings_update AFTER UPDATE ON nordgeo_layers
BEGIN INSERT INTO nordgeo_capture (layer, what) VALUES (NEW.table_name, 'settings'); END;
CREATE TRIGGER IF NOT EXISTS nordgeo_capture_settings_delete AFTER DELETE ON nordgeo_layers
BEGIN INSERT INTO nordgeo_capture (layer, what) VALUES (OLD.table_name, 'settings'); END;
";

fn trigger(def: &LayerDef, op: &str) -> String {
    format!("nordgeo_capture_{}_{op}", def.table)
}

/// Names of a layer's capture triggers.
pub fn trigger_names(def: &LayerDef) -> [String; 3] {
    ["insert", "update", "delete"].map(|op| trigger(def, op))
}

/// Creates the capture triggers of a layer if they are missing.
pub fn ensure(conn: &Connection, def: &LayerDef) -> rusqlite::Result<()> {
    let t = q(&def.table);
    let fid = q(def.fid_column.as_deref().unwrap_or("rowid"));
    let name = def.table.replace('\'', "''");
    let [ins, upd, del] = trigger_names(def).map(|n| q(&n));
    conn.execute_batch(&format!(
        "CREATE TRIGGER IF NOT EXISTS {ins} AFTER INSERT ON {t}
         BEGIN INSERT INTO nordgeo_capture (layer, fid) VALUES ('{name}', NEW.{fid}); END;
         CREATE TRIGGER IF NOT EXISTS {upd} AFTER UPDATE ON {t}
         BEGIN INSERT INTO nordgeo_capture (layer, fid) VALUES ('{name}', OLD.{fid});
               INSERT INTO nordgeo_capture (layer, fid) SELECT '{name}', NEW.{fid} WHERE NEW.{fid} IS NOT OLD.{fid}; END;
         CREATE TRIGGER IF NOT EXISTS {del} AFTER DELETE ON {t}
         BEGIN INSERT INTO nordgeo_capture (layer, fid) VALUES ('{name}', OLD.{fid}); END;"
    ))
}

/// Drops a layer's capture triggers (before a bulk rewrite that records itself with
/// [`whole_layer`]; inside the same transaction, so no other reader ever sees them gone).
pub fn drop(conn: &Connection, def: &LayerDef) -> rusqlite::Result<()> {
    for n in trigger_names(def) {
        conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {}", q(&n)))?;
    }
    Ok(())
}

/// Records that a layer was rewritten, created or changed its columns.
pub fn whole_layer(conn: &Connection, layer: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO nordgeo_capture (layer, what) VALUES (?1, 'layer')",
        params![layer],
    )?;
    Ok(())
}

/// Whether a layer has all its capture triggers.
pub fn has_triggers(conn: &Connection, def: &LayerDef) -> rusqlite::Result<bool> {
    let mut n = 0;
    for name in trigger_names(def) {
        n += conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )?;
    }
    Ok(n == 3)
}

/// Forgets capture rows far behind the newest (every reader is expected to keep up).
pub fn prune(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM nordgeo_capture WHERE seq <= (SELECT max(seq) FROM nordgeo_capture) - ?1",
        [KEEP],
    )?;
    Ok(())
}

/// What the capture holds after a cursor.
#[derive(Debug, Default)]
pub struct Pending {
    /// Highest sequence number (the new cursor).
    pub top: i64,
    /// Rows were pruned before the reader saw them: it must reload everything.
    pub gap: bool,
    /// (layer, fid or None, what), oldest first.
    pub rows: Vec<(String, Option<i64>, String)>,
}

/// Reads the capture rows after `cursor` (inside the caller's read transaction).
pub fn pending(conn: &Connection, cursor: i64) -> rusqlite::Result<Pending> {
    let exists: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'nordgeo_capture'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !exists {
        return Ok(Pending::default());
    }
    let (top, low): (i64, Option<i64>) = conn.query_row(
        "SELECT coalesce(max(seq), 0), min(seq) FROM nordgeo_capture",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // AUTOINCREMENT never reuses a number: the table also remembers its highest one
    // after every row was pruned.
    let seq: i64 = conn
        .query_row(
            "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'nordgeo_capture'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(top);
    let top = top.max(seq);
    let gap = top > cursor && low.is_none_or(|l| l > cursor + 1);
    if top <= cursor || gap {
        return Ok(Pending {
            top,
            gap,
            rows: Vec::new(),
        });
    }
    let mut st = conn.prepare(
        "SELECT layer, fid, what FROM nordgeo_capture WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
    )?;
    let rows = st
        .query_map([cursor, top], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Pending {
        top,
        gap: false,
        rows,
    })
}
