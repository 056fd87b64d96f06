//! In-memory layer snapshots: every feature with typed properties and its geometry in
//! Web Mercator, under R-trees of envelopes. Readers never touch SQLite.
//!
//! A snapshot is an immutable [`Base`] (the last full load, with its R-trees) plus a
//! small [`Overlay`] of the features changed since. An edit copies only the overlay, so
//! it costs O(changes) instead of a rebuild; the catalog folds a grown overlay into a new
//! base in the background. Features are addressed by *slot*: base positions first, then
//! overlay entries; every list this module returns is in fid order, so a long-running
//! server and a freshly started one see the same features in the same order.

use std::sync::Arc;

use geo::{Coord, Geometry};
use rusqlite::types::Value;

use crate::crs::{self, CrsError};
use crate::geom::{Bbox, gpkg};
use crate::store::layer::q;
use crate::store::{LayerDef, LayerMeta, Store, StoreError};

pub mod base;
pub mod nearest;
pub mod overlay;
pub mod sort_rank;

pub use base::Base;
pub use overlay::{Entry, Overlay};
pub use sort_rank::{NULL_RANK, SortRanks, cmp_values};

/// Errors while loading snapshots.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer's CRS cannot be transformed.
    #[error("layer '{layer}': {source}")]
    Crs {
        /// Layer.
        layer: String,
        /// Cause.
        source: CrsError,
    },
}

/// One feature of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// Feature id.
    pub fid: i64,
    /// Property values in [`LayerDef::columns`] order.
    pub values: Vec<Value>,
    /// Geometry in EPSG:3857; `None` for NULL or empty.
    pub geometry: Option<Geometry<f64>>,
}

impl Feature {
    /// A strong validator of what a caller sees of this feature: its fid, the values of
    /// the `visible` columns and its geometry. A value the caller may not see is not in
    /// it, so it can neither be guessed from the ETag nor seen changing.
    pub fn etag(&self, visible: &[bool]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.fid.to_le_bytes());
        for (i, v) in self.values.iter().enumerate() {
            if !visible.get(i).copied().unwrap_or(false) {
                continue;
            }
            h.update((i as u32).to_le_bytes());
            match v {
                Value::Null => h.update([0u8]),
                Value::Integer(n) => {
                    h.update([1u8]);
                    h.update(n.to_le_bytes());
                }
                Value::Real(r) => {
                    h.update([2u8]);
                    h.update(r.to_bits().to_le_bytes());
                }
                Value::Text(t) => {
                    h.update([3u8]);
                    h.update((t.len() as u64).to_le_bytes());
                    h.update(t.as_bytes());
                }
                Value::Blob(b) => {
                    h.update([4u8]);
                    h.update((b.len() as u64).to_le_bytes());
                    h.update(b);
                }
            }
        }
        if let Some(g) = &self.geometry {
            h.update(crate::geom::wkb::encode(g));
        }
        let d = h.finalize();
        let mut out = String::with_capacity(34);
        out.push('"');
        for b in &d[..16] {
            out.push_str(&format!("{b:02x}"));
        }
        out.push('"');
        out
    }
}

/// What an R-tree entry points at: a whole feature, or a stretch of one of its lines
/// (vertices `start..=end` of line `part`), so a small tile over a long trail only looks
/// at the stretch that crosses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// Feature slot.
    pub feature: u32,
    /// Line index within the geometry, or [`Hit::WHOLE`].
    pub part: u32,
    /// First vertex.
    pub start: u32,
    /// Last vertex.
    pub end: u32,
}

impl Hit {
    /// `part` of an entry that stands for the whole feature.
    pub const WHOLE: u32 = u32::MAX;
}

/// Where a slot lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Position in the base.
    Base(usize),
    /// Position in the overlay.
    Overlay(usize),
}

