//! Wall thickness: how thin the solid is, and where.
//!
//! Points are sampled over the solid's surface (each material's union, wound outward: [`crate::solid`]) with
//! equal area each, and a ray is cast from each along the inward normal of its triangle to where it leaves the
//! solid: the first triangle it meets from behind (a triangle facing along the ray), found through `parry3d`'s
//! bounding-volume hierarchy (its SIMD box test, `simd-stable`) and tested with Möller and Trumbore's ray-triangle
//! test (a corner and two edges, made from the indices as each triangle is tested). That distance is the wall
//! there; a ray that does not leave within
//! [`MAX_MEASURED_MM`] measures a wall "at least that thick".
//!
//! - Samples: the surface's area is cut into equal parts in triangle order (a sample where the running area
//!   passes the middle of each part), placed in their triangle by a low-discrepancy sequence, so a finely meshed
//!   region gets no more samples than a coarse one of the same area. One per [`SPACING_MM`]², at least
//!   [`MIN_SAMPLES`] and at most [`MAX_SAMPLES`]; the spacing is reported.
//! - Measured where it matters: every other point of the sequence everywhere (the coarse points: they share the
//!   surface evenly, and the percentiles are theirs), then every point within two spacings of a thin one, until no
//!   new thin one turns up. The median filter and the regions look no further than two spacings from a thin
//!   point, so they see what measuring every point would show them (a test holds the two to the same thin places
//!   on the known-answer models and the shared jewelry); a thick surface costs half the rays. A thin place is
//!   missed only when none of its coarse points is thin: two consecutive points lie side by side on a surface in
//!   mesh order, so a place of three points (the fewest a place has) always has one; on a file of shuffled
//!   triangles each point is coarse as by a coin, and a place of n points is missed about once in 2ⁿ.
//! - Robustness: each thin sample's wall is the median of the samples within two spacings of it that face within
//!   60° of it (itself included), so one ray grazing a sharp edge cannot set the minimum, and a thin wall must be
//!   wider than about two samples.
//! - Regions: a thin region grows from the thinnest sample not yet in one, over samples within two spacings
//!   (through the middle of the wall) at most 1.5 times as thick, or one spacing thicker; fewer than three
//!   samples is not a region.
//! - Walls and wires: from the middle of the rays of a region's three thinnest samples, four lines across the ray
//!   measure the solid's width; a cross-section less than [`WIRE_RATIO`] times as wide as it is thick is a wire
//!   (a prong, a filigree strand), otherwise a wall.
//! - Leaves of the hierarchies are runs of up to 8, 16 or 32 consecutive triangles ([`leaf_size`]: more on
//!   larger models with few rays a triangle; the solid's surface keeps the file's locality), which makes them
//!   that many times cheaper to build than one leaf a triangle. A run ends early where the order jumps (the next
//!   triangle would make its box [`LEAF_SPREAD`] times its triangles' own: a seam, a step of a Morton curve, one
//!   shell of a union to the next), so no leaf spans the model for every ray to open. The hierarchy is built
//!   over clusters of up to [`CLUSTER`] consecutive leaves (ended the same way): a ray that enters a cluster's
//!   box tests its leaves' boxes, then the triangles of the leaves it enters. One hierarchy per 262,144
//!   triangles, built in parallel. A file whose triangles are in no spatial order (its runs of a triangle or two,
//!   or too many on a line: [`coherent`]) has them sorted along a Morton curve first.
//!
//! Everything runs in a fixed order: the result does not depend on the thread count.

use std::borrow::Cow;

use parry3d::bounding_volume::{Aabb, BoundingVolume};
use parry3d::math::Vector;
use parry3d::partitioning::{Bvh, BvhBuildStrategy};
use parry3d::query::Ray;
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::analyze::{cross, dot, norm, sub};
use crate::mesh::{morton, morton_order, MORTON_CELLS};
use crate::solid::Surface;

/// Walls are measured up to this thickness; a thicker wall is simply thick.
pub const MAX_MEASURED_MM: f64 = 10.0;
/// Walls thinner than this are located as thin regions. Casting minimums above it cannot be checked.
pub const THIN_BELOW_MM: f64 = 1.5;
/// Samples are this far apart (one per 0.36 mm²), unless that makes fewer than [`MIN_SAMPLES`] or more than
/// [`MAX_SAMPLES`] on the model (all materials together).
pub const SPACING_MM: f64 = 0.6;
pub const MIN_SAMPLES: usize = 1_024;
pub const MAX_SAMPLES: usize = 16_384;
/// A thin place whose cross-section is less than this many times as wide as it is thick is a wire.
pub const WIRE_RATIO: f64 = 2.0;
/// Thin regions listed in a report (all of them are counted).
pub const MAX_REGIONS: usize = 10;

/// Most consecutive triangles under one leaf of the hierarchy: 8 up to 262,144 triangles; beyond, 16, or 32 on a
/// model of more than [`TRIANGLES_A_RAY_FOR_32`] triangles a ray. Larger leaves make fewer of them to build and
/// more triangles for each ray to test: on a 20,000-triangle band leaves of 8 build in half the time of 4s and
/// cast as fast, 16s cast a quarter slower; on a 2M-triangle model 16s build 4 times faster than 4s and cast as
/// fast, and 32s build in half the time of 16s (20 -> 10 ms) while each ray tests about three times as many
/// triangles (54 -> 155 on the benchmark band in mesh order: 2.6 -> 4.1 ms for its 1,050 rays). Those figures
/// are from before the hierarchy was built over [`CLUSTER`]s of leaves; since, leaves, clusters and hierarchy
/// take 15.1 ms with 16s and 12.3 with 32s on the shuffled 2M band (instrumented), the rays 2.1 and 2.3 ms.
fn leaf_size(triangles: usize, rays: usize) -> usize {
    if triangles > TRIANGLES_A_RAY_FOR_32 * rays {
        (triangles / 32_768).next_power_of_two().clamp(8, 32)
    } else {
        (triangles / 32_768).next_power_of_two().clamp(8, 16)
    }
}

/// Triangles a ray past which a large model gets leaves of 32: where the 10 ms the build saves on 2M triangles
/// (0.16 µs a leaf) is what the rays lose to testing about 100 more triangles each (14 ns a triangle), about
/// 7,000 rays (with clusters the build saves 3 ms: not tuned again).
const TRIANGLES_A_RAY_FOR_32: usize = 300;
/// Hits closer than this to a ray's origin are the surface it starts on.
const EPS_MM: f32 = 1e-5;
/// A region takes in neighbours up to this many times as thick as its thinnest place (or one sample spacing
/// thicker, whichever is more: walls closer than the sampling resolves are one).
const REGION_GROWTH: f64 = 1.5;
/// Fewest samples a thin region has.
const MIN_REGION_SAMPLES: usize = 3;
/// Thin samples of a region whose cross-section is measured (the thinnest), to call it a wall or a wire.
const CLASSIFY_PER_REGION: usize = 3;
/// Lines across a thin place's wall, evenly turned, whose narrowest is its cross-section's width.
const CROSS_LINES: usize = 4;
/// Regions (the thinnest) told apart as walls or wires: the listed ones, and more until both kinds are found;
/// thicker ones count as walls, whose minimums are the higher ones.
const CLASSIFIED_REGIONS: usize = 32;

/// Whether a thin place is a wall (thin in one direction) or a wire (thin in two: a prong, a strand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ThinKind {
    Wall,
    Wire,
}

/// A place thinner than [`THIN_BELOW_MM`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThinRegion {
    pub kind: ThinKind,
    /// The thinnest (median-filtered) wall in the region, mm.
    pub wall_mm: f64,
    /// Surface area of the region, mm².
    pub area_mm2: f64,
    /// The middle of the region: the mean of the midpoints of its samples' walls (inside the metal), mm.
    pub centre_mm: [f64; 3],
    /// The surface point where it is thinnest, mm: where to look.
    pub thinnest_at_mm: [f64; 3],
}

