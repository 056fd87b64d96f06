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

/// Distinct values and per-feature value ids of one layer's base.
#[derive(Debug, Default)]
pub struct TileDict {
    /// Every encoded MVT value, one after the other in the order of first use: a tile's
    /// features were mostly written together, so their values lie together too (one
    /// allocation per value cost a cache miss per value and 40 bytes of overhead).
    bytes: Vec<u8>,
    /// `bytes[ends[id - 1]..ends[id]]` is value `id`.
    ends: Vec<u32>,
    /// `ids[feature * columns + column]`: the value id or [`NONE`].
    ids: Vec<u32>,
    columns: usize,
    /// (hash of the encoded value, id), sorted: finds the id of a value written later.
    lookup: Vec<(u64, u32)>,
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

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(bytes)
}

impl TileDict {
    /// Builds the dictionary of a layer's features.
    pub fn build(def: &LayerDef, features: &[Feature]) -> TileDict {
        let columns = def.columns.len();
        let classes: Vec<ValueClass> = def.columns.iter().map(|c| c.class()).collect();
        // foldhash, not SipHash: SipHash was the largest single item of the start-up profile.
        let mut index: HashMap<Vec<u8>, u32, foldhash::fast::RandomState> = HashMap::default();
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        let mut ids = Vec::with_capacity(features.len() * columns);
        // One buffer for every value: only a value not seen before is copied (most
        // repeat: municipality, land use), so the build allocates per distinct value.
        let mut buf = Vec::with_capacity(64);
        for f in features {
            for (c, v) in f.values.iter().enumerate() {
                if !encode_into(v, classes[c], &mut buf) {
                    ids.push(NONE);
                    continue;
                }
                // Equal values share one id across columns: MVT values are per layer.
                let id = match index.get(buf.as_slice()) {
                    Some(&id) => id,
                    None => {
                        // Past 4 GB of distinct values (far beyond any memory this
                        // runs in) further values are left out of tiles.
                        let Ok(end) = u32::try_from(bytes.len() + buf.len()) else {
                            ids.push(NONE);
                            continue;
                        };
                        let id = ends.len() as u32;
                        bytes.extend_from_slice(&buf);
                        ends.push(end);
                        index.insert(buf.clone(), id);
                        id
                    }
                };
                ids.push(id);
            }
        }
        drop(index);
        bytes.shrink_to_fit();
        let mut dict = TileDict {
            bytes,
            ends,
            ids,
            columns,
            lookup: Vec::new(),
        };
        let mut lookup: Vec<(u64, u32)> = (0..dict.len() as u32)
            .map(|id| (hash(dict.value(id)), id))
            .collect();
        lookup.sort_unstable();
        dict.lookup = lookup;
        dict
    }

    /// Number of distinct values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoded value `id`.
    pub fn value(&self, id: u32) -> &[u8] {
        let id = id as usize;
        let from = if id == 0 {
            0
        } else {
            self.ends[id - 1] as usize
        };
        &self.bytes[from..self.ends[id] as usize]
    }

    /// The value id of feature `f`, column `c`.
    pub fn id(&self, f: usize, c: usize) -> u32 {
        self.ids.get(f * self.columns + c).copied().unwrap_or(NONE)
    }

    /// The id of an encoded value, if the dictionary has it.
    pub fn find(&self, bytes: &[u8]) -> Option<u32> {
        let h = hash(bytes);
        let from = self.lookup.partition_point(|&(x, _)| x < h);
        self.lookup[from..]
            .iter()
            .take_while(|&&(x, _)| x == h)
            .map(|&(_, id)| id)
            .find(|&id| self.value(id) == bytes)
    }
}
