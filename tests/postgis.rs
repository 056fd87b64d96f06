//! The PostGIS store, against a throwaway PostgreSQL 15 + PostGIS 3 cluster each test
//! starts itself (scripts/pg_cluster.sh, on a free port) and stops afterwards. Oracles:
//! the GeoPackage store's server on the same data (loaded into PostgreSQL by GDAL's
//! ogr2ogr and by PostGIS's shp2pgsql, not by nordgeo), GDAL reading the tables
//! directly, and a freshly started instance for what long-running ones serve.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{get, nordgeo, ok, root, serve, text};

/// A throwaway cluster with a database `nordgeo` that has PostGIS; stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let out = Command::new("bash")
            .arg(root().join("scripts/pg_cluster.sh"))
            .args(["start", dir.path().to_str().unwrap(), &port.to_string()])
            .output()
            .expect("pg_cluster.sh runs");
        assert!(out.status.success(), "cluster start failed: {}", text(&out));
        Cluster { dir, port }
    }

    /// The store address nordgeo is given.
    fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/nordgeo", self.port)
    }

    /// GDAL's connection string.
    fn gdal(&self) -> String {
        format!(
            "PG:host=127.0.0.1 port={} dbname=nordgeo user=postgres",
            self.port
        )
    }

    /// Runs SQL with psql and returns its unaligned output.
    fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-tA",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "nordgeo",
                "-c",
                sql,
            ])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql failed on {sql}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn ctl(&self, what: &str) {
        let out = Command::new("bash")
            .arg(root().join("scripts/pg_cluster.sh"))
            .args([
                what,
                self.dir.path().to_str().unwrap(),
                &self.port.to_string(),
            ])
            .output()
            .expect("pg_cluster.sh runs");
        assert!(
            out.status.success(),
            "cluster {what} failed: {}",
            text(&out)
        );
    }

    fn bin(&self, name: &str) -> PathBuf {
        let bins = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL installed")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .max()
            .expect("a PostgreSQL version");
        bins.join(name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("scripts/pg_cluster.sh"))
            .args(["stop", self.dir.path().to_str().unwrap()])
            .output();
    }
}

