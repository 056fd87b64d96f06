//! Access tokens in a PostGIS store (the same table and rules as in a GeoPackage store);
//! a change notifies every instance, so a revocation holds everywhere at once.

use super::{PgError, PgStore};
use crate::auth::{self, Role, Token};

/// Creates a token and returns its secret (shown once, never stored).
pub fn create(
    store: &mut PgStore,
    name: &str,
    role: Role,
    municipality: Option<&str>,
    collections: Option<&[String]>,
    expires: Option<&str>,
) -> Result<String, PgError> {
    auth::check_new(name, role, municipality).map_err(|e| PgError::Invalid(e.to_string()))?;
    let secret = auth::random_secret().map_err(|e| PgError::Invalid(e.to_string()))?;
    let table = store.table("nordgeo_tokens");
    let collections = collections.map(|c| c.join(","));
    let n = store
        .client()
        .execute(
            &format!(
                "INSERT INTO {table} (name, hash, role, municipality, collections, expires)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING"
            ),
            &[
                &name,
                &auth::hash(&secret),
                &auth::role_name(role),
                &municipality,
                &collections,
                &expires,
            ],
        )
        .map_err(|e| store.err(e))?;
    if n == 0 {
        return Err(PgError::Invalid(format!(
            "a token named '{name}' exists; revoke it or pick another name"
        )));
    }
    notify(store)?;
    Ok(secret)
}

/// Every token by hash, in name order.
pub fn load(store: &mut PgStore) -> Result<Vec<(String, Token)>, PgError> {
    let table = store.table("nordgeo_tokens");
    if !store.has_table("nordgeo_tokens")? {
        return Ok(Vec::new());
    }
    let rows = store
        .client()
        .query(
            &format!(
                "SELECT hash, name, role, municipality, collections, created, expires, revoked
                 FROM {table} ORDER BY name"
            ),
            &[],
        )
        .map_err(|e| store.err(e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let role: String = r.get(2);
            (
                r.get(0),
                auth::token_of(
                    r.get(1),
                    &role,
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                ),
            )
        })
        .collect())
}

/// Revokes a token by name.
pub fn revoke(store: &mut PgStore, name: &str) -> Result<(), PgError> {
    let table = store.table("nordgeo_tokens");
    let n = store
        .client()
        .execute(
            &format!(
                "UPDATE {table} SET revoked = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 WHERE name = $1 AND revoked IS NULL"
            ),
            &[&name],
        )
        .map_err(|e| store.err(e))?;
    if n == 0 {
        return Err(PgError::Invalid(format!(
            "no active token named '{name}'; `nordgeo token list` shows them"
        )));
    }
    notify(store)
}

/// Tells every instance that the tokens changed.
fn notify(store: &mut PgStore) -> Result<(), PgError> {
    store
        .client()
        .batch_execute("NOTIFY nordgeo_changes, 'tokens'")
        .map_err(|e| store.err(e))
}
