//! `assay analyze` as a user runs it: the built binary on real files.

use std::path::Path;
use std::process::Command;

fn assay(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_assay")).args(args).output().expect("run assay");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/pixelverse_ring.stl").display().to_string()
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tests/data").join(name).display().to_string()
}

#[test]
fn json_has_the_documented_fields_in_order() {
    let (code, stdout, stderr) = assay(&["analyze", "--json", &sample()]);
    assert_eq!(code, 0, "{stderr}");
    let line = stdout.lines().next().expect("one line");
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "file",
            "format",
            "units",
            "volume_mm3",
            "solid_volume_mm3",
            "area_mm2",
            "bbox_mm",
            "triangles",
            "vertices",
            "shells",
            "boundary_edges",
            "non_manifold_edges",
            "inconsistent_edges",
            "degenerate_triangles",
            "inverted_shells",
            "watertight",
            "warnings",
            "repairs",
            "needs_review",
            "review",
            "thickness"
        ]
    );
    assert_eq!(v["format"], "stl_binary");
    assert_eq!(v["units"], "mm");
    assert_eq!(v["triangles"], 11422);
    assert_eq!(v["watertight"], true);
    let bbox = v["bbox_mm"].as_object().expect("bbox");
    assert_eq!(bbox.keys().map(String::as_str).collect::<Vec<_>>(), ["min", "max", "size"]);
    let volume = v["volume_mm3"].as_f64().expect("volume");
    assert!((1000.0..1400.0).contains(&volume), "{volume}");
}

#[test]
fn glb_reports_materials() {
    let (code, stdout, _) = assay(&["analyze", "--json", &data("trimesh_nested.glb")]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(v["format"], "glb");
    assert_eq!(v["units"], "m");
    assert!(!v["materials"].as_array().expect("materials").is_empty());
}

#[test]
fn a_bad_file_is_an_error_object_and_a_failing_exit_but_the_others_are_still_measured() {
    let (code, stdout, _) = assay(&["analyze", "--json", &data("assimp_RecursiveNodes.gltf"), &sample()]);
    assert_eq!(code, 1);
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["error"]["code"], "gltf_node_cycle");
    assert!(lines[0]["error"]["message"].as_str().unwrap().contains("its own ancestor"));
    assert_eq!(lines[1]["triangles"], 11422);
}

#[test]
fn table_output_and_a_missing_file() {
    let (code, stdout, _) = assay(&["analyze", &sample(), "/nonexistent/ring.stl"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("watertight           yes"), "{stdout}");
    assert!(stdout.contains("error [io_error]: cannot read /nonexistent/ring.stl"), "{stdout}");
}

#[test]
fn units_are_checked_and_applied() {
    let (code, _, stderr) = assay(&["analyze", "--units", "ft", &sample()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("expected one of mm, cm, m, in"), "{stderr}");
    let (code, stdout, _) = assay(&["analyze", "--json", "--units", "m", &sample()]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(v["units"], "m");
    assert!(v["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "implausible_size"));
}

/// A `.gltf` is read with the `.bin` files beside it (never one outside its folder); compressed glTF is decoded.
#[test]
fn a_gltf_beside_its_bin_and_compressed_gltf() {
    let separate = data("compressed/separate/ring.gltf");
    let draco = data("compressed/ring_gltf_pipeline_draco.glb");
    let meshopt = data("compressed/ring_gltfpack_cc.glb");
    let (code, stdout, stderr) = assay(&["analyze", "--json", &separate, &draco, &meshopt]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["triangles"], 18440, "{line}");
        let v = line["volume_mm3"].as_f64().expect("volume");
        assert!((v / 215.93 - 1.0).abs() < 0.01, "{line}");
    }

    // The .gltf alone in a folder: the missing file is named; a URI that leaves the folder is refused.
    let dir = tempfile::tempdir().expect("temp dir");
    let gltf = std::fs::read_to_string(&separate).expect("gltf");
    let alone = dir.path().join("ring.gltf");
    std::fs::write(&alone, &gltf).expect("write");
    let escaping = dir.path().join("escaping.gltf");
    std::fs::write(&escaping, gltf.replace("\"ring.bin\"", "\"../separate/ring.bin\"")).expect("write");
    let (code, stdout, _) = assay(&["analyze", alone.to_str().expect("utf-8"), escaping.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    assert!(stdout.contains("error [gltf_missing_buffer]") && stdout.contains("'ring.bin'"), "{stdout}");
    assert!(stdout.contains("error [gltf_buffer_uri_refused]") && stdout.contains("'..'"), "{stdout}");
}

/// A file of a megabyte or more is mapped rather than read; a pipe cannot be, and is read. Both measure the same.
#[test]
fn a_large_file_is_mapped_and_a_pipe_read_alike() {
    let copy = tempfile::tempdir().expect("temp dir");
    let (file, fifo) = (copy.path().join("two_rings.stl"), copy.path().join("pipe.stl"));
    // A sample of the repository, made larger than a megabyte by repeating it as a second solid.
    let ring = std::fs::read(sample()).expect("sample");
    let n = u32::from_le_bytes(ring[80..84].try_into().unwrap()) as usize;
    let mut bytes = ring[..84].to_vec();
    bytes[80..84].copy_from_slice(&(2 * n as u32).to_le_bytes());
    for shift in [0.0f32, 40.0] {
        for rec in ring[84..84 + 50 * n].chunks(50) {
            let mut rec = rec.to_vec();
            for corner in 0..3 {
                let at = 12 + 12 * corner;
                let x = f32::from_le_bytes(rec[at..at + 4].try_into().unwrap()) + shift;
                rec[at..at + 4].copy_from_slice(&x.to_le_bytes());
            }
            bytes.extend(rec);
        }
    }
    assert!(bytes.len() >= 1 << 20, "{} bytes", bytes.len());
    std::fs::write(&file, &bytes).expect("write");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let writer = {
        let (fifo, bytes) = (fifo.clone(), bytes.clone());
        std::thread::spawn(move || std::fs::write(fifo, bytes).expect("write to the pipe"))
    };
    let (code, stdout, stderr) = assay(&["analyze", "--json", file.to_str().unwrap(), fifo.to_str().unwrap()]);
    // A writer still waiting after assay is gone (it never opened the pipe) is let go, so a failure fails
    // rather than hangs.
    for _ in 0..50 {
        if writer.is_finished() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if !writer.is_finished() {
        std::io::copy(&mut std::fs::File::open(&fifo).expect("open the pipe"), &mut std::io::sink()).expect("drain");
    }
    writer.join().expect("writer");
    assert_eq!(code, 0, "{stderr}");
    let mut lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["triangles"], 2 * n);
    assert_eq!(lines[0]["shells"], 2);
    for l in &mut lines {
        l.as_object_mut().unwrap().remove("file");
    }
    assert_eq!(lines[0], lines[1]);
}
