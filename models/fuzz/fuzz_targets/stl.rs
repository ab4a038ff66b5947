//! Any bytes into `models::parse`, then `models::analyze` on a mesh that parses. The corpus is seeded with
//! binary and ASCII STL files so the fuzzer mostly explores the STL reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| common::check(data));
