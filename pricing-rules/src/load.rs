//! Loading a rules directory: parse every file, check every value, and build a versioned [`RuleSet`], or say
//! exactly where each problem is. All or nothing: a set with one error is not loaded.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::files::{self, At, Dec, FILES, FORMAT};

/// A validated, versioned set of pricing rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSet {
    /// SHA-256 of the normalised content of the rules files (names and text, line endings folded to LF).
    pub version: String,
    pub currency: String,
    pub minor_unit_digits: u32,
    /// The date the metal prices were set.
    pub prices_date: String,
    /// Price per gram of pure metal.
    pub metals: BTreeMap<String, Decimal>,
    /// In file order.
    pub alloys: Vec<Alloy>,
    pub labour: Labour,
    pub segments: BTreeMap<String, Segment>,
    /// Ascending by `min_quantity`.
    pub quantity_breaks: Vec<QuantityBreak>,
    pub stones: BTreeMap<String, Stone>,
    pub tax: Tax,
    /// Casting minimums by metal id: every priced metal has one.
    pub casting: BTreeMap<String, CastingMinimum>,
}

/// The thinnest wall and wire one metal casts reliably, mm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CastingMinimum {
    pub wall_mm: Decimal,
    pub wire_mm: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alloy {
    pub id: String,
    pub label: String,
    pub metal: String,
    pub fineness: Decimal,
    pub density_g_cm3: Decimal,
    pub surcharge_per_g: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Labour {
    pub casting_loss_percent: Decimal,
    pub setup: Decimal,
    pub per_gram: Decimal,
    pub finishing_per_cm2: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub label: String,
    pub markup_percent: Decimal,
    pub minimum_price: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantityBreak {
    pub min_quantity: u32,
    pub discount_percent: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stone {
    pub label: String,
    pub setting_per_stone: Decimal,
    pub density_g_cm3: Decimal,
    pub material_patterns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tax {
    pub label: String,
    pub rate_percent: Decimal,
    pub applies_to: Vec<String>,
}

/// One problem in a rules file, at a place finance can go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    /// 1-based; 0 when the problem is the file as a whole (missing, unreadable).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

/// Every problem found in a rules set; it was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub errors: Vec<RuleError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "the rules were not loaded: {n} problem{}", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl RuleSet {
    /// Loads the rules files from a directory (symlinks followed, as in a Kubernetes ConfigMap mount).
    pub fn load_dir(dir: &Path) -> Result<RuleSet, LoadError> {
        let mut texts = Vec::new();
        let mut errors = Vec::new();
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.ends_with(".toml") && !FILES.iter().any(|(f, _)| *f == name) {
                        errors.push(whole_file(
                            &name,
                            format!("is not a rules file; a rules directory holds {}", file_list()),
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(LoadError {
                    errors: vec![whole_file(
                        &dir.display().to_string(),
                        format!("cannot read the rules directory: {e}"),
                    )],
                })
            }
        }
        for (name, _) in FILES {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(text) => texts.push((name.to_string(), text)),
                Err(e) => errors.push(whole_file(name, format!("cannot read: {e}"))),
            }
        }
        if !errors.is_empty() {
            return Err(LoadError { errors });
        }
        RuleSet::from_texts(&texts)
    }

    /// Builds a rule set from (file name, content) pairs: the files of a directory, or an embedded copy.
    pub fn from_texts(texts: &[(String, String)]) -> Result<RuleSet, LoadError> {
        let mut c = Checker { errors: Vec::new() };
        let text = |name: &str| texts.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_str());
        for (name, _) in FILES {
            if text(name).is_none() {
                c.errors.push(whole_file(name, "is missing".into()));
            }
        }
        let metals: Option<files::MetalsFile> = c.parse("metals.toml", text("metals.toml"));
        let alloys: Option<files::AlloysFile> = c.parse("alloys.toml", text("alloys.toml"));
        let labour: Option<files::LabourFile> = c.parse("labour.toml", text("labour.toml"));
        let segments: Option<files::SegmentsFile> = c.parse("segments.toml", text("segments.toml"));
        let stones: Option<files::StonesFile> = c.parse("stones.toml", text("stones.toml"));
        let tax: Option<files::TaxFile> = c.parse("tax.toml", text("tax.toml"));
        let casting: Option<files::CastingFile> = c.parse("casting.toml", text("casting.toml"));
        let (Some(metals), Some(alloys), Some(labour), Some(segments), Some(stones), Some(tax), Some(casting)) =
            (metals, alloys, labour, segments, stones, tax, casting)
        else {
            return Err(LoadError { errors: c.errors });
        };
        let set = c.build(texts, metals, alloys, labour, segments, stones, tax, casting);
        if c.errors.is_empty() {
            Ok(set)
        } else {
            Err(LoadError { errors: c.errors })
        }
    }

    pub fn alloy(&self, id: &str) -> Option<&Alloy> {
        self.alloys.iter().find(|a| a.id == id)
    }
}

fn file_list() -> String {
    FILES.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
}

fn whole_file(file: &str, message: String) -> RuleError {
    RuleError { file: file.to_owned(), line: 0, column: 0, message }
}

/// The version: SHA-256 over each file's name and text in a fixed order, line endings folded.
fn version(texts: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    for (name, _) in FILES {
        let text = texts.iter().find(|(n, _)| n == name).map_or("", |(_, t)| t.as_str());
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.replace("\r\n", "\n").as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

struct Checker {
    errors: Vec<RuleError>,
}

/// Texts of the files being checked, to turn byte spans into lines and columns.
struct Located<'a> {
    file: &'a str,
    text: &'a str,
}

impl Located<'_> {
    fn at(&self, span: Range<usize>, message: String) -> RuleError {
        let (line, column) = locate(self.text, span);
        RuleError { file: self.file.to_owned(), line, column, message }
    }
}

/// The 1-based line and column (in characters) where a byte span of `text` starts.
pub fn locate(text: &str, span: Range<usize>) -> (usize, usize) {
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Checker {
    fn parse<T: DeserializeOwned>(&mut self, file: &str, text: Option<&str>) -> Option<T> {
        let text = text?;
        match toml::from_str::<T>(text) {
            Ok(v) => Some(v),
            Err(e) => {
                let loc = Located { file, text };
                let message = e.message().trim().to_owned();
                self.errors.push(match e.span() {
                    Some(span) => loc.at(span, message),
                    None => whole_file(file, message),
                });
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // one argument per rules file
    fn build(
        &mut self,
        texts: &[(String, String)],
        metals: files::MetalsFile,
        alloys: files::AlloysFile,
        labour: files::LabourFile,
        segments: files::SegmentsFile,
        stones: files::StonesFile,
        tax: files::TaxFile,
        casting: files::CastingFile,
    ) -> RuleSet {
        let loc = |file: &'static str| Located {
            file,
            text: texts.iter().find(|(n, _)| n == file).map_or("", |(_, t)| t.as_str()),
        };
        let (m, a, l, s, st, t, ca) = (
            loc("metals.toml"),
            loc("alloys.toml"),
            loc("labour.toml"),
            loc("segments.toml"),
            loc("stones.toml"),
            loc("tax.toml"),
            loc("casting.toml"),
        );
        for (f, format) in [
            (&m, &metals.format),
            (&a, &alloys.format),
            (&l, &labour.format),
            (&s, &segments.format),
            (&st, &stones.format),
            (&t, &tax.format),
            (&ca, &casting.format),
        ] {
            if *format.get_ref() != FORMAT {
                self.errors.push(f.at(
                    format.span(),
                    format!("format {} is not one this assay reads: expected format = {FORMAT}", format.get_ref()),
                ));
            }
        }

        // metals.toml
        let currency = metals.currency.get_ref().clone();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            self.errors.push(m.at(
                metals.currency.span(),
                format!(
                    "currency \"{currency}\" is not an ISO 4217 code: expected three capital letters, e.g. \"EUR\""
                ),
            ));
        }
        let digits = *metals.minor_unit_digits.get_ref();
        if digits > 4 {
            self.errors.push(m.at(
                metals.minor_unit_digits.span(),
                format!("minor_unit_digits {digits} is out of range: expected 0 to 4"),
            ));
        }
        let date = metals.date.get_ref().clone();
        if !is_date(&date) {
            self.errors.push(m.at(metals.date.span(), format!("date \"{date}\" is not a date: expected YYYY-MM-DD")));
        }
        if metals.price_per_g.is_empty() {
            self.errors
                .push(whole_file("metals.toml", "price_per_g prices no metal: expected e.g. gold = 120.50".into()));
        }
        let mut metal_prices = BTreeMap::new();
        for (id, price) in &metals.price_per_g {
            self.positive(&m, price, &format!("price_per_g.{id}"), false);
            metal_prices.insert(id.clone(), price.get_ref().0);
        }

        // alloys.toml
        let mut alloy_list: Vec<Alloy> = Vec::new();
        for entry in &alloys.alloy {
            let e = entry.get_ref();
            let id = e.id.get_ref().clone();
            if alloy_list.iter().any(|x| x.id == id) {
                self.errors.push(a.at(e.id.span(), format!("alloy id \"{id}\" is defined twice: ids must be unique")));
            }
            if !metal_prices.contains_key(e.metal.get_ref()) {
                self.errors.push(a.at(
                    e.metal.span(),
                    format!(
                        "alloy \"{id}\" names metal \"{}\", which metals.toml does not price: expected one of {}",
                        e.metal.get_ref(),
                        metal_prices.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            let fineness = e.fineness.get_ref().0;
            if fineness <= Decimal::ZERO || fineness > Decimal::ONE {
                self.errors.push(a.at(
                    e.fineness.span(),
                    format!("fineness {fineness} of alloy \"{id}\" is out of range: expected more than 0 and at most 1 (18K is 0.750)"),
                ));
            }
            self.density(&a, &e.density_g_cm3, &format!("density_g_cm3 of alloy \"{id}\""));
            self.positive(&a, &e.surcharge_per_g, &format!("surcharge_per_g of alloy \"{id}\""), true);
            alloy_list.push(Alloy {
                id,
                label: e.label.clone(),
                metal: e.metal.get_ref().clone(),
                fineness,
                density_g_cm3: e.density_g_cm3.get_ref().0,
                surcharge_per_g: e.surcharge_per_g.get_ref().0,
            });
        }
        if alloy_list.is_empty() {
            self.errors.push(whole_file("alloys.toml", "defines no alloy: expected at least one [[alloy]]".into()));
        }

        // labour.toml
        self.percent(&l, &labour.casting_loss_percent, "casting_loss_percent", 100);
        self.positive(&l, &labour.setup, "setup", true);
        self.positive(&l, &labour.per_gram, "per_gram", true);
        self.positive(&l, &labour.finishing_per_cm2, "finishing_per_cm2", true);

        // segments.toml
        let mut segment_map = BTreeMap::new();
        for (id, seg) in &segments.segment {
            let e = seg.get_ref();
            self.percent(&s, &e.markup_percent, &format!("markup_percent of segment \"{id}\""), 1000);
            self.positive(&s, &e.minimum_price, &format!("minimum_price of segment \"{id}\""), true);
            segment_map.insert(
                id.clone(),
                Segment {
                    label: e.label.clone(),
                    markup_percent: e.markup_percent.get_ref().0,
                    minimum_price: e.minimum_price.get_ref().0,
                },
            );
        }
        if segment_map.is_empty() {
            self.errors.push(whole_file("segments.toml", "defines no segment: expected e.g. [segment.b2c]".into()));
        }
        let mut breaks: Vec<QuantityBreak> = Vec::new();
        for b in &segments.quantity_break {
            let e = b.get_ref();
            let q = *e.min_quantity.get_ref();
            if q < 2 {
                self.errors.push(s.at(
                    e.min_quantity.span(),
                    format!("min_quantity {q} is out of range: a break starts at 2 pieces or more"),
                ));
            }
            if breaks.iter().any(|x| x.min_quantity == q) {
                self.errors.push(
                    s.at(e.min_quantity.span(), format!("min_quantity {q} has two breaks: each quantity may have one")),
                );
            }
            self.percent(&s, &e.discount_percent, &format!("discount_percent of the break at {q}"), 99);
            breaks.push(QuantityBreak { min_quantity: q, discount_percent: e.discount_percent.get_ref().0 });
        }
        breaks.sort_by_key(|b| b.min_quantity);

        // stones.toml
        let mut stone_map = BTreeMap::new();
        for (id, stone) in &stones.stone {
            let e = stone.get_ref();
            self.positive(&st, &e.setting_per_stone, &format!("setting_per_stone of stone \"{id}\""), true);
            self.density(&st, &e.density_g_cm3, &format!("density_g_cm3 of stone \"{id}\""));
            stone_map.insert(
                id.clone(),
                Stone {
                    label: e.label.clone(),
                    setting_per_stone: e.setting_per_stone.get_ref().0,
                    density_g_cm3: e.density_g_cm3.get_ref().0,
                    material_patterns: e.material_patterns.iter().map(|p| p.to_lowercase()).collect(),
                },
            );
        }

        // tax.toml
        self.percent(&t, &tax.rate_percent, "rate_percent", 100);
        for seg in &tax.applies_to {
            if !segment_map.contains_key(seg.get_ref()) {
                self.errors.push(t.at(
                    seg.span(),
                    format!(
                        "applies_to names segment \"{}\", which segments.toml does not define: expected one of {}",
                        seg.get_ref(),
                        segment_map.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }

        // casting.toml
        let mut casting_map = BTreeMap::new();
        let most = Decimal::from_f64_retain(models::THIN_BELOW_MM).unwrap_or(Decimal::TWO);
        for (id, entry) in &casting.minimum {
            let e = entry.get_ref();
            if !metal_prices.contains_key(id) {
                self.errors.push(ca.at(
                    entry.span(),
                    format!(
                        "minimum.{id} is for a metal metals.toml does not price: expected one of {}",
                        metal_prices.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            for (v, what) in [(&e.wall_mm, "wall_mm"), (&e.wire_mm, "wire_mm")] {
                let x = v.get_ref().0;
                if x <= Decimal::ZERO || x > most {
                    self.errors.push(ca.at(
                        v.span(),
                        format!(
                            "minimum.{id}.{what} is {x}: expected mm above 0 and at most {most} (thin places are \
                             located up to {most} mm)"
                        ),
                    ));
                }
            }
            casting_map
                .insert(id.clone(), CastingMinimum { wall_mm: e.wall_mm.get_ref().0, wire_mm: e.wire_mm.get_ref().0 });
        }
        for id in metal_prices.keys().filter(|id| !casting_map.contains_key(*id)) {
            self.errors.push(whole_file(
                "casting.toml",
                format!(
                    "metal \"{id}\" (priced in metals.toml) has no casting minimum: expected [minimum.{id}] with \
                     wall_mm and wire_mm"
                ),
            ));
        }

        RuleSet {
            version: version(texts),
            currency,
            minor_unit_digits: digits.min(4),
            prices_date: date,
            metals: metal_prices,
            alloys: alloy_list,
            labour: Labour {
                casting_loss_percent: labour.casting_loss_percent.get_ref().0,
                setup: labour.setup.get_ref().0,
                per_gram: labour.per_gram.get_ref().0,
                finishing_per_cm2: labour.finishing_per_cm2.get_ref().0,
            },
            segments: segment_map,
            quantity_breaks: breaks,
            stones: stone_map,
            tax: Tax {
                label: tax.label.clone(),
                rate_percent: tax.rate_percent.get_ref().0,
                applies_to: tax.applies_to.iter().map(|s| s.get_ref().clone()).collect(),
            },
            casting: casting_map,
        }
    }

    fn positive(&mut self, f: &Located, v: &At<Dec>, what: &str, zero_ok: bool) {
        let x = v.get_ref().0;
        if x < Decimal::ZERO || (!zero_ok && x == Decimal::ZERO) {
            let expected = if zero_ok { "0 or more" } else { "more than 0" };
            self.errors.push(f.at(v.span(), format!("{what} is {x}: expected {expected}")));
        }
    }

    fn percent(&mut self, f: &Located, v: &At<Dec>, what: &str, max: u32) {
        let x = v.get_ref().0;
        if x < Decimal::ZERO || x > Decimal::from(max) {
            self.errors.push(f.at(v.span(), format!("{what} is {x}: expected a percentage from 0 to {max}")));
        }
    }

    fn density(&mut self, f: &Located, v: &At<Dec>, what: &str) {
        let x = v.get_ref().0;
        // Nothing is denser than osmium (22.6 g/cm³).
        if x <= Decimal::ZERO || x > Decimal::from(23) {
            self.errors
                .push(f.at(v.span(), format!("{what} is {x}: expected g/cm³ above 0 and at most 23 (gold is 19.32)")));
        }
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&s[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&s[8..10].parse::<u32>().unwrap_or(0))
}
