//! Import, export, history and rollback against fixtures written by the real writers
//! (GDAL 3.6 ogr2ogr and pyogrio/GDAL 3.12), checked with the real validator and GDAL.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use geo::CoordsIter;
use nordgeo::geom::gpkg;
use serde_json::Value as Json;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// A new store with every layer of a fixture imported.
fn imported(file: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tmp();
    let store = dir.path().join("store.gpkg");
    ok(nordgeo(
        &store,
        &["import", fixture(file).to_str().unwrap()],
    ));
    (dir, store)
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn entries(file: &str) -> Vec<Json> {
    manifest()
        .into_iter()
        .filter(|e| e["file"] == file)
        .collect()
}

/// (first x, first y) of the stored geometry of `fid`, or None for NULL/empty.
fn first_vertex(store: &Path, table: &str, fid: i64) -> Option<(f64, f64)> {
    let conn = rusqlite::Connection::open(store).unwrap();
    let blob: Option<Vec<u8>> = conn
        .query_row(
            &format!("SELECT geom FROM \"{table}\" WHERE fid = ?1"),
            [fid],
            |r| r.get(0),
        )
        .unwrap();
    let g = gpkg::decode(&blob?).unwrap().decoded.geometry?;
    g.coords_iter().next().map(|c| (c.x, c.y))
}

fn rows(store: &Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(store).unwrap();
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY fid"))
        .unwrap();
    let n = stmt.column_count();
    let mut q = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(r) = q.next().unwrap() {
        let cell = |i| match r.get_ref(i).unwrap() {
            rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => format!("{other:?}"),
        };
        out.push((0..n).map(cell).collect::<Vec<_>>().join("|"));
    }
    out
}

fn ogrinfo_counts(path: &Path) -> String {
    let o = Command::new("ogrinfo")
        .args(["-al", "-so"])
        .arg(path)
        .output()
        .expect("ogrinfo");
    assert!(o.status.success(), "ogrinfo failed: {}", text(&o));
    text(&o)
}

#[test]
fn good_fixtures_import_exactly_and_validate() {
    if !clients_available() {
        return;
    }
    let files = [
        "good_gdal36_25832.gpkg",
        "good_gdal36_4326.gpkg",
        "good_gdal36_31468.gpkg",
        "good_pyogrio_25832.gpkg",
        "good_pyogrio_4326.gpkg",
        "good_pyogrio_31468.gpkg",
        "gpkg10_25832.gpkg",
    ];
    for file in files {
        let dir = tmp();
        let store = dir.path().join("store.gpkg");
        ok(nordgeo(
            &store,
            &["import", fixture(file).to_str().unwrap()],
        ));
        assert_valid(&store);
        let info = ogrinfo_counts(&store);
        for e in entries(file) {
            let layer = e["layer"].as_str().unwrap();
            let count = e["count"].as_i64().unwrap();
            assert!(
                info.contains(&format!("Layer name: {layer}\n"))
                    && info.contains(&format!("Feature Count: {count}")),
                "{file}/{layer}: ogrinfo does not show {count} features:\n{info}"
            );
            // Coordinates are stored exactly as delivered (same bytes, same doubles).
            for (fid, xy) in e["first_vertex_stored"].as_object().unwrap() {
                let fid: i64 = fid.parse().unwrap();
                let want = (xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap());
                assert_eq!(
                    first_vertex(&store, layer, fid),
                    Some(want),
                    "{file}/{layer} fid {fid}"
                );
            }
            for fid in e["null_geometry_fids"].as_array().unwrap() {
                let conn = rusqlite::Connection::open(&store).unwrap();
                let null: bool = conn
                    .query_row(
                        &format!("SELECT geom IS NULL FROM \"{layer}\" WHERE fid = ?1"),
                        [fid.as_i64().unwrap()],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert!(
                    null,
                    "{file}/{layer}: NULL geometry of fid {fid} was not kept"
                );
            }
            for fid in e["empty_geometry_fids"].as_array().unwrap() {
                assert_eq!(
                    first_vertex(&store, layer, fid.as_i64().unwrap()),
                    None,
                    "{file}/{layer}: empty geometry of fid {fid}"
                );
            }
            let srs = e["epsg"].as_i64().unwrap();
            let out = ok(nordgeo(&store, &["layers", "--json"]));
            let layers: Json = serde_json::from_str(out.lines().next().unwrap()).unwrap();
            let l = layers
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["name"] == layer)
                .unwrap();
            assert_eq!(
                l["srs_id"].as_i64(),
                Some(srs),
                "{file}/{layer} keeps its CRS"
            );
        }
    }
}

#[test]
fn append_reprojects_to_the_layer_crs_like_cs2cs() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = imported("good_gdal36_25832.gpkg");
    for src in ["good_pyogrio_31468.gpkg", "good_gdal36_4326.gpkg"] {
        for e in entries(src) {
            let layer = e["layer"].as_str().unwrap();
            let before: i64 = {
                let conn = rusqlite::Connection::open(&store).unwrap();
                conn.query_row(&format!("SELECT max(fid) FROM \"{layer}\""), [], |r| {
                    r.get(0)
                })
                .unwrap()
            };
            ok(nordgeo(
                &store,
                &[
                    "import",
                    fixture(src).to_str().unwrap(),
                    "--layer",
                    layer,
                    "--mode",
                    "append",
                    // The same features again, in another CRS: on purpose (the empty
                    // geometries are exact copies).
                    "--allow-duplicates",
                ],
            ));
            // Appended rows get fresh fids in source fid order.
            let fids: Vec<i64> = e["fids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_i64().unwrap())
                .collect();
            for (i, fid) in fids.iter().enumerate() {
                let Some(want) = e["first_vertex_25832"].get(fid.to_string()) else {
                    continue;
                };
                let (x, y) = first_vertex(&store, layer, before + 1 + i as i64)
                    .unwrap_or_else(|| panic!("{src}/{layer} fid {fid} missing"));
                let (wx, wy) = (want[0].as_f64().unwrap(), want[1].as_f64().unwrap());
                assert!(
                    (x - wx).abs() < 1e-3 && (y - wy).abs() < 1e-3,
                    "{src}/{layer} fid {fid}: got ({x}, {y}), cs2cs says ({wx}, {wy})"
                );
            }
        }
    }
    assert_valid(&store);
}

/// Every bad input ends with a specific message, a non-zero exit, and the store unchanged.
#[test]
fn bad_inputs_are_rejected_and_change_nothing() {
    if !clients_available() {
        return;
    }
    let (dir, store) = imported("good_gdal36_25832.gpkg");
    let f = |n: &str| fixture(n).to_str().unwrap().to_string();
    let missing = dir.path().join("missing.gpkg");
    let mut cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "not a SQLite file",
            vec![f("bad_not_sqlite.gpkg")],
            "not an sqlite database",
        ),
        ("truncated file", vec![f("bad_truncated.gpkg")], "truncated"),
        (
            "SQLite without GeoPackage tables",
            vec![f("bad_plain_sqlite.gpkg")],
            "without the gpkg_contents",
        ),
        (
            "unknown SRS",
            vec![f("bad_unknown_srs.gpkg"), "--into".into(), "x1".into()],
            "unknown srs epsg:990001",
        ),
        (
            "undefined SRS",
            vec![f("bad_undefined_srs.gpkg"), "--into".into(), "x2".into()],
            "undefined crs",
        ),
        (
            "garbage geometry blob",
            vec![f("bad_garbage_blob.gpkg"), "--into".into(), "x3".into()],
            "fid 3: invalid geometry",
        ),
        (
            "bad blob magic",
            vec![f("bad_bad_magic.gpkg"), "--into".into(), "x4".into()],
            "does not start with 'gp'",
        ),
        (
            "NaN coordinates",
            vec![f("bad_nan_coords.gpkg"), "--into".into(), "x5".into()],
            "not a finite number",
        ),
        (
            "huge coordinates",
            vec![f("bad_huge_coords.gpkg"), "--into".into(), "x6".into()],
            "out of range",
        ),
        (
            "degrees/metres confusion",
            vec![f("bad_degrees_metres.gpkg"), "--into".into(), "x7".into()],
            "looks like epsg:25832",
        ),
        (
            "metres/degrees confusion",
            vec![f("bad_metres_degrees.gpkg"), "--into".into(), "x8".into()],
            "looks like epsg:4326",
        ),
        (
            "mixed geometry types",
            vec![f("bad_mixed_types.gpkg"), "--into".into(), "x9".into()],
            "fid 4: is a linestring",
        ),
        (
            "duplicate fids",
            vec![f("bad_duplicate_fids.gpkg"), "--into".into(), "x10".into()],
            "duplicate fid",
        ),
        (
            "zero features",
            vec![f("bad_empty_layer.gpkg"), "--into".into(), "x11".into()],
            "has no features",
        ),
        (
            "layer name with SQL",
            vec![f("bad_sql_name.gpkg")],
            "cannot be used as a table name",
        ),
        (
            "--into with SQL",
            vec![
                f("good_gdal36_25832.gpkg"),
                "--layer".into(),
                "points".into(),
                "--into".into(),
                "p; DROP TABLE gpkg_contents".into(),
            ],
            "cannot be a layer name",
        ),
        (
            "self-intersecting polygon",
            vec![
                f("bad_self_intersecting.gpkg"),
                "--into".into(),
                "x12".into(),
            ],
            "self-intersection",
        ),
        (
            "unclosed ring",
            vec![f("bad_unclosed_ring.gpkg"), "--into".into(), "x13".into()],
            "ring is not closed",
        ),
        (
            "blob srs differs from layer",
            vec![f("bad_wrong_blob_srs.gpkg"), "--into".into(), "x14".into()],
            "tagged with srs_id 4326",
        ),
        (
            "missing file",
            vec![missing.to_str().unwrap().into()],
            "file not found",
        ),
        (
            "create over an existing layer",
            vec![
                f("good_gdal36_25832.gpkg"),
                "--layer".into(),
                "points".into(),
            ],
            "already exists",
        ),
        (
            "replace a missing layer",
            vec![
                f("good_gdal36_25832.gpkg"),
                "--layer".into(),
                "points".into(),
                "--into".into(),
                "nope".into(),
                "--mode".into(),
                "replace".into(),
            ],
            "does not exist",
        ),
        (
            "lines into a point layer",
            vec![
                f("good_gdal36_25832.gpkg"),
                "--layer".into(),
                "lines".into(),
                "--into".into(),
                "points".into(),
                "--mode".into(),
                "append".into(),
            ],
            "holds point geometries",
        ),
        (
            "Z into a 2D layer",
            vec![
                f("good_gdal36_25832.gpkg"),
                "--layer".into(),
                "points_z".into(),
                "--into".into(),
                "points".into(),
                "--mode".into(),
                "append".into(),
            ],
            "has z values",
        ),
        (
            "other municipalities in a scoped import",
            vec![
                f("good_gdal36_25832.gpkg"),
                "--layer".into(),
                "points".into(),
                "--mode".into(),
                "replace".into(),
                "--municipality".into(),
                "werther".into(),
            ],
            "limited to 'werther'",
        ),
    ];
    let before = checksum(&store);
    let mut n = 0;
    for (name, args, expect) in cases.drain(..) {
        let mut a = vec!["import".to_string()];
        a.extend(args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = nordgeo(&store, &a);
        let t = text(&o);
        assert!(
            !o.status.success(),
            "{name}: expected failure, got success:\n{t}"
        );
        assert!(
            t.to_lowercase().contains(expect),
            "{name}: message should contain '{expect}':\n{t}"
        );
        assert_eq!(checksum(&store), before, "{name}: the store changed");
        n += 1;
    }

    // A store marked read-only: a clear message, nothing written.
    let mut perms = std::fs::metadata(&store).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&store, perms.clone()).unwrap();
    let o = nordgeo(
        &store,
        &[
            "import",
            &f("good_pyogrio_25832.gpkg"),
            "--layer",
            "points",
            "--into",
            "p2",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("read-only"),
        "read-only store:\n{}",
        text(&o)
    );
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&store, perms).unwrap();
    assert_eq!(checksum(&store), before, "read-only store changed");
    n += 1;

    // A full disk (simulated by capping the store's pages): rolled back, store unchanged.
    let pages: i64 = rusqlite::Connection::open(&store)
        .unwrap()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let o = nordgeo_env(
        &store,
        &[
            "import",
            &f("good_pyogrio_25832.gpkg"),
            "--layer",
            "polygons",
            "--into",
            "p3",
        ],
        &[("NORDGEO_TEST_MAX_PAGES", &(pages + 2).to_string())],
    );
    assert!(
        !o.status.success() && text(&o).contains("disk"),
        "disk full:\n{}",
        text(&o)
    );
    assert_eq!(checksum(&store), before, "disk full changed the store");
    n += 1;
    assert!(n >= 15);
    assert_valid(&store);
}

