//! One bounded map for every "recent things" table (the job book, idempotency keys, recent results, the geometry
//! cache): entries in age order, the oldest dropped first once the total weight passes the limit.
//!
//! Age is insertion order, or use order where the caller [`touch`](BoundedMap::touch)es what it reads (an LRU).
//! Inserting a key that is already there replaces it and makes it the newest: there is only ever one age entry
//! per key, so dropping the oldest can never remove a live, newer entry.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

#[derive(Debug)]
pub struct BoundedMap<K, V> {
    limit: usize,
    entries: HashMap<K, Entry<V>>,
    by_age: BTreeMap<u64, K>,
    weight: usize,
    tick: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    weight: usize,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// A map whose entries weigh at most `limit` in all (each weighs 1 unless inserted with a weight).
    pub fn new(limit: usize) -> BoundedMap<K, V> {
        BoundedMap { limit: limit.max(1), entries: HashMap::new(), by_age: BTreeMap::new(), weight: 0, tick: 0 }
    }

    /// Inserts or replaces `key` as the newest entry, weighing 1; returns what it evicted.
    pub fn insert(&mut self, key: K, value: V) -> Vec<(K, V)> {
        self.insert_weighted(key, value, 1)
    }

    /// Inserts or replaces `key` as the newest entry; an entry heavier than the whole limit is not kept. Returns
    /// the entries evicted to make room, oldest first.
    pub fn insert_weighted(&mut self, key: K, value: V, weight: usize) -> Vec<(K, V)> {
        self.remove(&key);
        if weight > self.limit {
            return Vec::new();
        }
        let mut evicted = Vec::new();
        while self.weight + weight > self.limit {
            let Some((_, oldest)) = self.by_age.pop_first() else { break };
            if let Some(e) = self.entries.remove(&oldest) {
                self.weight -= e.weight;
                evicted.push((oldest, e.value));
            }
        }
        self.tick += 1;
        self.by_age.insert(self.tick, key.clone());
        self.entries.insert(key, Entry { value, weight, tick: self.tick });
        self.weight += weight;
        evicted
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|e| &e.value)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get_mut(key).map(|e| &mut e.value)
    }

    /// Reads `key` and makes it the newest (for least-recently-used order).
    pub fn touch<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(key)?;
        if let Some(k) = self.by_age.remove(&e.tick) {
            self.by_age.insert(tick, k);
        }
        e.tick = tick;
        Some(&e.value)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let e = self.entries.remove(key)?;
        self.by_age.remove(&e.tick);
        self.weight -= e.weight;
        Some(e.value)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The total weight of the entries.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_first_and_a_reinserted_key_is_new_again() {
        let mut m = BoundedMap::new(2);
        m.insert("a", 1);
        m.insert("b", 2);
        // "a" again (an idempotency key seen after its time to live): one entry, now the newest.
        m.insert("a", 3);
        assert_eq!(m.insert("c", 4), vec![("b", 2)], "b is now the oldest");
        assert_eq!((m.get("a"), m.get("c"), m.len()), (Some(&3), Some(&4), 2));
        // Evicting the oldest never removes the live "a" through a stale age entry.
        m.insert("d", 5);
        assert_eq!((m.get("a"), m.get("c"), m.get("d")), (None, Some(&4), Some(&5)));
    }

    #[test]
    fn touched_entries_stay_and_weights_bound_the_total() {
        let mut m = BoundedMap::new(10);
        m.insert_weighted("a", (), 4);
        m.insert_weighted("b", (), 4);
        assert!(m.touch("a").is_some());
        m.insert_weighted("c", (), 4);
        assert!(m.contains_key("a") && !m.contains_key("b") && m.contains_key("c"));
        assert_eq!(m.weight(), 8);
        assert!(m.insert_weighted("huge", (), 11).is_empty());
        assert!(!m.contains_key("huge"));
        assert_eq!(m.remove("a"), Some(()));
        assert_eq!(m.weight(), 4);
    }
}
