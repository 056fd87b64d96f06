//! Hostile clients (issue 12): every anonymous request may be an attack. Each finding of
//! the attack report is a named test here, run against the real server: side channels
//! (ETags, temporal extents, /health, /metrics), memory (repeated `collections`, unique
//! fontstacks, uploads), time (a hostile GeoPackage, slow clients, SIGTERM), links that
//! follow the caller's `Host`, and municipality values; then a fuzz run of hostile
//! requests with no 5xx.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Resident memory of a process in MB.
fn rss_mb(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn raise_open_files() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

fn first_fid(base: &str, collection: &str, auth: Option<&str>) -> i64 {
    let bearer = auth.map(|a| format!("Bearer {a}"));
    let h: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    get(
        &format!("{base}/collections/{collection}/items?limit=1"),
        &h,
    )
    .json()["features"][0]["id"]
        .as_i64()
        .unwrap()
}

/// Finding 1: a feature's ETag told anonymous callers its internal values. The attacker
/// here knows the hashing scheme and every value but the internal one, and tries every
/// candidate: none gives the ETag, and the ETag does not move when the value does.
#[test]
fn etags_reveal_no_internal_value() {
    let (_dir, store) = sample_store();
    ok(nordgeo(
        &store,
        &["set-layer", "childcare", "--internal", "free_places"],
    ));
    let admin = token(&store, "admin", &["--role", "admin"]);
    let srv = serve(&store, &[]);
    let fid = first_fid(&srv.base, "childcare", None);
    let url = format!("{}/collections/childcare/items/{fid}", srv.base);
    let anon = get(&url, &[]);
    assert!(anon.json()["properties"].get("free_places").is_none());
    let anon_tag = anon.header("etag").unwrap().to_string();
    // Everything but the secret, as the server holds it.
    let cat =
        nordgeo::catalog::Catalog::load(&nordgeo::store::Store::open_read_only(&store).unwrap())
            .unwrap();
    let layer = cat.get("childcare").unwrap();
    let mut f = layer.by_fid(fid).unwrap().clone();
    let col = layer
        .def
        .columns
        .iter()
        .position(|c| c.name == "free_places")
        .unwrap();
    let all = vec![true; layer.def.columns.len()];
    let hits = (0..2000)
        .filter(|v| {
            f.values[col] = rusqlite::types::Value::Integer(*v);
            f.etag(&all) == anon_tag
        })
        .count();
    assert_eq!(
        hits, 0,
        "an internal value was recovered from the anonymous ETag"
    );
    // Changing the internal value leaves what anonymous callers see, ETag included.
    let r = send(
        "PATCH",
        &url,
        &admin,
        "application/merge-patch+json",
        br#"{"properties": {"free_places": 1234}}"#,
    );
    assert_eq!(r.status, 204);
    assert_eq!(get(&url, &[]).header("etag"), Some(anon_tag.as_str()));
    let bearer = format!("Bearer {admin}");
    let full = get(&url, &[("Authorization", &bearer)]);
    assert_eq!(full.json()["properties"]["free_places"], 1234);
    assert_ne!(full.header("etag"), Some(anon_tag.as_str()));
    assert!(
        full.header("cache-control")
            .unwrap_or("")
            .contains("private"),
        "an answer to a token must not be kept by shared caches"
    );
}

/// Finding 2 and 3: repeated `collections` names and unique font stacks. A repeated name
/// is one layer (valid MVT) and one cache entry; under both attacks at once for 60 s the
/// server stays within its cache budgets plus 100 MB, and /metrics stays small.
#[test]
fn request_keys_are_canonical_and_memory_bounded() {
    let (_dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let srv = serve(&store, &["--cache-mb", "64"]);
    let base = srv.base.clone();
    // One layer, whatever the repetitions; unknown names are a 400.
    let (z, y, x) = (14u32, 5362u32, 8686u32);
    let once = get(
        &format!("{base}/tiles/WebMercatorQuad/{z}/{y}/{x}?collections=parking"),
        &[],
    );
    let many = format!(
        "{base}/tiles/WebMercatorQuad/{z}/{y}/{x}?collections={}",
        vec!["parking"; 6000].join(",")
    );
    let r = get(&many, &[]);
    assert_eq!((r.status, &r.body), (once.status, &once.body));
    assert_eq!(r.header("x-nordgeo-cache"), Some("hit"));
    assert_eq!(
        get(
            &format!("{base}/tiles/WebMercatorQuad/{z}/{y}/{x}?collections=parking,nope"),
            &[]
        )
        .status,
        400
    );
    std::thread::sleep(Duration::from_secs(1));
    let start = rss_mb(srv.pid());
    let secs: u64 = std::env::var("NORDGEO_ATTACK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..4)
        .map(|k| {
            let base = base.clone();
            std::thread::spawn(move || {
                let mut i: u64 = k;
                let mut peak = 0.0f64;
                let list = vec!["parking"; 3000].join(",");
                while Instant::now() < deadline {
                    let url = if i.is_multiple_of(2) {
                        // Distinct (mostly empty) tiles, each with a long repeated list.
                        let (x, y) = (8000 + (i * 7919) % 1000, 5000 + (i * 104_729) % 1000);
                        format!("{base}/tiles/WebMercatorQuad/14/{y}/{x}?collections={list}")
                    } else {
                        format!("{base}/fonts/DejaVu%20Sans%20Book,x{i}-{k}/0-255.pbf")
                    };
                    let r = get(&url, &[]);
                    assert!(r.status < 500, "{url}: {}", r.status);
                    i += 4;
                    peak = peak.max(i as f64);
                }
                peak
            })
        })
        .collect();
    let mut peak = start;
    while Instant::now() < deadline {
        peak = peak.max(rss_mb(srv.pid()));
        std::thread::sleep(Duration::from_millis(250));
    }
    let requests: f64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    // Tile cache 64 MB + glyph cache 32 MB + 100 MB.
    assert!(
        peak <= start + 64.0 + 32.0 + 100.0,
        "resident memory went from {start:.0} MB to {peak:.0} MB under {requests} hostile requests"
    );
    let bearer = format!("Bearer {admin}");
    let m = get(&format!("{base}/metrics"), &[("Authorization", &bearer)]);
    assert_eq!(m.status, 200);
    assert!(
        m.body.len() < 200_000,
        "/metrics grew to {} bytes",
        m.body.len()
    );
    eprintln!(
        "{requests} hostile requests in {secs} s: resident memory {start:.0} -> peak {peak:.0} MB"
    );
}

/// Writes a GeoPackage whose feature layer is a view with a query that never ends.
fn recursive_view_gpkg(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA application_id = 1196444487; PRAGMA user_version = 10400;
         CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
           organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
         INSERT INTO gpkg_spatial_ref_sys VALUES ('WGS 84', 4326, 'EPSG', 4326, 'GEOGCS[\"WGS 84\"]', '');
         CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT, description TEXT,
           last_change TEXT, min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER);
         CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT, geometry_type_name TEXT, srs_id INTEGER, z TINYINT, m TINYINT);
         CREATE VIEW parking AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
           SELECT i AS fid, NULL AS geom, 'x' AS name FROM n;
         INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES ('parking', 'features', 'parking', 4326);
         INSERT INTO gpkg_geometry_columns VALUES ('parking', 'geom', 'POINT', 4326, 0, 0);",
    )
    .unwrap();
}

