//! The tile cache: bounded in bytes, least-recently-used out first, and purged exactly
//! where data changed — the tiles whose buffered bounds touch a changed feature's old or
//! new extent, at every zoom — never wholesale and never by TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;

use super::grid::TileId;
use crate::geom::Bbox;

/// A cached tile body with its validators.
#[derive(Debug)]
pub struct CachedTile {
    /// Uncompressed MVT (empty for an empty tile).
    pub raw: Bytes,
    /// The same, gzip-compressed, made when a client first asks for gzip.
    gzip: OnceLock<Bytes>,
    /// The same, brotli-compressed, made when a client first asks for br.
    br: OnceLock<Bytes>,
    /// Strong ETag (quoted).
    pub etag: String,
}

impl CachedTile {
    /// Wraps a rendered tile and computes its ETag.
    pub fn new(raw: Vec<u8>) -> Self {
        let hash = raw.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
            (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
        });
        CachedTile {
            raw: raw.into(),
            gzip: OnceLock::new(),
            br: OnceLock::new(),
            etag: format!("\"{hash:016x}\""),
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

    /// Bytes this entry is charged in the cache (raw plus the compressed copies clients
    /// may ask for, at their usual ratio).
    fn weight(&self) -> usize {
        self.raw.len() + self.raw.len() / 2 + 64
    }
}

/// Cache key: the ordered layer list and the tile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Layer names, in tile order.
    pub layers: Arc<[String]>,
    /// Tile.
    pub tile: TileId,
}

struct Entry {
    tile: Arc<CachedTile>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<CacheKey, Entry>,
    bytes: usize,
    tick: u64,
}

/// A byte-bounded tile cache.
pub struct TileCache {
    inner: Mutex<Inner>,
    capacity: usize,
    buffer_units: u32,
    extent: u32,
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Lookups that had to render.
    pub misses: AtomicU64,
}

impl TileCache {
    /// A cache holding at most `capacity` bytes (0 disables it).
    pub fn new(capacity: usize, buffer_units: u32, extent: u32) -> Self {
        TileCache {
            inner: Mutex::new(Inner::default()),
            capacity,
            buffer_units,
            extent,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent in a way
        // that matters more than losing the cache, so keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks a tile up.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<CachedTile>> {
        if self.capacity == 0 {
            return None;
        }
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let found = g.map.get_mut(key).map(|e| {
            e.last_used = tick;
            e.tile.clone()
        });
        drop(g);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores a tile, evicting the least recently used ones beyond the capacity.
    pub fn put(&self, key: CacheKey, tile: Arc<CachedTile>) {
        let size = tile.weight();
        if self.capacity == 0 || size > self.capacity / 4 {
            return;
        }
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some(old) = g.map.insert(
            key,
            Entry {
                tile,
                last_used: tick,
            },
        ) {
            g.bytes -= old.tile.weight();
        }
        g.bytes += size;
        if g.bytes > self.capacity {
            let mut by_age: Vec<(u64, CacheKey)> = g
                .map
                .iter()
                .map(|(k, e)| (e.last_used, k.clone()))
                .collect();
            by_age.sort_unstable_by_key(|(t, _)| *t);
            let target = self.capacity * 9 / 10;
            for (_, k) in by_age {
                if g.bytes <= target {
                    break;
                }
                if let Some(e) = g.map.remove(&k) {
                    g.bytes -= e.tile.weight();
                }
            }
        }
    }

    /// Removes every cached tile that contains `layer` and whose buffered bounds (EPSG:3857)
    /// `touches` a change. Returns how many were removed.
    pub fn purge(&self, layer: &str, touches: &dyn Fn(Bbox) -> bool) -> usize {
        let mut g = self.lock();
        let doomed: Vec<CacheKey> = g
            .map
            .keys()
            .filter(|k| k.layers.iter().any(|l| l == layer))
            .filter(|k| touches(k.tile.buffered_bounds(self.buffer_units, self.extent)))
            .cloned()
            .collect();
        for k in &doomed {
            if let Some(e) = g.map.remove(k) {
                g.bytes -= e.tile.weight();
            }
        }
        doomed.len()
    }

    /// (entries, bytes) held.
    pub fn usage(&self) -> (usize, usize) {
        let g = self.lock();
        (g.map.len(), g.bytes)
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

    fn tile(n: usize) -> Arc<CachedTile> {
        Arc::new(CachedTile::new(vec![0; n]))
    }

    #[test]
    fn purge_is_targeted_and_capacity_holds() {
        let c = TileCache::new(10_000, 64, 4096);
        c.put(key(1, 0, 0), tile(100));
        c.put(key(1, 1, 1), tile(100));
        // A change in the north-west quarter purges only that quarter's tile.
        let b = key(1, 0, 0).tile.bounds();
        let inner = [b[0] + 10.0, b[1] + 1e6, b[0] + 20.0, b[1] + 1e6 + 10.0];
        let touches = |tb: Bbox| crate::tiles::grid::intersects(tb, inner);
        assert_eq!(c.purge("parcels", &touches), 1);
        assert!(c.get(&key(1, 0, 0)).is_none());
        assert!(c.get(&key(1, 1, 1)).is_some());
        assert_eq!(c.purge("trails", &touches), 0);
        for i in 0..200 {
            c.put(key(10, i, 0), tile(1000));
        }
        assert!(c.usage().1 <= 10_000);
    }
}
