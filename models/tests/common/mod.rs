//! Shared helpers for the integration tests: where the real meshes are, and reading them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// `../shared/testdata/meshes` beside the repository, or `ASSAY_MESHES`. `None` (with the reason printed) when
/// absent, so tests that need it skip rather than fail on a machine without it.
pub fn shared_meshes() -> Option<PathBuf> {
    let dir = std::env::var_os("ASSAY_MESHES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/meshes"));
    if dir.join("reference.tsv").is_file() {
        Some(dir)
    } else {
        // Straight to the stream, not through eprintln!, which the test harness captures and hides on success.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: no shared test meshes at {} (set ASSAY_MESHES to point at them)",
            dir.display()
        );
        None
    }
}

/// The project's own small test files (permissively licensed copies, see data/SOURCES.txt).
pub fn data(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a model; a `.gltf` whose buffers are files beside it gets them embedded as data: URIs, the way a user
/// would prepare it for upload.
pub fn read_model(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().and_then(|e| e.to_str()) != Some("gltf") {
        return bytes;
    }
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return bytes };
    if let Some(buffers) = json.get_mut("buffers").and_then(|b| b.as_array_mut()) {
        for b in buffers {
            let Some(uri) = b.get("uri").and_then(|u| u.as_str()).map(str::to_owned) else { continue };
            if uri.starts_with("data:") {
                continue;
            }
            let Ok(bin) = std::fs::read(path.with_file_name(&uri)) else { continue };
            let encoded = base64::engine::general_purpose::STANDARD.encode(bin);
            b["uri"] = format!("data:application/octet-stream;base64,{encoded}").into();
        }
    }
    serde_json::to_vec(&json).expect("json")
}

/// Shuffles a mesh's triangles with a seeded xorshift: another order of the same triangles, every time the same.
pub fn shuffle(m: &mut models::Mesh, seed: u64) {
    let mut s = seed | 1;
    for i in (1..m.triangles.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        m.triangles.swap(i, (s % (i as u64 + 1)) as usize);
    }
}

pub fn analyze(bytes: &[u8]) -> Result<models::Report, models::ModelError> {
    models::analyze_bytes(bytes, &models::ParseOptions::default())
}

/// One row of reference.tsv.
#[derive(Debug, Clone)]
pub struct Reference {
    pub file: String,
    pub tool: String,
    pub volume: Option<f64>,
    pub area: Option<f64>,
    pub watertight: bool,
    pub triangles: Option<u64>,
    pub notes: String,
}

impl Reference {
    pub fn note(&self, key: &str) -> Option<&str> {
        self.notes.split(';').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

pub fn references(dir: &Path) -> Vec<Reference> {
    let text = std::fs::read_to_string(dir.join("reference.tsv")).expect("reference.tsv");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            if c.len() < 8 {
                return None;
            }
            Some(Reference {
                file: c[0].to_owned(),
                tool: c[1].to_owned(),
                volume: c[2].parse().ok(),
                area: c[3].parse().ok(),
                watertight: c[4] == "True",
                triangles: c[5].parse().ok(),
                notes: c[7].to_owned(),
            })
        })
        .collect()
}

/// mm per file unit: glTF is metres, STL millimetres.
pub fn mm_per_unit(file: &str) -> f64 {
    if file.ends_with(".glb") || file.ends_with(".gltf") {
        1000.0
    } else {
        1.0
    }
}

pub fn rel_diff(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}
