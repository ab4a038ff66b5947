//! Per-tenant limits: requests per minute (a token bucket refilled continuously, as many requests as the rate
//! in a burst) and unfinished jobs at once. Both are this instance's: with N gateways a tenant may reach N times
//! its rate, and its in-flight count covers the jobs this instance accepted.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by tenant id.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one request from `tenant`'s bucket of `per_minute`, or says how long until one is there.
    pub fn take(&self, tenant: &str, per_minute: u32, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(per_minute);
        let per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = buckets.entry(tenant.to_owned()).or_insert(Bucket { tokens: capacity, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        // A rate lowered by a reload takes effect at once: the bucket never holds more than the new rate.
        b.tokens = (b.tokens + elapsed * per_sec).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }
}

/// Unfinished jobs by tenant: added when a job is accepted, removed when its final answer arrives.
#[derive(Debug, Default)]
pub struct InFlight {
    jobs: Mutex<HashMap<String, HashSet<String>>>,
}

impl InFlight {
    /// Counts `job_id` for `tenant` unless that would make more than `max`; false when it would.
    pub fn admit(&self, tenant: &str, job_id: &str, max: Option<u32>) -> bool {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let set = jobs.entry(tenant.to_owned()).or_default();
        if set.contains(job_id) {
            return true;
        }
        if max.is_some_and(|m| set.len() >= m as usize) {
            return false;
        }
        set.insert(job_id.to_owned());
        true
    }

    /// The job has its answer (or was never queued).
    pub fn finish(&self, tenant: &str, job_id: &str) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = jobs.get_mut(tenant) {
            set.remove(job_id);
            if set.is_empty() {
                jobs.remove(tenant);
            }
        }
    }

    pub fn count(&self, tenant: &str) -> usize {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).get(tenant).map_or(0, HashSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_a_minute_and_refills_continuously() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.take("a", 3, t0).expect("within the rate");
        }
        let wait = limiter.take("a", 3, t0).expect_err("over the rate");
        assert!((wait.as_secs_f64() - 20.0).abs() < 1e-6, "{wait:?}");
        // Another tenant has its own bucket.
        limiter.take("b", 3, t0).expect("b's own bucket");
        // 20 s later one request is back, not more.
        limiter.take("a", 3, t0 + Duration::from_secs(20)).expect("refilled");
        assert!(limiter.take("a", 3, t0 + Duration::from_secs(20)).is_err());
    }

    #[test]
    fn in_flight_is_bounded_and_released() {
        let f = InFlight::default();
        assert!(f.admit("a", "j1", Some(2)) && f.admit("a", "j2", Some(2)));
        assert!(!f.admit("a", "j3", Some(2)));
        assert!(f.admit("a", "j2", Some(2)), "a job already counted is not counted twice");
        f.finish("a", "j1");
        assert!(f.admit("a", "j3", Some(2)));
        assert_eq!(f.count("a"), 2);
        assert!(f.admit("b", "j4", None));
    }
}
