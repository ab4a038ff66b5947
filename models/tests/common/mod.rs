//! Shared helpers for the integration tests: where the real meshes are, and reading them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

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

/// Reads a model; a `.gltf` whose buffers are files beside it gets them embedded, as the CLI reads it.
pub fn read_model(path: &Path) -> Vec<u8> {
    try_read_model(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// [`read_model`], with a `.gltf` whose files are missing or outside its folder an error.
pub fn try_read_model(path: &Path) -> Result<Vec<u8>, models::ModelError> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let folder = path.parent().expect("a file has a folder");
    models::embed_gltf_buffers(&bytes, |relative| std::fs::read(folder.join(relative)).ok())
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

    /// The row is of a compressed file its tool could not decode (its `flags` note says draco): its figures are
    /// of the empty fallback accessors, not of the model.
    pub fn compressed(&self) -> bool {
        self.note("flags").is_some_and(|f| f.contains("draco"))
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
