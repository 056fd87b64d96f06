//! Tile archives over HTTP: `/archives`, each archive's TileJSON and OGC API Tiles
//! tileset, and its tiles by z/x/y, sent in the archive's own compression.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::problem::Problem;
use super::tiles::{accepts_encoding, not_modified};
use super::{AppState, json_body};
use crate::archives::live::{LiveArchive, Opened};
use crate::archives::{ArchiveInfo, Encoding};
use crate::tiles::grid::WEB_MERCATOR_QUAD;

/// Archives kept at most, by name.
pub type Archives = std::collections::BTreeMap<String, Arc<LiveArchive>>;

/// A tile as read from an archive file: its bytes as stored and its strong ETag.
pub struct StoredTile {
    data: Bytes,
    etag: HeaderValue,
}

/// Recently read archive tiles by (archive, file generation, z, x, y): a hit costs no
/// read, allocation or hash. A replaced file has a new generation, so its tiles are new
/// keys and the old ones are only evicted.
pub type TileCache = crate::bounded::Cache<(usize, u64, u8, u32, u32), Arc<StoredTile>>;

/// Memory the archive tile cache may use.
const TILE_CACHE_BYTES: u64 = 64 << 20;

/// An empty archive tile cache, bounded by the bytes it holds.
pub fn tile_cache() -> TileCache {
    crate::bounded::cache(TILE_CACHE_BYTES, 16 * 1024, |_, t| t.data.len() as u64 + 64)
}

fn find<'a>(state: &'a AppState, name: &str) -> Result<&'a Arc<LiveArchive>, Problem> {
    state.archives.get(name).ok_or_else(|| {
        Problem::not_found(format!(
            "there is no tile archive '{}'; /archives lists them",
            super::problem::clip(name)
        ))
    })
}

/// Runs `f` on the archive as its file is now; a 503 saying which file to fix when it
/// cannot be opened.
fn with_open<R>(
    a: &LiveArchive,
    f: impl FnOnce(&Opened) -> Result<R, Problem>,
) -> Result<R, Problem> {
    let cur = a
        .get()
        .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    match &*cur {
        Ok(o) => f(o),
        Err(e) => Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.clone())),
    }
}

/// The archive's TileJSON 3.0.0.
fn tilejson(base: &str, name: &str, info: &ArchiveInfo, attribution: Option<&str>) -> Json {
    let mut v = json!({
        "tilejson": "3.0.0",
        "name": info.title.clone().unwrap_or_else(|| name.to_string()),
        "tiles": [format!("{base}/archives/{name}/{{z}}/{{x}}/{{y}}")],
        "scheme": "xyz",
        "minzoom": info.minzoom,
        "maxzoom": info.maxzoom,
    });
    if let Some(b) = info.bounds {
        v["bounds"] = json!(b);
    }
    if let Some(c) = info.center {
        v["center"] = json!(c);
    }
    if let Some(d) = &info.description {
        v["description"] = json!(d);
    }
    if let Some(a) = attribution {
        v["attribution"] = json!(a);
    }
    if info.format.is_vector() {
        v["vector_layers"] = info.vector_layers.clone().unwrap_or_else(|| json!([]));
    }
    v
}

/// `GET /archives`: the configured archives.
pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let b = state.base_url(&headers);
    let items: Vec<Json> = state
        .archives
        .values()
        .map(|a| {
            let format = match &*a.get().unwrap_or_else(|_| Arc::new(Err(String::new()))) {
                Ok(o) => json!(o.archive.info().format.extension()),
                Err(_) => Json::Null,
            };
            json!({
                "name": a.name,
                "format": format,
                "links": [
                    {"rel": "describedby", "type": "application/json", "title": "TileJSON",
                     "href": format!("{b}/archives/{}/tilejson.json", a.name)},
                    {"rel": "self", "type": "application/json", "title": "Tileset",
                     "href": format!("{b}/archives/{}/tiles/WebMercatorQuad", a.name)},
                ],
            })
        })
        .collect();
    json_body(&json!({"archives": items}), "application/json")
}

/// `GET /archives/{name}/tilejson.json`.
pub async fn tilejson_doc(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let a = find(&state, &name)?;
    let b = state.base_url(&headers);
    let doc = with_open(a, |o| {
        let info = o.archive.info();
        Ok(tilejson(&b, &name, info, a.attribution(info)))
    })?;
    Ok(json_body(&doc, "application/json"))
}

/// The OGC API Tiles tileset of an archive.
pub fn tileset(base: &str, name: &str, info: &ArchiveInfo, attribution: Option<&str>) -> Json {
    let media = info.format.content_type();
    let mut v = json!({
        "title": info.title.clone().unwrap_or_else(|| name.to_string()),
        "dataType": if info.format.is_vector() { "vector" } else { "map" },
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": WEB_MERCATOR_QUAD,
        "links": [
            {"rel": "self", "type": "application/json", "title": "This tileset",
             "href": format!("{base}/archives/{name}/tiles/WebMercatorQuad")},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", "type": "application/json",
             "title": "WebMercatorQuad", "href": format!("{base}/tileMatrixSets/WebMercatorQuad")},
            {"rel": "item", "type": media, "templated": true, "title": "Tiles",
             "href": format!("{base}/archives/{name}/tiles/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/{{tileCol}}")},
            {"rel": "describedby", "type": "application/json", "title": "TileJSON",
             "href": format!("{base}/archives/{name}/tilejson.json")},
        ],
    });
    if let Some(e) = info.bounds {
        v["boundingBox"] = json!({"lowerLeft": [e[0], e[1]], "upperRight": [e[2], e[3]],
                                  "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"});
    }
    if let Some(a) = attribution {
        v["attribution"] = json!(a);
    }
    v
}

