//! Deterministic synthetic data for the region of four municipalities in northern
//! Thuringia: municipality boundaries, parcels, trails, parking and childcare, all in
//! EPSG:25832, written as one store.
//!
//! The same seed and scale give a byte-identical file: randomness comes only from the
//! seed, rows are written in a fixed order, and the one timestamp GeoPackage requires is
//! pinned.

mod layers;
mod parcels;
mod region;
mod rng;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use geo::{CoordsIter, Geometry};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use crate::geom::{GeometryKind, bbox_of, gpkg, wkb};
use crate::store::layer::{self, Column, LayerDef, q};
use crate::store::{LayerMeta, Store, StoreError, write_meta};

use region::{SRID, World};

/// Errors while generating.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Store error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output file is already there.
    #[error("{0} already exists; remove it or choose another output file")]
    Exists(PathBuf),
    /// A scale the generator cannot honour.
    #[error(
        "scale {0} is out of range; use a number above 0 and at most {MAX_SCALE} (1 = 300,000 parcels)"
    )]
    Scale(f64),
    /// Placing the region failed in PROJ.
    #[error(transparent)]
    Crs(#[from] crate::crs::CrsError),
    /// Reading the finished file's size failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A generator bug (e.g. an invalid geometry); nothing is written.
    #[error("internal error in the generator: {0}")]
    Internal(String),
}

/// The largest scale accepted (cells shrink below 20 m beyond about 1.5).
pub const MAX_SCALE: f64 = 20.0;

/// `gpkg_contents.last_change` of every layer, fixed so files are reproducible.
const LAST_CHANGE: &str = "2026-01-01T00:00:00.000Z";
const ATTRIBUTION: &str = "Synthetic data © nordgeo contributors";

/// One row to write: geometry and attribute values in column order.
pub(crate) struct Feature {
    geom: Geometry<f64>,
    attrs: Vec<Value>,
}

/// Feature counts for a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    parcels: usize,
    trails: usize,
    parking: usize,
    childcare: usize,
}

impl Counts {
    fn for_scale(scale: f64) -> Counts {
        let n = |base: f64, min: usize| ((base * scale).round() as usize).max(min);
        Counts {
            parcels: n(300_000.0, 48),
            trails: n(3_000.0, 24),
            parking: n(2_500.0, 24),
            // At least three per municipality.
            childcare: n(40.0, 12),
        }
    }
}

struct LayerSpec {
    table: &'static str,
    kind: GeometryKind,
    title: &'static str,
    description: &'static str,
    columns: &'static [(&'static str, &'static str)],
    municipality_column: &'static str,
    /// Columns with personal data, marked internal in the generated file.
    internal: &'static [&'static str],
}

const MUNICIPALITIES: LayerSpec = LayerSpec {
    table: "municipalities",
    kind: GeometryKind::MultiPolygon,
    title: "Municipalities",
    description: "Municipality boundaries (synthetic)",
    columns: &[("name", "TEXT"), ("ags", "TEXT"), ("area_km2", "REAL")],
    municipality_column: "name",
    internal: &[],
};
const PARCELS: LayerSpec = LayerSpec {
    table: "parcels",
    kind: GeometryKind::Polygon,
    title: "Parcels",
    description: "Cadastral parcels (Flurstücke, synthetic)",
    columns: &[
        ("parcel_id", "TEXT"),
        ("area_m2", "REAL"),
        ("land_use", "TEXT"),
        ("municipality", "TEXT"),
        ("owner_name", "TEXT"),
        ("owner_address", "TEXT"),
    ],
    municipality_column: "municipality",
    internal: &["owner_name", "owner_address"],
};
const TRAILS: LayerSpec = LayerSpec {
    table: "trails",
    kind: GeometryKind::LineString,
    title: "Hiking trails",
    description: "Hiking trails (synthetic)",
    columns: &[
        ("name", "TEXT"),
        ("route_ref", "TEXT"),
        ("difficulty", "TEXT"),
        ("length_m", "REAL"),
        ("surface", "TEXT"),
        ("municipality", "TEXT"),
    ],
    municipality_column: "municipality",
    internal: &[],
};
const PARKING: LayerSpec = LayerSpec {
    table: "parking",
    kind: GeometryKind::Point,
    title: "Parking",
    description: "Car parks and trailhead parking (synthetic)",
    columns: &[
        ("name", "TEXT"),
        ("capacity", "INTEGER"),
        ("fee", "BOOLEAN"),
        ("wheelchair_spaces", "INTEGER"),
        ("municipality", "TEXT"),
    ],
    municipality_column: "municipality",
    internal: &[],
};
const CHILDCARE: LayerSpec = LayerSpec {
    table: "childcare",
    kind: GeometryKind::Point,
    title: "Childcare",
    description: "Kindergartens (Kitas, synthetic)",
    columns: &[
        ("name", "TEXT"),
        ("capacity", "INTEGER"),
        ("free_places", "INTEGER"),
        ("opening_hours", "TEXT"),
        ("municipality", "TEXT"),
    ],
    municipality_column: "municipality",
    internal: &[],
};

