//! OGC API – Features Part 1 resources around the items: landing page, conformance,
//! the OpenAPI document, collection metadata and single features.

use std::sync::Arc;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::AppState;
use super::crs_out::{CRS84, OFFERED, OutCrs, epsg_uri};
use super::features::{DEFAULT_LIMIT, MAX_LIMIT, write_feature};
use super::problem::Problem;
use crate::index::Layer;

/// Media type of the OpenAPI document.
pub const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";

/// The conformance classes implemented (and only those).
const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
];

fn with_type(body: Json, media: &'static str) -> Response {
    let mut r = body.to_string().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    r
}

/// `GET /`.
pub async fn landing(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let b = state.base_url(&headers);
    with_type(
        json!({
            "title": "nordgeo",
            "description": "Geodata of Ellrich, Heringen/Helme, Werther and Kyffhäuserland: OGC API Features and vector tiles",
            "links": [
                {"rel": "self", "type": "application/json", "title": "This document", "href": format!("{b}/")},
                {"rel": "service-desc", "type": OPENAPI, "title": "The API definition", "href": format!("{b}/api")},
                {"rel": "conformance", "type": "application/json", "title": "Conformance classes", "href": format!("{b}/conformance")},
                {"rel": "data", "type": "application/json", "title": "Collections", "href": format!("{b}/collections")},
                {"rel": "http://www.opengis.net/def/rel/ogc/1.0/data", "type": "application/json", "title": "Collections", "href": format!("{b}/collections")},
            ],
        }),
        "application/json",
    )
}

/// `GET /conformance`.
pub async fn conformance() -> Response {
    with_type(json!({ "conformsTo": CONFORMANCE }), "application/json")
}

/// Metadata of one collection, as listed in `/collections` and at `/collections/{id}`.
pub fn collection_json(l: &Layer, b: &str) -> Json {
    let id = &l.def.table;
    json!({
        "id": id,
        "title": l.meta.title.clone().unwrap_or_else(|| id.clone()),
        "description": l.meta.description.clone().unwrap_or_default(),
        "itemType": "feature",
        "crs": offered_crs(l),
        "storageCrs": epsg_uri(l.def.srs_id),
        "extent": {
            "spatial": {"bbox": [l.extent_lonlat.unwrap_or([-180.0, -90.0, 180.0, 90.0])], "crs": CRS84},
            "temporal": {"interval": [[null, null]]},
        },
        "links": [
            {"rel": "self", "type": "application/json", "href": format!("{b}/collections/{id}")},
            {"rel": "items", "type": "application/geo+json", "title": "Features", "href": format!("{b}/collections/{id}/items")},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", "type": "application/json", "title": "Vector tiles (TileJSON)",
             "href": format!("{b}/collections/{id}/tiles/WebMercatorQuad/tilejson.json")},
        ],
    })
}

/// The CRSs a collection can be read in: CRS84, the usual ones, and its storage CRS.
fn offered_crs(l: &Layer) -> Vec<String> {
    let mut v = vec![CRS84.to_string()];
    v.extend(OFFERED.iter().map(|c| epsg_uri(*c)));
    if !OFFERED.contains(&l.def.srs_id) {
        v.push(epsg_uri(l.def.srs_id));
    }
    v
}

/// `GET /collections`.
pub async fn collections(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let b = state.base_url(&headers);
    let cat = state.catalog();
    let list: Vec<Json> = cat.layers.iter().map(|l| collection_json(l, &b)).collect();
    with_type(
        json!({
            "links": [{"rel": "self", "type": "application/json", "href": format!("{b}/collections")}],
            "collections": list,
        }),
        "application/json",
    )
}

fn layer(state: &AppState, id: &str) -> Result<Arc<Layer>, Problem> {
    state.catalog().get(id).cloned().ok_or_else(|| {
        Problem::not_found(format!(
            "there is no collection '{id}'; /collections lists them"
        ))
    })
}

/// `GET /collections/{id}`.
pub async fn collection(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let l = layer(&state, &id)?;
    Ok(with_type(
        collection_json(&l, &state.base_url(&headers)),
        "application/json",
    ))
}

