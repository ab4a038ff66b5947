//! A rules set with round figures, so that every amount in the tests can be worked out by hand.

#![allow(dead_code)]

use pricing_rules::RuleSet;

pub const METALS: &str = r#"format = 1
currency = "EUR"
minor_unit_digits = 2
date = "2026-11-24"

[price_per_g]
gold = 100.00
silver = 1.50
palladium = 40.00
"#;

pub const ALLOYS: &str = r#"format = 1

[[alloy]]
id = "18k-yellow"
label = "18K yellow gold"
metal = "gold"
fineness = 0.750
density_g_cm3 = 15.5
surcharge_per_g = 0.40

[[alloy]]
id = "sterling-925"
label = "Sterling silver 925"
metal = "silver"
fineness = 0.925
density_g_cm3 = 10.4
surcharge_per_g = 0.05

[[alloy]]
id = "pd950"
label = "Palladium 950"
metal = "palladium"
fineness = 0.95
density_g_cm3 = 12.0
surcharge_per_g = 1.20
"#;

pub const LABOUR: &str =
    "format = 1\ncasting_loss_percent = 10\nsetup = 25.00\nper_gram = 1.20\nfinishing_per_cm2 = 0.35\n";

pub const SEGMENTS: &str = r#"format = 1

[segment.b2c]
label = "retail"
markup_percent = 60
minimum_price = 80.00

[segment.b2b]
label = "trade"
markup_percent = 25
minimum_price = 45.00

[[quantity_break]]
min_quantity = 10
discount_percent = 5

[[quantity_break]]
min_quantity = 50
discount_percent = 10
"#;

pub const STONES: &str = r#"format = 1

[stone.diamond]
label = "diamond"
setting_per_stone = 12.00
density_g_cm3 = 3.52
material_patterns = ["diamond"]
"#;

pub const TAX: &str = "format = 1\nlabel = \"VAT\"\nrate_percent = 19\napplies_to = [\"b2c\"]\n";

pub const CASTING: &str = r#"format = 1

[minimum.gold]
wall_mm = 0.80
wire_mm = 0.60

[minimum.silver]
wall_mm = 0.70
wire_mm = 0.60

[minimum.palladium]
wall_mm = 0.80
wire_mm = 0.70
"#;

pub fn texts() -> Vec<(String, String)> {
    [
        ("metals.toml", METALS),
        ("alloys.toml", ALLOYS),
        ("labour.toml", LABOUR),
        ("segments.toml", SEGMENTS),
        ("stones.toml", STONES),
        ("tax.toml", TAX),
        ("casting.toml", CASTING),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_owned(), t.to_owned()))
    .collect()
}

pub fn rules() -> RuleSet {
    RuleSet::from_texts(&texts()).expect("fixture rules load")
}

/// The texts with one file replaced.
pub fn with(file: &str, text: &str) -> Vec<(String, String)> {
    texts().into_iter().map(|(n, t)| if n == file { (n, text.to_owned()) } else { (n, t) }).collect()
}

/// The report of a closed cube of `side` mm (volume side³ mm³, area 6·side² mm²).
pub fn cube(side: f64) -> models::Report {
    models::analyze(&models::synth::cube(side))
}
