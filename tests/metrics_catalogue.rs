//! Metric names are defined once (`jobs::metric`): every metric the dashboard and the alert rules query exists in
//! that catalogue, every catalogued metric is documented in `k8s/observability/README.md`, and no code records a
//! metric by a name written out at the call site.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Every `assay_...` metric name a text mentions, with the histogram series suffixes taken off.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("assay_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        let name = &text[start..end];
        let name = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        // `assay_` preceded by a letter is part of another word (a job name such as `up{job="assay-..."}` uses a
        // hyphen, so it never matches).
        let glued = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !glued {
            names.insert(name.to_owned());
        }
        i = end.max(start + 1);
    }
    names
}

fn catalogue() -> BTreeSet<String> {
    jobs::metric::CATALOGUE.iter().map(|m| m.name.to_owned()).collect()
}

#[test]
fn every_metric_the_dashboard_and_the_alerts_use_is_recorded() {
    let known = catalogue();
    for file in ["dashboard.json", "alerts.yaml", "alerts.test.yaml", "prometheusrule.yaml"] {
        let text = std::fs::read_to_string(root().join("k8s/observability").join(file)).expect(file);
        let used = names_in(&text);
        assert!(!used.is_empty(), "{file} names no metric");
        let unknown: Vec<&String> = used.difference(&known).collect();
        assert!(unknown.is_empty(), "{file} uses metrics no code records: {unknown:?}");
    }
}

#[test]
fn every_recorded_metric_is_documented() {
    let readme = std::fs::read_to_string(root().join("k8s/observability/README.md")).expect("README");
    for m in jobs::metric::CATALOGUE {
        assert!(readme.contains(&format!("| `{}` |", m.name)), "{} is not in the metrics table", m.name);
        assert!(!m.help.is_empty(), "{} has no help text", m.name);
    }
    let (documented, known) = (names_in(&readme), catalogue());
    let stale: Vec<&String> = documented.difference(&known).collect();
    assert!(stale.is_empty(), "the metrics table documents metrics no code records: {stale:?}");
}

#[test]
fn no_metric_is_named_at_its_call_site() {
    let mut offenders = Vec::new();
    let mut dirs = vec![root()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "node_modules" {
                    dirs.push(path);
                }
            } else if name.ends_with(".rs") && name != "metrics_catalogue.rs" {
                let text = std::fs::read_to_string(&path).expect("source");
                for macro_name in [
                    "counter!(",
                    "gauge!(",
                    "histogram!(",
                    "describe_counter!(",
                    "describe_gauge!(",
                    "describe_histogram!(",
                ] {
                    if text.contains(&format!("{macro_name}\"")) {
                        offenders.push(format!("{}: {macro_name}\"...", path.display()));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "record metrics through jobs::metric constants: {offenders:?}");
}
