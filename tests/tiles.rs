//! Vector tiles: an independent decoder's spec and content checks over a z0-z16 sweep,
//! targeted cache invalidation, GDAL's MVT driver, and the 500 KB bound on big data.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// z/y/x of the tile containing lon/lat at zoom z.
fn tile_of(lon: f64, lat: f64, z: u32) -> (u32, u32, u32) {
    let n = 2f64.powi(z as i32);
    let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
    let y =
        ((1.0 - lat.to_radians().tan().asinh() / std::f64::consts::PI) / 2.0 * n).floor() as u32;
    (z, y, x)
}

#[test]
fn sweep_passes_an_independent_decoder_and_matches_the_source() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let o = Command::new(venv_python())
        .arg(root().join("tests/tools/check_tiles.py"))
        .arg(&srv.base)
        .args(["--zmax", "16", "--per-zoom", "60"])
        .output()
        .unwrap();
    let t = text(&o);
    println!("{t}");
    assert!(o.status.success(), "{t}");
}

/// Lines in tiles are what GEOS's Douglas–Peucker (shapely) keeps of the source line,
/// read by pyogrio and projected by pyproj, at each zoom's tolerance: nordgeo selects
/// vertices by an importance computed once per snapshot, not by running DP per tile.
#[test]
fn line_simplification_equals_geos_douglas_peucker() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let o = Command::new(venv_python())
        .arg(root().join("tests/tools/check_simplify.py"))
        .arg(&srv.base)
        .arg(root().join("data/sample.gpkg"))
        .arg("trails")
        .output()
        .unwrap();
    let t = text(&o);
    println!("{t}");
    assert!(o.status.success(), "{t}");
}

