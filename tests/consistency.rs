//! One consistent catalog (issue 11): whatever mix of changes arrives by whichever path
//! — HTTP edits and imports, CLI imports, rollbacks and layer settings from another
//! process, an UPDATE by GDAL — a long-running server serves byte for byte what a
//! freshly started server on the same store serves. The oracle is that fresh server: a
//! separate process that reads the store from scratch.
//!
//! `NORDGEO_QUIESCENCE_SECS` makes each seed's write phase longer (default 12 s).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The public URL both servers build links with, so their bytes can be compared.
const PUBLIC: &str = "http://nordgeo.test";

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn tile_of(lon: f64, lat: f64, z: u32) -> (u32, u32, u32) {
    let n = 2f64.powi(z as i32);
    let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
    let y =
        ((1.0 - lat.to_radians().tan().asinh() / std::f64::consts::PI) / 2.0 * n).floor() as u32;
    (z, y, x)
}

/// Positions (lon, lat) of the first features of a collection.
fn positions(base: &str, collection: &str, n: usize) -> Vec<(f64, f64)> {
    let v = get(
        &format!("{base}/collections/{collection}/items?limit={n}"),
        &[],
    )
    .json();
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let mut c = &f["geometry"]["coordinates"];
            while c[0].is_array() {
                c = &c[0];
            }
            Some((c[0].as_f64()?, c[1].as_f64()?))
        })
        .collect()
}

/// The fixed list of resources compared at the end (paths, without the base).
fn resources(base: &str) -> Vec<String> {
    let mut tiles = std::collections::BTreeSet::new();
    for (collection, n, zooms) in [
        ("parking", 20, &[8u32, 10, 12, 14, 15, 16][..]),
        ("childcare", 12, &[10, 12, 14, 16][..]),
        ("parcels", 12, &[12, 14, 16][..]),
        ("trails", 6, &[8, 11, 13, 15][..]),
    ] {
        for (lon, lat) in positions(base, collection, n) {
            for &z in zooms {
                let (z, y, x) = tile_of(lon, lat, z);
                tiles.insert(format!(
                    "/collections/{collection}/tiles/WebMercatorQuad/{z}/{y}/{x}"
                ));
                tiles.insert(format!("/tiles/WebMercatorQuad/{z}/{y}/{x}"));
            }
        }
    }
    let mut out: Vec<String> = tiles.into_iter().collect();
    for c in ["parking", "childcare", "parcels", "trails"] {
        out.push(format!("/collections/{c}/items?limit=10000"));
        out.push(format!("/collections/{c}/items?limit=7&offset=3"));
        out.push(format!("/collections/{c}/items?f=html&limit=30"));
        out.push(format!(
            "/collections/{c}/tiles/WebMercatorQuad/tilejson.json"
        ));
        out.push(format!("/collections/{c}"));
        // Downloads are written from the same snapshot as the GeoJSON.
        out.push(format!("/collections/{c}/items?f=csv"));
    }
    out.push("/collections/trails/items?f=gpx".into());
    out.push("/collections/parking/items?sortby=-capacity,name&limit=15".into());
    out.push("/collections/childcare/items?filter=capacity%20%3E%2020&limit=50".into());
    out.push("/tiles/WebMercatorQuad/tilejson.json".into());
    out.push("/tiles/WebMercatorQuad/tilejson.json?collections=parking,childcare".into());
    out.push("/collections".into());
    out
}

/// The sole writer of one kind: each call makes one change and says what it did.
struct Writers {
    base: String,
    store: PathBuf,
    admin: String,
    one_parking: PathBuf,
    rng: Rng,
    changes: Vec<i64>,
}

