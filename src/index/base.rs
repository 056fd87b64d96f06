//! The immutable part of a layer snapshot: the features of the last full load or fold,
//! in fid order, under R-trees of their envelopes. Built once, shared by every snapshot
//! until the next fold.

use geo::Geometry;
use rstar::{
    AABB, Envelope, ParentNode, RTree, RTreeNode, RTreeObject, RTreeParams,
    primitives::GeomWithData, primitives::Rectangle,
};
use rusqlite::types::Value;

use super::{Feature, Hit, SortRanks};
use crate::geom::{Bbox, bbox_of};

type Entry = GeomWithData<Rectangle<[f64; 2]>, Hit>;

/// R-tree node sizes: the trees are bulk-loaded once and only queried, so nodes wider
/// than rstar's default (6) mean fewer levels and pointer hops per query. Measured on
/// the peer mix (render only): 6 -> 16 children +6 %, 32 +7 %, 64 no more than 32.
struct Wide;

impl RTreeParams for Wide {
    const MIN_SIZE: usize = 8;
    const MAX_SIZE: usize = 32;
    const REINSERTION_COUNT: usize = 2;
    type DefaultInsertionStrategy = rstar::RStarInsertionStrategy;
}

/// Segments per indexed stretch of a long line.
pub(super) const CHUNK: usize = 64;

/// Extents (metres) from which a feature also enters a coarser R-tree: a low-zoom tile
/// that drops everything under a pixel only searches features that can be seen.
pub(super) const SIZE_LEVELS: [f64; 8] = [32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0];

/// Bases from this many features on get their sort orders built with them
/// ([`Base::sort_ahead`]); a smaller one builds an order in a few milliseconds.
const SORT_AHEAD_FROM: usize = 50_000;

/// Features, envelopes and R-trees of one full load.
pub struct Base {
    /// Features in fid order.
    pub(super) features: Vec<Feature>,
    /// Each feature's extent in EPSG:3857 (`None` for NULL or empty geometry).
    pub(super) bboxes: Vec<Option<Bbox>>,
    /// Union of all extents.
    pub(super) extent: Option<Bbox>,
    /// Per column: the range of its date/time values (seconds since 1970), for the
    /// columns that hold dates.
    pub(super) time_ranges: Vec<Option<[f64; 2]>>,
    tree: RTree<Entry, Wide>,
    /// (minimum extent in metres, R-tree of the features at least that large).
    coarse: Vec<(f64, RTree<Entry, Wide>)>,
    /// Per column: its sort order, once something sorted by it.
    sort_ranks: Box<[std::sync::OnceLock<SortRanks>]>,
}

/// The larger side of an extent.
pub(super) fn size_of(b: Bbox) -> f64 {
    (b[2] - b[0]).max(b[3] - b[1])
}

/// Sorts hits by feature and position within it. Whole-feature hits (every hit of a
/// polygon layer or a coarse tree: one per feature, `start` and `end` 0) are many in a
/// low-zoom tile; there a bit per feature of the layer, set and read back in order, is
/// linear where the sort was 10 % of such a tile.
fn in_feature_order(hits: &mut Vec<Hit>, features: usize) {
    let n = hits.len();
    // Reading the bits back costs a word per 64 features of the layer; sorting costs
    // about log2(n) comparisons per hit, each slower than a word (measured with
    // `render_mix`: /16 gave 2.6 % less render time than sorting alone, /64 3.5 %).
    let sort_cost = n * (usize::BITS - n.leading_zeros()) as usize;
    if sort_cost < features / 64 || hits.iter().any(|h| h.part != Hit::WHOLE) {
        hits.sort_unstable();
        return;
    }
    let mut seen = vec![0u64; features.div_ceil(64)];
    for h in hits.iter() {
        if let Some(w) = seen.get_mut(h.feature as usize / 64) {
            *w |= 1 << (h.feature % 64);
        }
    }
    hits.clear();
    for (w, &bits) in seen.iter().enumerate() {
        let mut bits = bits;
        while bits != 0 {
            hits.push(Hit {
                feature: (w * 64) as u32 + bits.trailing_zeros(),
                part: Hit::WHOLE,
                start: 0,
                end: 0,
            });
            bits &= bits - 1;
        }
    }
}

/// Appends the entries under `node` whose envelope intersects `env`. A node wholly
/// inside `env` gives all its entries untested: a low-zoom tile holds most of the nodes
/// it meets whole, and rstar's iterator tested every entry and kept a stack to do so
/// (4 % of the server's CPU under the peer mix).
fn collect_hits(node: &ParentNode<Entry>, env: &AABB<[f64; 2]>, inside: bool, out: &mut Vec<Hit>) {
    for child in node.children() {
        match child {
            RTreeNode::Leaf(e) => {
                if inside || e.envelope().intersects(env) {
                    out.push(e.data);
                }
            }
            RTreeNode::Parent(p) => {
                if inside {
                    collect_hits(p, env, true, out);
                } else {
                    let pe = p.envelope();
                    if pe.intersects(env) {
                        collect_hits(p, env, env.contains_envelope(&pe), out);
                    }
                }
            }
        }
    }
}