/// How thick the solid's walls are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Thickness {
    /// The thinnest wall or wire, mm (at most [`MAX_MEASURED_MM`]).
    pub min_wall_mm: f64,
    /// The thinnest place called a wall, and the thinnest called a wire, among the thin regions (none when
    /// nothing of that kind is thinner than 1.5 mm).
    pub thinnest_wall_mm: Option<f64>,
    pub thinnest_wire_mm: Option<f64>,
    /// Walls by area: 5 %, 25 % and 50 % of the surface is thinner than these, mm (of the points measured
    /// everywhere, which share the surface evenly).
    pub p5_mm: f64,
    pub p25_mm: f64,
    pub p50_mm: f64,
    /// Places thinner than 1.5 mm, thinnest first: at most 10, the thinnest wall and the thinnest wire always
    /// among them.
    pub thin_regions: Vec<ThinRegion>,
    /// All places thinner than 1.5 mm, listed or not.
    pub thin_region_count: u64,
    /// Points measured: every other one everywhere, and every one near a thin place.
    pub samples: u64,
    /// Distance between neighbouring samples, mm.
    pub sample_spacing_mm: f64,
    /// Walls thicker than this were not measured further, mm.
    pub max_measured_mm: f64,
}

/// One point on the surface and what was measured there.
#[derive(Debug, Clone, Copy)]
struct Sample {
    group: u32,
    point: [f64; 3],
    /// Inward unit normal.
    inward: [f64; 3],
    wall: f64,
    /// One of the points measured everywhere (every [`COARSE_STRIDE`]-th): the percentiles are theirs.
    coarse: bool,
}

/// A triangle as the ray test wants it: a corner and the two edges from it, in `f32` about the local origin
/// (made as each is tested: a copy of every triangle would be 36 bytes each, 72 MB of fresh pages on a
/// 2M-triangle model, for no faster a test).
#[derive(Debug, Clone, Copy)]
struct Packed {
    a: Vector,
    e1: Vector,
    e2: Vector,
}

impl Packed {
    fn new(vertices: &[Vector], t: [u32; 3]) -> Packed {
        let [a, b, c] = t.map(|v| vertices[v as usize]);
        Packed { a, e1: b - a, e2: c - a }
    }

    /// Where `ray` crosses this triangle from behind (the triangle faces along the ray), between [`EPS_MM`]
    /// and `limit`: Möller and Trumbore's test, whose determinant's sign is the facing (det = -normal · dir).
    #[inline]
    fn exit(&self, ray: &Ray, limit: f32) -> Option<f32> {
        let p = ray.dir.cross(self.e2);
        let det = self.e1.dot(p);
        // Facing against the ray, edge-on or degenerate: not where the ray leaves.
        if det >= 0.0 || !det.is_finite() {
            return None;
        }
        let inv = 1.0 / det;
        let s = ray.origin - self.a;
        let u = s.dot(p) * inv;
        if !(0.0..=1.0).contains(&u) {
            return None;
        }
        let q = s.cross(self.e1);
        let v = ray.dir.dot(q) * inv;
        if v < 0.0 || u + v > 1.0 {
            return None;
        }
        let t = self.e2.dot(q) * inv;
        (t > EPS_MM && t < limit).then_some(t)
    }
}

/// A group's triangles under a hierarchy of leaves of a few consecutive triangles, in `f32` about a local origin.
struct Caster<'a> {
    /// Every vertex of the surface, in `f32` about `origin` (shared by the groups).
    vertices: &'a [Vector],
    /// The group's triangles: as given, or along a Morton curve when the given order is not spatial.
    triangles: Cow<'a, [[u32; 3]]>,
    origin: [f64; 3],
    /// Where each leaf's run of triangles starts, and (last) where the last ends.
    starts: Vec<u32>,
    /// Each leaf's box.
    boxes: Vec<Aabb>,
    /// Where each cluster's run of leaves starts, and (last) where the last ends.
    clusters: Vec<u32>,
    /// A hierarchy of clusters per run of consecutive ones (its first cluster, its tree): built in parallel.
    parts: Vec<(usize, Bvh)>,
    /// Most triangles one ray tests ([`TRIANGLES_PER_RAY`], or [`LEAVES_PER_RAY`] leaves of the largest size).
    most_tested: usize,
}

/// A ray made ready for testing many boxes: its origin, and its direction's inverse as `parry3d`'s hierarchy
/// makes it for its own boxes (a component smaller than `f32::EPSILON` inverted as that, with its sign).
struct BoxRay {
    origin: Vector,
    inverse: Vector,
}

impl BoxRay {
    fn new(ray: &Ray) -> BoxRay {
        let inverse = ray.dir.map(|d| if d.abs() < f32::EPSILON { d.signum() / f32::EPSILON } else { 1.0 / d });
        BoxRay { origin: ray.origin, inverse }
    }

    /// Whether the ray enters `b` by `limit` (the slab test of `parry3d`'s hierarchy).
    #[inline]
    fn meets(&self, b: &Aabb, limit: f32) -> bool {
        let (t1, t2) = ((b.mins - self.origin) * self.inverse, (b.maxs - self.origin) * self.inverse);
        let (near, far) = (t1.min(t2).max_element(), t1.max(t2).min_element());
        far >= near && far >= 0.0 && near <= limit
    }
}

fn local(origin: [f64; 3], p: [f64; 3]) -> Vector {
    Vector::new((p[0] - origin[0]) as f32, (p[1] - origin[1]) as f32, (p[2] - origin[2]) as f32)
}

impl Caster<'_> {
    fn local(&self, p: [f64; 3]) -> Vector {
        local(self.origin, p)
    }

    /// Distance from `from` along unit `dir` to where the solid is left (the nearest triangle facing along
    /// the ray), up to `max`.
    fn exit(&self, from: [f64; 3], dir: [f64; 3], max: f64) -> Option<f64> {
        use std::cell::Cell;
        let ray = Ray::new(self.local(from), Vector::new(dir[0] as f32, dir[1] as f32, dir[2] as f32));
        let into_box = BoxRay::new(&ray);
        let mut best: Option<f32> = None;
        let tested = Cell::new(0usize);
        // The nearest real exit, kept apart from what the traversal is told once the ray has tested its share.
        let nearest: Cell<Option<f32>> = Cell::new(None);
        for (start, bvh) in &self.parts {
            let limit = best.unwrap_or(max as f32);
            let hit = bvh.cast_ray(&ray, limit, |cluster, best| {
                if tested.get() >= self.most_tested {
                    // A hit at the ray's origin prunes every box still queued: the traversal ends here. It is
                    // not a wall: `nearest` holds the answer.
                    return Some(f32::MIN_POSITIVE);
                }
                let cluster = start + cluster as usize;
                let mut hit: Option<f32> = None;
                for leaf in self.clusters[cluster] as usize..self.clusters[cluster + 1] as usize {
                    if tested.get() >= self.most_tested || !into_box.meets(&self.boxes[leaf], hit.unwrap_or(best)) {
                        continue;
                    }
                    let (first, last) = (self.starts[leaf] as usize, self.starts[leaf + 1] as usize);
                    tested.set(tested.get() + (last - first));
                    for &t in &self.triangles[first..last] {
                        if let Some(toi) = Packed::new(self.vertices, t).exit(&ray, hit.unwrap_or(best)) {
                            hit = Some(toi);
                        }
                    }
                }
                if let Some(h) = hit {
                    nearest.set(Some(nearest.get().map_or(h, |n| n.min(h))));
                }
                hit
            });
            if tested.get() >= self.most_tested {
                return nearest.get().map(f64::from);
            }
            if let Some((_, toi)) = hit {
                best = Some(toi);
            }
        }
        best.map(f64::from)
    }
}

