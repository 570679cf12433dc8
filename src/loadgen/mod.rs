//! `otel-sidecar loadgen`: drives any OTLP endpoint (gRPC or HTTP, protobuf or JSON, optional
//! gzip), an X-Ray daemon port or a StatsD port at a fixed rate or as fast as it can, and reports
//! the achieved rate, errors by kind and request latency percentiles. `loadgen sink` is the AWS
//! side: it answers X-Ray and CloudWatch Logs calls and counts what arrives.

pub mod generate;
mod options;
pub mod sink;

pub use options::{Encoding, LoadOptions, SignalArg, Target};

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// What the workers have done so far, for the progress line.
#[derive(Default)]
struct Progress {
    items: AtomicU64,
    failed: AtomicU64,
    /// Latencies of the current second, sampled (at most [`PROGRESS_SAMPLES`]).
    latencies_us: std::sync::Mutex<Vec<u32>>,
}

/// Latency samples the progress line keeps per second.
const PROGRESS_SAMPLES: usize = 10_000;

impl Progress {
    fn record(&self, items: u64, failed: bool, latency_us: u32) {
        self.items.fetch_add(items, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let mut latencies = self
            .latencies_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if latencies.len() < PROGRESS_SAMPLES {
            latencies.push(latency_us);
        }
    }

    /// Prints one line a second to stderr until `done` (only called when stderr is a terminal).
    async fn report_every_second(
        self: Arc<Self>,
        started: Instant,
        done: Arc<tokio::sync::Notify>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last_items = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = done.notified() => return,
            }
            let items = self.items.load(Ordering::Relaxed);
            let mut latencies = std::mem::take(
                &mut *self
                    .latencies_us
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            latencies.sort_unstable();
            let at = |p: f64| {
                latencies
                    .get(((latencies.len().max(1) - 1) as f64 * p).round() as usize)
                    .map_or(0.0, |us| *us as f64 / 1000.0)
            };
            eprintln!(
                "{:>5.0}s  {:>9} items/s  {} errors  p50 {:.2} ms  p99 {:.2} ms",
                started.elapsed().as_secs_f64(),
                items - last_items,
                self.failed.load(Ordering::Relaxed),
                at(0.5),
                at(0.99),
            );
            last_items = items;
        }
    }
}

/// How long a run waits for a TCP receiver to start listening (a sidecar started a moment ago).
const LISTENER_PATIENCE: Duration = Duration::from_secs(5);

