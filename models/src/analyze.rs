//! Measuring a mesh: volume, area, bounding box, and the topology that says whether the volume can be trusted.

use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::mesh::{Format, Mesh};
use crate::solid::{solid, CleanShells, Repairs};
use crate::thickness::Thickness;
use crate::units::{implausible_size_hint, Units};

/// Triangles or vertices handled by one task. Fixed, so that floating-point sums are added in the same order
/// whatever the number of threads.
const CHUNK: usize = 1 << 14;

/// Something usable but imperfect about a model, in plain words, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Warning {
    pub code: String,
    pub message: String,
}

impl Warning {
    pub fn new(code: &str, message: impl Into<String>) -> Warning {
        Warning { code: code.to_owned(), message: message.into() }
    }
}

/// An axis-aligned bounding box in millimetres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BBox {
    pub min: [f64; 3],
    pub max: [f64; 3],
    pub size: [f64; 3],
}

/// Volume and area of the triangles that carry one material (glTF).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaterialReport {
    pub name: String,
    pub triangles: u64,
    /// Shells whose first triangle carries this material: for a gem material, the number of stones.
    pub shells: u64,
    pub volume_mm3: f64,
    /// The volume of this material's solid: its shells repaired and unioned (see [`Report::solid_volume_mm3`]).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub solid_volume_mm3: f64,
    pub area_mm2: f64,
    /// The walls of this material's solid (measured on its own: a stone does not thicken the metal around it).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub thickness: Option<Thickness>,
}

/// What a model measures. Field names are the API of every result that carries geometry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub format: Option<Format>,
    pub units: Option<Units>,
    /// Signed volume: the sum of the tetrahedra from the origin to every triangle. Negative when the mesh is
    /// inside out; meaningful only when the mesh is watertight and consistently wound.
    pub volume_mm3: f64,
    /// The volume of the solid the file describes: shells repaired (see `repairs`), inward shells turned
    /// outward unless they are cavities inside another shell, overlapping shells unioned so that an overlap
    /// counts once. The volume to price.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub solid_volume_mm3: f64,
    pub area_mm2: f64,
    pub bbox_mm: BBox,
    pub triangles: u64,
    /// Vertices after welding bit-identical positions.
    pub vertices: u64,
    /// Connected components, triangles joined by shared edges.
    pub shells: u64,
    /// Edges used by exactly one triangle: the rims of holes.
    pub boundary_edges: u64,
    /// Edges used by more than two triangles.
    pub non_manifold_edges: u64,
    /// Edges shared by two triangles that run along it in the same direction: one of them faces the wrong way.
    pub inconsistent_edges: u64,
    /// Triangles with two corners on one vertex or with (relative to their size) zero area.
    pub degenerate_triangles: u64,
    /// Closed shells (no boundary edge) whose volume is negative: inside out.
    pub inverted_shells: u64,
    /// No boundary and no non-manifold edges.
    pub watertight: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub materials: Vec<MaterialReport>,
    pub warnings: Vec<Warning>,
    /// What was repaired before the solid volume was measured, and what is left.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub repairs: Repairs,
    /// The solid volume cannot be trusted even after repair; `review` says why. Route such a model to a person.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub needs_review: bool,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub review: Vec<Warning>,
    /// Wall thickness of the solid (each material measured on its own solid), for castability. None for a
    /// model with no area.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub thickness: Option<Thickness>,
}