/// The JSON a command printed after its log lines.
fn cli_json(out: &str) -> serde_json::Value {
    let json: Vec<&str> = out.lines().skip_while(|l| !l.starts_with('[')).collect();
    serde_json::from_str(&json.join("\n")).expect("the command printed JSON")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn sample() -> PathBuf {
    root().join("data/sample.gpkg")
}

/// The sample's feature layers, copied into PostgreSQL by ogr2ogr (as an administrator
/// would), and the layer settings of the GeoPackage `settings` given with `nordgeo
/// set-layer`.
fn load_sample(c: &Cluster, settings: &std::path::Path) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(sample(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("sample opens");
    let layers: Vec<String> = conn
        .prepare("SELECT table_name FROM gpkg_contents WHERE data_type = 'features' ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for l in &layers {
        let out = Command::new("ogr2ogr")
            .args(["-f", "PostgreSQL", &c.gdal()])
            .arg(sample())
            .arg(l)
            .output()
            .expect("ogr2ogr runs");
        assert!(out.status.success(), "ogr2ogr {l}: {}", text(&out));
    }
    let store = PathBuf::from(c.url());
    let conn =
        rusqlite::Connection::open_with_flags(settings, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("settings open");
    let mut st = conn
        .prepare("SELECT table_name, coalesce(title, ''), restricted, coalesce(internal_properties, '[]'), coalesce(municipality_column, ''), coalesce(description, ''), coalesce(attribution, '') FROM nordgeo_layers")
        .unwrap();
    type Settings = (String, String, bool, String, String, String, String);
    let rows: Vec<Settings> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, i64>(2)? != 0,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (table, title, restricted, internal, mcol, description, attribution) in rows {
        let internal: Vec<String> = serde_json::from_str(&internal).unwrap();
        let internal = internal.join(",");
        let mut args = vec![
            "set-layer",
            table.as_str(),
            "--restricted",
            if restricted { "true" } else { "false" },
            "--internal",
            internal.as_str(),
        ];
        // An unset setting stays unset (an empty title would be a title).
        for (flag, v) in [("--title", &title), ("--municipality-column", &mcol)] {
            if !v.is_empty() {
                args.extend([flag, v.as_str()]);
            }
        }
        ok(nordgeo(&store, &args));
        // `set-layer` has no flags for these two; they are data, written as such.
        let lit = |v: &str| {
            if v.is_empty() {
                "NULL".to_string()
            } else {
                format!("'{}'", v.replace('\'', "''"))
            }
        };
        c.psql(&format!(
            "UPDATE nordgeo_layers SET description = {}, attribution = {} WHERE table_name = '{table}'",
            lit(&description),
            lit(&attribution)
        ));
    }
    layers
}

/// Every item of every collection, as served anonymously.
fn all_items(base: &str) -> Vec<(String, serde_json::Value)> {
    let cols = get(&format!("{base}/collections"), &[]).json();
    cols["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let id = c["id"].as_str().unwrap().to_string();
            let items = get(&format!("{base}/collections/{id}/items?limit=10000"), &[]);
            assert_eq!(items.status, 200, "{id}");
            let mut v = items.json();
            // The links name the server; the features are what must agree.
            (id, v["features"].take())
        })
        .collect()
}

/// Tiles over the data at three zooms (up to 12 per zoom and layer), by bytes.
fn some_tiles(base: &str) -> Vec<(String, Vec<u8>)> {
    let cols = get(&format!("{base}/collections"), &[]).json();
    let mut out = Vec::new();
    for c in cols["collections"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let b = &c["extent"]["spatial"]["bbox"][0];
        let (w, s, e, n) = (
            b[0].as_f64().unwrap(),
            b[1].as_f64().unwrap(),
            b[2].as_f64().unwrap(),
            b[3].as_f64().unwrap(),
        );
        for z in [9u32, 12, 15] {
            let (x0, y1) = tile_of(w, s, z);
            let (x1, y0) = tile_of(e, n, z);
            let mut k = 0;
            'zoom: for x in x0..=x1 {
                for y in y0..=y1 {
                    let path = format!("/collections/{id}/tiles/WebMercatorQuad/{z}/{y}/{x}");
                    let r = get(&format!("{base}{path}"), &[]);
                    assert!(r.status == 200 || r.status == 204, "{path}: {}", r.status);
                    out.push((path, r.body));
                    k += 1;
                    if k == 12 {
                        break 'zoom;
                    }
                }
            }
        }
    }
    out
}

fn tile_of(lon: f64, lat: f64, z: u32) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let r = lat.to_radians();
    let y = ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
    (x.clamp(0.0, n - 1.0) as u32, y.clamp(0.0, n - 1.0) as u32)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

#[test]
fn postgis_serves_what_the_geopackage_store_serves() {
    let c = Cluster::start();
    let layers = load_sample(&c, &sample());
    let store = PathBuf::from(c.url());
    let listed = ok(nordgeo(&store, &["layers", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(listed.lines().last().unwrap()).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names, layers,
        "nordgeo layers lists the tables in creation order"
    );

    let (_d, gpkg) = common::sample_store();
    let on_pg = serve(&store, &[]);
    let on_gpkg = serve(&gpkg, &[]);
    let (a, b) = (all_items(&on_pg.base), all_items(&on_gpkg.base));
    assert_eq!(a.len(), b.len());
    for ((ida, fa), (idb, fb)) in a.iter().zip(&b) {
        assert_eq!(ida, idb);
        assert_eq!(fa, fb, "items of {ida} differ between the stores");
    }
    let (ta, tb) = (some_tiles(&on_pg.base), some_tiles(&on_gpkg.base));
    assert!(
        ta.iter().filter(|(_, t)| !t.is_empty()).count() > 20,
        "the tiles cover data"
    );
    assert_eq!(ta.len(), tb.len());
    for ((p, x), (_, y)) in ta.iter().zip(&tb) {
        assert!(x == y, "tile {p} differs between the stores");
    }

    // `publish` makes a GeoPackage store of the database that the validator accepts and
    // a server on it answers as the database's server does.
    let dir = tempfile::tempdir().unwrap();
    let published = dir.path().join("published.gpkg");
    ok(nordgeo(&store, &["publish", published.to_str().unwrap()]));
    common::assert_valid(&published);
    let on_copy = serve(&published, &[]);
    assert_eq!(
        all_items(&on_copy.base),
        a,
        "a server on the published copy answers as the database's"
    );
    drop(on_copy);

    // Writing through nordgeo: the feature lands in the table, in the table's CRS as
    // PROJ's cs2cs places it.
    let admin = common::token(&store, "admin", &["--role", "admin"]);
    let body = br#"{"type":"Feature","geometry":{"type":"Point","coordinates":[10.9,51.5]},"properties":{"name":"Neuer Parkplatz","capacity":7,"fee":true}}"#;
    let post = || {
        common::send(
            "POST",
            &format!("{}/collections/parking/items", on_pg.base),
            &admin,
            "application/geo+json",
            body,
        )
    };
    let mut r = post();
    if r.status == 401 {
        // The token was made after the server started: it is known within a moment.
        std::thread::sleep(Duration::from_millis(500));
        r = post();
    }
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let fid: i64 = r
        .header("location")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let stored = c.psql(&format!("SELECT ST_X(geom) || ' ' || ST_Y(geom) || ' ' || name || ' ' || capacity || ' ' || fee FROM parking WHERE fid = {fid}"));
    let cs2cs = Command::new("cs2cs")
        .args(["-f", "%.4f", "EPSG:4326", "EPSG:25832"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut p| {
            use std::io::Write;
            p.stdin.take().unwrap().write_all(b"51.5 10.9\n")?;
            p.wait_with_output()
        })
        .expect("cs2cs runs");
    let want: Vec<f64> = String::from_utf8_lossy(&cs2cs.stdout)
        .split_whitespace()
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    let got: Vec<&str> = stored.split(' ').collect();
    assert!(
        (got[0].parse::<f64>().unwrap() - want[0]).abs() < 0.001
            && (got[1].parse::<f64>().unwrap() - want[1]).abs() < 0.001,
        "{stored} vs {want:?}"
    );
    assert_eq!(&got[2..], ["Neuer", "Parkplatz", "7", "true"]);
    assert_eq!(
        c.psql("SELECT actor || ' ' || kind FROM nordgeo_changes ORDER BY id DESC LIMIT 1"),
        "admin create"
    );
    // A GeoPackage download works from the database as from a file.
    let auth = format!("Bearer {admin}");
    let r = get(
        &format!("{}/collections/parking/items?f=gpkg", on_pg.base),
        &[("Authorization", auth.as_str())],
    );
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"SQLite format 3\0"), "a GeoPackage");

    // A restricted layer needs a token on every store, and showing owners is logged.
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--restricted", "true"],
    ));
    wait_for("parcels restricted", Duration::from_secs(2), || {
        get(
            &format!("{}/collections/parcels/items?limit=1", on_pg.base),
            &[],
        )
        .status
            == 401
    });
    let r = get(
        &format!("{}/collections/parcels/items?limit=3", on_pg.base),
        &[("Authorization", auth.as_str())],
    );
    assert_eq!(r.status, 200);
    let logged: i64 = c.psql("SELECT count(*) FROM nordgeo_access_log WHERE token = 'admin' AND collection = 'parcels'").parse().unwrap();
    assert_eq!(logged, 1, "the owners shown are in the access log");
    let log = ok(nordgeo(
        &store,
        &["access-log", "--token", "admin", "--json"],
    ));
    let log: serde_json::Value = cli_json(&log);
    assert_eq!(log[0]["collection"], "parcels");
    // The change log: who changed what, on the command line and over HTTP.
    let hist = ok(nordgeo(&store, &["history", "parking", "--json"]));
    let hist: serde_json::Value = cli_json(&hist);
    assert_eq!(
        (
            hist[0]["kind"].as_str(),
            hist[0]["actor"].as_str(),
            hist[0]["added"].as_i64()
        ),
        (Some("create"), Some("admin"), Some(1))
    );
    let r = get(
        &format!("{}/collections/parking/changes", on_pg.base),
        &[("Authorization", auth.as_str())],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["changes"][0]["kind"], "create");

    // Any number of /ready requests opens no more connections to the database.
    let floods: Vec<_> = (0..8)
        .map(|_| {
            let base = on_pg.base.clone();
            std::thread::spawn(move || {
                (0..50).all(|_| get(&format!("{base}/ready"), &[]).status == 200)
            })
        })
        .collect();
    // Connections during the flood (the most seen in a few looks), not after it.
    let conns = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(30));
            c.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nordgeo'")
                .parse::<i64>()
                .unwrap()
        })
        .max()
        .unwrap();
    assert!(
        floods.into_iter().all(|h| h.join().unwrap()),
        "/ready under load"
    );
    assert!(
        conns <= 8,
        "one server held {conns} connections during 400 /ready requests"
    );
    // GDAL reads the store nordgeo prepared (its tables, capture triggers and all).
    let info = Command::new("ogrinfo")
        .args(["-ro", "-so", &c.gdal(), "parking"])
        .output()
        .unwrap();
    assert!(
        info.status.success() && text(&info).contains("Feature Count: 51"),
        "{}",
        text(&info)
    );
}

