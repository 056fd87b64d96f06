//! What a layer snapshot contributes to tiles, prepared from it and kept beside it: the
//! rules (zoom range, public properties), the value dictionary and each line and ring
//! vertex's simplification importance. The base's part is built once per base; an edit prepares
//! only the features it wrote.

use crate::audience::Audience;
use std::collections::HashMap;
use std::sync::Arc;

use super::LayerRules;
use super::dict::{self, TileDict};
use super::importance::{self, LayerImportance};
use crate::index::{Base, Entry, Layer, Slot};
use crate::store::layer::ValueClass;

/// Tile data of one base.
struct BasePrep {
    base: Arc<Base>,
    dict: TileDict,
    importance: LayerImportance,
}

/// Tile data of one overlay entry.
struct EntryPrep {
    entry: Arc<Entry>,
    /// Per column: the dictionary id, or the encoded value when the base has no such
    /// value, or nothing (NULL).
    values: Vec<Prop>,
    importance: Option<Box<[u8]>>,
}

#[derive(Clone)]
enum Prop {
    None,
    Dict(u32),
    Extra(Arc<[u8]>),
}

/// A property value of a feature, for the encoder.
pub enum Value<'a> {
    /// NULL: left out.
    None,
    /// A value of the base dictionary: its id and bytes.
    Dict(u32, &'a [u8]),
    /// A value of the base dictionary no other feature of the snapshot has.
    Once(&'a [u8]),
    /// A value only a changed feature has.
    Extra(&'a [u8]),
}

/// A layer's tile data.
pub struct Prepared {
    /// Zoom range and properties.
    pub rules: LayerRules,
    base: Arc<BasePrep>,
    overlay: Vec<Arc<EntryPrep>>,
    /// Base values changed features have too, sorted: on a base feature such a value
    /// is not [`Value::Once`] in this snapshot.
    overlay_refs: Arc<[u32]>,
}

impl Prepared {
    /// Prepares a snapshot, reusing what `previous` (an earlier snapshot of the same
    /// layer) already prepared for the same base and the same changed features.
    pub fn new(layer: &Layer, previous: Option<&Prepared>) -> Prepared {
        let base = match previous {
            Some(p) if Arc::ptr_eq(&p.base.base, layer.base()) => p.base.clone(),
            _ => Arc::new(BasePrep::build(layer)),
        };
        let classes: Vec<ValueClass> = layer.def.columns.iter().map(|c| c.class()).collect();
        let reuse: HashMap<*const Entry, &Arc<EntryPrep>> = previous
            .filter(|p| Arc::ptr_eq(&p.base, &base))
            .map(|p| {
                p.overlay
                    .iter()
                    .map(|e| (Arc::as_ptr(&e.entry), e))
                    .collect()
            })
            .unwrap_or_default();
        let overlay = layer
            .overlay()
            .entries()
            .iter()
            .map(|e| match reuse.get(&Arc::as_ptr(e)) {
                Some(p) => Arc::clone(p),
                None => Arc::new(EntryPrep::build(e, &base.dict, &classes)),
            })
            .collect::<Vec<Arc<EntryPrep>>>();
        let mut refs: Vec<u32> = overlay
            .iter()
            .flat_map(|e| e.values.iter())
            .filter_map(|p| match p {
                Prop::Dict(id) => Some(*id),
                _ => None,
            })
            .collect();
        refs.sort_unstable();
        refs.dedup();
        Prepared {
            rules: LayerRules::new(&layer.def, &layer.meta),
            base,
            overlay,
            overlay_refs: refs.into(),
        }
    }

    /// The same tile data with every property, internal ones too (for an archive that
    /// is not published).
    pub fn with_internal(&self, layer: &Layer) -> Prepared {
        Prepared {
            rules: LayerRules::with(&layer.def, &layer.meta, true),
            base: self.base.clone(),
            overlay: self.overlay.clone(),
            overlay_refs: self.overlay_refs.clone(),
        }
    }

    /// The same tile data with the properties `aud` sees, internal ones only on the
    /// features where it sees them.
    pub fn for_audience(&self, layer: &Layer, aud: Audience) -> Prepared {
        Prepared {
            rules: LayerRules::for_audience(&layer.def, &layer.meta, aud),
            base: self.base.clone(),
            overlay: self.overlay.clone(),
            overlay_refs: self.overlay_refs.clone(),
        }
    }

    /// The first id above the base dictionary's: ids of other values start there.
    pub fn dict_id_end(&self) -> u32 {
        self.base.dict.id_end()
    }

    /// The value of column `col` of the feature in `slot`.
    pub fn value<'a>(&'a self, layer: &Layer, slot: usize, col: usize) -> Value<'a> {
        let prop = match layer.locate(slot) {
            Slot::Base(i) => {
                let dict = &self.base.dict;
                return match dict.id(i, col) {
                    dict::NONE => Value::None,
                    id if id & dict::ONCE == 0 => Value::Dict(id, dict.value(id)),
                    id if self.overlay_refs.binary_search(&(id & !dict::ONCE)).is_ok() => {
                        Value::Dict(id & !dict::ONCE, dict.value(id))
                    }
                    id => Value::Once(dict.value(id)),
                };
            }
            Slot::Overlay(j) => match self.overlay.get(j).and_then(|e| e.values.get(col)) {
                Some(p) => p,
                None => return Value::None,
            },
        };
        match prop {
            Prop::None => Value::None,
            Prop::Dict(id) => Value::Dict(*id, self.base.dict.value(*id)),
            Prop::Extra(b) => Value::Extra(b),
        }
    }

    /// An upper bound of the bytes the properties of the feature in `slot` add to a tile
    /// (as if every value were new), without reading them for a base feature: what
    /// [`super::property_cost`] gives at most.
    pub fn property_bound(&self, layer: &Layer, slot: usize) -> Option<usize> {
        match layer.locate(slot) {
            Slot::Base(_) => Some(
                self.rules
                    .properties
                    .iter()
                    .map(|(col, _, _)| self.base.dict.longest(*col) + 4)
                    .sum(),
            ),
            Slot::Overlay(_) => None,
        }
    }

    /// Starts loading the importance codes of the feature in `slot` (see [`super::prefetch`]).
    /// `from`: the first vertex wanted, counted over all of the feature's lines or rings.
    pub fn prefetch_importance(&self, layer: &Layer, slot: usize, from: usize) {
        if let Slot::Base(i) = layer.locate(slot)
            && let Some(codes) = self.base.importance.of(i).and_then(|c| c.get(from..))
        {
            super::prefetch::slice(codes);
        }
    }

    /// Starts loading the row of value ids of the feature in `slot`.
    pub fn prefetch_ids(&self, layer: &Layer, slot: usize) {
        if let Slot::Base(i) = layer.locate(slot) {
            self.base.dict.prefetch_ids(i);
        }
    }

    /// Starts loading the property values of the feature in `slot` (its ids are read,
    /// so ask for them with [`Prepared::prefetch_ids`] a few features before).
    pub fn prefetch_values(&self, layer: &Layer, slot: usize) {
        if let Slot::Base(i) = layer.locate(slot) {
            let dict = &self.base.dict;
            for (col, _, _) in &self.rules.properties {
                let id = dict.id(i, *col);
                if id != dict::NONE {
                    dict.prefetch(id);
                }
            }
        }
    }

    /// Importance codes of every vertex of a line or polygon feature, in the order of
    /// [`importance::rings`].
    pub fn importance(&self, layer: &Layer, slot: usize) -> Option<&[u8]> {
        match layer.locate(slot) {
            Slot::Base(i) => self.base.importance.of(i),
            Slot::Overlay(j) => self.overlay.get(j)?.importance.as_deref(),
        }
    }
}

impl BasePrep {
    fn build(layer: &Layer) -> BasePrep {
        let base = layer.base().clone();
        // The dictionary and the importances are independent: one thread each.
        let (dict, importance) = std::thread::scope(|s| {
            let dict = s.spawn(|| TileDict::build(&layer.def, base.features()));
            let importance = LayerImportance::build(base.features());
            let dict = dict.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            (dict, importance)
        });
        BasePrep {
            dict,
            importance,
            base,
        }
    }
}

impl EntryPrep {
    fn build(entry: &Arc<Entry>, dict: &TileDict, classes: &[ValueClass]) -> EntryPrep {
        let (values, importance) = match &entry.feature {
            None => (Vec::new(), None),
            Some(f) => (
                f.values
                    .iter()
                    .zip(classes)
                    .map(|(v, c)| match dict::encode(v, *c) {
                        None => Prop::None,
                        Some(bytes) => match dict.find(&bytes) {
                            Some(id) => Prop::Dict(id),
                            None => Prop::Extra(bytes.into()),
                        },
                    })
                    .collect(),
                f.geometry.as_ref().and_then(importance::of_geometry),
            ),
        };
        EntryPrep {
            entry: entry.clone(),
            values,
            importance,
        }
    }
}
