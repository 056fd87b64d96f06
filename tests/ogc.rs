//! OGC API – Features Part 1 resources, checked with GDAL 3.6's OAPIF driver.

mod common;

use std::process::Command;

use common::*;

fn sample_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.gpkg");
    ok(nordgeo(
        &store,
        &["import", root().join("data/sample.gpkg").to_str().unwrap()],
    ));
    (dir, store)
}

#[test]
fn landing_conformance_api_collection_and_feature() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let landing = get(&format!("{}/", srv.base), &[("Accept", "*/*")]);
    assert_eq!(landing.header("content-type"), Some("application/json"));
    let links = landing.json()["links"].as_array().unwrap().clone();
    let rel = |r: &str| {
        links
            .iter()
            .find(|l| l["rel"] == r)
            .unwrap_or_else(|| panic!("no {r} link"))
    };
    assert_eq!(
        rel("service-desc")["type"],
        "application/vnd.oai.openapi+json;version=3.0"
    );
    assert!(rel("data")["href"].as_str().unwrap().starts_with("http://"));
    rel("conformance");

    let c = get(&format!("{}/conformance", srv.base), &[]).json();
    assert!(
        c["conformsTo"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u.as_str().unwrap().ends_with("/conf/core"))
    );

    let api = get(&format!("{}/api", srv.base), &[]);
    assert_eq!(
        api.header("content-type"),
        Some("application/vnd.oai.openapi+json;version=3.0")
    );
    let api = api.json();
    assert_eq!(
        api["components"]["parameters"]["limit"]["schema"]["maximum"],
        10000
    );
    assert_eq!(
        api["components"]["parameters"]["limit"]["schema"]["default"],
        10
    );
    assert!(api["paths"]["/collections/parking/items"].is_object());

    let col = get(&format!("{}/collections/parking", srv.base), &[]).json();
    assert_eq!(col["itemType"], "feature");
    assert_eq!(
        col["extent"]["spatial"]["bbox"][0]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(
        col["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "items" && l["type"] == "application/geo+json")
    );

    let f = get(&format!("{}/collections/parking/items/3", srv.base), &[]);
    assert_eq!(f.status, 200);
    assert_eq!(f.header("content-type"), Some("application/geo+json"));
    let f = f.json();
    assert_eq!(f["id"], 3);
    assert!(
        f["properties"]["fee"].is_boolean(),
        "BOOLEAN columns are JSON booleans: {f}"
    );
    let rels: Vec<&str> = f["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert!(rels.contains(&"self") && rels.contains(&"collection"));
    for path in [
        "/collections/parking/items/999999",
        "/collections/parking/items/abc",
        "/collections/nope",
    ] {
        let r = get(&format!("{}{path}", srv.base), &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
}

/// `ogrinfo -so -al OAPIF:` (GDAL 3.6) lists every collection with its exact count, and
/// `ogr2ogr` copies every feature into a valid GeoPackage.
#[test]
fn gdal_oapif_driver_reads_every_collection() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let o = Command::new("ogrinfo")
        .args(["-so", "-al", &format!("OAPIF:{}", srv.base)])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let conn = rusqlite::Connection::open(&store).unwrap();
    for layer in [
        "municipalities",
        "parcels",
        "trails",
        "parking",
        "childcare",
    ] {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {layer}"), [], |r| r.get(0))
            .unwrap();
        let block = t
            .split("Layer name: ")
            .find(|b| b.starts_with(layer))
            .unwrap_or_else(|| panic!("{layer} missing:\n{t}"));
        assert!(
            block.contains(&format!("Feature Count: {n}\n")),
            "{layer} should have {n} features:\n{block}"
        );
    }
    let out = dir.path().join("copy.gpkg");
    let o = Command::new("ogr2ogr")
        .args([
            "-f",
            "GPKG",
            out.to_str().unwrap(),
            &format!("OAPIF:{}", srv.base),
            "parking",
            "childcare",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (valid, msg) = validate(&out);
    assert!(valid, "{msg}");
    let copy = rusqlite::Connection::open(&out).unwrap();
    for layer in ["parking", "childcare"] {
        let a: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {layer}"), [], |r| r.get(0))
            .unwrap();
        let b: i64 = copy
            .query_row(&format!("SELECT count(*) FROM {layer}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(a, b, "{layer}: ogr2ogr copied every feature");
    }
}

/// Property filters: `name=value` over HTTP and GDAL's `-where` return what a local
/// filter over the store returns.
#[test]
fn property_filters_match_a_local_filter() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let conn = rusqlite::Connection::open(&store).unwrap();
    let want: i64 = conn
        .query_row(
            "SELECT count(*) FROM trails WHERE difficulty = 'hard'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(want > 0);
    let v = get(
        &format!(
            "{}/collections/trails/items?difficulty=hard&limit=1000",
            srv.base
        ),
        &[],
    )
    .json();
    assert_eq!(v["numberMatched"].as_i64(), Some(want));
    assert!(
        v["features"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["properties"]["difficulty"] == "hard")
    );
    let fee: i64 = conn
        .query_row("SELECT count(*) FROM parking WHERE fee = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let v = get(
        &format!("{}/collections/parking/items?fee=true&limit=1000", srv.base),
        &[],
    )
    .json();
    assert_eq!(v["numberMatched"].as_i64(), Some(fee));

    let o = Command::new("ogrinfo")
        .args([
            "-ro",
            "-q",
            "-where",
            "difficulty = 'hard'",
            &format!("OAPIF:{}", srv.base),
            "trails",
        ])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let got = t
        .lines()
        .filter(|l| l.starts_with("OGRFeature(trails):"))
        .count() as i64;
    assert_eq!(got, want, "{t}");
}
