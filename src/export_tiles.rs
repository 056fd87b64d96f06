//! The whole tile pyramid into one file (PMTiles or MBTiles), rendered exactly as the
//! server renders it, so the anonymous portal traffic can be served from any static
//! host or CDN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::Compression as Gz;
use flate2::write::GzEncoder;
use pmtiles::{Compression, PmTilesWriter, TileCoord, TileType};
use std::io::Write;

use crate::catalog::{Catalog, Snapshot};
use crate::index::{IndexError, Layer};
use crate::store::{Store, StoreError};
use crate::tiles::{self, Prepared, TileId, TileOptions};

/// Container formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// PMTiles v3 (one file, HTTP range requests).
    Pmtiles,
    /// MBTiles 1.3 (SQLite).
    Mbtiles,
}

/// What to export.
pub struct ExportTiles {
    /// Output file (must not exist unless `force`).
    pub out: PathBuf,
    /// Container.
    pub format: Format,
    /// Lowest zoom.
    pub min_zoom: u8,
    /// Highest zoom.
    pub max_zoom: u8,
    /// Layers (default: every collection readable without a token).
    pub collections: Option<Vec<String>>,
    /// Allow restricted layers and internal properties (an archive not to be published).
    pub include_restricted: bool,
    /// Replace an existing file.
    pub force: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// Why an export failed; a partial output file is removed.
#[derive(Debug, thiserror::Error)]
pub enum ExportTilesError {
    /// Reading the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Loading the layers.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Loading a PostGIS store.
    #[error(transparent)]
    Sync(#[from] crate::catalog::SyncError),
    /// Bad request.
    #[error("{0}")]
    Invalid(String),
    /// Writing the output.
    #[error("cannot write {path}: {msg}")]
    Write {
        /// Output file.
        path: String,
        /// Cause.
        msg: String,
    },
}

/// What an export wrote.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// Tiles with content.
    pub tiles: u64,
    /// Tiles in the range that were empty (not stored).
    pub empty: u64,
    /// Output size in bytes.
    pub bytes: u64,
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ExportTilesError {
    ExportTilesError::Write {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// Every tile of the range over the layers' extent, in PMTiles tile-id order.
fn pyramid(layers: &[&Layer], min_zoom: u8, max_zoom: u8) -> Vec<TileId> {
    let mut ext: Option<[f64; 4]> = None;
    for l in layers {
        if let Some(b) = l.extent {
            crate::geom::bbox_union(&mut ext, b);
        }
    }
    let Some(ext) = ext else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for z in min_zoom..=max_zoom {
        let (x0, y0, x1, y1) = TileId::range(z, ext);
        for x in x0..=x1 {
            for y in y0..=y1 {
                out.push(TileId { z, x, y });
            }
        }
    }
    let id = |t: &TileId| {
        TileCoord::new(t.z, t.x, t.y)
            .map(|c| pmtiles::TileId::from(c).value())
            .unwrap_or(u64::MAX)
    };
    out.sort_by_key(id);
    out
}

/// Renders and writes the pyramid of a GeoPackage store.
pub fn run(store_path: &Path, o: &ExportTiles) -> Result<Summary, ExportTilesError> {
    check(o)?;
    let store = Store::open_read_only(store_path)?;
    run_on(&Catalog::load(&store)?, o)
}

/// Renders and writes the pyramid of a PostGIS store.
pub fn run_postgis(url: &str, schema: &str, o: &ExportTiles) -> Result<Summary, ExportTilesError> {
    check(o)?;
    let source = crate::pg::source::PostGis::connect(url, schema)
        .map_err(crate::catalog::SyncError::from)?;
    let live = crate::catalog::Live::follow(Box::new(source))?;
    run_on(&live.catalog(), o)
}

/// Refuses a zoom range or output the export cannot make, before anything is loaded.
fn check(o: &ExportTiles) -> Result<(), ExportTilesError> {
    if o.min_zoom > o.max_zoom || o.max_zoom > 22 {
        return Err(ExportTilesError::Invalid(format!(
            "zoom range {}..{} is not valid; use 0 <= --minzoom <= --maxzoom <= 22",
            o.min_zoom, o.max_zoom
        )));
    }
    if o.out.exists() && !o.force {
        return Err(ExportTilesError::Invalid(format!(
            "{} exists; pass --force to replace it",
            o.out.display()
        )));
    }
    Ok(())
}

/// Renders and writes the pyramid of a loaded catalog.
pub fn run_on(cat: &Catalog, o: &ExportTiles) -> Result<Summary, ExportTilesError> {
    check(o)?;
    let names: Vec<String> = match &o.collections {
        Some(list) => {
            if let Some(bad) = list.iter().find(|n| cat.get(n).is_none()) {
                return Err(ExportTilesError::Invalid(format!(
                    "the store has no collection '{bad}'"
                )));
            }
            if !o.include_restricted
                && let Some(r) = list
                    .iter()
                    .find(|n| cat.get(n).is_some_and(|l| l.meta.restricted))
            {
                return Err(ExportTilesError::Invalid(format!(
                    "collection '{r}' is restricted, and a tile archive is made for publishing; \
                     leave it out, or add --include-restricted for a file that stays inside"
                )));
            }
            list.clone()
        }
        None => cat
            .layers
            .iter()
            .filter(|l| !l.meta.restricted && l.def.has_geometry())
            .map(|l| l.def.table.clone())
            .collect(),
    };
    let layers: Vec<&Arc<Snapshot>> = names.iter().filter_map(|n| cat.get(n)).collect();
    // Internal properties go into an archive only with --include-restricted.
    let preps: Vec<Prepared> = layers
        .iter()
        .filter(|_| o.include_restricted)
        .map(|l| l.tiles.with_internal(&l.layer))
        .collect();
    let refs: Vec<(&Layer, &Prepared)> = if o.include_restricted {
        layers
            .iter()
            .zip(&preps)
            .map(|(l, p)| (&l.layer, p))
            .collect()
    } else {
        layers.iter().map(|l| (&l.layer, &l.tiles)).collect()
    };
    let plain: Vec<&Layer> = layers.iter().map(|l| &l.layer).collect();
    let list = pyramid(&plain, o.min_zoom, o.max_zoom);
    let bar = if o.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let b = indicatif::ProgressBar::new(list.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} tiles, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let tmp = o.out.with_extension("part");
    let result = write(&tmp, o, &refs, &list, &bar);
    bar.finish_and_clear();
    match result {
        Ok(mut s) => {
            std::fs::rename(&tmp, &o.out).map_err(|e| write_err(&o.out, e))?;
            s.bytes = std::fs::metadata(&o.out).map(|m| m.len()).unwrap_or(0);
            Ok(s)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// TileJSON-style metadata both containers carry.
fn metadata(refs: &[(&Layer, &Prepared)], o: &ExportTiles) -> serde_json::Value {
    let vector_layers: Vec<serde_json::Value> = refs
        .iter()
        .map(|(_, p)| {
            let r = &p.rules;
            // The same field types as the live TileJSON.
            let fields: serde_json::Map<String, serde_json::Value> = r
                .properties
                .iter()
                .map(|(_, n, class)| (n.clone(), serde_json::json!(tiles::field_type(*class))))
                .collect();
            serde_json::json!({"id": r.name, "minzoom": o.min_zoom.max(r.min_zoom),
                               "maxzoom": o.max_zoom, "fields": fields})
        })
        .collect();
    serde_json::json!({"name": "nordgeo", "vector_layers": vector_layers})
}

fn bounds(refs: &[(&Layer, &Prepared)]) -> [f64; 4] {
    let mut b: Option<[f64; 4]> = None;
    for (l, _) in refs {
        if let Some(e) = l.extent_lonlat {
            crate::geom::bbox_union(&mut b, e);
        }
    }
    b.unwrap_or([-180.0, -85.0, 180.0, 85.0])
}

/// Renders every tile of `list` and hands the non-empty ones to `put`.
fn render_all(
    refs: &[(&Layer, &Prepared)],
    list: &[TileId],
    bar: &indicatif::ProgressBar,
    summary: &mut Summary,
    mut put: impl FnMut(TileId, &[u8]) -> Result<(), ExportTilesError>,
) -> Result<(), ExportTilesError> {
    let opts = TileOptions::default();
    for t in list {
        let raw = tiles::render(refs, *t, opts);
        bar.inc(1);
        if raw.is_empty() {
            summary.empty += 1;
            continue;
        }
        put(*t, &raw)?;
        summary.tiles += 1;
    }
    Ok(())
}

fn write(
    path: &Path,
    o: &ExportTiles,
    refs: &[(&Layer, &Prepared)],
    list: &[TileId],
    bar: &indicatif::ProgressBar,
) -> Result<Summary, ExportTilesError> {
    let meta = metadata(refs, o);
    let b = bounds(refs);
    let mut summary = Summary {
        tiles: 0,
        empty: 0,
        bytes: 0,
    };
    let gzip = |raw: &[u8]| -> Result<Vec<u8>, ExportTilesError> {
        let mut enc = GzEncoder::new(Vec::new(), Gz::default());
        enc.write_all(raw).map_err(|e| write_err(path, e))?;
        enc.finish().map_err(|e| write_err(path, e))
    };
    match o.format {
        Format::Pmtiles => {
            let file = std::fs::File::create(path).map_err(|e| write_err(path, e))?;
            let mut w = PmTilesWriter::new(TileType::Mvt)
                .tile_compression(Compression::Gzip)
                .min_zoom(o.min_zoom)
                .max_zoom(o.max_zoom)
                .bounds(b[0], b[1], b[2], b[3])
                .center((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)
                .center_zoom(o.min_zoom.max(10).min(o.max_zoom))
                .metadata(meta.to_string())
                .create(std::io::BufWriter::new(file))
                .map_err(|e| write_err(path, e))?;
            render_all(refs, list, bar, &mut summary, |t, raw| {
                let coord = TileCoord::new(t.z, t.x, t.y).map_err(|e| write_err(path, e))?;
                w.add_tile(coord, raw).map_err(|e| write_err(path, e))
            })?;
            w.finalize().map_err(|e| write_err(path, e))?;
        }
        Format::Mbtiles => {
            let _ = std::fs::remove_file(path);
            let conn = rusqlite::Connection::open(path).map_err(|e| write_err(path, e))?;
            let sql = |e: rusqlite::Error| write_err(path, e);
            conn.execute_batch(
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
                 CREATE TABLE metadata (name TEXT, value TEXT);
                 CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
                 CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
                 BEGIN;",
            )
            .map_err(sql)?;
            for (k, v) in [
                ("name", "nordgeo".to_string()),
                ("format", "pbf".into()),
                ("type", "overlay".into()),
                ("minzoom", o.min_zoom.to_string()),
                ("maxzoom", o.max_zoom.to_string()),
                ("bounds", format!("{},{},{},{}", b[0], b[1], b[2], b[3])),
                (
                    "center",
                    format!(
                        "{},{},{}",
                        (b[0] + b[2]) / 2.0,
                        (b[1] + b[3]) / 2.0,
                        o.min_zoom.max(10).min(o.max_zoom)
                    ),
                ),
                (
                    "json",
                    serde_json::json!({"vector_layers": meta["vector_layers"]}).to_string(),
                ),
            ] {
                conn.execute("INSERT INTO metadata VALUES (?1, ?2)", [k, &v])
                    .map_err(sql)?;
            }
            let mut st = conn
                .prepare("INSERT INTO tiles VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql)?;
            render_all(refs, list, bar, &mut summary, |t, raw| {
                // MBTiles counts rows from the bottom (TMS).
                let row = (1u32 << t.z) - 1 - t.y;
                st.execute(rusqlite::params![t.z, t.x, row, gzip(raw)?])
                    .map(|_| ())
                    .map_err(sql)
            })?;
            drop(st);
            conn.execute_batch("COMMIT;").map_err(sql)?;
        }
    }
    Ok(summary)
}
