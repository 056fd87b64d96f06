//! Command-line interface: argument parsing and one small function per command.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::import::{ImportError, ImportOptions, Mode};
use crate::pg::PgStore;
use crate::store::{Store, history};
use crate::{crs, export, server};

/// The default store, relative to the working directory.
pub const DEFAULT_STORE: &str = "data/nordgeo.gpkg";
/// The bundled sample data the default store is built from on first run.
pub const DEFAULT_SAMPLE: &str = "data/sample.gpkg";

#[derive(Parser)]
#[command(
    name = "nordgeo",
    version,
    about = "Vector tiles and OGC API Features from a GeoPackage store"
)]
struct Cli {
    /// The store: a GeoPackage file, or a PostGIS database as
    /// postgresql://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, global = true, env = "NORDGEO_STORE", default_value = DEFAULT_STORE)]
    store: PathBuf,
    /// The schema of a PostGIS store's layers and nordgeo's tables.
    #[arg(long = "store-schema", global = true, env = "NORDGEO_STORE_SCHEMA", default_value = crate::pg::DEFAULT_SCHEMA)]
    store_schema: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the store over HTTP.
    Serve {
        /// Configuration file (TOML; see examples/nordgeo.toml).
        #[arg(long, env = "NORDGEO_CONFIG")]
        config: Option<PathBuf>,
        /// Sample data imported when the store does not exist yet.
        #[arg(long, default_value = DEFAULT_SAMPLE)]
        sample: PathBuf,
        /// Settings that override the file and the environment.
        #[command(flatten)]
        flags: ServeFlags,
    },
    /// Check a configuration file against the store and print the effective settings.
    Config {
        /// What to do (only `check`).
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Import a GeoPackage (all or nothing; replaced features stay in the history).
    Import(ImportArgs),
    /// List the store's layers.
    Layers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write one layer to a new GeoPackage.
    Export {
        /// Layer name.
        layer: String,
        /// Output file.
        out: PathBuf,
        /// Only this municipality's features (to edit and import back with --municipality).
        #[arg(long)]
        municipality: Option<String>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show the change history (imports, edits, rollbacks).
    History {
        /// Only this layer.
        layer: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a layer to its state right after change ID (recorded as a new change).
    Rollback {
        /// Layer name.
        layer: String,
        /// The change to return to (see `nordgeo history`).
        #[arg(long)]
        to: i64,
        /// Only this feature (the others keep their later changes).
        #[arg(long)]
        feature: Option<i64>,
        /// Who is rolling back.
        #[arg(long, env = "NORDGEO_ACTOR")]
        actor: Option<String>,
    },
    /// Undo one change (an import, an edit, a dropped column) when no later change
    /// touched the same features; recorded as a change of its own.
    Undo {
        /// Layer name.
        layer: String,
        /// The change to undo (see `nordgeo history`).
        #[arg(long)]
        change: i64,
        /// Who undoes it (recorded).
        #[arg(long, env = "NORDGEO_ACTOR")]
        actor: Option<String>,
    },
    /// Write the tile pyramid into one PMTiles or MBTiles file (for a static host or CDN).
    ExportTiles {
        /// Output file.
        out: PathBuf,
        /// pmtiles or mbtiles.
        #[arg(long, value_enum, default_value = "pmtiles")]
        format: crate::export_tiles::Format,
        /// Lowest zoom.
        #[arg(long, default_value_t = 0)]
        minzoom: u8,
        /// Highest zoom.
        #[arg(long, default_value_t = 14)]
        maxzoom: u8,
        /// Only these collections (comma-separated; default all public ones).
        #[arg(long)]
        collections: Option<String>,
        /// Allow restricted collections and internal properties (a file that is not
        /// published; without it they are left out).
        #[arg(long)]
        include_restricted: bool,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Copy the store, consistently while it is in use (SQLite's online backup), for a
    /// read replica or a backup.
    Publish {
        /// The copy (replaced atomically).
        out: PathBuf,
    },
    /// Manage access tokens (editing, restricted collections).
    Token {
        /// What to do.
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Change a layer's settings: restricted, internal properties, municipality column.
    SetLayer(SetLayerArgs),
    /// Delete history rows of changes older than a duration (e.g. 365d), and access-log
    /// rows older than their own limit; the change log itself stays. The only way data
    /// is ever removed for good.
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["older_than", "access_log_older_than"])))]
    Vacuum {
        /// Age of history rows to remove, e.g. 365d or 720h, or a date.
        #[arg(long)]
        older_than: Option<String>,
        /// Age of access-log rows to remove (owner-data accesses), e.g. 2y, or a date.
        #[arg(long)]
        access_log_older_than: Option<String>,
    },
    /// Every answer that showed internal properties (owner data): token, time,
    /// collection, features and request.
    AccessLog {
        /// Only this token's accesses.
        #[arg(long)]
        token: Option<String>,
        /// Only accesses since a duration ago (12h, 30d, 1y) or a date.
        #[arg(long)]
        since: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Generate the synthetic region dataset (sample data and benchmarks).
    Generate {
        /// Output GeoPackage.
        out: PathBuf,
        /// 1.0 = 300,000 parcels, 3,000 trails (~2 million vertices).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Random seed; the same seed and scale give the same data.
        #[arg(long, default_value_t = 20240607)]
        seed: u64,
    },
}

/// Server settings given on the command line (each overrides the configuration file and
/// its `NORDGEO_*` environment variable).
#[derive(clap::Args, Debug, Default)]
struct ServeFlags {
    /// Address to listen on [env NORDGEO_BIND; default 127.0.0.1:8080].
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Public base URL for links, behind a reverse proxy [env NORDGEO_PUBLIC_URL].
    #[arg(long)]
    public_url: Option<String>,
    /// Tile cache in megabytes, 0 turns it off [env NORDGEO_CACHE_MB; default 256].
    #[arg(long)]
    cache_mb: Option<usize>,
    /// Folder with styles/, examples/ and web/node_modules/ [env NORDGEO_FILES; default .].
    #[arg(long)]
    files: Option<PathBuf>,
    /// Folder with the label fonts [env NORDGEO_FONTS; default /usr/share/fonts/truetype/dejavu].
    #[arg(long)]
    fonts: Option<PathBuf>,
    /// Refuse PUT, PATCH and DELETE without If-Match (428) [env NORDGEO_REQUIRE_IF_MATCH].
    #[arg(long)]
    require_if_match: bool,
    /// Largest HTTP import in megabytes [env NORDGEO_MAX_UPLOAD_MB; default 512].
    #[arg(long)]
    max_upload_mb: Option<usize>,
    /// Longest a read may take, in seconds [env NORDGEO_REQUEST_TIMEOUT_S; default 60].
    #[arg(long)]
    request_timeout_s: Option<u64>,
    /// Longest an HTTP import may run, in seconds [env NORDGEO_IMPORT_TIMEOUT_S; default 600].
    #[arg(long)]
    import_timeout_s: Option<f64>,
    /// Reverse proxies whose Forwarded/X-Forwarded-* headers are believed, comma-separated
    /// IP addresses [env NORDGEO_TRUSTED_PROXIES; default none].
    #[arg(long)]
    trusted_proxies: Option<String>,
    /// Most connections open at once [env NORDGEO_MAX_CONNECTIONS; default 4096].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Serve /metrics without a token on this separate address [env NORDGEO_METRICS_BIND].
    #[arg(long)]
    metrics_bind: Option<SocketAddr>,
    /// Let the configuration file's layer settings show more than the store allows now
    /// (make a restricted layer public, an internal property visible).
    #[arg(long)]
    allow_loosening: bool,
}

/// `nordgeo config ...`.
#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate the file (and its layers against the store) and print the effective
    /// configuration, after environment variables.
    Check {
        /// The file [env NORDGEO_CONFIG].
        #[arg(long, env = "NORDGEO_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// File, then environment, then flags.
fn settings(file: Option<&Path>, flags: &ServeFlags) -> Result<crate::config::Settings, String> {
    let mut s = crate::config::Settings::load(file).map_err(|e| e.to_string())?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let num = |k: &str| -> Result<Option<u64>, String> {
        env(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}='{v}' is not a whole number"))
            })
            .transpose()
    };
    let srv = &mut s.server;
    if let Some(v) = env("NORDGEO_BIND") {
        srv.bind = v
            .parse()
            .map_err(|_| format!("NORDGEO_BIND='{v}' is not an address like 127.0.0.1:8080"))?;
    }
    if let Some(v) = env("NORDGEO_PUBLIC_URL") {
        srv.public_url = Some(v);
    }
    if let Some(v) = num("NORDGEO_CACHE_MB")? {
        srv.cache_mb = v as usize;
    }
    if let Some(v) = env("NORDGEO_FILES") {
        srv.files = v.into();
    }
    if let Some(v) = env("NORDGEO_FONTS") {
        srv.fonts = v.into();
    }
    if let Some(v) = env("NORDGEO_REQUIRE_IF_MATCH") {
        srv.require_if_match = matches!(v.as_str(), "1" | "true" | "yes");
    }
    if let Some(v) = num("NORDGEO_MAX_UPLOAD_MB")? {
        srv.max_upload_mb = v as usize;
    }
    if let Some(v) = num("NORDGEO_REQUEST_TIMEOUT_S")? {
        srv.request_timeout_s = v;
    }
    if let Some(v) = env("NORDGEO_IMPORT_TIMEOUT_S") {
        srv.import_timeout_s = v
            .parse()
            .map_err(|_| format!("NORDGEO_IMPORT_TIMEOUT_S='{v}' is not a number of seconds"))?;
    }
    if let Some(v) = env("NORDGEO_CORS_ORIGINS") {
        srv.cors_origins = v.split(',').map(|o| o.trim().to_string()).collect();
    }
    if let Some(v) = env("NORDGEO_TRUSTED_PROXIES") {
        srv.trusted_proxies = parse_ips(&v).map_err(|e| format!("NORDGEO_TRUSTED_PROXIES: {e}"))?;
    }
    if let Some(v) = num("NORDGEO_MAX_CONNECTIONS")? {
        srv.max_connections = v as usize;
    }
    if let Some(v) = num("NORDGEO_HEADER_TIMEOUT_S")? {
        srv.header_timeout_s = v;
    }
    if let Some(v) = env("NORDGEO_ARC_TOLERANCE_M") {
        srv.arc_tolerance_m = v
            .parse()
            .map_err(|_| format!("NORDGEO_ARC_TOLERANCE_M='{v}' is not a number of metres"))?;
    }
    if let Some(v) = env("NORDGEO_METRICS_BIND") {
        srv.metrics_bind = Some(v.parse().map_err(|_| {
            format!("NORDGEO_METRICS_BIND='{v}' is not an address like 127.0.0.1:9090")
        })?);
    }
    if let Some(v) = &flags.trusted_proxies {
        srv.trusted_proxies = parse_ips(v).map_err(|e| format!("--trusted-proxies: {e}"))?;
    }
    if let Some(v) = flags.max_connections {
        srv.max_connections = v;
    }
    if let Some(v) = flags.metrics_bind {
        srv.metrics_bind = Some(v);
    }
    if let Some(v) = flags.bind {
        srv.bind = v;
    }
    if let Some(v) = &flags.public_url {
        srv.public_url = Some(v.clone());
    }
    if let Some(v) = flags.cache_mb {
        srv.cache_mb = v;
    }
    if let Some(v) = &flags.files {
        srv.files.clone_from(v);
    }
    if let Some(v) = &flags.fonts {
        srv.fonts.clone_from(v);
    }
    if flags.require_if_match {
        srv.require_if_match = true;
    }
    if let Some(v) = flags.max_upload_mb {
        srv.max_upload_mb = v;
    }
    if let Some(v) = flags.request_timeout_s {
        srv.request_timeout_s = v;
    }
    if let Some(v) = flags.import_timeout_s {
        srv.import_timeout_s = v;
    }
    Ok(s)
}

/// `nordgeo import ...`.
#[derive(clap::Args)]
struct ImportArgs {
    /// The GeoPackage file.
    file: PathBuf,
    /// Only this layer of the file.
    #[arg(long)]
    layer: Option<String>,
    /// Name of the layer in the store (default: the file's layer name).
    #[arg(long)]
    into: Option<String>,
    /// create: new layer; replace: replace its features; append: add features.
    #[arg(long, value_enum, default_value = "create")]
    mode: Mode,
    /// Only this municipality's features (with replace: only theirs are replaced).
    #[arg(long)]
    municipality: Option<String>,
    /// Check everything and print the report, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Make invalid polygons valid instead of rejecting them.
    #[arg(long)]
    repair: bool,
    /// Reproject a new layer to this CRS (e.g. EPSG:25832); default keeps the file's CRS.
    #[arg(long, value_parser = parse_epsg)]
    target_crs: Option<i32>,
    /// Who is importing (recorded in the history).
    #[arg(long, env = "NORDGEO_ACTOR")]
    actor: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Add the columns the file has and the layer lacks (without it such a file is
    /// refused: it is most likely another layer's export).
    #[arg(long)]
    add_columns: bool,
    /// Import features that are exact copies of stored ones.
    #[arg(long)]
    allow_duplicates: bool,
}

impl ImportArgs {
    fn options(self) -> (ImportOptions, bool) {
        let json = self.json;
        let opts = ImportOptions {
            layer: self.layer,
            into: self.into,
            municipality: self.municipality,
            dry_run: self.dry_run,
            repair: self.repair,
            target_crs: self.target_crs,
            progress: std::io::stderr().is_terminal() && !json,
            add_columns: self.add_columns,
            allow_duplicates: self.allow_duplicates,
            ..ImportOptions::new(self.file, self.mode, actor(self.actor))
        };
        (opts, json)
    }
}

/// Prints an import's report (also of a refused one) and maps its outcome.
fn import_done(
    result: Result<crate::import::ImportReport, ImportError>,
    json: bool,
) -> Result<(), String> {
    let print = |report: &crate::import::ImportReport| -> Result<(), String> {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(report).map_err(|e| e.to_string())?
            );
        } else {
            print!("{report}");
        }
        Ok(())
    };
    match result {
        Ok(report) => print(&report),
        Err(ImportError::Rejected { count, report }) => {
            print(&report)?;
            Err(ImportError::Rejected { count, report }.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `nordgeo set-layer ...`.
#[derive(clap::Args)]
struct SetLayerArgs {
    /// Layer name.
    layer: String,
    /// Readable only with a token for it.
    #[arg(long)]
    restricted: Option<bool>,
    /// Properties hidden from anyone without a token for the layer (comma-separated;
    /// empty for none).
    #[arg(long)]
    internal: Option<String>,
    /// The column naming each feature's municipality (maintainers edit only theirs).
    #[arg(long)]
    municipality_column: Option<String>,
    /// Human title.
    #[arg(long)]
    title: Option<String>,
    /// This layer holds the municipalities' boundaries: the column naming each one
    /// (maintainers then place features only inside their own).
    #[arg(long)]
    boundaries: Option<String>,
    /// Metres outside its boundary a maintainer may still place a feature (default 100).
    #[arg(long)]
    boundary_margin_m: Option<f64>,
    /// The columns that identify a feature, comma-separated (e.g. parcel_id): imports
    /// then match features by them and keep their fids; empty to remove the key.
    #[arg(long)]
    key: Option<String>,
    /// A condition every feature must meet, in CQL2 text (repeat for more; replaces
    /// the layer's rules), e.g. "free_places >= 0 AND free_places <= capacity".
    #[arg(long = "rule")]
    rules: Vec<String>,
    /// Remove all rules.
    #[arg(long, conflicts_with = "rules")]
    no_rules: bool,
    /// Drop a column added by mistake (kept in the history; undo brings it back).
    #[arg(long)]
    drop_column: Option<String>,
    /// Who changes the settings (recorded in the history).
    #[arg(long, env = "NORDGEO_ACTOR")]
    actor: Option<String>,
    /// PostGIS store: publish this existing table (SCHEMA.TABLE) as the layer.
    #[arg(long)]
    source: Option<String>,
    /// PostGIS store: the unique integer column that identifies features (default:
    /// the primary key).
    #[arg(long)]
    fid: Option<String>,
    /// PostGIS store: the geometry column (default: the first).
    #[arg(long)]
    geometry: Option<String>,
}

impl SetLayerArgs {
    /// The settings the flags change.
    fn settings(&self) -> crate::write::settings::Settings {
        crate::write::settings::Settings {
            restricted: self.restricted,
            internal: self.internal.as_deref().map(split_list),
            municipality_column: self.municipality_column.clone(),
            title: self.title.clone(),
            boundaries: self.boundaries.clone(),
            boundary_margin_m: self.boundary_margin_m,
            key: self.key.as_deref().map(split_list),
            rules: if self.no_rules {
                Some(Vec::new())
            } else if self.rules.is_empty() {
                None
            } else {
                Some(self.rules.clone())
            },
            ..Default::default()
        }
    }

    /// What the settings are now, printed after a change.
    fn report(layer: &str, meta: &crate::store::LayerMeta) {
        println!(
            "layer '{layer}': restricted={}, internal properties=[{}], municipality column={}",
            meta.restricted,
            meta.internal_properties.join(", "),
            meta.municipality_column.as_deref().unwrap_or("none")
        );
    }
}

/// `nordgeo token ...`.
#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token and print it (once; only its hash is stored).
    Create {
        /// Unique name, recorded as the author of every change made with it.
        #[arg(long)]
        name: String,
        /// The municipality whose features it may change.
        #[arg(long)]
        municipality: Option<String>,
        /// The collections it covers (comma-separated; default all).
        #[arg(long)]
        collections: Option<String>,
        /// maintainer or admin.
        #[arg(long, default_value = "maintainer")]
        role: String,
        /// Expiry: a date/time or a duration such as 90d.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by name.
    Revoke {
        /// Token name.
        name: String,
    },
}

fn parse_ips(s: &str) -> Result<Vec<std::net::IpAddr>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().map_err(|_| format!("'{x}' is not an IP address")))
        .collect()
}

fn parse_epsg(s: &str) -> Result<i32, String> {
    let code = s.trim().to_ascii_uppercase();
    let code = code.strip_prefix("EPSG:").unwrap_or(&code);
    code.parse::<i32>()
        .map_err(|_| format!("'{s}' is not an EPSG code like EPSG:25832"))
}

/// A token to create, its flags checked against the store (any kind).
struct NewToken {
    name: String,
    role: crate::auth::Role,
    municipality: Option<String>,
    collections: Option<Vec<String>>,
    expires: Option<String>,
}

impl NewToken {
    /// Checks `token create`'s flags: known collections, the boundary layer's spelling
    /// of the municipality (`known`; any when the store has no boundary layer), expiry.
    fn checked(cmd: TokenCmd, layers: &[String], known: &[String]) -> Result<NewToken, String> {
        let TokenCmd::Create {
            name,
            municipality,
            collections,
            role,
            expires,
        } = cmd
        else {
            return Err("not a token create command".into());
        };
        let role = crate::auth::Role::parse(&role).map_err(|e| e.to_string())?;
        let collections = collections.map(|c| split_list(&c));
        if let Some(bad) = collections.iter().flatten().find(|c| !layers.contains(c)) {
            return Err(format!("the store has no collection '{bad}'"));
        }
        // One spelling per municipality: the boundary layer's, or refused with the list.
        let municipality = municipality
            .map(|m| crate::municipality::canonical(&m, known))
            .transpose()
            .map_err(|e| format!("--municipality: {e}"))?;
        let expires = expires
            .map(|e| crate::auth::parse_expiry(&e))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(NewToken {
            name,
            role,
            municipality,
            collections,
            expires,
        })
    }

    /// Shows the secret, once.
    fn show(&self, secret: &str) {
        eprintln!(
            "token '{}' created; it is shown only now, keep it safe:",
            self.name
        );
        println!("{secret}");
    }
}

fn print_tokens(list: Vec<crate::auth::Token>, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return;
    }
    for t in list {
        println!(
            "{:24} {:10} municipality={:16} collections={:24} expires={} {}",
            t.name,
            format!("{:?}", t.role).to_lowercase(),
            t.municipality.as_deref().unwrap_or("-"),
            t.collections
                .map(|c| c.join(","))
                .unwrap_or_else(|| "all".into()),
            t.expires.as_deref().unwrap_or("never"),
            t.revoked
                .map(|r| format!("REVOKED {r}"))
                .unwrap_or_default()
        );
    }
}

fn token(store_path: &Path, cmd: TokenCmd) -> Result<(), String> {
    let store = Store::open(store_path).map_err(|e| e.to_string())?;
    let conn = store.conn();
    match cmd {
        create @ TokenCmd::Create { .. } => {
            let layers: Vec<String> = store
                .layers()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|l| l.table)
                .collect();
            let known = crate::municipality::known(&store).map_err(|e| e.to_string())?;
            let t = NewToken::checked(create, &layers, &known)?;
            let secret = crate::auth::create(
                conn,
                &t.name,
                t.role,
                t.municipality.as_deref(),
                t.collections.as_deref(),
                t.expires.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            t.show(&secret);
            Ok(())
        }
        TokenCmd::List { json } => {
            let list: Vec<crate::auth::Token> = crate::auth::load(conn)
                .map_err(|e| store.err(e).to_string())?
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            print_tokens(list, json);
            Ok(())
        }
        TokenCmd::Revoke { name } => {
            crate::auth::revoke(conn, &name).map_err(|e| e.to_string())?;
            println!("token '{name}' revoked");
            Ok(())
        }
    }
}

/// Applies the configuration's layer settings to a GeoPackage store and loads it.
fn open_geopackage(
    store_path: &Path,
    s: &crate::config::Settings,
    may_loosen: bool,
) -> Result<(Arc<crate::catalog::Live>, crate::auth::TokenTable), String> {
    // Opening for writing also gives layers other programs made their change capture.
    match Store::open(store_path) {
        Ok(store) => {
            s.check(Some(&store)).map_err(|e| e.to_string())?;
            let n = s
                .apply_layers(&store, may_loosen)
                .map_err(|e| e.to_string())?;
            if n > 0 {
                tracing::info!(changed = n, "layer settings from the configuration applied");
            }
        }
        Err(crate::store::StoreError::ReadOnly(_)) if s.layers.is_empty() => {
            tracing::warn!("the store is read-only: serving it, but edits and imports will fail");
            s.check(None).map_err(|e| e.to_string())?;
        }
        Err(e) => return Err(e.to_string()),
    }
    let live = crate::catalog::Live::open(store_path).map_err(|e| e.to_string())?;
    let store = Store::open_read_only(store_path).map_err(|e| e.to_string())?;
    Ok((live, server::watch::token_table(&store)))
}

/// Prepares a PostGIS store (nordgeo's tables, change capture) where the user may, and
/// loads it.
fn open_postgis(
    url: &str,
    schema: &str,
    s: &crate::config::Settings,
) -> Result<(Arc<crate::catalog::Live>, crate::auth::TokenTable), String> {
    if !s.layers.is_empty() {
        return Err("[layers] settings in the configuration are applied to GeoPackage stores only; on a PostGIS store use `nordgeo set-layer` (its settings live in the database, so every instance sees the same)".into());
    }
    let mut store = match PgStore::open(url, schema) {
        Ok(store) => store,
        // A read-only user or a streaming replica: serve what is there, as it is.
        Err(e @ (crate::pg::PgError::Query { .. } | crate::pg::PgError::ReadOnly)) => {
            tracing::warn!(reason = %e, "cannot prepare the PostGIS store (read-only?); serving it without adding change capture");
            PgStore::connect(url, schema).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    let source = crate::pg::source::PostGis::connect(url, schema).map_err(|e| e.to_string())?;
    let live = crate::catalog::Live::follow(Box::new(source)).map_err(|e| e.to_string())?;
    let tokens = crate::pg::tokens::load(&mut store)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(h, t)| (h, Arc::new(t)))
        .collect();
    Ok((live, tokens))
}

/// Runs a command on a PostGIS store.
fn run_postgis(url: &str, schema: &str, command: Command) -> Result<(), String> {
    let open = || PgStore::open(url, schema).map_err(|e| e.to_string());
    match command {
        Command::Serve {
            config,
            flags,
            sample,
            ..
        } => {
            let s = settings(config.as_deref(), &flags)?;
            serve(
                Path::new(url),
                &sample,
                &s,
                flags.allow_loosening,
                Some(schema),
            )
        }
        Command::Layers { json } => {
            let mut store = open()?;
            let mut rows = Vec::new();
            for (def, rel) in crate::pg::layers::list(&mut store).map_err(|e| e.to_string())? {
                let n: i64 = store
                    .client()
                    .query_one(&format!("SELECT count(*) FROM {}", rel.qualified()), &[])
                    .map_err(|e| store.err(e).to_string())?
                    .get(0);
                rows.push((def, n));
            }
            print_layers(rows, json);
            Ok(())
        }
        Command::SetLayer(args) => {
            let (layer, source) = (args.layer.clone(), args.source.clone());
            let (fid, geometry) = (args.fid.clone(), args.geometry.clone());
            let mut store = open()?;
            if let Some(col) = &args.drop_column {
                let id = crate::pg::rollback::drop_column(
                    &mut store,
                    &layer,
                    col,
                    &actor(args.actor.clone()),
                )
                .map_err(|e| e.to_string())?;
                dropped(&layer, col, id);
            }
            let candidate = match &source {
                Some(src) => Some(
                    crate::pg::settings::parse_source(
                        &store,
                        &layer,
                        src,
                        fid.clone(),
                        geometry.clone(),
                    )
                    .map_err(|e| e.to_string())?,
                ),
                None if fid.is_some() || geometry.is_some() => Some(crate::pg::layers::Candidate {
                    name: layer.clone(),
                    schema: schema.to_string(),
                    table: layer.clone(),
                    fid: fid.clone(),
                    geom: geometry.clone(),
                }),
                None => None,
            };
            // The table must be servable before it is registered: a clear error now,
            // not a layer missing from every server later.
            let rel = match &candidate {
                Some(c) => {
                    let (def, rel) = crate::pg::layers::describe(&mut store, c)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("table {}.{} does not exist", c.schema, c.table))?;
                    if !def.has_geometry() {
                        eprintln!(
                            "note: {}.{} has no geometry column; it is served as a table without geometry",
                            c.schema, c.table
                        );
                    }
                    Some(rel)
                }
                None => {
                    let known = crate::pg::layers::list(&mut store).map_err(|e| e.to_string())?;
                    if !known.iter().any(|(d, _)| d.table == layer) {
                        return Err(crate::pg::PgError::NoSuchLayer(layer).to_string());
                    }
                    None
                }
            };
            let before =
                crate::pg::settings::meta(&mut store, &layer).map_err(|e| e.to_string())?;
            let change = args.settings();
            let (meta, _) = crate::write::settings::apply(&before, &change);
            crate::pg::settings::write(&mut store, &layer, &meta, candidate.as_ref())
                .map_err(|e| e.to_string())?;
            if let (Some(c), Some(rel)) = (&candidate, &rel) {
                let tracked =
                    crate::pg::capture::has_triggers(&mut store, rel).map_err(|e| e.to_string())?;
                if !tracked && let Err(e) = crate::pg::capture::ensure(&mut store, &layer, rel) {
                    eprintln!(
                        "note: no change capture on {}.{} ({e}); running servers see its changes only through the table statistics, within seconds",
                        c.schema, c.table
                    );
                }
            }
            SetLayerArgs::report(&layer, &meta);
            Ok(())
        }
        Command::Token { cmd } => token_postgis(&mut open()?, cmd),
        cmd @ Command::ExportTiles { .. } => {
            export_tiles(cmd, |o| crate::export_tiles::run_postgis(url, schema, o))
        }
        Command::Vacuum {
            older_than,
            access_log_older_than,
        } => {
            let cutoff = |s: Option<String>| {
                s.map(|s| crate::auth::parse_cutoff(&s).map_err(|e| e.to_string()))
                    .transpose()
            };
            let (history, access) = (cutoff(older_than)?, cutoff(access_log_older_than)?);
            let (h, a) =
                crate::pg::history::vacuum(&mut open()?, history.as_deref(), access.as_deref())
                    .map_err(|e| e.to_string())?;
            vacuumed(history, access, h as usize, a as usize);
            Ok(())
        }
        Command::History { layer, json } => {
            let mut store = open()?;
            if let Some(l) = &layer
                && !crate::pg::layers::list(&mut store)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .any(|(d, _)| &d.table == l)
            {
                return Err(crate::pg::PgError::NoSuchLayer(l.clone()).to_string());
            }
            let changes = crate::pg::history::list(&mut store, layer.as_deref())
                .map_err(|e| e.to_string())?;
            print_history(changes, json)
        }
        Command::AccessLog { token, since, json } => {
            let since = since
                .map(|s| crate::auth::parse_cutoff(&s).map_err(|e| e.to_string()))
                .transpose()?;
            let rows =
                crate::pg::access_log::list(&mut open()?, token.as_deref(), since.as_deref())
                    .map_err(|e| e.to_string())?;
            print_accesses(rows, json)
        }
        Command::Import(args) => {
            let (opts, json) = args.options();
            let mut store = open()?;
            import_done(crate::pg::import::run(&mut store, &opts), json)
        }
        Command::Rollback {
            layer,
            to,
            feature,
            actor: who,
        } => {
            let r = crate::write::rollback::Rollback {
                layer,
                to,
                feature,
                actor: actor(who),
            };
            rolled_back(&r, crate::pg::rollback::rollback(&mut open()?, &r))
        }
        Command::Undo {
            layer,
            change,
            actor: who,
        } => {
            let id = crate::pg::rollback::undo(&mut open()?, &layer, change, &actor(who), None)
                .map_err(|e| e.to_string())?;
            undone(&layer, change, id)
        }
        Command::Publish { out } => {
            let mut store = open()?;
            let n = crate::pg::export::publish(&mut store, &out).map_err(|e| e.to_string())?;
            println!(
                "{n} layers of {} published to {} (their rows, settings and tokens; the change log and history stay in the database)",
                store.at(),
                out.display()
            );
            Ok(())
        }
        Command::Export {
            layer,
            out,
            municipality,
            force,
        } => {
            let n = crate::pg::export::export(
                &mut open()?,
                &layer,
                &out,
                force,
                municipality.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            println!("exported {n} features of '{layer}' to {}", out.display());
            Ok(())
        }
        other => Err(crate::pg::PgError::Unsupported(format!(
            "`nordgeo {}`",
            command_name(&other)
        ))
        .to_string()),
    }
}

/// What `nordgeo rollback` says, whatever the store.
fn rolled_back(
    r: &crate::write::rollback::Rollback,
    rolled: Result<crate::write::rollback::Rolled, crate::write::WriteError>,
) -> Result<(), String> {
    let (layer, to) = (&r.layer, r.to);
    let rolled = rolled.map_err(|e| match e {
        crate::write::WriteError::NotFound(_) => format!(
            "change {to} is not a change of layer '{layer}'; `nordgeo history {layer}` lists its changes"
        ),
        other => other.to_string(),
    })?;
    match r.feature {
        Some(fid) => println!(
            "feature {fid} of '{layer}' restored to its version after change {to} (recorded as change {})",
            rolled.change
        ),
        None => println!(
            "layer '{layer}' restored to its state after change {to} (recorded as change {}; undo it with --to {})",
            rolled.change, rolled.previous
        ),
    }
    Ok(())
}

/// What `nordgeo set-layer --drop-column` says, whatever the store.
fn dropped(layer: &str, col: &str, id: i64) {
    println!(
        "column '{col}' dropped from '{layer}' (change {id}; `nordgeo undo {layer} --change {id}` brings it back)"
    );
}

/// What `nordgeo undo` says, whatever the store.
fn undone(layer: &str, change: i64, id: i64) -> Result<(), String> {
    println!("change {change} of '{layer}' undone (recorded as change {id})");
    Ok(())
}

fn print_history(changes: Vec<crate::store::history::Change>, json: bool) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&changes).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "{:>5}  {:<24} {:<12} {:<9} {:<16} {:>8} {:>8}  source / note",
        "id", "at (UTC)", "layer", "kind", "actor", "added", "removed"
    );
    for c in changes {
        let what = [
            c.mode.map(|m| format!("mode {m}")),
            c.municipality.map(|m| format!("municipality {m}")),
            c.source,
            c.note,
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        println!(
            "{:>5}  {:<24} {:<12} {:<9} {:<16} {:>8} {:>8}  {what}",
            c.id, c.at, c.layer, c.kind, c.actor, c.added, c.removed
        );
    }
    Ok(())
}

fn print_accesses(rows: Vec<crate::store::access_log::Access>, json: bool) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    for a in &rows {
        println!(
            "{}  {}  {}  [{}]  {}",
            a.at,
            a.token,
            a.collection,
            crate::store::access_log::fid_list(&a.fids),
            a.request
        );
    }
    if rows.is_empty() {
        println!("no recorded accesses");
    }
    Ok(())
}

