//! Castability: every quote says whether its alloy's metal casts as modelled, and where it is too thin.
//! The fixture's minimums (common::CASTING): gold walls 0.80 and wires 0.60 mm, silver 0.70 and 0.60, palladium
//! 0.80 and 0.70.

mod common;

use common::*;
use models::synth::{assemble, cube, cuboid, cylinder, glb, ring_band, GlbPart};
use models::{analyze, Mesh};
use pricing_rules::QuoteRequest;

fn band_with_wire(diameter: f64) -> Mesh {
    let wire = cylinder([10.3, 0.0, 0.0], [13.5, 0.0, 0.0], diameter / 2.0, 48);
    assemble(&[ring_band(8.0, 10.5, 3.0, 256, 48), wire])
}

#[test]
fn a_plate_too_thin_for_gold_is_priced_and_says_where() {
    let plate = analyze(&cuboid([0.0; 3], [20.0, 20.0, 0.75]));
    let q = rules().price(&plate, &QuoteRequest::default()).unwrap();
    let by_alloy = |id: &str| q.quotes.iter().find(|x| x.alloy == id).unwrap();
    let gold = by_alloy("18k-yellow");
    assert!(!gold.castable);
    assert!(gold.total > pricing_rules::Decimal::ZERO, "still priced");
    // "walls down to 0.75 mm near (x, y, z) mm; 18K yellow gold needs 0.80 mm"
    let s = &gold.castability;
    assert!(s.starts_with("not castable in 18K yellow gold: walls down to 0.75 mm near ("), "{s}");
    assert!(s.ends_with(" mm; 18K yellow gold needs 0.80 mm"), "{s}");
    // The place named is on the plate.
    let inner = &s[s.find("near (").unwrap() + 6..s.find(") mm;").unwrap()];
    let xyz: Vec<f64> = inner.split(", ").map(|v| v.parse().unwrap()).collect();
    assert!((0.0..=20.0).contains(&xyz[0]) && (0.0..=20.0).contains(&xyz[1]) && (-0.05..=0.8).contains(&xyz[2]));
    // Silver needs 0.70 mm: it casts.
    let silver = by_alloy("sterling-925");
    assert!(silver.castable, "{}", silver.castability);
    assert_eq!(
        silver.castability,
        "castable in Sterling silver 925: the thinnest place is 0.75 mm; it needs 0.70 mm walls and 0.60 mm wires"
    );
    assert!(q.needs_review, "an alloy that does not cast sends the order to a person");
    let w = q.warnings.iter().find(|w| w.contains("cannot be cast")).expect("a warning");
    assert!(w.contains("2 of the 3 alloys quoted (18K yellow gold, Palladium 950)"), "{w}");
}

#[test]
fn a_wire_is_held_to_the_wire_minimum_not_the_wall_minimum() {
    // A 0.65 mm wire: enough for gold's 0.60 mm wires, not for palladium's 0.70 mm.
    let q = rules().price(&analyze(&band_with_wire(0.65)), &QuoteRequest::default()).unwrap();
    let by_alloy = |id: &str| q.quotes.iter().find(|x| x.alloy == id).unwrap();
    assert!(by_alloy("18k-yellow").castable, "{}", by_alloy("18k-yellow").castability);
    let pd = by_alloy("pd950");
    assert!(!pd.castable);
    assert!(
        pd.castability.starts_with("not castable in Palladium 950: wires (prongs) down to 0.6"),
        "{}",
        pd.castability
    );
    assert!(pd.castability.ends_with("Palladium 950 needs 0.70 mm for wires"), "{}", pd.castability);
    // The band itself (2.5 mm) is no problem for anyone.
    assert!(!pd.castability.contains("walls down to"), "{}", pd.castability);
    // A 0.5 mm wire is too thin for every alloy.
    let q = rules().price(&analyze(&band_with_wire(0.5)), &QuoteRequest::default()).unwrap();
    assert!(q.quotes.iter().all(|x| !x.castable && x.castability.contains("wires (prongs) down to 0.50 mm")));
}

#[test]
fn a_solid_block_casts_in_everything() {
    let q = rules().price(&analyze(&cube(10.0)), &QuoteRequest::default()).unwrap();
    for x in &q.quotes {
        assert!(x.castable, "{}", x.castability);
        assert!(x.castability.contains(": no wall is thinner than 10 mm;"), "{}", x.castability);
    }
    assert!(!q.needs_review && q.warnings.is_empty(), "{:?}", q.warnings);
}

#[test]
fn unmeasured_walls_are_not_called_castable() {
    let mut geometry = analyze(&cube(10.0));
    geometry.thickness = None;
    let q = rules().price(&geometry, &QuoteRequest::default()).unwrap();
    assert!(q.needs_review);
    assert_eq!(
        q.quotes[0].castability,
        "castability in 18K yellow gold is unknown: the wall thickness was not measured"
    );
}

#[test]
fn a_stone_does_not_thicken_the_metal_and_is_not_held_to_metal_minimums() {
    // A gold plate 0.75 mm thick with a stone lying flat on it, 4 mm thick: together 4.75 mm where the stone is.
    // The stone is not metal; the plate alone is what must cast.
    let gold = cuboid([0.0; 3], [20.0, 20.0, 0.75]);
    let stone = cuboid([5.0, 5.0, 0.5], [15.0, 15.0, 4.5]);
    let bytes = glb(&[GlbPart::new("Gold", &gold, [1.0; 4]), GlbPart::new("Diamond", &stone, [1.0; 4])]);
    let geometry = models::analyze_bytes(&bytes, &Default::default()).unwrap();
    assert!(geometry.thickness.as_ref().unwrap().min_wall_mm < 0.8);
    let stone_walls = geometry.materials.iter().find(|m| m.name == "Diamond").unwrap().thickness.as_ref().unwrap();
    assert!(stone_walls.min_wall_mm > 3.9, "{stone_walls:?}");
    let q =
        rules().price(&geometry, &QuoteRequest { alloys: vec!["18k-yellow".into()], ..Default::default() }).unwrap();
    assert!(!q.quotes[0].castable);
    assert!(q.quotes[0].castability.contains("walls down to 0.75 mm"), "{}", q.quotes[0].castability);
}
