//! The sort order of one column over a base's features, as numbers: each feature's value
//! gets its place among the column's distinct values, so a sorted query compares two
//! `u32` in a flat array instead of two values scattered over the heap (the comparisons'
//! cache misses were most of a sorted page's time). Built on the first sort by the
//! column and kept with the base, which never changes; values of later edits are placed
//! between the base's by binary search.

use std::cmp::Ordering;
use std::collections::HashMap;

use rusqlite::types::Value;

use super::Feature;

/// How `sortby` orders values: NULL last ascending (as PostgreSQL does), numbers by
/// value across integer and real, mixed storage classes as SQLite orders them.
pub fn cmp_values(a: &Value, b: &Value) -> Ordering {
    use Value::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Greater,
        (_, Null) => Ordering::Less,
        (Integer(x), Integer(y)) => x.cmp(y),
        (Integer(x), Real(y)) => (*x as f64).total_cmp(y),
        (Real(x), Integer(y)) => x.total_cmp(&(*y as f64)),
        (Real(x), Real(y)) => x.total_cmp(y),
        (Text(x), Text(y)) => x.cmp(y),
        (Blob(x), Blob(y)) => x.cmp(y),
        _ => class(a).cmp(&class(b)),
    }
}

fn class(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Integer(_) | Value::Real(_) => 1,
        Value::Text(_) => 2,
        Value::Blob(_) => 3,
    }
}

/// The rank of NULL (and of a value the caller may not see): after every value.
pub const NULL_RANK: u32 = u32::MAX;

/// One column's order over a base.
pub struct SortRanks {
    /// Per base feature: twice (1 + the place of its value among the distinct values);
    /// the odd numbers are left for values below, between and above them; NULL is
    /// [`NULL_RANK`].
    rank: Box<[u32]>,
    /// Per distinct non-NULL value, in order: a base feature that has it.
    distinct: Box<[u32]>,
    col: usize,
}

impl SortRanks {
    /// The order of column `col` over `features`.
    pub fn build(features: &[Feature], col: usize) -> SortRanks {
        // The values are copied out beside their features before sorting: comparing
        // through each feature's record and then its values cost two cache misses per
        // side and made the first sorted request by a column of 300,000 parcels take
        // 75 ms. A column of one kind of number compares as plain numbers. Each kind is
        // tried in one pass that stops at the first value of another kind (a pass over
        // the features to find the kind first cost a quarter of the build).
        let n = features.len();
        let (rank, distinct) = if let Some(reals) = one_kind(features, col, |v| match v {
            Value::Real(r) => Some(*r),
            _ => None,
        }) {
            ranked(reals, f64::total_cmp, n)
        } else if let Some(ints) = one_kind(features, col, |v| match v {
            Value::Integer(i) => Some(*i),
            _ => None,
        }) {
            ranked(ints, Ord::cmp, n)
        } else if let Some(texts) = one_kind(features, col, |v| match v {
            Value::Text(t) => Some(t.as_str()),
            _ => None,
        }) {
            // Few distinct texts (a land use): find each by hash and sort only those.
            // Mostly distinct ones (parcel numbers): hashing first only adds to the
            // sort. The first thousand texts tell which.
            let sample: std::collections::HashSet<&str> =
                texts.iter().take(1024).map(|(t, _)| *t).collect();
            if sample.len() * 2 <= texts.len().min(1024) {
                ranked_text(texts, n)
            } else {
                // The first 16 bytes beside each text decide most comparisons (parcel
                // numbers differ within them) without reading the text on the heap.
                ranked(
                    texts
                        .into_iter()
                        .map(|(t, i)| ((prefix(t), t), i))
                        .collect(),
                    |a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)),
                    n,
                )
            }
        } else {
            let values = one_kind(features, col, Some).unwrap_or_default();
            ranked(values, |a, b| cmp_values(a, b), n)
        };
        SortRanks {
            rank,
            distinct: distinct.into_boxed_slice(),
            col,
        }
    }

    /// The rank of base feature `i`.
    pub fn of_base(&self, i: usize) -> u32 {
        self.rank[i]
    }

    /// The column these ranks order.
    pub fn col(&self) -> usize {
        self.col
    }

    /// Whether a rank lies between two loaded values (shared by every value in that gap).
    pub fn between(rank: u32) -> bool {
        rank % 2 == 1 && rank != NULL_RANK
    }

    /// The rank of a value not in the base: equal to an equal base value's, between its
    /// neighbours' otherwise.
    pub fn of_value(&self, v: &Value, features: &[Feature]) -> u32 {
        if matches!(v, Value::Null) {
            return NULL_RANK;
        }
        let at = |d: &u32| {
            features[*d as usize]
                .values
                .get(self.col)
                .unwrap_or(&Value::Null)
        };
        match self.distinct.binary_search_by(|d| cmp_values(at(d), v)) {
            Ok(p) => 2 * (p as u32 + 1),
            // Just before the value at p (after the last one when p is the length).
            Err(p) => 2 * p as u32 + 1,
        }
    }
}

/// Every (value, feature) of column `col` that has one, if `get` takes each of them.
fn one_kind<'a, T>(
    features: &'a [Feature],
    col: usize,
    get: impl Fn(&'a Value) -> Option<T>,
) -> Option<Vec<(T, u32)>> {
    features
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            f.values
                .get(col)
                .filter(|v| !matches!(v, Value::Null))
                .map(|v| get(v).map(|k| (k, i as u32)))
        })
        .collect()
}

