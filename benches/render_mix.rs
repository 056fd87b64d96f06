//! Render-only timing of a tile list, without HTTP: where the uncached tile path spends
//! its time, per layer and zoom. Run by hand (`perf record` works on it too):
//!
//! `cargo bench --bench render_mix -- STORE.gpkg PATHS.txt [SECONDS | xPASSES]`
//!
//! With `xPASSES` it renders the list that many times (a fixed amount of work, for
//! comparing builds by CPU time or `perf stat` cycles on a noisy machine).
//!
//! PATHS.txt holds `/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}` lines, as
//! the peer harness's mix does.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use nordgeo::catalog::Catalog;
use nordgeo::store::Store;
use nordgeo::tiles::{self, TileId, TileOptions};

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let (Some(store), Some(paths)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: render_mix STORE.gpkg PATHS.txt [SECONDS]");
        return;
    };
    let limit = args.get(3).map_or("5", |s| s.as_str());
    let (secs, passes) = match limit.strip_prefix('x') {
        Some(n) => (f64::INFINITY, n.parse::<u64>().unwrap_or(1)),
        None => (limit.parse::<f64>().unwrap_or(5.0), u64::MAX),
    };
    let store = Store::open_read_only(std::path::Path::new(store)).expect("open store");
    let cat = Catalog::load(&store).expect("load catalog");
    let text = std::fs::read_to_string(paths).expect("read paths");
    let tiles: Vec<(String, TileId)> = text
        .lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.trim().split('/').collect();
            // ["", "collections", layer, "tiles", tms, z, y, x]
            let n = |i: usize| p.get(i)?.parse::<u32>().ok();
            Some((p.get(2)?.to_string(), TileId::new(n(5)?, n(7)?, n(6)?)?))
        })
        .collect();
    let opts = TileOptions::default();
    // (layer, z) -> (tiles, bytes, time)
    let mut stats: BTreeMap<(String, u8), (u64, u64, Duration)> = BTreeMap::new();
    let started = Instant::now();
    let mut n = 0u64;
    let mut pass = 0;
    let mut checksum = 0u64;
    while started.elapsed().as_secs_f64() < secs && pass < passes {
        pass += 1;
        for (layer, t) in &tiles {
            let Some(s) = cat.get(layer) else { continue };
            let t0 = Instant::now();
            let bytes = black_box(tiles::render(&[(&s.layer, &s.tiles)], *t, opts));
            if pass == 1 {
                // Two builds that should write the same tiles show the same checksum.
                checksum = twox_hash::XxHash3_64::oneshot_with_seed(checksum, &bytes);
            }
            let e = stats.entry((layer.clone(), t.z)).or_default();
            e.0 += 1;
            e.1 += bytes.len() as u64;
            e.2 += t0.elapsed();
            n += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{n} tiles in {wall:.2} s: {:.0} tiles/s on one thread",
        n as f64 / wall
    );
    println!("checksum of the first pass: {checksum:016x}");
    println!("| layer | z | tiles | mean bytes | µs/tile |");
    for ((layer, z), (k, b, d)) in &stats {
        println!(
            "| {layer} | {z} | {k} | {} | {:.1} |",
            b / k,
            d.as_secs_f64() * 1e6 / *k as f64
        );
    }
}
