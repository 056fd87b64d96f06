//! The PostGIS side of the both-store matrix. With `NORDGEO_TEST_STORE=postgis` a test's
//! GeoPackage store is copied into its own schema of one throwaway PostgreSQL 15 +
//! PostGIS 3 cluster (started on a free port by this test process, stopped when it exits)
//! the first time a server is started on it, and from then on every server and command of
//! the test runs on that schema. The copy is made by GDAL's `ogr2ogr` and psql, not by
//! nordgeo, so the GeoPackage the test prepared stays the oracle for what is served.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Whether this run tests the PostGIS store (`NORDGEO_TEST_STORE=postgis`).
pub fn on_postgis() -> bool {
    std::env::var("NORDGEO_TEST_STORE").as_deref() == Ok("postgis")
}

struct Cluster {
    dir: PathBuf,
    port: u16,
}

/// The stores copied so far: GeoPackage path → schema.
fn mirrored() -> &'static Mutex<HashMap<PathBuf, String>> {
    static MAP: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> i32;
}

extern "C" fn stop_cluster() {
    if let Some(c) = CLUSTER.get() {
        let _ = Command::new("bash")
            .arg(super::root().join("scripts/pg_cluster.sh"))
            .args(["stop", c.dir.to_str().unwrap_or_default()])
            .output();
        let _ = std::fs::remove_dir_all(&c.dir);
        let _ = std::fs::remove_dir_all(c.dir.with_extension("copies"));
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pg-matrix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let out = Command::new("bash")
            .arg(super::root().join("scripts/pg_cluster.sh"))
            .args(["start", dir.to_str().unwrap(), &port.to_string()])
            .output()
            .expect("pg_cluster.sh runs");
        assert!(
            out.status.success(),
            "cluster start failed: {}",
            super::text(&out)
        );
        // The test harness leaves main normally (or by exit()), so atexit stops the cluster.
        unsafe { atexit(stop_cluster) };
        Cluster { dir, port }
    })
}

fn url() -> String {
    format!("postgresql://postgres@127.0.0.1:{}/nordgeo", cluster().port)
}

/// Runs SQL with psql (stdin, stop at the first error) and returns its unaligned output.
pub fn psql(sql: &str) -> String {
    use std::io::Write;
    let c = cluster();
    let mut child = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args(["-p", &c.port.to_string(), "-U", "postgres", "-d", "nordgeo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "psql failed: {}", super::text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The schema a store was copied into, if it was (never copies).
pub fn copied(store: &Path) -> Option<String> {
    if !on_postgis() {
        return None;
    }
    mirrored().lock().unwrap().get(store).cloned()
}

/// The `--store …` arguments for `store`: its schema once it was copied, else the file.
pub fn store_args(store: &Path) -> Vec<String> {
    match copied(store) {
        Some(s) => vec!["--store".into(), url(), "--store-schema".into(), s],
        None => vec!["--store".into(), store.to_string_lossy().into_owned()],
    }
}

/// The schema `store` runs on (copied now if it was not yet); `None` off the PostGIS run.
pub fn schema_of(store: &Path) -> Option<String> {
    if !on_postgis() {
        return None;
    }
    if let Some(s) = mirrored().lock().unwrap().get(store) {
        return Some(s.clone());
    }
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let schema = format!("t{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    copy(store, &schema);
    mirrored()
        .lock()
        .unwrap()
        .insert(store.to_path_buf(), schema.clone());
    Some(schema)
}

/// An SQL literal of an SQLite value.
fn literal(v: rusqlite::types::ValueRef) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t).replace('\'', "''")),
        ValueRef::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("'\\x{hex}'::bytea")
        }
    }
}

/// The WKB of a GeoPackage geometry blob (after its header and envelope).
fn gpkg_wkb(blob: &[u8]) -> &[u8] {
    let envelope = [0, 32, 48, 48, 64][usize::from((blob[3] >> 1) & 7).min(4)];
    &blob[8 + envelope..]
}

