//! Load with a write in the middle: 64 connections for 60 s on a mix of tiles, items and
//! TileJSON (wrk) while an HTTP import replaces the parcels with 100,000 new ones.
//! Zero errors, p99 and peak resident memory reported. Run by hand (it takes ~2 min):
//!
//!   cargo test --release --test load -- --ignored --nocapture

mod common;

use std::process::Command;

use common::*;

const WRK_SCRIPT: &str = r#"
local paths = {
  "/tiles/WebMercatorQuad/12/1361/2171", "/tiles/WebMercatorQuad/13/2722/4342",
  "/tiles/WebMercatorQuad/14/5445/8686", "/tiles/WebMercatorQuad/10/340/542",
  "/collections/parcels/items?bbox=10.70,51.45,10.72,51.46&limit=100",
  "/collections/parking/items?near=10.8,51.5&limit=5",
  "/collections/trails/items?filter=difficulty%20%3D%20%27hard%27&limit=50",
  "/tiles/WebMercatorQuad/tilejson.json", "/collections/parcels/tiles/WebMercatorQuad/15/10890/17372",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("STATS requests=%d non2xx=%d errors=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"#;

#[test]
#[ignore = "60 s of load; run by hand (see the module comment)"]
fn load_while_importing_100k_parcels() {
    let (dir, store) = sample_store();
    let upload = dir.path().join("region.gpkg");
    ok(Command::new(bin())
        .args(["generate", upload.to_str().unwrap(), "--scale", "0.34"])
        .output()
        .unwrap());
    let o = nordgeo(
        &store,
        &["token", "create", "--name", "admin", "--role", "admin"],
    );
    let token = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let srv = serve(&store, &["--cache-mb", "64"]);
    let pid = srv.pid();
    let script = dir.path().join("mix.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let wrk = Command::new("wrk")
        .args(["-t2", "-c64", "-d60s", "--timeout", "10s", "-s"])
        .arg(&script)
        .arg(&srv.base)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wrk runs (apt-get install wrk)");
    std::thread::sleep(std::time::Duration::from_secs(10));
    let started = std::time::Instant::now();
    let body = std::fs::read(&upload).unwrap();
    let r = request(
        "POST",
        &format!(
            "{}/collections/parcels/import?mode=replace&layer=parcels",
            srv.base
        ),
        &[("Authorization", &format!("Bearer {token}"))],
        &body,
    );
    let import_s = started.elapsed().as_secs_f64();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let out = wrk.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let stats = text
        .lines()
        .find(|l| l.starts_with("STATS"))
        .unwrap_or_else(|| panic!("{text}"));
    println!("{text}");
    println!("import of 100k parcels over HTTP took {import_s:.1} s under load");
    println!(
        "peak resident memory of the server: {} MB",
        proc_status_kb(pid, "VmHWM:") / 1024
    );
    let field = |k: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert!(field("requests") > 1000);
    assert_eq!(field("non2xx"), 0, "{stats}");
    assert_eq!(field("errors"), 0, "{stats}");
    let n = get(
        &format!("{}/collections/parcels/items?limit=1", srv.base),
        &[],
    )
    .json();
    assert!(n["numberMatched"].as_u64().unwrap() > 90_000);
}
