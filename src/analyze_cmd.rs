//! `assay analyze`: a geometry report per file, as a table for people or JSON lines for programs.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::AnalyzeArgs;

pub(crate) fn run(args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let options = models::ParseOptions { units: args.units, ..Default::default() };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0;
    for (i, path) in args.files.iter().enumerate() {
        let result = analyze_file(path, &options);
        if result.is_err() {
            failed += 1;
        }
        if args.json {
            serde_json::to_writer(&mut out, &json_line(path, &result)).context("cannot write JSON")?;
            writeln!(out)?;
        } else {
            if i > 0 {
                writeln!(out)?;
            }
            write_table(&mut out, path, &result)?;
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A failure to read a file, or a model that is not a valid mesh, with a stable code.
pub(crate) struct Failure {
    pub code: &'static str,
    pub message: String,
}

pub(crate) fn analyze_file(path: &Path, options: &models::ParseOptions) -> Result<models::Report, Failure> {
    let bytes = read_model(path)?;
    let mesh = models::parse(&bytes, options).map_err(|e| Failure { code: e.code(), message: e.to_string() })?;
    drop(bytes);
    Ok(models::analyze(&mesh))
}

/// A model file's bytes; a `.gltf` whose buffers are files beside it comes back with them embedded (never a
/// file outside its folder: `models::embed_gltf_buffers` refuses such URIs by name).
///
/// A file of [`MAP_FROM`] bytes or more is mapped rather than read: its pages come straight from the kernel's
/// cache, where reading copies them into as much fresh memory (on the 100 MB benchmark band, 100 to 200 ms of a
/// 300 to 600 ms analysis went to that copy and to the kernel zeroing the pages it went into). A mapped file that
/// another program truncates while it is read ends the process (SIGBUS), as with any tool that maps its input.
pub(crate) fn read_model(path: &Path) -> Result<Bytes, Failure> {
    let failed =
        |e: std::io::Error| Failure { code: "io_error", message: format!("cannot read {}: {e}", path.display()) };
    let file = std::fs::File::open(path).map_err(failed)?;
    let meta = file.metadata().map_err(failed)?;
    let bytes = if meta.is_file() && meta.len() >= MAP_FROM {
        #[allow(unsafe_code, reason = "memmap2's maps are unsafe to make: another process may change the file")]
        // SAFETY: the map is only read; a file truncated underneath it ends the process (see above).
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(failed)?;
        Bytes::from_owner(map)
    } else {
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(failed)?;
        Bytes::from(bytes)
    };
    if models::detect(&bytes) != Ok(models::Format::Gltf) {
        return Ok(bytes);
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    models::embed_gltf_buffers(&bytes, |relative| std::fs::read(folder.join(relative)).ok())
        .map(Bytes::from)
        .map_err(|e| Failure { code: e.code(), message: e.to_string() })
}

/// Files at least this large are mapped by [`read_model`] (smaller ones cost more to map than to read).
const MAP_FROM: u64 = 1 << 20;

fn json_line(path: &Path, result: &Result<models::Report, Failure>) -> Value {
    let mut v = match result {
        Ok(report) => serde_json::to_value(report).unwrap_or_else(|e| json!({ "error": e.to_string() })),
        Err(f) => json!({ "error": { "code": f.code, "message": f.message } }),
    };
    if let Value::Object(map) = &mut v {
        let mut with_file = serde_json::Map::new();
        with_file.insert("file".into(), Value::String(path.display().to_string()));
        with_file.append(map);
        *map = with_file;
    }
    v
}

fn write_table(out: &mut impl Write, path: &Path, result: &Result<models::Report, Failure>) -> std::io::Result<()> {
    let r = match result {
        Ok(r) => r,
        Err(f) => return writeln!(out, "{}\n  error [{}]: {}", path.display(), f.code, f.message),
    };
    let format = r.format.map_or("mesh", |f| f.as_str());
    let units = r.units.map_or("mm", |u| u.as_str());
    writeln!(out, "{}  ({format}, read as {units})", path.display())?;
    let s = r.bbox_mm.size;
    let rows: [(&str, String); 14] = [
        ("solid volume", format!("{:.3} mm³", r.solid_volume_mm3)),
        ("needs review", if r.needs_review { "YES".into() } else { "no".into() }),
        ("volume (raw sum)", format!("{:.3} mm³", r.volume_mm3)),
        ("area", format!("{:.3} mm²", r.area_mm2)),
        ("bounding box", format!("{:.3} × {:.3} × {:.3} mm", s[0], s[1], s[2])),
        ("triangles", r.triangles.to_string()),
        ("vertices", r.vertices.to_string()),
        ("shells", r.shells.to_string()),
        ("watertight", if r.watertight { "yes".into() } else { "no".into() }),
        ("boundary edges", r.boundary_edges.to_string()),
        ("non-manifold edges", r.non_manifold_edges.to_string()),
        ("inconsistent edges", r.inconsistent_edges.to_string()),
        ("degenerate triangles", r.degenerate_triangles.to_string()),
        ("inverted shells", r.inverted_shells.to_string()),
    ];
    for (name, value) in rows {
        writeln!(out, "  {name:<21}{value}")?;
    }
    if let Some(t) = &r.thickness {
        writeln!(
            out,
            "  {:<21}{:.3} mm thinnest; 5 % of the surface under {:.3} mm, half under {:.3} mm ({} points measured, {:.3} mm apart near thin places)",
            "walls",
            t.min_wall_mm,
            t.p5_mm,
            t.p50_mm,
            t.samples,
            t.sample_spacing_mm
        )?;
        for g in &t.thin_regions {
            let [x, y, z] = g.thinnest_at_mm;
            let kind = match g.kind {
                models::ThinKind::Wall => "wall",
                models::ThinKind::Wire => "wire",
            };
            writeln!(
                out,
                "    {kind} {:.3} mm thin over {:.3} mm², thinnest at ({x:.2}, {y:.2}, {z:.2}) mm",
                g.wall_mm, g.area_mm2
            )?;
        }
        if t.thin_region_count > t.thin_regions.len() as u64 {
            writeln!(out, "    and {} more places under 1.5 mm", t.thin_region_count - t.thin_regions.len() as u64)?;
        }
    }
    if !r.materials.is_empty() {
        writeln!(out, "  materials")?;
        for m in &r.materials {
            writeln!(
                out,
                "    {:<24} {:>12.3} mm³ solid {:>12.3} mm² {:>9} triangles {:>5} shells",
                m.name, m.solid_volume_mm3, m.area_mm2, m.triangles, m.shells
            )?;
        }
    }
    let p = &r.repairs;
    let repairs: Vec<String> = [
        (p.vertices_welded, "vertices welded"),
        (p.degenerate_triangles_dropped, "degenerate triangles dropped"),
        (p.duplicate_triangles_dropped, "duplicate triangles dropped"),
        (p.reversed_pairs_dropped, "reversed pairs dropped"),
        (p.triangles_reoriented, "triangles reoriented"),
        (p.holes_filled, "holes filled"),
        (p.shells_turned_outward, "shells turned outward"),
        (p.cavities, "cavities"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if !repairs.is_empty() {
        writeln!(out, "  repairs              {}", repairs.join(", "))?;
    }
    for w in &r.warnings {
        writeln!(out, "  warning [{}]: {}", w.code, w.message)?;
    }
    for w in &r.review {
        writeln!(out, "  review [{}]: {}", w.code, w.message)?;
    }
    Ok(())
}
