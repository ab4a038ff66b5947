//! The webhook receiver of the system tests: `scripts/webhook-receiver.py`, which verifies every request with
//! the official Standard Webhooks library for Python, started on a free port, and what it logged.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::http::{root, Proc};

pub struct Receiver {
    pub proc: Proc,
    pub port: u16,
    pub log: PathBuf,
}

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub id: String,
    pub verified: bool,
    pub answered: Option<u64>,
    pub job_id: Option<String>,
    pub status: Option<String>,
    /// When the receiver answered (seconds since the Unix epoch).
    pub at: f64,
}

/// Starts the receiver with `secret`; `gate` is the file whose existence opens `/gate`.
pub fn start(secret: &str, dir: &Path, gate: &Path) -> Receiver {
    // The library from PyPI, installed when missing (idempotent; `.ci/run` runs the same script first).
    let installed =
        Command::new(root().join("scripts/install-test-tools.sh")).status().expect("run install-test-tools.sh");
    assert!(installed.success(), "scripts/install-test-tools.sh failed: the receiver needs standardwebhooks from PyPI");
    let log = dir.join("received.jsonl");
    let mut child = Proc(
        Command::new("python3")
            .arg(root().join("scripts/webhook-receiver.py"))
            .args(["--secret", secret])
            .arg("--log")
            .arg(&log)
            .arg("--gate")
            .arg(gate)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the webhook receiver"),
    );
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("the receiver's first line");
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the receiver did not start: {line:?} (is standardwebhooks installed?)"));
    Receiver { proc: child, port, log }
}

impl Receiver {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                let s = |k: &str| v[k].as_str().map(str::to_owned);
                Seen {
                    path: s("path").unwrap_or_default(),
                    id: s("id").unwrap_or_default(),
                    verified: v["verified"].as_bool().unwrap_or(false),
                    answered: v["answered"].as_u64(),
                    job_id: s("job_id"),
                    status: s("status"),
                    at: v["at"].as_f64().unwrap_or(0.0),
                }
            })
            .collect()
    }
}
