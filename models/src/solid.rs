//! The solid a file describes: its shells repaired, turned outward, unioned, and its volume.
//!
//! A file's triangles are a boundary representation only when they form closed, consistently wound shells that
//! do not overlap; real jewelry files break every one of those. This pass repairs what it can, says what it did
//! ([`Repairs`]), unions what overlaps, and says when the result still cannot be trusted (`needs_review`).
//!
//! A file that is already closed and consistently wound (the usual case, and every large file we have seen)
//! skips the repairs: its shells come from [`crate::analyze`]'s topology pass. One shell, or shells whose
//! bounding boxes do not overlap, need no boolean: their volumes add. Only clusters of shells whose boxes
//! overlap go to the boolean union (the Manifold library's kernel, ported to Rust in `manifold-rust`).

use std::borrow::Cow;
use std::f64::consts::PI;

use manifold_rust::manifold::Manifold;
use manifold_rust::types::{Error as ManifoldError, MeshGL64};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::analyze::{cross, dot, norm, sub, Warning};

/// Longest hole (in edges) that is filled. A hole this small is a missing triangle or a tessellation slip; a
/// larger one is a missing part of the model, which no repair should invent.
pub const MAX_HOLE_EDGES: usize = 16;

/// Near-miss vertices closer than this many `f32` ulps of the model's largest coordinate are one vertex.
const WELD_ULPS: f64 = 16.0;

/// Most rim vertices welded into one: more than this meeting at a point is not a seam.
const MAX_WELD_CLASS: usize = 16;

/// What was repaired before the solid was measured, and what is left. The report's other counts describe the
/// file as uploaded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Repairs {
    /// Vertices on the rim of a hole closer than this (mm) became one vertex: 16 `f32` ulps of the model's
    /// largest coordinate. Never two corners of one triangle.
    pub weld_tolerance_mm: f64,
    /// Vertices merged into another by that weld.
    pub vertices_welded: u64,
    /// Triangles with two corners on one vertex (after the weld), dropped.
    pub degenerate_triangles_dropped: u64,
    /// Extra copies of a triangle (same corners, same winding), dropped.
    pub duplicate_triangles_dropped: u64,
    /// Pairs of a triangle and its exact reverse (an internal wall between two touching parts), both dropped.
    pub reversed_pairs_dropped: u64,
    /// Triangles turned so that every shell is consistently wound (the fewer of each shell's two windings).
    pub triangles_reoriented: u64,
    /// Holes of at most 16 edges closed with a fan of triangles.
    pub holes_filled: u64,
    pub hole_triangles_added: u64,
    /// Area of those triangles: more than 0.5 % of the model's area is a guess, and needs review.
    pub hole_area_mm2: f64,
    /// Closed shells facing inward that lie inside nothing, turned outward.
    pub shells_turned_outward: u64,
    /// Closed shells facing inward inside another shell: kept as cavities, their volume subtracted.
    pub cavities: u64,
    /// Closed shells after repair, the solids (and cavities) the union is made of.
    pub closed_shells: u64,
    /// After repair: edges used by one triangle, edges left unpaired among more than two, shells not closed.
    pub boundary_edges_left: u64,
    pub non_manifold_edges_left: u64,
    pub open_shells_left: u64,
}

/// The solid's volume, per material, and what it rests on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Solid<'a> {
    pub volume: f64,
    pub material_volumes: Vec<f64>,
    pub repairs: Repairs,
    pub review: Vec<Warning>,
    pub surface: Surface<'a>,
}

/// The solid's boundary, wound outward, per material: what wall thickness is measured on. Each material's
/// shells after their union (a prong's part buried in the band is not in it); the union across materials is
/// not taken, so a stone's surface does not hide the metal around it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Surface<'a> {
    pub positions: Cow<'a, [[f64; 3]]>,
    /// Per material, then one group of triangles with no material (for a file without materials, the only
    /// group with triangles).
    pub groups: Vec<Cow<'a, [[u32; 3]]>>,
    /// A group that is the mesh's own triangles (one clean shell), and their areas as `analyze` found them.
    pub areas: Option<(usize, &'a [f32])>,
}

/// Shells as the topology pass of `analyze` found them, for a mesh that needs no repair.
pub(crate) struct CleanShells<'a> {
    pub shell_of: &'a [u32],
    pub volume: &'a [f64],
    pub roots: &'a [u32],
}

