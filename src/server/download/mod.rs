//! Downloads of a selection (`f=gpkg`, `f=csv`, `f=gpx` on items and single features):
//! the same selection, rights and CRS as the GeoJSON answer, written in pieces (CSV,
//! GPX) or built as a file beside the server and streamed from it (GeoPackage), so a
//! download of a whole layer never sits in memory.

pub mod csv;
pub mod gpx;

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::crs_out::OutCrs;
use super::params::Params;
use super::problem::Problem;
use crate::audience::Audience;
use crate::auth::Caller;
use crate::catalog::Snapshot;
use crate::geom::GeometryKind;
use crate::index::Layer;

/// A download format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    /// A GeoPackage, as `nordgeo export` writes it.
    Gpkg,
    /// CSV with a WKT geometry column.
    Csv,
    /// GPX 1.1 tracks (line layers).
    Gpx,
}

/// GeoPackages being built at once (each is a file and a SQLite writer).
pub const GPKG_BUILDS: usize = 2;

impl Download {
    /// Every format, in the order pages list them.
    pub const ALL: [Download; 3] = [Download::Gpkg, Download::Csv, Download::Gpx];

    /// The `f` value.
    pub fn f(self) -> &'static str {
        match self {
            Download::Gpkg => "gpkg",
            Download::Csv => "csv",
            Download::Gpx => "gpx",
        }
    }

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Download::Gpkg => "application/geopackage+sqlite3",
            Download::Csv => "text/csv; charset=utf-8",
            Download::Gpx => "application/gpx+xml",
        }
    }

    /// A title for links and pages.
    pub fn title(self) -> &'static str {
        match self {
            Download::Gpkg => "GeoPackage",
            Download::Csv => "CSV",
            Download::Gpx => "GPX",
        }
    }

    /// The format a request asks for: `f` (its short name or media type), or an `Accept`
    /// header naming one of these types first.
    pub fn requested(params: &Params, headers: &HeaderMap) -> Option<Download> {
        let by_name = |s: &str| {
            let s = s.trim().to_ascii_lowercase();
            Download::ALL.into_iter().find(|d| {
                s == d.f()
                    || s.split(';')
                        .next()
                        .is_some_and(|t| d.media_type().starts_with(t))
            })
        };
        if let Some(f) = params.get("f") {
            return by_name(f);
        }
        let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
        by_name(accept.split(',').next()?)
    }

    /// Whether `layer` can be had in this format.
    pub fn offered_for(self, layer: &Layer) -> bool {
        match self {
            Download::Gpx => is_lines(layer),
            _ => true,
        }
    }
}

/// Formats `layer` can be downloaded in.
pub fn offered(layer: &Layer) -> impl Iterator<Item = Download> + '_ {
    Download::ALL.into_iter().filter(|d| d.offered_for(layer))
}

/// Whether a layer holds lines (what GPX tracks are).
pub fn is_lines(layer: &Layer) -> bool {
    layer.def.has_geometry()
        && matches!(
            layer.def.kind,
            GeometryKind::LineString
                | GeometryKind::MultiLineString
                | GeometryKind::CircularString
                | GeometryKind::CompoundCurve
                | GeometryKind::MultiCurve
        )
}

/// `limit` of a download: every matching feature unless the caller asks for fewer.
pub fn limit(params: &Params) -> Result<usize, Problem> {
    match params.get("limit") {
        None => Ok(usize::MAX),
        Some(s) => s
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                Problem::bad_request(format!("limit '{s}' must be a whole number of at least 1"))
            }),
    }
}

/// What is downloaded: a layer's features (slots, in order), seen by one caller.
pub struct Request {
    /// The layer at the time of the selection.
    pub layer: Arc<Snapshot>,
    /// The selected slots.
    pub slots: Vec<usize>,
    /// What the caller sees.
    pub audience: Audience,
    /// Output CRS (GPX is always WGS 84).
    pub crs: OutCrs,
    /// The file name offered to the browser, without extension.
    pub file_stem: String,
    /// The request line for the access log.
    pub request_line: String,
}