/// Copies the feature tables with ogr2ogr (names, keys and feature ids kept) and nordgeo's
/// settings, tokens and change log with psql into a new schema.
fn copy(store: &Path, schema: &str) {
    let conn =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the store opens");
    let layers: Vec<(String, String)> = conn
        .prepare(
            "SELECT c.table_name, g.column_name FROM gpkg_contents c
             JOIN gpkg_geometry_columns g ON g.table_name = c.table_name
             WHERE c.data_type = 'features' ORDER BY c.rowid",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    psql(&format!("CREATE SCHEMA {schema};"));
    let gdal = format!(
        "PG:host=127.0.0.1 port={} dbname=nordgeo user=postgres",
        cluster().port
    );
    for (table, geom) in &layers {
        let fid: String = conn
            .query_row(
                "SELECT name FROM pragma_table_info(?1) WHERE pk > 0",
                [table],
                |r| r.get(0),
            )
            .unwrap_or_else(|_| "fid".into());
        let out = Command::new("ogr2ogr")
            .args(["-f", "PostgreSQL", &gdal])
            .arg(store)
            .arg(table)
            .args(["-preserve_fid", "-lco", "LAUNDER=NO"])
            .args(["-lco", &format!("SCHEMA={schema}")])
            .args(["-lco", &format!("FID={fid}")])
            .args(["-lco", &format!("GEOMETRY_NAME={geom}")])
            .output()
            .expect("ogr2ogr runs");
        assert!(
            out.status.success(),
            "ogr2ogr {table}: {}",
            super::text(&out)
        );
    }
    // nordgeo makes its own tables on the first command; the rows are then copied in.
    let out = Command::new(super::bin())
        .args(["--store", &url(), "--store-schema", schema, "layers"])
        .env("NORDGEO_ACTOR", "test")
        .output()
        .expect("nordgeo runs");
    assert!(
        out.status.success(),
        "nordgeo layers on the copy: {}",
        super::text(&out)
    );
    let mut sql = format!("SET search_path = {schema}, public;\nBEGIN;\n");
    // Each layer's history table as nordgeo makes it (from the table's columns), with
    // the file's history rows (values as text literals PostgreSQL casts to each column's
    // type, geometries as WKB).
    for (table, geom) in &layers {
        let h = format!("nordgeo_history_{table}");
        let Ok(mut st) = conn.prepare(&format!("SELECT * FROM \"{h}\"")) else {
            continue;
        };
        sql.push_str(&format!(
            "CREATE TABLE \"{h}\" AS SELECT 0::bigint AS change_id, ''::text AS change_op, * FROM \"{table}\" WITH NO DATA;\n"
        ));
        let srid: i64 = conn
            .query_row(
                "SELECT srs_id FROM gpkg_geometry_columns WHERE table_name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap_or(0);
        let cols: Vec<String> = st.column_names().map(|c| c.to_string()).collect();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            use rusqlite::types::ValueRef;
            let vals: Vec<String> = (0..cols.len())
                .map(|i| match r.get_ref(i).unwrap() {
                    ValueRef::Blob(b) if &cols[i] == geom => {
                        let wkb: String = gpkg_wkb(b).iter().map(|x| format!("{x:02x}")).collect();
                        format!("ST_SetSRID(ST_GeomFromWKB(decode('{wkb}', 'hex')), {srid})")
                    }
                    ValueRef::Integer(v) => format!("'{v}'"),
                    ValueRef::Real(v) => format!("'{v:?}'"),
                    v => literal(v),
                })
                .collect();
            sql.push_str(&format!(
                "INSERT INTO \"{h}\" ({}) VALUES ({});\n",
                cols.iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                vals.join(", ")
            ));
        }
    }
    for table in ["nordgeo_layers", "nordgeo_tokens", "nordgeo_changes"] {
        let exists: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get::<_, i64>(0),
            )
            .is_ok_and(|n| n > 0);
        if !exists {
            continue;
        }
        sql.push_str(&format!("DELETE FROM {table};\n"));
        let mut st = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let cols: Vec<String> = st.column_names().map(|c| c.to_string()).collect();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let vals: Vec<String> = (0..cols.len())
                .map(|i| {
                    let v = literal(r.get_ref(i).unwrap());
                    // SQLite keeps booleans as integers.
                    if table == "nordgeo_layers" && cols[i] == "restricted" {
                        format!("({v} <> 0)")
                    } else {
                        v
                    }
                })
                .collect();
            sql.push_str(&format!(
                "INSERT INTO {table} ({}) VALUES ({});\n",
                cols.join(", "),
                vals.join(", ")
            ));
        }
    }
    sql.push_str(
        "SELECT setval(pg_get_serial_sequence('nordgeo_changes', 'id'), coalesce(max(id), 0) + 1, false) FROM nordgeo_changes;\nCOMMIT;\n",
    );
    psql(&sql);
}