/// Most triangles one ray tests. A ray through a sound surface tests a few dozen: its hierarchy's boxes are
/// small. A surface of long slivers crumpled into a small box (fuzzing found a ring rewritten to 377,000 mm²
/// inside 24 mm) makes every box cross every ray, and each ray would test most of the model; there the nearest
/// exit among the first this many is taken.
const TRIANGLES_PER_RAY: usize = 1024;
/// ... or this many of the largest leaves, when that is more (64 leaves of 16 are the 1,024).
const LEAVES_PER_RAY: usize = 64;

/// Triangles in one hierarchy: a larger model gets one per this many, built in parallel.
const PART: usize = 1 << 18;

/// Most samples one neighbourhood query looks at. A surface sampled evenly has about 25 samples within two
/// spacings (both faces of a thin wall counted) and the 27 cells around a sample hold a few hundred; only a
/// surface crumpled into a small box (fuzzing found one: 140,000 mm² inside 21 mm) holds thousands, and there the
/// nearest cells are enough to tell a thin place from a thick one. Bounds the region and median passes at this
/// many steps per sample.
const NEAR_SCANNED: usize = 512;

/// The 27 cells around a sample's, its own first, then those sharing a face, an edge, a corner.
const NEIGHBOUR_CELLS: [[i64; 3]; 27] = {
    let mut cells = [[0i64; 3]; 27];
    let mut n = 0;
    let mut shared = 0; // how many coordinates differ from the sample's cell
    while shared <= 3 {
        let mut k = 0;
        while k < 27 {
            let d = [(k / 9) as i64 - 1, (k / 3 % 3) as i64 - 1, (k % 3) as i64 - 1];
            if (d[0] != 0) as usize + (d[1] != 0) as usize + (d[2] != 0) as usize == shared {
                cells[n] = d;
                n += 1;
            }
            k += 1;
        }
        shared += 1;
    }
    cells
};

/// A group's hierarchy, for up to `rays` rays (the points sampled: the coarse half are cast, the rest near thin
/// ones).
fn caster<'a>(vertices: &'a [Vector], triangles: &'a [[u32; 3]], origin: [f64; 3], rays: usize) -> Caster<'a> {
    let leaf = leaf_size(triangles.len(), rays);
    let mut leaves = leaves(vertices, triangles, leaf, LEAF_SPREAD);
    let mut triangles = Cow::Borrowed(triangles);
    if !coherent(&leaves) {
        triangles = Cow::Owned(spatial_order(vertices, &triangles));
        leaves = self::leaves(vertices, &triangles, leaf, LEAF_SPREAD);
        // Runs that still end after a triangle or two are of triangles with no extent to speak of (points,
        // segments along an axis): whole runs, so the hierarchy never has a leaf a triangle to build.
        if !coherent(&leaves) {
            leaves = self::leaves(vertices, &triangles, leaf, f64::INFINITY);
        }
    }
    let clusters = runs(leaves.boxes.len(), CLUSTER, LEAF_SPREAD, |l| leaves.boxes[l]);
    let per_part = PART.div_ceil(leaf * CLUSTER);
    let parts: Vec<(usize, Bvh)> = clusters
        .boxes
        .par_chunks(per_part)
        .enumerate()
        .map(|(p, run)| (p * per_part, Bvh::from_iter(BvhBuildStrategy::Binned, run.iter().copied().enumerate())))
        .collect();
    let most_tested = TRIANGLES_PER_RAY.max(LEAVES_PER_RAY * leaf);
    Caster {
        vertices,
        triangles,
        origin,
        starts: leaves.starts,
        boxes: leaves.boxes,
        clusters: clusters.starts,
        parts,
        most_tested,
    }
}

/// Most consecutive leaves in one cluster, the unit the hierarchy is built over: an eighth of the boxes to build
/// (instrumented, the hierarchy of the 2M-triangle shuffled band took 9.6-10.5 ms over its 77,848 leaves, 1.9-2.5
/// over their clusters; the 200k band's 6.9 -> 0.8 ms; the wall thickness of the 200-band union 59-66 -> 53-57
/// ms, its 8,388 rays testing 116 -> 119 triangles each). A ray entering a cluster tests its leaves' boxes with
/// the hierarchy's own slab test ([`BoxRay`]) and finds the same exits as a hierarchy over the leaves (`analyze`
/// gives the same on every shared mesh and benchmark file), testing about as many triangles (156 -> 160 a ray
/// on the 2M band).
const CLUSTER: usize = 8;

/// The hierarchy's leaves (runs of consecutive triangles) or its clusters (runs of consecutive leaves): their
/// boxes and where each starts.
struct Leaves {
    boxes: Vec<Aabb>,
    /// Where each run starts, and (last) where the last ends.
    starts: Vec<u32>,
}

/// A run's box may have up to this many times the surface area of its triangles' boxes together: a run that
/// would grow past it ends there (the file's order jumps: a seam, a step of a Morton curve to another cell, one
/// shell of a union to the next). With 4, a ray through the 2M-triangle band along the parser's curve tests 73
/// triangles in leaves of up to 16 (with 8 here: 90; with 16: 105; never ended: 255), and on the union of the benchmark's 200
/// overlapping bands 116, none reaching [`TRIANGLES_PER_RAY`] (in runs never ended, 581, and 1,131 of its 8,377
/// rays stopped there with the nearest exit found so far).
const LEAF_SPREAD: f64 = 4.0;

/// Leaves of up to `leaf` consecutive triangles, each ended early where the next triangle is far from its run
/// (its box would grow past `spread` times its triangles' own in surface area: [`LEAF_SPREAD`]; infinite for
/// runs of `leaf` always): a leaf that straddles a jump in the order would have a box across the model, which
/// many rays would open. Runs are made in fixed chunks of triangles, the same whatever the thread count.
fn leaves(vertices: &[Vector], triangles: &[[u32; 3]], leaf: usize, spread: f64) -> Leaves {
    runs(triangles.len(), leaf, spread, |t| {
        let [a, b, c] = triangles[t].map(|v| vertices[v as usize]);
        Aabb::new(a.min(b).min(c), a.max(b).max(c))
    })
}

/// Runs of up to `most` consecutive items of `n` (item `i`'s box: `box_of(i)`), each ended early where the next
/// item's box would grow the run's past `spread` times its items' own in surface area, in fixed chunks of items.
fn runs(n: usize, most: usize, spread: f64, box_of: impl Fn(usize) -> Aabb + Sync) -> Leaves {
    const CHUNK: usize = 1 << 12;
    let chunks: Vec<(Vec<Aabb>, Vec<u32>)> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let end = n.min((c + 1) * CHUNK);
            let (mut boxes, mut starts) = (Vec::with_capacity(CHUNK / most + 1), Vec::new());
            let mut i = c * CHUNK;
            while i < end {
                let mut run = box_of(i);
                let mut own = surface(&run);
                let mut j = i + 1;
                while j < end && j - i < most {
                    let next = box_of(j);
                    let merged = run.merged(&next);
                    let with = own + surface(&next);
                    if surface(&merged) > spread * with {
                        break;
                    }
                    (run, own, j) = (merged, with, j + 1);
                }
                boxes.push(run);
                starts.push(i as u32);
                i = j;
            }
            (boxes, starts)
        })
        .collect();
    let mut boxes = Vec::with_capacity(chunks.iter().map(|c| c.0.len()).sum());
    let mut starts = Vec::with_capacity(boxes.capacity() + 1);
    for (b, s) in chunks {
        boxes.extend(b);
        starts.extend(s);
    }
    starts.push(n as u32);
    Leaves { boxes, starts }
}