/// Ranks from (value, feature) pairs: sorted by `cmp`, each feature gets twice
/// (1 + its value's place among the distinct values); also one feature per distinct
/// value, in order. Features without a pair keep [`NULL_RANK`].
fn ranked<K>(
    mut keyed: Vec<(K, u32)>,
    cmp: impl Fn(&K, &K) -> Ordering,
    features: usize,
) -> (Box<[u32]>, Vec<u32>) {
    keyed.sort_unstable_by(|a, b| cmp(&a.0, &b.0));
    let mut rank = vec![NULL_RANK; features].into_boxed_slice();
    let mut distinct: Vec<u32> = Vec::new();
    for k in 0..keyed.len() {
        if k == 0 || cmp(&keyed[k - 1].0, &keyed[k].0) != Ordering::Equal {
            distinct.push(keyed[k].1);
        }
        rank[keyed[k].1 as usize] = 2 * distinct.len() as u32;
    }
    (rank, distinct)
}

/// The first 16 bytes of a text as a number that orders as the texts do (zero-padded:
/// a text that ends within them is a prefix of any longer one with equal bytes, so it
/// orders first either way); equal numbers need the texts compared.
fn prefix(t: &str) -> u128 {
    let mut b = [0u8; 16];
    let n = t.len().min(16);
    b[..n].copy_from_slice(&t.as_bytes()[..n]);
    u128::from_be_bytes(b)
}

/// [`ranked`] for text with few distinct values: each is found by hash and only the
/// distinct ones are sorted. A land use has ten among 300,000 parcels, and sorting
/// every parcel's text compared the same few strings on the heap again and again
/// (30 ms; 8 ms this way).
fn ranked_text(texts: Vec<(&str, u32)>, features: usize) -> (Box<[u32]>, Vec<u32>) {
    let mut ids: HashMap<&str, u32, foldhash::fast::RandomState> = HashMap::default();
    // (distinct text, a feature with it), in order of first use.
    let mut seen: Vec<(&str, u32)> = Vec::new();
    let of: Vec<(u32, u32)> = texts
        .into_iter()
        .map(|(t, i)| {
            let id = *ids.entry(t).or_insert_with(|| {
                seen.push((t, i));
                seen.len() as u32 - 1
            });
            (id, i)
        })
        .collect();
    drop(ids);
    let mut order: Vec<u32> = (0..seen.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| seen[a as usize].0.cmp(seen[b as usize].0));
    let mut place = vec![0u32; seen.len()];
    for (p, &id) in order.iter().enumerate() {
        place[id as usize] = p as u32;
    }
    let mut rank = vec![NULL_RANK; features].into_boxed_slice();
    for (id, i) in of {
        rank[i as usize] = 2 * (place[id as usize] + 1);
    }
    let distinct = order.iter().map(|&id| seen[id as usize].1).collect();
    (rank, distinct)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(fid: i64, v: Value) -> Feature {
        Feature {
            fid,
            values: vec![v],
            geometry: None,
        }
    }

    #[test]
    fn columns_of_one_kind_rank_as_the_general_order_does() {
        let columns: [Vec<Value>; 4] = [
            [2.5, -0.0, 0.0, f64::NAN, -1e300, 2.5, f64::INFINITY]
                .map(Value::Real)
                .into(),
            [i64::MAX, 3, i64::MIN, 3, 0, i64::MAX - 1]
                .map(Value::Integer)
                .into(),
            [
                "b",
                "",
                "Ähre",
                "a",
                "b",
                "ab",
                "Z",
                "a\0",
                "161074-001-00003/0000",
                "161074-001-00003/0001",
                "161074-001-00003",
                "161074-001-0000",
            ]
            .map(|t| Value::Text(t.into()))
            .into(),
            // Few distinct texts: sorted through a hash of the distinct ones.
            [
                "Wald", "Acker", "Wald", "Ähre", "Wald", "Acker", "Wald", "Acker",
            ]
            .map(|t| Value::Text(t.into()))
            .into(),
        ];
        for vals in columns {
            let vals: Vec<Value> = vals.into_iter().chain([Value::Null]).collect();
            let (fs, r) = ranks_ordering_as_values(&vals);
            for (i, a) in vals.iter().enumerate() {
                assert_eq!(r.of_value(a, &fs), r.of_base(i), "{a:?}");
            }
        }
    }

    /// The ranks of one feature per value, checked to order every pair as the values do.
    fn ranks_ordering_as_values(vals: &[Value]) -> (Vec<Feature>, SortRanks) {
        let fs: Vec<Feature> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| feature(i as i64, v.clone()))
            .collect();
        let r = SortRanks::build(&fs, 0);
        for (i, a) in vals.iter().enumerate() {
            for (j, b) in vals.iter().enumerate() {
                assert_eq!(
                    r.of_base(i).cmp(&r.of_base(j)),
                    cmp_values(a, b),
                    "{a:?} {b:?}"
                );
            }
        }
        (fs, r)
    }

    #[test]
    fn ranks_order_as_the_values_do_and_edits_fall_between() {
        let vals = [
            Value::Real(2.5),
            Value::Null,
            Value::Integer(2),
            Value::Text("b".into()),
            Value::Integer(7),
            Value::Real(2.0),
            Value::Text("a".into()),
        ];
        let (fs, r) = ranks_ordering_as_values(&vals);
        // 2 and 2.0 are one value; edits are placed among the base's.
        assert_eq!(r.of_base(2), r.of_base(5));
        for v in [
            Value::Integer(1),
            Value::Real(2.2),
            Value::Integer(2),
            Value::Integer(100),
            Value::Text("".into()),
            Value::Text("ab".into()),
            Value::Text("z".into()),
            Value::Blob(vec![1]),
            Value::Null,
        ] {
            let rv = r.of_value(&v, &fs);
            for (i, b) in vals.iter().enumerate() {
                assert_eq!(rv.cmp(&r.of_base(i)), cmp_values(&v, b), "{v:?} {b:?}");
            }
        }
    }
}
