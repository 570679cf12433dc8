//! The `statsd` receiver: StatsD / DogStatsD lines over UDP, aggregated per
//! `aggregation_interval` into OTLP metrics under the collector's scope name.

pub mod aggregate;
pub mod parse;

use crate::config::{
    ComponentSection, InvalidSetting, check_listen_endpoint, duration::GoDuration,
};
use crate::internal_events::{StatsdLinesSkipped, StatsdSkip};
use crate::pipeline::{Consumers, Payload, Refused, Shutdown};
use aggregate::{AggregationSettings, Aggregator, CounterType};
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::time::{Duration, SystemTime};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{Receiver, Sender};
use tokio::task::JoinHandle;

/// `receivers.statsd`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatsdReceiverConfig {
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    #[serde(default)]
    pub transport: StatsdTransport,
    #[serde(default = "default_interval")]
    pub aggregation_interval: GoDuration,
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
fn default_interval() -> GoDuration {
    GoDuration::from_secs(60)
}

/// How StatsD arrives: datagrams, lines over TCP, or datagrams on a Unix socket. The IPv4 and
/// IPv6 names are accepted as the collector's are; the endpoint's address decides the family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsdTransport {
    #[default]
    Udp,
    Udp4,
    Udp6,
    Tcp,
    Tcp4,
    Tcp6,
    Unixgram,
}

impl ComponentSection for StatsdReceiverConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<InvalidSetting>> {
        // A Unix socket's endpoint is a path.
        let mut invalid: Vec<InvalidSetting> = match self.transport {
            StatsdTransport::Unixgram => Vec::new(),
            _ => check_listen_endpoint("endpoint", &self.endpoint)
                .into_iter()
                .collect(),
        };
        if self.aggregation_interval.is_zero() {
            invalid.push(InvalidSetting::shown(
                "aggregation_interval",
                self.aggregation_interval.to_string(),
                "a positive duration",
            ));
        }
        if invalid.is_empty() {
            Ok(self)
        } else {
            Err(invalid)
        }
    }
}

/// Datagrams up to 64 KiB.
const MAX_DATAGRAM_BYTES: usize = 65_536;

/// Receive buffer asked of the kernel for bursts between reads.
const RECEIVE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// How long a flush waits for room in the pipeline before its metrics are dropped and counted.
const FLUSH_PATIENCE: Duration = Duration::from_secs(10);

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Chunks of complete lines from the listeners, bounded: a full channel makes TCP senders wait
/// and leaves datagrams in the socket buffer.
const CHUNK_QUEUE: usize = 1024;

pub async fn start(
    id: &str,
    config: &StatsdReceiverConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let (chunks_tx, chunks_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNK_QUEUE);
    let mut tasks = Vec::new();
    match config.transport {
        StatsdTransport::Tcp | StatsdTransport::Tcp4 | StatsdTransport::Tcp6 => {
            let listener = crate::http_server::bind(&config.endpoint, id, "tcp").await?;
            tasks.push(tokio::spawn(accept_tcp(
                id.to_string(),
                listener,
                chunks_tx,
                shutdown.clone(),
            )));
        }
        StatsdTransport::Unixgram => {
            let path = if config.endpoint == default_endpoint() {
                "/var/run/statsd-receiver.sock".to_string()
            } else {
                config.endpoint.clone()
            };
            let _ = std::fs::remove_file(&path);
            let socket = tokio::net::UnixDatagram::bind(&path)?;
            tracing::info!(message = "listening", component = id, transport = "unixgram", address = %path);
            tasks.push(tokio::spawn(read_unixgram(
                socket,
                chunks_tx,
                shutdown.clone(),
            )));
        }
        StatsdTransport::Udp | StatsdTransport::Udp4 | StatsdTransport::Udp6 => {
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
            tasks.push(tokio::spawn(read_udp(socket, chunks_tx, shutdown.clone())));
        }
    }
    let settings = AggregationSettings {
        enable_metric_type: config.enable_metric_type,
        is_monotonic_counter: config.is_monotonic_counter,
        counter_type: config.counter_type,
    };
    tasks.push(tokio::spawn(run(
        id.to_string(),
        chunks_rx,
        Aggregator::new(settings, unix_nanos()),
        config.clone(),
        consumers,
    )));
    Ok(tasks)
}

async fn read_udp(socket: UdpSocket, chunks: Sender<Vec<u8>>, shutdown: Shutdown) {
    let mut buffer = vec![0u8; MAX_DATAGRAM_BYTES];
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok((length, _)) => {
                    if chunks.send(buffer[..length].to_vec()).await.is_err() {
                        return;
                    }
                }
                Err(error) => tracing::warn!(%error, "UDP receive failed"),
            },
            _ = &mut stop => break,
        }
    }
    // Datagrams already in the socket buffer were sent before we stopped: take them too.
    while let Ok((length, _)) = socket.try_recv_from(&mut buffer) {
        if chunks.send(buffer[..length].to_vec()).await.is_err() {
            return;
        }
    }
}

