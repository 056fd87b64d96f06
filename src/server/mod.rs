//! The HTTP server: axum router, shared state, absolute links.

pub mod access;
pub mod assets;
pub mod crs_out;
pub mod edit;
pub mod features;
pub mod geojson;
pub mod html;
pub mod metrics;
pub mod ogc;
pub mod params;
pub mod portal;
pub mod problem;
pub mod query;
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
    /// The store (edits and HTTP imports write to it).
    pub store: std::path::PathBuf,
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
}

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
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
}

impl AppState {
    /// New state around the live catalog.
    pub fn new(config: ServerConfig, live: Arc<Live>) -> Self {
        let tile_options = TileOptions::default();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AppState {
            glyphs: crate::glyphs::Glyphs::scan(&config.fonts),
            cache: TileCache::new(config.cache_bytes),
            inflight: Mutex::new(HashMap::new()),
            config,
            live,
            render_slots: Arc::new(tokio::sync::Semaphore::new(cores * 2)),
            tile_options,
            tokens: RwLock::new(Arc::new(Default::default())),
            writer: Mutex::new(None),
            metrics: Default::default(),
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

    /// The base URL links are built from: `--public-url`, else `Forwarded`/`X-Forwarded-*`,
    /// else the `Host` header.
    pub fn base_url(&self, req: &axum::http::HeaderMap) -> String {
        if let Some(u) = &self.config.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let h = |name: &str| {
            req.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut proto = h("x-forwarded-proto").unwrap_or_else(|| "http".into());
        let mut host = h("x-forwarded-host").or_else(|| h(header::HOST.as_str()));
        if let Some(fwd) = h("forwarded") {
            for part in fwd.split(',').next().unwrap_or("").split(';') {
                if let Some((k, v)) = part.trim().split_once('=') {
                    let v = v.trim_matches('"').to_string();
                    match k.trim().to_ascii_lowercase().as_str() {
                        "proto" => proto = v,
                        "host" => host = Some(v),
                        _ => {}
                    }
                }
            }
        }
        let host = host
            .filter(|h| {
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .unwrap_or_else(|| self.config.bind.to_string());
        let proto = if proto == "https" { "https" } else { "http" };
        format!("{proto}://{host}")
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
        .route("/fonts", get(portal::fonts))
        .route("/fonts/{fontstack}/{range}", get(portal::glyphs))
        .route("/map", get(portal::map_page))
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::gate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors))
        .with_state(state)
}

/// A JSON body with its media type.
pub fn json_body(body: &serde_json::Value, media: &'static str) -> Response {
    let mut r = axum::response::IntoResponse::into_response(body.to_string());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    r
}

/// CORS: the portal widgets on the municipalities' sites read from here; by default any
/// origin may, or only the configured ones.
async fn cors(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut res = next.run(req).await;
    let allowed = &state.config.cors_origins;
    let h = res.headers_mut();
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
    res
}

async fn health(State(state): State<Arc<AppState>>) -> axum::Json<serde_json::Value> {
    let cat = state.catalog();
    axum::Json(serde_json::json!({
        "status": "ok",
        "layers": cat.layers.len(),
        "features": cat.layers.iter().map(|l| l.len()).sum::<usize>(),
    }))
}

/// Readiness: the indexes are loaded (the server listens only after) and the store can
/// still be opened.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let path = state.config.store.clone();
    let ok =
        tokio::task::spawn_blocking(move || crate::store::Store::open_read_only(&path).map(|_| ()))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
    match ok {
        Ok(()) => json_body(
            &serde_json::json!({"status": "ready", "layers": state.catalog().layers.len()}),
            "application/json",
        ),
        Err(e) => problem::Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("the store cannot be opened: {e}"),
        )
        .into_response(),
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn serve(state: Arc<AppState>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(state.config.bind).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "nordgeo listening");
    // Tests and scripts read this line to find the port when binding to :0.
    println!("listening on http://{addr}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown())
        .await
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
