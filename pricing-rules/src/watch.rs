//! Hot reload: a watched directory whose valid edits take effect and whose broken edits are reported while the
//! last good version stays in force. Survives the Kubernetes ConfigMap update (a `..data` symlink swapped for a
//! new timestamped directory), because it reloads on any change in the directory.
//!
//! [`FileWatcher`] is generic over what is loaded: the rules ([`RulesWatcher`]) and the tenants file reload the
//! same way.

use std::fmt::Display;
use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};

use crate::load::{LoadError, RuleSet};

/// How reloading is going, for logs, metrics and health checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadStatus {
    pub version: String,
    pub loaded_at: SystemTime,
    /// The last reload that failed, if it has not been followed by a good one.
    pub last_error: Option<String>,
    pub failures: u64,
    pub reloads: u64,
}

/// What a [`FileWatcher`] keeps: anything loaded whole, with a version that changes when its content does.
pub trait Versioned: Send + Sync + 'static {
    fn version(&self) -> &str;
    /// What it is, for log lines ("pricing rules", "tenants file").
    const WHAT: &'static str;
}

impl Versioned for RuleSet {
    fn version(&self) -> &str {
        &self.version
    }
    const WHAT: &'static str = "pricing rules";
}

/// The version in force, swapped atomically when the watched directory changes.
#[derive(Debug)]
pub struct FileWatcher<T> {
    current: Arc<RwLock<Arc<T>>>,
    status: Arc<Mutex<ReloadStatus>>,
    _watcher: notify::RecommendedWatcher,
}

/// The rules in force, reloaded when their directory changes.
pub type RulesWatcher = FileWatcher<RuleSet>;

impl FileWatcher<RuleSet> {
    /// Loads `dir` (which must be valid) and watches it. Changes are applied after `debounce` without further
    /// events; the directory is also re-read every `poll` in case an event was missed.
    pub fn start(dir: &Path, debounce: Duration, poll: Duration) -> Result<RulesWatcher, WatchError> {
        let d = dir.to_owned();
        FileWatcher::watch(dir, debounce, poll, move || RuleSet::load_dir(&d))
    }
}

impl<T: Versioned> FileWatcher<T> {
    /// Loads with `load` (which must succeed the first time) and calls it again whenever `dir` changes (after
    /// `debounce` without further events) and every `poll`; an `Err` keeps the last good version in force.
    pub fn watch<E: Display + Send + 'static>(
        dir: &Path,
        debounce: Duration,
        poll: Duration,
        load: impl Fn() -> Result<T, E> + Send + 'static,
    ) -> Result<FileWatcher<T>, WatchError<E>> {
        let first = load().map_err(WatchError::Load)?;
        let status = Arc::new(Mutex::new(ReloadStatus {
            version: first.version().to_owned(),
            loaded_at: SystemTime::now(),
            last_error: None,
            failures: 0,
            reloads: 0,
        }));
        let current = Arc::new(RwLock::new(Arc::new(first)));
        let (tx, rx) = channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })
        .map_err(|e| WatchError::Watch(e.to_string()))?;
        watcher.watch(dir, RecursiveMode::NonRecursive).map_err(|e| WatchError::Watch(e.to_string()))?;

        let (cur, st) = (current.clone(), status.clone());
        std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || loop {
                match rx.recv_timeout(poll) {
                    Ok(_) => {
                        // Debounce: an editor's save or a ConfigMap swap is several events.
                        loop {
                            match rx.recv_timeout(debounce) {
                                Ok(_) => continue,
                                Err(RecvTimeoutError::Timeout) => break,
                                Err(RecvTimeoutError::Disconnected) => return,
                            }
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                reload(load(), &cur, &st);
            })
            .map_err(|e| WatchError::Watch(e.to_string()))?;
        Ok(FileWatcher { current, status, _watcher: watcher })
    }

    /// The version in force now.
    pub fn current(&self) -> Arc<T> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn reload<T: Versioned, E: Display>(result: Result<T, E>, current: &RwLock<Arc<T>>, status: &Mutex<ReloadStatus>) {
    let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
    match result {
        Ok(loaded) => {
            st.last_error = None;
            if loaded.version() != st.version {
                tracing::info!(version = %loaded.version(), previous = %st.version, "{} reloaded", T::WHAT);
                st.version = loaded.version().to_owned();
                st.loaded_at = SystemTime::now();
                st.reloads += 1;
                *current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
            }
        }
        Err(e) => {
            let message = e.to_string();
            if st.last_error.as_deref() != Some(message.as_str()) {
                st.failures += 1;
                tracing::warn!(version_in_force = %st.version, error = %message, "{} edit refused; the last good version stays in force", T::WHAT);
            }
            st.last_error = Some(message);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError<E = LoadError> {
    #[error("{0}")]
    Load(E),
    #[error("cannot watch the directory: {0}")]
    Watch(String),
}
