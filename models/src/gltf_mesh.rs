//! glTF 2.0 (GLB and .gltf with embedded buffers): the default scene's triangles, placed by their node
//! transforms, with a material name per triangle. Draco and meshopt compressed geometry is decoded
//! (`gltf_codec`), quantized positions are read as the node transforms scale them; no image is ever decoded.
//! A .gltf whose buffers are files beside it is first made whole by `gltf_files`.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::rc::Rc;

use base64::Engine as _;
use gltf::accessor::{DataType, Dimensions};
use gltf::mesh::{Mode, Semantic};
use nalgebra::{Matrix4, Quaternion, Translation3, UnitQuaternion, Vector3};

use crate::gltf_codec::{self, DracoPrimitive, MeshoptView};
use crate::mesh::{Format, Mesh};
use crate::units::Units;
use crate::weld::F64Key;
use crate::{Limits, ModelError, Warning};

/// Required extensions that change how geometry is stored, all of which assay reads.
const GEOMETRY_EXTENSIONS: &[&str] =
    &[gltf_codec::DRACO, gltf_codec::MESHOPT[0], gltf_codec::MESHOPT[1], "KHR_mesh_quantization"];

/// Prefixes of required extensions that only change appearance, so the geometry can be read without them.
const APPEARANCE_PREFIXES: &[&str] =
    &["KHR_materials_", "KHR_texture_", "EXT_texture_", "KHR_lights_punctual", "KHR_xmp", "EXT_lights_"];

pub(crate) fn parse(bytes: &[u8], units: Option<Units>, limits: &Limits) -> Result<Mesh, ModelError> {
    let format = if bytes.starts_with(b"glTF") { Format::Glb } else { Format::Gltf };
    if format == Format::Glb {
        check_glb_header(bytes)?;
    }
    let (repaired, replaced) = utf8_json(bytes, format);
    let bytes: &[u8] = repaired.as_deref().unwrap_or(bytes);
    let gltf::Gltf { document, blob } = gltf::Gltf::from_slice_without_validation(bytes)
        .map_err(|e| ModelError::GltfInvalid { message: describe(&e) })?;
    let mut json = document.into_json();
    for name in &json.extensions_required {
        if !GEOMETRY_EXTENSIONS.contains(&name.as_str()) && !APPEARANCE_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return Err(ModelError::GltfUnsupportedExtension {
                name: name.clone(),
                why: "is not known to assay, so its geometry cannot be trusted",
            });
        }
    }
    // Vetted above: the validator would otherwise refuse extensions this build of `gltf` does not enable.
    json.extensions_required.clear();
    let doc = validate(json)?;

    let buffers: Vec<Result<Cow<[u8]>, ModelError>> = doc.buffers().map(|b| buffer_data(&b, blob.as_deref())).collect();
    let mut reader = Reader {
        buffers,
        views: doc.views().collect(),
        decoded_views: (0..doc.views().len()).map(|_| OnceCell::new()).collect(),
        input_len: bytes.len(),
        limits,
        positions: HashMap::new(),
        indices: HashMap::new(),
        draco: HashMap::new(),
    };

    let mut materials = MaterialNames::default();
    let mut out = Emitter {
        corners: Vec::new(),
        triangle_materials: Vec::new(),
        skipped_primitives: 0,
        node_visits: 0,
        scale: units.unwrap_or(Units::M).to_mm(),
        limits,
    };

    let roots: Vec<gltf::Node> = match doc.default_scene() {
        Some(scene) => scene.nodes().collect(),
        None if doc.scenes().len() > 0 => doc.scenes().flat_map(|s| s.nodes().collect::<Vec<_>>()).collect(),
        None => {
            // No scene at all: every node that is nobody's child is a root.
            let mut child = vec![false; doc.nodes().len()];
            for n in doc.nodes() {
                for c in n.children() {
                    child[c.index()] = true;
                }
            }
            doc.nodes().filter(|n| !child[n.index()]).collect()
        }
    };
    let mut on_path = vec![false; doc.nodes().len()];
    for node in roots {
        walk(&node, Matrix4::identity(), 0, &mut on_path, &mut reader, &mut materials, &mut out)?;
    }

    if out.corners.is_empty() {
        return Err(ModelError::NoTriangles {
            detail: if out.skipped_primitives > 0 {
                ": the scene has only points or lines".into()
            } else {
                ": the scene places no mesh".into()
            },
        });
    }
    let corners = out.corners;
    let (mut mesh, order) = Mesh::from_soup(
        format,
        Units::Mm, // positions are already scaled to millimetres
        corners.len(),
        |c| F64Key::from_f64(corners[c]),
        |c| format!("triangle {}", c / 3),
    )?;
    mesh.units = Some(units.unwrap_or(Units::M));
    mesh.materials = materials.names;
    mesh.triangle_materials = match order {
        Some(order) => order.iter().map(|&t| out.triangle_materials[t as usize]).collect(),
        None => out.triangle_materials,
    };
    if replaced > 0 {
        mesh.warnings.push(Warning::new(
            "invalid_utf8",
            format!(
                "{replaced} bytes of the glTF JSON are not UTF-8 (a name written in Latin-1, say) and were read as \
                 U+FFFD; names may show a replacement character"
            ),
        ));
    }
    if out.skipped_primitives > 0 {
        mesh.warnings.push(Warning::new(
            "non_triangle_primitives",
            format!(
                "{} primitives of points or lines were skipped: only triangles have volume",
                out.skipped_primitives
            ),
        ));
    }
    Ok(mesh)
}

