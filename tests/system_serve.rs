//! The built `assay serve` binary as a user runs it: every shipped sample model submitted over HTTP, each result
//! received over the WebSocket and by polling (the same, with timings); every kind of bad input answered with
//! the right status and a clear message while the process keeps serving; SIGTERM stops it cleanly.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

#[path = "support/http.rs"]
mod http;

use std::process::{Command, Stdio};
use std::time::Duration;

use http::{events, request, request_head_only, root, samples, wait_final};

const KEY: &str = "system-test-key-0123456789";

/// A bad request: path, headers, body, and the status, code and allowed values the answer must have.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str, &'a str);

#[test]
fn assay_serve_prices_every_sample_and_refuses_bad_input_without_falling_over() {
    let data = tempfile::tempdir().unwrap();
    let mut child = http::Proc(
        Command::new(env!("CARGO_BIN_EXE_assay"))
            .args(["serve", "--listen", "127.0.0.1:0", "--max-upload-mb", "8"])
            .arg("--data")
            .arg(data.path())
            .current_dir(root())
            .env("ASSAY_API_KEYS", format!("{KEY},second-key-for-rotation-00"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (addr, _stdout) = http::listening_address(&mut child);
    let auth = format!("Bearer {KEY}");
    let auth = [("Authorization", auth.as_str())];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // Every shipped sample: submitted, pushed, polled, the same answer both ways.
    for file in samples() {
        let bytes = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let r = request(
            &addr,
            "POST",
            "/v1/quotes?alloy=18k-yellow&alloy=pt950",
            &[auth[0], ("Content-Type", http::content_type(&file))],
            &bytes,
        );
        assert_eq!(r.status, 202, "{name}: {}", String::from_utf8_lossy(&r.body));
        let id = r.json()["job_id"].as_str().unwrap().to_owned();
        let pushed = runtime.block_on(events(&addr, &id, Some(KEY)));
        let last = pushed.last().unwrap_or_else(|| panic!("{name}: nothing pushed"));
        let polled = wait_final(&addr, &id, &auth, Duration::from_secs(60));
        assert_eq!(*last, polled, "{name}: the pushed and the polled result differ");
        assert_eq!(polled["status"], "done", "{name}: {polled}");
        assert_eq!(polled["quotes"].as_array().unwrap().len(), 2, "{name}");
        let t = &polled["timings_ms"];
        for stage in ["queue_wait", "fetch", "parse", "analyze", "price", "total"] {
            assert!(t[stage].as_f64().is_some(), "{name}: no {stage} timing in {t}");
        }
        assert!(t["total"].as_f64().unwrap() > 0.0 && t["parse"].as_f64().unwrap() > 0.0, "{name}: {t}");
        assert!(polled["geometry"]["triangles"].as_u64().unwrap() > 0);
        if name.ends_with(".glb") {
            assert_eq!(polled["detected_stones"][0]["kind"], "diamond", "{name}: the gem is found by material");
        }
    }

    // Bad input, each against the running process: status, code, and what is allowed.
    let ring = std::fs::read(root().join("samples/pixelverse_ring.stl")).unwrap();
    let cases: Vec<Case> = vec![
        ("/v1/quotes", vec![("Content-Type", "model/stl")], ring.clone(), 401, "unauthorized", "Bearer"),
        ("/v1/quotes", vec![auth[0], ("Content-Type", "image/png")], ring.clone(), 415, "unsupported_media_type", "model/gltf-binary"),
        ("/v1/quotes?alloy=19k", vec![auth[0], ("Content-Type", "model/stl")], ring.clone(), 422, "unknown_alloy", "18k-yellow"),
        ("/v1/quotes?segment=vip", vec![auth[0], ("Content-Type", "model/stl")], ring.clone(), 422, "unknown_segment", "b2b"),
        ("/v1/quotes?colour=red", vec![auth[0], ("Content-Type", "model/stl")], ring.clone(), 400, "unknown_parameter", "alloy"),
        ("/v1/quotes", vec![auth[0], ("Content-Type", "model/stl")], Vec::new(), 400, "empty_model", "body"),
        ("/v1/quotes", vec![auth[0], ("Content-Type", "application/octet-stream")], b"GIF89a".to_vec(), 415, "unknown_format", "model/stl"),
        (
            "/v1/quotes",
            vec![auth[0], ("Content-Type", "multipart/form-data; boundary=XyZ")],
            b"--XyZ\r\nContent-Disposition: form-data; name=\"options\"\r\n\r\n{\"alloys\":[\"pt950\"],\"qty\":2}\r\n--XyZ--\r\n".to_vec(),
            422,
            "invalid_options",
            "unknown field `qty`",
        ),
    ];
    for (path, headers, body, status, code, allowed) in cases {
        let r = request(&addr, "POST", path, &headers, &body);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, status, "{path} {headers:?}: {text}");
        let json = r.json();
        assert_eq!(json["error"]["code"], code, "{text}");
        assert!(json["error"]["message"].as_str().unwrap().contains(allowed), "{text} should mention {allowed}");
        assert!(!text.contains(KEY), "a key is never echoed");
    }
    // Over the limit, refused from the announced length before a byte of the body is read.
    let r = request_head_only(&addr, "/v1/quotes", &[auth[0], ("Content-Type", "model/stl")], 50 << 20);
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (413, Some("too_large")));
    let r = request(&addr, "GET", "/v1/quotes/no-such-job", &auth, b"");
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (404, Some("not_found")));
    // A malformed model is accepted, then its job fails with the parse error.
    let r = request(
        &addr,
        "POST",
        "/v1/quotes",
        &[auth[0], ("Content-Type", "model/stl")],
        b"solid broken\nfacet normal 0 0 1\n",
    );
    assert_eq!(r.status, 202);
    let failed = wait_final(&addr, r.json()["job_id"].as_str().unwrap(), &auth, Duration::from_secs(30));
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"]["code"].as_str().unwrap().starts_with("stl_"), "{failed}");

    // Still healthy, still pricing, and the refusals were counted.
    assert!(child.try_wait().unwrap().is_none(), "the process is still running");
    assert_eq!(request(&addr, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(request(&addr, "GET", "/readyz", &[], b"").status, 200);
    let r = request(&addr, "POST", "/v1/quotes", &[auth[0], ("Content-Type", "model/stl")], &ring);
    assert_eq!(
        wait_final(&addr, r.json()["job_id"].as_str().unwrap(), &auth, Duration::from_secs(30))["status"],
        "done"
    );
    let metrics = String::from_utf8(request(&addr, "GET", "/metrics", &[], b"").body).unwrap();
    assert!(
        metrics.contains(r#"assay_http_requests_total{route="/v1/quotes",method="POST",status="415"} 2"#),
        "{metrics}"
    );

    let status = http::terminate(&mut child, Duration::from_secs(30));
    assert!(status.success(), "assay serve exits 0 on SIGTERM: {status:?}");
}

/// Finance edits the rules directory of a running `assay serve`: a valid edit reaches the next quote (new
/// version, new price) without a restart; a broken edit is refused and the last good rules stay in force.
#[test]
fn a_rules_edit_reaches_the_running_service_and_a_broken_one_does_not() {
    let rules = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, rules.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let data = tempfile::tempdir().unwrap();
    let mut child = http::Proc(
        Command::new(env!("CARGO_BIN_EXE_assay"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(data.path())
            .arg("--rules")
            .arg(rules.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (addr, _stdout) = http::listening_address(&mut child);
    let ring = std::fs::read(root().join("samples/pixelverse_ring.stl")).unwrap();
    let quote = || {
        let r = request(&addr, "POST", "/v1/quotes?alloy=18k-yellow", &[("Content-Type", "model/stl")], &ring);
        wait_final(&addr, r.json()["job_id"].as_str().unwrap(), &[], Duration::from_secs(30))
    };
    let version = || request(&addr, "GET", "/v1/rules", &[], b"").json();
    let before = quote();
    let v1 = version();
    assert_eq!(before["rules_version"], v1["version"]);

    let metals = rules.path().join("metals.toml");
    let text = std::fs::read_to_string(&metals).unwrap();
    std::fs::write(&metals, text.replace("gold = 118.40", "gold = 130.00")).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while version()["version"] == v1["version"] {
        assert!(std::time::Instant::now() < until, "the edit was not picked up within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = quote();
    assert_eq!(after["rules_version"], version()["version"]);
    let total = |q: &serde_json::Value| q["quotes"][0]["total"].as_str().unwrap().parse::<f64>().unwrap();
    assert!(
        total(&after) > total(&before),
        "a dearer gold price makes a dearer ring: {} then {}",
        total(&before),
        total(&after)
    );

    // A broken edit: refused, reported, and the last good rules keep pricing.
    std::fs::write(&metals, "format = 1\ncurrency = \"EUR\"\n[price_per_g\n").unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while version()["reload"]["last_error"].is_null() {
        assert!(std::time::Instant::now() < until, "the broken edit was not noticed within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = version();
    assert!(v["reload"]["last_error"].as_str().unwrap().contains("metals.toml"), "{v}");
    let still = quote();
    assert_eq!(still["status"], "done");
    assert_eq!(still["rules_version"], after["rules_version"]);
    assert!(http::terminate(&mut child, Duration::from_secs(30)).success());
}
