//! MBTiles (1.3): an SQLite file with `metadata` and `tiles` (TMS rows), read through a
//! small pool of read-only connections.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::body::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{ArchiveError, ArchiveInfo, Encoding, TileArchive, TileFormat, file_name};

/// Connections kept for reuse; more are opened under load and closed afterwards.
const POOL: usize = 8;

/// An open MBTiles archive.
pub struct Mbtiles {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    info: ArchiveInfo,
    name: String,
    file: String,
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    // Immutable: the file is never written while served (a new one is renamed over it),
    // so SQLite may skip locking on every read.
    let uri = format!(
        "file:{}?immutable=1",
        percent_encoding::utf8_percent_encode(
            &path.to_string_lossy(),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

impl Mbtiles {
    /// Opens and checks an archive: its tables, its metadata, and that SQLite finds the
    /// file whole (`PRAGMA quick_check`).
    pub fn open(name: &str, path: &Path) -> Result<Mbtiles, ArchiveError> {
        let file = file_name(path);
        let corrupt = |msg: String| ArchiveError::Corrupt {
            name: name.into(),
            file: file.clone(),
            kind: "MBTiles",
            msg,
        };
        let conn = connect(path).map_err(|e| corrupt(e.to_string()))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| corrupt(e.to_string()))?;
        if check != "ok" {
            return Err(corrupt(check));
        }
        let meta: Vec<(String, String)> = conn
            .prepare("SELECT name, value FROM metadata")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| corrupt(format!("no metadata table ({e})")))?;
        let get = |k: &str| meta.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let format = match get("format")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("pbf" | "mvt") => TileFormat::Mvt,
            Some("png") => TileFormat::Png,
            Some("jpg" | "jpeg") => TileFormat::Jpeg,
            Some("webp") => TileFormat::Webp,
            Some("avif") => TileFormat::Avif,
            other => {
                return Err(corrupt(format!(
                    "metadata 'format' is {other:?}; expected pbf, png, jpg or webp"
                )));
            }
        };
        // Vector tiles in MBTiles are gzip-compressed (the spec); look at one to be sure.
        let sample: Option<Vec<u8>> = conn
            .query_row("SELECT tile_data FROM tiles LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| corrupt(format!("no tiles table ({e})")))?;
        let encoding = match sample {
            Some(b) if b.starts_with(&[0x1f, 0x8b]) => Encoding::Gzip,
            _ => Encoding::Identity,
        };
        let zooms: (Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT min(zoom_level), max(zoom_level) FROM tiles",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| corrupt(e.to_string()))?;
        let num = |k: &str| get(k).and_then(|v| v.trim().parse::<f64>().ok());
        let list = |k: &str| {
            get(k).and_then(|v| {
                v.split(',')
                    .map(|p| p.trim().parse::<f64>().ok())
                    .collect::<Option<Vec<f64>>>()
            })
        };
        let json: Option<serde_json::Value> =
            get("json").and_then(|j| serde_json::from_str(&j).ok());
        let minzoom = num("minzoom").map_or(zooms.0.unwrap_or(0), |z| z as i64);
        let maxzoom = num("maxzoom").map_or(zooms.1.unwrap_or(0), |z| z as i64);
        let info = ArchiveInfo {
            format,
            encoding,
            minzoom: minzoom.clamp(0, 30) as u8,
            maxzoom: maxzoom.clamp(0, 30) as u8,
            bounds: list("bounds").and_then(|b| b.try_into().ok()),
            center: list("center").and_then(|c| c.try_into().ok()),
            title: get("name"),
            description: get("description"),
            attribution: get("attribution"),
            vector_layers: json.as_ref().and_then(super::vector_layers),
        };
        Ok(Mbtiles {
            path: path.into(),
            pool: Mutex::new(vec![conn]),
            info,
            name: name.into(),
            file,
        })
    }
}

impl TileArchive for Mbtiles {
    fn info(&self) -> &ArchiveInfo {
        &self.info
    }

    fn tile(&self, z: u8, x: u32, y: u32) -> Result<Option<Bytes>, ArchiveError> {
        let fail = |e: rusqlite::Error| ArchiveError::Corrupt {
            name: self.name.clone(),
            file: self.file.clone(),
            kind: "MBTiles",
            msg: e.to_string(),
        };
        if z > 30 || u64::from(y) >= 1u64 << z || u64::from(x) >= 1u64 << z {
            return Ok(None);
        }
        let taken = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match taken {
            Some(c) => c,
            None => connect(&self.path).map_err(fail)?,
        };
        // MBTiles counts rows from the south (TMS).
        let row = (1i64 << z) - 1 - i64::from(y);
        let data: Option<Vec<u8>> = conn
            .prepare_cached(
                "SELECT tile_data FROM tiles WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3",
            )
            .and_then(|mut s| {
                s.query_row(rusqlite::params![z, x, row], |r| r.get(0))
                    .optional()
            })
            .map_err(fail)?;
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL {
            pool.push(conn);
        }
        Ok(data.map(Bytes::from))
    }
}
