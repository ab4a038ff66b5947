//! The geometry cache: reports keyed by model hash and units, bounded in bytes, least recently used out first.
//! A second quote of the same model skips fetching and parsing.

use std::sync::{Arc, Mutex};

use jobs::BoundedMap;
use models::{Report, Thickness, Units, Warning};

type Key = (String, Option<Units>);

#[derive(Debug)]
pub struct GeometryCache {
    inner: Mutex<BoundedMap<Key, Arc<Report>>>,
}

/// An estimate of what a report holds in memory: itself and what its vectors and strings point to.
fn weight(r: &Report) -> usize {
    let warnings = |ws: &[Warning]| {
        ws.iter().map(|w| std::mem::size_of::<Warning>() + w.code.len() + w.message.len()).sum::<usize>()
    };
    let regions = |t: &Option<Thickness>| t.as_ref().map_or(0, |t| std::mem::size_of_val(t.thin_regions.as_slice()));
    std::mem::size_of::<Report>()
        + r.materials.iter().map(|m| std::mem::size_of_val(m) + m.name.len() + regions(&m.thickness)).sum::<usize>()
        + warnings(&r.warnings)
        + warnings(&r.review)
        + regions(&r.thickness)
        + 64
}

impl GeometryCache {
    pub fn new(limit_bytes: usize) -> GeometryCache {
        GeometryCache { inner: Mutex::new(BoundedMap::new(limit_bytes)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedMap<Key, Arc<Report>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, sha256: &str, units: Option<Units>) -> Option<Arc<Report>> {
        self.lock().touch(&(sha256.to_owned(), units)).cloned()
    }

    pub fn insert(&self, sha256: &str, units: Option<Units>, report: Arc<Report>) {
        let size = weight(&report);
        self.lock().insert_weighted((sha256.to_owned(), units), report, size);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.lock().weight()
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

    #[test]
    fn a_report_weighs_its_thin_regions_and_review_warnings() {
        // A 0.3 mm plate: thin everywhere, so its report lists thin regions.
        let plate = models::analyze(&models::synth::cuboid([0.0; 3], [20.0, 20.0, 0.3]));
        let regions = plate.thickness.as_ref().map_or(0, |t| t.thin_regions.len());
        assert!(regions > 0, "the plate has thin regions");
        let mut bare = plate.clone();
        if let Some(t) = bare.thickness.as_mut() {
            t.thin_regions.clear();
        }
        assert_eq!(weight(&plate) - weight(&bare), regions * std::mem::size_of::<models::ThinRegion>());
        let mut reviewed = bare.clone();
        reviewed.review.push(Warning::new("open_shells", "one shell is open"));
        assert!(weight(&reviewed) > weight(&bare) + "one shell is open".len());
    }
}
