//! The ceiling for any Rust HTTP tile server on this machine: bare axum (the same
//! versions, runtime and allocator as nordgeo) answering every path with a fixed 12 KB
//! body. `scripts/bench_ceiling.sh` runs it beside nordgeo with the same wrk mix, so a
//! change to the hot path is measured against what the stack itself allows.
//!
//!   cargo build --release --example ceiling && target/release/examples/ceiling 127.0.0.1:8081
//!
//! Built as an example (see Cargo.toml) so `cargo test --all-targets` compiles it without
//! starting a server.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

fn main() {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let body = Bytes::from(vec![0x1a_u8; 12 * 1024]);
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            let mut r: Response = body.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.mapbox-vector-tile"),
            );
            r
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
        println!(
            "listening on http://{}",
            listener.local_addr().expect("addr")
        );
        axum::serve(listener, app).await.expect("serve");
    });
}