/// What was written to one layer.
#[derive(Debug, Default)]
struct LayerStats {
    features: u64,
    vertices: u64,
}

/// Generates the dataset into a new GeoPackage at `out`; returns a human summary.
pub fn generate(out: &Path, scale: f64, seed: u64) -> Result<String, GenerateError> {
    if !(scale.is_finite() && scale > 0.0 && scale <= MAX_SCALE) {
        return Err(GenerateError::Scale(scale));
    }
    if out.exists() {
        return Err(GenerateError::Exists(out.to_path_buf()));
    }
    let started = Instant::now();
    let world = World::new(seed)?;
    let counts = Counts::for_scale(scale);
    let result = Store::create(out)
        .map_err(GenerateError::from)
        .and_then(|store| write_all(&store, &world, counts));
    let lines = match result {
        Ok(lines) => lines,
        Err(e) => {
            // We created the file; a half-made one would only block the next attempt.
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = out.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
            return Err(e);
        }
    };
    // The store is closed here, so the WAL has been checkpointed into the file.
    let bytes = std::fs::metadata(out)
        .map_err(|source| GenerateError::Io {
            path: out.to_path_buf(),
            source,
        })?
        .len();
    let mut s = format!(
        "wrote {} (EPSG:{SRID}, seed {seed}, scale {scale}): {:.1} MB in {:.1} s\n",
        out.display(),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    s.push_str(&lines);
    Ok(s)
}

/// Writes every layer in one transaction; returns the per-layer summary lines.
fn write_all(store: &Store, world: &World, counts: Counts) -> Result<String, GenerateError> {
    let conn = store.conn();
    let path = store.path();
    let sql = |e: rusqlite::Error| GenerateError::Store(StoreError::from_sqlite(path, e));
    // Zero freed cell space too, so no stale timestamp bytes survive in a page.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(sql)?;
    let tx = conn.unchecked_transaction().map_err(sql)?;
    let mut lines = String::new();
    let mut line = |name: &str, st: &LayerStats, extra: String| {
        let _ = writeln!(
            lines,
            "  {name:<15} {:>9} features {:>10} vertices{extra}",
            group(st.features),
            group(st.vertices)
        );
    };

    let (st, ()) = write_layer(&tx, path, &MUNICIPALITIES, |emit| {
        layers::municipalities(world, emit)
    })?;
    let names: Vec<&str> = world.munis.iter().map(|m| m.name).collect();
    line("municipalities", &st, format!("  ({})", names.join(", ")));

    let (st, (area, blocks)) = write_layer(&tx, path, &PARCELS, |emit| {
        let plan = parcels::plan(world, counts.parcels);
        let mut cadastre = parcels::Cadastre::default();
        let mut area = 0.0;
        for block in &plan {
            area += parcels::emit_block(world, block, &mut cadastre, emit)?;
        }
        Ok((area, plan.len()))
    })?;
    line(
        "parcels",
        &st,
        format!(
            "  ({blocks} blocks, {:.1} km², closing vertices included)",
            area / 1e6
        ),
    );

    let (st, (starts, ts)) = write_layer(&tx, path, &TRAILS, |emit| {
        layers::trails(world, counts.trails, emit)
    })?;
    line(
        "trails",
        &st,
        format!(
            "  ({}-{} per trail, {} km in all)",
            ts.min_vertices,
            ts.max_vertices,
            group((ts.length_m / 1000.0).round() as u64)
        ),
    );

    let (st, ()) = write_layer(&tx, path, &PARKING, |emit| {
        layers::parking(world, counts.parking, &starts, emit)
    })?;
    line("parking", &st, String::new());

    let (st, ()) = write_layer(&tx, path, &CHILDCARE, |emit| {
        layers::childcare(world, counts.childcare, emit)
    })?;
    line("childcare", &st, String::new());

    tx.execute("UPDATE gpkg_contents SET last_change = ?1", [LAST_CHANGE])
        .map_err(sql)?;
    tx.commit().map_err(sql)?;
    // A file handed to others should be one file: leave WAL so no -wal/-shm is needed.
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .map_err(sql)?;
    Ok(lines)
}

/// Creates one layer, fills it through the generator `fill`, then indexes and registers it.
fn write_layer<R>(
    conn: &Connection,
    path: &Path,
    spec: &LayerSpec,
    fill: impl FnOnce(&mut dyn FnMut(Feature) -> Result<(), GenerateError>) -> Result<R, GenerateError>,
) -> Result<(LayerStats, R), GenerateError> {
    let sql = |e: rusqlite::Error| GenerateError::Store(StoreError::from_sqlite(path, e));
    let def = LayerDef {
        table: spec.table.into(),
        geom_column: "geom".into(),
        fid_column: Some("fid".into()),
        kind: spec.kind,
        z: 0,
        m: 0,
        srs_id: SRID,
        columns: spec
            .columns
            .iter()
            .map(|(name, ty)| Column::nullable(name, ty))
            .collect(),
        identifier: Some(spec.table.into()),
        description: Some(spec.description.into()),
        bounds: None,
    };
    layer::create_feature_table(conn, &def).map_err(sql)?;
    let names: Vec<String> = ["fid", "geom"]
        .iter()
        .map(|c| q(c))
        .chain(spec.columns.iter().map(|c| q(c.0)))
        .collect();
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    let mut stmt = conn
        .prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            q(spec.table),
            names.join(", "),
            marks.join(", ")
        ))
        .map_err(sql)?;
    let mut stats = LayerStats::default();
    let result = fill(&mut |f: Feature| {
        let blob = gpkg::encode(SRID, bbox_of(&f.geom), &wkb::encode(&f.geom));
        stats.features += 1;
        stats.vertices += f.geom.coords_count() as u64;
        let row = [Value::Integer(stats.features as i64), Value::Blob(blob)]
            .into_iter()
            .chain(f.attrs);
        stmt.execute(params_from_iter(row)).map_err(sql)?;
        Ok(())
    })?;
    drop(stmt);
    layer::load_rtree(conn, &def).map_err(sql)?;
    layer::create_rtree_triggers(conn, &def).map_err(sql)?;
    layer::refresh_contents(conn, &def).map_err(sql)?;
    let meta = LayerMeta {
        title: Some(spec.title.into()),
        description: Some(spec.description.into()),
        attribution: Some(ATTRIBUTION.into()),
        municipality_column: Some(spec.municipality_column.into()),
        internal_properties: spec.internal.iter().map(|c| c.to_string()).collect(),
        ..LayerMeta::default()
    };
    write_meta(conn, spec.table, &meta).map_err(sql)?;
    Ok((stats, result))
}

