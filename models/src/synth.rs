//! Deterministic meshes made by program: closed ring bands of any size and cubes, for benchmarks and tests.

use std::f64::consts::TAU;

use crate::analyze::{cross, norm};
use crate::mesh::Mesh;
use crate::solid::unit_perpendicular;

/// A closed ring band: an elliptical profile (the "comfort fit" of a wedding band) swept around the ring's axis.
///
/// `inner` and `outer` are radii in mm, `width` the band's extent along the axis; `around` segments around the
/// ring and `profile` segments around the cross-section give `2 · around · profile` triangles, wound outwards.
/// 2000 × 500 gives the 2,000,000-triangle benchmark band.
pub fn ring_band(inner: f64, outer: f64, width: f64, around: u32, profile: u32) -> Mesh {
    let (around, profile) = (around.max(3), profile.max(3));
    let centre = (inner + outer) / 2.0;
    let (a, b) = ((outer - inner) / 2.0, width / 2.0);
    let mut positions = Vec::with_capacity((around * profile) as usize);
    for i in 0..around {
        let theta = TAU * f64::from(i) / f64::from(around);
        for j in 0..profile {
            let phi = TAU * f64::from(j) / f64::from(profile);
            let r = centre + a * phi.cos();
            positions.push([r * theta.cos(), r * theta.sin(), b * phi.sin()]);
        }
    }
    let at = |i: u32, j: u32| (i % around) * profile + (j % profile);
    let mut triangles = Vec::with_capacity(2 * (around * profile) as usize);
    for i in 0..around {
        for j in 0..profile {
            triangles.push([at(i, j), at(i + 1, j), at(i + 1, j + 1)]);
            triangles.push([at(i, j), at(i + 1, j + 1), at(i, j + 1)]);
        }
    }
    Mesh { positions, triangles, ..Mesh::default() }
}

/// An axis-aligned cube from the origin to `side` mm on every axis: 8 vertices, 12 triangles wound outwards.
pub fn cube(side: f64) -> Mesh {
    let positions = (0..8u32)
        .map(|i| [f64::from(i & 1) * side, f64::from((i >> 1) & 1) * side, f64::from((i >> 2) & 1) * side])
        .collect();
    let triangles = vec![
        [0, 2, 1],
        [1, 2, 3],
        [4, 5, 6],
        [5, 7, 6],
        [0, 1, 4],
        [1, 5, 4],
        [2, 6, 3],
        [3, 6, 7],
        [0, 4, 2],
        [2, 4, 6],
        [1, 3, 5],
        [3, 7, 5],
    ];
    Mesh { positions, triangles, ..Mesh::default() }
}

/// Several meshes as one, each part a shell of its own (its own vertices): a band and its prongs, say.
pub fn assemble(parts: &[Mesh]) -> Mesh {
    let mut m = Mesh::default();
    for p in parts {
        let base = m.positions.len() as u32;
        m.positions.extend(&p.positions);
        m.triangles.extend(p.triangles.iter().map(|t| t.map(|v| v + base)));
    }
    m
}

/// An axis-aligned box from `min` to `max` mm: a [`cube`] stretched, 12 triangles wound outwards.
pub fn cuboid(min: [f64; 3], max: [f64; 3]) -> Mesh {
    let mut m = cube(1.0);
    m.map_positions(|p| std::array::from_fn(|i| min[i] + p[i] * (max[i] - min[i])));
    m
}

/// A closed cylinder of `radius` mm from the centre of one cap at `from` to the other at `to`: `segments`
/// around, `4 · segments` triangles wound outwards (a wire, a prong).
pub fn cylinder(from: [f64; 3], to: [f64; 3], radius: f64, segments: u32) -> Mesh {
    let segments = segments.max(3);
    let axis: [f64; 3] = std::array::from_fn(|i| to[i] - from[i]);
    let w = axis.map(|c| c / norm(axis));
    let u = unit_perpendicular(w);
    let v = cross(w, u);
    let mut positions = Vec::with_capacity(2 * segments as usize + 2);
    for end in [from, to] {
        for k in 0..segments {
            let a = TAU * f64::from(k) / f64::from(segments);
            positions.push(std::array::from_fn(|i| end[i] + radius * (a.cos() * u[i] + a.sin() * v[i])));
        }
    }
    positions.push(from);
    positions.push(to);
    let (bottom, top) = (2 * segments, 2 * segments + 1);
    let mut triangles = Vec::with_capacity(4 * segments as usize);
    for k in 0..segments {
        let k1 = (k + 1) % segments;
        // (u, v, w) is right-handed, so k → k1 turns anticlockwise seen from `to`.
        triangles.push([k, k1, segments + k1]);
        triangles.push([k, segments + k1, segments + k]);
        triangles.push([bottom, k1, k]);
        triangles.push([top, segments + k, segments + k1]);
    }
    Mesh { positions, triangles, ..Mesh::default() }
}

/// The exact volume of the smooth band that [`ring_band`] approximates (Pappus: path length × profile area).
pub fn ring_band_volume(inner: f64, outer: f64, width: f64) -> f64 {
    let centre = (inner + outer) / 2.0;
    TAU * centre * std::f64::consts::PI * ((outer - inner) / 2.0) * (width / 2.0)
}