/// glTF JSON that is not valid UTF-8 (exporters write names in Latin-1): the bytes that are not are replaced
/// by U+FFFD, and the file rebuilt around the repaired JSON (a GLB's chunk and total lengths follow it). `None`
/// when the JSON is valid; the count is the invalid sequences replaced. Structure errors are left to the parser.
fn utf8_json(bytes: &[u8], format: Format) -> (Option<Vec<u8>>, usize) {
    let json_at = |b: &[u8]| -> Option<(usize, usize)> {
        let len = u32::from_le_bytes(b.get(12..16)?.try_into().ok()?) as usize;
        (b.get(16..20)? == b"JSON" && 20 + len <= b.len()).then_some((20, 20 + len))
    };
    let (start, end) = match format {
        Format::Glb => match json_at(bytes) {
            Some(range) => range,
            None => return (None, 0),
        },
        _ => (0, bytes.len()),
    };
    let json = &bytes[start..end];
    if std::str::from_utf8(json).is_ok() {
        return (None, 0);
    }
    let replaced = json.utf8_chunks().filter(|c| !c.invalid().is_empty()).count();
    let mut fixed = String::from_utf8_lossy(json).into_owned().into_bytes();
    if format != Format::Glb {
        return (Some(fixed), replaced);
    }
    while !fixed.len().is_multiple_of(4) {
        fixed.push(b' ');
    }
    let rest = &bytes[end..];
    let total = 20 + fixed.len() + rest.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&bytes[..8]);
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(fixed.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&fixed);
    out.extend_from_slice(rest);
    (Some(out), replaced)
}

