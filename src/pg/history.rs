//! The change log of a PostGIS store, as `nordgeo history` and the HTTP list of changes
//! show it.

use super::{PgError, PgStore};
use crate::store::history::Change;

/// The change log of a layer (all layers when `None`), oldest first.
pub fn list(store: &mut PgStore, layer: Option<&str>) -> Result<Vec<Change>, PgError> {
    let table = store.table("nordgeo_changes");
    let rows = store
        .client()
        .query(
            &format!(
                "SELECT id, layer, kind, mode, municipality, source, actor, at, added, removed, note
                 FROM {table} WHERE $1::text IS NULL OR layer = $1 ORDER BY id"
            ),
            &[&layer],
        )
        .map_err(|e| store.err(e))?;
    Ok(rows
        .into_iter()
        .map(|r| Change {
            id: r.get(0),
            layer: r.get(1),
            kind: r.get(2),
            mode: r.get(3),
            municipality: r.get(4),
            source: r.get(5),
            actor: r.get(6),
            at: r.get(7),
            added: r.get(8),
            removed: r.get(9),
            note: r.get(10),
        })
        .collect())
}

/// Deletes the history rows of changes made before `history` and the access-log rows
/// recorded before `access_log` (RFC 3339 each), in one transaction; the change log
/// itself stays. Returns how many rows of each went.
pub fn vacuum(
    store: &mut PgStore,
    history: Option<&str>,
    access_log: Option<&str>,
) -> Result<(u64, u64), PgError> {
    let changes = store.table("nordgeo_changes");
    let log = store.table("nordgeo_access_log");
    let schema = store.schema().to_string();
    let done = (|| {
        let mut tx = store.client().transaction()?;
        let mut h = 0;
        if let Some(cutoff) = history {
            let tables: Vec<String> = tx
                .query(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'nordgeo\\_history\\_%'",
                    &[&schema],
                )?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            for t in tables {
                h += tx.execute(
                    &format!(
                        "DELETE FROM {}.{} WHERE change_id IN (SELECT id FROM {changes} WHERE at < $1)",
                        super::layers::q(&schema),
                        super::layers::q(&t)
                    ),
                    &[&cutoff],
                )?;
            }
        }
        let a = match access_log {
            Some(cutoff) => tx.execute(&format!("DELETE FROM {log} WHERE at < $1"), &[&cutoff])?,
            None => 0,
        };
        tx.commit()?;
        Ok((h, a))
    })();
    done.map_err(|e| store.err(e))
}
