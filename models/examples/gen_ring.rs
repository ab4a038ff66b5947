//! Writes a deterministic closed ring band as STL, for benchmarks: `gen_ring OUT.stl [AROUND PROFILE] [--ascii]`.
//!
//! The default 2000 × 500 segments give 2,000,000 triangles (a 100 MB binary STL).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ascii = args.iter().any(|a| a == "--ascii");
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--ascii").collect();
    let Some(out) = rest.first() else {
        eprintln!("usage: gen_ring OUT.stl [AROUND PROFILE] [--ascii]");
        return ExitCode::FAILURE;
    };
    let num = |i: usize, default: u32| rest.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (around, profile) = (num(1, 2000), num(2, 500));
    // A size 9 US band: 18.9 mm inner diameter, 2 mm thick, 5 mm wide.
    let mesh = models::synth::ring_band(9.45, 11.45, 5.0, around, profile);
    let bytes =
        if ascii { models::to_ascii_stl(&mesh, "ring_band").into_bytes() } else { models::to_binary_stl(&mesh) };
    if let Err(e) = std::fs::write(out, &bytes) {
        eprintln!("error: cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("{out}: {} triangles, {} bytes", mesh.triangles.len(), bytes.len());
    ExitCode::SUCCESS
}
