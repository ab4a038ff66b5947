//! A `.gltf` whose buffers are files beside it (Blender's "glTF Separate", and most exporters' default): which
//! files it names, and the same `.gltf` made whole with those files embedded as `data:` URIs, so that every
//! later step (the model store, a queue, a worker) handles one self-contained model.
//!
//! Only files inside the `.gltf`'s own folder are named: a URL, an absolute path or a path through `..` is
//! refused by name, whoever resolves it.

use base64::Engine as _;
use serde_json::Value;

use crate::gltf_codec::MESHOPT;
use crate::ModelError;

/// One buffer of a `.gltf` that names a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalBuffer {
    /// The buffer's index in the `.gltf`.
    pub index: usize,
    /// The URI as the `.gltf` writes it (percent-encoded, as URIs are).
    pub uri: String,
    /// The relative path it names, percent-decoded, with `/` between folders: what a caller looks up.
    pub path: String,
}

/// The buffers of a `.gltf` (JSON) that name files, each checked to stay inside the `.gltf`'s folder. `data:`
/// URIs, buffers without a URI and meshopt fallback buffers (which hold nothing a reader needs) are not listed.
/// A GLB, or bytes that are not a glTF JSON object, name none.
pub fn gltf_external_buffers(bytes: &[u8]) -> Result<Vec<ExternalBuffer>, ModelError> {
    let Some(root) = json_of(bytes)? else {
        return Ok(Vec::new());
    };
    external(&root)
}

/// The `.gltf` made self-contained: every buffer [`gltf_external_buffers`] lists is replaced by a `data:` URI of
/// the bytes `file` returns for its path. Files `file` does not have are all listed in one
/// [`ModelError::GltfMissingBuffers`]. A model that names no files comes back unchanged.
pub fn embed_gltf_buffers(bytes: &[u8], mut file: impl FnMut(&str) -> Option<Vec<u8>>) -> Result<Vec<u8>, ModelError> {
    let Some(mut root) = json_of(bytes)? else {
        return Ok(bytes.to_vec());
    };
    let wanted = external(&root)?;
    if wanted.is_empty() {
        return Ok(bytes.to_vec());
    }
    let mut missing = Vec::new();
    let mut found = Vec::new();
    for buffer in &wanted {
        match file(&buffer.path) {
            Some(data) => found.push((buffer.index, data)),
            None => missing.push(buffer.uri.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(ModelError::GltfMissingBuffers { missing });
    }
    let Some(buffers) = root.get_mut("buffers").and_then(Value::as_array_mut) else {
        return Ok(bytes.to_vec()); // unreachable: `external` found buffers
    };
    for (index, data) in found {
        let uri =
            format!("data:application/octet-stream;base64,{}", base64::engine::general_purpose::STANDARD.encode(&data));
        if let Some(buffer) = buffers.get_mut(index).and_then(Value::as_object_mut) {
            buffer.insert("uri".into(), Value::String(uri));
        }
    }
    serde_json::to_vec(&root)
        .map_err(|e| ModelError::GltfInvalid { message: format!("cannot write the .gltf back: {e}") })
}

/// The JSON of a `.gltf`, or `None` for a GLB or anything that is not a JSON object. Bytes that are not UTF-8
/// (names in Latin-1) are read with U+FFFD in their place, as the parser reads them.
fn json_of(bytes: &[u8]) -> Result<Option<Value>, ModelError> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(text);
    let root: Value = serde_json::from_str(&text).map_err(|e| ModelError::GltfInvalid { message: e.to_string() })?;
    Ok(root.is_object().then_some(root))
}

fn external(root: &Value) -> Result<Vec<ExternalBuffer>, ModelError> {
    let Some(buffers) = root.get("buffers").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (index, buffer) in buffers.iter().enumerate() {
        let Some(uri) = buffer.get("uri").and_then(Value::as_str) else {
            continue;
        };
        let fallback = MESHOPT
            .iter()
            .any(|name| buffer.pointer(&format!("/extensions/{name}/fallback")).and_then(Value::as_bool) == Some(true));
        if uri.starts_with("data:") || fallback {
            continue;
        }
        let refuse = |why| ModelError::GltfBufferUri { buffer: index, uri: uri.chars().take(200).collect(), why };
        let path = checked_path(uri).map_err(refuse)?;
        out.push(ExternalBuffer { index, uri: uri.to_owned(), path });
    }
    Ok(out)
}

/// The relative path a buffer URI names, or why it is refused.
fn checked_path(uri: &str) -> Result<String, &'static str> {
    let scheme_end = uri.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')));
    if uri.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && scheme_end.is_some_and(|i| uri[i..].starts_with(':'))
    {
        return Err("it is a URL (or a drive letter); only files in the .gltf's own folder are read");
    }
    let path = percent_decode(uri).ok_or("its percent-encoding is not valid UTF-8")?;
    if path.is_empty() {
        return Err("it is empty");
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return Err("it is an absolute path; only files in the .gltf's own folder are read");
    }
    if path.contains('\0') {
        return Err("it contains a NUL byte");
    }
    let parts: Vec<&str> = path.split(['/', '\\']).collect();
    if parts.contains(&"..") {
        return Err("it leads out of the .gltf's folder through '..'; only files in the .gltf's own folder are read");
    }
    Ok(parts.into_iter().filter(|p| !p.is_empty() && *p != ".").collect::<Vec<_>>().join("/"))
}