/// Measures a mesh. The result does not depend on the number of threads rayon uses.
pub fn analyze(mesh: &Mesh) -> Report {
    let tris = &mesh.triangles;
    let pos = &mesh.positions;
    let topo = topology(pos.len(), tris);

    // One pass over triangles for every sum; the per-shell volumes come as runs of one shell, which keeps the
    // work per chunk small however many shells there are.
    let n_mat = mesh.materials.len();
    struct Sums {
        volume: f64,
        area: f64,
        degenerate: u64,
        materials: Vec<(u64, f64, f64)>,
        shell_runs: Vec<(u32, f64)>,
    }
    // A mesh of one clean shell is its solid's surface as it is (or turned outward, which keeps every area): the
    // wall-thickness pass places its points by these triangles' areas, kept here (in f32, as it keeps them)
    // rather than computed again (the shuffled 2M-triangle band, instrumented: that pass's areas and points
    // 9.5-10.7 -> 3.9-4.7 ms, this pass unchanged at 11.3-11.7).
    let one_clean_shell = topo.shells == 1 && topo.boundary == 0 && topo.non_manifold == 0 && topo.inconsistent == 0;
    let mut areas = vec![0.0f32; if one_clean_shell { tris.len() } else { 0 }];
    let sums = |range: Range<usize>, areas: &mut [f32]| {
        let start = range.start;
        let mut s = Sums {
            volume: 0.0,
            area: 0.0,
            degenerate: 0,
            materials: vec![(0, 0.0, 0.0); n_mat],
            shell_runs: Vec::new(),
        };
        for t in range {
            let [i, j, k] = tris[t];
            let (a, b, c) = (pos[i as usize], pos[j as usize], pos[k as usize]);
            let vol = dot(a, cross(b, c)) / 6.0;
            let e1 = sub(b, a);
            let e2 = sub(c, a);
            let twice_area = norm(cross(e1, e2));
            let area = 0.5 * twice_area;
            let longest = dot(e1, e1).max(dot(e2, e2)).max(dot(sub(c, b), sub(c, b)));
            if i == j || j == k || i == k || twice_area <= 1e-12 * longest {
                s.degenerate += 1;
            }
            s.volume += vol;
            s.area += area;
            if let Some(a) = areas.get_mut(t - start) {
                *a = area as f32;
            }
            if let Some(&m) = mesh.triangle_materials.get(t) {
                if let Some(acc) = s.materials.get_mut(m as usize) {
                    acc.0 += 1;
                    acc.1 += vol;
                    acc.2 += area;
                }
            }
            let shell = topo.shell_of[t];
            if shell != u32::MAX {
                match s.shell_runs.last_mut() {
                    Some((last, sum)) if *last == shell => *sum += vol,
                    _ => s.shell_runs.push((shell, vol)),
                }
            }
        }
        s
    };
    let chunks: Vec<Sums> = if one_clean_shell {
        areas.par_chunks_mut(CHUNK).enumerate().map(|(c, out)| sums(c * CHUNK..c * CHUNK + out.len(), out)).collect()
    } else {
        chunked(tris.len(), |range| sums(range, &mut []))
    };

    let mut volume = 0.0;
    let mut area = 0.0;
    let mut degenerate = 0;
    let mut materials = vec![(0u64, 0.0f64, 0.0f64); n_mat];
    let mut shell_volume = vec![0.0f64; topo.shells];
    for s in chunks {
        volume += s.volume;
        area += s.area;
        degenerate += s.degenerate;
        for (acc, m) in materials.iter_mut().zip(s.materials) {
            acc.0 += m.0;
            acc.1 += m.1;
            acc.2 += m.2;
        }
        for (shell, v) in s.shell_runs {
            shell_volume[shell as usize] += v;
        }
    }
    let closed_shells = topo.shell_open.iter().filter(|open| !**open).count();
    let inverted_shells =
        shell_volume.iter().zip(&topo.shell_open).filter(|(v, open)| !**open && **v < 0.0).count() as u64;

    let mut material_shells = vec![0u64; n_mat];
    for &root in &topo.shell_roots {
        if let Some(&m) = mesh.triangle_materials.get(root as usize) {
            if let Some(c) = material_shells.get_mut(m as usize) {
                *c += 1;
            }
        }
    }

    let bbox = bounding_box(pos, tris);
    let watertight = !tris.is_empty() && topo.boundary == 0 && topo.non_manifold == 0;
    let clean = watertight && topo.inconsistent == 0;
    let solid = solid(
        pos,
        tris,
        &mesh.triangle_materials,
        n_mat,
        area,
        clean.then_some(CleanShells { shell_of: &topo.shell_of, volume: &shell_volume, roots: &topo.shell_roots }),
        one_clean_shell.then_some(&areas[..]),
    );
    let (thickness, mut material_thickness) = crate::thickness::measure(&solid.surface);

    let mut report = Report {
        format: mesh.format,
        units: mesh.units,
        volume_mm3: volume,
        solid_volume_mm3: solid.volume,
        area_mm2: area,
        bbox_mm: bbox,
        triangles: tris.len() as u64,
        vertices: pos.len() as u64,
        shells: topo.shells as u64,
        boundary_edges: topo.boundary,
        non_manifold_edges: topo.non_manifold,
        inconsistent_edges: topo.inconsistent,
        degenerate_triangles: degenerate,
        inverted_shells,
        watertight,
        materials: mesh
            .materials
            .iter()
            .zip(materials)
            .zip(material_shells)
            .zip(&solid.material_volumes)
            .enumerate()
            .map(|(m, (((name, (triangles, volume_mm3, area_mm2)), shells), &solid_volume_mm3))| MaterialReport {
                name: name.clone(),
                triangles,
                shells,
                volume_mm3,
                solid_volume_mm3,
                area_mm2,
                thickness: material_thickness.get_mut(m).and_then(Option::take),
            })
            .collect(),
        warnings: mesh.warnings.clone(),
        repairs: solid.repairs,
        needs_review: false,
        review: solid.review,
        thickness,
    };
    add_warnings(&mut report, closed_shells);
    if tris.is_empty() {
        report.review.push(Warning::new("empty", "the model has no triangles"));
    }
    if let Some(w) = report.warnings.iter().find(|w| w.code == "implausible_size") {
        let w = w.clone();
        report.review.push(w);
    }
    report.needs_review = !report.review.is_empty();
    report
}

