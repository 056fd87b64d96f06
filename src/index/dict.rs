//! A layer's property values encoded once for vector tiles: every distinct value as the
//! bytes of an MVT `Value` message, and each feature's values as dictionary ids, so a
//! tile neither formats, hashes nor clones a property.

use std::collections::HashMap;

use rusqlite::types::Value;

use super::Feature;
use crate::store::LayerDef;
use crate::store::layer::ValueClass;
use crate::tiles::mvt::{MvtValue, encode_value};

/// Marks a NULL (or unencodable) value.
pub const NONE: u32 = u32::MAX;

/// Distinct values and per-feature value ids of one layer.
#[derive(Debug, Default)]
pub struct TileDict {
    /// Encoded MVT values by id.
    pub values: Vec<Vec<u8>>,
    /// `ids[feature * columns + column]`: the value id or [`NONE`].
    ids: Vec<u32>,
    columns: usize,
}

#[derive(Hash, PartialEq, Eq)]
enum Key {
    Int(i64),
    Bool(bool),
    Real(u64),
    Text(String),
}

impl TileDict {
    /// Builds the dictionary of a layer's features.
    pub fn build(def: &LayerDef, features: &[Feature]) -> TileDict {
        let columns = def.columns.len();
        let classes: Vec<ValueClass> = def.columns.iter().map(|c| c.class()).collect();
        let mut index: HashMap<Key, u32> = HashMap::new();
        let mut values = Vec::new();
        let mut ids = Vec::with_capacity(features.len() * columns);
        for f in features {
            for (c, v) in f.values.iter().enumerate() {
                let (key, mvt) = match (v, classes[c]) {
                    (Value::Integer(i), ValueClass::Boolean) => {
                        (Key::Bool(*i != 0), MvtValue::Bool(*i != 0))
                    }
                    (Value::Integer(i), _) => (Key::Int(*i), MvtValue::Int(*i)),
                    (Value::Real(r), _) => (Key::Real(r.to_bits()), MvtValue::Double(*r)),
                    (Value::Text(t), _) => (Key::Text(t.clone()), MvtValue::Str(t.clone())),
                    (Value::Null | Value::Blob(_), _) => {
                        ids.push(NONE);
                        continue;
                    }
                };
                // Equal values share one id across columns: MVT values are per layer.
                let id = *index.entry(key).or_insert_with(|| {
                    values.push(encode_value(&mvt));
                    (values.len() - 1) as u32
                });
                ids.push(id);
            }
        }
        TileDict {
            values,
            ids,
            columns,
        }
    }

    /// The value id of feature `f`, column `c`.
    pub fn id(&self, f: usize, c: usize) -> u32 {
        self.ids.get(f * self.columns + c).copied().unwrap_or(NONE)
    }
}