/// Leaves a line through the model meets, on average, past which the triangles are taken to be in no spatial
/// order. A surface in mesh order (or in the union's, by position) has leaves of nearby triangles, and a line
/// meets a few of them (the 2M-triangle band in leaves of up to 32: 5.5 in mesh order, 13.5 in the halves file's,
/// 5.3 along the parser's Morton curve); a file whose triangles are shuffled ends almost every run after a
/// triangle ([`MIN_LEAF_AVERAGE`]); an order of long jumps that a run does not end would still show here.
const MAX_LEAVES_PER_LINE: f64 = 32.0;

/// Fewest triangles the leaves hold on average in a spatial order. In a shuffled one almost every run ends
/// after one triangle, the next being far away (the 2M-triangle band: 32 of 32 in mesh order, 22 in the halves
/// file's, 25.7 along the parser's curve; the shared jewelry 3.1 to 8 of 8; a Draco-decoded bunny, its
/// triangles in the decoder's order, 1.7, and a sliver-meshed hourglass 1.5 are sorted first).
const MIN_LEAF_AVERAGE: f64 = 2.0;

/// Whether the triangles are in a spatial order: their leaves hold [`MIN_LEAF_AVERAGE`] triangles or more on
/// average, and at most [`MAX_LEAVES_PER_LINE`] of them lie on a line.
fn coherent(leaves: &Leaves) -> bool {
    let triangles = leaves.starts.last().map_or(0, |&n| n as usize);
    triangles as f64 >= MIN_LEAF_AVERAGE * leaves.boxes.len() as f64
        && leaves_per_line(&leaves.boxes) <= MAX_LEAVES_PER_LINE
}

/// A box's surface area.
fn surface(b: &Aabb) -> f64 {
    let e = b.maxs - b.mins;
    2.0 * f64::from(e.x * e.y + e.y * e.z + e.z * e.x)
}

/// How many leaves a random line through their box meets, on average (by Crofton's formula: the leaves' surface
/// areas summed over the whole box's).
fn leaves_per_line(leaves: &[Aabb]) -> f64 {
    let Some(all) = leaves.iter().copied().reduce(|a, b| a.merged(&b)) else {
        return 0.0;
    };
    let sum: f64 = leaves.par_iter().map(surface).sum();
    sum / surface(&all)
}

/// The triangles sorted along a Morton curve through the model's box, by their centroids (10 bits an axis). The
/// parser puts a shuffled soup in such an order already (`mesh::space_order`, whose leaves measure 17 on the
/// 2M-triangle band against the halves file's order's 11); this is for a mesh made by a program
/// ([`crate::Mesh::from_indexed`]) or a soup the parser's probes took for ordered.
fn spatial_order(vertices: &[Vector], triangles: &[[u32; 3]]) -> Vec<[u32; 3]> {
    let centroid = |t: &[u32; 3]| (vertices[t[0] as usize] + vertices[t[1] as usize] + vertices[t[2] as usize]) / 3.0;
    let (lo, hi) = triangles
        .par_iter()
        .map(|t| {
            let c = centroid(t);
            (c, c)
        })
        .reduce(|| (Vector::splat(f32::MAX), Vector::splat(f32::MIN)), |a, b| (a.0.min(b.0), a.1.max(b.1)));
    let scale = (hi - lo).max(Vector::splat(f32::MIN_POSITIVE));
    let code: Vec<u32> = triangles
        .par_iter()
        .map(|t| {
            let q = (centroid(t) - lo) / scale * (MORTON_CELLS as f32 - 1.0);
            morton([q.x as u32, q.y as u32, q.z as u32])
        })
        .collect();
    morton_order(&code).into_par_iter().map(|i| triangles[i as usize]).collect()
}

fn area_normal(p: &[[f64; 3]], t: [u32; 3]) -> ([f64; 3], f64) {
    let [a, b, c] = t.map(|v| p[v as usize]);
    let n = cross(sub(b, a), sub(c, a));
    let len = norm(n);
    (if len > 0.0 { n.map(|x| x / len) } else { [0.0; 3] }, 0.5 * len)
}

fn area(p: &[[f64; 3]], t: [u32; 3]) -> f64 {
    let [a, b, c] = t.map(|v| p[v as usize]);
    0.5 * norm(cross(sub(b, a), sub(c, a)))
}

/// The `k`-th point of the plastic-number sequence (R2), folded into a triangle, kept off its edges.
fn point_in(p: &[[f64; 3]], t: [u32; 3], k: u64) -> [f64; 3] {
    const A1: f64 = 0.754_877_666_246_692_8;
    const A2: f64 = 0.569_840_290_998_053_2;
    let (mut r1, mut r2) = ((0.5 + A1 * k as f64).fract(), (0.5 + A2 * k as f64).fract());
    if r1 + r2 > 1.0 {
        (r1, r2) = (1.0 - r1, 1.0 - r2);
    }
    // 1 % towards the centroid: a sample exactly on an edge would be two triangles' point.
    let (r1, r2) = (0.99 * r1 + 0.01 / 3.0, 0.99 * r2 + 0.01 / 3.0);
    let [a, b, c] = t.map(|v| p[v as usize]);
    std::array::from_fn(|i| a[i] + r1 * (b[i] - a[i]) + r2 * (c[i] - a[i]))
}

/// Measures the walls of every group, and of all of them together.
pub(crate) fn measure(surface: &Surface<'_>) -> (Option<Thickness>, Vec<Option<Thickness>>) {
    #[cfg(test)]
    let stride = tests::STRIDE.with(std::cell::Cell::get);
    #[cfg(not(test))]
    let stride = COARSE_STRIDE;
    measure_with(surface, stride)
}