/// Measures the solid of a mesh: `clean` when `analyze` found it closed and consistently wound.
pub(crate) fn solid<'a>(
    positions: &'a [[f64; 3]],
    triangles: &'a [[u32; 3]],
    triangle_materials: &[u32],
    n_materials: usize,
    area_mm2: f64,
    clean: Option<CleanShells<'_>>,
    areas: Option<&'a [f32]>,
) -> Solid<'a> {
    let max_coord = positions.par_iter().map(|p| p[0].abs().max(p[1].abs()).max(p[2].abs())).reduce(|| 0.0, f64::max);
    let tolerance = WELD_ULPS * f64::from(f32::EPSILON) * max_coord;
    let mut repairs = Repairs { weld_tolerance_mm: tolerance, ..Repairs::default() };
    let mut review = Vec::new();

    let shells = match clean {
        // One closed shell: nothing to union, nothing to repair.
        Some(c) if c.volume.len() == 1 => {
            let v = c.volume[0];
            repairs.closed_shells = 1;
            repairs.shells_turned_outward = u64::from(v < 0.0);
            let mut material_volumes = vec![0.0; n_materials];
            let material = triangle_materials.get(c.roots[0] as usize).map_or(u32::MAX, |&m| m);
            if let Some(m) = material_volumes.get_mut(material as usize) {
                *m = v.abs();
            }
            let mut groups = vec![Cow::Borrowed(&[][..]); n_materials + 1];
            let group = (material as usize).min(n_materials);
            groups[group] = if v < 0.0 {
                Cow::Owned(triangles.par_iter().map(|&[a, b, c]| [a, c, b]).collect())
            } else {
                Cow::Borrowed(triangles)
            };
            // Turned outward, every triangle keeps its area.
            let areas = areas.map(|a| (group, a));
            let surface = Surface { positions: Cow::Borrowed(positions), groups, areas };
            return Solid { volume: v.abs(), material_volumes, repairs, review, surface };
        }
        Some(c) => Shells {
            positions: Cow::Borrowed(positions),
            triangles: Cow::Borrowed(triangles),
            materials: Cow::Borrowed(triangle_materials),
            shell_of: Cow::Borrowed(c.shell_of),
            volume: c.volume.to_vec(),
            closed: vec![true; c.volume.len()],
            root: c.roots.to_vec(),
        },
        None => repair(positions, triangles, triangle_materials, tolerance, &mut repairs, &mut review),
    };
    if repairs.hole_area_mm2 > 0.005 * area_mm2 {
        review.push(Warning::new(
            "large_holes_filled",
            format!(
                "holes of {:.3} mm² ({:.1} % of the surface) were closed flat: the volume there is a guess",
                repairs.hole_area_mm2,
                100.0 * repairs.hole_area_mm2 / area_mm2
            ),
        ));
    }
    repairs.closed_shells = shells.closed.iter().filter(|c| **c).count() as u64;
    repairs.open_shells_left = shells.closed.len() as u64 - repairs.closed_shells;
    if repairs.open_shells_left > 0 {
        review.push(Warning::new(
            "open_shells",
            format!(
                "{} shells are still open after repair ({} boundary edges, {} non-manifold edges left): their \
                 volume is a guess",
                repairs.open_shells_left, repairs.boundary_edges_left, repairs.non_manifold_edges_left
            ),
        ));
    }
    let (volume, material_volumes, groups, union_vertices) = measure(&shells, n_materials, &mut repairs, &mut review);
    // Borrowed shells are on the mesh's own positions; repaired ones own theirs.
    let mut positions: Cow<'a, [[f64; 3]]> = match shells.positions {
        Cow::Borrowed(_) => Cow::Borrowed(positions),
        Cow::Owned(p) => Cow::Owned(p),
    };
    if !union_vertices.is_empty() {
        positions.to_mut().extend(union_vertices);
    }
    let groups = groups.into_iter().map(Cow::Owned).collect();
    Solid { volume, material_volumes, repairs, review, surface: Surface { positions, groups, areas: None } }
}

/// Triangles grouped into shells, with what each shell measures.
struct Shells<'a> {
    positions: Cow<'a, [[f64; 3]]>,
    triangles: Cow<'a, [[u32; 3]]>,
    materials: Cow<'a, [u32]>,
    /// Per triangle, its shell; `u32::MAX` for triangles in none.
    shell_of: Cow<'a, [u32]>,
    volume: Vec<f64>,
    closed: Vec<bool>,
    /// Per shell, its first triangle (whose material is the shell's).
    root: Vec<u32>,
}

fn signed_volume(p: &[[f64; 3]], t: [u32; 3]) -> f64 {
    let (a, b, c) = (p[t[0] as usize], p[t[1] as usize], p[t[2] as usize]);
    dot(a, cross(b, c)) / 6.0
}

// ---------------------------------------------------------------------------------------------------------------
// Repair

/// Every undirected edge's half-edges, sorted by edge: `(lower << 32 | upper, triangle · 3 + corner)`.
fn half_edges(triangles: &[[u32; 3]]) -> Vec<(u64, u32)> {
    let mut h: Vec<(u64, u32)> = triangles
        .par_iter()
        .enumerate()
        .flat_map_iter(|(t, tri)| {
            (0..3).map(move |e| {
                let (a, b) = (tri[e], tri[(e + 1) % 3]);
                (u64::from(a.min(b)) << 32 | u64::from(a.max(b)), (t * 3 + e) as u32)
            })
        })
        .collect();
    h.par_sort_unstable();
    h
}

/// Whether half-edge `h` runs from the edge's lower vertex to its upper.
fn forward(triangles: &[[u32; 3]], h: u32) -> bool {
    let (t, e) = ((h / 3) as usize, (h % 3) as usize);
    triangles[t][e] < triangles[t][(e + 1) % 3]
}

fn groups(h: &[(u64, u32)]) -> impl Iterator<Item = &[(u64, u32)]> {
    h.chunk_by(|a, b| a.0 == b.0)
}

