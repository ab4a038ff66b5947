//! The price of a model: geometry and options in, one quote per alloy out, every line rounded to the currency's
//! minor unit and the total the sum of the rounded lines.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::load::{Alloy, CastingMinimum, RuleSet, Segment};

/// What a shop asks for: the one options type from the HTTP request (query or `options` part) through the job
/// message to pricing. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// Alloy ids to price; empty means every alloy in the rules.
    #[serde(default)]
    pub alloys: Vec<String>,
    /// Pieces in the order, at least 1.
    #[serde(default = "one")]
    pub quantity: u32,
    /// Customer segment id ("b2c", "b2b").
    #[serde(default = "b2c")]
    pub segment: String,
    /// Stones to set, beyond those the model shows as gem materials.
    #[serde(default)]
    pub stones: Vec<StoneRequest>,
    /// The unit the model's coordinates are in: `mm`, `cm`, `m` or `in` (default: the format's own; STL is mm).
    /// Read when the model is parsed; pricing sees millimetres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<models::Units>,
}

fn one() -> u32 {
    1
}

fn b2c() -> String {
    "b2c".into()
}

impl Default for QuoteRequest {
    fn default() -> Self {
        QuoteRequest { alloys: Vec::new(), quantity: 1, segment: b2c(), stones: Vec::new(), units: None }
    }
}

/// Stones of one kind set in each piece.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StoneRequest {
    /// A stone id from stones.toml.
    pub kind: String,
    /// Stones per piece.
    pub count: u32,
    /// Diameter in mm, for the record (setting is priced per stone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mm: Option<Decimal>,
}

/// One line of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Line {
    /// Stable name: metal, alloy_surcharge, setup, labour, finishing, stones, markup, quantity_discount,
    /// minimum_price, tax.
    pub name: String,
    /// How the amount was reached, in words and figures.
    pub basis: String,
    pub amount: Decimal,
}

/// The price of an order in one alloy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quote {
    pub alloy: String,
    pub alloy_label: String,
    /// Weight of one finished piece, to the milligram.
    pub metal_weight_g: Decimal,
    pub lines: Vec<Line>,
    pub total: Decimal,
    pub currency: String,
    /// The model is at least as thick as this alloy's metal needs everywhere (casting.toml): walls and wires.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub castable: bool,
    /// Why, in a sentence: the thinnest wall or wire, where it is, and what the metal needs.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub castability: String,
}

/// Quotes for every requested alloy, and what they rest on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quotes {
    pub rules_version: String,
    pub prices_date: String,
    pub segment: String,
    pub quantity: u32,
    /// Stones found in the model by material name, per piece.
    pub detected_stones: Vec<DetectedStone>,
    /// The metal priced, per piece: the model's solid volume less the stones' (a stone sunk into its seat
    /// displaces metal).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub metal_volume_mm3: f64,
    pub quotes: Vec<Quote>,
    /// The geometry's volume cannot be trusted even after repair (the report's `review` says why), or the piece
    /// cannot be cast in one of the quoted alloys (its quote's `castability` says where): route the order to a
    /// person rather than quote it blind.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub needs_review: bool,
    /// What makes these prices less certain than they look (an open mesh, say).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetectedStone {
    pub kind: String,
    pub material: String,
    pub count: u64,
    /// The stones' solid volume (their shells repaired and unioned).
    pub volume_mm3: f64,
    /// Estimated from the volume and the stone's density (1 ct = 0.2 g).
    pub carats: Decimal,
}

/// A request the rules cannot price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("unknown alloy \"{id}\": expected one of {known}")]
    UnknownAlloy { id: String, known: String },
    #[error("unknown segment \"{id}\": expected one of {known}")]
    UnknownSegment { id: String, known: String },
    #[error("unknown stone kind \"{id}\": expected one of {known}")]
    UnknownStone { id: String, known: String },
    #[error("quantity must be at least 1")]
    ZeroQuantity,
    #[error("the model has no metal to price: {reason}")]
    NoMetal { reason: String },
}

impl PriceError {
    pub fn code(&self) -> &'static str {
        match self {
            PriceError::UnknownAlloy { .. } => "unknown_alloy",
            PriceError::UnknownSegment { .. } => "unknown_segment",
            PriceError::UnknownStone { .. } => "unknown_stone",
            PriceError::ZeroQuantity => "invalid_quantity",
            PriceError::NoMetal { .. } => "no_metal",
        }
    }
}

