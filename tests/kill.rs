//! Killing an import mid-write leaves the store valid with its old content.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigkill_during_a_300k_parcel_import_keeps_the_old_content() {
    if !clients_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("region.gpkg");
    let store = dir.path().join("store.gpkg");
    ok(Command::new(bin())
        .args(["generate", big.to_str().unwrap(), "--scale", "1"])
        .output()
        .unwrap());
    ok(nordgeo(
        &store,
        &["import", root().join("data/sample.gpkg").to_str().unwrap()],
    ));
    let before = checksum(&store);

    let replace = [
        "import",
        big.to_str().unwrap(),
        "--layer",
        "parcels",
        "--mode",
        "replace",
    ];
    let mut child = Command::new(bin())
        .arg("--store")
        .arg(&store)
        .args(replace)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Checking comes first and writes nothing; wait until the write transaction is
    // visibly under way (the WAL grows), then kill without warning.
    let wal = dir.path().join("store.gpkg-wal");
    let started = Instant::now();
    loop {
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if size > 2_000_000 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import finished before it could be killed; make the test data larger"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the import never started writing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();

    assert_eq!(
        checksum(&store),
        before,
        "a killed import must leave the old content"
    );
    let conn = rusqlite::Connection::open(&store).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    assert_valid(&store);
    // And the store still takes the import afterwards.
    let out = ok(nordgeo(&store, &replace));
    assert!(out.contains("300000 added"), "{out}");
}
