//! Every input a fuzzer found that once crashed a parser (tests/data/fuzz) now gives a value: a mesh or an error
//! with a code, never a panic.

use std::path::Path;

#[test]
fn fuzz_findings_give_errors_not_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/data/fuzz").flatten() {
        let path = entry.path();
        let bytes = std::fs::read(&path).expect("read");
        let options = models::ParseOptions {
            limits: models::Limits { max_triangles: 200_000, ..Default::default() },
            ..Default::default()
        };
        let outcome = std::panic::catch_unwind(|| models::parse(&bytes, &options).map(|m| models::analyze(&m)));
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => assert!(!e.to_string().is_empty(), "{}", path.display()),
            Err(_) => panic!("{} panics", path.display()),
        }
        seen += 1;
    }
    assert!(seen >= 2, "the regression inputs are missing from {}", dir.display());
}

#[test]
fn a_primitive_pointing_at_a_missing_accessor_is_named() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/gltf-position-accessor-out-of-range.glb"),
    )
    .expect("read");
    let e = models::parse(&bytes, &models::ParseOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "glTF mesh 0 primitive 0: refers to accessor 4, but the file has 3 accessors");
}