fn known<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    ids.map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// Geometry as pricing needs it, exact to the µm³: f64 measures become decimals here, once.
fn dec(v: f64, dp: u32) -> Decimal {
    Decimal::from_f64_retain(v).unwrap_or_default().round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

impl RuleSet {
    /// Prices a measured model. Gem materials (by the stones' `material_patterns`) are excluded from the metal
    /// and each gem shell is set as one stone.
    /// Checks what a request asks for against these rules (quantity, segment, alloys, stones) without a model,
    /// so a gateway can refuse a bad request before the job is queued. `price` makes the same checks.
    pub fn check_request(&self, request: &QuoteRequest) -> Result<(), PriceError> {
        self.requested(request).map(|_| ())
    }

    fn requested(&self, request: &QuoteRequest) -> Result<(&Segment, Vec<&Alloy>), PriceError> {
        if request.quantity == 0 {
            return Err(PriceError::ZeroQuantity);
        }
        let segment = self.segments.get(&request.segment).ok_or_else(|| PriceError::UnknownSegment {
            id: request.segment.clone(),
            known: known(self.segments.keys()),
        })?;
        let alloys: Vec<&Alloy> = if request.alloys.is_empty() {
            self.alloys.iter().collect()
        } else {
            request
                .alloys
                .iter()
                .map(|id| {
                    self.alloy(id).ok_or_else(|| PriceError::UnknownAlloy {
                        id: id.clone(),
                        known: known(self.alloys.iter().map(|a| &a.id)),
                    })
                })
                .collect::<Result<_, _>>()?
        };
        for s in &request.stones {
            if !self.stones.contains_key(&s.kind) {
                return Err(PriceError::UnknownStone { id: s.kind.clone(), known: known(self.stones.keys()) });
            }
        }
        Ok((segment, alloys))
    }

    /// Prices a measured model. Gem materials (by the stones' `material_patterns`) are excluded from the metal
    /// and each gem shell is set as one stone.
    pub fn price(&self, geometry: &models::Report, request: &QuoteRequest) -> Result<Quotes, PriceError> {
        let (segment, alloys) = self.requested(request)?;

        let mut detected = Vec::new();
        let mut gem_volume = 0.0;
        let mut gem_area = 0.0;
        for m in &geometry.materials {
            let name = m.name.to_lowercase();
            let kind = self.stones.iter().find(|(_, s)| s.material_patterns.iter().any(|p| name.contains(p.as_str())));
            if let Some((id, stone)) = kind {
                gem_volume += m.solid_volume_mm3;
                gem_area += m.area_mm2;
                let grams = dec(m.solid_volume_mm3, 3) / Decimal::ONE_THOUSAND * stone.density_g_cm3;
                detected.push(DetectedStone {
                    kind: id.clone(),
                    material: m.name.clone(),
                    count: m.shells,
                    volume_mm3: m.solid_volume_mm3,
                    carats: (grams * Decimal::from(5))
                        .round_dp_with_strategy(3, RoundingStrategy::MidpointAwayFromZero),
                });
            }
        }
        // The union of everything less the union of the stones is the metal outside the stones.
        let metal_volume = geometry.solid_volume_mm3 - gem_volume;
        if metal_volume.is_nan() || metal_volume <= 0.0 {
            return Err(PriceError::NoMetal {
                reason: format!(
                    "its solid volume is {:.3} mm³, of which the stones take {gem_volume:.3} mm³",
                    geometry.solid_volume_mm3
                ),
            });
        }
        let mut warnings = Vec::new();
        if geometry.needs_review {
            let why: Vec<&str> = geometry.review.iter().map(|w| w.message.as_str()).collect();
            warnings
                .push(format!("needs review: the price rests on a volume that cannot be trusted ({})", why.join("; ")));
        }

        let stone_materials: Vec<&str> = detected.iter().map(|d| d.material.as_str()).collect();
        let walls = MetalWalls::of(geometry, &stone_materials);
        let quotes: Vec<Quote> = alloys
            .into_iter()
            .map(|alloy| {
                let mut q = self.quote(alloy, segment, request, metal_volume, geometry.area_mm2 - gem_area, &detected);
                let minimum = self.casting.get(&alloy.metal);
                (q.castable, q.castability) = castability(&alloy.label, minimum, walls.as_ref());
                q
            })
            .collect();
        let uncastable: Vec<String> = quotes.iter().filter(|q| !q.castable).map(|q| q.alloy_label.clone()).collect();
        if !uncastable.is_empty() {
            warnings.push(format!(
                "needs review: the piece cannot be cast as modelled in {} of the {} alloys quoted ({}); each quote's \
                 castability says where it is too thin",
                uncastable.len(),
                quotes.len(),
                uncastable.join(", ")
            ));
        }
        Ok(Quotes {
            rules_version: self.version.clone(),
            prices_date: self.prices_date.clone(),
            segment: request.segment.clone(),
            quantity: request.quantity,
            detected_stones: detected,
            metal_volume_mm3: metal_volume,
            quotes,
            needs_review: geometry.needs_review || !uncastable.is_empty(),
            warnings,
        })
    }

    fn quote(
        &self,
        alloy: &Alloy,
        segment: &crate::load::Segment,
        request: &QuoteRequest,
        metal_volume_mm3: f64,
        metal_area_mm2: f64,
        detected: &[DetectedStone],
    ) -> Quote {
        // Rounded half away from zero to the minor unit, and always written with its digits (25.00, not 25).
        let round = |v: Decimal| {
            let mut r = v.round_dp_with_strategy(self.minor_unit_digits, RoundingStrategy::MidpointAwayFromZero);
            r.rescale(self.minor_unit_digits);
            r
        };
        let money = |v: Decimal| format!("{} {}", round(v), self.currency);
        let pct = |v: Decimal| v.normalize().to_string();
        // A rate shown with at least the currency's digits: 100.00/g, 1.455/g.
        let rate = |v: Decimal| with_digits(v, self.minor_unit_digits);
        let qty = Decimal::from(request.quantity);
        let hundred = Decimal::ONE_HUNDRED;
        let l = &self.labour;

        let weight = dec(metal_volume_mm3, 3) / Decimal::ONE_THOUSAND * alloy.density_g_cm3;
        let charged = weight * (Decimal::ONE + l.casting_loss_percent / hundred);
        let area_cm2 = dec(metal_area_mm2.max(0.0), 3) / hundred;
        let price = self.metals.get(&alloy.metal).copied().unwrap_or_default();
        let g3 = |v: Decimal| v.round_dp_with_strategy(3, RoundingStrategy::MidpointAwayFromZero);

        let mut lines = Vec::new();
        let mut push = |name: &str, basis: String, amount: Decimal| {
            let amount = round(amount);
            lines.push(Line { name: name.to_owned(), basis, amount });
            amount
        };
        let each = if request.quantity == 1 { String::new() } else { format!(" × {} pieces", request.quantity) };
        let mut cost = Decimal::ZERO;
        cost += push(
            "metal",
            format!(
                "{} g charged ({} g from {} mm³ + {}% casting loss) × fineness {} × {}/g {}{each}",
                g3(charged),
                g3(weight),
                dec(metal_volume_mm3, 3),
                pct(l.casting_loss_percent),
                pct(alloy.fineness),
                rate(price),
                alloy.metal
            ),
            charged * alloy.fineness * price * qty,
        );
        if alloy.surcharge_per_g > Decimal::ZERO {
            cost += push(
                "alloy_surcharge",
                format!("{} g charged × {}/g{each}", g3(charged), rate(alloy.surcharge_per_g)),
                charged * alloy.surcharge_per_g * qty,
            );
        }
        cost += push("setup", "once per order".into(), l.setup);
        cost += push("labour", format!("{} g × {}/g{each}", g3(weight), rate(l.per_gram)), weight * l.per_gram * qty);
        cost += push(
            "finishing",
            format!("{} cm² × {}/cm²{each}", area_cm2.round_dp(2), rate(l.finishing_per_cm2)),
            area_cm2 * l.finishing_per_cm2 * qty,
        );
        let mut stones: Vec<(String, u64, String)> = detected
            .iter()
            .map(|d| (d.kind.clone(), d.count, format!("found in the model as \"{}\"", d.material)))
            .collect();
        stones.extend(request.stones.iter().map(|s| (s.kind.clone(), u64::from(s.count), "requested".to_owned())));
        for (kind, count, source) in stones {
            if count == 0 {
                continue;
            }
            let setting = self.stones.get(&kind).map_or(Decimal::ZERO, |s| s.setting_per_stone);
            cost += push(
                "stones",
                format!("{count} {kind} ({source}) × {}{each} setting", money(setting)),
                Decimal::from(count) * setting * qty,
            );
        }

        let mut sum = cost;
        sum += push(
            "markup",
            format!("{}% {} markup on {}", pct(segment.markup_percent), segment.label, money(cost)),
            cost * segment.markup_percent / hundred,
        );
        if let Some(b) = self.quantity_breaks.iter().rev().find(|b| b.min_quantity <= request.quantity) {
            sum += push(
                "quantity_discount",
                format!("{}% off {} for {} or more pieces", pct(b.discount_percent), money(sum), b.min_quantity),
                -(sum * b.discount_percent / hundred),
            );
        }
        if sum < segment.minimum_price {
            sum += push(
                "minimum_price",
                format!(
                    "raised from {} to the {} minimum of {}",
                    money(sum),
                    segment.label,
                    money(segment.minimum_price)
                ),
                segment.minimum_price - sum,
            );
        }
        if self.tax.applies_to.contains(&request.segment) {
            push(
                "tax",
                format!("{}% {} on {}", pct(self.tax.rate_percent), self.tax.label, money(sum)),
                sum * self.tax.rate_percent / hundred,
            );
        }
        let total = lines.iter().map(|l| l.amount).sum();
        Quote {
            alloy: alloy.id.clone(),
            alloy_label: alloy.label.clone(),
            metal_weight_g: g3(weight),
            lines,
            total,
            currency: self.currency.clone(),
            castable: false,
            castability: String::new(),
        }
    }
}

/// The thin places of the metal: the whole solid's, or, when the model shows stones, its metal materials'
/// (each measured on its own, so a stone does not thicken the prong that holds it).
struct MetalWalls<'a> {
    min_mm: f64,
    wall: Option<&'a models::ThinRegion>,
    wire: Option<&'a models::ThinRegion>,
}

