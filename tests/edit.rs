//! Editing (issue 6): tokens and rights, restricted collections and internal properties
//! on every representation, OGC API Features Part 4 writes (owslib and plain HTTP) seen
//! in GeoJSON, tiles and the GeoPackage file, concurrent writers with ETags, malicious
//! input, rollback to the exact previous bytes, and import over HTTP.
//!
//! Expected values come from the store through SQLite, always on *read-only* connections
//! while a server runs (a read-write connection that closes may checkpoint and remove
//! the WAL), or from GDAL and owslib, never from the code path under test.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use rusqlite::types::Value as Sql;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// helpers

/// Creates a token with the CLI and returns its secret (the one `ngt_` line on stdout).
fn token(store: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", "--name", name];
    args.extend_from_slice(extra);
    let o = nordgeo(store, &args);
    assert!(o.status.success(), "token create {name}:\n{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let secrets: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        secrets.len() == 1 && secrets[0].starts_with("ngt_"),
        "token create {name} must print exactly one ngt_ line on stdout, printed {out:?}"
    );
    secrets[0].to_string()
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

/// stdout of a successful run (stderr carries log lines).
fn stdout_of(o: Output) -> String {
    assert!(o.status.success(), "nordgeo failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// What the store holds, read with SQLite (on the PostGIS run: GDAL's copy of it).
fn ro(store: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        as_geopackage(store),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the store read-only")
}

fn sql_i64(store: &Path, sql: &str) -> i64 {
    ro(store).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every row of a query, every column as stored (blobs byte for byte).
fn rows(store: &Path, sql: &str) -> Vec<Vec<Sql>> {
    let c = ro(store);
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    let mut q = st.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(r) = q.next().unwrap() {
        out.push((0..n).map(|i| r.get::<_, Sql>(i).unwrap()).collect());
    }
    out
}

/// fids of a layer in one municipality, ascending.
fn fids_in(store: &Path, table: &str, municipality: &str) -> Vec<i64> {
    let c = ro(store);
    let mut st = c
        .prepare(&format!(
            "SELECT fid FROM \"{table}\" WHERE municipality = ?1 ORDER BY fid"
        ))
        .unwrap();
    st.query_map([municipality], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn body_text(r: &Response) -> String {
    let t = String::from_utf8_lossy(&r.body);
    t.chars().take(400).collect()
}

/// One request: `auth` is the whole Authorization value; a JSON body gets
/// `Content-Type: application/geo+json` (PATCH: `application/merge-patch+json`) unless
/// `extra` names a Content-Type.
fn call(
    method: &str,
    url: &str,
    auth: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&Value>,
) -> Response {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let ct = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/geo+json"
    };
    let mut h: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = auth {
        h.push(("Authorization", a));
    }
    if body.is_some()
        && !extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        h.push(("Content-Type", ct));
    }
    h.extend_from_slice(extra);
    request(method, url, &h, &bytes)
}

/// Like `common::request`, but reads the answer while the body is still being written,
/// so a server that answers 413 early and closes is seen (not a broken pipe).
fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (k, v) in headers {
        head.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    send_raw(host, &head, body).unwrap_or_else(|| panic!("no HTTP answer to {method} {url}"))
}

/// Sends raw bytes (request head and body) and parses the answer; `None` when the
/// server closed without a status line.
fn send_raw(host: &str, head: &[u8], body: &[u8]) -> Option<Response> {
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut reader = s.try_clone().unwrap();
    let rd = std::thread::spawn(move || {
        let mut raw = Vec::new();
        let _ = reader.read_to_end(&mut raw);
        raw
    });
    // No half-close after the body: hyper drops a connection whose read side ends.
    let _ = s.write_all(head).and_then(|_| s.write_all(body));
    let raw = rd.join().unwrap();
    parse_response(&raw)
}

/// The Web Mercator tile (x, y) holding a CRS84 point.
fn tile_of(lon: f64, lat: f64, z: u32) -> (u32, u32) {
    let n = 2f64.powi(z as i32);
    let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
    let r = lat.to_radians();
    let y =
        ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor() as u32;
    (x, y)
}

/// The first position of a GeoJSON geometry.
fn first_position(geometry: &Value) -> (f64, f64) {
    let mut c = &geometry["coordinates"];
    while c[0].is_array() {
        c = &c[0];
    }
    (c[0].as_f64().expect("x"), c[1].as_f64().expect("y"))
}

/// One layer of a Mapbox Vector Tile: name, keys, string values, feature ids.
#[derive(Debug, Default)]
struct MvtLayer {
    name: String,
    keys: Vec<String>,
    strings: Vec<String>,
    ids: Vec<u64>,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// The fields of one protobuf message.
fn fields(b: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let key = varint(b, &mut i);
        let (field, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(varint(b, &mut i)),
            1 => {
                i += 8;
                Field::Fixed
            }
            2 => {
                let n = varint(b, &mut i) as usize;
                i += n;
                Field::Bytes(&b[i - n..i])
            }
            5 => {
                i += 4;
                Field::Fixed
            }
            w => panic!("not a vector tile: wire type {w}"),
        };
        out.push((field, f));
    }
    out
}

/// Decodes the parts of a vector tile the tests look at.
fn mvt(tile: &[u8]) -> Vec<MvtLayer> {
    let s = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    let mut layers = Vec::new();
    for (f, v) in fields(tile) {
        let (3, Field::Bytes(l)) = (f, v) else {
            continue;
        };
        let mut layer = MvtLayer::default();
        for (f, v) in fields(l) {
            match (f, v) {
                (1, Field::Bytes(b)) => layer.name = s(b),
                (2, Field::Bytes(feat)) => {
                    for (f, v) in fields(feat) {
                        if let (1, Field::Varint(id)) = (f, v) {
                            layer.ids.push(id);
                        }
                    }
                }
                (3, Field::Bytes(b)) => layer.keys.push(s(b)),
                (4, Field::Bytes(val)) => {
                    for (f, v) in fields(val) {
                        if let (1, Field::Bytes(b)) = (f, v) {
                            layer.strings.push(s(b));
                        }
                    }
                }
                _ => {}
            }
        }
        layers.push(layer);
    }
    layers
}

/// A tile body (200) or no tile (204); anything else is reported.
fn tile_body(url: &str, auth: Option<&str>) -> Result<Vec<u8>, String> {
    let r = call("GET", url, auth, &[], None);
    match r.status {
        200 => Ok(r.body),
        204 => Ok(Vec::new()),
        s => Err(format!("GET {url}: status {s}: {}", body_text(&r))),
    }
}

/// `ogrinfo -ro -q STORE LAYER -where "fid = N"` (the system GDAL reading the store).
fn ogr_feature(store: &Path, layer: &str, fid: i64) -> String {
    let o = Command::new("ogrinfo")
        .args(["-ro", "-q"])
        .arg(gdal_source(store))
        .arg(layer)
        .args(["-where", &format!("fid = {fid}")])
        .output()
        .expect("ogrinfo runs");
    assert!(o.status.success(), "ogrinfo failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The value ogrinfo prints for a field (`  name (String) = value`).
fn ogr_value(out: &str, field: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix(field)?.strip_prefix(" (")?;
        let (_, value) = rest.split_once(") = ")?;
        Some(value.to_string())
    })
}

fn problem_detail(r: &Response) -> Option<String> {
    let v: Value = serde_json::from_slice(&r.body).ok()?;
    v["detail"].as_str().map(str::to_string)
}

// ---------------------------------------------------------------------------------------
// 1. access cases

type Check = Box<dyn Fn(&Response) -> Result<(), String>>;

/// One access case: who asks what, and what must come back.
struct Case {
    method: &'static str,
    path: String,
    who: &'static str,
    body: Option<Value>,
    want: &'static [u16],
    checks: Vec<Check>,
}

fn case(
    method: &'static str,
    path: impl Into<String>,
    who: &'static str,
    body: Option<Value>,
    want: &'static [u16],
) -> Case {
    Case {
        method,
        path: path.into(),
        who,
        body,
        want,
        checks: Vec::new(),
    }
}

impl Case {
    fn check(mut self, c: Check) -> Self {
        self.checks.push(c);
        self
    }
}

fn has(s: &str) -> Check {
    let s = s.to_string();
    Box::new(move |r: &Response| {
        if String::from_utf8_lossy(&r.body).contains(&s) {
            Ok(())
        } else {
            Err(format!("the answer does not contain {s:?}"))
        }
    })
}

fn lacks(s: &str) -> Check {
    let s = s.to_string();
    Box::new(move |r: &Response| {
        if String::from_utf8_lossy(&r.body).contains(&s) {
            Err(format!("the answer leaks {s:?}"))
        } else {
            Ok(())
        }
    })
}

/// The `Allow` header lists (or does not list) a method.
fn allow(method: &'static str, present: bool) -> Check {
    Box::new(move |r: &Response| {
        let a = r.header("allow").unwrap_or("");
        let listed = a.split(',').any(|m| m.trim() == method);
        if listed == present {
            Ok(())
        } else {
            Err(format!(
                "Allow: {a:?} {} {method}",
                if present { "lacks" } else { "offers" }
            ))
        }
    })
}

/// The vector tile has (or has not) a layer.
fn tile_layer(name: &'static str, present: bool) -> Check {
    Box::new(move |r: &Response| {
        let layers = mvt(&r.body);
        let found = layers.iter().any(|l| l.name == name);
        if found == present {
            Ok(())
        } else {
            Err(format!(
                "tile layers {:?}: {name} {}",
                layers.iter().map(|l| &l.name).collect::<Vec<_>>(),
                if present { "missing" } else { "leaked" }
            ))
        }
    })
}

/// No layer of the vector tile has this key or string value.
fn tile_lacks(s: &str) -> Check {
    let s = s.to_string();
    Box::new(move |r: &Response| {
        for l in mvt(&r.body) {
            if l.keys.contains(&s) || l.strings.contains(&s) {
                return Err(format!("tile layer {} leaks {s:?}", l.name));
            }
        }
        Ok(())
    })
}

/// Some layer of the vector tile has this string value.
fn tile_has(s: &str) -> Check {
    let s = s.to_string();
    Box::new(move |r: &Response| {
        if mvt(&r.body).iter().any(|l| l.strings.contains(&s)) {
            Ok(())
        } else {
            Err(format!("no tile layer has {s:?}"))
        }
    })
}

/// A TileJSON's `vector_layers` ids include (or not) a layer.
fn tilejson_layer(name: &'static str, present: bool) -> Check {
    Box::new(move |r: &Response| {
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        let ids: Vec<&str> = v["vector_layers"]
            .as_array()
            .ok_or("no vector_layers")?
            .iter()
            .filter_map(|l| l["id"].as_str())
            .collect();
        if ids.contains(&name) == present {
            Ok(())
        } else {
            Err(format!(
                "vector_layers {ids:?}: {name} present={}",
                !present
            ))
        }
    })
}

/// A write's answer carries the change id.
fn change_header() -> Check {
    Box::new(|r: &Response| match r.header("x-nordgeo-change") {
        Some(v) if v.parse::<i64>().is_ok() => Ok(()),
        other => Err(format!("x-nordgeo-change is {other:?}")),
    })
}

#[test]
fn access_cases_table() {
    let (_dir, store) = sample_store();
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--restricted", "true"],
    ));
    ok(nordgeo(
        &store,
        &["set-layer", "childcare", "--internal", "opening_hours"],
    ));
    let mut t: HashMap<&str, String> = HashMap::new();
    t.insert("admin", token(&store, "admin", &["--role", "admin"]));
    let werther = ["--municipality", "Werther"];
    let mut w = |name: &'static str, extra: &[&str]| {
        let args: Vec<&str> = werther.iter().chain(extra).copied().collect();
        t.insert(name, token(&store, name, &args));
    };
    w("werther", &["--collections", "parking,childcare,parcels"]);
    w("werther-trails", &["--collections", "trails"]);
    w("werther-all", &[]);
    t.insert(
        "ellrich",
        token(
            &store,
            "ellrich",
            &[
                "--municipality",
                "Ellrich",
                "--collections",
                "parking,childcare",
            ],
        ),
    );
    // case and umlaut spelled differently from the data ("Kyffhäuserland")
    t.insert(
        "kyff",
        token(
            &store,
            "kyff",
            &[
                "--municipality",
                "KYFFHAEUSERLAND",
                "--collections",
                "parking",
            ],
        ),
    );
    // admins, so that expiry and revocation are the only reasons to refuse them
    t.insert(
        "expired",
        token(
            &store,
            "expired",
            &["--role", "admin", "--expires", "2020-01-01"],
        ),
    );
    t.insert("revoked", token(&store, "revoked", &["--role", "admin"]));
    ok(nordgeo(&store, &["token", "revoke", "revoked"]));

    // Secrets are stored only as hashes and never listed.
    let listed = stdout_of(nordgeo(&store, &["token", "list", "--json"]));
    let dump = format!(
        "{:?}",
        rows(&store, "SELECT * FROM nordgeo_tokens ORDER BY name")
    );
    let mut failures: Vec<String> = Vec::new();
    for (name, secret) in &t {
        let hex = secret.trim_start_matches("ngt_");
        if listed.contains(hex) || dump.contains(hex) {
            failures.push(format!(
                "the secret of token {name} is stored or listed in clear"
            ));
        }
    }
    let list: Value = serde_json::from_str(&listed).expect("token list --json is JSON");
    let by_name = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    if by_name("revoked")["revoked"].is_null() || by_name("expired")["expires"].is_null() {
        failures.push(format!(
            "token list does not show revoked/expired: {listed}"
        ));
    }

    let auth = |who: &str| -> Option<String> {
        match who {
            "anon" => None,
            "malformed" => Some("Basic x".into()),
            "invalid" => Some(format!("Bearer ngt_{}", "0".repeat(64))),
            k => Some(bearer(&t[k])),
        }
    };

    let w_pk = fids_in(&store, "parking", "Werther");
    let e_pk = fids_in(&store, "parking", "Ellrich");
    let k_pk = fids_in(&store, "parking", "Kyffhäuserland");
    let w_cc = fids_in(&store, "childcare", "Werther");
    assert!(w_pk.len() >= 3 && !e_pk.is_empty() && !k_pk.is_empty() && !w_cc.is_empty());
    let parcel = sql_i64(&store, "SELECT min(fid) FROM parcels");
    let muni = sql_i64(&store, "SELECT min(fid) FROM municipalities");
    let muni_ags: String = ro(&store)
        .query_row(
            &format!("SELECT ags FROM municipalities WHERE fid = {muni}"),
            [],
            |r| r.get(0),
        )
        .unwrap();

    let srv = serve(&store, &[]);
    let base = srv.base.clone();
    let admin = auth("admin");
    // Opening hours told apart per Kita, so a leak of one is seen as that one.
    for fid in 1..=sql_i64(&store, "SELECT max(fid) FROM childcare") {
        let old: String = ro(&store)
            .query_row(
                "SELECT coalesce(opening_hours, '') FROM childcare WHERE fid = ?1",
                [fid],
                |r| r.get(0),
            )
            .unwrap();
        let patch = json!({"properties": {"opening_hours": format!("{old} #{fid}")}});
        let url = format!("{base}/collections/childcare/items/{fid}");
        let r = call("PATCH", &url, admin.as_deref(), &[], Some(&patch));
        assert_eq!(r.status, 204, "{}", body_text(&r));
    }
    let hours_of = |m: &str| -> (i64, String) {
        ro(&store)
            .query_row(
                "SELECT fid, opening_hours FROM childcare WHERE municipality = ?1 AND opening_hours LIKE 'Mo%' ORDER BY fid LIMIT 1",
                [m],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("a Kita with opening hours")
    };
    // An Ellrich Kita's hours are for Ellrich's tokens; Werther's for Werther's.
    let (hours_fid, hours) = hours_of("Ellrich");
    let (w_hours_fid, w_hours) = hours_of("Werther");
    let w_hours_count = sql_i64(
        &store,
        "SELECT count(*) FROM childcare WHERE opening_hours LIKE 'Mo%' AND municipality = 'Werther'",
    );

    // Where things are (read as admin).
    let at = |coll: &str, fid: i64| {
        let r = call(
            "GET",
            &format!("{base}/collections/{coll}/items/{fid}"),
            admin.as_deref(),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "{coll}/{fid}: {}", body_text(&r));
        first_position(&r.json()["geometry"])
    };
    let (plon, plat) = at("parking", w_pk[0]);
    let (clon, clat) = at("childcare", hours_fid);
    let (cx, cy) = tile_of(clon, clat, 14);
    let (qlon, qlat) = at("parcels", parcel);
    let (px, py) = tile_of(qlon, qlat, 16);
    let cc_tile = format!("/collections/childcare/tiles/WebMercatorQuad/14/{cy}/{cx}");
    let (wlon, wlat) = at("childcare", w_hours_fid);
    let (wx, wy) = tile_of(wlon, wlat, 14);
    let w_cc_tile = format!("/collections/childcare/tiles/WebMercatorQuad/14/{wy}/{wx}");
    let parcel_tile = format!("/collections/parcels/tiles/WebMercatorQuad/16/{py}/{px}");
    let dataset_tile = format!("/tiles/WebMercatorQuad/16/{py}/{px}");

    let pk = "/collections/parking/items";
    let cc = "/collections/childcare/items";
    let pc = "/collections/parcels";
    let mu = "/collections/municipalities/items";
    let feature = |m: &str| {
        json!({"type": "Feature",
               "geometry": {"type": "Point", "coordinates": [plon + 0.001, plat + 0.001]},
               "properties": {"name": "Zugriffstest", "capacity": 10, "fee": false,
                              "wheelchair_spaces": 1, "municipality": m}})
    };
    let cap = |n: i64| Some(json!({"properties": {"capacity": n}}));
    let f = |cql: &str| format!("{cc}?filter={}", encode(cql));
    const OK: &[u16] = &[200];
    const TILE: &[u16] = &[200, 204];
    const NONE: &[u16] = &[204];
    const CREATED: &[u16] = &[201];
    const BAD: &[u16] = &[400];
    const UNAUTH: &[u16] = &[401];
    const FORBID: &[u16] = &[403];
    const MISSING: &[u16] = &[404];

    // Reads and refused writes: the store must not change.
    let (w0, w1, e0, k0, wc0) = (w_pk[0], w_pk[1], e_pk[0], k_pk[0], w_cc[0]);
    let refused = vec![
        // which token
        case("GET", format!("{pk}?limit=1"), "anon", None, OK),
        case("GET", format!("{pk}?limit=1"), "invalid", None, UNAUTH),
        case("GET", format!("{pk}?limit=1"), "expired", None, UNAUTH),
        case("GET", format!("{pk}?limit=1"), "revoked", None, UNAUTH),
        case("GET", format!("{pk}?limit=1"), "malformed", None, UNAUTH),
        case("GET", "/collections", "expired", None, UNAUTH),
        case("GET", "/", "revoked", None, UNAUTH),
        case("GET", "/conformance", "invalid", None, UNAUTH),
        case("GET", cc_tile.clone(), "invalid", None, UNAUTH),
        case("GET", "/api", "malformed", None, UNAUTH),
        case("PATCH", format!("{pk}/{w0}"), "anon", cap(1), UNAUTH),
        case("PATCH", format!("{pk}/{w0}"), "invalid", cap(1), UNAUTH),
        case("PATCH", format!("{pk}/{w0}"), "expired", cap(1), UNAUTH),
        case("PATCH", format!("{pk}/{w0}"), "revoked", cap(1), UNAUTH),
        case("PATCH", format!("{pk}/{w0}"), "malformed", cap(1), UNAUTH),
        case("POST", pk, "anon", Some(feature("Werther")), UNAUTH),
        case(
            "PUT",
            format!("{pk}/{w0}"),
            "anon",
            Some(feature("Werther")),
            UNAUTH,
        ),
        case("DELETE", format!("{pk}/{w0}"), "anon", None, UNAUTH),
        case("DELETE", format!("{pk}/{w0}"), "revoked", None, UNAUTH),
        case("DELETE", format!("{pk}/{w0}"), "expired", None, UNAUTH),
        // wrong municipality (before and after the change)
        case("PATCH", format!("{pk}/{e0}"), "werther", cap(1), FORBID),
        case(
            "PUT",
            format!("{pk}/{e0}"),
            "werther",
            Some(feature("Werther")),
            FORBID,
        ),
        case("DELETE", format!("{pk}/{e0}"), "werther", None, FORBID),
        case("POST", pk, "werther", Some(feature("Ellrich")), FORBID),
        case(
            "PATCH",
            format!("{pk}/{w0}"),
            "werther",
            Some(json!({"properties": {"municipality": "Ellrich"}})),
            FORBID,
        ),
        case(
            "PUT",
            format!("{pk}/{w0}"),
            "werther",
            Some(feature("Ellrich")),
            FORBID,
        ),
        case("PATCH", format!("{pk}/{w0}"), "ellrich", cap(1), FORBID),
        case(
            "PATCH",
            format!("{pk}/{k0}"),
            "kyff",
            Some(json!({"properties": {"municipality": "Werther"}})),
            FORBID,
        ),
        // wrong collection
        case(
            "PATCH",
            format!("{cc}/{wc0}"),
            "werther-trails",
            cap(1),
            FORBID,
        ),
        case(
            "DELETE",
            format!("{cc}/{wc0}"),
            "werther-trails",
            None,
            FORBID,
        ),
        case(
            "POST",
            pk,
            "werther-trails",
            Some(feature("Werther")),
            FORBID,
        ),
        // maintainer vs admin: a layer without a municipality column
        case(
            "PATCH",
            format!("{mu}/{muni}"),
            "werther-all",
            Some(json!({"properties": {"ags": "x"}})),
            FORBID,
        ),
        case(
            "DELETE",
            format!("{mu}/{muni}"),
            "werther-all",
            None,
            FORBID,
        ),
        case(
            "POST",
            "/collections/parking/rollback?to=1",
            "werther",
            None,
            FORBID,
        ),
        case(
            "POST",
            "/collections/parking/rollback?to=1",
            "anon",
            None,
            UNAUTH,
        ),
        case("POST", "/collections/parking/import", "anon", None, UNAUTH),
        case(
            "POST",
            "/collections/newlayer/import?mode=create",
            "werther-all",
            None,
            FORBID,
        ),
        case("GET", format!("{pk}/{w0}/history"), "anon", None, UNAUTH),
        case(
            "GET",
            format!("{pk}/{w0}/history"),
            "werther-trails",
            None,
            FORBID,
        ),
        case("GET", format!("{pk}/{w0}/history"), "expired", None, UNAUTH),
        // unknown things
        case("PATCH", format!("{pk}/999999"), "werther", cap(1), MISSING),
        case(
            "PATCH",
            "/collections/nope/items/1",
            "admin",
            cap(1),
            MISSING,
        ),
        case("DELETE", format!("{pk}/999999"), "admin", None, MISSING),
        // writes to a restricted collection not covered
        case(
            "PATCH",
            format!("{pc}/items/{parcel}"),
            "anon",
            cap(1),
            UNAUTH,
        ),
        case(
            "PATCH",
            format!("{pc}/items/{parcel}"),
            "ellrich",
            cap(1),
            FORBID,
        ),
        // OPTIONS: what the caller may do
        case("OPTIONS", pk, "anon", None, NONE).check(allow("POST", false)),
        case("OPTIONS", pk, "werther", None, NONE).check(allow("POST", true)),
        case("OPTIONS", pk, "werther-trails", None, NONE).check(allow("POST", false)),
        case("OPTIONS", pk, "invalid", None, UNAUTH),
        case("OPTIONS", format!("{pk}/{w0}"), "werther", None, NONE)
            .check(allow("PUT", true))
            .check(allow("PATCH", true))
            .check(allow("DELETE", true)),
        case("OPTIONS", format!("{pk}/{e0}"), "werther", None, NONE)
            .check(allow("PUT", false))
            .check(allow("PATCH", false))
            .check(allow("DELETE", false)),
        case("OPTIONS", format!("{pk}/{w0}"), "anon", None, NONE).check(allow("PATCH", false)),
        case("OPTIONS", format!("{mu}/{muni}"), "werther-all", None, NONE)
            .check(allow("PATCH", false)),
        case("OPTIONS", format!("{mu}/{muni}"), "admin", None, NONE).check(allow("PATCH", true)),
        case("OPTIONS", format!("{pk}/{k0}"), "kyff", None, NONE).check(allow("PATCH", true)),
        case("OPTIONS", format!("{pk}/{k0}"), "werther", None, NONE).check(allow("PATCH", false)),
        // restricted collection
        case("GET", format!("{pc}/items?limit=1"), "anon", None, UNAUTH),
        case(
            "GET",
            format!("{pc}/items?limit=1"),
            "ellrich",
            None,
            FORBID,
        ),
        case("GET", format!("{pc}/items?limit=1"), "werther", None, OK),
        case("GET", format!("{pc}/items?limit=1"), "admin", None, OK),
        case(
            "GET",
            format!("{pc}/items?limit=1&f=html"),
            "anon",
            None,
            UNAUTH,
        ),
        case("GET", format!("{pc}/items/{parcel}"), "anon", None, UNAUTH),
        case(
            "GET",
            format!("{pc}/items/{parcel}"),
            "ellrich",
            None,
            FORBID,
        ),
        case("GET", format!("{pc}/items/{parcel}"), "werther", None, OK),
        case("GET", pc, "anon", None, UNAUTH),
        case("GET", pc, "ellrich", None, FORBID),
        case("GET", format!("{pc}/queryables"), "anon", None, UNAUTH),
        case("GET", format!("{pc}/sortables"), "anon", None, UNAUTH),
        case("GET", format!("{pc}/tiles"), "anon", None, UNAUTH),
        case("GET", parcel_tile.clone(), "anon", None, UNAUTH),
        case("GET", parcel_tile.clone(), "ellrich", None, FORBID),
        case("GET", parcel_tile.clone(), "werther", None, OK).check(tile_layer("parcels", true)),
        case(
            "GET",
            format!("{pc}/xyz/16/{px}/{py}.pbf"),
            "anon",
            None,
            UNAUTH,
        ),
        case(
            "GET",
            format!("{dataset_tile}?collections=parcels"),
            "anon",
            None,
            UNAUTH,
        ),
        case(
            "GET",
            format!("{dataset_tile}?collections=parcels"),
            "ellrich",
            None,
            FORBID,
        ),
        case(
            "GET",
            format!("{dataset_tile}?collections=parcels"),
            "werther",
            None,
            OK,
        )
        .check(tile_layer("parcels", true)),
        case("GET", dataset_tile.clone(), "anon", None, TILE).check(tile_layer("parcels", false)),
        case("GET", dataset_tile.clone(), "ellrich", None, TILE)
            .check(tile_layer("parcels", false)),
        case("GET", dataset_tile.clone(), "admin", None, OK).check(tile_layer("parcels", true)),
        case("GET", format!("/xyz/16/{px}/{py}.pbf"), "anon", None, TILE)
            .check(tile_layer("parcels", false)),
        case(
            "GET",
            "/tiles/WebMercatorQuad/tilejson.json",
            "anon",
            None,
            OK,
        )
        .check(tilejson_layer("parcels", false)),
        case(
            "GET",
            "/tiles/WebMercatorQuad/tilejson.json",
            "werther",
            None,
            OK,
        )
        .check(tilejson_layer("parcels", true)),
        case(
            "GET",
            format!("{pc}/tiles/WebMercatorQuad/tilejson.json"),
            "anon",
            None,
            UNAUTH,
        ),
        case("GET", "/tiles/WebMercatorQuad", "anon", None, OK).check(lacks("parcels")),
        case("GET", "/tiles", "anon", None, OK).check(lacks("parcels")),
        case("GET", "/collections", "anon", None, OK).check(lacks("parcels")),
        case("GET", "/collections", "ellrich", None, OK).check(lacks("parcels")),
        case("GET", "/collections", "werther", None, OK).check(has("\"parcels\"")),
        case("GET", "/collections?f=html", "anon", None, OK).check(lacks("parcels")),
        case("GET", "/api", "anon", None, OK).check(lacks("/collections/parcels")),
        case("GET", "/api", "werther", None, OK).check(has("/collections/parcels")),
        // internal property
        case("GET", format!("{cc}?limit=100"), "anon", None, OK)
            .check(lacks("opening_hours"))
            .check(lacks(&hours)),
        case("GET", format!("{cc}?limit=100"), "werther-trails", None, OK)
            .check(lacks("opening_hours"))
            .check(lacks(&hours)),
        // A municipality's token sees its own Kitas' hours, not the others'.
        case("GET", format!("{cc}?limit=100"), "werther", None, OK)
            .check(has("opening_hours"))
            .check(has(&w_hours))
            .check(lacks(&hours)),
        case("GET", format!("{cc}?limit=100"), "admin", None, OK)
            .check(has(&w_hours))
            .check(has(&hours)),
        case("GET", format!("{cc}/{w_hours_fid}"), "ellrich", None, OK)
            .check(lacks("opening_hours"))
            .check(lacks(&w_hours)),
        case("GET", format!("{cc}/{hours_fid}"), "werther", None, OK)
            .check(lacks("opening_hours"))
            .check(lacks(&hours)),
        case("GET", format!("{cc}?limit=100&f=html"), "werther", None, OK)
            .check(has(&w_hours))
            .check(lacks(&hours)),
        case("GET", format!("{cc}/{hours_fid}"), "anon", None, OK)
            .check(lacks("opening_hours"))
            .check(lacks(&hours)),
        case("GET", format!("{cc}/{hours_fid}"), "ellrich", None, OK).check(has(&hours)),
        case("GET", format!("{cc}?limit=100&f=html"), "anon", None, OK)
            .check(lacks("opening_hours"))
            .check(lacks(&hours)),
        case("GET", format!("{cc}/{hours_fid}?f=html"), "anon", None, OK)
            .check(lacks("opening_hours"))
            .check(lacks(&hours)),
        case(
            "GET",
            format!("{cc}/{hours_fid}?f=html"),
            "ellrich",
            None,
            OK,
        )
        .check(has(&hours)),
        case(
            "GET",
            format!("{cc}/{hours_fid}?f=html"),
            "werther",
            None,
            OK,
        )
        .check(lacks(&hours)),
        case("GET", "/collections/childcare/queryables", "anon", None, OK)
            .check(lacks("opening_hours")),
        case(
            "GET",
            "/collections/childcare/queryables",
            "werther",
            None,
            OK,
        )
        .check(has("opening_hours")),
        case("GET", "/collections/childcare/sortables", "anon", None, OK)
            .check(lacks("opening_hours")),
        case(
            "GET",
            "/collections/childcare/sortables",
            "werther",
            None,
            OK,
        )
        .check(has("opening_hours")),
        case("GET", "/collections/childcare?f=html", "anon", None, OK)
            .check(lacks("opening_hours")),
        case("GET", "/api", "anon", None, OK).check(lacks("opening_hours")),
        case("GET", "/api", "admin", None, OK).check(has("opening_hours")),
        case("GET", f("opening_hours LIKE 'Mo%'"), "anon", None, BAD),
        case(
            "GET",
            f("opening_hours LIKE 'Mo%'"),
            "werther-trails",
            None,
            BAD,
        ),
        case("GET", f("opening_hours IS NULL"), "anon", None, BAD),
        case(
            "GET",
            f("name = 'x' OR opening_hours = 'x'"),
            "anon",
            None,
            BAD,
        ),
        case(
            "GET",
            format!(
                "{cc}?filter-lang=cql2-json&filter={}",
                encode(r#"{"op":"like","args":[{"property":"opening_hours"},"Mo%"]}"#)
            ),
            "anon",
            None,
            BAD,
        ),
        // Filters and sorting read the hours of other municipalities' Kitas as NULL.
        case("GET", f("opening_hours LIKE 'Mo%'"), "werther", None, OK)
            .check(has(&format!("\"numberMatched\":{w_hours_count}")))
            .check(lacks(&hours)),
        case(
            "GET",
            f(&format!("opening_hours = '{hours}'")),
            "werther",
            None,
            OK,
        )
        .check(has("\"numberMatched\":0")),
        case(
            "GET",
            format!("{cc}?opening_hours={}", encode(&hours)),
            "werther",
            None,
            OK,
        )
        .check(has("\"numberMatched\":0")),
        case(
            "GET",
            format!("{cc}?sortby=opening_hours"),
            "anon",
            None,
            BAD,
        ),
        case(
            "GET",
            format!("{cc}?sortby=-opening_hours"),
            "werther-trails",
            None,
            BAD,
        ),
        case(
            "GET",
            format!("{cc}?sortby=opening_hours"),
            "werther",
            None,
            OK,
        ),
        case("GET", format!("{cc}?opening_hours=x"), "anon", None, BAD),
        case("GET", format!("{cc}?opening_hours=x"), "werther", None, OK),
        case("GET", cc_tile.clone(), "anon", None, OK)
            .check(tile_layer("childcare", true))
            .check(tile_lacks("opening_hours"))
            .check(tile_lacks(&hours)),
        case("GET", cc_tile.clone(), "werther", None, OK).check(tile_lacks(&hours)),
        case("GET", w_cc_tile.clone(), "werther", None, OK).check(tile_has(&w_hours)),
        case("GET", w_cc_tile.clone(), "ellrich", None, OK).check(tile_lacks(&w_hours)),
        case("GET", w_cc_tile.clone(), "anon", None, OK).check(tile_lacks(&w_hours)),
        case(
            "GET",
            format!("/tiles/WebMercatorQuad/14/{cy}/{cx}"),
            "admin",
            None,
            OK,
        )
        .check(tile_has(&hours)),
        case(
            "GET",
            "/collections/childcare/tiles/WebMercatorQuad/tilejson.json",
            "admin",
            None,
            OK,
        )
        .check(lacks("opening_hours")),
        case("GET", "/tiles/WebMercatorQuad", "admin", None, OK).check(lacks("opening_hours")),
    ];

    // Allowed writes (run after the refused ones).
    let allowed = vec![
        case("PATCH", format!("{pk}/{w0}"), "werther", cap(77), NONE).check(change_header()),
        case("POST", pk, "werther", Some(feature("Werther")), CREATED)
            .check(change_header())
            .check(Box::new(|r: &Response| match r.header("location") {
                Some(l)
                    if l.starts_with("http://") && l.contains("/collections/parking/items/") =>
                {
                    Ok(())
                }
                other => Err(format!("Location {other:?}")),
            })),
        case("DELETE", format!("{pk}/{w1}"), "werther", None, NONE).check(change_header()),
        case("GET", format!("{pk}/{w1}"), "anon", None, MISSING),
        case("PATCH", format!("{pk}/{e0}"), "admin", cap(78), NONE).check(change_header()),
        case(
            "PATCH",
            format!("{mu}/{muni}"),
            "admin",
            // A new value: a patch to the stored one changes nothing and records nothing.
            Some(json!({"properties": {"ags": format!("{muni_ags}0")}})),
            NONE,
        )
        .check(change_header()),
        case("PATCH", format!("{pk}/{k0}"), "kyff", cap(79), NONE).check(change_header()),
        case(
            "PATCH",
            format!("{cc}/{wc0}"),
            "werther",
            Some(json!({"properties": {"free_places": 4}})),
            NONE,
        )
        .check(change_header()),
        case("GET", format!("{pk}/{w0}/history"), "werther", None, OK).check(has("\"update\"")),
        case("GET", format!("{pk}/{w0}"), "anon", None, OK).check(has("\"capacity\":77")),
    ];

    let total = refused.len() + allowed.len();
    let run = |c: &Case, failures: &mut Vec<String>| {
        let url = format!("{base}{}", c.path);
        let a = auth(c.who);
        let r = call(c.method, &url, a.as_deref(), &[], c.body.as_ref());
        let label = format!("{} {} as {}", c.method, c.path, c.who);
        if !c.want.contains(&r.status) {
            failures.push(format!(
                "{label}: status {}, want {:?}: {}",
                r.status,
                c.want,
                body_text(&r)
            ));
            return;
        }
        if r.status >= 400 && problem_detail(&r).is_none_or(|d| d.is_empty()) {
            failures.push(format!("{label}: {} without a problem detail", r.status));
        }
        for check in &c.checks {
            if let Err(e) = check(&r) {
                failures.push(format!("{label}: {e}"));
            }
        }
    };

    let before = checksum(&store);
    for c in &refused {
        run(c, &mut failures);
    }
    let after_refused = checksum(&store);
    if after_refused != before {
        failures.push(format!(
            "the refused cases changed the store: {before} -> {after_refused}"
        ));
    }
    for c in &allowed {
        run(c, &mut failures);
    }
    if checksum(&store) == after_refused {
        failures.push("the allowed writes did not change the store".into());
    }
    assert!(total >= 30, "the table has {total} cases, want at least 30");
    assert!(
        failures.is_empty(),
        "{} of {total} access cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 2. Part 4 round trip

/// Runs tests/tools/owslib_edit.py and returns what it printed.
fn owslib(base: &str, token: &str, args: &[&str]) -> Value {
    let o = Command::new(venv_python())
        .arg(root().join("tests/tools/owslib_edit.py"))
        .arg(base)
        .arg(token)
        .args(args)
        .output()
        .expect("python runs");
    assert!(o.status.success(), "owslib_edit.py {args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("owslib_edit.py printed no JSON ({e}): {}", text(&o)))
}

/// After a write to childcare feature `fid`: GeoJSON, the tile (which must differ from
/// what it was before the write, so the cache was purged), the GeoPackage file read by
/// GDAL, and the GeoPackage validator all agree with `want` (None: deleted).
#[allow(clippy::too_many_arguments)]
fn after_write(
    base: &str,
    auth: &str,
    store: &Path,
    what: &str,
    fid: i64,
    want: Option<&Value>,
    tile_url: &str,
    tile_before: &[u8],
    failures: &mut Vec<String>,
) {
    let r = call(
        "GET",
        &format!("{base}/collections/childcare/items/{fid}"),
        Some(auth),
        &[],
        None,
    );
    match want {
        Some(w) => {
            if r.status != 200 {
                failures.push(format!("{what}: GET feature {fid}: {}", r.status));
            } else {
                let got = r.json();
                for (k, v) in w["properties"].as_object().unwrap() {
                    if &got["properties"][k] != v {
                        failures.push(format!(
                            "{what}: GeoJSON property {k} is {}, want {v}",
                            got["properties"][k]
                        ));
                    }
                }
                if r.header("etag").is_none_or(|e| !e.starts_with('"')) {
                    failures.push(format!("{what}: GET has no strong ETag"));
                }
            }
        }
        None => {
            if r.status != 404 {
                failures.push(format!(
                    "{what}: GET deleted feature {fid}: {}, want 404",
                    r.status
                ));
            }
        }
    }
    match tile_body(tile_url, None) {
        Err(e) => failures.push(format!("{what}: {e}")),
        Ok(tile) => {
            if tile == tile_before {
                failures.push(format!(
                    "{what}: the tile {tile_url} is unchanged after the write (cache not purged?)"
                ));
            }
            let layers = mvt(&tile);
            let layer = layers.iter().find(|l| l.name == "childcare");
            let has_fid = layer.is_some_and(|l| l.ids.contains(&(fid as u64)));
            match want {
                Some(w) => {
                    if !has_fid {
                        failures.push(format!("{what}: the tile lacks feature {fid}"));
                    }
                    let name = w["properties"]["name"].as_str().unwrap();
                    if !layer.is_some_and(|l| l.strings.iter().any(|s| s == name)) {
                        failures.push(format!("{what}: the tile lacks the name {name:?}"));
                    }
                }
                None => {
                    if has_fid {
                        failures.push(format!("{what}: the tile still has feature {fid}"));
                    }
                }
            }
        }
    }
    let out = ogr_feature(store, "childcare", fid);
    match want {
        Some(w) => {
            if !out.contains(&format!("OGRFeature(childcare):{fid}")) {
                failures.push(format!(
                    "{what}: ogrinfo does not find feature {fid} in the file (is the write in the GeoPackage?):\n{out}"
                ));
            } else {
                for (k, v) in w["properties"].as_object().unwrap() {
                    let want_s = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => "(null)".into(),
                        o => o.to_string(),
                    };
                    let got = ogr_value(&out, k);
                    // GDAL omits null fields from its listing
                    let same =
                        got.as_deref() == Some(want_s.as_str()) || (v.is_null() && got.is_none());
                    if !same {
                        failures.push(format!(
                            "{what}: ogrinfo reads {k} = {got:?} from the file, want {want_s:?} (the server's commit is not in the file other processes open)"
                        ));
                    }
                }
            }
        }
        None => {
            if out.contains(&format!("OGRFeature(childcare):{fid}")) {
                failures.push(format!(
                    "{what}: ogrinfo still finds the deleted feature {fid} in the file"
                ));
            }
        }
    }
    let (valid, report) = validate(store);
    if !valid {
        failures.push(format!(
            "{what}: the store fails the GeoPackage validator:\n{report}"
        ));
    }
}

#[test]
fn part4_round_trip_with_owslib_and_http() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    ok(nordgeo(
        &store,
        &["set-layer", "childcare", "--internal", "opening_hours"],
    ));
    let tok = token(
        &store,
        "werther-kita",
        &["--municipality", "Werther", "--collections", "childcare"],
    );
    let srv = serve(&store, &[]);
    let base = srv.base.clone();
    let auth = bearer(&tok);
    let items = format!("{base}/collections/childcare/items");
    let mut failures: Vec<String> = Vec::new();

    let w_cc = fids_in(&store, "childcare", "Werther");
    let e_cc = fids_in(&store, "childcare", "Ellrich");
    let anchor = get(&format!("{items}/{}", w_cc[0]), &[]).json();
    let (lon0, lat0) = first_position(&anchor["geometry"]);
    let (lon, lat) = (lon0 + 0.004, lat0 + 0.002);
    let tile_url = |lon: f64, lat: f64| {
        let (x, y) = tile_of(lon, lat, 14);
        format!("{base}/collections/childcare/tiles/WebMercatorQuad/14/{y}/{x}")
    };
    // The tile as it is now, fetched twice so the second answer comes from the cache.
    let cached_tile = |url: &str| {
        tile_body(url, None).expect("tile");
        tile_body(url, None).expect("tile")
    };

    let name = "Kita Pusteblume Werther (owslib)";
    let created = json!({"type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"name": name, "capacity": 40, "free_places": 5,
                       "opening_hours": "Mo-Fr 07:00-16:00", "municipality": "Werther"}});

    // owslib exactly as documented: a JSON string goes out as `Content-type: text/xml`.
    let before = checksum(&store);
    let plain = owslib(&base, &tok, &["create-plain", &created.to_string()]);
    match plain["error"].as_str() {
        Some(e) if e.contains("415") => {}
        _ => failures.push(format!(
            "owslib's default POST (Content-type: text/xml) should be a 415: {plain}"
        )),
    }
    if checksum(&store) != before {
        failures.push("the refused text/xml POST changed the store".into());
    }

    // 1. create with owslib
    let t1 = tile_url(lon, lat);
    let tile0 = cached_tile(&t1);
    let out = owslib(&base, &tok, &["create", &created.to_string()]);
    assert!(out["error"].is_null(), "owslib create failed: {out}");
    assert_eq!(out["returned"], true, "{out}");
    let location = out["location"].as_str().unwrap_or_default().to_string();
    let found = get(&format!("{items}?name={}", encode(name)), &[]).json();
    let ids: Vec<i64> = found["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "the created Kita by name: {found}");
    let fid = ids[0];
    if location != format!("{items}/{fid}") {
        failures.push(format!("Location {location:?}, want {items}/{fid}"));
    }
    if out["change"].as_str().is_none() || out["etag"].as_str().is_none() {
        failures.push(format!("the 201 lacks x-nordgeo-change or ETag: {out}"));
    }
    after_write(
        &base,
        &auth,
        &store,
        "owslib create",
        fid,
        Some(&created),
        &t1,
        &tile0,
        &mut failures,
    );

    // 2. replace with owslib (PUT, whole feature)
    let replaced = json!({"type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"name": "Kita Pusteblume (umbenannt)", "capacity": 42, "free_places": 2,
                       "opening_hours": "Mo-Do 07:00-16:00", "municipality": "Werther"}});
    let tile1 = cached_tile(&t1);
    let out = owslib(
        &base,
        &tok,
        &["update", &fid.to_string(), &replaced.to_string()],
    );
    if !out["error"].is_null() || out["returned"] != true {
        failures.push(format!("owslib update failed: {out}"));
    }
    after_write(
        &base,
        &auth,
        &store,
        "owslib update (PUT)",
        fid,
        Some(&replaced),
        &t1,
        &tile1,
        &mut failures,
    );

    // 3. PATCH with If-Match over HTTP: fresh tag 204, stale tag 412
    let r = call("GET", &format!("{items}/{fid}"), Some(&auth), &[], None);
    let tag1 = r.header("etag").expect("ETag on GET").to_string();
    let tile2 = cached_tile(&t1);
    let r = call(
        "PATCH",
        &format!("{items}/{fid}"),
        Some(&auth),
        &[("If-Match", &tag1)],
        Some(&json!({"properties": {"free_places": 7}})),
    );
    assert_eq!(
        r.status,
        204,
        "PATCH with a fresh If-Match: {}",
        body_text(&r)
    );
    let tag2 = r.header("etag").unwrap_or_default().to_string();
    if tag2.is_empty() || tag2 == tag1 {
        failures.push(format!("PATCH answered ETag {tag2:?} (before: {tag1})"));
    }
    if r.header("x-nordgeo-change").is_none() {
        failures.push("PATCH without x-nordgeo-change".into());
    }
    let mut patched = replaced.clone();
    patched["properties"]["free_places"] = json!(7);
    after_write(
        &base,
        &auth,
        &store,
        "HTTP PATCH",
        fid,
        Some(&patched),
        &t1,
        &tile2,
        &mut failures,
    );
    let g = call("GET", &format!("{items}/{fid}"), Some(&auth), &[], None);
    if g.header("etag") != Some(tag2.as_str()) {
        failures.push(format!(
            "GET after PATCH has ETag {:?}, the PATCH answered {tag2}",
            g.header("etag")
        ));
    }
    let before = checksum(&store);
    let r = call(
        "PATCH",
        &format!("{items}/{fid}"),
        Some(&auth),
        &[("If-Match", &tag1)],
        Some(&json!({"properties": {"free_places": 99}})),
    );
    if r.status != 412 {
        failures.push(format!(
            "PATCH with a stale If-Match: {}, want 412",
            r.status
        ));
    }
    if checksum(&store) != before {
        failures.push("the stale PATCH changed the store".into());
    }

    // 4. OPTIONS
    let allow_of = |url: &str, a: Option<&str>| {
        let r = call("OPTIONS", url, a, &[], None);
        (r.status, r.header("allow").unwrap_or("").to_string())
    };
    let lists = |allow: &str, m: &str| allow.split(',').any(|x| x.trim() == m);
    let (s, a) = allow_of(&items, Some(&auth));
    if s != 204 || !lists(&a, "POST") {
        failures.push(format!(
            "OPTIONS items with the token: {s} Allow {a:?}, want POST"
        ));
    }
    let (s, a) = allow_of(&items, None);
    if s != 204 || lists(&a, "POST") || !lists(&a, "GET") {
        failures.push(format!(
            "OPTIONS items anonymous: {s} Allow {a:?}, want GET without POST"
        ));
    }
    let (s, a) = allow_of(&format!("{items}/{fid}"), Some(&auth));
    if s != 204 || !["PUT", "PATCH", "DELETE"].iter().all(|m| lists(&a, m)) {
        failures.push(format!(
            "OPTIONS own feature: {s} Allow {a:?}, want PUT, PATCH, DELETE"
        ));
    }
    let (s, a) = allow_of(&format!("{items}/{}", e_cc[0]), Some(&auth));
    if s != 204 || ["PUT", "PATCH", "DELETE"].iter().any(|m| lists(&a, m)) {
        failures.push(format!(
            "OPTIONS Ellrich's feature as Werther: {s} Allow {a:?}"
        ));
    }

    // 5. PUT over HTTP: moved to another tile; the missing capacity becomes NULL
    let (lon2, lat2) = (lon + 0.05, lat + 0.01);
    let t2 = tile_url(lon2, lat2);
    assert_ne!(t1, t2, "the move must change the tile");
    let old_tile = cached_tile(&t1);
    let new_tile = cached_tile(&t2);
    let moved = json!({"type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon2, lat2]},
        "properties": {"name": "Kita Pusteblume (umgezogen)", "free_places": 3,
                       "opening_hours": "Mo-Fr 08:00-15:00", "municipality": "Werther"}});
    let r = call(
        "PUT",
        &format!("{items}/{fid}"),
        Some(&auth),
        &[("If-Match", &tag2)],
        Some(&moved),
    );
    assert_eq!(r.status, 204, "PUT: {}", body_text(&r));
    let mut moved_want = moved.clone();
    moved_want["properties"]["capacity"] = Value::Null;
    after_write(
        &base,
        &auth,
        &store,
        "HTTP PUT (moved)",
        fid,
        Some(&moved_want),
        &t2,
        &new_tile,
        &mut failures,
    );
    match tile_body(&t1, None) {
        Ok(t) => {
            if t == old_tile {
                failures.push("HTTP PUT (moved): the old tile is unchanged".into());
            }
            if mvt(&t)
                .iter()
                .any(|l| l.name == "childcare" && l.ids.contains(&(fid as u64)))
            {
                failures.push("HTTP PUT (moved): the old tile still has the feature".into());
            }
        }
        Err(e) => failures.push(e),
    }

    // 5b. PATCH of the geometry in EPSG:25832 (Content-Crs), 100 m east
    let utm = format!(
        "{items}/{fid}?crs={}",
        encode("http://www.opengis.net/def/crs/EPSG/0/25832")
    );
    let g = call("GET", &utm, Some(&auth), &[], None).json();
    let (e, n) = first_position(&g["geometry"]);
    let r = call(
        "PATCH",
        &format!("{items}/{fid}"),
        Some(&auth),
        &[(
            "Content-Crs",
            "<http://www.opengis.net/def/crs/EPSG/0/25832>",
        )],
        Some(&json!({"geometry": {"type": "Point", "coordinates": [e + 100.0, n]}})),
    );
    if r.status != 204 {
        failures.push(format!(
            "PATCH with Content-Crs 25832: {} {}",
            r.status,
            body_text(&r)
        ));
    } else {
        let g = call("GET", &utm, Some(&auth), &[], None).json();
        let (e2, n2) = first_position(&g["geometry"]);
        if (e2 - e - 100.0).abs() > 0.01 || (n2 - n).abs() > 0.01 {
            failures.push(format!(
                "after the 25832 PATCH the feature is at {e2},{n2}, want {},{n}",
                e + 100.0
            ));
        }
    }

    // 6. delete with owslib
    let g = call("GET", &format!("{items}/{fid}"), Some(&auth), &[], None).json();
    let (lon3, lat3) = first_position(&g["geometry"]);
    let t3 = tile_url(lon3, lat3);
    let tile3 = cached_tile(&t3);
    let out = owslib(&base, &tok, &["delete", &fid.to_string()]);
    if !out["error"].is_null() || out["returned"] != true {
        failures.push(format!("owslib delete failed: {out}"));
    }
    after_write(
        &base,
        &auth,
        &store,
        "owslib delete",
        fid,
        None,
        &t3,
        &tile3,
        &mut failures,
    );

    // The feature's history: every write, oldest first.
    let h = call(
        "GET",
        &format!("{items}/{fid}/history"),
        Some(&auth),
        &[],
        None,
    );
    if h.status != 200 {
        failures.push(format!("history: {} {}", h.status, body_text(&h)));
    } else {
        let h = h.json();
        let kinds: Vec<&str> = h["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["kind"].as_str().unwrap_or("?"))
            .collect();
        let want = ["create", "replace", "update", "replace", "update", "delete"];
        if kinds != want {
            failures.push(format!("history kinds {kinds:?}, want {want:?}"));
        } else {
            let c = h["changes"].as_array().unwrap();
            if !c[0]["before"].is_null() || c[0]["after"]["properties"]["name"] != name {
                failures.push(format!("history of the create: {}", c[0]));
            }
            if c[2]["before"]["properties"]["free_places"] != 2
                || c[2]["after"]["properties"]["free_places"] != 7
            {
                failures.push(format!("history of the PATCH: {}", c[2]));
            }
            if !c[5]["after"].is_null() || c[5]["actor"] != "werther-kita" {
                failures.push(format!("history of the delete: {}", c[5]));
            }
        }
    }
    let h = call("GET", &format!("{items}/{fid}/history"), None, &[], None);
    if h.status != 401 {
        failures.push(format!("anonymous history: {}, want 401", h.status));
    }

    assert!(
        failures.is_empty(),
        "{} problems in the Part 4 round trip:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 3. concurrency

#[test]
fn concurrent_writers_lose_no_update() {
    if !clients_available() {
        return;
    }
    let secs: u64 = std::env::var("NORDGEO_CONCURRENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let (_dir, store) = sample_store();
    let tok = token(
        &store,
        "werther-parking",
        &["--municipality", "Werther", "--collections", "parking"],
    );
    let fids: Vec<i64> = fids_in(&store, "parking", "Werther")
        .into_iter()
        .take(4)
        .collect();
    assert_eq!(fids.len(), 4);
    let capacity = |fid: i64| {
        sql_i64(
            &store,
            &format!("SELECT capacity FROM parking WHERE fid = {fid}"),
        )
    };
    let initial: BTreeMap<i64, i64> = fids.iter().map(|&f| (f, capacity(f))).collect();
    let updates_before = sql_i64(
        &store,
        "SELECT count(*) FROM nordgeo_changes WHERE layer = 'parking' AND kind = 'update'",
    );

    let srv = serve(&store, &["--require-if-match"]);
    let base = srv.base.clone();
    let auth = bearer(&tok);
    let items = format!("{base}/collections/parking/items");

    // Without If-Match: 428, nothing written.
    let before = checksum(&store);
    let r = call(
        "PATCH",
        &format!("{items}/{}", fids[0]),
        Some(&auth),
        &[],
        Some(&json!({"properties": {"capacity": 0}})),
    );
    assert_eq!(r.status, 428, "PATCH without If-Match: {}", body_text(&r));
    let r = call(
        "DELETE",
        &format!("{items}/{}", fids[0]),
        Some(&auth),
        &[],
        None,
    );
    assert_eq!(r.status, 428, "DELETE without If-Match: {}", body_text(&r));
    assert_eq!(checksum(&store), before, "428s must not write");

    let tiles: Vec<String> = fids
        .iter()
        .map(|f| {
            let g = get(&format!("{items}/{f}"), &[]).json();
            let (lon, lat) = first_position(&g["geometry"]);
            let (x, y) = tile_of(lon, lat, 14);
            format!("{base}/collections/parking/tiles/WebMercatorQuad/14/{y}/{x}")
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(secs);
    type Tally = (BTreeMap<i64, u64>, u64, u64, Vec<String>);
    let results: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|t| {
                let (fids, tiles, items, auth) = (&fids, &tiles, &items, &auth);
                s.spawn(move || {
                    let mut ok: BTreeMap<i64, u64> = BTreeMap::new();
                    let (mut stale, mut reads) = (0u64, 0u64);
                    let mut bad: Vec<String> = Vec::new();
                    let mut i = 0usize;
                    while Instant::now() < deadline && bad.len() < 20 {
                        let k = (t + i) % 4;
                        let fid = fids[k];
                        i += 1;
                        let url = format!("{items}/{fid}");
                        let r = call("GET", &url, Some(auth), &[], None);
                        if r.status != 200 {
                            bad.push(format!("GET {fid}: {} {}", r.status, body_text(&r)));
                            continue;
                        }
                        let Some(tag) = r.header("etag").map(str::to_string) else {
                            bad.push(format!("GET {fid} without ETag"));
                            continue;
                        };
                        let cap = r.json()["properties"]["capacity"].as_i64().unwrap();
                        let p = call(
                            "PATCH",
                            &url,
                            Some(auth),
                            &[("If-Match", &tag)],
                            Some(&json!({"properties": {"capacity": cap + 1}})),
                        );
                        match p.status {
                            204 => *ok.entry(fid).or_default() += 1,
                            412 => stale += 1,
                            s => bad.push(format!("PATCH {fid}: {s} {}", body_text(&p))),
                        }
                        if i.is_multiple_of(4) {
                            let r = call(
                                "GET",
                                &format!("{items}?municipality=Werther&limit=20"),
                                None,
                                &[],
                                None,
                            );
                            if r.status != 200 {
                                bad.push(format!("GET items: {}", r.status));
                            }
                            if let Err(e) = tile_body(&tiles[k], None) {
                                bad.push(e);
                            }
                            reads += 2;
                        }
                    }
                    (ok, stale, reads, bad)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect()
    });

    let mut ok: BTreeMap<i64, u64> = BTreeMap::new();
    let (mut stale, mut reads) = (0u64, 0u64);
    let mut bad: Vec<String> = Vec::new();
    for (o, s, r, b) in results {
        for (f, n) in o {
            *ok.entry(f).or_default() += n;
        }
        stale += s;
        reads += r;
        bad.extend(b);
    }
    let total_ok: u64 = ok.values().sum();
    eprintln!(
        "{secs} s, 32 clients: {total_ok} PATCHes applied (204), {stale} stale (412), {reads} interleaved reads"
    );
    let mut failures: Vec<String> = bad.iter().take(30).cloned().collect();
    if bad.len() > 30 {
        failures.push(format!(
            "... and {} more unexpected answers",
            bad.len() - 30
        ));
    }
    for &f in &fids {
        let want = initial[&f] + *ok.get(&f).unwrap_or(&0) as i64;
        let stored = capacity(f);
        let served = get(&format!("{items}/{f}"), &[]).json()["properties"]["capacity"]
            .as_i64()
            .unwrap_or(-1);
        if stored != want || served != want {
            failures.push(format!(
                "parking {f}: capacity {stored} in the store, {served} served, want {} + {} = {want} (lost update)",
                initial[&f],
                ok.get(&f).unwrap_or(&0)
            ));
        }
    }
    if stale == 0 {
        failures.push("no 412 at all: the clients never contended".into());
    }
    if total_ok == 0 {
        failures.push("no PATCH succeeded".into());
    }
    let updates = sql_i64(
        &store,
        "SELECT count(*) FROM nordgeo_changes WHERE layer = 'parking' AND kind = 'update'",
    ) - updates_before;
    if updates != total_ok as i64 {
        failures.push(format!(
            "the change log has {updates} updates, {total_ok} PATCHes were answered 204"
        ));
    }
    let rtree = sql_i64(&store, "SELECT count(*) FROM rtree_parking_geom");
    let geoms = sql_i64(
        &store,
        "SELECT count(*) FROM parking WHERE geom IS NOT NULL",
    );
    if rtree != geoms {
        failures.push(format!(
            "R-tree has {rtree} rows, the table {geoms} geometries"
        ));
    }
    let (valid, report) = validate(&store);
    if !valid {
        failures.push(format!(
            "the store fails the GeoPackage validator:\n{report}"
        ));
    }
    let h = get(&format!("{base}/health"), &[]);
    if h.status != 200 {
        failures.push(format!("/health after the run: {}", h.status));
    }
    assert!(
        failures.is_empty(),
        "{} problems with concurrent writers:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 4. malicious input

/// One hostile request: the accepted statuses and the words (`|`-separated, lower case)
/// of which the problem detail must contain one (empty: any detail).
struct Bad {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    want: &'static [u16],
    detail: &'static str,
}

fn bad(
    what: &'static str,
    method: &'static str,
    path: impl Into<String>,
    body: impl Into<Vec<u8>>,
    want: &'static [u16],
    detail: &'static str,
) -> Bad {
    Bad {
        what,
        method,
        path: path.into(),
        headers: Vec::new(),
        body: body.into(),
        want,
        detail,
    }
}

impl Bad {
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
}

#[test]
fn malicious_input_is_refused() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let gpkg = dir.path().join("parking-export.gpkg");
    ok(nordgeo(
        &store,
        &["export", "parking", gpkg.to_str().unwrap()],
    ));
    let gpkg_bytes = std::fs::read(&gpkg).unwrap();
    let w = fids_in(&store, "parking", "Werther")[0];
    let srv = serve(&store, &[]);
    let base = srv.base.clone();
    let auth = bearer(&admin);
    let pk = "/collections/parking/items";
    let pc = "/collections/parcels/items";

    let at = get(&format!("{base}{pk}/{w}"), &[]).json();
    let (lon, lat) = first_position(&at["geometry"]);
    let point = |coords: Value| {
        json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": coords},
               "properties": {"name": "Test", "municipality": "Werther"}})
        .to_string()
    };
    let with_props = |props: Value| {
        json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
               "properties": props})
        .to_string()
    };
    let polygon = |ring: Value| {
        json!({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
               "properties": {"municipality": "Werther"}})
        .to_string()
    };
    let (a, b) = (lon, lat);
    let d = 0.0005;
    let nested = |n: usize| {
        format!(
            r#"{{"type":"Feature","geometry":null,"properties":{{"name":{}1{}}}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    let five_mb = format!(
        r#"{{"type":"Feature","geometry":null,"properties":{{"name":"{}"}}}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let epsg = |c: &str| format!("<http://www.opengis.net/def/crs/EPSG/0/{c}>");
    const UNPROCESSABLE: &[u16] = &[422];
    const BAD: &[u16] = &[400];
    const MISSING: &[u16] = &[404];
    const CLIENT: &[u16] = &[400, 404, 422];
    let cases = vec![
        // SQL-looking names and values
        bad(
            "SQL in a property name",
            "POST",
            pk,
            with_props(json!({"name; DROP TABLE x": 1, "municipality": "Werther"})),
            UNPROCESSABLE,
            "name; drop table x",
        ),
        bad(
            "quote in a property name",
            "POST",
            pk,
            with_props(json!({"capacity\" = 0; --": 1, "municipality": "Werther"})),
            UNPROCESSABLE,
            "unknown property",
        ),
        bad(
            "SQL in a PATCH property name",
            "PATCH",
            format!("{pk}/{w}"),
            json!({"properties": {"fid = fid OR 1=1 --": 1}}).to_string(),
            UNPROCESSABLE,
            "fid = fid or 1=1",
        ),
        bad(
            "SQL as an integer value",
            "PATCH",
            format!("{pk}/{w}"),
            json!({"properties": {"capacity": "1; DROP TABLE parking"}}).to_string(),
            UNPROCESSABLE,
            "capacity",
        ),
        bad(
            "text for a boolean",
            "PATCH",
            format!("{pk}/{w}"),
            json!({"properties": {"fee": "yes"}}).to_string(),
            UNPROCESSABLE,
            "fee",
        ),
        bad(
            "an object as a text value",
            "PATCH",
            format!("{pk}/{w}"),
            json!({"properties": {"name": {"$ne": ""}}}).to_string(),
            UNPROCESSABLE,
            "name",
        ),
        // sizes and nesting
        bad("5 MB body", "POST", pk, five_mb, &[413], ""),
        bad(
            "JSON nested 10,000 levels",
            "POST",
            pk,
            nested(10_000),
            BAD,
            "json",
        ),
        bad(
            "array nested 10,000 levels",
            "POST",
            pk,
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            BAD,
            "json",
        ),
        bad(
            "truncated JSON",
            "POST",
            pk,
            r#"{"type":"Feature","#,
            BAD,
            "json",
        ),
        bad(
            "XML sent as JSON",
            "PATCH",
            format!("{pk}/{w}"),
            "<feature/>",
            BAD,
            "json",
        ),
        // invalid GeoJSON
        bad(
            "point without coordinates",
            "POST",
            pk,
            json!({"type": "Feature", "geometry": {"type": "Point"},
                   "properties": {"municipality": "Werther"}})
            .to_string(),
            UNPROCESSABLE,
            "coordinates|geometry",
        ),
        bad(
            "unknown geometry type",
            "POST",
            pk,
            json!({"type": "Feature", "geometry": {"type": "Pointy", "coordinates": [a, b]},
                   "properties": {"municipality": "Werther"}})
            .to_string(),
            UNPROCESSABLE,
            "pointy|geometry|type",
        ),
        bad(
            "a FeatureCollection",
            "POST",
            pk,
            json!({"type": "FeatureCollection", "features": []}).to_string(),
            UNPROCESSABLE,
            "feature",
        ),
        bad(
            "properties as a string",
            "POST",
            pk,
            json!({"type": "Feature", "geometry": null, "properties": "DROP TABLE parking"})
                .to_string(),
            UNPROCESSABLE,
            "properties",
        ),
        bad(
            "ring not closed",
            "POST",
            pc,
            polygon(json!([[a, b], [a + d, b], [a + d, b + d], [a, b + d]])),
            UNPROCESSABLE,
            "ring|closed|geometry",
        ),
        bad(
            "self-intersecting (bow-tie) polygon",
            "POST",
            pc,
            polygon(json!([
                [a, b],
                [a + d, b + d],
                [a + d, b],
                [a, b + d],
                [a, b]
            ])),
            UNPROCESSABLE,
            "self|intersect|invalid|valid",
        ),
        bad(
            "LineString into the POINT layer",
            "POST",
            pk,
            json!({"type": "Feature",
                   "geometry": {"type": "LineString", "coordinates": [[a, b], [a + d, b + d]]},
                   "properties": {"municipality": "Werther"}})
            .to_string(),
            UNPROCESSABLE,
            "point|linestring|geometry",
        ),
        // impossible coordinates
        bad(
            "coordinates 1e308",
            "POST",
            pk,
            point(json!([1e308, b])),
            UNPROCESSABLE,
            "coordinate|geometry|range|outside|area|plausib",
        ),
        bad(
            "coordinates 1e308 in EPSG:25832",
            "POST",
            pk,
            point(json!([1e308, 1e308])),
            UNPROCESSABLE,
            "coordinate|geometry|range|outside|area|plausib",
        )
        .header("Content-Crs", epsg("25832")),
        bad(
            "\"NaN\" as a coordinate",
            "POST",
            pk,
            point(json!(["NaN", b])),
            UNPROCESSABLE,
            "coordinate|geometry|number",
        ),
        bad(
            "longitude 200",
            "POST",
            pk,
            point(json!([200.0, b])),
            UNPROCESSABLE,
            "coordinate|geometry|range|outside|area|plausib",
        ),
        bad(
            "degrees sent as EPSG:25832 metres",
            "POST",
            pk,
            point(json!([a, b])),
            UNPROCESSABLE,
            "coordinate|geometry|range|outside|area|plausib",
        )
        .header("Content-Crs", epsg("25832")),
        bad(
            "unsupported Content-Crs",
            "POST",
            pk,
            point(json!([a, b])),
            BAD,
            "crs",
        )
        .header("Content-Crs", epsg("99999")),
        bad(
            "Content-Crs that is not a CRS",
            "POST",
            pk,
            point(json!([a, b])),
            BAD,
            "crs",
        )
        .header("Content-Crs", "<file:///etc/passwd>"),
        bad(
            "wrong Content-Type",
            "POST",
            pk,
            point(json!([a, b])),
            &[415],
            "content-type",
        )
        .header("Content-Type", "text/xml"),
        bad(
            "form Content-Type",
            "PATCH",
            format!("{pk}/{w}"),
            "capacity=1",
            &[415],
            "content-type",
        )
        .header("Content-Type", "application/x-www-form-urlencoded"),
        // path traversal in every path parameter
        bad(
            "traversal in the collection",
            "GET",
            "/collections/..%2F..%2Fetc%2Fpasswd/items",
            "",
            MISSING,
            "",
        ),
        bad(
            "traversal in the collection (POST)",
            "POST",
            "/collections/..%2F..%2Fetc%2Fpasswd/items",
            point(json!([a, b])),
            MISSING,
            "",
        ),
        bad(
            "traversal in the collection (import)",
            "POST",
            "/collections/..%2F..%2Fetc%2Fpasswd/import?mode=create",
            gpkg_bytes.clone(),
            CLIENT,
            "layer name|collection",
        ),
        bad(
            "SQL in the collection (import)",
            "POST",
            format!(
                "/collections/{}/import?mode=create",
                encode("x\"; DROP TABLE parking; --")
            ),
            gpkg_bytes.clone(),
            CLIENT,
            "layer name|collection",
        ),
        bad(
            "traversal in the import layer",
            "POST",
            "/collections/parking/import?mode=append&layer=..%2F..%2Fetc%2Fpasswd",
            gpkg_bytes.clone(),
            CLIENT,
            "layer",
        ),
        bad(
            "traversal in the fid",
            "GET",
            format!("{pk}/..%2F1"),
            "",
            MISSING,
            "",
        ),
        bad(
            "traversal in the fid (PATCH)",
            "PATCH",
            format!("{pk}/..%2F1"),
            json!({"properties": {"capacity": 1}}).to_string(),
            MISSING,
            "",
        ),
        bad(
            "SQL in the fid",
            "GET",
            format!("{pk}/1%20OR%201%3D1"),
            "",
            MISSING,
            "",
        ),
        bad(
            "SQL in the fid (DELETE)",
            "DELETE",
            format!("{pk}/1%20OR%201%3D1"),
            "",
            MISSING,
            "",
        ),
        bad(
            "SQL in the fid (PUT)",
            "PUT",
            format!("{pk}/1%3B%20DROP%20TABLE%20parking"),
            point(json!([a, b])),
            MISSING,
            "",
        ),
        bad(
            "traversal in the history fid",
            "GET",
            format!("{pk}/..%2F1/history"),
            "",
            MISSING,
            "",
        ),
        bad(
            "traversal in the rollback collection",
            "POST",
            "/collections/..%2Fparking/rollback?to=1",
            "",
            MISSING,
            "",
        ),
        bad(
            "SQL in the rollback target",
            "POST",
            "/collections/parking/rollback?to=1%3BDROP%20TABLE%20parking",
            "",
            BAD,
            "to",
        ),
        bad(
            "traversal in the font stack",
            "GET",
            "/fonts/..%2F..%2Fetc/0-255.pbf",
            "",
            MISSING,
            "",
        ),
        bad(
            "traversal in the glyph range",
            "GET",
            "/fonts/DejaVu%20Sans%20Book/..%2F..%2F..%2Fetc%2Fpasswd",
            "",
            &[400, 404],
            "",
        ),
        bad(
            "traversal in the map file",
            "GET",
            "/map/..%2FCargo.toml",
            "",
            MISSING,
            "",
        ),
        bad(
            "traversal in the style",
            "GET",
            "/styles/..%2Fportal",
            "",
            MISSING,
            "",
        ),
        bad(
            "traversal in the asset",
            "GET",
            "/assets/maplibre-gl/..%2F..%2F..%2FCargo.toml",
            "",
            MISSING,
            "",
        ),
        bad(
            "traversal in the tile matrix set",
            "GET",
            "/tileMatrixSets/..%2F..%2Fetc%2Fpasswd",
            "",
            MISSING,
            "",
        ),
        bad(
            "traversal in the tile matrix set of a tile",
            "GET",
            "/collections/parking/tiles/..%2FWebMercatorQuad/14/1/1",
            "",
            MISSING,
            "",
        ),
        bad(
            "traversal in a tile row",
            "GET",
            "/collections/parking/tiles/WebMercatorQuad/14/..%2F1/1",
            "",
            &[400, 404],
            "",
        ),
    ];

    let before = checksum(&store);
    let mut failures: Vec<String> = Vec::new();
    for c in &cases {
        let mut h: Vec<(&str, &str)> = vec![("Authorization", auth.as_str())];
        if !c.body.is_empty() && !c.headers.iter().any(|(k, _)| *k == "Content-Type") {
            h.push(("Content-Type", "application/geo+json"));
        }
        h.extend(c.headers.iter().map(|(k, v)| (*k, v.as_str())));
        let r = send(c.method, &format!("{base}{}", c.path), &h, &c.body);
        let label = format!("{} ({} {})", c.what, c.method, c.path);
        if !c.want.contains(&r.status) {
            failures.push(format!(
                "{label}: status {}, want {:?}: {}",
                r.status,
                c.want,
                body_text(&r)
            ));
            continue;
        }
        let detail = problem_detail(&r).unwrap_or_default();
        if detail.is_empty() {
            failures.push(format!(
                "{label}: {} without a problem detail: {}",
                r.status,
                body_text(&r)
            ));
        } else if !c.detail.is_empty()
            && !c
                .detail
                .split('|')
                .any(|w| detail.to_lowercase().contains(w))
        {
            failures.push(format!(
                "{label}: detail {detail:?} mentions none of {:?}",
                c.detail
            ));
        }
    }

    // Header injection: raw requests with control bytes in header values. Each is an
    // otherwise valid PATCH with the admin token and the current ETag, so accepting it
    // would write.
    let host = base.strip_prefix("http://").unwrap().to_string();
    let tag = get(&format!("{base}{pk}/{w}"), &[])
        .header("etag")
        .unwrap()
        .to_string();
    let patch = br#"{"properties":{"capacity":1}}"#;
    let injections: Vec<(&str, Vec<u8>)> = vec![
        (
            "bare CR in If-Match",
            [tag.as_bytes(), b"\rX-Injected: 1"].concat(),
        ),
        (
            "control byte 0x01 in If-Match",
            [tag.as_bytes(), b"\x01"].concat(),
        ),
        ("byte 0xFF in If-Match", [tag.as_bytes(), b"\xff"].concat()),
        ("NUL in If-Match", [tag.as_bytes(), b"\x00"].concat()),
    ];
    for (what, value) in &injections {
        let mut head = format!(
            "PATCH {pk}/{w} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: application/merge-patch+json\r\nContent-Length: {}\r\nIf-Match: ",
            patch.len()
        )
        .into_bytes();
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n\r\n");
        match send_raw(&host, &head, patch) {
            Some(r) if (400..500).contains(&r.status) => {}
            Some(r) => failures.push(format!(
                "header injection ({what}): status {}, want 4xx: {}",
                r.status,
                body_text(&r)
            )),
            None => failures.push(format!(
                "header injection ({what}): the connection closed without an answer"
            )),
        }
        if get(&format!("{base}/health"), &[]).status != 200 {
            failures.push(format!("/health fails after {what}"));
        }
    }
    let head = format!(
        "GET {pk}?limit=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: {auth}\x01\r\n\r\n"
    )
    .into_bytes();
    match send_raw(&host, &head, b"") {
        Some(r) if (400..500).contains(&r.status) => {}
        other => failures.push(format!(
            "control byte in Authorization: {:?}, want 4xx",
            other.map(|r| r.status)
        )),
    }

    let after = checksum(&store);
    if after != before {
        failures.push(format!(
            "the refused requests changed the store: {before} -> {after}"
        ));
    }
    if get(&format!("{base}/health"), &[]).status != 200 {
        failures.push("/health does not answer 200 after the hostile requests".into());
    }

    // Last: SQL-looking *values* are just text, stored and served verbatim.
    let evil = "x'); DROP TABLE parking; --";
    let r = call(
        "POST",
        &format!("{base}{pk}"),
        Some(&auth),
        &[],
        Some(
            &json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [a, b]},
                     "properties": {"name": evil, "municipality": "Werther"}}),
        ),
    );
    if r.status != 201 {
        failures.push(format!(
            "POST of an SQL-looking name: {} {}",
            r.status,
            body_text(&r)
        ));
    } else {
        let loc = r.header("location").unwrap_or_default().to_string();
        let fid: i64 = loc.rsplit('/').next().unwrap_or("").parse().unwrap_or(-1);
        let g = get(&loc, &[]);
        if g.status != 200 || g.json()["properties"]["name"] != evil {
            failures.push(format!(
                "the SQL-looking name is not served verbatim: {}",
                body_text(&g)
            ));
        }
        let stored: Option<String> = ro(&store)
            .query_row("SELECT name FROM parking WHERE fid = ?1", [fid], |r| {
                r.get(0)
            })
            .ok();
        if stored.as_deref() != Some(evil) {
            failures.push(format!(
                "the store holds {stored:?} for feature {fid}, want {evil:?}"
            ));
        }
        let f = get(
            &format!(
                "{base}{pk}?filter={}",
                encode(&format!("name = '{}'", evil.replace('\'', "''")))
            ),
            &[],
        );
        if f.status != 200 || f.json()["numberMatched"] != 1 {
            failures.push(format!(
                "filtering for the SQL-looking name: {}",
                body_text(&f)
            ));
        }
    }
    let evil2 = "Robert'); DROP TABLE childcare;--";
    let r = call(
        "PATCH",
        &format!("{base}{pk}/{w}"),
        Some(&auth),
        &[],
        Some(&json!({"properties": {"name": evil2}})),
    );
    if r.status != 204 {
        failures.push(format!(
            "PATCH of an SQL-looking name: {} {}",
            r.status,
            body_text(&r)
        ));
    } else if get(&format!("{base}{pk}/{w}"), &[]).json()["properties"]["name"] != evil2 {
        failures.push("the patched SQL-looking name is not served verbatim".into());
    }
    for table in ["parking", "childcare", "parcels"] {
        let n = sql_i64(
            &store,
            &format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
            ),
        );
        if n != 1 {
            failures.push(format!("table {table} is gone"));
        }
    }
    if sql_i64(&store, "SELECT count(*) FROM parking") != 51 {
        failures.push("parking should hold 50 + 1 features".into());
    }
    if get(&format!("{base}/health"), &[]).status != 200 {
        failures.push("/health does not answer 200 at the end".into());
    }
    let n = cases.len() + injections.len() + 1;
    assert!(n >= 22, "only {n} hostile cases");
    assert!(
        failures.is_empty(),
        "{} of {n}+ hostile requests were not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 5. rollback

/// The latest change of a layer in `nordgeo history --json`, if any.
fn latest_change(store: &Path, layer: &str) -> Option<i64> {
    let out = stdout_of(nordgeo(store, &["history", layer, "--json"]));
    let v: Value = serde_json::from_str(&out).expect("history --json is JSON");
    v.as_array()
        .expect("a list of changes")
        .iter()
        .filter(|c| c["layer"] == layer)
        .filter_map(|c| c["id"].as_i64())
        .max()
}

/// PATCH, PUT (new geometry), DELETE and POST on parking; returns the new fid.
fn edit_parking(base: &str, auth: &str, patched: i64, put: i64, deleted: i64) -> i64 {
    let items = format!("{base}/collections/parking/items");
    let cur = get(&format!("{items}/{patched}"), &[]).json();
    let cap = cur["properties"]["capacity"].as_i64().unwrap();
    let r = call(
        "PATCH",
        &format!("{items}/{patched}"),
        Some(auth),
        &[],
        Some(&json!({"properties": {"capacity": cap + 5, "name": "Umbenannt"}})),
    );
    assert_eq!(r.status, 204, "PATCH: {}", body_text(&r));
    let cur = get(&format!("{items}/{put}"), &[]).json();
    let (lon, lat) = first_position(&cur["geometry"]);
    let r = call(
        "PUT",
        &format!("{items}/{put}"),
        Some(auth),
        &[],
        Some(&json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon + 0.01, lat - 0.005]},
            "properties": {"name": "Verlegt", "capacity": 3, "municipality": "Werther"}})),
    );
    assert_eq!(r.status, 204, "PUT: {}", body_text(&r));
    let r = call(
        "DELETE",
        &format!("{items}/{deleted}"),
        Some(auth),
        &[],
        None,
    );
    assert_eq!(r.status, 204, "DELETE: {}", body_text(&r));
    let r = call(
        "POST",
        &items,
        Some(auth),
        &[],
        Some(&json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon - 0.01, lat + 0.005]},
            "properties": {"name": "Neu", "capacity": 12, "fee": true, "municipality": "Werther"}})),
    );
    assert_eq!(r.status, 201, "POST: {}", body_text(&r));
    r.header("location")
        .and_then(|l| l.rsplit('/').next())
        .and_then(|f| f.parse().ok())
        .expect("Location of the new feature")
}

