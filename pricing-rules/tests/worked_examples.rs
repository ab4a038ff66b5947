//! Quotes whose every amount was worked out by hand (the arithmetic is in the comments), on the round-figure
//! rules of `common`: three alloys, both segments, a quantity break, the minimum price, tax, and stones.

mod common;

use common::*;
use pricing_rules::{Decimal, Quote, QuoteRequest, StoneRequest};

fn d(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn lines(q: &Quote) -> Vec<(&str, Decimal)> {
    q.lines.iter().map(|l| (l.name.as_str(), l.amount)).collect()
}

fn request(alloy: &str, segment: &str, quantity: u32) -> QuoteRequest {
    QuoteRequest { alloys: vec![alloy.into()], quantity, segment: segment.into(), ..Default::default() }
}

#[test]
fn gold_ring_retail() {
    // A 10 mm cube: 1 cm³, 6 cm². 18K: 1 × 15.5 = 15.5 g; charged 15.5 × 1.10 = 17.05 g.
    let q = rules().price(&cube(10.0), &request("18k-yellow", "b2c", 1)).unwrap();
    let q = &q.quotes[0];
    assert_eq!(q.metal_weight_g, d("15.5"));
    assert_eq!(
        lines(q),
        [
            ("metal", d("1278.75")),        // 17.05 × 0.75 × 100
            ("alloy_surcharge", d("6.82")), // 17.05 × 0.40
            ("setup", d("25.00")),
            ("labour", d("18.60")),   // 15.5 × 1.20
            ("finishing", d("2.10")), // 6 × 0.35
            ("markup", d("798.76")),  // 60 % of 1331.27 = 798.762
            ("tax", d("404.71")),     // 19 % of 2130.03 = 404.7057
        ]
    );
    assert_eq!(q.total, d("2534.74"));
    assert_eq!(q.currency, "EUR");
    assert_eq!(
        q.lines[0].basis,
        "17.050 g charged (15.500 g from 1000.000 mm³ + 10% casting loss) × fineness 0.75 × 100.00/g gold"
    );
}

#[test]
fn silver_trade_order_with_a_quantity_break() {
    // Sterling: 10.4 g, charged 11.44 g; ten pieces.
    let q = rules().price(&cube(10.0), &request("sterling-925", "b2b", 10)).unwrap();
    let q = &q.quotes[0];
    assert_eq!(
        lines(q),
        [
            ("metal", d("158.73")),             // 11.44 × 0.925 × 1.50 × 10 = 158.73
            ("alloy_surcharge", d("5.72")),     // 11.44 × 0.05 × 10
            ("setup", d("25.00")),              // once per order
            ("labour", d("124.80")),            // 10.4 × 1.20 × 10
            ("finishing", d("21.00")),          // 6 × 0.35 × 10
            ("markup", d("83.81")),             // 25 % of 335.25 = 83.8125
            ("quantity_discount", d("-20.95")), // 5 % of 419.06 = 20.953
        ]
    );
    assert_eq!(q.total, d("398.11"));
    assert!(q.lines.iter().all(|l| l.name != "tax"), "trade quotes carry no VAT");
}

#[test]
fn a_tiny_palladium_piece_is_raised_to_the_minimum() {
    // A 2 mm cube: 0.008 cm³, 0.24 cm². Pd950: 0.096 g, charged 0.1056 g.
    let rules = rules();
    let trade = rules.price(&cube(2.0), &request("pd950", "b2b", 1)).unwrap();
    assert_eq!(
        lines(&trade.quotes[0]),
        [
            ("metal", d("4.01")),           // 0.1056 × 0.95 × 40 = 4.0128
            ("alloy_surcharge", d("0.13")), // 0.1056 × 1.20 = 0.12672
            ("setup", d("25.00")),
            ("labour", d("0.12")),        // 0.096 × 1.20 = 0.1152
            ("finishing", d("0.08")),     // 0.24 × 0.35 = 0.084
            ("markup", d("7.34")),        // 25 % of 29.34 = 7.335, half away from zero
            ("minimum_price", d("8.32")), // 36.68 raised to 45.00
        ]
    );
    assert_eq!(trade.quotes[0].total, d("45.00"));

    // Retail: markup 60 % of 29.34 = 17.604 → 17.60; 46.94 raised to 80.00; VAT 19 % of 80.00 = 15.20.
    let retail = rules.price(&cube(2.0), &request("pd950", "b2c", 1)).unwrap();
    let amounts = lines(&retail.quotes[0]);
    assert_eq!(amounts[5..], [("markup", d("17.60")), ("minimum_price", d("33.06")), ("tax", d("15.20"))]);
    assert_eq!(retail.quotes[0].total, d("95.20"));
}

#[test]
fn gems_in_the_model_are_not_metal_and_are_set_as_stones() {
    // Gold 1000 mm³ and 600 mm² as before, plus three diamonds of 20 mm³ and 30 mm² in all.
    let mut geometry = cube(10.0);
    geometry.volume_mm3 = 1020.0;
    geometry.solid_volume_mm3 = 1020.0;
    geometry.area_mm2 = 630.0;
    geometry.materials = vec![
        models::MaterialReport {
            name: "Gold".into(),
            triangles: 12,
            shells: 1,
            volume_mm3: 1000.0,
            solid_volume_mm3: 1000.0,
            area_mm2: 600.0,
            thickness: geometry.thickness.clone(),
        },
        models::MaterialReport {
            name: "DiamondMaterial.005".into(),
            triangles: 36,
            shells: 3,
            volume_mm3: 20.0,
            solid_volume_mm3: 20.0,
            area_mm2: 30.0,
            thickness: None,
        },
    ];
    let mut req = request("18k-yellow", "b2b", 1);
    req.stones.push(StoneRequest { kind: "diamond".into(), count: 2, size_mm: Some(d("1.5")) });
    let quotes = rules().price(&geometry, &req).unwrap();
    // 0.02 cm³ × 3.52 = 0.0704 g = 0.352 ct.
    assert_eq!(quotes.detected_stones[0].count, 3);
    assert_eq!(quotes.detected_stones[0].carats, d("0.352"));
    let q = &quotes.quotes[0];
    assert_eq!(q.metal_weight_g, d("15.5"), "diamond volume is not gold");
    assert_eq!(
        lines(q),
        [
            ("metal", d("1278.75")),
            ("alloy_surcharge", d("6.82")),
            ("setup", d("25.00")),
            ("labour", d("18.60")),
            ("finishing", d("2.10")),
            ("stones", d("36.00")),  // 3 found × 12.00
            ("stones", d("24.00")),  // 2 requested × 12.00
            ("markup", d("347.82")), // 25 % of 1391.27 = 347.8175
        ]
    );
    assert_eq!(q.total, d("1739.09"));
}

#[test]
fn every_alloy_when_none_is_named_and_the_rules_version_on_every_quote() {
    let rules = rules();
    let quotes = rules.price(&cube(10.0), &QuoteRequest::default()).unwrap();
    let ids: Vec<&str> = quotes.quotes.iter().map(|q| q.alloy.as_str()).collect();
    assert_eq!(ids, ["18k-yellow", "sterling-925", "pd950"]);
    assert_eq!(quotes.rules_version, rules.version);
    assert_eq!(quotes.rules_version.len(), 64);
    assert_eq!(quotes.prices_date, "2026-11-24");
}

#[test]
fn requests_the_rules_cannot_price_say_what_is_allowed() {
    let rules = rules();
    let e = rules.price(&cube(10.0), &request("19k", "b2c", 1)).unwrap_err();
    assert_eq!(e.to_string(), "unknown alloy \"19k\": expected one of 18k-yellow, sterling-925, pd950");
    let e = rules.price(&cube(10.0), &request("pd950", "vip", 1)).unwrap_err();
    assert_eq!(e.to_string(), "unknown segment \"vip\": expected one of b2b, b2c");
    let e = rules.price(&cube(10.0), &request("pd950", "b2b", 0)).unwrap_err();
    assert_eq!(e.code(), "invalid_quantity");
    // The same checks without a model, as a gateway makes them before queuing a job.
    for (alloy, segment, qty) in [("19k", "b2c", 1), ("pd950", "vip", 1), ("pd950", "b2b", 0)] {
        let req = request(alloy, segment, qty);
        assert_eq!(rules.check_request(&req), rules.price(&cube(10.0), &req).map(|_| ()));
    }
    assert_eq!(rules.check_request(&request("pd950", "b2b", 3)), Ok(()));
    // A file written inside out is turned outward, not refused.
    let mut inverted = models::synth::cube(10.0);
    inverted.flip_winding();
    let q = rules.price(&models::analyze(&inverted), &request("pd950", "b2b", 1)).unwrap();
    assert!((q.metal_volume_mm3 - 1000.0).abs() < 1e-9, "{}", q.metal_volume_mm3);
    assert_eq!(
        q.quotes[0].metal_weight_g,
        rules.price(&cube(10.0), &request("pd950", "b2b", 1)).unwrap().quotes[0].metal_weight_g
    );
    assert!(!q.needs_review && q.warnings.is_empty(), "{:?}", q.warnings);
    let mut empty = cube(10.0);
    empty.solid_volume_mm3 = 0.0;
    let e = rules.price(&empty, &request("pd950", "b2b", 1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the model has no metal to price: its solid volume is 0.000 mm³, of which the stones take 0.000 mm³"
    );
}

#[test]
fn an_open_mesh_is_priced_with_a_warning() {
    let mut open = models::synth::cube(10.0);
    open.triangles.truncate(8);
    let q = rules().price(&models::analyze(&open), &request("pd950", "b2b", 1)).unwrap();
    assert!(q.needs_review);
    assert!(
        q.warnings[0].starts_with("needs review: the price rests on a volume that cannot be trusted ("),
        "{:?}",
        q.warnings
    );
}

#[test]
fn a_stone_sunk_into_its_seat_displaces_metal() {
    use models::synth::{cube, glb, octahedron, GlbPart};
    // A 10 mm gold cube and an octahedral diamond of radius 2 mm (10.667 mm³) half sunk into its top face.
    let gold = cube(10.0);
    let stone = octahedron([5.0, 5.0, 10.0], 2.0);
    let bytes = glb(&[GlbPart::new("Gold", &gold, [1.0; 4]), GlbPart::new("DiamondMaterial", &stone, [1.0; 4])]);
    let geometry = models::analyze_bytes(&bytes, &Default::default()).unwrap();
    let q = rules().price(&geometry, &request("18k-yellow", "b2c", 1)).unwrap();
    // Metal: 1000 − 10.667 / 2 = 994.667 mm³; 0.994667 cm³ × 15.5 = 15.4173 g, shown to the milligram.
    assert!((q.metal_volume_mm3 / (1000.0 - 16.0 / 3.0) - 1.0).abs() < 1e-6, "{}", q.metal_volume_mm3);
    assert_eq!(q.quotes[0].metal_weight_g, d("15.417"));
    assert!(q.quotes[0].lines[0].basis.contains("from 994.667 mm³"), "{}", q.quotes[0].lines[0].basis);
    // The stone's carats from its whole solid: 0.010667 cm³ × 3.52 g/cm³ × 5 = 0.188 ct.
    assert_eq!(q.detected_stones[0].carats, d("0.188"));
    assert!(!q.needs_review);
}