fn repair(
    positions: &[[f64; 3]],
    triangles: &[[u32; 3]],
    materials: &[u32],
    tolerance: f64,
    repairs: &mut Repairs,
    review: &mut Vec<Warning>,
) -> Shells<'static> {
    let positions = positions.to_vec();
    let mut tris: Vec<[u32; 3]> = Vec::with_capacity(triangles.len());
    let mut mats: Vec<u32> = Vec::with_capacity(triangles.len());
    let material = |t: usize| materials.get(t).copied().unwrap_or(u32::MAX);

    // 1. Near-miss seams: only vertices on the rim of a hole move, only onto another rim vertex within the
    //    tolerance, and never onto a vertex they share a triangle with.
    let rep = weld_rims(&positions, triangles, tolerance, repairs);
    for (t, tri) in triangles.iter().enumerate() {
        let tri = tri.map(|v| rep[v as usize]);
        if tri[0] == tri[1] || tri[1] == tri[2] || tri[0] == tri[2] {
            repairs.degenerate_triangles_dropped += 1;
            continue;
        }
        tris.push(tri);
        mats.push(material(t));
    }

    // 2. Duplicates and exact reverses: triangles on the same three vertices.
    let mut keyed: Vec<(u128, bool, u32)> = tris
        .par_iter()
        .enumerate()
        .map(|(t, tri)| {
            let mut s = *tri;
            s.sort_unstable();
            // An even permutation of the sorted corners has the sorted winding.
            let even = (tri[0] == s[0] && tri[1] == s[1])
                || (tri[0] == s[1] && tri[1] == s[2])
                || (tri[0] == s[2] && tri[1] == s[0]);
            (u128::from(s[0]) << 64 | u128::from(s[1]) << 32 | u128::from(s[2]), even, t as u32)
        })
        .collect();
    keyed.par_sort_unstable();
    let mut keep = vec![true; tris.len()];
    for g in keyed.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        let even: Vec<u32> = g.iter().filter(|x| x.1).map(|x| x.2).collect();
        let odd: Vec<u32> = g.iter().filter(|x| !x.1).map(|x| x.2).collect();
        let pairs = even.len().min(odd.len());
        repairs.reversed_pairs_dropped += pairs as u64;
        let (more, fewer) = if even.len() >= odd.len() { (&even, &odd) } else { (&odd, &even) };
        for &t in fewer.iter().chain(&more[..pairs]) {
            keep[t as usize] = false;
        }
        let left = more.len() - pairs;
        if left > 1 {
            repairs.duplicate_triangles_dropped += left as u64 - 1;
            for &t in &more[pairs + 1..] {
                keep[t as usize] = false;
            }
        }
    }
    drop(keyed);
    if keep.iter().any(|k| !k) {
        let (t2, m2): (Vec<_>, Vec<_>) =
            tris.iter().zip(&mats).zip(&keep).filter(|(_, k)| **k).map(|(x, _)| (*x.0, *x.1)).unzip();
        tris = t2;
        mats = m2;
    }

    // 3. Winding: across every edge with exactly two triangles, the second must run the edge the other way.
    let mut h = half_edges(&tris);
    if reorient(&mut tris, &h, repairs, review) {
        // A turned triangle's corners moved, and with them which edge each of its half-edges names.
        h = half_edges(&tris);
    }

    // 4. Small holes: loops of boundary edges, each closed by a fan.
    let h = fill_holes(&positions, &mut tris, &mut mats, h, repairs);

    // 5. Shells: triangles joined where their edges pair up; around an edge with more than two triangles, each
    //    triangle pairs with its neighbour on the side its material lies.
    let (pairs, boundary, non_manifold) = pair_edges(&positions, &tris, &h);
    repairs.boundary_edges_left = boundary;
    repairs.non_manifold_edges_left = non_manifold;
    let mut uf = UnionFind::new(tris.len());
    let mut paired = vec![0u8; tris.len()];
    for &(a, b) in &pairs {
        uf.union(a / 3, b / 3);
        paired[(a / 3) as usize] += 1;
        paired[(b / 3) as usize] += 1;
    }
    let mut shell_id = vec![u32::MAX; tris.len()];
    let mut root = Vec::new();
    let shell_of: Vec<u32> = (0..tris.len() as u32)
        .map(|t| {
            let r = uf.find(t) as usize;
            if shell_id[r] == u32::MAX {
                shell_id[r] = root.len() as u32;
                root.push(t);
            }
            shell_id[r]
        })
        .collect();
    let mut closed = vec![true; root.len()];
    let mut volume = vec![0.0; root.len()];
    for (t, tri) in tris.iter().enumerate() {
        let s = shell_of[t] as usize;
        volume[s] += signed_volume(&positions, *tri);
        if paired[t] != 3 {
            closed[s] = false;
        }
    }
    Shells {
        positions: Cow::Owned(positions),
        triangles: Cow::Owned(tris),
        materials: Cow::Owned(mats),
        shell_of: Cow::Owned(shell_of),
        volume,
        closed,
        root,
    }
}

