//! Writes over HTTP: OGC API Features Part 4 (POST, PUT, PATCH, DELETE, OPTIONS),
//! GeoPackage import, feature history and rollback. Every write needs a token, goes
//! through the one write connection, and is visible to the next read: the layer's
//! snapshot is updated and exactly the touched tiles are purged before the answer.

use crate::audience::Audience;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::access::{caller, readable, reader};
use super::crs_out::OutCrs;
use super::params::Params;
use super::problem::Problem;
use super::{AppState, json_body};
use crate::auth::Caller;
use crate::catalog::Snapshot;
use crate::store::Store;
use crate::write::edit::{self, Edit, EditError, Op};

/// Largest feature body (a municipal feature is far smaller; imports have their own limit).
const MAX_FEATURE_BYTES: usize = 4 * 1024 * 1024;

fn problem(store: &std::path::Path, e: EditError) -> Problem {
    use crate::store::StoreError;
    let e = match e {
        // SQLite's own words become what the administrator can act on.
        EditError::Sql(s) => EditError::Store(StoreError::from_sqlite(store, s)),
        other => other,
    };
    let status = match &e {
        EditError::NotFound(..) => StatusCode::NOT_FOUND,
        EditError::Stale(..) => StatusCode::PRECONDITION_FAILED,
        EditError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        EditError::BadBody(_) => StatusCode::BAD_REQUEST,
        EditError::Forbidden(_) => StatusCode::FORBIDDEN,
        EditError::Store(StoreError::DiskFull(_)) => StatusCode::INSUFFICIENT_STORAGE,
        EditError::Store(StoreError::ReadOnly(_) | StoreError::Busy(_))
        | EditError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Problem::new(status, e.to_string())
}

/// The caller, who must hold a token covering the collection.
fn writer_of(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Caller, Arc<Snapshot>), Problem> {
    let who = caller(state, headers)?;
    if matches!(who, Caller::Anonymous) {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "changing data needs a token: send it as 'Authorization: Bearer <token>' or as the password of HTTP Basic authentication",
        ));
    }
    let layer = readable(state, &who, id)?;
    if !who.covers(id) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "the token '{}' does not cover collection '{id}'",
                who.actor()
            ),
        ));
    }
    Ok((who, layer))
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Problem> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the limit of {} bytes", limit),
        )
    })
}

/// Makes a committed write visible before its answer goes out. The write has committed
/// whatever happens here: a failure only delays it until the store watcher's next look,
/// and the answer stays a success.
fn show_committed(state: &Arc<AppState>) {
    if let Err(e) = state.live.catch_up() {
        tracing::warn!(error = %e, "a committed write could not be applied at once; the store watcher retries");
    }
}

/// Runs `f` with the write connection (opened on first use), off the async threads.
async fn with_writer<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Arc<AppState>, &Store) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = st
            .writer
            .lock()
            .map_err(|_| Problem::internal("the write connection was poisoned by a crash"))?;
        if guard.is_none() {
            *guard = Some(Store::open(&st.config.store).map_err(|e| {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot write: {e}"),
                )
            })?);
        }
        let store = guard
            .as_ref()
            .ok_or_else(|| Problem::internal("no write connection"))?;
        f(&st, store)
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?
}

/// Runs `f` with the rows of the store (GeoPackage or PostGIS), off the async threads;
/// one edit at a time per process, as SQLite needs and PostGIS's capture takes anyway.
async fn with_rows<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Arc<AppState>, &mut dyn edit::Rows) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    if state.config.pg_schema.is_none() {
        return with_writer(state, move |st, store| {
            f(st, &mut edit::GeoPackageRows(store))
        })
        .await;
    }
    with_pg(state, move |st, store| {
        f(st, &mut crate::pg::edit::PgRows::new(store))
    })
    .await
}

/// Runs `f` on the PostGIS store's write connection (made anew when the database dropped
/// it), off the async threads, one at a time per process.
async fn with_pg<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Arc<AppState>, &mut crate::pg::PgStore) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let schema = state
        .config
        .pg_schema
        .clone()
        .ok_or_else(|| Problem::internal("not a PostGIS store"))?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = st
            .pg_writer
            .lock()
            .map_err(|_| Problem::internal("the write connection was poisoned by a crash"))?;
        // A connection the database dropped (a restart) shows only when used: an empty
        // query first, so an edit does not fail on a connection known to be gone.
        if guard
            .as_mut()
            .is_some_and(|s| s.client().is_valid(std::time::Duration::from_secs(2)).is_err())
        {
            *guard = None;
        }
        if guard.as_ref().is_none_or(crate::pg::PgStore::is_closed) {
            let url = st.config.store.to_string_lossy().into_owned();
            let unavailable = |e: crate::pg::PgError| {
                // Where the database is stays in the log.
                tracing::error!(error = %e, "cannot write to the PostGIS store");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot write: the store cannot be reached; nothing was changed, try again in a minute",
                )
            };
            *guard = Some(crate::pg::PgStore::connect(&url, &schema).map_err(unavailable)?);
        }
        let store = guard
            .as_mut()
            .ok_or_else(|| Problem::internal("no write connection"))?;
        f(&st, store)
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<&str>, Problem> {
    headers
        .get(&name)
        .map(|v| {
            v.to_str()
                .map_err(|_| Problem::bad_request(format!("the {name} header is not text")))
        })
        .transpose()
}

