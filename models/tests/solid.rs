//! The solid volume: repairs, cavities, unions, with exact answers (or the Manifold library's, stored here).

use models::synth::{cube, ring_band};
use models::{analyze, Mesh};

mod common;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

#[track_caller]
fn assert_close(a: f64, b: f64, rel: f64) {
    assert!(close(a, b, rel), "{a} != {b} (relative {:.3e})", (a - b).abs() / b.abs());
}

/// `b` moved by `d`, appended to `a` as a separate shell (its own vertices).
fn join(a: &Mesh, b: &Mesh, d: [f64; 3]) -> Mesh {
    let mut m = a.clone();
    let base = m.positions.len() as u32;
    m.positions.extend(b.positions.iter().map(|p| [p[0] + d[0], p[1] + d[1], p[2] + d[2]]));
    m.triangles.extend(b.triangles.iter().map(|t| t.map(|v| v + base)));
    m
}

fn flipped(m: &Mesh) -> Mesh {
    let mut m = m.clone();
    m.flip_winding();
    m
}

fn codes(r: &models::Report) -> Vec<&str> {
    r.review.iter().map(|w| w.code.as_str()).collect()
}

#[test]
fn two_overlapping_cubes_count_the_overlap_once() {
    let r = analyze(&join(&cube(2.0), &cube(2.0), [1.0, 1.0, 1.0]));
    assert_close(r.volume_mm3, 16.0, 1e-12);
    assert_close(r.solid_volume_mm3, 15.0, 1e-9);
    assert!(!r.needs_review, "{:?}", r.review);
}

#[test]
fn a_file_written_inside_out_measures_positive() {
    let band = ring_band(8.5, 10.5, 3.0, 64, 16);
    let inside_out = analyze(&flipped(&band));
    let right = analyze(&band);
    assert!(inside_out.volume_mm3 < 0.0);
    assert_close(inside_out.solid_volume_mm3, right.solid_volume_mm3, 1e-12);
    assert_eq!(inside_out.repairs.shells_turned_outward, 1);
    assert!(!inside_out.needs_review);
}

#[test]
fn a_hollow_box_keeps_its_cavity() {
    let hollow = join(&cube(4.0), &flipped(&cube(2.0)), [1.0, 1.0, 1.0]);
    let r = analyze(&hollow);
    assert_close(r.solid_volume_mm3, 56.0, 1e-12);
    assert_eq!((r.repairs.cavities, r.repairs.shells_turned_outward), (1, 0));
    // The same inward cube beside the box, inside nothing, is turned outward.
    let r = analyze(&join(&cube(4.0), &flipped(&cube(2.0)), [10.0, 0.0, 0.0]));
    assert_close(r.solid_volume_mm3, 72.0, 1e-12);
    assert_eq!((r.repairs.cavities, r.repairs.shells_turned_outward), (0, 1));
}

#[test]
fn mirror_twins_do_not_cancel() {
    // A pair of earrings: one shell and its mirror image, the mirror written with the winding the mirror gives.
    let band = ring_band(3.0, 4.0, 1.0, 32, 8);
    let mut mirrored = band.clone();
    mirrored.map_positions(|p| [-p[0] + 20.0, p[1], p[2]]);
    let pair = join(&band, &mirrored, [0.0; 3]);
    let r = analyze(&pair);
    assert!(r.volume_mm3.abs() < 1e-9 * analyze(&band).volume_mm3, "the raw sum cancels: {}", r.volume_mm3);
    assert_close(r.solid_volume_mm3, 2.0 * analyze(&band).volume_mm3, 1e-12);
}

