//! The sort order of one column over a base's features, as numbers: each feature's value
//! gets its place among the column's distinct values, so a sorted query compares two
//! `u32` in a flat array instead of two values scattered over the heap (the comparisons'
//! cache misses were most of a sorted page's time). Built on the first sort by the
//! column and kept with the base, which never changes; values of later edits are placed
//! between the base's by binary search.

use std::cmp::Ordering;

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
        let value = |i: u32| features[i as usize].values.get(col).unwrap_or(&Value::Null);
        let mut order: Vec<u32> = (0..features.len() as u32)
            .filter(|&i| !matches!(value(i), Value::Null))
            .collect();
        order.sort_unstable_by(|&a, &b| cmp_values(value(a), value(b)));
        let mut rank = vec![NULL_RANK; features.len()].into_boxed_slice();
        let mut distinct: Vec<u32> = Vec::new();
        for &i in &order {
            let new = distinct
                .last()
                .is_none_or(|&d| cmp_values(value(d), value(i)) != Ordering::Equal);
            if new {
                distinct.push(i);
            }
            rank[i as usize] = 2 * distinct.len() as u32;
        }
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
