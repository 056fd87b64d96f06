//! Accepting connections: every anonymous client may be hostile, so a connection gets a
//! deadline for its request headers, the number of open connections is capped (one
//! over the cap is answered 503 and closed at once), and the base URL links are built
//! from is decided here, from trusted sources only — never from a header a client can
//! set, unless the client is a configured reverse proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Request, header};
use futures_util::FutureExt;
use futures_util::future::Either;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::{AppState, idle};

/// The header the trusted base URL travels in from here to the handlers; whatever a
/// client sends under this name is removed first.
pub static BASE_HEADER: HeaderName = HeaderName::from_static("x-nordgeo-internal-base");

/// How long running requests may finish after SIGTERM before the process ends anyway.
const DRAIN: Duration = Duration::from_secs(10);

/// The base URL of a request: the configured public URL; else, from a trusted proxy, its
/// `Forwarded` / `X-Forwarded-*` headers; else the address the client connected to.
fn base_url(
    state: &AppState,
    peer: IpAddr,
    local: SocketAddr,
    h: &axum::http::HeaderMap,
) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let direct = format!("http://{local}");
    if !state.config.trusted_proxies.contains(&peer) {
        return direct;
    }
    let get = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut proto = get("x-forwarded-proto");
    let mut host = get("x-forwarded-host").or_else(|| get(header::HOST.as_str()));
    if let Some(fwd) = get("forwarded") {
        for part in fwd.split(',').next().unwrap_or("").split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                let v = v.trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "proto" => proto = Some(v),
                    "host" => host = Some(v),
                    _ => {}
                }
            }
        }
    }
    let host = host.filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    });
    match host {
        Some(host) => {
            let proto = if proto.as_deref() == Some("https") {
                "https"
            } else {
                "http"
            };
            format!("{proto}://{host}")
        }
        None => direct,
    }
}

/// Lets this process keep as many sockets open as it is allowed to (the soft limit is
/// often 1,024, which a few slow clients exhaust).
fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// A thread serving connections: its runtime and how many connections it holds.
struct Worker {
    handle: tokio::runtime::Handle,
    open: Arc<AtomicUsize>,
}

impl Worker {
    fn on(rt: &tokio::runtime::Runtime) -> Self {
        Worker {
            handle: rt.handle().clone(),
            open: Arc::default(),
        }
    }
}

/// Holds one of a worker's connections; gives it back when the connection ends.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs the server until Ctrl-C or SIGTERM: stops accepting, stops running writes (they
/// roll back), lets the other requests finish for a bounded time.
///
/// One single-threaded runtime per core; each accepted connection goes to the one
/// holding the fewest and stays there. A request then never wakes another thread: with
/// one work-stealing runtime for all, a third of the requests woke a parked worker
/// through a futex, and an uncached tile cost 8 % more CPU (README, Benchmarks). Work
/// that may take long (low-zoom tiles, queries, writes) runs on a blocking pool either
/// way, so a connection's thread is not held up by another's long request.
pub fn run(state: Arc<AppState>) -> std::io::Result<()> {
    raise_open_files_limit();
    let listener = std::net::TcpListener::bind(state.config.bind)?;
    listener.set_nonblocking(true)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = runtime()?;
    let mut workers = vec![Worker::on(&rt)];
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut others = Vec::with_capacity(threads);
    for n in 1..threads {
        let rt = runtime()?;
        workers.push(Worker::on(&rt));
        let mut done = done_rx.clone();
        others.push(
            std::thread::Builder::new()
                .name(format!("nordgeo-serve-{n}"))
                .spawn(move || {
                    // A current-thread runtime runs its connections only inside block_on.
                    rt.block_on(async move {
                        let _ = done.wait_for(|d| *d).await;
                    });
                    rt.shutdown_timeout(Duration::from_secs(2));
                })?,
        );
    }
    let served = rt.block_on(serve(state, listener, workers));
    let _ = done_tx.send(true);
    // A blocking task still running (a query past its time) must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(2));
    for t in others {
        if t.join().is_err() {
            tracing::error!("a serving thread panicked");
        }
    }
    served
}