/// `%XX` sequences decoded; `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
            {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gltf(uris: &[&str]) -> Vec<u8> {
        let buffers: Vec<String> = uris.iter().map(|u| format!(r#"{{"byteLength":4,"uri":"{u}"}}"#)).collect();
        format!(r#"{{"asset":{{"version":"2.0"}},"buffers":[{}]}}"#, buffers.join(",")).into_bytes()
    }

    #[test]
    fn paths_stay_in_the_folder() {
        assert_eq!(checked_path("ring.bin"), Ok("ring.bin".into()));
        assert_eq!(checked_path("./parts/My%20Ring.bin"), Ok("parts/My Ring.bin".into()));
        for (uri, why) in [
            ("../secret.bin", "'..'"),
            ("parts/../../x.bin", "'..'"),
            ("..\\x.bin", "'..'"),
            ("/etc/passwd", "absolute"),
            ("%2Fetc%2Fpasswd", "absolute"),
            ("https://example.com/a.bin", "URL"),
            ("file:///etc/passwd", "URL"),
            ("C:\\model.bin", "URL"),
            ("", "empty"),
        ] {
            let e = checked_path(uri).unwrap_err();
            assert!(e.contains(why), "{uri}: {e}");
        }
    }

    #[test]
    fn external_buffers_are_listed_and_embedded() {
        let model = gltf(&["data:application/octet-stream;base64,AAAAAA==", "a.bin", "b%20c.bin"]);
        let listed = gltf_external_buffers(&model).unwrap();
        assert_eq!(
            listed.iter().map(|b| (b.index, b.path.as_str())).collect::<Vec<_>>(),
            [(1, "a.bin"), (2, "b c.bin")]
        );

        let e = embed_gltf_buffers(&model, |p| (p == "a.bin").then(|| vec![1, 2, 3, 4])).unwrap_err();
        assert_eq!(e.code(), "gltf_missing_buffer");
        assert!(e.to_string().contains("'b%20c.bin'"), "{e}");

        let whole = embed_gltf_buffers(&model, |p| Some(p.as_bytes()[..4].to_vec())).unwrap();
        assert!(gltf_external_buffers(&whole).unwrap().is_empty());
        let text = String::from_utf8(whole).unwrap();
        assert!(text.contains("base64,YS5iaQ=="), "{text}"); // "a.bi"

        let e = gltf_external_buffers(&gltf(&["../x.bin"])).unwrap_err();
        assert_eq!(e.code(), "gltf_buffer_uri_refused");
        assert!(e.to_string().contains("glTF buffer 0 names the file '../x.bin'"), "{e}");
    }

    #[test]
    fn glb_and_meshopt_fallbacks_name_no_files() {
        assert!(gltf_external_buffers(b"glTF\x02\x00\x00\x00").unwrap().is_empty());
        let fallback = br#"{"buffers":[{"byteLength":8,"uri":"fallback.bin",
            "extensions":{"EXT_meshopt_compression":{"fallback":true}}}]}"#;
        assert!(gltf_external_buffers(fallback).unwrap().is_empty());
    }
}