impl<'a> MetalWalls<'a> {
    fn of(geometry: &'a models::Report, stone_materials: &[&str]) -> Option<MetalWalls<'a>> {
        let sources: Vec<Option<&models::Thickness>> = if stone_materials.is_empty() {
            vec![geometry.thickness.as_ref()]
        } else {
            geometry
                .materials
                .iter()
                .filter(|m| !stone_materials.contains(&m.name.as_str()) && m.area_mm2 > 0.0)
                .map(|m| m.thickness.as_ref())
                .collect()
        };
        // Any metal part not measured (a result from before thickness was measured) leaves the verdict open.
        let sources: Vec<&models::Thickness> = sources.into_iter().collect::<Option<_>>()?;
        let min_mm = sources.iter().map(|t| t.min_wall_mm).reduce(f64::min)?;
        let thinnest = |kind: models::ThinKind| {
            sources
                .iter()
                .flat_map(|t| &t.thin_regions)
                .filter(|r| r.kind == kind)
                .min_by(|a, b| a.wall_mm.total_cmp(&b.wall_mm))
        };
        Some(MetalWalls { min_mm, wall: thinnest(models::ThinKind::Wall), wire: thinnest(models::ThinKind::Wire) })
    }
}

/// A decimal written with at least `digits` decimals and no trailing zeros beyond them: a rate per gram with the
/// currency's digits (100.00/g, 1.455/g), a minimum in mm with two (0.80).
fn with_digits(v: Decimal, digits: u32) -> String {
    let mut v = v.normalize();
    if v.scale() < digits {
        v.rescale(digits);
    }
    v.to_string()
}

fn mm(v: Decimal) -> String {
    with_digits(v, 2)
}

/// Whether an alloy casts, and the sentence that says so.
fn castability(label: &str, minimum: Option<&CastingMinimum>, walls: Option<&MetalWalls<'_>>) -> (bool, String) {
    let (Some(minimum), Some(walls)) = (minimum, walls) else {
        return (false, format!("castability in {label} is unknown: the wall thickness was not measured"));
    };
    let at = |r: &models::ThinRegion| {
        let [x, y, z] = r.thinnest_at_mm;
        format!("near ({x:.1}, {y:.1}, {z:.1}) mm")
    };
    // Compared as shown, to the hundredth of a millimetre.
    fn below(r: Option<&models::ThinRegion>, min: Decimal) -> Option<&models::ThinRegion> {
        r.filter(|r| dec(r.wall_mm, 2) < min)
    }
    let mut problems = Vec::new();
    if let Some(r) = below(walls.wall, minimum.wall_mm) {
        problems.push(format!("walls down to {:.2} mm {}; {label} needs {} mm", r.wall_mm, at(r), mm(minimum.wall_mm)));
    }
    if let Some(r) = below(walls.wire, minimum.wire_mm) {
        problems.push(format!(
            "wires (prongs) down to {:.2} mm {}; {label} needs {} mm for wires",
            r.wall_mm,
            at(r),
            mm(minimum.wire_mm)
        ));
    }
    if problems.is_empty() {
        let thinnest = if walls.min_mm >= models::MAX_MEASURED_MM {
            format!("no wall is thinner than {} mm", models::MAX_MEASURED_MM)
        } else {
            format!("the thinnest place is {:.2} mm", walls.min_mm)
        };
        (
            true,
            format!(
                "castable in {label}: {thinnest}; it needs {} mm walls and {} mm wires",
                mm(minimum.wall_mm),
                mm(minimum.wire_mm)
            ),
        )
    } else {
        (false, format!("not castable in {label}: {}", problems.join("; ")))
    }
}