/// An immutable snapshot of one layer.
pub struct Layer {
    /// The table definition.
    pub def: LayerDef,
    /// Settings.
    pub meta: LayerMeta,
    /// The catalog generation that last changed this layer's content or settings.
    pub generation: u64,
    base: Arc<Base>,
    overlay: Overlay,
    live: usize,
    /// Extent in EPSG:3857.
    pub extent: Option<Bbox>,
    /// Extent in lon/lat.
    pub extent_lonlat: Option<Bbox>,
    /// The first date/time column anonymous callers see and the range of its values
    /// (seconds since 1970).
    pub time_extent: Option<(usize, Option<[f64; 2]>)>,
}

impl Layer {
    /// A snapshot over a freshly built base.
    pub fn new(def: LayerDef, meta: LayerMeta, features: Vec<Feature>, generation: u64) -> Layer {
        let base = Arc::new(Base::build(&def, features));
        Layer::assemble(def, meta, generation, base, Overlay::default())
    }

    fn assemble(
        def: LayerDef,
        meta: LayerMeta,
        generation: u64,
        base: Arc<Base>,
        overlay: Overlay,
    ) -> Layer {
        let live = base.len() - overlay.dead.len()
            + overlay
                .entries
                .iter()
                .filter(|e| e.feature.is_some())
                .count();
        let mut layer = Layer {
            def,
            meta,
            generation,
            base,
            overlay,
            live,
            extent: None,
            extent_lonlat: None,
            time_extent: None,
        };
        layer.extent = layer.live_extent();
        layer.extent_lonlat = layer.extent.map(|b| {
            let (x0, y0) = crs::mercator_to_lonlat(b[0], b[1]);
            let (x1, y1) = crs::mercator_to_lonlat(b[2], b[3]);
            [x0, y0, x1, y1]
        });
        layer.time_extent = layer.public_time_column().map(|c| (c, layer.time_range(c)));
        layer
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the layer has no features.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The base this snapshot shares with others.
    pub fn base(&self) -> &Arc<Base> {
        &self.base
    }

    /// The changes on top of the base.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// Where a slot lives.
    pub fn locate(&self, slot: usize) -> Slot {
        let n = self.base.len();
        if slot < n {
            Slot::Base(slot)
        } else {
            Slot::Overlay(slot - n)
        }
    }

    /// Column `col`'s sort order over the base (built with a large base, else on the
    /// first sort by it).
    pub fn sort_ranks(&self, col: usize) -> &SortRanks {
        self.base.sort_ranks(col)
    }

    /// The rank of the feature in `slot` in `ranks`' order, or NULL's where `shown`
    /// says the caller may not see the column on it; with the value when it falls between
    /// two loaded values (an edit's), since several such values share one rank and must
    /// still be ordered among themselves. A base feature's rank is read without touching
    /// the feature unless `shown` looks at it.
    pub fn rank_at<'a>(
        &'a self,
        ranks: &SortRanks,
        slot: usize,
        shown: impl Fn(&Feature) -> bool,
    ) -> (u32, Option<&'a Value>) {
        let f = self.feature(slot);
        if !shown(f) {
            return (NULL_RANK, None);
        }
        match self.locate(slot) {
            Slot::Base(i) => (ranks.of_base(i), None),
            Slot::Overlay(_) => {
                let v = f.values.get(ranks.col()).unwrap_or(&Value::Null);
                let r = ranks.of_value(v, &self.base.features);
                (r, SortRanks::between(r).then_some(v))
            }
        }
    }

    /// The feature in a slot (a slot this snapshot returned).
    pub fn feature(&self, slot: usize) -> &Feature {
        match self.locate(slot) {
            Slot::Base(i) => &self.base.features[i],
            Slot::Overlay(j) => self.overlay.entries[j]
                .feature
                .as_ref()
                .unwrap_or(&EMPTY_FEATURE),
        }
    }

    /// The extent (EPSG:3857) of the feature in a slot.
    pub fn bbox(&self, slot: usize) -> Option<Bbox> {
        match self.locate(slot) {
            Slot::Base(i) => self.base.bboxes[i],
            Slot::Overlay(j) => self.overlay.entries[j].bbox,
        }
    }

