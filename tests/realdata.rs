//! Real data as independent tools write it (issue 14): a countries corpus from GDAL 3.6
//! (from GeoJSON and from a Shapefile, plain and promoted), pyogrio/GDAL 3.12 and QGIS
//! 3.22; curve geometries made by ogr2ogr from WKT; CRSs that are not plain EPSG rows.
//! Oracles: GDAL reading the store, the GeoPackage validator, the true arcs computed
//! analytically (tests/tools/check_arcs.py), and PROJ's cs2cs (in the manifest).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn store_in(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("store.gpkg")
}

/// `ogrinfo -so` of one layer of a file: GDAL's view of it.
fn ogrinfo(path: &Path, layer: &str) -> String {
    let out = Command::new("ogrinfo")
        .args(["-so", "-ro"])
        .arg(path)
        .arg(layer)
        .output()
        .expect("ogrinfo runs");
    assert!(out.status.success(), "ogrinfo failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn names(fc: &Value) -> Vec<String> {
    fc["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["properties"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn countries_from_every_writer_import_read_back_and_serve() {
    if !clients_available() {
        return;
    }
    let (dir, m) = realdata();
    let am = &m["countries"]["antimeridian"];
    let bbox = am["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(",");
    for file in m["countries"]["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        if !path.ends_with(".gpkg") {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let store = store_in(&tmp);
        let out = nordgeo(&store, &["import", dir.join(path).to_str().unwrap()]);
        let report = text(&out);
        assert!(out.status.success(), "{path}: {report}");
        if file["declared_type"] == "POLYGON" {
            assert!(
                report.contains("MULTIPOLYGON") && report.contains("declared POLYGON"),
                "{path}: the report says the layer was promoted: {report}"
            );
        }
        // GDAL reads the store: a MultiPolygon layer with every feature, in EPSG:4326.
        let info = ogrinfo(&store, "countries");
        assert!(info.contains("Geometry: Multi Polygon"), "{path}: {info}");
        assert!(
            info.contains(&format!("Feature Count: {}", file["feature_count"])),
            "{path}: {info}"
        );
        assert_valid(&store);
        let srv = serve(&store, &[]);
        let r = get(
            &format!(
                "{}/collections/countries/items?bbox={bbox}&limit=100",
                srv.base
            ),
            &[],
        );
        assert_eq!(r.status, 200, "{path}");
        let found = names(&r.json());
        assert_eq!(
            found,
            vec![am["name"].as_str().unwrap().to_string()],
            "{path}: a bbox across the antimeridian finds {found:?}"
        );
        // Russland touches -180: inside the area of use of EPSG:4326, and served.
        let r = get(
            &format!(
                "{}/collections/countries/items?bbox=-180,60,-170,70",
                srv.base
            ),
            &[],
        );
        assert!(names(&r.json()).contains(&"Russland".to_string()), "{path}");
    }
}

#[test]
fn single_type_layers_take_single_part_multis_and_name_the_fix_for_the_rest() {
    if !clients_available() {
        return;
    }
    let (dir, _) = realdata();
    let tmp = tempfile::tempdir().unwrap();
    let promoted = dir.join("countries_promoted.gpkg");
    // A POLYGON layer, as a maintainer's earlier export would have made it.
    let ogr = |out: &Path, filter: &str, nlt: &str| {
        let o = Command::new("ogr2ogr")
            .args(["-f", "GPKG"])
            .arg(out)
            .arg(&promoted)
            .args(["-where", filter, "-nlt", nlt, "-nln", "countries"])
            .output()
            .expect("ogr2ogr runs");
        assert!(o.status.success(), "{}", text(&o));
    };
    let poly = tmp.path().join("poly.gpkg");
    ogr(&poly, "iso IN ('AT', 'CH')", "POLYGON");
    let store = store_in(&tmp);
    ok(nordgeo(&store, &["import", poly.to_str().unwrap()]));
    assert!(ogrinfo(&store, "countries").contains("Geometry: Polygon"));
    // Multi-part features: refused, with the QGIS tool that splits them.
    let out = nordgeo(
        &store,
        &["import", promoted.to_str().unwrap(), "--mode", "append"],
    );
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("Multipart to Singleparts") && msg.contains("parts"),
        "{msg}"
    );
    // Single-part MultiPolygons (IE, SE are one polygon each) are taken as polygons.
    let singles = tmp.path().join("singles.gpkg");
    ogr(&singles, "iso IN ('IE', 'SE')", "MULTIPOLYGON");
    ok(nordgeo(
        &store,
        &["import", singles.to_str().unwrap(), "--mode", "append"],
    ));
    assert!(ogrinfo(&store, "countries").contains("Feature Count: 4"));
    assert_valid(&store);
}

/// The WKB inside a GeoPackage blob (after its header and envelope).
fn wkb_of(blob: &[u8]) -> &[u8] {
    let envelope = match (blob[3] >> 1) & 0x07 {
        0 => 0,
        1 => 32,
        2 | 3 => 48,
        4 => 64,
        e => panic!("bad envelope code {e}"),
    };
    &blob[8 + envelope..]
}

fn geometries(path: &Path, table: &str) -> Vec<(i64, Vec<u8>)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare(&format!("SELECT fid, geom FROM \"{table}\" ORDER BY fid"))
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get::<_, Vec<u8>>(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .map(|(f, b)| (f, wkb_of(&b).to_vec()))
        .collect()
}

#[test]
fn arcs_are_kept_exactly_and_served_within_a_centimetre() {
    if !clients_available() {
        return;
    }
    let (dir, m) = realdata();
    let curves = dir.join("curves.gpkg");
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    ok(nordgeo(&store, &["import", curves.to_str().unwrap()]));
    assert_valid(&store);
    let srv = serve(&store, &[]);
    for layer in m["curves"]["layers"].as_array().unwrap() {
        let name = layer["name"].as_str().unwrap();
        let declared = layer["declared_type"].as_str().unwrap();
        // GDAL sees the curve type in the store, and the store keeps every arc byte for
        // byte; `export` hands them on unchanged.
        let info = ogrinfo(&store, name);
        let gdal_name = match declared {
            "CURVEPOLYGON" => "Curve Polygon",
            "MULTISURFACE" => "Multi Surface",
            "COMPOUNDCURVE" => "Compound Curve",
            "CIRCULARSTRING" => "Circular String",
            "MULTICURVE" => "Multi Curve",
            other => panic!("unexpected {other}"),
        };
        assert!(info.contains(gdal_name), "{name}: {info}");
        let source = geometries(&curves, name);
        assert_eq!(geometries(&store, name), source, "{name}: stored arcs");
        let out = tmp.path().join(format!("{name}.gpkg"));
        ok(nordgeo(&store, &["export", name, out.to_str().unwrap()]));
        assert_valid(&out);
        assert_eq!(geometries(&out, name), source, "{name}: exported arcs");
        // Linearized output against the true arcs.
        let o = Command::new(venv_python())
            .arg(root().join("tests/tools/check_arcs.py"))
            .arg(&srv.base)
            .arg(dir.join("manifest.json"))
            .arg(name)
            .output()
            .expect("check_arcs runs");
        assert!(o.status.success(), "{name}: {}", text(&o));
    }
    // A finer tolerance from the configuration is kept too (the default one is not).
    let cfg = tmp.path().join("fine.toml");
    std::fs::write(&cfg, "[server]\narc_tolerance_m = 0.002\n").unwrap();
    let fine = serve(&store, &["--config", cfg.to_str().unwrap()]);
    let arcs = |base: &str, tol: &str| {
        Command::new(venv_python())
            .arg(root().join("tests/tools/check_arcs.py"))
            .arg(base)
            .arg(dir.join("manifest.json"))
            .args(["kreise", tol])
            .output()
            .expect("check_arcs runs")
    };
    let o = arcs(&fine.base, "0.002");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!arcs(&srv.base, "0.002").status.success());
    // Tiles carry the linearized curves too: the tile under the first circle's centre.
    let fc = get(
        &format!("{}/collections/kreise/items?limit=1", srv.base),
        &[],
    )
    .json();
    let ring = &fc["features"][0]["geometry"]["coordinates"][0];
    let n = ring.as_array().unwrap().len() as f64;
    let (lon, lat) = ring.as_array().unwrap().iter().fold((0.0, 0.0), |a, p| {
        (
            a.0 + p[0].as_f64().unwrap() / n,
            a.1 + p[1].as_f64().unwrap() / n,
        )
    });
    let z = 16;
    let scale = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * scale) as u32;
    let lat_r = lat.to_radians();
    let y = ((1.0 - (lat_r.tan() + 1.0 / lat_r.cos()).ln() / std::f64::consts::PI) / 2.0 * scale)
        as u32;
    let r = get(
        &format!(
            "{}/collections/kreise/tiles/WebMercatorQuad/{z}/{y}/{x}",
            srv.base
        ),
        &[],
    );
    assert_eq!(r.status, 200, "the tile under a circle has it");
    assert!(!r.body.is_empty());
}