/// For every vertex, the vertex it becomes: rim vertices within `tolerance` of each other are one.
fn weld_rims(positions: &[[f64; 3]], triangles: &[[u32; 3]], tolerance: f64, repairs: &mut Repairs) -> Vec<u32> {
    let mut rep: Vec<u32> = (0..positions.len() as u32).collect();
    if tolerance <= 0.0 {
        return rep;
    }
    let valid: Vec<[u32; 3]> =
        triangles.iter().copied().filter(|t| t[0] != t[1] && t[1] != t[2] && t[0] != t[2]).collect();
    let h = half_edges(&valid);
    let mut rim: Vec<u32> = Vec::new();
    for g in groups(&h) {
        if g.len() == 1 {
            let e = g[0].0;
            rim.push((e >> 32) as u32);
            rim.push(e as u32);
        }
    }
    if rim.is_empty() {
        return rep;
    }
    rim.sort_unstable();
    rim.dedup();
    let on_rim: FxHashSet<u32> = rim.iter().copied().collect();
    // Pairs of rim vertices that share a triangle may never merge.
    let mut together: FxHashSet<(u32, u32)> = FxHashSet::default();
    for t in &valid {
        for e in 0..3 {
            let (a, b) = (t[e], t[(e + 1) % 3]);
            if on_rim.contains(&a) && on_rim.contains(&b) {
                together.insert((a.min(b), a.max(b)));
            }
        }
    }
    let cell = |p: [f64; 3]| p.map(|c| (c / tolerance).floor() as i64);
    let mut grid: FxHashMap<[i64; 3], Vec<u32>> = FxHashMap::default();
    for &v in &rim {
        grid.entry(cell(positions[v as usize])).or_default().push(v);
    }
    // Members of each class, by its representative (the lowest vertex).
    let mut members: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    let class = |rep: &[u32], mut v: u32| {
        while rep[v as usize] != v {
            v = rep[v as usize];
        }
        v
    };
    for &v in &rim {
        let p = positions[v as usize];
        let c = cell(p);
        let mut near: Vec<(f64, u32)> = Vec::new();
        for dx in -1..=1 {
            for dy in -1..=1 {
                for dz in -1..=1 {
                    // A cell crowded with rim vertices is no seam (the tolerance is coarse against the model's
                    // detail): nothing in it is welded, which also bounds the work.
                    if let Some(list) =
                        grid.get(&[c[0] + dx, c[1] + dy, c[2] + dz]).filter(|l| l.len() <= 4 * MAX_WELD_CLASS)
                    {
                        near.extend(list.iter().filter(|&&w| w < v).map(|&w| (dist2(positions[w as usize], p), w)));
                    }
                }
            }
        }
        // The nearest few within the tolerance: a seam joins a handful of rim vertices at one point, and this
        // bounds the work on a file whose rims all crowd into one place.
        near.retain(|(d, _)| *d <= tolerance * tolerance);
        near.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        near.truncate(MAX_WELD_CLASS);
        for (_, w) in near {
            let (a, b) = (class(&rep, v), class(&rep, w));
            if a == b {
                continue;
            }
            let ma = members.get(&a).cloned().unwrap_or_else(|| vec![a]);
            let mb = members.get(&b).cloned().unwrap_or_else(|| vec![b]);
            if ma.len() + mb.len() > MAX_WELD_CLASS
                || ma.iter().any(|&x| mb.iter().any(|&y| together.contains(&(x.min(y), x.max(y)))))
            {
                continue;
            }
            let (lo, hi) = (a.min(b), a.max(b));
            rep[hi as usize] = lo;
            members.remove(&a);
            members.remove(&b);
            members.insert(lo, ma.into_iter().chain(mb).collect());
            repairs.vertices_welded += 1;
        }
    }
    (0..rep.len() as u32).map(|v| class(&rep, v)).collect()
}

/// Makes every edge shared by exactly two triangles run opposite ways in them, turning the fewer triangles of
/// each patch so joined. Returns whether any triangle was turned.
fn reorient(tris: &mut [[u32; 3]], h: &[(u64, u32)], repairs: &mut Repairs, review: &mut Vec<Warning>) -> bool {
    // Neighbours across two-triangle edges, and whether they agree (run the edge opposite ways).
    let mut adj: Vec<Vec<(u32, bool)>> = vec![Vec::new(); tris.len()];
    for g in groups(h) {
        if let [(_, a), (_, b)] = *g {
            let agree = forward(tris, a) != forward(tris, b);
            adj[(a / 3) as usize].push((b / 3, agree));
            adj[(b / 3) as usize].push((a / 3, agree));
        }
    }
    let mut flip: Vec<Option<bool>> = vec![None; tris.len()];
    let mut conflicts = 0u64;
    let mut turned = 0u64;
    let mut stack = Vec::new();
    for start in 0..tris.len() {
        if flip[start].is_some() {
            continue;
        }
        let mut patch = Vec::new();
        flip[start] = Some(false);
        stack.push(start as u32);
        while let Some(t) = stack.pop() {
            patch.push(t);
            let ft = flip[t as usize] == Some(true);
            for &(n, agree) in &adj[t as usize] {
                let want = if agree { ft } else { !ft };
                match flip[n as usize] {
                    None => {
                        flip[n as usize] = Some(want);
                        stack.push(n);
                    }
                    Some(f) if f != want => conflicts += 1,
                    Some(_) => {}
                }
            }
        }
        let flipped = patch.iter().filter(|&&t| flip[t as usize] == Some(true)).count();
        let turn_flipped = flipped * 2 <= patch.len();
        for &t in &patch {
            if (flip[t as usize] == Some(true)) == turn_flipped {
                tris[t as usize].swap(1, 2);
                turned += 1;
            }
        }
    }
    repairs.triangles_reoriented += turned;
    if conflicts > 0 {
        review.push(Warning::new(
            "non_orientable",
            format!(
                "{} edges cannot be wound consistently (the surface has no inside, like a Möbius strip)",
                conflicts / 2
            ),
        ));
    }
    turned > 0
}