#[test]
fn tile_responses_have_the_right_headers_and_errors() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let (z, y, x) = tile_of(10.75, 51.53, 14);
    let url = format!(
        "{}/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}",
        srv.base
    );
    let r = get(&url, &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.mapbox-vector-tile")
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let etag = r.header("etag").unwrap().to_string();
    let r = get(&url, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    let r = get(&url, &[]);
    assert!(r.header("content-encoding").is_none() && r.body.len() > 100);
    let raw = r.body.clone();
    // Brotli when preferred, and it decodes to the same tile; "gzip;q=0" is honoured.
    let r = get(&url, &[("Accept-Encoding", "br, gzip")]);
    assert_eq!(r.header("content-encoding"), Some("br"));
    let mut unbr = Vec::new();
    brotli::BrotliDecompress(&mut &r.body[..], &mut unbr).unwrap();
    assert_eq!(unbr, raw);
    let r = get(&url, &[("Accept-Encoding", "gzip;q=0")]);
    assert!(r.header("content-encoding").is_none());
    // Empty in range: 204; outside the matrix: 404; nonsense: 400 with a JSON problem.
    assert_eq!(
        get(
            &format!(
                "{}/collections/parcels/tiles/WebMercatorQuad/14/0/0",
                srv.base
            ),
            &[]
        )
        .status,
        204
    );
    for (path, status) in [
        ("/collections/parcels/tiles/WebMercatorQuad/3/8/1", 404),
        ("/collections/parcels/tiles/WebMercatorQuad/25/0/0", 404),
        ("/collections/parcels/tiles/WebMercatorQuad/a/0/0", 400),
        ("/collections/parcels/tiles/WebMercatorQuad/3/-1/0", 400),
        ("/collections/nope/tiles/WebMercatorQuad/3/1/1", 404),
        ("/collections/parcels/tiles/OtherQuad/3/1/1", 404),
        // An unknown name in a list is a bad request (issue 12), not a missing resource.
        ("/tiles/WebMercatorQuad/3/1/1?collections=nope", 400),
    ] {
        let r = get(&format!("{}{path}", srv.base), &[]);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
    }
    // TileJSON 3.0.0 with absolute URLs, fields and zoom range.
    let tj = get(
        &format!("{}/tiles/WebMercatorQuad/tilejson.json", srv.base),
        &[],
    )
    .json();
    assert_eq!(tj["tilejson"], "3.0.0");
    assert!(tj["tiles"][0].as_str().unwrap().starts_with("http://"));
    assert_eq!(tj["maxzoom"], 16);
    let layers: Vec<&str> = tj["vector_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        layers,
        [
            "municipalities",
            "parcels",
            "trails",
            "parking",
            "childcare"
        ]
    );
    assert_eq!(tj["vector_layers"][3]["fields"]["capacity"], "Number");
    let b = tj["bounds"].as_array().unwrap();
    assert!(
        (b[0].as_f64().unwrap() - 10.55).abs() < 0.05
            && (b[3].as_f64().unwrap() - 51.65).abs() < 0.05,
        "{b:?}"
    );
    let one = get(
        &format!(
            "{}/collections/trails/tiles/WebMercatorQuad/tilejson.json",
            srv.base
        ),
        &[],
    )
    .json();
    assert_eq!(one["vector_layers"].as_array().unwrap().len(), 1);
    assert!(
        one["tiles"][0]
            .as_str()
            .unwrap()
            .ends_with("/collections/trails/tiles/WebMercatorQuad/{z}/{y}/{x}")
    );
}

/// An import purges exactly the cached tiles that touch the change, at every zoom.
#[test]
fn a_commit_purges_only_the_tiles_it_touches() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    let srv = serve(&store, &[]);
    // One parking lot of the sample, appended again: a new feature at a known place.
    let one = dir.path().join("one.gpkg");
    ok(nordgeo(
        &store,
        &["export", "parking", one.to_str().unwrap()],
    ));
    let (fid, x, y): (i64, f64, f64) = {
        let conn = rusqlite::Connection::open(&one).unwrap();
        nordgeo::store::functions::register(&conn).unwrap();
        let fid: i64 = conn
            .query_row("SELECT min(fid) FROM parking", [], |r| r.get(0))
            .unwrap();
        conn.execute("DELETE FROM parking WHERE fid <> ?1", [fid])
            .unwrap();
        let (x, y) = conn
            .query_row(
                "SELECT ST_MinX(geom), ST_MinY(geom) FROM parking",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        (fid, x, y)
    };
    let mut p = [(x, y)];
    nordgeo::crs::transform(25832, 4326, &mut p).unwrap();
    let (lon, lat) = p[0];
    let url = |z: u32, y: u32, x: u32| {
        format!(
            "{}/collections/parking/tiles/WebMercatorQuad/{z}/{y}/{x}",
            srv.base
        )
    };
    let touched: Vec<String> = [10, 14, 16]
        .iter()
        .map(|&z| {
            let (z, y, x) = tile_of(lon, lat, z);
            url(z, y, x)
        })
        .collect();
    // Elsewhere: the tile 3 columns east at z14 that has parking, and a far z16 tile.
    let tj = get(
        &format!("{}/collections/parking/items?limit=100", srv.base),
        &[],
    )
    .json();
    let far: Vec<String> = tj["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let c = &f["geometry"]["coordinates"];
            let (flon, flat) = (c[0].as_f64()?, c[1].as_f64()?);
            ((flon - lon).abs() > 0.1).then(|| {
                let (z, y, x) = tile_of(flon, flat, 14);
                url(z, y, x)
            })
        })
        .take(2)
        .collect();
    assert!(!far.is_empty());
    let etags = |urls: &[String]| -> Vec<String> {
        urls.iter()
            .map(|u| {
                let r = get(u, &[]);
                assert_eq!(r.status, 200, "{u}");
                r.header("etag").unwrap().to_string()
            })
            .collect()
    };
    let before_z16 = etags(&touched)[2].clone();
    let before_far = etags(&far);
    for u in touched.iter().chain(&far) {
        assert_eq!(
            get(u, &[]).header("x-nordgeo-cache"),
            Some("hit"),
            "{u} should be cached"
        );
    }

    ok(nordgeo(
        &store,
        &[
            "import",
            one.to_str().unwrap(),
            "--mode",
            "append",
            "--allow-duplicates",
        ],
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    // Regenerated (a cache miss) once the server has seen the commit; at z16 the new
    // feature also changes the tile (at low zooms it may share a pixel and be thinned).
    for u in &touched {
        loop {
            if get(u, &[]).header("x-nordgeo-cache") == Some("miss") {
                break;
            }
            assert!(Instant::now() < deadline, "{u} still shows the old data");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_ne!(
        etags(&touched)[2],
        before_z16,
        "the z16 tile shows the new feature"
    );
    for (u, old) in far.iter().zip(&before_far) {
        let r = get(u, &[]);
        assert_eq!(
            r.header("x-nordgeo-cache"),
            Some("hit"),
            "{u} must stay cached"
        );
        assert_eq!(r.header("etag"), Some(old.as_str()));
    }
    let _ = fid;
}

#[test]
fn gdal_mvt_driver_reads_a_tile() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let (z, y, x) = tile_of(10.75, 51.53, 12);
    // The OGC path (z/y/x) with an extension GDAL needs to see a file, and the XYZ
    // alias, from which GDAL also georeferences the tile.
    for url in [
        format!(
            "/vsicurl/{}/tiles/WebMercatorQuad/{z}/{y}/{x}.pbf",
            srv.base
        ),
        format!("/vsicurl/{}/xyz/{z}/{x}/{y}.pbf", srv.base),
    ] {
        let o = Command::new("ogrinfo")
            .args(["-so", "-al", &url])
            .env("GDAL_HTTP_TIMEOUT", "20")
            .output()
            .unwrap();
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        for layer in ["parcels", "trails", "parking"] {
            assert!(t.contains(&format!("Layer name: {layer}")), "{t}");
        }
        assert!(t.contains("Feature Count:"), "{t}");
        if url.contains("/xyz/") {
            // Georeferenced in EPSG:3857 around Werther (x ~ 1.19e6, y ~ 6.71e6).
            assert!(t.contains("Extent: (11") && t.contains(", 67"), "{t}");
        }
    }
}

/// QGIS 3.22 (Debian's) loads the tiles as a vector tile layer and renders them.
#[test]
fn qgis_renders_the_vector_tiles() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let png = dir.path().join("qgis.png");
    let o = Command::new("/usr/bin/python3")
        .arg(root().join("tests/tools/qgis_tiles.py"))
        .arg(&srv.base)
        .arg(&png)
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .expect("/usr/bin/python3 runs (QGIS needs Debian's Python: run scripts/setup.sh)");
    let t = text(&o);
    assert!(
        o.status.success(),
        "QGIS could not render the tiles (python3-qgis from scripts/setup.sh?):\n{t}"
    );
    assert!(png.exists());
}

/// No tile of a z0-z14 sweep (plus samples at z15/z16) of the scale-1 data is over 500 KB.
#[test]
fn no_tile_of_the_scale_1_data_exceeds_500_kb() {
    use nordgeo::tiles::{self, Prepared, TileId, TileOptions};
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("region.gpkg");
    ok(Command::new(bin())
        .args(["generate", big.to_str().unwrap(), "--scale", "1"])
        .output()
        .unwrap());
    let store = nordgeo::store::Store::open_read_only(&big).unwrap();
    let cat = nordgeo::catalog::Catalog::load(&store).unwrap();
    let all: Vec<(&nordgeo::index::Layer, &Prepared)> =
        cat.layers.iter().map(|l| (&l.layer, &l.tiles)).collect();
    let mut ext: Option<[f64; 4]> = None;
    for l in &cat.layers {
        if let Some(b) = l.extent {
            nordgeo::geom::bbox_union(&mut ext, b);
        }
    }
    let ext = ext.unwrap();
    let opts = TileOptions::default();
    let mut tiles_list = Vec::new();
    for z in 0..=16u8 {
        let (x0, y0, x1, y1) = TileId::range(z, ext);
        let mut zl: Vec<TileId> = (x0..=x1)
            .flat_map(|x| (y0..=y1).map(move |y| TileId::new(z as u32, x, y).unwrap()))
            .collect();
        if z >= 15 {
            // A deterministic sample, as the benchmark harness's tile list does.
            zl = zl
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % 8 == 0)
                .map(|(_, t)| t)
                .collect();
        }
        tiles_list.extend(zl);
    }
    let largest = Arc::new(std::sync::Mutex::new((0usize, None::<TileId>)));
    let seen = std::sync::Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        for part in tiles_list.chunks(tiles_list.len().div_ceil(2)) {
            let (all, largest, seen) = (&all, largest.clone(), &seen);
            s.spawn(move || {
                for &t in part {
                    let bytes = tiles::render(all, t, opts).len();
                    seen.lock().unwrap().insert(t);
                    let mut l = largest.lock().unwrap();
                    if bytes > l.0 {
                        *l = (bytes, Some(t));
                    }
                }
            });
        }
    });
    let (bytes, tile) = *largest.lock().unwrap();
    println!(
        "{} tiles, largest {bytes} bytes at {tile:?}",
        seen.lock().unwrap().len()
    );
    assert!(bytes <= 500_000, "tile {tile:?} is {bytes} bytes");
}

