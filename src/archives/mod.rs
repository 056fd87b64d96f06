//! Tile archives served as they are: PMTiles v3 and MBTiles files named in the
//! configuration (`[archives.NAME] path = "FILE"`), vector or raster, each behind the
//! [`TileArchive`] trait of its kind. Tiles leave in the archive's own compression,
//! never re-rendered or decompressed on the way; a file replaced by an atomic rename is
//! picked up on the next request ([`live::LiveArchive`]).

pub mod live;
pub mod mbtiles;
pub mod pmtiles;
pub mod watch;

use std::path::PathBuf;

use axum::body::Bytes;

/// Errors reading an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The file cannot be opened or read.
    #[error("tile archive '{name}' ({file}) cannot be read: {msg}")]
    Io {
        /// Archive name.
        name: String,
        /// The file's name (no directories: never sent to clients).
        file: String,
        /// What went wrong.
        msg: String,
    },
    /// The file is not an archive of its kind, or damaged.
    #[error(
        "tile archive '{name}' ({file}) is damaged or not a {kind} file: {msg}; replace it with a complete copy"
    )]
    Corrupt {
        /// Archive name.
        name: String,
        /// The file's name.
        file: String,
        /// PMTiles or MBTiles.
        kind: &'static str,
        /// What is wrong.
        msg: String,
    },
}

/// What the tiles are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileFormat {
    /// Mapbox Vector Tiles.
    Mvt,
    /// PNG images.
    Png,
    /// JPEG images.
    Jpeg,
    /// WebP images.
    Webp,
    /// AVIF images.
    Avif,
}

impl TileFormat {
    /// The media type of a tile.
    pub fn content_type(self) -> &'static str {
        match self {
            TileFormat::Mvt => "application/vnd.mapbox-vector-tile",
            TileFormat::Png => "image/png",
            TileFormat::Jpeg => "image/jpeg",
            TileFormat::Webp => "image/webp",
            TileFormat::Avif => "image/avif",
        }
    }

    /// Whether the tiles are vector tiles.
    pub fn is_vector(self) -> bool {
        self == TileFormat::Mvt
    }

    /// The MBTiles `format` value or file extension.
    pub fn extension(self) -> &'static str {
        match self {
            TileFormat::Mvt => "pbf",
            TileFormat::Png => "png",
            TileFormat::Jpeg => "jpg",
            TileFormat::Webp => "webp",
            TileFormat::Avif => "avif",
        }
    }
}

/// How the stored tile bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Not compressed.
    Identity,
    /// gzip.
    Gzip,
    /// Brotli.
    Brotli,
    /// Zstandard.
    Zstd,
}

impl Encoding {
    /// The `Content-Encoding` token, if any.
    pub fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
            Encoding::Zstd => Some("zstd"),
        }
    }
}

/// What an archive says about itself (for TileJSON and the tileset metadata).
#[derive(Debug, Clone)]
pub struct ArchiveInfo {
    /// Tile format.
    pub format: TileFormat,
    /// Compression of the stored tiles.
    pub encoding: Encoding,
    /// Zoom range.
    pub minzoom: u8,
    /// Zoom range.
    pub maxzoom: u8,
    /// Bounds, lon/lat.
    pub bounds: Option<[f64; 4]>,
    /// Centre lon, lat, zoom.
    pub center: Option<[f64; 3]>,
    /// Name from the metadata.
    pub title: Option<String>,
    /// Description from the metadata.
    pub description: Option<String>,
    /// Attribution (HTML) from the metadata.
    pub attribution: Option<String>,
    /// `vector_layers` from the metadata (vector archives).
    pub vector_layers: Option<serde_json::Value>,
}

/// One kind of tile archive.
pub trait TileArchive: Send + Sync {
    /// What it holds.
    fn info(&self) -> &ArchiveInfo;
    /// The stored bytes of tile z/x/y (XYZ), `None` when the archive has no such tile.
    fn tile(&self, z: u8, x: u32, y: u32) -> Result<Option<Bytes>, ArchiveError>;
}

/// Opens an archive by its file's content (PMTiles magic, else SQLite/MBTiles).
pub fn open(name: &str, path: &std::path::Path) -> Result<Box<dyn TileArchive>, ArchiveError> {
    let file = file_name(path);
    let mut magic = [0u8; 16];
    let read = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read;
        f.read(&mut magic)
    });
    let n = read.map_err(|e| ArchiveError::Io {
        name: name.into(),
        file: file.clone(),
        msg: e.to_string(),
    })?;
    if magic[..n.min(7)] == *b"PMTiles" {
        Ok(Box::new(pmtiles::Pmtiles::open(name, path)?))
    } else if magic[..n] == *b"SQLite format 3\0" {
        Ok(Box::new(mbtiles::Mbtiles::open(name, path)?))
    } else {
        Err(ArchiveError::Corrupt {
            name: name.into(),
            file,
            kind: "PMTiles or MBTiles",
            msg: "it starts neither like a PMTiles nor like an SQLite file".into(),
        })
    }
}

/// The file's name without its directories (errors go to clients).
pub fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A configured archive.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSettings {
    /// The PMTiles or MBTiles file.
    pub path: PathBuf,
    /// Attribution (HTML) shown with its tiles, when the file has none or a wrong one.
    #[serde(default)]
    pub attribution: Option<String>,
}

/// `vector_layers` from an archive's metadata, where writers put it: at the top
/// (tippecanoe, Planetiler) or inside MBTiles' `json` text, which converters copy into
/// PMTiles as a string. Entries without an id are dropped and `fields` is made the object
/// of strings TileJSON 3.0 requires.
pub fn vector_layers(meta: &serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    let nested = meta
        .get("json")
        .and_then(Value::as_str)
        .and_then(|t| serde_json::from_str::<Value>(t).ok());
    let layers = meta
        .get("vector_layers")
        .or_else(|| nested.as_ref().and_then(|n| n.get("vector_layers")))?
        .as_array()?;
    let clean = layers
        .iter()
        .filter_map(|l| {
            let mut l = l.as_object()?.clone();
            l.get("id")?.as_str()?;
            let fields = l
                .get("fields")
                .and_then(Value::as_object)
                .map(|f| {
                    f.iter()
                        .map(|(k, v)| {
                            let t = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                            (k.clone(), Value::String(t))
                        })
                        .collect()
                })
                .unwrap_or_default();
            l.insert("fields".into(), Value::Object(fields));
            Some(Value::Object(l))
        })
        .collect();
    Some(Value::Array(clean))
}
