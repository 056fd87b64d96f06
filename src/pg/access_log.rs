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