fn add_warnings(r: &mut Report, closed_shells: usize) {
    let w = &mut r.warnings;
    if !r.watertight && r.triangles > 0 {
        let mut what = Vec::new();
        if r.boundary_edges > 0 {
            what.push(format!("{} boundary edges (holes)", r.boundary_edges));
        }
        if r.non_manifold_edges > 0 {
            what.push(format!("{} non-manifold edges (shared by more than two triangles)", r.non_manifold_edges));
        }
        w.push(Warning::new(
            "not_watertight",
            format!(
                "the mesh is not closed: it has {}; its volume cannot be trusted until the model is repaired",
                what.join(" and ")
            ),
        ));
    }
    if r.inconsistent_edges > 0 {
        w.push(Warning::new(
            "inconsistent_winding",
            format!(
                "{} edges join triangles that face opposite ways; the volume cannot be trusted until the \
                 normals are made consistent",
                r.inconsistent_edges
            ),
        ));
    }
    if r.inverted_shells > 0 {
        w.push(Warning::new(
            "inverted_shells",
            format!(
                "{} of {} closed shells have negative volume: they are inside out, or cavities inside another shell",
                r.inverted_shells, closed_shells
            ),
        ));
    } else if r.volume_mm3 < 0.0 {
        w.push(Warning::new("negative_volume", "the total volume is negative: the model faces inwards (inside out)"));
    }
    if r.degenerate_triangles > 0 {
        w.push(Warning::new(
            "degenerate_triangles",
            format!("{} triangles have zero area (collinear or repeated corners)", r.degenerate_triangles),
        ));
    }
    if let Some(units) = r.units {
        let largest = r.bbox_mm.size.iter().copied().fold(0.0, f64::max);
        if r.triangles > 0 {
            if let Some(msg) = implausible_size_hint(largest, units) {
                w.push(Warning::new("implausible_size", msg));
            }
        }
    }
}

/// Edge and shell structure of a mesh.
struct Topology {
    boundary: u64,
    non_manifold: u64,
    inconsistent: u64,
    shells: usize,
    /// For every triangle, its shell, or `u32::MAX` for a triangle with repeated corners (it has no edges).
    shell_of: Vec<u32>,
    /// For every shell, whether it has a boundary edge.
    shell_open: Vec<bool>,
    /// For every shell, its lowest triangle index.
    shell_roots: Vec<u32>,
}

fn has_three_vertices(t: &[u32; 3]) -> bool {
    t[0] != t[1] && t[1] != t[2] && t[0] != t[2]
}

fn edges(t: &[u32; 3]) -> [(u32, u32); 3] {
    [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])]
}

/// Triangles up to which the topology pass runs in order on one thread: below this, the atomic counters and
/// lock-free joins of the parallel pass cost more than the work they share out (the 20,000-triangle band on one
/// rayon thread: about 1.0 ms in order against 1.3 ms for the parallel pass).
const IN_ORDER_TRIANGLES: usize = 1 << 16;

