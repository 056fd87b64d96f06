//! An items request as a query on a layer snapshot: parameters are parsed and bound to
//! the layer's columns (bbox, CQL2 filter, property equality, datetime, nearest,
//! sorting), then evaluated on the in-memory index. Never SQL.

use std::cmp::Ordering;
use std::collections::HashSet;

use geo::{Geometry, Intersects, Rect};
use rusqlite::types::Value;

use super::crs_out::OutCrs;
use super::params::Params;
use super::problem::Problem;
use crate::audience::Audience;
use crate::filter::{self, CmpOp, FilterError, Lang, Pred, Schema, bind::Kind};
use crate::geom::Bbox;
use crate::index::{Layer, NULL_RANK, cmp_values, nearest::Near};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 10;
/// Largest page size; larger requests are clamped.
pub const MAX_LIMIT: usize = 10_000;

/// Parameters of the items resource besides `f` and the properties.
pub const ITEMS_PARAMS: &[&str] = &[
    "bbox",
    "bbox-crs",
    "crs",
    "limit",
    "offset",
    "datetime",
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
    "near",
    "near-crs",
    "max-distance",
];

/// An items request after parsing and binding.
pub struct ItemsQuery {
    /// `bbox`, as Web Mercator boxes: none, one, or two for a box across the antimeridian.
    pub bbox: Vec<Bbox>,
    /// Filter, property equality and datetime, all in one predicate.
    pub pred: Option<Pred>,
    /// Sort keys: (column, descending); column `None` is the feature id.
    pub sort: Vec<(Option<usize>, bool)>,
    /// Nearest-first search.
    pub near: Option<Near>,
    /// Page size.
    pub limit: usize,
    /// Features skipped.
    pub offset: usize,
    /// Output CRS.
    pub crs: OutCrs,
    /// Which properties of which features the caller sees: filters and sorting read
    /// hidden values as NULL.
    pub audience: Audience,
}

fn numbers(s: &str, what: &str, example: &str) -> Result<Vec<f64>, Problem> {
    s.split(',')
        .map(|p| p.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "{what} '{s}' is not a list of finite numbers; expected {example}"
            ))
        })
}

fn parse_bbox(s: &str) -> Result<[f64; 4], Problem> {
    let nums = numbers(s, "bbox", "minLon,minLat,maxLon,maxLat")?;
    let b = match nums.as_slice() {
        [a, b, c, d] => [*a, *b, *c, *d],
        [a, b, _, c, d, _] => [*a, *b, *c, *d],
        _ => {
            return Err(Problem::bad_request(format!(
                "bbox must have 4 or 6 numbers, got {}",
                nums.len()
            )));
        }
    };
    Ok(b)
}

fn filter_problem(e: FilterError) -> Problem {
    Problem::bad_request(format!("filter: {e}"))
}

/// `name=value`: the value as the column's type reads it; a value that type cannot
/// hold matches nothing (it is a valid question with an empty answer).
fn equality(layer: &Layer, col: usize, want: &str) -> Pred {
    use filter::bind::{Lit, Operand, column_kind};
    let c = &layer.def.columns[col];
    let Some(kind) = column_kind(c) else {
        return Pred::Const(false);
    };
    let lit = match kind {
        Kind::Str => Some(Lit::Str(want.to_string())),
        Kind::Num => want.trim().parse().ok().map(Lit::Num),
        Kind::Bool => match want.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(Lit::Bool(true)),
            "false" | "0" => Some(Lit::Bool(false)),
            _ => None,
        },
        Kind::Time => filter::time::parse_instant(want).map(Lit::Time),
    };
    match lit {
        Some(l) => Pred::Cmp(CmpOp::Eq, Operand::Col(col, kind), Operand::Lit(l)),
        None => Pred::Const(false),
    }
}

fn datetime(layer: &Layer, visible: &[bool], s: &str) -> Result<Pred, Problem> {
    use filter::bind::{Lit, Operand, column_kind};
    let (i, c) = layer
        .def
        .columns
        .iter()
        .enumerate()
        .find(|(i, c)| visible[*i] && column_kind(c) == Some(Kind::Time))
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "datetime: collection '{}' has no date or time property to filter on",
                layer.def.table
            ))
        })?;
    let (lo, hi) = filter::time::parse_interval(s).map_err(Problem::bad_request)?;
    tracing::debug!(property = %c.name, "datetime filter");
    let col = Operand::Col(i, Kind::Time);
    let mut v = Vec::new();
    if let Some(lo) = lo {
        v.push(Pred::Cmp(
            CmpOp::Ge,
            col.clone(),
            Operand::Lit(Lit::Time(lo)),
        ));
    }
    if let Some(hi) = hi {
        v.push(Pred::Cmp(CmpOp::Le, col, Operand::Lit(Lit::Time(hi))));
    }
    Ok(Pred::And(v))
}

