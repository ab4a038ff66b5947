//! Compressed glTF geometry: `EXT_meshopt_compression` / `KHR_meshopt_compression` buffer views, decoded with
//! meshoptimizer's own decoders (the `meshopt` crate), and `KHR_draco_mesh_compression` primitives, decoded with
//! `draco-core` (Draco in Rust, so a malformed stream is an error value and can never abort the process).
//!
//! Every count is checked against the triangle limit and against the compressed bytes that must back it
//! before anything is allocated, and every precondition meshoptimizer asserts in C is checked here first.

use draco_core::{DecodeLimits, DecoderBuffer, MeshDecoder};
use serde_json::Value;

use crate::Limits;

/// The two names of the meshopt extension (`KHR_` is the ratified one; the bitstream is the same).
pub(crate) const MESHOPT: [&str; 2] = ["EXT_meshopt_compression", "KHR_meshopt_compression"];
pub(crate) const DRACO: &str = "KHR_draco_mesh_compression";

/// Most bytes meshoptimizer's vertex codec can decode from one compressed byte. Version 1 of the codec spends two
/// control bits on a byte lane of a block that is all zeros ("zero encoding" in `vertexcodec.cpp`), and a block
/// holds at most 256 vertices, so a lane of 256 bytes costs a quarter of a byte: 1,024 to 1. A stream that claims
/// more than this cannot be honest.
const VERTEX_MAX_RATIO: usize = 1024;
/// Vertices allowed on top of the ratio, for the header byte and the tail (a last vertex, at least 24 bytes).
const VERTEX_OVERHEAD: usize = 1 + 256;

/// How a meshopt buffer view is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Attributes,
    Triangles,
    Indices,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Attributes => "ATTRIBUTES",
            Mode::Triangles => "TRIANGLES",
            Mode::Indices => "INDICES",
        }
    }
}

/// The filter applied to a meshopt view after decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    None,
    Octahedral,
    Quaternion,
    Exponential,
    Color,
}

impl Filter {
    fn name(self) -> &'static str {
        match self {
            Filter::None => "NONE",
            Filter::Octahedral => "OCTAHEDRAL",
            Filter::Quaternion => "QUATERNION",
            Filter::Exponential => "EXPONENTIAL",
            Filter::Color => "COLOR",
        }
    }
}

/// A buffer view's meshopt extension object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MeshoptView {
    /// The buffer that holds the compressed bytes (not the view's own, which is the uncompressed fallback).
    pub buffer: usize,
    pub offset: usize,
    pub length: usize,
    stride: usize,
    count: usize,
    mode: Mode,
    filter: Filter,
}

impl MeshoptView {
    /// The view's meshopt extension, if it has one; an error says which field is missing or wrong.
    pub(crate) fn of(view: &gltf::buffer::View) -> Option<Result<MeshoptView, String>> {
        let ext = MESHOPT.iter().find_map(|name| view.extension_value(name))?;
        Some(MeshoptView::from_json(ext))
    }