    /// The slot of a fid.
    pub fn slot_of(&self, fid: i64) -> Option<usize> {
        if let Some((j, e)) = self.overlay.find(fid) {
            return e.feature.as_ref().map(|_| self.base.len() + j);
        }
        self.base.position(fid)
    }

    /// The feature with a fid.
    pub fn by_fid(&self, fid: i64) -> Option<&Feature> {
        self.slot_of(fid).map(|s| self.feature(s))
    }

    /// Every slot, in fid order.
    pub fn slots(&self) -> Vec<usize> {
        let n = self.base.len();
        let mut out = Vec::with_capacity(self.live);
        let entries = &self.overlay.entries;
        let mut j = 0;
        for (i, f) in self.base.features.iter().enumerate() {
            while j < entries.len() && entries[j].fid < f.fid {
                if entries[j].feature.is_some() {
                    out.push(n + j);
                }
                j += 1;
            }
            if !self.overlay.hides(i as u32) {
                out.push(i);
            }
        }
        for (k, e) in entries.iter().enumerate().skip(j) {
            if e.feature.is_some() {
                out.push(n + k);
            }
        }
        out
    }

    /// Slots of features whose envelope intersects a box in EPSG:3857, in fid order.
    pub fn query(&self, b: Bbox) -> Vec<usize> {
        self.query_sized(b, 0.0)
    }

    /// Like [`Layer::query`], but may leave out features whose extent (larger side, in
    /// metres) is below `min_size`; every feature at least that large is included.
    pub fn query_sized(&self, b: Bbox, min_size: f64) -> Vec<usize> {
        let mut hits: Vec<usize> = self
            .query_parts(b, min_size)
            .into_iter()
            .map(|h| h.feature as usize)
            .collect();
        hits.dedup();
        hits
    }

    /// The entries (whole features or stretches of lines) whose envelope intersects a
    /// box, in fid order and by position within a feature; see [`Layer::query_sized`].
    pub fn query_parts(&self, b: Bbox, min_size: f64) -> Vec<Hit> {
        let mut hits = self.base.query_parts(b, min_size);
        if self.overlay.is_empty() {
            return hits;
        }
        if !self.overlay.dead.is_empty() {
            hits.retain(|h| !self.overlay.hides(h.feature));
        }
        let extra = self.overlay.hits(b, min_size, self.base.len());
        if extra.is_empty() {
            return hits;
        }
        // Merge by fid: base hits are in fid order, and so are the overlay's.
        let mut out = Vec::with_capacity(hits.len() + extra.len());
        let mut e = extra.into_iter().peekable();
        for h in hits {
            let fid = self.base.features[h.feature as usize].fid;
            while let Some((_, x)) = e.next_if(|(f, _)| *f < fid) {
                out.push(x);
            }
            out.push(h);
        }
        out.extend(e.map(|(_, x)| x));
        out
    }

    /// A new snapshot with features written (`changed`, in EPSG:3857) and deleted
    /// (`removed` fids) at `generation`, sharing this one's base.
    pub fn with_changes(&self, changed: Vec<Feature>, removed: &[i64], generation: u64) -> Layer {
        let entries: Vec<Arc<Entry>> = changed
            .into_iter()
            .map(|f| Arc::new(Entry::new(f.fid, Some(f), generation)))
            .chain(
                removed
                    .iter()
                    .map(|&fid| Arc::new(Entry::new(fid, None, generation))),
            )
            .collect();
        let overlay = self.overlay.with(entries, |fid| self.base.position(fid));
        Layer::assemble(
            self.def.clone(),
            self.meta.clone(),
            generation,
            self.base.clone(),
            overlay,
        )
    }

    /// The same features with other settings.
    pub fn with_meta(&self, meta: LayerMeta, generation: u64) -> Layer {
        Layer::assemble(
            self.def.clone(),
            meta,
            generation,
            self.base.clone(),
            self.overlay.clone(),
        )
    }

