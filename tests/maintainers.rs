//! The maintainers' workflow (issue 13): imports that cannot go wrong quietly, stable
//! feature identities, undo, rules, sign-in for desktop GIS, safe exports, messages that
//! help, and the /manage page in a real browser. Each finding of the issue is a test
//! named after it; expected values come from SQLite on read-only connections, GDAL and
//! QGIS, never from nordgeo's own code.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn import(base: &str, collection: &str, query: &str, secret: &str, file: &Path) -> Response {
    send(
        "POST",
        &format!("{base}/collections/{collection}/import?{query}"),
        secret,
        "application/geopackage+sqlite3",
        &std::fs::read(file).unwrap(),
    )
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// What the store holds, read with SQLite (on the PostGIS run: GDAL's copy of it).
fn ro(store: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        as_geopackage(store),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

/// Every row of a table as text (blobs byte for byte), in fid order.
fn rows(store: &Path, table: &str) -> Vec<String> {
    let c = ro(store);
    let mut st = c
        .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1"))
        .unwrap();
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
}

fn count(store: &Path, sql: &str) -> i64 {
    ro(store).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// One municipality's features of a layer, exported with nordgeo (as the README tells a
/// maintainer), then changed with SQL as QGIS would.
fn export_of(store: &Path, dir: &Path, layer: &str, municipality: &str, name: &str) -> PathBuf {
    let out = dir.join(name);
    ok(nordgeo(
        store,
        &[
            "export",
            layer,
            out.to_str().unwrap(),
            "--municipality",
            municipality,
        ],
    ));
    out
}

fn edit_file(file: &Path, sql: &str) {
    let c = rusqlite::Connection::open(file).unwrap();
    nordgeo::store::functions::register(&c).unwrap();
    c.execute_batch(sql).unwrap();
}

/// Finding 1: Wrong collection: the parking file into childcare is refused with both column
/// lists, and childcare keeps its features and columns.
#[test]
fn the_wrong_collection_is_refused_with_both_column_lists() {
    let (dir, store) = sample_store();
    let werther = token(&store, "werther", &["--municipality", "Werther"]);
    let file = export_of(&store, dir.path(), "parking", "Werther", "parking.gpkg");
    let before = rows(&store, "childcare");
    let srv = serve(&store, &[]);
    for query in ["mode=replace&dry-run=true", "mode=replace"] {
        let r = import(&srv.base, "childcare", query, &werther, &file);
        assert_eq!(r.status, 422, "{query}: {}", body(&r));
        let t = body(&r);
        for word in [
            "free_places",
            "opening_hours",
            "fee",
            "wheelchair_spaces",
            "right collection",
        ] {
            assert!(t.contains(word), "{query}: '{word}' missing in {t}");
        }
        assert!(
            !t.contains("--"),
            "an HTTP answer names a command-line flag: {t}"
        );
    }
    drop(srv);
    assert_eq!(rows(&store, "childcare"), before);
}

/// Finding 2: Identities: with a key, a replace of an unchanged file changes nothing (no fid, no
/// byte, no history row); one changed attribute updates exactly one feature in place,
/// with its before and after in the history.
#[test]
fn features_keep_their_identity() {
    let (dir, store) = sample_store();
    // A Flurstück is identified by its number within its municipality.
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--key", "municipality,parcel_id"],
    ));
    let werther = token(&store, "werther", &["--municipality", "Werther"]);
    let file = export_of(&store, dir.path(), "parcels", "Werther", "parcels.gpkg");
    let srv = serve(&store, &[]);
    let before = checksum(&store);
    let r = import(&srv.base, "parcels", "mode=replace", &werther, &file);
    assert_eq!(r.status, 200, "{}", body(&r));
    let l = &r.json()["layers"][0];
    assert_eq!(
        (
            l["added"].as_u64(),
            l["changed"].as_u64(),
            l["removed"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{l}"
    );
    assert!(l["unchanged"].as_u64().unwrap() > 100);
    drop(srv);
    assert_eq!(
        checksum(&store),
        before,
        "an unchanged file changed the store"
    );

    // One parcel's land use changes in the file.
    let (fid, pid): (i64, String) = ro(&file)
        .query_row(
            "SELECT fid, parcel_id FROM parcels ORDER BY fid LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    edit_file(
        &file,
        &format!("UPDATE parcels SET land_use = 'Streuobstwiese' WHERE fid = {fid}"),
    );
    let old_rows = rows(&store, "parcels");
    let old_fid: i64 = ro(&store)
        .query_row(
            "SELECT fid FROM parcels WHERE parcel_id = ?1 AND municipality = 'Werther'",
            [&pid],
            |r| r.get(0),
        )
        .unwrap();
    let srv = serve(&store, &[]);
    let r = import(&srv.base, "parcels", "mode=replace", &werther, &file);
    assert_eq!(r.status, 200, "{}", body(&r));
    let l = &r.json()["layers"][0];
    assert_eq!(l["changed"].as_u64(), Some(1), "{l}");
    assert_eq!(
        (l["added"].as_u64(), l["removed"].as_u64()),
        (Some(0), Some(0))
    );
    let stored: (i64, String) = ro(&store)
        .query_row(
            "SELECT fid, land_use FROM parcels WHERE parcel_id = ?1 AND municipality = 'Werther'",
            [&pid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        stored,
        (old_fid, "Streuobstwiese".into()),
        "changed in place"
    );
    let new_rows = rows(&store, "parcels");
    let differing = old_rows
        .iter()
        .zip(&new_rows)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!((old_rows.len(), differing), (new_rows.len(), 1));
    let admin = token(&store, "admin", &["--role", "admin"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let h = get(
        &format!("{}/collections/parcels/items/{old_fid}/history", srv.base),
        &[("Authorization", &format!("Bearer {admin}"))],
    )
    .json();
    let last = h["changes"].as_array().unwrap().last().unwrap();
    assert_ne!(last["before"]["properties"]["land_use"], "Streuobstwiese");
    assert_eq!(last["after"]["properties"]["land_use"], "Streuobstwiese");
}

/// Finding 3: Duplicates: the same file appended twice is refused the second time, naming the
/// features; an explicit allow-duplicates takes it.
#[test]
fn a_file_appended_twice_is_refused_the_second_time() {
    let (dir, store) = sample_store();
    let werther = token(&store, "werther", &["--municipality", "Werther"]);
    let file = export_of(&store, dir.path(), "parking", "Werther", "parking.gpkg");
    edit_file(
        &file,
        "DELETE FROM parking WHERE fid NOT IN (SELECT min(fid) FROM parking)",
    );
    let srv = serve(&store, &[]);
    // The exported feature itself is already there.
    let r = import(&srv.base, "parking", "mode=append", &werther, &file);
    assert_eq!(r.status, 422, "{}", body(&r));
    assert!(body(&r).contains("already in 'parking'"), "{}", body(&r));
    let n = count(&store, "SELECT count(*) FROM parking");
    let r = import(
        &srv.base,
        "parking",
        "mode=append&allow-duplicates=true",
        &werther,
        &file,
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(count(&store, "SELECT count(*) FROM parking"), n + 1);
}

/// Finding 4: Wrong zone: EPSG:25833 numbers labelled 25832 (made with GDAL) land far from the
/// layer: the dry run says so with the CRS it looks like, and a maintainer cannot place
/// them outside the municipality.
#[test]
fn coordinates_in_the_wrong_zone_are_caught() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    let werther = token(&store, "werther", &["--municipality", "Werther"]);
    let admin = token(&store, "admin", &["--role", "admin"]);
    let file = export_of(&store, dir.path(), "parking", "Werther", "parking.gpkg");
    let zone33 = dir.path().join("zone33.gpkg");
    let wrong = dir.path().join("wrong.gpkg");
    for (args, out) in [
        (vec!["-t_srs", "EPSG:25833"], &zone33),
        (vec!["-a_srs", "EPSG:25832"], &wrong),
    ] {
        let src = if out == &zone33 { &file } else { &zone33 };
        let o = Command::new("ogr2ogr")
            .args(["-f", "GPKG"])
            .args(&args)
            .arg(out)
            .arg(src)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let srv = serve(&store, &[]);
    let r = import(
        &srv.base,
        "parking",
        "mode=replace&dry-run=true",
        &admin,
        &wrong,
    );
    let t = body(&r);
    assert!(
        t.contains("outside the collection's extent") && t.contains("EPSG:25833"),
        "{t}"
    );
    let r = import(&srv.base, "parking", "mode=replace", &werther, &wrong);
    assert_eq!(r.status, 422, "{}", body(&r));
    assert!(
        body(&r).contains("outside the boundary of Werther"),
        "{}",
        body(&r)
    );
}

/// Finding 5: No silent no-ops, no implausible values: a body that is not a feature is a 400 with
/// a hint, an empty patch records nothing, and the layer's rules hold on every edit.
#[test]
fn edits_say_what_is_wrong_and_rules_hold() {
    let (_dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    ok(nordgeo(
        &store,
        &[
            "set-layer",
            "childcare",
            "--rule",
            "free_places >= 0",
            "--rule",
            "free_places <= capacity",
        ],
    ));
    let srv = serve(&store, &[]);
    let (fid, capacity): (i64, i64) = ro(&store)
        .query_row(
            "SELECT fid, capacity FROM childcare ORDER BY fid LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let url = format!("{}/collections/childcare/items/{fid}", srv.base);
    let history = || count(&store, "SELECT count(*) FROM nordgeo_history_childcare");
    let changes = || count(&store, "SELECT count(*) FROM nordgeo_changes");
    let before = (history(), changes());
    let patch = |b: &str| {
        send(
            "PATCH",
            &url,
            &admin,
            "application/merge-patch+json",
            b.as_bytes(),
        )
    };
    let r = patch(r#"{"free_places": 5}"#);
    assert_eq!(r.status, 400, "{}", body(&r));
    assert!(body(&r).contains(r#"\"properties\""#), "{}", body(&r));
    for empty in ["{}", r#"{"properties": {}}"#] {
        let r = patch(empty);
        assert_eq!(r.status, 204, "{empty}: {}", body(&r));
        assert!(r.header("x-nordgeo-change").is_none());
    }
    assert_eq!(
        (history(), changes()),
        before,
        "an empty patch recorded something"
    );
    let r = patch(r#"{"properties": {"free_places": -3}}"#);
    assert_eq!(r.status, 422, "{}", body(&r));
    assert!(body(&r).contains("free_places >= 0"), "{}", body(&r));
    let r = patch(&json!({"properties": {"free_places": capacity + 410}}).to_string());
    assert_eq!(r.status, 422, "{}", body(&r));
    assert!(body(&r).contains("free_places <= capacity"), "{}", body(&r));
    let r = patch(&json!({"properties": {"free_places": capacity / 2}}).to_string());
    assert_eq!(r.status, 204, "{}", body(&r));
    assert_eq!(changes(), before.1 + 1);
}

/// Finding 6: QGIS 3.22 signs in: an authentication configuration of the Basic method holding the
/// token reads a restricted collection with its internal fields.
#[test]
fn qgis_signs_in_with_basic_authentication() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    ok(nordgeo(
        &store,
        &[
            "set-layer",
            "childcare",
            "--restricted",
            "true",
            "--internal",
            "opening_hours",
        ],
    ));
    let admin = token(&store, "admin", &["--role", "admin"]);
    let srv = serve(&store, &[]);
    // Basic credentials work wherever Bearer does.
    let basic = format!(
        "Basic {}",
        base64_encode(format!("qgis:{admin}").as_bytes())
    );
    let r = get(
        &format!("{}/collections/childcare/items?limit=1", srv.base),
        &[("Authorization", &basic)],
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(
        r.json()["features"][0]["properties"]
            .get("opening_hours")
            .is_some()
    );
    let authdb = dir.path().join("qgis-auth");
    std::fs::create_dir_all(&authdb).unwrap();
    let o = Command::new("/usr/bin/python3")
        .arg(root().join("tests/tools/qgis_basic_auth.py"))
        .args([&srv.base, "childcare", &admin, "opening_hours"])
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("QGIS_AUTH_DB_DIR_PATH", &authdb)
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .expect("/usr/bin/python3 runs (python3-qgis from scripts/setup.sh)");
    let t = text(&o);
    assert!(
        o.status.success(),
        "QGIS could not read the restricted collection:\n{t}"
    );
    assert!(t.contains("features 12"), "{t}");
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Finding 7: A tile archive for the public has no restricted layer and no internal property
/// unless asked for, and its field types are those of the live TileJSON.
#[test]
fn tile_archives_leave_restricted_data_out() {
    let (dir, store) = sample_store();
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--restricted", "true"],
    ));
    ok(nordgeo(
        &store,
        &["set-layer", "parking", "--internal", "wheelchair_spaces"],
    ));
    let out = dir.path().join("portal.mbtiles");
    let o = nordgeo(
        &store,
        &[
            "export-tiles",
            out.to_str().unwrap(),
            "--format",
            "mbtiles",
            "--maxzoom",
            "12",
            "--collections",
            "parking,parcels",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("--include-restricted"),
        "{}",
        text(&o)
    );
    ok(nordgeo(
        &store,
        &[
            "export-tiles",
            out.to_str().unwrap(),
            "--format",
            "mbtiles",
            "--maxzoom",
            "12",
            "--collections",
            "parking",
        ],
    ));
    let json: String = rusqlite::Connection::open(&out)
        .unwrap()
        .query_row("SELECT value FROM metadata WHERE name = 'json'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let meta: Value = serde_json::from_str(&json).unwrap();
    let srv = serve(&store, &[]);
    let live = get(
        &format!(
            "{}/collections/parking/tiles/WebMercatorQuad/tilejson.json",
            srv.base
        ),
        &[],
    )
    .json();
    assert_eq!(
        meta["vector_layers"][0]["fields"],
        live["vector_layers"][0]["fields"]
    );
    assert!(
        meta["vector_layers"][0]["fields"]
            .get("wheelchair_spaces")
            .is_none()
    );
    assert_eq!(meta["vector_layers"][0]["fields"]["capacity"], "Number");
    let inside = dir.path().join("inside.mbtiles");
    ok(nordgeo(
        &store,
        &[
            "export-tiles",
            inside.to_str().unwrap(),
            "--format",
            "mbtiles",
            "--maxzoom",
            "12",
            "--collections",
            "parking,parcels",
            "--include-restricted",
        ],
    ));
    let json: String = ro(&inside)
        .query_row("SELECT value FROM metadata WHERE name = 'json'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(json.contains("wheelchair_spaces") && json.contains("parcels"));
}

/// Finding 8: Messages that help: the documented export → edit → import round trip works, a
/// mistyped layer gets a suggestion, HTTP answers name HTTP parameters and no server
/// path, an unknown municipality is refused with the known ones, durations take w and y.
#[test]
fn messages_say_what_to_do() {
    let (dir, store) = sample_store();
    let file = export_of(&store, dir.path(), "parking", "Werther", "werther.gpkg");
    edit_file(
        &file,
        "UPDATE parking SET capacity = capacity + 1 WHERE fid = (SELECT min(fid) FROM parking)",
    );
    let out = ok(nordgeo(
        &store,
        &[
            "import",
            file.to_str().unwrap(),
            "--into",
            "parking",
            "--mode",
            "replace",
            "--municipality",
            "Werther",
        ],
    ));
    // Without a key the changed car park is matched by content: removed and added anew.
    assert!(
        out.contains("1 added, 0 changed, 12 unchanged, 1 removed"),
        "{out}"
    );
    let o = nordgeo(
        &store,
        &[
            "import",
            file.to_str().unwrap(),
            "--into",
            "parkng",
            "--mode",
            "replace",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("did you mean 'parking'"),
        "{}",
        text(&o)
    );
    let o = nordgeo(
        &store,
        &[
            "token",
            "create",
            "--name",
            "x",
            "--municipality",
            "Wertherr",
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Heringen/Helme") && text(&o).contains("Werther"),
        "{}",
        text(&o)
    );
    ok(nordgeo(&store, &["vacuum", "--older-than", "1y"]));
    ok(nordgeo(
        &store,
        &[
            "token",
            "create",
            "--name",
            "y",
            "--municipality",
            "Werther",
            "--expires",
            "2w",
        ],
    ));
    let werther = token(&store, "werther", &["--municipality", "werther"]);
    let srv = serve(&store, &[]);
    let r = import(&srv.base, "parkng", "mode=replace", &werther, &file);
    assert_eq!(r.status, 404);
    assert!(body(&r).contains("did you mean 'parking'"), "{}", body(&r));
    let other = dir.path().join("other.gpkg");
    ok(nordgeo(
        &store,
        &["export", "trails", other.to_str().unwrap()],
    ));
    let r = import(&srv.base, "parking", "mode=append", &werther, &other);
    let t = body(&r);
    assert!(r.status >= 400, "{t}");
    assert!(!t.contains(" --"), "names a command-line flag: {t}");
    assert!(
        !t.contains("/tmp") && !t.contains(store.to_str().unwrap()),
        "names a server path: {t}"
    );
}

/// Maintainers undo their own changes when nothing later touched the same features;
/// otherwise the answer names the later change. An admin drops a column added by
/// mistake, and undoing that brings it back whole.
#[test]
fn maintainers_undo_their_own_changes() {
    let (dir, store) = sample_store();
    let werther = token(&store, "werther", &["--municipality", "Werther"]);
    let other = token(&store, "werther2", &["--municipality", "Werther"]);
    let file = export_of(&store, dir.path(), "parking", "Werther", "werther.gpkg");
    edit_file(
        &file,
        "UPDATE parking SET capacity = 999 WHERE fid = (SELECT min(fid) FROM parking)",
    );
    let before = rows(&store, "parking");
    let srv = serve(&store, &[]);
    let r = import(&srv.base, "parking", "mode=replace", &werther, &file);
    assert_eq!(r.status, 200, "{}", body(&r));
    let change = r.json()["layers"][0]["change_id"].as_i64().unwrap();
    let list = send(
        "GET",
        &format!("{}/collections/parking/changes", srv.base),
        &werther,
        "",
        b"",
    )
    .json();
    assert_eq!(list["changes"][0]["id"], change);
    assert_eq!(list["changes"][0]["yours"], true);
    // Someone else's change is not theirs to undo.
    let r = send(
        "POST",
        &format!("{}/collections/parking/undo?change={change}", srv.base),
        &other,
        "",
        b"",
    );
    assert_eq!(r.status, 403, "{}", body(&r));
    let r = send(
        "POST",
        &format!("{}/collections/parking/undo?change={change}", srv.base),
        &werther,
        "",
        b"",
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    drop(srv);
    assert_eq!(
        rows(&store, "parking"),
        before,
        "undo restores the exact rows"
    );

    // A later edit of the same feature blocks undoing the earlier one.
    let srv = serve(&store, &[]);
    let r = import(&srv.base, "parking", "mode=replace", &werther, &file);
    let first = r.json()["layers"][0]["change_id"].as_i64().unwrap();
    let fid: i64 = ro(&store)
        .query_row("SELECT fid FROM parking WHERE capacity = 999", [], |r| {
            r.get(0)
        })
        .unwrap();
    let r = send(
        "PATCH",
        &format!("{}/collections/parking/items/{fid}", srv.base),
        &werther,
        "application/merge-patch+json",
        br#"{"properties": {"capacity": 5}}"#,
    );
    assert_eq!(r.status, 204);
    let later = r.header("x-nordgeo-change").unwrap().to_string();
    let r = send(
        "POST",
        &format!("{}/collections/parking/undo?change={first}", srv.base),
        &werther,
        "",
        b"",
    );
    assert_eq!(r.status, 409, "{}", body(&r));
    assert!(
        body(&r).contains(&format!("change {later}")),
        "{}",
        body(&r)
    );
    drop(srv);

    // A column added by mistake goes, and comes back whole.
    let extra = dir.path().join("extra.gpkg");
    ok(nordgeo(
        &store,
        &["export", "parking", extra.to_str().unwrap()],
    ));
    edit_file(
        &extra,
        "ALTER TABLE parking ADD COLUMN note TEXT; UPDATE parking SET note = 'x' || fid;",
    );
    let o = nordgeo(
        &store,
        &["import", extra.to_str().unwrap(), "--mode", "replace"],
    );
    assert!(
        !o.status.success() && text(&o).contains("--add-columns"),
        "{}",
        text(&o)
    );
    ok(nordgeo(
        &store,
        &[
            "import",
            extra.to_str().unwrap(),
            "--mode",
            "replace",
            "--add-columns",
        ],
    ));
    let with = rows(&store, "parking");
    let out = ok(nordgeo(
        &store,
        &["set-layer", "parking", "--drop-column", "note"],
    ));
    let id: i64 = out
        .split("change ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(!rows(&store, "parking")[0].contains("\"x"));
    ok(nordgeo(
        &store,
        &["undo", "parking", "--change", &id.to_string()],
    ));
    assert_eq!(
        rows(&store, "parking"),
        with,
        "the dropped column came back whole"
    );
    // A rollback over the drop and its undo (to the import before them) leaves the
    // column as it was, rather than failing to add it a second time.
    let history = nordgeo(&store, &["history", "parking", "--json"]);
    let history: Value = serde_json::from_slice(&history.stdout).expect("history as JSON");
    let before_drop = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .filter(|c| *c < id)
        .max()
        .unwrap();
    ok(nordgeo(
        &store,
        &["rollback", "parking", "--to", &before_drop.to_string()],
    ));
    assert_eq!(
        rows(&store, "parking"),
        with,
        "a rollback over the drop and its undo"
    );
}

/// The /manage page in headless Chromium: a Werther maintainer signs in, checks a file,
/// confirms, finds the change in the history and undoes it; axe-core finds no WCAG 2.1
/// A/AA violation on any screen.
#[test]
fn the_manage_page_in_a_browser() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--key", "municipality,parcel_id"],
    ));
    let werther = token(&store, "werther", &["--municipality", "Werther"]);
    let file = export_of(&store, dir.path(), "parcels", "Werther", "werther.gpkg");
    edit_file(
        &file,
        "UPDATE parcels SET land_use = 'Streuobstwiese' WHERE fid = (SELECT min(fid) FROM parcels)",
    );
    let before = rows(&store, "parcels");
    let srv = serve(&store, &[]);
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let o = Command::new("node")
        .arg(root().join("tests/browser/manage.test.mjs"))
        .args([&srv.base, &werther])
        .arg(&file)
        .arg(&out)
        .output()
        .expect("node runs (scripts/setup.sh installs the web dependencies)");
    let t = text(&o);
    assert!(o.status.success(), "browser test failed:\n{t}");
    assert!(t.contains(" 0 failed"), "{t}");
    drop(srv);
    assert_eq!(
        rows(&store, "parcels"),
        before,
        "import then undo leaves the rows as they were"
    );
}
