//! Welding: corners of a triangle soup that have bit-identical positions become one vertex, in parallel.
//!
//! Corners are welded first within blocks, then the blocks' distinct positions across blocks, split into
//! partitions by a hash of their position. Blocks, partitions and their order depend only on the input, never on
//! the number of threads, so vertex numbering is the same on one core or many.

use std::hash::Hash;
use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Triangles handled by one block of the first level (a third of 2^16 corners: its map stays in cache).
const BLOCK_TRIANGLES: usize = 21_845;
/// Corners in one block.
const BLOCK: usize = 3 * BLOCK_TRIANGLES;

/// A corner's position as exact bits, so that equality is bit equality (with `-0.0` folded into `0.0`).
pub(crate) trait WeldKey: Copy + Eq + Hash + Send + Sync {
    fn is_finite(&self) -> bool;
    fn mix(&self) -> u64;
    fn position(&self) -> [f64; 3];
}

/// A position read from f32 coordinates (STL).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct F32Key([u32; 3]);

/// One word a key for the maps' hasher: derived, the three coordinates went to it as 12 bytes and a length, which
/// it compresses with a wide multiply, and the weld hashes every corner of a model (its first level on the 2M-triangle
/// band, instrumented: 31.5-32.5 -> 28.4-29.4 ms). `z` is spread by a multiply and the high half folded onto the
/// low, so every coordinate bit reaches the bits a table picks its bucket by.
impl Hash for F32Key {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [x, y, z] = self.0;
        let v = (u64::from(x) | u64::from(y) << 32) ^ u64::from(z).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        state.write_u64(v ^ v >> 32);
    }
}

impl F32Key {
    #[inline]
    pub(crate) fn from_bits(bits: [u32; 3]) -> Self {
        // -0.0 and 0.0 are the same point.
        F32Key(bits.map(|b| if b == 0x8000_0000 { 0 } else { b }))
    }

    #[inline]
    pub(crate) fn from_f32(p: [f32; 3]) -> Self {
        Self::from_bits(p.map(f32::to_bits))
    }
}

impl WeldKey for F32Key {
    #[inline]
    fn is_finite(&self) -> bool {
        self.0.iter().all(|b| (b >> 23) & 0xff != 0xff)
    }