fn sortby(layer: &Layer, visible: &[bool], s: &str) -> Result<Vec<(Option<usize>, bool)>, Problem> {
    s.split(',')
        .map(|k| {
            let k = k.trim();
            let (name, desc) = match k.strip_prefix('-') {
                Some(n) => (n, true),
                None => (k.strip_prefix('+').unwrap_or(k), false),
            };
            let name = name.trim();
            if name == "id" || layer.def.fid_column.as_deref() == Some(name) {
                return Ok((None, desc));
            }
            layer
                .def
                .columns
                .iter()
                .enumerate()
                .position(|(i, c)| visible[i] && c.name == name)
                .map(|i| (Some(i), desc))
                .ok_or_else(|| {
                    Problem::bad_request(format!(
                        "sortby: '{name}' is not a property of '{}'; sort by one of: id, {} (prefix - for descending)",
                        layer.def.table,
                        names(layer, visible)
                    ))
                })
        })
        .collect()
}

fn near(layer: &Layer, p: &Params) -> Result<Option<Near>, Problem> {
    let Some(s) = p.get("near") else {
        for k in ["near-crs", "max-distance"] {
            if p.get(k).is_some() {
                return Err(Problem::bad_request(format!(
                    "{k} only applies together with near=LON,LAT"
                )));
            }
        }
        return Ok(None);
    };
    let crs = match p.get("near-crs") {
        Some(c) => OutCrs::parse(c, layer.def.srs_id)?,
        None => OutCrs::crs84(),
    };
    let xy = match numbers(s, "near", "LON,LAT")?.as_slice() {
        [x, y] | [x, y, _] => [*x, *y],
        v => {
            return Err(Problem::bad_request(format!(
                "near takes 2 numbers (LON,LAT in near-crs), got {}",
                v.len()
            )));
        }
    };
    let pt = crs
        .to_mercator(Geometry::Point(geo::Point::new(xy[0], xy[1])))
        .map_err(|e| Problem::bad_request(format!("near '{s}': {e}")))?;
    let Geometry::Point(pt) = pt else {
        return Err(Problem::internal("a point stayed a point"));
    };
    let max_metres = match p.get("max-distance") {
        None => None,
        Some(m) => Some(
            m.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    Problem::bad_request(format!(
                        "max-distance '{m}' must be a distance in metres, 0 or more"
                    ))
                })?,
        ),
    };
    Ok(Some(Near {
        point: [pt.x(), pt.y()],
        max_metres,
    }))
}

