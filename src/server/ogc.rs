//! OGC API – Features Part 1 resources around the items: landing page, conformance,
//! the OpenAPI document, collection metadata and single features.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::{Value as Json, json};

use super::access::{audience, caller, reader};
use super::audit;
use super::crs_out::{CRS84, OFFERED, OutCrs, crs_uri, epsg_uri};
use super::download::{self, Download};
use super::geojson::write_feature;
use super::html;
use super::params::{Format, Params};
use super::problem::Problem;
use super::query::{DEFAULT_LIMIT, ITEMS_PARAMS, MAX_LIMIT};
use super::{AppState, json_body};
use crate::filter::bind::{Kind, column_kind};
use crate::geom::GeometryKind;
use crate::index::Layer;

/// Media type of the OpenAPI document.
pub const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";

/// Relation type of a collection's queryables.
const REL_QUERYABLES: &str = "http://www.opengis.net/def/rel/ogc/1.0/queryables";

/// The conformance classes implemented (and only those), besides CQL2's.
const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    // Part 8 (draft): sortby with + / - prefixes, and /sortables.
    "http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting",
];

/// Parameters and format of a metadata request that takes no parameters but `f`.
fn plain(raw: Option<String>, headers: &HeaderMap, what: &str) -> Result<Format, Problem> {
    let p = Params::parse(raw.as_deref())?;
    p.only(&[], what)?;
    Format::negotiate(&p, headers)
}

/// `GET /`.
pub async fn landing(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let format = plain(raw, &headers, "the landing page")?;
    let b = state.base_url(&headers);
    let doc = json!({
        "title": "nordgeo",
        "description": "Geodata of Ellrich, Heringen/Helme, Werther and Kyffhäuserland: OGC API Features and vector tiles",
        "links": [
            {"rel": "self", "type": "application/json", "title": "This document", "href": format!("{b}/")},
            {"rel": "alternate", "type": "text/html", "title": "This document as HTML", "href": format!("{b}/?f=html")},
            {"rel": "service-desc", "type": OPENAPI, "title": "The API definition", "href": format!("{b}/api")},
            {"rel": "service-doc", "type": "text/html", "title": "The API documentation", "href": format!("{b}/api?f=html")},
            {"rel": "conformance", "type": "application/json", "title": "Conformance classes", "href": format!("{b}/conformance")},
            {"rel": "data", "type": "application/json", "title": "Collections", "href": format!("{b}/collections")},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/data", "type": "application/json", "title": "Collections", "href": format!("{b}/collections")},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", "type": "application/json", "title": "Vector tilesets", "href": format!("{b}/tiles")},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes", "type": "application/json", "title": "Tile matrix sets", "href": format!("{b}/tileMatrixSets")},
            {"rel": "describedby", "type": "application/json", "title": "TileJSON of all layers", "href": format!("{b}/tiles/WebMercatorQuad/tilejson.json")},
            {"rel": "stylesheet", "type": "application/json", "title": "Map styles", "href": format!("{b}/styles")},
        ],
    });
    Ok(match format {
        Format::Html => html::landing(&b, &doc),
        Format::Json => json_body(&doc, "application/json"),
    })
}

/// `GET /conformance`.
pub async fn conformance(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let format = plain(raw, &headers, "/conformance")?;
    let all: Vec<&str> = CONFORMANCE
        .iter()
        .chain(crate::filter::CONFORMANCE)
        .chain(super::tilesets::CONFORMANCE)
        .copied()
        .collect();
    let doc = json!({ "conformsTo": all });
    Ok(match format {
        Format::Html => html::conformance(&state.base_url(&headers), &doc),
        Format::Json => json_body(&doc, "application/json"),
    })
}

