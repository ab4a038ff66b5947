//! glTF as shops' tools write it: Draco and meshopt compressed, quantized, and split into a `.gltf` and its
//! `.bin`. Each is held against its uncompressed source within the error its quantization allows.
//!
//! The allowance is measured, not assumed: quantization moves every vertex by at most `shift`, the largest
//! distance from a vertex of the compressed mesh to the nearest vertex of its source. Moving each vertex of a
//! closed surface by at most `shift` changes the volume by at most `area * shift` (to first order; 1 % is added
//! for the second) and the area by at most `shift` times the sum of the triangles' perimeters.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

mod common;

use std::path::Path;

use common::*;
use models::{Mesh, ParseOptions};

fn parse(bytes: &[u8]) -> Mesh {
    models::parse(bytes, &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn signed_volume_and_area(m: &Mesh) -> (f64, f64) {
    let (mut v, mut a) = (0.0, 0.0);
    for t in &m.triangles {
        let [p, q, r] = t.map(|i| m.positions[i as usize]);
        let u = [q[0] - p[0], q[1] - p[1], q[2] - p[2]];
        let w = [r[0] - p[0], r[1] - p[1], r[2] - p[2]];
        let c = [u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]];
        a += 0.5 * (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
        v += (p[0] * (q[1] * r[2] - q[2] * r[1]) - p[1] * (q[0] * r[2] - q[2] * r[0])
            + p[2] * (q[0] * r[1] - q[1] * r[0]))
            / 6.0;
    }
    (v, a)
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The largest distance from a vertex of `moved` to the nearest vertex of `source` (a uniform grid, searched in
/// growing shells of cells until no nearer vertex can exist).
fn largest_shift(moved: &Mesh, source: &Mesh) -> f64 {
    let (mut lo, mut hi) = ([f64::MAX; 3], [f64::MIN; 3]);
    for p in &source.positions {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let cell = (distance(lo, hi) / 256.0).max(1e-9);
    let key = |p: [f64; 3]| -> [i64; 3] { std::array::from_fn(|k| ((p[k] - lo[k]) / cell).floor() as i64) };
    let mut grid: std::collections::HashMap<[i64; 3], Vec<usize>> = std::collections::HashMap::new();
    for (i, &p) in source.positions.iter().enumerate() {
        grid.entry(key(p)).or_default().push(i);
    }
    let mut largest = 0.0f64;
    for &p in &moved.positions {
        let c = key(p);
        let mut best = f64::MAX;
        for r in 0i64.. {
            // Every vertex not yet visited is at least (r - 1) cells away.
            if best <= (r - 1).max(0) as f64 * cell {
                break;
            }
            for dx in -r..=r {
                for dy in -r..=r {
                    for dz in -r..=r {
                        if dx.abs().max(dy.abs()).max(dz.abs()) != r {
                            continue;
                        }
                        for &i in grid.get(&[c[0] + dx, c[1] + dy, c[2] + dz]).map_or(&[][..], |v| v) {
                            best = best.min(distance(p, source.positions[i]));
                        }
                    }
                }
            }
        }
        largest = largest.max(best);
    }
    largest
}

/// Holds a compressed mesh against its source: every triangle kept (less those `dropped`), the signed volume and
/// the area within what the measured shift allows. Returns the shift.
fn measures_like(name: &str, compressed: &Mesh, source: &Mesh, dropped: usize) -> f64 {
    assert_eq!(compressed.triangles.len() + dropped, source.triangles.len(), "{name}: triangles");
    let shift = largest_shift(compressed, source);
    let (v0, a0) = signed_volume_and_area(source);
    let (v1, a1) = signed_volume_and_area(compressed);
    let perimeters: f64 = source
        .triangles
        .iter()
        .map(|t| {
            let [p, q, r] = t.map(|i| source.positions[i as usize]);
            distance(p, q) + distance(q, r) + distance(r, p)
        })
        .sum();
    let volume_allowed = 1.01 * a0 * shift;
    let area_allowed = 1.01 * perimeters * shift;
    assert!(
        (v1 - v0).abs() <= volume_allowed,
        "{name}: volume {v1} vs {v0} (off {}, allowed {volume_allowed} by a shift of {shift} mm)",
        (v1 - v0).abs()
    );
    assert!((a1 - a0).abs() <= area_allowed, "{name}: area {a1} vs {a0} (allowed {area_allowed})");
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "{name}: shift {shift:.3e} mm, volume {v1:.6e} vs {v0:.6e} mm³ (off {:.2e}, allowed {volume_allowed:.2e}), \
         area off {:.2e} (allowed {area_allowed:.2e})",
        (v1 - v0).abs(),
        (a1 - a0).abs()
    );
    shift
}

fn compressed(name: &str) -> Vec<u8> {
    data(&format!("compressed/{name}"))
}

fn solitaire() -> Mesh {
    parse(&std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/solitaire_ring.glb")).unwrap())
}

#[test]
fn draco_box_measures_like_its_uncompressed_twin() {
    let twin = parse(&data("draco_Box.glb"));
    let draco = parse(&data("draco_Box_Draco.glb"));
    let shift = measures_like("Box_Draco", &draco, &twin, 0);
    // A 1 m cube (in metres: 1000 mm) at Draco's default 11 bits: half a step of 1000/2047 mm per axis at most.
    assert!(shift <= 0.5 * 1000.0 / 2047.0 * 3f64.sqrt(), "{shift}");
    let r = models::analyze(&draco);
    assert!(r.watertight && (r.solid_volume_mm3 / 1e9 - 1.0).abs() < 1e-3, "{}", r.solid_volume_mm3);
}

/// Draco drops the triangles whose corners are one point: 11,160 of the engine's 121,496 are.
#[test]
fn draco_engine_measures_like_its_uncompressed_twin() {
    let Some(meshes) = shared_meshes() else { return };
    let twin = parse(&read_model(&meshes.join("gltf/2CylinderEngine.glb")));
    let draco = parse(&read_model(&meshes.join("gltf/2CylinderEngine-Draco/2CylinderEngine.gltf")));
    let degenerate = twin.triangles.iter().filter(|[a, b, c]| a == b || b == c || a == c).count();
    assert_eq!(degenerate, 11_160);
    let shift = measures_like("2CylinderEngine-Draco", &draco, &twin, degenerate);
    // The engine is drawn in millimetres but glTF says metres: about 1,000 m across here. Its positions moved by
    // at most 110 mm, a ten-thousandth of that (13 bits' worth).
    let (v, _) = signed_volume_and_area(&twin);
    assert!(shift < 1.1e-4 * v.cbrt() * 10.0, "{shift}");
}

/// `gltfpack -cc`: meshopt compressed buffer views, positions as 14-bit integers scaled back by the node.
#[test]
fn gltfpack_meshopt_and_quantization() {
    let source = solitaire();
    let shift = measures_like("gltfpack -cc", &parse(&compressed("ring_gltfpack_cc.glb")), &source, 0);
    assert!(shift > 0.0 && shift < 0.002, "{shift}");
    // -vpf: float positions through meshopt's EXPONENTIAL filter.
    let shift = measures_like("gltfpack -cc -vpf", &parse(&compressed("ring_gltfpack_cc_vpf.glb")), &source, 0);
    assert!(shift < 0.002, "{shift}");
}

#[test]
fn gltf_pipeline_draco() {
    let shift = measures_like("gltf-pipeline -d", &parse(&compressed("ring_gltf_pipeline_draco.glb")), &solitaire(), 0);
    // 11 bits over the ring's 21.4 mm: a step of 0.0105 mm.
    assert!(shift < 0.5 * 0.0105 * 3f64.sqrt(), "{shift}");
}

#[test]
fn gltf_transform_quantize() {
    let m = parse(&compressed("ring_gltf_transform_quantize.glb"));
    let shift = measures_like("gltf-transform quantize", &m, &solitaire(), 0);
    assert!(shift < 0.005, "{shift}");
    // Materials survive the rewrite, so the stone is still told from the metal.
    let r = models::analyze(&m);
    let names: Vec<&str> = r.materials.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["Yellow gold", "Diamond"]);
}

#[test]
fn a_gltf_with_its_bin_beside_it() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compressed/separate");
    let whole = read_model(&folder.join("ring.gltf"));
    let separate = parse(&whole);
    let source = solitaire();
    assert_eq!(separate.triangles.len(), source.triangles.len());
    assert_eq!(signed_volume_and_area(&separate), signed_volume_and_area(&source), "the same floats, unpacked");

    let json = std::fs::read(folder.join("ring.gltf")).unwrap();
    let e = models::embed_gltf_buffers(&json, |_| None).unwrap_err();
    assert_eq!(e.code(), "gltf_missing_buffer");
    assert!(e.to_string().contains("'ring.bin'"), "{e}");
    let e = models::parse(&json, &ParseOptions::default()).unwrap_err();
    assert_eq!(e.code(), "gltf_external_buffer");

    let text = String::from_utf8(json).unwrap();
    for (uri, why) in
        [("../separate/ring.bin", "'..'"), ("/tmp/ring.bin", "absolute"), ("https://x.test/ring.bin", "URL")]
    {
        let escaping = text.replace("\"ring.bin\"", &format!("\"{uri}\""));
        let e = models::embed_gltf_buffers(escaping.as_bytes(), |_| Some(vec![0; 4])).unwrap_err();
        assert_eq!(e.code(), "gltf_buffer_uri_refused");
        assert!(e.to_string().contains(uri) && e.to_string().contains(why), "{e}");
    }
}

#[test]
fn compressed_counts_are_held_to_the_triangle_limit() {
    let small =
        ParseOptions { limits: models::Limits { max_triangles: 1000, ..Default::default() }, ..Default::default() };
    let e = models::parse(&compressed("ring_gltf_pipeline_draco.glb"), &small).unwrap_err();
    assert_eq!(e.code(), "gltf_draco_invalid");
    assert!(e.to_string().contains("larger than the limit of 1000 triangles"), "{e}");
    let e = models::parse(&compressed("ring_gltfpack_cc.glb"), &small).unwrap_err();
    assert_eq!(e.code(), "gltf_meshopt_invalid", "{e}");
    assert!(e.to_string().contains("limit of 1000 triangles"), "{e}");
}

/// A meshopt stream cut short or overwritten is an error with the view's number, never garbage or a crash.
#[test]
fn corrupt_streams_are_errors() {
    for name in ["ring_gltfpack_cc.glb", "ring_gltf_pipeline_draco.glb"] {
        let bytes = compressed(name);
        let json_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let bin = 20 + json_len + 8;
        let mut broken = bytes.clone();
        for b in &mut broken[bin..] {
            *b = b.wrapping_mul(31).wrapping_add(7);
        }
        match models::parse(&broken, &ParseOptions::default()) {
            Err(e) => assert!(
                ["gltf_meshopt_invalid", "gltf_draco_invalid", "gltf_bad_primitive"].contains(&e.code()),
                "{name}: {e}"
            ),
            // meshoptimizer decodes any bytes of the right shape; what comes out must still be a checked mesh.
            Ok(m) => assert!(m.triangles.iter().flatten().all(|&v| (v as usize) < m.positions.len())),
        }
    }
}
