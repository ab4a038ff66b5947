//! Pricing rules that finance edits, and prices that add up to the cent.
//!
//! Rules are TOML files in one directory ([`files::FILES`]); [`RuleSet::load_dir`] validates them all or refuses
//! them with every problem located by file, line and column. A rule set is versioned by the SHA-256 of its
//! content, and [`RuleSet::price`] turns a geometry report and a request into quotes in `rust_decimal` money.
//! [`RulesWatcher`] keeps a long-running process on the latest good rules, and [`Rules`] is the handle a service
//! prices with. No queues, no HTTP, no async.

pub mod files;
mod handle;
mod load;
mod price;
mod schema;
mod watch;

pub use handle::Rules;
pub use load::{
    locate, Alloy, CastingMinimum, Labour, LoadError, QuantityBreak, RuleError, RuleSet, Segment, Stone, Tax,
};
pub use price::{DetectedStone, Line, PriceError, Quote, QuoteRequest, Quotes, StoneRequest};
pub use rust_decimal::Decimal;
pub use schema::schemas;
pub use watch::{FileWatcher, ReloadStatus, RulesWatcher, Versioned, WatchError};
