//! The real server on a loopback port, spoken to over HTTP.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use geo::{Intersects, Rect};
use nordgeo::geom::gpkg;

fn store_with(file: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.gpkg");
    ok(nordgeo(
        &store,
        &["import", fixtures().join(file).to_str().unwrap()],
    ));
    (dir, store)
}

/// Fids whose geometry (transformed to lon/lat with PROJ) intersects `b`, by brute force.
fn brute_force(store: &Path, layer: &str, epsg: i32, b: [f64; 4]) -> BTreeSet<i64> {
    let conn = rusqlite::Connection::open(store).unwrap();
    let mut stmt = conn
        .prepare(&format!("SELECT fid, geom FROM \"{layer}\""))
        .unwrap();
    let rows: Vec<(i64, Option<Vec<u8>>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let rect = Rect::new((b[0], b[1]), (b[2], b[3]));
    let mut out = BTreeSet::new();
    for (fid, blob) in rows {
        let Some(mut g) = blob
            .and_then(|b| gpkg::decode(&b).ok())
            .and_then(|d| d.decoded.geometry)
        else {
            continue;
        };
        let mut xy = Vec::new();
        nordgeo::index::for_each_coord_mut(&mut g, &mut |c| xy.push((c.x, c.y)));
        nordgeo::crs::transform(epsg, 4326, &mut xy).unwrap();
        let mut it = xy.into_iter();
        nordgeo::index::for_each_coord_mut(&mut g, &mut |c| {
            let (x, y) = it.next().unwrap();
            c.x = x;
            c.y = y;
        });
        if g.intersects(&rect) {
            out.insert(fid);
        }
    }
    out
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn health_collections_items_bbox_and_paging() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = store_with("good_gdal36_25832.gpkg");
    let srv = serve(&store, &[]);
    let h = get(&format!("{}/health", srv.base), &[]);
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");

    let c = get(&format!("{}/collections", srv.base), &[]).json();
    let names: Vec<&str> = c["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"polygons") && names.contains(&"lines"),
        "{names:?}"
    );

    // Paging with limit=3 visits every feature exactly once, via absolute next links.
    for layer in ["points", "lines", "polygons", "mpolygons"] {
        let mut url = format!("{}/collections/{layer}/items?limit=3", srv.base);
        let mut seen = Vec::new();
        let mut matched = None;
        let mut pages = 0;
        loop {
            let r = get(&url, &[]);
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-type"), Some("application/geo+json"));
            let v = r.json();
            matched = matched.or(v["numberMatched"].as_u64());
            assert_eq!(
                v["numberReturned"].as_u64().unwrap() as usize,
                v["features"].as_array().unwrap().len()
            );
            seen.extend(ids(&v));
            pages += 1;
            let next = v["links"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["rel"] == "next");
            match next {
                Some(l) => {
                    url = l["href"].as_str().unwrap().to_string();
                    assert!(url.starts_with("http://"), "links are absolute: {url}");
                }
                None => break,
            }
        }
        let n = matched.unwrap() as usize;
        assert_eq!(pages, n.div_ceil(3).max(1), "{layer}");
        let unique: BTreeSet<i64> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{layer}: a feature appeared twice"
        );
        assert_eq!(seen.len(), n, "{layer}");
    }

    // bbox returns what a brute-force intersection test returns.
    for b in [
        [10.6, 51.4, 10.8, 51.6],
        [10.70, 51.45, 10.95, 51.52],
        [10.0, 51.0, 12.0, 52.0],
    ] {
        for layer in ["points", "lines", "polygons", "mlines"] {
            let url = format!(
                "{}/collections/{layer}/items?limit=10000&bbox={}%2C{}%2C{}%2C{}",
                srv.base, b[0], b[1], b[2], b[3]
            );
            let got: BTreeSet<i64> = ids(&get(&url, &[]).json()).into_iter().collect();
            assert_eq!(
                got,
                brute_force(&store, layer, 25832, b),
                "{layer} bbox {b:?}"
            );
        }
    }

    // Coordinates come out as CRS84 lon/lat matching PROJ to ~1e-8 degrees.
    let v = get(
        &format!("{}/collections/points/items?limit=1", srv.base),
        &[],
    )
    .json();
    let c = &v["features"][0]["geometry"]["coordinates"];
    assert!(
        (c[0].as_f64().unwrap() - 10.674).abs() < 1e-8
            && (c[1].as_f64().unwrap() - 51.58).abs() < 1e-8,
        "{c}"
    );
}

