//! Properties of the measures that hold for any mesh: rigid motions keep volume, scaling cubes it, flipping
//! the winding negates it, and the thread count changes nothing.

use models::synth::ring_band;
use models::{analyze, Mesh};
use nalgebra::{Rotation3, Vector3};
use proptest::prelude::*;

mod common;

fn band() -> impl Strategy<Value = Mesh> {
    (5.0f64..12.0, 0.5f64..4.0, 1.0f64..8.0, 3u32..64, 3u32..24)
        .prop_map(|(inner, thick, width, around, profile)| ring_band(inner, inner + thick, width, around, profile))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn volume_is_invariant_under_translation_and_rotation(
        mesh in band(),
        t in prop::array::uniform3(-200.0f64..200.0),
        angles in prop::array::uniform3(-3.2f64..3.2),
    ) {
        let before = analyze(&mesh);
        let r = Rotation3::from_euler_angles(angles[0], angles[1], angles[2]);
        let mut moved = mesh.clone();
        moved.map_positions(|p| {
            let q = r * Vector3::from(p) + Vector3::from(t);
            [q.x, q.y, q.z]
        });
        let after = analyze(&moved);
        prop_assert!(close(before.volume_mm3, after.volume_mm3, 1e-9), "{} vs {}", before.volume_mm3, after.volume_mm3);
        prop_assert!(close(before.area_mm2, after.area_mm2, 1e-9));
        prop_assert_eq!(before.shells, after.shells);
        prop_assert!(after.watertight);
    }

    #[test]
    fn volume_scales_with_the_cube_and_area_with_the_square(mesh in band(), s in 0.01f64..100.0) {
        let before = analyze(&mesh);
        let mut scaled = mesh.clone();
        scaled.map_positions(|p| p.map(|c| c * s));
        let after = analyze(&scaled);
        prop_assert!(close(after.volume_mm3, before.volume_mm3 * s * s * s, 1e-9));
        prop_assert!(close(after.area_mm2, before.area_mm2 * s * s, 1e-9));
    }

    #[test]
    fn flipping_the_winding_negates_the_volume(mesh in band()) {
        let before = analyze(&mesh);
        let mut flipped = mesh.clone();
        flipped.flip_winding();
        let after = analyze(&flipped);
        prop_assert!(close(after.volume_mm3, -before.volume_mm3, 1e-12));
        prop_assert!(before.volume_mm3 > 0.0);
        prop_assert_eq!(after.inverted_shells, 1);
        prop_assert_eq!(after.inconsistent_edges, 0);
    }

    #[test]
    fn the_band_approaches_its_smooth_volume(inner in 5.0f64..12.0, thick in 0.5f64..4.0, width in 1.0f64..8.0) {
        // Fine enough that the polygonal band is within 0.1 % of the smooth one.
        let r = analyze(&ring_band(inner, inner + thick, width, 512, 128));
        let smooth = models::synth::ring_band_volume(inner, inner + thick, width);
        prop_assert!(close(r.volume_mm3, smooth, 1e-3), "{} vs {}", r.volume_mm3, smooth);
        prop_assert!(r.volume_mm3 < smooth, "an inscribed polygon is smaller than the smooth band");
    }
}

/// Parsing and measuring with one thread and with several give the same report, to the last bit.
#[test]
fn thread_count_does_not_change_the_result() {
    let mesh = ring_band(8.0, 10.0, 3.0, 700, 150); // 210,000 triangles: many chunks, many partitions
    let stl = models::to_binary_stl(&mesh);
    let ascii = models::to_ascii_stl(&mesh, "band");
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| {
            let options = models::ParseOptions::default();
            let b = models::parse(&stl, &options).expect("binary");
            let a = models::parse(ascii.as_bytes(), &options).expect("ascii");
            (analyze(&b), b, analyze(&a))
        })
    };
    let (one, one_mesh, one_ascii) = run(1);
    for threads in [2, 3, 8] {
        let (many, many_mesh, many_ascii) = run(threads);
        assert_eq!(one, many, "{threads} threads");
        assert_eq!(one_mesh, many_mesh, "{threads} threads");
        assert_eq!(one_ascii, many_ascii, "{threads} threads");
    }
    assert!(one.watertight);
}

