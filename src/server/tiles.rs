//! Vector tile endpoints (OGC API Tiles paths) and TileJSON.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::problem::Problem;
use crate::audience::{Audience, Scope};
use crate::catalog::{Catalog, Snapshot};
use crate::index::Layer;
use crate::tiles::cache::{CacheKey, CachedTile};
use crate::tiles::{self, LayerRules, Prepared, TileId};

/// From this zoom on a tile costs well under a millisecond to render (small area, the
/// index finds only what crosses it), so it is rendered on the request's own worker;
/// handing it to the blocking pool would cost more than the work. Lower zooms go to the
/// bounded pool.
const INLINE_FROM_ZOOM: u8 = 14;

/// Media type of Mapbox Vector Tiles.
pub const MVT: &str = "application/vnd.mapbox-vector-tile";

/// The last path segment without a tile extension (GDAL's /vsicurl needs one to see a file).
fn strip_ext(s: &str) -> &str {
    s.trim_end_matches(".pbf").trim_end_matches(".mvt")
}

fn parse_tile(z: &str, y: &str, x: &str) -> Result<TileId, Problem> {
    let x = strip_ext(x);
    let num = |name: &str, v: &str| {
        v.parse::<u32>().map_err(|_| {
            Problem::bad_request(format!("{name} '{v}' is not a whole number ≥ 0 (path: .../{{tileMatrix}}/{{tileRow}}/{{tileCol}})"))
        })
    };
    let (z, y, x) = (
        num("tileMatrix (zoom)", z)?,
        num("tileRow", y)?,
        num("tileCol", x)?,
    );
    TileId::new(z, x, y).ok_or_else(|| {
        Problem::not_found(format!("tile {z}/{y}/{x} is outside the WebMercatorQuad tile matrix (zoom 0-{}, row and column below 2^zoom)", tiles::grid::MAX_ZOOM))
    })
}

fn check_tms(tms: &str) -> Result<(), Problem> {
    if tms == "WebMercatorQuad" {
        Ok(())
    } else {
        Err(Problem::not_found(format!(
            "tile matrix set '{tms}' is not offered; use WebMercatorQuad"
        )))
    }
}

/// `GET /collections/{id}/tiles/{tms}/{z}/{y}/{x}`.
pub async fn collection_tile(
    State(state): State<Arc<AppState>>,
    Path((id, tms, z, y, x)): Path<(String, String, String, String, String)>,
    req: Request,
) -> Result<Response, Problem> {
    // The request is taken whole (not its headers cloned); its body is not needed.
    let (parts, _) = req.into_parts();
    collection_tile_at(&state, [&id, &tms, &z, &y, &x], &parts).await
}

/// The tile of collection `id` at `{tms}/{z}/{y}/{x}` as written in the path (for the
/// router and the hot path).
pub async fn collection_tile_at(
    state: &Arc<AppState>,
    [id, tms, z, y, x]: [&str; 5],
    parts: &axum::http::request::Parts,
) -> Result<Response, Problem> {
    check_tms(tms)?;
    let tile = parse_tile(z, y, x)?;
    let (who, layer) = super::access::tiled(state, &parts.headers, id)?;
    let cat = state.catalog();
    tile_response(state, cat, layer.key.clone(), tile, who, parts).await
}

/// `GET /collections/{id}/xyz/{z}/{x}/{y}.pbf`: the same tile in XYZ order, for tools
/// (GDAL's MVT driver) that read z/x/y from the path.
pub async fn collection_tile_xyz(
    state: State<Arc<AppState>>,
    Path((id, z, x, y)): Path<(String, String, String, String)>,
    req: Request,
) -> Result<Response, Problem> {
    let y = strip_ext(&y).to_string();
    collection_tile(state, Path((id, "WebMercatorQuad".into(), z, y, x)), req).await
}

