//! The `statsd` receiver: StatsD / DogStatsD lines over UDP, aggregated per
//! `aggregation_interval` into OTLP metrics under the collector's scope name.

pub mod aggregate;
pub mod parse;

use crate::config::{DecodeError, decode_section, duration};
use crate::pipeline::{Consumers, Payload, Refused, Shutdown};
use crate::telemetry::LogLimiter;
use aggregate::{AggregationSettings, Aggregator, CounterType};
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::time::{Duration, SystemTime};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// `receivers.statsd`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsdReceiverConfig {
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    #[serde(default = "default_transport")]
    pub transport: String,
    #[serde(
        default = "default_interval",
        deserialize_with = "duration::deserialize"
    )]
    pub aggregation_interval: Duration,
    #[serde(default)]
    pub enable_metric_type: bool,
    #[serde(default)]
    pub enable_simple_tags: bool,
    #[serde(default)]
    pub is_monotonic_counter: bool,
    #[serde(default)]
    pub counter_type: CounterType,
    /// Accepted for compatibility: timers, histograms and distributions are always aggregated
    /// into statistics plus a distribution (see the README).
    #[serde(default)]
    pub timer_histogram_mapping: Option<Value>,
    /// Accepted: otel-sidecar aggregates across senders whatever these say.
    #[serde(default)]
    pub enable_ip_only_aggregation: bool,
    #[serde(default)]
    pub ignore_host: bool,
    #[serde(default)]
    pub socket_permissions: Option<Value>,
    #[serde(default)]
    pub socket_buffer_size: Option<Value>,
}

fn default_endpoint() -> String {
    "localhost:8125".into()
}
fn default_transport() -> String {
    "udp".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(60)
}

impl StatsdReceiverConfig {
    pub fn decode(body: &Value) -> Result<Self, DecodeError> {
        let config: StatsdReceiverConfig = decode_section(body)?;
        let invalid = |key: &str, message: &str| {
            Err(DecodeError::Invalid(vec![(key.into(), message.into())]))
        };
        if config.aggregation_interval.is_zero() {
            return invalid(
                "aggregation_interval",
                "aggregation_interval must be a positive duration",
            );
        }
        if !matches!(config.transport.as_str(), "udp" | "udp4" | "udp6") {
            return invalid(
                "transport",
                "only udp is supported by otel-sidecar for now (tcp and unixgram are planned)",
            );
        }
        Ok(config)
    }
}

/// Datagrams up to 64 KiB.
const MAX_DATAGRAM_BYTES: usize = 65_536;

/// Receive buffer asked of the kernel for bursts between reads.
const RECEIVE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// How long a flush waits for room in the pipeline before its metrics are dropped and counted.
const FLUSH_PATIENCE: Duration = Duration::from_secs(10);

static BAD_LINE_LOG: LogLimiter = LogLimiter::new(Duration::from_secs(10));

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub async fn start(
    id: &str,
    config: &StatsdReceiverConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let address = crate::http_server::resolve_endpoint(&config.endpoint).await?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    let socket = UdpSocket::from_std(socket.into())?;
    tracing::info!(message = "listening", component = id, transport = "udp", address = %socket.local_addr()?);
    let settings = AggregationSettings {
        enable_metric_type: config.enable_metric_type,
        is_monotonic_counter: config.is_monotonic_counter,
        counter_type: config.counter_type,
    };
    Ok(vec![tokio::spawn(run(
        id.to_string(),
        socket,
        Aggregator::new(settings, unix_nanos()),
        config.clone(),
        consumers,
        shutdown,
    ))])
}

/// Reads datagrams and flushes on the interval; on shutdown the partial interval is flushed
/// too (the collector loses it).
async fn run(
    receiver: String,
    socket: UdpSocket,
    mut aggregator: Aggregator,
    config: StatsdReceiverConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) {
    let mut buffer = vec![0u8; MAX_DATAGRAM_BYTES];
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + config.aggregation_interval,
        config.aggregation_interval,
    );
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok((length, _)) => ingest(&receiver, &buffer[..length], &mut aggregator, config.enable_simple_tags),
                Err(error) => tracing::warn!(%error, "UDP receive failed"),
            },
            _ = ticker.tick() => flush(&receiver, &mut aggregator, &consumers).await,
            _ = &mut stop => break,
        }
    }
    // Lines already in the socket buffer were sent before we stopped: take them too.
    while let Ok((length, _)) = socket.try_recv_from(&mut buffer) {
        ingest(
            &receiver,
            &buffer[..length],
            &mut aggregator,
            config.enable_simple_tags,
        );
    }
    flush(&receiver, &mut aggregator, &consumers).await;
}

/// Parses every line of a datagram; a bad line is counted and skipped, the others count.
pub fn ingest(receiver: &str, datagram: &[u8], aggregator: &mut Aggregator, simple_tags: bool) {
    let text = String::from_utf8_lossy(datagram);
    let now = unix_nanos();
    for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
        match parse::parse_line(line, simple_tags) {
            Ok(parsed) => aggregator.add(&parsed, now),
            Err(error) => {
                metrics::counter!(
                    "otelsidecar_receiver_statsd_lines_skipped",
                    "receiver" => receiver.to_string(),
                    "reason" => error.reason()
                )
                .increment(1);
                if error != parse::LineError::NotAMetric
                    && let Some(suppressed) = BAD_LINE_LOG.allow()
                {
                    tracing::warn!(%receiver, reason = error.reason(), line = %line.chars().take(200).collect::<String>(), suppressed, "StatsD line skipped");
                }
            }
        }
    }
}

async fn flush(receiver: &str, aggregator: &mut Aggregator, consumers: &Consumers) {
    if aggregator.dropped_lines > 0 {
        metrics::counter!(
            "otelsidecar_receiver_statsd_lines_skipped",
            "receiver" => receiver.to_string(),
            "reason" => "too_many_series"
        )
        .increment(std::mem::take(&mut aggregator.dropped_lines));
    }
    let Some(resource_metrics) = aggregator.flush(unix_nanos()) else {
        return;
    };
    let payload = Payload::Metrics(vec![resource_metrics]);
    let deadline = tokio::time::Instant::now() + FLUSH_PATIENCE;
    loop {
        match crate::receivers::accept(receiver, "udp", consumers, payload.clone()).await {
            Ok(()) => return,
            Err(Refused::QueueFull) if tokio::time::Instant::now() < deadline => continue,
            Err(refused) => {
                tracing::error!(%receiver, %refused, "aggregated StatsD metrics dropped");
                return;
            }
        }
    }
}
