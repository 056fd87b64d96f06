//! The HTTP server: axum router, shared state, absolute links.

pub mod access;
pub mod archives;
pub mod assets;
pub mod audit;
pub mod crs_out;
pub mod download;
pub mod edit;
pub mod features;
pub mod geojson;
pub mod hot;
pub mod html;
pub mod idle;
pub mod listen;
pub mod metrics;
pub mod ogc;
pub mod params;
pub mod portal;
pub mod portal_style;
pub mod problem;
pub mod query;
pub mod stream;
pub mod tiles;
pub mod tilesets;
pub mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::catalog::{Catalog, Live};
use crate::tiles::TileOptions;
use crate::tiles::cache::{CacheKey, CachedTile, TileCache};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// Public base URL (no trailing slash); derived from the request when unset.
    pub public_url: Option<String>,
    /// Tile cache size in bytes (0 turns it off).
    pub cache_bytes: usize,
    /// Folder with the files served as they are (styles, the widget, MapLibre).
    pub files: std::path::PathBuf,
    /// Folder with the TrueType/OpenType fonts labels are rendered from.
    pub fonts: std::path::PathBuf,
    /// The store (edits and HTTP imports write to it): a GeoPackage file, or the URL of
    /// a PostGIS database when `pg_schema` is set.
    pub store: std::path::PathBuf,
    /// The schema of a PostGIS store (`None`: the store is a GeoPackage).
    pub pg_schema: Option<String>,
    /// Refuse PUT, PATCH and DELETE without `If-Match` (428).
    pub require_if_match: bool,
    /// Largest accepted upload (HTTP import), in bytes.
    pub max_upload_bytes: usize,
    /// Longest time a read may take to produce its response head (writes are not cut
    /// off from outside: a write either commits and says so, or rolls back).
    pub request_timeout: std::time::Duration,
    /// Longest an HTTP import may run before it stops and rolls back.
    pub import_timeout: std::time::Duration,
    /// Origins CORS allows (`*`: any).
    pub cors_origins: Vec<String>,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Most connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Longest a client may take to send its request headers.
    pub header_timeout: std::time::Duration,
    /// A separate address serving `/metrics` without a token (e.g. loopback for
    /// Prometheus); on the main address `/metrics` needs an admin token.
    pub metrics_bind: Option<SocketAddr>,
}

/// Imports that may be uploaded at the same time (each streams to a temporary file).
const UPLOADS: usize = 2;

/// Shared state of all handlers.
pub struct AppState {
    /// Settings.
    pub config: ServerConfig,
    /// The layers, kept in step with the store.
    pub live: Arc<Live>,
    /// Rendered tiles.
    pub cache: TileCache,
    /// Tiles being rendered: concurrent misses of one tile wait for one render.
    pub inflight: Mutex<HashMap<CacheKey, Arc<tokio::sync::OnceCell<Arc<CachedTile>>>>>,
    /// Bounds concurrent tile renders so a burst of low-zoom requests cannot exhaust memory.
    pub render_slots: Arc<tokio::sync::Semaphore>,
    /// Tile encoding settings.
    pub tile_options: TileOptions,
    /// Label glyphs.
    pub glyphs: crate::glyphs::Glyphs,
    /// Access tokens by hash (reloaded when the store changes).
    tokens: RwLock<Arc<crate::auth::TokenTable>>,
    /// The one write connection, opened on the first write.
    pub writer: Mutex<Option<crate::store::Store>>,
    /// The write connection to a PostGIS store, opened on the first edit.
    pub pg_writer: Mutex<Option<crate::pg::PgStore>>,
    /// `/ready`'s connection to a PostGIS store.
    pub pg_probe: PgProbe,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// Set on SIGTERM: running writes stop and roll back.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Imports being uploaded at once.
    pub upload_slots: Arc<tokio::sync::Semaphore>,
    /// GeoPackage downloads being built at once.
    pub download_slots: Arc<tokio::sync::Semaphore>,
    /// Records answers that show owner data.
    pub access_log: audit::AccessLog,
    /// Tile archives by name.
    pub archives: archives::Archives,
    /// The portal's settings.
    pub portal: crate::config::PortalSettings,
    /// Sprite sheets by (folder, pixel ratio), made on first request.
    pub sprites: crate::bounded::Cache<(String, u32), Arc<crate::sprites::Sheet>>,
    /// Archive tiles read recently, as stored, with their ETags.
    pub archive_tiles: archives::TileCache,
}

