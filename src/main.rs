//! The `otel-sidecar` command: `run` (the default), `validate`, `healthcheck`.

mod allocator;
mod startup_pages;

use anyhow::Context;
use clap::{Parser, Subcommand};
use otel_sidecar::config::source;
use otel_sidecar::extensions::health_check;
use otel_sidecar::{components, pipeline, service, telemetry};
use std::process::ExitCode;

/// mimalloc for small blocks, the system allocator for large ones (see `allocator.rs`).
#[global_allocator]
static ALLOCATOR: allocator::SplitAllocator = allocator::SplitAllocator;

#[derive(Parser)]
#[command(
    name = "otel-sidecar",
    version,
    about = "A small drop-in replacement for the ADOT collector sidecar"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    sidecar: SidecarArgs,
}

/// The flags of `run` and `validate`, accepted before the subcommand too (`otel-sidecar
/// --config X`, the ADOT image's form) but not listed by the other subcommands.
#[derive(clap::Args, Clone, Default)]
struct SidecarArgs {
    /// Config source: PATH, file:PATH, ssm:NAME or ssm:ARN. Ignored when AOT_CONFIG_CONTENT is
    /// set; with neither, the embedded ECS default config is used.
    #[arg(long)]
    config: Option<String>,
    /// How long SIGTERM may take to drain everything (under ECS's 30 s stop timeout)
    /// [default: 20s]
    #[arg(long, env = "OTEL_SIDECAR_SHUTDOWN_GRACE")]
    shutdown_grace: Option<String>,
    /// Cardinality budget for every awsemf exporter whose config has none: at most this many
    /// distinct CloudWatch metrics per hour.
    #[arg(long, env = "OTEL_SIDECAR_EMF_MAX_METRICS")]
    emf_max_metrics: Option<usize>,
    /// The same budget expressed as a monthly cost (at $0.30 per metric-month).
    #[arg(long, env = "OTEL_SIDECAR_EMF_MAX_MONTHLY_COST_USD")]
    emf_max_monthly_cost_usd: Option<f64>,
    /// Share that budget with every sidecar of the fleet through a Valkey/Redis store: a
    /// redis:// or rediss:// URL, or `env` for the REDIS_HOST, REDIS_PORT, REDIS_MODE and
    /// REDIS_TLS variables.
    #[arg(long, env = "OTEL_SIDECAR_EMF_SHARED_BUDGET")]
    emf_shared_budget: Option<String>,
}

impl SidecarArgs {
    /// These flags where given, else `outer`'s (the ones before the subcommand).
    fn or(&self, outer: &SidecarArgs) -> SidecarArgs {
        SidecarArgs {
            config: self.config.clone().or_else(|| outer.config.clone()),
            shutdown_grace: self
                .shutdown_grace
                .clone()
                .or_else(|| outer.shutdown_grace.clone()),
            emf_max_metrics: self.emf_max_metrics.or(outer.emf_max_metrics),
            emf_max_monthly_cost_usd: self
                .emf_max_monthly_cost_usd
                .or(outer.emf_max_monthly_cost_usd),
            emf_shared_budget: self
                .emf_shared_budget
                .clone()
                .or_else(|| outer.emf_shared_budget.clone()),
        }
    }

    fn shutdown_grace(&self) -> &str {
        self.shutdown_grace.as_deref().unwrap_or("20s")
    }
}