/// Reads and checks every parameter of an items request.
/// The names of the visible properties, for messages.
fn names(layer: &Layer, visible: &[bool]) -> String {
    layer
        .def
        .columns
        .iter()
        .zip(visible)
        .filter(|(_, v)| **v)
        .map(|(c, _)| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads and checks every parameter of an items request; only the properties the
/// audience sees exist for it.
pub fn parse_query(layer: &Layer, p: &Params, audience: Audience) -> Result<ItemsQuery, Problem> {
    let id = &layer.def.table;
    let visible_cols = audience.columns().to_vec();
    let visible = visible_cols.as_slice();
    let mut preds = Vec::new();
    for (k, v) in p.pairs() {
        if k == "f" || ITEMS_PARAMS.contains(&k.as_str()) {
            continue;
        }
        match layer
            .def
            .columns
            .iter()
            .enumerate()
            .position(|(i, c)| visible[i] && &c.name == k)
        {
            Some(col) => preds.push(equality(layer, col, v)),
            None => {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter '{k}': use {} or a property of '{id}' ({})",
                    ITEMS_PARAMS.join(", "),
                    names(layer, visible)
                )));
            }
        }
    }
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                Problem::bad_request(format!("limit '{s}' must be a whole number of at least 1"))
            })?
            .min(MAX_LIMIT as u64) as usize,
    };
    let offset = match p.get("offset") {
        None => 0,
        Some(s) => s.trim().parse::<usize>().map_err(|_| {
            Problem::bad_request(format!("offset '{s}' must be a whole number of at least 0"))
        })?,
    };
    let srs = layer.def.srs_id;
    let crs = match p.get("crs") {
        Some(c) => OutCrs::parse(c, srs)?,
        None => OutCrs::crs84(),
    };
    let bbox_crs = match p.get("bbox-crs") {
        Some(c) => OutCrs::parse(c, srs)?,
        None => OutCrs::crs84(),
    };
    let bbox = match p.get("bbox") {
        Some(s) => bbox_crs.bbox_to_mercator_boxes(parse_bbox(s)?)?,
        None => Vec::new(),
    };
    if let Some(dt) = p.get("datetime") {
        preds.push(datetime(layer, visible, dt)?);
    }
    if let Some(text) = p.get("filter") {
        let lang =
            Lang::parse(p.get("filter-lang").unwrap_or("cql2-text")).map_err(filter_problem)?;
        let filter_crs = match p.get("filter-crs") {
            Some(c) => OutCrs::parse(c, srs)?,
            None => OutCrs::crs84(),
        };
        let expr = filter::parse(text, lang).map_err(filter_problem)?;
        let to_index = |g: Geometry<f64>| filter_crs.to_mercator(g).map_err(|e| e.to_string());
        let schema = Schema {
            collection: id,
            columns: &layer.def.columns,
            visible,
            geom_column: &layer.def.geom_column,
            to_index: &to_index,
        };
        preds.push(schema.bind(&expr).map_err(filter_problem)?);
    } else {
        for k in ["filter-lang", "filter-crs"] {
            if p.get(k).is_some() {
                return Err(Problem::bad_request(format!(
                    "{k} only applies together with filter"
                )));
            }
        }
    }
    let near = near(layer, p)?;
    let sort = match p.get("sortby") {
        Some(_) if near.is_some() => {
            return Err(Problem::bad_request(
                "sortby cannot be combined with near: near sorts by distance",
            ));
        }
        Some(s) => sortby(layer, visible, s)?,
        None => Vec::new(),
    };
    let pred = match preds.len() {
        0 => None,
        1 => preds.pop(),
        _ => Some(Pred::And(preds)),
    };
    Ok(ItemsQuery {
        bbox,
        pred,
        sort,
        near,
        limit,
        offset,
        crs,
        audience,
    })
}

/// What an items request selected.
pub struct Selection {
    /// `numberMatched`.
    pub matched: usize,
    /// Feature indices of the page, in order.
    pub page: Vec<usize>,
    /// Distances in metres when the request was a `near` search.
    pub distances: Option<Vec<f64>>,
}

fn intersect(a: Bbox, b: Bbox) -> Bbox {
    [
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ]
}

/// The first `end` hits in `q.sort` order. Each hit's keys are read once into a flat
/// array of ranks (`index::sort_rank`: a column's order over the layer's base, built on
/// the first sort by it; a value the caller may not see ranks as NULL), so a comparison
/// reads two integers instead of two values scattered over the heap; only the first
/// `end` are selected (linear time) and then sorted. Ties are broken by fid, so the
/// order is total and a page never depends on how the features happen to lie in memory.
fn sorted_top(layer: &Layer, q: &ItemsQuery, hits: Vec<usize>, end: usize) -> Vec<usize> {
    let n = q.sort.len();
    // Rank in the high half; the low half orders edits' values that fall into the same
    // gap between two loaded values.
    let mut keys: Vec<u64> = vec![u64::from(NULL_RANK) << 32; hits.len() * n];
    for (k, &(col, _)) in q.sort.iter().enumerate() {
        let Some(c) = col else { continue };
        let ranks = layer.sort_ranks(c);
        // A column every caller sees needs no look at the feature (its cache miss was
        // the cost): the rank comes straight from the base's array.
        let always = q.audience.always_shows(c);
        let mut between: Vec<(u32, usize, &Value)> = Vec::new();
        for (r, &i) in hits.iter().enumerate() {
            match layer.rank_at(ranks, i, |f| always || q.audience.mask(&f.values)[c]) {
                (rank, None) => keys[r * n + k] = u64::from(rank) << 32,
                (rank, Some(v)) => between.push((rank, r, v)),
            }
        }
        between.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| cmp_values(a.2, b.2)));
        let mut sub = 0u64;
        for (j, &(rank, r, v)) in between.iter().enumerate() {
            sub = match j.checked_sub(1).map(|p| between[p]) {
                Some((pr, _, pv)) if pr == rank && cmp_values(pv, v) == Ordering::Equal => sub,
                Some((pr, _, _)) if pr == rank => sub + 1,
                _ => 1,
            };
            keys[r * n + k] = (u64::from(rank) << 32) | sub;
        }
    }
    let fid = |r: u32| layer.feature(hits[r as usize]).fid;
    let cmp = |a: &u32, b: &u32| -> Ordering {
        let (ra, rb) = (*a as usize, *b as usize);
        for (k, &(col, desc)) in q.sort.iter().enumerate() {
            let o = match col {
                Some(_) => keys[ra * n + k].cmp(&keys[rb * n + k]),
                None => fid(*a).cmp(&fid(*b)),
            };
            let o = if desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        fid(*a).cmp(&fid(*b))
    };
    let mut rows: Vec<u32> = (0..hits.len() as u32).collect();
    if end < rows.len() {
        rows.select_nth_unstable_by(end, cmp);
        rows.truncate(end);
    }
    rows.sort_unstable_by(cmp);
    rows.into_iter().map(|r| hits[r as usize]).collect()
}

