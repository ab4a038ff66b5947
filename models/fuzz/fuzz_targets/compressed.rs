//! Compressed glTF geometry: the input's first byte picks Draco or meshopt, the next bytes the meshopt mode,
//! filter, stride and count, and the rest is the compressed stream, wrapped in a GLB whose one primitive reads
//! it (a `KHR_draco_mesh_compression` primitive, or an `EXT_meshopt_compression` buffer view with its fallback
//! buffer). `models::parse` then `models::analyze`: the decoders must never panic, abort or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fn glb(json: &str, bin: &[u8]) -> Vec<u8> {
    models::synth::glb_container(json.as_bytes(), bin)
}

const HEAD: &str = r#""asset":{"version":"2.0"},"scene":0,"scenes":[{"nodes":[0]}],"nodes":[{"mesh":0}]"#;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let model = if which % 2 == 0 {
        let json = format!(
            r#"{{{HEAD},"extensionsRequired":["KHR_draco_mesh_compression"],
            "meshes":[{{"primitives":[{{"attributes":{{"POSITION":0}},"indices":1,
              "extensions":{{"KHR_draco_mesh_compression":{{"bufferView":0,"attributes":{{"POSITION":{}}}}}}}}}]}}],
            "accessors":[{{"componentType":5126,"count":3,"type":"VEC3"}},{{"componentType":5125,"count":3,"type":"SCALAR"}}],
            "bufferViews":[{{"buffer":0,"byteLength":{}}}],"buffers":[{{"byteLength":{}}}]}}"#,
            which / 2 % 4,
            rest.len(),
            rest.len()
        );
        glb(&json, rest)
    } else {
        let [m, f, s, c0, c1, stream @ ..] = rest else { return };
        let mode = ["ATTRIBUTES", "TRIANGLES", "INDICES"][usize::from(m % 3)];
        let filter = ["NONE", "OCTAHEDRAL", "QUATERNION", "EXPONENTIAL", "COLOR", "BOGUS"][usize::from(f % 6)];
        let stride = match mode {
            "ATTRIBUTES" => usize::from(s % 66) * 4, // 0 and 260 are out of range on purpose
            _ => [2, 4, 3][usize::from(s % 3)],
        };
        let count = usize::from(u16::from_le_bytes([*c0, *c1]));
        let length = count * stride;
        let (accessors, primitive) = if mode == "ATTRIBUTES" {
            // Positions from the decoded view: FLOAT when the stride holds three, else 16- or 8-bit integers.
            let component = if stride >= 12 { 5126 } else if stride >= 6 { 5123 } else { 5121 };
            (
                format!(r#"{{"bufferView":0,"componentType":{component},"count":{count},"type":"VEC3"}}"#),
                r#"{"attributes":{"POSITION":0}}"#,
            )
        } else {
            let component = if stride == 2 { 5123 } else { 5125 };
            (
                format!(
                    r#"{{"componentType":5126,"count":64,"type":"VEC3"}},
                    {{"bufferView":0,"componentType":{component},"count":{count},"type":"SCALAR"}}"#
                ),
                r#"{"attributes":{"POSITION":0},"indices":1}"#,
            )
        };
        // glTF gives a byteStride only to vertex attribute views, and never under 4.
        let view_stride = if mode == "ATTRIBUTES" { format!(r#","byteStride":{stride}"#) } else { String::new() };
        let json = format!(
            r#"{{{HEAD},"extensionsRequired":["EXT_meshopt_compression"],
            "meshes":[{{"primitives":[{primitive}]}}],"accessors":[{accessors}],
            "bufferViews":[{{"buffer":1,"byteLength":{length}{view_stride},
              "extensions":{{"EXT_meshopt_compression":{{"buffer":0,"byteLength":{},"byteStride":{stride},
                "count":{count},"mode":"{mode}","filter":"{filter}"}}}}}}],
            "buffers":[{{"byteLength":{}}},{{"byteLength":{length},
              "extensions":{{"EXT_meshopt_compression":{{"fallback":true}}}}}}]}}"#,
            stream.len(),
            stream.len()
        );
        glb(&json, stream)
    };
    common::check(&model);
});
