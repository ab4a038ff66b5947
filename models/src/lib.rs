//! 3D model bytes in, a welded triangle mesh and a geometry report out.
//!
//! `models` reads binary and ASCII STL, GLB and `.gltf` with embedded buffers, welds vertices, and measures
//! volume, area and topology in parallel with rayon. It knows nothing of files, queues, HTTP or async: callers
//! hand it bytes and get values back, and every malformed input is an error value, never a panic.
//!
//! ```
//! let mesh = models::synth::ring_band(8.5, 10.5, 3.0, 64, 16);
//! let stl = models::to_binary_stl(&mesh);
//! let report = models::analyze_bytes(&stl, &models::ParseOptions::default()).unwrap();
//! assert!(report.watertight);
//! assert_eq!(report.triangles, 2 * 64 * 16);
//! ```

mod analyze;
mod error;
mod gltf_mesh;
mod mesh;
mod stl;
pub mod synth;
mod units;
mod weld;

pub use analyze::{analyze, BBox, MaterialReport, Report, Warning};
pub use error::ModelError;
pub use mesh::{Format, Mesh};
pub use stl::{to_ascii_stl, to_binary_stl};
pub use units::{Units, UnknownUnits, PLAUSIBLE_MM};

/// Bounds on what one model may make the parser do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most triangles a model may have (after glTF instancing). The default, 10 million, is a 500 MB binary
    /// STL, far more detail than casting can show. Peak memory of `assay analyze` is about 155 bytes a triangle
    /// for a binary STL, the file included (309 MB for 2 million triangles).
    pub max_triangles: u64,
    /// Deepest glTF node hierarchy accepted.
    pub max_node_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_triangles: 10_000_000, max_node_depth: 64 }
    }
}

/// How to read a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// The unit the coordinates are in. `None` means the format's own: millimetres for STL, metres for glTF.
    pub units: Option<Units>,
    pub limits: Limits,
}

/// Tells the format from the bytes: the GLB magic, the STL size rule, a JSON object, the word `solid`.
pub fn detect(bytes: &[u8]) -> Result<Format, ModelError> {
    if bytes.is_empty() {
        return Err(ModelError::EmptyFile);
    }
    if bytes.starts_with(b"glTF") {
        return Ok(Format::Glb);
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match stl::kind(bytes) {
        stl::Kind::Binary if bytes.len() >= 84 && !stl::starts_with_solid(bytes) && first == Some(b'{') => {
            // Declared count does not match the length and the text is JSON: a .gltf, not a broken STL.
            Ok(Format::Gltf)
        }
        stl::Kind::Binary if bytes.len() < 84 => match first {
            Some(b'{') => Ok(Format::Gltf),
            _ => Err(ModelError::UnknownFormat {
                hint: format!(
                    "{} bytes is too short for a binary STL, and the file is not ASCII STL ('solid ...'), \
                     GLB or glTF JSON",
                    bytes.len()
                ),
            }),
        },
        stl::Kind::Binary => Ok(Format::StlBinary),
        stl::Kind::Ascii => Ok(Format::StlAscii),
    }
}

/// Reads a model into a welded mesh in millimetres.
pub fn parse(bytes: &[u8], options: &ParseOptions) -> Result<Mesh, ModelError> {
    match detect(bytes)? {
        Format::Glb | Format::Gltf => gltf_mesh::parse(bytes, options.units, &options.limits),
        Format::StlBinary | Format::StlAscii => stl::parse(bytes, options.units.unwrap_or(Units::Mm), &options.limits),
    }
}

/// Reads and measures a model.
pub fn analyze_bytes(bytes: &[u8], options: &ParseOptions) -> Result<Report, ModelError> {
    parse(bytes, options).map(|m| analyze(&m))
}