/// Finding 4: a hostile GeoPackage (a view whose query never ends) is refused at once,
/// while other writes and a revocation go on; a long import does not hold up SIGTERM.
#[test]
fn a_hostile_upload_stalls_nothing() {
    let (dir, store) = sample_store();
    let werther = token(&store, "werther", &["--municipality", "Werther"]);
    let ellrich = token(&store, "ellrich", &["--municipality", "Ellrich"]);
    let doomed = token(&store, "doomed", &["--municipality", "Ellrich"]);
    let srv = serve(&store, &["--import-timeout-s", "20"]);
    let evil = dir.path().join("evil.gpkg");
    recursive_view_gpkg(&evil);
    let body = std::fs::read(&evil).unwrap();
    let base = srv.base.clone();
    let upload = std::thread::spawn(move || {
        let started = Instant::now();
        let r = send(
            "POST",
            &format!("{base}/collections/parking/import?mode=append"),
            &werther,
            "application/geopackage+sqlite3",
            &body,
        );
        (r, started.elapsed())
    });
    // Meanwhile another municipality edits, and a token is revoked.
    let fid: i64 =
        rusqlite::Connection::open_with_flags(&store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
            .query_row(
                "SELECT min(fid) FROM parking WHERE municipality = 'Ellrich'",
                [],
                |r| r.get(0),
            )
            .unwrap();
    let t = Instant::now();
    let r = send(
        "PATCH",
        &format!("{}/collections/parking/items/{fid}", srv.base),
        &ellrich,
        "application/merge-patch+json",
        br#"{"properties": {"capacity": 77}}"#,
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "an edit waited {:?}",
        t.elapsed()
    );
    ok(nordgeo(&store, &["token", "revoke", "doomed"]));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = send(
            "GET",
            &format!("{}/collections/parking/items?limit=1", srv.base),
            &doomed,
            "",
            b"",
        );
        if r.status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "a revoked token still works");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (r, took) = upload.join().unwrap();
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        String::from_utf8_lossy(&r.body).contains("view"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        took < Duration::from_secs(20),
        "the hostile file took {took:?}"
    );
    assert!(!String::from_utf8_lossy(&r.body).contains("/tmp"));

    // SIGTERM during a long import: the process ends in bounded time, nothing written.
    let big = dir.path().join("big.gpkg");
    ok(Command::new(bin())
        .args(["generate", big.to_str().unwrap(), "--scale", "0.3"])
        .output()
        .unwrap());
    let part = dir.path().join("parcels.gpkg");
    nordgeo::export::export(
        &nordgeo::store::Store::open_read_only(&big).unwrap(),
        "parcels",
        &part,
        true,
    )
    .unwrap();
    let admin = token(&store, "admin", &["--role", "admin"]);
    drop(srv);
    let before = checksum(&store);
    let srv = serve(&store, &[]);
    let body = std::fs::read(&part).unwrap();
    let base = srv.base.clone();
    let upload = std::thread::spawn(move || {
        let _ = send(
            "POST",
            &format!("{base}/collections/parcels/import?mode=replace"),
            &admin,
            "application/geopackage+sqlite3",
            &body,
        );
    });
    std::thread::sleep(Duration::from_millis(700));
    let pid = srv.pid();
    let t = Instant::now();
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Path::new(&format!("/proc/{pid}/stat")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    {
        assert!(
            Instant::now() < deadline,
            "the server did not end 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("ended {:?} after SIGTERM", t.elapsed());
    let _ = upload.join();
    drop(srv);
    let after = checksum(&store);
    let count: i64 = rusqlite::Connection::open(&store)
        .unwrap()
        .query_row("SELECT count(*) FROM parcels", [], |r| r.get(0))
        .unwrap();
    // Either stopped and rolled back, or finished before the signal: never half.
    assert!(
        after == before || count == 90_000,
        "after SIGTERM the store holds {count} parcels"
    );
}

/// Finding 4 (uploads): three large uploads at once are streamed to disk, not held in
/// memory; the third waits for a slot (503) instead of adding to the load.
#[test]
fn uploads_are_streamed_not_held() {
    let (_dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let srv = serve(&store, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let start = rss_mb(srv.pid());
    let mb = 150usize;
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let base = srv.base.clone();
            let admin = admin.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
                let head = format!(
                    "POST /collections/parking/import?mode=append HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/geopackage+sqlite3\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    mb * 1024 * 1024
                );
                s.write_all(head.as_bytes()).unwrap();
                let mut chunk = vec![0u8; 1024 * 1024];
                chunk[..16].copy_from_slice(b"SQLite format 3\0");
                for i in 0..mb {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                    if i == 0 {
                        chunk[..16].fill(0);
                    }
                }
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                parse_response(&out).map(|r| r.status)
            })
        })
        .collect();
    let mut peak = start;
    let mut statuses = Vec::new();
    for s in senders {
        while !s.is_finished() {
            peak = peak.max(rss_mb(srv.pid()));
            std::thread::sleep(Duration::from_millis(50));
        }
        statuses.push(s.join().unwrap());
    }
    assert!(
        peak < start + 100.0,
        "three {mb} MB uploads took the server from {start:.0} to {peak:.0} MB"
    );
    // Not GeoPackages after all: 422 (or 503 for an upload that found no slot).
    for st in &statuses {
        assert!(
            matches!(st, Some(422) | Some(400) | Some(503) | None),
            "{statuses:?}"
        );
    }
}

/// Finding 5: slow clients. 2,000 connections that send an incomplete header a byte at a
/// time do not keep `/health` from answering within 100 ms, and are closed after the
/// header deadline.
#[test]
fn slow_clients_do_not_exhaust_connections() {
    raise_open_files();
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let addr = srv.base.trim_start_matches("http://").to_string();
    let mut slow: Vec<TcpStream> = (0..2000)
        .filter_map(|_| {
            let mut s = TcpStream::connect(&addr).ok()?;
            s.write_all(b"GET /collections HTTP/1.1\r\nHost: x\r\nX-Slow: a")
                .ok()?;
            Some(s)
        })
        .collect();
    assert!(slow.len() >= 1900, "only {} connections opened", slow.len());
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        for s in slow.iter_mut().take(200) {
            let _ = s.write_all(b"a");
        }
        let t = Instant::now();
        let r = get(&format!("{}/health", srv.base), &[]);
        assert_eq!(r.status, 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        worst < Duration::from_millis(100),
        "/health took {worst:?} with {} slow connections open",
        slow.len()
    );
    // Past the header deadline (10 s) the server has closed them.
    std::thread::sleep(Duration::from_secs(6));
    // A closed connection reads its end (or a last answer); an open one times out.
    let closed = slow
        .iter_mut()
        .map(|s| {
            s.set_read_timeout(Some(Duration::from_millis(5))).ok();
            let mut b = [0u8; 64];
            s.read(&mut b).is_ok()
        })
        .filter(|c| *c)
        .count();
    assert!(
        closed > slow.len() / 2,
        "only {closed} slow connections were closed"
    );
}

/// The header deadline cuts off clients that send no head, never answers a client is
/// slow to read: with a 1 s deadline, a client pipelines requests for several megabytes,
/// reads nothing for 3 s (the server's writes wait), then gets every answer whole; a
/// connection that sends nothing is closed after about the deadline.
#[test]
fn the_header_deadline_never_cuts_an_answer_being_read_slowly() {
    let (dir, store) = sample_store();
    let cfg = dir.path().join("nordgeo.toml");
    std::fs::write(&cfg, "[server]\nheader_timeout_s = 1\n").unwrap();
    let srv = serve(&store, &["--config", cfg.to_str().unwrap()]);
    let addr = srv.base.trim_start_matches("http://").to_string();
    let path = "/collections/parking/items?limit=10000";
    let one = get(&format!("{}{path}", srv.base), &[]);
    assert_eq!(one.status, 200);
    // Enough answers to fill the server's and the client's socket buffers many times.
    let n = (24 << 20) / one.body.len() + 1;
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut all = String::new();
    for i in 0..n {
        let close = if i + 1 == n {
            "Connection: close\r\n"
        } else {
            ""
        };
        all.push_str(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n{close}\r\n"));
    }
    s.write_all(all.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let mut got = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.read_to_end(&mut got).unwrap();
    let answers = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
    assert_eq!(answers, n, "{answers} of {n} answers arrived");
    assert!(
        got.len() >= n * one.body.len(),
        "{} bytes arrived, {} expected at least",
        got.len(),
        n * one.body.len()
    );
    // A connection that sends nothing is closed once the deadline has passed.
    let mut idle = TcpStream::connect(&addr).unwrap();
    let t = Instant::now();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8; 16];
    assert_eq!(
        idle.read(&mut b).unwrap_or(usize::MAX),
        0,
        "no orderly close"
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}

/// Finding 6: links never follow a caller's Host or forwarded headers, unless they come
/// from a configured proxy; what a shared cache keeps does not depend on them.
#[test]
fn links_follow_no_callers_host() {
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let evil = [
        ("Host", "evil.example"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "host=evil.example;proto=https"),
    ];
    for path in [
        "/",
        "/?f=html",
        "/collections",
        "/collections/parking/items?limit=2",
        "/collections/parking?f=html",
        "/styles/portal",
        "/tiles/WebMercatorQuad/tilejson.json",
        "/map",
    ] {
        let r = get(&format!("{}{path}", srv.base), &evil);
        assert!(r.status < 400, "{path}: {}", r.status);
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("evil.example"),
            "{path} links to the caller's host"
        );
    }
    // Behind a configured proxy its headers are believed, and named in Vary.
    let proxied = serve(&store, &["--trusted-proxies", "127.0.0.1"]);
    let r = get(
        &format!("{}/styles/portal", proxied.base),
        &[
            ("X-Forwarded-Host", "geo.example.org"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    assert!(String::from_utf8_lossy(&r.body).contains("https://geo.example.org/"));
    let vary: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "vary")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        vary.iter().any(|v| v.contains("X-Forwarded-Host")),
        "Vary: {vary:?}"
    );
}

/// Finding 7: smaller leaks — a temporal extent over an internal date, restricted
/// layers' counts in /health and /metrics, municipality spellings, and a maintainer
/// placing a feature outside its municipality.
#[test]
fn smaller_leaks_are_closed() {
    let (dir, store) = sample_store();
    // A layer with a date only token holders may see.
    let events = dir.path().join("events.gpkg");
    ok(nordgeo(
        &store,
        &["export", "parking", events.to_str().unwrap()],
    ));
    {
        let c = rusqlite::Connection::open(&events).unwrap();
        nordgeo::store::functions::register(&c).unwrap();
        c.execute_batch(
            "ALTER TABLE parking ADD COLUMN inspected DATE;
             UPDATE parking SET inspected = printf('2026-%02d-15', 1 + fid % 12);",
        )
        .unwrap();
    }
    ok(nordgeo(
        &store,
        &["import", events.to_str().unwrap(), "--into", "inspections"],
    ));
    ok(nordgeo(
        &store,
        &["set-layer", "inspections", "--internal", "inspected"],
    ));
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--restricted", "true"],
    ));
    let admin = token(&store, "admin", &["--role", "admin"]);
    let werther = token(&store, "werther", &["--municipality", "werther"]);
    let srv = serve(&store, &[]);
    let c = get(&format!("{}/collections/inspections", srv.base), &[]).json();
    assert!(
        c["extent"].get("temporal").is_none(),
        "an internal date shows as a temporal extent: {}",
        c["extent"]
    );
    // /health says nothing about the data; /metrics needs an admin.
    let h = get(&format!("{}/health", srv.base), &[]).json();
    assert_eq!(h, json!({"status": "ok"}));
    assert_eq!(get(&format!("{}/metrics", srv.base), &[]).status, 401);
    let bearer = format!("Bearer {admin}");
    assert_eq!(
        get(
            &format!("{}/metrics", srv.base),
            &[("Authorization", &bearer)]
        )
        .status,
        200
    );
    // Every spelling of a municipality is stored as its one spelling, or refused.
    let w: Value = get(
        &format!(
            "{}/collections/parking/items?municipality=Werther&limit=1",
            srv.base
        ),
        &[],
    )
    .json();
    let c = &w["features"][0]["geometry"]["coordinates"];
    let (lon, lat) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
    let before = get(
        &format!(
            "{}/collections/parking/items?municipality=Werther&limit=1000",
            srv.base
        ),
        &[],
    )
    .json()["numberMatched"]
        .as_i64()
        .unwrap();
    for (i, m) in ["WERTHER", " werther\t", "Werther\u{200b}", "Werther\u{0}"]
        .iter()
        .enumerate()
    {
        let body = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon + 0.0005 * i as f64, lat]},
                          "properties": {"name": format!("P{i}"), "capacity": 3, "fee": false, "wheelchair_spaces": 0, "municipality": m}});
        let r = send(
            "POST",
            &format!("{}/collections/parking/items", srv.base),
            &werther,
            "application/geo+json",
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 201, "{m:?}: {}", String::from_utf8_lossy(&r.body));
    }
    let after = get(
        &format!(
            "{}/collections/parking/items?municipality=Werther&limit=1000",
            srv.base
        ),
        &[],
    )
    .json()["numberMatched"]
        .as_i64()
        .unwrap();
    assert_eq!(after, before + 4, "a spelling was stored as it came");
    let bad = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                     "properties": {"name": "X", "capacity": 3, "fee": false, "wheelchair_spaces": 0, "municipality": "Wertherr"}});
    let r = send(
        "POST",
        &format!("{}/collections/parking/items", srv.base),
        &admin,
        "application/geo+json",
        bad.to_string().as_bytes(),
    );
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("Heringen/Helme"));
    // A maintainer cannot move its feature 30 km away; an admin can.
    let fid = get(
        &format!(
            "{}/collections/parking/items?municipality=Werther&limit=1",
            srv.base
        ),
        &[],
    )
    .json()["features"][0]["id"]
        .as_i64()
        .unwrap();
    let far = br#"{"geometry": {"type": "Point", "coordinates": [11.3, 51.2]}}"#;
    let url = format!("{}/collections/parking/items/{fid}", srv.base);
    let r = send("PATCH", &url, &werther, "application/merge-patch+json", far);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("outside the boundary of Werther"));
    let near = format!(
        r#"{{"geometry": {{"type": "Point", "coordinates": [{}, {lat}]}}}}"#,
        lon + 0.0002
    );
    let r = send(
        "PATCH",
        &url,
        &werther,
        "application/merge-patch+json",
        near.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let r = send("PATCH", &url, &admin, "application/merge-patch+json", far);
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
}