/// A closed octahedron of "radius" `r` (centre to corner) around `c`, wound outwards.
pub fn octahedron(c: [f64; 3], r: f64) -> Mesh {
    let mut positions = Vec::new();
    for axis in 0..3 {
        for sign in [1.0, -1.0] {
            let mut p = c;
            p[axis] += sign * r;
            positions.push(p);
        }
    }
    // Corners: 0 +x, 1 -x, 2 +y, 3 -y, 4 +z, 5 -z.
    let mut triangles = Vec::new();
    for (sx, sy, sz) in
        [(1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1), (-1, 1, 1), (-1, 1, -1), (-1, -1, 1), (-1, -1, -1)]
    {
        let x = if sx > 0 { 0 } else { 1 };
        let y = if sy > 0 { 2 } else { 3 };
        let z = if sz > 0 { 4 } else { 5 };
        // [+x, +y, +z] faces outwards; each negative axis mirrors the face, which flips its winding.
        triangles.push(if sx * sy * sz > 0 { [x, y, z] } else { [x, z, y] });
    }
    Mesh { positions, triangles, ..Mesh::default() }
}

fn push_f32s(bin: &mut Vec<u8>, values: impl Iterator<Item = f64>) {
    for v in values {
        bin.extend_from_slice(&(v as f32).to_le_bytes());
    }
}

/// One mesh of a GLB written by [`glb`]: its name (also its material's), colour, and the nodes that place it.
#[derive(Debug, Clone)]
pub struct GlbPart<'a> {
    pub name: &'a str,
    pub mesh: &'a Mesh,
    pub colour: [f32; 4],
    /// Column-major 4×4 matrices in metres, one node each; empty for one node without a transform.
    pub instances: Vec<[f64; 16]>,
}

impl<'a> GlbPart<'a> {
    pub fn new(name: &'a str, mesh: &'a Mesh, colour: [f32; 4]) -> Self {
        GlbPart { name, mesh, colour, instances: Vec::new() }
    }
}

/// A GLB of `parts` (positions in millimetres, written in metres as glTF wants): float positions, `u32` indices,
/// one material per part named like it. For samples and tests.
pub fn glb(parts: &[GlbPart<'_>]) -> Vec<u8> {
    let mut bin = Vec::new();
    let (mut views, mut accessors, mut meshes, mut nodes, mut materials) = (vec![], vec![], vec![], vec![], vec![]);
    for (i, GlbPart { name, mesh, colour, instances }) in parts.iter().enumerate() {
        let metres: Vec<[f64; 3]> = mesh.positions.iter().map(|p| p.map(|v| v / 1000.0)).collect();
        let (mut min, mut max) = ([f32::MAX; 3], [f32::MIN; 3]);
        for p in &metres {
            for k in 0..3 {
                min[k] = min[k].min(p[k] as f32);
                max[k] = max[k].max(p[k] as f32);
            }
        }
        let start = bin.len();
        push_f32s(&mut bin, metres.iter().flatten().copied());
        views.push(
            serde_json::json!({"buffer": 0, "byteOffset": start, "byteLength": bin.len() - start, "target": 34962}),
        );
        accessors.push(serde_json::json!({"bufferView": 2 * i, "componentType": 5126, "count": metres.len(), "type": "VEC3", "min": min, "max": max}));
        let start = bin.len();
        for t in &mesh.triangles {
            for v in t {
                bin.extend_from_slice(&v.to_le_bytes());
            }
        }
        views.push(
            serde_json::json!({"buffer": 0, "byteOffset": start, "byteLength": bin.len() - start, "target": 34963}),
        );
        accessors.push(serde_json::json!({"bufferView": 2 * i + 1, "componentType": 5125, "count": mesh.triangles.len() * 3, "type": "SCALAR"}));
        meshes.push(serde_json::json!({"name": name, "primitives": [{"attributes": {"POSITION": 2 * i}, "indices": 2 * i + 1, "material": i}]}));
        if instances.is_empty() {
            nodes.push(serde_json::json!({"name": name, "mesh": i}));
        }
        for m in instances {
            nodes.push(serde_json::json!({"name": name, "mesh": i, "matrix": m}));
        }
        materials.push(serde_json::json!({"name": name, "pbrMetallicRoughness": {"baseColorFactor": colour, "metallicFactor": 1.0, "roughnessFactor": 0.2}}));
    }
    let json = serde_json::json!({
        "asset": {"version": "2.0", "generator": "assay models/examples/gen_sample_glb.rs"},
        "scene": 0,
        "scenes": [{"nodes": (0..nodes.len()).collect::<Vec<_>>()}],
        "nodes": nodes, "meshes": meshes, "materials": materials, "accessors": accessors, "bufferViews": views,
        "buffers": [{"byteLength": bin.len()}],
    });
    glb_container(&serde_json::to_vec(&json).expect("JSON of plain values"), &bin)
}

/// A GLB file around `json` and a binary chunk `bin` (each padded to four bytes as the format wants).
pub fn glb_container(json: &[u8], bin: &[u8]) -> Vec<u8> {
    let (json_len, bin_len) = (json.len().next_multiple_of(4), bin.len().next_multiple_of(4));
    let total = 12 + 8 + json_len + 8 + bin_len;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json_len as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(json);
    out.resize(20 + json_len, b' ');
    out.extend_from_slice(&(bin_len as u32).to_le_bytes());
    out.extend_from_slice(b"BIN\0");
    out.extend_from_slice(bin);
    out.resize(total, 0);
    out
}
