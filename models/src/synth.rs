//! Deterministic meshes made by program: closed ring bands of any size and cubes, for benchmarks and tests.

use std::f64::consts::TAU;

use crate::mesh::Mesh;

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

/// The exact volume of the smooth band that [`ring_band`] approximates (Pappus: path length × profile area).
pub fn ring_band_volume(inner: f64, outer: f64, width: f64) -> f64 {
    let centre = (inner + outer) / 2.0;
    TAU * centre * std::f64::consts::PI * ((outer - inner) / 2.0) * (width / 2.0)
}