async fn read_unixgram(
    socket: tokio::net::UnixDatagram,
    chunks: Sender<Vec<u8>>,
    shutdown: Shutdown,
) {
    let mut buffer = vec![0u8; MAX_DATAGRAM_BYTES];
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            received = socket.recv(&mut buffer) => match received {
                Ok(length) => {
                    if chunks.send(buffer[..length].to_vec()).await.is_err() {
                        return;
                    }
                }
                Err(error) => tracing::warn!(%error, "unixgram receive failed"),
            },
            _ = &mut stop => break,
        }
    }
}

async fn accept_tcp(
    receiver: String,
    listener: tokio::net::TcpListener,
    chunks: Sender<Vec<u8>>,
    shutdown: Shutdown,
) {
    let stop = shutdown.clone().wait();
    tokio::pin!(stop);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(read_tcp(
                        receiver.clone(),
                        stream,
                        chunks.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(error) => tracing::warn!(%error, "TCP accept failed"),
            },
            _ = &mut stop => break,
        }
    }
    while connections.join_next().await.is_some() {}
}

/// Reads newline-delimited lines from one TCP sender, passing on whole lines only.
async fn read_tcp(
    receiver: String,
    mut stream: tokio::net::TcpStream,
    chunks: Sender<Vec<u8>>,
    shutdown: Shutdown,
) {
    use tokio::io::AsyncReadExt;
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; MAX_DATAGRAM_BYTES];
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut stopping = false;
    loop {
        // After shutdown, keep reading what the sender already wrote, until it goes quiet.
        let read = if stopping {
            match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await {
                Ok(read) => read,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                read = stream.read(&mut buffer) => read,
                _ = &mut stop => {
                    stopping = true;
                    continue;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                pending.extend_from_slice(&buffer[..n]);
                if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                    let rest = pending.split_off(end + 1);
                    if chunks
                        .send(std::mem::replace(&mut pending, rest))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if pending.len() > MAX_DATAGRAM_BYTES {
                    // A line longer than any datagram: not StatsD. Count it once and move on.
                    StatsdLinesSkipped {
                        receiver: &receiver,
                        skip: StatsdSkip::LineTooLong,
                        lines: 1,
                        sample: &String::from_utf8_lossy(&pending[..200]),
                    }
                    .emit();
                    pending.clear();
                }
            }
        }
    }
    if !pending.is_empty() {
        let _ = chunks.send(pending).await;
    }
}

/// Aggregates chunks and flushes on the interval; once every listener has stopped (shutdown),
/// the partial interval is flushed too (the collector loses it).
async fn run(
    receiver: String,
    mut chunks: Receiver<Vec<u8>>,
    mut aggregator: Aggregator,
    config: StatsdReceiverConfig,
    consumers: Consumers,
) {
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + *config.aggregation_interval,
        *config.aggregation_interval,
    );
    loop {
        tokio::select! {
            chunk = chunks.recv() => match chunk {
                Some(chunk) => ingest(&receiver, &chunk, &mut aggregator, config.enable_simple_tags),
                None => break,
            },
            _ = ticker.tick() => flush(&receiver, &mut aggregator, &consumers).await,
        }
    }
    flush(&receiver, &mut aggregator, &consumers).await;
}

/// Parses every line of a datagram; a bad line is counted and skipped, the others count.
pub fn ingest(receiver: &str, datagram: &[u8], aggregator: &mut Aggregator, simple_tags: bool) {
    let text = String::from_utf8_lossy(datagram);
    let now = unix_nanos();
    let mut aggregated = 0u64;
    let mut ignored_sections = 0u64;
    for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
        match parse::parse_line(line, simple_tags) {
            Ok(parsed) => {
                aggregator.add(&parsed, now);
                aggregated += 1;
                ignored_sections += u64::from(parsed.ignored_sections);
            }
            Err(error) => StatsdLinesSkipped {
                receiver,
                skip: StatsdSkip::Parse(error),
                lines: 1,
                sample: line,
            }
            .emit(),
        }
    }
    metrics::counter!("otelsidecar_receiver_statsd_lines", "receiver" => receiver.to_string())
        .increment(aggregated);
    if ignored_sections > 0 {
        metrics::counter!(
            "otelsidecar_receiver_statsd_sections_ignored",
            "receiver" => receiver.to_string()
        )
        .increment(ignored_sections);
    }
}

async fn flush(receiver: &str, aggregator: &mut Aggregator, consumers: &Consumers) {
    StatsdLinesSkipped {
        receiver,
        skip: StatsdSkip::TooManySeries,
        lines: std::mem::take(&mut aggregator.dropped_lines),
        sample: "",
    }
    .emit();
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
