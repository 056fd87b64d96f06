//! Owner data (Eigentümerangaben) under the GDPR (issue 14): a municipality's tokens see
//! the owners of that municipality's parcels and no others, in every representation;
//! every answer that shows owners is recorded once; what others see, ETags included,
//! does not move when only an owner changes.

mod common;

use common::*;
use serde_json::{Value, json};

struct Parcel {
    fid: i64,
    owner: String,
}

fn parcel_in(store: &std::path::Path, municipality: &str, secret: &str) -> Parcel {
    let c =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let fid: i64 = c
        .query_row(
            "SELECT min(fid) FROM parcels WHERE municipality = ?1",
            [municipality],
            |r| r.get(0),
        )
        .unwrap();
    Parcel {
        fid,
        owner: format!("{secret} #{fid}"),
    }
}

fn count(store: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open_with_flags(
        as_geopackage(store),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
    .query_row(sql, [], |r| r.get(0))
    .unwrap()
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

fn read(url: &str, secret: Option<&str>) -> Response {
    let auth = secret.map(bearer);
    let h: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let r = get(url, &h);
    assert!(
        r.status == 200 || r.status == 204,
        "{url}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    r
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn tile_of(lon: f64, lat: f64, z: u32) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let lat = lat.to_radians();
    let x = ((lon + 180.0) / 360.0 * n) as u32;
    let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n) as u32;
    (x, y)
}

/// The z16 tile under a feature's first vertex.
fn tile_url(base: &str, fid: i64) -> String {
    let f = read(&format!("{base}/collections/parcels/items/{fid}"), None).json();
    let p = &f["geometry"]["coordinates"][0][0];
    let (x, y) = tile_of(p[0].as_f64().unwrap(), p[1].as_f64().unwrap(), 16);
    format!("{base}/collections/parcels/tiles/WebMercatorQuad/16/{y}/{x}")
}

#[test]
fn owners_are_seen_by_their_municipality_only_and_every_access_is_logged() {
    let (_dir, store) = sample_store();
    let werther = token(
        &store,
        "werther",
        &["--municipality", "Werther", "--collections", "parcels"],
    );
    let ellrich = token(
        &store,
        "ellrich",
        &["--municipality", "Ellrich", "--collections", "parcels"],
    );
    let admin = token(&store, "admin", &["--role", "admin"]);
    let srv = serve(&store, &[]);
    let base = &srv.base;
    let items = format!("{base}/collections/parcels/items");

    // Owners told apart, so a leak of one is seen as that one.
    let w = parcel_in(&store, "Werther", "Eigentümerin Werther");
    let e = parcel_in(&store, "Ellrich", "Geheim Ellrich");
    let patch = |fid: i64, owner: &str| {
        let b = json!({"properties": {"owner_name": owner}}).to_string();
        let r = send(
            "PATCH",
            &format!("{items}/{fid}"),
            &admin,
            "application/merge-patch+json",
            b.as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", body(&r));
    };
    patch(w.fid, &w.owner);
    patch(e.fid, &e.owner);

    // Anonymous: no owners anywhere.
    let anon_feature = read(&format!("{items}/{e}", e = e.fid), None);
    assert!(!body(&anon_feature).contains("owner_name"));
    let anon_etag = anon_feature.header("etag").unwrap().to_string();
    let e_tile = tile_url(base, e.fid);
    let anon_tile = read(&e_tile, None);
    assert!(!body(&anon_tile).contains(&e.owner));

    // Werther's maintainer, every representation.
    let mut exposing: Vec<String> = Vec::new();
    let page = read(&format!("{items}?limit=10000"), Some(&werther));
    exposing.push("/collections/parcels/items?limit=10000".into());
    let fc = page.json();
    for f in fc["features"].as_array().unwrap() {
        let mine = f["properties"]["municipality"] == "Werther";
        assert_eq!(
            f["properties"].get("owner_name").is_some(),
            mine,
            "feature {}: owner shown iff the parcel is Werther's",
            f["id"]
        );
    }
    let text = body(&page);
    assert!(text.contains(&w.owner) && !text.contains(&e.owner));

    let r = read(&format!("{items}/{}", w.fid), Some(&werther));
    assert!(body(&r).contains(&w.owner));
    exposing.push(format!("/collections/parcels/items/{}", w.fid));
    let r = read(&format!("{items}/{}", e.fid), Some(&werther));
    assert!(!body(&r).contains("owner_name") && !body(&r).contains(&e.owner));

    let r = read(&format!("{items}/{}?f=html", w.fid), Some(&werther));
    assert!(body(&r).contains(&w.owner));
    exposing.push(format!("/collections/parcels/items/{}?f=html", w.fid));
    let r = read(&format!("{items}/{}?f=html", e.fid), Some(&werther));
    assert!(!body(&r).contains(&e.owner));
    let r = read(&format!("{items}?limit=10000&f=html"), Some(&werther));
    assert!(body(&r).contains(&w.owner) && !body(&r).contains(&e.owner));
    exposing.push("/collections/parcels/items?limit=10000&f=html".into());

    // Tiles: rendered for the caller; the owner strings are raw bytes in the MVT.
    let w_tile = tile_url(base, w.fid);
    let r = read(&w_tile, Some(&werther));
    assert!(body(&r).contains(&w.owner));
    exposing.push(w_tile.trim_start_matches(base.as_str()).to_string());
    let r = read(&e_tile, Some(&werther));
    assert!(!body(&r).contains(&e.owner));
    let r = read(&e_tile, Some(&ellrich));
    assert!(body(&r).contains(&e.owner));

    // History: each version shows the owner only where it is the caller's.
    let r = read(&format!("{items}/{}/history", w.fid), Some(&werther));
    assert!(body(&r).contains(&w.owner));
    exposing.push(format!("/collections/parcels/items/{}/history", w.fid));
    let r = read(&format!("{items}/{}/history", e.fid), Some(&werther));
    assert!(!body(&r).contains(&e.owner) && !body(&r).contains("owner_name"));

    // CQL2 and sortby read other municipalities' owners as NULL.
    let q = |cql: &str| format!("{items}?limit=10000&filter={}", encode(cql));
    let fiktiv = count(
        &store,
        "SELECT count(*) FROM parcels WHERE municipality = 'Werther' AND owner_name LIKE '%fiktiv%'",
    );
    let r = read(&q("owner_name LIKE '%fiktiv%'"), Some(&werther)).json();
    assert_eq!(r["numberMatched"], json!(fiktiv));
    exposing.push(format!(
        "/collections/parcels/items?limit=10000&filter={}",
        encode("owner_name LIKE '%fiktiv%'")
    ));
    let probe = format!("owner_name = '{}'", e.owner);
    assert_eq!(
        read(&q(&probe), Some(&werther)).json()["numberMatched"],
        json!(0)
    );
    assert_eq!(
        read(&q(&probe), Some(&ellrich)).json()["numberMatched"],
        json!(1)
    );
    let r = get(&q(&probe), &[]);
    assert_eq!(r.status, 400, "anonymous callers cannot name owner_name");

    let wcount = count(
        &store,
        "SELECT count(*) FROM parcels WHERE municipality = 'Werther' AND owner_name IS NOT NULL",
    );
    let limit = wcount + 50;
    let sorted = read(
        &format!("{items}?sortby=owner_name&limit={limit}"),
        Some(&werther),
    )
    .json();
    exposing.push(format!(
        "/collections/parcels/items?sortby=owner_name&limit={limit}"
    ));
    let feats = sorted["features"].as_array().unwrap();
    let (mine, rest) = feats.split_at(wcount as usize);
    assert!(
        mine.iter()
            .all(|f| f["properties"]["municipality"] == "Werther")
    );
    let owners: Vec<&str> = mine
        .iter()
        .map(|f| f["properties"]["owner_name"].as_str().unwrap())
        .collect();
    assert!(owners.windows(2).all(|p| p[0] <= p[1]), "ascending");
    // NULL sorts last ascending: the others follow in fid order, so their hidden
    // owners decide nothing.
    let fids: Vec<i64> = rest.iter().map(|f| f["id"].as_i64().unwrap()).collect();
    assert!(fids.windows(2).all(|p| p[0] < p[1]), "{fids:?}");
    assert!(
        rest.iter()
            .all(|f| f["properties"].get("owner_name").is_none())
    );

    // Each answer that showed owners is in the log once, with its features.
    let log = stdout_of(nordgeo(
        &store,
        &["access-log", "--token", "werther", "--json"],
    ));
    let rows: Vec<Value> = serde_json::from_str(&log).unwrap();
    let requests: Vec<String> = rows
        .iter()
        .map(|r| {
            r["request"]
                .as_str()
                .unwrap()
                .trim_start_matches("GET ")
                .to_string()
        })
        .collect();
    let mut want = exposing.clone();
    want.sort();
    let mut got = requests.clone();
    got.sort();
    assert_eq!(got, want, "access log of werther");
    for r in &rows {
        assert_eq!(r["collection"], "parcels");
        assert!(!r["fids"].as_array().unwrap().is_empty());
        assert!(!r["fids"].as_array().unwrap().contains(&json!(e.fid)));
    }
    let one = rows
        .iter()
        .find(|r| r["request"] == format!("GET /collections/parcels/items/{}", w.fid))
        .unwrap();
    assert_eq!(one["fids"], json!([w.fid]));
    let everyone = stdout_of(nordgeo(&store, &["access-log", "--json"]));
    let all: Vec<Value> = serde_json::from_str(&everyone).unwrap();
    assert!(all.iter().all(|r| r["token"] != "anonymous"));
    assert!(all.iter().any(|r| r["token"] == "ellrich"));

    // Only the owner changes: anonymous ETags and tiles stay as they were, the
    // municipality's own ETag moves.
    let ell_before = read(&format!("{items}/{}", e.fid), Some(&ellrich))
        .header("etag")
        .unwrap()
        .to_string();
    patch(e.fid, "Neuer Eigentümer (fiktiv)");
    let anon_after = read(&format!("{items}/{}", e.fid), None);
    assert_eq!(anon_after.header("etag").unwrap(), anon_etag);
    assert_eq!(
        read(&e_tile, None).header("etag"),
        anon_tile.header("etag"),
        "the public tile did not change"
    );
    let ell_after = read(&format!("{items}/{}", e.fid), Some(&ellrich))
        .header("etag")
        .unwrap()
        .to_string();
    assert_ne!(ell_before, ell_after);

    // vacuum ages the log out on its own limit.
    let out = ok(nordgeo(
        &store,
        &["vacuum", "--access-log-older-than", "0d"],
    ));
    assert!(out.contains("access-log rows"), "{out}");
    let left = stdout_of(nordgeo(&store, &["access-log", "--json"]));
    assert_eq!(serde_json::from_str::<Vec<Value>>(&left).unwrap().len(), 0);
}

fn stdout_of(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}
