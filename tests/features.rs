//! OGC API Features beyond the core resources: owslib as a client, paging, nearest
//! features, sorting, HTML pages, streamed large pages, and GDAL's -spat/-fid push-down.
//! Expected values come from the store through SQLite or from brute force, never from
//! the code path under test.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use serde_json::Value;

fn ids(v: &Value) -> Vec<i64> {
    v["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["id"].as_i64().expect("integer id"))
        .collect()
}

/// Every point feature of a collection as (id, x, y) in the CRS asked for.
fn points(base: &str, collection: &str, crs: &str) -> Vec<(i64, f64, f64)> {
    let v = get(
        &format!("{base}/collections/{collection}/items?limit=10000&crs={crs}"),
        &[],
    )
    .json();
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let c = &f["geometry"]["coordinates"];
            (
                f["id"].as_i64().unwrap(),
                c[0].as_f64().unwrap(),
                c[1].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn owslib_reads_what_the_store_holds() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let o = Command::new(venv_python())
        .arg(root().join("tests/tools/owslib_check.py"))
        .arg(&srv.base)
        .output()
        .unwrap();
    assert!(o.status.success(), "owslib: {}", text(&o));
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    let conformance: Vec<&str> = got["conformance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for class in [
        "/conf/core",
        "/conf/filter",
        "/conf/cql2-text",
        "/conf/queryables",
    ] {
        assert!(conformance.iter().any(|c| c.ends_with(class)), "{class}");
    }
    assert_eq!(
        got["collections"],
        serde_json::json!([
            "municipalities",
            "parcels",
            "trails",
            "parking",
            "childcare"
        ])
    );
    let trails = query_i64s(&store, "SELECT fid FROM trails");
    assert_eq!(got["trails_matched"], trails.len());
    assert_eq!(got["trails_returned"], 1);

    // bbox through owslib equals a brute-force test of the CRS84 coordinates.
    let b: Vec<f64> = got["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let want: Vec<i64> = points(
        &srv.base,
        "parking",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    )
    .into_iter()
    .filter(|(_, x, y)| *x >= b[0] && *x <= b[2] && *y >= b[1] && *y <= b[3])
    .map(|p| p.0)
    .collect();
    assert!(!want.is_empty());
    assert_eq!(got["parking_in_bbox"], serde_json::json!(want));

    let hard = query_i64s(
        &store,
        "SELECT fid FROM trails WHERE difficulty = 'hard' AND length_m > 3000 ORDER BY fid",
    );
    assert!(!hard.is_empty());
    assert_eq!(got["hard_trails"], serde_json::json!(hard));
    let top = query_i64s(
        &store,
        "SELECT capacity FROM parking ORDER BY capacity DESC LIMIT 5",
    );
    assert_eq!(got["top_capacities"], serde_json::json!(top));
    let conn = rusqlite::Connection::open(&store).unwrap();
    let name: String = conn
        .query_row("SELECT name FROM parking WHERE fid = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(got["item"], serde_json::json!({"id": 1, "name": name}));
    assert_eq!(
        got["queryables"],
        serde_json::json!([
            "capacity",
            "fee",
            "geom",
            "municipality",
            "name",
            "wheelchair_spaces"
        ])
    );
    assert_eq!(got["api_limit_max"], 10000);
    assert_eq!(got["api_has_filter"], true);
}

/// Following `next` links with limit=10 visits ⌈N/10⌉ pages and every feature once.
#[test]
fn paging_yields_every_feature_exactly_once() {
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    for (path, sql) in [
        ("trails/items?limit=10", "SELECT fid FROM trails"),
        (
            "parcels/items?limit=10&municipality=Werther&filter=area_m2%20%3E%201000",
            "SELECT fid FROM parcels WHERE municipality = 'Werther' AND area_m2 > 1000",
        ),
        (
            "parking/items?limit=10&sortby=-capacity",
            "SELECT fid FROM parking",
        ),
    ] {
        let want: BTreeSet<i64> = query_i64s(&store, sql).into_iter().collect();
        let mut url = format!("{}/collections/{path}", srv.base);
        let (mut pages, mut seen) = (0, Vec::new());
        loop {
            let v = get(&url, &[]).json();
            pages += 1;
            assert_eq!(v["numberMatched"], want.len(), "{url}");
            assert_eq!(v["numberReturned"], v["features"].as_array().unwrap().len());
            seen.extend(ids(&v));
            let links = v["links"].as_array().unwrap();
            if pages > 1 {
                assert!(links.iter().any(|l| l["rel"] == "prev"), "{url}");
            }
            match links.iter().find(|l| l["rel"] == "next") {
                Some(l) => url = l["href"].as_str().unwrap().to_string(),
                None => break,
            }
        }
        assert_eq!(pages, want.len().div_ceil(10), "{path}");
        assert_eq!(seen.len(), want.len(), "{path}: a feature came twice");
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), want, "{path}");
    }
}

/// `near` returns features nearest first: compared with brute-force distances in
/// EPSG:25832, where the data is stored (UTM distorts lengths by under 0.1 % here).
#[test]
fn near_returns_the_nearest_features_first() {
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let utm = "http://www.opengis.net/def/crs/EPSG/0/25832";
    let (qx, qy) = (628_000.0, 5_708_000.0);
    let mut all: Vec<(f64, i64)> = points(&srv.base, "parking", utm)
        .into_iter()
        .map(|(id, x, y)| (((x - qx).powi(2) + (y - qy).powi(2)).sqrt(), id))
        .collect();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let near = format!("near={qx},{qy}&near-crs={utm}");
    let v = get(
        &format!("{}/collections/parking/items?{near}&limit=10", srv.base),
        &[],
    )
    .json();
    assert_eq!(v["numberMatched"], all.len());
    let got = ids(&v);
    let want: Vec<i64> = all.iter().take(10).map(|p| p.1).collect();
    assert_eq!(got, want, "nearest 10 (brute force: {:?})", &all[..10]);

    // max-distance counts what lies within the radius (borderline cases excluded).
    let r = 5000.0;
    let v = get(
        &format!(
            "{}/collections/parking/items?{near}&max-distance={r}&limit=1000",
            srv.base
        ),
        &[],
    )
    .json();
    let n = v["numberMatched"].as_u64().unwrap() as usize;
    let inside = all.iter().filter(|p| p.0 < r * 0.995).count();
    let maybe = all.iter().filter(|p| p.0 <= r * 1.005).count();
    assert!(
        inside > 0 && (inside..=maybe).contains(&n),
        "{n} not in {inside}..={maybe}"
    );
    assert_eq!(ids(&v), all.iter().take(n).map(|p| p.1).collect::<Vec<_>>());

    // A point inside a parcel finds that parcel first (distance 0).
    let p = get(&format!("{}/collections/parcels/items/1", srv.base), &[]).json();
    let ring = p["geometry"]["coordinates"][0].as_array().unwrap();
    let n = (ring.len() - 1) as f64;
    let cx = ring[..ring.len() - 1]
        .iter()
        .map(|c| c[0].as_f64().unwrap())
        .sum::<f64>()
        / n;
    let cy = ring[..ring.len() - 1]
        .iter()
        .map(|c| c[1].as_f64().unwrap())
        .sum::<f64>()
        / n;
    let v = get(
        &format!(
            "{}/collections/parcels/items?near={cx},{cy}&limit=3",
            srv.base
        ),
        &[],
    )
    .json();
    assert_eq!(ids(&v)[0], 1);

    // Paging through a near search continues the same order.
    let v2 = get(
        &format!(
            "{}/collections/parking/items?{near}&limit=5&offset=5",
            srv.base
        ),
        &[],
    )
    .json();
    assert_eq!(ids(&v2), want[5..10].to_vec());
    let r = get(
        &format!("{}/collections/parking/items?near=10.8", srv.base),
        &[],
    );
    assert_eq!(r.status, 400);
}

#[test]
fn sortby_orders_like_sqlite() {
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    for (sortby, order) in [
        ("-capacity,name", "capacity DESC, name, fid"),
        ("municipality,%2Bcapacity", "municipality, capacity, fid"),
        ("name", "name, fid"),
    ] {
        let want = query_i64s(&store, &format!("SELECT fid FROM parking ORDER BY {order}"));
        let v = get(
            &format!(
                "{}/collections/parking/items?sortby={sortby}&limit=1000",
                srv.base
            ),
            &[],
        )
        .json();
        assert_eq!(ids(&v), want, "sortby={sortby}");
    }
    let r = get(
        &format!("{}/collections/parking/items?sortby=nope", srv.base),
        &[],
    );
    assert_eq!(r.status, 400);
}

/// Sorting after edits by another program (they land in the layer's overlay, whose
/// values are placed among the loaded ones' sort ranks): values below, above, between
/// and equal to loaded ones, several edits in one gap between two loaded values, an
/// integer column given a real, a NULL — ordered as SQLite orders the store, with limits
/// and offsets.
#[test]
fn sortby_after_edits_orders_like_sqlite() {
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    // Sort once first, so that the loaded values' ranks exist before the edits.
    get(
        &format!(
            "{}/collections/parking/items?sortby=capacity,name&limit=5",
            srv.base
        ),
        &[],
    );
    let fids = query_i64s(&store, "SELECT fid FROM parking ORDER BY fid LIMIT 8");
    let bounds = query_i64s(
        &store,
        "SELECT min(capacity) FROM parking UNION ALL SELECT max(capacity) FROM parking",
    );
    let (lo, hi) = (bounds[0], bounds[1]);
    // Another program writes, as QGIS would (a PostgreSQL integer column rounds the
    // reals; a GeoPackage keeps them).
    for sql in [
        format!(
            "UPDATE parking SET capacity = {} WHERE fid = {}",
            lo - 5,
            fids[0]
        ),
        format!(
            "UPDATE parking SET capacity = {} WHERE fid = {}",
            hi + 1000,
            fids[1]
        ),
        format!(
            "UPDATE parking SET capacity = {}.5 WHERE fid = {}",
            (lo + hi) / 2,
            fids[2]
        ),
        format!("UPDATE parking SET capacity = {lo} WHERE fid = {}", fids[3]),
        format!("UPDATE parking SET capacity = NULL WHERE fid = {}", fids[4]),
        // Two more in the same gap as the .5: one below it, one equal to it.
        format!(
            "UPDATE parking SET capacity = {}.25 WHERE fid = {}",
            (lo + hi) / 2,
            fids[6]
        ),
        format!(
            "UPDATE parking SET capacity = {}.5 WHERE fid = {}",
            (lo + hi) / 2,
            fids[7]
        ),
        format!(
            "UPDATE parking SET name = 'Aaa' || name, capacity = {lo} WHERE fid = {}",
            fids[5]
        ),
    ] {
        external_sql(&store, &sql);
    }
    // The server sees other programs' commits within a moment, in commit order: once
    // the last one (fids[5]'s new name) shows, all do.
    let seen = std::time::Instant::now();
    while !get(
        &format!("{}/collections/parking/items/{}", srv.base, fids[5]),
        &[],
    )
    .json()["properties"]["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("Aaa"))
    {
        assert!(seen.elapsed().as_secs() < 10, "the edits were not seen");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for (sortby, order) in [
        ("capacity,name", "capacity IS NULL, capacity, name, fid"),
        (
            "-capacity,name",
            "capacity IS NULL DESC, capacity DESC, name, fid",
        ),
        (
            "name,-capacity",
            "name IS NULL, name, capacity IS NULL DESC, capacity DESC, fid",
        ),
    ] {
        let want = query_i64s(&store, &format!("SELECT fid FROM parking ORDER BY {order}"));
        for (limit, offset) in [
            (1000, 0),
            (7, 0),
            (5, 3),
            (10, want.len().saturating_sub(4)),
        ] {
            let v = get(
                &format!(
                    "{}/collections/parking/items?sortby={sortby}&limit={limit}&offset={offset}",
                    srv.base
                ),
                &[],
            )
            .json();
            let end = (offset + limit).min(want.len());
            assert_eq!(
                ids(&v),
                want[offset.min(end)..end],
                "sortby={sortby} limit={limit} offset={offset}"
            );
        }
    }
}

/// Every resource has an HTML view for browsers; JSON stays the default for `*/*`;
/// pages load nothing from other hosts.
#[test]
fn html_pages_for_every_resource() {
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let browser = [(
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    )];
    for path in [
        "/",
        "/conformance",
        "/api",
        "/collections",
        "/collections/parking",
        "/collections/parking/items",
        "/collections/parking/items/1",
        "/collections/parking/queryables",
        "/collections/trails/items?sortby=name&limit=5",
    ] {
        let r = get(&format!("{}{path}", srv.base), &browser);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        let html = String::from_utf8(r.body).unwrap();
        for attr in ["src=\"", "href=\""] {
            for part in html.split(attr).skip(1) {
                let url = &part[..part.find('"').unwrap()];
                assert!(
                    url.starts_with(&srv.base) || url.starts_with('#') || url == "data:,",
                    "{path}: {url} is not on this server"
                );
            }
        }
        let f = get(&format!("{}{path}", srv.base), &[("Accept", "*/*")]);
        assert!(f.header("content-type").unwrap().contains("json"), "{path}");
    }
    let items = get(
        &format!("{}/collections/parking/items?f=html", srv.base),
        &[],
    );
    let html = String::from_utf8(items.body).unwrap();
    assert_eq!(html.matches("<tr>").count(), 11, "header and 10 rows");
    assert!(html.contains("rel=\"next\""));
    let col = String::from_utf8(get(&format!("{}/collections/parking?f=html", srv.base), &[]).body)
        .unwrap();
    assert!(col.contains("/assets/maplibre-gl/maplibre-gl.mjs"));
    let js = get(
        &format!("{}/assets/maplibre-gl/maplibre-gl.mjs", srv.base),
        &[],
    );
    assert_eq!(
        js.status, 200,
        "MapLibre is served by nordgeo (scripts/setup.sh installs it)"
    );
    assert!(js.body.len() > 100_000);
    assert_eq!(
        get(&format!("{}/collections?f=xml", srv.base), &[]).status,
        400
    );
    assert_eq!(
        get(
            &format!("{}/assets/maplibre-gl/..%2F..%2Fpackage.json", srv.base),
            &[]
        )
        .status,
        404
    );
}

/// A 10,000-feature page streams out in chunks and is complete, valid GeoJSON.
#[test]
fn large_pages_are_streamed() {
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let r = get(
        &format!("{}/collections/parcels/items?limit=10000", srv.base),
        &[],
    );
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    let v = r.json();
    let n = query_i64s(&store, "SELECT count(*) FROM parcels")[0];
    assert_eq!(v["numberReturned"], n);
    assert_eq!(v["features"].as_array().unwrap().len() as i64, n);
}

/// GDAL 3.6 pushes -spat down as bbox and -fid as /items/{id}; both return what a local
/// computation returns, and ogrinfo reports extent and fields.
#[test]
fn gdal_spat_fid_extent_and_fields() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let src = format!("OAPIF:{}", srv.base);
    let (x0, y0, x1, y1) = (10.7, 51.45, 10.95, 51.6);
    let o = Command::new("ogrinfo")
        .args(["-ro", "-q", "-spat"])
        .args([x0, y0, x1, y1].map(|v| v.to_string()))
        .args([&src, "parking"])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let got = t
        .lines()
        .filter(|l| l.starts_with("OGRFeature(parking):"))
        .count();
    let want = points(
        &srv.base,
        "parking",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    )
    .into_iter()
    .filter(|(_, x, y)| *x >= x0 && *x <= x1 && *y >= y0 && *y <= y1)
    .count();
    assert!(want > 0);
    assert_eq!(got, want, "{t}");

    let o = Command::new("ogrinfo")
        .args(["-ro", "-q", "-fid", "7", &src, "childcare"])
        .output()
        .unwrap();
    let t = text(&o);
    let conn = rusqlite::Connection::open(&store).unwrap();
    let name: String = conn
        .query_row("SELECT name FROM childcare WHERE fid = 7", [], |r| r.get(0))
        .unwrap();
    assert!(t.contains("OGRFeature(childcare):7"), "{t}");
    assert!(t.contains(&name), "{t}");

    let o = Command::new("ogrinfo")
        .args(["-ro", "-so", &src, "parking"])
        .output()
        .unwrap();
    let t = text(&o);
    let extent = get(&format!("{}/collections/parking", srv.base), &[]).json()["extent"]["spatial"]
        ["bbox"][0]
        .clone();
    let line = t.lines().find(|l| l.starts_with("Extent:")).expect(&t);
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter_map(|s| s.parse().ok())
        .collect();
    for (i, n) in nums.iter().enumerate() {
        assert!(
            (n - extent[i].as_f64().unwrap()).abs() < 1e-6,
            "{line} vs {extent}"
        );
    }
    for field in [
        "name: String",
        "capacity: Integer",
        "fee:",
        "municipality: String",
    ] {
        assert!(t.contains(field), "{field} missing:\n{t}");
    }
}
