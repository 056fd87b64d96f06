//! The PostGIS store: layers are tables with a geometry column in one schema (or tables
//! elsewhere published with `set-layer --source`); nordgeo's settings, change capture and
//! tokens are tables in that schema. Every running server follows the capture (see
//! `capture`), woken by `LISTEN/NOTIFY` and polling as a fallback, so a change made
//! through any instance, the CLI, QGIS or psql reaches them all as the same change events
//! the GeoPackage store produces.

pub mod access_log;
pub mod capture;
pub mod edit;
pub mod export;
pub mod history;
pub mod import;
pub mod layers;
pub mod listen;
pub mod merge;
pub mod read;
pub mod rollback;
pub mod schema;
pub mod settings;
pub mod source;
pub mod tokens;

use std::str::FromStr;
use std::time::Duration;

use postgres::{Client, NoTls};

pub use layers::Relation;

/// Default schema of layers and nordgeo's own tables.
pub const DEFAULT_SCHEMA: &str = "public";

/// Whether a `--store` value names a PostgreSQL database rather than a file.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgresql://") || s.starts_with("postgres://")
}

/// Errors at the PostGIS store boundary. None names the password of the connection.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No connection.
    #[error(
        "cannot connect to the PostGIS store {at}: {why}; check that PostgreSQL runs there and that the address, database, user and password in --store are right"
    )]
    Connect {
        /// Host, port and database (no password).
        at: String,
        /// What the connection said.
        why: String,
    },
    /// The `--store` value is not a connection address.
    #[error(
        "--store: not a PostgreSQL address ({0}); write postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    )]
    Address(String),
    /// The database lacks PostGIS.
    #[error("the database {0} has no PostGIS; run `CREATE EXTENSION postgis;` in it as its owner")]
    NoPostgis(String),
    /// A statement failed (the message leaves out where the store is: it may reach
    /// HTTP callers).
    #[error("the PostGIS store refused: {msg}")]
    Query {
        /// Host, port and database.
        at: String,
        /// PostgreSQL's message.
        msg: String,
    },
    /// The database takes no writes (a streaming replica).
    #[error(
        "this instance's database is a read-only replica: write through an instance on the primary"
    )]
    ReadOnly,
    /// The connection was lost.
    #[error("the connection to the PostGIS store was lost; it is retried")]
    Lost(String),
    /// Unknown layer.
    #[error("layer '{0}' does not exist in the store; `nordgeo layers` lists the layers")]
    NoSuchLayer(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// Not available on this store kind (yet).
    #[error(
        "{0} does not work on a PostGIS store in this version; change the data with QGIS or psql (every instance sees it at once), or use a GeoPackage store"
    )]
    Unsupported(String),
}

impl From<PgError> for crate::catalog::SyncError {
    fn from(e: PgError) -> Self {
        crate::catalog::SyncError::Source(e.to_string())
    }
}

impl From<PgError> for crate::write::EditError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Lost(_) | PgError::Connect { .. } | PgError::ReadOnly => {
                crate::write::EditError::Unavailable(e.to_string())
            }
            other => crate::write::EditError::Backend(other.to_string()),
        }
    }
}

/// An open PostGIS store.
pub struct PgStore {
    client: Client,
    schema: String,
    at: String,
}

impl PgStore {
    /// Connects and checks for PostGIS; creates nothing (a read-only user or a replica).
    pub fn connect(url: &str, schema: &str) -> Result<PgStore, PgError> {
        if !layers::valid_ident(schema) {
            return Err(PgError::Invalid(format!(
                "schema '{schema}': use letters, digits and _ only"
            )));
        }
        let mut config =
            postgres::Config::from_str(url).map_err(|e| PgError::Address(e.to_string()))?;
        let at = describe(&config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("nordgeo");
        let client = config.connect(NoTls).map_err(|e| PgError::Connect {
            at: at.clone(),
            why: message(&e),
        })?;
        let mut store = PgStore {
            client,
            schema: schema.to_string(),
            at,
        };
        let has_postgis = store
            .client
            .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'postgis'", &[])
            .map_err(|e| store.err(e))?
            .is_some();
        if !has_postgis {
            return Err(PgError::NoPostgis(store.at.clone()));
        }
        Ok(store)
    }

    /// Connects, creates nordgeo's tables when missing and gives every layer its change
    /// capture (needs the rights to create tables and triggers).
    pub fn open(url: &str, schema: &str) -> Result<PgStore, PgError> {
        let mut store = PgStore::connect(url, schema)?;
        schema::ensure(&mut store)?;
        for (def, rel) in layers::list(&mut store)? {
            if !capture::has_triggers(&mut store, &rel)?
                && let Err(e) = capture::ensure(&mut store, &def.table, &rel)
            {
                tracing::warn!(layer = %def.table, error = %e, "cannot add change capture; the layer's changes are seen only through the table statistics");
            }
        }
        capture::prune(&mut store)?;
        Ok(store)
    }

    /// The schema of layers and nordgeo's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Where the store is, for messages (no password).
    pub fn at(&self) -> &str {
        &self.at
    }

    /// The connection.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// A table of nordgeo's, qualified and quoted.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}", layers::q(&self.schema), layers::q(name))
    }

    /// Whether one of nordgeo's tables exists yet (a store another version made, or a
    /// read-only user's, may lack it).
    pub fn has_table(&mut self, name: &str) -> Result<bool, PgError> {
        let table = self.table(name);
        match self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        {
            Ok(row) => Ok(row.get(0)),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Maps a PostgreSQL error on this store.
    pub fn err(&self, e: postgres::Error) -> PgError {
        if self.client.is_closed() {
            return PgError::Lost(self.at.clone());
        }
        error_at(&self.at, e)
    }
}

/// Maps a PostgreSQL error on the store at `at` (when the store itself is borrowed).
pub fn error_at(at: &str, e: postgres::Error) -> PgError {
    // Class 57 (operator intervention: shutdown, restart) and 08 (connection) mean the
    // database went away, not that the statement was wrong.
    let gone = e
        .as_db_error()
        .is_some_and(|db| matches!(&db.code().code()[..2], "57" | "08"));
    if e.is_closed() || gone {
        return PgError::Lost(at.to_string());
    }
    // 25006: read_only_sql_transaction, what a hot standby answers to any write.
    if e.as_db_error()
        .is_some_and(|db| db.code().code() == "25006")
    {
        return PgError::ReadOnly;
    }
    PgError::Query {
        at: at.to_string(),
        msg: message(&e),
    }
}

/// `host:port/database` of a connection, for messages.
fn describe(c: &postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", c.get_dbname().unwrap_or("postgres"))
}

/// PostgreSQL's own message (with its detail) rather than the driver's wrapping.
fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s = format!("{s}: {inner}");
                src = inner.source();
            }
            s
        }
    }
}
