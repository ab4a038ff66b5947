//! Welding: corners of a triangle soup that have bit-identical positions become one vertex, in parallel.
//!
//! Corners are split into partitions by a hash of their position; each partition is welded on its own with a
//! small hash map that stays in cache. Partitions and their order depend only on the input, never on the number
//! of threads, so vertex numbering is the same on one core or many.

use std::hash::Hash;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Corners handled by one block of the partitioning pass.
const BLOCK: usize = 1 << 16;

/// A corner's position as exact bits, so that equality is bit equality (with `-0.0` folded into `0.0`).
pub(crate) trait WeldKey: Copy + Eq + Hash + Send + Sync {
    fn is_finite(&self) -> bool;
    fn mix(&self) -> u64;
    fn position(&self) -> [f64; 3];
}

/// A position read from f32 coordinates (STL).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct F32Key([u32; 3]);

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

/// The indices of the set bits of a word, lowest first.
struct BitIter(u64);

impl Iterator for BitIter {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(b)
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

/// The welded vertices and, for every corner, its vertex index.
#[derive(Debug)]
pub(crate) struct Welded {
    pub positions: Vec<[f64; 3]>,
    pub corner_vertex: Vec<u32>,
}

/// Welds `n` corners whose keys `key(i)` returns. Fails with the index of the first corner whose position is
/// not finite.
///
/// Vertices are numbered in the order of their first corner, so a mesh whose triangles are stored with some
/// locality keeps it, which the passes over triangles and edges after welding depend on for speed.
pub(crate) fn weld<K: WeldKey>(n: usize, key: impl Fn(usize) -> K + Sync) -> Result<Welded, usize> {
    // Partition count depends only on n: a few thousand corners a partition keeps each map in L1/L2.
    let bits = (usize::BITS - (n / 4096).leading_zeros()).min(12);
    let parts = 1usize << bits;
    let part_of = |h: u64| if bits == 0 { 0 } else { (h >> (64 - bits)) as usize };

    // Pass 1: per block, the keys sorted by partition (a stable counting sort), with each partition's range.
    struct Block<K> {
        start: usize,
        keys: Vec<K>,
        /// For each sorted key, the corner's offset in the block.
        order: Vec<u32>,
        /// End of each partition's range in `keys`.
        ends: Vec<u32>,
        /// For each sorted key, its vertex number within its partition (written by pass 2).
        ids: Vec<AtomicU32>,
    }
    let blocks: Vec<Block<K>> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let start = b * BLOCK;
            let end = (start + BLOCK).min(n);
            let mut unsorted = Vec::with_capacity(end - start);
            let mut counts = vec![0u32; parts + 1];
            for i in start..end {
                let k = key(i);
                if !k.is_finite() {
                    return Err(i);
                }
                let p = part_of(k.mix());
                unsorted.push((k, p as u32));
                counts[p + 1] += 1;
            }
            for p in 0..parts {
                counts[p + 1] += counts[p];
            }
            let ends = counts[1..].to_vec();
            let mut keys = vec![unsorted[0].0; unsorted.len()];
            let mut order = vec![0u32; end - start];
            for (j, (k, p)) in unsorted.iter().enumerate() {
                let slot = &mut counts[*p as usize];
                keys[*slot as usize] = *k;
                order[*slot as usize] = j as u32;
                *slot += 1;
            }
            let ids = (0..end - start).map(|_| AtomicU32::new(0)).collect();
            Ok(Block { start, keys, order, ends, ids })
        })
        .collect::<Result<_, usize>>()?;

    // Pass 2: each partition welds its corners from every block, in corner order; for each vertex it keeps
    // the first corner that used it.
    let part_vertices: Vec<Vec<(u32, K)>> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let corners: usize = blocks.iter().map(|b| b.ends[p] as usize).sum::<usize>()
                - blocks.iter().map(|b| if p == 0 { 0 } else { b.ends[p - 1] as usize }).sum::<usize>();
            // Closed meshes have about six corners a vertex; more vertices only cost a rehash.
            let mut map: FxHashMap<K, u32> = FxHashMap::with_capacity_and_hasher(corners / 4, Default::default());
            let mut vertices = Vec::new();
            for block in &blocks {
                let lo = if p == 0 { 0 } else { block.ends[p - 1] } as usize;
                let hi = block.ends[p] as usize;
                for j in lo..hi {
                    let k = block.keys[j];
                    let id = *map.entry(k).or_insert_with(|| {
                        vertices.push(((block.start + block.order[j] as usize) as u32, k));
                        (vertices.len() - 1) as u32
                    });
                    block.ids[j].store(id, Ordering::Relaxed);
                }
            }
            vertices
        })
        .collect();

    // Number vertices by their first corner: a bit per corner marks firsts; a vertex's number is the count of
    // marks before its first corner, which a per-word prefix count answers in constant time.
    let part_sizes: Vec<usize> = part_vertices.iter().map(Vec::len).collect();
    let words: Vec<AtomicU64> = (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
    part_vertices.par_iter().for_each(|vs| {
        for (first, _) in vs {
            words[*first as usize / 64].fetch_or(1 << (first % 64), Ordering::Relaxed);
        }
    });
    let words: Vec<u64> = words.into_iter().map(AtomicU64::into_inner).collect();
    let mut before = Vec::with_capacity(words.len());
    let mut acc = 0u32;
    for w in &words {
        before.push(acc);
        acc += w.count_ones();
    }
    let rank = |i: u32| before[i as usize / 64] + (words[i as usize / 64] & ((1u64 << (i % 64)) - 1)).count_ones();
    // Old numbers are partition-major, so the partitions in order give the table from old to new numbers.
    let renumber: Vec<u32> =
        part_vertices.par_iter().flat_map_iter(|vs| vs.iter().map(|(first, _)| rank(*first))).collect();
    drop(part_vertices);
    let positions: Vec<[f64; 3]> = words
        .par_chunks(1024)
        .enumerate()
        .flat_map_iter(|(c, chunk)| {
            chunk.iter().enumerate().flat_map(move |(w, &bits)| {
                let base = (c * 1024 + w) * 64;
                BitIter(bits).map(move |b| base + b)
            })
        })
        .map(|i| key(i).position())
        .collect();

    let mut part_offsets = Vec::with_capacity(parts);
    let mut total = 0usize;
    for size in &part_sizes {
        part_offsets.push(total);
        total += size;
    }
    // Pass 3: every block writes its corners' final vertex numbers.
    let corner_vertex = blocks
        .par_iter()
        .flat_map_iter(|block| {
            let mut out = vec![0u32; block.keys.len()];
            let mut lo = 0usize;
            for (p, &end) in block.ends.iter().enumerate() {
                for j in lo..end as usize {
                    let old = part_offsets[p] + block.ids[j].load(Ordering::Relaxed) as usize;
                    out[block.order[j] as usize] = renumber[old];
                }
                lo = end as usize;
            }
            out
        })
        .collect();
    Ok(Welded { positions, corner_vertex })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weld_f32(points: &[[f32; 3]]) -> Welded {
        weld(points.len(), |i| F32Key::from_f32(points[i])).expect("finite")
    }

    #[test]
    fn identical_positions_share_a_vertex() {
        let pts = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]];
        let w = weld_f32(&pts);
        assert_eq!(w.positions.len(), 3);
        assert_eq!(w.corner_vertex[0], w.corner_vertex[2]);
        assert_eq!(w.corner_vertex[1], w.corner_vertex[3]);
        assert_ne!(w.corner_vertex[0], w.corner_vertex[4]);
        for (i, p) in pts.iter().enumerate() {
            assert_eq!(w.positions[w.corner_vertex[i] as usize], p.map(f64::from));
        }
    }

    #[test]
    fn negative_zero_is_zero_and_near_is_not_equal() {
        let pts = [[0.0, 0.0, 0.0], [-0.0, 0.0, -0.0], [f32::EPSILON, 0.0, 0.0]];
        let w = weld_f32(&pts);
        assert_eq!(w.corner_vertex[0], w.corner_vertex[1]);
        assert_ne!(w.corner_vertex[0], w.corner_vertex[2]);
    }

    #[test]
    fn non_finite_positions_are_refused_with_the_first_index() {
        let mut pts = vec![[1.0f32, 2.0, 3.0]; 200_000];
        pts[150_000][1] = f32::NAN;
        pts[190_000][2] = f32::INFINITY;
        let err = weld(pts.len(), |i| F32Key::from_f32(pts[i])).unwrap_err();
        assert_eq!(err, 150_000);
    }

    #[test]
    fn numbering_does_not_depend_on_thread_count() {
        let pts: Vec<[f32; 3]> = (0..300_000u32).map(|i| [(i % 1000) as f32, (i % 77) as f32, 0.5]).collect();
        let run = |threads| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool").install(|| weld_f32(&pts))
        };
        let (a, b) = (run(1), run(3));
        assert_eq!(a.positions, b.positions);
        assert_eq!(a.corner_vertex, b.corner_vertex);
    }
}