    fn from_json(ext: &Value) -> Result<MeshoptView, String> {
        let number = |field: &str, default: Option<usize>| -> Result<usize, String> {
            match ext.get(field) {
                None => default.ok_or_else(|| format!("the meshopt extension has no {field}")),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("the meshopt extension's {field} is not a non-negative integer: {v}")),
            }
        };
        let mode = match ext.get("mode").and_then(Value::as_str) {
            Some("ATTRIBUTES") => Mode::Attributes,
            Some("TRIANGLES") => Mode::Triangles,
            Some("INDICES") => Mode::Indices,
            other => {
                return Err(format!(
                    "the meshopt extension's mode is {}: expected ATTRIBUTES, TRIANGLES or INDICES",
                    other.map_or_else(|| "missing".to_owned(), |m| format!("\"{m}\""))
                ))
            }
        };
        let filter = match ext.get("filter").map(|f| f.as_str()) {
            None | Some(Some("NONE")) => Filter::None,
            Some(Some("OCTAHEDRAL")) => Filter::Octahedral,
            Some(Some("QUATERNION")) => Filter::Quaternion,
            Some(Some("EXPONENTIAL")) => Filter::Exponential,
            Some(Some("COLOR")) => Filter::Color,
            Some(other) => {
                return Err(format!(
                    "the meshopt extension's filter is {}: expected NONE, OCTAHEDRAL, QUATERNION, EXPONENTIAL or COLOR",
                    other.map_or_else(|| "not a string".to_owned(), |f| format!("\"{f}\""))
                ))
            }
        };
        Ok(MeshoptView {
            buffer: number("buffer", None)?,
            offset: number("byteOffset", Some(0))?,
            length: number("byteLength", None)?,
            stride: number("byteStride", None)?,
            count: number("count", None)?,
            mode,
            filter,
        })
    }

    /// Decodes `compressed` (the extension's byte range) into the view's `view_length` bytes.
    pub(crate) fn decode(&self, compressed: &[u8], view_length: usize, limits: &Limits) -> Result<Vec<u8>, String> {
        let (count, stride) = (self.count, self.stride);
        let size = count.checked_mul(stride).ok_or_else(|| format!("{count} elements of {stride} bytes overflow"))?;
        if size != view_length {
            return Err(format!(
                "{count} elements of {stride} bytes are {size} bytes, but the buffer view is {view_length} bytes"
            ));
        }
        let most_corners = limits.max_triangles.saturating_mul(3);
        match self.mode {
            Mode::Attributes => {
                if stride == 0 || stride > 256 || !stride.is_multiple_of(4) {
                    return Err(format!(
                        "ATTRIBUTES need a byteStride that is a multiple of 4 from 4 to 256, not {stride}"
                    ));
                }
                if count as u64 > most_corners {
                    return Err(format!(
                        "{count} vertices is more than three per triangle of the limit of {} triangles",
                        limits.max_triangles
                    ));
                }
                let most = compressed.len().saturating_mul(VERTEX_MAX_RATIO).saturating_add(VERTEX_OVERHEAD * stride);
                if size > most {
                    return Err(format!(
                        "{size} bytes of vertices cannot come from {} compressed bytes",
                        compressed.len()
                    ));
                }
            }
            Mode::Triangles | Mode::Indices => {
                if stride != 2 && stride != 4 {
                    return Err(format!("{} need a byteStride of 2 or 4, not {stride}", self.mode.name()));
                }
                if self.filter != Filter::None {
                    return Err("a filter applies only to ATTRIBUTES".into());
                }
                if count as u64 > most_corners {
                    return Err(format!(
                        "{count} indices is more than three per triangle of the limit of {} triangles",
                        limits.max_triangles
                    ));
                }
                // The index codecs spend at least a byte on every triangle (TRIANGLES: a code byte each, after
                // a header and 16 bytes of tables) or on every index (INDICES: a varint each, after a header).
                let least = match self.mode {
                    Mode::Triangles if !count.is_multiple_of(3) => {
                        return Err(format!("TRIANGLES need a count that is a multiple of 3, not {count}"))
                    }
                    Mode::Triangles => 1 + count / 3 + 16,
                    _ => 1 + count,
                };
                if compressed.len() < least {
                    return Err(format!(
                        "{count} indices need at least {least} compressed bytes; the stream has {}",
                        compressed.len()
                    ));
                }
            }
        }
        match self.filter {
            Filter::None => {}
            Filter::Octahedral | Filter::Color if stride == 4 || stride == 8 => {}
            Filter::Quaternion if stride == 8 => {}
            Filter::Exponential => {} // any multiple of 4, checked above
            f => return Err(format!("the {} filter does not apply to a byteStride of {stride}", f.name())),
        }
        let mut out = vec![0u8; size];
        let status = ffi::decode(&mut out, count, stride, self.mode, self.filter, compressed);
        if status != 0 {
            return Err(format!("meshoptimizer cannot decode the stream (error {status}): it is corrupt"));
        }
        Ok(out)
    }
}

/// The calls into meshoptimizer, each with every precondition its C code asserts checked by the caller.
#[allow(unsafe_code, reason = "meshoptimizer's decoders are C++; the meshopt crate exposes them only as FFI")]
mod ffi {
    use std::ffi::c_void;

    use super::{Filter, Mode};

