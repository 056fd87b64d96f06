//! PMTiles v3 through the `pmtiles` crate's reader, with positional reads of the file
//! (no mmap: a file truncated in place must give an error, not a SIGBUS) and its
//! directories in a bounded cache.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use pmtiles::{
    AsyncBackend, AsyncPmTilesReader, BackendResponse, DirEntry, Directory, DirectoryCache,
    PmtResult, TileCoord, TileId,
};

use super::{ArchiveError, ArchiveInfo, Encoding, TileArchive, TileFormat, file_name};

/// Directory bytes kept per archive.
const DIR_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads byte ranges of the file with `pread`.
struct FileBackend {
    file: File,
}

impl AsyncBackend for FileBackend {
    async fn read(&self, offset: u64, length: usize) -> PmtResult<BackendResponse> {
        let mut buf = vec![0u8; length];
        let mut got = 0;
        while got < length {
            match self.file.read_at(&mut buf[got..], offset + got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        Ok(BackendResponse::new(Bytes::from(buf)))
    }
}

/// Leaf directories by offset, weighed by size.
struct DirCache {
    cache: crate::bounded::Cache<u64, Arc<Directory>>,
}

impl DirectoryCache for DirCache {
    async fn get_dir_entry_or_insert(
        &self,
        offset: u64,
        tile_id: TileId,
        fetcher: impl Future<Output = PmtResult<Directory>> + Send,
    ) -> PmtResult<Option<DirEntry>> {
        if let Some(d) = self.cache.get(&offset) {
            return Ok(d.find_tile_id(tile_id).copied());
        }
        let d = Arc::new(fetcher.await?);
        self.cache.insert(offset, d.clone());
        Ok(d.find_tile_id(tile_id).copied())
    }
}

/// An open PMTiles archive.
pub struct Pmtiles {
    reader: AsyncPmTilesReader<FileBackend, DirCache>,
    info: ArchiveInfo,
    name: String,
    file: String,
}

/// The sections a v3 header says the file has (offset, length), for the size check.
fn sections(header: &[u8]) -> Option<[(u64, u64); 4]> {
    let at = |o: usize| -> Option<u64> {
        Some(u64::from_le_bytes(header.get(o..o + 8)?.try_into().ok()?))
    };
    Some([
        (at(8)?, at(16)?),
        (at(24)?, at(32)?),
        (at(40)?, at(48)?),
        (at(56)?, at(64)?),
    ])
}

impl Pmtiles {
    /// Opens and checks an archive: header, root directory, metadata, and that the file
    /// holds every section its header names (a truncated copy is refused here).
    pub fn open(name: &str, path: &Path) -> Result<Pmtiles, ArchiveError> {
        let file_label = file_name(path);
        let corrupt = |msg: String| ArchiveError::Corrupt {
            name: name.into(),
            file: file_label.clone(),
            kind: "PMTiles",
            msg,
        };
        let io = |e: std::io::Error| ArchiveError::Io {
            name: name.into(),
            file: file_label.clone(),
            msg: e.to_string(),
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut head = [0u8; 127];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| corrupt(format!("no complete header ({e})")))?;
        let secs = sections(&head).ok_or_else(|| corrupt("bad header".into()))?;
        if let Some((o, l)) = secs.iter().find(|(o, l)| o.saturating_add(*l) > len) {
            return Err(corrupt(format!(
                "the header names bytes {o}..{} but the file has {len} (truncated?)",
                o.saturating_add(*l)
            )));
        }
        let cache = DirCache {
            cache: crate::bounded::cache(DIR_CACHE_BYTES, 64 * 1024, |_, d: &Arc<Directory>| {
                d.get_approx_byte_size() as u64
            }),
        };
        let reader = block_on(AsyncPmTilesReader::try_from_cached_source(
            FileBackend { file },
            cache,
        ))
        .ok_or_else(|| corrupt(PENDING.into()))?
        .map_err(|e| corrupt(e.to_string()))?;
        let h = reader.get_header();
        let format = match h.tile_type {
            pmtiles::TileType::Mvt => TileFormat::Mvt,
            pmtiles::TileType::Png => TileFormat::Png,
            pmtiles::TileType::Jpeg => TileFormat::Jpeg,
            pmtiles::TileType::Webp => TileFormat::Webp,
            pmtiles::TileType::Avif => TileFormat::Avif,
            other => return Err(corrupt(format!("unknown tile type {other:?}"))),
        };
        let encoding = match h.tile_compression {
            pmtiles::Compression::None => Encoding::Identity,
            pmtiles::Compression::Gzip => Encoding::Gzip,
            pmtiles::Compression::Brotli => Encoding::Brotli,
            pmtiles::Compression::Zstd => Encoding::Zstd,
            other => return Err(corrupt(format!("unknown tile compression {other:?}"))),
        };
        let meta: serde_json::Value =
            match block_on(reader.get_metadata()).ok_or_else(|| corrupt(PENDING.into()))? {
                Ok(text) => serde_json::from_str(&text)
                    .map_err(|e| corrupt(format!("the metadata is not JSON ({e})")))?,
                Err(pmtiles::PmtError::InvalidMetadata) => serde_json::Value::Null,
                Err(e) => return Err(corrupt(format!("the metadata cannot be read ({e})"))),
            };
        let text = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let info = ArchiveInfo {
            format,
            encoding,
            minzoom: h.min_zoom,
            maxzoom: h.max_zoom,
            bounds: Some([
                h.min_longitude,
                h.min_latitude,
                h.max_longitude,
                h.max_latitude,
            ]),
            center: Some([
                h.center_longitude,
                h.center_latitude,
                f64::from(h.center_zoom),
            ]),
            title: text("name"),
            description: text("description"),
            attribution: text("attribution"),
            vector_layers: super::vector_layers(&meta),
        };
        Ok(Pmtiles {
            reader,
            info,
            name: name.into(),
            file: file_label,
        })
    }
}

/// Runs a future of the crate's reader to its end: with our backend it never waits on
/// anything but a `pread` (and in-memory decompression), so it is ready at once; one
/// that is not is given up rather than spun on.
fn block_on<F: Future>(f: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    for _ in 0..64 {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}

const PENDING: &str = "the reader waited on something other than the file";

impl TileArchive for Pmtiles {
    fn info(&self) -> &ArchiveInfo {
        &self.info
    }

    fn tile(&self, z: u8, x: u32, y: u32) -> Result<Option<Bytes>, ArchiveError> {
        let Ok(coord) = TileCoord::new(z, x, y) else {
            return Ok(None);
        };
        let corrupt = |msg: String| ArchiveError::Corrupt {
            name: self.name.clone(),
            file: self.file.clone(),
            kind: "PMTiles",
            msg,
        };
        block_on(self.reader.get_tile(coord))
            .ok_or_else(|| corrupt(PENDING.into()))?
            .map_err(|e| corrupt(e.to_string()))
    }
}