/// Runs the query on the index.
pub fn select(layer: &Layer, q: &ItemsQuery) -> Selection {
    let search = q.pred.as_ref().and_then(Pred::search_box);
    // One window per bbox part (a bbox across the antimeridian has two), each narrowed by
    // the filter's own search box.
    let windows: Vec<Bbox> = match (q.bbox.is_empty(), search) {
        (true, None) => Vec::new(),
        (true, Some(b)) => vec![b],
        (false, s) => q
            .bbox
            .iter()
            .map(|w| s.map_or(*w, |b| intersect(*w, b)))
            .collect(),
    };
    let windows: Vec<Bbox> = windows
        .into_iter()
        .filter(|w| w[0] <= w[2] && w[1] <= w[3])
        .collect();
    let empty_window = windows.is_empty() && (!q.bbox.is_empty() || search.is_some());
    let window = !windows.is_empty();
    let rects: Vec<Rect> = q
        .bbox
        .iter()
        .map(|b| Rect::new((b[0], b[1]), (b[2], b[3])))
        .collect();
    let keep = |i: usize| {
        let f = layer.feature(i);
        (rects.is_empty()
            || f.geometry
                .as_ref()
                .is_some_and(|g| rects.iter().any(|r| g.intersects(r))))
            && q.pred
                .as_ref()
                .is_none_or(|p| p.matches(&q.audience.values(&f.values), f.geometry.as_ref()))
    };
    let candidates: Vec<usize> = match windows.as_slice() {
        _ if empty_window => Vec::new(),
        [] => layer.slots(),
        [w] => layer.query(*w),
        many => {
            let mut all: Vec<usize> = many.iter().flat_map(|w| layer.query(*w)).collect();
            all.sort_unstable_by_key(|&i| layer.feature(i).fid);
            all.dedup();
            all
        }
    };
    let end = q.offset.saturating_add(q.limit);
    if let Some(near) = &q.near {
        let in_window: Option<HashSet<usize>> =
            window.then(|| candidates.iter().copied().collect());
        let accept = |i: usize| {
            !empty_window && in_window.as_ref().is_none_or(|w| w.contains(&i)) && keep(i)
        };
        let (found, matched) = if near.max_metres.is_some() {
            let all = layer.nearest(near, None, accept);
            let n = all.len();
            (all, n)
        } else {
            let matched = candidates
                .iter()
                .filter(|&&i| layer.feature(i).geometry.is_some() && keep(i))
                .count();
            (layer.nearest(near, Some(end), accept), matched)
        };
        let page: Vec<(usize, f64)> = found.into_iter().skip(q.offset).take(q.limit).collect();
        return Selection {
            matched,
            distances: Some(page.iter().map(|p| p.1).collect()),
            page: page.into_iter().map(|p| p.0).collect(),
        };
    }
    let mut hits: Vec<usize> = candidates.into_iter().filter(|&i| keep(i)).collect();
    let matched = hits.len();
    if !q.sort.is_empty() {
        hits = sorted_top(layer, q, hits, end);
    }
    let page = hits
        .get(q.offset.min(hits.len())..end.min(hits.len()))
        .unwrap_or_default()
        .to_vec();
    Selection {
        matched,
        page,
        distances: None,
    }
}