/// The first date/time property and its range, as RFC 3339 texts.
fn temporal(l: &Layer) -> Option<(String, Json)> {
    let (col, range) = l.time_extent?;
    let fmt = crate::filter::time::format_timestamp;
    let interval = match range {
        Some([a, b]) => json!([[fmt(a), fmt(b)]]),
        None => json!([[null, null]]),
    };
    Some((l.def.columns[col].name.clone(), interval))
}

/// Metadata of one collection, as listed in `/collections` and at `/collections/{id}`.
pub fn collection_json(l: &Layer, b: &str) -> Json {
    let id = &l.def.table;
    let mut extent = json!({
        "spatial": {"bbox": [l.extent_lonlat.unwrap_or([-180.0, -90.0, 180.0, 90.0])], "crs": CRS84},
    });
    if let Some((_, interval)) = temporal(l) {
        extent["temporal"] = json!({"interval": interval, "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"});
    }
    let mut doc = json!({
        "id": id,
        "title": l.meta.title.clone().unwrap_or_else(|| id.clone()),
        "description": l.meta.description.clone().unwrap_or_default(),
        "itemType": "feature",
        "crs": offered_crs(l, b),
        "storageCrs": crs_uri(l.def.srs_id, b),
        "extent": extent,
        "links": [
            {"rel": "self", "type": "application/json", "title": "This collection", "href": format!("{b}/collections/{id}")},
            {"rel": "alternate", "type": "text/html", "title": "This collection as HTML", "href": format!("{b}/collections/{id}?f=html")},
            {"rel": "items", "type": "application/geo+json", "title": "Features", "href": format!("{b}/collections/{id}/items")},
            {"rel": "items", "type": "text/html", "title": "Features as a table", "href": format!("{b}/collections/{id}/items?f=html")},
            {"rel": REL_QUERYABLES, "type": "application/schema+json", "title": "Queryables", "href": format!("{b}/collections/{id}/queryables")},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/sortables", "type": "application/schema+json", "title": "Sortables", "href": format!("{b}/collections/{id}/sortables")},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", "type": "application/json", "title": "Vector tilesets",
             "href": format!("{b}/collections/{id}/tiles")},
            {"rel": "describedby", "type": "application/json", "title": "Vector tiles (TileJSON)",
             "href": format!("{b}/collections/{id}/tiles/WebMercatorQuad/tilejson.json")},
        ],
    });
    if let Some(links) = doc["links"].as_array_mut() {
        for d in download::offered(l) {
            links.push(
                json!({"rel": "items", "type": d.media_type().split(';').next().unwrap_or_default(),
                "title": format!("All features as {}", d.title()),
                "href": format!("{b}/collections/{id}/items?f={}", d.f())}),
            );
        }
    }
    if !l.def.has_geometry() {
        // A table without geometry: features with "geometry": null, no extent, no CRS
        // to choose, no tiles.
        if let Some(o) = doc.as_object_mut() {
            for k in ["crs", "storageCrs", "extent"] {
                o.remove(k);
            }
        }
        if let Some(links) = doc["links"].as_array_mut() {
            links.retain(|k| !k["href"].as_str().is_some_and(|h| h.contains("/tiles")));
        }
    }
    doc
}

/// The CRSs a collection can be read in: CRS84, the usual ones, and its storage CRS.
fn offered_crs(l: &Layer, base: &str) -> Vec<String> {
    let mut v = vec![CRS84.to_string()];
    v.extend(OFFERED.iter().map(|c| epsg_uri(*c)));
    let storage = crs_uri(l.def.srs_id, base);
    if !v.contains(&storage) {
        v.push(storage);
    }
    v
}

/// `GET /crs/{id}`: the WKT of a storage CRS that has no EPSG code (its URI in `crs`
/// and `storageCrs`), for the collections the caller can read.
pub async fn crs_definition(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let who = caller(&state, &headers)?;
    let missing = || Problem::not_found(format!("there is no CRS '{id}' on this server"));
    let n: i32 = id.parse().map_err(|_| missing())?;
    let cat = state.catalog();
    let used = cat
        .layers
        .iter()
        .any(|l| l.def.srs_id == n && who.can_read(&l.def.table, &l.meta));
    let def = crate::crs::lookup(n)
        .filter(|d| used && d.epsg.is_none())
        .ok_or_else(missing)?;
    let mut r = Response::new(axum::body::Body::from(def.definition));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}

