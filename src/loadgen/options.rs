//! What `loadgen` is asked for: the target, the signal, the encoding and the rate.

/// Where the load goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    OtlpGrpc,
    OtlpHttp,
    XrayUdp,
    StatsdUdp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignalArg {
    Traces,
    Metrics,
    Logs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// Everything `loadgen` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOptions {
    #[arg(long, value_enum, default_value = "otlp-grpc")]
    pub target: Target,
    #[arg(long, value_enum, default_value = "traces")]
    pub signal: SignalArg,
    /// host:port of the receiver [default: the target's standard port on localhost: 4317,
    /// 4318, 2000 or 8125]
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long, value_enum, default_value = "protobuf")]
    pub encoding: Encoding,
    #[arg(long)]
    pub gzip: bool,
    /// Items (spans, points, log records, segments, lines) per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long to run (Go duration), unless `--total` ends it first.
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Exact number of items to send, then stop.
    #[arg(long)]
    pub total: Option<u64>,
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Items per request (per datagram for UDP targets).
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Attributes per item.
    #[arg(long, default_value_t = 4)]
    pub attributes: usize,
    /// Bytes per attribute value.
    #[arg(long, default_value_t = 16)]
    pub attribute_size: usize,
    /// Distinct series (metrics, StatsD) or distinct attribute values (traces, logs).
    #[arg(long, default_value_t = 100)]
    pub series: u64,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero when failed requests / requests exceeds this.
    #[arg(long, default_value_t = 0.0)]
    pub max_error_rate: f64,
    /// An OTLP protobuf request of `--signal` (traces or metrics) to post as it is, again and
    /// again, in place of generated ones: a fixed workload such as `benches/workload`; or a
    /// folder of them (`.pb` files carrying the same number of items), posted in turn. OTLP/HTTP
    /// only; each request carries the body's items (`--batch` is ignored, `--total` counts whole
    /// bodies and may be passed by the last).
    #[arg(long)]
    pub body: Option<std::path::PathBuf>,
}

impl Target {
    /// Where the sidecar listens for this target by default.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Target::OtlpGrpc => "127.0.0.1:4317",
            Target::OtlpHttp => "127.0.0.1:4318",
            Target::XrayUdp => "127.0.0.1:2000",
            Target::StatsdUdp => "127.0.0.1:8125",
        }
    }
}

impl LoadOptions {
    /// `--endpoint`, or the target's standard port on localhost.
    pub fn endpoint(&self) -> &str {
        self.endpoint
            .as_deref()
            .unwrap_or(self.target.default_endpoint())
    }
}