fn translated(m: &Mesh, d: [f64; 3]) -> Mesh {
    let mut out = m.clone();
    let base = out.positions.len() as u32;
    out.positions.extend(m.positions.iter().map(|p| [p[0] + d[0], p[1] + d[1], p[2] + d[2]]));
    out.triangles.extend(m.triangles.iter().map(|t| t.map(|v| v + base)));
    out
}

fn small_band() -> impl Strategy<Value = Mesh> {
    (5.0f64..9.0, 0.8f64..2.5, 1.0f64..4.0, 8u32..24, 4u32..8)
        .prop_map(|(inner, thick, width, around, profile)| ring_band(inner, inner + thick, width, around, profile))
}

proptest! {
    // Each case runs the boolean kernel; a few dozen cases cover the shapes.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_shell_and_a_moved_copy_make_between_one_and_two_volumes(
        mesh in small_band(),
        d in prop::array::uniform3(-12.0f64..12.0),
    ) {
        let v = analyze(&mesh).solid_volume_mm3;
        let r = analyze(&translated(&mesh, d));
        prop_assert!(r.solid_volume_mm3 >= v * (1.0 - 1e-9) && r.solid_volume_mm3 <= 2.0 * v * (1.0 + 1e-9),
            "{} not within [{v}, {}]", r.solid_volume_mm3, 2.0 * v);
        prop_assert!(!r.needs_review, "{:?}", r.review);
    }

    #[test]
    fn apart_they_make_exactly_two(mesh in small_band(), dir in prop::array::uniform3(-1.0f64..1.0)) {
        let v = analyze(&mesh).solid_volume_mm3;
        let n = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).sqrt().max(1e-3);
        // Farther than the band's diagonal: no overlap.
        let d = dir.map(|c| c / n * 60.0);
        let r = analyze(&translated(&mesh, d));
        prop_assert!(close(r.solid_volume_mm3, 2.0 * v, 1e-12));
    }

    #[test]
    fn an_exact_duplicate_counts_once(mesh in small_band()) {
        let v = analyze(&mesh).solid_volume_mm3;
        let r = analyze(&translated(&mesh, [0.0; 3]));
        prop_assert!(close(r.solid_volume_mm3, v, 1e-9), "{} vs {v}", r.solid_volume_mm3);
    }

    #[test]
    fn triangle_order_and_shell_order_do_not_change_the_solid(mesh in small_band(), d in prop::array::uniform3(-6.0f64..6.0), seed in any::<u64>()) {
        let two = translated(&mesh, d);
        let base = analyze(&two).solid_volume_mm3;
        // Shell order: the copy first.
        let n = mesh.triangles.len();
        let mut swapped = two.clone();
        swapped.triangles.rotate_left(n);
        // Triangle order: a seeded shuffle.
        let mut shuffled = two.clone();
        common::shuffle(&mut shuffled, seed);
        for other in [swapped, shuffled] {
            let v = analyze(&other).solid_volume_mm3;
            prop_assert!(close(v, base, 1e-9), "{v} vs {base}");
        }
    }
}

/// The solid volume with one thread and with several: the same to the last bit.
#[test]
fn thread_count_does_not_change_the_solid() {
    let band = ring_band(8.0, 10.0, 3.0, 96, 24);
    let mut m = translated(&band, [3.0, 1.0, 0.5]);
    m = translated(&m, [0.0, 4.0, 1.0]);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| analyze(&m))
    };
    let (one, three) = (run(1), run(3));
    assert_eq!(one.solid_volume_mm3.to_bits(), three.solid_volume_mm3.to_bits());
    assert_eq!(one.repairs, three.repairs);
    assert!(one.solid_volume_mm3 < one.volume_mm3);
}