/// Most parts the parallel topology pass splits the triangles into: each has a counter a vertex (4 bytes each).
const MAX_PARTS: usize = 4;

/// Groups the three edges of every triangle by their undirected vertex pair: a compressed adjacency list from
/// each edge's lower vertex. Triangles that share an edge are joined with a union-find that always links the
/// higher root under the lower, so every shell's root is its lowest triangle. A large model is done in parallel
/// (atomic counters, a lock-free union-find), a small one in order; both give the same result.
fn topology(n_vertices: usize, tris: &[[u32; 3]]) -> Topology {
    assert!(tris.len() < (1 << 30), "triangle count is limited far below 2^30 by the parsers");
    if tris.len() <= IN_ORDER_TRIANGLES {
        topology_in_order(n_vertices, tris)
    } else {
        topology_parallel(n_vertices, tris)
    }
}

/// The edges found at one lower vertex, and the triangles left open by a boundary edge.
#[derive(Default)]
struct EdgeCounts {
    boundary: u64,
    non_manifold: u64,
    inconsistent: u64,
    open_triangles: Vec<u32>,
}

/// An adjacency entry (triangle `t`, edge `e`, as `t·4 + e`) as a sort key: (upper vertex, triangle, whether
/// the edge runs from lower to upper), so that sorting a vertex's entries groups them by edge.
#[inline]
fn edge_key(tris: &[[u32; 3]], x: u32) -> u64 {
    let (t, e) = ((x >> 2) as usize, (x & 3) as usize);
    let (a, b) = edges(&tris[t])[e];
    u64::from(a.max(b)) << 32 | (t as u64) << 1 | u64::from(a < b)
}

/// Counts the edges of one lower vertex (its entries' keys in `list`) and joins the triangles on each.
fn classify(list: &mut [u64], c: &mut EdgeCounts, mut join: impl FnMut(u32, u32)) {
    list.sort_unstable();
    for group in list.chunk_by(|x, y| x >> 32 == y >> 32) {
        let forward = group.iter().filter(|e| *e & 1 == 1).count();
        match group.len() {
            1 => {
                c.boundary += 1;
                c.open_triangles.push(((group[0] >> 1) & 0x7fff_ffff) as u32);
            }
            2 if forward != 1 => c.inconsistent += 1,
            2 => {}
            _ => c.non_manifold += 1,
        }
        let first = ((group[0] >> 1) & 0x7fff_ffff) as u32;
        for e in &group[1..] {
            join(first, ((e >> 1) & 0x7fff_ffff) as u32);
        }
    }
}

/// Shells numbered in the order of their roots (`roots[t]`: triangle `t`'s root, `u32::MAX` for one with
/// repeated corners), and the edge counts summed. `roots` becomes the shells' numbers in place: a root is never
/// above its triangles, so its number is known by the time its triangles are reached.
fn shells(mut roots: Vec<u32>, counts: Vec<EdgeCounts>) -> Topology {
    let mut shell_roots = Vec::new();
    for t in 0..roots.len() {
        let r = roots[t];
        roots[t] = if r == u32::MAX {
            u32::MAX
        } else if r as usize == t {
            shell_roots.push(r);
            (shell_roots.len() - 1) as u32
        } else {
            roots[r as usize]
        };
    }
    let shell_of = roots;

    let mut shell_open = vec![false; shell_roots.len()];
    let (mut boundary, mut non_manifold, mut inconsistent) = (0, 0, 0);
    for c in counts {
        boundary += c.boundary;
        non_manifold += c.non_manifold;
        inconsistent += c.inconsistent;
        for t in c.open_triangles {
            shell_open[shell_of[t as usize] as usize] = true;
        }
    }
    Topology { boundary, non_manifold, inconsistent, shells: shell_roots.len(), shell_of, shell_open, shell_roots }
}