/// Closes holes of at most [`MAX_HOLE_EDGES`] edges with a fan; returns the half-edges of the repaired mesh.
fn fill_holes(
    positions: &[[f64; 3]],
    tris: &mut Vec<[u32; 3]>,
    mats: &mut Vec<u32>,
    h: Vec<(u64, u32)>,
    repairs: &mut Repairs,
) -> Vec<(u64, u32)> {
    // The hole runs each boundary half-edge backwards: from its end to its start.
    let mut next: FxHashMap<u32, (u32, u32)> = FxHashMap::default();
    let mut pinched: FxHashSet<u32> = FxHashSet::default();
    for g in groups(&h) {
        if let [(_, he)] = *g {
            let (t, e) = ((he / 3) as usize, (he % 3) as usize);
            let (a, b) = (tris[t][e], tris[t][(e + 1) % 3]);
            if next.insert(b, (a, t as u32)).is_some() {
                pinched.insert(b);
            }
        }
    }
    if next.is_empty() {
        return h;
    }
    // Triangles per part (joined by any shared edge): a hole is filled only in a part with more than twice as
    // many triangles as the hole has edges, so a lone triangle or a strip is never closed into a flat solid.
    let mut uf = UnionFind::new(tris.len());
    for g in groups(&h) {
        for w in g.windows(2) {
            uf.union(w[0].1 / 3, w[1].1 / 3);
        }
    }
    let mut part_size: FxHashMap<u32, usize> = FxHashMap::default();
    for t in 0..tris.len() as u32 {
        *part_size.entry(uf.find(t)).or_default() += 1;
    }
    let mut starts: Vec<u32> = next.keys().copied().collect();
    starts.sort_unstable();
    let mut seen: FxHashSet<u32> = FxHashSet::default();
    let mut added = false;
    for s in starts {
        if seen.contains(&s) {
            continue;
        }
        let mut lp = vec![s];
        let mut ok = !pinched.contains(&s);
        let mut v = s;
        loop {
            let Some(&(n, _)) = next.get(&v) else {
                ok = false;
                break;
            };
            if n == s {
                break;
            }
            if pinched.contains(&n) || lp.len() > MAX_HOLE_EDGES || seen.contains(&n) {
                ok = false;
                break;
            }
            lp.push(n);
            v = n;
        }
        seen.extend(lp.iter().copied());
        let rim_triangle = next[&s].1;
        if !ok || lp.len() < 3 || lp.len() > MAX_HOLE_EDGES || part_size[&uf.find(rim_triangle)] <= 2 * lp.len() {
            continue;
        }
        let material = mats[rim_triangle as usize];
        for i in 1..lp.len() - 1 {
            let t = [lp[0], lp[i], lp[i + 1]];
            let (a, b, c) = (positions[t[0] as usize], positions[t[1] as usize], positions[t[2] as usize]);
            repairs.hole_area_mm2 += 0.5 * norm(cross(sub(b, a), sub(c, a)));
            tris.push(t);
            mats.push(material);
            repairs.hole_triangles_added += 1;
        }
        repairs.holes_filled += 1;
        added = true;
    }
    if added {
        half_edges(tris)
    } else {
        h
    }
}

/// Pairs half-edges into the seams of closed shells. Returns the pairs, the boundary edges and the edges of
/// more than two triangles left with an unpaired half-edge.
fn pair_edges(p: &[[f64; 3]], tris: &[[u32; 3]], h: &[(u64, u32)]) -> (Vec<(u32, u32)>, u64, u64) {
    let mut pairs = Vec::with_capacity(h.len() / 2);
    let (mut boundary, mut non_manifold) = (0u64, 0u64);
    for g in groups(h) {
        match g.len() {
            1 => boundary += 1,
            2 => {
                if forward(tris, g[0].1) != forward(tris, g[1].1) {
                    pairs.push((g[0].1, g[1].1));
                } else {
                    non_manifold += 1;
                }
            }
            _ => {
                // Around the edge from its lower vertex `a` to its upper `b`, sorted by angle: a triangle that
                // runs a→b has its material on the side of smaller angle, one that runs b→a on the side of
                // larger; each b→a triangle pairs with the next one round, which must run a→b.
                let (a, b) = (((g[0].0) >> 32) as usize, (g[0].0 as u32) as usize);
                let d = normalize(sub(p[b], p[a]));
                let r = normalize(any_perpendicular(d));
                let s = cross(d, r);
                let mut around: Vec<(f64, u32, bool)> = g
                    .iter()
                    .map(|&(_, he)| {
                        let t = tris[(he / 3) as usize];
                        let c = t[(he as usize % 3 + 2) % 3] as usize;
                        let w = sub(p[c], p[a]);
                        (dot(w, s).atan2(dot(w, r)), he, forward(tris, he))
                    })
                    .collect();
                around.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
                let n = around.len();
                let mut used = vec![false; n];
                for i in 0..n {
                    let j = (i + 1) % n;
                    if !around[i].2 && around[j].2 && !used[i] && !used[j] {
                        used[i] = true;
                        used[j] = true;
                        pairs.push((around[i].1, around[j].1));
                    }
                }
                if used.iter().any(|u| !u) {
                    non_manifold += 1;
                }
            }
        }
    }
    (pairs, boundary, non_manifold)
}