async fn write(
    state: Arc<AppState>,
    id: String,
    op: Op,
    headers: HeaderMap,
    body: Option<Body>,
) -> Result<Response, Problem> {
    let (who, layer) = writer_of(&state, &headers, &id)?;
    let if_match = header_str(&headers, header::IF_MATCH)?.map(str::to_string);
    if state.config.require_if_match && if_match.is_none() && op != Op::Create {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "send If-Match with the ETag of the feature you read, so no one else's change is overwritten",
        ));
    }
    let json: Option<Json> = match body {
        None => None,
        Some(b) => {
            let ct = header_str(&headers, header::CONTENT_TYPE)?.unwrap_or("");
            if !(ct.contains("json") || ct.is_empty()) {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "Content-Type '{ct}' is not accepted; send application/geo+json (PATCH: application/merge-patch+json)"
                    ),
                ));
            }
            let bytes = read_body(b, MAX_FEATURE_BYTES).await?;
            Some(
                serde_json::from_slice(&bytes).map_err(|e| {
                    Problem::bad_request(format!("the body is not valid JSON: {e}"))
                })?,
            )
        }
    };
    let crs = match header_str(
        &headers,
        "content-crs"
            .parse()
            .map_err(|_| Problem::internal("header name"))?,
    )? {
        Some(c) => OutCrs::parse(
            c.trim().trim_start_matches('<').trim_end_matches('>'),
            layer.def.srs_id,
        )?,
        None => OutCrs::crs84(),
    };
    let base = state.base_url(&headers);
    let source = format!(
        "HTTP {} /collections/{id}/items{}",
        match op {
            Op::Create => "POST",
            Op::Replace(_) => "PUT",
            Op::Patch(_) => "PATCH",
            Op::Delete(_) => "DELETE",
        },
        match op {
            Op::Create => String::new(),
            Op::Replace(f) | Op::Patch(f) | Op::Delete(f) => format!("/{f}"),
        }
    );
    let shown = super::access::audience(&who, &layer);
    let seen = shown.clone();
    let cat = state.catalog();
    let outcome = with_rows(&state, move |st, rows| {
        let may_edit = |m: Option<&str>| who.can_edit(&id, m);
        let known = cat.municipalities();
        let srs = layer.def.srs_id;
        let inside = |m: Option<&str>, blob: &[u8]| inside_municipality(&cat, m, blob, srs);
        // Administrators place features anywhere; maintainers inside their municipality.
        let placement: Option<&edit::Placement> = (!who.is_admin()).then_some(&inside);
        let rules: Vec<(String, crate::filter::Pred)> = layer
            .meta
            .rules
            .iter()
            .filter_map(|r| {
                crate::filter::rules::compile(r, &layer.def)
                    .map(|p| (r.clone(), p))
                    .map_err(
                        |e| tracing::warn!(rule = %r, error = %e, "a layer rule cannot be used"),
                    )
                    .ok()
            })
            .collect();
        let e = Edit {
            rules: &rules,
            municipalities: &known,
            placement,
            audience: &seen,
            def: &layer.def,
            municipality_column: layer.meta.municipality_column.as_deref(),
            op,
            body: json.as_ref(),
            body_epsg: crs.epsg.unwrap_or(crate::crs::WGS84),
            body_north_first: crs.north_first(),
            if_match: if_match.as_deref(),
            actor: who.actor(),
            source,
            may_edit: &may_edit,
        };
        let out = edit::apply_to(rows, &e).map_err(|err| problem(&st.config.store, err))?;
        if out.change_id.is_some() {
            st.metrics.write(&id, op.kind());
            show_committed(st);
        }
        Ok((id, out))
    })
    .await?;
    let (id, out) = outcome;
    let mut res = match op {
        Op::Create => StatusCode::CREATED.into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    };
    let h = res.headers_mut();
    if op == Op::Create
        && let Ok(v) = HeaderValue::from_str(&format!("{base}/collections/{id}/items/{}", out.fid))
    {
        h.insert(header::LOCATION, v);
    }
    if let Some(f) = &out.feature
        && let Ok(v) = HeaderValue::from_str(&f.etag(shown.mask(&f.values)))
    {
        h.insert(header::ETAG, v);
    }
    if let Some(c) = out.change_id
        && let Ok(v) = HeaderValue::from_str(&c.to_string())
    {
        h.insert("x-nordgeo-change", v);
    }
    Ok(res)
}

