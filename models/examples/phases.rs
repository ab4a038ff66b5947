//! Times the phases of reading one model: `phases FILE` (a development aid, not a benchmark).

use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: phases FILE");
    let t = Instant::now();
    let bytes = std::fs::read(&path).expect("read");
    let read = t.elapsed();
    let t = Instant::now();
    let mesh = models::parse(&bytes, &models::ParseOptions::default()).expect("parse");
    let parse = t.elapsed();
    let t = Instant::now();
    let report = models::analyze(&mesh);
    let analyze = t.elapsed();
    eprintln!("read {read:?} parse+weld {parse:?} analyze {analyze:?} ({} triangles)", report.triangles);
}