/// `nordgeo export-tiles` on the catalog `run` loads.
fn export_tiles(
    cmd: Command,
    run: impl FnOnce(
        &crate::export_tiles::ExportTiles,
    ) -> Result<crate::export_tiles::Summary, crate::export_tiles::ExportTilesError>,
) -> Result<(), String> {
    let Command::ExportTiles {
        out,
        format,
        minzoom,
        maxzoom,
        collections,
        include_restricted,
        force,
    } = cmd
    else {
        return Err("not an export-tiles command".into());
    };
    let opts = crate::export_tiles::ExportTiles {
        include_restricted,
        out: out.clone(),
        format,
        min_zoom: minzoom,
        max_zoom: maxzoom,
        collections: collections.map(|c| split_list(&c)),
        force,
        progress: true,
    };
    let started = std::time::Instant::now();
    let s = run(&opts).map_err(|e| e.to_string())?;
    println!(
        "{}: {} tiles (+{} empty, not stored), {} bytes, z{minzoom}-{maxzoom}, {:.1} s",
        out.display(),
        s.tiles,
        s.empty,
        s.bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn vacuumed(history: Option<String>, access: Option<String>, h: usize, a: usize) {
    if let Some(c) = history {
        println!("removed {h} history rows of changes made before {c}");
    }
    if let Some(c) = access {
        println!("removed {a} access-log rows recorded before {c}");
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The command's name as typed.
fn command_name(c: &Command) -> String {
    let name = match c {
        Command::Import(_) => "import",
        Command::Export { .. } => "export",
        Command::History { .. } => "history",
        Command::Rollback { .. } => "rollback",
        Command::Undo { .. } => "undo",
        Command::ExportTiles { .. } => "export-tiles",
        Command::Publish { .. } => "publish",
        Command::Vacuum { .. } => "vacuum",
        Command::AccessLog { .. } => "access-log",
        Command::Config { .. } => "config check",
        Command::Generate { .. } => "generate",
        _ => "this command",
    };
    name.to_string()
}

fn token_postgis(store: &mut PgStore, cmd: TokenCmd) -> Result<(), String> {
    match cmd {
        create @ TokenCmd::Create { .. } => {
            let layers: Vec<String> = crate::pg::layers::list(store)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(l, _)| l.table)
                .collect();
            let known = crate::pg::settings::municipalities(store).map_err(|e| e.to_string())?;
            let t = NewToken::checked(create, &layers, &known)?;
            let secret = crate::pg::tokens::create(
                store,
                &t.name,
                t.role,
                t.municipality.as_deref(),
                t.collections.as_deref(),
                t.expires.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            t.show(&secret);
            Ok(())
        }
        TokenCmd::List { json } => {
            let list = crate::pg::tokens::load(store).map_err(|e| e.to_string())?;
            print_tokens(list.into_iter().map(|(_, t)| t).collect(), json);
            Ok(())
        }
        TokenCmd::Revoke { name } => {
            crate::pg::tokens::revoke(store, &name).map_err(|e| e.to_string())?;
            println!("token '{name}' revoked");
            Ok(())
        }
    }
}

fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into())
}

/// Parses the command line, runs the command and maps errors to messages and exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("NORDGEO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The store a command works on: `--store` or `NORDGEO_STORE` when given, else the
/// configuration file's `store` (for the commands that read one), else the default.
fn effective_store(cli: &Cli) -> Result<(PathBuf, String), String> {
    let file = match &cli.command {
        Command::Serve { config, .. }
        | Command::Config {
            cmd: ConfigCmd::Check { config },
        } => config.as_deref(),
        _ => None,
    };
    let given = |flag: &str, env: &str, default: &str, value: &str| {
        value != default
            || std::env::var(env).is_ok_and(|v| !v.is_empty())
            || std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let settings = match file {
        Some(f) => crate::config::Settings::load(Some(f)).map_err(|e| e.to_string())?,
        None => crate::config::Settings::default(),
    };
    let store_given = given(
        "--store",
        "NORDGEO_STORE",
        DEFAULT_STORE,
        &cli.store.to_string_lossy(),
    );
    let store = match (&settings.store, store_given) {
        (Some(s), false) => PathBuf::from(s),
        _ => cli.store.clone(),
    };
    let schema_given = given(
        "--store-schema",
        "NORDGEO_STORE_SCHEMA",
        crate::pg::DEFAULT_SCHEMA,
        &cli.store_schema,
    );
    let schema = match (&settings.store_schema, schema_given) {
        (Some(s), false) => s.clone(),
        _ => cli.store_schema.clone(),
    };
    Ok((store, schema))
}

fn run(cli: Cli) -> Result<(), String> {
    let (store_path, schema) = effective_store(&cli)?;
    if let Some(url) = store_path.to_str().filter(|s| crate::pg::is_url(s)) {
        return run_postgis(url, &schema, cli.command);
    }
    match cli.command {
        Command::Serve {
            config,
            sample,
            flags,
        } => {
            let s = settings(config.as_deref(), &flags)?;
            serve(&store_path, &sample, &s, flags.allow_loosening, None)
        }
        Command::Config {
            cmd: ConfigCmd::Check { config },
        } => {
            let s = settings(config.as_deref(), &ServeFlags::default())?;
            let store = if store_path.exists() {
                Some(Store::open_read_only(&store_path).map_err(|e| e.to_string())?)
            } else {
                None
            };
            s.check(store.as_ref()).map_err(|e| e.to_string())?;
            eprintln!(
                "configuration ok{}",
                if store.is_some() {
                    " (layers checked against the store)"
                } else {
                    ""
                }
            );
            if let Some(store) = &store {
                let changes = s.layer_changes(store).map_err(|e| e.to_string())?;
                if changes.is_empty() {
                    eprintln!("starting with it changes no layer setting in the store");
                }
                for (layer, altered) in &changes {
                    for a in altered {
                        eprintln!(
                            "starting with it changes layers.{layer}.{}: {} -> {}{}",
                            a.setting,
                            a.before,
                            a.after,
                            if a.loosens {
                                " (shows more than the store allows now: needs `serve --allow-loosening`)"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
            eprintln!("effective settings:");
            print!("{}", s.to_toml());
            Ok(())
        }
        Command::Import(args) => {
            let (opts, json) = args.options();
            import_done(crate::write::import::run(&store_path, &opts), json)
        }
        Command::Layers { json } => layers(&store_path, json),
        Command::Export {
            layer,
            out,
            municipality,
            force,
        } => {
            let store = Store::open_read_only(&store_path).map_err(|e| e.to_string())?;
            let n = export::export_where(&store, &layer, &out, force, municipality.as_deref())
                .map_err(|e| e.to_string())?;
            println!("exported {n} features of '{layer}' to {}", out.display());
            Ok(())
        }
        Command::History { layer, json } => {
            let store = Store::open_read_only(&store_path).map_err(|e| e.to_string())?;
            if let Some(l) = &layer {
                store.layer(l).map_err(|e| e.to_string())?;
            }
            let changes = history::list(store.conn(), layer.as_deref())
                .map_err(|e| store.err(e).to_string())?;
            print_history(changes, json)
        }
        Command::Rollback {
            layer,
            to,
            feature,
            actor: who,
        } => {
            let store = Store::open(&store_path).map_err(|e| e.to_string())?;
            let r = crate::write::rollback::Rollback {
                layer: layer.clone(),
                to,
                feature,
                actor: actor(who),
            };
            rolled_back(&r, crate::write::rollback::rollback(&store, &r))
        }
        Command::Undo {
            layer,
            change,
            actor: who,
        } => {
            let store = Store::open(&store_path).map_err(|e| e.to_string())?;
            let id = crate::write::rollback::undo(&store, &layer, change, &actor(who), None)
                .map_err(|e| e.to_string())?;
            undone(&layer, change, id)
        }
        Command::Token { cmd } => token(&store_path, cmd),
        cmd @ Command::ExportTiles { .. } => {
            export_tiles(cmd, |o| crate::export_tiles::run(&store_path, o))
        }
        Command::Publish { out } => {
            let store = Store::open_read_only(&store_path).map_err(|e| e.to_string())?;
            let part = out.with_extension("part");
            let _ = std::fs::remove_file(&part);
            store
                .conn()
                .backup(
                    rusqlite::MAIN_DB,
                    &part,
                    None::<fn(rusqlite::backup::Progress)>,
                )
                .map_err(|e| format!("cannot copy the store to {}: {e}", part.display()))?;
            std::fs::rename(&part, &out)
                .map_err(|e| format!("cannot move the copy to {}: {e}", out.display()))?;
            println!("{} published to {}", store_path.display(), out.display());
            Ok(())
        }
        Command::SetLayer(args) => {
            let (layer, drop_column, who) = (
                args.layer.clone(),
                args.drop_column.clone(),
                args.actor.clone(),
            );
            let (source, fid, geometry) = (&args.source, &args.fid, &args.geometry);
            if source.is_some() || fid.is_some() || geometry.is_some() {
                return Err("--source, --fid and --geometry publish tables of a PostGIS store; a GeoPackage store's layers are its feature tables".into());
            }
            let store = Store::open(&store_path).map_err(|e| e.to_string())?;
            if let Some(col) = drop_column {
                let id =
                    crate::write::settings::drop_column(&store, &layer, &col, &actor(who.clone()))
                        .map_err(|e| e.to_string())?;
                dropped(&layer, &col, id);
            }
            let change = args.settings();
            // The administrator asked for exactly this: it may loosen access.
            let (meta, altered) =
                crate::write::settings::set(&store, &layer, &change, &actor(who), true)
                    .map_err(|e| e.to_string())?;
            if altered.is_empty() {
                println!("layer '{layer}': nothing to change");
            }
            SetLayerArgs::report(&layer, &meta);
            Ok(())
        }
        Command::Vacuum {
            older_than,
            access_log_older_than,
        } => {
            let cutoff = |s: Option<String>| {
                s.map(|s| crate::auth::parse_cutoff(&s).map_err(|e| e.to_string()))
                    .transpose()
            };
            let (history, access) = (cutoff(older_than)?, cutoff(access_log_older_than)?);
            let store = Store::open(&store_path).map_err(|e| e.to_string())?;
            let (h, a) = crate::write::vacuum(&store, history.as_deref(), access.as_deref())
                .map_err(|e| e.to_string())?;
            vacuumed(history, access, h, a);
            Ok(())
        }
        Command::AccessLog { token, since, json } => {
            let since = since
                .map(|s| crate::auth::parse_cutoff(&s).map_err(|e| e.to_string()))
                .transpose()?;
            let store = Store::open_read_only(&store_path).map_err(|e| e.to_string())?;
            let rows =
                crate::store::access_log::list(store.conn(), token.as_deref(), since.as_deref())
                    .map_err(|e| store.err(e).to_string())?;
            print_accesses(rows, json)
        }
        Command::Generate { out, scale, seed } => {
            let summary =
                crate::generate::generate(&out, scale, seed).map_err(|e| e.to_string())?;
            println!("{summary}");
            Ok(())
        }
    }
}

fn layers(store_path: &Path, json: bool) -> Result<(), String> {
    let store = Store::open_read_only(store_path).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for def in store.layers().map_err(|e| e.to_string())? {
        let count = store.count(&def).map_err(|e| e.to_string())?;
        rows.push((def, count));
    }
    print_layers(rows, json);
    Ok(())
}

fn print_layers(rows: Vec<(crate::store::LayerDef, i64)>, json: bool) {
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(d, n)| serde_json::json!({"name": d.table, "geometry_type": if d.has_geometry() { d.kind.gpkg_name() } else { "NONE" }, "srs_id": d.has_geometry().then_some(d.srs_id), "features": n, "extent": d.bounds}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    println!(
        "{:<20} {:<16} {:<34} {:>9}  extent",
        "layer", "geometry", "CRS", "features"
    );
    for (d, n) in rows {
        let ext = d
            .bounds
            .map(|b| format!("{:.3}, {:.3} .. {:.3}, {:.3}", b[0], b[1], b[2], b[3]))
            .unwrap_or_else(|| "none".into());
        let (kind, crs_name) = if d.has_geometry() {
            (d.kind.gpkg_name(), crs::name(d.srs_id))
        } else {
            ("NONE", "-".to_string())
        };
        println!(
            "{:<20} {:<16} {:<34} {:>9}  {ext}",
            d.table, kind, crs_name, n
        );
    }
}

fn serve(
    store_path: &Path,
    sample: &Path,
    s: &crate::config::Settings,
    may_loosen: bool,
    pg_schema: Option<&str>,
) -> Result<(), String> {
    if pg_schema.is_none() && !store_path.exists() {
        if !sample.exists() {
            return Err(format!(
                "store {} does not exist and there is no sample data at {}; import data with `nordgeo import FILE.gpkg --store {}`",
                store_path.display(),
                sample.display(),
                store_path.display()
            ));
        }
        tracing::info!(store = %store_path.display(), sample = %sample.display(), "first run: building the store from the sample data");
        let opts = ImportOptions::new(sample.into(), Mode::Create, "nordgeo (sample data)");
        crate::write::import::run(store_path, &opts).map_err(|e| e.to_string())?;
    }
    crate::geom::wkb::set_arc_tolerance_m(s.server.arc_tolerance_m);
    let started = std::time::Instant::now();
    let (live, tokens) = match pg_schema {
        Some(schema) => open_postgis(&store_path.to_string_lossy(), schema, s)?,
        None => open_geopackage(store_path, s, may_loosen)?,
    };
    let catalog = live.catalog();
    tracing::info!(
        layers = catalog.layers.len(),
        features = catalog.layers.iter().map(|l| l.len()).sum::<usize>(),
        ms = started.elapsed().as_millis() as u64,
        "indexes loaded"
    );
    drop(catalog);
    let srv = &s.server;
    let bind = srv.bind;
    let config = server::ServerConfig {
        bind,
        public_url: srv.public_url.clone(),
        cache_bytes: srv.cache_mb * 1024 * 1024,
        files: srv.files.clone(),
        fonts: srv.fonts.clone(),
        store: store_path.to_path_buf(),
        pg_schema: pg_schema.map(str::to_string),
        require_if_match: srv.require_if_match,
        max_upload_bytes: srv.max_upload_mb * 1024 * 1024,
        request_timeout: std::time::Duration::from_secs(srv.request_timeout_s.max(1)),
        import_timeout: std::time::Duration::from_secs_f64(srv.import_timeout_s),
        cors_origins: srv.cors_origins.clone(),
        trusted_proxies: srv.trusted_proxies.clone(),
        max_connections: srv.max_connections,
        header_timeout: std::time::Duration::from_secs(srv.header_timeout_s),
        metrics_bind: srv.metrics_bind,
    };
    // A damaged or missing archive stops the start, naming it.
    let mut archives = server::archives::Archives::new();
    for (name, a) in &s.archives {
        let mut opened =
            crate::archives::live::LiveArchive::open(name, &a.path).map_err(|e| e.to_string())?;
        opened.attribution = a.attribution.clone();
        archives.insert(name.clone(), Arc::new(opened));
    }
    let state = Arc::new(server::AppState::new(
        config,
        live,
        archives,
        s.portal.clone(),
    ));
    state.set_tokens(tokens);
    match pg_schema {
        Some(schema) => server::watch::spawn_postgis(state.clone(), schema),
        None => server::watch::spawn(state.clone(), store_path.to_path_buf()),
    }
    server::listen::run(state).map_err(|e| format!("cannot serve on {bind}: {e}"))
}