fn coords(fc: &Value) -> Vec<(String, f64, f64)> {
    fc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let c = &f["geometry"]["coordinates"];
            (
                f["properties"]["name"].as_str().unwrap().to_string(),
                c[0].as_f64().unwrap(),
                c[1].as_f64().unwrap(),
            )
        })
        .collect()
}

fn expected(m: &Value, name: &str, key: &str) -> (f64, f64) {
    let p = m["crs"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} in the manifest"));
    (p[key][0].as_f64().unwrap(), p[key][1].as_f64().unwrap())
}

#[test]
fn crs_rows_are_resolved_and_axis_order_follows_proj() {
    if !clients_available() {
        return;
    }
    let (dir, m) = realdata();
    // (file, crs parameter, manifest key, tolerance): the manifest holds cs2cs's answers
    // in each CRS's authority axis order.
    let cases = [
        (
            "srs100000_epsg.gpkg",
            Some("EPSG:25832"),
            "expected_25832",
            1e-3,
        ),
        ("dhdn_4314.gpkg", Some("EPSG:4314"), "expected_4314", 1e-9),
        ("laea_3035.gpkg", Some("EPSG:3035"), "expected_3035", 1e-3),
        ("wkt_only.gpkg", None, "expected_tmerc", 1e-3),
    ];
    for (file, crs, key, tol) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let store = store_in(&tmp);
        ok(nordgeo(
            &store,
            &["import", dir.join(file).to_str().unwrap()],
        ));
        assert_valid(&store);
        let srv = serve(&store, &[]);
        let cols = get(&format!("{}/collections", srv.base), &[]).json();
        let c = &cols["collections"][0];
        let id = c["id"].as_str().unwrap().to_string();
        let storage = c["storageCrs"].as_str().unwrap().to_string();
        assert!(
            c["crs"].as_array().unwrap().iter().any(|u| u == &storage),
            "{file}: the storage CRS is offered"
        );
        let uri = match crs {
            Some(code) => {
                let n = code.trim_start_matches("EPSG:");
                let uri = format!("http://www.opengis.net/def/crs/EPSG/0/{n}");
                assert_eq!(storage, uri, "{file}");
                uri
            }
            None => {
                // No EPSG code: the URI is this server's document with the WKT, which
                // PROJ itself must read as the same CRS.
                assert!(
                    storage.starts_with(&format!("{}/crs/", srv.base)),
                    "{storage}"
                );
                let wkt = get(&storage, &[]);
                assert_eq!(wkt.status, 200);
                let o = Command::new("projinfo")
                    .arg(String::from_utf8_lossy(&wkt.body).as_ref())
                    .output()
                    .expect("projinfo runs");
                assert!(
                    String::from_utf8_lossy(&o.stdout).contains("+lon_0=10.5"),
                    "{}",
                    text(&o)
                );
                storage.clone()
            }
        };
        let fc = get(
            &format!(
                "{}/collections/{id}/items?limit=100&crs={}",
                srv.base,
                encode(&uri)
            ),
            &[],
        );
        assert_eq!(fc.status, 200, "{file}");
        assert_eq!(fc.header("content-crs"), Some(format!("<{uri}>").as_str()));
        for (name, a, b) in coords(&fc.json()) {
            let (ea, eb) = expected(m, &name, key);
            assert!(
                (a - ea).abs() <= tol && (b - eb).abs() <= tol,
                "{file} {name}: served ({a}, {b}), cs2cs ({ea}, {eb})"
            );
        }
        // And CRS84 (lon, lat) from every one of them.
        let fc = get(
            &format!("{}/collections/{id}/items?limit=100", srv.base),
            &[],
        );
        for (name, lon, lat) in coords(&fc.json()) {
            let p = m["crs"]["points"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name.as_str())
                .unwrap();
            let (elon, elat) = (p["lon"].as_f64().unwrap(), p["lat"].as_f64().unwrap());
            // DHDN goes through a datum shift and back (a few mm); the others are exact.
            let tol = if file.starts_with("dhdn") { 1e-6 } else { 1e-8 };
            assert!(
                (lon - elon).abs() <= tol && (lat - elat).abs() <= tol,
                "{file} {name}: CRS84 ({lon}, {lat}) vs ({elon}, {elat})"
            );
        }
    }
}

