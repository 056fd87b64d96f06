//! OGC API – Features Part 1 resources, checked with GDAL 3.6's OAPIF driver.

mod common;

use std::process::Command;

use common::*;

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
    // Part 4 writes are declared, with the bearer token they need.
    assert!(api["paths"]["/collections/parking/items"]["post"].is_object());
    for m in ["put", "patch", "delete"] {
        assert!(api["paths"]["/collections/parking/items/{featureId}"][m]["security"].is_array());
    }
    assert_eq!(
        api["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

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
/// `ogr2ogr` copies every feature of every collection into a valid GeoPackage.
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
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_valid(&out);
    let copy = rusqlite::Connection::open(&out).unwrap();
    for layer in [
        "municipalities",
        "parcels",
        "trails",
        "parking",
        "childcare",
    ] {
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

/// Part 2: responses in the storage CRS match the stored coordinates to 1 mm, EPSG axis
/// order is honoured, bbox-crs works, unsupported CRSs are refused.
#[test]
fn crs_and_bbox_crs() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let conn = rusqlite::Connection::open(&store).unwrap();
    nordgeo::store::functions::register(&conn).unwrap();
    let (x, y): (f64, f64) = conn
        .query_row(
            "SELECT ST_MinX(geom), ST_MinY(geom) FROM parking WHERE fid = 3",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let epsg = |c: i32| format!("http://www.opengis.net/def/crs/EPSG/0/{c}");
    let coords = |crs: &str| {
        let r = get(
            &format!("{}/collections/parking/items/3?crs={crs}", srv.base),
            &[],
        );
        assert_eq!(r.status, 200, "{crs}");
        assert_eq!(r.header("content-crs"), Some(format!("<{crs}>").as_str()));
        let c = r.json()["geometry"]["coordinates"].clone();
        (c[0].as_f64().unwrap(), c[1].as_f64().unwrap())
    };
    let (e, n) = coords(&epsg(25832));
    assert!(
        (e - x).abs() < 1e-3 && (n - y).abs() < 1e-3,
        "({e}, {n}) vs stored ({x}, {y})"
    );
    // EPSG:4326 is latitude first; CRS84 longitude first.
    let (lat, lon) = coords(&epsg(4326));
    let (lon84, lat84) = coords("http://www.opengis.net/def/crs/OGC/1.3/CRS84");
    assert!((lat - lat84).abs() < 1e-9 && (lon - lon84).abs() < 1e-9 && lat > 50.0);
    // EPSG:31468 is northing first; values as PROJ computes them from the stored point.
    let mut p = [(x, y)];
    nordgeo::crs::transform(25832, 31468, &mut p).unwrap();
    let (north, east) = coords(&epsg(31468));
    assert!(
        (east - p[0].0).abs() < 1e-3 && (north - p[0].1).abs() < 1e-3,
        "({north}, {east}) vs PROJ {:?}",
        p[0]
    );

    // bbox in EPSG:25832 around the stored point finds it.
    let url = format!(
        "{}/collections/parking/items?bbox={},{},{},{}&bbox-crs={}&crs={}",
        srv.base,
        x - 5.0,
        y - 5.0,
        x + 5.0,
        y + 5.0,
        epsg(25832),
        epsg(25832)
    );
    let r = get(&url, &[]);
    assert_eq!(
        r.header("content-crs"),
        Some(format!("<{}>", epsg(25832)).as_str())
    );
    let ids: Vec<i64> = r.json()["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&3), "{ids:?}");

    let col = get(&format!("{}/collections/parking", srv.base), &[]).json();
    assert_eq!(col["storageCrs"], epsg(25832));
    assert!(
        col["crs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == &serde_json::json!(epsg(31468)))
    );
    for bad in [
        "EPSG:999999",
        "http://www.opengis.net/def/crs/EPSG/0/2154",
        "nonsense",
    ] {
        let r = get(
            &format!("{}/collections/parking/items?crs={bad}", srv.base),
            &[],
        );
        assert_eq!(r.status, 400, "{bad}");
        let r = get(
            &format!(
                "{}/collections/parking/items?bbox=1,2,3,4&bbox-crs={bad}",
                srv.base
            ),
            &[],
        );
        assert_eq!(r.status, 400, "{bad}");
    }
}

/// pyogrio (GDAL 3.12) reads collections in their storage CRS (it sends `crs` and
/// `bbox-crs` from `storageCrs`) and pages with limit=1000: coordinates equal the store's
/// to 1 mm, every feature exactly once.
#[test]
fn pyogrio_reads_in_the_storage_crs() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let script = r#"
import json, struct, sys
import pyogrio.raw as raw
url = sys.argv[1]
out = {}
meta, fids, geom, _ = raw.read("OAPIF:" + url, layer="parking", return_fids=True)
out["crs"] = meta["crs"]
# WKB point: byte order, type, x, y
out["parking"] = {str(int(f)): list(struct.unpack("<dd", g[5:21])) for f, g in zip(fids, geom)}
meta, fids, geom, _ = raw.read("OAPIF:" + url, layer="parcels", return_fids=True)
out["parcels"] = [int(f) for f in fids]
print(json.dumps(out))
"#;
    let o = Command::new(venv_python())
        .args(["-c", script, &srv.base])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim())
        .unwrap_or_else(|e| panic!("{e}: {t}"));
    assert_eq!(v["crs"], "EPSG:25832");
    let conn = rusqlite::Connection::open(&store).unwrap();
    nordgeo::store::functions::register(&conn).unwrap();
    let mut stmt = conn
        .prepare("SELECT fid, ST_MinX(geom), ST_MinY(geom) FROM parking")
        .unwrap();
    let rows: Vec<(i64, f64, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), v["parking"].as_object().unwrap().len());
    for (fid, x, y) in rows {
        let p = &v["parking"][fid.to_string()];
        let (px, py) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
        assert!(
            (px - x).abs() < 1e-3 && (py - y).abs() < 1e-3,
            "fid {fid}: ({px}, {py}) vs stored ({x}, {y})"
        );
    }
    let mut parcels: Vec<i64> = v["parcels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_i64().unwrap())
        .collect();
    let n = parcels.len();
    parcels.sort();
    parcels.dedup();
    let want: i64 = conn
        .query_row("SELECT count(*) FROM parcels", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        (n as i64, parcels.len() as i64),
        (want, want),
        "every parcel exactly once"
    );
}