#[test]
fn postgis_publishes_tables_it_did_not_create() {
    let c = Cluster::start();
    let store = PathBuf::from(c.url());
    let work = tempfile::tempdir().unwrap();
    // A Shapefile loaded with shp2pgsql (a `gid` serial key) into another schema, and a
    // table made by ogr2ogr without a primary key.
    let shp = work.path().join("wege.shp");
    let out = Command::new("ogr2ogr")
        .arg(&shp)
        .arg(sample())
        .arg("trails")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    c.psql("CREATE SCHEMA fremd");
    let sql = Command::new("shp2pgsql")
        .args(["-s", "25832", "-I"])
        .arg(&shp)
        .arg("fremd.wege")
        .output()
        .unwrap();
    assert!(sql.status.success(), "{}", text(&sql));
    let sql_file = work.path().join("wege.sql");
    std::fs::write(&sql_file, &sql.stdout).unwrap();
    let load = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &c.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "nordgeo",
            "-f",
        ])
        .arg(&sql_file)
        .output()
        .unwrap();
    assert!(load.status.success(), "{}", text(&load));
    let out = Command::new("ogr2ogr")
        .args([
            "-f",
            "PostgreSQL",
            &c.gdal(),
            "-lco",
            "SCHEMA=fremd",
            "-lco",
            "FID=nr",
            "-nln",
            "plaetze",
        ])
        .arg(sample())
        .arg("parking")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    c.psql("ALTER TABLE fremd.plaetze DROP CONSTRAINT plaetze_pkey");

    // Tables outside the store's schema are served only when published.
    ok(nordgeo(
        &store,
        &[
            "set-layer",
            "wanderwege",
            "--source",
            "fremd.wege",
            "--title",
            "Wanderwege",
        ],
    ));
    let refused = nordgeo(
        &store,
        &["set-layer", "parkplaetze", "--source", "fremd.plaetze"],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("--fid"),
        "the error says what to do: {}",
        text(&refused)
    );
    ok(nordgeo(
        &store,
        &[
            "set-layer",
            "parkplaetze",
            "--source",
            "fremd.plaetze",
            "--fid",
            "nr",
        ],
    ));

    let srv = serve(&store, &[]);
    let items = get(
        &format!("{}/collections/wanderwege/items?limit=1000", srv.base),
        &[],
    )
    .json();
    let feats = items["features"].as_array().unwrap();
    // GDAL reading the published table directly is the oracle for every value.
    let gdal = Command::new("ogr2ogr")
        .args([
            "-f",
            "GeoJSON",
            "/vsistdout/",
            &c.gdal(),
            "-sql",
            "SELECT gid AS oracle_gid, * FROM fremd.wege ORDER BY gid",
        ])
        .args(["-t_srs", "EPSG:4326", "-lco", "COORDINATE_PRECISION=9"])
        .output()
        .unwrap();
    assert!(gdal.status.success(), "{}", text(&gdal));
    let oracle: serde_json::Value = serde_json::from_slice(&gdal.stdout).unwrap();
    let expected = oracle["features"].as_array().unwrap();
    assert_eq!(feats.len(), expected.len());
    assert_eq!(feats.len(), 60);
    for (f, e) in feats.iter().zip(expected) {
        assert_eq!(f["id"].as_i64(), e["properties"]["oracle_gid"].as_i64());
        for (k, v) in e["properties"].as_object().unwrap() {
            if k == "gid" || k == "oracle_gid" {
                continue;
            }
            assert_eq!(&f["properties"][k], v, "property {k} of {}", f["id"]);
        }
        let (fc, ec) = (
            f["geometry"]["coordinates"].to_string(),
            e["geometry"]["coordinates"].to_string(),
        );
        let nums = |s: &str| -> Vec<f64> {
            s.split(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '-'))
                .filter_map(|x| x.parse().ok())
                .collect()
        };
        let (a, b) = (nums(&fc), nums(&ec));
        assert_eq!(a.len(), b.len());
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-7),
            "coordinates of {}",
            f["id"]
        );
    }
    let tile = get(
        &format!(
            "{}/collections/wanderwege/tiles/WebMercatorQuad/12/1370/2173",
            srv.base
        ),
        &[],
    );
    assert!(tile.status == 200 || tile.status == 204);
    let p = get(
        &format!("{}/collections/parkplaetze/items?limit=1000", srv.base),
        &[],
    )
    .json();
    assert_eq!(p["features"].as_array().unwrap().len(), 50);
    // A change made with psql to a published table reaches the server.
    c.psql("UPDATE fremd.wege SET name = 'Kyffhäuserweg neu' WHERE gid = 7");
    wait_for(
        "psql change on a published table",
        Duration::from_secs(1),
        || {
            get(&format!("{}/collections/wanderwege/items/7", srv.base), &[]).json()["properties"]["name"]
                == "Kyffhäuserweg neu"
        },
    );
}

