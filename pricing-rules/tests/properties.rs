//! Properties of every quote: the total is the sum of the lines, a bigger piece never costs less, and the same
//! input always gives the same quote and version.

mod common;

use common::*;
use pricing_rules::{Decimal, QuoteRequest, RuleSet};
use proptest::prelude::*;

fn request() -> impl Strategy<Value = QuoteRequest> {
    (
        prop::sample::select(vec!["18k-yellow", "sterling-925", "pd950"]),
        prop::sample::select(vec!["b2c", "b2b"]),
        1u32..120,
    )
        .prop_map(|(alloy, segment, quantity)| QuoteRequest {
            alloys: vec![alloy.into()],
            quantity,
            segment: segment.into(),
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_total_is_the_sum_of_the_rounded_lines(side in 0.5f64..30.0, req in request()) {
        let quotes = rules().price(&cube(side), &req).unwrap();
        for q in &quotes.quotes {
            let sum: Decimal = q.lines.iter().map(|l| l.amount).sum();
            prop_assert_eq!(sum, q.total);
            for l in &q.lines {
                prop_assert!(l.amount.scale() <= 2, "{} is not rounded to the cent", l.amount);
            }
        }
    }

    #[test]
    fn a_bigger_piece_never_costs_less(side in 0.5f64..30.0, grow in 0.0f64..5.0, req in request()) {
        let rules = rules();
        let small = rules.price(&cube(side), &req).unwrap();
        let big = rules.price(&cube(side + grow), &req).unwrap();
        prop_assert!(big.quotes[0].total >= small.quotes[0].total, "{} < {}", big.quotes[0].total, small.quotes[0].total);
    }

    #[test]
    fn the_same_input_gives_the_same_quote_and_version(side in 0.5f64..30.0, req in request()) {
        let a = RuleSet::from_texts(&texts()).unwrap();
        let b = RuleSet::from_texts(&texts()).unwrap();
        prop_assert_eq!(&a.version, &b.version);
        prop_assert_eq!(a.price(&cube(side), &req).unwrap(), b.price(&cube(side), &req).unwrap());
    }
}

#[test]
fn the_version_follows_the_content_not_the_line_endings() {
    let a = RuleSet::from_texts(&texts()).unwrap();
    let crlf: Vec<(String, String)> = texts().into_iter().map(|(n, t)| (n, t.replace('\n', "\r\n"))).collect();
    assert_eq!(RuleSet::from_texts(&crlf).unwrap().version, a.version);
    let edited = RuleSet::from_texts(&with("metals.toml", &METALS.replace("gold = 100.00", "gold = 100.01"))).unwrap();
    assert_ne!(edited.version, a.version);
}

#[test]
fn the_shipped_rules_load_and_price_every_alloy() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let rules = RuleSet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = rules.alloys.iter().map(|a| a.id.as_str()).collect();
    for required in [
        "10k-yellow",
        "10k-white",
        "10k-rose",
        "14k-yellow",
        "14k-white",
        "14k-rose",
        "18k-yellow",
        "18k-white",
        "18k-rose",
        "24k",
        "sterling-925",
        "pt950",
        "pd950",
    ] {
        assert!(ids.contains(&required), "{required} missing from the shipped alloys");
    }
    let quotes = rules.price(&cube(5.0), &QuoteRequest::default()).unwrap();
    assert_eq!(quotes.quotes.len(), ids.len());
    // Figures the product issue quotes from Stuller's chart.
    let density = |id: &str| rules.alloy(id).unwrap().density_g_cm3;
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    assert_eq!(
        [density("18k-yellow"), density("14k-white"), density("sterling-925"), density("pt950")],
        [d("15.58"), d("12.61"), d("10.40"), d("20.7")]
    );
}

#[test]
fn the_committed_json_schemas_are_the_generated_ones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/schema");
    for (name, text) in pricing_rules::schemas() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(committed == text, "rules/schema/{name} is stale: run `cargo run -- rules schema rules/schema`");
    }
}