/// Runs SQL as another program would, in the store's schema (psql), on the PostGIS run.
pub fn psql_in(store: &Path, sql: &str) -> String {
    let schema = schema_of(store).expect("the PostGIS run");
    psql(&format!("SET search_path = {schema}, public;\n{sql}"))
}

/// The store's content as a GeoPackage: on the PostGIS run, once a server ran on it, a
/// fresh copy of its schema made by GDAL's `ogr2ogr` (every table, nordgeo's included);
/// else the file itself.
pub fn as_geopackage(store: &Path) -> PathBuf {
    let gpkg = store.extension().is_some_and(|e| e == "gpkg");
    if !on_postgis() || (copied(store).is_none() && !gpkg) {
        return store.to_path_buf();
    }
    // Before its copy to PostgreSQL the file is read through GDAL too, so that what a
    // test reads before and after is encoded alike (GDAL writes a point without an
    // envelope, nordgeo with one).
    let (src, schema) = match copied(store) {
        Some(schema) => (
            format!(
                "PG:host=127.0.0.1 port={} dbname=nordgeo user=postgres schemas={schema}",
                cluster().port
            ),
            schema,
        ),
        None => (store.to_string_lossy().into_owned(), "file".to_string()),
    };
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = cluster().dir.with_extension("copies");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!(
        "{schema}-{}.gpkg",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    // A history table lists a fid once per change: GDAL gets a key of its own for it.
    let history = |name: &str| name.starts_with("nordgeo_history_");
    let names = if copied(store).is_some() {
        psql(&format!(
            "SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1"
        ))
    } else {
        let c = rusqlite::Connection::open_with_flags(
            store,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut st = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("\n")
    };
    let (hist, rest): (Vec<&str>, Vec<&str>) = names
        .lines()
        .filter(|n| {
            !n.starts_with("gpkg_") && !n.starts_with("rtree_") && !n.starts_with("sqlite_")
        })
        .partition(|n| history(n));
    for (i, (tables, extra)) in [(rest, vec![]), (hist, vec!["-lco", "FID=nordgeo_row"])]
        .into_iter()
        .enumerate()
    {
        if tables.is_empty() {
            continue;
        }
        let o = Command::new("ogr2ogr")
            .args(["-f", "GPKG"])
            .args(if i > 0 { vec!["-update"] } else { vec![] })
            .arg(&out)
            .arg(&src)
            .args(&tables)
            .args(["-oo", "LIST_ALL_TABLES=YES"])
            .args(if i == 0 { vec!["-preserve_fid"] } else { extra })
            .output()
            .expect("ogr2ogr runs");
        assert!(
            o.status.success() && !super::text(&o).contains("ERROR"),
            "ogr2ogr from {schema}: {}",
            super::text(&o)
        );
    }
    out
}

/// A checksum of the schema's whole content (every table but the access log and the
/// change capture's bookkeeping, every row).
pub fn checksum(schema: &str) -> String {
    let tables = psql(&format!(
        "SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'
           AND tablename NOT IN ('nordgeo_access_log', 'nordgeo_capture', 'nordgeo_capture_pruned')
         ORDER BY 1"
    ));
    let mut sql = String::from("SELECT md5(concat_ws('|'");
    let mut n = 0;
    for t in tables.lines() {
        n += 1;
        sql.push_str(&format!(
            ", '{t}', (SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM {schema}.\"{t}\" x)"
        ));
    }
    sql.push_str("));");
    format!("{n} tables, {}", psql(&sql))
}

/// What GDAL opens to read the store directly: its schema in PostgreSQL once it was
/// copied there, else the file.
pub fn gdal_source(store: &Path) -> String {
    match copied(store) {
        Some(schema) => format!(
            "PG:host=127.0.0.1 port={} dbname=nordgeo user=postgres schemas={schema}",
            cluster().port
        ),
        None => store.to_string_lossy().into_owned(),
    }
}
