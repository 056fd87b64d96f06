//! A direct Mapbox Vector Tile 2.1 encoder: protobuf written by hand, keys and values
//! deduplicated per layer. Chosen over the `mvt` crate and geozero's writer by
//! measurement (see README, "Tile encoding").

use std::collections::HashMap;

/// MVT geometry types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeomType {
    /// Point / MultiPoint.
    Point = 1,
    /// LineString / MultiLineString.
    LineString = 2,
    /// Polygon / MultiPolygon.
    Polygon = 3,
}

/// A property value as MVT stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum MvtValue {
    /// string_value.
    Str(String),
    /// int_value / sint_value.
    Int(i64),
    /// double_value.
    Double(f64),
    /// bool_value.
    Bool(bool),
}

#[derive(Hash, PartialEq, Eq)]
enum ValueKey {
    Str(String),
    Int(i64),
    Double(u64),
    Bool(bool),
}

impl MvtValue {
    fn key(&self) -> ValueKey {
        match self {
            MvtValue::Str(s) => ValueKey::Str(s.clone()),
            MvtValue::Int(i) => ValueKey::Int(*i),
            MvtValue::Double(d) => ValueKey::Double(d.to_bits()),
            MvtValue::Bool(b) => ValueKey::Bool(*b),
        }
    }
}

/// Appends `v` as a protobuf varint.
pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The most bytes one step between two i32 coordinates takes as a zigzag varint.
const MAX_STEP_BYTES: usize = 5;