/// Every instance serves what a server freshly started on `store` serves (items of every
/// collection and tiles over the data), byte for byte. Following is asynchronous, so on a
/// loaded machine an instance gets a few seconds to catch up; a real divergence stays and
/// fails.
fn same_as_fresh(store: &Path, instances: &[common::Server], when: &str) {
    let fresh = serve(store, &[]);
    let want = (all_items(&fresh.base), some_tiles(&fresh.base));
    for s in instances {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = (all_items(&s.base), some_tiles(&s.base));
            let items =
                got.0.len() == want.0.len() && got.0.iter().zip(&want.0).all(|(a, b)| a == b);
            let tiles =
                got.1.len() == want.1.len() && got.1.iter().zip(&want.1).all(|(a, b)| a == b);
            if items && tiles {
                break;
            }
            if Instant::now() > deadline {
                let id = got
                    .0
                    .iter()
                    .zip(&want.0)
                    .find(|(a, b)| a != b)
                    .map(|(a, _)| a.0.clone());
                let tile = got
                    .1
                    .iter()
                    .zip(&want.1)
                    .find(|(a, b)| a != b)
                    .map(|(a, _)| a.0.clone());
                panic!(
                    "{when}: {} differs from a fresh instance (items of {id:?}, tile {tile:?})",
                    s.base
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

type Readers = (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Vec<std::thread::JoinHandle<usize>>,
);

/// A reader per instance (items and a tile) until told to stop; each counts its reads.
fn read_all(instances: &[common::Server]) -> Readers {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers = instances
        .iter()
        .map(|s| {
            let (base, stop) = (s.base.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = get(&format!("{base}/collections/parking/items?limit=100"), &[]);
                    assert_eq!(r.status, 200);
                    let r = get(
                        &format!("{base}/collections/parcels/tiles/WebMercatorQuad/12/1370/2173"),
                        &[],
                    );
                    assert!(r.status == 200 || r.status == 204);
                    n += 1;
                }
                n
            })
        })
        .collect();
    (stop, readers)
}

#[test]
fn postgis_instances_stay_consistent_under_change_and_restart() {
    let c = Cluster::start();
    load_sample(&c, &sample());
    let store = PathBuf::from(c.url());
    let instances: Vec<_> = (0..3).map(|_| serve(&store, &[])).collect();
    let item = |base: &str, layer: &str, fid: i64| {
        get(&format!("{base}/collections/{layer}/items/{fid}"), &[])
    };

    // One change with psql: on all three within 1 s.
    c.psql("UPDATE childcare SET free_places = 17 WHERE fid = 3");
    for s in &instances {
        let took = wait_for(
            "psql update on every instance",
            Duration::from_secs(1),
            || item(&s.base, "childcare", 3).json()["properties"]["free_places"] == 17,
        );
        eprintln!("seen by {} after {took:?}", s.base);
    }

    // 16 writers (pgbench, as QGIS users editing at once), 150 transactions each, while
    // readers read all three instances; then every instance equals a freshly started one.
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        "\\set f random(1, 6000)\n\\set p random(1, 50)\n\
         UPDATE parcels SET area_m2 = area_m2 + 1 WHERE fid = :f;\n\
         BEGIN;\nUPDATE parking SET capacity = coalesce(capacity, 0) + 1 WHERE fid = :p;\n\
         INSERT INTO parking (name, geom) SELECT 'neu', geom FROM parking WHERE fid = :p;\n\
         DELETE FROM parking WHERE fid = (SELECT max(fid) FROM parking) AND name = 'neu' AND random() < 0.5;\nEND;\n",
    )
    .unwrap();
    let pgbench = Command::new(c.bin("pgbench"))
        .args([
            "-n",
            "-c",
            "16",
            "-j",
            "2",
            // A number of transactions, not of seconds: a machine that stalls for half a
            // minute (this one's kernel logs such stalls) still runs all of them.
            "-t",
            "150",
            "-h",
            "127.0.0.1",
            "-p",
            &c.port.to_string(),
            "-U",
            "postgres",
            "-f",
        ])
        .arg(script.path())
        .arg("nordgeo")
        .spawn()
        .expect("pgbench runs");
    let (stop, readers) = read_all(&instances);
    let out = pgbench.wait_with_output().unwrap();
    assert!(out.status.success(), "pgbench failed");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: usize = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reads > 3, "the readers read ({reads})");
    let commits: i64 = c
        .psql("SELECT count(*) FROM nordgeo_capture")
        .parse()
        .unwrap();
    assert!(commits > 100, "the writers wrote ({commits} capture rows)");
    std::thread::sleep(Duration::from_secs(1));
    same_as_fresh(&store, &instances, "after pgbench");

    // 16 writers editing through the three instances (OGC API Features Part 4) while
    // the database restarts under them: every acknowledged write is kept, reads go on
    // from memory, /ready says 503 while the database is down, and every instance
    // follows again without a restart of its own.
    let admin = common::token(&store, "schreiber", &["--role", "admin"]);
    for s in &instances {
        wait_for("the writers' token", Duration::from_secs(2), || {
            get(
                &format!("{}/collections/parcels/items?limit=1", s.base),
                &[("Authorization", &format!("Bearer {admin}"))],
            )
            .status
                == 200
        });
    }
    let bases: Vec<String> = instances.iter().map(|s| s.base.clone()).collect();
    let started = Instant::now();
    // The writers stop 15 s after the restart (at least 60 s after they started), so a
    // slow restart still leaves them time to write again.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let base = bases[w % 3].clone();
            let admin = admin.clone();
            let writing = writing.clone();
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut k = 0;
                while writing.load(std::sync::atomic::Ordering::Relaxed) {
                    k += 1;
                    let name = format!("w{w}-{k}");
                    let body = format!(
                        r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":[10.8{w:02},51.45{k:03}]}},"properties":{{"name":"{name}","capacity":{k}}}}}"#
                    );
                    let r = common::send("POST", &format!("{base}/collections/parking/items"), &admin, "application/geo+json", body.as_bytes());
                    match r.status {
                        201 => acknowledged.push((name, started.elapsed())),
                        503 => std::thread::sleep(Duration::from_millis(100)),
                        other => panic!("writer {w}: {other} {}", String::from_utf8_lossy(&r.body)),
                    }
                    let patch = format!(r#"{{"properties":{{"free_places":{k}}}}}"#);
                    let r = common::send("PATCH", &format!("{base}/collections/childcare/items/{}", w % 12 + 1), &admin, "application/merge-patch+json", patch.as_bytes());
                    assert!(r.status == 204 || r.status == 503, "writer {w} patch: {}", r.status);
                }
                acknowledged
            })
        })
        .collect();
    let (stop, readers) = read_all(&instances);
    std::thread::sleep(Duration::from_secs(20));
    c.ctl("stop");
    for s in &instances {
        assert_eq!(get(&format!("{}/ready", s.base), &[]).status, 503);
        assert_eq!(item(&s.base, "childcare", 3).status, 200);
    }
    let stopped = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    c.ctl("start");
    let restarted = started.elapsed();
    let end = (restarted + Duration::from_secs(15)).max(Duration::from_secs(60));
    std::thread::sleep(end.saturating_sub(started.elapsed()));
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let acknowledged: Vec<(String, Duration)> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    // How many writes a slow machine manages varies; that writing went on before the
    // stop and resumed after the restart does not.
    let before = acknowledged.iter().filter(|(_, t)| *t < stopped).count();
    let after = acknowledged.iter().filter(|(_, t)| *t > restarted).count();
    eprintln!(
        "writes acknowledged: {} ({before} before the stop, {after} after the restart)",
        acknowledged.len()
    );
    assert!(
        before > 0 && after > 0,
        "the writers wrote before the stop ({before}) and after the restart ({after})"
    );
    let acknowledged: Vec<String> = acknowledged.into_iter().map(|(n, _)| n).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: usize = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reads > 10, "the readers read during the writes ({reads})");
    assert!(
        acknowledged.len() >= 16,
        "the writers wrote ({})",
        acknowledged.len()
    );
    let stored = c.psql("SELECT string_agg(name, ',') FROM parking WHERE name LIKE 'w%-%'");
    let stored: std::collections::HashSet<&str> = stored.split(',').collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(n.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let changes: i64 = c
        .psql("SELECT count(*) FROM nordgeo_changes WHERE actor = 'schreiber'")
        .parse()
        .unwrap();
    assert!(
        changes >= acknowledged.len() as i64,
        "every write is in the change log"
    );
    c.psql("UPDATE childcare SET free_places = 4 WHERE fid = 3");
    for s in &instances {
        wait_for(
            "a change after the restart",
            Duration::from_secs(10),
            || item(&s.base, "childcare", 3).json()["properties"]["free_places"] == 4,
        );
        assert_eq!(get(&format!("{}/ready", s.base), &[]).status, 200);
    }
    let fresh = serve(&store, &[]);
    let want = (all_items(&fresh.base), some_tiles(&fresh.base));
    let parking = want.0.iter().find(|(id, _)| id == "parking").unwrap();
    for n in &acknowledged {
        assert!(
            parking
                .1
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["properties"]["name"] == n.as_str()),
            "{n} served"
        );
    }
    drop(fresh);
    same_as_fresh(&store, &instances, "after the HTTP writers");
    // A revoked token is refused by every instance at once.
    let t = common::token(&store, "kurz", &["--role", "admin"]);
    let auth = format!("Bearer {t}");
    for s in &instances {
        wait_for("new token known", Duration::from_secs(2), || {
            get(
                &format!("{}/collections/parcels/items?limit=1", s.base),
                &[("Authorization", auth.as_str())],
            )
            .status
                == 200
        });
    }
    ok(nordgeo(&store, &["token", "revoke", "kurz"]));
    for s in &instances {
        wait_for(
            "revocation on every instance",
            Duration::from_secs(1),
            || {
                get(
                    &format!("{}/collections/parcels/items?limit=1", s.base),
                    &[("Authorization", auth.as_str())],
                )
                .status
                    == 401
            },
        );
    }
}