impl SidecarArgs {
    /// The budget the flags describe, if any.
    fn default_budget(&self) -> Option<otel_sidecar::exporters::awsemf::budget::BudgetConfig> {
        use otel_sidecar::exporters::awsemf::budget::BudgetConfig;
        if self.emf_max_metrics.is_none() && self.emf_max_monthly_cost_usd.is_none() {
            return None;
        }
        let mut budget = BudgetConfig::with_max_metrics(usize::MAX);
        budget.max_metrics = self.emf_max_metrics;
        budget.max_monthly_cost_usd = self.emf_max_monthly_cost_usd;
        budget.shared = self
            .emf_shared_budget
            .as_deref()
            .map(otel_sidecar::exporters::awsemf::fleet::SharedBudgetConfig::from_flag);
        Some(budget)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipelines of the config until SIGTERM or SIGINT (the default).
    Run {
        #[command(flatten)]
        sidecar: SidecarArgs,
    },
    /// Check the config: print every problem and exit 1, or a one-line summary and exit 0.
    Validate {
        #[command(flatten)]
        sidecar: SidecarArgs,
        /// Print the effective config: every default filled in, `${env}` expanded, values of
        /// keys named like secrets masked.
        #[arg(long)]
        print: bool,
    },
    /// ADOT's /healthcheck: GET http://127.0.0.1:PORT/, print `STATUS: 200` and exit 0 when
    /// healthy, exit 1 otherwise.
    Healthcheck {
        #[arg(long, default_value_t = health_check::DEFAULT_PORT)]
        port: u16,
    },
    /// Drive an OTLP, X-Ray or StatsD endpoint with load and report rate, errors and latency;
    /// `loadgen sink` answers X-Ray and CloudWatch Logs calls and counts them.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Loadgen {
        #[command(subcommand)]
        mode: Option<LoadgenMode>,
        #[command(flatten)]
        options: otel_sidecar::loadgen::LoadOptions,
    },
}

#[derive(Subcommand)]
enum LoadgenMode {
    /// A loopback stand-in for X-Ray and CloudWatch Logs that counts what arrives; point the
    /// sidecar at it with AWS_ENDPOINT_URL. `GET /counts` returns the tallies.
    Sink {
        /// Address to listen on (port 0 picks a free one; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:4599")]
        listen: String,
        /// Serve HTTPS with this PEM certificate chain (with --tls-key), as AWS does.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    allocator::configure();
    // Invoked through a link named `healthcheck` (the image's /healthcheck), behave as ADOT's.
    let invoked_as = std::env::args_os().next().and_then(|a| {
        std::path::Path::new(&a)
            .file_name()
            .map(|n| n.to_os_string())
    });
    if invoked_as.as_deref() == Some(std::ffi::OsStr::new("healthcheck")) {
        return healthcheck_from_argv();
    }
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Healthcheck { port }) => exit_code(health_check::probe(*port)),
        Some(Command::Validate { sidecar, print }) => {
            runtime().block_on(validate(&sidecar.or(&cli.sidecar), *print))
        }
        Some(Command::Loadgen {
            mode:
                Some(LoadgenMode::Sink {
                    listen,
                    tls_cert,
                    tls_key,
                }),
            ..
        }) => runtime().block_on(sink(listen, tls_cert.as_deref().zip(tls_key.as_deref()))),
        Some(Command::Loadgen {
            mode: None,
            options,
        }) => runtime().block_on(loadgen(options.clone())),
        Some(Command::Run { sidecar }) => runtime().block_on(run(&sidecar.or(&cli.sidecar))),
        None => runtime().block_on(run(&cli.sidecar)),
    }
}