/// Accepts connections on this thread and hands each to the worker holding the fewest,
/// until Ctrl-C or SIGTERM; then lets them finish for at most [`DRAIN`].
async fn serve(
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    workers: Vec<Worker>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "nordgeo listening");
    // Tests and scripts read this line to find the port when binding to :0.
    println!("listening on http://{addr}");
    if let Some(m) = state.config.metrics_bind {
        let metrics = tokio::net::TcpListener::bind(m).await?;
        tracing::info!(addr = %metrics.local_addr()?, "metrics listening");
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(super::metrics::metrics_open))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(metrics, app).await });
    }
    let app = super::router(state.clone());
    let open = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors or memory: wait instead of spinning on accept.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let mut s = stream;
                let _ = s
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(addr);
        // A direct client's base URL is the same for every request on the connection:
        // made once here, not per request (only behind a trusted proxy do headers vary).
        let direct = (state.config.public_url.is_none()
            && !state.config.trusted_proxies.contains(&peer.ip()))
        .then(|| HeaderValue::from_str(&format!("http://{local}")).ok())
        .flatten();
        let Some(worker) = workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            continue;
        };
        // Moved to the worker's runtime: its reactor is to wake it, not this thread.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        let conn = Connection {
            state: state.clone(),
            app: app.clone(),
            peer,
            local,
            direct,
            held: (permit, Held(worker.open.clone())),
        };
        let watcher = graceful.watcher();
        worker.handle.spawn(async move {
            if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                conn.serve(stream, watcher).await;
            }
        });
    }
    tracing::info!("shutting down");
    state.stopping.store(true, Ordering::Relaxed);
    tokio::select! {
        _ = graceful.shutdown() => {},
        _ = tokio::time::sleep(DRAIN) => {
            tracing::warn!("requests still running after {} s; stopping anyway", DRAIN.as_secs());
        }
    }
    Ok(())
}

/// One accepted connection and what serving it needs.
struct Connection {
    state: Arc<AppState>,
    app: axum::Router,
    peer: SocketAddr,
    local: SocketAddr,
    /// The base URL of a direct client, made once for the connection.
    direct: Option<HeaderValue>,
    /// Its place under the connection cap and on its worker, given back when it ends.
    held: (tokio::sync::OwnedSemaphorePermit, Held),
}

impl Connection {
    /// Serves requests until the client closes, its header deadline passes, or the
    /// server's drain is over.
    async fn serve(
        self,
        stream: tokio::net::TcpStream,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let Connection {
            state: st,
            app,
            peer,
            local,
            direct,
            held,
        } = self;
        let limit = st.config.header_timeout;
        let activity = idle::Activity::new();
        let act = activity.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            act.start();
            let act = act.clone();
            let track = move |res: axum::response::Response| {
                Ok::<_, std::convert::Infallible>(res.map(|b| idle::Tracked::new(b, act)))
            };
            let mut req = match super::hot::answer(&st, req) {
                Ok(answer) => return Either::Left(answer.map(track)),
                Err(req) => req,
            };
            let base = match &direct {
                Some(v) => Some(v.clone()),
                None if st.config.public_url.is_some() => None,
                None => HeaderValue::from_str(&base_url(&st, peer.ip(), local, req.headers())).ok(),
            };
            let h = req.headers_mut();
            h.remove(&BASE_HEADER);
            if let Some(v) = base {
                h.insert(BASE_HEADER.clone(), v);
            }
            let mut app = app.clone();
            Either::Right(async move {
                let res = tower_service::Service::call(&mut app, req).await;
                res.and_then(track)
            })
        });
        // No hyper timer: the header deadline is the connection's watchdog (idle.rs).
        let conn = hyper::server::conn::http1::Builder::new()
            .header_read_timeout(None)
            .serve_connection(
                TokioIo::new(idle::Watched::new(stream, activity.clone())),
                service,
            );
        tokio::select! {
            _ = watcher.watch(conn) => {},
            // Dropping the connection closes it.
            _ = idle::expired(activity, limit) => {},
        }
        drop(held);
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
