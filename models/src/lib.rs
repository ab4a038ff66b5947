//! 3D model bytes in, a welded triangle mesh and a geometry report out.
//!
//! `models` reads binary and ASCII STL, GLB and `.gltf` (Draco, meshopt and quantized geometry included), welds
//! vertices, and measures volume, area and topology in parallel with rayon. It knows nothing of files, queues,
//! HTTP or async: callers hand it bytes and get values back (a `.gltf` whose buffers are files is made whole by
//! the caller with [`embed_gltf_buffers`]), and every malformed input is an error value, never a panic.
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
mod gltf_codec;
mod gltf_files;
mod gltf_mesh;
mod mesh;
mod solid;
mod stl;
pub mod synth;
mod thickness;
mod units;
mod weld;

/// A counting sort: writes `make(i, items[i])` for every item to `out` (as long as `items`), grouped by
/// `bucket(items[i])` and in item order within a bucket; `starts` (one longer than there are buckets, zeroed)
/// becomes where each bucket's run starts, its last entry where the last ends. The weld groups a block's keys by
/// partition with it, the space order its codes by cell and then each cell's pairs by digit.
pub(crate) fn group_by_bucket<T: Copy, U>(
    items: &[T],
    starts: &mut [u32],
    out: &mut [U],
    bucket: impl Fn(T) -> usize,
    make: impl Fn(usize, T) -> U,
) {
    let buckets = starts.len() - 1;
    for &x in items {
        starts[bucket(x) + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    for (i, &x) in items.iter().enumerate() {
        let slot = &mut starts[bucket(x)];
        out[*slot as usize] = make(i, x);
        *slot += 1;
    }
    // Each bucket's cursor ended where the next one starts: moved back a place, they are the starts again.
    starts.copy_within(0..buckets, 1);
    starts[0] = 0;
}

/// The unit tests' seeded random numbers (xorshift64): the same sequence on every run.
#[cfg(test)]
pub(crate) fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

pub use analyze::{analyze, BBox, MaterialReport, Report, Warning};
pub use error::ModelError;
pub use gltf_files::{embed_gltf_buffers, gltf_external_buffers, ExternalBuffer};
pub use mesh::{Format, Mesh};
pub use solid::{Repairs, MAX_HOLE_EDGES};
pub use stl::{to_ascii_stl, to_binary_stl};
pub use thickness::{Thickness, ThinKind, ThinRegion, MAX_MEASURED_MM, THIN_BELOW_MM, WIRE_RATIO};
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
    /// The format, when it is already known (a job names what the gateway detected); detected from the bytes
    /// when `None`.
    pub format: Option<Format>,
}

/// Bytes of a file's beginning [`detect_head`] needs to decide: the STL header and count, and enough of what
/// follows to tell ASCII from binary.
pub const HEAD_BYTES: usize = stl::HEAD_BYTES;

/// Tells the format from the bytes: the GLB magic, a JSON object, the STL size rule, the word `solid`.
pub fn detect(bytes: &[u8]) -> Result<Format, ModelError> {
    detect_head(&bytes[..bytes.len().min(HEAD_BYTES)], bytes.len() as u64)
}

/// Tells the format from the first [`HEAD_BYTES`] bytes of a file of `len` bytes (what a streamed upload has
/// seen), the one detector the parser and the gateway share:
///
/// - `glTF` magic: GLB; a JSON object (`{` first): glTF;
/// - a binary STL whose declared triangle count fits the length exactly (84 + 50·n bytes);
/// - `solid` followed by text: ASCII STL;
/// - a binary STL with bytes after its declared triangles (a warning when parsed).
///
/// Anything else is not a model ([`ModelError::UnknownFormat`], or [`ModelError::StlTruncated`] for a header
/// that declares more triangles than the file holds) and never reaches a worker.
pub fn detect_head(head: &[u8], len: u64) -> Result<Format, ModelError> {
    if len == 0 {
        return Err(ModelError::EmptyFile);
    }
    if head.starts_with(b"glTF") {
        return Ok(Format::Glb);
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Ok(Format::Gltf);
    }
    stl::detect(head, len)
}

/// Reads a model into a welded mesh in millimetres.
pub fn parse(bytes: &[u8], options: &ParseOptions) -> Result<Mesh, ModelError> {
    let format = match options.format {
        Some(f) => f,
        None => detect(bytes)?,
    };
    match format {
        Format::Glb | Format::Gltf => gltf_mesh::parse(bytes, options.units, &options.limits),
        Format::StlBinary => stl::parse_binary(bytes, options.units.unwrap_or(Units::Mm), &options.limits),
        Format::StlAscii => stl::parse_ascii(bytes, options.units.unwrap_or(Units::Mm), &options.limits),
    }
}

/// Reads and measures a model.
pub fn analyze_bytes(bytes: &[u8], options: &ParseOptions) -> Result<Report, ModelError> {
    parse(bytes, options).map(|m| analyze(&m))
}