async fn loadgen(options: otel_sidecar::loadgen::LoadOptions) -> ExitCode {
    let (json, max_error_rate) = (options.json, options.max_error_rate);
    match otel_sidecar::loadgen::run(options).await {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serializes")
                );
            } else {
                println!("{}", report.text());
            }
            exit_code(report.error_rate() <= max_error_rate)
        }
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn sink(endpoint: &str, tls: Option<(&std::path::Path, &std::path::Path)>) -> ExitCode {
    let stop_signals = match StopSignals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("sink: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let (stop, _) = pipeline::ShutdownTrigger::new();
    let (task, address, counts) =
        match otel_sidecar::loadgen::sink::start(endpoint, tls, stop.subscribe()).await {
            Ok(started) => started,
            Err(error) => {
                eprintln!("sink: {error}");
                return ExitCode::FAILURE;
            }
        };
    println!(
        "{}",
        serde_json::json!({"message": "listening", "address": address.to_string()})
    );
    stop_signals.wait().await;
    stop.trigger();
    let _ = task.await;
    println!("{}", counts.json());
    ExitCode::SUCCESS
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `/healthcheck [--port N]`, with ADOT's validation of the port.
fn healthcheck_from_argv() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = health_check::DEFAULT_PORT;
    let mut i = 0;
    while i < args.len() {
        let value = if let Some(v) = args[i]
            .strip_prefix("--port=")
            .or(args[i].strip_prefix("-port="))
        {
            Some(v.to_string())
        } else if args[i] == "--port" || args[i] == "-port" {
            i += 1;
            args.get(i).cloned()
        } else {
            eprintln!("unknown argument {:?}", args[i]);
            return ExitCode::FAILURE;
        };
        match value
            .as_deref()
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|p| *p > 0)
        {
            Some(p) => port = p,
            None => {
                eprintln!("invalid port: must be between 1 and 65535");
                return ExitCode::FAILURE;
            }
        }
        i += 1;
    }
    exit_code(health_check::probe(port))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Reads and validates the config, printing every problem on failure.
async fn load(
    cli: &SidecarArgs,
) -> Result<(components::SidecarConfig, source::ConfigSource, bool), ExitCode> {
    let aot = std::env::var(source::AOT_CONFIG_CONTENT).ok();
    let (source, flag_ignored) = source::choose(aot, cli.config.as_deref());
    let text = match source.read().await {
        Ok(text) => text,
        Err(error) => {
            eprintln!("otel-sidecar: {error}");
            return Err(ExitCode::FAILURE);
        }
    };
    match components::parse_config(&text, &|name| std::env::var(name).ok()) {
        Ok(mut config) => {
            if let Some(budget) = cli.default_budget() {
                if let Err((key, message)) = budget.validate() {
                    eprintln!(
                        "otel-sidecar: --emf-max-metrics / --emf-max-monthly-cost-usd: {key}: {message}"
                    );
                    return Err(ExitCode::FAILURE);
                }
                config.apply_default_budget(&budget);
                let errors = config.check_environment(&|name| std::env::var(name).ok());
                if !errors.is_empty() {
                    eprintln!("otel-sidecar: --emf-shared-budget:");
                    for error in &errors {
                        eprintln!("  {error}");
                    }
                    return Err(ExitCode::FAILURE);
                }
            }
            Ok((config, source, flag_ignored))
        }
        Err(errors) => {
            eprintln!("otel-sidecar: invalid configuration ({source}):");
            for error in &errors.0 {
                eprintln!("  {error}");
            }
            Err(ExitCode::FAILURE)
        }
    }
}

async fn validate(cli: &SidecarArgs, print: bool) -> ExitCode {
    match load(cli).await {
        Ok((config, _, _)) => {
            if print {
                print!("{}", config.effective_yaml());
            } else {
                println!("{}", config.summary());
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

async fn run(cli: &SidecarArgs) -> ExitCode {
    let (config, source, flag_ignored) = match load(cli).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    telemetry::init_logs(&config.telemetry.logs);
    otel_sidecar::panic_policy::install_hook();
    match run_service(cli, config, source, flag_ignored).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(
                message = "otel-sidecar stopped with an error",
                error = format!("{error:#}")
            );
            ExitCode::FAILURE
        }
    }
}

async fn run_service(
    cli: &SidecarArgs,
    config: components::SidecarConfig,
    source: source::ConfigSource,
    flag_ignored: bool,
) -> anyhow::Result<()> {
    let grace = telemetry::parse_duration(cli.shutdown_grace())
        .map_err(anyhow::Error::msg)
        .context("--shutdown-grace")?;
    tracing::info!(message = "starting otel-sidecar", version = otel_sidecar::VERSION, config = %source);
    if flag_ignored {
        tracing::warn!(message = "AOT_CONFIG_CONTENT is set: the --config flag is ignored");
    }
    for name in &config.unset_variables {
        tracing::warn!(message = "configuration references unset environment variable", name = %name);
    }
    tracing::info!(message = %config.summary());
    // Handlers first: a SIGTERM that arrives as soon as the sidecar reports ready must drain,
    // not kill it.
    let stop_signals = StopSignals::install()?;
    let service = service::start(&config).await.context("cannot start")?;
    let released = startup_pages::release();
    tracing::debug!(message = "start-up code pages released", bytes = released);
    stop_signals.wait().await;
    service.shutdown(grace).await?;
    Ok(())
}

/// SIGTERM and SIGINT, listened for from `install` on.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
        })
    }

    async fn wait(mut self) {
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        tracing::info!(message = "received signal, shutting down", signal = name);
    }
}