    /// The same content on a new base with an empty overlay (slow: rebuilds the indexes).
    pub fn folded(&self) -> Layer {
        let features: Vec<Feature> = self
            .slots()
            .into_iter()
            .map(|s| self.feature(s).clone())
            .collect();
        let base = Arc::new(Base::build(&self.def, features));
        Layer::assemble(
            self.def.clone(),
            self.meta.clone(),
            self.generation,
            base,
            Overlay::default(),
        )
    }

    /// `folded`, brought up to date with `current`: the changes `current` made after
    /// this snapshot's generation are laid over the folded base. `None` when `current`
    /// no longer builds on this snapshot's base (a reload replaced it meanwhile).
    pub fn rebase(folded: &Layer, from: &Layer, current: &Layer) -> Option<Layer> {
        if !Arc::ptr_eq(&from.base, &current.base) || !current.def.same_shape(&from.def) {
            return None;
        }
        let later = current.overlay.since(from.generation);
        let overlay = folded.overlay.with(later, |fid| folded.base.position(fid));
        Some(Layer::assemble(
            current.def.clone(),
            current.meta.clone(),
            current.generation,
            folded.base.clone(),
            overlay,
        ))
    }

    /// Extent of the live features: the base's, unless a hidden base feature lay on its
    /// edge (then the live base is scanned), plus the overlay's.
    fn live_extent(&self) -> Option<Bbox> {
        let b = &self.base;
        let on_edge =
            |x: &Bbox, e: &Bbox| x[0] == e[0] || x[1] == e[1] || x[2] == e[2] || x[3] == e[3];
        let mut ext = match b.extent {
            Some(e)
                if self
                    .overlay
                    .dead
                    .iter()
                    .any(|&i| b.bboxes[i as usize].is_some_and(|x| on_edge(&x, &e))) =>
            {
                let mut acc = None;
                for (i, x) in b.bboxes.iter().enumerate() {
                    if let Some(x) = x
                        && !self.overlay.hides(i as u32)
                    {
                        crate::geom::bbox_union(&mut acc, *x);
                    }
                }
                acc
            }
            e => e,
        };
        for e in self.overlay.entries.iter() {
            if let Some(x) = e.bbox {
                crate::geom::bbox_union(&mut ext, x);
            }
        }
        ext
    }

    /// The first date/time column that is not internal (a range over an internal column
    /// would tell anonymous callers its values).
    fn public_time_column(&self) -> Option<usize> {
        let is_time = base::time_columns(&self.def);
        self.def.columns.iter().enumerate().position(|(i, c)| {
            is_time[i]
                && !self.meta.internal_properties.iter().any(|p| p == &c.name)
                && self
                    .meta
                    .public_properties
                    .as_ref()
                    .is_none_or(|p| p.iter().any(|n| n == &c.name))
        })
    }

    /// Range of a date/time column over the live features (see [`Layer::live_extent`]).
    fn time_range(&self, col: usize) -> Option<[f64; 2]> {
        let b = &self.base;
        let base_range = b.time_ranges.get(col).copied().flatten();
        let mut range = match base_range {
            Some([lo, hi])
                if self.overlay.dead.iter().any(|&i| {
                    base::time_of(&b.features[i as usize].values[col])
                        .is_some_and(|v| v == lo || v == hi)
                }) =>
            {
                let mut acc: Option<[f64; 2]> = None;
                for (i, f) in b.features.iter().enumerate() {
                    if !self.overlay.hides(i as u32)
                        && let Some(v) = base::time_of(&f.values[col])
                    {
                        acc = Some(acc.map_or([v, v], |[a, c]| [a.min(v), c.max(v)]));
                    }
                }
                acc
            }
            r => r,
        };
        for e in self.overlay.entries.iter() {
            if let Some(v) = e
                .feature
                .as_ref()
                .and_then(|f| base::time_of(&f.values[col]))
            {
                range = Some(range.map_or([v, v], |[a, c]| [a.min(v), c.max(v)]));
            }
        }
        range
    }
}