/// Whether a geometry (a blob in the layer's CRS `srs`) lies within `municipality`'s
/// boundary, give or take the boundary layer's margin (default 100 m). Without a
/// boundary layer anything goes.
fn inside_municipality(
    cat: &crate::catalog::Catalog,
    municipality: Option<&str>,
    blob: &[u8],
    srs: i32,
) -> Result<(), String> {
    use geo::{Distance, Euclidean, Geometry, Point};
    let Some((b, col)) = cat.boundaries() else {
        return Ok(());
    };
    let Some(m) = municipality else {
        return Err("the feature names no municipality, so it cannot be placed".into());
    };
    let want = crate::store::functions::slug(m);
    let areas: Vec<&Geometry<f64>> = b
        .slots()
        .into_iter()
        .map(|s| b.feature(s))
        .filter(|f| {
            matches!(&f.values[col], rusqlite::types::Value::Text(t)
                if crate::store::functions::slug(t) == want)
        })
        .filter_map(|f| f.geometry.as_ref())
        .collect();
    if areas.is_empty() {
        return Err(format!(
            "there is no boundary of {m} to place the feature in"
        ));
    }
    let Some(mut g) = crate::geom::gpkg::decode(blob)
        .ok()
        .and_then(|d| d.decoded.geometry)
    else {
        return Ok(());
    };
    let mut xy = Vec::new();
    crate::index::for_each_coord_mut(&mut g, &mut |c| xy.push((c.x, c.y)));
    crate::crs::transform(srs, crate::crs::WEB_MERCATOR, &mut xy).map_err(|e| e.to_string())?;
    let margin = b
        .meta
        .boundary_margin_m
        .unwrap_or(crate::write::settings::DEFAULT_MARGIN_M);
    let mut worst = 0.0f64;
    for (x, y) in xy {
        let p = Point::new(x, y);
        let d = areas
            .iter()
            .map(|a| match a {
                Geometry::Polygon(poly) => Euclidean.distance(&p, poly),
                Geometry::MultiPolygon(mp) => Euclidean.distance(&p, mp),
                _ => f64::INFINITY,
            })
            .fold(f64::INFINITY, f64::min);
        // Web Mercator units are ground metres times 1/cos(latitude).
        let lat = crate::crs::mercator_to_lonlat(x, y).1.to_radians();
        worst = worst.max(d * lat.cos());
    }
    if worst > margin {
        return Err(format!(
            "the geometry lies {worst:.0} m outside the boundary of {m}; features of {m} must lie within it (give or take {margin:.0} m)"
        ));
    }
    Ok(())
}

fn fid_of(id: &str, fid: &str) -> Result<i64, Problem> {
    fid.parse()
        .map_err(|_| Problem::not_found(format!("collection '{id}' has no feature '{fid}'")))
}

/// `POST /collections/{id}/items`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    write(state, id, Op::Create, headers, Some(body)).await
}

/// `PUT /collections/{id}/items/{fid}` and `PATCH` (JSON merge patch), told apart by
/// the method.
pub async fn replace_or_patch(
    State(state): State<Arc<AppState>>,
    Path((id, fid)): Path<(String, String)>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let fid = fid_of(&id, &fid)?;
    let op = if method == axum::http::Method::PATCH {
        Op::Patch(fid)
    } else {
        Op::Replace(fid)
    };
    write(state, id, op, headers, Some(body)).await
}

/// `DELETE /collections/{id}/items/{fid}` (the row stays in the history).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((id, fid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let fid = fid_of(&id, &fid)?;
    write(state, id, Op::Delete(fid), headers, None).await
}

fn allow(methods: &str) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(methods) {
        h.insert(header::ALLOW, v.clone());
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "Authorization, Content-Type, If-Match, If-None-Match, Content-Crs",
        ),
    );
    r
}

/// `OPTIONS /collections/{id}/items`: what this caller may do.
pub async fn options_items(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (who, _) = reader(&state, &headers, &id)?;
    let write = !matches!(who, Caller::Anonymous) && who.covers(&id);
    Ok(allow(if write {
        "GET, HEAD, POST, OPTIONS"
    } else {
        "GET, HEAD, OPTIONS"
    }))
}