/// `GET /collections`.
pub async fn collections(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let format = plain(raw, &headers, "/collections")?;
    let who = caller(&state, &headers)?;
    let b = state.base_url(&headers);
    let cat = state.catalog();
    let list: Vec<Json> = cat
        .layers
        .iter()
        .filter(|l| who.can_read(&l.def.table, &l.meta))
        .map(|l| collection_json(l, &b))
        .collect();
    let doc = json!({
        "links": [
            {"rel": "self", "type": "application/json", "title": "This document", "href": format!("{b}/collections")},
            {"rel": "alternate", "type": "text/html", "title": "This document as HTML", "href": format!("{b}/collections?f=html")},
        ],
        "collections": list,
    });
    Ok(match format {
        Format::Html => html::collections(&b, &doc),
        Format::Json => json_body(&doc, "application/json"),
    })
}

/// `GET /collections/{id}`.
pub async fn collection(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (who, l) = reader(&state, &headers, &id)?;
    let format = plain(raw, &headers, "a collection")?;
    let b = state.base_url(&headers);
    let doc = collection_json(&l, &b);
    Ok(match format {
        Format::Html => html::collection(&b, &l, &doc, audience(&who, &l).columns()),
        Format::Json => json_body(&doc, "application/json"),
    })
}

/// `GET /collections/{id}/items/{featureId}`.
pub async fn feature(
    State(state): State<Arc<AppState>>,
    Path((id, fid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (who, l) = reader(&state, &headers, &id)?;
    let aud = audience(&who, &l);
    let params = Params::parse(raw.as_deref())?;
    params.only(&["crs"], "a feature")?;
    let out_crs = match params.get("crs") {
        Some(c) => OutCrs::parse(c, l.def.srs_id)?,
        None => OutCrs::crs84(),
    };
    let missing = || Problem::not_found(format!("collection '{id}' has no feature '{fid}'"));
    let n: i64 = fid.parse().map_err(|_| missing())?;
    let i = l.slot_of(n).ok_or_else(missing)?;
    let b = state.base_url(&headers);
    if let Some(d) = Download::requested(&params, &headers) {
        let crs = download::crs(d, &l, &params, &out_crs)?;
        let r = download::Request {
            slots: vec![i],
            audience: aud,
            crs,
            file_stem: format!("{id}-{n}"),
            request_line: audit::request_line(
                "GET",
                &format!("/collections/{id}/items/{fid}"),
                raw.as_deref(),
            ),
            layer: l,
        };
        return download::respond(&state, &who, d, &b, r).await;
    }
    let format = Format::negotiate(&params, &headers)?;
    let f = l.feature(i);
    if aud.exposes(&f.values) {
        let request = audit::request_line(
            "GET",
            &format!("/collections/{id}/items/{fid}"),
            raw.as_deref(),
        );
        state
            .access_log
            .record(&who, &id, vec![f.fid], request)
            .await?;
    }
    if format == Format::Html {
        return Ok(html::feature(&b, &l, i, &aud));
    }
    let mut out = String::new();
    write_feature(&mut out, f, &l, &out_crs, &aud);
    // Add the links a single feature must carry.
    let mut v: Json = serde_json::from_str(&out).map_err(|e| Problem::internal(e.to_string()))?;
    v["links"] = json!([
        {"rel": "self", "type": "application/geo+json", "title": "This feature", "href": format!("{b}/collections/{id}/items/{n}")},
        {"rel": "alternate", "type": "text/html", "title": "This feature as HTML", "href": format!("{b}/collections/{id}/items/{n}?f=html")},
        {"rel": "collection", "type": "application/json", "title": "The collection", "href": format!("{b}/collections/{id}")},
    ]);
    if let Some(links) = v["links"].as_array_mut() {
        links.extend(download::links(
            &b,
            &l,
            &format!("/collections/{id}/items/{n}"),
        ));
    }
    let mut r = json_body(&v, "application/geo+json");
    if let Ok(h) = HeaderValue::from_str(&format!("<{}>", out_crs.uri(&b))) {
        r.headers_mut().insert("content-crs", h);
    }
    // The ETag names the version this caller sees (If-Match on writes); it does not
    // depend on the CRS of this representation.
    if let Ok(h) = HeaderValue::from_str(&f.etag(aud.mask(&f.values))) {
        r.headers_mut().insert(axum::http::header::ETAG, h);
    }
    Ok(r)
}

/// JSON Schema of one property.
fn property_schema(c: &crate::store::layer::Column) -> Json {
    let mut s = match column_kind(c) {
        Some(Kind::Num) if c.decl_type.to_ascii_uppercase().contains("INT") => {
            json!({"type": "integer"})
        }
        Some(Kind::Num) => json!({"type": "number"}),
        Some(Kind::Bool) => json!({"type": "boolean"}),
        Some(Kind::Time) if c.decl_type.eq_ignore_ascii_case("DATE") => {
            json!({"type": "string", "format": "date"})
        }
        Some(Kind::Time) => json!({"type": "string", "format": "date-time"}),
        Some(Kind::Str) | None => json!({"type": "string"}),
    };
    s["title"] = json!(c.name);
    s
}

fn geometry_format(kind: GeometryKind) -> &'static str {
    match kind {
        GeometryKind::Point => "geometry-point",
        GeometryKind::MultiPoint => "geometry-multipoint",
        GeometryKind::LineString => "geometry-linestring",
        GeometryKind::MultiLineString => "geometry-multilinestring",
        GeometryKind::Polygon => "geometry-polygon",
        GeometryKind::MultiPolygon => "geometry-multipolygon",
        GeometryKind::GeometryCollection => "geometry-geometrycollection",
        GeometryKind::Geometry => "geometry-any",
        // GeoJSON carries curves as lines and polygons (linearized).
        GeometryKind::CircularString | GeometryKind::CompoundCurve => "geometry-linestring",
        GeometryKind::CurvePolygon => "geometry-polygon",
        GeometryKind::MultiCurve => "geometry-multilinestring",
        GeometryKind::MultiSurface => "geometry-multipolygon",
    }
}

/// The schema document behind `/queryables` (with the geometry) and `/sortables`.
fn schema_doc(l: &Layer, b: &str, what: &str, with_geometry: bool, visible: &[bool]) -> Json {
    let id = &l.def.table;
    let mut props = serde_json::Map::new();
    if with_geometry {
        props.insert(
            l.def.geom_column.clone(),
            json!({"title": "Geometry", "format": geometry_format(l.def.kind), "x-ogc-role": "primary-geometry"}),
        );
    } else {
        props.insert(
            "id".into(),
            json!({"title": "Feature id", "type": "integer"}),
        );
    }
    for (c, _) in l.def.columns.iter().zip(visible).filter(|(_, v)| **v) {
        props.insert(c.name.clone(), property_schema(c));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{b}/collections/{id}/{what}"),
        "type": "object",
        "title": l.meta.title.clone().unwrap_or_else(|| id.clone()),
        "properties": props,
        "additionalProperties": false,
    })
}