static EMPTY_FEATURE: Feature = Feature {
    fid: 0,
    values: Vec::new(),
    geometry: None,
};

/// Calls `f` on every coordinate, in a fixed order (used to transform in bulk).
pub fn for_each_coord_mut(g: &mut Geometry<f64>, f: &mut impl FnMut(&mut Coord<f64>)) {
    let line = |l: &mut geo::LineString<f64>, f: &mut dyn FnMut(&mut Coord<f64>)| {
        l.0.iter_mut().for_each(&mut *f)
    };
    let poly = |p: &mut geo::Polygon<f64>, f: &mut dyn FnMut(&mut Coord<f64>)| {
        p.exterior_mut(|e| e.0.iter_mut().for_each(&mut *f));
        p.interiors_mut(|rs| rs.iter_mut().for_each(|r| r.0.iter_mut().for_each(&mut *f)));
    };
    match g {
        Geometry::Point(p) => f(&mut p.0),
        Geometry::LineString(l) => line(l, f),
        Geometry::Polygon(p) => poly(p, f),
        Geometry::MultiPoint(m) => m.0.iter_mut().for_each(|p| f(&mut p.0)),
        Geometry::MultiLineString(m) => m.0.iter_mut().for_each(|l| line(l, f)),
        Geometry::MultiPolygon(m) => m.0.iter_mut().for_each(|p| poly(p, f)),
        Geometry::GeometryCollection(c) => c.0.iter_mut().for_each(|g| for_each_coord_mut(g, f)),
        Geometry::Line(l) => {
            f(&mut l.start);
            f(&mut l.end);
        }
        Geometry::Rect(_) | Geometry::Triangle(_) => {}
    }
}

/// Reads features of a layer in fid order (all, or those with the given fids),
/// geometries transformed to EPSG:3857.
pub fn read_features(
    conn: &rusqlite::Connection,
    def: &LayerDef,
    fids: Option<&[i64]>,
) -> Result<Vec<Feature>, rusqlite::Error> {
    let fid_col = q(def.fid_column.as_deref().unwrap_or("fid"));
    let mut cols = vec![fid_col.clone(), def.geom_select()];
    cols.extend(def.columns.iter().map(|c| q(&c.name)));
    let filter = match fids {
        Some(list) => format!(
            " WHERE {fid_col} IN ({})",
            list.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        None => String::new(),
    };
    let sql = format!(
        "SELECT {} FROM {}{filter} ORDER BY 1",
        cols.join(", "),
        q(&def.table)
    );
    let mut stmt = conn.prepare(&sql)?;
    let n = def.columns.len();
    let mut features = Vec::new();
    // Geometry blobs are gathered in one buffer and decoded a batch at a time, so a
    // batch's coordinates are allocated one after the other instead of between each
    // feature's property values: a tile reads the rings of neighbouring features, and
    // packed they share cache lines and prefetches. A bounded batch keeps the load's
    // extra memory at a few megabytes however large the layer.
    const BATCH_BYTES: usize = 8 << 20;
    let mut blobs: Vec<u8> = Vec::new();
    // Where each pending feature's blob ends in `blobs` (none: no geometry).
    let mut ends: Vec<Option<usize>> = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let fid: i64 = r.get(0)?;
        ends.push(match r.get_ref(1)? {
            rusqlite::types::ValueRef::Blob(b) => {
                blobs.extend_from_slice(b);
                Some(blobs.len())
            }
            _ => None,
        });
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            values.push(r.get::<_, Value>(i + 2)?);
        }
        features.push(Feature {
            fid,
            values,
            geometry: None,
        });
        if blobs.len() >= BATCH_BYTES {
            decode_batch(&mut features, &mut ends, &mut blobs);
        }
    }
    decode_batch(&mut features, &mut ends, &mut blobs);
    Ok(features)
}