/// A second 2 mm cube moved by `d`, whose corner `i` is the first mesh's vertex `shared(i)` where that is `Some`
/// (cube() numbers corner i at (i&1, i>>1&1, i>>2&1)·side) and a new vertex otherwise.
fn add_cube_sharing(m: &mut Mesh, d: [f64; 3], shared: impl Fn(u32) -> Option<u32>) {
    let other = cube(2.0);
    let mut map = [0u32; 8];
    for i in 0..8u32 {
        map[i as usize] = shared(i).unwrap_or_else(|| {
            let p = other.positions[i as usize];
            m.positions.push([p[0] + d[0], p[1] + d[1], p[2] + d[2]]);
            (m.positions.len() - 1) as u32
        });
    }
    m.triangles.extend(other.triangles.iter().map(|t| t.map(|v| map[v as usize])));
}

#[test]
fn two_cubes_touching_along_a_face_are_twice_one_and_closed() {
    // Sharing the vertices of the face between them: that face's triangles are exact reverses, an inner wall.
    // The second cube's x=0 corners are the first's x=2 corners.
    let mut m = cube(2.0);
    add_cube_sharing(&mut m, [2.0, 0.0, 0.0], |i| (i & 1 == 0).then_some(i | 1));
    let r = analyze(&m);
    assert!(r.non_manifold_edges > 0, "as uploaded, the shared face's edges have four triangles");
    assert_close(r.solid_volume_mm3, 16.0, 1e-12);
    assert_eq!(r.repairs.reversed_pairs_dropped, 2);
    assert_eq!((r.repairs.non_manifold_edges_left, r.repairs.open_shells_left), (0, 0));
    assert!(!r.needs_review, "{:?}", r.review);

    // Separate vertices, touching only: two closed shells whose union adds up.
    let r = analyze(&join(&cube(2.0), &cube(2.0), [2.0, 0.0, 0.0]));
    assert_close(r.solid_volume_mm3, 16.0, 1e-9);
    assert!(!r.needs_review, "{:?}", r.review);
}

#[test]
fn a_near_miss_seam_is_welded() {
    // Every vertex of the top face written again a few ulps away, as a CAD tool that tessellates faces apart.
    let mut m = cube(20.0);
    let top: Vec<usize> = (0..m.triangles.len()).filter(|&t| m.triangles[t].iter().all(|&v| v & 4 != 0)).collect();
    assert_eq!(top.len(), 2);
    let mut copy = std::collections::HashMap::new();
    for t in top {
        for k in 0..3 {
            let v = m.triangles[t][k];
            let id = *copy.entry(v).or_insert_with(|| {
                let p = m.positions[v as usize];
                let nudge = |c: f64| f64::from(f32::from_bits((c as f32).to_bits() + 3));
                m.positions.push([nudge(p[0]), p[1], nudge(p[2])]);
                (m.positions.len() - 1) as u32
            });
            m.triangles[t][k] = id;
        }
    }
    let r = analyze(&m);
    assert!(!r.watertight && r.boundary_edges == 8, "as uploaded: {} boundary edges", r.boundary_edges);
    assert_eq!(r.repairs.vertices_welded, 4);
    assert_eq!((r.repairs.boundary_edges_left, r.repairs.open_shells_left), (0, 0));
    assert_close(r.solid_volume_mm3, 8000.0, 1e-6);
    assert!(!r.needs_review, "{:?}", r.review);
}

#[test]
fn a_cube_missing_one_triangle_is_closed_and_flagged() {
    let mut m = cube(2.0);
    m.triangles.pop();
    let r = analyze(&m);
    assert_eq!(r.boundary_edges, 3);
    assert_eq!((r.repairs.holes_filled, r.repairs.hole_triangles_added), (1, 1));
    assert_close(r.solid_volume_mm3, 8.0, 1e-12);
    assert_eq!(r.repairs.open_shells_left, 0);
    // One triangle of twelve is a large part of the surface: the volume there is a guess.
    assert_eq!(codes(&r), ["large_holes_filled"]);
    // One missing triangle among thousands is not.
    let mut band = ring_band(8.5, 10.5, 3.0, 64, 16);
    let full = analyze(&band).solid_volume_mm3;
    band.triangles.remove(100);
    let r = analyze(&band);
    assert_eq!(r.repairs.holes_filled, 1);
    assert!(!r.needs_review, "{:?}", r.review);
    assert_close(r.solid_volume_mm3, full, 1e-4);
}