async fn schema_resource(
    state: Arc<AppState>,
    id: String,
    raw: Option<String>,
    headers: HeaderMap,
    what: &str,
) -> Result<Response, Problem> {
    let (who, l) = reader(&state, &headers, &id)?;
    let format = plain(raw, &headers, what)?;
    let b = state.base_url(&headers);
    let doc = schema_doc(
        &l,
        &b,
        what,
        what == "queryables",
        audience(&who, &l).columns(),
    );
    Ok(match format {
        Format::Html => html::queryables(&b, &id, &doc),
        Format::Json => json_body(&doc, "application/schema+json"),
    })
}

/// `GET /collections/{id}/queryables`: what `filter` and property parameters may use.
pub async fn queryables(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    schema_resource(state, id, raw, headers, "queryables").await
}

/// `GET /collections/{id}/sortables`: what `sortby` may use.
pub async fn sortables(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    schema_resource(state, id, raw, headers, "sortables").await
}

/// The media types features are offered in.
fn features_content() -> Json {
    let mut c = json!({"application/geo+json": {"schema": {"type": "object"}}, "text/html": {"schema": {"type": "string"}}});
    for d in Download::ALL {
        let t = d.media_type().split(';').next().unwrap_or_default();
        c[t] = json!({"schema": {"type": "string", "format": "binary"}});
    }
    c
}