#[test]
fn rollback_restores_exact_bytes() {
    let (_dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let werther = token(
        &store,
        "werther",
        &["--municipality", "Werther", "--collections", "parking"],
    );
    let latest = latest_change(&store, "parking");
    let w = fids_in(&store, "parking", "Werther");
    let e = fids_in(&store, "parking", "Ellrich");
    let (patched, put, deleted, moved) = (w[0], w[1], w[2], e[0]);
    let srv = serve(&store, &[]);
    let base = srv.base.clone();
    let items = format!("{base}/collections/parking/items");
    let (a_admin, a_werther) = (bearer(&admin), bearer(&werther));
    let mut failures: Vec<String> = Vec::new();

    // The change to return to: the latest one, or a first harmless edit.
    let to = match latest {
        Some(id) => id,
        None => {
            let cur = get(&format!("{items}/{patched}"), &[]).json();
            let r = call(
                "PATCH",
                &format!("{items}/{patched}"),
                Some(&a_admin),
                &[],
                Some(&json!({"properties": {"capacity": cur["properties"]["capacity"]}})),
            );
            assert_eq!(r.status, 204);
            r.header("x-nordgeo-change").unwrap().parse().unwrap()
        }
    };
    let chosen = format!(
        "SELECT * FROM parking WHERE fid IN ({patched}, {put}, {deleted}, {moved}) ORDER BY fid"
    );
    let whole = "SELECT * FROM parking ORDER BY fid";
    let rows_before = rows(&store, &chosen);
    let table_before = rows(&store, whole);
    let served_before: Vec<Value> = [patched, put, deleted, moved]
        .iter()
        .map(|f| {
            let mut v = get(&format!("{items}/{f}"), &[]).json();
            v.as_object_mut().unwrap().remove("links");
            v
        })
        .collect();

    let new_fid = edit_parking(&base, &a_werther, patched, put, deleted);
    let cur = get(&format!("{items}/{moved}"), &[]).json();
    let (lon, lat) = first_position(&cur["geometry"]);
    let r = call(
        "PATCH",
        &format!("{items}/{moved}"),
        Some(&a_admin),
        &[],
        Some(&json!({"geometry": {"type": "Point", "coordinates": [lon + 0.002, lat]}})),
    );
    assert_eq!(
        r.status,
        204,
        "admin PATCH of the geometry: {}",
        body_text(&r)
    );
    let last_edit: i64 = r.header("x-nordgeo-change").unwrap().parse().unwrap();
    let rows_edited = rows(&store, &chosen);
    let table_edited = rows(&store, whole);
    assert_ne!(rows_edited, rows_before, "the edits changed the rows");

    // History: before and after of each edit.
    let hist = |fid: i64| -> Vec<Value> {
        let r = call(
            "GET",
            &format!("{items}/{fid}/history"),
            Some(&a_werther),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "history of {fid}: {}", body_text(&r));
        let v = r.json();
        assert!(
            v["feature"] == fid && v["collection"] == "parking",
            "history of {fid} names {} / {}",
            v["collection"],
            v["feature"]
        );
        v["changes"].as_array().unwrap().clone()
    };
    // History geometries are full precision, served ones rounded: compare within 1e-7°.
    let near = |a: &Value, b: &Value| {
        let (p, q) = (first_position(a), first_position(b));
        (p.0 - q.0).abs() < 1e-7 && (p.1 - q.1).abs() < 1e-7
    };
    let old_cap = &served_before[0]["properties"]["capacity"];
    let c = hist(patched);
    match c.last() {
        Some(l)
            if l["kind"] == "update"
                && l["actor"] == "werther"
                && &l["before"]["properties"]["capacity"] == old_cap
                && l["after"]["properties"]["capacity"] == old_cap.as_i64().unwrap() + 5
                && l["after"]["properties"]["name"] == "Umbenannt"
                && l["change"].as_i64().is_some()
                && l["at"].as_str().is_some() => {}
        other => failures.push(format!("history of the PATCH: {other:?}")),
    }
    let c = hist(put);
    match c.last() {
        Some(l)
            if l["kind"] == "replace"
                && near(&l["before"]["geometry"], &served_before[1]["geometry"])
                && l["after"]["properties"]["name"] == "Verlegt"
                && l["after"]["properties"]["fee"].is_null() => {}
        other => failures.push(format!("history of the PUT: {other:?}")),
    }
    let c = hist(deleted);
    match c.last() {
        Some(l)
            if l["kind"] == "delete"
                && l["after"].is_null()
                && l["before"]["properties"] == served_before[2]["properties"] => {}
        other => failures.push(format!("history of the DELETE: {other:?}")),
    }
    let c = hist(new_fid);
    match c.first() {
        Some(l)
            if l["kind"] == "create"
                && l["before"].is_null()
                && l["after"]["properties"]["name"] == "Neu" => {}
        other => failures.push(format!("history of the POST: {other:?}")),
    }

    // Only admins roll back; unknown changes are 404; neither writes.
    let sum = checksum(&store);
    let r = call(
        "POST",
        &format!("{base}/collections/parking/rollback?to={to}"),
        Some(&a_werther),
        &[],
        None,
    );
    if r.status != 403 {
        failures.push(format!("rollback by a maintainer: {}, want 403", r.status));
    }
    let r = call(
        "POST",
        &format!("{base}/collections/parking/rollback?to=999999"),
        Some(&a_admin),
        &[],
        None,
    );
    if r.status != 404 {
        failures.push(format!(
            "rollback to an unknown change: {}, want 404",
            r.status
        ));
    }
    if checksum(&store) != sum {
        failures.push("a refused rollback changed the store".into());
    }

    let r = call(
        "POST",
        &format!("{base}/collections/parking/rollback?to={to}"),
        Some(&a_admin),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "rollback: {}", body_text(&r));
    let v = r.json();
    if v["restores"] != to || v["change"].as_i64().is_none_or(|c| c <= last_edit) {
        failures.push(format!(
            "rollback answered {v}, want restores {to} and a new change id"
        ));
    }
    let rows_after = rows(&store, &chosen);
    if rows_after != rows_before {
        failures.push(format!(
            "the rolled-back rows differ from the recorded ones:\nbefore {rows_before:?}\nafter  {rows_after:?}"
        ));
    }
    if rows(&store, whole) != table_before {
        failures.push("the parking table is not byte-identical to before the edits".into());
    }
    if sql_i64(
        &store,
        &format!("SELECT count(*) FROM parking WHERE fid = {new_fid}"),
    ) != 0
    {
        failures.push(format!("the POSTed feature {new_fid} is still stored"));
    }
    let r = get(&format!("{items}/{new_fid}"), &[]);
    if r.status != 404 {
        failures.push(format!(
            "the POSTed feature {new_fid} is still served: {}",
            r.status
        ));
    }
    for (i, f) in [patched, put, deleted, moved].iter().enumerate() {
        let mut v = get(&format!("{items}/{f}"), &[]).json();
        v.as_object_mut().unwrap().remove("links");
        if v != served_before[i] {
            failures.push(format!(
                "feature {f} is served as {v}, before the edits it was {}",
                served_before[i]
            ));
        }
    }
    let rtree = sql_i64(&store, "SELECT count(*) FROM rtree_parking_geom");
    let geoms = sql_i64(
        &store,
        "SELECT count(*) FROM parking WHERE geom IS NOT NULL",
    );
    if rtree != geoms {
        failures.push(format!(
            "R-tree has {rtree} rows, the table {geoms} geometries"
        ));
    }
    let c = hist(patched);
    match c.last() {
        Some(l) if l["kind"] == "rollback" && &l["after"]["properties"]["capacity"] == old_cap => {}
        other => failures.push(format!("history after the rollback: {other:?}")),
    }

    // A rollback is a change too: rolling back to the last edit brings the edits back.
    let r = call(
        "POST",
        &format!("{base}/collections/parking/rollback?to={last_edit}"),
        Some(&a_admin),
        &[],
        None,
    );
    if r.status != 200 {
        failures.push(format!(
            "rollback of the rollback: {} {}",
            r.status,
            body_text(&r)
        ));
    } else if rows(&store, whole) != table_edited {
        failures.push("rolling back to the last edit does not restore the edited table".into());
    }
    drop(srv);

    // The CLI path on a second store.
    let (_dir2, store2) = sample_store();
    let admin2 = token(&store2, "admin", &["--role", "admin"]);
    let to2 = latest_change(&store2, "parking").expect("the import is a change of parking");
    let srv2 = serve(&store2, &[]);
    // Read once the server runs: on the PostGIS run that is the table it serves.
    let table2 = rows(&store2, whole);
    let w2 = fids_in(&store2, "parking", "Werther");
    let new2 = edit_parking(&srv2.base, &bearer(&admin2), w2[0], w2[1], w2[2]);
    drop(srv2);
    assert_ne!(rows(&store2, whole), table2);
    let o = nordgeo(&store2, &["rollback", "parking", "--to", &to2.to_string()]);
    if !o.status.success() {
        failures.push(format!("nordgeo rollback failed: {}", text(&o)));
    } else {
        if rows(&store2, whole) != table2 {
            failures.push(
                "after `nordgeo rollback` the parking table differs from before the edits".into(),
            );
        }
        if sql_i64(
            &store2,
            &format!("SELECT count(*) FROM parking WHERE fid = {new2}"),
        ) != 0
        {
            failures.push("`nordgeo rollback` left the POSTed feature".into());
        }
        let kinds = stdout_of(nordgeo(&store2, &["history", "parking", "--json"]));
        if !kinds.contains("\"rollback\"") {
            failures.push(format!(
                "nordgeo history does not list the rollback: {kinds}"
            ));
        }
    }

    assert!(
        failures.is_empty(),
        "{} rollback problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 6. import over HTTP

/// Opens a GeoPackage read-write outside nordgeo: the R-tree triggers call the
/// GeoPackage SQL functions, which plain SQLite lacks. Only UPDATEs of attribute
/// columns and DELETEs are made, so these stand-ins are never called with real work.
fn open_gpkg_rw(path: &Path) -> rusqlite::Connection {
    use rusqlite::functions::FunctionFlags;
    let c = rusqlite::Connection::open(path).unwrap();
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    c.create_scalar_function("ST_IsEmpty", 1, flags, |_| Ok(0i64))
        .unwrap();
    for f in ["ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"] {
        c.create_scalar_function(f, 1, flags, |_| {
            Err::<f64, _>(rusqlite::Error::UserFunctionError(
                "geometry functions are not expected here".into(),
            ))
        })
        .unwrap();
    }
    c
}

#[test]
fn http_import_dry_run_and_replace() {
    let (dir, store) = sample_store();
    let admin = token(&store, "admin", &["--role", "admin"]);
    let werther = token(
        &store,
        "werther",
        &["--municipality", "Werther", "--collections", "parking"],
    );
    let all = dir.path().join("parking-all.gpkg");
    ok(nordgeo(
        &store,
        &["export", "parking", all.to_str().unwrap()],
    ));
    let mine = dir.path().join("parking-werther.gpkg");
    std::fs::copy(&all, &mine).unwrap();

    // Werther's features only, one capacity raised by 100.
    let target = fids_in(&store, "parking", "Werther")[0];
    let (name, cap): (String, i64) = ro(&store)
        .query_row(
            "SELECT name, capacity FROM parking WHERE fid = ?1",
            [target],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let werther_count = fids_in(&store, "parking", "Werther").len() as i64;
    {
        let c = open_gpkg_rw(&mine);
        c.execute("DELETE FROM parking WHERE municipality <> 'Werther'", [])
            .unwrap();
        let n = c
            .execute(
                "UPDATE parking SET capacity = capacity + 100 WHERE name = ?1",
                [&name],
            )
            .unwrap();
        assert_eq!(n, 1, "exactly one parking named {name:?}");
    }
    let body = std::fs::read(&mine).unwrap();
    let body_all = std::fs::read(&all).unwrap();
    assert!(body.len() < 1024 * 1024 && body_all.len() < 1024 * 1024);

    let srv = serve(&store, &["--max-upload-mb", "1"]);
    let base = srv.base.clone();
    let import = format!("{base}/collections/parking/import");
    let (a_admin, a_werther) = (bearer(&admin), bearer(&werther));
    let gpkg_ct = ("Content-Type", "application/geopackage+sqlite3");
    let mut failures: Vec<String> = Vec::new();
    let others = "SELECT * FROM parking WHERE municipality <> 'Werther' ORDER BY fid";
    let others_before = rows(&store, others);
    let served_cap = |name: &str| -> Vec<i64> {
        let v = get(
            &format!("{base}/collections/parking/items?name={}", encode(name)),
            &[],
        )
        .json();
        v["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["properties"]["capacity"].as_i64().unwrap_or(-1))
            .collect()
    };

    let before = checksum(&store);
    // dry run
    let r = send(
        "POST",
        &format!("{import}?mode=replace&dry-run=true"),
        &[("Authorization", a_werther.as_str()), gpkg_ct],
        &body,
    );
    if r.status != 200 {
        failures.push(format!("dry run: {} {}", r.status, body_text(&r)));
    } else {
        let v = r.json();
        let l = &v["layers"][0];
        if v["committed"] != false || v["dry_run"] != true {
            failures.push(format!(
                "dry-run report: committed {} dry_run {}",
                v["committed"], v["dry_run"]
            ));
        }
        if l["features"] != werther_count || !l["rejected"].as_array().is_some_and(|a| a.is_empty())
        {
            failures.push(format!("dry-run report: {l}"));
        }
    }
    if checksum(&store) != before {
        failures.push("the dry run changed the store".into());
    }
    if served_cap(&name) != vec![cap] {
        failures.push(format!(
            "after the dry run {name:?} is served with {:?}",
            served_cap(&name)
        ));
    }

    // refused imports
    // (what, URL, headers, body, expected status)
    type Refused<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
    let refused: Vec<Refused> = vec![
        (
            "anonymous",
            format!("{import}?mode=replace"),
            vec![gpkg_ct],
            body.clone(),
            401,
        ),
        (
            "not a GeoPackage",
            format!("{import}?mode=replace"),
            vec![("Authorization", a_werther.as_str()), gpkg_ct],
            b"name,capacity\nParkplatz,12\n".repeat(20),
            400,
        ),
        (
            "over --max-upload-mb 1",
            format!("{import}?mode=replace"),
            vec![("Authorization", a_werther.as_str()), gpkg_ct],
            [&body[..], &vec![0u8; 1024 * 1024 + 1][..]].concat(),
            413,
        ),
        (
            "another municipality's features as Werther's maintainer",
            format!("{import}?mode=replace"),
            vec![("Authorization", a_werther.as_str()), gpkg_ct],
            body_all.clone(),
            422,
        ),
        (
            "a new collection as a maintainer",
            format!("{base}/collections/parking2/import?mode=create"),
            vec![("Authorization", a_werther.as_str()), gpkg_ct],
            body.clone(),
            403,
        ),
        (
            "an unknown mode",
            format!("{import}?mode=merge"),
            vec![("Authorization", a_admin.as_str()), gpkg_ct],
            body.clone(),
            400,
        ),
    ];
    for (what, url, h, b, want) in &refused {
        let r = send("POST", url, h, b);
        if r.status != *want {
            failures.push(format!(
                "import {what}: {}, want {want}: {}",
                r.status,
                body_text(&r)
            ));
        } else if *want == 422 {
            let v = r.json();
            let rejected = v["layers"][0]["rejected"].as_array().map_or(0, |a| a.len());
            let reasons = v.to_string().to_lowercase();
            if rejected == 0 || !reasons.contains("municipality") {
                failures.push(format!(
                    "import {what}: the 422 report does not say why: {}",
                    body_text(&r)
                ));
            }
        }
    }
    if checksum(&store) != before {
        failures.push("a refused import changed the store".into());
    }

    // the real import
    let r = send(
        "POST",
        &format!("{import}?mode=replace"),
        &[("Authorization", a_werther.as_str()), gpkg_ct],
        &body,
    );
    if r.status != 200 {
        failures.push(format!("import: {} {}", r.status, body_text(&r)));
    } else {
        let v = r.json();
        if v["committed"] != true || v["layers"][0]["change_id"].as_i64().is_none() {
            failures.push(format!("import report: {v}"));
        }
        if served_cap(&name) != vec![cap + 100] {
            failures.push(format!(
                "after the import {name:?} is served with {:?}, want [{}]",
                served_cap(&name),
                cap + 100
            ));
        }
        let stored = sql_i64(
            &store,
            &format!(
                "SELECT capacity FROM parking WHERE name = '{}'",
                name.replace('\'', "''")
            ),
        );
        if stored != cap + 100 {
            failures.push(format!("the store holds capacity {stored} for {name:?}"));
        }
        let n = get(
            &format!("{base}/collections/parking/items?municipality=Werther&limit=1"),
            &[],
        )
        .json()["numberMatched"]
            .as_i64();
        if n != Some(werther_count) {
            failures.push(format!(
                "Werther has {n:?} parking features, want {werther_count}"
            ));
        }
        if rows(&store, others) != others_before {
            failures.push("the import changed other municipalities' features".into());
        }
        let rtree = sql_i64(&store, "SELECT count(*) FROM rtree_parking_geom");
        let geoms = sql_i64(
            &store,
            "SELECT count(*) FROM parking WHERE geom IS NOT NULL",
        );
        if rtree != geoms {
            failures.push(format!(
                "R-tree has {rtree} rows, the table {geoms} geometries"
            ));
        }
        let log = sql_i64(
            &store,
            "SELECT count(*) FROM nordgeo_changes WHERE layer = 'parking' AND kind = 'import' AND actor = 'werther'",
        );
        if log != 1 {
            failures.push(format!(
                "the change log has {log} imports by werther, want 1"
            ));
        }
    }

    assert!(
        failures.is_empty(),
        "{} problems with imports over HTTP:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
