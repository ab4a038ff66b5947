//! Wall thickness with known answers: plates, hollow boxes, wires on bands, buried prongs.

use models::synth::{assemble, cuboid, cylinder, ring_band};
use models::{analyze, Mesh, Thickness, ThinKind};

fn thickness(m: &Mesh) -> Thickness {
    analyze(m).thickness.expect("a model with area has a thickness")
}

#[track_caller]
fn assert_within(measured: f64, truth: f64, rel: f64) {
    assert!((measured - truth).abs() <= rel * truth, "measured {measured} mm, true {truth} mm (more than {rel} off)");
}

#[test]
fn a_plate_is_as_thin_as_it_is_thick() {
    let t = thickness(&cuboid([0.0; 3], [20.0, 20.0, 0.7]));
    assert_within(t.min_wall_mm, 0.7, 0.05);
    assert_within(t.p50_mm, 0.7, 0.05);
    assert_eq!(t.thin_region_count, 1, "{:?}", t.thin_regions);
    let r = &t.thin_regions[0];
    assert_eq!(r.kind, ThinKind::Wall);
    assert_eq!(t.thinnest_wire_mm, None);
    // Top and bottom: about 800 mm² of the plate's 856 mm².
    assert!(r.area_mm2 > 780.0 && r.area_mm2 < 860.0, "{}", r.area_mm2);
    // One sample per 0.36 mm² (0.6 mm apart).
    assert_eq!(t.samples, 2378);
    assert!((t.sample_spacing_mm - 0.6).abs() < 1e-9, "{}", t.sample_spacing_mm);
}

#[test]
fn a_hollow_box_is_as_thin_as_its_walls() {
    // 12 mm outside, a 10.8 mm cavity inside: walls of 0.6 mm.
    let mut cavity = cuboid([0.6; 3], [11.4; 3]);
    cavity.flip_winding();
    let r = analyze(&assemble(&[cuboid([0.0; 3], [12.0; 3]), cavity]));
    assert_eq!(r.repairs.cavities, 1);
    let t = r.thickness.unwrap();
    assert_within(t.min_wall_mm, 0.6, 0.05);
    assert_within(t.p50_mm, 0.6, 0.05);
    assert_eq!(t.thinnest_wall_mm.map(|w| (w * 1e3).round()), Some((t.min_wall_mm * 1e3).round()));
}

#[test]
fn a_solid_block_has_nothing_thin() {
    let t = thickness(&cuboid([0.0; 3], [12.0; 3]));
    assert_eq!(t.min_wall_mm, models::MAX_MEASURED_MM, "a 12 mm block is thicker than what is measured");
    assert!(t.thin_regions.is_empty() && t.thin_region_count == 0);
    assert_eq!((t.thinnest_wall_mm, t.thinnest_wire_mm), (None, None));
}

/// A band 2.5 mm thick (8 to 10.5 mm radius) and 3 mm wide, finely divided.
fn band() -> Mesh {
    ring_band(8.0, 10.5, 3.0, 256, 48)
}

#[test]
fn a_band_is_as_thick_as_its_wall() {
    let t = thickness(&band());
    // The elliptical profile (2.5 mm radially, 3 mm along the axis): rays across its middle measure 2.5 mm,
    // rays near its rims cut it obliquely.
    assert!(t.p50_mm > 2.0 && t.p50_mm < 3.0, "{}", t.p50_mm);
    assert!(t.min_wall_mm > 0.5, "{}", t.min_wall_mm);
}

