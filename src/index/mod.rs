//! In-memory layer snapshots: every feature with typed properties and its geometry in
//! Web Mercator, under an R-tree of envelopes. Readers never touch SQLite.

use std::collections::HashMap;
use std::sync::Arc;

use geo::{Coord, Geometry};
use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};
use rusqlite::types::Value;

use crate::crs::{self, CrsError};
use crate::geom::{Bbox, bbox_of, gpkg};
use crate::store::layer::q;
use crate::store::{LayerDef, LayerMeta, Store, StoreError};

pub mod dict;
pub mod nearest;

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
#[derive(Debug, Clone)]
pub struct Feature {
    /// Feature id.
    pub fid: i64,
    /// Property values in [`Layer::columns`] order.
    pub values: Vec<Value>,
    /// Geometry in EPSG:3857; `None` for NULL or empty.
    pub geometry: Option<Geometry<f64>>,
}

/// What an R-tree entry points at: a whole feature, or a stretch of one of its lines
/// (vertices `start..=end` of line `part`), so a small tile over a long trail only looks
/// at the stretch that crosses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// Feature index.
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

type Entry = GeomWithData<Rectangle<[f64; 2]>, Hit>;

/// Segments per indexed stretch of a long line.
const CHUNK: usize = 64;

/// Extents (metres) from which a feature also enters a coarser R-tree: a low-zoom tile
/// that drops everything under a pixel only searches features that can be seen.
const SIZE_LEVELS: [f64; 8] = [32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0];

/// An immutable snapshot of one layer.
pub struct Layer {
    /// The table definition.
    pub def: LayerDef,
    /// What the layer contributes to vector tiles (from its metadata).
    pub rules: crate::tiles::LayerRules,
    /// Metadata.
    pub meta: LayerMeta,
    /// Features in fid order.
    pub features: Vec<Feature>,
    /// Each feature's extent in EPSG:3857 (`None` for NULL or empty geometry).
    pub bboxes: Vec<Option<Bbox>>,
    /// Extent in lon/lat.
    pub extent_lonlat: Option<Bbox>,
    /// Property values ready for vector tiles.
    pub dict: dict::TileDict,
    /// For line features: each vertex's Douglas–Peucker importance (squared metres,
    /// parts concatenated), so tiles simplify by a threshold instead of running DP.
    pub importance: Vec<Option<Box<[f32]>>>,
    /// The first DATE/DATETIME column and the range of its values (seconds since 1970),
    /// computed once here rather than on every metadata request.
    pub time_extent: Option<(usize, Option<[f64; 2]>)>,
    tree: RTree<Entry>,
    /// (minimum extent in metres, R-tree of the features at least that large).
    coarse: Vec<(f64, RTree<Entry>)>,
}

impl Layer {
    /// Indices of features whose envelope intersects a box in EPSG:3857, in fid order.
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

    /// The entries (whole features or stretches of lines) whose envelope intersects a box,
    /// sorted by feature and position; see [`Layer::query_sized`] for `min_size`.
    pub fn query_parts(&self, b: Bbox, min_size: f64) -> Vec<Hit> {
        let env = AABB::from_corners([b[0], b[1]], [b[2], b[3]]);
        let tree = self
            .coarse
            .iter()
            .rev()
            .find(|(level, _)| *level <= min_size)
            .map_or(&self.tree, |(_, t)| t);
        let mut hits: Vec<Hit> = tree
            .locate_in_envelope_intersecting(&env)
            .map(|e| e.data)
            .collect();
        hits.sort_unstable();
        hits
    }
}

/// Index entries of one feature: whole, or one per stretch of each long line.
fn entries_of(i: usize, g: &Geometry<f64>, b: Bbox, split: bool) -> Vec<Entry> {
    let whole = |b: Bbox| {
        let hit = Hit {
            feature: i as u32,
            part: Hit::WHOLE,
            start: 0,
            end: 0,
        };
        vec![GeomWithData::new(
            Rectangle::from_corners([b[0], b[1]], [b[2], b[3]]),
            hit,
        )]
    };
    let lines: Vec<&geo::LineString<f64>> = match g {
        Geometry::LineString(l) => vec![l],
        Geometry::MultiLineString(m) => m.0.iter().collect(),
        _ => return whole(b),
    };
    if !split || lines.iter().all(|l| l.0.len() <= CHUNK + 1) {
        return whole(b);
    }
    let mut out = Vec::new();
    for (part, l) in lines.iter().enumerate() {
        let mut start = 0;
        while start + 1 < l.0.len() {
            let end = (start + CHUNK).min(l.0.len() - 1);
            let mut bb = [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ];
            for c in &l.0[start..=end] {
                bb = [
                    bb[0].min(c.x),
                    bb[1].min(c.y),
                    bb[2].max(c.x),
                    bb[3].max(c.y),
                ];
            }
            let hit = Hit {
                feature: i as u32,
                part: part as u32,
                start: start as u32,
                end: end as u32,
            };
            out.push(GeomWithData::new(
                Rectangle::from_corners([bb[0], bb[1]], [bb[2], bb[3]]),
                hit,
            ));
            start = end;
        }
    }
    out
}