#[test]
fn attribute_tables_are_collections_without_geometry_or_tiles() {
    if !clients_available() {
        return;
    }
    let (dir, m) = realdata();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    ok(nordgeo(
        &store,
        &["import", root().join("data/sample.gpkg").to_str().unwrap()],
    ));
    let report = ok(nordgeo(
        &store,
        &["import", dir.join("kita_kontakte.gpkg").to_str().unwrap()],
    ));
    assert!(report.contains("without geometry"), "{report}");
    ok(nordgeo(
        &store,
        &[
            "import",
            dir.join("kita_kontakte_pyogrio.gpkg").to_str().unwrap(),
            "--into",
            "kontakte_pyogrio",
        ],
    ));
    assert_valid(&store);
    // GDAL sees attribute tables, as the files had them.
    for t in ["kita_kontakte", "kontakte_pyogrio"] {
        let info = ogrinfo(&store, t);
        assert!(info.contains("Geometry: None"), "{info}");
        assert!(info.contains("Feature Count: 6"), "{info}");
    }
    let admin = token(&store, "admin", &["--role", "admin"]);
    let srv = serve(&store, &[]);
    let b = &srv.base;
    let c = get(&format!("{b}/collections/kita_kontakte"), &[]).json();
    assert!(c.get("storageCrs").is_none());
    assert!(
        c["links"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !l["href"].as_str().unwrap().contains("/tiles")),
        "no tile links: {c}"
    );
    let fc = get(&format!("{b}/collections/kita_kontakte/items"), &[]).json();
    let rows = m["attributes"]["rows"].as_array().unwrap();
    let feats = fc["features"].as_array().unwrap();
    assert_eq!(feats.len(), rows.len());
    for (f, r) in feats.iter().zip(rows) {
        assert!(f["geometry"].is_null());
        for (k, v) in r.as_object().unwrap() {
            assert_eq!(&f["properties"][k], v, "{k}");
        }
    }
    // Filters work on them; tiles and TileJSON leave them out.
    let q = get(
        &format!(
            "{b}/collections/kita_kontakte/items?filter={}",
            encode("plaetze_frei > 0")
        ),
        &[],
    )
    .json();
    let open = rows
        .iter()
        .filter(|r| r["plaetze_frei"].as_i64() > Some(0))
        .count();
    assert_eq!(q["numberMatched"], serde_json::json!(open));
    let tj = get(&format!("{b}/tiles/WebMercatorQuad/tilejson.json"), &[]).json();
    let ids: Vec<&str> = tj["vector_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"parking") && !ids.contains(&"kita_kontakte"),
        "{ids:?}"
    );
    let r = get(
        &format!("{b}/collections/kita_kontakte/tiles/WebMercatorQuad/tilejson.json"),
        &[],
    );
    assert_eq!(r.status, 404);
    let r = get(
        &format!("{b}/tiles/WebMercatorQuad/10/340/543?collections=kita_kontakte"),
        &[],
    );
    assert_eq!(r.status, 400);
    // Edits: properties change, a geometry is refused with what to send instead.
    let url = format!("{b}/collections/kita_kontakte/items/1");
    let ct = "application/merge-patch+json";
    let r = send(
        "PATCH",
        &url,
        &admin,
        ct,
        br#"{"properties": {"plaetze_frei": 9}}"#,
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let r = send(
        "PATCH",
        &url,
        &admin,
        ct,
        br#"{"geometry": {"type": "Point", "coordinates": [10, 51]}}"#,
    );
    assert_eq!(r.status, 422);
    assert!(String::from_utf8_lossy(&r.body).contains("\\\"geometry\\\": null"));
    // export keeps it an attributes table.
    let out = tmp.path().join("kontakte.gpkg");
    ok(nordgeo(
        &store,
        &["export", "kita_kontakte", out.to_str().unwrap()],
    ));
    assert_valid(&out);
    let info = ogrinfo(&out, "kita_kontakte");
    assert!(info.contains("Geometry: None") && info.contains("Feature Count: 6"));
}
