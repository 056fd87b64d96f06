//! Tile generation benchmarks on the generated region data (scale 1 under `cargo bench`,
//! a tiny scale when `cargo test --all-targets` runs them once as a smoke test).
//!
//! `cargo bench --bench tiles` — report ratios from one run; the machine is shared.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use nordgeo::catalog::Catalog;
use nordgeo::store::Store;
use nordgeo::tiles::mvt::{GeomEncoder, GeomType, LayerWriter, MvtValue};
use nordgeo::tiles::{self, TileId, TileOptions};

fn dataset() -> PathBuf {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1.0 } else { 0.01 };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).expect("bench data dir");
    let path = dir.join(format!("region-{scale}.gpkg"));
    if !path.exists() {
        nordgeo::generate::generate(&path, scale, 20240607).expect("generate bench data");
    }
    path
}

/// z/x/y of the tile around Werther (10.75E 51.53N).
fn tile_at(z: u32) -> TileId {
    let n = 2f64.powi(z as i32);
    let (lon, lat) = (10.75f64, 51.53f64);
    let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
    let y =
        ((1.0 - lat.to_radians().tan().asinh() / std::f64::consts::PI) / 2.0 * n).floor() as u32;
    TileId::new(z, x, y).expect("tile in range")
}

fn benches(c: &mut Criterion) {
    let path = dataset();
    let store = Store::open_read_only(&path).expect("open bench data");

    let mut g = c.benchmark_group("index");
    g.sample_size(10);
    g.bench_function("build catalog (all layers)", |b| {
        b.iter(|| black_box(Catalog::load(&store).expect("load")))
    });
    g.finish();

    let cat = Catalog::load(&store).expect("load");
    let opts = TileOptions::default();
    let mut g = c.benchmark_group("tile");
    g.sample_size(20);
    for layer in ["parcels", "trails", "parking", "childcare"] {
        let Some(l) = cat.get(layer) else { continue };
        for z in [8, 10, 13, 14, 16] {
            let t = tile_at(z);
            g.bench_function(format!("{layer} z{z}"), |b| {
                b.iter(|| black_box(tiles::render(&[(&l.layer, &l.tiles)], t, opts)))
            });
        }
    }
    g.finish();

    // Encoding alone: 10,000 lines of 20 points with an id and 2 tags (../shared/deps.md).
    let lines: Vec<Vec<[i32; 2]>> = (0..10_000)
        .map(|i| {
            (0..20)
                .map(|k| [(i * 7 + k * 13) % 4096, (i * 3 + k * 29) % 4096])
                .collect()
        })
        .collect();
    c.bench_function("encode 10k lines x 20 points", |b| {
        b.iter(|| {
            let mut w = LayerWriter::new("trails", 4096);
            let mut g = GeomEncoder::default();
            for (i, l) in lines.iter().enumerate() {
                g.reset();
                g.line(l);
                let props = [
                    ("name", MvtValue::Str(format!("Weg {}", i % 300))),
                    ("difficulty", MvtValue::Int((i % 3) as i64)),
                ];
                w.add(Some(i as u64), GeomType::LineString, &g, &props);
            }
            let mut out = Vec::new();
            w.finish(&mut out);
            black_box(out)
        })
    });
}

criterion_group!(tile_benches, benches);
criterion_main!(tile_benches);