impl Writers {
    fn fids(&self, c: &str) -> Vec<i64> {
        let v = get(
            &format!("{}/collections/{c}/items?limit=10000", self.base),
            &[("Authorization", &format!("Bearer {}", self.admin))],
        )
        .json();
        v["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["id"].as_i64())
            .collect()
    }

    fn pick(&mut self, c: &str) -> Option<i64> {
        let f = self.fids(c);
        (!f.is_empty()).then(|| f[self.rng.below(f.len())])
    }

    fn note(&mut self, r: &Response) {
        if let Some(c) = r.header("x-nordgeo-change").and_then(|c| c.parse().ok()) {
            self.changes.push(c);
        }
    }

    /// One HTTP write.
    fn http(&mut self) -> String {
        let base = self.base.clone();
        let items = |c: &str| format!("{base}/collections/{c}/items");
        match self.rng.below(6) {
            0 => {
                let c = ["childcare", "parking", "parcels"][self.rng.below(3)];
                let Some(fid) = self.pick(c) else {
                    return "none".into();
                };
                let use_ = ["Wald", "Acker", "Gebäude- und Freifläche"][self.rng.below(3)];
                let props = match c {
                    "childcare" => {
                        json!({"free_places": self.rng.below(40), "capacity": 20 + self.rng.below(90)})
                    }
                    "parking" => {
                        // Another car park's name: a value only one feature had until now
                        // (tiles write such values without looking them up).
                        let name = self
                            .pick("parking")
                            .map(|o| get(&format!("{}/{o}", items("parking")), &[]).json())
                            .map(|o| o["properties"]["name"].clone())
                            .unwrap_or(Value::Null);
                        json!({"capacity": self.rng.below(400), "fee": self.rng.below(2) == 1, "name": name})
                    }
                    _ => json!({ "land_use": use_ }),
                };
                let r = send(
                    "PATCH",
                    &format!("{}/{fid}", items(c)),
                    &self.admin,
                    "application/merge-patch+json",
                    json!({"properties": props}).to_string().as_bytes(),
                );
                self.note(&r);
                format!("PATCH {c}/{fid} {}", r.status)
            }
            1 => {
                let Some(fid) = self.pick("parking") else {
                    return "none".into();
                };
                // Move it a little: old and new tiles change.
                let f = get(&format!("{}/{fid}", items("parking")), &[]).json();
                let c = &f["geometry"]["coordinates"];
                let (lon, lat) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
                let d = (self.rng.below(200) as f64 - 100.0) * 1e-5;
                let body = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon + d, lat - d]},
                                  "properties": f["properties"]});
                let r = send(
                    "PUT",
                    &format!("{}/{fid}", items("parking")),
                    &self.admin,
                    "application/geo+json",
                    body.to_string().as_bytes(),
                );
                self.note(&r);
                format!("PUT parking/{fid} {}", r.status)
            }
            2 => {
                let lon = 10.6 + self.rng.below(1000) as f64 * 4e-4;
                let lat = 51.4 + self.rng.below(1000) as f64 * 2e-4;
                let body = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                                  "properties": {"name": format!("P{}", self.rng.below(1000)), "capacity": 12, "fee": false,
                                                 "wheelchair_spaces": 1, "municipality": "Werther"}});
                let r = send(
                    "POST",
                    &items("parking"),
                    &self.admin,
                    "application/geo+json",
                    body.to_string().as_bytes(),
                );
                self.note(&r);
                format!("POST parking {}", r.status)
            }
            3 => {
                let Some(fid) = self.pick("parking") else {
                    return "none".into();
                };
                let r = send(
                    "DELETE",
                    &format!("{}/{fid}", items("parking")),
                    &self.admin,
                    "",
                    b"",
                );
                self.note(&r);
                format!("DELETE parking/{fid} {}", r.status)
            }
            4 => {
                let body = std::fs::read(&self.one_parking).unwrap();
                let r = send(
                    "POST",
                    &format!(
                        "{}/collections/parking/import?mode=append&allow-duplicates=true",
                        self.base
                    ),
                    &self.admin,
                    "application/geopackage+sqlite3",
                    &body,
                );
                format!("HTTP import {}", r.status)
            }
            _ => {
                let Some(fid) = self.pick("childcare") else {
                    return "none".into();
                };
                let r = send(
                    "PATCH",
                    &format!("{}/{fid}", items("childcare")),
                    &self.admin,
                    "application/merge-patch+json",
                    json!({"geometry": {"type": "Point", "coordinates": [10.7 + self.rng.below(100) as f64 * 1e-3, 51.5]}})
                        .to_string()
                        .as_bytes(),
                );
                self.note(&r);
                format!("PATCH geometry childcare/{fid} {}", r.status)
            }
        }
    }

    /// One write by another process: the CLI or GDAL.
    fn other(&mut self) -> String {
        let store = self.store.clone();
        match self.rng.below(5) {
            0 => {
                let o = nordgeo(
                    &store,
                    &[
                        "import",
                        self.one_parking.to_str().unwrap(),
                        "--into",
                        "parking",
                        "--mode",
                        "append",
                        "--allow-duplicates",
                    ],
                );
                format!("CLI import {}", o.status)
            }
            1 if !self.changes.is_empty() => {
                let to = self.changes[self.rng.below(self.changes.len())];
                let fid = self.pick("parking").unwrap_or(1);
                let o = nordgeo(
                    &store,
                    &[
                        "rollback",
                        "parking",
                        "--to",
                        &to.to_string(),
                        "--feature",
                        &fid.to_string(),
                    ],
                );
                format!("CLI rollback parking/{fid} to {to}: {}", o.status)
            }
            2 => {
                let internal = ["free_places", "", "opening_hours,free_places"][self.rng.below(3)];
                let o = nordgeo(&store, &["set-layer", "childcare", "--internal", internal]);
                format!("set-layer childcare --internal '{internal}' {}", o.status)
            }
            3 => {
                let title = format!("Parkplätze {}", self.rng.below(100));
                let o = nordgeo(&store, &["set-layer", "parking", "--title", &title]);
                format!("set-layer parking --title {}", o.status)
            }
            _ => {
                let Some(fid) = self.pick("parking") else {
                    return "none".into();
                };
                let cap = self.rng.below(500);
                let o = Command::new("ogrinfo")
                    .arg(gdal_source(&store))
                    .args([
                        "-sql",
                        &format!("UPDATE parking SET capacity = {cap} WHERE fid = {fid}"),
                    ])
                    .output()
                    .unwrap();
                format!("GDAL UPDATE parking/{fid} {}", o.status)
            }
        }
    }
}