/// `GET /xyz/{z}/{x}/{y}.pbf`: all layers in XYZ order.
pub async fn dataset_tile_xyz(
    state: State<Arc<AppState>>,
    Path((z, x, y)): Path<(String, String, String)>,
    q: Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, Problem> {
    let y = strip_ext(&y).to_string();
    dataset_tile(state, Path(("WebMercatorQuad".into(), z, y, x)), q, req).await
}

/// `GET /tiles/{tms}/{z}/{y}/{x}?collections=a,b`.
pub async fn dataset_tile(
    State(state): State<Arc<AppState>>,
    Path((tms, z, y, x)): Path<(String, String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, Problem> {
    check_tms(&tms)?;
    let tile = parse_tile(&z, &y, &x)?;
    let (parts, _) = req.into_parts();
    let cat = state.catalog();
    let who = super::access::caller(&state, &parts.headers)?;
    let layers = selected_layers(&state, &cat, &q, &who)?;
    tile_response(&state, cat, layers, tile, who, &parts).await
}

/// The layers of a dataset tile, canonical: all the caller may read, or the named ones
/// (each known and readable), without repeats, in store order — so a tile is one MVT
/// layer per collection and `a,b`, `b,a` and `a,a,b` are one cache entry.
fn selected_layers(
    state: &AppState,
    cat: &Catalog,
    q: &HashMap<String, String>,
    who: &crate::auth::Caller,
) -> Result<Arc<[String]>, Problem> {
    if let Some(k) = q
        .keys()
        .find(|k| k.as_str() != "collections" && k.as_str() != "f")
    {
        return Err(Problem::bad_request(format!(
            "unknown query parameter '{}'; tiles accept 'collections'",
            super::problem::clip(k)
        )));
    }
    let Some(list) = q.get("collections") else {
        return Ok(cat
            .layers
            .iter()
            .filter(|l| who.can_read(&l.def.table, &l.meta) && l.def.has_geometry())
            .map(|l| l.def.table.clone())
            .collect());
    };
    let mut wanted = vec![false; cat.layers.len()];
    for n in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(i) = cat.position(n) else {
            return Err(Problem::bad_request(format!(
                "collections: there is no collection '{}'; /collections lists them",
                super::problem::clip(n)
            )));
        };
        if !super::access::readable(state, who, n)?.def.has_geometry() {
            return Err(Problem::bad_request(format!(
                "collections: '{}' is a table without geometry and has no tiles",
                super::problem::clip(n)
            )));
        }
        wanted[i] = true;
    }
    if !wanted.contains(&true) {
        return Err(Problem::bad_request(
            "collections is empty; name one or more collections, separated by commas",
        ));
    }
    Ok(cat
        .layers
        .iter()
        .zip(wanted)
        .filter(|(_, w)| *w)
        .map(|(l, _)| l.def.table.clone())
        .collect())
}

async fn tile_response(
    state: &Arc<AppState>,
    cat: Arc<Catalog>,
    layers: Arc<[String]>,
    tile: TileId,
    who: crate::auth::Caller,
    req: &axum::http::request::Parts,
) -> Result<Response, Problem> {
    let (headers, uri) = (&req.headers, &req.uri);
    // Only a token can see internal properties: anonymous tiles skip the audiences.
    let audiences: Vec<Option<Audience>> = match who {
        crate::auth::Caller::Anonymous => Vec::new(),
        _ => layers
            .iter()
            .map(|n| {
                cat.get(n).and_then(|s| {
                    let a = super::access::audience(&who, &s.layer);
                    (a.scope != Scope::Public && a.has_internal()).then_some(a)
                })
            })
            .collect(),
    };
    if audiences.iter().any(Option::is_some) {
        let request = super::audit::request_line("GET", uri.path(), uri.query());
        let personal = Personal {
            audiences,
            who: &who,
            request,
        };
        return personal_tile(state, cat, layers, personal, tile, headers).await;
    }
    let key = CacheKey { layers, tile };
    if let Some(t) = state.cache.get(&key) {
        if fresh(state, &cat, &key, &t) {
            state.metrics.cache_lookup(true);
            return Ok(respond(&t, headers, true));
        }
        state.cache.remove(&key);
    }
    state.metrics.cache_lookup(false);
    let t = render_once(state, &cat, &key).await?;
    Ok(respond(&t, headers, false))
}

/// Who a personal tile is for: the audience per layer, the caller and the request.
struct Personal<'a> {
    audiences: Vec<Option<Audience>>,
    who: &'a crate::auth::Caller,
    request: String,
}

/// A tile with owner data the caller may see: rendered for this caller alone, never
/// cached, and recorded in the access log before it goes out.
async fn personal_tile(
    state: &Arc<AppState>,
    cat: Arc<Catalog>,
    layers: Arc<[String]>,
    personal: Personal<'_>,
    tile: TileId,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let Personal {
        audiences,
        who,
        request,
    } = personal;
    let opts = state.tile_options;
    let permit = state
        .render_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| Problem::internal(e.to_string()))?;
    let names = layers.clone();
    let (t, exposed) = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let snaps: Vec<&Arc<Snapshot>> = names.iter().filter_map(|n| cat.get(n)).collect();
        let preps: Vec<Prepared> = snaps
            .iter()
            .zip(audiences)
            .map(|(s, a)| match a {
                Some(a) => s.tiles.for_audience(&s.layer, a),
                None => s
                    .tiles
                    .for_audience(&s.layer, Audience::public(&s.layer.def, &s.layer.meta)),
            })
            .collect();
        let refs: Vec<(&Layer, &Prepared)> = snaps
            .iter()
            .zip(&preps)
            .map(|(s, p)| (&s.layer, p))
            .collect();
        let generations: Vec<u64> = snaps.iter().map(|s| s.generation).collect();
        let (bytes, exposed) = tiles::render_exposing(&refs, tile, opts);
        let exposed: Vec<(String, i64)> = exposed
            .into_iter()
            .map(|(li, fid)| (snaps[li].layer.def.table.clone(), fid))
            .collect();
        (CachedTile::new(bytes, &generations), exposed)
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?;
    for name in layers.iter() {
        let fids: Vec<i64> = exposed
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| *f)
            .collect();
        state
            .access_log
            .record(who, name, fids, request.clone())
            .await?;
    }
    Ok(respond(&t, headers, false))
}

