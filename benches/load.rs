//! A bounded load run against the built `assay serve`: how many quotes per second it completes at saturation,
//! and the submit-to-result latency (p50, p99) at half that rate. Not a test: `cargo bench --bench load`.
//!
//! Each request uploads a model over HTTP and waits for the final result on the job's WebSocket. "Distinct"
//! models differ in their 80-byte STL header only: a new SHA-256, so no cache hit, and the same geometry to
//! measure every time. "Repeated" sends the same bytes, so the worker's geometry cache answers.
//! Every case runs twice on fresh `assay serve` processes: tracing off, and tracing on with every span exported
//! over OTLP/HTTP to a collector stand-in hosted by the benchmark (it decodes nothing and answers 200).
//! `ASSAY_LOAD_SECS` sets each phase's length (default 15 s). `ASSAY_BIN` runs another build of `assay` (an
//! earlier commit's, say) under the same load, for side-by-side figures; the service runs in a temporary
//! directory, on the rules built into the binary. `ASSAY_LOAD_CASES` runs only the cases whose name contains one
//! of its comma-separated words (`ASSAY_LOAD_CASES=distinct`, `small`), a word of parts joined by `+` matching a
//! name that contains every part (`small+distinct`).

#![allow(clippy::unwrap_used, reason = "a benchmark: a panic is the report")]

#[path = "../tests/support/http.rs"]
mod http;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::{self, Message};

/// One quote: upload, then wait on the WebSocket for the final result. Milliseconds from submit to result.
fn quote(addr: &str, model: &[u8]) -> Result<f64, String> {
    let started = Instant::now();
    let r = http::request(addr, "POST", "/v1/quotes?alloy=18k-yellow", &[("Content-Type", "model/stl")], model);
    if r.status != 202 {
        return Err(format!("submit: {} {}", r.status, String::from_utf8_lossy(&r.body)));
    }
    let id = r.json()["job_id"].as_str().unwrap().to_owned();
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/v1/quotes/{id}/events")).map_err(|e| e.to_string())?;
    loop {
        match ws.read().map_err(|e| e.to_string())? {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                match v["status"].as_str() {
                    Some("done") => return Ok(started.elapsed().as_secs_f64() * 1e3),
                    Some("failed") => return Err(format!("job failed: {}", v["error"])),
                    _ => {}
                }
            }
            Message::Close(_) => return Err("closed before the result".into()),
            _ => {}
        }
    }
}

/// Makes request `i`'s body: the template, with a header unique to `i` when `distinct`.
fn body(template: &[u8], i: usize, distinct: bool) -> Vec<u8> {
    let mut b = template.to_vec();
    if distinct {
        let tag = format!("assay load {i:020}");
        b[..tag.len()].copy_from_slice(tag.as_bytes());
    }
    b
}

/// Closed loop: `clients` threads submit back to back for `secs`; completions per second after a warm-up.
fn saturation(addr: &str, template: &Arc<Vec<u8>>, distinct: bool, clients: usize, secs: f64) -> (f64, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, template, next, done, errors) =
                (addr.to_owned(), template.clone(), next.clone(), done.clone(), errors.clone());
            std::thread::spawn(move || {
                while Instant::now() < end {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    match quote(&addr, &body(&template, i, distinct)) {
                        Ok(_) => done.lock().unwrap().push(Instant::now()),
                        Err(e) => {
                            eprintln!("error: {e}");
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let warm = start + Duration::from_secs_f64(secs * 0.2);
    let counted = done.lock().unwrap().iter().filter(|t| **t >= warm && **t <= end).count();
    (counted as f64 / (secs * 0.8), errors.load(Ordering::Relaxed))
}

/// Open loop: one request every 1/rate s for `secs`, each on its own thread; latencies in ms.
fn paced(addr: &str, template: &Arc<Vec<u8>>, distinct: bool, rate: f64, secs: f64) -> (Vec<f64>, usize) {
    let n = (rate * secs).ceil().max(1.0) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..n {
        let at = start + interval * i as u32;
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (addr, template, latencies, errors) =
            (addr.to_owned(), template.clone(), latencies.clone(), errors.clone());
        // Offset the request numbers so paced jobs never reuse a saturation job's model.
        threads.push(std::thread::spawn(move || match quote(&addr, &body(&template, 1_000_000 + i, distinct)) {
            Ok(ms) => latencies.lock().unwrap().push(ms),
            Err(e) => {
                eprintln!("error: {e}");
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    (l, errors.load(Ordering::Relaxed))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A stand-in OTLP/HTTP collector: accepts every export, counts the bytes. Returns its endpoint.
fn collector(bytes: Arc<AtomicUsize>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let bytes = bytes.clone();
                    async move {
                        bytes.fetch_add(body.len(), Ordering::Relaxed);
                        ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                    }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{addr}")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: f64 = std::env::var("ASSAY_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(15.0);
    let exported = Arc::new(AtomicUsize::new(0));
    let endpoint = collector(exported.clone());

    // Small: about 20,000 triangles (1 MB); large: 500,000 triangles (25 MB). Ring bands of a size 9 US ring.
    let small = Arc::new(models::to_binary_stl(&models::synth::ring_band(9.45, 11.45, 5.0, 100, 100)));
    let large = Arc::new(models::to_binary_stl(&models::synth::ring_band(9.45, 11.45, 5.0, 500, 500)));
    let cases: [(&str, &Arc<Vec<u8>>, bool, usize); 3] = [
        ("small (20k triangles, 1 MB), distinct", &small, true, 8),
        ("small (20k triangles, 1 MB), repeated", &small, false, 8),
        ("large (500k triangles, 25 MB), distinct", &large, true, 4),
    ];
    println!("| model | tracing | clients | quotes/s at saturation | rate for latency (/s) | p50 (ms) | p99 (ms) | quotes timed | errors |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let only: Vec<String> = std::env::var("ASSAY_LOAD_CASES")
        .map(|v| v.split(',').map(|w| w.trim().to_owned()).filter(|w| !w.is_empty()).collect())
        .unwrap_or_default();
    for (name, template, distinct, clients) in cases {
        if !only.is_empty() && !only.iter().any(|w| w.split('+').all(|part| name.contains(part))) {
            continue;
        }
        for traced in [false, true] {
            let data = tempfile::tempdir().unwrap();
            let bin = std::env::var_os("ASSAY_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_assay").into());
            let mut cmd = Command::new(bin);
            cmd.args(["serve", "--listen", "127.0.0.1:0", "--max-upload-mb", "64"])
                .arg("--data")
                .arg(data.path())
                .current_dir(data.path())
                .env("ASSAY_LOG", "warn")
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
            if traced {
                cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint).env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
            }
            let mut child = http::Proc(cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap());
            let (addr, out) = http::listening_address(&mut child);
            std::thread::spawn(move || std::io::copy(&mut { out }, &mut std::io::sink()));
            let (rate, e1) = saturation(&addr, template, distinct, clients, secs);
            let half = rate / 2.0;
            let (lat, e2) = paced(&addr, template, distinct, half, secs);
            println!(
                "| {name} | {} | {clients} | {rate:.1} | {half:.1} | {:.1} | {:.1} | {} | {} |",
                if traced { "on" } else { "off" },
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                lat.len(),
                e1 + e2
            );
            let status = http::terminate(&mut child, Duration::from_secs(60));
            assert!(status.success(), "assay serve exit: {status:?}");
        }
    }
    eprintln!("spans exported: {} bytes of OTLP", exported.load(Ordering::Relaxed));
}
