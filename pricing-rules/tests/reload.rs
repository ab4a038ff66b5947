//! Hot reload: a valid edit takes effect, a broken edit keeps the old version and is reported, and a Kubernetes
//! ConfigMap update (a `..data` symlink swapped to a new directory) is seen.
//!
//! Each test waits for the watcher to notice, up to a generous deadline; nothing here measures speed.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use pricing_rules::{RuleSet, RulesWatcher};

fn write_rules(dir: &Path, metals: &str) {
    for (name, text) in with("metals.toml", metals) {
        std::fs::write(dir.join(name), text).expect("write rules");
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "the watcher did not see: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(dir: &Path) -> RulesWatcher {
    RulesWatcher::start(dir, Duration::from_millis(100), Duration::from_secs(60)).expect("watcher starts")
}

#[test]
fn a_valid_edit_takes_effect_and_a_broken_one_keeps_the_last_good_rules() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), METALS);
    let watcher = start(dir.path());
    let first = watcher.current();
    assert_eq!(first.metals["gold"], "100".parse().unwrap());

    std::fs::write(dir.path().join("metals.toml"), METALS.replace("gold = 100.00", "gold = 101.50")).unwrap();
    wait_for("the new gold price", || watcher.current().metals["gold"] == "101.5".parse().unwrap());
    let second = watcher.current();
    assert_ne!(second.version, first.version);
    assert_eq!(watcher.status().version, second.version);

    std::fs::write(dir.path().join("metals.toml"), METALS.replace("gold = 100.00", "gold = -1")).unwrap();
    wait_for("the broken edit reported", || watcher.status().last_error.is_some());
    let status = watcher.status();
    assert!(status.last_error.unwrap().contains("metals.toml:7:8: price_per_g.gold is -1: expected more than 0"));
    assert_eq!(status.failures, 1);
    assert_eq!(watcher.current().version, second.version, "the last good rules stay in force");

    std::fs::write(dir.path().join("metals.toml"), METALS).unwrap();
    wait_for("the repair", || watcher.current().version == first.version && watcher.status().last_error.is_none());
}

#[cfg(unix)]
#[test]
fn a_configmap_style_symlink_swap_is_seen() {
    use std::os::unix::fs::symlink;
    // The layout kubelet makes: files are links through `..data`, which points at a timestamped directory.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("..2026_11_25_01")).unwrap();
    write_rules(&root.join("..2026_11_25_01"), METALS);
    symlink("..2026_11_25_01", root.join("..data")).unwrap();
    for (name, _) in texts() {
        symlink(format!("..data/{name}"), root.join(&name)).unwrap();
    }
    let watcher = start(root);
    let first = watcher.current().version.clone();

    // An update: a new directory, a temporary link to it, renamed over `..data` (atomic), the old one removed.
    std::fs::create_dir(root.join("..2026_11_25_02")).unwrap();
    write_rules(&root.join("..2026_11_25_02"), &METALS.replace("silver = 1.50", "silver = 1.62"));
    symlink("..2026_11_25_02", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_11_25_01")).unwrap();

    wait_for("the swapped ConfigMap", || watcher.current().metals["silver"] == "1.62".parse().unwrap());
    assert_ne!(watcher.current().version, first);
    assert_eq!(watcher.current().version, RuleSet::load_dir(root).unwrap().version);
}