/// Anonymous tile reads are answered before the router (src/server/hot.rs): the same
/// path with a query string goes through the router, and both answers are the same —
/// status, every header but Date and the cache's hit/miss, bytes — for hits, misses, 304s, restricted layers,
/// bad numbers and unknown collections; /metrics counts the hot ones under their route.
#[test]
fn tiles_answered_before_the_router_are_the_routers_answers() {
    let (dir, store) = sample_store();
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--restricted", "true"],
    ));
    let secret = token(&store, "ops", &["--role", "admin"]);
    let srv = serve(&store, &[]);
    let _ = dir;
    let (z, y, x) = tile_of(10.75, 51.53, 14);
    let etag = get(
        &format!(
            "{}/collections/trails/tiles/WebMercatorQuad/{z}/{y}/{x}",
            srv.base
        ),
        &[],
    )
    .header("etag")
    .unwrap()
    .to_string();
    let paths = [
        format!("/collections/trails/tiles/WebMercatorQuad/{z}/{y}/{x}"),
        format!("/collections/childcare/tiles/WebMercatorQuad/{z}/{y}/{x}"),
        format!("/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}"),
        format!("/collections/nope/tiles/WebMercatorQuad/{z}/{y}/{x}"),
        format!("/collections/trails/tiles/OtherQuad/{z}/{y}/{x}"),
        "/collections/trails/tiles/WebMercatorQuad/14/0/x".to_string(),
        "/collections/trails/tiles/WebMercatorQuad/31/0/0".to_string(),
        "/archives/nope/1/1/1".to_string(),
    ];
    let strip = |r: &Response| -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            // The first request of a tile misses the cache, the second hits it.
            .filter(|(k, _)| {
                !["date", "x-nordgeo-cache"].contains(&k.to_ascii_lowercase().as_str())
            })
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        h
    };
    for headers in [
        vec![
            ("Accept-Encoding", "gzip"),
            ("Origin", "https://ellrich.de"),
        ],
        vec![],
        vec![("If-None-Match", etag.as_str())],
    ] {
        for p in &paths {
            let hot = get(&format!("{}{p}", srv.base), &headers);
            let routed = get(&format!("{}{p}?via=router", srv.base), &headers);
            assert_eq!(hot.status, routed.status, "{p} {headers:?}");
            assert_eq!(strip(&hot), strip(&routed), "{p} {headers:?}");
            assert_eq!(hot.body, routed.body, "{p} {headers:?}");
        }
    }
    let hot = get(&format!("{}{}", srv.base, paths[2]), &[]);
    assert_eq!(
        hot.status, 401,
        "restricted parcels stay restricted before the router"
    );
    let m = String::from_utf8(
        get(
            &format!("{}/metrics", srv.base),
            &[("Authorization", &format!("Bearer {secret}"))],
        )
        .body,
    )
    .unwrap();
    // 200: trails once for its ETag, then hot and routed with two header sets (the
    // third, its ETag, is a 304); childcare hot and routed with all three. 304: trails.
    // 401: parcels six times in the loop and once after it.
    for line in [
        "route=\"/collections/{id}/tiles/{tms}/{z}/{y}/{x}\",status=\"200\"} 11",
        "route=\"/collections/{id}/tiles/{tms}/{z}/{y}/{x}\",status=\"304\"} 2",
        "route=\"/collections/{id}/tiles/{tms}/{z}/{y}/{x}\",status=\"401\"} 7",
        "route=\"/archives/{name}/{z}/{x}/{y}\",status=\"404\"} 6",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
}