/// Index rectangles of one feature: the whole envelope, or one per stretch of each long
/// line (`split`), so a small tile over a long trail only looks at what crosses it.
pub(super) fn rects_of(g: &Geometry<f64>, b: Bbox, split: bool) -> Vec<(Bbox, u32, u32, u32)> {
    let lines: Vec<&geo::LineString<f64>> = match g {
        Geometry::LineString(l) => vec![l],
        Geometry::MultiLineString(m) => m.0.iter().collect(),
        _ => return vec![(b, Hit::WHOLE, 0, 0)],
    };
    if !split || lines.iter().all(|l| l.0.len() <= CHUNK + 1) {
        return vec![(b, Hit::WHOLE, 0, 0)];
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
            out.push((bb, part as u32, start as u32, end as u32));
            start = end;
        }
    }
    out
}

/// The date/time value of a column as seconds, when it holds one.
pub(super) fn time_of(v: &Value) -> Option<f64> {
    match v {
        Value::Text(t) => crate::filter::time::parse_instant(t),
        _ => None,
    }
}

/// Which columns hold dates or times.
pub(super) fn time_columns(def: &crate::store::LayerDef) -> Vec<bool> {
    use crate::filter::bind::{Kind, column_kind};
    def.columns
        .iter()
        .map(|c| column_kind(c) == Some(Kind::Time))
        .collect()
}

impl Base {
    /// Column `col`'s sort order (built on first use; the base never changes).
    pub fn sort_ranks(&self, col: usize) -> &SortRanks {
        self.sort_ranks[col].get_or_init(|| SortRanks::build(&self.features, col))
    }

    /// Builds every column's sort order of a large base with the base, so the first page
    /// sorted by a column need not wait for its order (12–24 ms for a column of 300,000
    /// parcels, more than the page itself; 10 MB resident for their four columns,
    /// start-up 50 ms longer). Built on a thread of its own instead, the transient copies
    /// of the values went to a malloc arena of their own: 20 MB resident.
    fn sort_ahead(&self) {
        if self.features.len() < SORT_AHEAD_FROM {
            return;
        }
        for col in 0..self.sort_ranks.len() {
            self.sort_ranks(col);
        }
    }

    /// Builds the indexes over features in EPSG:3857, fid order.
    pub fn build(def: &crate::store::LayerDef, features: Vec<Feature>) -> Base {
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
                    (size_of(b) >= min).then(|| {
                        rects_of(g, b, split)
                            .into_iter()
                            .map(move |(r, part, start, end)| {
                                GeomWithData::new(
                                    Rectangle::from_corners([r[0], r[1]], [r[2], r[3]]),
                                    Hit {
                                        feature: i as u32,
                                        part,
                                        start,
                                        end,
                                    },
                                )
                            })
                    })
                })
                .flatten()
                .collect()
        };
        // The fine tree on one thread, the coarse trees (low zooms, where tiles are large
        // and lines are wanted whole) on another: start-up waits for the longer one.
        let (tree, coarse) = std::thread::scope(|s| {
            let coarse = s.spawn(|| {
                SIZE_LEVELS
                    .iter()
                    .map(|&m| (m, RTree::bulk_load_with_params(entries(m, false))))
                    .collect()
            });
            let tree = RTree::bulk_load_with_params(entries(0.0, true));
            let coarse = coarse
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (tree, coarse)
        });
        let is_time = time_columns(def);
        let time_ranges = is_time
            .iter()
            .enumerate()
            .map(|(col, &t)| {
                if !t {
                    return None;
                }
                let mut range: Option<[f64; 2]> = None;
                for f in &features {
                    if let Some(v) = f.values.get(col).and_then(time_of) {
                        range = Some(range.map_or([v, v], |[a, b]| [a.min(v), b.max(v)]));
                    }
                }
                range
            })
            .collect();
        let base = Base {
            features,
            bboxes,
            extent,
            time_ranges,
            tree,
            coarse,
            sort_ranks: (0..def.columns.len()).map(|_| Default::default()).collect(),
        };
        base.sort_ahead();
        base
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether the base holds no feature.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The features, in fid order.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// Index of a fid.
    pub(super) fn position(&self, fid: i64) -> Option<usize> {
        self.features.binary_search_by_key(&fid, |f| f.fid).ok()
    }

    /// Entries whose envelope intersects a box, sorted by feature and position; features
    /// under `min_size` metres may be left out (every one at least that large is in).
    pub(super) fn query_parts(&self, b: Bbox, min_size: f64) -> Vec<Hit> {
        let env = AABB::from_corners([b[0], b[1]], [b[2], b[3]]);
        let tree = self
            .coarse
            .iter()
            .rev()
            .find(|(level, _)| *level <= min_size)
            .map_or(&self.tree, |(_, t)| t);
        // The iterator cannot tell its length: start large enough for most tiles rather
        // than grow (and copy) a dozen times.
        let mut hits: Vec<Hit> = Vec::with_capacity(1024);
        collect_hits(tree.root(), &env, false, &mut hits);
        in_feature_order(&mut hits, self.features.len());
        hits
    }

    /// Entries of the fine tree (stretches of lines), nearest first to a point, with
    /// their squared distance in EPSG:3857 units.
    pub(super) fn nearest_iter<'a>(
        &'a self,
        point: &[f64; 2],
    ) -> impl Iterator<Item = (Hit, f64)> + 'a {
        self.tree
            .nearest_neighbor_iter_with_distance_2(point)
            .map(|(e, d2)| (e.data, d2))
    }
}

