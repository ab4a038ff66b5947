//! Properties of the measures that hold for any mesh: rigid motions keep volume, scaling cubes it, flipping
//! the winding negates it, and the thread count changes nothing.

use models::synth::ring_band;
use models::{analyze, Mesh};
use nalgebra::{Rotation3, Vector3};
use proptest::prelude::*;

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
