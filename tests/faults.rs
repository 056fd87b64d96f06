//! Faults around the server: a damaged store at start-up, a read-only store, a full
//! disk, and SIGKILL in the middle of a burst of writes. Each gives a clear message and
//! loses nothing that was committed.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn admin_token(store: &std::path::Path) -> String {
    let o = nordgeo(
        store,
        &["token", "create", "--name", "admin", "--role", "admin"],
    );
    assert!(o.status.success(), "{}", text(&o));
    // The secret is the one line on stdout; the notice goes to stderr.
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn kita(name: &str) -> String {
    serde_json::json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [10.75, 51.52]},
        "properties": {"name": name, "capacity": 20, "free_places": 2, "municipality": "Werther"}})
    .to_string()
}

fn post(base: &str, token: &str, body: &str) -> Response {
    request(
        "POST",
        &format!("{base}/collections/childcare/items"),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/geo+json"),
        ],
        body.as_bytes(),
    )
}

#[test]
fn damaged_store_at_start_up_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.gpkg");
    std::fs::write(&junk, vec![b'x'; 8192]).unwrap();
    let (_d, store) = sample_store();
    let bytes = std::fs::read(&store).unwrap();
    let cut = dir.path().join("cut.gpkg");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    for (path, want) in [(&junk, "not a geopackage"), (&cut, "damaged")] {
        let o = Command::new(bin())
            .arg("--store")
            .arg(path)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .output()
            .unwrap();
        let t = text(&o).to_lowercase();
        assert!(!o.status.success(), "{t}");
        assert!(t.contains(want) || t.contains("malformed"), "{path:?}: {t}");
    }
}

#[test]
fn read_only_store_serves_reads_and_refuses_writes_clearly() {
    let (_dir, store) = sample_store();
    let token = admin_token(&store);
    let before = checksum(&store);
    let mut perm = std::fs::metadata(&store).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&store, perm).unwrap();
    let srv = serve(&store, &[]);
    let r = get(&format!("{}/collections/childcare/items", srv.base), &[]);
    assert_eq!(r.status, 200);
    let w = post(&srv.base, &token, &kita("Kita Nur Lesen"));
    assert_eq!(w.status, 503, "{}", String::from_utf8_lossy(&w.body));
    assert!(w.json()["detail"].as_str().unwrap().contains("read-only"));
    assert_eq!(checksum(&store), before);
}

#[test]
fn full_disk_rolls_back_the_write() {
    let (_dir, store) = sample_store();
    let token = admin_token(&store);
    let pages: i64 = rusqlite::Connection::open(&store)
        .unwrap()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let mut child = Command::new(bin())
        .arg("--store")
        .arg(&store)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("NORDGEO_TEST_MAX_PAGES", (pages + 3).to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().trim_start_matches("listening on ").to_string()
    };
    let big = "x".repeat(200_000);
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = post(&base, &token, &kita(&format!("{big}{i}")));
        statuses.push(r.status);
        if r.status == 507 {
            assert!(r.json()["detail"].as_str().unwrap().contains("full"));
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&507), "{statuses:?}");
    // What was acknowledged is there; the store is sound.
    let acknowledged = statuses.iter().filter(|s| **s == 201).count() as i64;
    let _ = child.kill();
    let _ = child.wait();
    let conn = rusqlite::Connection::open(&store).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM childcare WHERE length(name) > 100000",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, acknowledged);
    let ic: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ic, "ok");
}

/// SIGKILL while 8 clients write: every acknowledged feature survives, the store passes
/// integrity_check and the GeoPackage validator, and a restarted server serves it.
#[test]
fn sigkill_during_writes_loses_nothing_acknowledged() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let token = admin_token(&store);
    let srv = serve(&store, &[]);
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let stop = Instant::now() + Duration::from_millis(1500);
    let mut workers = Vec::new();
    for w in 0..8 {
        let (base, token, acked) = (srv.base.clone(), token.clone(), acked.clone());
        workers.push(std::thread::spawn(move || {
            let mut i = 0;
            loop {
                let r = std::panic::catch_unwind(|| {
                    post(&base, &token, &kita(&format!("Kita {w}-{i}")))
                });
                let Ok(r) = r else { break };
                if r.status != 201 {
                    break;
                }
                let loc = r.header("location").unwrap_or_default().to_string();
                if let Some(fid) = loc.rsplit('/').next().and_then(|f| f.parse().ok()) {
                    acked.lock().unwrap().push(fid);
                }
                i += 1;
            }
        }));
    }
    while Instant::now() < stop {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(srv); // SIGKILL (Server::drop kills the process)
    for w in workers {
        let _ = w.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 5,
        "only {} writes before the kill",
        acked.len()
    );
    let conn = rusqlite::Connection::open(&store).unwrap();
    for fid in &acked {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM childcare WHERE fid = ?1",
                [fid],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "acknowledged feature {fid} is missing after SIGKILL");
    }
    let ic: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ic, "ok");
    drop(conn);
    assert_valid(&store);
    let again = serve(&store, &[]);
    let v = get(
        &format!("{}/collections/childcare/items?limit=1", again.base),
        &[],
    )
    .json();
    assert!(v["numberMatched"].as_u64().unwrap() >= 12 + acked.len() as u64);
}

/// Another program opening and closing the store (GDAL, sqlite3, QGIS) while the server
/// runs must not detach the server from the write-ahead log: a write acknowledged after
/// that survives SIGKILL. (Regression: the server once closed a plain file handle on the
/// store, which dropped its SQLite locks.)
#[test]
fn writes_after_an_external_reader_survive_sigkill() {
    let (_dir, store) = sample_store();
    let token = admin_token(&store);
    let srv = serve(&store, &[]);
    assert_eq!(get(&format!("{}/ready", srv.base), &[]).status, 200);
    let first = post(&srv.base, &token, &kita("Kita vor dem Leser"));
    assert_eq!(first.status, 201);
    {
        let c = rusqlite::Connection::open_with_flags(
            &store,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let _: i64 = c
            .query_row("SELECT count(*) FROM childcare", [], |r| r.get(0))
            .unwrap();
    }
    let second = post(&srv.base, &token, &kita("Kita nach dem Leser"));
    assert_eq!(second.status, 201);
    drop(srv); // SIGKILL
    let c = rusqlite::Connection::open(&store).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM childcare WHERE name LIKE 'Kita % dem Leser'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        n, 2,
        "a write acknowledged after an external reader was lost"
    );
}
