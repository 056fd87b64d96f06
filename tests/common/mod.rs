//! Shared helpers for the integration tests: the real binary, fixtures made by the real
//! GDAL/pyogrio writers, the real GeoPackage validator, and a tiny HTTP client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

mod pgmirror;
#[allow(unused_imports)]
pub use pgmirror::{as_geopackage, gdal_source, on_postgis, psql, psql_in, schema_of};

/// The nordgeo binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nordgeo"))
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the clients' venv made by scripts/setup.sh.
pub fn venv_python() -> PathBuf {
    root().join(".venv-clients/bin/python")
}

/// Fails loudly when a real client is missing: these tests never pass silently.
/// `NORDGEO_SKIP_CLIENT_TESTS=1` skips them on a developer laptop (never in CI).
pub fn clients_available() -> bool {
    let ok = Command::new("ogrinfo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && venv_python().exists();
    if ok {
        return true;
    }
    if std::env::var("NORDGEO_SKIP_CLIENT_TESTS").as_deref() == Ok("1")
        && std::env::var("CI").is_err()
    {
        eprintln!("skipping: GDAL or the clients' venv is missing (NORDGEO_SKIP_CLIENT_TESTS=1)");
        return false;
    }
    panic!("GDAL (ogrinfo) or .venv-clients is missing: run `bash scripts/setup.sh` first");
}

/// The fixture directory (made once per test run by tests/fixtures/make_fixtures.py).
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        let script = root().join("tests/fixtures/make_fixtures.py");
        let fresh = |p: &Path| {
            let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            matches!((m(p), m(&script)), (Some(a), Some(b)) if a >= b)
        };
        if !fresh(&dir.join("manifest.json")) {
            let out = Command::new("python3")
                .arg(&script)
                .arg(&dir)
                .output()
                .expect("python3 runs");
            assert!(
                out.status.success(),
                "make_fixtures.py failed (run scripts/setup.sh?):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
}

/// Runs a fixture script into `target/tmp/{dir}` unless its manifest is newer than the
/// script, and reads the manifest.
fn made_by(python: &Path, script: &str, dir: &str) -> (PathBuf, serde_json::Value) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let script = root().join("tests/fixtures").join(script);
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let manifest = dir.join("manifest.json");
    if !matches!((m(&manifest), m(&script)), (Some(a), Some(b)) if a >= b) {
        let out = Command::new(python)
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{} failed (run scripts/setup.sh?):\n{}\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    (dir, serde_json::from_str(&text).expect("manifest is JSON"))
}

/// The real-data corpus (made once per test run by tests/fixtures/make_realdata.py with
/// GDAL 3.6, pyogrio/GDAL 3.12 and QGIS 3.22) and its manifest.
pub fn realdata() -> (&'static Path, &'static serde_json::Value) {
    static DIR: OnceLock<(PathBuf, serde_json::Value)> = OnceLock::new();
    let (dir, manifest) =
        DIR.get_or_init(|| made_by(Path::new("python3"), "make_realdata.py", "realdata"));
    (dir, manifest)
}

/// The archive fixtures (tests/fixtures/make_archives.py, in the clients' venv for the
/// pmtiles package and pyogrio's GDAL 3.12) and their manifest.
pub fn archives() -> (&'static Path, &'static serde_json::Value) {
    static DIR: OnceLock<(PathBuf, serde_json::Value)> = OnceLock::new();
    let (dir, manifest) =
        DIR.get_or_init(|| made_by(&venv_python(), "make_archives.py", "archives"));
    (dir, manifest)
}

/// A figure of /proc/PID/status in kB (`VmRSS:`, `VmHWM:`), 0 when unreadable.
pub fn proc_status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The fixture manifest.
pub fn manifest() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest is JSON")
}

/// A fresh store made from the bundled sample data (kept alive by the returned dir).
pub fn sample_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.gpkg");
    ok(nordgeo(
        &store,
        &["import", root().join("data/sample.gpkg").to_str().unwrap()],
    ));
    (dir, store)
}

/// On the PostGIS run, says why a test checks only the GeoPackage store and returns true
/// (the test then ends); false on the GeoPackage run.
pub fn geopackage_only(why: &str) -> bool {
    if on_postgis() {
        eprintln!("GeoPackage store only: {why}");
    }
    on_postgis()
}

/// Runs nordgeo with a store and arguments (on the PostGIS run, on the store's copy once a
/// server ran on it).
pub fn nordgeo(store: &Path, args: &[&str]) -> Output {
    nordgeo_env(store, args, &[])
}

