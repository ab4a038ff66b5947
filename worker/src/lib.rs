//! The job loop: take quote jobs from any queue ([`jobs::WorkerQueue`]), fetch each model from the store, measure
//! it on rayon (or take its report from the [`GeometryCache`]), price it with the rules in force, and publish
//! the result with the time every stage took.
//!
//! `worker` knows nothing of Kafka or HTTP: the binary hands it a transport.

pub mod cache;
pub mod job;
pub mod run;

pub use cache::GeometryCache;
pub use job::{process, Context, WorkerConfig};
pub use run::{report_rules, run, RunOptions, RunStats};