/// Decodes the blobs of the last `ends.len()` features (`ends`: where each one's blob
/// ends in `blobs`) into their geometries, and empties both buffers.
fn decode_batch(features: &mut [Feature], ends: &mut Vec<Option<usize>>, blobs: &mut Vec<u8>) {
    let first = features.len() - ends.len();
    let mut from = 0;
    for (f, end) in features[first..].iter_mut().zip(ends.iter()) {
        if let Some(end) = *end {
            f.geometry = gpkg::decode(&blobs[from..end])
                .ok()
                .and_then(|d| d.decoded.geometry);
            from = end;
        }
    }
    ends.clear();
    blobs.clear();
}

/// Reads features (all, or the given fids) and transforms them to EPSG:3857.
pub fn load_features(
    store: &Store,
    def: &LayerDef,
    fids: Option<&[i64]>,
) -> Result<Vec<Feature>, IndexError> {
    let mut features = read_features(store.conn(), def, fids).map_err(|e| store.err(e))?;
    to_mercator(def, &mut features).map_err(|source| IndexError::Crs {
        layer: def.table.clone(),
        source,
    })?;
    Ok(features)
}

/// A layer as read from the store, before its geometries are transformed and indexed:
/// reading needs the store's connection, the rest does not and can run on other cores.
pub struct ReadLayer {
    def: LayerDef,
    meta: LayerMeta,
    features: Vec<Feature>,
}

/// Reads one layer (its settings and features, as stored).
pub fn read_layer(store: &Store, def: LayerDef) -> Result<ReadLayer, IndexError> {
    let meta = store.meta(&def.table)?;
    let features = read_features(store.conn(), &def, None).map_err(|e| store.err(e))?;
    Ok(ReadLayer::new(def, meta, features))
}

impl ReadLayer {
    /// A layer read by any store.
    pub fn new(def: LayerDef, meta: LayerMeta, features: Vec<Feature>) -> Self {
        ReadLayer {
            def,
            meta,
            features,
        }
    }

    /// Transforms and indexes the layer.
    pub fn build(mut self, generation: u64) -> Result<Layer, IndexError> {
        to_mercator(&self.def, &mut self.features).map_err(|source| IndexError::Crs {
            layer: self.def.table.clone(),
            source,
        })?;
        Ok(Layer::new(self.def, self.meta, self.features, generation))
    }
}

/// Loads one layer's snapshot from the store.
pub fn load_layer(store: &Store, def: LayerDef, generation: u64) -> Result<Layer, IndexError> {
    read_layer(store, def)?.build(generation)
}