struct UnionFind(Vec<u32>);

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind((0..n as u32).collect())
    }
    fn find(&mut self, mut x: u32) -> u32 {
        while self.0[x as usize] != x {
            let g = self.0[self.0[x as usize] as usize];
            self.0[x as usize] = g;
            x = g;
        }
        x
    }
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.0[hi as usize] = lo;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Measure

type Aabb = [[f64; 3]; 2];

fn overlap(a: &Aabb, b: &Aabb) -> bool {
    (0..3).all(|i| a[0][i] <= b[1][i] && b[0][i] <= a[1][i])
}

fn merge_box(a: &Aabb, b: &Aabb) -> Aabb {
    [std::array::from_fn(|i| a[0][i].min(b[0][i])), std::array::from_fn(|i| a[1][i].max(b[1][i]))]
}

/// A part of the solid: closed shells not yet unioned (a solid and the cavities inside it), or a union made.
struct Piece {
    bbox: Aabb,
    volume: f64,
    body: Body,
}

enum Body {
    /// Shell ids, the first the outer shell.
    Shells(Vec<u32>),
    Union(Box<Manifold>),
}

/// The solid's volume, its materials' volumes, and its surface: per material group, the outward triangles of
/// the material's solid, on the shells' positions followed by the unions' new vertices (returned second).
type Measured = (f64, Vec<f64>, Vec<Vec<[u32; 3]>>, Vec<[f64; 3]>);