/// Writes `v` (a zigzag step, under 2^35) as a varint at `buf[at..]`; the end.
#[inline(always)]
fn put_varint(buf: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        buf[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
    at + 1
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn bytes_field(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Builds features' geometry command streams, already varint-encoded, one after the
/// other: a feature's length is then known for the tile budget, and a layer's streams
/// lie in one buffer ([`GeomEncoder::take`]) without a copy per feature.
#[derive(Default)]
pub struct GeomEncoder {
    bytes: Vec<u8>,
    /// Where the current feature's stream starts.
    start: usize,
    x: i32,
    y: i32,
}

impl GeomEncoder {
    /// Forgets every stream and starts a feature.
    pub fn reset(&mut self) {
        self.bytes.clear();
        self.next_feature();
    }

    /// Starts a feature after the ones written (the cursor starts at 0,0 per feature).
    pub fn next_feature(&mut self) {
        self.start = self.bytes.len();
        self.x = 0;
        self.y = 0;
    }

    /// Where the current feature's stream starts among every feature's.
    pub fn offset(&self) -> usize {
        self.start
    }

    /// Every feature's streams, one after the other, leaving the encoder empty with
    /// room for `capacity` bytes.
    pub fn take(&mut self, capacity: usize) -> Vec<u8> {
        self.start = 0;
        std::mem::replace(&mut self.bytes, Vec::with_capacity(capacity))
    }

    /// Whether nothing was written for the current feature.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == self.start
    }

    fn command(&mut self, id: u32, count: usize) {
        varint(&mut self.bytes, (id | ((count as u32) << 3)) as u64);
    }

    /// The steps to each of `pts` from the cursor before it. The buffer is grown once
    /// to the most they can take and cut back after: a push per byte (a capacity check
    /// each) was 5 % of render time.
    fn params(&mut self, pts: &[[i32; 2]]) {
        let start = self.bytes.len();
        self.bytes.resize(start + pts.len() * 2 * MAX_STEP_BYTES, 0);
        let buf = &mut self.bytes[start..];
        let mut at = 0;
        let (mut x, mut y) = (self.x, self.y);
        for p in pts {
            at = put_varint(buf, at, zigzag(p[0] as i64 - x as i64));
            at = put_varint(buf, at, zigzag(p[1] as i64 - y as i64));
            (x, y) = (p[0], p[1]);
        }
        self.bytes.truncate(start + at);
        (self.x, self.y) = (x, y);
    }

    /// Points (one MoveTo with all of them).
    pub fn points(&mut self, pts: &[[i32; 2]]) {
        if pts.is_empty() {
            return;
        }
        self.command(1, pts.len());
        self.params(pts);
    }

    /// A line of ≥ 2 points with no repeated consecutive points.
    pub fn line(&mut self, pts: &[[i32; 2]]) {
        self.command(1, 1);
        self.params(&pts[..1]);
        self.command(2, pts.len() - 1);
        self.params(&pts[1..]);
    }

    /// A ring of ≥ 3 points, not repeating its first point at the end.
    pub fn ring(&mut self, pts: &[[i32; 2]]) {
        self.line(pts);
        self.command(7, 1);
    }

    /// The current feature's encoded command stream (its length is the bytes it adds
    /// to a tile).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Encodes one property value as the bytes of an MVT `Value` message.
pub fn encode_value(v: &MvtValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    match v {
        MvtValue::Str(s) => encode_str(&mut out, s),
        MvtValue::Double(d) => {
            out.push(0x19);
            out.extend_from_slice(&d.to_le_bytes());
        }
        MvtValue::Int(i) if *i >= 0 => {
            out.push(0x28);
            varint(&mut out, *i as u64);
        }
        MvtValue::Int(i) => {
            out.push(0x30);
            varint(&mut out, zigzag(*i));
        }
        MvtValue::Bool(b) => {
            out.push(0x38);
            out.push(*b as u8);
        }
    }
    out
}

/// Appends the MVT `Value` message of a string (without making an [`MvtValue`]).
pub fn encode_str(out: &mut Vec<u8>, s: &str) {
    bytes_field(out, 0x0A, s.as_bytes());
}

/// Maps a layer dictionary's value ids to a tile's value indices; reused across tiles
/// so the hot path neither hashes nor clones property values. An open-addressing table
/// sized to the tile's values, not an array over the whole dictionary: a lookup in that
/// array (1.2 MB for 300,000 parcels) missed the cache for nearly every new value and
/// took 5 % of a parcels tile.
#[derive(Default)]
pub struct ValueMap {
    /// (dictionary id, tile index); [`ValueMap::EMPTY`] marks a free slot.
    slots: Vec<(u32, u32)>,
    /// Slots in use, to free only those.
    used: Vec<u32>,
}

impl ValueMap {
    const EMPTY: u32 = u32::MAX;

    fn slot(&self, global: u32) -> usize {
        // Fibonacci hashing: consecutive ids (the values of neighbouring features) spread.
        let mask = self.slots.len() - 1;
        ((global as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
    }

    fn get_or_insert(&mut self, global: u32, next: u32) -> (u32, bool) {
        if (self.used.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(global);
        loop {
            match self.slots[i] {
                (g, local) if g == global => return (local, false),
                (g, _) if g == Self::EMPTY => {
                    self.slots[i] = (global, next);
                    self.used.push(i as u32);
                    return (next, true);
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Records a dictionary id; whether it was new since [`ValueMap::prepare`].
    pub fn insert(&mut self, global: u32) -> bool {
        self.get_or_insert(global, 0).1
    }

    fn grow(&mut self) {
        let entries: Vec<(u32, u32)> = self.used.iter().map(|&i| self.slots[i as usize]).collect();
        self.slots = vec![(Self::EMPTY, 0); (self.slots.len() * 2).max(256)];
        self.used.clear();
        for (g, local) in entries {
            self.get_or_insert(g, local);
        }
    }

    /// Forgets the mapping of the last layer and readies the table for a layer of at
    /// most about `values` distinct values: a table left large by a low-zoom tile would
    /// spread a small tile's values over more cache lines than it needs.
    pub fn prepare(&mut self, values: usize) {
        for &i in &self.used {
            self.slots[i as usize] = (Self::EMPTY, 0);
        }
        self.used.clear();
        let want = (values.saturating_mul(2))
            .next_power_of_two()
            .clamp(256, 1 << 24);
        if self.slots.len() < want || self.slots.len() > 4 * want {
            self.slots = vec![(Self::EMPTY, 0); want];
        }
    }
}

/// The value id of [`LayerWriter::add_dict`] for a value no other feature has: written
/// without a lookup.
pub const UNSHARED: u32 = u32::MAX;

/// One MVT layer being written.
pub struct LayerWriter {
    name: String,
    extent: u32,
    /// Property names, found by a scan: a layer has a handful, and a hash map of them
    /// cost two allocations per key per tile.
    keys: Vec<String>,
    values: Vec<u8>,
    n_values: u32,
    val_idx: HashMap<ValueKey, u32>,
    features: Vec<u8>,
    count: usize,
    tags: Vec<u32>,
}

impl LayerWriter {
    /// A new, empty layer.
    pub fn new(name: &str, extent: u32) -> Self {
        LayerWriter {
            name: name.into(),
            extent,
            keys: Vec::new(),
            values: Vec::new(),
            n_values: 0,
            val_idx: HashMap::new(),
            features: Vec::new(),
            count: 0,
            tags: Vec::new(),
        }
    }

    /// Makes room for about `features` bytes of features and `values` bytes of values,
    /// so a large tile is not built by repeated doubling and copying.
    pub fn reserve(&mut self, features: usize, values: usize) {
        self.features.reserve(features);
        self.values.reserve(values);
    }

    /// Number of features written.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no feature was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The tile index of a key, registering it on first use.
    pub fn key(&mut self, k: &str) -> u32 {
        if let Some(i) = self.keys.iter().position(|x| x == k) {
            return i as u32;
        }
        self.keys.push(k.to_string());
        self.keys.len() as u32 - 1
    }

    fn push_value(&mut self, encoded: &[u8]) -> u32 {
        bytes_field(&mut self.values, 0x22, encoded);
        self.n_values += 1;
        self.n_values - 1
    }

    /// Appends a feature. `props` are (key, value) pairs, each key at most once.
    pub fn add(
        &mut self,
        id: Option<u64>,
        kind: GeomType,
        geom: &GeomEncoder,
        props: &[(&str, MvtValue)],
    ) {
        let mut tags = std::mem::take(&mut self.tags);
        tags.clear();
        for (k, v) in props {
            let ki = self.key(k);
            let vk = v.key();
            let vi = match self.val_idx.get(&vk) {
                Some(&i) => i,
                None => {
                    let i = self.push_value(&encode_value(v));
                    self.val_idx.insert(vk, i);
                    i
                }
            };
            tags.push(ki);
            tags.push(vi);
        }
        self.write_feature(id, kind, geom.bytes(), &tags);
        self.tags = tags;
    }

    /// Appends a feature whose values come from a layer dictionary: `geom` is its
    /// encoded command stream ([`GeomEncoder::bytes`]), `props` are (tile key index,
    /// dictionary value id or [`UNSHARED`], encoded value).
    pub fn add_dict(
        &mut self,
        id: Option<u64>,
        kind: GeomType,
        geom: &[u8],
        props: &[(u32, u32, &[u8])],
        map: &mut ValueMap,
    ) {
        let mut tags = std::mem::take(&mut self.tags);
        tags.clear();
        for &(ki, global, bytes) in props {
            let (vi, new) = if global == UNSHARED {
                (self.n_values, true)
            } else {
                map.get_or_insert(global, self.n_values)
            };
            if new {
                self.push_value(bytes);
            }
            tags.push(ki);
            tags.push(vi);
        }
        self.write_feature(id, kind, geom, &tags);
        self.tags = tags;
    }

    fn write_feature(&mut self, id: Option<u64>, kind: GeomType, geom: &[u8], tags: &[u32]) {
        // The feature's length is known before it is written, so it goes straight into
        // the layer's buffer (no scratch copy: copies were 7 % of an uncached tile).
        let tags_len: usize = tags.iter().map(|&t| varint_len(t as u64)).sum();
        let cmds_len = geom.len();
        let len = feature_len(id, tags_len, cmds_len);
        let f = &mut self.features;
        f.reserve(1 + varint_len(len as u64) + len);
        f.push(0x12);
        varint(f, len as u64);
        if let Some(id) = id {
            f.push(0x08);
            varint(f, id);
        }
        if !tags.is_empty() {
            f.push(0x12);
            varint(f, tags_len as u64);
            for &t in tags {
                varint(f, t as u64);
            }
        }
        f.push(0x18);
        varint(f, kind as u64);
        f.push(0x22);
        varint(f, cmds_len as u64);
        f.extend_from_slice(geom);
        self.count += 1;
    }

    /// Appends the finished layer to a tile buffer (nothing for an empty layer), its
    /// parts copied once, straight into the tile.
    pub fn finish(self, tile: &mut Vec<u8>) {
        if self.count == 0 {
            return;
        }
        let field = |b: &[u8]| 1 + varint_len(b.len() as u64) + b.len();
        let len = 2
            + field(self.name.as_bytes())
            + self.features.len()
            + self.keys.iter().map(|k| field(k.as_bytes())).sum::<usize>()
            + self.values.len()
            + 1
            + varint_len(self.extent as u64);
        tile.reserve(1 + varint_len(len as u64) + len);
        tile.push(0x1A);
        varint(tile, len as u64);
        tile.push(0x78); // version = 2
        varint(tile, 2);
        bytes_field(tile, 0x0A, self.name.as_bytes());
        tile.extend_from_slice(&self.features);
        for k in &self.keys {
            bytes_field(tile, 0x1A, k.as_bytes());
        }
        tile.extend_from_slice(&self.values);
        tile.push(0x28);
        varint(tile, self.extent as u64);
    }
}

/// The fewest bytes [`LayerWriter::add_dict`] adds to a layer's features for a
/// feature with this id, `cmds` bytes of geometry and `tags` properties: every value
/// index taken as one byte.
pub fn feature_floor(id: Option<u64>, cmds: usize, tags: usize) -> usize {
    let inner = feature_len(id, 2 * tags, cmds);
    1 + varint_len(inner as u64) + inner
}

/// The length of a feature message (what follows its tag and length): its id, its
/// `tags_len` bytes of packed tags (none: no tags field), its type (one byte: 1 to 3)
/// and its `cmds` bytes of geometry.
fn feature_len(id: Option<u64>, tags_len: usize, cmds: usize) -> usize {
    let id = id.map_or(0, |id| 1 + varint_len(id));
    let tags = match tags_len {
        0 => 0,
        n => 1 + varint_len(n as u64) + n,
    };
    id + tags + 2 + 1 + varint_len(cmds as u64) + cmds
}

/// The bytes a new value of `len` encoded bytes adds to a layer's values.
pub fn value_bytes(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The bytes that value indices past the first 128 of a layer add beyond the one
/// [`feature_floor`] counts: `count` values of a layer, each referenced at least once,
/// have distinct indices, at least 0, 1, …, count - 1.
pub fn index_floor(count: usize) -> usize {
    (1..4).map(|k| count.saturating_sub(1 << (7 * k))).sum()
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_map_keeps_every_id_until_prepared_again() {
        let mut m = ValueMap::default();
        m.prepare(10);
        // Past the hint: the table grows and keeps what it had.
        for g in 0..5_000u32 {
            assert_eq!(m.get_or_insert(g * 7, g), (g, true));
        }
        for g in 0..5_000u32 {
            assert_eq!(m.get_or_insert(g * 7, 99), (g, false));
        }
        m.prepare(10);
        assert_eq!(m.get_or_insert(7, 0), (0, true));
        assert!(m.slots.len() <= 256);
    }

    #[test]
    fn the_floor_never_exceeds_what_is_written() {
        // Features with two values no other feature has and one of five shared ones:
        // the floor (shared values already written, their indices one byte) stays at
        // or under what the writer wrote, and short of it by no more than it leaves out.
        let mut map = ValueMap::default();
        map.prepare(16);
        let mut l = LayerWriter::new("p", 4096);
        let mut floor = 0;
        let mut once = 0;
        let mut g = GeomEncoder::default();
        for i in 0..3_000u32 {
            g.reset();
            g.ring(&[[0, 0], [i as i32, 3], [7, (i % 300) as i32]]);
            let unique = format!("FL-{i:07}").into_bytes();
            let shared = b"Werther".as_slice();
            let props = [
                (0, UNSHARED, unique.as_slice()),
                (1, i % 5, shared),
                (2, UNSHARED, b"x".as_slice()),
            ];
            let id = (i % 7 != 0).then_some(i as u64 * 977);
            l.add_dict(id, GeomType::Polygon, g.bytes(), &props, &mut map);
            floor += feature_floor(id, g.bytes().len(), 3) + value_bytes(unique.len()) + 3;
            once += 2;
        }
        floor += index_floor(once);
        let written = l.features.len() + l.values.len();
        assert!(floor <= written, "{floor} > {written}");
        // Left out: the 5 shared values and 2 bytes for each of their 3,000 indices
        // past 127 (at most).
        assert!(
            written - floor <= 5 * 10 + 3_000 * 2,
            "{floor} vs {written}"
        );
        // With the shared values counted once each (as `shared_value_floor` adds them
        // to a tile near its budget) and the layer's indices taken over all values,
        // the floor is still at or under what was written, and nearly all of it.
        let tight =
            floor + 5 * value_bytes(b"Werther".len()) + index_floor(once + 5) - index_floor(once);
        assert!(tight <= written, "{tight} > {written}");
        assert!(written - tight <= written / 100, "{tight} vs {written}");
        assert_eq!(index_floor(128), 0);
        assert_eq!(index_floor(130), 2);
        assert_eq!(index_floor(16_385), 16_385 - 128 + 1);
    }

    #[test]
    fn spec_example_point() {
        // From the MVT spec: a point at (25, 17) is [9, 50, 34].
        let mut g = GeomEncoder::default();
        g.points(&[[25, 17]]);
        assert_eq!(g.bytes(), [9, 50, 34]);
        // and a line (2,2) (2,10) (10,10) is [9, 4, 4, 18, 0, 16, 16, 0].
        g.reset();
        g.line(&[[2, 2], [2, 10], [10, 10]]);
        assert_eq!(g.bytes(), [9, 4, 4, 18, 0, 16, 16, 0]);
        // A step of 100 units is two bytes: zigzag(100) = 200 = 0xC8 0x01.
        g.reset();
        g.line(&[[0, 0], [100, 0]]);
        assert_eq!(g.bytes(), [9, 0, 0, 10, 0xC8, 0x01, 0]);
    }

    #[test]
    fn values_are_deduplicated() {
        let mut g = GeomEncoder::default();
        g.points(&[[1, 1]]);
        let mut l = LayerWriter::new("p", 4096);
        l.add(
            Some(1),
            GeomType::Point,
            &g,
            &[("a", MvtValue::Int(5)), ("b", MvtValue::Str("x".into()))],
        );
        l.add(Some(2), GeomType::Point, &g, &[("a", MvtValue::Int(5))]);
        assert_eq!((l.keys.len(), l.n_values), (2, 2));
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(0), 1);
        let mut tile = Vec::new();
        l.finish(&mut tile);
        assert_eq!(tile[0], 0x1A);
    }
}