/// Writes with SQL as another program would: GDAL's `ogrinfo -sql` on a GeoPackage (the
/// R-tree triggers need its functions), psql on the PostGIS run.
pub fn external_sql(store: &Path, sql: &str) {
    if on_postgis() {
        psql_in(store, sql);
        return;
    }
    let o = Command::new("ogrinfo")
        .arg(store)
        .args(["-sql", sql])
        .output()
        .expect("ogrinfo runs");
    assert!(o.status.success(), "{sql}: {}", text(&o));
}

/// The first column of a query on what the store holds as integers (SQLite on a
/// GeoPackage, psql on the PostGIS run).
pub fn query_i64s(store: &Path, sql: &str) -> Vec<i64> {
    if on_postgis() {
        return psql_in(store, sql)
            .lines()
            .map(|l| l.trim().parse().expect("an integer"))
            .collect();
    }
    let conn = rusqlite::Connection::open(store).unwrap();
    let mut st = conn.prepare(sql).unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Runs nordgeo with extra environment variables.
pub fn nordgeo_env(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(pgmirror::store_args(store))
        .args(args)
        .env("NORDGEO_ACTOR", "test");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("nordgeo runs")
}

/// stdout + stderr of a run, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts success and returns the output text.
pub fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "nordgeo failed:\n{t}");
    t
}

/// Runs the GeoPackage validator from pip's gdal-utils; returns (passed, output).
pub fn validate(path: &Path) -> (bool, String) {
    let o = Command::new(venv_python())
        .args(["-m", "osgeo_utils.samples.validate_gpkg", "-v"])
        .arg(path)
        .output()
        .expect("validator runs");
    (o.status.success(), text(&o))
}

/// Asserts that the GeoPackage validator accepts a file.
pub fn assert_valid(path: &Path) {
    let (valid, out) = validate(path);
    assert!(
        valid,
        "{} fails the GeoPackage validator:\n{out}",
        path.display()
    );
}

/// A checksum of the whole logical content of an SQLite file (every table, every row).
pub fn checksum(path: &Path) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    if let Some(schema) = pgmirror::copied(path) {
        return pgmirror::checksum(&schema);
    }
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open for checksum");
    let tables: Vec<String> = conn
        // The access log records reads of owner data; it is not the data.
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'nordgeo_access_log' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut h = DefaultHasher::new();
    let mut rows = 0usize;
    for t in &tables {
        t.hash(&mut h);
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{}\"", t.replace('"', "\"\"")))
            .unwrap();
        let n = stmt.column_count();
        let mut q = stmt.query([]).unwrap();
        while let Some(r) = q.next().unwrap() {
            rows += 1;
            for i in 0..n {
                format!("{:?}", r.get_ref(i).unwrap()).hash(&mut h);
            }
        }
    }
    format!("{} tables, {rows} rows, {:016x}", tables.len(), h.finish())
}

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `nordgeo serve` on a free loopback port and waits until it listens (on the
/// PostGIS run, on the store's copy in PostgreSQL).
pub fn serve(store: &Path, extra: &[&str]) -> Server {
    schema_of(store);
    let mut child = Command::new(bin())
        .args(pgmirror::store_args(store))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("server prints its address");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    Server { child, base }
}

/// A minimal HTTP response.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (UTF-8 bytes as %XX).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GET `url` (absolute, http://127.0.0.1:PORT/...) with extra headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    request("GET", url, headers, b"")
}

/// One HTTP/1.1 request on a fresh connection.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = TcpStream::connect(host).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw).unwrap_or_else(|| panic!("no HTTP response to {method} {url}"))
}

/// Parses a raw HTTP/1.1 response (chunked bodies joined); `None` without a status line.
pub fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut b = &body[..];
        while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
            if size == 0 || b.len() < eol + 2 + size {
                break;
            }
            out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
            b = &b[(eol + 4 + size).min(b.len())..];
        }
        body = out;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// Creates a token with the CLI and returns its secret.
pub fn token(store: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", "--name", name];
    args.extend_from_slice(extra);
    let out = ok(nordgeo(store, &args));
    out.lines()
        .find(|l| l.trim().starts_with("ngt_"))
        .expect("a token line")
        .trim()
        .to_string()
}

/// One request with a bearer token and a body of a content type.
pub fn send(method: &str, url: &str, secret: &str, ct: &str, body: &[u8]) -> Response {
    let auth = format!("Bearer {secret}");
    request(
        method,
        url,
        &[("Authorization", auth.as_str()), ("Content-Type", ct)],
        body,
    )
}
