//! The access log (who was shown owner data) in a PostGIS store.

use super::{PgError, PgStore};
use crate::store::access_log::{Access, fid_list};

/// Writes accesses in one transaction.
pub fn insert(store: &mut PgStore, rows: &[Access]) -> Result<(), PgError> {
    let table = store.table("nordgeo_access_log");
    let done = (|| {
        let mut tx = store.client().transaction()?;
        let st = tx.prepare(&format!(
            "INSERT INTO {table} (token, collection, fids, request) VALUES ($1, $2, $3, $4)"
        ))?;
        for a in rows {
            tx.execute(
                &st,
                &[&a.token, &a.collection, &fid_list(&a.fids), &a.request],
            )?;
        }
        tx.commit()
    })();
    done.map_err(|e| store.err(e))
}

/// Accesses, oldest first, optionally of one token and since a time (RFC 3339).
pub fn list(
    store: &mut PgStore,
    token: Option<&str>,
    since: Option<&str>,
) -> Result<Vec<Access>, PgError> {
    let table = store.table("nordgeo_access_log");
    let rows = store
        .client()
        .query(
            &format!(
                "SELECT at, token, collection, fids, request FROM {table}
                 WHERE ($1::text IS NULL OR token = $1) AND ($2::text IS NULL OR at >= $2) ORDER BY id"
            ),
            &[&token, &since],
        )
        .map_err(|e| store.err(e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let fids: String = r.get(3);
            Access {
                at: r.get(0),
                token: r.get(1),
                collection: r.get(2),
                fids: fids.split(',').filter_map(|f| f.parse().ok()).collect(),
                request: r.get(4),
            }
        })
        .collect())
}
