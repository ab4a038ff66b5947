//! `assay quote`: geometry and a price breakdown per alloy, in the terminal or as JSON.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use crate::analyze_cmd::analyze_file;
use crate::QuoteArgs;

pub(crate) fn run(args: &QuoteArgs) -> anyhow::Result<ExitCode> {
    let rules = crate::rules_source::load(args.rules.as_deref())?;
    let options = models::ParseOptions { units: args.units, ..Default::default() };
    let request = args.request();
    let report = match analyze_file(&args.file, &options) {
        Ok(r) => r,
        Err(f) => {
            if args.json {
                println!(
                    "{}",
                    json!({ "file": args.file.display().to_string(), "error": { "code": f.code, "message": f.message } })
                );
            } else {
                eprintln!("error [{}]: {}", f.code, f.message);
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let quotes = match rules.price(&report, &request) {
        Ok(q) => q,
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    json!({ "file": args.file.display().to_string(), "error": { "code": e.code(), "message": e.to_string() } })
                );
            } else {
                eprintln!("error [{}]: {e}", e.code());
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = json!({
            "file": args.file.display().to_string(),
            "rules_version": quotes.rules_version,
            "prices_date": quotes.prices_date,
            "segment": quotes.segment,
            "quantity": quotes.quantity,
            "geometry": report,
            "detected_stones": quotes.detected_stones,
            "metal_volume_mm3": quotes.metal_volume_mm3,
            "needs_review": quotes.needs_review,
            "quotes": quotes.quotes,
            "warnings": quotes.warnings,
        });
        serde_json::to_writer(&mut out, &value).context("cannot write JSON")?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{}: {:.3} mm³ solid ({:.3} mm³ metal), {:.3} mm², {}",
        args.file.display(),
        report.solid_volume_mm3,
        quotes.metal_volume_mm3,
        report.area_mm2,
        if report.needs_review { "NEEDS REVIEW" } else { "solid" }
    )?;
    writeln!(
        out,
        "rules {} (metal prices of {}), segment {}, {} piece{}",
        &quotes.rules_version[..12],
        quotes.prices_date,
        quotes.segment,
        quotes.quantity,
        if quotes.quantity == 1 { "" } else { "s" }
    )?;
    for w in report.warnings.iter().map(|w| &w.message).chain(&quotes.warnings) {
        writeln!(out, "warning: {w}")?;
    }
    for q in &quotes.quotes {
        writeln!(out, "\n{} ({}): {} g a piece", q.alloy_label, q.alloy, q.metal_weight_g)?;
        writeln!(out, "  {}", q.castability)?;
        for l in &q.lines {
            writeln!(out, "  {:<18}{:>12} {}   {}", l.name, l.amount.to_string(), q.currency, l.basis)?;
        }
        writeln!(out, "  {:<18}{:>12} {}", "total", q.total.to_string(), q.currency)?;
    }
    Ok(ExitCode::SUCCESS)
}
