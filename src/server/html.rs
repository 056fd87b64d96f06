//! HTML views of every resource, for people with a browser: plain server-side pages,
//! each built from the same JSON document the API returns. The map previews use
//! MapLibre GL JS served by nordgeo itself (`/assets/maplibre-gl/`), never a CDN.

use std::fmt::Write as _;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use super::geojson::{shown, value_json};
use super::query::{ItemsQuery, Selection};
use crate::audience::Audience;
use crate::crs;
use crate::geom::Bbox;
use crate::geom::GeometryKind;
use crate::index::Layer;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,'DejaVu Sans',sans-serif;margin:0;color:#1d2a33;background:#f6f7f4}\
header{background:#24523d;color:#fff;padding:.6em 1.2em}header a{color:#fff;text-decoration:none;font-weight:600}\
nav.crumbs{font-size:.9em;padding:.4em 1.2em;background:#e5ebe3}nav.crumbs a{color:#24523d}\
main{padding:1em 1.2em;max-width:72em}a{color:#1f5c8f}h1{font-size:1.5em;margin:.3em 0}\
table{border-collapse:collapse;background:#fff;margin:.6em 0;font-size:.92em}\
th,td{border:1px solid #cfd6cc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#eef2ec}\
.map{width:100%;max-width:60em;height:360px;border:1px solid #cfd6cc;background:#eef0ea}\
.pager a{margin-right:1em}.muted{color:#5d6b63}code{background:#eef2ec;padding:0 .2em}\
@media (max-width:600px){main{padding:.6em}.map{height:260px}table{font-size:.85em}}";

/// A complete page.
pub fn page(base: &str, title: &str, crumbs: &[(&str, String)], body: &str) -> Response {
    let mut nav = format!("<a href=\"{}/\">nordgeo</a>", esc(base));
    for (label, href) in crumbs {
        let _ = write!(nav, " › <a href=\"{}\">{}</a>", esc(href), esc(label));
    }
    let html = format!(
        "<!DOCTYPE html><html lang=\"de\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><link rel=\"icon\" href=\"data:,\"><title>{t} – nordgeo</title>\
<style>{STYLE}</style></head><body><header><a href=\"{b}/\">nordgeo</a> · Geodaten Ellrich, Heringen/Helme, Werther, Kyffhäuserland</header>\
<nav class=\"crumbs\">{nav}</nav><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
        b = esc(base),
    );
    let mut r = html.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn links_list(links: &Json) -> String {
    let mut out = String::from("<ul>");
    for l in links.as_array().into_iter().flatten() {
        let href = l["href"].as_str().unwrap_or_default();
        let title = l["title"].as_str().unwrap_or(href);
        let _ = write!(
            out,
            "<li><a href=\"{}\">{}</a> <span class=\"muted\">({}, {})</span></li>",
            esc(href),
            esc(title),
            esc(l["rel"].as_str().unwrap_or_default()),
            esc(l["type"].as_str().unwrap_or_default())
        );
    }
    out.push_str("</ul>");
    out
}

/// The landing page.
pub fn landing(base: &str, doc: &Json) -> Response {
    let body = format!(
        "<p>{}</p><p><a href=\"{b}/collections?f=html\">Collections</a> · <a href=\"{b}/api?f=html\">API</a> · \
<a href=\"{b}/conformance?f=html\">Conformance</a> · <a href=\"{b}/map\">Karte</a></p><h2>Links</h2>{}",
        esc(doc["description"].as_str().unwrap_or_default()),
        links_list(&doc["links"]),
        b = esc(base)
    );
    page(base, "nordgeo", &[], &body)
}

/// The conformance classes.
pub fn conformance(base: &str, doc: &Json) -> Response {
    let mut body = String::from("<ul>");
    for c in doc["conformsTo"].as_array().into_iter().flatten() {
        let _ = write!(
            body,
            "<li><code>{}</code></li>",
            esc(c.as_str().unwrap_or_default())
        );
    }
    body.push_str("</ul>");
    page(
        base,
        "Conformance",
        &[("Conformance", format!("{base}/conformance?f=html"))],
        &body,
    )
}

/// The collection list.
pub fn collections(base: &str, doc: &Json) -> Response {
    let mut body = String::from(
        "<table><tr><th>Collection</th><th>Description</th><th>Features</th><th>Tiles</th></tr>",
    );
    for c in doc["collections"].as_array().into_iter().flatten() {
        let id = c["id"].as_str().unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td><a href=\"{b}/collections/{i}?f=html\">{t}</a></td><td>{d}</td>\
<td><a href=\"{b}/collections/{i}/items?f=html\">Tabelle</a> · <a href=\"{b}/collections/{i}/items\">GeoJSON</a></td>\
<td><a href=\"{b}/collections/{i}/tiles/WebMercatorQuad/tilejson.json\">TileJSON</a></td></tr>",
            b = esc(base),
            i = esc(id),
            t = esc(c["title"].as_str().unwrap_or(id)),
            d = esc(c["description"].as_str().unwrap_or_default()),
        );
    }
    body.push_str("</table>");
    page(
        base,
        "Collections",
        &[("Collections", format!("{base}/collections?f=html"))],
        &body,
    )
}

/// A MapLibre map of one collection's vector tiles (or of one GeoJSON feature).
fn map_preview(base: &str, layer: &Layer, feature: Option<(String, Bbox)>) -> String {
    let geojson_url = feature.as_ref().map(|f| f.0.clone());
    let id = &layer.def.table;
    let (kind, paint) = match layer.def.kind {
        GeometryKind::Point | GeometryKind::MultiPoint => (
            "circle",
            r##"{"circle-radius":5,"circle-color":"#c0392b","circle-stroke-color":"#fff","circle-stroke-width":1.5}"##,
        ),
        GeometryKind::LineString | GeometryKind::MultiLineString => {
            ("line", r##"{"line-color":"#c0392b","line-width":2.5}"##)
        }
        _ => ("line", r##"{"line-color":"#24523d","line-width":1.2}"##),
    };
    let source = match &geojson_url {
        Some(u) => format!(
            "{{\"type\":\"geojson\",\"data\":{}}}",
            Json::String(u.clone())
        ),
        None => format!(
            "{{\"type\":\"vector\",\"url\":{}}}",
            Json::String(format!(
                "{base}/collections/{id}/tiles/WebMercatorQuad/tilejson.json"
            ))
        ),
    };
    let source_layer = if geojson_url.is_some() {
        String::new()
    } else {
        format!(",\"source-layer\":{}", Json::String(id.clone()))
    };
    let bounds = feature
        .map(|f| f.1)
        .or(layer.extent_lonlat)
        .map(|b| format!("[[{},{}],[{},{}]]", b[0], b[1], b[2], b[3]))
        .unwrap_or_else(|| "[[10.5,51.3],[11.2,51.7]]".into());
    // MapLibre 6 is an ES module; its worker is found next to it on this server.
    format!(
        "<link rel=\"stylesheet\" href=\"{b}/assets/maplibre-gl/maplibre-gl.css\">\
<div id=\"map\" class=\"map\" role=\"img\" aria-label=\"Kartenvorschau {i}\"></div>\
<script type=\"module\">\
import * as maplibregl from '{b}/assets/maplibre-gl/maplibre-gl.mjs';\
const map=new maplibregl.Map({{container:'map',style:{{version:8,sources:{{d:{source}}},layers:[\
{{id:'bg',type:'background',paint:{{'background-color':'#eef0ea'}}}},\
{{id:'d',type:'{kind}',source:'d'{source_layer},paint:{paint}}}]}},bounds:{bounds},fitBoundsOptions:{{padding:20,maxZoom:16}}}});\
map.addControl(new maplibregl.NavigationControl());\
window.nordgeoMap=map;</script>",
        b = esc(base),
        i = esc(id),
    )
}

/// A property value as table text.
fn cell(v: &rusqlite::types::Value, c: &crate::store::layer::Column) -> String {
    match value_json(v, c.class()) {
        Json::String(s) => s,
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// One collection with its map.
pub fn collection(base: &str, layer: &Layer, doc: &Json, visible: &[bool]) -> Response {
    let id = &layer.def.table;
    let mut body = format!(
        "<p>{}</p>{}<h2>Properties</h2><table><tr><th>Name</th><th>Type</th></tr>",
        esc(doc["description"].as_str().unwrap_or_default()),
        map_preview(base, layer, None)
    );
    for (c, _) in layer.def.columns.iter().zip(visible).filter(|(_, v)| **v) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&c.decl_type)
        );
    }
    let _ = write!(
        body,
        "</table><p>{} features · storage CRS <code>{}</code></p>{}<h2>Links</h2>{}",
        layer.len(),
        esc(doc["storageCrs"].as_str().unwrap_or_default()),
        downloads(
            &format!("{base}/collections/{id}/items"),
            "",
            layer,
            "Alle Objekte herunterladen"
        ),
        links_list(&doc["links"])
    );
    let title = doc["title"].as_str().unwrap_or(id);
    page(
        base,
        title,
        &[
            ("Collections", format!("{base}/collections?f=html")),
            (title, format!("{base}/collections/{id}?f=html")),
        ],
        &body,
    )
}

/// A line of download links for a selection (`query` without `f`).
fn downloads(path: &str, query: &str, layer: &Layer, label: &str) -> String {
    let sep = if query.is_empty() { "" } else { "&" };
    let items: Vec<String> = crate::server::download::offered(layer)
        .map(|d| {
            format!(
                "<a href=\"{}\" download>{}</a>",
                esc(&format!("{path}?{query}{sep}f={}", d.f())),
                d.title()
            )
        })
        .collect();
    format!(
        "<p class=\"downloads\">{}: {}</p>",
        esc(label),
        items.join(" · ")
    )
}

/// A page of features as a table, with paging.
pub fn items(
    base: &str,
    layer: &Layer,
    q: &ItemsQuery,
    sel: &Selection,
    links: &[Json],
) -> Response {
    let id = &layer.def.table;
    let visible = q.audience.columns();
    let href = |rel: &str| {
        links
            .iter()
            .find(|l| l["rel"] == rel)
            .and_then(|l| l["href"].as_str())
            .map(|h| h.replacen("/items?", "/items?f=html&", 1))
    };
    let mut pager = String::from("<p class=\"pager\">");
    if let Some(h) = href("prev") {
        let _ = write!(pager, "<a href=\"{}\" rel=\"prev\">← zurück</a>", esc(&h));
    }
    if let Some(h) = href("next") {
        let _ = write!(pager, "<a href=\"{}\" rel=\"next\">weiter →</a>", esc(&h));
    }
    if let Some(h) = href("self") {
        let json = h.replacen("/items?f=html&", "/items?", 1);
        let _ = write!(pager, "<a href=\"{}\">GeoJSON</a>", esc(&json));
    }
    pager.push_str("</p>");
    let first = if sel.page.is_empty() { 0 } else { q.offset + 1 };
    let mut body = format!(
        "<p>{}–{} of {} features</p>{pager}<table><tr><th>id</th>",
        first,
        q.offset + sel.page.len(),
        sel.matched
    );
    if sel.distances.is_some() {
        body.push_str("<th>distance (m)</th>");
    }
    for (c, _) in layer.def.columns.iter().zip(visible).filter(|(_, v)| **v) {
        let _ = write!(body, "<th>{}</th>", esc(&c.name));
    }
    body.push_str("</tr>");
    for (n, &i) in sel.page.iter().enumerate() {
        let f = layer.feature(i);
        let _ = write!(
            body,
            "<tr><td><a href=\"{}/collections/{}/items/{}?f=html\">{}</a></td>",
            esc(base),
            esc(id),
            f.fid,
            f.fid
        );
        if let Some(d) = &sel.distances {
            let _ = write!(body, "<td>{:.0}</td>", d[n]);
        }
        // Every row has a cell per column; values hidden on this feature stay empty.
        let mine = q.audience.mask(&f.values);
        for (i, c) in layer.def.columns.iter().enumerate() {
            if !visible[i] {
                continue;
            }
            let text = if mine[i] {
                cell(&f.values[i], c)
            } else {
                String::new()
            };
            let _ = write!(body, "<td>{}</td>", esc(&text));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    body.push_str(&pager);
    // The whole selection (every page), as the query asks for it.
    let selection = href("self")
        .and_then(|h| h.split_once('?').map(|(_, q)| q.to_string()))
        .map(|q| {
            q.split('&')
                .filter(|p| !["f=", "offset=", "limit="].iter().any(|k| p.starts_with(k)))
                .collect::<Vec<_>>()
                .join("&")
        })
        .unwrap_or_default();
    body.push_str(&downloads(
        &format!("{base}/collections/{id}/items"),
        &selection,
        layer,
        &format!("Auswahl herunterladen ({} Objekte)", sel.matched),
    ));
    page(
        base,
        &format!("{id}: features"),
        &[
            ("Collections", format!("{base}/collections?f=html")),
            (id, format!("{base}/collections/{id}?f=html")),
            ("Features", format!("{base}/collections/{id}/items?f=html")),
        ],
        &body,
    )
}

/// One feature: its properties and a map of it.
pub fn feature(base: &str, layer: &Layer, i: usize, aud: &Audience) -> Response {
    let id = &layer.def.table;
    let f = layer.feature(i);
    let url = format!("{base}/collections/{id}/items/{}?f=json", f.fid);
    let bounds = layer.bbox(i).map(|b| {
        let (x0, y0) = crs::mercator_to_lonlat(b[0], b[1]);
        let (x1, y1) = crs::mercator_to_lonlat(b[2], b[3]);
        [x0, y0, x1, y1]
    });
    let mut body = match bounds {
        Some(b) => map_preview(base, layer, Some((url.clone(), b))),
        None => String::from("<p class=\"muted\">This feature has no geometry.</p>"),
    };
    body.push_str("<table><tr><th>Property</th><th>Value</th></tr>");
    for (c, v) in shown(layer, f, aud.mask(&f.values)) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&cell(v, c))
        );
    }
    let _ = write!(body, "</table><p><a href=\"{}\">GeoJSON</a></p>", esc(&url));
    body.push_str(&downloads(
        &format!("{base}/collections/{id}/items/{}", f.fid),
        "",
        layer,
        "Herunterladen",
    ));
    page(
        base,
        &format!("{id} {}", f.fid),
        &[
            ("Collections", format!("{base}/collections?f=html")),
            (id, format!("{base}/collections/{id}?f=html")),
            ("Features", format!("{base}/collections/{id}/items?f=html")),
        ],
        &body,
    )
}

/// The queryables of a collection.
pub fn queryables(base: &str, id: &str, doc: &Json) -> Response {
    let mut body = String::from("<table><tr><th>Name</th><th>Title</th><th>Type</th></tr>");
    if let Some(props) = doc["properties"].as_object() {
        for (name, p) in props {
            let ty = p["type"]
                .as_str()
                .or(p["format"].as_str())
                .or(p["$ref"].as_str())
                .unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(name),
                esc(p["title"].as_str().unwrap_or_default()),
                esc(ty)
            );
        }
    }
    body.push_str("</table><p>Use them in <code>filter</code> (CQL2 text or JSON) and <code>sortby</code>.</p>");
    page(
        base,
        &format!("{id}: queryables"),
        &[
            ("Collections", format!("{base}/collections?f=html")),
            (id, format!("{base}/collections/{id}?f=html")),
        ],
        &body,
    )
}

/// The OpenAPI document as a readable list of paths and parameters.
pub fn api(base: &str, doc: &Json) -> Response {
    let mut body = format!(
        "<p>The machine-readable document: <a href=\"{}/api?f=json\">OpenAPI 3.0 JSON</a>.</p>",
        esc(base)
    );
    let params = &doc["components"]["parameters"];
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            let _ = write!(
                body,
                "<h3><code>{} {}</code></h3><p>{}</p>",
                esc(&method.to_uppercase()),
                esc(path),
                esc(op["summary"].as_str().unwrap_or_default())
            );
            let list = op["parameters"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                continue;
            }
            body.push_str("<table><tr><th>Parameter</th><th>In</th><th>Description</th></tr>");
            for p in list {
                let p = match p["$ref"].as_str() {
                    Some(r) => params[r.rsplit('/').next().unwrap_or_default()].clone(),
                    None => p,
                };
                let _ = write!(
                    body,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    esc(p["name"].as_str().unwrap_or_default()),
                    esc(p["in"].as_str().unwrap_or_default()),
                    esc(p["description"].as_str().unwrap_or_default())
                );
            }
            body.push_str("</table>");
        }
    }
    page(base, "API", &[("API", format!("{base}/api?f=html"))], &body)
}