/// The GLB header's version and total length, which the `gltf` crate does not hold against the file.
fn check_glb_header(bytes: &[u8]) -> Result<(), ModelError> {
    let word = |at: usize| bytes.get(at..at + 4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    let (Some(version), Some(length)) = (word(4), word(8)) else {
        return Err(ModelError::GltfInvalid {
            message: format!("a GLB header is 12 bytes, the file has {}", bytes.len()),
        });
    };
    if version != 2 {
        return Err(ModelError::GltfInvalid { message: format!("GLB version {version} is not supported (only 2)") });
    }
    if u64::from(length) != bytes.len() as u64 {
        return Err(ModelError::GltfInvalid {
            message: format!(
                "the GLB header says {length} bytes but the file has {}: it is truncated or corrupt",
                bytes.len()
            ),
        });
    }
    Ok(())
}

/// The `gltf` crate's validation, less what does not matter for measuring: accessor `min`/`max` bounds, which
/// many exporters omit or get wrong (the bounds are computed from the positions).
fn validate(json: gltf::json::Root) -> Result<gltf::Document, ModelError> {
    use gltf::json::validation::Validate;
    // gltf-json 1.4.1's validator indexes the accessors with a primitive's POSITION before checking that index,
    // and panics when it is out of range (found by fuzzing): check every primitive's accessor indices first.
    let accessors = json.accessors.len();
    for (m, mesh) in json.meshes.iter().enumerate() {
        for (p, primitive) in mesh.primitives.iter().enumerate() {
            let used = primitive.attributes.values().chain(primitive.indices.as_ref());
            if let Some(bad) = used.map(|i| i.value()).find(|&i| i >= accessors) {
                return Err(ModelError::GltfPrimitive {
                    mesh: m,
                    primitive: p,
                    message: format!("refers to accessor {bad}, but the file has {accessors} accessors"),
                });
            }
        }
    }
    let mut errors = Vec::new();
    json.validate(&json, gltf::json::Path::new, &mut |path, error| {
        let path = path();
        let p = path.as_str();
        // An accessor without a buffer view is zeros (sparse values on top), which `Reader::read` bounds; Draco
        // primitives name such accessors only as fallbacks, and read the extension's stream instead.
        let viewless = p.ends_with(".bufferView") && error == gltf::json::validation::Error::Missing;
        if !(p.ends_with(".min") || p.ends_with(".max") || viewless) {
            errors.push((path, error));
        }
    });
    if !errors.is_empty() {
        return Err(ModelError::GltfInvalid { message: describe(&gltf::Error::Validation(errors)) });
    }
    Ok(gltf::Document::from_json_without_validation(json))
}

fn describe(e: &gltf::Error) -> String {
    match e {
        gltf::Error::Validation(errors) => {
            let mut parts: Vec<String> = errors.iter().take(3).map(|(path, err)| format!("{path}: {err}")).collect();
            if errors.len() > 3 {
                parts.push(format!("and {} more", errors.len() - 3));
            }
            parts.join("; ")
        }
        other => other.to_string(),
    }
}

fn buffer_data<'a>(buffer: &gltf::Buffer, blob: Option<&'a [u8]>) -> Result<Cow<'a, [u8]>, ModelError> {
    let index = buffer.index();
    let data: Cow<[u8]> = match buffer.source() {
        gltf::buffer::Source::Bin => match blob {
            Some(b) => Cow::Borrowed(b),
            None => {
                return Err(ModelError::GltfInvalid {
                    message: format!("buffer {index} has no uri and the file has no binary chunk"),
                })
            }
        },
        gltf::buffer::Source::Uri(uri) if uri.starts_with("data:") => {
            let Some((_, payload)) = uri.split_once(";base64,") else {
                return Err(ModelError::GltfInvalid {
                    message: format!("buffer {index} has a data: URI that is not base64"),
                });
            };
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            Cow::Owned(engine.decode(payload.trim()).map_err(|e| ModelError::GltfInvalid {
                message: format!("buffer {index} has a data: URI whose base64 is invalid: {e}"),
            })?)
        }
        gltf::buffer::Source::Uri(uri) => {
            return Err(ModelError::GltfExternalBuffer { buffer: index, uri: uri.chars().take(200).collect() })
        }
    };
    if (data.len() as u64) < buffer.length() as u64 {
        return Err(ModelError::GltfInvalid {
            message: format!("buffer {index} declares {} bytes but has {}", buffer.length(), data.len()),
        });
    }
    Ok(data)
}

/// Positions and a triangle list decoded from one Draco primitive.
type Decoded = (Rc<Vec<[f32; 3]>>, Rc<Vec<u32>>);

/// Reads accessors, checking every byte range before it allocates, and keeps what instanced meshes share.
struct Reader<'a> {
    buffers: Vec<Result<Cow<'a, [u8]>, ModelError>>,
    views: Vec<gltf::buffer::View<'a>>,
    /// Buffer views decoded from meshopt streams, each decoded on first use.
    decoded_views: Vec<OnceCell<Result<Vec<u8>, ModelError>>>,
    input_len: usize,
    limits: &'a Limits,
    positions: HashMap<usize, Rc<Vec<[f32; 3]>>>,
    indices: HashMap<usize, Rc<Vec<u32>>>,
    /// Draco primitives by (mesh, primitive).
    draco: HashMap<(usize, usize), Decoded>,
}