#[test]
fn scoped_replace_history_and_rollback_restore_exact_rows() {
    if !clients_available() {
        return;
    }
    let dir = tmp();
    let store = dir.path().join("store.gpkg");
    ok(nordgeo(
        &store,
        &[
            "import",
            fixture("good_gdal36_25832.gpkg").to_str().unwrap(),
            "--layer",
            "points",
        ],
    ));
    let original = rows(&store, "points");

    // Werther's maintainer exports, keeps only Werther, renames one feature, imports.
    let werther = dir.path().join("werther.gpkg");
    ok(nordgeo(
        &store,
        &["export", "points", werther.to_str().unwrap()],
    ));
    {
        let conn = rusqlite::Connection::open(&werther).unwrap();
        // The file's R-tree triggers call ST_* functions, as in any GeoPackage.
        nordgeo::store::functions::register(&conn).unwrap();
        conn.execute("DELETE FROM points WHERE municipality <> 'Werther'", [])
            .unwrap();
        conn.execute("UPDATE points SET name = 'Kita Werther (neu)' WHERE fid = (SELECT min(fid) FROM points)", []).unwrap();
    }
    let out = ok(nordgeo(
        &store,
        &[
            "import",
            werther.to_str().unwrap(),
            "--mode",
            "replace",
            "--municipality",
            "werther",
        ],
    ));
    // Matched by content: the unchanged Werther features keep their fids; the renamed
    // one is the only one removed (kept in the history) and added anew.
    assert!(
        out.contains("1 added") && out.contains("1 removed"),
        "{out}"
    );
    let after = rows(&store, "points");
    let others = |v: &[String]| {
        v.iter()
            .filter(|r| !r.contains("Werther"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        others(&original),
        others(&after),
        "other municipalities' features must not change"
    );
    assert!(after.iter().any(|r| r.contains("Kita Werther (neu)")));

    let hist = ok(nordgeo(&store, &["history", "points", "--json"]));
    let changes: Json = serde_json::from_str(&hist).unwrap();
    let changes = changes.as_array().unwrap();
    assert_eq!(changes.len(), 2);
    let first = changes[0]["id"].as_i64().unwrap();
    assert_eq!(changes[1]["actor"], "test");
    assert_eq!(changes[1]["municipality"], "werther");
    assert_eq!(changes[1]["removed"].as_i64(), Some(1));

    ok(nordgeo(
        &store,
        &["rollback", "points", "--to", &first.to_string()],
    ));
    assert_eq!(
        rows(&store, "points"),
        original,
        "rollback restores the exact previous rows"
    );
    // The rollback is itself a change that can be undone.
    let second = changes[1]["id"].as_i64().unwrap();
    ok(nordgeo(
        &store,
        &["rollback", "points", "--to", &second.to_string()],
    ));
    assert_eq!(rows(&store, "points"), after);
    assert_valid(&store);
}

#[test]
fn export_writes_a_valid_geopackage_gdal_reads() {
    if !clients_available() {
        return;
    }
    let (dir, store) = imported("good_pyogrio_31468.gpkg");
    for e in entries("good_pyogrio_31468.gpkg") {
        let layer = e["layer"].as_str().unwrap();
        let out = dir.path().join(format!("{layer}.gpkg"));
        ok(nordgeo(&store, &["export", layer, out.to_str().unwrap()]));
        assert_valid(&out);
        let info = ogrinfo_counts(&out);
        assert!(
            info.contains(&format!("Feature Count: {}", e["count"])),
            "{info}"
        );
        assert!(
            info.contains("DHDN / 3-degree Gauss-Kruger zone 4"),
            "{info}"
        );
        assert_eq!(
            rows(&out, layer),
            rows(&store, layer),
            "export keeps every row exactly"
        );
    }
    let again = nordgeo(
        &store,
        &[
            "export",
            "points",
            dir.path().join("points.gpkg").to_str().unwrap(),
        ],
    );
    assert!(!again.status.success() && text(&again).contains("--force"));
}

#[test]
fn repair_closes_rings_and_refuses_to_split_into_a_polygon_layer() {
    if !clients_available() {
        return;
    }
    let dir = tmp();
    let store = dir.path().join("store.gpkg");
    let out = ok(nordgeo(
        &store,
        &[
            "import",
            fixture("bad_unclosed_ring.gpkg").to_str().unwrap(),
            "--repair",
            "--into",
            "fixed",
        ],
    ));
    assert!(out.contains("repaired"), "{out}");
    assert_valid(&store);
    // A bow-tie becomes two polygons, which a POLYGON layer cannot hold: say so.
    let o = nordgeo(
        &store,
        &[
            "import",
            fixture("bad_self_intersecting.gpkg").to_str().unwrap(),
            "--repair",
            "--into",
            "bowtie",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("MULTIPOLYGON"),
        "{}",
        text(&o)
    );
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    if !clients_available() {
        return;
    }
    let dir = tmp();
    let store = dir.path().join("store.gpkg");
    let out = ok(nordgeo(
        &store,
        &[
            "import",
            fixture("good_gdal36_31468.gpkg").to_str().unwrap(),
            "--dry-run",
        ],
    ));
    assert!(
        out.contains("dry run") && out.contains("EPSG:31468"),
        "{out}"
    );
    assert!(!store.exists(), "a dry run must not create the store");
}

/// `ogrinfo -spat` on the store (GDAL using our R-tree) returns what a brute-force
/// intersection test over every stored geometry returns.
#[test]
fn ogrinfo_spatial_filter_matches_brute_force() {
    use geo::{Intersects, Rect};
    if !clients_available() {
        return;
    }
    let (_dir, store) = imported("good_pyogrio_25832.gpkg");
    let boxes = [
        [615000.0, 5700000.0, 630000.0, 5716000.0],
        [620000.0, 5705000.0, 640000.0, 5712000.0],
        [600000.0, 5690000.0, 650000.0, 5730000.0],
        [625000.0, 5702000.0, 626000.0, 5703000.0],
    ];
    for e in entries("good_pyogrio_25832.gpkg") {
        let layer = e["layer"].as_str().unwrap();
        for b in boxes {
            let o = Command::new("ogrinfo")
                .args([
                    "-q",
                    "-spat",
                    &b[0].to_string(),
                    &b[1].to_string(),
                    &b[2].to_string(),
                    &b[3].to_string(),
                ])
                .arg(&store)
                .arg(layer)
                .output()
                .unwrap();
            let out = text(&o);
            let mut got: Vec<i64> = out
                .lines()
                .filter_map(|l| l.trim().strip_prefix(&format!("OGRFeature({layer}):")))
                .map(|f| f.trim().parse().unwrap())
                .collect();
            got.sort();
            let rect = Rect::new((b[0], b[1]), (b[2], b[3]));
            let conn = rusqlite::Connection::open(&store).unwrap();
            let mut stmt = conn
                .prepare(&format!("SELECT fid, geom FROM \"{layer}\" ORDER BY fid"))
                .unwrap();
            let want: Vec<i64> = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
                })
                .unwrap()
                .map(Result::unwrap)
                .filter(|(_, blob)| {
                    blob.as_ref()
                        .and_then(|b| gpkg::decode(b).ok())
                        .and_then(|d| d.decoded.geometry)
                        .is_some_and(|g| g.intersects(&rect))
                })
                .map(|(fid, _)| fid)
                .collect();
            assert_eq!(got, want, "{layer} {b:?}:\n{out}");
        }
    }
}
