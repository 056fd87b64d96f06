//! Prometheus metrics (`/metrics`), request logging and the per-request time limit:
//! one middleware sees every request, its route, status and duration.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::Problem;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    fn add(&mut self, o: &Histogram) {
        for (c, n) in self.counts.iter_mut().zip(&o.counts) {
            *c += n;
        }
        self.sum += o.sum;
        self.count += o.count;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// Counts and latency of one route.
#[derive(Default)]
struct Route {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

#[derive(Default)]
struct Inner {
    routes: BTreeMap<String, Route>,
    tiles: BTreeMap<u8, Histogram>,

    writes: BTreeMap<(String, String), u64>,
}

impl Inner {
    fn add(&mut self, o: &Inner) {
        for (name, r) in &o.routes {
            let mine = self.routes.entry(name.clone()).or_default();
            for (s, n) in &r.statuses {
                *mine.statuses.entry(*s).or_default() += n;
            }
            mine.latency.add(&r.latency);
        }
        for (z, h) in &o.tiles {
            self.tiles.entry(*z).or_default().add(h);
        }
        for (k, n) in &o.writes {
            *self.writes.entry(k.clone()).or_default() += n;
        }
    }
}

/// Shards of the counters: each thread counts into its own, so the workers do not
/// take turns on one lock and one cache line per request; /metrics adds them up.
const SHARDS: usize = 8;

/// One thread's counters, on cache lines of their own.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    inner: Mutex<Inner>,
    /// Tile cache hits and misses.
    cache: [AtomicU64; 2],
}

/// Counters and histograms, rendered in the Prometheus text format.
pub struct Metrics(Box<[Shard]>);

impl Default for Metrics {
    fn default() -> Self {
        Metrics((0..SHARDS).map(|_| Shard::default()).collect())
    }
}