#[test]
fn a_thin_wire_on_a_band_is_the_minimum_not_the_band() {
    // A wire 0.5 mm across standing 3 mm out of the band, its foot 0.2 mm inside it.
    let wire = cylinder([10.3, 0.0, 0.0], [13.5, 0.0, 0.0], 0.25, 48);
    let r = analyze(&assemble(&[band(), wire]));
    let t = r.thickness.unwrap();
    assert_within(t.min_wall_mm, 0.5, 0.05);
    let thinnest = &t.thin_regions[0];
    assert_eq!(thinnest.kind, ThinKind::Wire, "{:?}", t.thin_regions);
    assert_within(t.thinnest_wire_mm.unwrap(), 0.5, 0.05);
    // It is found where it is: on the wire, beyond the band.
    assert!(thinnest.thinnest_at_mm[0] > 10.4 && thinnest.thinnest_at_mm[0] < 13.6, "{:?}", thinnest);
    assert!(thinnest.thinnest_at_mm[1].abs() < 0.3 && thinnest.thinnest_at_mm[2].abs() < 0.3, "{:?}", thinnest);
    // Its area: the wire's side above the band, about π · 0.5 · 3.2 = 5 mm².
    assert!(thinnest.area_mm2 > 3.0 && thinnest.area_mm2 < 7.0, "{:?}", thinnest);
}

#[test]
fn a_prong_buried_in_the_band_is_measured_only_where_it_shows() {
    // A prong 1.5 mm across standing on the band, held by a 0.4 mm pin that lies wholly inside band and prong.
    // Measured shell by shell, the pin would be the thinnest wall (0.4 mm); in the solid it has no surface.
    let prong = cylinder([10.4, 0.0, 0.0], [13.0, 0.0, 0.0], 0.75, 48);
    let pin = cylinder([9.0, 0.0, 0.0], [10.7, 0.0, 0.0], 0.2, 24);
    let r = analyze(&assemble(&[band(), prong, pin]));
    assert!(!r.needs_review, "{:?}", r.review);
    let t = r.thickness.unwrap();
    assert!(t.min_wall_mm > 1.4, "the pin inside was measured: {:?}", t);
    let prong_region = t.thin_regions.iter().find(|g| g.thinnest_at_mm[0] > 10.6).expect("the prong is under 2 mm");
    assert_within(prong_region.wall_mm, 1.5, 0.05);
    assert_eq!(prong_region.kind, ThinKind::Wire);
}

#[test]
fn a_moved_and_turned_copy_measures_the_same() {
    let wire = cylinder([10.3, 0.0, 0.0], [13.5, 0.0, 0.0], 0.25, 48);
    let m = assemble(&[band(), wire]);
    let a = thickness(&m);
    let mut turned = m.clone();
    let (s, c) = (0.6f64.sin(), 0.6f64.cos());
    // 0.6 rad about z, then 0.6 rad about x, then 100 mm away.
    turned.map_positions(|p| {
        let q = [c * p[0] - s * p[1], s * p[0] + c * p[1], p[2]];
        [q[0] + 100.0, c * q[1] - s * q[2] - 40.0, s * q[1] + c * q[2] + 7.0]
    });
    let b = thickness(&turned);
    // As many points on both; the ones measured besides the coarse ones (near thin places) within 1 %.
    assert!(a.samples.abs_diff(b.samples) * 100 <= a.samples, "{} vs {} points", a.samples, b.samples);
    for (x, y) in [(a.min_wall_mm, b.min_wall_mm), (a.p5_mm, b.p5_mm), (a.p25_mm, b.p25_mm), (a.p50_mm, b.p50_mm)] {
        // The union orders its triangles by position, so the turned copy's samples fall elsewhere: within 0.5 %.
        assert!((x - y).abs() <= 5e-3 * x, "{x} vs {y}");
    }
}

#[test]
fn thickness_does_not_depend_on_the_thread_count() {
    let wire = cylinder([10.3, 0.0, 0.0], [13.5, 0.0, 0.0], 0.25, 48);
    let m = assemble(&[band(), wire]);
    let runs: Vec<Thickness> = [1, 2, 3, 8]
        .iter()
        .map(|&n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap().install(|| thickness(&m)))
        .collect();
    for t in &runs[1..] {
        assert_eq!(t, &runs[0]);
    }
}