/// `OPTIONS /collections/{id}/items/{fid}`.
pub async fn options_item(
    State(state): State<Arc<AppState>>,
    Path((id, fid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (who, layer) = reader(&state, &headers, &id)?;
    let fid = fid_of(&id, &fid)?;
    let f = layer
        .by_fid(fid)
        .ok_or_else(|| Problem::not_found(format!("collection '{id}' has no feature {fid}")))?;
    let m = layer.meta.municipality_column.as_deref().and_then(|col| {
        let c = layer.def.columns.iter().position(|c| c.name == col)?;
        match &f.values[c] {
            rusqlite::types::Value::Text(t) => Some(t.clone()),
            _ => None,
        }
    });
    Ok(allow(if who.can_edit(&id, m.as_deref()) {
        "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
    } else {
        "GET, HEAD, OPTIONS"
    }))
}

/// `POST /collections/{id}/import?mode=&dry-run=&layer=`: a GeoPackage body imported
/// like `nordgeo import`; maintainers import only their municipality's features.
pub async fn import(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let p = Params::parse(raw.as_deref())?;
    p.only(
        &[
            "mode",
            "dry-run",
            "layer",
            "municipality",
            "repair",
            "add-columns",
            "allow-duplicates",
        ],
        "an import",
    )?;
    let who = caller(&state, &headers)?;
    if matches!(who, Caller::Anonymous) {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "importing needs a token",
        ));
    }
    let mode = match p.get("mode").unwrap_or("replace") {
        "create" => crate::import::Mode::Create,
        "replace" => crate::import::Mode::Replace,
        "append" => crate::import::Mode::Append,
        m => {
            return Err(Problem::bad_request(format!(
                "mode '{m}' is not known; use create, replace or append"
            )));
        }
    };
    let flag = |k: &str| -> Result<bool, Problem> {
        match p.get(k) {
            None | Some("false") => Ok(false),
            Some("true") | Some("") => Ok(true),
            Some(o) => Err(Problem::bad_request(format!(
                "{k} must be true or false, not '{o}'"
            ))),
        }
    };
    let (dry_run, repair) = (flag("dry-run")?, flag("repair")?);
    let (add_columns, allow_duplicates) = (flag("add-columns")?, flag("allow-duplicates")?);
    if add_columns && !who.is_admin() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "only an admin token may add columns to a collection (add-columns=true)",
        ));
    }
    let cat = state.catalog();
    let exists = cat.get(&id).is_some();
    if !exists && mode != crate::import::Mode::Create {
        let names: Vec<&str> = cat.layers.iter().map(|l| l.def.table.as_str()).collect();
        return Err(Problem::not_found(
            match crate::import::plan::nearest(&id, names.iter().copied()) {
                Some(n) => format!(
                    "there is no collection '{}'; did you mean '{n}'?",
                    super::problem::clip(&id)
                ),
                None => format!(
                    "there is no collection '{}'; /collections lists them",
                    super::problem::clip(&id)
                ),
            },
        ));
    }
    if exists {
        writer_of(&state, &headers, &id)?;
    } else if !who.is_admin() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!("only an admin token may create the collection '{id}'"),
        ));
    }
    let municipality = match (&who, p.get("municipality")) {
        (Caller::Token(t), _) if !who.is_admin() => t.municipality.clone(),
        (_, m) => m.map(str::to_string),
    };
    if !who.is_admin()
        && (mode != crate::import::Mode::Replace && mode != crate::import::Mode::Append)
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "maintainers may replace or append their municipality's features, not create collections",
        ));
    }
    // A few uploads at a time, each streamed to a file: memory does not grow with them.
    let _slot = state
        .upload_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "other imports are being uploaded right now; try again in a minute",
            )
        })?;
    let file = receive(body, state.config.max_upload_bytes).await?;
    let layer = p.get("layer").map(str::to_string);
    let actor = who.actor().to_string();
    // Dropped with this request (the client went away): the import stops, uncommitted.
    let cancel = CancelOnDrop::default();
    let budget = crate::write::Budget::new(
        state.config.import_timeout,
        vec![cancel.0.clone(), state.stopping.clone()],
    );
    let placement: Option<Arc<crate::import::Placement>> = (!who.is_admin()).then(|| {
        let cat = state.catalog();
        let srs = state
            .catalog()
            .get(&id)
            .map_or(crate::crs::WGS84, |l| l.def.srs_id);
        Arc::new(move |m: Option<&str>, blob: &[u8]| inside_municipality(&cat, m, blob, srs))
            as Arc<crate::import::Placement>
    });
    let opts = crate::import::ImportOptions {
        layer,
        into: Some(id.clone()),
        municipality,
        dry_run: true,
        repair,
        budget,
        add_columns,
        allow_duplicates,
        placement,
        ..crate::import::ImportOptions::new(file.path().to_path_buf(), mode, actor)
    };
    if state.config.pg_schema.is_some() {
        // A PostGIS import checks the file first and takes the store's capture turn
        // only to write (or, to match features, for the copy it matches against).
        let opts = crate::import::ImportOptions { dry_run, ..opts };
        let report = with_pg(&state, move |st, store| {
            let public_store = st.config.store.clone();
            let report = public_report(
                crate::pg::import::run(store, &opts),
                &opts.file,
                &public_store,
            )?;
            if report.0 == StatusCode::OK && !opts.dry_run {
                st.metrics.write(&id, "import");
                show_committed(st);
            }
            Ok(report)
        })
        .await?;
        drop(file);
        drop(cancel);
        let mut r = json_body(&report.1, "application/json");
        *r.status_mut() = report.0;
        return Ok(r);
    }
    // The whole file is checked before the write lock is taken: however slow or hostile
    // the file, other writes go on meanwhile.
    let st = state.clone();
    let checked = opts.clone();
    let report = tokio::task::spawn_blocking(move || {
        let store = crate::store::Store::open_read_only(&st.config.store)
            .map_err(|e| import_problem(e.into(), &checked.file, &st.config.store))?;
        run_import(&store, &checked)
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))??;
    let report = if dry_run || report.0 != StatusCode::OK {
        report
    } else {
        let opts = crate::import::ImportOptions {
            dry_run: false,
            ..opts
        };
        with_writer(&state, move |st, store| {
            let report = run_import(store, &opts)?;
            if report.0 == StatusCode::OK {
                st.metrics.write(&id, "import");
                show_committed(st);
            }
            Ok(report)
        })
        .await?
    };
    drop(file);
    drop(cancel);
    let mut r = json_body(&report.1, "application/json");
    *r.status_mut() = report.0;
    Ok(r)
}

