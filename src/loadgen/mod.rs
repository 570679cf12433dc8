//! `otel-sidecar loadgen`: drives any OTLP endpoint (gRPC or HTTP, protobuf or JSON, optional
//! gzip), an X-Ray daemon port or a StatsD port at a fixed rate or as fast as it can, and reports
//! the achieved rate, errors by kind and request latency percentiles. `loadgen sink` is the AWS
//! side: it answers X-Ray and CloudWatch Logs calls and counts what arrives.

pub mod generate;
pub mod sink;

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    /// host:port of the receiver (required unless running the sink).
    #[arg(long, default_value = "")]
    pub endpoint: String,
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
}

/// What a run achieved.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub items_sent: u64,
    pub requests: u64,
    pub failed_requests: u64,
    pub errors: BTreeMap<String, u64>,
    pub seconds: f64,
    pub items_per_second: f64,
    pub latency_ms: BTreeMap<String, f64>,
}

/// A worker's tally.
#[derive(Default)]
struct Tally {
    items: u64,
    requests: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
}

/// Latency samples kept per worker (enough for stable percentiles, bounded memory).
const MAX_LATENCY_SAMPLES: usize = 200_000;

/// Runs the load and returns the report.
pub async fn run(options: LoadOptions) -> Result<Report, String> {
    if options.endpoint.is_empty() {
        return Err("--endpoint host:port is required".into());
    }
    let duration = crate::config::duration::parse_go_duration(&options.duration)?;
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let sender = Arc::new(generate::Sender::connect(&options).await?);
    let per_worker_rate = if options.rate == 0 {
        0
    } else {
        options.rate.div_ceil(options.workers as u64)
    };
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..options.workers {
        let options = options.clone();
        let claimed = claimed.clone();
        let sender = sender.clone();
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut generator = generate::Generator::new(&options, worker as u64);
            let interval = (per_worker_rate > 0)
                .then(|| Duration::from_secs_f64(options.batch as f64 / per_worker_rate as f64));
            let mut next = tokio::time::Instant::now();
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let items = match options.total {
                    Some(total) => {
                        let start = claimed.fetch_add(options.batch, Ordering::Relaxed);
                        if start >= total {
                            break;
                        }
                        options.batch.min(total - start)
                    }
                    None => options.batch,
                };
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next).await;
                    next += interval;
                }
                let request = generator.next(items);
                let sent_at = Instant::now();
                let result = sender.send(request).await;
                let latency = sent_at.elapsed();
                tally.requests += 1;
                if tally.latencies_us.len() < MAX_LATENCY_SAMPLES {
                    tally
                        .latencies_us
                        .push(latency.as_micros().min(u32::MAX as u128) as u32);
                }
                match result {
                    Ok(()) => tally.items += items,
                    Err(kind) => {
                        tally.failed += 1;
                        *tally.errors.entry(kind).or_default() += 1;
                    }
                }
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = workers.join_next().await {
        let tally = joined.map_err(|e| e.to_string())?;
        total.items += tally.items;
        total.requests += tally.requests;
        total.failed += tally.failed;
        for (k, v) in tally.errors {
            *total.errors.entry(k).or_default() += v;
        }
        total.latencies_us.extend(tally.latencies_us);
    }
    let seconds = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if total.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((total.latencies_us.len() - 1) as f64 * p).round() as usize;
        total.latencies_us[index] as f64 / 1000.0
    };
    let latency_ms = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)]
        .iter()
        .map(|(k, p)| (k.to_string(), percentile(*p)))
        .collect();
    Ok(Report {
        target: format!("{:?}", options.target),
        items_sent: total.items,
        requests: total.requests,
        failed_requests: total.failed,
        errors: total.errors,
        seconds,
        items_per_second: total.items as f64 / seconds.max(1e-9),
        latency_ms,
    })
}

impl Report {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failed_requests as f64 / self.requests as f64
        }
    }

    pub fn text(&self) -> String {
        format!(
            "{}: {} items in {:.2}s = {:.0} items/s; {} requests, {} failed {:?}; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
            self.target,
            self.items_sent,
            self.seconds,
            self.items_per_second,
            self.requests,
            self.failed_requests,
            self.errors,
            self.latency_ms["p50"],
            self.latency_ms["p90"],
            self.latency_ms["p99"],
            self.latency_ms["max"],
        )
    }
}