impl AppState {
    /// New state around the live catalog.
    pub fn new(
        config: ServerConfig,
        live: Arc<Live>,
        archives: archives::Archives,
        portal: crate::config::PortalSettings,
    ) -> Self {
        let tile_options = TileOptions::default();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AppState {
            glyphs: crate::glyphs::Glyphs::scan(&config.fonts),
            cache: TileCache::new(config.cache_bytes),
            access_log: audit::AccessLog::start(config.store.clone(), config.pg_schema.clone()),
            archives,
            portal,
            // Only folders of styles/ can be named: a handful of sheets at most.
            sprites: crate::bounded::cache(32, 1, |_, _| 1),
            archive_tiles: archives::tile_cache(),
            inflight: Mutex::new(HashMap::new()),
            config,
            live,
            render_slots: Arc::new(tokio::sync::Semaphore::new(cores * 2)),
            tile_options,
            tokens: RwLock::new(Arc::new(Default::default())),
            writer: Mutex::new(None),
            pg_writer: Mutex::new(None),
            pg_probe: PgProbe::default(),
            metrics: Default::default(),
            stopping: Default::default(),
            upload_slots: Arc::new(tokio::sync::Semaphore::new(UPLOADS)),
            download_slots: Arc::new(tokio::sync::Semaphore::new(download::GPKG_BUILDS)),
        }
    }

    /// The token table.
    pub fn tokens(&self) -> Arc<crate::auth::TokenTable> {
        match self.tokens.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the token table.
    pub fn set_tokens(&self, t: crate::auth::TokenTable) {
        let new = Arc::new(t);
        match self.tokens.write() {
            Ok(mut c) => *c = new,
            Err(p) => *p.into_inner() = new,
        }
    }

    /// The current catalog (cheap clone of an `Arc`).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.live.catalog()
    }