/// Waits until a TCP target accepts connections, so `otel-sidecar ... & otel-sidecar loadgen`
/// works; UDP targets have nothing to wait for.
async fn wait_for_listener(options: &LoadOptions) -> Result<(), String> {
    if matches!(options.target, Target::XrayUdp | Target::StatsdUdp) {
        return Ok(());
    }
    let deadline = Instant::now() + LISTENER_PATIENCE;
    loop {
        match tokio::net::TcpStream::connect(options.endpoint()).await {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(format!(
                    "nothing listens on {}: {error}",
                    options.endpoint()
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Runs the load and returns the report. Ctrl-C ends the run early: the report covers what
/// was sent until then.
pub async fn run(options: LoadOptions) -> Result<Report, String> {
    let duration = crate::config::duration::parse_go_duration(&options.duration)?;
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
            }
        });
    }
    let mut options = options;
    let fixed_bodies = match &options.body {
        Some(path) => {
            let (bodies, items) = generate::read_fixed_bodies(path, &options)?;
            options.batch = items;
            Some(Arc::new(bodies))
        }
        None => None,
    };
    let progress = Arc::new(Progress::default());
    let progress_done = Arc::new(tokio::sync::Notify::new());
    wait_for_listener(&options).await?;
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
        let fixed_bodies = fixed_bodies.clone();
        // Each worker posts every `workers`-th body of a folder, from its own.
        let mut next_body = worker;
        let (progress, interrupted) = (progress.clone(), interrupted.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut generator = generate::Generator::new(&options, worker as u64);
            let interval = (per_worker_rate > 0)
                .then(|| Duration::from_secs_f64(options.batch as f64 / per_worker_rate as f64));
            let mut next = tokio::time::Instant::now();
            loop {
                if Instant::now() >= deadline || interrupted.load(Ordering::Relaxed) {
                    break;
                }
                let items = match options.total {
                    Some(total) => {
                        let start = claimed.fetch_add(options.batch, Ordering::Relaxed);
                        if start >= total {
                            break;
                        }
                        // A fixed body goes whole: the last one may pass --total.
                        if fixed_bodies.is_some() {
                            options.batch
                        } else {
                            options.batch.min(total - start)
                        }
                    }
                    None => options.batch,
                };
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next).await;
                    next += interval;
                }
                let request = match &fixed_bodies {
                    Some(bodies) => {
                        next_body += options.workers;
                        bodies[(next_body - options.workers) % bodies.len()].clone()
                    }
                    None => generator.next(items),
                };
                let sent_at = Instant::now();
                let result = sender.send(request).await;
                let latency_us = sent_at.elapsed().as_micros().min(u32::MAX as u128) as u32;
                tally.requests += 1;
                if tally.latencies_us.len() < MAX_LATENCY_SAMPLES {
                    tally.latencies_us.push(latency_us);
                }
                progress.record(
                    if result.is_ok() { items } else { 0 },
                    result.is_err(),
                    latency_us,
                );
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
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        tokio::spawn(progress.report_every_second(started, progress_done.clone()));
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
    progress_done.notify_one();
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use prost::Message;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: LoadOptions,
    }

    #[test]
    fn each_target_defaults_to_its_standard_port_on_localhost() {
        let endpoint = |args: &[&str]| {
            let cli = Cli::parse_from(std::iter::once("loadgen").chain(args.iter().copied()));
            cli.options.endpoint().to_string()
        };
        assert_eq!(endpoint(&[]), "127.0.0.1:4317");
        assert_eq!(endpoint(&["--target", "otlp-http"]), "127.0.0.1:4318");
        assert_eq!(endpoint(&["--target", "xray-udp"]), "127.0.0.1:2000");
        assert_eq!(endpoint(&["--target", "statsd-udp"]), "127.0.0.1:8125");
        assert_eq!(endpoint(&["--endpoint", "10.0.0.1:9"]), "10.0.0.1:9");
    }

    #[test]
    fn a_fixed_body_is_posted_as_it_is_with_the_items_it_carries() {
        let options = |args: &[&str]| {
            Cli::parse_from(std::iter::once("loadgen").chain(args.iter().copied())).options
        };
        let workload = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/workload/");
        for (signal, file) in [("traces", "traces.pb"), ("metrics", "metrics.pb")] {
            let path = format!("{workload}{file}");
            let (request, items) = generate::read_fixed_body(
                std::path::Path::new(&path),
                &options(&["--target", "otlp-http", "--signal", signal]),
            )
            .unwrap();
            assert_eq!(items, 100, "{file}");
            let generate::Request::Encoded(url_path, body) = request else {
                panic!("{file}: not sent as it is")
            };
            assert_eq!(url_path, format!("/v1/{signal}"));
            assert_eq!(body, std::fs::read(&path).unwrap());
        }
        // A folder: its .pb files in name order, each the same number of items.
        let folder = std::env::temp_dir().join(format!("loadgen-bodies-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let metrics = std::fs::read(format!("{workload}metrics.pb")).unwrap();
        std::fs::write(folder.join("0001.pb"), &metrics).unwrap();
        std::fs::write(folder.join("0000.pb"), &metrics[..]).unwrap();
        std::fs::write(folder.join("notes.txt"), b"not a body").unwrap();
        let metrics_options = options(&["--target", "otlp-http", "--signal", "metrics"]);
        let (bodies, items) = generate::read_fixed_bodies(&folder, &metrics_options).unwrap();
        assert_eq!((bodies.len(), items), (2, 100));
        // A body with other items than the first is refused, naming it.
        let mut fewer = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(
            metrics.as_slice(),
        )
        .unwrap();
        fewer.resource_metrics[0].scope_metrics[0]
            .metrics
            .truncate(1);
        std::fs::write(folder.join("0002.pb"), fewer.encode_to_vec()).unwrap();
        let Err(refused) = generate::read_fixed_bodies(&folder, &metrics_options) else {
            panic!("a body with other items than the first is taken");
        };
        assert!(refused.contains("0002.pb"), "{refused}");
        std::fs::remove_dir_all(&folder).unwrap();
        // Bytes posted unchanged cannot be gzipped, sent as JSON or over gRPC; a body of the
        // other signal does not decode as this one's request or carries none of its items.
        let traces = std::path::PathBuf::from(format!("{workload}traces.pb"));
        for args in [
            &["--target", "otlp-http", "--gzip"][..],
            &["--target", "otlp-http", "--encoding", "json"],
            &["--target", "otlp-grpc"],
            &["--target", "otlp-http", "--signal", "metrics"],
        ] {
            assert!(
                generate::read_fixed_body(&traces, &options(args)).is_err(),
                "{args:?}"
            );
        }
    }
}