fn topology_in_order(n_vertices: usize, tris: &[[u32; 3]]) -> Topology {
    let mut offsets = vec![0usize; n_vertices + 1];
    for t in tris.iter().filter(|t| has_three_vertices(t)) {
        for (a, b) in edges(t) {
            offsets[a.min(b) as usize + 1] += 1;
        }
    }
    for v in 0..n_vertices {
        offsets[v + 1] += offsets[v];
    }
    let mut cursor = offsets[..n_vertices].to_vec();
    let mut entries = vec![0u32; offsets[n_vertices]];
    for (t, tri) in tris.iter().enumerate().filter(|(_, t)| has_three_vertices(t)) {
        for (e, (a, b)) in edges(tri).into_iter().enumerate() {
            let slot = &mut cursor[a.min(b) as usize];
            entries[*slot] = (t as u32) << 2 | e as u32;
            *slot += 1;
        }
    }
    drop(cursor);

    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            let gp = parent[parent[x as usize] as usize];
            parent[x as usize] = gp;
            x = gp;
        }
        x
    }
    let mut parent: Vec<u32> = (0..tris.len() as u32).collect();
    let mut c = EdgeCounts::default();
    let mut list: Vec<u64> = Vec::new();
    for v in 0..n_vertices {
        list.clear();
        list.extend(entries[offsets[v]..offsets[v + 1]].iter().map(|&x| edge_key(tris, x)));
        classify(&mut list, &mut c, |a, b| {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            parent[ra.max(rb) as usize] = ra.min(rb);
        });
    }
    drop(entries);
    let roots = (0..tris.len())
        .map(|t| if has_three_vertices(&tris[t]) { find(&mut parent, t as u32) } else { u32::MAX })
        .collect();
    shells(roots, vec![c])
}

fn topology_parallel(n_vertices: usize, tris: &[[u32; 3]]) -> Topology {
    // The adjacency lists are built by parts of the triangles, one a thread (at most [`MAX_PARTS`]), each with a
    // counter a vertex of its own: no counter is shared, so no cache line of counters goes back and forth between
    // cores (counting with atomics cost twice as much on a file that lists the first triangle of every quad, then
    // the second: both threads met the same vertices at the same time), and each part reads only its own
    // triangles. A vertex's list holds part 0's entries, then part 1's, ...: in triangle order, the same whatever
    // the number of parts. Counts, then (summed) where each part's entries of the vertex start, then (filled)
    // where they end, so the last part's end where the vertex's list does; in u32: three edges a triangle, fewer
    // than 2^30 triangles.
    let parts = rayon::current_num_threads().clamp(1, MAX_PARTS);
    let per = tris.len().div_ceil(parts).max(1);
    let mut cursors: Vec<Vec<u32>> = tris
        .par_chunks(per)
        .map(|part| {
            let mut count = vec![0u32; n_vertices];
            for tri in part.iter().filter(|t| has_three_vertices(t)) {
                for (a, b) in edges(tri) {
                    count[a.min(b) as usize] += 1;
                }
            }
            count
        })
        .collect();
    let mut total = 0u32;
    for v in 0..n_vertices {
        for c in &mut cursors {
            (c[v], total) = (total, total + c[v]);
        }
    }
    // An entry is a triangle and which of its edges (t·4 + e); the edge's vertices are read back from the
    // triangle, which keeps the list at four bytes an edge. Parts write their entries to slots no other part
    // writes (relaxed atomic stores: plain stores on x86-64).
    let entries: Vec<AtomicU32> = (0..total).into_par_iter().map(|_| AtomicU32::new(0)).collect();
    tris.par_chunks(per).zip(cursors.par_iter_mut()).enumerate().for_each(|(p, (part, cursor))| {
        for (i, tri) in part.iter().enumerate().filter(|(_, t)| has_three_vertices(t)) {
            let t = (p * per + i) as u32;
            for (e, (a, b)) in edges(tri).into_iter().enumerate() {
                let slot = &mut cursor[a.min(b) as usize];
                entries[*slot as usize].store(t << 2 | e as u32, Relaxed);
                *slot += 1;
            }
        }
    });
    let end = cursors.pop().expect("the parallel pass runs on many triangles: one part at least");
    drop(cursors);

    let parent: Vec<AtomicU32> = (0..tris.len() as u32).map(AtomicU32::new).collect();
    let counts = chunked(n_vertices, |vertices| {
        let mut c = EdgeCounts::default();
        let mut list: Vec<u64> = Vec::new();
        for v in vertices {
            list.clear();
            let (from, to) = (if v == 0 { 0 } else { end[v - 1] as usize }, end[v] as usize);
            list.extend(entries[from..to].iter().map(|x| edge_key(tris, x.load(Relaxed))));
            classify(&mut list, &mut c, |a, b| union(&parent, a, b));
        }
        c
    });
    drop(entries);

    // Every triangle straight to its root, in place (what path compression does anyway).
    parent.par_iter().enumerate().for_each(|(t, p)| {
        let root = if has_three_vertices(&tris[t]) { find(&parent, t as u32) } else { u32::MAX };
        p.store(root, Relaxed);
    });
    shells(parent.into_iter().map(AtomicU32::into_inner).collect(), counts)
}

