//! Writes the sample solitaire ring `samples/solitaire_ring.glb`: a closed band (material "Yellow gold") with a
//! 3 mm octahedral stone (material "Diamond") resting on top, in metres as glTF wants. It shows how a glTF model
//! tells gems from metal by material name. `cargo run -p models --example gen_sample_glb -- OUT.glb`

use std::process::ExitCode;

use models::Mesh;

/// A closed octahedron of "radius" `r` (centre to corner) around `c`, wound outwards.
fn octahedron(c: [f64; 3], r: f64) -> Mesh {
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

fn glb(parts: &[(&str, &Mesh, [f32; 4])]) -> Vec<u8> {
    let mut bin = Vec::new();
    let (mut views, mut accessors, mut meshes, mut nodes, mut materials) = (vec![], vec![], vec![], vec![], vec![]);
    for (i, (name, mesh, colour)) in parts.iter().enumerate() {
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
        nodes.push(serde_json::json!({"name": name, "mesh": i}));
        materials.push(serde_json::json!({"name": name, "pbrMetallicRoughness": {"baseColorFactor": colour, "metallicFactor": 1.0, "roughnessFactor": 0.2}}));
    }
    let json = serde_json::json!({
        "asset": {"version": "2.0", "generator": "assay models/examples/gen_sample_glb.rs"},
        "scene": 0,
        "scenes": [{"nodes": (0..parts.len()).collect::<Vec<_>>()}],
        "nodes": nodes, "meshes": meshes, "materials": materials, "accessors": accessors, "bufferViews": views,
        "buffers": [{"byteLength": bin.len()}],
    });
    let mut json = serde_json::to_vec(&json).expect("JSON of plain values");
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    while bin.len() % 4 != 0 {
        bin.push(0);
    }
    let total = 12 + 8 + json.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&json);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(b"BIN\0");
    out.extend_from_slice(&bin);
    out
}

fn main() -> ExitCode {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: gen_sample_glb OUT.glb");
        return ExitCode::FAILURE;
    };
    // A size 7 US band (17.3 mm inner diameter), 1.8 mm thick, 2.5 mm wide.
    let band = models::synth::ring_band(8.65, 10.45, 2.5, 192, 48);
    let (mut lo, mut hi) = ([f64::MAX; 3], [f64::MIN; 3]);
    for p in &band.positions {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    // The band's axis is its thinnest extent; the stone sits on top of the band along the next axis.
    let axis = (0..3).min_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b]))).unwrap_or(2);
    let up = (axis + 1) % 3;
    let r = 1.5;
    let mut centre = [0.0; 3];
    for k in 0..3 {
        centre[k] = (lo[k] + hi[k]) / 2.0;
    }
    centre[up] = hi[up] + r;
    let stone = octahedron(centre, r);
    let bytes = glb(&[("Yellow gold", &band, [1.0, 0.78, 0.34, 1.0]), ("Diamond", &stone, [0.95, 0.97, 1.0, 1.0])]);
    if let Err(e) = std::fs::write(&out, &bytes) {
        eprintln!("error: cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("{out}: {} + {} triangles, {} bytes", band.triangles.len(), stone.triangles.len(), bytes.len());
    ExitCode::SUCCESS
}
