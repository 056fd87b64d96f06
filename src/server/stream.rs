//! Response bodies written by a blocking producer in pieces: a page or a download is
//! never held whole in memory, and a client that goes away stops the producer.

use axum::body::{Body, Bytes};

/// Size of the pieces a body is sent in.
pub const CHUNK: usize = 64 * 1024;

/// The producer's side: text is written into `buf` and sent when a piece is full.
pub struct Chunks {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    /// Text not sent yet.
    pub buf: String,
}

impl Chunks {
    /// Sends `buf` once it holds a piece; `false` when the client went away.
    pub fn flush_full(&mut self) -> bool {
        self.buf.len() < CHUNK || self.flush()
    }

    /// Sends what `buf` holds; `false` when the client went away.
    pub fn flush(&mut self) -> bool {
        let text = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK + 8192));
        text.is_empty() || self.send(Bytes::from(text))
    }

    /// Sends bytes as they are; `false` when the client went away.
    pub fn send(&mut self, b: Bytes) -> bool {
        self.tx.blocking_send(b).is_ok()
    }
}

/// A body whose pieces `produce` writes on a blocking thread; what is left in the
/// buffer when it returns is sent last.
pub fn body(produce: impl FnOnce(&mut Chunks) + Send + 'static) -> Body {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let mut c = Chunks {
            tx,
            buf: String::with_capacity(CHUNK + 8192),
        };
        produce(&mut c);
        c.flush();
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|c| c.map(Ok::<_, std::convert::Infallible>))
    });
    Body::from_stream(stream)
}