/// All layers, by name.
#[derive(Default)]
pub struct Catalog {
    /// Layers in store order.
    pub layers: Vec<Arc<Layer>>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// Loads every layer of the store.
    pub fn load(store: &Store) -> Result<Catalog, IndexError> {
        let mut cat = Catalog::default();
        for def in store.layers()? {
            let layer = load_layer(store, def)?;
            cat.by_name
                .insert(layer.def.table.clone(), cat.layers.len());
            cat.layers.push(Arc::new(layer));
        }
        Ok(cat)
    }

    /// A catalog of the given layers.
    pub fn from_layers(layers: Vec<Arc<Layer>>) -> Catalog {
        let by_name = layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.def.table.clone(), i))
            .collect();
        Catalog { layers, by_name }
    }

    /// A layer by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Layer>> {
        self.by_name.get(name).map(|&i| &self.layers[i])
    }
}

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
    store: &Store,
    def: &LayerDef,
    fids: Option<&[i64]>,
) -> Result<Vec<Feature>, IndexError> {
    let fid_col = q(def.fid_column.as_deref().unwrap_or("fid"));
    let mut cols = vec![fid_col.clone(), q(&def.geom_column)];
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
    let err = |e| store.err(e);
    let mut stmt = store.conn().prepare(&sql).map_err(err)?;
    let n = def.columns.len();
    let mut features = Vec::new();
    let mut rows = stmt.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let fid: i64 = r.get(0).map_err(err)?;
        let geometry = match r.get_ref(1).map_err(err)? {
            rusqlite::types::ValueRef::Blob(b) => {
                gpkg::decode(b).ok().and_then(|d| d.decoded.geometry)
            }
            _ => None,
        };
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            values.push(r.get::<_, Value>(i + 2).map_err(err)?);
        }
        features.push(Feature {
            fid,
            values,
            geometry,
        });
    }
    drop(rows);
    drop(stmt);
    to_mercator(def, &mut features).map_err(|source| IndexError::Crs {
        layer: def.table.clone(),
        source,
    })?;
    Ok(features)
}

/// Loads one layer's snapshot from the store.
pub fn load_layer(store: &Store, def: LayerDef) -> Result<Layer, IndexError> {
    let meta = store.meta(&def.table)?;
    let features = read_features(store, &def, None)?;
    Ok(build(def, meta, features))
}

impl Layer {
    /// A new snapshot with features replaced or added (`changed`, in EPSG:3857) and
    /// removed (`removed` fids): what an edit needs, without reading the whole layer.
    pub fn with_changes(&self, changed: Vec<Feature>, removed: &[i64]) -> Layer {
        let mut features = self.features.clone();
        features.retain(|f| removed.binary_search(&f.fid).is_err());
        for f in changed {
            match features.binary_search_by_key(&f.fid, |x| x.fid) {
                Ok(i) => features[i] = f,
                Err(i) => features.insert(i, f),
            }
        }
        build(self.def.clone(), self.meta.clone(), features)
    }
}