/// Answers a download of `r` in format `d`.
pub async fn respond(
    state: &Arc<AppState>,
    who: &Caller,
    d: Download,
    base: &str,
    r: Request,
) -> Result<Response, Problem> {
    let id = r.layer.def.table.clone();
    if !d.offered_for(&r.layer) {
        return Err(Problem::bad_request(format!(
            "f=gpx is offered for line layers (e.g. trails); '{id}' has {} geometries: use f=gpkg, f=csv or f=json",
            r.layer.def.kind.gpkg_name().to_lowercase()
        )));
    }
    // GPX leaves internal properties out; the others carry what the caller sees.
    if d != Download::Gpx {
        let exposed: Vec<i64> = r
            .slots
            .iter()
            .map(|&i| r.layer.feature(i))
            .filter(|f| r.audience.exposes(&f.values))
            .map(|f| f.fid)
            .collect();
        state
            .access_log
            .record(who, &id, exposed, r.request_line.clone())
            .await?;
    }
    let file = format!("{}.{}", r.file_stem, d.f());
    let content_crs = format!("<{}>", r.crs.uri(base));
    let mut res = match d {
        Download::Csv => csv_body(r).into_response(),
        Download::Gpx => gpx_body(r, base).into_response(),
        Download::Gpkg => gpkg_response(state, r).await?,
    };
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(d.media_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if d == Download::Csv
        && let Ok(v) = HeaderValue::from_str(&content_crs)
    {
        h.insert("content-crs", v);
    }
    Ok(res)
}

fn csv_body(r: Request) -> axum::body::Body {
    super::stream::body(move |out| {
        let columns = r.audience.columns();
        out.buf.push_str(&csv::header(&r.layer, columns));
        for &i in &r.slots {
            let f = r.layer.feature(i);
            let g = f.geometry.as_ref().and_then(|g| match r.crs.convert(g) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(layer = %r.layer.def.table, fid = f.fid, error = %e, "geometry cannot be written in the requested CRS");
                    None
                }
            });
            csv::row(
                &mut out.buf,
                f,
                &r.layer,
                g.as_ref(),
                columns,
                r.audience.mask(&f.values),
            );
            if !out.flush_full() {
                return;
            }
        }
    })
}

fn gpx_body(r: Request, base: &str) -> axum::body::Body {
    let title = r
        .layer
        .meta
        .title
        .clone()
        .unwrap_or_else(|| r.layer.def.table.clone());
    let link = format!("{base}/collections/{}", r.layer.def.table);
    let wgs84 = OutCrs::crs84();
    super::stream::body(move |out| {
        out.buf.push_str(&gpx::head(&title, &link));
        let cols = &r.layer.def.columns;
        let name_col = cols
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case("name"));
        let public = Audience::public(&r.layer.def, &r.layer.meta);
        for &i in &r.slots {
            let f = r.layer.feature(i);
            let Some(Ok(g)) = f.geometry.as_ref().map(|g| wgs84.convert(g)) else {
                continue;
            };
            let shown = public.mask(&f.values);
            let text = |i: usize| match &f.values[i] {
                rusqlite::types::Value::Text(t) => Some(t.clone()),
                rusqlite::types::Value::Integer(n) => Some(n.to_string()),
                rusqlite::types::Value::Real(x) => Some(x.to_string()),
                _ => None,
            };
            let name = name_col
                .filter(|&c| shown[c])
                .and_then(text)
                .unwrap_or_else(|| format!("{title} {}", f.fid));
            let desc: Vec<String> = (0..cols.len())
                .filter(|&c| shown[c] && Some(c) != name_col)
                .filter_map(|c| text(c).map(|t| format!("{}: {t}", cols[c].name)))
                .collect();
            gpx::track(&mut out.buf, &name, &desc.join("; "), &g);
            if !out.flush_full() {
                return;
            }
        }
        out.buf.push_str(gpx::TAIL);
    })
}

