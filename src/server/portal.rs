//! What the citizens' portal loads besides tiles: MapLibre styles with this server's
//! URLs, label glyphs, and the embeddable map widget. All from nordgeo itself.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::AppState;
use super::assets;
use super::portal_style;
use super::problem::Problem;
use crate::glyphs::GlyphError;

/// Style files name this server as `nordgeo://`; it becomes the public base URL.
const PLACEHOLDER: &str = "nordgeo://";

fn styles_dir(state: &AppState) -> std::path::PathBuf {
    state.config.files.join("styles")
}

/// Replaces the placeholder in every string of a style.
fn rewrite(v: &mut Json, base: &str) {
    match v {
        Json::String(s) if s.contains(PLACEHOLDER) => {
            *s = s.replace(PLACEHOLDER, &format!("{base}/"))
        }
        Json::Array(a) => a.iter_mut().for_each(|x| rewrite(x, base)),
        Json::Object(o) => o.values_mut().for_each(|x| rewrite(x, base)),
        _ => {}
    }
}

fn read_style(state: &AppState, id: &str) -> Result<Json, Problem> {
    let ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let path = styles_dir(state).join(format!("{id}.json"));
    if !ok || !path.is_file() {
        return Err(Problem::not_found(format!(
            "there is no style '{id}'; /styles lists them"
        )));
    }
    read_json(&path)
}

/// A JSON file of the styles folder (errors name the file, never the folder).
fn read_json(path: &std::path::Path) -> Result<Json, Problem> {
    let name = crate::archives::file_name(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problem::internal(format!("cannot read {name}: {}", e.kind())))?;
    serde_json::from_str(&text)
        .map_err(|e| Problem::internal(format!("{name} is not valid JSON: {e}")))
}