#[test]
fn one_flipped_triangle_is_turned_back() {
    let mut m = cube(2.0);
    m.triangles[3].swap(1, 2);
    let r = analyze(&m);
    assert_eq!(r.inconsistent_edges, 3);
    assert_eq!(r.repairs.triangles_reoriented, 1);
    assert_close(r.solid_volume_mm3, 8.0, 1e-12);
    assert!(!r.needs_review, "{:?}", r.review);
}

#[test]
fn duplicated_shells_and_triangles_count_once() {
    let c = cube(2.0);
    let mut m = c.clone();
    m.triangles.extend(c.triangles.iter().copied());
    let r = analyze(&m);
    assert_eq!(r.repairs.duplicate_triangles_dropped, 12);
    assert_close(r.solid_volume_mm3, 8.0, 1e-12);
    assert!(!r.needs_review, "{:?}", r.review);
    // The same shell again with its own vertices: closed shells that coincide, unioned.
    let r = analyze(&join(&c, &c, [0.0; 3]));
    assert_close(r.solid_volume_mm3, 8.0, 1e-9);
}

#[test]
fn lone_triangles_are_not_closed_into_solids() {
    let m = Mesh::from_indexed(vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], vec![[0, 1, 2]]).expect("mesh");
    let r = analyze(&m);
    assert_eq!(r.repairs.holes_filled, 0);
    assert!(r.needs_review);
    assert_eq!(codes(&r), ["open_shells"]);
}

/// Column-major 4×4: scale then translate (metres).
fn matrix(scale: [f64; 3], translate_m: [f64; 3]) -> [f64; 16] {
    let mut m = [0.0; 16];
    m[0] = scale[0];
    m[5] = scale[1];
    m[10] = scale[2];
    m[12] = translate_m[0];
    m[13] = translate_m[1];
    m[14] = translate_m[2];
    m[15] = 1.0;
    m
}

#[test]
fn one_mesh_instanced_twice_once_mirrored_overlapping() {
    use models::synth::{glb, GlbPart};
    // A 2 mm cube placed as is, and mirrored in x then moved 3 mm: [0,2] and [1,3] overlap by 1 × 2 × 2.
    let c = cube(2.0);
    let mut part = GlbPart::new("Gold", &c, [1.0, 0.8, 0.3, 1.0]);
    part.instances = vec![matrix([1.0; 3], [0.0; 3]), matrix([-1.0, 1.0, 1.0], [0.003, 0.0, 0.0])];
    let r = models::analyze_bytes(&glb(&[part]), &Default::default()).expect("glb");
    assert_eq!(r.shells, 2);
    assert_close(r.volume_mm3, 16.0, 1e-6);
    assert_close(r.solid_volume_mm3, 12.0, 1e-6);
    assert_close(r.materials[0].solid_volume_mm3, 12.0, 1e-6);
    assert!(!r.needs_review, "{:?}", r.review);
}

#[test]
fn a_gem_sunk_into_the_metal_is_not_metal() {
    use models::synth::{glb, octahedron, GlbPart};
    // A 10 mm gold cube with an octahedral stone of radius 2 centred on its top face: half the stone is inside.
    let gold = cube(10.0);
    let stone = octahedron([5.0, 5.0, 10.0], 2.0);
    let bytes = glb(&[GlbPart::new("Gold", &gold, [1.0; 4]), GlbPart::new("Diamond", &stone, [1.0; 4])]);
    let r = models::analyze_bytes(&bytes, &Default::default()).expect("glb");
    let octa = 4.0 / 3.0 * 8.0;
    assert_close(r.materials[0].solid_volume_mm3, 1000.0, 1e-6);
    assert_close(r.materials[1].solid_volume_mm3, octa, 1e-6);
    assert_close(r.solid_volume_mm3, 1000.0 + octa / 2.0, 1e-6);
    // The metal outside the stone: the union less the stone.
    assert_close(r.solid_volume_mm3 - r.materials[1].solid_volume_mm3, 1000.0 - octa / 2.0, 1e-6);
}

