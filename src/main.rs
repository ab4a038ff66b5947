//! The `assay` binary: parses flags and wires the crates together. No geometry or pricing logic lives here.

mod analyze_cmd;
mod batch_cmd;
mod notifier_cmd;
mod quote_cmd;
mod rules_cmd;
mod rules_source;
mod serve_cmd;
mod telemetry;
mod worker_cmd;

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
    /// Log lines: json (one object per line, ECS field names), text, or auto (json unless on a terminal).
    #[arg(long, global = true, env = "ASSAY_LOG_FORMAT", value_enum, default_value = "auto")]
    log_format: telemetry::LogFormat,
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
    /// Run the whole service in one process: HTTP API, worker pool, in-process queue, models on disk.
    Serve(ServeArgs),
    /// Serve the HTTP API in front of Kafka and a shared model store (the scaled deployment).
    Gateway(GatewayArgs),
    /// Join the Kafka consumer group and measure and price quote jobs until SIGTERM or Ctrl-C.
    Worker(WorkerArgs),
    /// Push one model through the queue by hand and print its result.
    Submit(SubmitArgs),
    /// Deliver the tenants' webhooks from the Kafka results topic (the scaled deployment's notifier).
    Notifier(NotifierArgs),
    /// Make API keys and webhook secrets for the tenants file, and check a tenants file.
    #[command(subcommand)]
    Tenants(TenantsCommand),
}

#[derive(Debug, Subcommand)]
enum TenantsCommand {
    /// Print a new API key (give it to the shop) and its digest (put it in the tenants file).
    Key,
    /// Print a new webhook signing secret (whsec_...) for a tenant's webhook.
    Secret,
    /// Check a tenants file: every problem with its line and column.
    Check {
        /// The tenants file.
        file: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct NotifierArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The tenants file (the gateways' own): who has a webhook, for which events, with which secret.
    #[arg(long, env = "ASSAY_TENANTS")]
    pub tenants: PathBuf,
    /// Consumer group of the notifiers: each result is delivered by one member of it.
    #[arg(long, env = "ASSAY_NOTIFIER_GROUP", default_value = "assay-notifiers")]
    pub notifier_group: String,
    /// Deliveries waiting or in progress at most; past it the notifier reads no further results until some end.
    #[arg(long, env = "ASSAY_NOTIFIER_MAX_PENDING", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pending: u64,
    /// Seconds to finish attempts in progress after SIGTERM; the rest are delivered by the next notifier.
    #[arg(long, env = "ASSAY_GRACE_SECS", default_value_t = 15)]
    pub grace_secs: u64,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9090) [default: none].
    #[arg(long, env = "ASSAY_LISTEN")]
    pub listen: Option<String>,
}

/// Where the queue is.
#[derive(Debug, clap::Args)]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long, env = "ASSAY_KAFKA")]
    pub kafka: String,
    /// Consumer group of the workers.
    #[arg(long, env = "ASSAY_GROUP", default_value = "assay-workers")]
    pub group: String,
    /// Partitions of the jobs and results topics when they have to be created.
    #[arg(long, env = "ASSAY_TOPIC_PARTITIONS", default_value_t = 12)]
    pub partitions: i32,
    /// Replication factor of the topics when they have to be created.
    #[arg(long, env = "ASSAY_TOPIC_REPLICATION", default_value_t = 1)]
    pub replication: i32,
    /// How long the group waits for a silent worker before handing its partitions to others.
    #[arg(long, env = "ASSAY_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u32,
    /// How the group moves partitions when a member joins or leaves: eager (every member stops and rejoins) or
    /// cooperative (only the partitions that move stop). Every member of a group must use the same.
    #[arg(long, env = "ASSAY_PARTITION_ASSIGNMENT", value_enum, default_value_t = PartitionAssignment::Eager)]
    pub partition_assignment: PartitionAssignment,
}

/// `--partition-assignment`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum PartitionAssignment {
    /// range,roundrobin: librdkafka's default.
    Eager,
    /// cooperative-sticky.
    Cooperative,
}

