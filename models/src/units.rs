//! Length units a model may be drawn in, and the guess of which one a model of implausible size was drawn in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The unit a model's coordinates are in. Reports are always in millimetres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Units {
    Mm,
    Cm,
    M,
    In,
}

impl Units {
    pub const ALL: [Units; 4] = [Units::Mm, Units::Cm, Units::M, Units::In];

    /// Millimetres per unit.
    pub fn to_mm(self) -> f64 {
        match self {
            Units::Mm => 1.0,
            Units::Cm => 10.0,
            Units::M => 1000.0,
            Units::In => 25.4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Units::Mm => "mm",
            Units::Cm => "cm",
            Units::M => "m",
            Units::In => "in",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Units::Mm => "millimetres",
            Units::Cm => "centimetres",
            Units::M => "metres",
            Units::In => "inches",
        }
    }
}

impl fmt::Display for Units {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Units::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown unit '{0}': expected one of mm, cm, m, in")]
pub struct UnknownUnits(pub String);

impl FromStr for Units {
    type Err = UnknownUnits;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mm" | "millimetre" | "millimeter" | "millimetres" | "millimeters" => Ok(Units::Mm),
            "cm" | "centimetre" | "centimeter" | "centimetres" | "centimeters" => Ok(Units::Cm),
            "m" | "metre" | "meter" | "metres" | "meters" => Ok(Units::M),
            "in" | "inch" | "inches" => Ok(Units::In),
            _ => Err(UnknownUnits(s.to_owned())),
        }
    }
}

/// Largest side, in millimetres, that jewelry plausibly has: from a small stud to a large bangle or necklace pendant.
pub const PLAUSIBLE_MM: std::ops::RangeInclusive<f64> = 1.0..=300.0;

/// When the largest side (in mm, as read with `units`) is implausible for jewelry, a sentence that names the unit
/// the model was probably drawn in. `None` when the size is plausible or no other unit makes it so.
pub(crate) fn implausible_size_hint(largest_mm: f64, units: Units) -> Option<String> {
    if !largest_mm.is_finite() || PLAUSIBLE_MM.contains(&largest_mm) {
        return None;
    }
    let raw = largest_mm / units.to_mm();
    // Of the units that make the size plausible, take the one closest (in ratio) to a typical 20 mm piece.
    let best = Units::ALL
        .into_iter()
        .filter(|u| *u != units)
        .map(|u| (u, raw * u.to_mm()))
        .filter(|(_, mm)| PLAUSIBLE_MM.contains(mm))
        .min_by(|a, b| (a.1 / 20.0).ln().abs().total_cmp(&(b.1 / 20.0).ln().abs()));
    let size = if largest_mm < *PLAUSIBLE_MM.start() { "small" } else { "large" };
    let mut msg = format!(
        "the largest side is {} mm, implausibly {size} for jewelry when read as {}",
        format_mm(largest_mm),
        units.word()
    );
    match best {
        Some((u, mm)) => msg.push_str(&format!(
            "; it was probably drawn in {} (as {} it would be {} mm): pass units={}",
            u.word(),
            u.word(),
            format_mm(mm),
            u.as_str()
        )),
        None => msg.push_str("; no other unit (mm, cm, m, in) makes it plausible"),
    }
    Some(msg)
}

fn format_mm(v: f64) -> String {
    if v != 0.0 && (v.abs() < 0.01 || v.abs() >= 1e6) {
        format!("{v:.3e}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unit_names() {
        assert_eq!("MM".parse::<Units>(), Ok(Units::Mm));
        assert_eq!(" inches".parse::<Units>(), Ok(Units::In));
        assert_eq!("m".parse::<Units>(), Ok(Units::M));
        let err = "ft".parse::<Units>().unwrap_err();
        assert_eq!(err.to_string(), "unknown unit 'ft': expected one of mm, cm, m, in");
    }

    #[test]
    fn plausible_sizes_get_no_hint() {
        assert_eq!(implausible_size_hint(20.0, Units::Mm), None);
        assert_eq!(implausible_size_hint(1.0, Units::Mm), None);
        assert_eq!(implausible_size_hint(300.0, Units::Mm), None);
    }

    #[test]
    fn a_ring_drawn_in_metres_but_read_as_mm_is_named() {
        // A 21 mm ring whose numbers are metres (0.021) read as millimetres.
        let msg = implausible_size_hint(0.021, Units::Mm).expect("hint");
        assert!(msg.contains("probably drawn in metres"), "{msg}");
        assert!(msg.contains("21.00 mm"), "{msg}");
    }

    #[test]
    fn a_ring_drawn_in_mm_but_read_as_metres_is_named() {
        // A glTF exporter that wrote millimetre numbers: 21 "metres" is 21000 mm.
        let msg = implausible_size_hint(21_000.0, Units::M).expect("hint");
        assert!(msg.contains("probably drawn in millimetres"), "{msg}");
        assert!(msg.contains("pass units=mm"), "{msg}");
    }

    #[test]
    fn inches_are_suggested_for_a_ring_read_as_metres_of_inch_numbers() {
        // 0.8 read as cm is 8 mm... plausible; read as in it is 20.32 mm: the closest to a typical piece wins.
        let msg = implausible_size_hint(0.8, Units::Mm).expect("hint");
        assert!(msg.contains("inches"), "{msg}");
    }

    #[test]
    fn nothing_plausible_says_so() {
        let msg = implausible_size_hint(1e-9, Units::Mm).expect("hint");
        assert!(msg.contains("no other unit"), "{msg}");
    }
}
