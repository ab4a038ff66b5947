//! The indexed triangle mesh every format is read into: welded vertices in millimetres, triangles, materials.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::units::Units;
use crate::weld::{weld, WeldKey};
use crate::{ModelError, Warning};

/// The container format a model was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Format {
    StlBinary,
    StlAscii,
    Glb,
    Gltf,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::StlBinary => "stl_binary",
            Format::StlAscii => "stl_ascii",
            Format::Glb => "glb",
            Format::Gltf => "gltf",
        }
    }

    /// The file type a person names: `stl`, `glb` or `gltf`.
    pub fn family(self) -> &'static str {
        match self {
            Format::StlBinary | Format::StlAscii => "stl",
            Format::Glb => "glb",
            Format::Gltf => "gltf",
        }
    }
}

/// A triangle mesh with welded vertices, in millimetres.
///
/// Vertices with bit-identical positions in the source are one vertex here, so that topology (shells, holes,
/// non-manifold edges) can be measured. Triangles keep the winding of the source, flipped where a glTF node
/// mirrors its mesh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub format: Option<Format>,
    /// The unit the source coordinates were read in (positions here are already millimetres).
    pub units: Option<Units>,
    pub positions: Vec<[f64; 3]>,
    pub triangles: Vec<[u32; 3]>,
    /// Material names, for formats that have them (glTF); empty otherwise.
    pub materials: Vec<String>,
    /// For every triangle, an index into `materials`; empty when `materials` is.
    pub triangle_materials: Vec<u32>,
    /// What the parser noticed but could read past.
    pub warnings: Vec<Warning>,
}

impl Mesh {
    /// A mesh from positions (already millimetres) and triangles, e.g. one made by a program.
    ///
    /// Positions are not welded: give each distinct point once.
    pub fn from_indexed(positions: Vec<[f64; 3]>, triangles: Vec<[u32; 3]>) -> Result<Mesh, ModelError> {
        if let Some(t) = triangles.iter().position(|t| t.iter().any(|&v| v as usize >= positions.len())) {
            return Err(ModelError::InvalidMesh {
                message: format!("triangle {t} refers to a vertex beyond the {} given", positions.len()),
            });
        }
        if let Some(v) = positions.iter().position(|p| p.iter().any(|c| !c.is_finite())) {
            return Err(ModelError::NonFiniteCoordinate { location: format!("vertex {v}") });
        }
        Ok(Mesh { positions, triangles, ..Mesh::default() })
    }

    /// Welds a triangle soup of `corners` corners (three per triangle) and scales it to millimetres.
    /// `what` names one corner in an error message ("triangle 7").
    pub(crate) fn from_soup<K: WeldKey>(
        format: Format,
        units: Units,
        corners: usize,
        key: impl Fn(usize) -> K + Sync,
        what: impl Fn(usize) -> String,
    ) -> Result<Mesh, ModelError> {
        debug_assert_eq!(corners % 3, 0);
        let welded = weld(corners, key).map_err(|i| ModelError::NonFiniteCoordinate { location: what(i) })?;
        let scale = units.to_mm();
        let mut positions = welded.positions;
        if scale != 1.0 {
            positions.par_iter_mut().for_each(|p| *p = p.map(|c| c * scale));
        }
        Ok(Mesh { format: Some(format), units: Some(units), positions, triangles: welded.triangles, ..Mesh::default() })
    }

    /// Moves every vertex by `f`, e.g. to translate or rotate a mesh in a test.
    pub fn map_positions(&mut self, f: impl Fn([f64; 3]) -> [f64; 3] + Sync) {
        self.positions.par_iter_mut().for_each(|p| *p = f(*p));
    }

    /// Reverses the winding of every triangle, turning the mesh inside out.
    pub fn flip_winding(&mut self) {
        self.triangles.par_iter_mut().for_each(|t| t.swap(1, 2));
    }
}