fn measure(s: &Shells<'_>, n_materials: usize, repairs: &mut Repairs, review: &mut Vec<Warning>) -> Measured {
    let n = s.volume.len();
    // Triangles of each shell, in order.
    let mut start = vec![0u32; n + 1];
    for &sh in s.shell_of.iter() {
        if sh != u32::MAX {
            start[sh as usize + 1] += 1;
        }
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut order = vec![0u32; start[n] as usize];
    for (t, &sh) in s.shell_of.iter().enumerate() {
        if sh != u32::MAX {
            order[fill[sh as usize] as usize] = t as u32;
            fill[sh as usize] += 1;
        }
    }
    let shell_tris = |sh: usize| &order[start[sh] as usize..start[sh + 1] as usize];
    let bbox: Vec<Aabb> = (0..n)
        .into_par_iter()
        .map(|sh| {
            let mut b = [[f64::INFINITY; 3], [f64::NEG_INFINITY; 3]];
            for &t in shell_tris(sh) {
                for &v in &s.triangles[t as usize] {
                    let q = s.positions[v as usize];
                    for i in 0..3 {
                        b[0][i] = b[0][i].min(q[i]);
                        b[1][i] = b[1][i].max(q[i]);
                    }
                }
            }
            b
        })
        .collect();

    // Inward shells: cavities when inside an outward shell, turned outward otherwise. Open shells count as
    // their volume's size, and are already flagged for review.
    // An open shell's volume about its own centroid: independent of where the model sits, and nothing for a
    // lone triangle or a flat sheet.
    let mut shell_volume = s.volume.clone();
    for sh in (0..n).filter(|&sh| !s.closed[sh]) {
        let tris = shell_tris(sh);
        let mut c = [0.0; 3];
        for &t in tris {
            let q = centroid(&s.positions, s.triangles[t as usize]);
            c = std::array::from_fn(|i| c[i] + q[i]);
        }
        let c = c.map(|v| v / tris.len().max(1) as f64);
        shell_volume[sh] = tris
            .iter()
            .map(|&t| {
                let [a, b, d] = s.triangles[t as usize].map(|v| sub(s.positions[v as usize], c));
                dot(a, cross(b, d)) / 6.0
            })
            .sum();
    }
    let mut sign = vec![1.0f64; n];
    let mut cavity_of = vec![u32::MAX; n];
    for sh in 0..n {
        if shell_volume[sh] >= 0.0 {
            continue;
        }
        if !s.closed[sh] {
            sign[sh] = -1.0;
            continue;
        }
        let t = s.triangles[shell_tris(sh)[0] as usize];
        let q = centroid(&s.positions, t);
        let container = (0..n).find(|&o| {
            o != sh
                && s.closed[o]
                && shell_volume[o] > 0.0
                && inside_box(&bbox[o], bbox[sh][0])
                && inside_box(&bbox[o], bbox[sh][1])
                && winding(&s.positions, &s.triangles, shell_tris(o), q) > 0.5
        });
        match container {
            Some(o) => {
                cavity_of[sh] = o as u32;
                repairs.cavities += 1;
            }
            None => {
                sign[sh] = -1.0;
                repairs.shells_turned_outward += 1;
            }
        }
    }

    let material_of = |sh: usize| s.materials.get(s.root[sh] as usize).copied().unwrap_or(u32::MAX);
    // Pieces per material (one group for a file without materials): each outer shell with its cavities.
    let groups = n_materials.max(1);
    let mut pieces: Vec<Vec<Piece>> = (0..groups).map(|_| Vec::new()).collect();
    let mut loose = Vec::new();
    let mut cavities: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for (sh, &c) in cavity_of.iter().enumerate() {
        if c != u32::MAX {
            cavities.entry(c).or_default().push(sh as u32);
        }
    }
    for sh in 0..n {
        if cavity_of[sh] != u32::MAX {
            continue;
        }
        let mut ids = vec![sh as u32];
        let mut volume = sign[sh] * shell_volume[sh];
        if let Some(c) = cavities.get(&(sh as u32)) {
            ids.extend(c);
            volume += c.iter().map(|&c| shell_volume[c as usize]).sum::<f64>();
        }
        let piece = Piece { bbox: bbox[sh], volume, body: Body::Shells(ids) };
        if !s.closed[sh] {
            loose.push((material_of(sh), piece));
            continue;
        }
        let m = material_of(sh) as usize;
        if n_materials == 0 {
            pieces[0].push(piece);
        } else if m < n_materials {
            pieces[m].push(piece);
        } else {
            loose.push((u32::MAX, piece));
        }
    }

    let mesh_of = |ids: &[u32]| -> Manifold {
        let mut map: FxHashMap<u32, u64> = FxHashMap::default();
        let mut vert = Vec::new();
        let mut tri = Vec::new();
        for &sh in ids {
            let flip = sign[sh as usize] < 0.0;
            for &t in shell_tris(sh as usize) {
                let mut c = s.triangles[t as usize];
                if flip {
                    c.swap(1, 2);
                }
                for v in c {
                    let id = *map.entry(v).or_insert_with(|| {
                        vert.extend_from_slice(&s.positions[v as usize]);
                        (vert.len() / 3 - 1) as u64
                    });
                    tri.push(id);
                }
            }
        }
        Manifold::from_mesh_gl64(&MeshGL64 {
            num_prop: 3,
            vert_properties: vert,
            tri_verts: tri,
            ..MeshGL64::default()
        })
    };
    let mut failed = 0usize;
    let mut material_volumes = vec![0.0; n_materials];
    let mut all = Vec::new();
    let mut surface: Vec<Vec<[u32; 3]>> = vec![Vec::new(); n_materials + 1];
    let mut union_vertices: Vec<[f64; 3]> = Vec::new();
    let mut add_surface = |group: usize, p: &Piece| match &p.body {
        Body::Shells(ids) => {
            for &sh in ids {
                let flip = sign[sh as usize] < 0.0;
                surface[group].extend(shell_tris(sh as usize).iter().map(|&t| {
                    let [a, b, c] = s.triangles[t as usize];
                    if flip {
                        [a, c, b]
                    } else {
                        [a, b, c]
                    }
                }));
            }
        }
        Body::Union(u) => {
            let mesh = u.get_mesh_glp::<f64, u32>(-1);
            let base = (s.positions.len() + union_vertices.len()) as u32;
            let np = (mesh.num_prop as usize).max(3);
            union_vertices.extend(mesh.vert_properties.chunks_exact(np).map(|v| [v[0], v[1], v[2]]));
            surface[group].extend(mesh.tri_verts.chunks_exact(3).map(|t| [base + t[0], base + t[1], base + t[2]]));
        }
    };
    for (m, group) in pieces.into_iter().enumerate() {
        let merged = union_overlapping(group, &mesh_of, &mut failed);
        if m < n_materials {
            material_volumes[m] = merged.iter().map(|p| p.volume).sum();
        }
        for p in &merged {
            add_surface(m, p);
        }
        all.extend(merged);
    }
    let loose_volume: f64 = loose.iter().map(|(_, p)| p.volume).sum();
    for (m, p) in &loose {
        if let Some(v) = material_volumes.get_mut(*m as usize) {
            *v += p.volume;
        }
        add_surface((*m as usize).min(n_materials), p);
    }
    let volume = if n_materials > 1 {
        union_overlapping(all, &mesh_of, &mut failed).iter().map(|p| p.volume).sum::<f64>()
    } else {
        all.iter().map(|p| p.volume).sum::<f64>()
    } + loose_volume;
    if failed > 0 {
        review.push(Warning::new(
            "union_failed",
            format!(
                "{failed} groups of overlapping shells could not be unioned (a shell is not a manifold solid); \
                 their volumes were added, overlaps counted twice"
            ),
        ));
    }
    (volume, material_volumes, surface, union_vertices)
}

/// Unions the pieces whose bounding boxes overlap (transitively); pieces apart are returned as they are.
fn union_overlapping(
    mut pieces: Vec<Piece>,
    mesh_of: &(dyn Fn(&[u32]) -> Manifold + Sync),
    failed: &mut usize,
) -> Vec<Piece> {
    if pieces.len() < 2 {
        return pieces;
    }
    // Clusters by a sweep along x.
    let mut idx: Vec<usize> = (0..pieces.len()).collect();
    idx.sort_by(|&a, &b| pieces[a].bbox[0][0].total_cmp(&pieces[b].bbox[0][0]).then(a.cmp(&b)));
    let mut uf = UnionFind::new(pieces.len());
    for (k, &i) in idx.iter().enumerate() {
        for &j in &idx[k + 1..] {
            if pieces[j].bbox[0][0] > pieces[i].bbox[1][0] {
                break;
            }
            if overlap(&pieces[i].bbox, &pieces[j].bbox) {
                uf.union(i as u32, j as u32);
            }
        }
    }
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    let mut cluster_of: FxHashMap<u32, usize> = FxHashMap::default();
    for i in 0..pieces.len() {
        let r = uf.find(i as u32);
        let c = *cluster_of.entry(r).or_insert_with(|| {
            clusters.push(Vec::new());
            clusters.len() - 1
        });
        clusters[c].push(i);
    }
    if clusters.len() == pieces.len() {
        return pieces;
    }
    let mut slots: Vec<Option<Piece>> = pieces.drain(..).map(Some).collect();
    let work: Vec<Vec<Piece>> = clusters
        .iter()
        .map(|c| c.iter().map(|&i| slots[i].take().expect("each piece in one cluster")).collect())
        .collect();
    let done: Vec<(Vec<Piece>, bool)> = work
        .into_par_iter()
        .map(|cluster| {
            if cluster.len() == 1 {
                return (cluster, false);
            }
            let bbox = cluster.iter().skip(1).fold(cluster[0].bbox, |b, p| merge_box(&b, &p.bbox));
            // The kernel is a port under active development: should it panic on some input, this model's union
            // fails (and says so), not the worker.
            let union = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let manifolds: Vec<Manifold> = cluster
                    .iter()
                    .map(|p| match &p.body {
                        Body::Shells(ids) => mesh_of(ids),
                        Body::Union(m) => (**m).clone(),
                    })
                    .collect();
                if manifolds.iter().any(|m| m.status() != ManifoldError::NoError) {
                    return None;
                }
                let u = tree_union(manifolds);
                (u.status() == ManifoldError::NoError && u.volume().is_finite()).then_some(u)
            }));
            match union {
                Ok(Some(u)) => (vec![Piece { bbox, volume: u.volume(), body: Body::Union(Box::new(u)) }], false),
                _ => (cluster, true),
            }
        })
        .collect();
    let mut out = Vec::new();
    for (p, f) in done {
        *failed += usize::from(f);
        out.extend(p);
    }
    out
}

