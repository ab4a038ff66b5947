//! Hot reload: a watched rules directory whose valid edits take effect and whose broken edits are reported while
//! the last good rules stay in force. Survives the Kubernetes ConfigMap update (a `..data` symlink swapped for a
//! new timestamped directory), because it reloads the whole directory on any change in it.

use std::path::{Path, PathBuf};
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

/// The rules in force, swapped atomically when the directory changes.
#[derive(Debug)]
pub struct RulesWatcher {
    current: Arc<RwLock<Arc<RuleSet>>>,
    status: Arc<Mutex<ReloadStatus>>,
    _watcher: notify::RecommendedWatcher,
}

impl RulesWatcher {
    /// Loads `dir` (which must be valid) and watches it. Changes are applied after `debounce` without further
    /// events; the directory is also re-read every `poll` in case an event was missed.
    pub fn start(dir: &Path, debounce: Duration, poll: Duration) -> Result<RulesWatcher, WatchError> {
        let first = RuleSet::load_dir(dir).map_err(WatchError::Load)?;
        let status = Arc::new(Mutex::new(ReloadStatus {
            version: first.version.clone(),
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

        let (cur, st, dir): (_, _, PathBuf) = (current.clone(), status.clone(), dir.to_owned());
        std::thread::Builder::new()
            .name("rules-watch".into())
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
                reload(&dir, &cur, &st);
            })
            .map_err(|e| WatchError::Watch(e.to_string()))?;
        Ok(RulesWatcher { current, status, _watcher: watcher })
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn reload(dir: &Path, current: &RwLock<Arc<RuleSet>>, status: &Mutex<ReloadStatus>) {
    let result = RuleSet::load_dir(dir);
    let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
    match result {
        Ok(rules) => {
            st.last_error = None;
            if rules.version != st.version {
                tracing::info!(version = %rules.version, previous = %st.version, "pricing rules reloaded");
                st.version = rules.version.clone();
                st.loaded_at = SystemTime::now();
                st.reloads += 1;
                *current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
            }
        }
        Err(e) => {
            let message = e.to_string();
            if st.last_error.as_deref() != Some(message.as_str()) {
                st.failures += 1;
                tracing::warn!(version_in_force = %st.version, error = %message, "pricing rules edit refused; the last good rules stay in force");
            }
            st.last_error = Some(message);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Load(LoadError),
    #[error("cannot watch the rules directory: {0}")]
    Watch(String),
}