/// A box from `lo` to `hi` (mm), wound outwards.
fn cuboid(lo: [f64; 3], hi: [f64; 3]) -> Mesh {
    let mut m = cube(1.0);
    m.map_positions(|p| std::array::from_fn(|i| lo[i] + p[i] * (hi[i] - lo[i])));
    m
}

/// A band (axis z) with four prongs and a head as separate shells cutting into it and into each other, the
/// way CAD exports a solitaire: 6 shells, 6,168 triangles.
fn band_with_prongs_and_head() -> Mesh {
    let mut m = ring_band(8.5, 10.5, 3.0, 96, 24);
    for (x, z) in [(-1.2, -1.2), (-1.2, 0.6), (0.6, -1.2), (0.6, 0.6)] {
        m = join(&m, &cuboid([x, 9.6, z], [x + 0.6, 13.4, z + 0.6]), [0.0; 3]);
    }
    join(&m, &models::synth::octahedron([0.0, 12.6, 0.0], 1.9), [0.0; 3])
}

/// Whether `ASSAY_DUMP` asks for the test meshes as STL, to measure them with other tools.
fn dump(name: &str, m: &Mesh) {
    if let Some(dir) = std::env::var_os("ASSAY_DUMP") {
        std::fs::write(std::path::Path::new(&dir).join(name), models::to_binary_stl(m)).expect("dump");
    }
}

/// manifold3d 3.x, `Manifold.batch_boolean([...shells as Mesh64...], OpType.Add).volume()` on the file
/// `band_with_prongs_and_head()` writes (`ASSAY_DUMP=dir cargo test -p models --test solid`), its shells split
/// by trimesh.
const BAND_PRONGS_HEAD_MANIFOLD: f64 = 291.1322370268631;

#[test]
fn a_band_with_prongs_and_a_head_agrees_with_manifold_in_any_order() {
    let m = band_with_prongs_and_head();
    dump("band_prongs_head.stl", &m);
    // Read back from STL, as the reference was (f32 coordinates).
    let read = |m: &Mesh| models::analyze_bytes(&models::to_binary_stl(m), &Default::default()).expect("stl");
    let r = read(&m);
    assert_eq!(r.shells, 6);
    assert!(r.solid_volume_mm3 < r.volume_mm3 * 0.999, "overlaps are not counted twice");
    assert_close(r.solid_volume_mm3, BAND_PRONGS_HEAD_MANIFOLD, 1e-6);
    // Shuffled triangles, and shells in another order: the same solid.
    let mut shuffled = m.clone();
    common::shuffle(&mut shuffled, 0x2545_F491_4F6C_DD1D);
    let s = read(&shuffled);
    assert_eq!(s.solid_volume_mm3, r.solid_volume_mm3);
    assert!(!r.needs_review && !s.needs_review, "{:?}", r.review);
}

#[test]
fn a_real_ring_with_overlapping_shells_agrees_with_manifold() {
    let Some(dir) = common::shared_meshes() else { return };
    let bytes = std::fs::read(dir.join("jewelry/hrsi56_ring.glb")).expect("ring");
    let r = models::analyze_bytes(&bytes, &Default::default()).expect("ring");
    // manifold3d 3.x on the same shells (trimesh's split, each inward shell inverted, Mesh64), measured
    // 2026-12-02: all, and per material.
    assert_close(r.solid_volume_mm3, 291.7090027706338, 1e-6);
    let m: Vec<(&str, f64)> = r.materials.iter().map(|m| (m.name.as_str(), m.solid_volume_mm3)).collect();
    assert_eq!(m.len(), 3);
    for (name, want) in [
        ("GoldMaterial.001", 251.8615993818269),
        ("DiamondMaterial.043", 8.207472798039058),
        ("DiamondMaterial.005", 32.00455314750156),
    ] {
        let got = m.iter().find(|(n, _)| *n == name).expect(name).1;
        assert_close(got, want, 1e-6);
    }
    assert!((r.volume_mm3 - 291.763).abs() < 1e-3, "the raw sum counts overlaps twice and inward prongs negative");
    assert_eq!(r.repairs.shells_turned_outward, 14);
    assert!(!r.needs_review, "{:?}", r.review);
}

