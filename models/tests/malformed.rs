//! Every file under `malformed/` gives either a report with warnings or a precise error, never a panic.

mod common;

use common::*;

/// What a file must give: `Err(code)` or `Ok(warning codes that must be present)`.
const EXPECTED: &[(&str, Result<&[&str], &str>)] = &[
    ("admesh_block_exact-bad.stl", Ok(&["not_watertight"])),
    ("admesh_block_fill-holes-bad.stl", Ok(&["not_watertight"])),
    ("admesh_block_nearby-bad.stl", Ok(&["not_watertight"])),
    ("admesh_block_normal-directions-bad.stl", Ok(&["inconsistent_winding"])),
    ("admesh_block_remove-unconnected-bad.stl", Ok(&["not_watertight"])),
    ("admesh_conveyor_normal-directions-bad.stl", Ok(&["degenerate_triangles", "implausible_size"])),
    ("admesh_hourglass_fill-holes-bad.stl", Ok(&["not_watertight", "implausible_size"])),
    ("assimp_BoxBadNormals.glb", Ok(&["implausible_size"])),
    ("assimp_BoxWithInfinites.glb", Err("non_finite_coordinate")),
    ("assimp_IndexOutOfRange/IndexOutOfRange.gltf", Err("gltf_bad_primitive")),
    ("assimp_MissingBin_BoxTextured.gltf", Err("gltf_missing_buffer")),
    ("assimp_RecursiveNodes.gltf", Err("gltf_node_cycle")),
    ("assimp_sphereWithHole.stl", Ok(&["not_watertight"])),
    ("assimp_triangle_with_empty_solid.stl", Ok(&["not_watertight"])),
    ("assimp_triangle_with_two_solids.stl", Ok(&["not_watertight"])),
    ("numpystl_CubeInvalidUnicode.stl", Ok(&[])),
    ("numpystl_HalfDonut_binary_solidheader_extrabyte.stl", Ok(&["trailing_bytes"])),
    ("numpystl_StarWithEmptyHeader.stl", Ok(&[])),
    ("numpystl_dos.stl", Ok(&[])),
    ("numpystl_triamid.stl", Ok(&["inconsistent_winding"])),
    ("trimesh_busted.STL", Ok(&[])),
    ("trimesh_empty.stl", Err("no_triangles")),
    ("trimesh_multibody.stl", Ok(&["inconsistent_winding"])),
    ("trimesh_soup.stl", Ok(&["not_watertight"])),
    ("trimesh_stl_empty_ascii.stl", Err("no_triangles")),
    ("trimesh_stl_empty_bin.stl", Err("no_triangles")),
    ("trimesh_two_objects_mixed_case_names.stl", Ok(&[])),
    ("validator_chunk_too_big.glb", Err("gltf_invalid")),
    ("validator_empty_file.glb", Err("empty_file")),
    ("validator_invalid_magic.glb", Err("unknown_format")),
    ("validator_invalid_sparse_count_and_stride.gltf", Err("no_triangles")),
    ("validator_length_mismatch.glb", Err("gltf_invalid")),
    ("validator_truncated_chunk_data.glb", Err("gltf_invalid")),
];

#[test]
fn every_malformed_file_gives_a_report_with_warnings_or_a_precise_error() {
    let Some(dir) = shared_meshes() else { return };
    let dir = dir.join("malformed");
    let mut seen = Vec::new();
    for (name, expected) in EXPECTED {
        let path = dir.join(name);
        let got = try_read_model(&path).and_then(|bytes| analyze(&bytes));
        match (expected, &got) {
            (Err(code), Err(e)) => {
                assert_eq!(e.code(), *code, "{name}: {e}");
                assert!(e.to_string().len() > 20, "{name}: message too thin: {e}");
            }
            (Ok(warnings), Ok(r)) => {
                for w in *warnings {
                    assert!(r.warnings.iter().any(|x| x.code == *w), "{name}: no {w} in {:?}", r.warnings);
                }
            }
            _ => panic!("{name}: expected {expected:?}, got {got:?}"),
        }
        seen.push(path);
    }
    // A file added to the folder must get an expectation here.
    for entry in walk(&dir) {
        let ext = entry.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if ["stl", "glb", "gltf"].contains(&ext.as_str()) {
            assert!(seen.contains(&entry), "{} has no expectation", entry.display());
        }
    }
}

#[test]
fn errors_say_what_is_allowed() {
    let Some(dir) = shared_meshes() else { return };
    // The validator's KHR_mesh_quantization sample has no mesh in its scene, and says so.
    let e = analyze(&read_model(&dir.join("gltf/validator_KHR_mesh_quantization_valid.gltf"))).unwrap_err();
    assert_eq!(e.code(), "no_triangles", "{e}");
    let missing = dir.join("malformed/assimp_MissingBin_BoxTextured.gltf");
    let e = try_read_model(&missing).unwrap_err();
    assert!(e.to_string().contains("'BoxTextured0.bin'") && e.to_string().contains("beside it on disk"), "{e}");
    let e = analyze(&std::fs::read(&missing).expect("file")).unwrap_err();
    assert!(e.to_string().contains("upload a .glb"), "{e}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