fn find(parent: &[AtomicU32], mut x: u32) -> u32 {
    loop {
        let p = parent[x as usize].load(Relaxed);
        if p == x {
            return x;
        }
        let gp = parent[p as usize].load(Relaxed);
        // Path halving, with a plain store and only where it shortens the path, not a locked exchange on every
        // step (one at the root too): on the 2M-triangle band, instrumented, sorting and joining the edges 32 -> 27
        // ms and the roots 7.3 -> 3.6 ms. A race is harmless: `x` is no longer a root, so no union writes its
        // parent, and whatever another thread stored there is, like `gp`, one of its ancestors, all lower-numbered
        // than it (a root is linked under a lower one), so no cycle can form; the loser only leaves a path a step
        // longer.
        if gp != p {
            parent[x as usize].store(gp, Relaxed);
        }
        x = gp;
    }
}

fn union(parent: &[AtomicU32], a: u32, b: u32) {
    loop {
        let (ra, rb) = (find(parent, a), find(parent, b));
        if ra == rb {
            return;
        }
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        if parent[hi as usize].compare_exchange(hi, lo, Relaxed, Relaxed).is_ok() {
            return;
        }
    }
}

fn bounding_box(pos: &[[f64; 3]], tris: &[[u32; 3]]) -> BBox {
    if tris.is_empty() || pos.is_empty() {
        return BBox { min: [0.0; 3], max: [0.0; 3], size: [0.0; 3] };
    }
    let (min, max) = bounds(pos);
    BBox { min, max, size: std::array::from_fn(|i| max[i] - min[i]) }
}

/// The lowest and highest coordinates of some points, in parallel (infinities for none). Compared with `<` and
/// `>`, which the compiler turns into the processor's min and max (`f64::min`, which must also pass over NaN, in
/// a fold took 4.8-5.4 ms over the 2M-triangle band's million vertices, instrumented; this 1.0-1.3 ms); the points
/// are finite.
pub(crate) fn bounds(points: &[[f64; 3]]) -> ([f64; 3], [f64; 3]) {
    let empty = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    chunked(points.len(), |range| {
        let (mut lo, mut hi) = empty;
        for p in &points[range] {
            for i in 0..3 {
                lo[i] = if p[i] < lo[i] { p[i] } else { lo[i] };
                hi[i] = if p[i] > hi[i] { p[i] } else { hi[i] };
            }
        }
        (lo, hi)
    })
    .into_iter()
    .fold(empty, |(a, b), (c, d)| {
        (
            std::array::from_fn(|i| if c[i] < a[i] { c[i] } else { a[i] }),
            std::array::from_fn(|i| if d[i] > b[i] { d[i] } else { b[i] }),
        )
    })
}

/// Runs `f` on fixed-size ranges of `0..n` in parallel and returns the results in order.
fn chunked<T: Send>(n: usize, f: impl Fn(Range<usize>) -> T + Sync + Send) -> Vec<T> {
    (0..n.div_ceil(CHUNK)).into_par_iter().map(|c| f(c * CHUNK..((c + 1) * CHUNK).min(n))).collect()
}

#[inline]
pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[inline]
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

