//! A layer's property values encoded once for vector tiles: every distinct value as the
//! bytes of an MVT `Value` message, and each feature's values as dictionary ids, so a
//! tile neither formats, hashes nor clones a property.

use std::collections::HashMap;

use rusqlite::types::Value;

use crate::index::Feature;
use crate::store::LayerDef;
use crate::store::layer::ValueClass;
use crate::tiles::mvt::{MvtValue, encode_str, encode_value};

/// Marks a NULL (or unencodable) value.
pub const NONE: u32 = u32::MAX;

/// Distinct values and per-feature value ids of one layer's base. A value's id is its
/// position in the arena.
#[derive(Debug, Default)]
pub struct TileDict {
    /// Every encoded MVT value, one after the other in the order of first use, each
    /// after its length (a varint): a tile's features were mostly written together, so
    /// their values lie together too (one allocation per value cost a cache miss per
    /// value and 40 bytes of overhead). The length beside the value, not in a table of
    /// ends, saves a cache miss per new value in a tile (5 % of a parcels tile).
    bytes: Vec<u8>,
    /// Number of values.
    count: usize,
    /// `ids[feature * columns + column]`: the value id or [`NONE`].
    ids: Vec<u32>,
    columns: usize,
    /// Per column: the most bytes one of its values takes.
    longest: Vec<usize>,
    /// (hash of the encoded value, id), sorted: finds the id of a value written later.
    lookup: Vec<(u64, u32)>,
    /// The hash of `lookup`: foldhash (several times faster than SipHash on short
    /// values), seeded per process so crafted values cannot pile onto one hash.
    state: foldhash::fast::RandomState,
}

/// Ids stay below 2^31, so those of values only changed features have fit above them.
const MAX_ARENA: usize = 1 << 31;

/// Flag of a feature's value id (see [`TileDict::id`]): no other feature or column of
/// the base has this value, so a tile need not look it up among the values it already
/// wrote (parcel numbers, areas: half of a parcel's values).
pub const ONCE: u32 = 1 << 31;

/// A varint at the start of `b` (as this module writes them) and its length in bytes.
fn read_varint(b: &[u8]) -> (usize, usize) {
    let mut v = 0usize;
    for (i, &byte) in b.iter().enumerate().take(5) {
        v |= ((byte & 0x7f) as usize) << (7 * i);
        if byte < 0x80 {
            return (v, i + 1);
        }
    }
    (v, b.len().min(5))
}

/// A value as MVT encodes it (`None` for NULL and binary values, which tiles leave out).
pub fn encode(v: &Value, class: ValueClass) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    encode_into(v, class, &mut out).then_some(out)
}

/// Writes a value as MVT encodes it into `out` (cleared first); `false` for NULL and
/// binary values. Text is encoded from the stored string, without a copy of it.
fn encode_into(v: &Value, class: ValueClass, out: &mut Vec<u8>) -> bool {
    out.clear();
    let mvt = match (v, class) {
        (Value::Integer(i), ValueClass::Boolean) => MvtValue::Bool(*i != 0),
        (Value::Integer(i), _) => MvtValue::Int(*i),
        (Value::Real(r), _) => MvtValue::Double(*r),
        (Value::Text(t), _) => {
            encode_str(out, t);
            return true;
        }
        (Value::Null | Value::Blob(_), _) => return false,
    };
    out.extend_from_slice(&encode_value(&mvt));
    true
}

impl TileDict {
    /// Builds the dictionary of a layer's features.
    pub fn build(def: &LayerDef, features: &[Feature]) -> TileDict {
        let columns = def.columns.len();
        let classes: Vec<ValueClass> = def.columns.iter().map(|c| c.class()).collect();
        // Values are found by their hash (the first value of each hash in `index`, the
        // rare later ones with the same hash in `collided`) and stored once, in the
        // arena, without a key copy each: the 300,000 parcels' dictionary took 530 ms
        // of the start-up with a copied key per value, 250 ms without.
        // (hash) -> (id, ordinal); `first[ordinal]`: where in `ids` the value was first
        // used, or `SHARED` once a second feature or column uses it.
        let mut index: HashMap<u64, (u32, u32), foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(features.len(), Default::default());
        let mut collided: Vec<(u64, (u32, u32))> = Vec::new();
        let mut first: Vec<usize> = Vec::new();
        const SHARED: usize = usize::MAX;
        let mut dict = TileDict {
            bytes: Vec::new(),
            count: 0,
            ids: Vec::with_capacity(features.len() * columns),
            columns,
            longest: vec![0; columns],
            lookup: Vec::new(),
            state: foldhash::fast::RandomState::default(),
        };
        // One buffer for every value: only a value not seen before is copied (most
        // repeat: municipality, land use).
        let mut buf = Vec::with_capacity(64);
        for f in features {
            for (c, v) in f.values.iter().enumerate() {
                if !encode_into(v, classes[c], &mut buf) {
                    dict.ids.push(NONE);
                    continue;
                }
                dict.longest[c] = dict.longest[c].max(buf.len());
                // Equal values share one id across columns: MVT values are per layer.
                let h = dict.hash(&buf);
                let known = match index.get(&h) {
                    Some(&(id, n)) if dict.value(id) == buf.as_slice() => Some((id, n)),
                    Some(_) => collided
                        .iter()
                        .find(|&&(x, (id, _))| x == h && dict.value(id) == buf.as_slice())
                        .map(|&(_, known)| known),
                    None => None,
                };
                let id = match known {
                    Some((id, n)) => {
                        first[n as usize] = SHARED;
                        id
                    }
                    None => {
                        // Past 2 GB of distinct values (far beyond any memory this
                        // runs in) further values are left out of tiles; ids above
                        // are those of values only changed features have.
                        if dict.bytes.len() + buf.len() >= MAX_ARENA {
                            dict.ids.push(NONE);
                            continue;
                        }
                        let id = dict.bytes.len() as u32;
                        crate::tiles::mvt::varint(&mut dict.bytes, buf.len() as u64);
                        dict.bytes.extend_from_slice(&buf);
                        let n = dict.count as u32;
                        dict.count += 1;
                        first.push(dict.ids.len());
                        match index.entry(h) {
                            std::collections::hash_map::Entry::Occupied(_) => {
                                collided.push((h, (id, n)))
                            }
                            std::collections::hash_map::Entry::Vacant(v) => {
                                v.insert((id, n));
                            }
                        }
                        id
                    }
                };
                dict.ids.push(id);
            }
        }
        dict.bytes.shrink_to_fit();
        drop(index);
        for pos in first.into_iter().filter(|&p| p != SHARED) {
            dict.ids[pos] |= ONCE;
        }
        let mut lookup: Vec<(u64, u32)> = Vec::with_capacity(dict.count);
        let mut at = 0;
        while at < dict.bytes.len() {
            let span = dict.span(at as u32);
            lookup.push((dict.hash(&dict.bytes[span.clone()]), at as u32));
            at = span.end;
        }
        lookup.sort_unstable();
        dict.lookup = lookup;
        dict
    }