/// An import on `store` as (status, JSON report): 200 when it went through (or was a dry
/// run without rejections), 422 with the report when features were rejected. Nothing
/// in the answer names a path on the server.
fn run_import(
    store: &Store,
    opts: &crate::import::ImportOptions,
) -> Result<(StatusCode, Json), Problem> {
    public_report(
        crate::write::import::run_on(store, opts),
        &opts.file,
        store.path(),
    )
}

/// An import's outcome as (status, JSON report) for HTTP, whatever the store.
fn public_report(
    outcome: Result<crate::import::ImportReport, crate::import::ImportError>,
    file: &std::path::Path,
    store: &std::path::Path,
) -> Result<(StatusCode, Json), Problem> {
    let public = |r: &crate::import::ImportReport| {
        let mut v = serde_json::to_value(r).unwrap_or(Json::Null);
        v["file"] = json!(UPLOAD);
        v["store"] = json!("the store");
        serde_json::from_str(&for_http(&v.to_string())).unwrap_or(v)
    };
    match outcome {
        Ok(r) => Ok((StatusCode::OK, public(&r))),
        Err(crate::import::ImportError::Rejected { report, .. }) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, public(&report)))
        }
        Err(e) => Err(import_problem(e, file, store)),
    }
}

/// What an upload is called in answers.
const UPLOAD: &str = "the uploaded GeoPackage";

/// An import message in the words of the HTTP interface: its parameters instead of the
/// command line's flags.
fn for_http(msg: &str) -> String {
    [
        ("--mode create", "mode=create"),
        ("--mode replace", "mode=replace"),
        ("--mode append", "mode=append"),
        ("--add-columns", "add-columns=true"),
        (
            "import with allow-duplicates",
            "import with allow-duplicates=true",
        ),
        ("--allow-duplicates", "allow-duplicates=true"),
        ("--repair", "repair=true"),
        ("--municipality", "municipality="),
        (
            "choose one with --into NAME",
            "choose another collection in the URL",
        ),
        ("--into", "the collection in the URL"),
        ("pick one with --layer", "pick one with layer=NAME"),
        ("--layer", "layer="),
        ("--target-crs", "a target CRS (command line only)"),
    ]
    .iter()
    .fold(msg.to_string(), |m, (from, to)| m.replace(from, to))
}

