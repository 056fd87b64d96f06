//! Files served as they are: MapLibre GL JS from the npm install in `web/` (pinned in
//! web/package-lock.json), so no page of a municipality loads code from another host.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::Problem;

/// Content type by file name.
fn media_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Reads `dir/name`, refusing names that could leave `dir`.
pub async fn file(dir: std::path::PathBuf, name: &str) -> Result<Response, Problem> {
    let safe = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let missing = || {
        Problem::not_found(format!(
            "there is no file '{}' here",
            super::problem::clip(name)
        ))
    };
    if !safe {
        return Err(missing());
    }
    let path = dir.join(name);
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            missing()
        } else {
            Problem::internal(format!("cannot read {}: {e}", path.display()))
        }
    })?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(name)),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(r)
}

/// `GET /assets/maplibre-gl/{file}`.
pub async fn maplibre(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let dir = state.config.files.join("web/node_modules/maplibre-gl/dist");
    if !dir.is_dir() {
        return Err(Problem::not_found(format!(
            "MapLibre GL JS is not installed in {}; run scripts/setup.sh (it runs npm ci in web/)",
            dir.display()
        )));
    }
    file(dir, &name).await
}