/// 1234567 -> "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::Validation;

    fn make(dir: &Path, name: &str, scale: f64, seed: u64) -> PathBuf {
        let p = dir.join(name);
        generate(&p, scale, seed).unwrap();
        p
    }

    #[test]
    fn same_seed_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = make(dir.path(), "a.gpkg", 0.002, 7);
        let b = make(dir.path(), "b.gpkg", 0.002, 7);
        let c = make(dir.path(), "c.gpkg", 0.002, 8);
        let bytes = |p: &Path| std::fs::read(p).unwrap();
        assert!(bytes(&a) == bytes(&b), "two runs differ");
        assert!(bytes(&a) != bytes(&c), "the seed changes nothing");
        assert!(!dir.path().join("a.gpkg-wal").exists());
    }

    #[test]
    fn counts_municipalities_and_validity() {
        let dir = tempfile::tempdir().unwrap();
        let p = make(dir.path(), "s.gpkg", 0.002, 20240607);
        let store = Store::open_read_only(&p).unwrap();
        let want = Counts::for_scale(0.002);
        let expect = [
            ("municipalities", 4),
            ("parcels", want.parcels),
            ("trails", want.trails),
            ("parking", want.parking),
            ("childcare", want.childcare),
        ];
        let layers = store.layers().unwrap();
        assert_eq!(
            layers.iter().map(|l| l.table.as_str()).collect::<Vec<_>>(),
            expect.map(|e| e.0)
        );
        for (table, n) in expect {
            let def = store.layer(table).unwrap();
            assert_eq!(def.srs_id, 25832);
            assert_eq!(store.count(&def).unwrap(), n as i64, "{table}");
            let meta = store.meta(table).unwrap();
            let col = meta.municipality_column.unwrap();
            assert!(def.columns.iter().any(|c| c.name == col));
            let mut stmt = store
                .conn()
                .prepare(&format!(
                    "SELECT DISTINCT {} FROM {table} ORDER BY 1",
                    q(&col)
                ))
                .unwrap();
            let munis: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                munis,
                ["Ellrich", "Heringen/Helme", "Kyffhäuserland", "Werther"],
                "{table}"
            );
            let rtree: i64 = store
                .conn()
                .query_row(
                    &format!("SELECT count(*) FROM rtree_{table}_geom"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(rtree, n as i64);
        }
        let stamps: Vec<String> = store
            .conn()
            .prepare("SELECT DISTINCT last_change FROM gpkg_contents")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stamps, [LAST_CHANGE]);

        let mut stmt = store
            .conn()
            .prepare("SELECT geom, area_m2 FROM parcels")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, f64>(1)?)))
            .unwrap();
        for row in rows {
            let (blob, area) = row.unwrap();
            let d = gpkg::decode(&blob).unwrap();
            assert_eq!(d.header.srs_id, 25832);
            let Some(Geometry::Polygon(p)) = d.decoded.geometry else {
                panic!("not a polygon")
            };
            assert!(p.is_valid());
            assert!((5..=13).contains(&p.exterior().0.len()));
            assert!((parcels::ring_area(&p.exterior().0) - area).abs() < 0.01);
        }
        let mut stmt = store.conn().prepare("SELECT geom FROM trails").unwrap();
        for blob in stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
            let Some(Geometry::LineString(l)) =
                gpkg::decode(&blob.unwrap()).unwrap().decoded.geometry
            else {
                panic!("not a line")
            };
            assert!((50..=2000).contains(&l.0.len()));
            for w in l.0.windows(2) {
                let step = (w[1].x - w[0].x).hypot(w[1].y - w[0].y);
                assert!((9.98..=30.02).contains(&step), "step {step}");
            }
        }
        let over: i64 = store
            .conn()
            .query_row(
                "SELECT count(*) FROM childcare WHERE free_places > capacity",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(over, 0);
    }

    #[test]
    fn refuses_existing_files_and_bad_scales() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gpkg");
        std::fs::write(&p, b"keep me").unwrap();
        assert!(matches!(
            generate(&p, 0.002, 1),
            Err(GenerateError::Exists(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"keep me");
        for bad in [0.0, -1.0, f64::NAN, 1000.0] {
            assert!(matches!(
                generate(&dir.path().join("y.gpkg"), bad, 1),
                Err(GenerateError::Scale(_))
            ));
        }
    }

    #[test]
    fn counts_scale_linearly_with_floors() {
        assert_eq!(
            Counts::for_scale(1.0),
            Counts {
                parcels: 300_000,
                trails: 3_000,
                parking: 2_500,
                childcare: 40
            }
        );
        assert_eq!(
            Counts::for_scale(0.01),
            Counts {
                parcels: 3_000,
                trails: 30,
                parking: 25,
                childcare: 12
            }
        );
        assert_eq!(
            Counts::for_scale(1e-6),
            Counts {
                parcels: 48,
                trails: 24,
                parking: 24,
                childcare: 12
            }
        );
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(999), "999");
    }
}