/// Builds the GeoPackage in a temporary file (the only way SQLite writes one), then
/// streams it; the file is unlinked once open, so nothing is left behind.
async fn gpkg_response(state: &Arc<AppState>, r: Request) -> Result<Response, Problem> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let Ok(_permit) = state.download_slots.clone().try_acquire_owned() else {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{GPKG_BUILDS} GeoPackage downloads are being prepared already; try again in a minute"
            ),
        )
        .into_response();
        p.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        return Ok(p);
    };
    let store_path = state.config.store.clone();
    let pg_schema = state.config.pg_schema.clone();
    let tmp = std::env::temp_dir().join(format!(
        "nordgeo-download-{}-{}.gpkg",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, Problem> {
        let fids: Vec<i64> = r.slots.iter().map(|&i| r.layer.feature(i).fid).collect();
        let masked: Vec<i64> = if r.audience.partial() {
            r.slots
                .iter()
                .map(|&i| r.layer.feature(i))
                .filter(|f| !r.audience.sees_internal(&f.values))
                .map(|f| f.fid)
                .collect()
        } else {
            Vec::new()
        };
        let public = Audience::public(&r.layer.def, &r.layer.meta);
        // CRS84 and EPSG:4326 are both srs 4326 in a GeoPackage (x is longitude).
        let srs_id = r.crs.epsg.unwrap_or(4326);
        let copy = tmp.with_extension("selection.gpkg");
        let remove_copy = || {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", copy.display()));
            }
        };
        let fail = |e: String| {
            let _ = std::fs::remove_file(&tmp);
            remove_copy();
            tracing::error!(error = %e, "a GeoPackage download could not be written");
            Problem::internal("the GeoPackage could not be written; the server log says why")
        };
        // A PostGIS store's selection is copied as stored into a GeoPackage beside the
        // download first; the download is then cut from it as from any store.
        let store = match &pg_schema {
            Some(schema) => {
                let mut pg = crate::pg::PgStore::connect(&store_path.to_string_lossy(), schema)
                    .map_err(|e| fail(e.to_string()))?;
                crate::pg::export::selection(&mut pg, &r.layer.def.table, &fids, &copy)
                    .map_err(|e| fail(e.to_string()))?
            }
            None => {
                crate::store::Store::open_read_only(&store_path).map_err(|e| fail(e.to_string()))?
            }
        };
        let written = crate::export::export_selected(
            &store,
            &r.layer.def.table,
            &tmp,
            &crate::export::Selected {
                fids: &fids,
                columns: r.audience.columns(),
                public: public.columns(),
                masked: &masked,
                srs_id,
            },
        );
        drop(store);
        if pg_schema.is_some() {
            remove_copy();
        }
        written.map_err(|e| fail(e.to_string()))?;
        let file = std::fs::File::open(&tmp).map_err(|e| fail(e.to_string()))?;
        let _ = std::fs::remove_file(&tmp);
        Ok(file)
    })
    .await
    .map_err(|e| Problem::internal(format!("the download failed: {e}")))??;
    let len = file.metadata().map(|m| m.len()).ok();
    let body = super::stream::body(move |out| {
        let mut file = file;
        loop {
            let mut buf = vec![0u8; super::stream::CHUNK];
            match file.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if !out.send(Bytes::from(buf)) {
                        return;
                    }
                }
            }
        }
    });
    let mut res = body.into_response();
    if let Some(len) = len {
        res.headers_mut().insert(header::CONTENT_LENGTH, len.into());
    }
    Ok(res)
}

/// Links to a feature or selection (`path`, no query) in every format the layer is
/// offered in.
pub fn links(base: &str, layer: &Layer, path: &str) -> Vec<serde_json::Value> {
    offered(layer)
        .map(|d| {
            serde_json::json!({
                "rel": "alternate",
                "type": d.media_type().split(';').next().unwrap_or_default(),
                "title": format!("Download as {}", d.title()),
                "href": format!("{base}{path}?f={}", d.f()),
            })
        })
        .collect()
}

/// The CRS a download is written in: `crs` where the format has one; a GeoPackage
/// without `crs` keeps the layer's own (as `nordgeo export`), GPX is WGS 84 only.
pub fn crs(d: Download, layer: &Layer, params: &Params, asked: &OutCrs) -> Result<OutCrs, Problem> {
    let given = params.get("crs").is_some();
    match d {
        Download::Gpx if given => Err(Problem::bad_request(
            "GPX is always in WGS 84 (longitude/latitude); leave out crs",
        )),
        Download::Gpx => Ok(OutCrs::crs84()),
        Download::Gpkg if !given => Ok(OutCrs {
            epsg: Some(layer.def.srs_id),
        }),
        _ => Ok(asked.clone()),
    }
}
