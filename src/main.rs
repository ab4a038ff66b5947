//! The `assay` binary: parses flags and wires the crates together. No geometry or pricing logic lives here.

mod analyze_cmd;
mod batch_cmd;
mod quote_cmd;
mod rules_cmd;
mod rules_source;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc reuses the large buffers a model needs instead of handing them back to the kernel and faulting them
/// in again: on a 2M-triangle model that was most of the system time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// assay prices jewelry from 3D models.
#[derive(Debug, Parser)]
#[command(name = "assay", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure models: volume, area, bounding box, shells, holes and other defects.
    Analyze(AnalyzeArgs),
    /// Price a model: geometry and a breakdown per alloy.
    Quote(QuoteArgs),
    /// Measure and price every model under a folder, in parallel, to CSV or JSON.
    Batch(BatchArgs),
    /// Check pricing rules, compare two versions on real models, write their JSON Schemas.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Validate a rules directory and print what it holds; exits 1 with located errors.
    Check {
        /// The rules directory.
        dir: PathBuf,
    },
    /// Price every model under both rule sets and list the changes, largest first.
    Diff(DiffArgs),
    /// Write the JSON Schema of every rules file into a directory (for editors).
    Schema {
        /// Where to write them, e.g. rules/schema.
        dir: PathBuf,
    },
}

/// What to price: the options a shop sends with a quote.
#[derive(Debug, clap::Args)]
pub(crate) struct PriceOptions {
    /// Alloy ids to price (repeat for several) [default: every alloy in the rules].
    #[arg(long = "alloy", value_name = "ID")]
    pub alloys: Vec<String>,
    /// Pieces in the order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub qty: u32,
    /// Customer segment id from the rules (b2c, b2b).
    #[arg(long, default_value = "b2c")]
    pub segment: String,
    /// Stones set in each piece, beyond gems in the model: KIND:COUNT, e.g. diamond:3 (repeatable).
    #[arg(long = "stone", value_name = "KIND:COUNT", value_parser = parse_stone)]
    pub stones: Vec<pricing_rules::StoneRequest>,
    /// Rules directory [default: ./rules if present, else the rules built into assay].
    #[arg(long, env = "ASSAY_RULES")]
    pub rules: Option<PathBuf>,
    /// The unit the coordinates are in [default: mm for STL, m for glTF].
    #[arg(long, value_parser = parse_units)]
    pub units: Option<models::Units>,
}

impl PriceOptions {
    pub fn request(&self) -> pricing_rules::QuoteRequest {
        pricing_rules::QuoteRequest {
            alloys: self.alloys.clone(),
            quantity: self.qty,
            segment: self.segment.clone(),
            stones: self.stones.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct QuoteArgs {
    /// The model: STL, GLB or .gltf with embedded buffers.
    pub file: PathBuf,
    #[command(flatten)]
    pub price: PriceOptions,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl std::ops::Deref for QuoteArgs {
    type Target = PriceOptions;
    fn deref(&self) -> &PriceOptions {
        &self.price
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct BatchArgs {
    /// The folder of models (searched recursively for .stl, .glb, .gltf).
    pub dir: PathBuf,
    /// Where to write: FILE.csv or FILE.json [default: CSV on standard output].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub price: PriceOptions,
}

impl std::ops::Deref for BatchArgs {
    type Target = PriceOptions;
    fn deref(&self) -> &PriceOptions {
        &self.price
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// The rules in force.
    pub old: PathBuf,
    /// The edited rules.
    pub new: PathBuf,
    /// The models to price under both.
    #[arg(long)]
    pub models: PathBuf,
    /// Customer segment id.
    #[arg(long, default_value = "b2c")]
    pub segment: String,
    /// Pieces in the order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub qty: u32,
    /// The unit the coordinates are in [default: mm for STL, m for glTF].
    #[arg(long, value_parser = parse_units)]
    pub units: Option<models::Units>,
}

fn parse_stone(s: &str) -> Result<pricing_rules::StoneRequest, String> {
    let (kind, count) = s.split_once(':').ok_or_else(|| format!("expected KIND:COUNT, e.g. diamond:3, found '{s}'"))?;
    let count = count.parse().map_err(|_| format!("expected a whole number of stones after ':', found '{count}'"))?;
    Ok(pricing_rules::StoneRequest { kind: kind.to_owned(), count, size_mm: None })
}

#[derive(Debug, clap::Args)]
pub(crate) struct AnalyzeArgs {
    /// STL (binary or ASCII), GLB or .gltf files with embedded buffers.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The unit the coordinates are in [default: mm for STL, m for glTF].
    #[arg(long, value_parser = parse_units)]
    pub units: Option<models::Units>,
    /// One JSON object per file, one per line, instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_units(s: &str) -> Result<models::Units, String> {
    s.parse().map_err(|e: models::UnknownUnits| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze_cmd::run(&args),
        Command::Quote(args) => quote_cmd::run(&args),
        Command::Batch(args) => batch_cmd::run(&args),
        Command::Rules(RulesCommand::Check { dir }) => rules_cmd::check(&dir),
        Command::Rules(RulesCommand::Diff(args)) => rules_cmd::diff(&args),
        Command::Rules(RulesCommand::Schema { dir }) => rules_cmd::schema(&dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
