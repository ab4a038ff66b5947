//! Criterion benchmarks of the geometry engine on a generated closed ring band (see `models::synth`).
//!
//! `cargo bench --bench geometry`. The whole-command comparison with trimesh and admesh is `benches/compare.sh`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn geometry(c: &mut Criterion) {
    let options = models::ParseOptions::default();
    let mut group = c.benchmark_group("geometry");
    group.sample_size(10);
    // 200k and 2M triangles: a detailed ring, and the target size of a very detailed one.
    for (around, profile) in [(400u32, 250u32), (2000, 500)] {
        let mesh = models::synth::ring_band(9.45, 11.45, 5.0, around, profile);
        let triangles = mesh.triangles.len();
        let stl = models::to_binary_stl(&mesh);
        group.throughput(Throughput::Bytes(stl.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse_binary_stl", triangles), &stl, |b, stl| {
            b.iter(|| models::parse(stl, &options).expect("parse"))
        });
        let parsed = models::parse(&stl, &options).expect("parse");
        group.throughput(Throughput::Elements(triangles as u64));
        group.bench_with_input(BenchmarkId::new("analyze", triangles), &parsed, |b, mesh| {
            b.iter(|| models::analyze(mesh))
        });
        group.throughput(Throughput::Bytes(stl.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse_and_analyze_binary_stl", triangles), &stl, |b, stl| {
            b.iter(|| models::analyze_bytes(stl, &options).expect("analyze"))
        });
    }
    let mesh = models::synth::ring_band(9.45, 11.45, 5.0, 400, 250);
    let ascii = models::to_ascii_stl(&mesh, "band");
    group.throughput(Throughput::Bytes(ascii.len() as u64));
    group.bench_with_input(BenchmarkId::new("parse_ascii_stl", mesh.triangles.len()), &ascii, |b, text| {
        b.iter(|| models::parse(text.as_bytes(), &options).expect("parse"))
    });
    group.finish();
}

criterion_group!(benches, geometry);
criterion_main!(benches);