/// Whether a cached tile shows what `cat` holds: no layer of it changed under the tile
/// since the generation it was rendered (or last confirmed) at.
fn fresh(state: &AppState, cat: &Catalog, key: &CacheKey, t: &CachedTile) -> bool {
    let bounds = key
        .tile
        .buffered_bounds(state.tile_options.buffer, state.tile_options.extent);
    key.layers.iter().enumerate().all(|(i, name)| {
        let Some(l) = cat.get(name) else {
            return false;
        };
        let had = t.generation(i);
        if had >= l.generation {
            return true;
        }
        if state.live.changed(name, had, l.generation, bounds) {
            return false;
        }
        t.confirm(i, l.generation);
        true
    })
}

/// Removes a finished render from the in-flight map, also when the request is dropped.
struct Landed<'a> {
    state: &'a AppState,
    key: &'a CacheKey,
    cell: Arc<tokio::sync::OnceCell<Arc<CachedTile>>>,
}

impl Drop for Landed<'_> {
    fn drop(&mut self) {
        let mut m = self
            .state
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if m.get(self.key).is_some_and(|c| Arc::ptr_eq(c, &self.cell)) {
            m.remove(self.key);
        }
    }
}

/// Renders a tile once for all concurrent requests of it, and caches it.
async fn render_once(
    state: &Arc<AppState>,
    cat: &Arc<Catalog>,
    key: &CacheKey,
) -> Result<Arc<CachedTile>, Problem> {
    let cell = state
        .inflight
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.clone())
        .or_default()
        .clone();
    let landed = Landed {
        state,
        key,
        cell: cell.clone(),
    };
    let t = cell
        .get_or_try_init(|| render(state, cat.clone(), key.clone()))
        .await?
        .clone();
    drop(landed);
    // Another request's render may come from an older catalog than this request's.
    if fresh(state, cat, key, &t) {
        return Ok(t);
    }
    render(state, cat.clone(), key.clone()).await
}

async fn render(
    state: &Arc<AppState>,
    cat: Arc<Catalog>,
    key: CacheKey,
) -> Result<Arc<CachedTile>, Problem> {
    let started = std::time::Instant::now();
    let opts = state.tile_options;
    let tile = key.tile;
    let t = if tile.z >= INLINE_FROM_ZOOM {
        render_tile(&cat, &key.layers, tile, opts)
    } else {
        let permit = state
            .render_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Problem::internal(e.to_string()))?;
        let names = key.layers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            render_tile(&cat, &names, tile, opts)
        })
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
    };
    state.metrics.tile_rendered(tile.z, started.elapsed());
    let t = Arc::new(t);
    state.cache.put(key, t.clone());
    Ok(t)
}

/// Renders one tile of the named layers of a catalog (used by the server and by tile
/// export), stamped with each layer's generation.
pub fn render_tile(
    cat: &Catalog,
    names: &[String],
    tile: TileId,
    opts: tiles::TileOptions,
) -> CachedTile {
    let snaps: Vec<&Arc<Snapshot>> = names.iter().filter_map(|n| cat.get(n)).collect();
    let refs: Vec<(&Layer, &Prepared)> = snaps.iter().map(|s| (&s.layer, &s.tiles)).collect();
    let generations: Vec<u64> = snaps.iter().map(|s| s.generation).collect();
    CachedTile::new(tiles::render(&refs, tile, opts), &generations)
}

fn respond(t: &CachedTile, headers: &HeaderMap, hit: bool) -> Response {
    let mut res = if t.raw.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else if not_modified(headers, &t.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let accepts = |coding: &str| accepts_encoding(headers, coding);
        let range = headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| byte_range(v, t.raw.len()));
        let mut r = if let Some((from, to)) = range {
            // GDAL's /vsicurl reads in ranges; answer them from the uncompressed tile.
            let mut r = (StatusCode::PARTIAL_CONTENT, t.raw.slice(from..=to)).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {from}-{to}/{}", t.raw.len())) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        } else if accepts("br") {
            let mut r = t.br().clone().into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            r
        } else if accepts("gzip") {
            let mut r = t.gzip().clone().into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        } else {
            t.raw.clone().into_response()
        };
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(MVT));
        r
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, t.etag.clone());
    // Clients may keep tiles but must revalidate: data changes show on the next request.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, no-cache"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        "x-nordgeo-cache",
        HeaderValue::from_static(if hit { "hit" } else { "miss" }),
    );
    res
}