/// Unions in a balanced tree: each result is unioned with one of about its size.
fn tree_union(mut layer: Vec<Manifold>) -> Manifold {
    while layer.len() > 1 {
        // Pairs are fixed by position, so the result does not depend on the thread count.
        layer = layer
            .par_chunks(2)
            .map(|pair| match pair {
                [a, b] => a.union(b),
                [a] => a.clone(),
                _ => Manifold::empty(),
            })
            .collect();
    }
    layer.pop().unwrap_or_else(Manifold::empty)
}

fn inside_box(b: &Aabb, q: [f64; 3]) -> bool {
    (0..3).all(|i| b[0][i] <= q[i] && q[i] <= b[1][i])
}

fn centroid(p: &[[f64; 3]], t: [u32; 3]) -> [f64; 3] {
    let (a, b, c) = (p[t[0] as usize], p[t[1] as usize], p[t[2] as usize]);
    std::array::from_fn(|i| (a[i] + b[i] + c[i]) / 3.0)
}

/// The winding number of a closed shell around `q`: the solid angle its triangles subtend, over 4π
/// (Van Oosterom and Strackee). About 1 inside an outward shell, 0 outside.
fn winding(p: &[[f64; 3]], tris: &[[u32; 3]], shell: &[u32], q: [f64; 3]) -> f64 {
    let mut total = 0.0;
    for &t in shell {
        let [i, j, k] = tris[t as usize];
        let (a, b, c) = (sub(p[i as usize], q), sub(p[j as usize], q), sub(p[k as usize], q));
        let (la, lb, lc) = (norm(a), norm(b), norm(c));
        let num = dot(a, cross(b, c));
        let den = la * lb * lc + dot(a, b) * lc + dot(b, c) * la + dot(c, a) * lb;
        total += 2.0 * num.atan2(den);
    }
    total / (4.0 * PI)
}

/// A unit vector perpendicular to unit `d`.
pub(crate) fn unit_perpendicular(d: [f64; 3]) -> [f64; 3] {
    normalize(any_perpendicular(d))
}

fn any_perpendicular(d: [f64; 3]) -> [f64; 3] {
    if d[0].abs() < 0.6 {
        cross(d, [1.0, 0.0, 0.0])
    } else {
        cross(d, [0.0, 1.0, 0.0])
    }
}

fn dist2(a: [f64; 3], b: [f64; 3]) -> f64 {
    let d = sub(a, b);
    dot(d, d)
}

fn normalize(a: [f64; 3]) -> [f64; 3] {
    let n = norm(a);
    if n > 0.0 {
        a.map(|c| c / n)
    } else {
        a
    }
}
