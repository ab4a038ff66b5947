//! Any bytes into `models::parse`, then `models::analyze` on a mesh that parses. The corpus is seeded with
//! GLB and .gltf files so the fuzzer mostly explores the glTF reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| common::check(data));
