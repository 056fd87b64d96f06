//! The ceiling for any Rust HTTP tile server on this machine: bare axum (the same
//! versions, runtime and allocator as nordgeo) answering every path with a fixed 12 KB
//! body, or, given a directory of tiles `Z/X/Y`, with each tile's bytes from memory (the
//! ceiling for serving an archive's tiles as stored). `scripts/bench_ceiling.sh` and
//! `scripts/bench_archives.sh` run it beside nordgeo with the same wrk mix, so a change
//! to the hot path is measured against what the stack itself allows.
//!
//!   cargo build --release --example ceiling && target/release/examples/ceiling 127.0.0.1:8081 [TILE_DIR]
//!
//! Built as an example (see Cargo.toml) so `cargo test --all-targets` compiles it without
//! starting a server.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

/// Every file under `dir` as `"/z/x/y"` → bytes.
fn load_tiles(dir: &Path) -> HashMap<String, Bytes> {
    let mut tiles = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read tile dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir").to_string_lossy();
                let body = std::fs::read(&p).expect("read tile");
                tiles.insert(format!("/{rel}"), Bytes::from(body));
            }
        }
    }
    tiles
}

fn tile_response(body: Bytes) -> Response {
    let gzip = body.starts_with(&[0x1f, 0x8b]);
    let mut r: Response = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.mapbox-vector-tile"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:8081".into());
    let app = match args.next() {
        Some(dir) => {
            let tiles = Arc::new(load_tiles(Path::new(&dir)));
            println!("{} tiles from {dir}", tiles.len());
            axum::Router::new().fallback(move |uri: Uri| {
                let tiles = tiles.clone();
                async move {
                    // The tile is the path's last three segments, whatever the prefix.
                    let path = uri.path();
                    let key = path
                        .rmatch_indices('/')
                        .nth(2)
                        .map_or(path, |(i, _)| &path[i..]);
                    match tiles.get(key) {
                        Some(b) => tile_response(b.clone()),
                        None => axum::http::StatusCode::NOT_FOUND.into_response(),
                    }
                }
            })
        }
        None => {
            let body = Bytes::from(vec![0x1a_u8; 12 * 1024]);
            axum::Router::new().fallback(move || {
                let body = body.clone();
                async move { tile_response(body) }
            })
        }
    };
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