    /// Number of distinct values.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first id above every value's: ids of values the dictionary lacks start here.
    pub fn id_end(&self) -> u32 {
        self.bytes.len() as u32
    }

    /// The most bytes a value of column `c` takes.
    pub fn longest(&self, c: usize) -> usize {
        self.longest.get(c).copied().unwrap_or(0)
    }

    /// The encoded value `id` (with or without [`ONCE`]).
    pub fn value(&self, id: u32) -> &[u8] {
        &self.bytes[self.span(id)]
    }

    /// Starts loading value `id` (see [`super::prefetch`]).
    pub fn prefetch(&self, id: u32) {
        if let Some(b) = self.bytes.get((id & !ONCE) as usize) {
            super::prefetch::line(b);
        }
    }

    /// Starts loading the value ids of feature `f`.
    pub fn prefetch_ids(&self, f: usize) {
        if let Some(row) = self.ids.get(f * self.columns) {
            super::prefetch::line(row);
        }
    }

    /// Where the bytes of value `id` lie in the arena (after its length).
    fn span(&self, id: u32) -> std::ops::Range<usize> {
        let id = id & !ONCE;
        let (len, n) = read_varint(&self.bytes[id as usize..]);
        let from = id as usize + n;
        from..from + len
    }

    /// The value id of feature `f`, column `c`, or [`NONE`]; with [`ONCE`] set when no
    /// other feature or column has that value.
    pub fn id(&self, f: usize, c: usize) -> u32 {
        self.ids.get(f * self.columns + c).copied().unwrap_or(NONE)
    }

    fn hash(&self, bytes: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.state.hash_one(bytes)
    }

    /// The id of an encoded value, if the dictionary has it.
    pub fn find(&self, bytes: &[u8]) -> Option<u32> {
        let h = self.hash(bytes);
        let from = self.lookup.partition_point(|&(x, _)| x < h);
        self.lookup[from..]
            .iter()
            .take_while(|&&(x, _)| x == h)
            .map(|&(_, id)| id)
            .find(|&id| self.value(id) == bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_an_id_across_columns_and_are_found_again() {
        let def = LayerDef::for_test(&[("a", "TEXT"), ("b", "TEXT"), ("n", "INTEGER")]);
        let feature = |fid: i64, a: &str, b: Value, n: i64| Feature {
            fid,
            values: vec![Value::Text(a.into()), b, Value::Integer(n)],
            geometry: None,
        };
        let features = [
            feature(1, "Ellrich", Value::Text("Werther".into()), 7),
            feature(2, "Werther", Value::Null, 7),
            feature(3, "Kyffhäuserland", Value::Text("Ellrich".into()), -3),
        ];
        let d = TileDict::build(&def, &features);
        // Ellrich, Werther, 7, Kyffhäuserland, -3.
        assert_eq!(d.len(), 5);
        assert_eq!(d.id(0, 1), d.id(1, 0));
        assert_eq!(d.id(0, 0), d.id(2, 1));
        assert_eq!(d.id(0, 2), d.id(1, 2));
        assert_eq!(d.id(1, 1), NONE);
        // Kyffhäuserland and -3 appear once; the others are shared (across columns too).
        let once = |f, c| d.id(f, c) & ONCE != 0;
        assert!(once(2, 0) && once(2, 2));
        assert!(!once(0, 0) && !once(0, 1) && !once(0, 2) && !once(1, 0) && !once(2, 1));
        for f in 0..features.len() {
            for c in 0..3 {
                let id = d.id(f, c);
                if id != NONE {
                    assert_eq!(d.find(d.value(id)), Some(id & !ONCE));
                }
            }
        }
        let mut werther = Vec::new();
        encode_str(&mut werther, "Werther");
        assert_eq!(d.value(d.id(1, 0)), werther.as_slice());
        let mut other = Vec::new();
        encode_str(&mut other, "Heringen/Helme");
        assert_eq!(d.find(&other), None);
        // A value longer than a one-byte length.
        let long = "x".repeat(300);
        let d = TileDict::build(&def, &[feature(1, &long, Value::Null, 1)]);
        let mut enc = Vec::new();
        encode_str(&mut enc, &long);
        assert_eq!(d.value(d.id(0, 0)), enc.as_slice());
        assert_eq!(d.find(&enc), Some(d.id(0, 0) & !ONCE));
        let one = encode(&Value::Integer(1), ValueClass::Integer).unwrap();
        assert_eq!(d.value(d.id(0, 2)), one.as_slice());
    }
}