impl Metrics {
    fn shard(&self) -> &Shard {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        }
        &self.0[MINE.with(|m| *m)]
    }

    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut m) = self.shard().inner.lock() {
            f(&mut m);
        }
    }

    /// Every shard's counters added up.
    fn total(&self) -> (Inner, [u64; 2]) {
        let mut all = Inner::default();
        let mut cache = [0; 2];
        for s in &self.0 {
            if let Ok(m) = s.inner.lock() {
                all.add(&m);
            }
            for (c, a) in cache.iter_mut().zip(&s.cache) {
                *c += a.load(Ordering::Relaxed);
            }
        }
        (all, cache)
    }

    /// One rendered tile: its zoom and how long it took. (Labelled by zoom only: a label
    /// per layer list would let requests grow the metrics without bound.)
    pub fn tile_rendered(&self, z: u8, took: Duration) {
        self.with(|m| m.tiles.entry(z).or_default().observe(took.as_secs_f64()));
    }

    /// A tile cache lookup.
    pub fn cache_lookup(&self, hit: bool) {
        // Every cached tile counts here: an atomic, not the shard's lock.
        self.shard().cache[usize::from(!hit)].fetch_add(1, Ordering::Relaxed);
    }

    /// A write (edit kind or import outcome) on a collection.
    pub fn write(&self, collection: &str, kind: &str) {
        self.with(|m| {
            *m.writes
                .entry((collection.into(), kind.into()))
                .or_default() += 1
        });
    }

    fn request(&self, route: &str, status: u16, took: Duration) {
        self.with(|m| {
            // Look up by &str first: every request counts, a String only for a new route.
            let r = match m.routes.get_mut(route) {
                Some(r) => r,
                None => m.routes.entry(route.to_string()).or_default(),
            };
            *r.statuses.entry(status).or_default() += 1;
            r.latency.observe(took.as_secs_f64());
        });
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics` on the main address: for administrators only (the figures name every
/// layer, restricted ones too).
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    let who = super::access::caller(&state, &headers)?;
    if !who.is_admin() {
        return Err(Problem::new(
            if matches!(who, crate::auth::Caller::Anonymous) {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FORBIDDEN
            },
            "/metrics needs an admin token, or is served on the address set with metrics_bind",
        ));
    }
    Ok(render(&state))
}

/// `GET /metrics` on the separate `metrics_bind` address, without a token.
pub async fn metrics_open(State(state): State<Arc<AppState>>) -> Response {
    render(&state)
}

fn render(state: &AppState) -> Response {
    let mut out = String::new();
    let (m, cache) = state.metrics.total();
    out.push_str("# HELP nordgeo_http_requests_total HTTP requests by route and status.\n# TYPE nordgeo_http_requests_total counter\n");
    for (route, r) in &m.routes {
        for (status, n) in &r.statuses {
            let _ = writeln!(
                out,
                "nordgeo_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
    }
    out.push_str("# HELP nordgeo_http_request_duration_seconds Time to the response head, by route.\n# TYPE nordgeo_http_request_duration_seconds histogram\n");
    for (route, r) in &m.routes {
        r.latency.write(
            &mut out,
            "nordgeo_http_request_duration_seconds",
            &format!("route=\"{}\"", escape(route)),
        );
    }
    out.push_str("# HELP nordgeo_tile_render_seconds Tile generation time by zoom.\n# TYPE nordgeo_tile_render_seconds histogram\n");
    for (z, h) in &m.tiles {
        h.write(
            &mut out,
            "nordgeo_tile_render_seconds",
            &format!("zoom=\"{z}\""),
        );
    }
    let _ = write!(
        out,
        "# HELP nordgeo_tile_cache_hits_total Tile cache hits.\n# TYPE nordgeo_tile_cache_hits_total counter\nnordgeo_tile_cache_hits_total {}\n\
# HELP nordgeo_tile_cache_misses_total Tile cache misses.\n# TYPE nordgeo_tile_cache_misses_total counter\nnordgeo_tile_cache_misses_total {}\n",
        cache[0], cache[1]
    );
    out.push_str("# HELP nordgeo_writes_total Edits and imports by collection and kind.\n# TYPE nordgeo_writes_total counter\n");
    for ((c, k), n) in &m.writes {
        let _ = writeln!(
            out,
            "nordgeo_writes_total{{collection=\"{}\",kind=\"{}\"}} {n}",
            escape(c),
            escape(k)
        );
    }
    let (tiles, bytes) = state.cache.usage();
    let _ = write!(
        out,
        "# HELP nordgeo_tile_cache_bytes Bytes held by the tile cache.\n# TYPE nordgeo_tile_cache_bytes gauge\nnordgeo_tile_cache_bytes {bytes}\n\
# HELP nordgeo_tile_cache_tiles Tiles held by the tile cache.\n# TYPE nordgeo_tile_cache_tiles gauge\nnordgeo_tile_cache_tiles {tiles}\n\
# HELP nordgeo_index_features Features in each layer's in-memory index.\n# TYPE nordgeo_index_features gauge\n"
    );
    for l in &state.catalog().layers {
        let _ = writeln!(
            out,
            "nordgeo_index_features{{layer=\"{}\"}} {}",
            escape(&l.def.table),
            l.len()
        );
    }
    let mut r = out.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Times every request (with a limit), counts it by route and status, and logs it.
pub async fn track(state: &AppState, req: Request, next: Next) -> Response {
    // MatchedPath and Uri clone cheaply (shared buffers): nothing is copied per request.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let uri = req.uri().clone();
    measured(
        state,
        route,
        &method,
        &uri,
        super::access::gate(state, req, next),
    )
    .await
}

/// Runs `answer` (reads within the request time limit), counts the answer by route and
/// status, and logs it: for the router's requests and the hot path's alike.
pub async fn measured(
    state: &AppState,
    route: &str,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    answer: impl Future<Output = Response>,
) -> Response {
    let started = Instant::now();
    let limit = state.config.request_timeout;
    // Only reads are cut off here: cutting off a write would answer "failed" for a change
    // that still commits. Writes carry their own budget and roll back when it runs out.
    let read = matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let mut answer = std::pin::pin!(answer);
    // A cached tile is ready at the first poll: only an answer that has to wait gets a
    // timer, which takes the runtime's handle and reads the clock when made.
    let first = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await;
    let res = if let Poll::Ready(r) = first {
        r
    } else if read {
        match tokio::time::timeout_at((started + limit).into(), answer).await {
            Ok(r) => r,
            Err(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the request took longer than {} s and was stopped; try a smaller bbox or limit",
                    limit.as_secs()
                ),
            )
            .into_response(),
        }
    } else {
        answer.await
    };
    let took = started.elapsed();
    let status = res.status().as_u16();
    state.metrics.request(route, status, took);
    let ms = took.as_secs_f64() * 1000.0;
    // Every request at debug (NORDGEO_LOG=nordgeo::access=debug); server errors, slow
    // requests and refused tokens always, so a busy portal does not spend its time logging.
    if status >= 500 || ms > 1000.0 {
        tracing::warn!(target: "nordgeo::access", %method, path = %uri.path(), route = %route, status, ms, "request");
    } else if status == 401 || status == 403 {
        // Refused access is worth a line; other 4xx (stale ETags, bad bboxes) come in
        // floods from one misbehaving client and are counted in /metrics instead.
        tracing::info!(target: "nordgeo::access", %method, path = %uri.path(), route = %route, status, ms, "request");
    } else {
        tracing::debug!(target: "nordgeo::access", %method, path = %uri.path(), route = %route, status, ms, "request");
    }
    res
}