#[inline]
pub(crate) fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-12 * b.abs(), "{a} != {b}");
    }

    use crate::synth::cube;

    #[test]
    fn topology_in_order_and_in_parallel_agree() {
        // A band with holes, a triangle repeated (non-manifold), one flipped, one degenerate, and a cube apart.
        let band = crate::synth::ring_band(9.45, 11.45, 5.0, 60, 20);
        let mut positions = band.positions.clone();
        let mut tris = band.triangles.clone();
        tris.remove(300);
        tris.remove(7);
        tris.push(tris[10]);
        tris[20].swap(1, 2);
        tris.push([0, 0, 1]);
        let base = positions.len() as u32;
        let c = cube(2.0);
        positions.extend(c.positions.iter().map(|p| [p[0] + 30.0, p[1], p[2]]));
        tris.extend(c.triangles.iter().map(|t| t.map(|v| v + base)));
        let a = topology_in_order(positions.len(), &tris);
        assert!(a.boundary > 0 && a.non_manifold > 0 && a.inconsistent > 0 && a.shells == 2, "the fixture has it all");
        // The parallel pass splits the triangles into one part a thread (up to MAX_PARTS): any number gives the same.
        for threads in [1, 2, 3, 7] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            let b = pool.install(|| topology_parallel(positions.len(), &tris));
            assert_eq!(
                (a.boundary, a.non_manifold, a.inconsistent, a.shells),
                (b.boundary, b.non_manifold, b.inconsistent, b.shells),
                "{threads} threads"
            );
            assert_eq!(a.shell_of, b.shell_of, "{threads} threads");
            assert_eq!(a.shell_open, b.shell_open, "{threads} threads");
            assert_eq!(a.shell_roots, b.shell_roots, "{threads} threads");
        }
    }

    #[test]
    fn closed_cube() {
        let r = analyze(&cube(2.0));
        assert_close(r.volume_mm3, 8.0);
        assert_close(r.area_mm2, 24.0);
        assert_eq!((r.triangles, r.vertices, r.shells), (12, 8, 1));
        assert_eq!((r.boundary_edges, r.non_manifold_edges, r.inconsistent_edges), (0, 0, 0));
        assert_eq!((r.degenerate_triangles, r.inverted_shells), (0, 0));
        assert!(r.watertight);
        assert_eq!(r.bbox_mm.size, [2.0; 3]);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn a_missing_triangle_leaves_three_boundary_edges() {
        let mut m = cube(2.0);
        m.triangles.pop();
        let r = analyze(&m);
        assert_eq!(r.boundary_edges, 3);
        assert!(!r.watertight);
        assert_eq!(r.warnings[0].code, "not_watertight");
    }

    #[test]
    fn one_flipped_triangle_makes_three_inconsistent_edges() {
        let mut m = cube(2.0);
        m.triangles[0].swap(1, 2);
        let r = analyze(&m);
        assert_eq!(r.inconsistent_edges, 3);
        assert!(r.watertight, "orientation does not open a mesh");
        assert!(r.warnings.iter().any(|w| w.code == "inconsistent_winding"));
    }

    #[test]
    fn an_inside_out_shell_is_counted() {
        let mut m = cube(2.0);
        let mut other = cube(1.0);
        other.flip_winding();
        let base = m.positions.len() as u32;
        m.positions.extend(other.positions.iter().map(|p| [p[0] + 5.0, p[1], p[2]]));
        m.triangles.extend(other.triangles.iter().map(|t| t.map(|v| v + base)));
        let r = analyze(&m);
        assert_eq!(r.shells, 2);
        assert_eq!(r.inverted_shells, 1);
        assert_close(r.volume_mm3, 7.0);
    }

    #[test]
    fn a_fin_on_an_edge_is_non_manifold() {
        let mut m = cube(2.0);
        // Two more triangles on the edge 0-1 (both directions so it stays balanced): an internal fin.
        m.positions.push([1.0, -1.0, -1.0]);
        m.triangles.push([0, 1, 8]);
        m.triangles.push([1, 0, 8]);
        let r = analyze(&m);
        assert_eq!(r.non_manifold_edges, 1);
        assert!(!r.watertight);
        assert_eq!(r.shells, 1);
    }

    #[test]
    fn repeated_corners_are_degenerate_and_have_no_edges() {
        let mut m = cube(2.0);
        m.triangles.push([0, 0, 1]);
        let r = analyze(&m);
        assert_eq!(r.degenerate_triangles, 1);
        assert!(r.watertight);
        assert_eq!(r.shells, 1);
    }
}