/// `GET /collections/{id}/items/{featureId}`.
pub async fn feature(
    State(state): State<Arc<AppState>>,
    Path((id, fid)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let l = layer(&state, &id)?;
    if let Some(k) = params.keys().find(|k| !["crs", "f"].contains(&k.as_str())) {
        return Err(Problem::bad_request(format!(
            "unknown query parameter '{k}'; a feature accepts crs and f"
        )));
    }
    let out_crs = match params.get("crs") {
        Some(c) => OutCrs::parse(c, l.def.srs_id)?,
        None => OutCrs::crs84(),
    };
    let missing = || Problem::not_found(format!("collection '{id}' has no feature '{fid}'"));
    let n: i64 = fid.parse().map_err(|_| missing())?;
    let i = l
        .features
        .binary_search_by_key(&n, |f| f.fid)
        .map_err(|_| missing())?;
    let b = state.base_url(&headers);
    let mut out = String::new();
    write_feature(&mut out, &l.features[i], &l, &out_crs);
    // Add the links a single feature must carry.
    let mut v: Json = serde_json::from_str(&out).map_err(|e| Problem::internal(e.to_string()))?;
    v["links"] = json!([
        {"rel": "self", "type": "application/geo+json", "href": format!("{b}/collections/{id}/items/{n}")},
        {"rel": "collection", "type": "application/json", "href": format!("{b}/collections/{id}")},
    ]);
    let mut r = with_type(v, "application/geo+json");
    if let Ok(h) = HeaderValue::from_str(&format!("<{}>", out_crs.uri)) {
        r.headers_mut().insert("content-crs", h);
    }
    Ok(r)
}

/// The items parameters: paging, bbox, and every property as `name=value` (GDAL pushes
/// attribute filters down only for properties listed here).
fn items_parameters(l: &Layer) -> Json {
    let mut p = vec![
        json!({"$ref": "#/components/parameters/limit"}),
        json!({"$ref": "#/components/parameters/offset"}),
        json!({"$ref": "#/components/parameters/bbox"}),
        json!({"$ref": "#/components/parameters/bbox-crs"}),
        json!({"$ref": "#/components/parameters/crs"}),
    ];
    for c in &l.def.columns {
        use crate::store::layer::ValueClass;
        let ty = match c.class() {
            ValueClass::Integer => "integer",
            ValueClass::Real => "number",
            ValueClass::Boolean => "boolean",
            _ => "string",
        };
        p.push(json!({"name": c.name, "in": "query", "required": false, "style": "form", "explode": false,
                      "description": format!("Only features whose {} equals this value", c.name),
                      "schema": {"type": ty}}));
    }
    Json::Array(p)
}

/// `GET /api`: the OpenAPI 3.0 document, generated from the collections so clients
/// (QGIS, GDAL ≥ 3.7, owslib) find the page size and the parameters of every path.
pub async fn api(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let b = state.base_url(&headers);
    let cat = state.catalog();
    let json_ok = |desc: &str, media: &str| json!({"200": {"description": desc, "content": {media: {"schema": {"type": "object"}}}}});
    let mut paths = serde_json::Map::new();
    paths.insert("/".into(), json!({"get": {"summary": "Landing page", "operationId": "getLandingPage", "responses": json_ok("Landing page", "application/json")}}));
    paths.insert("/conformance".into(), json!({"get": {"summary": "Conformance classes", "operationId": "getConformance", "responses": json_ok("Conformance", "application/json")}}));
    paths.insert("/collections".into(), json!({"get": {"summary": "Collections", "operationId": "getCollections", "responses": json_ok("Collections", "application/json")}}));
    for l in &cat.layers {
        let id = &l.def.table;
        let not_found = json!({"description": "Not found", "content": {"application/problem+json": {"schema": {"type": "object"}}}});
        paths.insert(
            format!("/collections/{id}"),
            json!({"get": {
            "summary": format!("Metadata of {id}"), "operationId": format!("describe_{id}"),
            "responses": json_ok("Collection", "application/json")}}),
        );
        paths.insert(format!("/collections/{id}/items"), json!({"get": {
            "summary": format!("Features of {id}"), "operationId": format!("getFeatures_{id}"),
            "parameters": items_parameters(l),
            "responses": {
                "200": {"description": "Features", "content": {"application/geo+json": {"schema": {"type": "object"}}}},
                "400": {"description": "Invalid parameter", "content": {"application/problem+json": {"schema": {"type": "object"}}}},
                "404": not_found.clone(),
            }}}));
        paths.insert(format!("/collections/{id}/items/{{featureId}}"), json!({"get": {
            "summary": format!("One feature of {id}"), "operationId": format!("getFeature_{id}"),
            "parameters": [{"name": "featureId", "in": "path", "required": true, "schema": {"type": "integer"}},
                           {"$ref": "#/components/parameters/crs"}],
            "responses": {
                "200": {"description": "Feature", "content": {"application/geo+json": {"schema": {"type": "object"}}}},
                "404": not_found,
            }}}));
    }
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "nordgeo", "version": env!("CARGO_PKG_VERSION"), "description": "OGC API Features and vector tiles"},
        "servers": [{"url": b}],
        "paths": paths,
        "components": {"parameters": {
            "limit": {"name": "limit", "in": "query", "required": false, "style": "form", "explode": false,
                      "description": "Features per page; larger values are clamped to the maximum",
                      "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
            "offset": {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "default": 0}},
            "bbox": {"name": "bbox", "in": "query", "required": false, "style": "form", "explode": false,
                     "description": "minLon,minLat,maxLon,maxLat (CRS84), or 6 numbers with heights",
                     "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
            "bbox-crs": {"name": "bbox-crs", "in": "query", "required": false, "description": "CRS of bbox (a URI from the collection's crs list)",
                         "schema": {"type": "string", "format": "uri"}},
            "crs": {"name": "crs", "in": "query", "required": false, "description": "CRS of the response (a URI from the collection's crs list)",
                    "schema": {"type": "string", "format": "uri"}},
        }},
    });
    with_type(doc, OPENAPI)
}