#[test]
fn errors_are_problem_json() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = store_with("good_pyogrio_25832.gpkg");
    let srv = serve(&store, &[]);
    let cases = [
        ("/collections/nope/items", 404),
        ("/collections/points/items?bbox=1,2,3", 400),
        ("/collections/points/items?bbox=a,b,c,d", 400),
        ("/collections/points/items?limit=-1", 400),
        ("/collections/points/items?limit=abc", 400),
        ("/collections/points/items?offset=-5", 400),
        ("/collections/points/items?color=red", 400),
        ("/collections/points/items?bbox=10,60,11,50", 400),
    ];
    for (path, status) in cases {
        let r = get(&format!("{}{path}", srv.base), &[]);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
        assert!(
            r.json()["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{path}"
        );
    }
    // A huge limit is clamped, not rejected.
    let r = get(
        &format!("{}/collections/points/items?limit=99999999", srv.base),
        &[],
    );
    assert_eq!(r.status, 200);
    assert!(
        get(&format!("{}/health", srv.base), &[]).status == 200,
        "server unharmed"
    );
}

/// CPU ticks (user + system) of each thread of `pid` that serves connections, by thread
/// id: the main thread (named after the binary) and `nordgeo-serve-N`.
fn serving_thread_ticks(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut ticks = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("threads") {
        let dir = task.expect("thread").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if comm != "nordgeo" && !comm.starts_with("nordgeo-serve") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // The fields after the name in parentheses: utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let tid = dir
            .file_name()
            .map_or_else(String::new, |t| t.to_string_lossy().into());
        ticks.insert(
            tid,
            f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0),
        );
    }
    ticks
}

/// Sends GET `path` again and again on one keep-alive connection for `secs` seconds.
fn hammer(host: &str, path: &str, secs: f64) -> usize {
    use std::io::{BufRead, BufReader, Read, Write};
    let s = std::net::TcpStream::connect(host).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let started = std::time::Instant::now();
    let mut n = 0;
    while started.elapsed().as_secs_f64() < secs {
        w.write_all(request.as_bytes()).expect("request");
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).expect("body");
        n += 1;
    }
    n
}

/// With one runtime per core, connections are handed to the thread holding the fewest:
/// four busy keep-alive connections keep every serving thread working, none idles while
/// another serves them all (which no answer would show, only the halved throughput).
#[test]
fn busy_connections_are_spread_over_the_serving_threads() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let host = srv.base.strip_prefix("http://").expect("http").to_string();
    let before = serving_thread_ticks(srv.pid());
    assert!(before.len() >= 2, "serving threads: {before:?}");
    let served: usize = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|_| s.spawn(|| hammer(&host, "/collections", 3.0)))
            .collect();
        clients.into_iter().map(|c| c.join().expect("client")).sum()
    });
    let after = serving_thread_ticks(srv.pid());
    let used: Vec<u64> = after
        .iter()
        .map(|(t, a)| a - before.get(t).copied().unwrap_or(0))
        .collect();
    let total: u64 = used.iter().sum();
    assert!(
        total >= 20,
        "{served} requests took only {total} ticks: {used:?}"
    );
    for u in &used {
        assert!(
            *u * 3 * used.len() as u64 >= total,
            "a serving thread did under a third of its share: {used:?} ticks for {served} requests"
        );
    }
}
