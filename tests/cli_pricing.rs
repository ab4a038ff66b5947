//! `assay quote`, `assay batch` and `assay rules` as finance and a shop run them: the built binary on real files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn assay_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_assay"))
        .args(args)
        .current_dir(dir)
        .env_remove("ASSAY_RULES")
        .output()
        .expect("run assay");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample() -> String {
    root().join("samples/pixelverse_ring.stl").display().to_string()
}

fn rules_dir() -> String {
    root().join("rules").display().to_string()
}

fn copy_rules(to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(root().join("rules")).expect("rules dir").flatten() {
        let path = entry.path();
        if let (true, Some(name)) = (path.is_file(), path.file_name()) {
            std::fs::copy(&path, to.join(name)).expect("copy");
        }
    }
}

fn dec(v: &serde_json::Value) -> f64 {
    v.as_str().expect("money is a string").parse().expect("decimal")
}

#[test]
fn quote_json_has_the_version_the_geometry_and_a_breakdown_per_alloy() {
    let (code, stdout, stderr) = assay_in(
        &root(),
        &["quote", &sample(), "--alloy", "18k-yellow", "--alloy", "pt950", "--segment", "b2b", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["rules_version"].as_str().unwrap().len(), 64);
    assert_eq!(v["geometry"]["triangles"], 11422);
    let quotes = v["quotes"].as_array().unwrap();
    assert_eq!(quotes.len(), 2);
    assert_eq!(quotes[0]["alloy"], "18k-yellow");
    assert_eq!(quotes[1]["alloy"], "pt950");
    for q in quotes {
        assert_eq!(q["currency"], "EUR");
        let sum: f64 = q["lines"].as_array().unwrap().iter().map(|l| dec(&l["amount"])).sum();
        assert!((sum - dec(&q["total"])).abs() < 1e-9);
        assert!(q["lines"].as_array().unwrap().iter().all(|l| l["name"].is_string() && l["basis"].is_string()));
    }
    // Platinum is denser than 18K gold: the same ring weighs more.
    assert!(dec(&quotes[1]["metal_weight_g"]) > dec(&quotes[0]["metal_weight_g"]));
}

#[test]
fn quote_with_no_rules_directory_uses_the_built_in_rules() {
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = assay_in(empty.path(), &["quote", &sample(), "--alloy", "sterling-925"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("using the rules built into assay"), "{stderr}");
    assert!(stdout.contains("Sterling silver 925"), "{stdout}");
    assert!(stdout.contains("total"), "{stdout}");
    // The verdict under the alloy: the sample ring has walls and wires thinner than silver casts.
    assert!(
        stdout.contains(
            "\n  not castable in Sterling silver 925: walls down to 0.39 mm near (6.6, -9.6, 11.5) mm; Sterling \
             silver 925 needs 0.80 mm; wires (prongs) down to 0.28 mm near (-5.8, -0.2, -14.2) mm; Sterling silver \
             925 needs 0.60 mm for wires\n"
        ),
        "{stdout}"
    );
}

#[test]
fn quote_errors_say_what_is_allowed() {
    let (code, stdout, _) = assay_in(&root(), &["quote", &sample(), "--alloy", "19k", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["error"]["code"], "unknown_alloy");
    assert!(v["error"]["message"].as_str().unwrap().contains("18k-yellow"));
    let (code, _, stderr) = assay_in(&root(), &["quote", &sample(), "--qty", "0"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = assay_in(&root(), &["quote", &sample(), "--stone", "diamond"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("expected KIND:COUNT"), "{stderr}");
}

#[test]
fn batch_prices_a_folder_and_lists_failures_without_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(models.join("sub")).unwrap();
    std::fs::copy(sample(), models.join("ring.stl")).unwrap();
    std::fs::copy(sample(), models.join("sub/RING2.STL")).unwrap();
    // A .gltf without the .bin it names.
    std::fs::copy(root().join("models/tests/data/compressed/separate/ring.gltf"), models.join("broken.gltf")).unwrap();
    std::fs::write(models.join("notes.txt"), "not a model").unwrap();

    let (code, stdout, stderr) =
        assay_in(dir.path(), &["batch", "models", "--alloy", "14k-white", "--rules", &rules_dir()]);
    assert_eq!(code, 1, "a failed file makes the exit status 1");
    let mut rows = csv::Reader::from_reader(stdout.as_bytes());
    let header = rows.headers().unwrap().clone();
    assert_eq!(&header[0], "file");
    assert!(header.iter().any(|h| h == "total_14k-white"));
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no {name} column"));
    let (castable, min_wall) = (column("castable_14k-white"), column("min_wall_mm"));
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    let status: Vec<&str> = records.iter().map(|r| &r[1]).collect();
    assert_eq!(status.iter().filter(|s| **s == "priced").count(), 2);
    for r in records.iter().filter(|r| &r[1] == "priced") {
        assert_eq!(&r[castable], "false", "{r:?}");
        assert_eq!(&r[min_wall], "0.276", "{r:?}");
    }
    assert!(records.iter().any(|r| &r[2] == "gltf_missing_buffer"));
    assert!(stderr.contains("3 models in"), "{stderr}");
    assert!(stderr.contains("2 priced, 1 failed"), "{stderr}");
    assert!(stderr.contains("broken.gltf: [gltf_missing_buffer]"), "{stderr}");

    let (_, _, stderr) = assay_in(dir.path(), &["batch", "models", "--out", "prices.json", "--rules", &rules_dir()]);
    assert!(stderr.contains("written to prices.json"), "{stderr}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("prices.json")).unwrap()).unwrap();
    assert_eq!(doc["models"].as_array().unwrap().len(), 3);
    assert_eq!(doc["models"][1]["quotes"].as_array().unwrap().len(), 13, "every shipped alloy");
}

#[test]
fn rules_check_shows_what_is_loaded_or_where_it_is_wrong() {
    let (code, stdout, _) = assay_in(&root(), &["rules", "check", &rules_dir()]);
    assert_eq!(code, 0);
    assert!(stdout.contains(": valid, version "), "{stdout}");
    assert!(stdout.contains("13 alloys"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    copy_rules(dir.path());
    let alloys = std::fs::read_to_string(dir.path().join("alloys.toml")).unwrap();
    std::fs::write(dir.path().join("alloys.toml"), alloys.replacen("fineness = 0.417", "fineness = 1.417", 1)).unwrap();
    let (code, _, stderr) = assay_in(&root(), &["rules", "check", &dir.path().display().to_string()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("alloys.toml:14:12: fineness 1.417 of alloy \"10k-yellow\" is out of range"), "{stderr}");
}

#[test]
fn rules_diff_shows_what_an_edit_does_to_prices_largest_change_first() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    copy_rules(&old);
    copy_rules(&new);
    let metals = std::fs::read_to_string(new.join("metals.toml")).unwrap();
    std::fs::write(new.join("metals.toml"), metals.replace("platinum = 48.10", "platinum = 60.00")).unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::copy(sample(), models.join("ring.stl")).unwrap();

    let (code, stdout, stderr) = assay_in(
        dir.path(),
        &[
            "rules",
            "diff",
            &old.display().to_string(),
            &new.display().to_string(),
            "--models",
            &models.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = stdout.lines().skip(2).collect();
    assert!(rows[0].contains("pt950"), "platinum changed most and comes first: {stdout}");
    assert!(rows[0].trim_end().ends_with('%') && rows[0].contains('+'), "{stdout}");
    assert!(stdout.contains("1 of 13 prices change"), "{stdout}");
}

#[test]
fn tenants_keys_secrets_and_a_checked_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = assay_in(dir.path(), &["tenants", "key"]);
    assert_eq!(code, 0);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .to_owned()
    };
    let (key, digest) = (field("key:"), field("digest:"));
    assert!(key.len() >= 32 && digest.starts_with("sha256:"), "{out}");
    assert_eq!(digest, tenants::key_digest(&key), "the digest is the key's");
    let (code, secret, _) = assay_in(dir.path(), &["tenants", "secret"]);
    assert_eq!(code, 0);
    let text = format!(
        "format = 1\n[[tenant]]\nid = \"shop\"\nname = \"Shop\"\nkeys = [\"{digest}\"]\nsegments = [\"b2c\"]\n\
         [tenant.webhook]\nurl = \"https://shop.example/hook\"\nsecret = \"{}\"\n",
        secret.trim()
    );
    std::fs::write(dir.path().join("tenants.toml"), &text).unwrap();
    let (code, out, err) = assay_in(dir.path(), &["tenants", "check", "tenants.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 tenants, 1 with a webhook"), "{out}");
    // A broken file: every problem with its line and column, exit 1.
    std::fs::write(dir.path().join("tenants.toml"), text.replace("https://", "ftp://").replace("\"b2c\"", "")).unwrap();
    let (code, _, err) = assay_in(dir.path(), &["tenants", "check", "tenants.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("tenants.toml:6:12: tenant \"shop\" needs at least one segment"), "{err}");
    assert!(err.contains("tenants.toml:8:7: webhook url scheme \"ftp\" is not allowed"), "{err}");
}