/// An import that did not happen as a problem response.
fn import_problem(
    e: crate::import::ImportError,
    file: &std::path::Path,
    store: &std::path::Path,
) -> Problem {
    use crate::import::ImportError;
    use crate::store::StoreError;
    let status = match &e {
        ImportError::Store(StoreError::Interrupted | StoreError::Busy(_)) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ImportError::Store(StoreError::DiskFull(_)) => StatusCode::INSUFFICIENT_STORAGE,
        ImportError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let msg = e
        .to_string()
        .replace(&file.display().to_string(), UPLOAD)
        .replace(&store.display().to_string(), "the store");
    Problem::new(status, for_http(&msg))
}

/// How long an upload may send nothing before it is dropped.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Streams an upload into a temporary file, at most `limit` bytes, each piece within
/// [`BODY_IDLE`]; the file must start like an SQLite database.
async fn receive(body: Body, limit: usize) -> Result<tempfile::NamedTempFile, Problem> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let cannot = |e: std::io::Error| {
        tracing::error!(error = %e, "cannot store an upload");
        Problem::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "the upload cannot be stored on the server right now",
        )
    };
    let tmp = tempfile::Builder::new()
        .prefix("nordgeo-upload-")
        .suffix(".gpkg")
        .tempfile()
        .map_err(cannot)?;
    let mut f = tokio::fs::File::from_std(tmp.reopen().map_err(cannot)?);
    let mut stream = body.into_data_stream();
    let mut size = 0usize;
    let mut head: Vec<u8> = Vec::with_capacity(16);
    loop {
        let chunk = match tokio::time::timeout(BODY_IDLE, stream.next()).await {
            Err(_) => {
                return Err(Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the upload stalled for {} s; send the file again",
                        BODY_IDLE.as_secs()
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(Problem::bad_request(
                    "the upload was cut off; send the file again",
                ));
            }
            Ok(Some(Ok(c))) => c,
        };
        size += chunk.len();
        if size > limit {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the file is larger than the limit of {} MB for imports",
                    limit / (1024 * 1024)
                ),
            ));
        }
        if head.len() < 16 {
            head.extend(chunk.iter().take(16 - head.len()));
        }
        f.write_all(&chunk).await.map_err(cannot)?;
    }
    f.flush().await.map_err(cannot)?;
    if size < 100 || head != b"SQLite format 3\0" {
        return Err(Problem::bad_request(
            "the body is not a GeoPackage (an SQLite file); send the .gpkg file as the request body",
        ));
    }
    Ok(tmp)
}

/// Sets its flag when dropped: a handler future dropped mid-way (client gone, server
/// stopping) stops the write it started.
#[derive(Default)]
struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `GET /collections/{id}/items/{fid}/history`: every change of one feature, with the
/// version it replaced (CRS84), for callers whose token covers the collection.
pub async fn history(
    State(state): State<Arc<AppState>>,
    Path((id, fid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (who, layer) = writer_of(&state, &headers, &id)?;
    let fid = fid_of(&id, &fid)?;
    let aud = super::access::audience(&who, &layer);
    let path = state.config.store.clone();
    let read = move |rows: &mut dyn edit::Rows| {
        let exposed = std::cell::Cell::new(false);
        feature_history(rows, &layer.def, fid, &aud, &exposed)
            .map(|d| (d, exposed.get()))
            .map_err(|e| problem(&path, e))
    };
    let (doc, exposed) = if state.config.pg_schema.is_some() {
        with_rows(&state, move |_, rows| read(rows)).await?
    } else {
        // Read on a connection of its own: a running import must not hold up a history.
        let st = state.clone();
        tokio::task::spawn_blocking(move || {
            let store = Store::open_read_only(&st.config.store)
                .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            read(&mut edit::GeoPackageRows(&store))
        })
        .await
        .map_err(|e| Problem::internal(e.to_string()))??
    };
    if exposed {
        let request = super::audit::request_line(
            "GET",
            &format!("/collections/{id}/items/{fid}/history"),
            None,
        );
        state
            .access_log
            .record(&who, &id, vec![fid], request)
            .await?;
    }
    if doc.as_array().is_some_and(|a| a.is_empty()) {
        return Err(Problem::not_found(format!(
            "feature {fid} of '{id}' has no recorded changes"
        )));
    }
    Ok(json_body(
        &json!({"feature": fid, "collection": id, "changes": doc}),
        "application/json",
    ))
}

/// `POST /collections/{id}/rollback?to=CHANGE`: the collection as it was right after a
/// change (admins only); the rollback is a change of its own.
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (who, layer) = writer_of(&state, &headers, &id)?;
    if !who.is_admin() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "only an admin token may roll a collection back",
        ));
    }
    let p = Params::parse(raw.as_deref())?;
    p.only(&["to", "feature"], "a rollback")?;
    let feature: Option<i64> = match p.get("feature") {
        None => None,
        Some(f) => Some(
            f.parse()
                .map_err(|_| Problem::bad_request(format!("feature '{f}' is not a feature id")))?,
        ),
    };
    let to: i64 = p.get("to").and_then(|t| t.parse().ok()).ok_or_else(|| {
        Problem::bad_request("rollback needs to=<change id> (see nordgeo history)")
    })?;
    let r = crate::write::rollback::Rollback {
        layer: layer.def.table.clone(),
        to,
        feature,
        actor: who.actor().to_string(),
    };
    let table = layer.def.table.clone();
    let done = move |st: &Arc<AppState>, rolled| {
        st.metrics.write(&table, "rollback");
        show_committed(st);
        Ok(rolled)
    };
    let rolled = if state.config.pg_schema.is_some() {
        with_pg(&state, move |st, store| {
            done(
                st,
                crate::pg::rollback::rollback(store, &r).map_err(write_problem)?,
            )
        })
        .await?
    } else {
        with_writer(&state, move |st, store| {
            done(
                st,
                crate::write::rollback::rollback(store, &r).map_err(write_problem)?,
            )
        })
        .await?
    };
    Ok(json_body(
        &serde_json::to_value(&rolled).unwrap_or(Json::Null),
        "application/json",
    ))
}

