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
