//! The deadline for a connection's next request head, without a timer per request.
//!
//! hyper's own header timeout arms a timer for every request and disarms it when the
//! head has arrived: a boxed sleep registered in and removed from the runtime's timer
//! wheel, ~3 % of a cached tile request. Here each connection has one watchdog that
//! sleeps until the connection has been idle (no request running, no response being
//! sent) for the limit and then closes it; requests only bump two counters and note the
//! time their response finished. The deadline is the same: a client that has not sent a
//! whole head within the limit of the connection opening or of its last response
//! finishing is cut off (slow-header and idle keep-alive connections alike).
//!
//! A response's body can be done while hyper still holds its last bytes for a client
//! that reads slowly: the socket ([`Watched`]) marks the connection busy while a write
//! waits, and a write that goes through after waiting restarts the idle time.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Nanoseconds since the first call (a process-wide clock that fits an atomic).
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What one connection is doing, shared by its requests and its watchdog.
#[derive(Debug)]
pub struct Activity {
    /// Requests whose head has arrived.
    started: AtomicU64,
    /// Responses sent to the end or dropped.
    finished: AtomicU64,
    /// When the connection opened, its last response finished or a waiting write went
    /// through (`now_ns`).
    since: AtomicU64,
    /// A write is waiting for the client to read.
    blocked: AtomicBool,
}

impl Activity {
    /// A connection that has just opened.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            since: AtomicU64::new(now_ns()),
            blocked: AtomicBool::new(false),
        })
    }

    /// A request's head has arrived.
    pub fn start(&self) {
        self.started.fetch_add(1, Ordering::AcqRel);
    }

    fn finish(&self) {
        self.since.store(now_ns(), Ordering::Release);
        self.finished.fetch_add(1, Ordering::AcqRel);
    }

    /// Notes how a write went: waiting marks the connection busy; going through after
    /// waiting restarts its idle time. (A write that never waits reads no clock.)
    fn wrote<T>(&self, p: Poll<T>) -> Poll<T> {
        if p.is_pending() {
            self.blocked.store(true, Ordering::Release);
        } else if self.blocked.load(Ordering::Relaxed) {
            self.since.store(now_ns(), Ordering::Release);
            self.blocked.store(false, Ordering::Release);
        }
        p
    }

    /// Since when the connection has been waiting for a head; `None` while a request
    /// runs or its response is being sent.
    fn idle_since(&self) -> Option<u64> {
        if self.blocked.load(Ordering::Acquire) {
            return None;
        }
        // `finished` first: a request counted in it is counted in `started` too.
        let finished = self.finished.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        (started == finished).then(|| self.since.load(Ordering::Acquire))
    }
}

/// Resolves once the connection has waited `limit` for a request head; the caller then
/// drops the connection.
pub async fn expired(activity: Arc<Activity>, limit: Duration) {
    let limit_ns = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    loop {
        let wait = match activity.idle_since() {
            Some(since) => {
                let (due, now) = (since.saturating_add(limit_ns), now_ns());
                if now >= due {
                    return;
                }
                Duration::from_nanos(due - now)
            }
            // Busy: a request cannot become idle sooner than the limit after it ends.
            None => limit,
        };
        tokio::time::sleep(wait).await;
    }
}

/// A connection's socket that tells its [`Activity`] when writes wait for the client.
pub struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    /// Wraps the socket of the connection of `activity`.
    pub fn new(io: S, activity: Arc<Activity>) -> Self {
        Watched { io, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        me.activity.wrote(Pin::new(&mut me.io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        me.activity
            .wrote(Pin::new(&mut me.io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        me.activity.wrote(Pin::new(&mut me.io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A response body that tells its connection's [`Activity`] when it is done (sent to
/// the end or dropped with the connection).
pub struct Tracked<B> {
    body: B,
    activity: Arc<Activity>,
}

impl<B> Tracked<B> {
    /// Wraps `body` of a response on the connection of `activity`.
    pub fn new(body: B, activity: Arc<Activity>) -> Self {
        Tracked { body, activity }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.activity.finish();
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_idle_connection_expires_after_the_limit_and_a_busy_one_does_not() {
        let limit = Duration::from_millis(300);
        let a = Activity::new();
        // Busy: a request runs for three limits; the watchdog must not fire meanwhile.
        a.start();
        let watch = tokio::spawn(expired(a.clone(), limit));
        tokio::time::sleep(3 * limit).await;
        assert!(!watch.is_finished());
        drop(Tracked::new((), a.clone()));
        // Idle from now: not yet after a third of the limit, gone well after it.
        tokio::time::sleep(limit / 3).await;
        assert!(!watch.is_finished());
        let done = tokio::time::timeout(4 * limit, watch).await;
        assert!(done.is_ok(), "an idle connection outlived its deadline");
    }
}
