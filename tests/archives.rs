//! Tile archives written by independent tools (GDAL 3.6 and 3.12, the `pmtiles` Python
//! package, sqlite3 by hand; tests/fixtures/make_archives.py): every stored tile served
//! byte-identical, TileJSON valid against the TileJSON 3.0 schema, GDAL reading the vector
//! tiles back over HTTP, damaged archives refused at start, and an archive replaced under
//! wrk load without errors or mixed tiles.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The name an archive fixture is configured under (its file name, '.' as '_').
fn name_of(a: &Value) -> String {
    a["path"].as_str().unwrap().replace('.', "_")
}

/// A configuration file naming `archives` (name, path) beside a store.
fn config(dir: &Path, archives: &[(String, PathBuf)]) -> PathBuf {
    let mut text = String::new();
    for (name, path) in archives {
        text.push_str(&format!(
            "[archives.{name}]\npath = \"{}\"\n\n",
            path.display()
        ));
    }
    let p = dir.join("nordgeo.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

/// Puts a copy of `src` at `live` by an atomic rename, as an administrator replaces a file.
fn replace_by_rename(src: &Path, live: &Path) {
    let next = live.with_extension("next");
    std::fs::copy(src, &next).unwrap();
    std::fs::rename(&next, live).unwrap();
}

/// The manifest entry of the archive fixture written as `path`.
fn fixture<'a>(manifest: &'a Value, path: &str) -> &'a Value {
    manifest["archives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == path)
        .unwrap()
}

/// An archive fixture's tiles as served under `/archives/live`: path → sha256.
fn live_tiles(a: &Value) -> std::collections::HashMap<String, &str> {
    a["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                format!("/archives/live/{}/{}/{}", t[0], t[1], t[2]),
                t[3].as_str().unwrap(),
            )
        })
        .collect()
}

