//! The geometry cache: reports keyed by model hash and units, bounded in bytes, least recently used out first.
//! A second quote of the same model skips fetching and parsing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use models::{Report, Units};

type Key = (String, Option<Units>);

#[derive(Debug)]
pub struct GeometryCache {
    limit_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, (Arc<Report>, usize, u64)>,
    by_use: BTreeMap<u64, Key>,
    bytes: usize,
    tick: u64,
}

/// An estimate of what a report holds in memory.
fn weight(r: &Report) -> usize {
    std::mem::size_of::<Report>()
        + r.materials.iter().map(|m| std::mem::size_of_val(m) + m.name.len()).sum::<usize>()
        + r.warnings.iter().map(|w| 48 + w.code.len() + w.message.len()).sum::<usize>()
        + 64
}

impl GeometryCache {
    pub fn new(limit_bytes: usize) -> GeometryCache {
        GeometryCache { limit_bytes, inner: Mutex::new(Inner::default()) }
    }

    pub fn get(&self, sha256: &str, units: Option<Units>) -> Option<Arc<Report>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (sha256.to_owned(), units);
        g.tick += 1;
        let tick = g.tick;
        let (report, old) = {
            let entry = g.entries.get_mut(&key)?;
            let old = entry.2;
            entry.2 = tick;
            (entry.0.clone(), old)
        };
        g.by_use.remove(&old);
        g.by_use.insert(tick, key);
        Some(report)
    }

    pub fn insert(&self, sha256: &str, units: Option<Units>, report: Arc<Report>) {
        let size = weight(&report);
        if size > self.limit_bytes {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (sha256.to_owned(), units);
        g.tick += 1;
        let tick = g.tick;
        if let Some((_, old_size, old_tick)) = g.entries.remove(&key) {
            g.by_use.remove(&old_tick);
            g.bytes -= old_size;
        }
        while g.bytes + size > self.limit_bytes {
            let Some((_, oldest)) = g.by_use.pop_first() else { break };
            if let Some((_, s, _)) = g.entries.remove(&oldest) {
                g.bytes -= s;
            }
        }
        g.entries.insert(key.clone(), (report, size, tick));
        g.by_use.insert(tick, key);
        g.bytes += size;
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Arc<Report> {
        let mesh = models::synth::ring_band(8.0, 10.0, 2.0, 8, 4);
        Arc::new(models::analyze(&mesh))
    }

    #[test]
    fn bounded_in_bytes_least_recently_used_out_first() {
        let r = report();
        let one = weight(&r);
        let cache = GeometryCache::new(one * 2);
        cache.insert("a", None, r.clone());
        cache.insert("b", None, r.clone());
        assert!(cache.get("a", None).is_some()); // a is now the most recent
        cache.insert("c", None, r.clone());
        assert!(cache.get("b", None).is_none(), "b was least recently used");
        assert!(cache.get("a", None).is_some() && cache.get("c", None).is_some());
        assert!(cache.bytes() <= one * 2);
        assert!(cache.get("a", Some(Units::Cm)).is_none(), "units are part of the key");
    }
}