/// A large file whose triangles are shuffled is put in space order before welding (see `Mesh::from_soup`);
/// nothing it measures changes, materials included.
#[test]
fn a_shuffled_file_measures_like_the_ordered_one() {
    use models::synth::{glb, octahedron, GlbPart};
    let band = ring_band(8.5, 10.5, 3.0, 256, 128); // 65,536 triangles: past the locality probes
    let stone = octahedron([0.0, 11.5, 0.0], 1.5);
    let mut shuffled = band.clone();
    common::shuffle(&mut shuffled, 7);
    let read = |b: &Mesh| {
        let bytes = glb(&[GlbPart::new("Gold", b, [1.0; 4]), GlbPart::new("Diamond", &stone, [1.0; 4])]);
        models::analyze_bytes(&bytes, &Default::default()).expect("glb")
    };
    let (a, b) = (read(&band), read(&shuffled));
    assert_eq!((a.triangles, a.vertices, a.shells), (b.triangles, b.vertices, b.shells));
    assert_eq!((b.boundary_edges, b.non_manifold_edges, b.inconsistent_edges), (0, 0, 0));
    assert_close(b.volume_mm3, a.volume_mm3, 1e-12);
    assert_close(b.solid_volume_mm3, a.solid_volume_mm3, 1e-9);
    for (x, y) in a.materials.iter().zip(&b.materials) {
        assert_eq!((&x.name, x.triangles, x.shells), (&y.name, y.triangles, y.shells));
        assert_close(y.solid_volume_mm3, x.solid_volume_mm3, 1e-9);
    }
    // STL too, with a non-finite coordinate named by its place in the file, not in the new order.
    let mut stl = models::to_binary_stl(&shuffled);
    let r = models::analyze_bytes(&stl, &Default::default()).expect("stl");
    let ordered = models::analyze_bytes(&models::to_binary_stl(&band), &Default::default()).expect("stl");
    assert_close(r.volume_mm3, ordered.volume_mm3, 1e-12);
    assert_eq!((r.vertices, r.shells, r.watertight), (ordered.vertices, ordered.shells, true));
    let at = 84 + 50 * 40_000 + 12 + 4;
    stl[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = models::analyze_bytes(&stl, &Default::default()).unwrap_err();
    assert!(e.to_string().starts_with("triangle 40000 "), "{e}");
}

#[test]
fn two_cubes_sharing_one_edge_pair_up_around_it() {
    // The second cube sits diagonally at (2, 2, z) and shares the first's edge x = 2, y = 2 (its corners 3 and 7):
    // four triangles on that edge, paired by angle into two closed shells.
    let mut m = cube(2.0);
    add_cube_sharing(&mut m, [2.0, 2.0, 0.0], |i| (i & 3 == 0).then_some(if i & 4 == 0 { 3 } else { 7 }));
    let r = analyze(&m);
    assert_eq!(r.non_manifold_edges, 1, "as uploaded, the shared edge has four triangles");
    assert_eq!((r.repairs.non_manifold_edges_left, r.repairs.open_shells_left, r.repairs.closed_shells), (0, 0, 2));
    assert_close(r.solid_volume_mm3, 16.0, 1e-9);
    assert!(!r.needs_review, "{:?}", r.review);
}
