//! One test per kind of rules error, with the exact message finance sees: file, line, column, what is expected.

mod common;

use common::*;
use pricing_rules::RuleSet;

fn errors(file: &str, text: &str) -> Vec<String> {
    match RuleSet::from_texts(&with(file, text)) {
        Ok(_) => panic!("{file} loaded but should not have"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn an_unknown_key() {
    let text = ALLOYS.replacen("density_g_cm3 = 15.5", "densty_g_cm3 = 15.5", 1);
    assert_eq!(
        errors("alloys.toml", &text),
        ["alloys.toml:8:1: unknown field `densty_g_cm3`, expected one of `id`, `label`, `metal`, `fineness`, `density_g_cm3`, `surcharge_per_g`"]
    );
}

#[test]
fn a_negative_density() {
    let text = ALLOYS.replacen("density_g_cm3 = 10.4", "density_g_cm3 = -10.4", 1);
    assert_eq!(
        errors("alloys.toml", &text),
        ["alloys.toml:16:17: density_g_cm3 of alloy \"sterling-925\" is -10.4: expected g/cm³ above 0 and at most 23 (gold is 19.32)"]
    );
}

#[test]
fn a_fineness_above_one() {
    let text = ALLOYS.replacen("fineness = 0.750", "fineness = 750", 1);
    assert_eq!(
        errors("alloys.toml", &text),
        ["alloys.toml:7:12: fineness 750 of alloy \"18k-yellow\" is out of range: expected more than 0 and at most 1 (18K is 0.750)"]
    );
}

#[test]
fn an_alloy_that_names_a_missing_metal() {
    let text = ALLOYS.replacen("metal = \"palladium\"", "metal = \"paladium\"", 1);
    assert_eq!(
        errors("alloys.toml", &text),
        ["alloys.toml:22:9: alloy \"pd950\" names metal \"paladium\", which metals.toml does not price: expected one of gold, palladium, silver"]
    );
}

#[test]
fn a_segment_that_does_not_exist() {
    assert_eq!(
        errors("tax.toml", &TAX.replace("[\"b2c\"]", "[\"b2c\", \"retail\"]")),
        ["tax.toml:4:22: applies_to names segment \"retail\", which segments.toml does not define: expected one of b2b, b2c"]
    );
}

#[test]
fn a_syntax_error() {
    assert_eq!(
        errors("labour.toml", &LABOUR.replace("setup = 25.00", "setup = 25,00")),
        ["labour.toml:3:11: unexpected key or value, expected newline, `#`"]
    );
}

#[test]
fn a_value_of_the_wrong_type() {
    assert_eq!(
        errors("metals.toml", &METALS.replace("gold = 100.00", "gold = \"a hundred\"")),
        ["metals.toml:7:8: expected a number, found \"a hundred\""]
    );
}

#[test]
fn a_newer_format() {
    assert_eq!(
        errors("stones.toml", &STONES.replace("format = 1", "format = 2")),
        ["stones.toml:1:10: format 2 is not one this assay reads: expected format = 1"]
    );
}

#[test]
fn percentages_and_money_out_of_range() {
    let text = SEGMENTS
        .replace("markup_percent = 25", "markup_percent = -25")
        .replace("discount_percent = 10", "discount_percent = 100");
    assert_eq!(
        errors("segments.toml", &text),
        [
            "segments.toml:10:18: markup_percent of segment \"b2b\" is -25: expected a percentage from 0 to 1000",
            "segments.toml:19:20: discount_percent of the break at 50 is 100: expected a percentage from 0 to 99",
        ]
    );
}

#[test]
fn a_missing_file_and_every_problem_at_once() {
    let mut texts = with("tax.toml", &TAX.replace("rate_percent = 19", "rate_percent = 190"));
    texts.retain(|(n, _)| n != "stones.toml");
    let e = RuleSet::from_texts(&texts).unwrap_err();
    assert_eq!(e.to_string(), "the rules were not loaded: 1 problem\n  stones.toml: is missing");

    let texts = with("metals.toml", &METALS.replace("\"EUR\"", "\"euro\"").replace("2026-11-24", "24.11.2026"));
    let e = RuleSet::from_texts(&texts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the rules were not loaded: 2 problems\n  \
         metals.toml:2:12: currency \"euro\" is not an ISO 4217 code: expected three capital letters, e.g. \"EUR\"\n  \
         metals.toml:4:8: date \"24.11.2026\" is not a date: expected YYYY-MM-DD"
    );
}

#[test]
fn a_stray_toml_file_in_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in texts() {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    assert!(RuleSet::load_dir(dir.path()).is_ok());
    std::fs::write(dir.path().join("alloy.toml"), "format = 1\n").unwrap();
    let e = RuleSet::load_dir(dir.path()).unwrap_err();
    assert_eq!(
        e.errors[0].to_string(),
        "alloy.toml: is not a rules file; a rules directory holds metals.toml, alloys.toml, labour.toml, segments.toml, stones.toml, tax.toml, casting.toml"
    );
}

#[test]
fn casting_minimums_for_every_metal_within_what_is_measured() {
    // A metal with no minimum, a minimum for a metal nobody prices, a wall thinner than nothing and a wire
    // thicker than thin places are located.
    let text = CASTING
        .replace("[minimum.palladium]", "[minimum.paladium]")
        .replace("wall_mm = 0.70", "wall_mm = 0")
        .replacen("wire_mm = 0.60", "wire_mm = 2.5", 1);
    assert_eq!(
        errors("casting.toml", &text),
        [
            "casting.toml:5:11: minimum.gold.wire_mm is 2.5: expected mm above 0 and at most 1.5 (thin places are located up to 1.5 mm)",
            "casting.toml:11:1: minimum.paladium is for a metal metals.toml does not price: expected one of gold, palladium, silver",
            "casting.toml:8:11: minimum.silver.wall_mm is 0: expected mm above 0 and at most 1.5 (thin places are located up to 1.5 mm)",
            "casting.toml: metal \"palladium\" (priced in metals.toml) has no casting minimum: expected [minimum.palladium] with wall_mm and wire_mm",
        ]
    );
}
