//! `assay rules`: check a rules directory, show what an edit does to prices, write the JSON Schemas.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use pricing_rules::{Decimal, RuleSet};
use rayon::prelude::*;

use crate::analyze_cmd::analyze_file;
use crate::DiffArgs;

pub(crate) fn check(dir: &Path) -> anyhow::Result<ExitCode> {
    let rules = match RuleSet::load_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: valid, version {}", dir.display(), rules.version)?;
    writeln!(
        out,
        "  currency {} ({} decimals), metal prices of {}",
        rules.currency, rules.minor_unit_digits, rules.prices_date
    )?;
    for (metal, price) in &rules.metals {
        writeln!(out, "  {metal:<12} {price}/g")?;
    }
    writeln!(out, "  {} alloys:", rules.alloys.len())?;
    for a in &rules.alloys {
        writeln!(
            out,
            "    {:<14} {:<24} {} {} fine, {} g/cm³, surcharge {}/g",
            a.id, a.label, a.metal, a.fineness, a.density_g_cm3, a.surcharge_per_g
        )?;
    }
    let l = &rules.labour;
    writeln!(
        out,
        "  labour: casting loss {}%, setup {}, {}/g, finishing {}/cm²",
        l.casting_loss_percent, l.setup, l.per_gram, l.finishing_per_cm2
    )?;
    for (id, s) in &rules.segments {
        writeln!(out, "  segment {id} ({}): markup {}%, minimum {}", s.label, s.markup_percent, s.minimum_price)?;
    }
    for b in &rules.quantity_breaks {
        writeln!(out, "  quantity break: {}% off from {} pieces", b.discount_percent, b.min_quantity)?;
    }
    for (id, s) in &rules.stones {
        writeln!(
            out,
            "  stone {id}: setting {} each, {} g/cm³, materials {:?}",
            s.setting_per_stone, s.density_g_cm3, s.material_patterns
        )?;
    }
    writeln!(out, "  tax: {} {}% for {}", rules.tax.label, rules.tax.rate_percent, rules.tax.applies_to.join(", "))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn schema(dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in pricing_rules::schemas() {
        let path = dir.join(&name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

struct Change {
    model: String,
    alloy: String,
    old: Option<Decimal>,
    new: Option<Decimal>,
}

impl Change {
    fn diff(&self) -> Decimal {
        self.new.unwrap_or_default() - self.old.unwrap_or_default()
    }

    /// Relative change in percent; an alloy priced on one side only sorts first.
    fn percent(&self) -> Option<Decimal> {
        match (self.old, self.new) {
            (Some(o), Some(n)) if !o.is_zero() => Some(((n - o) / o * Decimal::ONE_HUNDRED).round_dp(2)),
            _ => None,
        }
    }
}

pub(crate) fn diff(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let old = crate::rules_source::load_dir(&args.old)?;
    let new = crate::rules_source::load_dir(&args.new)?;
    let files = crate::rules_source::model_files(&args.models)?;
    if files.is_empty() {
        anyhow::bail!("no models (.stl, .glb, .gltf) under {}", args.models.display());
    }
    let options = models::ParseOptions { units: args.units, ..Default::default() };
    let request =
        pricing_rules::QuoteRequest { segment: args.segment.clone(), quantity: args.qty, ..Default::default() };
    let results: Vec<(String, Result<Vec<Change>, String>)> = files
        .par_iter()
        .map(|file| {
            let name = file.display().to_string();
            let changes =
                analyze_file(file, &options).map_err(|f| format!("[{}] {}", f.code, f.message)).and_then(|report| {
                    let a = old.price(&report, &request).map_err(|e| format!("old rules: {e}"))?;
                    let b = new.price(&report, &request).map_err(|e| format!("new rules: {e}"))?;
                    let mut alloys: Vec<String> = a.quotes.iter().map(|q| q.alloy.clone()).collect();
                    alloys.extend(
                        b.quotes.iter().map(|q| q.alloy.clone()).filter(|id| !a.quotes.iter().any(|q| &q.alloy == id)),
                    );
                    Ok(alloys
                        .into_iter()
                        .map(|alloy| Change {
                            model: name.clone(),
                            old: a.quotes.iter().find(|q| q.alloy == alloy).map(|q| q.total),
                            new: b.quotes.iter().find(|q| q.alloy == alloy).map(|q| q.total),
                            alloy,
                        })
                        .collect())
                });
            (name, changes)
        })
        .collect();

    let mut changes: Vec<Change> = Vec::new();
    let mut failures = Vec::new();
    for (name, r) in results {
        match r {
            Ok(c) => changes.extend(c),
            Err(e) => failures.push((name, e)),
        }
    }
    // Largest change first: by |percent|, then by |difference|; one-sided rows (alloy added or removed) first.
    changes.sort_by(|a, b| {
        let key =
            |c: &Change| (c.percent().is_none(), c.percent().map(|p| p.abs()).unwrap_or_default(), c.diff().abs());
        let (ka, kb) = (key(a), key(b));
        kb.cmp(&ka).then_with(|| a.model.cmp(&b.model)).then_with(|| a.alloy.cmp(&b.alloy))
    });
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "rules {} ({}) -> {} ({}), segment {}, quantity {}, currency {}",
        &old.version[..12],
        old.prices_date,
        &new.version[..12],
        new.prices_date,
        args.segment,
        args.qty,
        new.currency
    )?;
    let show = |v: Option<Decimal>| v.map_or("-".to_owned(), |d| d.to_string());
    writeln!(out, "{:<40} {:<14} {:>12} {:>12} {:>12} {:>9}", "model", "alloy", "old", "new", "difference", "percent")?;
    let changed = changes.iter().filter(|c| c.old != c.new).count();
    for c in &changes {
        let pct = match (c.old, c.new, c.percent()) {
            (_, _, Some(p)) => format!("{p:+}%"),
            (None, Some(_), _) => "added".into(),
            (Some(_), None, _) => "removed".into(),
            _ => "-".into(),
        };
        let model = Path::new(&c.model).file_name().map_or(c.model.clone(), |n| n.to_string_lossy().into_owned());
        writeln!(
            out,
            "{:<40} {:<14} {:>12} {:>12} {:>12} {:>9}",
            model,
            c.alloy,
            show(c.old),
            show(c.new),
            format!("{:+}", c.diff()),
            pct
        )?;
    }
    writeln!(out, "{changed} of {} prices change; {} models could not be priced", changes.len(), failures.len())?;
    for (name, e) in &failures {
        writeln!(out, "  {name}: {e}")?;
    }
    Ok(ExitCode::SUCCESS)
}