impl Reader<'_> {
    /// POSITION as floats: FLOAT, or (KHR_mesh_quantization) BYTE, UNSIGNED_BYTE, SHORT or UNSIGNED_SHORT,
    /// normalized to [-1, 1] or [0, 1] when the accessor says so, else the integers themselves (the node
    /// transform scales them back to the model's size).
    fn positions(&mut self, a: &gltf::Accessor) -> Result<Rc<Vec<[f32; 3]>>, ModelError> {
        if let Some(p) = self.positions.get(&a.index()) {
            return Ok(p.clone());
        }
        let component: fn(&[u8], bool) -> f32 = match a.data_type() {
            DataType::F32 => |c, _| f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            DataType::I8 => |c, n| {
                let v = f32::from(c[0] as i8);
                if n {
                    (v / 127.0).max(-1.0)
                } else {
                    v
                }
            },
            DataType::U8 => |c, n| if n { f32::from(c[0]) / 255.0 } else { f32::from(c[0]) },
            DataType::I16 => |c, n| {
                let v = f32::from(i16::from_le_bytes([c[0], c[1]]));
                if n {
                    (v / 32767.0).max(-1.0)
                } else {
                    v
                }
            },
            DataType::U16 => |c, n| {
                let v = f32::from(u16::from_le_bytes([c[0], c[1]]));
                if n {
                    v / 65535.0
                } else {
                    v
                }
            },
            DataType::U32 => {
                return Err(accessor_err(
                    a,
                    "POSITION is UNSIGNED_INT, which glTF does not allow: expected FLOAT, or BYTE, UNSIGNED_BYTE, \
                     SHORT or UNSIGNED_SHORT (KHR_mesh_quantization)"
                        .into(),
                ))
            }
        };
        if a.dimensions() != Dimensions::Vec3 {
            return Err(accessor_err(a, format!("POSITION must be VEC3, found {:?}", a.dimensions())));
        }
        let width = a.data_type().size();
        let normalized = a.normalized();
        let raw = self.read(a)?;
        let p: Vec<[f32; 3]> = raw
            .chunks_exact(3 * width)
            .map(|c| std::array::from_fn(|k| component(&c[k * width..], normalized)))
            .collect();
        let p = Rc::new(p);
        self.positions.insert(a.index(), p.clone());
        Ok(p)
    }

    fn indices(&mut self, a: &gltf::Accessor) -> Result<Rc<Vec<u32>>, ModelError> {
        if let Some(i) = self.indices.get(&a.index()) {
            return Ok(i.clone());
        }
        if a.dimensions() != Dimensions::Scalar {
            return Err(accessor_err(a, format!("indices must be SCALAR, found {:?}", a.dimensions())));
        }
        let raw = self.read(a)?;
        let i: Vec<u32> = match a.data_type() {
            DataType::U8 => raw.iter().map(|&b| u32::from(b)).collect(),
            DataType::U16 => raw.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).collect(),
            DataType::U32 => raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            other => {
                return Err(accessor_err(
                    a,
                    format!("indices must be UNSIGNED_BYTE, UNSIGNED_SHORT or UNSIGNED_INT, found {other:?}"),
                ))
            }
        };
        let i = Rc::new(i);
        self.indices.insert(a.index(), i.clone());
        Ok(i)
    }

    /// The accessor's elements, tightly packed, with sparse substitution applied.
    fn read(&self, a: &gltf::Accessor) -> Result<Vec<u8>, ModelError> {
        let size = a.size();
        let count = a.count();
        // An accessor can only be as long as what backs it. One without a buffer view is zeros (with sparse
        // values on top), backed by nothing: its size is bounded by a small multiple of the input's.
        let mut out = match a.view() {
            Some(view) => {
                let stride = view.stride().unwrap_or(size);
                if stride < size {
                    return Err(accessor_err(
                        a,
                        format!("byteStride {stride} is smaller than an element ({size} bytes)"),
                    ));
                }
                let data = self.view_bytes(&view)?;
                let start = a.offset();
                let needed = if count == 0 {
                    Some(0)
                } else {
                    (count - 1).checked_mul(stride).and_then(|n| n.checked_add(start)?.checked_add(size))
                };
                match needed {
                    Some(n) if n <= data.len() => {}
                    _ => {
                        return Err(accessor_err(
                            a,
                            format!(
                                "{count} elements of {size} bytes (stride {stride}) from offset {start} do not fit in \
                                 buffer view {} of {} bytes",
                                view.index(),
                                data.len()
                            ),
                        ))
                    }
                }
                let mut out = Vec::with_capacity(count * size);
                for i in 0..count {
                    out.extend_from_slice(&data[start + i * stride..start + i * stride + size]);
                }
                out
            }
            None => {
                if count.saturating_mul(size) > self.input_len.saturating_mul(4) {
                    return Err(accessor_err(
                        a,
                        format!("{count} elements without a buffer view is more than a file of this size can use"),
                    ));
                }
                vec![0u8; count * size]
            }
        };
        if let Some(sparse) = a.sparse() {
            let n = sparse.count();
            if n > count {
                return Err(accessor_err(a, format!("sparse count {n} is larger than the accessor count {count}")));
            }
            let idx = sparse.indices();
            let isize = idx.index_type().size();
            let ibytes = self.view_bytes(&idx.view())?;
            let ibytes = slice(ibytes, idx.offset(), n * isize)
                .ok_or_else(|| accessor_err(a, "sparse indices do not fit in their buffer view".into()))?;
            let vals = sparse.values();
            let vbytes = self.view_bytes(&vals.view())?;
            let vbytes = slice(vbytes, vals.offset(), n * size)
                .ok_or_else(|| accessor_err(a, "sparse values do not fit in their buffer view".into()))?;
            for k in 0..n {
                let c = &ibytes[k * isize..(k + 1) * isize];
                let target = match isize {
                    1 => usize::from(c[0]),
                    2 => usize::from(u16::from_le_bytes([c[0], c[1]])),
                    _ => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize,
                };
                if target >= count {
                    return Err(accessor_err(a, format!("sparse index {target} is out of range (count {count})")));
                }
                out[target * size..(target + 1) * size].copy_from_slice(&vbytes[k * size..(k + 1) * size]);
            }
        }
        Ok(out)
    }

    /// A primitive's Draco stream decoded: positions and a triangle list (shared by every instance).
    fn draco(&mut self, mesh: usize, primitive: usize, ext: DracoPrimitive) -> Result<Decoded, ModelError> {
        if let Some(d) = self.draco.get(&(mesh, primitive)) {
            return Ok(d.clone());
        }
        let err = |message| ModelError::GltfDraco { mesh, primitive, message };
        let Some(view) = self.views.get(ext.view) else {
            return Err(err(format!("the Draco extension names buffer view {}, which does not exist", ext.view)));
        };
        let stream = self.view_bytes(view)?;
        let (positions, indices) = gltf_codec::decode_draco(stream, ext.position, self.limits).map_err(err)?;
        let decoded = (Rc::new(positions), Rc::new(indices));
        self.draco.insert((mesh, primitive), decoded.clone());
        Ok(decoded)
    }

    /// A buffer view's bytes: a range of its buffer, or what its meshopt stream decodes to.
    fn view_bytes(&self, view: &gltf::buffer::View) -> Result<&[u8], ModelError> {
        let Some(meshopt) = MeshoptView::of(view) else {
            return self.buffer_range(view.buffer().index(), view.offset(), view.length(), view.index());
        };
        let decoded = self.decoded_views[view.index()].get_or_init(|| {
            let err = |message| ModelError::GltfMeshopt { view: view.index(), message };
            let ext = meshopt.map_err(err)?;
            let compressed = self.buffer_range(ext.buffer, ext.offset, ext.length, view.index())?;
            ext.decode(compressed, view.length(), self.limits).map_err(err)
        });
        match decoded {
            Ok(bytes) => Ok(bytes),
            Err(e) => Err(e.clone()),
        }
    }

    /// `length` bytes from `offset` of buffer `b`, which buffer view `view` names.
    fn buffer_range(&self, b: usize, offset: usize, length: usize, view: usize) -> Result<&[u8], ModelError> {
        let data = match self.buffers.get(b) {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(ModelError::GltfInvalid { message: format!("buffer {b} does not exist") }),
        };
        slice(data, offset, length).ok_or_else(|| ModelError::GltfInvalid {
            message: format!(
                "buffer view {view} ({length} bytes from offset {offset}) does not fit in buffer {b} of {} bytes",
                data.len()
            ),
        })
    }
}