fn json_response(v: &Json, cache: &'static str) -> Response {
    let mut r = v.to_string().into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// `GET /styles`: the MapLibre styles in `styles/`.
pub async fn styles(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let base = state.base_url(&headers);
    let mut ids: Vec<String> = std::fs::read_dir(styles_dir(&state))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    ids.sort();
    let list: Vec<Json> = ids
        .iter()
        .filter_map(|id| {
            let style = read_style(&state, id).ok()?;
            Some(json!({
                "id": id,
                "title": style["name"].as_str().unwrap_or(id),
                "links": [{"rel": "stylesheet", "type": "application/vnd.mapbox.style+json",
                           "href": format!("{base}/styles/{id}")}],
            }))
        })
        .collect();
    json_response(
        &json!({"styles": list, "links": [{"rel": "self", "type": "application/json", "href": format!("{base}/styles")}]}),
        "public, no-cache",
    )
}

/// `GET /styles/{id}`: a style with its sources, glyphs and sprite on this server.
pub async fn style(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = id.strip_suffix(".json").unwrap_or(&id);
    let who = super::access::caller(&state, &headers)?;
    let mut style = read_style(&state, id)?;
    portal_style::filter(&mut style, &who, &state.catalog());
    if let Some(name) = &state.portal.basemap
        && let Some(a) = state.archives.get(name)
        && let Ok(cur) = a.get()
        && let Ok(o) = &*cur
    {
        let format = o.archive.info().format;
        let schema = state.portal.basemap_schema.as_deref();
        let layers = match portal_style::schema_file(schema) {
            Some(f) if format.is_vector() => Some(read_json(&styles_dir(&state).join(f))?),
            _ => None,
        };
        let info = o.archive.info();
        let source_layers = info.vector_layers.as_ref().and_then(|v| {
            v.as_array().map(|ls| {
                ls.iter()
                    .filter_map(|l| l["id"].as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
        });
        // OpenMapTiles and Shortbread are OpenStreetMap schemas, whose licence asks for
        // the credit when the file carries none.
        let attribution = a.attribution(info).map(str::to_string).or_else(|| {
            format.is_vector().then(|| {
                "© <a href=\"https://www.openstreetmap.org/copyright\">OpenStreetMap-Mitwirkende</a>"
                    .to_string()
            })
        });
        let b = portal_style::Basemap {
            archive: name,
            format,
            schema,
            layers,
            source_layers,
            attribution,
        };
        portal_style::add_basemap(&mut style, &b);
    }
    rewrite(&mut style, &state.base_url(&headers));
    Ok(json_response(&style, "public, no-cache"))
}

/// `GET /sprites/{file}`: `{id}.json`, `{id}.png` and their `@2x` forms, the SVG icons
/// of `styles/{id}/` as MapLibre sprite sheets (made on first request, then kept).
pub async fn sprite(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> Result<Response, Problem> {
    let missing = || {
        Problem::not_found(format!(
            "there is no sprite '{}'; styles name theirs (e.g. /sprites/icons.json)",
            super::problem::clip(&file)
        ))
    };
    let (stem, ext) = file.rsplit_once('.').ok_or_else(missing)?;
    let (id, ratio) = match stem.strip_suffix("@2x") {
        Some(id) => (id, 2),
        None => (stem, 1),
    };
    let ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let dir = styles_dir(&state).join(id);
    if !ok || !matches!(ext, "json" | "png") || !dir.is_dir() {
        return Err(missing());
    }
    let sheet = state
        .sprites
        .get_or_insert_with(&(id.to_string(), ratio), || {
            crate::sprites::render(&dir, ratio).map(Arc::new)
        })
        .map_err(|e| Problem::internal(e.to_string()))?;
    let mut r = if ext == "png" {
        let mut r = sheet.png.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        r
    } else {
        json_response(&sheet.index, "public, no-cache")
    };
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, no-cache"),
    );
    Ok(r)
}

/// `GET /fonts`: the font names usable in a style's `text-font`.
pub async fn fonts(State(state): State<Arc<AppState>>) -> Response {
    json_response(&json!(state.glyphs.names()), "public, no-cache")
}

/// `GET /fonts/{fontstack}/{range}.pbf`.
pub async fn glyphs(
    State(state): State<Arc<AppState>>,
    Path((stack, range)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let range = range.strip_suffix(".pbf").unwrap_or(&range).to_string();
    let st = state.clone();
    let pbf = tokio::task::spawn_blocking(move || st.glyphs.range(&stack, &range))
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| match e {
            GlyphError::UnknownFont { .. } => Problem::not_found(e.to_string()),
            GlyphError::BadRange(_) => Problem::bad_request(e.to_string()),
            GlyphError::Render { .. } => Problem::internal(e.to_string()),
        })?;
    let mut r = (*pbf).clone().into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    Ok(r)
}

fn manage_dir(state: &AppState) -> std::path::PathBuf {
    state.config.files.join("web/manage")
}

/// `GET /manage`: the maintainers' page (check and import a GeoPackage, undo changes).
pub async fn manage_page(State(state): State<Arc<AppState>>) -> Result<Response, Problem> {
    assets::file(manage_dir(&state), "index.html").await
}

/// `GET /manage/{file}`: its script and stylesheet.
pub async fn manage_file(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    assets::file(manage_dir(&state), &name).await
}

fn widget_dir(state: &AppState) -> std::path::PathBuf {
    state.config.files.join("examples/portal-widget")
}

/// `GET /map`: the portal widget's demo page.
pub async fn map_page(State(state): State<Arc<AppState>>) -> Result<Response, Problem> {
    assets::file(widget_dir(&state), "index.html").await
}

/// `GET /map/{file}`: the widget's script and stylesheet.
pub async fn map_file(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    assets::file(widget_dir(&state), &name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_the_base_url() {
        let mut s = json!({"sources": {"n": {"url": "nordgeo://tiles/WebMercatorQuad/tilejson.json"}},
                           "glyphs": "nordgeo://fonts/{fontstack}/{range}.pbf", "layers": [{"id": "x"}]});
        rewrite(&mut s, "https://geo.example.org");
        assert_eq!(
            s["sources"]["n"]["url"],
            "https://geo.example.org/tiles/WebMercatorQuad/tilejson.json"
        );
        assert_eq!(
            s["glyphs"],
            "https://geo.example.org/fonts/{fontstack}/{range}.pbf"
        );
    }
}
