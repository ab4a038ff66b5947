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
    /// `key` reads a corner, `at` says where its bytes are (only ever prefetched, never read through), `what`
    /// names one corner in an error message ("triangle 7").
    ///
    /// A soup without locality (its triangles shuffled) is first put in space order, so that welding and every
    /// pass after it touch memory in order whatever order the file lists its triangles in. The mesh's triangles
    /// are then in that order; the second value says, for each, which triangle of the soup it is.
    pub(crate) fn from_soup<K: WeldKey>(
        format: Format,
        units: Units,
        corners: usize,
        key: impl Fn(usize) -> K + Sync,
        at: impl Fn(usize) -> *const u8 + Sync,
        what: impl Fn(usize) -> String,
    ) -> Result<(Mesh, Option<Vec<u32>>), ModelError> {
        debug_assert_eq!(corners % 3, 0);
        let order = space_order(corners, &key);
        let welded = match &order {
            None => weld(corners, key).map_err(|i| ModelError::NonFiniteCoordinate { location: what(i) })?,
            Some(order) => {
                // The triangles gathered in space order once (reading the file at random), so the weld reads them
                // in order. Each read goes anywhere in the file and waits for memory (and, on a virtual machine,
                // for an expensive page-table walk): asking for the triangle PREFETCH_AHEAD places on keeps that
                // many reads under way at once (the 2M-triangle shuffled band's gather: 66 -> 33 ms).
                let gathered: Vec<[K; 3]> = order
                    .par_iter()
                    .enumerate()
                    .map(|(i, &t)| {
                        if let Some(&ahead) = order.get(i + PREFETCH_AHEAD) {
                            prefetch(at(3 * ahead as usize));
                        }
                        [0, 1, 2].map(|k| key(3 * t as usize + k))
                    })
                    .collect();
                weld(corners, |i| gathered[i / 3][i % 3]).map_err(|i| ModelError::NonFiniteCoordinate {
                    location: what(3 * order[i / 3] as usize + i % 3),
                })?
            }
        };
        let scale = units.to_mm();
        let mut positions = welded.positions;
        if scale != 1.0 {
            positions.par_iter_mut().for_each(|p| *p = p.map(|c| c * scale));
        }
        let mesh = Mesh {
            format: Some(format),
            units: Some(units),
            positions,
            triangles: welded.triangles,
            ..Mesh::default()
        };
        Ok((mesh, order))
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

/// How many triangles ahead the gather asks for a triangle's bytes, so that many reads of the file are under way
/// at once rather than one at a time.
const PREFETCH_AHEAD: usize = 16;

/// Asks the processor to start loading the cache line at `p` (a hint: it never faults, whatever `p` is).
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code, reason = "a prefetch reads nothing and cannot fault; SSE is part of every x86-64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Corners looked at, at each of four places in a soup, to tell whether it has locality.
const PROBE: usize = 3 * 8192;

/// `None` when the soup has locality (a vertex's corners near each other, as every exporter writes them: the
/// probes find at most half their corners distinct); otherwise the soup's triangles in space order, as the
/// indices of the soup's triangles: along a Morton curve through the model's box (10 bits an axis, by each
/// triangle's first corner), ties in file order. A counting sort by the curve's first 12 bits (a 16 × 16 × 16
/// grid), then each cell's triangles sorted in parallel: the weld then finds a vertex's corners in one block, and
/// the passes after it (topology, the wall-thickness hierarchy's leaves of 8 or 16 consecutive triangles) work on
/// nearby triangles. A soup with a non-finite coordinate is left as it is, for the weld to name the first.
fn space_order<K: WeldKey>(corners: usize, key: &(impl Fn(usize) -> K + Sync)) -> Option<Vec<u32>> {
    if corners < 4 * PROBE {
        return None;
    }
    let distinct: usize = (0..4)
        .into_par_iter()
        .map(|s| {
            let start = corners / 4 * s / 3 * 3;
            let mut seen = rustc_hash::FxHashSet::with_capacity_and_hasher(PROBE, Default::default());
            (start..start + PROBE).filter(|&i| seen.insert(key(i))).count()
        })
        .sum();
    if distinct * 2 <= 4 * PROBE {
        return None;
    }
    let triangles = corners / 3;
    let first = |t: usize| key(3 * t);
    if !(0..triangles).into_par_iter().all(|t| first(t).is_finite()) {
        return None;
    }
    let (lo, hi) = crate::analyze::bounds((0..triangles).into_par_iter().map(|t| first(t).position()));
    let scale: [f64; 3] =
        std::array::from_fn(|i| if hi[i] > lo[i] { (MORTON_CELLS - 0.001) / (hi[i] - lo[i]) } else { 0.0 });
    let code: Vec<u32> = (0..triangles)
        .into_par_iter()
        .map(|t| {
            let p = first(t).position();
            morton(std::array::from_fn(|i| ((p[i] - lo[i]) * scale[i]) as u64))
        })
        .collect();
    Some(morton_order(&code))
}

/// Cells a Morton curve of [`morton`] has along each axis (10 bits).
pub(crate) const MORTON_CELLS: f64 = 1024.0;

/// The 30-bit Morton code of a cell (each coordinate below [`MORTON_CELLS`]).
pub(crate) fn morton(q: [u64; 3]) -> u32 {
    (spread(q[0]) | spread(q[1]) << 1 | spread(q[2]) << 2) as u32
}

/// The indices of `code` sorted by it, ties by index: a counting sort by the codes' first 12 bits (a 16 × 16 × 16
/// grid), then each cell's (code, index) pairs sorted in parallel. Unique keys: the order is the input's alone.
pub(crate) fn morton_order(code: &[u32]) -> Vec<u32> {
    const CELL_SHIFT: u32 = 30 - 12;
    let cell = |i: usize| (code[i] >> CELL_SHIFT) as usize;
    let mut cursor = vec![0usize; 1 << 12];
    for i in 0..code.len() {
        cursor[cell(i)] += 1;
    }
    let mut at = 0;
    let mut runs = Vec::with_capacity(cursor.len());
    for c in cursor.iter_mut() {
        let n = *c;
        *c = at;
        at += n;
        runs.push(n);
    }
    let mut keyed = vec![0u64; code.len()];
    for (i, &c) in code.iter().enumerate() {
        let slot = &mut cursor[cell(i)];
        keyed[*slot] = u64::from(c) << 32 | i as u64;
        *slot += 1;
    }
    let mut rest = keyed.as_mut_slice();
    let mut cells = Vec::with_capacity(runs.len());
    for n in runs {
        let (run, tail) = rest.split_at_mut(n);
        cells.push(run);
        rest = tail;
    }
    cells.into_par_iter().for_each(|run| run.sort_unstable());
    keyed.into_par_iter().map(|k| k as u32).collect()
}

/// The low 21 bits of `v`, two zero bits after each: one axis of a 63-bit Morton code.
fn spread(v: u64) -> u64 {
    let mut x = v & 0x1f_ffff;
    x = (x | x << 32) & 0x1f_0000_0000_ffff;
    x = (x | x << 16) & 0x1f_0000_ff00_00ff;
    x = (x | x << 8) & 0x100f_00f0_0f00_f00f;
    x = (x | x << 4) & 0x10c3_0c30_c30c_30c3;
    (x | x << 2) & 0x1249_2492_4924_9249
}