    /// Decodes into `out` (exactly `count * stride` bytes) and applies the filter. `stride` is 2 or 4 for index
    /// modes, a multiple of 4 up to 256 for attributes, and fits the filter.
    pub(super) fn decode(out: &mut [u8], count: usize, stride: usize, mode: Mode, filter: Filter, src: &[u8]) -> i32 {
        assert_eq!(out.len(), count * stride, "caller sized the output");
        let dst = out.as_mut_ptr().cast::<c_void>();
        // SAFETY: `dst` is valid for `count * stride` bytes and `src` for `src.len()`; meshoptimizer reads no more
        // than `buffer_size` bytes of `src` (its decoders are documented as safe on untrusted input) and writes
        // no more than `count * stride` bytes of `dst`. The size and stride preconditions it asserts are checked
        // by `MeshoptView::decode` before this is called.
        unsafe {
            let status = match mode {
                Mode::Attributes => {
                    meshopt::ffi::meshopt_decodeVertexBuffer(dst, count, stride, src.as_ptr(), src.len())
                }
                Mode::Triangles => meshopt::ffi::meshopt_decodeIndexBuffer(dst, count, stride, src.as_ptr(), src.len()),
                Mode::Indices => meshopt::ffi::meshopt_decodeIndexSequence(dst, count, stride, src.as_ptr(), src.len()),
            };
            if status == 0 {
                match filter {
                    Filter::None => {}
                    Filter::Octahedral => meshopt::ffi::meshopt_decodeFilterOct(dst, count, stride),
                    Filter::Quaternion => meshopt::ffi::meshopt_decodeFilterQuat(dst, count, stride),
                    Filter::Exponential => meshopt::ffi::meshopt_decodeFilterExp(dst, count, stride),
                    Filter::Color => meshopt::ffi::meshopt_decodeFilterColor(dst, count, stride),
                }
            }
            status
        }
    }
}

/// A primitive's Draco extension: the buffer view with the stream, and the Draco attribute id of POSITION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DracoPrimitive {
    pub view: usize,
    pub position: u32,
}

impl DracoPrimitive {
    pub(crate) fn of(primitive: &gltf::Primitive) -> Option<Result<DracoPrimitive, String>> {
        let ext = primitive.extension_value(DRACO)?;
        let view = ext.get("bufferView").and_then(Value::as_u64).and_then(|v| usize::try_from(v).ok());
        let position = ext
            .get("attributes")
            .and_then(|a| a.get("POSITION"))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok());
        Some(match (view, position) {
            (Some(view), Some(position)) => Ok(DracoPrimitive { view, position }),
            (None, _) => Err("the Draco extension has no bufferView".into()),
            (_, None) => Err("the Draco extension names no POSITION attribute".into()),
        })
    }
}