#[cfg(test)]
mod tests {
    use super::{Entry, Hit, Wide, collect_hits, in_feature_order};
    use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};

    fn whole(feature: u32) -> Hit {
        Hit {
            feature,
            part: Hit::WHOLE,
            start: 0,
            end: 0,
        }
    }

    #[test]
    fn hits_come_out_as_a_sort_puts_them_by_either_path() {
        // A scrambled order (as a tree's leaves give them), checked against the
        // standard sort, for lists small and large against the layer.
        let mut x = 0x2545_f491_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (n, features) in [(0, 100), (5, 100_000), (3_000, 10_000), (9_999, 10_000)] {
            let mut ids: Vec<u32> = (0..features as u32).collect();
            for i in (1..ids.len()).rev() {
                ids.swap(i, next() as usize % (i + 1));
            }
            let mut hits: Vec<Hit> = ids[..n].iter().map(|&f| whole(f)).collect();
            let mut want = hits.clone();
            want.sort();
            in_feature_order(&mut hits, features);
            assert_eq!(hits, want, "{n} of {features}");
        }
        // Stretches of lines keep their order within a feature.
        let stretch = |feature, part, start, end| Hit {
            feature,
            part,
            start,
            end,
        };
        let mut hits = vec![
            stretch(7, 1, 0, 64),
            whole(3),
            stretch(7, 0, 64, 128),
            stretch(7, 0, 0, 64),
        ];
        let mut want = hits.clone();
        want.sort();
        in_feature_order(&mut hits, 8);
        assert_eq!(hits, want);
    }

    #[test]
    fn the_walk_finds_what_testing_every_rectangle_finds() {
        // Rectangles of every size on a grid, so that queries hold nodes whole, cut
        // them, touch them at an edge and miss them; the oracle tests each rectangle.
        let mut x = 0x9e37_79b9_u64;
        let mut next = |m: f64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1_000_000) as f64 / 1_000_000.0 * m
        };
        let rects: Vec<[f64; 4]> = (0..5_000)
            .map(|_| {
                let (x0, y0) = (next(1000.0).floor(), next(1000.0).floor());
                let (w, h) = (next(30.0).floor(), next(30.0).floor());
                [x0, y0, x0 + w, y0 + h]
            })
            .collect();
        let entries: Vec<Entry> = rects
            .iter()
            .enumerate()
            .map(|(i, r)| {
                GeomWithData::new(
                    Rectangle::from_corners([r[0], r[1]], [r[2], r[3]]),
                    whole(i as u32),
                )
            })
            .collect();
        let tree: RTree<Entry, Wide> = RTree::bulk_load_with_params(entries);
        for q in [
            [0.0, 0.0, 1030.0, 1030.0],
            [100.0, 100.0, 400.0, 250.0],
            [500.0, 500.0, 500.0, 500.0],
            [-50.0, -50.0, -1.0, -1.0],
            [999.0, 0.0, 2000.0, 10.0],
        ] {
            let env = AABB::from_corners([q[0], q[1]], [q[2], q[3]]);
            let mut got = Vec::new();
            collect_hits(tree.root(), &env, false, &mut got);
            got.sort();
            let want: Vec<Hit> = rects
                .iter()
                .enumerate()
                .filter(|(_, r)| r[0] <= q[2] && q[0] <= r[2] && r[1] <= q[3] && q[1] <= r[3])
                .map(|(i, _)| whole(i as u32))
                .collect();
            assert_eq!(got, want, "{q:?}");
        }
    }
}