/// Every tile of every archive, byte for byte, with its content type and coding; absent
/// tiles empty; TileJSON valid and true to the archive's metadata.
#[test]
fn every_stored_tile_is_served_byte_identical() {
    if !clients_available() {
        return;
    }
    let (dir, manifest) = archives();
    let (tmp, store) = sample_store();
    let list = manifest["archives"].as_array().unwrap();
    let named: Vec<(String, PathBuf)> = list
        .iter()
        .map(|a| (name_of(a), dir.join(a["path"].as_str().unwrap())))
        .collect();
    let cfg = config(tmp.path(), &named);
    let srv = serve(&store, &["--config", cfg.to_str().unwrap()]);

    let listed = get(&format!("{}/archives", srv.base), &[]).json();
    let text = listed.to_string();
    assert!(
        !text.contains(dir.to_str().unwrap()),
        "no server paths: {text}"
    );
    let mut tilejsons = Vec::new();
    for a in list {
        let name = name_of(a);
        assert!(
            text.contains(&format!("\"{name}\"")),
            "{name} listed: {text}"
        );
        let tj = get(&format!("{}/archives/{name}/tilejson.json", srv.base), &[]);
        assert_eq!(tj.status, 200);
        let tj = tj.json();
        assert_eq!(
            tj["tiles"][0],
            format!("{}/archives/{name}/{{z}}/{{x}}/{{y}}", srv.base)
        );
        assert_eq!(tj["minzoom"], a["minzoom"], "{name}");
        assert_eq!(tj["maxzoom"], a["maxzoom"], "{name}");
        if let Some(b) = a["bounds"].as_array() {
            for (got, want) in tj["bounds"].as_array().unwrap().iter().zip(b) {
                assert!((got.as_f64().unwrap() - want.as_f64().unwrap()).abs() < 1e-6);
            }
        }
        let vector = a["tile_type"] == "mvt";
        if vector {
            let ids = |v: &Value| -> Vec<String> {
                let mut ids: Vec<String> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["id"].as_str().unwrap().to_string())
                    .collect();
                ids.sort();
                ids
            };
            assert_eq!(
                ids(&tj["vector_layers"]),
                ids(&a["vector_layers"]),
                "{name}"
            );
        }
        tilejsons.push((vector, tj));

        let ct = a["content_type"].as_str().unwrap();
        let ce = a["content_encoding"].as_str().filter(|e| *e != "none");
        let tiles = a["tiles"].as_array().unwrap();
        for t in tiles {
            let (z, x, y) = (&t[0], &t[1], &t[2]);
            let url = format!("{}/archives/{name}/{z}/{x}/{y}", srv.base);
            let r = get(&url, &[("Accept-Encoding", "gzip, br")]);
            assert_eq!(r.status, 200, "{url}");
            assert_eq!(r.header("content-type"), Some(ct), "{url}");
            assert_eq!(r.header("content-encoding"), ce, "{url}");
            assert_eq!(sha256(&r.body), t[3].as_str().unwrap(), "{url}");
            assert_eq!(r.body.len() as u64, t[4].as_u64().unwrap(), "{url}");
        }
        // The OGC path (row before column), a client without gzip, and revalidation.
        let t = &tiles[tiles.len() / 2];
        let (z, x, y) = (&t[0], &t[1], &t[2]);
        let ogc = get(
            &format!(
                "{}/archives/{name}/tiles/WebMercatorQuad/{z}/{y}/{x}",
                srv.base
            ),
            &[("Accept-Encoding", "gzip")],
        );
        assert_eq!(sha256(&ogc.body), t[3].as_str().unwrap(), "{name} OGC");
        let plain = get(&format!("{}/archives/{name}/{z}/{x}/{y}", srv.base), &[]);
        assert_eq!(plain.header("content-encoding"), None);
        if ce == Some("gzip") {
            assert_eq!(
                gunzip(&ogc.body),
                plain.body,
                "{name}: decoded for plain clients"
            );
        } else {
            assert_eq!(ogc.body, plain.body);
        }
        let etag = ogc.header("etag").expect("ETag").to_string();
        let again = get(
            &format!("{}/archives/{name}/{z}/{x}/{y}", srv.base),
            &[("If-None-Match", &etag), ("Accept-Encoding", "gzip")],
        );
        assert_eq!(again.status, 304, "{name}");
        assert!(again.body.is_empty());
        let cors = get(
            &format!("{}/archives/{name}/{z}/{x}/{y}", srv.base),
            &[("Origin", "https://portal.example")],
        );
        assert!(
            cors.header("access-control-allow-origin").is_some(),
            "{name} CORS"
        );

        for ab in a["absent_tiles"].as_array().unwrap() {
            let (z, x, y) = (&ab[0], &ab[1], &ab[2]);
            let r = get(&format!("{}/archives/{name}/{z}/{x}/{y}", srv.base), &[]);
            assert!(
                r.status == 204 || r.status == 404,
                "{name} {z}/{x}/{y} absent: {}",
                r.status
            );
            assert!(r.status == 404 || r.body.is_empty());
        }
    }

    // The OGC API Tiles list names the archives beside the store's tilesets.
    let ogc = get(&format!("{}/tiles?f=json", srv.base), &[])
        .json()
        .to_string();
    for (name, _) in &named {
        assert!(
            ogc.contains(&format!("/archives/{name}/tiles/WebMercatorQuad")),
            "{name}: {ogc}"
        );
    }

    // TileJSON 3.0 schema; raster tilesets leave out vector_layers, which the
    // specification requires of vector tilesets only.
    let docs = tmp.path().join("tilejson.json");
    std::fs::write(&docs, serde_json::to_vec(&tilejsons).unwrap()).unwrap();
    let o = Command::new(venv_python())
        .args([
            "-c",
            r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
raster = dict(schema, required=[r for r in schema["required"] if r != "vector_layers"])
for vector, doc in json.load(open(sys.argv[2])):
    jsonschema.validate(doc, schema if vector else raster)
print("valid", len(json.load(open(sys.argv[2]))))
"#,
        ])
        .arg(root().join("tests/fixtures/tilejson-3.0.0.schema.json"))
        .arg(&docs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text_of(&o));
}

