//! Writes deterministic closed ring bands as STL, for benchmarks:
//! `gen_ring OUT.stl [AROUND PROFILE] [--ascii] [--order mesh|halves|shuffled] [--shells N]`.
//!
//! The default 2000 × 500 segments give 2,000,000 triangles (a 100 MB binary STL). `--order` writes the same
//! triangles in another order: `mesh` as the band is built (each quad's two triangles together), `halves` the
//! first triangle of every quad and then the second (as a numpy generator writes it), `shuffled` in a seeded
//! random order. `--shells N` writes N bands, each 2 mm along x from the last, so that each overlaps its
//! neighbours: a many-shell model whose solid needs the union.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ascii = args.iter().any(|a| a == "--ascii");
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let order = value("--order").unwrap_or_else(|| "mesh".into());
    let shells: u32 = value("--shells").and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rest: Vec<&String> = Vec::new();
    let mut skip = false;
    for a in &args {
        if skip {
            skip = false;
        } else if a == "--order" || a == "--shells" {
            skip = true;
        } else if a != "--ascii" {
            rest.push(a);
        }
    }
    let Some(out) = rest.first() else {
        eprintln!("usage: gen_ring OUT.stl [AROUND PROFILE] [--ascii] [--order mesh|halves|shuffled] [--shells N]");
        return ExitCode::FAILURE;
    };
    let num = |i: usize, default: u32| rest.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (around, profile) = (num(1, 2000), num(2, 500));
    // A size 9 US band: 18.9 mm inner diameter, 2 mm thick, 5 mm wide.
    let band = models::synth::ring_band(9.45, 11.45, 5.0, around, profile);
    let mut mesh = band.clone();
    for s in 1..shells {
        let base = mesh.positions.len() as u32;
        mesh.positions.extend(band.positions.iter().map(|p| [p[0] + 2.0 * f64::from(s), p[1], p[2]]));
        mesh.triangles.extend(band.triangles.iter().map(|t| t.map(|v| v + base)));
    }
    match order.as_str() {
        "mesh" => {}
        "halves" => {
            let (first, second): (Vec<_>, Vec<_>) = mesh.triangles.chunks(2).map(|q| (q[0], q[1])).unzip();
            mesh.triangles = first.into_iter().chain(second).collect();
        }
        "shuffled" => {
            // xorshift64, seeded: the same file every time.
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            for i in (1..mesh.triangles.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                mesh.triangles.swap(i, (state % (i as u64 + 1)) as usize);
            }
        }
        other => {
            eprintln!("error: --order {other}: expected mesh, halves or shuffled");
            return ExitCode::FAILURE;
        }
    }
    let bytes =
        if ascii { models::to_ascii_stl(&mesh, "ring_band").into_bytes() } else { models::to_binary_stl(&mesh) };
    if let Err(e) = std::fs::write(out, &bytes) {
        eprintln!("error: cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("{out}: {} triangles, {} bytes", mesh.triangles.len(), bytes.len());
    ExitCode::SUCCESS
}