/// Whether `If-None-Match` names this strong ETag (or `*`): the client's copy is current.
pub fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.trim().as_bytes() == etag.as_bytes() || e.trim() == "*")
        })
}

/// Whether `Accept-Encoding` accepts a coding ("gzip;q=0" means "not gzip").
pub fn accepts_encoding(headers: &HeaderMap, coding: &str) -> bool {
    let header = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    header.split(',').any(|e| {
        let mut parts = e.split(';');
        let name_ok = parts
            .next()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case(coding));
        let q = parts
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        name_ok && q > 0.0
    })
}

/// A single `bytes=a-b` range (or `a-`, `-n`) within `len`, inclusive bounds.
fn byte_range(v: &str, len: usize) -> Option<(usize, usize)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (from, to) = match (a.trim(), b.trim()) {
        ("", n) => (len.saturating_sub(n.parse().ok()?), len - 1),
        (a, "") => (a.parse().ok()?, len - 1),
        (a, b) => (a.parse().ok()?, b.parse::<usize>().ok()?.min(len - 1)),
    };
    (from <= to && from < len).then_some((from, to))
}

fn tilejson(
    base: &str,
    layers: &[&Arc<Snapshot>],
    tiles_url: String,
    name: &str,
) -> serde_json::Value {
    let rules: Vec<&LayerRules> = layers.iter().map(|l| &l.tiles.rules).collect();
    let mut bounds: Option<[f64; 4]> = None;
    for l in layers {
        if let Some(b) = l.extent_lonlat {
            crate::geom::bbox_union(&mut bounds, b);
        }
    }
    let b = bounds.unwrap_or([-180.0, -85.051_128_78, 180.0, 85.051_128_78]);
    let minzoom = rules.iter().map(|r| r.min_zoom).min().unwrap_or(0);
    let maxzoom = rules.iter().map(|r| r.max_zoom).max().unwrap_or(16);
    let attribution: Vec<String> = layers
        .iter()
        .filter_map(|l| l.meta.attribution.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let vector_layers: Vec<_> = layers
        .iter()
        .zip(&rules)
        .map(|(l, r)| {
            let fields: serde_json::Map<String, serde_json::Value> = r
                .properties
                .iter()
                .map(|(i, n, _)| {
                    (
                        n.clone(),
                        json!(tiles::field_type(l.def.columns[*i].class())),
                    )
                })
                .collect();
            json!({
                "id": r.name,
                "description": l.meta.title.clone().unwrap_or_else(|| r.name.clone()),
                "minzoom": r.min_zoom,
                "maxzoom": r.max_zoom,
                "fields": fields,
            })
        })
        .collect();
    json!({
        "tilejson": "3.0.0",
        "name": name,
        "scheme": "xyz",
        "tiles": [tiles_url],
        "vector_layers": vector_layers,
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": b,
        "center": [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, (minzoom.max(10)).min(maxzoom)],
        "attribution": attribution.join("; "),
        "links": [{"rel": "self", "href": format!("{base}/tiles/WebMercatorQuad/tilejson.json")}],
    })
}

/// `GET /tiles/{tms}/tilejson.json`.
pub async fn dataset_tilejson(
    State(state): State<Arc<AppState>>,
    Path(tms): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check_tms(&tms)?;
    let base = state.base_url(&headers);
    let cat = state.catalog();
    let who = super::access::caller(&state, &headers)?;
    let names = selected_layers(&state, &cat, &q, &who)?;
    let layers: Vec<&Arc<Snapshot>> = names.iter().filter_map(|n| cat.get(n)).collect();
    let query = q
        .get("collections")
        .map(|c| format!("?collections={c}"))
        .unwrap_or_default();
    let url = format!("{base}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}{query}");
    Ok(super::json_body(
        &tilejson(&base, &layers, url, "nordgeo"),
        "application/json",
    ))
}

/// `GET /collections/{id}/tiles/{tms}/tilejson.json`.
pub async fn collection_tilejson(
    State(state): State<Arc<AppState>>,
    Path((id, tms)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check_tms(&tms)?;
    let base = state.base_url(&headers);
    let (_, layer) = super::access::tiled(&state, &headers, &id)?;
    let url = format!("{base}/collections/{id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}");
    Ok(super::json_body(
        &tilejson(&base, &[&layer], url, &id),
        "application/json",
    ))
}
