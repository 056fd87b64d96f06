//! The access log: every answer that showed internal properties (owner data), with the
//! token, time, collection, feature ids and request — what a data-protection officer
//! asks for. Rows leave only by `vacuum` with its own age limit.

use rusqlite::{Connection, params};

/// The table, created with the store's other tables.
pub const DDL: &str = "
CREATE TABLE IF NOT EXISTS nordgeo_access_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  token TEXT NOT NULL,
  collection TEXT NOT NULL,
  fids TEXT NOT NULL,
  request TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS nordgeo_access_log_at ON nordgeo_access_log(at);
CREATE INDEX IF NOT EXISTS nordgeo_access_log_token ON nordgeo_access_log(token, at);
";

/// One recorded access.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Access {
    /// When (UTC, RFC 3339), set by the store on insert.
    pub at: String,
    /// The token's name.
    pub token: String,
    /// The collection.
    pub collection: String,
    /// The features whose internal properties were shown.
    pub fids: Vec<i64>,
    /// Method, path and query of the request.
    pub request: String,
}

/// Writes accesses in one transaction (the caller's).
pub fn insert(conn: &Connection, rows: &[Access]) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(
        "INSERT INTO nordgeo_access_log (token, collection, fids, request) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for a in rows {
        st.execute(params![a.token, a.collection, fid_list(&a.fids), a.request])?;
    }
    Ok(())
}

/// Accesses, oldest first, optionally of one token and since a time (RFC 3339).
pub fn list(
    conn: &Connection,
    token: Option<&str>,
    since: Option<&str>,
) -> rusqlite::Result<Vec<Access>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'nordgeo_access_log'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(
        "SELECT at, token, collection, fids, request FROM nordgeo_access_log
         WHERE (?1 IS NULL OR token = ?1) AND (?2 IS NULL OR at >= ?2) ORDER BY id",
    )?;
    st.query_map(params![token, since], |r| {
        let fids: String = r.get(3)?;
        Ok(Access {
            at: r.get(0)?,
            token: r.get(1)?,
            collection: r.get(2)?,
            fids: fids.split(',').filter_map(|f| f.parse().ok()).collect(),
            request: r.get(4)?,
        })
    })?
    .collect()
}

/// Removes accesses recorded before `cutoff` (RFC 3339); returns how many.
pub fn prune(conn: &Connection, cutoff: &str) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM nordgeo_access_log WHERE at < ?1", [cutoff])
}

/// Feature ids as the log stores and prints them: comma-separated.
pub fn fid_list(fids: &[i64]) -> String {
    fids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