fn slice(data: &[u8], offset: usize, len: usize) -> Option<&[u8]> {
    data.get(offset..offset.checked_add(len)?)
}

fn accessor_err(a: &gltf::Accessor, message: String) -> ModelError {
    ModelError::GltfAccessor { accessor: a.index(), message }
}

/// Material names in first-use order; materials sharing a name share an entry.
#[derive(Default)]
struct MaterialNames {
    names: Vec<String>,
    by_name: HashMap<String, u32>,
}

impl MaterialNames {
    fn id(&mut self, material: &gltf::Material) -> u32 {
        let name = match (material.index(), material.name()) {
            (_, Some(n)) if !n.trim().is_empty() => n.trim().to_owned(),
            (Some(i), _) => format!("material {i}"),
            (None, _) => "default".to_owned(),
        };
        if let Some(&id) = self.by_name.get(&name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.clone());
        self.by_name.insert(name, id);
        id
    }
}

/// Collects placed triangles as a soup in millimetres.
struct Emitter<'a> {
    corners: Vec<[f64; 3]>,
    triangle_materials: Vec<u32>,
    skipped_primitives: usize,
    node_visits: usize,
    scale: f64,
    limits: &'a Limits,
}

/// Node instances a scene may expand to. Nodes shared by several parents (invalid, but real files do it) are
/// walked once per path, and a few levels of sharing would otherwise multiply into billions of visits.
const MAX_NODE_VISITS: usize = 1_000_000;

