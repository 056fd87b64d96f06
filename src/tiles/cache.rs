//! The tile cache: bounded in bytes (keys and values both charged), evicted by
//! `quick_cache`'s frequency-aware policy (CLOCK-Pro: hot, cold and ghost entries; see
//! `crate::bounded`). Every entry carries the generation of each of its layers when
//! it was rendered; before a cached tile is served the caller checks that nothing
//! changed under it since (see `catalog::Recent`), so correctness never depends on the
//! order in which a render, a commit and a purge happen. Entries found stale are
//! replaced; the rest are never purged wholesale and never by age.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;

use super::grid::TileId;

/// A cached tile body with its validators.
#[derive(Debug)]
pub struct CachedTile {
    /// Uncompressed MVT (empty for an empty tile).
    pub raw: Bytes,
    /// The same, gzip-compressed, made when a client first asks for gzip.
    gzip: OnceLock<Bytes>,
    /// The same, brotli-compressed, made when a client first asks for br.
    br: OnceLock<Bytes>,
    /// Strong ETag (quoted), as the header value it is sent as on every hit.
    pub etag: axum::http::HeaderValue,
    /// Per layer of the key: the generation its content is known to be current at.
    generations: Box<[AtomicU64]>,
}

impl CachedTile {
    /// Wraps a rendered tile, its layers' generations, and computes its ETag.
    pub fn new(raw: Vec<u8>, generations: &[u64]) -> Self {
        // xxh3: the byte-at-a-time FNV-1a it replaces was 6 % of an uncached tile.
        let hash = twox_hash::XxHash3_64::oneshot(&raw);
        CachedTile {
            raw: raw.into(),
            gzip: OnceLock::new(),
            br: OnceLock::new(),
            etag: axum::http::HeaderValue::from_str(&format!("\"{hash:016x}\""))
                .unwrap_or_else(|_| axum::http::HeaderValue::from_static("\"0\"")),
            generations: generations.iter().map(|&g| AtomicU64::new(g)).collect(),
        }
    }

    /// The generation layer `i` of the key had when this tile was last known current.
    pub fn generation(&self, i: usize) -> u64 {
        self.generations
            .get(i)
            .map_or(0, |g| g.load(Ordering::Acquire))
    }

    /// Records that layer `i` is unchanged under this tile up to generation `g`.
    pub fn confirm(&self, i: usize, g: u64) {
        if let Some(x) = self.generations.get(i) {
            x.fetch_max(g, Ordering::AcqRel);
        }
    }

    /// The gzip-compressed body (compressed once, on first use).
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get_or_init(|| {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.raw.len() / 2),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(&self.raw);
            enc.finish().unwrap_or_default().into()
        })
    }

    /// The brotli-compressed body (compressed once, on first use; quality 5 is about
    /// gzip's speed with smaller output).
    pub fn br(&self) -> &Bytes {
        self.br.get_or_init(|| {
            let mut out = Vec::with_capacity(self.raw.len() / 2);
            let params = brotli::enc::BrotliEncoderParams {
                quality: 5,
                ..Default::default()
            };
            // Reading from a slice and writing into a Vec cannot fail.
            let _ = brotli::BrotliCompress(&mut &self.raw[..], &mut out, &params);
            out.into()
        })
    }

    /// Bytes this entry is charged (raw plus the compressed copies clients may ask for,
    /// at their usual ratio, plus bookkeeping).
    fn weight(&self) -> usize {
        self.raw.len() + self.raw.len() / 2 + self.etag.len() + 8 * self.generations.len() + 160
    }
}

/// Cache key: the canonical layer list (store order, no repeats) and the tile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Layer names, in tile order.
    pub layers: Arc<[String]>,
    /// Tile.
    pub tile: TileId,
}

impl CacheKey {
    fn weight(&self) -> usize {
        64 + self.layers.iter().map(|l| l.len() + 24).sum::<usize>()
    }
}

/// A tile of the mix is ~8 KB: the cache's table is sized for that many entries.
const TYPICAL_ENTRY: usize = 8 * 1024;

/// A byte-bounded tile cache.
pub struct TileCache {
    inner: Option<crate::bounded::Cache<CacheKey, Arc<CachedTile>>>,
}

impl TileCache {
    /// A cache holding at most `capacity` bytes (0 disables it).
    pub fn new(capacity: usize) -> Self {
        let inner = (capacity > 0).then(|| {
            crate::bounded::cache(
                capacity as u64,
                TYPICAL_ENTRY as u64,
                |k: &CacheKey, v: &Arc<CachedTile>| (k.weight() + v.weight()) as u64,
            )
        });
        TileCache { inner }
    }

    /// Looks a tile up.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<CachedTile>> {
        self.inner.as_ref()?.get(key)
    }

    /// Stores a tile (one larger than a quarter of the cache, the share of one of its
    /// four shards, is not kept).
    pub fn put(&self, key: CacheKey, tile: Arc<CachedTile>) {
        if let Some(c) = &self.inner
            && (key.weight() + tile.weight()) as u64 <= c.shard_capacity()
        {
            c.insert(key, tile);
        }
    }

    /// Drops a tile found stale.
    pub fn remove(&self, key: &CacheKey) {
        if let Some(c) = &self.inner {
            c.remove(key);
        }
    }

    /// (entries, bytes) held.
    pub fn usage(&self) -> (u64, u64) {
        match &self.inner {
            Some(c) => (c.len() as u64, c.weight()),
            None => (0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(z: u32, x: u32, y: u32) -> CacheKey {
        CacheKey {
            layers: Arc::from(vec!["parcels".to_string()]),
            tile: TileId::new(z, x, y).unwrap(),
        }
    }

    #[test]
    fn capacity_holds_keys_included() {
        let c = TileCache::new(100_000);
        for i in 0..2_000 {
            c.put(key(14, i, 0), Arc::new(CachedTile::new(vec![0; 100], &[1])));
        }
        let (_, bytes) = c.usage();
        assert!(bytes <= 100_000, "{bytes}");
        let t = CachedTile::new(vec![1, 2, 3], &[4, 9]);
        t.confirm(0, 7);
        t.confirm(1, 3);
        assert_eq!((t.generation(0), t.generation(1)), (7, 9));
    }
}