    #[inline]
    fn mix(&self) -> u64 {
        let [x, y, z] = self.0;
        fmix64((u64::from(x) | (u64::from(y) << 32)) ^ u64::from(z).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    #[inline]
    fn position(&self) -> [f64; 3] {
        self.0.map(|b| f64::from(f32::from_bits(b)))
    }
}

/// A position computed in f64 (glTF after node transforms).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct F64Key([u64; 3]);

impl F64Key {
    #[inline]
    pub(crate) fn from_f64(p: [f64; 3]) -> Self {
        F64Key(p.map(|v| if v == 0.0 { 0 } else { v.to_bits() }))
    }
}

impl WeldKey for F64Key {
    #[inline]
    fn is_finite(&self) -> bool {
        self.0.iter().all(|b| f64::from_bits(*b).is_finite())
    }

    #[inline]
    fn mix(&self) -> u64 {
        let [x, y, z] = self.0;
        fmix64(x ^ y.rotate_left(21).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ z.rotate_left(42))
    }

    #[inline]
    fn position(&self) -> [f64; 3] {
        self.0.map(f64::from_bits)
    }
}

/// MurmurHash3's 64-bit finaliser: every input bit affects the high bits used to pick a partition.
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// One block's (key, entry) pairs grouped by partition: partition `p`'s are `flat[starts[p]..starts[p + 1]]`.
struct Grouped<K> {
    flat: Vec<(K, u32)>,
    starts: Vec<u32>,
}

impl<K> Grouped<K> {
    fn run(&self, p: usize) -> &[(K, u32)] {
        self.flat.get(self.starts[p] as usize..self.starts[p + 1] as usize).unwrap_or(&[])
    }
}

/// The welded vertices and, for every three corners, a triangle of vertex indices.
#[derive(Debug)]
pub(crate) struct Welded {
    pub positions: Vec<[f64; 3]>,
    pub triangles: Vec<[u32; 3]>,
}

/// Welds `n` corners (three a triangle) whose keys `key(i)` returns. Fails with the index of the first corner whose
/// position is not finite.
///
/// Two levels, because meshes are stored with locality (a vertex's corners are mostly near each other in the
/// file): each block of corners is welded on its own with a map that stays in cache, and only the blocks'
/// distinct positions, a sixth of the corners in a typical closed mesh, are welded across blocks. Vertices are
/// numbered in the order of their first corner, so the mesh keeps its locality for the passes after welding.
///
/// Memory is what the result needs plus a sixth of it: the first level writes each corner's block-local index
/// into the triangles it returns, and they are renumbered there; every buffer is allocated once at its final size
/// and the hash maps are reused from block to block. Fresh memory is what a large model pays for most (the kernel
/// zeroes every page first touched), so this is the weld's cost as much as its hashing is.
pub(crate) fn weld<K: WeldKey>(n: usize, key: impl Fn(usize) -> K + Sync) -> Result<Welded, usize> {
    weld_with(n, key, true)
}

/// [`weld`], with the shortcut for a soup of one block switchable, so a test can hold the two ways together.
fn weld_with<K: WeldKey>(n: usize, key: impl Fn(usize) -> K + Sync, one_block_shortcut: bool) -> Result<Welded, usize> {
    debug_assert_eq!(n % 3, 0, "corners come three a triangle");
    // Level 1: per block, the distinct keys in order of first use; each corner's index among them goes where its
    // vertex number will be.
    let mut triangles = vec![[0u32; 3]; n / 3];
    let blocks: Vec<Result<Vec<K>, usize>> = triangles
        .par_chunks_mut(BLOCK_TRIANGLES)
        .enumerate()
        .map_init(
            || (FxHashMap::<K, u32>::default(), Vec::new()),
            |(map, distinct), (b, out)| {
                map.clear();
                map.reserve(BLOCK / 4);
                distinct.clear();
                for (t, tri) in out.iter_mut().enumerate() {
                    for (c, slot) in tri.iter_mut().enumerate() {
                        let i = b * BLOCK + 3 * t + c;
                        let k = key(i);
                        if !k.is_finite() {
                            return Err(i);
                        }
                        *slot = *map.entry(k).or_insert_with(|| {
                            distinct.push(k);
                            (distinct.len() - 1) as u32
                        });
                    }
                }
                // Copied out at its size: the scratch list has room to spare.
                Ok(distinct.as_slice().to_vec())
            },
        )
        .collect();
    // The first failing corner in file order, whichever block a thread reached first.
    let blocks: Vec<Vec<K>> = blocks.into_iter().collect::<Result<_, usize>>()?;
    // The corners are read: whatever `key` owns (a shuffled soup's copy in space order) is freed here, for what
    // follows to reuse.
    drop(key);

    // One block (up to 21,845 triangles): its distinct keys are the vertices, in first-use order already.
    if let ([only], true) = (blocks.as_slice(), one_block_shortcut) {
        let positions = only.iter().map(WeldKey::position).collect();
        return Ok(Welded { positions, triangles });
    }

    // The blocks' distinct keys, concatenated, are "entries"; entry order is first-use order of the corners.
    let mut entry_offset = Vec::with_capacity(blocks.len() + 1);
    let mut total = 0usize;
    for b in &blocks {
        entry_offset.push(total);
        total += b.len();
    }
    entry_offset.push(total);
    // Level 2: entries are partitioned by a hash of their key (the partitions depend only on the input, never on
    // the thread count); each partition finds, for every entry, the first entry with the same key.
    let bits = (usize::BITS - (total / 4096).leading_zeros()).min(12);
    let parts = 1usize << bits;
    let part_of = |k: &K| if bits == 0 { 0 } else { (k.mix() >> (64 - bits)) as usize };
    // Each block's entries grouped by partition in one buffer (a counting sort), with where each partition's
    // run starts: no list a partition and a block (4,096 × 92 of them on a 2M-triangle model).
    let by_part: Vec<Grouped<K>> = blocks
        .par_iter()
        .enumerate()
        .map(|(b, distinct)| {
            let mut starts = vec![0u32; parts + 1];
            let Some(&filler) = distinct.first() else {
                return Grouped { flat: Vec::new(), starts };
            };
            let mut flat = vec![(filler, 0u32); distinct.len()];
            let entry = |j: usize| (entry_offset[b] + j) as u32;
            crate::group_by_bucket(distinct, &mut starts, &mut flat, |k| part_of(&k), |j, k| (k, entry(j)));
            Grouped { flat, starts }
        })
        .collect();
    let first: Vec<AtomicU32> = (0..total).map(|_| AtomicU32::new(0)).collect();
    (0..parts).into_par_iter().for_each_init(FxHashMap::<K, u32>::default, |map, p| {
        map.clear();
        map.reserve(by_part.iter().map(|block| block.run(p).len()).sum());
        for block in &by_part {
            for &(k, e) in block.run(p) {
                let f = *map.entry(k).or_insert(e);
                first[e as usize].store(f, Ordering::Relaxed);
            }
        }
    });
    drop(by_part);
    let mut first: Vec<u32> = first.into_iter().map(AtomicU32::into_inner).collect();

    // Number vertices by first use: an entry that is its own first is a new vertex; its number is how many such
    // entries come before it. Each block's own vertices are numbered in one run, and their positions written there.
    let own: Vec<usize> = (0..blocks.len())
        .into_par_iter()
        .map(|b| (entry_offset[b]..entry_offset[b + 1]).filter(|&e| first[e] as usize == e).count())
        .collect();
    let mut positions = vec![[0.0f64; 3]; own.iter().sum()];
    let mut number = vec![0u32; total];
    let mut jobs = Vec::with_capacity(blocks.len());
    let (mut rest_positions, mut rest_numbers, mut next) = (positions.as_mut_slice(), number.as_mut_slice(), 0u32);
    for (b, &count) in own.iter().enumerate() {
        let (p, tail_p) = rest_positions.split_at_mut(count);
        let (m, tail_m) = rest_numbers.split_at_mut(blocks[b].len());
        jobs.push((b, next, p, m));
        (rest_positions, rest_numbers, next) = (tail_p, tail_m, next + count as u32);
    }
    jobs.into_par_iter().for_each(|(b, mut next, p, m)| {
        let mut written = 0;
        for (j, (k, slot)) in blocks[b].iter().zip(m).enumerate() {
            if first[entry_offset[b] + j] as usize == entry_offset[b] + j {
                *slot = next;
                p[written] = k.position();
                (next, written) = (next + 1, written + 1);
            }
        }
    });
    drop(blocks);
    // Every entry to its first's number, then every corner from its block-local index to that.
    first.par_iter_mut().for_each(|f| *f = number[*f as usize]);
    drop(number);
    triangles.par_chunks_mut(BLOCK_TRIANGLES).enumerate().for_each(|(b, out)| {
        let table = &first[entry_offset[b]..entry_offset[b + 1]];
        for v in out.as_flattened_mut() {
            *v = table[*v as usize];
        }
    });
    Ok(Welded { positions, triangles })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weld_f32(points: &[[f32; 3]]) -> Welded {
        weld(points.len(), |i| F32Key::from_f32(points[i])).expect("finite")
    }

    #[test]
    fn identical_positions_share_a_vertex() {
        let pts =
            [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]];
        let w = weld_f32(&pts);
        assert_eq!(w.positions.len(), 3);
        assert_eq!(w.triangles, [[0, 1, 0], [1, 2, 0]], "numbered by first corner");
        for (i, p) in pts.iter().enumerate() {
            assert_eq!(w.positions[w.triangles[i / 3][i % 3] as usize], p.map(f64::from));
        }
    }

    #[test]
    fn negative_zero_is_zero_and_near_is_not_equal() {
        let pts = [[0.0, 0.0, 0.0], [-0.0, 0.0, -0.0], [f32::EPSILON, 0.0, 0.0]];
        let w = weld_f32(&pts);
        assert_eq!(w.triangles[0][0], w.triangles[0][1]);
        assert_ne!(w.triangles[0][0], w.triangles[0][2]);
    }

    #[test]
    fn non_finite_positions_are_refused_with_the_first_index() {
        let mut pts = vec![[1.0f32, 2.0, 3.0]; 300_000];
        pts[150_000][1] = f32::NAN;
        pts[190_000][2] = f32::INFINITY;
        let err = weld(pts.len(), |i| F32Key::from_f32(pts[i])).unwrap_err();
        assert_eq!(err, 150_000);
        // In different blocks, on any number of threads: the first in file order, not the first a thread met.
        pts[290_000][0] = f32::NAN;
        pts[40_000][0] = f32::NEG_INFINITY;
        for threads in [1, 2, 5] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            let err = pool.install(|| weld(pts.len(), |i| F32Key::from_f32(pts[i])).unwrap_err());
            assert_eq!(err, 40_000, "{threads} threads");
        }
    }

