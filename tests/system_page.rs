//! The quote page in a real browser: headless Chromium (Debian's chromium and chromium-driver, driven by Python
//! selenium; `scripts/install-browser.sh` installs them when missing) opens the page on a fresh `assay serve`,
//! chooses every shipped sample in the file input, and must show the same total per alloy that `GET
//! /v1/quotes/{id}` returns for that job; the 3D view is not blank; the console has no errors; a file that is not
//! a model gets a readable sentence, not JSON.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

#[path = "support/http.rs"]
mod http;

use std::process::Command;

use http::{request, root, samples};

#[test]
fn a_customer_prices_every_sample_in_a_real_browser() {
    let installed = Command::new(root().join("scripts/install-browser.sh")).status().expect("run install-browser.sh");
    assert!(installed.success(), "scripts/install-browser.sh failed: the test needs chromium, chromedriver, selenium");
    let dir = tempfile::tempdir().unwrap();
    let (_serve, addr) = http::spawn_serve(&dir.path().join("data"), &[], "serve.log");
    // The samples, and the same ring compressed with Draco and with meshopt (decoded in the browser for the view).
    let mut models: Vec<String> = samples().iter().map(|p| p.display().to_string()).collect();
    for f in ["ring_gltf_pipeline_draco.glb", "ring_gltfpack_cc.glb"] {
        models.push(root().join("models/tests/data/compressed").join(f).display().to_string());
    }
    let out = Command::new("python3")
        .arg(root().join("scripts/page-browser.py"))
        .args(["--url", &format!("http://{addr}/")])
        .arg("--not-a-model")
        .arg(root().join("README.md"))
        .args(&models)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("page loaded in {} ms (navigation), ready in {} ms", seen["load_ms_navigation"], seen["load_ms"]);

    let found = seen["models"].as_array().unwrap();
    assert_eq!(found.len(), models.len());
    for m in found {
        let file = m["file"].as_str().unwrap();
        let id = m["job_id"].as_str().unwrap();
        let job = request(&addr, "GET", &format!("/v1/quotes/{id}"), &[], b"").json();
        assert_eq!(job["status"], "done", "{file}: {job}");
        assert_eq!(m["status"], "done", "{file}");
        let quotes = job["quotes"].as_array().unwrap();
        assert_eq!(m["totals"].as_object().unwrap().len(), quotes.len(), "{file}: one card per alloy");
        for q in quotes {
            let alloy = q["alloy"].as_str().unwrap();
            let on_page = &m["totals"][alloy];
            assert_eq!(on_page["total"], q["total"], "{file} {alloy}: the page shows the API's total");
            let digits: String = q["total"].as_str().unwrap().chars().filter(char::is_ascii_digit).collect();
            let shown: String = on_page["shown"].as_str().unwrap().chars().filter(char::is_ascii_digit).collect();
            assert_eq!(shown, digits, "{file} {alloy}: the visible text is that amount");
            assert_eq!(on_page["castable"].as_str().unwrap(), q["castable"].to_string(), "{file} {alloy}");
        }
        assert_eq!(m["drawn"], true, "{file}: the 3D view did not draw it");
        assert!(m["canvas_colours"].as_u64().unwrap() > 1, "{file}: the 3D view is blank");
        assert_eq!(m["stages"].as_array().unwrap().len(), 6, "{file}: the stage timings are shown");
        assert_eq!(m["problem"], "", "{file}");
    }
    assert_eq!(seen["phone_overflow_px"], 0, "nothing wider than a phone's window");
    let console = seen["console"].as_array().unwrap();
    assert!(console.iter().all(|e| e["level"] != "SEVERE"), "console errors: {console:?}");
    let refusal = seen["not_a_model"].as_str().unwrap();
    assert!(refusal.contains("is not a model") && !refusal.contains('{'), "a readable refusal: {refusal}");
    // The only thing logged after the refusal is Chromium's note of the 415 itself.
    for e in seen["console_after_refusal"].as_array().unwrap() {
        assert!(e["message"].as_str().unwrap().contains("status of 415"), "{e}");
    }
}

/// Runs the page driver; its JSON.
fn drive(args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3").arg(root().join("scripts/page-browser.py")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn with_keys_the_page_works_with_a_session_and_refuses_an_expired_or_forged_one() {
    let installed = Command::new(root().join("scripts/install-browser.sh")).status().expect("run install-browser.sh");
    assert!(installed.success(), "scripts/install-browser.sh failed");
    let key = "shop-key-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let (_serve, addr) =
        http::spawn_serve(&dir.path().join("data"), &["--api-key".as_ref(), key.as_ref()], "serve.log");
    let auth = format!("Bearer {key}");
    let session = |body: &str| {
        let r = request(
            &addr,
            "POST",
            "/v1/sessions",
            &[("Authorization", &auth), ("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    };
    // Without a session the page says it needs a link from the shop, and the key never reaches the browser.
    let bare = drive(&["--probe", "--url", &format!("http://{addr}/")]);
    assert_eq!(bare["usable"], false);
    assert!(bare["problem"].as_str().unwrap().contains("needs a quote link"), "{bare}");

    // A session for b2b, two quotes: the page prices a sample in b2b.
    let s = session(r#"{"segment": "b2b", "quotes": 2, "ttl_secs": 600}"#);
    let url = format!("http://{addr}{}", s["url"].as_str().unwrap());
    let ring = root().join("samples/pixelverse_ring.stl").display().to_string();
    let seen = drive(&["--url", &url, &ring]);
    let m = &seen["models"][0];
    let job = request(
        &addr,
        "GET",
        &format!("/v1/quotes/{}", m["job_id"].as_str().unwrap()),
        &[("Authorization", &auth)],
        b"",
    )
    .json();
    assert_eq!((job["status"].as_str(), job["segment"].as_str()), (Some("done"), Some("b2b")), "{job}");
    for q in job["quotes"].as_array().unwrap() {
        assert_eq!(m["totals"][q["alloy"].as_str().unwrap()]["total"], q["total"]);
    }
    // The token cannot ask for another segment, nor make sessions.
    let token = s["token"].as_str().unwrap();
    let bearer = format!("Bearer {token}");
    let r = request(
        &addr,
        "POST",
        "/v1/quotes?segment=b2c",
        &[("Authorization", &bearer), ("Content-Type", "model/stl")],
        &std::fs::read(&ring).unwrap(),
    );
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (403, Some("segment_not_allowed")));
    let r = request(&addr, "POST", "/v1/sessions", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 401);

    // Expired: a clear sentence on the page, 401 from the API.
    let short = session(r#"{"ttl_secs": 1}"#);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let expired = drive(&["--probe", "--url", &format!("http://{addr}{}", short["url"].as_str().unwrap())]);
    assert_eq!(expired["usable"], false);
    assert!(expired["problem"].as_str().unwrap().contains("expired or is not valid"), "{expired}");
    let r = request(
        &addr,
        "GET",
        "/v1/rules",
        &[("Authorization", &format!("Bearer {}", short["token"].as_str().unwrap()))],
        b"",
    );
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("session_expired")));
    // Forged: the claims changed, the signature kept.
    let (body, sig) = token.rsplit_once('.').unwrap();
    let forged = format!("{}x.{sig}", body);
    let r = request(&addr, "GET", "/v1/rules", &[("Authorization", &format!("Bearer {forged}"))], b"");
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("session_invalid")));
}