/// A run of hostile requests — odd paths, query strings, headers and bodies — against a
/// live server: never a 5xx, never a crash, memory bounded.
#[test]
fn hostile_requests_get_no_server_error() {
    let (_dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let srv = serve(&store, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let start = rss_mb(srv.pid());
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let junk = [
        "",
        "%",
        "%00",
        "%ff%fe",
        "..%2F..%2Fetc%2Fpasswd",
        "'%20OR%201=1--",
        "%E2%80%8B",
        "-1",
        "1e309",
        "NaN",
        "9999999999999999999999",
        "a,b,c",
        "%2C%2C%2C",
        "{}",
        "[]",
        "null",
        "%22",
        "%3Cscript%3E",
        "0x10",
        "\u{7f}",
    ];
    let paths = [
        "/collections/{j}",
        "/collections/parking/items?{k}={j}",
        "/collections/parking/items/{j}",
        "/collections/parking/items?bbox={j}&crs={j}",
        "/collections/parking/items?filter={j}&filter-lang={j}",
        "/collections/parking/items?sortby={j}&limit={j}&offset={j}",
        "/collections/parking/items?near={j}&max-distance={j}",
        "/tiles/WebMercatorQuad/{j}/{j}/{j}",
        "/tiles/WebMercatorQuad/14/5362/8686?collections={j}",
        "/collections/parking/tiles/{j}/1/1/1",
        "/fonts/{j}/{j}",
        "/styles/{j}",
        "/map/{j}",
        "/assets/maplibre-gl/{j}",
        "/{j}",
        "/collections/parking/items/{j}/history",
    ];
    let keys = ["f", "limit", "datetime", "bbox-crs", "x", "collections"];
    let bearer = format!("Bearer {admin}");
    let mut fivexx = Vec::new();
    let n = 3000;
    for i in 0..n {
        let j = junk[(next() % junk.len() as u64) as usize];
        let k = keys[(next() % keys.len() as u64) as usize];
        let p = paths[(next() % paths.len() as u64) as usize]
            .replace("{j}", j)
            .replace("{k}", k);
        let mut h: Vec<(&str, &str)> = Vec::new();
        match next() % 8 {
            0 => h.push(("Authorization", "Bearer ngt_0000")),
            1 => h.push(("Authorization", bearer.as_str())),
            2 => h.push(("Accept", "text/html;q=0.1, */*;q=bogus")),
            3 => h.push(("Accept-Encoding", "gzip;q=nan, br;q=-1, *")),
            4 => h.push(("Range", "bytes=999999999-1")),
            5 => h.push(("If-None-Match", "\"\u{0}\"")),
            6 => h.push(("Authorization", "Basic Og==")),
            _ => {}
        }
        let method = [
            "GET", "GET", "GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS",
        ][(next() % 8) as usize];
        let body: &[u8] = match next() % 4 {
            0 => b"{\"type\": \"Feature\", \"geometry\": {\"type\": \"Point\", \"coordinates\": [1e400, 2]}}",
            1 => b"\xff\xfe\x00garbage",
            2 => b"SQLite format 3\x00truncated",
            _ => b"",
        };
        let url = format!("{}{p}", srv.base);
        let r = match std::panic::catch_unwind(|| request(method, &url, &h, body)) {
            Ok(r) => r,
            Err(_) => {
                fivexx.push(format!("{method} {p}: no response"));
                continue;
            }
        };
        if r.status >= 500 {
            fivexx.push(format!(
                "{method} {p} {h:?}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        if i % 500 == 0 {
            assert_eq!(get(&format!("{}/health", srv.base), &[]).status, 200);
        }
    }
    let end = rss_mb(srv.pid());
    assert!(
        fivexx.is_empty(),
        "{} server errors:\n{}",
        fivexx.len(),
        fivexx.join("\n")
    );
    assert!(
        end < start + 100.0,
        "memory {start:.0} -> {end:.0} MB after {n} requests"
    );
}
