//! Meshes with the defects the solid-volume repairs meet, built straight from the bytes (no reader in the way):
//! vertices on a coarse grid with a few nudged by single ulps (near-miss seams), triangles that repeat, reverse
//! each other, share edges three or four ways, or leave holes. `models::analyze` on each: the repairs, the
//! cavity test and the union must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    // Up to 32 vertices, four bytes each: a position on a 16-step grid, and a nudge of a few ulps.
    let n = usize::from(n % 32) + 1;
    if rest.len() < 4 * n {
        return;
    }
    let (verts, tris) = rest.split_at(4 * n);
    let positions: Vec<[f64; 3]> = verts
        .chunks(4)
        .map(|v| {
            let nudge = i32::from(v[3] % 5) - 2;
            [v[0], v[1], v[2]].map(|c| {
                let x = f32::from(c % 16) * 0.5;
                f64::from(f32::from_bits((x.to_bits() as i32 + nudge).max(0) as u32))
            })
        })
        .collect();
    let triangles: Vec<[u32; 3]> =
        tris.chunks_exact(3).take(400).map(|t| [t[0], t[1], t[2]].map(|i| u32::from(i) % n as u32)).collect();
    if let Ok(mesh) = models::Mesh::from_indexed(positions, triangles) {
        let r = models::analyze(&mesh);
        assert!(r.solid_volume_mm3.is_finite(), "{}", r.solid_volume_mm3);
    }
});
