//! The changed part of a layer snapshot: the versions of features written since the base
//! was built (tombstones for deleted ones), sorted by fid, and the base positions they
//! hide. An edit copies only this small overlay; queries merge it with the base.

use std::sync::Arc;

use super::base::{SIZE_LEVELS, rects_of, size_of};
use super::{Feature, Hit};
use crate::geom::{Bbox, bbox_of};

/// One changed feature.
#[derive(Debug)]
pub struct Entry {
    /// Feature id.
    pub fid: i64,
    /// The new version, or `None` when the feature was deleted.
    pub feature: Option<Feature>,
    /// Extent of the new version (EPSG:3857).
    pub bbox: Option<Bbox>,
    /// The catalog generation that wrote this version.
    pub generation: u64,
    /// Index rectangles split along long lines: (rectangle, part, first, last vertex).
    split: Vec<(Bbox, u32, u32, u32)>,
}

impl Entry {
    /// A new version (or tombstone) of a feature.
    pub fn new(fid: i64, feature: Option<Feature>, generation: u64) -> Entry {
        let bbox = feature
            .as_ref()
            .and_then(|f| f.geometry.as_ref())
            .and_then(bbox_of);
        let split = match (&feature, bbox) {
            (
                Some(Feature {
                    geometry: Some(g), ..
                }),
                Some(b),
            ) => rects_of(g, b, true),
            _ => Vec::new(),
        };
        Entry {
            fid,
            feature,
            bbox,
            generation,
            split,
        }
    }

    /// Appends the entries of this feature a base query with the same arguments would
    /// return, numbered `slot`.
    fn hits(&self, b: Bbox, min_size: f64, slot: u32, out: &mut Vec<Hit>) {
        let Some(own) = self.bbox else { return };
        let meets = |r: &Bbox| r[0] <= b[2] && b[0] <= r[2] && r[1] <= b[3] && b[1] <= r[3];
        match SIZE_LEVELS.iter().rev().find(|&&l| l <= min_size) {
            // The base answers this from a coarse tree: whole features at least this large.
            Some(&level) => {
                if size_of(own) >= level && meets(&own) {
                    out.push(Hit {
                        feature: slot,
                        part: Hit::WHOLE,
                        start: 0,
                        end: 0,
                    });
                }
            }
            None => out.extend(self.split.iter().filter(|(r, ..)| meets(r)).map(
                |&(_, part, start, end)| Hit {
                    feature: slot,
                    part,
                    start,
                    end,
                },
            )),
        }
    }
}

/// Changed features and the base positions they hide.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Entries sorted by fid.
    pub(super) entries: Arc<[Arc<Entry>]>,
    /// Sorted base positions hidden by an entry of the same fid.
    pub(super) dead: Arc<[u32]>,
}

impl Overlay {
    /// Number of entries (tombstones included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing changed since the base.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, sorted by fid.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// Whether base position `i` is hidden.
    pub(super) fn hides(&self, i: u32) -> bool {
        !self.dead.is_empty() && self.dead.binary_search(&i).is_ok()
    }

    /// The entry of a fid.
    pub(super) fn find(&self, fid: i64) -> Option<(usize, &Entry)> {
        self.entries
            .binary_search_by_key(&fid, |e| e.fid)
            .ok()
            .map(|j| (j, self.entries[j].as_ref()))
    }

    /// This overlay with `new` entries written over (by fid); `base_pos` finds a fid's
    /// position in the base.
    pub(super) fn with(
        &self,
        mut new: Vec<Arc<Entry>>,
        base_pos: impl Fn(i64) -> Option<usize>,
    ) -> Overlay {
        // Stable: of two versions of a fid in one change, the later one stays last.
        new.sort_by_key(|e| e.fid);
        new.dedup_by(|later, earlier| {
            // The last version of a fid in one change wins.
            if later.fid == earlier.fid {
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        let mut entries = Vec::with_capacity(self.entries.len() + new.len());
        let (mut a, mut b) = (self.entries.iter().peekable(), new.into_iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.fid < y.fid => entries.extend(a.next().cloned()),
                (Some(x), Some(y)) if x.fid == y.fid => {
                    a.next();
                    entries.extend(b.next());
                }
                (_, Some(_)) => entries.extend(b.next()),
                (Some(_), None) => entries.extend(a.next().cloned()),
                (None, None) => break,
            }
        }
        let mut dead: Vec<u32> = entries
            .iter()
            .filter_map(|e| base_pos(e.fid))
            .map(|i| i as u32)
            .collect();
        dead.sort_unstable();
        Overlay {
            entries: entries.into(),
            dead: dead.into(),
        }
    }

    /// Hits of the live entries for a base query, numbered from `first_slot`, in fid order.
    pub(super) fn hits(&self, b: Bbox, min_size: f64, first_slot: usize) -> Vec<(i64, Hit)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for (j, e) in self.entries.iter().enumerate() {
            if e.feature.is_none() {
                continue;
            }
            buf.clear();
            e.hits(b, min_size, (first_slot + j) as u32, &mut buf);
            out.extend(buf.iter().map(|h| (e.fid, *h)));
        }
        out
    }

    /// The entries written after generation `g` (what a fold started at `g` left out).
    pub(super) fn since(&self, g: u64) -> Vec<Arc<Entry>> {
        self.entries
            .iter()
            .filter(|e| e.generation > g)
            .cloned()
            .collect()
    }
}
