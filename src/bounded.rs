//! Caches bounded by what their entries weigh (bytes, or one per entry): `quick_cache`
//! with the weight as a plain function, SipHash keys (keys come from requests) and four
//! shards, so any entry up to a quarter of the capacity fits in its shard. Reads take a
//! shard's read lock and nothing else; moka, used before, queued every read for its
//! policy (3–4.5 % more server CPU per cached tile).

use std::hash::{Hash, RandomState};

use quick_cache::sync::DefaultLifecycle;

/// A bounded cache of `K` → `V`.
pub type Cache<K, V> =
    quick_cache::sync::Cache<K, V, Weigh<K, V>, RandomState, DefaultLifecycle<K, V>>;

/// An entry's weight, as a function of key and value.
pub struct Weigh<K, V>(fn(&K, &V) -> u64);

impl<K, V> Clone for Weigh<K, V> {
    fn clone(&self) -> Self {
        Weigh(self.0)
    }
}

impl<K, V> quick_cache::Weighter<K, V> for Weigh<K, V> {
    fn weight(&self, k: &K, v: &V) -> u64 {
        (self.0)(k, v)
    }
}

/// A cache holding at most `capacity` of weight, sized for entries of about `typical`.
pub fn cache<K: Eq + Hash, V: Clone>(
    capacity: u64,
    typical: u64,
    weigh: fn(&K, &V) -> u64,
) -> Cache<K, V> {
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity((capacity / typical.max(1)).clamp(16, 1 << 20) as usize)
        .weight_capacity(capacity)
        .shards(4)
        .build()
        .expect("both sizes are set");
    Cache::with_options(
        options,
        Weigh(weigh),
        RandomState::new(),
        DefaultLifecycle::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_stays_within_capacity_and_a_quarter_fits() {
        let c: Cache<u32, Vec<u8>> = cache(100_000, 1_000, |_, v| v.len() as u64);
        for i in 0..1_000 {
            c.insert(i, vec![0; 1_000]);
        }
        assert!(c.weight() <= 100_000, "{}", c.weight());
        c.insert(5_000, vec![0; 24_000]);
        assert!(c.get(&5_000).is_some(), "an entry of a quarter is kept");
        // A key never inserted is computed once; a failed computation stores nothing.
        let got: Result<Vec<u8>, ()> = c.get_or_insert_with(&9_999, || Ok(vec![7]));
        assert_eq!(got, Ok(vec![7]));
        assert_eq!(c.get(&9_999), Some(vec![7]));
        let failed: Result<Vec<u8>, ()> = c.get_or_insert_with(&9_998, || Err(()));
        assert_eq!(failed, Err(()));
        assert_eq!(c.get(&9_998), None);
    }
}