fn text_of(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// GDAL's MVT driver reads each vector archive's sample tile over HTTP with the same
/// layers and feature counts the independent decoder found in the file.
#[test]
fn gdal_reads_archive_vector_tiles_over_http() {
    if !clients_available() {
        return;
    }
    let (dir, manifest) = archives();
    let (tmp, store) = sample_store();
    let vector: Vec<&Value> = manifest["archives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["tile_type"] == "mvt")
        .collect();
    let named: Vec<(String, PathBuf)> = vector
        .iter()
        .map(|a| (name_of(a), dir.join(a["path"].as_str().unwrap())))
        .collect();
    let cfg = config(tmp.path(), &named);
    let srv = serve(&store, &["--config", cfg.to_str().unwrap()]);
    for a in vector {
        let name = name_of(a);
        let s = &a["sample_tile"];
        let url = format!(
            "/vsicurl/{}/archives/{name}/{}/{}/{}.pbf",
            srv.base, s["z"], s["x"], s["y"]
        );
        let o = Command::new("ogrinfo")
            .args(["-al", "-so", &url])
            .env("GDAL_HTTP_TIMEOUT", "20")
            .output()
            .unwrap();
        let t = text_of(&o);
        assert!(o.status.success(), "{name}: {t}");
        for (layer, n) in s["layers"].as_object().unwrap() {
            let block = t
                .split("Layer name: ")
                .find(|b| b.starts_with(&format!("{layer}\n")))
                .unwrap_or_else(|| panic!("{name}: layer {layer} missing in\n{t}"));
            assert!(
                block.contains(&format!("Feature Count: {n}\n")),
                "{name}/{layer}: {n} features expected in\n{block}"
            );
        }
    }
}

/// A truncated PMTiles file, a file that is not SQLite and a half MBTiles: the server
/// refuses to start and names the archive, without its path.
#[test]
fn damaged_archives_are_refused_at_start() {
    if !clients_available() {
        return;
    }
    let (dir, manifest) = archives();
    let (tmp, store) = sample_store();
    for b in manifest["broken"].as_array().unwrap() {
        let file = b["path"].as_str().unwrap();
        let name = file.replace('.', "_");
        let cfg = config(tmp.path(), &[(name.clone(), dir.join(file))]);
        let o = Command::new(bin())
            .arg("--store")
            .arg(&store)
            .args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let t = text_of(&o);
        assert!(!o.status.success(), "{name} must be refused: {t}");
        assert!(t.contains(&name), "{name} named: {t}");
        assert!(!t.contains("listening on"), "{t}");
    }
}

const WRK_SCRIPT: &str = r#"
local paths = {}
for line in io.lines(os.getenv("NORDGEO_PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {["Accept-Encoding"] = "gzip"})
end
done = function(summary, latency, requests)
  io.write(string.format("STATS requests=%d non2xx=%d errors=%d\n", summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"#;

/// An archive replaced by atomic rename while wrk reads it (twice, changing format):
/// no failed request, and afterwards every tile is the new file's.
#[test]
fn an_archive_replaced_under_load_serves_only_the_new_file() {
    if !clients_available() {
        return;
    }
    let (dir, manifest) = archives();
    let by_path = |p: &str| fixture(manifest, p);
    // Same region and zooms, different writers and contents.
    let versions = [
        by_path("vector_gdal36.mbtiles"),
        by_path("basemap_omt.pmtiles"),
        by_path("basemap_omt.mbtiles"),
    ];
    let (tmp, store) = sample_store();
    let live = tmp.path().join("live.archive");
    let copy = |a: &Value| replace_by_rename(&dir.join(a["path"].as_str().unwrap()), &live);
    copy(versions[0]);
    let cfg = config(tmp.path(), &[("live".to_string(), live.clone())]);
    let srv = serve(&store, &["--config", cfg.to_str().unwrap()]);

    // Every tile any version has, so that each answer is checkable after the swap.
    let mut paths: Vec<String> = versions
        .iter()
        .flat_map(|a| a["tiles"].as_array().unwrap())
        // The zooms all versions have: outside its zooms an archive answers 404.
        .filter(|t| t[0].as_u64().unwrap() <= 13)
        .map(|t| format!("/archives/live/{}/{}/{}", t[0], t[1], t[2]))
        .collect();
    paths.sort();
    paths.dedup();
    let list = tmp.path().join("paths.txt");
    std::fs::write(&list, paths.join("\n")).unwrap();
    let script = tmp.path().join("swap.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let wrk = Command::new("wrk")
        .args(["-t2", "-c32", "-d9s", "--timeout", "5s", "-s"])
        .arg(&script)
        .arg(&srv.base)
        .env("NORDGEO_PATHS", &list)
        .stdout(Stdio::piped())
        .spawn()
        .expect("wrk runs (scripts/setup.sh installs it)");

    let check_all = |a: &Value| {
        let want = live_tiles(a);
        for p in &paths {
            let r = get(&format!("{}{p}", srv.base), &[("Accept-Encoding", "gzip")]);
            match want.get(p) {
                Some(h) => {
                    assert_eq!(r.status, 200, "{p} after swap to {}", a["path"]);
                    assert_eq!(&sha256(&r.body), h, "{p}: a tile of another file");
                }
                None => assert!(
                    r.status == 204 || r.status == 404,
                    "{p} is not in {}: {}",
                    a["path"],
                    r.status
                ),
            }
        }
    };
    for next in &versions[1..] {
        std::thread::sleep(std::time::Duration::from_secs(3));
        copy(next);
        check_all(next);
    }
    let out = wrk.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let stats = text
        .lines()
        .find(|l| l.starts_with("STATS"))
        .unwrap_or_else(|| panic!("{text}"));
    let field = |k: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    eprintln!("{stats}");
    assert!(field("requests") > 1000, "{stats}");
    assert_eq!(field("non2xx"), 0, "{stats}");
    assert_eq!(field("errors"), 0, "{stats}");
}

/// Replaced by a damaged file, removed, put back, replaced again: each request right
/// after the rename (no pause) gets the file as it is then — a 503 for a damaged or
/// missing file, never a tile of the file before, and after the repair the repair's tiles
/// (even where an earlier file had the same tile cached).
#[test]
fn a_replaced_archive_is_seen_by_the_very_next_request() {
    if !clients_available() {
        return;
    }
    let (dir, manifest) = archives();
    let first = fixture(manifest, "basemap_omt.pmtiles");
    let second = fixture(manifest, "vector_gdal36.mbtiles");
    let broken = manifest["broken"].as_array().unwrap()[0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let (tmp, store) = sample_store();
    let live = tmp.path().join("live.archive");
    let put = |file: &str| replace_by_rename(&dir.join(file), &live);
    put("basemap_omt.pmtiles");
    let cfg = config(tmp.path(), &[("live".to_string(), live.clone())]);
    let srv = serve(&store, &["--config", cfg.to_str().unwrap()]);
    // A tile both files have, with different bytes.
    let (a, b) = (live_tiles(first), live_tiles(second));
    let (path, hash_a) = a
        .iter()
        .find(|(p, h)| b.get(*p).is_some_and(|hb| hb != *h))
        .expect("a tile both files have");
    let hash_b = &b[path];
    let fetch = || {
        get(
            &format!("{}{path}", srv.base),
            &[("Accept-Encoding", "gzip")],
        )
    };
    for round in 0..3 {
        let r = fetch();
        assert_eq!(r.status, 200, "round {round}");
        assert_eq!(
            &sha256(&r.body),
            hash_a,
            "round {round}: the first file's tile"
        );

        put(&broken);
        let r = fetch();
        assert_eq!(
            r.status, 503,
            "round {round}: a damaged replacement is an error"
        );
        assert!(!String::from_utf8_lossy(&r.body).contains(tmp.path().to_str().unwrap()));
        assert_eq!(fetch().status, 503, "and stays one until it is fixed");

        put("vector_gdal36.mbtiles");
        let r = fetch();
        assert_eq!(r.status, 200, "round {round}");
        assert_eq!(&sha256(&r.body), hash_b, "round {round}: the repair's tile");

        std::fs::remove_file(&live).unwrap();
        assert_eq!(
            fetch().status,
            503,
            "round {round}: a missing file is an error"
        );
        assert_eq!(fetch().status, 503);
        put("basemap_omt.pmtiles");
    }
}
