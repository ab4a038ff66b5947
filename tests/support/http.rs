//! A running `assay serve` or `assay gateway` process, and a minimal HTTP/1.1 client for talking to it: enough
//! to send a body with any content type and read status, headers and JSON. No client library needed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout};
use std::time::Duration;

use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A child process killed when dropped, so a failing test leaves nothing running.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends one request on its own connection and reads the whole answer.
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).expect("send head");
    // The server may answer (413) before reading the body and close: a failed body write is not an error here.
    let _ = stream.write_all(body);
    read_response(stream)
}

/// Sends only the head of a request that announces `length` bytes, and reads the answer (for limits the
/// server enforces before reading the body).
pub fn request_head_only(addr: &str, path: &str, headers: &[(&str, &str)], length: u64) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {length}\r\n\r\n"));
    stream.write_all(head.as_bytes()).expect("send head");
    read_response(stream)
}

fn read_response(stream: TcpStream) -> Response {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let find = |name: &str| {
        headers.iter().find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line).expect("chunk size");
            let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body).expect("body");
    } else {
        reader.read_to_end(&mut body).expect("body");
    }
    Response { status, headers, body }
}

/// `assay ARGS... --kafka BOOTSTRAP` with JSON log lines into `log`, the group's session timeout and the topics'
/// partition count set: what every Kafka role of the system tests shares.
fn kafka_command(
    args: &[&str],
    bootstrap: &str,
    log: &Path,
    session_ms: u64,
    partitions: i32,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_assay"));
    cmd.args(args)
        .args(["--kafka", bootstrap])
        .env("ASSAY_LOG_FORMAT", "json")
        .env("ASSAY_SESSION_TIMEOUT_MS", session_ms.to_string())
        .env("ASSAY_TOPIC_PARTITIONS", partitions.to_string())
        .stderr(std::process::Stdio::from(std::fs::File::create(log).expect("log file")));
    cmd
}

/// Starts `assay ROLE --kafka BOOTSTRAP --store STORE --rules rules/` with JSON log lines into `log`, the
/// workers' session timeout and the topics' partition count set, and stdout piped (a gateway announces its
/// address there).
#[allow(dead_code, reason = "used by the Kafka system tests only")]
pub fn spawn_kafka_role(
    role: &[&str],
    bootstrap: &str,
    store: &str,
    log: &Path,
    session_ms: u64,
    partitions: i32,
) -> Proc {
    Proc(
        kafka_command(role, bootstrap, log, session_ms, partitions)
            .args(["--store", store])
            .arg("--rules")
            .arg(root().join("rules"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start assay"),
    )
}

/// Starts `assay notifier --kafka BOOTSTRAP --tenants TENANTS EXTRA...` with JSON log lines into `log`, the
/// group's session timeout and the topics' partition count set.
#[allow(dead_code, reason = "used by the Kafka system tests only")]
pub fn spawn_notifier(
    bootstrap: &str,
    tenants: &Path,
    log: &Path,
    session_ms: u64,
    partitions: i32,
    extra: &[&str],
) -> Proc {
    Proc(
        kafka_command(&["notifier"], bootstrap, log, session_ms, partitions)
            .arg("--tenants")
            .arg(tenants)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start assay notifier"),
    )
}

/// Starts `assay serve --listen 127.0.0.1:0 --data DATA ARGS...` from the repository's root, JSON log lines
/// into `DATA/LOG`; returns the process and the address it announced (its stdout is drained from then on).
pub fn spawn_serve(data: &Path, args: &[&std::ffi::OsStr], log: &str) -> (Proc, String) {
    std::fs::create_dir_all(data).expect("data directory");
    let stderr = std::fs::File::create(data.join(log)).expect("log file");
    let mut child = Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_assay"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(data)
            .args(args)
            .current_dir(root())
            .env("ASSAY_LOG_FORMAT", "json")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start assay serve"),
    );
    let (addr, out) = listening_address(&mut child);
    // Keep reading stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut { out }, &mut std::io::sink()));
    (child, addr)
}

/// Reads the process's announcement ("... listening on http://ADDR") and returns ADDR.
pub fn listening_address(child: &mut Child) -> (String, BufReader<ChildStdout>) {
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    for _ in 0..5 {
        line.clear();
        if out.read_line(&mut line).expect("read stdout") == 0 {
            break;
        }
        if let Some(addr) = line.trim().split("listening on http://").nth(1) {
            return (addr.to_owned(), out);
        }
    }
    panic!("the process did not say where it listens (last line {line:?})");
}

/// Polls a job until it has a final status.
pub fn wait_final(addr: &str, job_id: &str, headers: &[(&str, &str)], within: Duration) -> serde_json::Value {
    let until = std::time::Instant::now() + within;
    loop {
        let r = request(addr, "GET", &format!("/v1/quotes/{job_id}"), headers, b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let job = r.json();
        if job["status"] == "done" || job["status"] == "failed" {
            return job;
        }
        assert!(std::time::Instant::now() < until, "job {job_id} not final within {within:?}: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGTERM and waits for a clean exit.
pub fn terminate(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    let until = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("process {pid} did not stop within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("glb") => "model/gltf-binary",
        Some("gltf") => "model/gltf+json",
        _ => "model/stl",
    }
}

pub fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("stl" | "glb" | "gltf")))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

/// Every message of a job's event socket, until the server closes it.
pub async fn events(addr: &str, job_id: &str, key: Option<&str>) -> Vec<serde_json::Value> {
    let mut req = format!("ws://{addr}/v1/quotes/{job_id}/events").into_client_request().unwrap();
    if let Some(key) = key {
        req.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut got = Vec::new();
    let read = async {
        while let Some(m) = ws.next().await {
            match m.unwrap() {
                Message::Text(t) => got.push(serde_json::from_str(&t).unwrap()),
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read).await.expect("the socket closed after the result");
    got
}

/// Lints Prometheus text with `promtool check metrics` when promtool is installed (in CI it must be:
/// `.ci/run` installs it through scripts/check-alerts.sh); returns whether it ran.
pub fn promtool_check(text: &str) -> bool {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false"),
            "CI is set but promtool is missing: .ci/run installs it (scripts/check-alerts.sh)"
        );
        eprintln!("promtool is not installed: metrics lint skipped");
        return false;
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}