/// `GET /collections/{id}/changes`: the collection's changes, newest first (at most
/// 200); a maintainer sees those of its municipality. `yours` marks what the caller made.
pub async fn changes(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (who, _) = writer_of(&state, &headers, &id)?;
    let p = Params::parse(raw.as_deref())?;
    p.only(&[], "the list of changes")?;
    let st = state.clone();
    let collection = id.clone();
    let list = tokio::task::spawn_blocking(move || {
        if let Some(schema) = &st.config.pg_schema {
            let unavailable = |e: crate::pg::PgError| {
                tracing::error!(error = %e, "cannot read the change log");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store cannot be reached; try again in a minute",
                )
            };
            let mut store = crate::pg::PgStore::connect(&st.config.store.to_string_lossy(), schema)
                .map_err(unavailable)?;
            return crate::pg::history::list(&mut store, Some(&collection)).map_err(unavailable);
        }
        let store = Store::open_read_only(&st.config.store)
            .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        crate::store::history::list(store.conn(), Some(&collection))
            .map_err(|e| Problem::internal(e.to_string()))
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))??;
    let mine = match &who {
        Caller::Token(t) if !who.is_admin() => {
            t.municipality.as_deref().map(crate::store::functions::slug)
        }
        _ => None,
    };
    let me = who.actor().to_string();
    let out: Vec<Json> = list
        .into_iter()
        .rev()
        .filter(|c| {
            mine.as_ref().is_none_or(|m| {
                c.municipality
                    .as_deref()
                    .is_some_and(|x| &crate::store::functions::slug(x) == m)
            })
        })
        .take(200)
        .map(|c| {
            let yours = c.actor == me;
            let mut v = serde_json::to_value(&c).unwrap_or(Json::Null);
            v["yours"] = json!(yours);
            v
        })
        .collect();
    Ok(json_body(
        &json!({"collection": id, "changes": out}),
        "application/json",
    ))
}

/// `POST /collections/{id}/undo?change=N`: undoes one change when no later change
/// touched its features; maintainers undo their own changes, admins any.
pub async fn undo(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (who, _) = writer_of(&state, &headers, &id)?;
    let p = Params::parse(raw.as_deref())?;
    p.only(&["change"], "an undo")?;
    let change: i64 = p
        .get("change")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            Problem::bad_request("undo needs change=<change id> (see /collections/{id}/changes)")
        })?;
    let actor = who.actor().to_string();
    let only_by = (!who.is_admin()).then(|| actor.clone());
    let layer = id.clone();
    let id_for_metrics = id.clone();
    let done = move |st: &Arc<AppState>, new| {
        st.metrics.write(&id_for_metrics, "undo");
        show_committed(st);
        Ok(new)
    };
    let new = if state.config.pg_schema.is_some() {
        with_pg(&state, move |st, store| {
            let new = crate::pg::rollback::undo(store, &layer, change, &actor, only_by.as_deref())
                .map_err(write_problem)?;
            done(st, new)
        })
        .await?
    } else {
        with_writer(&state, move |st, store| {
            let new =
                crate::write::rollback::undo(store, &layer, change, &actor, only_by.as_deref())
                    .map_err(write_problem)?;
            done(st, new)
        })
        .await?
    };
    Ok(json_body(
        &json!({"change": new, "undoes": change, "collection": id}),
        "application/json",
    ))
}

