//! Where a command's pricing rules come from: a directory, or the copy of `rules/` built into the binary.

use std::path::{Path, PathBuf};

use anyhow::Context;
use pricing_rules::RuleSet;

/// The shipped default rules, embedded so that `assay` works from any directory.
const EMBEDDED: &[(&str, &str)] = &[
    ("metals.toml", include_str!("../rules/metals.toml")),
    ("alloys.toml", include_str!("../rules/alloys.toml")),
    ("labour.toml", include_str!("../rules/labour.toml")),
    ("segments.toml", include_str!("../rules/segments.toml")),
    ("stones.toml", include_str!("../rules/stones.toml")),
    ("tax.toml", include_str!("../rules/tax.toml")),
    ("casting.toml", include_str!("../rules/casting.toml")),
];

/// The directory used when none is given.
pub(crate) const DEFAULT_DIR: &str = "rules";

pub(crate) fn embedded() -> RuleSet {
    let texts: Vec<(String, String)> = EMBEDDED.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
    RuleSet::from_texts(&texts).expect("the embedded rules are checked by the tests")
}

/// Loads `dir`; with no `dir` given, `./rules` when it exists, else the embedded copy (said on stderr).
pub(crate) fn load(dir: Option<&Path>) -> anyhow::Result<RuleSet> {
    match dir {
        Some(dir) => load_dir(dir),
        None if Path::new(DEFAULT_DIR).is_dir() => load_dir(Path::new(DEFAULT_DIR)),
        None => {
            eprintln!(
                "no ./{DEFAULT_DIR} directory: using the rules built into assay (pass --rules DIR to use others)"
            );
            Ok(embedded())
        }
    }
}

pub(crate) fn load_dir(dir: &Path) -> anyhow::Result<RuleSet> {
    RuleSet::load_dir(dir)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot use the rules in {}", dir.display()))
}

/// The models under `dir` (recursively), sorted: files ending in .stl, .glb or .gltf, any case.
pub(crate) fn model_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["stl", "glb", "gltf"].contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_rules_load_and_match_the_shipped_directory() {
        let embedded = super::embedded();
        let dir =
            pricing_rules::RuleSet::load_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules").as_path())
                .expect("shipped rules");
        assert_eq!(embedded.version, dir.version);
    }
}