    /// The base URL links are built from, as `listen` decided it for this request from
    /// trusted sources (the public URL, a trusted proxy, the address connected to).
    pub fn base_url(&self, req: &axum::http::HeaderMap) -> String {
        if let Some(u) = &self.config.public_url {
            return u.trim_end_matches('/').to_string();
        }
        req.get(&listen::BASE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| format!("http://{}", self.config.bind))
    }
}

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics::metrics))
        .route("/", get(ogc::landing))
        .route("/conformance", get(ogc::conformance))
        .route("/api", get(ogc::api))
        .route("/collections", get(ogc::collections))
        .route("/archives", get(archives::list))
        .route(
            "/archives/{name}/tilejson.json",
            get(archives::tilejson_doc),
        )
        .route("/archives/{name}/tiles/{tms}", get(archives::tileset_doc))
        .route(
            "/archives/{name}/tiles/{tms}/{z}/{row}/{col}",
            get(archives::tile_ogc),
        )
        .route("/archives/{name}/{z}/{x}/{y}", get(archives::tile_xyz))
        .route("/crs/{id}", get(ogc::crs_definition))
        .route("/collections/{id}", get(ogc::collection))
        .route(
            "/collections/{id}/items/{fid}",
            get(ogc::feature)
                .put(edit::replace_or_patch)
                .patch(edit::replace_or_patch)
                .delete(edit::delete)
                .options(edit::options_item),
        )
        .route(
            "/collections/{id}/items",
            get(features::items)
                .post(edit::create)
                .options(edit::options_items),
        )
        .route("/collections/{id}/items/{fid}/history", get(edit::history))
        .route("/collections/{id}/import", post(edit::import))
        .route("/collections/{id}/rollback", post(edit::rollback))
        .route("/collections/{id}/undo", post(edit::undo))
        .route("/collections/{id}/changes", get(edit::changes))
        .route("/collections/{id}/queryables", get(ogc::queryables))
        .route("/collections/{id}/sortables", get(ogc::sortables))
        .route("/assets/maplibre-gl/{file}", get(assets::maplibre))
        .route("/tileMatrixSets", get(tilesets::matrix_sets))
        .route("/tileMatrixSets/{tms}", get(tilesets::matrix_set))
        .route("/tiles", get(tilesets::dataset_list))
        .route("/tiles/{tms}", get(tilesets::dataset_tileset))
        .route("/collections/{id}/tiles", get(tilesets::collection_list))
        .route(
            "/collections/{id}/tiles/{tms}",
            get(tilesets::collection_tileset),
        )
        .route("/styles", get(portal::styles))
        .route("/styles/{id}", get(portal::style))
        .route("/sprites/{file}", get(portal::sprite))
        .route("/fonts", get(portal::fonts))
        .route("/fonts/{fontstack}/{range}", get(portal::glyphs))
        .route("/map", get(portal::map_page))
        .route("/manage", get(portal::manage_page))
        .route("/manage/{file}", get(portal::manage_file))
        .route("/me", get(access::me))
        .route("/map/{file}", get(portal::map_file))
        .route(
            "/collections/{id}/tiles/{tms}/tilejson.json",
            get(tiles::collection_tilejson),
        )
        .route(
            "/collections/{id}/tiles/{tms}/{z}/{y}/{x}",
            get(tiles::collection_tile),
        )
        .route("/tiles/{tms}/tilejson.json", get(tiles::dataset_tilejson))
        .route("/tiles/{tms}/{z}/{y}/{x}", get(tiles::dataset_tile))
        .route(
            "/collections/{id}/xyz/{z}/{x}/{y}",
            get(tiles::collection_tile_xyz),
        )
        .route("/xyz/{z}/{x}/{y}", get(tiles::dataset_tile_xyz))
        .layer(axum::middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

/// A JSON body with its media type.
pub fn json_body(body: &serde_json::Value, media: &'static str) -> Response {
    let mut r = axum::response::IntoResponse::into_response(body.to_string());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    r
}

/// What every request passes through, as one middleware (one boxed future per request,
/// not three; measured on the cached-tile path): CORS and caching headers around the
/// metrics and time limit around the token gate.
async fn front(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let authorized = req.headers().contains_key(header::AUTHORIZATION);
    let mut res = metrics::track(&state, req, next).await;
    cors(&state, origin, authorized, &mut res);
    res
}

/// CORS: the portal widgets on the municipalities' sites read from here; by default any
/// origin may, or only the configured ones.
pub(crate) fn cors(
    state: &AppState,
    origin: Option<HeaderValue>,
    authorized: bool,
    res: &mut Response,
) {
    let allowed = &state.config.cors_origins;
    let h = res.headers_mut();
    // What a caller gets depends on its token: shared caches must key on it, and must
    // not keep an answer to a caller with a token at all.
    h.append(header::VARY, HeaderValue::from_static("Authorization"));
    if authorized {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    if !state.config.trusted_proxies.is_empty() {
        h.append(
            header::VARY,
            HeaderValue::from_static("Forwarded, X-Forwarded-Host, X-Forwarded-Proto"),
        );
    }
    if allowed.iter().any(|o| o == "*") {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(o) = origin
            && allowed.iter().any(|a| o.as_bytes() == a.as_bytes())
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        }
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag, Content-Crs, Location"),
    );
}

/// Liveness: nothing about the data (counts would tell anonymous callers about
/// restricted layers); `/metrics` has the figures.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Whether a PostGIS store answers, asked on one kept connection at most once a second:
/// however often `/ready` is called, it opens no more connections to the database.
#[derive(Default)]
pub struct PgProbe {
    conn: Mutex<Option<crate::pg::PgStore>>,
    last: Mutex<Option<(std::time::Instant, Result<(), String>)>>,
}

impl PgProbe {
    /// The store's answer, fresh or from the last second.
    fn check(&self, url: &str, schema: &str) -> Result<(), String> {
        let recent = |last: &Option<(std::time::Instant, Result<(), String>)>| {
            last.as_ref()
                .filter(|(at, _)| at.elapsed() < std::time::Duration::from_secs(1))
                .map(|(_, r)| r.clone())
        };
        if let Some(r) = self.last.lock().ok().and_then(|l| recent(&l)) {
            return r;
        }
        // One probe at a time; the others answer with the last result.
        let Ok(mut conn) = self.conn.try_lock() else {
            return self
                .last
                .lock()
                .ok()
                .and_then(|l| l.as_ref().map(|(_, r)| r.clone()))
                .unwrap_or(Ok(()));
        };
        if conn.as_mut().is_some_and(|c| {
            c.client()
                .is_valid(std::time::Duration::from_secs(2))
                .is_err()
        }) {
            *conn = None;
        }
        let r = match conn.as_ref() {
            Some(_) => Ok(()),
            None => crate::pg::PgStore::connect(url, schema)
                .map(|c| *conn = Some(c))
                .map_err(|e| e.to_string()),
        };
        if let Ok(mut l) = self.last.lock() {
            *l = Some((std::time::Instant::now(), r.clone()));
        }
        r
    }
}

/// Readiness: the indexes are loaded (the server listens only after) and the store can
/// still be opened.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let st = state.clone();
    let ok = tokio::task::spawn_blocking(move || match &st.config.pg_schema {
        Some(schema) => st
            .pg_probe
            .check(&st.config.store.to_string_lossy(), schema),
        None => crate::store::Store::open_read_only(&st.config.store)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    match ok {
        Ok(()) => json_body(&serde_json::json!({"status": "ready"}), "application/json"),
        Err(e) => {
            // The reason names server paths: it goes to the log, not to the caller.
            tracing::error!(error = %e, "not ready: the store cannot be opened");
            problem::Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the store cannot be opened; the server log says why",
            )
            .into_response()
        }
    }
}