    #[test]
    fn one_block_shortcut_numbers_as_the_two_levels_do() {
        // Points on a small lattice, so many corners share a position; up to a whole block of corners.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for corners in [3, 300, 3 * 7_000, BLOCK / 3 * 3] {
            let pts: Vec<[f32; 3]> = (0..corners)
                .map(|_| {
                    let state = crate::xorshift(&mut state);
                    [(state % 17) as f32, (state / 17 % 13) as f32 * 0.5, -((state / 221 % 11) as f32)]
                })
                .collect();
            let key = |i: usize| F32Key::from_f32(pts[i]);
            let (short, long) = (weld_with(corners, key, true).unwrap(), weld_with(corners, key, false).unwrap());
            assert_eq!(short.positions, long.positions, "{corners} corners");
            assert_eq!(short.triangles, long.triangles, "{corners} corners");
        }
    }

    #[test]
    fn numbering_does_not_depend_on_thread_count() {
        let pts: Vec<[f32; 3]> = (0..300_000u32).map(|i| [(i % 1000) as f32, (i % 77) as f32, 0.5]).collect();
        let w = weld_f32(&pts);
        assert_eq!(w.positions.len(), 77_000);
        // What a single map in file order gives: vertices numbered by first corner, every corner at its point.
        let mut seen = FxHashMap::default();
        let mut expected = Vec::new();
        for (i, p) in pts.iter().enumerate() {
            let v = *seen.entry(F32Key::from_f32(*p)).or_insert_with(|| {
                expected.push(p.map(f64::from));
                expected.len() as u32 - 1
            });
            assert_eq!(w.triangles[i / 3][i % 3], v, "corner {i}");
        }
        assert_eq!(w.positions, expected);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool").install(|| weld_f32(&pts))
        };
        let (a, b) = (run(1), run(3));
        assert_eq!(a.positions, b.positions);
        assert_eq!(a.triangles, b.triangles);
    }
}