fn walk(
    node: &gltf::Node,
    parent: Matrix4<f64>,
    depth: usize,
    on_path: &mut [bool],
    reader: &mut Reader,
    materials: &mut MaterialNames,
    out: &mut Emitter,
) -> Result<(), ModelError> {
    let index = node.index();
    if on_path[index] {
        return Err(ModelError::GltfNodeCycle { node: index });
    }
    if depth >= out.limits.max_node_depth {
        return Err(ModelError::GltfTooDeep { node: index, limit: out.limits.max_node_depth });
    }
    out.node_visits += 1;
    if out.node_visits > MAX_NODE_VISITS {
        return Err(ModelError::GltfInvalid {
            message: format!("the node hierarchy expands to more than {MAX_NODE_VISITS} node instances"),
        });
    }
    let world = parent * local_matrix(node)?;
    if let Some(mesh) = node.mesh() {
        for primitive in mesh.primitives() {
            emit(&mesh, &primitive, &world, reader, materials, out)?;
        }
    }
    on_path[index] = true;
    for child in node.children() {
        walk(&child, world, depth + 1, on_path, reader, materials, out)?;
    }
    on_path[index] = false;
    Ok(())
}

fn local_matrix(node: &gltf::Node) -> Result<Matrix4<f64>, ModelError> {
    let m = match node.transform() {
        gltf::scene::Transform::Matrix { matrix } => {
            Matrix4::from_fn(|r, c| f64::from(matrix[c][r])) // glTF matrices are column-major
        }
        gltf::scene::Transform::Decomposed { translation, rotation, scale } => {
            let [x, y, z, w] = rotation.map(f64::from);
            let q = Quaternion::new(w, x, y, z);
            if q.norm() == 0.0 {
                return Err(ModelError::GltfInvalid {
                    message: format!("node {} has a zero rotation quaternion", node.index()),
                });
            }
            let t = Translation3::from(Vector3::from(translation.map(f64::from)));
            t.to_homogeneous()
                * UnitQuaternion::from_quaternion(q).to_homogeneous()
                * Matrix4::new_nonuniform_scaling(&Vector3::from(scale.map(f64::from)))
        }
    };
    if m.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::GltfInvalid {
            message: format!("node {} has a transform that is not finite", node.index()),
        });
    }
    Ok(m)
}