/// [`measure`], measuring every `stride`-th point everywhere and the rest only near thin ones (1: every point).
fn measure_with(surface: &Surface<'_>, stride: usize) -> (Option<Thickness>, Vec<Option<Thickness>>) {
    let positions: &[[f64; 3]] = &surface.positions;
    let groups: Vec<&[[u32; 3]]> = surface.groups.iter().map(Cow::as_ref).collect();
    // Every triangle's area once (f32 is plenty to place samples by; `analyze` keeps them for a mesh of one
    // clean shell), summed in fixed chunks in order.
    const CHUNK: usize = 1 << 14;
    let areas: Vec<Cow<'_, [f32]>> = groups
        .iter()
        .enumerate()
        .map(|(g, tris)| match surface.areas {
            Some((group, areas)) if group == g && areas.len() == tris.len() => Cow::Borrowed(areas),
            _ => Cow::Owned(tris.par_iter().map(|&t| area(positions, t) as f32).collect()),
        })
        .collect();
    let chunk_areas: Vec<Vec<f64>> =
        areas.iter().map(|a| a.par_chunks(CHUNK).map(|ch| ch.iter().map(|&x| f64::from(x)).sum()).collect()).collect();
    let total: f64 = chunk_areas.iter().flatten().sum();
    if total.is_nan() || total <= 0.0 || !total.is_finite() {
        return (None, vec![None; groups.len()]);
    }
    let wanted = (total / (SPACING_MM * SPACING_MM)).clamp(MIN_SAMPLES as f64, MAX_SAMPLES as f64);
    let per_sample = total / wanted;
    let spacing = per_sample.sqrt();

    // Samples: the k-th where the running area (over all groups in order) passes (k + ½) · per_sample.
    let mut samples: Vec<Sample> = Vec::new();
    let mut running = 0.0;
    for (g, ((tris, tri_areas), areas)) in groups.iter().zip(&areas).zip(&chunk_areas).enumerate() {
        let starts: Vec<f64> = areas
            .iter()
            .scan(running, |acc, a| {
                let s = *acc;
                *acc += a;
                Some(s)
            })
            .collect();
        // The group's first point is a coarse one, so a material of a point or two is still measured.
        let first = (running / per_sample - 0.5).ceil().max(0.0) as u64;
        running += areas.iter().sum::<f64>();
        let found: Vec<Vec<Sample>> = tris
            .par_chunks(CHUNK)
            .zip(tri_areas.par_chunks(CHUNK))
            .zip(starts)
            .map(|((ch, ch_areas), mut acc)| {
                let mut out = Vec::new();
                // The first sample at or after the chunk's start, then each next one in turn.
                let mut k = (acc / per_sample - 0.5).ceil().max(0.0) as u64;
                let mut next = (k as f64 + 0.5) * per_sample;
                for (&t, &a) in ch.iter().zip(ch_areas) {
                    let end = acc + f64::from(a);
                    while next < end {
                        if next >= acc {
                            let n = area_normal(positions, t).0;
                            out.push(Sample {
                                group: g as u32,
                                point: point_in(positions, t, k),
                                inward: n.map(|x| -x),
                                wall: MAX_MEASURED_MM,
                                coarse: (k - first).is_multiple_of(stride as u64),
                            });
                        }
                        k += 1;
                        next = (k as f64 + 0.5) * per_sample;
                    }
                    acc = end;
                }
                out
            })
            .collect();
        samples.extend(found.into_iter().flatten());
    }

    let (lo, hi) = crate::analyze::bounds(positions);
    let origin: [f64; 3] = std::array::from_fn(|i| 0.5 * (lo[i] + hi[i]));
    let vertices: Vec<Vector> = positions.par_iter().map(|&p| local(origin, p)).collect();
    let casters: Vec<Caster<'_>> = groups.iter().map(|g| caster(&vertices, g, origin, samples.len())).collect();
    let samples = cast(samples, &casters, 2.0 * spacing);

    let filtered = median_filter(&samples, 2.0 * spacing);
    let all: Vec<u32> = (0..samples.len() as u32).collect();
    let overall = summarize(&samples, &filtered, &all, &casters, spacing, per_sample);
    let used = groups.iter().filter(|g| !g.is_empty()).count();
    let per_group = (0..groups.len() as u32)
        .map(|g| {
            if used == 1 && !groups[g as usize].is_empty() {
                return Some(overall.clone());
            }
            let idx: Vec<u32> = all.iter().copied().filter(|&i| samples[i as usize].group == g).collect();
            (!idx.is_empty()).then(|| summarize(&samples, &filtered, &idx, &casters, spacing, per_sample))
        })
        .collect();
    (Some(overall), per_group)
}

/// Points measured everywhere: every this many of each group's sequence, from its first (every other: a run of
/// two consecutive points, which on a surface in mesh order lie side by side, always holds one); the others are
/// measured near thin ones.
const COARSE_STRIDE: usize = 2;

/// Measures the coarse points, then, until no new thin point turns up, every point within `r` of a thin one
/// (the radius the median filter and the regions look within, so both see the points measuring every one would
/// show them); returns the points measured, in their order.
fn cast(mut samples: Vec<Sample>, casters: &[Caster<'_>], r: f64) -> Vec<Sample> {
    let wall =
        |s: &Sample| casters[s.group as usize].exit(s.point, s.inward, MAX_MEASURED_MM).unwrap_or(MAX_MEASURED_MM);
    samples.par_iter_mut().filter(|s| s.coarse).for_each(|s| s.wall = wall(s));
    let mut measured: Vec<bool> = samples.iter().map(|s| s.coarse).collect();
    let mut frontier: Vec<u32> = (0..samples.len() as u32)
        .filter(|&i| samples[i as usize].coarse && samples[i as usize].wall < THIN_BELOW_MM)
        .collect();
    if !frontier.is_empty() && measured.contains(&false) {
        let grid = Grid::new(&samples, r);
        while !frontier.is_empty() {
            let mut next: Vec<u32> = frontier
                .par_iter()
                .map_init(Vec::new, |near, &i| {
                    grid.near(&samples, i as usize, near);
                    near.iter().copied().filter(|&j| !measured[j as usize]).collect::<Vec<u32>>()
                })
                .flatten()
                .collect();
            next.sort_unstable();
            next.dedup();
            let walls: Vec<f64> = next.par_iter().map(|&j| wall(&samples[j as usize])).collect();
            for (&j, w) in next.iter().zip(walls) {
                samples[j as usize].wall = w;
                measured[j as usize] = true;
            }
            frontier = next.into_iter().filter(|&j| samples[j as usize].wall < THIN_BELOW_MM).collect();
        }
    }
    samples.into_iter().zip(measured).filter_map(|(s, m)| m.then_some(s)).collect()
}

/// Samples sorted by the cell of a grid of `cell` mm they lie in, and where each cell's run starts.
struct Grid {
    cell: f64,
    order: Vec<u32>,
    runs: FxHashMap<[i64; 3], (u32, u32)>,
}

impl Grid {
    fn new(samples: &[Sample], cell: f64) -> Grid {
        let mut keyed: Vec<([i64; 3], u32)> =
            samples.iter().zip(0..).map(|(s, i)| (s.point.map(|x| (x / cell).floor() as i64), i)).collect();
        keyed.sort_unstable();
        let mut runs = FxHashMap::default();
        let mut k = 0;
        while k < keyed.len() {
            let c = keyed[k].0;
            let mut e = k + 1;
            while e < keyed.len() && keyed[e].0 == c {
                e += 1;
            }
            runs.insert(c, (k as u32, e as u32));
            k = e;
        }
        Grid { cell, order: keyed.into_iter().map(|(_, i)| i).collect(), runs }
    }

    /// The samples of `samples[i]`'s group within the grid's cell size of it, into `out` (cleared first): its
    /// own cell first, then the nearer cells, at most [`NEAR_SCANNED`] candidates in all.
    fn near(&self, samples: &[Sample], i: usize, out: &mut Vec<u32>) {
        out.clear();
        let s = &samples[i];
        let c = s.point.map(|x| (x / self.cell).floor() as i64);
        let r2 = self.cell * self.cell;
        let mut scanned = 0;
        for [dx, dy, dz] in NEIGHBOUR_CELLS {
            let Some(&(a, b)) = self.runs.get(&[c[0] + dx, c[1] + dy, c[2] + dz]) else { continue };
            let run = &self.order[a as usize..b as usize];
            for &j in &run[..run.len().min(NEAR_SCANNED - scanned)] {
                let o = &samples[j as usize];
                let d = sub(o.point, s.point);
                if o.group == s.group && dot(d, d) <= r2 {
                    out.push(j);
                }
            }
            scanned += run.len().min(NEAR_SCANNED - scanned);
            if scanned == NEAR_SCANNED {
                return;
            }
        }
    }
}

/// Each thin sample's wall replaced by the median of its neighbours' within `r` (itself included) on the same
/// side: facing within 60° of it, so a band's surface beside a wire is not averaged with the wire.
fn median_filter(samples: &[Sample], r: f64) -> Vec<f64> {
    if samples.iter().all(|s| s.wall >= THIN_BELOW_MM) {
        return samples.iter().map(|s| s.wall).collect();
    }
    let g = Grid::new(samples, r);
    (0..samples.len())
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(near, w), i| {
                // Only a thin point can be made thicker by its neighbours, or be thin: thick ones stay as measured.
                if samples[i].wall >= THIN_BELOW_MM {
                    return samples[i].wall;
                }
                g.near(samples, i, near);
                w.clear();
                w.extend(
                    near.iter()
                        .filter(|&&j| dot(samples[j as usize].inward, samples[i].inward) > 0.5)
                        .map(|&j| samples[j as usize].wall),
                );
                w.sort_by(f64::total_cmp);
                w.get(w.len() / 2).copied().unwrap_or(samples[i].wall)
            },
        )
        .collect()
}

