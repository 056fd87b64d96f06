//! OGC API Features Part 3 (CQL2 filtering) over HTTP: every case of
//! `tests/fixtures/cql2_cases.json`, once as cql2-text and once as cql2-json, against a
//! store made from the GeoPackage that `tests/fixtures/make_cql2_fixture.py` writes with
//! GDAL 3.6. The expected fids were derived by hand from the fixture's tables and checked
//! with an independent evaluator; every failing case is reported, not just the first.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// The fixture GeoPackage, written into `dir` by the fixture script.
fn make_fixture(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("cql2.gpkg");
    let script = root().join("tests/fixtures/make_cql2_fixture.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(&out)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "make_cql2_fixture.py failed (run scripts/setup.sh?):\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn cases() -> Vec<Value> {
    let path = root().join("tests/fixtures/cql2_cases.json");
    let text = std::fs::read_to_string(&path).expect("cql2_cases.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("cql2_cases.json is JSON");
    let mut names: Vec<&str> = cases
        .iter()
        .map(|c| c["name"].as_str().expect("every case has a name"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    assert!(cases.len() >= 45, "only {} cases", cases.len());
    cases
}

/// Runs one request and returns a description of what is wrong, if anything.
fn check(url: &str, expected: &[i64]) -> Option<String> {
    let r = get(url, &[]);
    let body = String::from_utf8_lossy(&r.body);
    if r.status != 200 {
        return Some(format!("status {}: {body}", r.status));
    }
    let v: Value = match serde_json::from_slice(&r.body) {
        Ok(v) => v,
        Err(e) => return Some(format!("body is not JSON ({e}): {body}")),
    };
    let Some(features) = v["features"].as_array() else {
        return Some(format!("no features array: {body}"));
    };
    let mut got: Vec<i64> = Vec::new();
    for f in features {
        match f["id"].as_i64() {
            Some(id) => got.push(id),
            None => return Some(format!("feature without an integer id: {f}")),
        }
    }
    got.sort_unstable();
    let mut problems = Vec::new();
    if got != expected {
        problems.push(format!("got {got:?}"));
    }
    if v["numberMatched"].as_u64() != Some(expected.len() as u64) {
        problems.push(format!("numberMatched {}", v["numberMatched"]));
    }
    if v["numberReturned"].as_u64() != Some(features.len() as u64) {
        problems.push(format!(
            "numberReturned {} for {} features",
            v["numberReturned"],
            features.len()
        ));
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

/// A store with the fixture's two layers, served.
fn fixture_server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let gpkg = make_fixture(dir.path());
    let store = dir.path().join("store.gpkg");
    for layer in ["sites", "zones"] {
        ok(nordgeo(
            &store,
            &["import", gpkg.to_str().unwrap(), "--layer", layer],
        ));
    }
    let srv = serve(&store, &[]);
    (dir, srv)
}

/// `datetime` filters on the first date property (`opened`): instants, closed and
/// half-open intervals; the temporal extent is reported; a collection without a date
/// property refuses the parameter.
#[test]
fn datetime_on_the_date_property() {
    if !clients_available() {
        return;
    }
    let (_dir, srv) = fixture_server();
    let items = format!("{}/collections/sites/items?limit=100", srv.base);
    for (dt, want) in [
        ("2021-05-01", vec![2, 15]),
        ("2021-01-01/2021-12-31", vec![2, 6, 8, 15]),
        ("../2015-12-31", vec![9, 13]),
        ("2022-01-01/..", vec![7, 11]),
        ("2021-05-01T00:00:00Z/2021-05-02T00:00:00Z", vec![2, 6, 15]),
    ] {
        assert_eq!(
            check(&format!("{items}&datetime={}", encode(dt)), &want),
            None,
            "{dt}"
        );
    }
    let c = get(&format!("{}/collections/sites", srv.base), &[]).json();
    assert_eq!(
        c["extent"]["temporal"]["interval"][0],
        serde_json::json!(["2012-12-12T00:00:00Z", "2023-01-01T00:00:00Z"])
    );
    let r = get(
        &format!("{}/collections/zones/items?datetime=2021-01-01", srv.base),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"].as_str().unwrap().contains("date"));
    let r = get(&format!("{items}&datetime=2021-12-31/2021-01-01"), &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn cql2_text_and_json_cases() {
    if !clients_available() {
        return;
    }
    let cases = cases();
    let (_dir, srv) = fixture_server();

    let mut failures = Vec::new();
    let mut requests = 0;
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let collection = case["collection"].as_str().expect("collection");
        let text = case["text"].as_str().expect("text");
        let json = serde_json::to_string(&case["json"]).unwrap();
        let expected: Vec<i64> = case["expected"]
            .as_array()
            .expect("expected")
            .iter()
            .map(|v| v.as_i64().expect("fid"))
            .collect();
        let crs = case["filter_crs"]
            .as_str()
            .map(|c| format!("&filter-crs={}", encode(c)))
            .unwrap_or_default();
        let items = format!("{}/collections/{collection}/items?limit=10000", srv.base);
        let mut forms = vec![
            (
                "cql2-text",
                format!("{items}&filter-lang=cql2-text&filter={}{crs}", encode(text)),
            ),
            (
                "cql2-json",
                format!(
                    "{items}&filter-lang=cql2-json&filter={}{crs}",
                    encode(&json)
                ),
            ),
        ];
        if i % 10 == 0 {
            // filter-lang defaults to cql2-text
            forms.push((
                "cql2-text, no filter-lang",
                format!("{items}&filter={}{crs}", encode(text)),
            ));
        }
        for (form, url) in forms {
            requests += 1;
            if let Some(problem) = check(&url, &expected) {
                let filter = if form == "cql2-json" {
                    json.as_str()
                } else {
                    text
                };
                failures.push(format!(
                    "{name} [{form}]\n    filter:   {filter}\n    url:      {url}\n    \
                     expected: {expected:?}\n    problem:  {problem}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} CQL2 requests failed ({} cases):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