fn emit(
    mesh: &gltf::Mesh,
    primitive: &gltf::Primitive,
    world: &Matrix4<f64>,
    reader: &mut Reader,
    materials: &mut MaterialNames,
    out: &mut Emitter,
) -> Result<(), ModelError> {
    let err = |message: String| ModelError::GltfPrimitive { mesh: mesh.index(), primitive: primitive.index(), message };
    let mode = primitive.mode();
    if !matches!(mode, Mode::Triangles | Mode::TriangleStrip | Mode::TriangleFan) {
        out.skipped_primitives += 1;
        return Ok(());
    }
    let (positions, indices, mode) = match DracoPrimitive::of(primitive) {
        // The extension's own attribute, never the fallback accessor (which has no data in a compressed file).
        // Draco decodes faces, so the primitive is a triangle list whatever its mode said.
        Some(ext) => {
            let ext = ext.map_err(|message| ModelError::GltfDraco {
                mesh: mesh.index(),
                primitive: primitive.index(),
                message,
            })?;
            let (positions, indices) = reader.draco(mesh.index(), primitive.index(), ext)?;
            (positions, Some(indices), Mode::Triangles)
        }
        None => {
            let Some(pos_accessor) = primitive.get(&Semantic::Positions) else {
                return Err(err("has no POSITION attribute".into()));
            };
            let positions = reader.positions(&pos_accessor)?;
            let indices = match primitive.indices() {
                Some(a) => Some(reader.indices(&a)?),
                None => None,
            };
            (positions, indices, mode)
        }
    };
    let n = indices.as_ref().map_or(positions.len(), |i| i.len());
    let triangle_count = match mode {
        Mode::Triangles => n / 3,
        _ => n.saturating_sub(2),
    };
    let total = (out.corners.len() / 3 + triangle_count) as u64;
    if total > out.limits.max_triangles {
        return Err(ModelError::TooManyTriangles { count: total, limit: out.limits.max_triangles });
    }
    let vertex = |k: usize| -> Result<usize, ModelError> {
        let v = match &indices {
            Some(i) => i[k] as usize,
            None => k,
        };
        if v >= positions.len() {
            return Err(err(format!("index {v} is out of range: POSITION has {} vertices", positions.len())));
        }
        Ok(v)
    };
    let linear = world.fixed_view::<3, 3>(0, 0).into_owned();
    let flip = linear.determinant() < 0.0;
    let offset = world.fixed_view::<3, 1>(0, 3).into_owned();
    let place = |v: usize| -> [f64; 3] {
        let p = Vector3::from(positions[v].map(f64::from));
        let w = linear * p + offset;
        [w.x * out.scale, w.y * out.scale, w.z * out.scale]
    };
    let material = materials.id(&primitive.material());
    out.corners.reserve(triangle_count * 3);
    for t in 0..triangle_count {
        let [a, b, c] = match mode {
            Mode::Triangles => [3 * t, 3 * t + 1, 3 * t + 2],
            Mode::TriangleStrip if t % 2 == 0 => [t, t + 1, t + 2],
            Mode::TriangleStrip => [t + 1, t, t + 2],
            _ => [t + 1, t + 2, 0], // fan
        };
        let (a, mut b, mut c) = (vertex(a)?, vertex(b)?, vertex(c)?);
        if flip {
            std::mem::swap(&mut b, &mut c);
        }
        out.corners.push(place(a));
        out.corners.push(place(b));
        out.corners.push(place(c));
        out.triangle_materials.push(material);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use crate::{analyze, parse, ParseOptions};

    /// A .gltf of a 1 m cube (8 positions, 36 u16 indices, wound outwards) in an embedded buffer, placed by
    /// `nodes` (JSON), with `mode` for its primitive.
    fn cube_gltf(nodes: &str, mode: u32, indices: &[u16]) -> String {
        let p: Vec<[f32; 3]> = (0..8).map(|i| [(i & 1) as f32, ((i >> 1) & 1) as f32, ((i >> 2) & 1) as f32]).collect();
        let mut bin: Vec<u8> = p.iter().flatten().flat_map(|c| c.to_le_bytes()).collect();
        let index_offset = bin.len();
        bin.extend(indices.iter().flat_map(|i| i.to_le_bytes()));
        let uri = base64::engine::general_purpose::STANDARD.encode(&bin);
        format!(
            r#"{{"asset":{{"version":"2.0"}},"scene":0,"scenes":[{{"nodes":[0]}}],"nodes":{nodes},
            "meshes":[{{"primitives":[{{"attributes":{{"POSITION":0}},"indices":1,"mode":{mode}}}]}}],
            "accessors":[
              {{"bufferView":0,"componentType":5126,"count":8,"type":"VEC3","min":[0,0,0],"max":[1,1,1]}},
              {{"bufferView":1,"componentType":5123,"count":{n},"type":"SCALAR"}}],
            "bufferViews":[{{"buffer":0,"byteOffset":0,"byteLength":96}},
                           {{"buffer":0,"byteOffset":{index_offset},"byteLength":{il}}}],
            "buffers":[{{"byteLength":{len},"uri":"data:application/octet-stream;base64,{uri}"}}]}}"#,
            n = indices.len(),
            il = indices.len() * 2,
            len = bin.len()
        )
    }

    const CUBE: [u16; 36] =
        [0, 2, 1, 1, 2, 3, 4, 5, 6, 5, 7, 6, 0, 1, 4, 1, 5, 4, 2, 6, 3, 3, 6, 7, 0, 4, 2, 2, 4, 6, 1, 3, 5, 3, 7, 5];

    #[test]
    fn embedded_cube_in_metres_is_reported_in_millimetres() {
        let r = analyze(&parse(cube_gltf(r#"[{"mesh":0}]"#, 4, &CUBE).as_bytes(), &ParseOptions::default()).unwrap());
        assert!((r.volume_mm3 - 1e9).abs() < 1e-3);
        assert!(r.watertight);
        assert_eq!(r.materials[0].name, "default");
    }

    #[test]
    fn a_mirroring_node_flips_the_winding_back() {
        let nodes = r#"[{"mesh":0,"scale":[-1,2,1],"translation":[5,0,0]}]"#;
        let r = analyze(&parse(cube_gltf(nodes, 4, &CUBE).as_bytes(), &ParseOptions::default()).unwrap());
        assert!((r.volume_mm3 - 2e9).abs() < 1e-3, "{}", r.volume_mm3);
        assert_eq!(r.inverted_shells, 0);
        assert!((r.bbox_mm.min[0] - 4000.0).abs() < 1e-9);
    }

    #[test]
    fn strips_and_fans_make_triangles() {
        // Strip over the bottom face (z = 0): 0 1 2 3 gives two triangles; a fan 0 1 3 2 gives two as well.
        let strip = analyze(
            &parse(cube_gltf(r#"[{"mesh":0}]"#, 5, &[0, 1, 2, 3]).as_bytes(), &ParseOptions::default()).unwrap(),
        );
        assert_eq!(strip.triangles, 2);
        assert!((strip.area_mm2 - 1e6).abs() < 1e-6);
        assert_eq!(strip.inconsistent_edges, 0, "alternate strip triangles are re-wound");
        let fan = analyze(
            &parse(cube_gltf(r#"[{"mesh":0}]"#, 6, &[0, 1, 3, 2]).as_bytes(), &ParseOptions::default()).unwrap(),
        );
        assert_eq!(fan.triangles, 2);
        assert_eq!(fan.inconsistent_edges, 0);
    }

    #[test]
    fn out_of_range_indices_and_deep_hierarchies_are_errors() {
        let mut bad = CUBE;
        bad[5] = 200;
        let e = parse(cube_gltf(r#"[{"mesh":0}]"#, 4, &bad).as_bytes(), &ParseOptions::default()).unwrap_err();
        assert_eq!(e.code(), "gltf_bad_primitive");
        assert!(e.to_string().contains("index 200 is out of range: POSITION has 8 vertices"), "{e}");

        let chain: Vec<String> = (0..100)
            .map(|i| if i < 99 { format!(r#"{{"children":[{}]}}"#, i + 1) } else { r#"{"mesh":0}"#.into() })
            .collect();
        let e = parse(cube_gltf(&format!("[{}]", chain.join(",")), 4, &CUBE).as_bytes(), &ParseOptions::default())
            .unwrap_err();
        assert_eq!(e.code(), "gltf_too_deep");
    }

    #[test]
    fn an_accessor_backed_by_nothing_cannot_ask_for_gigabytes() {
        let json = r#"{"asset":{"version":"2.0"},"scene":0,"scenes":[{"nodes":[0]}],"nodes":[{"mesh":0}],
            "meshes":[{"primitives":[{"attributes":{"POSITION":0}}]}],
            "accessors":[{"componentType":5126,"count":100000000,"type":"VEC3","min":[0,0,0],"max":[0,0,0],
              "sparse":{"count":1,"indices":{"bufferView":0,"componentType":5125},"values":{"bufferView":1}}}],
            "bufferViews":[{"buffer":0,"byteLength":4},{"buffer":0,"byteOffset":4,"byteLength":12}],
            "buffers":[{"byteLength":16,"uri":"data:application/octet-stream;base64,AAAAAAAAAAAAAAAAAAAAAA=="}]}"#;
        let e = parse(json.as_bytes(), &ParseOptions::default()).unwrap_err();
        assert_eq!(e.code(), "gltf_bad_accessor", "{e}");
    }

    #[test]
    fn a_shared_child_is_placed_once_per_parent_and_exponential_sharing_is_refused() {
        let nodes = r#"[{"children":[1,2]},{"children":[3]},{"translation":[3,0,0],"children":[3]},{"mesh":0}]"#;
        let r = analyze(&parse(cube_gltf(nodes, 4, &CUBE).as_bytes(), &ParseOptions::default()).unwrap());
        assert_eq!((r.triangles, r.shells), (24, 2));
        // 40 levels of two children that are the same node: 2^40 paths, to a leaf with no mesh (so only the
        // walk itself is bounded) and to a cube (bounded by the triangle limit first).
        let levels: Vec<String> = (0..40).map(|i| format!(r#"{{"children":[{0},{0}]}}"#, i + 1)).collect();
        let nodes = format!(r#"[{},{{}}]"#, levels.join(","));
        let e = parse(cube_gltf(&nodes, 4, &CUBE).as_bytes(), &ParseOptions::default()).unwrap_err();
        assert!(e.to_string().contains("expands to more than 1000000 node instances"), "{e}");
        let nodes = format!(r#"[{},{{"mesh":0}}]"#, levels.join(","));
        let small = ParseOptions {
            limits: crate::Limits { max_triangles: 10_000, ..Default::default() },
            ..Default::default()
        };
        let e = parse(cube_gltf(&nodes, 4, &CUBE).as_bytes(), &small).unwrap_err();
        assert_eq!(e.code(), "too_many_triangles");
    }
}
