//! Decodes Draco streams with `draco-core` (the decoder `models` uses) and writes what each holds, for
//! `scripts/compare-draco.py` to hold against Google's C++ decoder. Per input file `x.drc`: `x.drc.points`
//! (f32 little-endian, three per point, point order) and `x.drc.faces` (u32, three per face); then one line
//! per file on stdout: name, points, faces, the best of 20 decode times in microseconds.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a measuring tool: a panic is its error report")]

use draco_core::{DecoderBuffer, Mesh, MeshDecoder};

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("read");
        let mut best = f64::MAX;
        let mut mesh = Mesh::new();
        for _ in 0..20 {
            let start = std::time::Instant::now();
            mesh = Mesh::new();
            MeshDecoder::new().decode(&mut DecoderBuffer::new(&bytes), &mut mesh).expect("decode");
            best = best.min(start.elapsed().as_secs_f64() * 1e6);
        }
        let position = mesh.named_attribute(draco_core::GeometryAttributeType::Position).expect("positions");
        let points: Vec<u8> = position.read_f32s(mesh.num_points(), 3).iter().flat_map(|v| v.to_le_bytes()).collect();
        let faces: Vec<u8> = mesh.faces().iter().flatten().flat_map(|p| p.0.to_le_bytes()).collect();
        std::fs::write(format!("{path}.points"), points).expect("write");
        std::fs::write(format!("{path}.faces"), faces).expect("write");
        println!("{path}\t{}\t{}\t{best:.1}", mesh.num_points(), mesh.num_faces());
    }
}
