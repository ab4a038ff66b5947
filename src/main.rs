//! The `assay` binary: parses flags and wires the crates together. No geometry or pricing logic lives here.

mod analyze_cmd;

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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
