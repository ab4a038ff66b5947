//! Writes the sample solitaire ring `samples/solitaire_ring.glb`: a closed band (material "Yellow gold") with a
//! 3 mm octahedral stone (material "Diamond") resting on top, in metres as glTF wants. It shows how a glTF model
//! tells gems from metal by material name. `cargo run -p models --example gen_sample_glb -- OUT.glb`

use std::process::ExitCode;

use models::synth::{glb, octahedron, GlbPart};

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
    let bytes = glb(&[
        GlbPart::new("Yellow gold", &band, [1.0, 0.78, 0.34, 1.0]),
        GlbPart::new("Diamond", &stone, [0.95, 0.97, 1.0, 1.0]),
    ]);
    if let Err(e) = std::fs::write(&out, &bytes) {
        eprintln!("error: cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("{out}: {} + {} triangles, {} bytes", band.triangles.len(), stone.triangles.len(), bytes.len());
    ExitCode::SUCCESS
}
