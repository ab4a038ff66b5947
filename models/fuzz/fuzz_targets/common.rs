//! What both targets do with one input.

/// Parses `data` as the service would (with a lower triangle limit so that huge but legitimate meshes do not
/// slow the fuzzer down) and measures any mesh that parses. Must never panic.
pub fn check(data: &[u8]) {
    let mut options = models::ParseOptions::default();
    options.limits.max_triangles = 200_000;
    if let Ok(mesh) = models::parse(data, &options) {
        let _ = models::analyze(&mesh);
    }
}