#[test]
fn postgis_import_writes_what_gdal_reads_and_keeps_arcs() {
    let c = Cluster::start();
    let store = PathBuf::from(c.url());
    // The sample, imported by nordgeo (checked, then COPY): GDAL reads the tables with
    // the GeoPackage's features, values and coordinates.
    ok(nordgeo(&store, &["import", sample().to_str().unwrap()]));
    let gdal_json = |src: &str, layer: &str| -> serde_json::Value {
        let out = Command::new("ogr2ogr")
            .args([
                "-f",
                "GeoJSON",
                "/vsistdout/",
                src,
                layer,
                "-lco",
                "COORDINATE_PRECISION=3",
            ])
            .output()
            .expect("ogr2ogr runs");
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    for layer in [
        "municipalities",
        "parcels",
        "trails",
        "parking",
        "childcare",
    ] {
        let a = gdal_json(&c.gdal(), layer);
        let b = gdal_json(sample().to_str().unwrap(), layer);
        let (fa, fb) = (
            a["features"].as_array().unwrap(),
            b["features"].as_array().unwrap(),
        );
        assert_eq!(fa.len(), fb.len(), "{layer}");
        for (x, y) in fa.iter().zip(fb) {
            assert_eq!(x["geometry"], y["geometry"], "{layer}");
            assert_eq!(x["properties"], y["properties"], "{layer}");
        }
    }
    // QGIS 3.22 opens the tables nordgeo wrote with its own PostgreSQL provider.
    let qgis = Command::new("/usr/bin/python3")
        .arg(root().join("tests/tools/qgis_postgis.py"))
        .arg(c.port.to_string())
        .args(["parcels", "parking", "trails"])
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("XDG_RUNTIME_DIR", c.dir.path())
        .output()
        .expect("/usr/bin/python3 runs (python3-qgis from scripts/setup.sh)");
    let said = text(&qgis);
    assert!(
        qgis.status.success(),
        "QGIS could not open the tables:\n{said}"
    );
    assert!(
        said.contains("parcels features 6000 geometry Polygon"),
        "{said}"
    );
    assert!(
        said.contains("parking features 50 geometry Point"),
        "{said}"
    );
    // A maintainer's token names the municipality as the boundary layer spells it.
    ok(nordgeo(
        &store,
        &["set-layer", "municipalities", "--boundaries", "name"],
    ));
    let bad = nordgeo(
        &store,
        &[
            "token",
            "create",
            "--name",
            "w",
            "--municipality",
            "Wehrter",
        ],
    );
    assert!(
        !bad.status.success() && text(&bad).contains("Werther"),
        "{}",
        text(&bad)
    );
    common::token(&store, "werther", &["--municipality", "werther"]);
    let tokens = cli_json(&ok(nordgeo(&store, &["token", "list", "--json"])));
    assert_eq!(tokens[0]["municipality"], "Werther");
    let gist: i64 = c.psql("SELECT count(*) FROM pg_indexes WHERE tablename = 'parcels' AND indexdef LIKE '%gist%'").parse().unwrap();
    assert_eq!(gist, 1, "the layer has a GiST index");
    assert_eq!(
        c.psql("SELECT count(*) || ' ' || min(kind) FROM nordgeo_changes"),
        "5 import"
    );

    // A running server follows a replace; the replaced rows are kept in the history.
    let srv = serve(&store, &[]);
    let work = tempfile::tempdir().unwrap();
    let fewer = work.path().join("parking.gpkg");
    let out = Command::new("ogr2ogr")
        .arg(&fewer)
        .arg(sample())
        .args(["parking", "-where", "fid <= 20"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dry = ok(nordgeo(
        &store,
        &[
            "import",
            fewer.to_str().unwrap(),
            "--mode",
            "replace",
            "--dry-run",
        ],
    ));
    assert!(!dry.is_empty());
    assert_eq!(
        c.psql("SELECT count(*) FROM parking"),
        "50",
        "a dry run changes nothing"
    );
    ok(nordgeo(
        &store,
        &["import", fewer.to_str().unwrap(), "--mode", "replace"],
    ));
    assert_eq!(c.psql("SELECT count(*) FROM parking"), "20");
    assert_eq!(
        c.psql("SELECT count(*) FROM nordgeo_history_parking WHERE change_op = 'removed'"),
        "50"
    );
    wait_for(
        "the server follows the replace",
        Duration::from_secs(1),
        || {
            get(
                &format!("{}/collections/parking/items?limit=100", srv.base),
                &[],
            )
            .json()["numberMatched"]
                == 20
        },
    );
    let refused = nordgeo(&store, &["import", fewer.to_str().unwrap()]);
    assert!(
        !refused.status.success() && text(&refused).contains("--mode replace"),
        "{}",
        text(&refused)
    );

    // Cadastral arcs stay arcs: PostGIS holds exactly the curves the file has.
    let (dir, m) = common::realdata();
    let curves = dir.join(m["curves"]["path"].as_str().unwrap());
    ok(nordgeo(&store, &["import", curves.to_str().unwrap()]));
    for l in m["curves"]["layers"].as_array().unwrap() {
        let name = l["name"].as_str().unwrap();
        for f in l["features"].as_array().unwrap() {
            let Some(wkt) = f["wkt"].as_str() else {
                continue;
            };
            let same = c.psql(&format!(
                "SELECT ST_OrderingEquals(geom, ST_GeomFromText('{wkt}', 25832)) FROM {name} WHERE fid = {}",
                f["fid"]
            ));
            assert_eq!(same, "t", "{name} {}: {wkt}", f["fid"]);
        }
    }
    wait_for("the new layer is served", Duration::from_secs(2), || {
        get(
            &format!("{}/collections/kreise/items?limit=10", srv.base),
            &[],
        )
        .status
            == 200
    });
    // Through a matching import, a dropped column, its undo and a rollback, the
    // long-running server answers as one started now.
    ok(nordgeo(
        &store,
        &[
            "import",
            fewer.to_str().unwrap(),
            "--mode",
            "append",
            "--allow-duplicates",
        ],
    ));
    let ids = |store: &PathBuf| -> Vec<i64> {
        cli_json(&ok(nordgeo(store, &["history", "parking", "--json"])))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    };
    let before_append = ids(&store).iter().rev().nth(1).copied().unwrap();
    ok(nordgeo(
        &store,
        &["set-layer", "parking", "--drop-column", "fee"],
    ));
    same_as_fresh(
        &store,
        std::slice::from_ref(&srv),
        "after an append and a dropped column",
    );
    let dropped = *ids(&store).last().unwrap();
    ok(nordgeo(
        &store,
        &["undo", "parking", "--change", &dropped.to_string()],
    ));
    ok(nordgeo(
        &store,
        &["rollback", "parking", "--to", &before_append.to_string()],
    ));
    assert_eq!(
        c.psql("SELECT count(*) FROM parking WHERE fee IS NOT NULL"),
        c.psql("SELECT count(*) FROM parking"),
        "the column came back with its values"
    );
    same_as_fresh(
        &store,
        std::slice::from_ref(&srv),
        "after the undo and the rollback",
    );

    // Through settings changes, a replace and a new layer, the long-running server
    // answers as one started now.
    ok(nordgeo(
        &store,
        &[
            "set-layer",
            "parking",
            "--title",
            "Parkplätze",
            "--internal",
            "capacity",
        ],
    ));
    same_as_fresh(
        &store,
        std::slice::from_ref(&srv),
        "after imports and settings",
    );
}

/// The read side of the existing suites, asked of both stores: every answer (status,
/// content type, body with the server's own address taken out) is the same, and OWSLib
/// reads the PostGIS-backed server as it reads the GeoPackage-backed one.
#[test]
fn postgis_answers_the_ogc_api_as_the_geopackage_store_does() {
    let c = Cluster::start();
    let (_d, gpkg) = common::sample_store();
    load_sample(&c, &gpkg);
    let store = PathBuf::from(c.url());
    let (a, b) = (serve(&store, &[]), serve(&gpkg, &[]));
    let enc = common::encode;
    let paths: Vec<String> = vec![
        "/".into(),
        "/conformance".into(),
        "/collections".into(),
        "/collections/parking".into(),
        "/collections/parking/queryables".into(),
        "/collections/parking/schema".into(),
        "/collections/trails/items?limit=7&offset=5".into(),
        "/collections/parking/items?bbox=10.7,51.4,10.9,51.6".into(),
        "/collections/parking/items?crs=http://www.opengis.net/def/crs/EPSG/0/25832&limit=5".into(),
        "/collections/parking/items?bbox=620000,5700000,640000,5720000&bbox-crs=http://www.opengis.net/def/crs/EPSG/0/25832".into(),
        "/collections/parking/items?sortby=-capacity,name&limit=20".into(),
        "/collections/parcels/items?sortby=-area_m2&limit=10".into(),
        "/collections/parcels/items?sortby=land_use,-area_m2&limit=10&offset=100".into(),
        "/collections/parking/items?properties=name,capacity&limit=5".into(),
        format!("/collections/parking/items?filter={}", enc("capacity > 40 AND fee = true")),
        format!("/collections/childcare/items?filter={}", enc("free_places >= 2 OR name LIKE 'Kita%'")),
        format!("/collections/trails/items?filter={}", enc("S_INTERSECTS(geometry, POLYGON((10.7 51.4, 10.9 51.4, 10.9 51.6, 10.7 51.6, 10.7 51.4)))")),
        format!("/collections/parcels/items?limit=5&filter-lang=cql2-json&filter={}", enc(r#"{"op":"=","args":[{"property":"municipality"},"Werther"]}"#)),
        "/collections/parking/items?f=csv".into(),
        "/collections/trails/items?f=gpx&limit=3".into(),
        "/collections/parking/items/7".into(),
        "/collections/parking/items/7?f=html".into(),
        "/collections/parking/items/99999".into(),
        "/collections/parking/items?filter=nonsense(".into(),
        "/collections/parcels/tiles".into(),
        "/collections/parcels/tiles/WebMercatorQuad".into(),
        "/tiles".into(),
        "/styles/portal/style.json".into(),
    ];
    let strip = |body: &[u8], base: &str| String::from_utf8_lossy(body).replace(base, "BASE");
    for p in &paths {
        let (x, y) = (
            get(&format!("{}{p}", a.base), &[]),
            get(&format!("{}{p}", b.base), &[]),
        );
        assert_eq!(x.status, y.status, "{p}");
        assert_eq!(x.header("content-type"), y.header("content-type"), "{p}");
        let (sx, sy) = (strip(&x.body, &a.base), strip(&y.body, &b.base));
        if sx != sy {
            let at = sx
                .bytes()
                .zip(sy.bytes())
                .position(|(u, v)| u != v)
                .unwrap_or(0);
            let around = |s: &str| {
                s.get(at.saturating_sub(80)..(at + 120).min(s.len()))
                    .unwrap_or("")
                    .to_string()
            };
            panic!(
                "{p}: the stores answer differently:\n PostGIS: {}\n GeoPackage: {}",
                around(&sx),
                around(&sy)
            );
        }
        assert_eq!(x.header("etag"), y.header("etag"), "{p}: ETag");
    }
    let owslib = |base: &str| {
        let o = Command::new(common::venv_python())
            .arg(root().join("tests/tools/owslib_check.py"))
            .arg(base)
            .output()
            .unwrap();
        assert!(o.status.success(), "owslib: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).replace(base, "BASE")
    };
    assert_eq!(
        owslib(&a.base),
        owslib(&b.base),
        "OWSLib reads both the same"
    );
}

/// A read-only instance on a streaming replica (hot standby): it serves what the
/// primary's instance serves, follows a change made on the primary by polling (a standby
/// cannot LISTEN), and refuses writes without naming the database.
#[test]
fn postgis_instance_on_a_streaming_replica_follows_the_primary() {
    let c = Cluster::start();
    load_sample(&c, &sample());
    let primary = PathBuf::from(c.url());
    // nordgeo's tables and triggers exist once an instance or command ran on the primary.
    ok(nordgeo(&primary, &["layers"]));
    let on_primary = serve(&primary, &[]);
    let replica_dir = tempfile::tempdir().expect("tempdir");
    let replica_port = free_port();
    let out = Command::new("bash")
        .arg(root().join("scripts/pg_cluster.sh"))
        .args([
            "replica",
            replica_dir.path().to_str().unwrap(),
            &replica_port.to_string(),
            &c.port.to_string(),
        ])
        .output()
        .expect("pg_cluster.sh runs");
    assert!(out.status.success(), "replica start failed: {}", text(&out));
    struct Stop(PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(root().join("scripts/pg_cluster.sh"))
                .args(["stop", self.0.to_str().unwrap()])
                .output();
        }
    }
    let _stop = Stop(replica_dir.path().to_path_buf());
    let replica = PathBuf::from(format!(
        "postgresql://postgres@127.0.0.1:{replica_port}/nordgeo"
    ));
    let on_replica = serve(&replica, &[]);
    let (a, b) = (all_items(&on_primary.base), all_items(&on_replica.base));
    assert!(!a.is_empty());
    assert!(
        a == b,
        "the replica's instance serves what the primary's serves"
    );

    let fid: i64 = c.psql("SELECT min(fid) FROM parking").parse().unwrap();
    c.psql(&format!(
        "UPDATE parking SET name = 'Am Replikat' WHERE fid = {fid}"
    ));
    let url = format!("{}/collections/parking/items/{fid}", on_replica.base);
    let took = wait_for(
        "the change on the replica's instance",
        Duration::from_secs(10),
        || get(&url, &[]).json()["properties"]["name"] == "Am Replikat",
    );
    eprintln!("a primary's change reached the replica's instance in {took:?}");

    let admin = common::token(&primary, "admin", &["--role", "admin"]);
    let auth = format!("Bearer {admin}");
    let r = wait_ok(|| {
        let r = common::request(
            "PATCH",
            &url,
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/merge-patch+json"),
            ],
            br#"{"properties":{"capacity":1}}"#,
        );
        (r.status != 401).then_some(r)
    });
    let answer = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        r.status >= 500,
        "a write on a standby is refused: {} {answer}",
        r.status
    );
    assert!(
        !answer.contains("127.0.0.1") && !answer.contains("postgresql://"),
        "{answer}"
    );
    assert_eq!(
        c.psql(&format!(
            "SELECT capacity = 1 FROM parking WHERE fid = {fid}"
        )),
        "f",
        "nothing was written"
    );
}

/// Retries `f` for up to 10 s until it gives a value (a token is known to a running
/// server within a moment).
fn wait_ok<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
}
