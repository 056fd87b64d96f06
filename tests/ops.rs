//! Operations: readiness and metrics, tile export (MBTiles byte for byte equal to the
//! live tiles, PMTiles read by GDAL 3.12), `publish` for a replica that answers like
//! the primary, and the backup/restore recipe in examples/deploy.

mod common;

use std::io::Read;
use std::process::Command;

use common::*;

#[test]
fn ready_and_metrics() {
    let (_dir, store) = sample_store();
    let out = ok(nordgeo(
        &store,
        &["token", "create", "--name", "ops", "--role", "admin"],
    ));
    let secret = out
        .lines()
        .find(|l| l.starts_with("ngt_"))
        .unwrap()
        .trim()
        .to_string();
    let srv = serve(&store, &[]);
    assert_eq!(get(&format!("{}/ready", srv.base), &[]).status, 200);
    for _ in 0..2 {
        get(
            &format!("{}/tiles/WebMercatorQuad/10/340/542", srv.base),
            &[],
        );
    }
    get(&format!("{}/collections/nope", srv.base), &[]);
    // /metrics names every layer, restricted ones too: admins only.
    assert_eq!(get(&format!("{}/metrics", srv.base), &[]).status, 401);
    let auth = format!("Bearer {secret}");
    let m = String::from_utf8(
        get(
            &format!("{}/metrics", srv.base),
            &[("Authorization", &auth)],
        )
        .body,
    )
    .unwrap();
    for line in [
        "nordgeo_http_requests_total{route=\"/tiles/{tms}/{z}/{y}/{x}\",status=\"200\"} 2",
        "nordgeo_http_requests_total{route=\"/collections/{id}\",status=\"404\"} 1",
        "nordgeo_tile_cache_hits_total 1",
        "nordgeo_tile_cache_misses_total 1",
        "nordgeo_index_features{layer=\"parcels\"} 6000",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    // By zoom only: a label per requested layer list would let callers grow /metrics.
    assert!(m.contains("nordgeo_tile_render_seconds_count{zoom=\"10\"} 1"));
    assert!(
        m.contains("nordgeo_http_request_duration_seconds_bucket{route=\"/ready\",le=\"+Inf\"} 1")
    );
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn exported_tiles_equal_the_live_tiles() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let mb = dir.path().join("tiles.mbtiles");
    let pm = dir.path().join("tiles.pmtiles");
    ok(nordgeo(
        &store,
        &[
            "export-tiles",
            mb.to_str().unwrap(),
            "--format",
            "mbtiles",
            "--maxzoom",
            "13",
        ],
    ));
    ok(nordgeo(
        &store,
        &[
            "export-tiles",
            pm.to_str().unwrap(),
            "--format",
            "pmtiles",
            "--maxzoom",
            "13",
        ],
    ));
    let conn = rusqlite::Connection::open(&mb).unwrap();
    let mut st = conn
        .prepare("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")
        .unwrap();
    let rows: Vec<(u32, u32, u32, Vec<u8>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(rows.len() > 100, "{} tiles", rows.len());
    for (z, x, tms_y, data) in &rows {
        let y = (1u32 << z) - 1 - tms_y;
        let live = get(
            &format!("{}/tiles/WebMercatorQuad/{z}/{y}/{x}", srv.base),
            &[],
        );
        assert_eq!(live.status, 200, "{z}/{y}/{x}");
        assert!(
            gunzip(data) == live.body,
            "tile {z}/{y}/{x} differs from the live tile"
        );
    }
    // GDAL 3.12 (pyogrio) reads both containers: the same layers with the same features.
    let script = r#"
import sys, json, pyogrio
out = {}
for f in sys.argv[1:]:
    out[f] = {name: pyogrio.read_info(f, layer=name)["features"] for name, _ in pyogrio.list_layers(f)}
print(json.dumps(out))
"#;
    let o = Command::new(venv_python())
        .args(["-c", script, mb.to_str().unwrap(), pm.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let a = &v[mb.to_str().unwrap()];
    let b = &v[pm.to_str().unwrap()];
    assert_eq!(
        a, b,
        "MBTiles and PMTiles hold the same layers and features"
    );
    for layer in [
        "municipalities",
        "parcels",
        "trails",
        "parking",
        "childcare",
    ] {
        assert!(
            b[layer].as_i64().unwrap_or(0) > 0,
            "{layer} in the PMTiles: {b}"
        );
    }
}

/// `nordgeo publish` copies the store while it is served; a server on the copy answers
/// exactly like the primary.
#[test]
fn publish_makes_a_replica_that_answers_alike() {
    let (dir, store) = sample_store();
    let primary = serve(&store, &[]);
    let copy = dir.path().join("replica.gpkg");
    ok(nordgeo(&store, &["publish", copy.to_str().unwrap()]));
    let replica = serve(&copy, &[]);
    for path in [
        "/collections",
        "/collections/parking/items?limit=100",
        "/collections/trails/items?bbox=10.7,51.45,10.95,51.6&limit=100",
        "/tiles/WebMercatorQuad/12/1361/2171",
        "/tiles/WebMercatorQuad/tilejson.json",
    ] {
        let a = get(&format!("{}{path}", primary.base), &[]);
        let b = get(&format!("{}{path}", replica.base), &[]);
        assert_eq!(a.status, b.status, "{path}");
        let strip = |r: &Response, base: &str| {
            String::from_utf8_lossy(&r.body)
                .replace(base, "BASE")
                .into_bytes()
        };
        assert!(
            strip(&a, &primary.base) == strip(&b, &replica.base),
            "{path} differs between primary and replica"
        );
    }
}

#[test]
fn backup_and_restore_recipe() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    let script = root().join("examples/deploy/backup.sh");
    let backups = dir.path().join("backups");
    let o = Command::new("bash")
        .arg(&script)
        .args(["backup", store.to_str().unwrap(), backups.to_str().unwrap()])
        .env("NORDGEO", bin())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let file = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert_valid(std::path::Path::new(&file));
    let before = checksum(&store);
    // Something goes wrong: the store is damaged.
    std::fs::write(&store, b"not a database any more").unwrap();
    let o = Command::new("bash")
        .arg(&script)
        .args(["restore", &file, store.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        checksum(&store),
        before,
        "the restored store holds the backed-up data"
    );
    assert_valid(&store);
    let srv = serve(&store, &[]);
    assert_eq!(get(&format!("{}/ready", srv.base), &[]).status, 200);
}

/// `config check` names a bad key with its line; a good file is printed back with the
/// environment applied; `serve --config` applies the layer settings.
#[test]
fn configuration_file() {
    let (dir, store) = sample_store();
    let example = root().join("examples/nordgeo.toml");
    let o = nordgeo_env(
        &store,
        &["config", "check", "--config", example.to_str().unwrap()],
        &[("NORDGEO_CACHE_MB", "64")],
    );
    let out = ok(o);
    assert!(out.contains("cache_mb = 64"), "{out}");
    assert!(out.contains("[layers.childcare]"), "{out}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\ncache_mb = 1\nbnd = \"x\"\n").unwrap();
    let o = nordgeo(
        &store,
        &["config", "check", "--config", bad.to_str().unwrap()],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("bnd") && t.contains("line 3"), "{t}");
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, "[layers.parking]\ninternal = [\"nope\"]\n").unwrap();
    let o = nordgeo(
        &store,
        &["config", "check", "--config", wrong.to_str().unwrap()],
    );
    assert!(
        !o.status.success() && text(&o).contains("nope"),
        "{}",
        text(&o)
    );

    let srv = serve(&store, &["--config", example.to_str().unwrap()]);
    let c = get(
        &format!("{}/collections/childcare/items?limit=1", srv.base),
        &[],
    )
    .json();
    assert!(
        c["features"][0]["properties"]
            .get("opening_hours")
            .is_none()
    );
    let col = get(&format!("{}/collections/parking", srv.base), &[]).json();
    assert_eq!(col["title"], "Parkplätze");
}

/// `vacuum` is the only way history goes: rows of changes older than the cutoff, never
/// the change log itself, never younger rows.
#[test]
fn vacuum_removes_only_old_history() {
    let (dir, store) = sample_store();
    let copy = dir.path().join("parking.gpkg");
    ok(nordgeo(
        &store,
        &["export", "parking", copy.to_str().unwrap()],
    ));
    ok(nordgeo(
        &store,
        &[
            "import",
            copy.to_str().unwrap(),
            "--layer",
            "parking",
            "--mode",
            "replace",
        ],
    ));
    let count = |sql: &str| -> i64 {
        rusqlite::Connection::open(&store)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    };
    let rows = count("SELECT count(*) FROM nordgeo_history_parking");
    let changes = count("SELECT count(*) FROM nordgeo_changes");
    assert!(rows > 0);
    let out = ok(nordgeo(&store, &["vacuum", "--older-than", "365d"]));
    assert!(out.contains("removed 0 history rows"), "{out}");
    assert_eq!(count("SELECT count(*) FROM nordgeo_history_parking"), rows);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(nordgeo(&store, &["vacuum", "--older-than", "0h"]));
    assert_eq!(count("SELECT count(*) FROM nordgeo_history_parking"), 0);
    assert_eq!(count("SELECT count(*) FROM nordgeo_changes"), changes);
}

/// Rolling back one feature restores exactly its stored row of then and leaves the other
/// features' later changes alone (HTTP for one feature, the CLI for another).
#[test]
fn rollback_of_one_feature() {
    let (_dir, store) = sample_store();
    let o = nordgeo(
        &store,
        &["token", "create", "--name", "admin", "--role", "admin"],
    );
    let token = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let row = |fid: i64| -> Vec<rusqlite::types::Value> {
        let c = rusqlite::Connection::open(&store).unwrap();
        let mut st = c.prepare("SELECT * FROM parking WHERE fid = ?1").unwrap();
        let n = st.column_count();
        st.query_row([fid], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
    };
    let (a, b) = (3i64, 4i64);
    let (a0, b0) = (row(a), row(b));
    let srv = serve(&store, &[]);
    let auth = format!("Bearer {token}");
    let patch = |fid: i64, cap: i64| -> i64 {
        let r = request(
            "PATCH",
            &format!("{}/collections/parking/items/{fid}", srv.base),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/merge-patch+json"),
            ],
            format!(r#"{{"properties": {{"capacity": {cap}}}}}"#).as_bytes(),
        );
        assert_eq!(r.status, 204);
        r.header("x-nordgeo-change").unwrap().parse().unwrap()
    };
    let c1 = patch(a, 1001);
    let a1 = row(a);
    patch(b, 2002);
    let b2 = row(b);
    patch(a, 3003);
    let r = request(
        "POST",
        &format!(
            "{}/collections/parking/rollback?to={c1}&feature={a}",
            srv.base
        ),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(row(a), a1, "feature {a} is as right after change {c1}");
    assert_eq!(row(b), b2, "feature {b} keeps its later change");
    let served = get(&format!("{}/collections/parking/items/{a}", srv.base), &[]).json();
    assert_eq!(served["properties"]["capacity"], 1001);
    drop(srv);
    // The change that loaded the sample's parking layer comes before the edits.
    let loaded: i64 = rusqlite::Connection::open(&store)
        .unwrap()
        .query_row(
            "SELECT max(id) FROM nordgeo_changes WHERE layer = 'parking' AND id < ?1",
            [c1],
            |r| r.get(0),
        )
        .unwrap();
    ok(nordgeo(
        &store,
        &[
            "rollback",
            "parking",
            "--to",
            &loaded.to_string(),
            "--feature",
            &b.to_string(),
        ],
    ));
    assert_eq!(row(b), b0, "feature {b} is back to its original bytes");
    assert_ne!(row(a), a0);
}