/// Fetches every resource from a server, anonymously and as an admin.
fn snapshot(
    base: &str,
    paths: &[String],
    admin: &str,
) -> Vec<(String, u16, Option<String>, Vec<u8>)> {
    let bearer = format!("Bearer {admin}");
    let mut out = Vec::new();
    for p in paths {
        for auth in [None, Some(bearer.as_str())] {
            let h: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
            let r = get(&format!("{base}{p}"), &h);
            let who = if auth.is_some() { "admin" } else { "anonymous" };
            out.push((
                format!("{who} {p}"),
                r.status,
                r.header("etag").map(str::to_string),
                r.body,
            ));
        }
    }
    out
}

fn run_seed(seed: u64, secs: u64) -> Vec<String> {
    let (dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let one = dir.path().join("one.gpkg");
    ok(nordgeo(
        &store,
        &["export", "parking", one.to_str().unwrap()],
    ));
    {
        let c = rusqlite::Connection::open(&one).unwrap();
        nordgeo::store::functions::register(&c).unwrap();
        c.execute_batch("DELETE FROM parking WHERE fid NOT IN (SELECT min(fid) FROM parking)")
            .unwrap();
    }
    let long = serve(&store, &["--public-url", PUBLIC]);
    let paths = resources(&long.base);
    // Readers keep the caches busy (and racing the writers) the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|k| {
            let (base, paths, stop, admin) = (
                long.base.clone(),
                paths.clone(),
                stop.clone(),
                admin.clone(),
            );
            std::thread::spawn(move || {
                let bearer = format!("Bearer {admin}");
                let mut i = k * 17;
                while !stop.load(Ordering::Relaxed) {
                    let p = &paths[i % paths.len()];
                    let h: Vec<(&str, &str)> = if i % 3 == 0 {
                        vec![("Authorization", bearer.as_str())]
                    } else {
                        vec![]
                    };
                    let _ = get(&format!("{base}{p}"), &h);
                    i += 1;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut log = Vec::new();
    let other = {
        let mut w = Writers {
            base: long.base.clone(),
            store: store.clone(),
            admin: admin.clone(),
            one_parking: one.clone(),
            rng: Rng(seed.wrapping_mul(7919) | 1),
            changes: Vec::new(),
        };
        std::thread::spawn(move || {
            let mut log = Vec::new();
            while Instant::now() < deadline {
                log.push(w.other());
            }
            log
        })
    };
    let mut w = Writers {
        base: long.base.clone(),
        store: store.clone(),
        admin: admin.clone(),
        one_parking: one.clone(),
        rng: Rng(seed | 1),
        changes: Vec::new(),
    };
    while Instant::now() < deadline {
        log.push(w.http());
    }
    log.extend(other.join().unwrap());
    // Quiescence: the watcher looks every 100 ms.
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let fresh = serve(&store, &["--public-url", PUBLIC]);
    let a = snapshot(&long.base, &paths, &admin);
    let b = snapshot(&fresh.base, &paths, &admin);
    let mut differ = Vec::new();
    for (x, y) in a.iter().zip(&b) {
        if x.1 != y.1 || x.2 != y.2 || x.3 != y.3 {
            differ.push(format!(
                "seed {seed}: {} differs: long-running {} {:?} ({} bytes), fresh {} {:?} ({} bytes)",
                x.0,
                x.1,
                x.2,
                x.3.len(),
                y.1,
                y.2,
                y.3.len()
            ));
        }
    }
    // Single features and their ETags, for every feature there is now.
    for c in ["parking", "childcare"] {
        let all = get(
            &format!("{}/collections/{c}/items?limit=10000", fresh.base),
            &[],
        )
        .json();
        let item_paths: Vec<String> = all["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("/collections/{c}/items/{}", f["id"]))
            .collect();
        let a = snapshot(&long.base, &item_paths, &admin);
        let b = snapshot(&fresh.base, &item_paths, &admin);
        for (x, y) in a.iter().zip(&b) {
            if x != y {
                differ.push(format!("seed {seed}: {} differs (status/ETag/body)", x.0));
            }
        }
    }
    if !differ.is_empty() {
        differ.push(format!("seed {seed}: the writes were: {log:?}"));
    }
    let writes = log.len();
    assert!(
        writes > 10,
        "seed {seed}: only {writes} writes ran: {log:?}"
    );
    differ
}

#[test]
fn a_long_running_server_serves_what_a_fresh_one_serves() {
    if !clients_available() {
        return;
    }
    let secs = std::env::var("NORDGEO_QUIESCENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut differ = Vec::new();
    for seed in [1u64, 2, 3] {
        differ.extend(run_seed(seed, secs));
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// A property made internal by another process leaves every representation at once,
/// cached tiles included.
#[test]
fn a_property_made_internal_leaves_cached_tiles_at_once() {
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let (lon, lat) = positions(&srv.base, "parcels", 1)[0];
    let (z, y, x) = tile_of(lon, lat, 16);
    let tile = format!(
        "{}/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}",
        srv.base
    );
    let has = |b: &[u8]| b.windows(8).any(|w| w == b"land_use");
    let first = get(&tile, &[]);
    assert_eq!(first.status, 200);
    assert!(has(&first.body), "the tile carries land_use before");
    assert_eq!(get(&tile, &[]).header("x-nordgeo-cache"), Some("hit"));
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--internal", "land_use"],
    ));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let t = get(&tile, &[]);
        let items = get(
            &format!("{}/collections/parcels/items?limit=5", srv.base),
            &[],
        );
        if !has(&t.body) && !has(&items.body) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "3 s after set-layer, land_use is still served to anonymous callers (tile: {}, GeoJSON: {})",
            has(&t.body),
            has(&items.body)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A write answers with what it did: an import that outlasts the read time limit still
/// answers 200 once committed; one that runs out of its own budget answers 503 and
/// leaves the store as it was.
#[test]
fn a_slow_import_answers_with_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.gpkg");
    ok(Command::new(bin())
        .args(["generate", big.to_str().unwrap(), "--scale", "0.3"])
        .output()
        .unwrap());
    let (_d, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let body = {
        let part = dir.path().join("parcels.gpkg");
        let src = nordgeo::store::Store::open_read_only(&big).unwrap();
        nordgeo::export::export(&src, "parcels", &part, true).unwrap();
        std::fs::read(&part).unwrap()
    };
    let count = |s: &Path| -> i64 { query_i64s(s, "SELECT count(*) FROM parcels")[0] };
    let want: i64 = rusqlite::Connection::open(&big)
        .unwrap()
        .query_row("SELECT count(*) FROM parcels", [], |r| r.get(0))
        .unwrap();

    // Out of its own budget (0.3 s): refused, nothing written.
    let srv = serve(&store, &["--import-timeout-s", "0.3"]);
    let before = checksum(&store);
    let started = Instant::now();
    let r = send(
        "POST",
        &format!("{}/collections/parcels/import?mode=replace", srv.base),
        &admin,
        "application/geopackage+sqlite3",
        &body,
    );
    if started.elapsed() < Duration::from_millis(250) {
        // A machine that imports 90,000 parcels this fast commits in time.
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    } else {
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(
            String::from_utf8_lossy(&r.body).contains("nothing was changed"),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        drop(srv);
        assert_eq!(
            checksum(&store),
            before,
            "a stopped import changed the store"
        );
    }

    // Longer than the read limit: the answer waits for the commit and says so.
    let srv = serve(&store, &["--request-timeout-s", "1"]);
    let before = checksum(&store);
    let started = Instant::now();
    let r = send(
        "POST",
        &format!("{}/collections/parcels/import?mode=replace", srv.base),
        &admin,
        "application/geopackage+sqlite3",
        &body,
    );
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["committed"], true);
    assert_eq!(count(&store), want);
    assert_ne!(checksum(&store), before);
    eprintln!("import of {want} parcels took {took:?}");
}

/// Layer settings have one source of truth: a configuration file that would loosen
/// what the store says is refused, `config check` names the change, and only
/// `--allow-loosening` applies it.
#[test]
fn the_configuration_file_never_loosens_the_store() {
    if geopackage_only(
        "[layers] in the configuration file is refused on a PostGIS store, whose settings live in the database (set-layer)",
    ) {
        return;
    }
    let (dir, store) = sample_store();
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--restricted", "true"],
    ));
    ok(nordgeo(
        &store,
        &[
            "set-layer",
            "childcare",
            "--internal",
            "opening_hours,free_places",
        ],
    ));
    let config = dir.path().join("nordgeo.toml");
    std::fs::write(
        &config,
        "[layers.parcels]\nrestricted = false\n\n[layers.childcare]\ninternal = [\"opening_hours\"]\ntitle = \"Kitas\"\n",
    )
    .unwrap();
    let before = checksum(&store);
    let check = nordgeo(
        &store,
        &["config", "check", "--config", config.to_str().unwrap()],
    );
    let t = text(&check);
    assert!(
        t.contains("layers.parcels.restricted: true -> false"),
        "{t}"
    );
    assert!(t.contains("--allow-loosening"), "{t}");
    let o = Command::new(bin())
        .arg("--store")
        .arg(&store)
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "serve must refuse to loosen: {}",
        text(&o)
    );
    assert!(
        text(&o).contains("shows more than the store allows now"),
        "{}",
        text(&o)
    );
    assert_eq!(
        checksum(&store),
        before,
        "a refused start changed the store"
    );
    let srv = serve(
        &store,
        &["--config", config.to_str().unwrap(), "--allow-loosening"],
    );
    assert_eq!(
        get(&format!("{}/collections/parcels", srv.base), &[]).status,
        200
    );
    let kita = get(
        &format!("{}/collections/childcare/items?limit=1", srv.base),
        &[],
    )
    .json();
    assert!(
        kita["features"][0]["properties"]
            .get("free_places")
            .is_some()
    );
    assert!(
        kita["features"][0]["properties"]
            .get("opening_hours")
            .is_none()
    );
}

/// Rollback over HTTP and on the command line is the same code: the same rows and the
/// same extent in gpkg_contents.
#[test]
fn rollback_over_http_and_on_the_command_line_agree() {
    let (dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let srv = serve(&store, &[]);
    // Move a car park far east, so the layer's extent grows.
    let first = get(
        &format!("{}/collections/parking/items?limit=1", srv.base),
        &[],
    )
    .json();
    let fid = first["features"][0]["id"].as_i64().unwrap();
    let r = send(
        "PATCH",
        &format!("{}/collections/parking/items/{fid}", srv.base),
        &admin,
        "application/merge-patch+json",
        br#"{"geometry": {"type": "Point", "coordinates": [11.9, 51.5]}}"#,
    );
    assert_eq!(r.status, 204);
    drop(srv);
    let history: Value =
        serde_json::from_slice(&nordgeo(&store, &["history", "parking", "--json"]).stdout).unwrap();
    let to = history[0]["id"].as_i64().unwrap();
    let copy = dir.path().join("copy.gpkg");
    std::fs::copy(&store, &copy).unwrap();
    let srv = serve(&store, &[]);
    let r = send(
        "POST",
        &format!("{}/collections/parking/rollback?to={to}", srv.base),
        &admin,
        "",
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    drop(srv);
    ok(nordgeo(
        &copy,
        &["rollback", "parking", "--to", &to.to_string()],
    ));
    let extent = |s: &Path| -> Vec<Option<f64>> {
        let c = rusqlite::Connection::open(s).unwrap();
        c.query_row(
            "SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = 'parking'",
            [],
            |r| Ok(vec![r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
        )
        .unwrap()
    };
    assert_eq!(extent(&store), extent(&copy));
    let rows = |s: &Path| -> Vec<String> {
        let c = rusqlite::Connection::open(s).unwrap();
        let mut st = c.prepare("SELECT * FROM parking ORDER BY fid").unwrap();
        let n = st.column_count();
        st.query_map([], |r| {
            Ok((0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    assert_eq!(rows(&store), rows(&copy));
}

/// Commits by another program between this server's own writes are never skipped.
#[test]
fn commits_by_gdal_between_http_writes_are_never_lost() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let srv = serve(&store, &["--public-url", PUBLIC]);
    let fids: Vec<i64> = get(
        &format!("{}/collections/parking/items?limit=2", srv.base),
        &[],
    )
    .json()["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    for i in 0..15 {
        let o = Command::new("ogrinfo")
            .arg(gdal_source(&store))
            .args([
                "-sql",
                &format!(
                    "UPDATE parking SET capacity = {} WHERE fid = {}",
                    300 + i,
                    fids[0]
                ),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let r = send(
            "PATCH",
            &format!("{}/collections/parking/items/{}", srv.base, fids[1]),
            &admin,
            "application/merge-patch+json",
            json!({"properties": {"capacity": i}})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 204);
    }
    std::thread::sleep(Duration::from_millis(500));
    let fresh = serve(&store, &["--public-url", PUBLIC]);
    for fid in &fids {
        let path = format!("/collections/parking/items/{fid}");
        let a = get(&format!("{}{path}", srv.base), &[]);
        let b = get(&format!("{}{path}", fresh.base), &[]);
        assert_eq!(
            (a.header("etag"), &a.body),
            (b.header("etag"), &b.body),
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    let v: Value = get(
        &format!("{}/collections/parking/items/{}", srv.base, fids[0]),
        &[],
    )
    .json();
    assert_eq!(v["properties"]["capacity"], 314);
}