/// Transforms all geometries of a layer to EPSG:3857 with one PROJ call.
pub fn to_mercator(def: &LayerDef, features: &mut [Feature]) -> Result<(), CrsError> {
    let mut xy = Vec::new();
    for f in features.iter_mut() {
        if let Some(g) = f.geometry.as_mut() {
            for_each_coord_mut(g, &mut |c| xy.push((c.x, c.y)));
        }
    }
    if def.srs_id == crs::WGS84 || def.srs_id == 4258 {
        for p in xy.iter_mut() {
            *p = crs::lonlat_to_mercator(p.0, p.1);
        }
    } else {
        crs::transform_parallel(def.srs_id, crs::WEB_MERCATOR, &mut xy)?;
    }
    let mut it = xy.into_iter();
    for f in features.iter_mut() {
        if let Some(g) = f.geometry.as_mut() {
            for_each_coord_mut(g, &mut |c| {
                if let Some((x, y)) = it.next() {
                    c.x = x;
                    c.y = y;
                }
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> LayerDef {
        LayerDef::for_test(&[("d", "DATE")])
    }

    fn point(fid: i64, x: f64, day: &str) -> Feature {
        Feature {
            fid,
            values: vec![Value::Text(day.into())],
            geometry: Some(Geometry::Point(geo::Point::new(x, x))),
        }
    }

    #[test]
    fn batches_of_blobs_decode_into_their_own_features() {
        fn push(
            batch: (&mut Vec<Feature>, &mut Vec<Option<usize>>, &mut Vec<u8>),
            fid: i64,
            x: Option<f64>,
        ) {
            let (features, ends, blobs) = batch;
            features.push(Feature {
                fid,
                values: Vec::new(),
                geometry: None,
            });
            ends.push(x.map(|x| {
                let g = Geometry::Point(geo::Point::new(x, -x));
                blobs.extend_from_slice(&gpkg::encode(25832, None, &crate::geom::wkb::encode(&g)));
                blobs.len()
            }));
        }
        let (mut features, mut ends, mut blobs) = (Vec::new(), Vec::new(), Vec::new());
        // A first batch with a feature without geometry in it, then a second.
        for (fid, x) in [(1, Some(1.0)), (2, None), (3, Some(3.0))] {
            push((&mut features, &mut ends, &mut blobs), fid, x);
        }
        decode_batch(&mut features, &mut ends, &mut blobs);
        assert!(ends.is_empty() && blobs.is_empty());
        for (fid, x) in [(4, Some(4.0)), (5, Some(5.0))] {
            push((&mut features, &mut ends, &mut blobs), fid, x);
        }
        decode_batch(&mut features, &mut ends, &mut blobs);
        let got: Vec<(i64, Option<Geometry>)> =
            features.into_iter().map(|f| (f.fid, f.geometry)).collect();
        let p = |x: f64| Some(Geometry::Point(geo::Point::new(x, -x)));
        assert_eq!(
            got,
            [
                (1, p(1.0)),
                (2, None),
                (3, p(3.0)),
                (4, p(4.0)),
                (5, p(5.0))
            ]
        );
    }

    /// Every answer of a base + overlay snapshot equals a snapshot built from scratch.
    #[test]
    fn overlay_answers_as_a_rebuild_does() {
        let all: Vec<Feature> = (0..50)
            .map(|i| {
                point(
                    i * 2,
                    i as f64 * 10.0,
                    &format!("2026-01-{:02}", 1 + i % 28),
                )
            })
            .collect();
        let l = Layer::new(def(), LayerMeta::default(), all.clone(), 1);
        // Move the easternmost, delete the first, add two between existing fids.
        let moved = point(98, 5.0, "2025-12-31");
        let added = vec![point(3, 1.0, "2026-02-01"), point(41, 2.0, "2026-01-05")];
        let mut changed = vec![moved.clone()];
        changed.extend(added.clone());
        let e = l.with_changes(changed, &[0], 2);
        let mut want: Vec<Feature> = all[1..49].to_vec();
        want.extend(added);
        want.push(moved);
        want.sort_by_key(|f| f.fid);
        let fresh = Layer::new(def(), LayerMeta::default(), want, 2);
        let fids = |l: &Layer, slots: Vec<usize>| -> Vec<i64> {
            slots.into_iter().map(|s| l.feature(s).fid).collect()
        };
        assert_eq!(fids(&e, e.slots()), fids(&fresh, fresh.slots()));
        assert_eq!(e.len(), fresh.len());
        assert_eq!(e.extent, fresh.extent);
        assert_eq!(e.time_extent, fresh.time_extent);
        for b in [
            [0.0, 0.0, 30.0, 30.0],
            [-1.0, -1.0, 1e4, 1e4],
            [400.0, 0.0, 500.0, 1e3],
        ] {
            assert_eq!(fids(&e, e.query(b)), fids(&fresh, fresh.query(b)), "{b:?}");
        }
        assert_eq!(e.by_fid(0), None);
        assert_eq!(e.by_fid(98), Some(&point(98, 5.0, "2025-12-31")));
        let f = e.folded();
        assert_eq!(fids(&f, f.slots()), fids(&fresh, fresh.slots()));
        assert!(f.overlay().is_empty());
        // A fold started before a later edit keeps that edit.
        let later = e.with_changes(vec![point(7, 3.0, "2026-03-01")], &[], 3);
        let r = Layer::rebase(&f, &e, &later).unwrap();
        assert_eq!(r.overlay().len(), 1);
        assert_eq!(fids(&r, r.slots()), fids(&later, later.slots()));
    }
}