/// A refused or failed write as a problem response.
fn write_problem(e: crate::write::WriteError) -> Problem {
    use crate::store::StoreError;
    use crate::write::WriteError;
    let status = match &e {
        WriteError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        WriteError::NotFound(_) => StatusCode::NOT_FOUND,
        WriteError::Conflict(_) => StatusCode::CONFLICT,
        WriteError::Forbidden(_) => StatusCode::FORBIDDEN,
        WriteError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        WriteError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
        WriteError::Store(StoreError::NoSuchLayer(_)) => StatusCode::NOT_FOUND,
        WriteError::Store(StoreError::DiskFull(_)) => StatusCode::INSUFFICIENT_STORAGE,
        WriteError::Store(
            StoreError::ReadOnly(_) | StoreError::Busy(_) | StoreError::Interrupted,
        ) => StatusCode::SERVICE_UNAVAILABLE,
        WriteError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Problem::new(status, e.to_string())
}

/// A stored row as a GeoJSON feature in CRS84, with the properties `aud` sees on it;
/// `exposed` is set when that includes internal ones.
fn row_json(
    def: &crate::store::LayerDef,
    fid: i64,
    blob: Option<&[u8]>,
    values: &[rusqlite::types::Value],
    aud: &Audience,
    exposed: &std::cell::Cell<bool>,
) -> Json {
    if aud.exposes(values) {
        exposed.set(true);
    }
    let mask = aud.mask(values);
    let geometry = blob
        .and_then(|b| crate::geom::gpkg::decode(b).ok())
        .and_then(|d| d.decoded.geometry)
        .and_then(|mut g| {
            let mut xy = Vec::new();
            crate::index::for_each_coord_mut(&mut g, &mut |c| xy.push((c.x, c.y)));
            crate::crs::transform(def.srs_id, crate::crs::WGS84, &mut xy).ok()?;
            let mut it = xy.into_iter();
            crate::index::for_each_coord_mut(&mut g, &mut |c| {
                if let Some((x, y)) = it.next() {
                    (c.x, c.y) = (x, y);
                }
            });
            let mut out = String::new();
            super::geojson::write_geometry(&mut out, &g);
            serde_json::from_str::<Json>(&out).ok()
        })
        .unwrap_or(Json::Null);
    let props: serde_json::Map<String, Json> = def
        .columns
        .iter()
        .zip(values)
        .zip(mask)
        .filter(|(_, shown)| **shown)
        .map(|((c, v), _)| (c.name.clone(), super::geojson::value_json(v, c.class())))
        .collect();
    json!({"type": "Feature", "id": fid, "geometry": geometry, "properties": props})
}

/// Every change of one feature, oldest first, with the version before and after it.
fn feature_history(
    rows: &mut dyn edit::Rows,
    def: &crate::store::LayerDef,
    fid: i64,
    aud: &Audience,
    exposed: &std::cell::Cell<bool>,
) -> Result<Json, edit::EditError> {
    let entries = rows.history_of(def, fid)?;
    if entries.is_empty() {
        return Ok(json!([]));
    }
    let current = rows
        .read_row(def, fid)?
        .map(|(b, v)| row_json(def, fid, b.as_deref(), &v, aud, exposed));
    // One entry per change: what it removed ("before") and whether it wrote the fid.
    let mut changes: Vec<(i64, Json, Option<Json>, bool)> = Vec::new();
    for e in entries {
        let before = e
            .before
            .map(|(b, v)| row_json(def, fid, b.as_deref(), &v, aud, exposed));
        match changes.last_mut() {
            Some(last) if last.0 == e.change => {
                if e.added {
                    last.3 = true;
                } else {
                    last.2 = before;
                }
            }
            _ => {
                let meta = json!({"change": e.change, "kind": e.kind, "actor": e.actor,
                                  "at": e.at, "source": e.source});
                changes.push((e.change, meta, before, e.added));
            }
        }
    }
    let mut out = Vec::new();
    for i in 0..changes.len() {
        let after = if !changes[i].3 {
            Json::Null
        } else if let Some(next) = changes.get(i + 1) {
            next.2.clone().unwrap_or(Json::Null)
        } else {
            current.clone().unwrap_or(Json::Null)
        };
        let mut e = changes[i].1.clone();
        e["before"] = changes[i].2.clone().unwrap_or(Json::Null);
        e["after"] = after;
        out.push(e);
    }
    Ok(Json::Array(out))
}