/// Decodes a Draco mesh stream into positions and a triangle list, with the decoder's output bounded by the
/// triangle limit (faces, points) and by memory (decoded attribute bytes).
pub(crate) fn decode_draco(
    stream: &[u8],
    position_id: u32,
    limits: &Limits,
) -> Result<(Vec<[f32; 3]>, Vec<u32>), String> {
    let ceiling = DecodeLimits::default()
        .with_max_faces(limits.max_triangles)
        .with_max_points(limits.max_triangles.saturating_mul(3))
        .with_max_decoded_bytes(limits.max_triangles.saturating_mul(3 * 64));
    let decoded = std::panic::catch_unwind(|| {
        let mut buffer = DecoderBuffer::new(stream).with_limits(ceiling);
        let mut mesh = draco_core::Mesh::new();
        MeshDecoder::new().decode(&mut buffer, &mut mesh).map(|()| mesh)
    });
    let mesh = match decoded {
        Ok(Ok(mesh)) => mesh,
        Ok(Err(e)) if e.kind() == draco_core::ErrorKind::LimitExceeded => {
            return Err(format!(
                "the Draco stream is larger than the limit of {} triangles allows: {e}",
                limits.max_triangles
            ))
        }
        Ok(Err(e)) => return Err(format!("the Draco stream cannot be decoded: {e}")),
        // draco-core is Rust, so a bug in it unwinds rather than aborts; it is still this stream's fault.
        Err(_) => return Err("the Draco decoder failed on this stream: it is corrupt".into()),
    };
    let Some(attribute) = mesh.attribute_by_unique_id(position_id) else {
        return Err(format!("the Draco stream has no attribute with id {position_id} (the extension's POSITION)"));
    };
    if attribute.num_components() != 3 {
        return Err(format!("the Draco POSITION attribute has {} components, not 3", attribute.num_components()));
    }
    let points = mesh.num_points();
    let flat = attribute.read_f32s(points, 3);
    let positions: Vec<[f32; 3]> = flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    let mut indices = Vec::with_capacity(mesh.num_faces() * 3);
    for face in mesh.faces() {
        for corner in face {
            if corner.0 as usize >= points {
                return Err(format!("a Draco face names point {} of {points}", corner.0));
            }
            indices.push(corner.0);
        }
    }
    Ok((positions, indices))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: &str) -> MeshoptView {
        MeshoptView::from_json(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn meshopt_preconditions_are_errors_not_assertions() {
        let limits = Limits::default();
        let v = view(r#"{"buffer":0,"byteLength":10,"byteStride":6,"count":4,"mode":"ATTRIBUTES"}"#);
        assert!(v.decode(&[0; 10], 24, &limits).unwrap_err().contains("multiple of 4"));
        let v = view(r#"{"buffer":0,"byteLength":10,"byteStride":2,"count":4,"mode":"TRIANGLES"}"#);
        assert!(v.decode(&[0; 10], 8, &limits).unwrap_err().contains("multiple of 3"));
        let v =
            view(r#"{"buffer":0,"byteLength":10,"byteStride":8,"count":4,"mode":"ATTRIBUTES","filter":"QUATERNION"}"#);
        assert!(v.decode(&[0; 10], 24, &limits).unwrap_err().contains("are 32 bytes, but the buffer view is 24"));
        let v =
            view(r#"{"buffer":0,"byteLength":10,"byteStride":12,"count":4,"mode":"ATTRIBUTES","filter":"QUATERNION"}"#);
        assert!(v.decode(&[0; 10], 48, &limits).unwrap_err().contains("QUATERNION filter"));
        let v = view(r#"{"buffer":0,"byteLength":4,"byteStride":4,"count":3000000,"mode":"ATTRIBUTES"}"#);
        assert!(v.decode(&[0; 4], 12_000_000, &limits).unwrap_err().contains("cannot come from 4 compressed bytes"));
        let v = view(r#"{"buffer":0,"byteLength":4,"byteStride":4,"count":300,"mode":"INDICES"}"#);
        assert!(v.decode(&[0; 4], 1200, &limits).unwrap_err().contains("at least 301 compressed bytes"));
        let v = view(r#"{"buffer":0,"byteLength":64,"byteStride":4,"count":3,"mode":"ATTRIBUTES"}"#);
        assert!(v.decode(&[0xFF; 64], 12, &limits).unwrap_err().contains("corrupt"));
        let e = MeshoptView::from_json(&serde_json::json!({"buffer":0,"byteLength":1,"byteStride":4,"count":1}));
        assert!(e.unwrap_err().contains("mode is missing"));
    }

    #[test]
    fn meshopt_round_trips_what_meshoptimizer_encodes() {
        let vertices: Vec<[u16; 4]> = (0..100u16).map(|i| [i, i * 2, i * 3, 0]).collect();
        let encoded = meshopt::encoding::encode_vertex_buffer(&vertices).unwrap();
        let v = MeshoptView {
            buffer: 0,
            offset: 0,
            length: encoded.len(),
            stride: 8,
            count: 100,
            mode: Mode::Attributes,
            filter: Filter::None,
        };
        let out = v.decode(&encoded, 800, &Limits::default()).unwrap();
        let back: Vec<u16> = out.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(back[..8], [0, 0, 0, 0, 1, 2, 3, 0]);
        assert_eq!(back[396..], [99, 198, 297, 0]);
    }

    #[test]
    fn draco_garbage_is_an_error() {
        let e = decode_draco(b"DRACO\x02\x02\x01\x01\x00\xff\xff\xff\xff", 0, &Limits::default()).unwrap_err();
        assert!(e.contains("cannot be decoded"), "{e}");
        assert!(decode_draco(b"", 0, &Limits::default()).is_err());
    }
}
