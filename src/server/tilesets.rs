//! OGC API – Tiles metadata around the tile endpoints: the WebMercatorQuad tile matrix
//! set, the dataset tileset (all layers) and one geodata tileset per collection.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value as Json, json};

use super::{AppState, json_body};

fn json(v: Json) -> Response {
    json_body(&v, "application/json")
}
use super::problem::Problem;
use crate::catalog::Snapshot as Layer;
use crate::geom::GeometryKind;

use crate::tiles::grid::WEB_MERCATOR_QUAD;

/// Conformance classes of OGC API – Tiles 1.0 that hold here.
pub const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/collections-selection",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
];

/// Tile matrices 0–24, as in the OGC definition (OGC 17-083r4, annex D).
const MAX_MATRIX: u32 = 24;

/// Half the extent of Web Mercator in metres (π × 6,378,137).
const ORIGIN: f64 = 20_037_508.342_789_244;

fn check(tms: &str) -> Result<(), Problem> {
    if tms == "WebMercatorQuad" {
        Ok(())
    } else {
        Err(Problem::not_found(format!(
            "tile matrix set '{tms}' is not offered; use WebMercatorQuad"
        )))
    }
}

/// The WebMercatorQuad definition (OGC Two Dimensional Tile Matrix Set 2.0 JSON). Each
/// level halves the one above, which is exact in binary floating point.
pub fn web_mercator_quad() -> Json {
    let matrices: Vec<Json> = (0..=MAX_MATRIX)
        .map(|z| {
            let n = f64::from(1u32 << z);
            json!({
                "id": z.to_string(),
                "scaleDenominator": 559_082_264.028_717_8 / n,
                "cellSize": 156_543.033_928_040_97 / n,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-ORIGIN, ORIGIN],
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": 1u32 << z,
                "matrixHeight": 1u32 << z,
            })
        })
        .collect();
    json!({
        "id": "WebMercatorQuad",
        "title": "Google Maps Compatible for the World",
        "uri": WEB_MERCATOR_QUAD,
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "orderedAxes": ["X", "Y"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": matrices,
    })
}

/// `GET /tileMatrixSets`.
pub async fn matrix_sets(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let b = state.base_url(&headers);
    json(json!({
        "tileMatrixSets": [{
            "id": "WebMercatorQuad",
            "title": "Google Maps Compatible for the World",
            "uri": WEB_MERCATOR_QUAD,
            "links": [{"rel": "self", "type": "application/json", "title": "WebMercatorQuad",
                       "href": format!("{b}/tileMatrixSets/WebMercatorQuad")}],
        }],
        "links": [{"rel": "self", "type": "application/json", "href": format!("{b}/tileMatrixSets")}],
    }))
}

/// `GET /tileMatrixSets/{id}`.
pub async fn matrix_set(Path(tms): Path<String>) -> Result<Response, Problem> {
    check(&tms)?;
    Ok(json(web_mercator_quad()))
}

fn dimension(kind: GeometryKind) -> Option<u8> {
    match kind {
        GeometryKind::Point | GeometryKind::MultiPoint => Some(0),
        GeometryKind::LineString | GeometryKind::MultiLineString => Some(1),
        GeometryKind::Polygon | GeometryKind::MultiPolygon => Some(2),
        _ => None,
    }
}

fn layer_json(l: &Layer) -> Json {
    let r = &l.tiles.rules;
    let props: serde_json::Map<String, Json> = r
        .properties
        .iter()
        .map(|(i, name, _)| {
            let ty = match l.def.columns[*i].class() {
                crate::store::layer::ValueClass::Integer => "integer",
                crate::store::layer::ValueClass::Real => "number",
                crate::store::layer::ValueClass::Boolean => "boolean",
                _ => "string",
            };
            (name.clone(), json!({"type": ty}))
        })
        .collect();
    let mut v = json!({
        "id": r.name,
        "title": l.meta.title.clone().unwrap_or_else(|| r.name.clone()),
        "dataType": "vector",
        "minTileMatrix": r.min_zoom.to_string(),
        "maxTileMatrix": r.max_zoom.to_string(),
        "propertiesSchema": {"type": "object", "properties": props},
    });
    if let Some(d) = dimension(l.def.kind) {
        v["geometryDimension"] = json!(d);
    }
    v
}