/// The items parameters: paging, bbox, Part 2/3 parameters, near, and every property as
/// `name=value` (GDAL pushes attribute filters down only for properties listed here).
fn items_parameters(l: &Layer, visible: &[bool]) -> Json {
    let mut p: Vec<Json> = ITEMS_PARAMS
        .iter()
        .chain(&["f-items"])
        .map(|n| json!({"$ref": format!("#/components/parameters/{n}")}))
        .collect();
    for (c, _) in l.def.columns.iter().zip(visible).filter(|(_, v)| **v) {
        let mut schema = property_schema(c);
        if let Some(o) = schema.as_object_mut() {
            o.remove("title");
        }
        p.push(json!({"name": c.name, "in": "query", "required": false, "style": "form", "explode": false,
                      "description": format!("Only features whose {} equals this value", c.name),
                      "schema": schema}));
    }
    Json::Array(p)
}

fn query_param(name: &str, description: &str, schema: Json) -> Json {
    json!({"name": name, "in": "query", "required": false, "style": "form", "explode": false,
           "description": description, "schema": schema})
}

/// `GET /api`: the OpenAPI 3.0 document, generated from the collections so clients
/// (QGIS, GDAL ≥ 3.7, owslib) find the page size and the parameters of every path.
pub async fn api(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let format = plain(raw, &headers, "/api")?;
    let b = state.base_url(&headers);
    let cat = state.catalog();
    let f_ref = json!([{"$ref": "#/components/parameters/f"}]);
    let json_ok = |desc: &str, media: &str| json!({"200": {"description": desc, "content": {media: {"schema": {"type": "object"}}, "text/html": {"schema": {"type": "string"}}}}});
    let problem = |desc: &str| json!({"description": desc, "content": {"application/problem+json": {"schema": {"type": "object"}}}});
    let mut paths = serde_json::Map::new();
    paths.insert("/".into(), json!({"get": {"summary": "Landing page", "operationId": "getLandingPage", "parameters": f_ref, "responses": json_ok("Landing page", "application/json")}}));
    paths.insert("/conformance".into(), json!({"get": {"summary": "Conformance classes", "operationId": "getConformance", "parameters": f_ref, "responses": json_ok("Conformance", "application/json")}}));
    paths.insert("/api".into(), json!({"get": {"summary": "This API definition", "operationId": "getApi", "parameters": f_ref, "responses": json_ok("OpenAPI 3.0", OPENAPI)}}));
    paths.insert("/collections".into(), json!({"get": {"summary": "Collections", "operationId": "getCollections", "parameters": f_ref, "responses": json_ok("Collections", "application/json")}}));
    paths.insert("/crs/{crsId}".into(), json!({"get": {"summary": "The WKT of a storage CRS without an EPSG code", "operationId": "getCrs",
        "parameters": [{"name": "crsId", "in": "path", "required": true, "schema": {"type": "integer"}}],
        "responses": json_ok("OGC WKT", "text/plain")}}));
    let who = caller(&state, &headers)?;
    let layers: Vec<&Arc<crate::catalog::Snapshot>> = cat
        .layers
        .iter()
        .filter(|l| who.can_read(&l.def.table, &l.meta))
        .collect();
    for l in &layers {
        let id = &l.def.table;
        paths.insert(
            format!("/collections/{id}"),
            json!({"get": {
            "summary": format!("Metadata of {id}"), "operationId": format!("describe_{id}"),
            "parameters": f_ref, "responses": json_ok("Collection", "application/json")}}),
        );
        for what in ["queryables", "sortables"] {
            paths.insert(format!("/collections/{id}/{what}"), json!({"get": {
                "summary": format!("The {what} of {id}"), "operationId": format!("get_{what}_{id}"),
                "parameters": f_ref, "responses": json_ok("JSON Schema", "application/schema+json")}}));
        }
        paths.insert(format!("/collections/{id}/items"), json!({"get": {
            "summary": format!("Features of {id}"), "operationId": format!("getFeatures_{id}"),
            "parameters": items_parameters(l, audience(&who, l).columns()),
            "responses": {
                "200": {"description": "Features", "content": features_content()},
                "400": problem("Invalid parameter"),
                "404": problem("Not found"),
            }},
            // Part 4: writes need a bearer token (see README, "Editing, rights and history").
            "post": {"summary": format!("Create a feature of {id}"), "operationId": format!("createFeature_{id}"),
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {"application/geo+json": {"schema": {"type": "object"}}}},
                "responses": {"201": {"description": "Created; Location names the new feature"},
                    "401": problem("No valid token"), "403": problem("Not allowed"), "422": problem("Does not fit the collection")}},
        }));
        let write_responses = json!({"204": {"description": "Done; ETag names the new version"},
            "401": problem("No valid token"), "403": problem("Not allowed"), "404": problem("Not found"),
            "412": problem("The feature changed since it was read (If-Match)"), "422": problem("Does not fit the collection")});
        let fid_param = json!({"name": "featureId", "in": "path", "required": true, "schema": {"type": "integer"}});
        paths.insert(format!("/collections/{id}/items/{{featureId}}"), json!({
            "put": {"summary": format!("Replace a feature of {id}"), "operationId": format!("replaceFeature_{id}"),
                "security": [{"bearer": []}], "parameters": [fid_param],
                "requestBody": {"required": true, "content": {"application/geo+json": {"schema": {"type": "object"}}}},
                "responses": write_responses},
            "patch": {"summary": format!("Change properties or geometry of a feature of {id}"), "operationId": format!("updateFeature_{id}"),
                "security": [{"bearer": []}], "parameters": [fid_param],
                "requestBody": {"required": true, "content": {"application/merge-patch+json": {"schema": {"type": "object"}}}},
                "responses": write_responses},
            "delete": {"summary": format!("Delete a feature of {id} (kept in the history)"), "operationId": format!("deleteFeature_{id}"),
                "security": [{"bearer": []}], "parameters": [fid_param], "responses": write_responses},
            "get": {
            "summary": format!("One feature of {id}"), "operationId": format!("getFeature_{id}"),
            "parameters": [{"name": "featureId", "in": "path", "required": true, "schema": {"type": "integer"}},
                           {"$ref": "#/components/parameters/crs"}, {"$ref": "#/components/parameters/f-items"}],
            "responses": {
                "200": {"description": "Feature", "content": features_content()},
                "404": problem("Not found"),
            }}}));
        let qp = |name: &str, what: &str, schema: Json| json!({"name": name, "in": "query", "required": false, "description": what, "schema": schema});
        paths.insert(format!("/collections/{id}/import"), json!({"post": {
            "summary": format!("Import a GeoPackage into {id}"), "operationId": format!("import_{id}"),
            "description": "The GeoPackage is the request body. The answer comes once the import has committed (200 with the report) or was rolled back: 422 with the report when features are rejected, 503 when it ran out of the server's import time (`--import-timeout-s`) or its client went away. The read time limit does not cut imports off, so 200 always means committed and any other answer means nothing changed.",
            "security": [{"bearer": []}],
            "parameters": [
                qp("mode", "replace (default), append, or create (admins)", json!({"type": "string", "enum": ["replace", "append", "create"]})),
                qp("dry-run", "check and report only", json!({"type": "boolean"})),
                qp("layer", "the file's layer to import", json!({"type": "string"})),
                qp("municipality", "only this municipality (maintainers: always their own)", json!({"type": "string"})),
                qp("repair", "make invalid polygons valid", json!({"type": "boolean"})),
            ],
            "requestBody": {"required": true, "content": {"application/geopackage+sqlite3": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"200": {"description": "Committed: the import report", "content": {"application/json": {"schema": {"type": "object"}}}},
                "401": problem("No valid token"), "403": problem("Not allowed"), "413": problem("Larger than the upload limit"),
                "422": problem("Rejected; the report lists every feature and reason"), "503": problem("Stopped; nothing was changed")}}}));
        paths.insert(format!("/collections/{id}/rollback"), json!({"post": {
            "summary": format!("Restore {id}, or one feature, to its state after a change (admins)"), "operationId": format!("rollback_{id}"),
            "security": [{"bearer": []}],
            "parameters": [qp("to", "the change to return to", json!({"type": "integer"})), qp("feature", "only this feature", json!({"type": "integer"}))],
            "responses": {"200": {"description": "Committed as a change of its own", "content": {"application/json": {"schema": {"type": "object"}}}},
                "401": problem("No valid token"), "403": problem("Not allowed"), "404": problem("No such change"), "409": problem("The feature has not changed since")}}}));
        paths.insert(format!("/collections/{id}/items/{{featureId}}/history"), json!({"get": {
            "summary": format!("Every change of one feature of {id}, with the version before and after"), "operationId": format!("history_{id}"),
            "security": [{"bearer": []}], "parameters": [fid_param],
            "responses": {"200": {"description": "The changes, oldest first", "content": {"application/json": {"schema": {"type": "object"}}}},
                "401": problem("No valid token"), "403": problem("Not allowed"), "404": problem("No recorded change")}}}));
    }
    let tile_params = |prefix: &str| {
        let mut p = vec![
            json!({"name": "tileMatrixSetId", "in": "path", "required": true, "schema": {"type": "string", "enum": ["WebMercatorQuad"]}}),
            json!({"name": "tileMatrix", "in": "path", "required": true, "schema": {"type": "string"}}),
            json!({"name": "tileRow", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}}),
            json!({"name": "tileCol", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}}),
        ];
        if prefix.is_empty() {
            p.push(query_param(
                "collections",
                "Only these collections (comma-separated ids)",
                json!({"type": "array", "items": {"type": "string"}}),
            ));
        }
        Json::Array(p)
    };
    let tile_ok = json!({
        "200": {"description": "A Mapbox Vector Tile", "content": {"application/vnd.mapbox-vector-tile": {"schema": {"type": "string", "format": "binary"}}}},
        "204": {"description": "No feature in this tile"},
        "404": problem("Outside the tile matrix or unknown"),
    });
    paths.insert("/tileMatrixSets".into(), json!({"get": {"summary": "Tile matrix sets", "operationId": "getTileMatrixSetsList", "responses": json_ok("Tile matrix sets", "application/json")}}));
    paths.insert("/tileMatrixSets/{tileMatrixSetId}".into(), json!({"get": {"summary": "A tile matrix set", "operationId": "getTileMatrixSet",
        "parameters": [{"name": "tileMatrixSetId", "in": "path", "required": true, "schema": {"type": "string", "enum": ["WebMercatorQuad"]}}],
        "responses": json_ok("The definition", "application/json")}}));
    let mut tile_paths = vec![String::new()];
    tile_paths.extend(
        layers
            .iter()
            .map(|l| format!("/collections/{}", l.def.table)),
    );
    for prefix in tile_paths {
        let op = if prefix.is_empty() {
            "dataset".to_string()
        } else {
            prefix.trim_start_matches("/collections/").to_string()
        };
        paths.insert(format!("{prefix}/tiles"), json!({"get": {"summary": "Vector tilesets", "operationId": format!("getTileSetsList_{op}"),
            "responses": json_ok("Tilesets", "application/json")}}));
        paths.insert(format!("{prefix}/tiles/{{tileMatrixSetId}}"), json!({"get": {"summary": "Tileset metadata", "operationId": format!("getTileSet_{op}"),
            "parameters": [{"name": "tileMatrixSetId", "in": "path", "required": true, "schema": {"type": "string", "enum": ["WebMercatorQuad"]}}],
            "responses": json_ok("Tileset", "application/json")}}));
        paths.insert(
            format!("{prefix}/tiles/{{tileMatrixSetId}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"),
            json!({"get": {
            "summary": "A vector tile", "operationId": format!("getTile_{op}"),
            "parameters": tile_params(&prefix), "responses": tile_ok.clone()}}),
        );
    }
    let uri = json!({"type": "string", "format": "uri"});
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "nordgeo", "version": env!("CARGO_PKG_VERSION"), "description": "OGC API Features and vector tiles"},
        "servers": [{"url": b}],
        "paths": paths,
        "components": {"parameters": {
            "limit": query_param("limit", "Features per page; larger values are clamped to the maximum",
                                 json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT})),
            "offset": query_param("offset", "Features to skip (paging)", json!({"type": "integer", "minimum": 0, "default": 0})),
            "bbox": query_param("bbox", "minLon,minLat,maxLon,maxLat (CRS84 unless bbox-crs), or 6 numbers with heights",
                                json!({"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}})),
            "bbox-crs": query_param("bbox-crs", "CRS of bbox (a URI from the collection's crs list)", uri.clone()),
            "crs": query_param("crs", "CRS of the response (a URI from the collection's crs list)", uri.clone()),
            "datetime": query_param("datetime", "An RFC 3339 date or timestamp, or an interval a/b with .. for an open end, on the collection's first date/time property",
                                    json!({"type": "string"})),
            "filter": query_param("filter", "A CQL2 expression over the queryables", json!({"type": "string"})),
            "filter-lang": query_param("filter-lang", "Encoding of filter", json!({"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"})),
            "filter-crs": query_param("filter-crs", "CRS of geometry literals in filter", uri.clone()),
            "sortby": query_param("sortby", "Comma-separated sortables, each optionally prefixed + (ascending) or - (descending)",
                                  json!({"type": "array", "items": {"type": "string"}})),
            "near": query_param("near", "LON,LAT (in near-crs): features nearest to this point first, with the R-tree",
                                json!({"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}})),
            "near-crs": query_param("near-crs", "CRS of near", uri),
            "max-distance": query_param("max-distance", "With near: only features within this many metres",
                                        json!({"type": "number", "minimum": 0})),
            "f": query_param("f", "Representation: json (default) or html", json!({"type": "string", "enum": ["json", "html"]})),
            "f-items": query_param("f", "Representation: json (GeoJSON, default), html, or a download of the whole selection (every match unless limit is given): gpkg (GeoPackage, storage CRS unless crs is given), csv (WKT geometry column, UTF-8), gpx (GPX 1.1 tracks, line layers only)", json!({"type": "string", "enum": ["json", "html", "gpkg", "csv", "gpx"]})),
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A token from `nordgeo token create`"}}},
    });
    Ok(match format {
        Format::Html => html::api(&b, &doc),
        Format::Json => json_body(&doc, OPENAPI),
    })
}
