//! `assay batch`: every model in a folder measured and priced in parallel, with a progress bar, to CSV or JSON.
//! A file that fails is listed with its error; it never stops the run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::analyze_cmd::{analyze_file, Failure};
use crate::BatchArgs;

struct Row {
    file: PathBuf,
    result: Result<(models::Report, pricing_rules::Quotes), Failure>,
}

pub(crate) fn run(args: &BatchArgs) -> anyhow::Result<ExitCode> {
    let rules = crate::rules_source::load(args.rules.as_deref())?;
    let files = crate::rules_source::model_files(&args.dir)?;
    if files.is_empty() {
        anyhow::bail!("no models (.stl, .glb, .gltf) under {}", args.dir.display());
    }
    let options = models::ParseOptions { units: args.units, ..Default::default() };
    let request = args.request();
    let started = Instant::now();
    let bar = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} models, {elapsed} elapsed, {eta} left  {msg}")
            .expect("valid template"),
    );
    let rows: Vec<Row> = files
        .par_iter()
        .map(|file| {
            let result = analyze_file(file, &options).and_then(|report| {
                rules
                    .price(&report, &request)
                    .map(|q| (report, q))
                    .map_err(|e| Failure { code: e.code(), message: e.to_string() })
            });
            bar.inc(1);
            Row { file: file.clone(), result }
        })
        .collect();
    bar.finish_and_clear();

    match &args.out {
        Some(path) if path.extension().and_then(|e| e.to_str()) == Some("json") => write_json(path, &rows, &rules)?,
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            write_csv(csv::Writer::from_writer(file), &rows, &rules)?
        }
        None => write_csv(csv::Writer::from_writer(std::io::stdout()), &rows, &rules)?,
    }

    let failed: Vec<&Row> = rows.iter().filter(|r| r.result.is_err()).collect();
    eprintln!(
        "{} models in {:.1} s: {} priced, {} failed (rules {}){}",
        rows.len(),
        started.elapsed().as_secs_f64(),
        rows.len() - failed.len(),
        failed.len(),
        &rules.version[..12],
        args.out.as_ref().map(|p| format!(", written to {}", p.display())).unwrap_or_default()
    );
    for r in &failed {
        if let Err(f) = &r.result {
            eprintln!("  failed {}: [{}] {}", r.file.display(), f.code, f.message);
        }
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn alloy_ids(rows: &[Row], rules: &pricing_rules::RuleSet) -> Vec<String> {
    rows.iter()
        .find_map(|r| r.result.as_ref().ok())
        .map(|(_, q)| q.quotes.iter().map(|q| q.alloy.clone()).collect())
        .unwrap_or_else(|| rules.alloys.iter().map(|a| a.id.clone()).collect())
}

fn write_csv<W: std::io::Write>(
    mut w: csv::Writer<W>,
    rows: &[Row],
    rules: &pricing_rules::RuleSet,
) -> anyhow::Result<()> {
    let alloys = alloy_ids(rows, rules);
    let mut header: Vec<String> = [
        "file",
        "status",
        "error_code",
        "error_message",
        "format",
        "volume_mm3",
        "solid_volume_mm3",
        "metal_volume_mm3",
        "needs_review",
        "area_mm2",
        "watertight",
        "triangles",
        "shells",
        "min_wall_mm",
    ]
    .map(String::from)
    .to_vec();
    header.extend(alloys.iter().map(|a| format!("total_{a}")));
    header.push("currency".into());
    header.extend(alloys.iter().map(|a| format!("castable_{a}")));
    w.write_record(&header)?;
    for r in rows {
        let file = display(&r.file);
        let record: Vec<String> = match &r.result {
            Ok((g, q)) => {
                let mut v = vec![
                    file,
                    "priced".into(),
                    String::new(),
                    String::new(),
                    g.format.map(|f| f.as_str().to_owned()).unwrap_or_default(),
                    format!("{:.3}", g.volume_mm3),
                    format!("{:.3}", g.solid_volume_mm3),
                    format!("{:.3}", q.metal_volume_mm3),
                    g.needs_review.to_string(),
                    format!("{:.3}", g.area_mm2),
                    g.watertight.to_string(),
                    g.triangles.to_string(),
                    g.shells.to_string(),
                    g.thickness.as_ref().map(|t| format!("{:.3}", t.min_wall_mm)).unwrap_or_default(),
                ];
                v.extend(q.quotes.iter().map(|q| q.total.to_string()));
                v.push(rules.currency.clone());
                v.extend(q.quotes.iter().map(|q| q.castable.to_string()));
                v
            }
            Err(f) => {
                let mut v = vec![file, "failed".into(), f.code.into(), f.message.clone()];
                v.resize(header.len(), String::new());
                v
            }
        };
        w.write_record(&record)?;
    }
    w.flush()?;
    Ok(())
}

fn write_json(path: &Path, rows: &[Row], rules: &pricing_rules::RuleSet) -> anyhow::Result<()> {
    let models: Vec<Value> = rows
        .iter()
        .map(|r| match &r.result {
            Ok((g, q)) => json!({ "file": display(&r.file), "geometry": g, "detected_stones": q.detected_stones, "metal_volume_mm3": q.metal_volume_mm3, "needs_review": q.needs_review, "quotes": q.quotes, "warnings": q.warnings }),
            Err(f) => json!({ "file": display(&r.file), "error": { "code": f.code, "message": f.message } }),
        })
        .collect();
    let doc = json!({ "rules_version": rules.version, "prices_date": rules.prices_date, "models": models });
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    serde_json::to_writer_pretty(std::io::BufWriter::new(file), &doc).context("cannot write JSON")?;
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