/// The HTTP side, shared by `serve` and `gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct HttpArgs {
    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(long, env = "ASSAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Rules directory, watched for edits [default: ./rules if present, else the rules built into assay].
    #[arg(long, env = "ASSAY_RULES")]
    pub rules: Option<PathBuf>,
    /// An API key clients must send as "Authorization: Bearer KEY" (repeatable; the variable takes a
    /// comma-separated list). With none the API is open, which suits loopback.
    #[arg(long = "api-key", value_name = "KEY", env = "ASSAY_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<String>,
    /// The tenants file: each shop's key digests, segments, limits and webhook (watched for edits; a broken edit
    /// keeps the last good file). Instead of --api-key.
    #[arg(long, env = "ASSAY_TENANTS", conflicts_with = "api_keys")]
    pub tenants: Option<PathBuf>,
    /// The secret quote sessions (POST /v1/sessions, the page's ?session=) are signed with: 32 characters or
    /// more, the same on every gateway [default: serve keeps a random one in DATA/session.key; a gateway without
    /// one makes no sessions].
    #[arg(long, env = "ASSAY_SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<String>,
    /// Largest model accepted, in MB.
    #[arg(long, env = "ASSAY_MAX_UPLOAD_MB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_upload_mb: u64,
    /// Seconds a job may wait for a worker before it fails with deadline_exceeded.
    #[arg(long, env = "ASSAY_JOB_DEADLINE_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub job_deadline_secs: u64,
    /// Jobs kept in memory for polls and WebSockets (the oldest are forgotten first).
    #[arg(long, env = "ASSAY_MAX_JOBS_KEPT", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_jobs_kept: u64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Directory that holds uploaded models.
    #[arg(long, env = "ASSAY_DATA", default_value = "data")]
    pub data: PathBuf,
    /// Jobs measured at once [default: the number of cores].
    #[arg(long, env = "ASSAY_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Seconds in-flight jobs may take to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "ASSAY_GRACE_SECS", default_value_t = 30)]
    pub grace_secs: u64,
    /// Days finished jobs and their results are kept (then deleted, with the models no job needs any more).
    #[arg(long, env = "ASSAY_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub retention_days: u64,
    /// Finished jobs kept at most; the oldest are deleted first.
    #[arg(long, env = "ASSAY_MAX_STORED_JOBS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_stored_jobs: u64,
    /// The most the job database (DATA/assay.db) may grow to, in MB; past it submissions get 503 storage_full
    /// [default: bounded by the disk only].
    #[arg(long, env = "ASSAY_MAX_DB_MB", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_db_mb: Option<u64>,
    /// Minutes between retention sweeps.
    #[arg(long, env = "ASSAY_RETENTION_SWEEP_MINUTES", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_sweep_minutes: u64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct GatewayArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Model store shared with the workers: a directory, file:///dir, s3://bucket (AWS_* variables).
    #[arg(long, env = "ASSAY_STORE", default_value = "data")]
    pub store: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Model store: a directory, file:///dir, s3://bucket (AWS_* variables) or memory://.
    #[arg(long, env = "ASSAY_STORE", default_value = "data")]
    pub store: String,
    /// Rules directory, watched for edits [default: ./rules if present, else the rules built into assay].
    #[arg(long, env = "ASSAY_RULES")]
    pub rules: Option<PathBuf>,
    /// Jobs handled at once [default: the number of cores].
    #[arg(long, env = "ASSAY_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// This worker's name in results and logs [default: worker-PID].
    #[arg(long, env = "ASSAY_WORKER_NAME")]
    pub name: Option<String>,
    /// Static membership of the consumer group (Kafka's group.instance.id), e.g. a StatefulSet pod's name: a
    /// worker started again under the same id within the session timeout takes back its partitions without a
    /// rebalance [default: none, dynamic membership].
    #[arg(long, env = "ASSAY_GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,
    /// Seconds in-flight jobs may take to finish after SIGTERM; the rest are redelivered.
    #[arg(long, env = "ASSAY_GRACE_SECS", default_value_t = 30)]
    pub grace_secs: u64,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9090) [default: none].
    #[arg(long, env = "ASSAY_LISTEN")]
    pub listen: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SubmitArgs {
    /// The model to quote.
    pub file: PathBuf,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Model store shared with the workers.
    #[arg(long, env = "ASSAY_STORE", default_value = "data")]
    pub store: String,
    #[command(flatten)]
    pub price: PriceOptions,
    /// Seconds to wait for the result (also the job's deadline).
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
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
            units: self.units,
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
    let service = match cli.command {
        Command::Gateway(_) => "assay-gateway",
        Command::Worker(_) => "assay-worker",
        Command::Notifier(_) => "assay-notifier",
        _ => "assay",
    };
    // The tools for people (analyze, quote, ...) log little and to a terminal; services log JSON when piped.
    let format = match (&cli.command, cli.log_format) {
        (Command::Serve(_) | Command::Gateway(_) | Command::Worker(_) | Command::Notifier(_), f) => f,
        (_, telemetry::LogFormat::Auto) => telemetry::LogFormat::Text,
        (_, f) => f,
    };
    let _telemetry = match telemetry::init(format, service) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Analyze(args) => analyze_cmd::run(&args),
        Command::Quote(args) => quote_cmd::run(&args),
        Command::Batch(args) => batch_cmd::run(&args),
        Command::Rules(RulesCommand::Check { dir }) => rules_cmd::check(&dir),
        Command::Rules(RulesCommand::Diff(args)) => rules_cmd::diff(&args),
        Command::Rules(RulesCommand::Schema { dir }) => rules_cmd::schema(&dir),
        Command::Serve(args) => serve_cmd::serve(&args),
        Command::Gateway(args) => serve_cmd::gateway(&args),
        Command::Worker(args) => worker_cmd::run_worker(&args),
        Command::Submit(args) => worker_cmd::submit(&args),
        Command::Notifier(args) => notifier_cmd::run(&args),
        Command::Tenants(TenantsCommand::Key) => notifier_cmd::new_key(),
        Command::Tenants(TenantsCommand::Secret) => notifier_cmd::new_secret(),
        Command::Tenants(TenantsCommand::Check { file }) => notifier_cmd::check(&file),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
