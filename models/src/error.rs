//! Why a model could not be read: one variant per thing a caller can tell a person, each with a stable code.

use thiserror::Error;

/// A model that cannot be turned into a mesh.
///
/// Every variant has a stable machine code ([`ModelError::code`]) and a message that says what was wrong
/// and, where it helps, what is allowed. A caller never needs to parse the message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("the file is empty (0 bytes): expected an STL, GLB or glTF model")]
    EmptyFile,

    #[error("the file is not STL, GLB or glTF: {hint}")]
    UnknownFormat { hint: String },

    #[error("the mesh is invalid: {message}")]
    InvalidMesh { message: String },

    #[error("the model has no triangles{detail}")]
    NoTriangles { detail: String },

    #[error(
        "binary STL declares {declared} triangles, which needs {needed} bytes, but the file has {actual} bytes: \
         the file is truncated or is not a binary STL"
    )]
    StlTruncated { declared: u64, needed: u64, actual: u64 },

    #[error("ASCII STL line {line}: {message}")]
    StlSyntax { line: u64, message: String },

    #[error("{location} has a coordinate that is not a finite number (NaN or infinity)")]
    NonFiniteCoordinate { location: String },

    #[error("the model has {count} triangles, more than the limit of {limit}")]
    TooManyTriangles { count: u64, limit: u64 },

    #[error("glTF is invalid: {message}")]
    GltfInvalid { message: String },

    #[error(
        "glTF buffer {buffer} refers to the external file '{uri}', which is not part of the upload: send it \
         with the .gltf (beside it on disk, or as a multipart part named \"buffer\" whose filename is that URI), \
         or upload a .glb"
    )]
    GltfExternalBuffer { buffer: usize, uri: String },

    #[error(
        "glTF requires the extension {name}, which {why}; export the model without it \
         (plain triangles, float positions)"
    )]
    GltfUnsupportedExtension { name: String, why: &'static str },

    #[error("glTF node {node} is its own ancestor (a cycle in the node hierarchy)")]
    GltfNodeCycle { node: usize },

    #[error("glTF node hierarchy is deeper than {limit} levels at node {node}")]
    GltfTooDeep { node: usize, limit: usize },

    #[error("glTF accessor {accessor}: {message}")]
    GltfAccessor { accessor: usize, message: String },

    #[error("glTF mesh {mesh} primitive {primitive}: {message}")]
    GltfPrimitive { mesh: usize, primitive: usize, message: String },

    #[error("glTF mesh {mesh} primitive {primitive} (KHR_draco_mesh_compression): {message}")]
    GltfDraco { mesh: usize, primitive: usize, message: String },

    #[error("glTF buffer view {view} (EXT_meshopt_compression): {message}")]
    GltfMeshopt { view: usize, message: String },

    #[error("glTF buffer {buffer} names the file '{uri}', which assay will not read: {why}")]
    GltfBufferUri { buffer: usize, uri: String, why: &'static str },

    #[error(
        "the .gltf names buffer files that were not given: {}; a .gltf's .bin files must come with it (beside it \
         on disk, or in a multipart upload as parts named \"buffer\" whose filename is the URI the .gltf names), \
         or upload a .glb",
        .missing.iter().map(|u| format!("'{u}'")).collect::<Vec<_>>().join(", ")
    )]
    GltfMissingBuffers { missing: Vec<String> },
}

impl ModelError {
    /// The stable machine code: lowercase words joined by underscores, never changed once published.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::EmptyFile => "empty_file",
            ModelError::UnknownFormat { .. } => "unknown_format",
            ModelError::InvalidMesh { .. } => "invalid_mesh",
            ModelError::NoTriangles { .. } => "no_triangles",
            ModelError::StlTruncated { .. } => "stl_truncated",
            ModelError::StlSyntax { .. } => "stl_syntax",
            ModelError::NonFiniteCoordinate { .. } => "non_finite_coordinate",
            ModelError::TooManyTriangles { .. } => "too_many_triangles",
            ModelError::GltfInvalid { .. } => "gltf_invalid",
            ModelError::GltfExternalBuffer { .. } => "gltf_external_buffer",
            ModelError::GltfUnsupportedExtension { .. } => "gltf_unsupported_extension",
            ModelError::GltfNodeCycle { .. } => "gltf_node_cycle",
            ModelError::GltfTooDeep { .. } => "gltf_too_deep",
            ModelError::GltfAccessor { .. } => "gltf_bad_accessor",
            ModelError::GltfPrimitive { .. } => "gltf_bad_primitive",
            ModelError::GltfDraco { .. } => "gltf_draco_invalid",
            ModelError::GltfMeshopt { .. } => "gltf_meshopt_invalid",
            ModelError::GltfBufferUri { .. } => "gltf_buffer_uri_refused",
            ModelError::GltfMissingBuffers { .. } => "gltf_missing_buffer",
        }
    }
}
