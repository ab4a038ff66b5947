//! The rules files as finance writes them: one struct per file, unknown keys refused, money as decimal.
//!
//! Every file starts with `format = 1`, so that the format can evolve: a loader that sees a newer format says so
//! instead of misreading it.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Deserialize;

/// The format version this build reads.
pub const FORMAT: u32 = 1;

/// The files of a rules directory, and what each holds.
pub const FILES: &[(&str, &str)] = &[
    ("metals.toml", "metal prices per gram of pure metal, the currency and the date they were set (changed daily)"),
    ("alloys.toml", "alloys: metal, fineness, density, surcharge"),
    ("labour.toml", "casting loss, setup, labour per gram, finishing per cm²"),
    ("segments.toml", "customer segments (markup, minimum price) and quantity breaks"),
    ("stones.toml", "stone kinds: setting price, density, glTF material patterns"),
    ("tax.toml", "tax rate and the segments it applies to"),
    ("casting.toml", "casting minimums: the thinnest wall and wire that cast, per metal"),
];

/// A value and where it was written (a byte range of its file), for error messages with line and column.
#[derive(Debug, Clone)]
pub struct At<T>(pub toml::Spanned<T>);

impl<T> At<T> {
    pub fn get_ref(&self) -> &T {
        self.0.get_ref()
    }

    pub fn span(&self) -> std::ops::Range<usize> {
        self.0.span()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        toml::Spanned::<T>::deserialize(d).map(At)
    }
}

/// The schema of the value: where it was written is not part of the file's format.
impl<T: JsonSchema> JsonSchema for At<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// A decimal written as a TOML number (`85.10`) or string (`"85.10"`). Numbers are read through their shortest
/// decimal form, so `85.10` is exactly 85.1, never 85.099999999999994315658113919198513031005859375.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[schemars(with = "f64")]
pub struct Dec(pub Decimal);

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dec, E> {
                Ok(Dec(Decimal::from(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dec, E> {
                Ok(Dec(Decimal::from(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dec, E> {
                if !v.is_finite() {
                    return Err(E::custom("expected a finite number"));
                }
                v.to_string().parse().map(Dec).map_err(|_| E::custom(format!("{v} is out of range for a decimal")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dec, E> {
                v.trim().parse().map(Dec).map_err(|_| E::custom(format!("expected a number, found \"{v}\"")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `metals.toml`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetalsFile {
    /// Format version of this file: 1.
    pub format: At<u32>,
    /// ISO 4217 code of the currency every amount in this rules set is in, e.g. "EUR".
    pub currency: At<String>,
    /// Digits after the decimal point of the currency's minor unit (2 for EUR and USD, 0 for JPY).
    pub minor_unit_digits: At<u32>,
    /// The date these prices were set, YYYY-MM-DD. Every quote carries it.
    pub date: At<String>,
    /// Price per gram of pure metal, by metal id (gold, silver, platinum, palladium, ...).
    pub price_per_g: BTreeMap<String, At<Dec>>,
}

/// `alloys.toml`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlloysFile {
    /// Format version of this file: 1.
    pub format: At<u32>,
    /// One entry per alloy a shop can order.
    pub alloy: Vec<At<AlloyEntry>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlloyEntry {
    /// Stable id used in requests, e.g. "18k-yellow".
    pub id: At<String>,
    /// Name shown to people, e.g. "18K yellow gold".
    pub label: String,
    /// The priced metal: a key of `price_per_g` in metals.toml.
    pub metal: At<String>,
    /// Mass fraction of the priced metal, 0 < fineness ≤ 1 (18K = 0.750).
    pub fineness: At<Dec>,
    /// Density in g/cm³ (specific gravity).
    pub density_g_cm3: At<Dec>,
    /// Extra charge per charged gram for this alloy (master alloy, refining), ≥ 0.
    pub surcharge_per_g: At<Dec>,
}

/// `labour.toml`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabourFile {
    /// Format version of this file: 1.
    pub format: At<u32>,
    /// Metal lost to sprue, button and melt, in percent of the piece's weight (typically 8 to 15).
    pub casting_loss_percent: At<Dec>,
    /// Fixed charge per order line: model preparation, tree, flask.
    pub setup: At<Dec>,
    /// Labour per gram of finished metal.
    pub per_gram: At<Dec>,
    /// Finishing (filing, polishing) per cm² of surface.
    pub finishing_per_cm2: At<Dec>,
}

/// `segments.toml`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentsFile {
    /// Format version of this file: 1.
    pub format: At<u32>,
    /// Customer segments by id ("b2c", "b2b").
    pub segment: BTreeMap<String, At<SegmentEntry>>,
    /// Discounts by order quantity; the largest break not above the quantity applies.
    #[serde(default)]
    pub quantity_break: Vec<At<QuantityBreakEntry>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentEntry {
    /// Name shown to people.
    pub label: String,
    /// Markup on cost, in percent, ≥ 0.
    pub markup_percent: At<Dec>,
    /// Lowest price of an order before tax; a smaller price is raised to it.
    pub minimum_price: At<Dec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityBreakEntry {
    /// Smallest quantity this break applies to, ≥ 2.
    pub min_quantity: At<u32>,
    /// Discount on the marked-up price, in percent, 0 to 100.
    pub discount_percent: At<Dec>,
}

/// `stones.toml`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StonesFile {
    /// Format version of this file: 1.
    pub format: At<u32>,
    /// Stone kinds by id ("diamond", ...).
    pub stone: BTreeMap<String, At<StoneEntry>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoneEntry {
    /// Name shown to people.
    pub label: String,
    /// Price of setting one stone.
    pub setting_per_stone: At<Dec>,
    /// Density in g/cm³, to estimate carats from a gem's volume (1 ct = 0.2 g).
    pub density_g_cm3: At<Dec>,
    /// Case-insensitive substrings of glTF material names that are this stone, e.g. ["diamond"].
    #[serde(default)]
    pub material_patterns: Vec<String>,
}

/// `casting.toml`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CastingFile {
    /// Format version of this file: 1.
    pub format: At<u32>,
    /// The thinnest wall and wire that cast reliably, by metal id (every metal metals.toml prices).
    pub minimum: BTreeMap<String, At<CastingEntry>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CastingEntry {
    /// Thinnest wall (thin in one direction: a shank, a bezel, a gallery), mm, more than 0 and at most 1.5.
    pub wall_mm: At<Dec>,
    /// Thinnest wire (thin in two directions: a prong, a filigree strand), mm, more than 0 and at most 1.5.
    pub wire_mm: At<Dec>,
}

/// `tax.toml`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxFile {
    /// Format version of this file: 1.
    pub format: At<u32>,
    /// Name of the tax on quotes, e.g. "VAT".
    pub label: String,
    /// Rate in percent, 0 to 100.
    pub rate_percent: At<Dec>,
    /// Segments whose quotes carry the tax (consumers usually do, businesses usually do not).
    pub applies_to: Vec<At<String>>,
}