/// A tileset: one layer (geodata) or all (dataset).
fn tileset(b: &str, prefix: &str, title: &str, layers: &[&Arc<Layer>]) -> Json {
    let mut bounds: Option<[f64; 4]> = None;
    for l in layers {
        if let Some(e) = l.extent_lonlat {
            crate::geom::bbox_union(&mut bounds, e);
        }
    }
    let mut v = json!({
        "title": title,
        "dataType": "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": WEB_MERCATOR_QUAD,
        "links": [
            {"rel": "self", "type": "application/json", "title": "This tileset", "href": format!("{b}{prefix}/tiles/WebMercatorQuad")},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", "type": "application/json",
             "title": "WebMercatorQuad", "href": format!("{b}/tileMatrixSets/WebMercatorQuad")},
            {"rel": "item", "type": "application/vnd.mapbox-vector-tile", "templated": true, "title": "Mapbox Vector Tiles",
             "href": format!("{b}{prefix}/tiles/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/{{tileCol}}")},
            {"rel": "describedby", "type": "application/json", "title": "TileJSON",
             "href": format!("{b}{prefix}/tiles/WebMercatorQuad/tilejson.json")},
        ],
        "layers": layers.iter().map(|l| layer_json(l)).collect::<Vec<_>>(),
    });
    if let Some(e) = bounds {
        v["boundingBox"] = json!({"lowerLeft": [e[0], e[1]], "upperRight": [e[2], e[3]],
                                  "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"});
    }
    v
}

/// The short form of a tileset in a list.
fn summary(full: &Json) -> Json {
    json!({
        "title": full["title"],
        "dataType": full["dataType"],
        "crs": full["crs"],
        "tileMatrixSetURI": WEB_MERCATOR_QUAD,
        "links": full["links"],
    })
}

fn find(state: &AppState, id: &str, headers: &HeaderMap) -> Result<Arc<Layer>, Problem> {
    super::access::tiled(state, headers, id).map(|(_, l)| l)
}

/// The layers the caller may read.
fn readable_layers(state: &AppState, headers: &HeaderMap) -> Result<Vec<Arc<Layer>>, Problem> {
    let who = super::access::caller(state, headers)?;
    Ok(state
        .catalog()
        .layers
        .iter()
        .filter(|l| who.can_read(&l.def.table, &l.meta) && l.def.has_geometry())
        .cloned()
        .collect())
}

/// `GET /tiles`: the dataset's tilesets.
pub async fn dataset_list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let b = state.base_url(&headers);
    let layers = readable_layers(&state, &headers)?;
    let all: Vec<&Arc<Layer>> = layers.iter().collect();
    let full = tileset(&b, "", "nordgeo", &all);
    let mut sets = vec![summary(&full)];
    sets.extend(super::archives::tilesets(&state, &b).iter().map(summary));
    Ok(json(json!({
        "tilesets": sets,
        "links": [{"rel": "self", "type": "application/json", "href": format!("{b}/tiles")}],
    })))
}

/// `GET /tiles/{tms}`: the dataset tileset (every layer).
pub async fn dataset_tileset(
    State(state): State<Arc<AppState>>,
    Path(tms): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check(&tms)?;
    let b = state.base_url(&headers);
    let layers = readable_layers(&state, &headers)?;
    let all: Vec<&Arc<Layer>> = layers.iter().collect();
    Ok(json(tileset(&b, "", "nordgeo", &all)))
}

/// `GET /collections/{id}/tiles`.
pub async fn collection_list(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let l = find(&state, &id, &headers)?;
    let b = state.base_url(&headers);
    let full = tileset(&b, &format!("/collections/{id}"), &id, &[&l]);
    Ok(json(json!({
        "tilesets": [summary(&full)],
        "links": [{"rel": "self", "type": "application/json", "href": format!("{b}/collections/{id}/tiles")}],
    })))
}

/// `GET /collections/{id}/tiles/{tms}`.
pub async fn collection_tileset(
    State(state): State<Arc<AppState>>,
    Path((id, tms)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check(&tms)?;
    let l = find(&state, &id, &headers)?;
    let b = state.base_url(&headers);
    Ok(json(tileset(&b, &format!("/collections/{id}"), &id, &[&l])))
}
