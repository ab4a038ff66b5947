//! The project's own copies of small real files (tests/data): these run everywhere, with or without ../shared.
//! Expected figures are what trimesh and the independent numpy decoder measured (shared/testdata reference.tsv).

mod common;

use common::*;

fn check(name: &str, volume_mm3: f64, area_mm2: f64, watertight: bool) -> models::Report {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    let r = analyze(&read_model(&path)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(rel_diff(r.volume_mm3, volume_mm3) < 1e-6, "{name}: volume {} != {volume_mm3}", r.volume_mm3);
    assert!(rel_diff(r.area_mm2, area_mm2) < 1e-6, "{name}: area {} != {area_mm2}", r.area_mm2);
    assert_eq!(r.watertight, watertight, "{name}");
    r
}

#[test]
fn stl_files() {
    let cube = check("trimesh_unit_cube.STL", 1.0, 6.0, true);
    assert_eq!((cube.vertices, cube.shells, cube.format), (8, 1, Some(models::Format::StlBinary)));
    let sphere = check("draco_test_sphere_ascii.stl", 3.92659626, 12.1666888, true);
    assert_eq!(sphere.format, Some(models::Format::StlAscii));
    assert_eq!((sphere.triangles, sphere.vertices), (224, 114));
}

#[test]
fn gltf_node_transforms_sparse_and_interleaved_accessors() {
    // Metres in the file, millimetres in the report.
    let nested = check("trimesh_nested.glb", 0.898779054e9, 8.67720421e6, true);
    assert_eq!((nested.shells, nested.vertices), (3, 24));
    // Node 5 is the child of four parents scaled 1, 4, 2 and 3: 1 + 64 + 8 + 27 unit cubes.
    let instances = check("CubeScaledInstances/cube_att.gltf", 100.0e9, 180.0e6, true);
    assert_eq!((instances.triangles, instances.shells), (48, 4));
    let sparse = check("gltfrs_box_sparse.glb", -1.0e9, 6.0e6, true);
    assert_eq!(sparse.inverted_shells, 1, "the sparse box is wound inwards");
    check("trimesh_BoxInterleaved.glb", 1.0e9, 6.0e6, true);
}

#[test]
fn refusals_name_the_reason() {
    let e = analyze(&data("assimp_RecursiveNodes.gltf")).unwrap_err();
    assert_eq!(e.code(), "gltf_node_cycle");
    let cube = String::from_utf8(data("CubeScaledInstances/cube_att.gltf")).unwrap();
    let e = analyze(cube.as_bytes()).unwrap_err();
    assert_eq!(e.code(), "gltf_external_buffer");
    assert!(e.to_string().contains("'buffer0.bin'") && e.to_string().contains("upload a .glb"), "{e}");
}

#[test]
fn binary_stl_with_a_solid_header_and_a_stray_byte() {
    let r = analyze(&data("numpystl_HalfDonut_binary_solidheader_extrabyte.stl")).unwrap();
    assert_eq!(r.format, Some(models::Format::StlBinary));
    assert_eq!(r.triangles, 288);
    assert!(r.warnings.iter().any(|w| w.code == "trailing_bytes"));
}

#[test]
fn units_override_and_implausible_size_warning() {
    let bytes = data("trimesh_unit_cube.STL");
    // A 1 mm cube is at the edge of plausible; read as metres it is a 1000 mm cube.
    let r =
        models::analyze_bytes(&bytes, &models::ParseOptions { units: Some(models::Units::M), ..Default::default() })
            .unwrap();
    assert!(rel_diff(r.volume_mm3, 1e9) < 1e-12);
    let w = r.warnings.iter().find(|w| w.code == "implausible_size").expect("warning");
    assert!(w.message.contains("implausibly large") && w.message.contains("probably drawn in"), "{}", w.message);
    let inches =
        models::analyze_bytes(&bytes, &models::ParseOptions { units: Some(models::Units::In), ..Default::default() })
            .unwrap();
    assert!(rel_diff(inches.volume_mm3, 25.4f64.powi(3)) < 1e-12);
    assert_eq!(inches.units, Some(models::Units::In));
}

#[test]
fn limits_are_enforced_before_work() {
    let mesh = models::synth::ring_band(8.0, 10.0, 2.0, 100, 10);
    let stl = models::to_binary_stl(&mesh);
    let options = models::ParseOptions {
        limits: models::Limits { max_triangles: 1000, ..Default::default() },
        ..Default::default()
    };
    let e = models::parse(&stl, &options).unwrap_err();
    assert_eq!(e.code(), "too_many_triangles");
    assert_eq!(e.to_string(), "the model has 2000 triangles, more than the limit of 1000");
}

/// A name written in Latin-1 (as some exporters do) makes the JSON invalid UTF-8: the model is still measured,
/// the byte read as U+FFFD, with a warning; a JSON whose structure is broken still fails.
#[test]
fn a_latin1_name_in_the_json_is_read_with_a_warning() {
    use models::synth::{cube, glb, GlbPart};
    let c = cube(10.0);
    let mut bytes = glb(&[GlbPart::new("OrX", &c, [1.0; 4])]);
    let marks: Vec<usize> = bytes.windows(3).enumerate().filter(|(_, w)| w == b"OrX").map(|(i, _)| i + 2).collect();
    assert_eq!(marks.len(), 3, "mesh, node and material names");
    for &at in &marks {
        bytes[at] = 0xE9; // "Oré" in Latin-1
    }
    let mesh = models::parse(&bytes, &Default::default()).expect("read despite the Latin-1 byte");
    assert_eq!(mesh.materials, ["Or\u{FFFD}"]);
    let w = mesh.warnings.iter().find(|w| w.code == "invalid_utf8").expect("warned");
    assert!(w.message.starts_with("3 bytes of the glTF JSON are not UTF-8"), "{}", w.message);
    let r = models::analyze(&mesh);
    assert!((r.solid_volume_mm3 / 1000.0 - 1.0).abs() < 1e-6, "{}", r.solid_volume_mm3);

    // Broken structure as well: still an error, not a guess.
    let json_end = 20 + u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let brace = bytes[..json_end].iter().rposition(|&b| b == b'}').expect("a closing brace");
    bytes[brace] = b' ';
    let e = models::parse(&bytes, &Default::default()).unwrap_err();
    assert_eq!(e.code(), "gltf_invalid", "{e}");
}