/// The tilesets of every archive that opens (for `/tiles`).
pub fn tilesets(state: &AppState, base: &str) -> Vec<Json> {
    state
        .archives
        .values()
        .filter_map(|a| {
            let cur = a.get().ok()?;
            let o = cur.as_ref().as_ref().ok()?;
            Some(tileset(
                base,
                &a.name,
                o.archive.info(),
                a.attribution(o.archive.info()),
            ))
        })
        .collect()
}

/// `GET /archives/{name}/tiles/WebMercatorQuad`.
pub async fn tileset_doc(
    State(state): State<Arc<AppState>>,
    Path((name, tms)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check_tms(&tms)?;
    let a = find(&state, &name)?;
    let b = state.base_url(&headers);
    let doc = with_open(a, |o| {
        let info = o.archive.info();
        Ok(tileset(&b, &name, info, a.attribution(info)))
    })?;
    Ok(json_body(&doc, "application/json"))
}

fn check_tms(tms: &str) -> Result<(), Problem> {
    if tms == "WebMercatorQuad" {
        Ok(())
    } else {
        Err(Problem::not_found(format!(
            "tile matrix set '{}' is not offered; use WebMercatorQuad",
            super::problem::clip(tms)
        )))
    }
}

fn number(what: &str, v: &str) -> Result<u32, Problem> {
    let v = v.split('.').next().unwrap_or(v);
    v.parse::<u32>().map_err(|_| {
        Problem::bad_request(format!(
            "{what} '{}' is not a whole number ≥ 0",
            super::problem::clip(v)
        ))
    })
}

/// `GET /archives/{name}/{z}/{x}/{y}` (an extension after y is allowed).
pub async fn tile_xyz(
    State(state): State<Arc<AppState>>,
    Path((name, z, x, y)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    tile_at(&state, &name, &z, &x, &y, &headers)
}

/// The tile at `{z}/{x}/{y}` as written in the path (for the router and the hot path).
pub fn tile_at(
    state: &AppState,
    name: &str,
    z: &str,
    x: &str,
    y: &str,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let (z, x, y) = (number("z", z)?, number("x", x)?, number("y", y)?);
    tile(state, name, z, x, y, headers)
}

/// `GET /archives/{name}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}`.
pub async fn tile_ogc(
    State(state): State<Arc<AppState>>,
    Path((name, tms, z, row, col)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check_tms(&tms)?;
    let (z, y, x) = (
        number("tileMatrix", &z)?,
        number("tileRow", &row)?,
        number("tileCol", &col)?,
    );
    tile(&state, &name, z, x, y, &headers)
}

fn tile(
    state: &AppState,
    name: &str,
    z: u32,
    x: u32,
    y: u32,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let a = find(state, name)?;
    if z > 30 || u64::from(x) >= 1u64 << z || u64::from(y) >= 1u64 << z {
        return Err(Problem::not_found(format!(
            "tile {z}/{x}/{y} is outside the tile matrix"
        )));
    }
    with_open(a, |o| {
        let info = o.archive.info();
        let key = (Arc::as_ptr(a) as usize, o.generation, z as u8, x, y);
        let stored = match state.archive_tiles.get(&key) {
            Some(t) => t,
            None => {
                let data = o
                    .archive
                    .tile(z as u8, x, y)
                    .map_err(|e| Problem::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
                let Some(data) = data else {
                    return Ok(if (info.minzoom..=info.maxzoom).contains(&(z as u8)) {
                        StatusCode::NO_CONTENT.into_response()
                    } else {
                        Problem::not_found(format!(
                            "archive '{name}' has zooms {}–{}",
                            info.minzoom, info.maxzoom
                        ))
                        .into_response()
                    });
                };
                // Strong validator of this file's bytes: the generation changes with every file.
                let etag = format!(
                    "\"a{:x}-{:016x}\"",
                    o.generation,
                    twox_hash::XxHash3_64::oneshot(&data)
                );
                let t = Arc::new(StoredTile {
                    data,
                    etag: HeaderValue::from_str(&etag)
                        .map_err(|e| Problem::internal(e.to_string()))?,
                });
                state.archive_tiles.insert(key, t.clone());
                t
            }
        };
        let mut res = if not_modified(headers, &stored.etag) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            body(info.encoding, stored.data.clone(), headers)?
        };
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(info.format.content_type()),
        );
        h.insert(header::ETAG, stored.etag.clone());
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, no-cache"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        Ok(res)
    })
}

/// The stored bytes as they are when the client takes their coding; decoded for the
/// rare client that does not (never re-encoded).
fn body(encoding: Encoding, data: Bytes, headers: &HeaderMap) -> Result<Response, Problem> {
    let Some(token) = encoding.token() else {
        return Ok(Body::from(data).into_response());
    };
    if accepts_encoding(headers, token) {
        let mut r = Body::from(data).into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
        return Ok(r);
    }
    let mut out = Vec::new();
    let decoded = match encoding {
        Encoding::Gzip => flate2::read::MultiGzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map(|_| ()),
        Encoding::Brotli => brotli::Decompressor::new(&data[..], 4096)
            .read_to_end(&mut out)
            .map(|_| ()),
        _ => {
            return Err(Problem::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("these tiles are stored {token}-compressed; send Accept-Encoding: {token}"),
            ));
        }
    };
    decoded.map_err(|e| {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            format!("a stored tile cannot be decoded: {e}"),
        )
    })?;
    Ok(Body::from(out).into_response())
}
