//! `/collections/{id}/items`: the request → a selection on the in-memory index
//! (`query`) → a GeoJSON page streamed out in chunks, or an HTML table. The selection
//! is made before the response head is sent, so any error is a proper problem response.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::access::{audience, reader};
use super::download::{self, Download};
use super::geojson::write_feature;
use super::html;
use super::params::{Format, Params};
use super::problem::Problem;
use super::query::{ItemsQuery, Selection, parse_query, select};

/// Self/next/prev/alternate links of a page.
pub fn page_links(
    base: &str,
    id: &str,
    p: &Params,
    q: &ItemsQuery,
    sel: &Selection,
    downloads: &[Download],
) -> Vec<serde_json::Value> {
    let link = |off: usize, f: Option<&str>| {
        let mut set = vec![("offset", off.to_string()), ("limit", q.limit.to_string())];
        if let Some(f) = f {
            set.push(("f", f.to_string()));
        }
        format!("{base}/collections/{id}/items?{}", url_query(p, &set))
    };
    let mut links = vec![
        json!({"rel": "self", "type": "application/geo+json", "title": "This page", "href": link(q.offset, None)}),
        json!({"rel": "alternate", "type": "text/html", "title": "This page as HTML", "href": link(q.offset, Some("html"))}),
        json!({"rel": "collection", "type": "application/json", "title": "The collection", "href": format!("{base}/collections/{id}")}),
    ];
    for d in downloads {
        let mt = d.media_type().split(';').next().unwrap_or_default();
        links.push(json!({"rel": "alternate", "type": mt, "title": format!("This page as {}", d.title()), "href": link(q.offset, Some(d.f()))}));
    }
    if q.offset.saturating_add(sel.page.len()) < sel.matched {
        links.push(json!({"rel": "next", "type": "application/geo+json", "title": "Next page", "href": link(q.offset + q.limit, None)}));
    }
    if q.offset > 0 {
        links.push(json!({"rel": "prev", "type": "application/geo+json", "title": "Previous page", "href": link(q.offset.saturating_sub(q.limit), None)}));
    }
    links
}

/// The query string of `p` with `set` replacing or adding parameters.
pub fn url_query(p: &Params, set: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> = p
        .pairs()
        .iter()
        .filter(|(k, _)| !set.iter().any(|(s, _)| s == k))
        .cloned()
        .collect();
    pairs.sort();
    pairs.extend(set.iter().map(|(k, v)| (k.to_string(), v.clone())));
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query component (commas stay readable).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~,".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The items selection as a file: every match unless `limit` says fewer.
#[allow(clippy::too_many_arguments)]
async fn download_items(
    state: &Arc<AppState>,
    who: &crate::auth::Caller,
    layer: Arc<crate::catalog::Snapshot>,
    aud: crate::audience::Audience,
    params: &Params,
    d: Download,
    base: &str,
    raw: Option<&str>,
) -> Result<Response, Problem> {
    let id = layer.def.table.clone();
    let mut q = parse_query(&layer, params, aud)?;
    q.limit = download::limit(params)?;
    let crs = download::crs(d, &layer, params, &q.crs)?;
    let (layer, q, sel) = tokio::task::spawn_blocking(move || {
        let sel = select(&layer, &q);
        (layer, q, sel)
    })
    .await
    .map_err(|e| Problem::internal(format!("the query failed: {e}")))?;
    let request = super::audit::request_line("GET", &format!("/collections/{id}/items"), raw);
    let r = download::Request {
        layer,
        slots: sel.page,
        audience: q.audience,
        crs,
        file_stem: id,
        request_line: request,
    };
    download::respond(state, who, d, base, r).await
}

/// `GET /collections/{id}/items`.
pub async fn items(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (who, layer) = reader(&state, &headers, &id)?;
    let aud = audience(&who, &layer);
    let params = Params::parse(raw.as_deref())?;
    let base = state.base_url(&headers);
    if let Some(d) = Download::requested(&params, &headers) {
        return download_items(&state, &who, layer, aud, &params, d, &base, raw.as_deref()).await;
    }
    let format = Format::negotiate(&params, &headers)?;
    let q = parse_query(&layer, &params, aud)?;
    let content_crs = format!("<{}>", q.crs.uri(&base));
    let (layer, q, sel) = tokio::task::spawn_blocking(move || {
        let sel = select(&layer, &q);
        (layer, q, sel)
    })
    .await
    .map_err(|e| Problem::internal(format!("the query failed: {e}")))?;
    let downloads: Vec<Download> = download::offered(&layer).collect();
    let links = page_links(&base, &layer.def.table, &params, &q, &sel, &downloads);
    let exposed: Vec<i64> = sel
        .page
        .iter()
        .map(|&i| layer.feature(i))
        .filter(|f| q.audience.exposes(&f.values))
        .map(|f| f.fid)
        .collect();
    let request =
        super::audit::request_line("GET", &format!("/collections/{id}/items"), raw.as_deref());
    state.access_log.record(&who, &id, exposed, request).await?;
    if format == Format::Html {
        return Ok(html::items(&base, &layer, &q, &sel, &links));
    }
    // Only writing the page is streamed; it cannot fail but for the client going away.
    let body = super::stream::body(move |out| {
        let _ = write!(
            out.buf,
            "{{\"type\":\"FeatureCollection\",\"numberMatched\":{},\"numberReturned\":{},\"links\":{},\"features\":[",
            sel.matched,
            sel.page.len(),
            serde_json::Value::Array(links)
        );
        for (n, &i) in sel.page.iter().enumerate() {
            if n > 0 {
                out.buf.push(',');
            }
            write_feature(&mut out.buf, layer.feature(i), &layer, &q.crs, &q.audience);
            if !out.flush_full() {
                return; // the client went away
            }
        }
        out.buf.push_str("]}");
    });
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/geo+json"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_crs) {
        h.insert("content-crs", v);
    }
    Ok(res)
}
