//! The indexed triangle mesh every format is read into: welded vertices in millimetres, triangles, materials.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

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
    /// `key` reads a corner, `what` names one in an error message ("triangle 7").
    ///
    /// A soup without locality (its triangles shuffled) is first put in space order, so that welding and every
    /// pass after it touch memory in order whatever order the file lists its triangles in. The mesh's triangles
    /// are then in that order; the second value says, for each, which triangle of the soup it is.
    pub(crate) fn from_soup<K: WeldKey>(
        format: Format,
        units: Units,
        corners: usize,
        key: impl Fn(usize) -> K + Sync,
        what: impl Fn(usize) -> String,
    ) -> Result<(Mesh, Option<Vec<u32>>), ModelError> {
        debug_assert_eq!(corners % 3, 0);
        let order = space_order(corners, &key);
        let welded = match &order {
            None => weld(corners, key).map_err(|i| ModelError::NonFiniteCoordinate { location: what(i) })?,
            Some(order) => {
                let gathered = in_order(order, &key);
                // The copy moves into the weld, which frees it once it has read the corners.
                weld(corners, move |i| gathered[i / 3][i % 3]).map_err(|i| {
                    // The weld names the first non-finite corner in space order; the error names the file's first.
                    let first = (0..corners).find(|&c| !key(c).is_finite());
                    ModelError::NonFiniteCoordinate {
                        location: what(first.unwrap_or(3 * order[i / 3] as usize + i % 3)),
                    }
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

/// The soup's triangles (their corners' keys) in `order`, which names every triangle once, so the weld and every
/// pass after it read memory in order.
///
/// The soup is read in file order and each triangle written to its place, rather than each place read from the
/// soup: a read anywhere in a file mapped in 4 KiB pages missed the address-translation cache almost every time
/// (and walked the page tables, which on a virtual machine is dear), while the writes land in a buffer that
/// mimalloc asks the kernel to back with 2 MiB pages. On the 2M-triangle shuffled band, instrumented, 37-39 ->
/// 31-33 ms (the inversion included) against reading in order of place with each read prefetched 16 triangles
/// ahead; the whole command 239.2 -> 233.4 ms in 15 interleaved rounds.
fn in_order<K: WeldKey>(order: &[u32], key: &(impl Fn(usize) -> K + Sync)) -> Vec<[K; 3]> {
    let n = order.len();
    // Each triangle's place: `order` inverted.
    let place: Vec<AtomicU32> = (0..n).into_par_iter().map(|_| AtomicU32::new(u32::MAX)).collect();
    order.par_iter().enumerate().for_each(|(i, &t)| place[t as usize].store(i as u32, Relaxed));
    let mut out: Vec<[K; 3]> = Vec::with_capacity(n);
    // An address, not a pointer, so the closure can be shared between threads.
    let base = out.spare_capacity_mut().as_mut_ptr() as usize;
    place.par_iter().enumerate().for_each(|(t, p)| {
        let p = p.load(Relaxed) as usize;
        // Each entry of `order` was stored in one place only, so no two places name the same slot; a place left
        // unset would leave a slot unwritten, and stops here.
        assert!(p < n, "the space order names every triangle once");
        // Written out: as `[0, 1, 2].map(..)` the three reads were a call per triangle in a profile.
        let c = 3 * t;
        let keys = [key(c), key(c + 1), key(c + 2)];
        #[allow(unsafe_code, reason = "each of the buffer's n slots is written once, by the one triangle placed there")]
        // SAFETY: `p < n`, the buffer's capacity, and no two triangles have the same place (above): no slot is
        // written twice, or by two threads.
        unsafe {
            (base as *mut [K; 3]).add(p).write(keys);
        }
    });
    #[allow(unsafe_code, reason = "every slot was written above")]
    // SAFETY: every one of the n places was set, below n and different: all n slots were written.
    unsafe {
        out.set_len(n);
    }
    out
}

/// Corners looked at, at each of four places in a soup, to tell whether it has locality.
const PROBE: usize = 3 * 8192;

/// `None` when the soup has locality (a vertex's corners near each other, as every exporter writes them: the
/// probes find at most half their corners distinct); otherwise the soup's triangles in space order, as the
/// indices of the soup's triangles: along a Morton curve through the probed corners' box (10 bits an axis, by each
/// triangle's first corner), ties in file order. A counting sort by the curve's first 12 bits (a 16 × 16 × 16
/// grid), then each cell's triangles sorted in parallel: the weld then finds a vertex's corners in one block, and
/// the passes after it (topology, the wall-thickness hierarchy's leaves of 8 or 16 consecutive triangles) work on
/// nearby triangles. A soup with a non-finite first corner is left as it is, for the weld to name the first.
fn space_order<K: WeldKey>(corners: usize, key: &(impl Fn(usize) -> K + Sync)) -> Option<Vec<u32>> {
    if corners < 4 * PROBE {
        return None;
    }
    // The probes also give the curve its box: the box of the corners they read. A soup that gets here has no
    // locality, so those are spread over the whole model, and a corner outside their box is clamped to its edge
    // (it still sorts beside its neighbours there); a pass over every triangle for the exact box took 12-14 ms of
    // the 2M-triangle shuffled band's 50.
    let probes: Vec<(usize, [f64; 3], [f64; 3])> = (0..4)
        .into_par_iter()
        .map(|s| {
            let start = corners / 4 * s / 3 * 3;
            let mut seen = rustc_hash::FxHashSet::with_capacity_and_hasher(PROBE, Default::default());
            let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
            let mut distinct = 0;
            for k in (start..start + PROBE).map(key) {
                distinct += usize::from(seen.insert(k));
                if k.is_finite() {
                    let p = k.position();
                    (lo, hi) = (std::array::from_fn(|i| lo[i].min(p[i])), std::array::from_fn(|i| hi[i].max(p[i])));
                }
            }
            (distinct, lo, hi)
        })
        .collect();
    if probes.iter().map(|p| p.0).sum::<usize>() * 2 <= 4 * PROBE {
        return None;
    }
    let lo: [f64; 3] = std::array::from_fn(|i| probes.iter().map(|p| p.1[i]).fold(f64::INFINITY, f64::min));
    let hi: [f64; 3] = std::array::from_fn(|i| probes.iter().map(|p| p.2[i]).fold(f64::NEG_INFINITY, f64::max));
    let scale: [f64; 3] =
        std::array::from_fn(|i| if hi[i] > lo[i] { (MORTON_CELLS - 0.001) / (hi[i] - lo[i]) } else { 0.0 });
    // A soup with a non-finite first corner is left as it is, for the weld to name the first (another corner
    // that is not finite is found by the weld).
    let finite = AtomicBool::new(lo.iter().all(|c| c.is_finite()));
    let code: Vec<u32> = (0..corners / 3)
        .into_par_iter()
        .map(|t| {
            let k = key(3 * t);
            if !k.is_finite() {
                finite.store(false, Relaxed);
                return 0;
            }
            let p = k.position();
            // To u32, not u64: a float's conversion to u64 takes several instructions more on x86-64, and
            // this pass over 2,000,000 triangles is compute-bound (the shuffled band, 20 interleaved rounds: 316.3 ->
            // 310.5 ms, CPU 586.8 -> 567.9; the same order). Below the box the conversion gives 0, above it
            // more than the last cell.
            morton(std::array::from_fn(|i| (((p[i] - lo[i]) * scale[i]) as u32).min(MORTON_CELLS as u32 - 1)))
        })
        .collect();
    if !finite.into_inner() {
        return None;
    }
    Some(morton_order(&code))
}

/// Cells a Morton curve of [`morton`] has along each axis (10 bits).
pub(crate) const MORTON_CELLS: f64 = 1024.0;

/// The 30-bit Morton code of a cell (each coordinate below [`MORTON_CELLS`]; only the low 10 bits are read).
#[inline]
pub(crate) fn morton(q: [u32; 3]) -> u32 {
    let axis = |v: u32| SPREAD[(v & 1023) as usize];
    axis(q[0]) | axis(q[1]) << 1 | axis(q[2]) << 2
}

/// Every 10-bit value with two zero bits after each of its bits: one axis of a 30-bit Morton code, looked up
/// (4 KiB; the bit-spreading arithmetic made the parser's pass over 2,000,000 triangles compute-bound).
const SPREAD: [u32; 1024] = {
    let mut table = [0u32; 1024];
    let mut v = 0;
    while v < 1024 {
        let mut bit = 0;
        while bit < 10 {
            table[v] |= ((v as u32 >> bit) & 1) << (3 * bit);
            bit += 1;
        }
        v += 1;
    }
    table
};

/// The indices of `code` sorted by it, ties by index: a counting sort by the codes' first 12 bits (a 16 × 16 × 16
/// grid), then each cell's (code, index) pairs sorted. Both steps run in parallel: each thread groups its own
/// part of the codes by cell (no counter is shared), then each cell gathers its runs from every part, sorts them
/// and writes its stretch of the order. Unique keys: the order is the input's alone, whatever the thread count.
pub(crate) fn morton_order(code: &[u32]) -> Vec<u32> {
    const CELLS: usize = 1 << 12;
    const CELL_SHIFT: u32 = 30 - 12;
    let cell = |c: u32| (c >> CELL_SHIFT) as usize;
    debug_assert!(code.iter().all(|&c| c < 1 << 30) && code.len() <= u32::MAX as usize);
    let part = code.len().div_ceil(rayon::current_num_threads().max(1)).max(1);
    // For each part: where each cell's run starts in it (CELLS + 1 entries), and its (code, index) pairs by cell.
    let parts: Vec<(Vec<u32>, Vec<u64>)> = code
        .par_chunks(part)
        .enumerate()
        .map(|(p, codes)| {
            let mut start = vec![0u32; CELLS + 1];
            let mut keyed = vec![0u64; codes.len()];
            crate::group_by_bucket(codes, &mut start, &mut keyed, cell, |i, c| {
                u64::from(c) << 32 | (p * part + i) as u64
            });
            (start, keyed)
        })
        .collect();
    let run = |c: usize| parts.iter().map(move |(start, keyed)| &keyed[start[c] as usize..start[c + 1] as usize]);

    let mut order = vec![0u32; code.len()];
    let mut cells = Vec::with_capacity(CELLS);
    let mut rest = order.as_mut_slice();
    for c in 0..CELLS {
        let (out, tail) = rest.split_at_mut(run(c).map(<[u64]>::len).sum());
        cells.push((c, out));
        rest = tail;
    }
    cells.into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(pairs, spare): &mut (Vec<u64>, Vec<u64>), (c, out)| {
            pairs.clear();
            run(c).for_each(|r| pairs.extend_from_slice(r));
            sort_cell(pairs, spare);
            for (o, &k) in out.iter_mut().zip(pairs.iter()) {
                *o = k as u32;
            }
        },
    );
    order
}

/// Sorts one cell's (code, index) pairs. They arrive in index order (each part's run in order, the parts in
/// order), so sorting them stably by the code's last 18 bits (the cell is the first 12) is sorting them: two
/// passes of a radix sort, 9 bits each. On the 2M-triangle shuffled band (cells of a few hundred to a few thousand
/// pairs) the sort took 17 ms of the space order's 52 with a comparison sort, 12 this way. A small cell is sorted
/// by comparing.
fn sort_cell(pairs: &mut Vec<u64>, spare: &mut Vec<u64>) {
    const BITS: u32 = 9;
    const DIGITS: usize = 1 << BITS;
    if pairs.len() <= 64 {
        pairs.sort_unstable();
        return;
    }
    spare.clear();
    spare.resize(pairs.len(), 0);
    for pass in 0..2 {
        let shift = 32 + pass * BITS;
        let digit = |k: u64| (k >> shift) as usize & (DIGITS - 1);
        crate::group_by_bucket(pairs, &mut [0u32; DIGITS + 1], spare, digit, |_, k| k);
        std::mem::swap(pairs, spare);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weld::F32Key;
    use crate::xorshift;

    #[test]
    fn morton_codes_interleave_the_bits_x_first() {
        assert_eq!(morton([1, 0, 0]), 0b001);
        assert_eq!(morton([0, 1, 0]), 0b010);
        assert_eq!(morton([0, 0, 1]), 0b100);
        assert_eq!(morton([1023, 1023, 1023]), (1 << 30) - 1);
        // Bit b of each axis lands at 3b, 3b + 1, 3b + 2.
        for b in 0..10 {
            assert_eq!(morton([1 << b, 1 << b, 0]), 0b011 << (3 * b));
            assert_eq!(morton([0, 0, 1 << b]), 1 << (3 * b + 2));
        }
        // The order of a code is the order of the cells along the curve: within a 2 × 2 × 2 block, x first.
        let block: Vec<u32> = (0..8).map(|i| morton([i & 1, i >> 1 & 1, i >> 2])).collect();
        assert_eq!(block, (0..8).collect::<Vec<u32>>());
    }

    #[test]
    fn morton_order_is_codes_then_index_on_any_thread_count() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in [0usize, 1, 7, 5_000, 200_003] {
            // Few distinct codes (many ties, a few crowded cells), codes anywhere in 30 bits (cells of a few
            // dozen), and four crowded cells of codes that differ anywhere in their last 18 bits (both passes of
            // the radix sort a large cell gets).
            for kind in 0..3 {
                let code: Vec<u32> = (0..len)
                    .map(|_| {
                        let r = xorshift(&mut state);
                        match kind {
                            0 => ((r % 64) << 24) as u32 | (r >> 40) as u32 & 1,
                            1 => (r % (1 << 30)) as u32,
                            _ => ((r % 4) << 18) as u32 | (r >> 40) as u32 & 0x3_ffff,
                        }
                    })
                    .collect();
                let mut expected: Vec<u32> = (0..len as u32).collect();
                expected.sort_by_key(|&i| (code[i as usize], i));
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
                    assert_eq!(pool.install(|| morton_order(&code)), expected, "{len} codes, {threads} threads");
                }
            }
        }
    }

    /// The triangles of a ring band as a soup, shuffled: no locality, so `from_soup` puts them in space order.
    fn shuffled_band() -> Vec<[f32; 3]> {
        let band = crate::synth::ring_band(8.0, 10.0, 2.0, 300, 64);
        let mut tris = band.triangles.clone();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for i in (1..tris.len()).rev() {
            tris.swap(i, (xorshift(&mut state) % (i as u64 + 1)) as usize);
        }
        tris.iter().flat_map(|t| t.map(|v| band.positions[v as usize].map(|c| c as f32))).collect()
    }

    fn read(corners: &[[f32; 3]]) -> Result<(Mesh, Option<Vec<u32>>), ModelError> {
        Mesh::from_soup(
            Format::StlAscii,
            Units::Mm,
            corners.len(),
            |c| F32Key::from_f32(corners[c]),
            |c| format!("facet {}", c / 3 + 1),
        )
    }

    #[test]
    fn a_shuffled_soup_is_welded_in_space_order_and_its_first_non_finite_corner_named() {
        let corners = shuffled_band();
        assert!(corners.len() >= 4 * PROBE);
        let (mesh, order) = read(&corners).expect("a finite soup reads");
        let order = order.expect("a shuffled soup is put in space order");
        assert_eq!(order.len(), mesh.triangles.len());
        // Each of the mesh's triangles is the soup's triangle the order names, corner for corner.
        for (t, &s) in mesh.triangles.iter().zip(&order) {
            for k in 0..3 {
                let p = mesh.positions[t[k] as usize];
                assert_eq!(p, corners[3 * s as usize + k].map(f64::from));
            }
        }
        // Two non-finite corners, the later in the file earlier in space order: the first in file order is named,
        // whichever corners of their triangles they are.
        let mut place = vec![0; order.len()];
        for (i, &s) in order.iter().enumerate() {
            place[s as usize] = i;
        }
        let later = (9_001..order.len()).find(|&s| place[s] < place[9_000]).expect("a triangle before in space");
        for (first, second) in [(0, 0), (2, 1), (1, 0), (0, 2)] {
            let (first, second) = (3 * 9_000 + first, 3 * later + second);
            let mut bad = corners.clone();
            bad[first][1] = f32::NAN;
            bad[second][0] = f32::INFINITY;
            let err = read(&bad).expect_err("a non-finite corner is refused");
            assert_eq!(err, ModelError::NonFiniteCoordinate { location: "facet 9001".into() });
        }
    }

    #[test]
    fn a_triangle_outside_the_probed_box_is_ordered_at_its_edge() {
        let mut corners = shuffled_band();
        let triangles = corners.len() / 3;
        // The probes read 8,192 triangles from each quarter of the soup; the box of what they read is the curve's.
        let probed = |t: usize| (0..4).any(|s| (triangles / 4 * s..triangles / 4 * s + PROBE / 3).contains(&t));
        let x_max = corners.iter().map(|c| c[0]).fold(f32::MIN, f32::max);
        let x_min = corners.iter().map(|c| c[0]).fold(f32::MAX, f32::min);
        // The unprobed triangle furthest along x, moved 1,234.5 mm further: its curve position is clamped to the
        // box's last cells along x, so it sorts among the band's triangles at that end, not anywhere.
        let moved =
            (0..triangles).filter(|&t| !probed(t)).max_by(|&a, &b| corners[3 * a][0].total_cmp(&corners[3 * b][0]));
        let moved = moved.expect("unprobed triangles");
        for c in &mut corners[3 * moved..3 * moved + 3] {
            // Not a round 1,000: unclamped, an offset of a whole number of the band's widths (20 mm) wraps
            // round to the very cell the triangle started in.
            c[0] += 1234.5;
        }
        let (mesh, order) = read(&corners).expect("a finite soup reads");
        let order = order.expect("a shuffled soup is put in space order");
        for (t, &s) in mesh.triangles.iter().zip(&order) {
            for k in 0..3 {
                assert_eq!(mesh.positions[t[k] as usize], corners[3 * s as usize + k].map(f64::from));
            }
        }
        let at = order.iter().position(|&s| s as usize == moved).expect("every triangle is ordered");
        // The cell of the curve's first 12 bits is a sixteenth of the box along each axis, and the triangle's
        // cell holds others of the band's (one of them may be the next cell's, where the curve leaves it).
        let end = x_max - (x_max - x_min) / 16.0;
        let x = [at - 1, at + 1].map(|near| corners[3 * order[near] as usize][0]);
        assert!(x.iter().any(|&x| x >= end), "its neighbours in the order start at x = {x:?}, not past {end}");
    }
}