/// A strong validator of one feature's content (fid, values and geometry).
pub fn etag(f: &Feature) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(f.fid.to_le_bytes());
    for v in &f.values {
        match v {
            Value::Null => h.update([0u8]),
            Value::Integer(i) => {
                h.update([1u8]);
                h.update(i.to_le_bytes());
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
    if let Some(g) = &f.geometry {
        h.update(crate::geom::wkb::encode(g));
    }
    let d = h.finalize();
    format!(
        "\"{}\"",
        d[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Builds the indexes of a snapshot over features in EPSG:3857, fid order.
fn build(def: LayerDef, meta: LayerMeta, features: Vec<Feature>) -> Layer {
    let bboxes: Vec<Option<Bbox>> = features
        .iter()
        .map(|f| f.geometry.as_ref().and_then(bbox_of))
        .collect();
    let mut extent: Option<Bbox> = None;
    for b in bboxes.iter().flatten() {
        crate::geom::bbox_union(&mut extent, *b);
    }
    let entries = |min: f64, split: bool| -> Vec<Entry> {
        features
            .iter()
            .zip(&bboxes)
            .enumerate()
            .filter_map(|(i, (f, b))| {
                let (g, b) = (f.geometry.as_ref()?, (*b)?);
                ((b[2] - b[0]).max(b[3] - b[1]) >= min).then(|| entries_of(i, g, b, split))
            })
            .flatten()
            .collect()
    };
    let tree = RTree::bulk_load(entries(0.0, true));
    // Coarse trees serve low zooms, where tiles are large and lines are wanted whole.
    let coarse = SIZE_LEVELS
        .iter()
        .map(|&m| (m, RTree::bulk_load(entries(m, false))))
        .collect();
    let extent_lonlat = extent.map(|b| {
        let (x0, y0) = crs::mercator_to_lonlat(b[0], b[1]);
        let (x1, y1) = crs::mercator_to_lonlat(b[2], b[3]);
        [x0, y0, x1, y1]
    });
    let dict = dict::TileDict::build(&def, &features);
    let importance = features
        .iter()
        .map(|f| f.geometry.as_ref().and_then(line_importance))
        .collect();
    let time_extent = def
        .columns
        .iter()
        .position(|c| crate::filter::bind::column_kind(c) == Some(crate::filter::bind::Kind::Time))
        .map(|col| {
            let mut range: Option<[f64; 2]> = None;
            for f in &features {
                if let Value::Text(t) = &f.values[col]
                    && let Some(v) = crate::filter::time::parse_instant(t)
                {
                    range = Some(range.map_or([v, v], |[a, b]| [a.min(v), b.max(v)]));
                }
            }
            (col, range)
        });
    Layer {
        time_extent,
        rules: crate::tiles::LayerRules::new(&def, &meta),
        def,
        meta,
        features,
        bboxes,
        extent_lonlat,
        dict,
        importance,
        tree,
        coarse,
    }
}

/// Douglas–Peucker importance of every vertex of a line geometry: the squared distance
/// at which DP would drop it, capped by its parent split's, so keeping the vertices whose
/// importance exceeds t² gives exactly DP's result at tolerance t.
fn line_importance(g: &Geometry<f64>) -> Option<Box<[f32]>> {
    let lines: Vec<&geo::LineString<f64>> = match g {
        Geometry::LineString(l) => vec![l],
        Geometry::MultiLineString(m) => m.0.iter().collect(),
        _ => return None,
    };
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.0.len()).sum());
    let mut stack = Vec::new();
    for l in lines {
        let p = &l.0;
        let base = out.len();
        out.resize(base + p.len(), 0.0f32);
        if p.is_empty() {
            continue;
        }
        out[base] = f32::INFINITY;
        out[base + p.len() - 1] = f32::INFINITY;
        stack.clear();
        stack.push((0usize, p.len() - 1, f32::INFINITY));
        while let Some((a, b, cap)) = stack.pop() {
            if b <= a + 1 {
                continue;
            }
            let (mut best, mut best_d) = (a + 1, -1.0f64);
            for (i, c) in p.iter().enumerate().take(b).skip(a + 1) {
                let d = seg_dist2(*c, p[a], p[b]);
                if d > best_d {
                    best = i;
                    best_d = d;
                }
            }
            let imp = (best_d as f32).min(cap);
            out[base + best] = imp;
            stack.push((a, best, imp));
            stack.push((best, b, imp));
        }
    }
    Some(out.into_boxed_slice())
}

fn seg_dist2(p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.x - a.x) * dx + (p.y - a.y) * dy) / len2).clamp(0.0, 1.0)
    };
    let (x, y) = (a.x + t * dx - p.x, a.y + t * dy - p.y);
    x * x + y * y
}

/// Transforms all geometries of a layer to EPSG:3857 with one PROJ call.
fn to_mercator(def: &LayerDef, features: &mut [Feature]) -> Result<(), CrsError> {
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
        crs::transform(def.srs_id, crs::WEB_MERCATOR, &mut xy)?;
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
