//! Bad requests against the sample store: each gets the right 4xx status and an RFC 9457
//! `application/problem+json` body whose `detail` names what was wrong; nothing is
//! answered with a 5xx, and afterwards the server still answers and the store is unchanged.
//!
//! Request targets are sent exactly as written here (the helpers write the request line
//! raw), so percent-escapes such as `%FF%FE` (not UTF-8) reach the server unchanged.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// One bad request: the raw path and query, the accepted statuses, and what the detail
/// must mention: one of the `|`-separated lower-case words (checked for 400 and 404).
/// 414 (from the HTTP layer) and 200 are accepted only where `statuses` lists them.
struct Case {
    target: String,
    statuses: &'static [u16],
    detail: &'static str,
}

fn case(target: impl Into<String>, statuses: &'static [u16], detail: &'static str) -> Case {
    Case {
        target: target.into(),
        statuses,
        detail,
    }
}

const BAD: &[u16] = &[400];
const MISSING: &[u16] = &[404];
const TOO_LONG: &[u16] = &[400, 414];
const DEEP: &[u16] = &[200, 400];

fn cases() -> Vec<Case> {
    let pk = "/collections/parking/items";
    let pc = "/collections/parcels/items";
    let f = |cql: &str| format!("{pk}?filter={}", encode(cql));
    let fj = |json: &str| format!("{pk}?filter-lang=cql2-json&filter={}", encode(json));
    let epsg = |code: &str| encode(&format!("http://www.opengis.net/def/crs/EPSG/0/{code}"));
    // TRUE inside n parentheses (sent raw: parentheses are legal in a query).
    let nested = |n: usize| format!("{}TRUE{}", "(".repeat(n), ")".repeat(n));
    // true inside n cql2-json "not" operations.
    let not_json = |n: usize| {
        format!(
            "{}true{}",
            r#"{"op":"not","args":["#.repeat(n),
            "]}".repeat(n)
        )
    };
    vec![
        // bbox
        case(format!("{pk}?bbox=10.6,51.4,10.9"), BAD, "bbox"),
        case(format!("{pk}?bbox=a,b,c,d"), BAD, "bbox"),
        case(format!("{pk}?bbox=10.6,51.6,10.9,51.4"), BAD, "bbox"),
        case(format!("{pk}?bbox=NaN,51.4,10.9,51.6"), BAD, "bbox"),
        case(format!("{pk}?bbox=10.6,51.4,Infinity,51.6"), BAD, "bbox"),
        case(format!("{pk}?bbox=10.6,51.4,10.9,51.6,1"), BAD, "bbox"),
        case(format!("{pk}?bbox="), BAD, "bbox"),
        // crs, bbox-crs
        case(format!("{pk}?crs={}", epsg("99999")), BAD, "crs"),
        case(format!("{pk}?crs=nonsense"), BAD, "crs"),
        case(
            format!("{pk}?bbox=10.6,51.4,10.9,51.6&bbox-crs={}", epsg("2000000")),
            BAD,
            "crs",
        ),
        // filter-lang, cql2-text syntax and semantics
        case(
            format!("{pk}?filter-lang=ecql&filter={}", encode("name = 'x'")),
            BAD,
            "filter",
        ),
        case(f("(name = 'x'"), BAD, "filter"),
        case(f("name = 'x')"), BAD, "filter"),
        case(f("colour = 'red'"), BAD, "filter|colour"),
        case(f("name = 'unterminated"), BAD, "filter"),
        case(f("name = 'x' garbage"), BAD, "filter"),
        case(f("name = 'x'; DROP TABLE parcels; --'"), BAD, "filter"),
        case(f("FOO(name) = 'x'"), BAD, "filter|foo"),
        case(
            f("S_INTERSECTS(geom, POLYGON((10 51, 11 51, 11 52)))"),
            BAD,
            "filter|polygon|ring",
        ),
        case(
            f("S_INTERSECTS(geom, POINT(10.7 51.5))") + &format!("&filter-crs={}", epsg("99999")),
            BAD,
            "crs",
        ),
        // sent without percent-encoding: parentheses, commas, quotes and = are legal raw
        case(
            format!("{pk}?filter=S_INTERSECTS(geom,BBOX(10.6,51.4,10.9))"),
            BAD,
            "filter|bbox",
        ),
        case(format!("{pk}?filter=name='x''"), BAD, "filter"),
        // percent-escapes that are not UTF-8
        case(
            format!("{pk}?filter=%FF%FE"),
            BAD,
            "utf-8|utf8|encoding|filter",
        ),
        case(format!("{pk}?name=%FF%FE"), BAD, "utf-8|utf8|encoding|name"),
        case(
            format!("{pk}?%FF%FE=1"),
            BAD,
            "utf-8|utf8|encoding|parameter",
        ),
        // cql2-json
        case(fj("not json"), BAD, "filter|json"),
        case(
            fj(r#"{"op":"frobnicate","args":[1,2]}"#),
            BAD,
            "filter|frobnicate",
        ),
        case(
            fj(r#"{"op":"=","args":[{"property":"colour"},1]}"#),
            BAD,
            "filter|colour",
        ),
        case(
            fj(r#"{"op":"=","args":[{"property":"name"}]}"#),
            BAD,
            "filter|args|argument",
        ),
        // limit, offset, unknown parameters, f
        case(format!("{pk}?limit=0"), BAD, "limit"),
        case(format!("{pk}?limit=-1"), BAD, "limit"),
        case(format!("{pk}?limit=abc"), BAD, "limit"),
        case(format!("{pk}?limit=1.5"), BAD, "limit"),
        case(format!("{pk}?offset=-5"), BAD, "offset"),
        case(format!("{pk}?offset=abc"), BAD, "offset"),
        case(format!("{pk}?colour=red"), BAD, "colour|unknown"),
        case(format!("{pk}?f=xml"), BAD, "xml|format|json|html"),
        // sortby
        case(format!("{pk}?sortby=nope"), BAD, "sortby|nope"),
        case(format!("{pk}?sortby=-nope"), BAD, "sortby|nope"),
        // near, near-crs, max-distance
        case(format!("{pk}?near=10.7"), BAD, "near"),
        case(format!("{pk}?near=a,b"), BAD, "near"),
        case(
            format!("{pk}?near=10.7,51.5&max-distance=-5"),
            BAD,
            "max-distance",
        ),
        case(
            format!("{pk}?near=10.7,51.5&max-distance=abc"),
            BAD,
            "max-distance",
        ),
        case(format!("{pk}?near=10.7,51.5&near-crs=bogus"), BAD, "crs"),
        // datetime
        case(format!("{pk}?datetime=yesterday"), BAD, "datetime"),
        case(
            format!("{pk}?datetime=2021-13-45T00:00:00Z"),
            BAD,
            "datetime",
        ),
        // unknown collection and feature
        case("/collections/nope/items", MISSING, "nope|collection"),
        case(format!("{pk}/999999"), MISSING, "999999|feature"),
        case(format!("{pk}/abc"), MISSING, "abc|feature"),
        // 100 KB of nesting: rejected (too long or too deep), never a crash or a 5xx
        case(
            format!("{pc}?filter={}", nested(50_000)),
            TOO_LONG,
            "filter|long|deep|depth|nest",
        ),
        case(
            format!(
                "{pc}?filter-lang=cql2-json&filter={}",
                encode(&not_json(2_000))
            ),
            TOO_LONG,
            "filter|long|deep|depth|nest|json",
        ),
        // Deep nesting in a URL short enough to reach the parser (hyper refuses targets
        // over 64 KB): evaluated or refused, but never a stack overflow that takes the
        // whole server down. Last, because a crash ends the list.
        case(
            format!(
                "{pc}?filter-lang=cql2-json&filter={}",
                encode(&not_json(1_000))
            ),
            DEEP,
            "filter|deep|depth|nest|json",
        ),
        case(
            format!("{pc}?filter={}", nested(1_000)),
            DEEP,
            "filter|deep|depth|nest",
        ),
        case(
            format!(
                "{pc}?filter={}",
                encode(&format!("{}TRUE", "NOT ".repeat(10_000)))
            ),
            DEEP,
            "filter|deep|depth|nest",
        ),
    ]
}

/// What is wrong with the answer to one case, if anything.
fn problem(c: &Case, r: &Response) -> Option<String> {
    let body = String::from_utf8_lossy(&r.body);
    if !c.statuses.contains(&r.status) {
        return Some(format!(
            "status {}, want {:?}: {body}",
            r.status, c.statuses
        ));
    }
    if r.status == 414 {
        return None; // may come from the HTTP layer, before any handler
    }
    if r.status == 200 {
        return None; // an accepted deep filter (DEEP cases only)
    }
    if r.header("content-type") != Some("application/problem+json") {
        return Some(format!(
            "content-type {:?}, want application/problem+json: {body}",
            r.header("content-type")
        ));
    }
    let v: serde_json::Value = match serde_json::from_slice(&r.body) {
        Ok(v) => v,
        Err(e) => return Some(format!("problem body is not JSON ({e}): {body}")),
    };
    if v["status"].as_u64() != Some(u64::from(r.status)) {
        return Some(format!("problem status {} != {}", v["status"], r.status));
    }
    let Some(detail) = v["detail"].as_str() else {
        return Some(format!("problem without a detail: {body}"));
    };
    let lower = detail.to_lowercase();
    if !c.detail.split('|').any(|w| lower.contains(w)) {
        return Some(format!("detail {detail:?} mentions none of {:?}", c.detail));
    }
    None
}

/// Sends a request line with arbitrary bytes as its target; returns the status.
fn raw_status(base: &str, target: &[u8]) -> u16 {
    let host = base.strip_prefix("http://").expect("http base");
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    s.write_all(&req).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let head = String::from_utf8_lossy(&raw);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["id"].as_i64().expect("integer id"))
        .collect()
}

#[test]
fn bad_requests_are_problems_and_change_nothing() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let before = checksum(&store);
    let srv = serve(&store, &[]);

    let cases = cases();
    assert!(cases.len() >= 24);
    let mut failures = Vec::new();
    for c in &cases {
        let url = format!("{}{}", srv.base, c.target);
        let shown: String = c.target.chars().take(200).collect();
        // A crashed server (say, a parser recursing once per parenthesis) is reported as
        // such, with the failures so far.
        let Ok(r) = std::panic::catch_unwind(|| request("GET", &url, &[], b"")) else {
            failures.push(format!(
                "{shown}\n    no HTTP answer: did the server crash?"
            ));
            panic!(
                "the server stopped answering; later cases not tried:\n{}",
                failures.join("\n")
            );
        };
        if let Some(p) = problem(c, &r) {
            failures.push(format!("{shown}\n    {p}"));
        }
    }

    // Valid filters that merely look like SQL injection: 200 and nothing matches.
    for target in [
        format!("/collections/parking/items?name={}", encode("x' OR 1=1--")),
        format!(
            "/collections/parking/items?filter={}",
            encode("name = 'x'' OR ''1''=''1'")
        ),
        format!(
            "/collections/parking/items?filter-lang=cql2-json&filter={}",
            encode(r#"{"op":"=","args":[{"property":"name"},"x' OR 1=1--"]}"#)
        ),
    ] {
        let r = get(&format!("{}{target}", srv.base), &[]);
        let body = String::from_utf8_lossy(&r.body).to_string();
        if r.status != 200 {
            failures.push(format!(
                "{target}\n    status {}, want 200: {body}",
                r.status
            ));
            continue;
        }
        let v = r.json();
        if !ids(&v).is_empty() || v["numberMatched"] != 0 {
            failures.push(format!("{target}\n    want no features: {body}"));
        }
    }

    // Raw bytes that are not UTF-8 in the request target: refused (by the HTTP layer or
    // the handler), and the server lives on.
    let status = raw_status(
        &srv.base,
        b"/collections/parking/items?filter=\xFF\xFE&name=M\xFChle",
    );
    if status != 400 {
        failures.push(format!(
            "raw non-UTF-8 bytes in the target: status {status}, want 400"
        ));
    }

    assert!(
        failures.is_empty(),
        "{} of {} bad requests were not answered as expected:\n{}",
        failures.len(),
        cases.len() + 4,
        failures.join("\n")
    );

    let h = get(&format!("{}/health", srv.base), &[]);
    assert_eq!(h.status, 200, "server alive after the bad requests");
    let r = get(
        &format!("{}/collections/parcels/items?limit=1", srv.base),
        &[],
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["numberMatched"], 6000);
    assert_eq!(ids(&v).len(), 1);
    assert_eq!(checksum(&store), before, "the store is unchanged");
}
