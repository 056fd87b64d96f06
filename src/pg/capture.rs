//! Change capture in a PostGIS store: statement triggers on every layer table write one
//! `nordgeo_capture` row per changed fid (the function in `schema`), whoever changed it —
//! nordgeo, QGIS, ogr2ogr or psql — and notify listeners at commit. Readers apply the
//! rows after their cursor, so a lost notification or connection delays a change but
//! never loses it.

use super::layers::Relation;
use super::{PgError, PgStore};
use crate::store::capture::{KEEP, Pending};

const TRIGGERS: [&str; 5] = [
    "nordgeo_capture_turn",
    "nordgeo_capture_insert",
    "nordgeo_capture_update",
    "nordgeo_capture_delete",
    "nordgeo_capture_truncate",
];

/// Whether a table has all its capture triggers.
pub fn has_triggers(store: &mut PgStore, rel: &Relation) -> Result<bool, PgError> {
    let n: i64 = store
        .client()
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = $1 AND tgname = ANY($2)",
            &[&rel.oid, &TRIGGERS.to_vec()],
        )
        .map_err(|e| store.err(e))?
        .get(0);
    Ok(n == TRIGGERS.len() as i64)
}

/// Creates a layer table's capture triggers (replacing older ones), in a transaction of
/// its own.
pub fn ensure(store: &mut PgStore, layer: &str, rel: &Relation) -> Result<(), PgError> {
    store
        .client()
        .batch_execute("BEGIN")
        .map_err(|e| store.err(e))?;
    match ensure_in(store, layer, rel) {
        Ok(()) => store
            .client()
            .batch_execute("COMMIT")
            .map_err(|e| store.err(e)),
        Err(e) => {
            let _ = store.client().batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// Creates a layer table's capture triggers inside the caller's transaction.
pub fn ensure_in(store: &mut PgStore, layer: &str, rel: &Relation) -> Result<(), PgError> {
    let t = rel.qualified();
    let f = store.table("nordgeo_capture");
    let turn_fn = store.table("nordgeo_capture_turn");
    let log = f.clone();
    let args = format!("{}, {}", literal(layer), literal(&rel.fid));
    let [turn, ins, upd, del, trunc] = TRIGGERS;
    let sql = format!(
        "DROP TRIGGER IF EXISTS {turn} ON {t};
         DROP TRIGGER IF EXISTS {ins} ON {t};
         DROP TRIGGER IF EXISTS {upd} ON {t};
         DROP TRIGGER IF EXISTS {del} ON {t};
         DROP TRIGGER IF EXISTS {trunc} ON {t};
         CREATE TRIGGER {turn} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t}
           FOR EACH STATEMENT EXECUTE FUNCTION {turn_fn}();
         CREATE TRIGGER {ins} AFTER INSERT ON {t} REFERENCING NEW TABLE AS nordgeo_new
           FOR EACH STATEMENT EXECUTE FUNCTION {f}({args});
         CREATE TRIGGER {upd} AFTER UPDATE ON {t} REFERENCING OLD TABLE AS nordgeo_old NEW TABLE AS nordgeo_new
           FOR EACH STATEMENT EXECUTE FUNCTION {f}({args});
         CREATE TRIGGER {del} AFTER DELETE ON {t} REFERENCING OLD TABLE AS nordgeo_old
           FOR EACH STATEMENT EXECUTE FUNCTION {f}({args});
         CREATE TRIGGER {trunc} AFTER TRUNCATE ON {t}
           FOR EACH STATEMENT EXECUTE FUNCTION {f}({args});"
    );
    let done = store.client().batch_execute(&sql).and_then(|_| {
        // The layer may have changed before it was tracked: readers reload it whole.
        store.client().execute(
            &format!("INSERT INTO {log} (layer, what) VALUES ($1, 'layer')"),
            &[&layer],
        )
    });
    done.map(|_| ()).map_err(|e| store.err(e))
}

/// An SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Forgets capture rows far behind the newest, remembering up to where.
pub fn prune(store: &mut PgStore) -> Result<(), PgError> {
    let cap = store.table("nordgeo_capture");
    let pruned = store.table("nordgeo_capture_pruned");
    let sql = format!(
        "WITH gone AS (
           DELETE FROM {cap} WHERE seq <= (SELECT max(seq) FROM {cap}) - {KEEP} RETURNING seq)
         INSERT INTO {pruned} (upto) SELECT max(seq) FROM gone HAVING max(seq) IS NOT NULL
         ON CONFLICT (one) DO UPDATE SET upto = greatest({pruned}.upto, EXCLUDED.upto)"
    );
    store.client().batch_execute(&sql).map_err(|e| store.err(e))
}

/// The capture rows after `cursor` (inside the caller's read transaction). A store
/// without the capture table yet has none.
pub fn pending(store: &mut PgStore, cursor: i64) -> Result<Pending, PgError> {
    let cap = store.table("nordgeo_capture");
    let pruned = store.table("nordgeo_capture_pruned");
    if !store.has_table("nordgeo_capture")? {
        return Ok(Pending::default());
    }
    let row = store
        .client()
        .query_one(
            &format!(
                "SELECT coalesce((SELECT max(seq) FROM {cap}), 0),
                        coalesce((SELECT upto FROM {pruned}), 0)"
            ),
            &[],
        )
        .map_err(|e| store.err(e))?;
    let (top, upto): (i64, i64) = (row.get(0), row.get(1));
    let top = top.max(upto);
    let gap = upto > cursor && top > cursor;
    if top <= cursor || gap {
        return Ok(Pending {
            top,
            gap,
            rows: Vec::new(),
        });
    }
    let rows = store
        .client()
        .query(
            &format!(
                "SELECT layer, fid, what FROM {cap} WHERE seq > $1 AND seq <= $2 ORDER BY seq"
            ),
            &[&cursor, &top],
        )
        .map_err(|e| store.err(e))?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    Ok(Pending {
        top,
        gap: false,
        rows,
    })
}