/// How wide the solid is through the middle of sample `s`'s wall, across the wall: the narrowest of the lines,
/// up to [`WIRE_RATIO`] times the wall (wider is a wall whatever its width).
fn cross_width(c: &Caster<'_>, s: &Sample, wall: f64) -> f64 {
    let mid: [f64; 3] = std::array::from_fn(|i| s.point[i] + s.inward[i] * 0.5 * s.wall.min(wall));
    let u = crate::solid::unit_perpendicular(s.inward);
    let v = cross(s.inward, u);
    let limit = WIRE_RATIO * wall;
    (0..CROSS_LINES)
        .map(|k| {
            let a = std::f64::consts::PI * k as f64 / CROSS_LINES as f64;
            let d: [f64; 3] = std::array::from_fn(|i| a.cos() * u[i] + a.sin() * v[i]);
            let back = d.map(|x| -x);
            // Only whether it is narrower than a wire's limit matters: no ray need go further.
            c.exit(mid, d, limit).unwrap_or(limit) + c.exit(mid, back, limit).unwrap_or(limit)
        })
        .fold(f64::INFINITY, f64::min)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return MAX_MEASURED_MM;
    }
    sorted[((p * sorted.len() as f64) as usize).min(sorted.len() - 1)]
}

fn summarize(
    samples: &[Sample],
    filtered: &[f64],
    idx: &[u32],
    casters: &[Caster<'_>],
    spacing: f64,
    per_sample: f64,
) -> Thickness {
    // Thin samples joined into regions by distance and by wall.
    let r = 2.0 * spacing;
    let thin: Vec<u32> = idx.iter().copied().filter(|&i| filtered[i as usize] < THIN_BELOW_MM).collect();
    // Regions are joined through the middle of the wall, so both faces of a plate are one region, and a wire
    // (its middle is its axis) is apart from the band it stands on.
    let thin_samples: Vec<Sample> = thin
        .iter()
        .map(|&i| {
            let s = samples[i as usize];
            let half = 0.5 * s.wall.min(filtered[i as usize]);
            Sample { point: std::array::from_fn(|k| s.point[k] + s.inward[k] * half), ..s }
        })
        .collect();
    // Regions grow from the thinnest place not yet in one, over neighbours at most half as thick again: a
    // bracelet that is 1.2 mm thin everywhere with one 0.2 mm spot has the spot as a region of its own.
    let g = Grid::new(&thin_samples, r);
    let mut near = Vec::new();
    let wall_of = |i: u32| filtered[thin[i as usize] as usize];
    let mut by_wall: Vec<u32> = (0..thin.len() as u32).collect();
    by_wall.sort_by(|&a, &b| wall_of(a).total_cmp(&wall_of(b)).then(a.cmp(&b)));
    let mut region_of = vec![u32::MAX; thin.len()];
    let mut members: Vec<Vec<u32>> = Vec::new();
    for &seed in &by_wall {
        if region_of[seed as usize] != u32::MAX {
            continue;
        }
        let id = members.len() as u32;
        let limit = (REGION_GROWTH * wall_of(seed)).max(wall_of(seed) + spacing);
        let mut m = vec![seed];
        region_of[seed as usize] = id;
        let mut k = 0;
        while k < m.len() {
            let i = m[k] as usize;
            k += 1;
            g.near(&thin_samples, i, &mut near);
            for &j in &near {
                if region_of[j as usize] == u32::MAX && wall_of(j) <= limit {
                    region_of[j as usize] = id;
                    m.push(j);
                }
            }
        }
        members.push(m);
    }
    // A place smaller than three samples is below what the sampling resolves (a ray or two beside a sharp
    // edge): not a region, and not the minimum.
    let mut specks: Vec<u32> =
        members.iter().filter(|m| m.len() < MIN_REGION_SAMPLES).flatten().map(|&i| thin[i as usize]).collect();
    specks.sort_unstable();
    let roots: Vec<usize> = (0..members.len()).filter(|&k| members[k].len() >= MIN_REGION_SAMPLES).collect();
    // Roots are in the order their seeds were taken: thinnest first.
    let mut found: Vec<(Vec<u32>, ThinRegion)> = roots
        .par_iter()
        .map(|root| {
            let mut m = members[*root].clone();
            m.sort_by(|&a, &b| wall_of(a).total_cmp(&wall_of(b)).then(a.cmp(&b)));
            let n = m.len() as f64;
            let centre = m.iter().fold([0.0; 3], |c, &i| {
                let p = thin_samples[i as usize].point;
                std::array::from_fn(|k| c[k] + p[k] / n)
            });
            let region = ThinRegion {
                kind: ThinKind::Wall,
                wall_mm: wall_of(m[0]),
                area_mm2: n * per_sample,
                centre_mm: centre,
                thinnest_at_mm: samples[thin[m[0] as usize] as usize].point,
            };
            (m, region)
        })
        .collect();
    // Walls or wires: the listed regions, then the next ones until both kinds are found (or enough were tried).
    let classify = |found: &mut [(Vec<u32>, ThinRegion)]| {
        found.par_iter_mut().for_each(|(m, region)| {
            let tried = m.len().min(CLASSIFY_PER_REGION);
            let wires = m[..tried]
                .iter()
                .filter(|&&i| {
                    let s = &samples[thin[i as usize] as usize];
                    cross_width(&casters[s.group as usize], s, wall_of(i)) < WIRE_RATIO * wall_of(i)
                })
                .count();
            region.kind = if 2 * wires > tried { ThinKind::Wire } else { ThinKind::Wall };
        })
    };
    let first = found.len().min(MAX_REGIONS);
    classify(&mut found[..first]);
    let kinds = |f: &[(Vec<u32>, ThinRegion)]| {
        [ThinKind::Wall, ThinKind::Wire].iter().all(|k| f.iter().any(|(_, r)| r.kind == *k))
    };
    if !kinds(&found[..first]) {
        let more = found.len().min(CLASSIFIED_REGIONS);
        classify(&mut found[first..more]);
    }
    let mut regions: Vec<ThinRegion> = found.into_iter().map(|(_, r)| r).collect();
    regions.sort_by(|a, b| a.wall_mm.total_cmp(&b.wall_mm).then(b.area_mm2.total_cmp(&a.area_mm2)));
    // The thinnest of every point measured; the percentiles of the coarse points, which share the surface evenly
    // (the others are measured only near thin places).
    let kept: Vec<u32> = idx.iter().copied().filter(|i| specks.binary_search(i).is_err()).collect();
    let min_wall_mm = kept.iter().map(|&i| filtered[i as usize]).fold(MAX_MEASURED_MM, f64::min);
    let mut walls: Vec<f64> =
        kept.iter().filter(|&&i| samples[i as usize].coarse).map(|&i| filtered[i as usize]).collect();
    walls.sort_by(f64::total_cmp);
    let thinnest = |k: ThinKind| regions.iter().find(|r| r.kind == k).map(|r| r.wall_mm);
    let (thinnest_wall_mm, thinnest_wire_mm) = (thinnest(ThinKind::Wall), thinnest(ThinKind::Wire));
    let count = regions.len() as u64;
    let mut listed: Vec<ThinRegion> = regions.iter().take(MAX_REGIONS).cloned().collect();
    for k in [ThinKind::Wall, ThinKind::Wire] {
        if let Some(r) = regions.iter().find(|r| r.kind == k) {
            if !listed.iter().any(|l| l.kind == k) {
                let keep = listed.len().min(MAX_REGIONS - 1);
                listed.truncate(keep);
                listed.push(r.clone());
            }
        }
    }
    listed.sort_by(|a, b| a.wall_mm.total_cmp(&b.wall_mm).then(b.area_mm2.total_cmp(&a.area_mm2)));
    Thickness {
        min_wall_mm,
        thinnest_wall_mm,
        thinnest_wire_mm,
        p5_mm: percentile(&walls, 0.05),
        p25_mm: percentile(&walls, 0.25),
        p50_mm: percentile(&walls, 0.50),
        thin_regions: listed,
        thin_region_count: count,
        samples: idx.len() as u64,
        sample_spacing_mm: spacing,
        max_measured_mm: MAX_MEASURED_MM,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::Path;

    use super::{Thickness, COARSE_STRIDE};
    use crate::synth::{assemble, cuboid, cylinder, ring_band};

    thread_local! {
        /// The stride `measure` uses on this thread (the tests set 1 to measure every point).
        pub(super) static STRIDE: Cell<usize> = const { Cell::new(COARSE_STRIDE) };
    }

    fn shuffled(mesh: &crate::Mesh) -> crate::Mesh {
        let mut m = mesh.clone();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..m.triangles.len()).rev() {
            let j = (crate::xorshift(&mut state) % (i as u64 + 1)) as usize;
            m.triangles.swap(i, j);
            if !m.triangle_materials.is_empty() {
                m.triangle_materials.swap(i, j);
            }
        }
        m
    }

    /// A surface whose triangles come in no order is cast through leaves of nearby triangles all the same: the
    /// same distances as in mesh order, where the triangles are kept as they are.
    #[test]
    fn a_shuffled_surface_is_cast_through_leaves_of_nearby_triangles() {
        use parry3d::math::Vector;
        let mesh = ring_band(8.0, 10.5, 3.0, 256, 48);
        let vertices: Vec<Vector> = mesh.positions.iter().map(|&p| super::local([0.0; 3], p)).collect();
        let mixed = shuffled(&mesh);
        let (ordered, scrambled) = (
            super::caster(&vertices, &mesh.triangles, [0.0; 3], 1),
            super::caster(&vertices, &mixed.triangles, [0.0; 3], 1),
        );
        assert!(matches!(ordered.triangles, std::borrow::Cow::Borrowed(_)), "mesh order is kept");
        assert!(matches!(scrambled.triangles, std::borrow::Cow::Owned(_)), "a shuffled order is not");
        // From 0.1 mm inside the band's outer surface towards the axis, at 64 angles: 2.4 mm to the inner surface.
        for k in 0..64 {
            let a = std::f64::consts::TAU * (k as f64 + 0.3) / 64.0;
            let (from, dir) = ([10.4 * a.cos(), 10.4 * a.sin(), 0.1], [-a.cos(), -a.sin(), 0.0]);
            let (x, y) = (ordered.exit(from, dir, 10.0), scrambled.exit(from, dir, 10.0));
            assert_eq!(x, y, "angle {a}");
            assert!(x.is_some_and(|x| (x - 2.4).abs() < 0.01), "{x:?} at angle {a}");
        }
    }

    /// `analyze` keeps the areas of a mesh of one clean shell for this pass: they place the points where the
    /// areas this pass computes place them, for a shell wound outward and one inside out (turned outward here).
    #[test]
    fn areas_kept_by_analyze_place_the_points_where_computed_ones_do() {
        for inside_out in [false, true] {
            let mut band = ring_band(8.0, 10.5, 3.0, 256, 48);
            if inside_out {
                band.flip_winding();
            }
            let kept = crate::analyze(&band).thickness.expect("a band has area");
            let mut outward = band.clone();
            if inside_out {
                outward.flip_winding();
            }
            let surface = crate::solid::Surface {
                positions: std::borrow::Cow::Borrowed(&outward.positions),
                groups: vec![std::borrow::Cow::Borrowed(&outward.triangles[..])],
                areas: None,
            };
            assert_eq!(Some(kept), super::measure(&surface).0, "inside out: {inside_out}");
        }
    }

    /// Through the hierarchy of clusters, then the leaves' boxes, a ray finds the exit that testing every
    /// triangle finds: rays inward from points all over a band, and rays along the axes (directions with zero
    /// components, which the box test inverts as `parry3d` does) from inside its wall. Not held: a ray lying
    /// exactly in the upper face of a box, with no component across it, misses the box in `parry3d`'s slab test
    /// (the hierarchy's) and so in the leaves' (a ray straight down through a vertex of the band exits 1e-7 mm
    /// past where testing every triangle finds, through the vertex's other triangle).
    #[test]
    fn a_ray_finds_the_exit_that_testing_every_triangle_finds() {
        use parry3d::math::Vector;
        let mesh = ring_band(8.0, 10.5, 3.0, 256, 128); // 65,536 triangles: leaves of 8, 8 to a cluster
        let vertices: Vec<Vector> = mesh.positions.iter().map(|&p| super::local([0.0; 3], p)).collect();
        let c = super::caster(&vertices, &mesh.triangles, [0.0; 3], 1);
        assert!(
            c.clusters.len() - 1 < c.boxes.len() / 4,
            "{} clusters of {} leaves",
            c.clusters.len() - 1,
            c.boxes.len()
        );
        let every = |from: [f64; 3], dir: [f64; 3]| {
            let ray = parry3d::query::Ray::new(
                super::local([0.0; 3], from),
                Vector::new(dir[0] as f32, dir[1] as f32, dir[2] as f32),
            );
            let exits = mesh.triangles.iter().filter_map(|&t| super::Packed::new(&vertices, t).exit(&ray, 10.0));
            exits.reduce(f32::min).map(f64::from)
        };
        let mut state = 0x51_7cc1_b727_220au64;
        let mut found = 0;
        for _ in 0..300 {
            let t = mesh.triangles[crate::xorshift(&mut state) as usize % mesh.triangles.len()];
            let k = crate::xorshift(&mut state);
            let (point, normal) = (super::point_in(&mesh.positions, t, k), super::area_normal(&mesh.positions, t).0);
            let inward = normal.map(|x| -x);
            assert_eq!(c.exit(point, inward, 10.0), every(point, inward), "from {point:?} along {inward:?}");
            // From just inside the wall there, along each axis both ways.
            let inside: [f64; 3] = std::array::from_fn(|i| point[i] + 0.05 * inward[i]);
            for axis in 0..6 {
                let dir: [f64; 3] = std::array::from_fn(|i| if i == axis % 3 { [1.0, -1.0][axis / 3] } else { 0.0 });
                let exit = c.exit(inside, dir, 10.0);
                assert_eq!(exit, every(inside, dir), "from {inside:?} along {dir:?}");
                found += usize::from(exit.is_some());
            }
        }
        assert!(found > 1_500, "from inside the wall most axis rays leave it within 10 mm: {found} of 1,800");
    }

    /// Leaves are runs of consecutive triangles, each whole run as long as allowed on a smooth surface in mesh
    /// order, and ended where the order jumps: along the parser's Morton curve, runs of fixed length would
    /// straddle its steps from cell to cell with boxes across the band, which a ray has to open.
    #[test]
    fn leaves_end_where_the_order_jumps() {
        use parry3d::math::Vector;
        let band = ring_band(8.0, 10.5, 3.0, 256, 128); // 65,536 triangles: past the parser's locality probes
        let read = crate::parse(&crate::to_binary_stl(&shuffled(&band)), &Default::default()).expect("stl");
        for (what, mesh, most) in [("mesh order", &band, 1.0), ("Morton order", &read, 0.5)] {
            let vertices: Vec<Vector> = mesh.positions.iter().map(|&p| super::local([0.0; 3], p)).collect();
            let n = mesh.triangles.len();
            let leaf = super::leaf_size(n, 1);
            let leaves = super::leaves(&vertices, &mesh.triangles, leaf, super::LEAF_SPREAD);
            // Every triangle in one leaf, in order, at most `leaf` a leaf.
            assert_eq!((leaves.starts[0], leaves.starts.last().copied()), (0, Some(n as u32)), "{what}");
            assert!(leaves.starts.windows(2).all(|w| w[0] < w[1] && (w[1] - w[0]) as usize <= leaf), "{what}");
            assert_eq!(leaves.boxes.len() + 1, leaves.starts.len());
            let (cut, whole) = (
                super::leaves_per_line(&leaves.boxes),
                super::leaves_per_line(&super::leaves(&vertices, &mesh.triangles, leaf, f64::INFINITY).boxes),
            );
            assert!(cut <= most * whole, "{what}: {cut} leaves on a line, {whole} in runs of {leaf}");
            if what == "mesh order" {
                assert_eq!(leaves.boxes.len(), n.div_ceil(leaf), "a smooth band in mesh order is never cut");
            }
        }
    }

    /// Triangles with no extent (every corner at one point) end every run at once, in any order: the hierarchy
    /// falls back to whole runs rather than a leaf a triangle.
    #[test]
    fn triangles_without_extent_still_share_leaves() {
        use parry3d::math::Vector;
        let n = 20_000u32;
        // Points in general position: any two of them span a box with some surface, each alone none.
        let vertices: Vec<Vector> =
            (0..n).map(|i| Vector::new(i as f32 * 0.37 % 11.0, (i % 97) as f32, (i % 89) as f32 * 0.1)).collect();
        let triangles: Vec<[u32; 3]> = (0..n).map(|i| [i; 3]).collect();
        let leaf = super::leaf_size(triangles.len(), 1);
        assert!(super::leaves(&vertices, &triangles, leaf, super::LEAF_SPREAD).boxes.len() > n as usize / 2);
        let c = super::caster(&vertices, &triangles, [0.0; 3], 1);
        assert_eq!(c.starts.len() - 1, triangles.len().div_ceil(leaf), "whole runs of {leaf}");
        assert_eq!(c.exit([1.0, 1.0, 0.0], [0.0, 0.0, 1.0], 10.0), None, "no triangle to leave through");
    }

    /// A file whose triangles are shuffled is read along a Morton curve (`mesh::space_order`): the hierarchy's
    /// leaves are of nearby triangles as they come, with no second sort here.
    #[test]
    fn a_shuffled_file_comes_from_the_parser_in_an_order_the_hierarchy_keeps() {
        use parry3d::math::Vector;
        let band = ring_band(8.0, 10.5, 3.0, 256, 128); // 65,536 triangles: past the parser's locality probes
        let per_line = |m: &crate::Mesh| {
            let vertices: Vec<Vector> = m.positions.iter().map(|&p| super::local([0.0; 3], p)).collect();
            let c = super::caster(&vertices, &m.triangles, [0.0; 3], 1);
            assert!(matches!(c.triangles, std::borrow::Cow::Borrowed(_)), "sorted again");
            super::leaves_per_line(
                &super::leaves(&vertices, &c.triangles, super::leaf_size(c.triangles.len(), 1), super::LEAF_SPREAD)
                    .boxes,
            )
        };
        let read = crate::parse(&crate::to_binary_stl(&shuffled(&band)), &Default::default()).expect("stl");
        // 4.8 here (13.2 in whole runs of 8, not ended at the curve's steps; the band's own grid order: 2.1).
        let (file_order, parsed) = (per_line(&band), per_line(&read));
        assert!(parsed <= super::MAX_LEAVES_PER_LINE / 2.0, "{parsed} leaves on a line, {file_order} in file order");
        let vertices: Vec<Vector> = read.positions.iter().map(|&p| super::local([0.0; 3], p)).collect();
        let again = shuffled(&read);
        let c = super::caster(&vertices, &again.triangles, [0.0; 3], 1);
        assert!(matches!(c.triangles, std::borrow::Cow::Owned(_)), "the check tells a shuffled order");
    }

    fn measured(mesh: &crate::Mesh, stride: usize) -> Thickness {
        STRIDE.with(|s| s.set(stride));
        let t = crate::analyze(mesh).thickness.expect("a model with area");
        STRIDE.with(|s| s.set(COARSE_STRIDE));
        t
    }

    /// Thin places, the minimum and the wall / wire split are the same whether every point is measured or the
    /// coarse ones and those near thin ones; the percentiles (of the coarse points alone) within a tenth of a
    /// millimetre or 5 %.
    #[test]
    fn measuring_around_thin_points_finds_what_measuring_every_point_finds() {
        let band = || ring_band(8.0, 10.5, 3.0, 256, 48);
        let mut hollow = cuboid([0.6; 3], [11.4; 3]);
        hollow.flip_winding();
        let mut models = vec![
            (
                "band with a wire".to_owned(),
                assemble(&[band(), cylinder([10.3, 0.0, 0.0], [13.5, 0.0, 0.0], 0.25, 48)]),
            ),
            ("plate".to_owned(), cuboid([0.0; 3], [20.0, 20.0, 0.7])),
            ("hollow box".to_owned(), assemble(&[cuboid([0.0; 3], [12.0; 3]), hollow])),
            ("band".to_owned(), band()),
        ];
        let dir = std::env::var_os("ASSAY_MESHES")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/meshes"))
            .join("jewelry");
        let mut files: Vec<_> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let mesh = crate::parse(&bytes, &crate::ParseOptions::default()).unwrap();
            models.push((f.file_name().unwrap().to_string_lossy().into_owned(), mesh));
        }
        // The same models with their triangles in no order (a file written by a tool that keeps none): there two
        // consecutive points need not be neighbours.
        let mixed: Vec<(String, crate::Mesh)> =
            models.iter().map(|(name, mesh)| (format!("{name}, shuffled"), shuffled(mesh))).collect();
        models.extend(mixed);
        for (name, mesh) in &models {
            let (every, refined) = (measured(mesh, 1), measured(mesh, COARSE_STRIDE));
            eprintln!(
                "{name}: points {} / {}, min {:.3} / {:.3}, places {} / {}, p5 {:.3}/{:.3} p25 {:.3}/{:.3} p50 {:.3}/{:.3}",
                every.samples, refined.samples, every.min_wall_mm, refined.min_wall_mm, every.thin_region_count,
                refined.thin_region_count, every.p5_mm, refined.p5_mm, every.p25_mm, refined.p25_mm, every.p50_mm,
                refined.p50_mm
            );
            assert_eq!(
                (every.thinnest_wall_mm, every.thinnest_wire_mm),
                (refined.thinnest_wall_mm, refined.thinnest_wire_mm),
                "{name}"
            );
            // A thin minimum is the same point's; a thick one is the coarse points' (the others are not measured).
            if every.min_wall_mm < super::THIN_BELOW_MM {
                assert_eq!(every.min_wall_mm, refined.min_wall_mm, "{name}");
            } else {
                assert!(refined.min_wall_mm >= every.min_wall_mm, "{name}");
                assert!(refined.min_wall_mm - every.min_wall_mm <= 0.05 * every.min_wall_mm, "{name}");
            }
            assert_eq!(every.thin_regions, refined.thin_regions, "{name}");
            assert_eq!(every.thin_region_count, refined.thin_region_count, "{name}");
            for (a, b) in [(every.p5_mm, refined.p5_mm), (every.p25_mm, refined.p25_mm), (every.p50_mm, refined.p50_mm)]
            {
                assert!((a - b).abs() <= 0.1f64.max(0.05 * a), "{name}: {a} vs {b}");
            }
            assert!(refined.samples <= every.samples, "{name}");
        }
        if models.len() == 8 {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "skipped the jewelry meshes: none at {}", dir.display());
        }
    }
}
