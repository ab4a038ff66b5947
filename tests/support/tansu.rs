//! Starting the tansu broker for a test or a benchmark: where it is installed, and a child process on a free
//! loopback port that is killed when dropped. Its log (warnings, and the group coordinator's decisions such as
//! "missed heartbeat") goes to `tansu.log` in its working directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The installed tansu (`$TANSU`, `$TANSU_ROOT/bin/tansu` or `~/.cargo/bin/tansu`), if any.
pub fn installed() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TANSU").map(PathBuf::from),
        std::env::var_os("TANSU_ROOT").map(|r| PathBuf::from(r).join("bin/tansu")),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// The tansu a system test should use: the installed one; when there is none, `None` after saying the test is
/// skipped, except in CI (`CI` set), where `.ci/run` installs it and a missing broker is a failure.
#[allow(dead_code, reason = "used by the system tests, not by the benchmark")]
pub fn for_test() -> Option<PathBuf> {
    if let Some(t) = installed() {
        return Some(t);
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("CI is set but tansu is not installed: .ci/run runs scripts/install-tansu.sh before the tests");
    }
    eprintln!("skipped: tansu is not installed (scripts/install-tansu.sh installs it)");
    None
}

/// A running broker; killed when dropped.
pub struct Broker {
    child: Child,
    pub bootstrap: String,
    #[allow(dead_code, reason = "read by the system test, not by the benchmark")]
    pub log: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// The broker's process id (to freeze it with SIGSTOP and thaw it with SIGCONT).
    #[allow(dead_code, reason = "used by the chaos run only")]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts tansu with in-memory storage on a free loopback port, in `workdir` (tansu reads a `.env` there), and
/// waits until it accepts connections.
pub fn start(tansu: &Path, workdir: &Path) -> Broker {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let bootstrap = format!("127.0.0.1:{port}");
    let url = format!("tcp://{bootstrap}");
    let log_path = workdir.join("tansu.log");
    let log = std::fs::File::create(&log_path).expect("create tansu.log");
    let child = Command::new(tansu)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .current_dir(workdir)
        .env("RUST_LOG", "warn,tansu_broker::coordinator::group=info")
        .stdout(Stdio::from(log.try_clone().expect("log file")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start tansu");
    let broker = Broker { child, bootstrap, log: log_path };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&broker.bootstrap).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {}", broker.bootstrap);
        std::thread::sleep(Duration::from_millis(100));
    }
    broker
}
