//! Self-telemetry: logs through `tracing` (`service.telemetry.logs`) and self-metrics through the
//! `metrics` crate, served in Prometheus text format (`service.telemetry.metrics`, default
//! `127.0.0.1:8888/metrics`) under the collector's metric names.

use crate::config::duration;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// `service.telemetry`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub logs: LogsTelemetryConfig,
    #[serde(default)]
    pub metrics: MetricsTelemetryConfig,
    /// Accepted for compatibility; otel-sidecar does not trace itself.
    #[serde(default)]
    pub traces: Option<Value>,
    /// Accepted for compatibility; self-metrics carry no resource.
    #[serde(default)]
    pub resource: Option<Value>,
}

/// `service.telemetry.logs`. Only `level` and `encoding` change behaviour; the other collector
/// keys are accepted so existing configs load.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogsTelemetryConfig {
    #[serde(default = "default_log_level")]
    pub level: LogLevel,
    #[serde(default)]
    pub encoding: LogEncoding,
    #[serde(default)]
    pub development: bool,
    #[serde(default)]
    pub disable_caller: bool,
    #[serde(default)]
    pub disable_stacktrace: bool,
    #[serde(default)]
    pub sampling: Option<Value>,
    #[serde(default)]
    pub output_paths: Option<Vec<String>>,
    #[serde(default)]
    pub error_output_paths: Option<Vec<String>>,
    #[serde(default)]
    pub initial_fields: Option<Value>,
    #[serde(default)]
    pub processors: Option<Value>,
}

impl Default for LogsTelemetryConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults deserialize")
    }
}

fn default_log_level() -> LogLevel {
    LogLevel::Info
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    #[default]
    Console,
    Json,
}

/// `service.telemetry.metrics`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsTelemetryConfig {
    #[serde(default)]
    pub level: MetricsLevel,
    /// The collector's reader list; otel-sidecar serves the first `pull.exporter.prometheus`.
    #[serde(default)]
    pub readers: Vec<Value>,
    #[serde(default)]
    pub views: Option<Value>,
}

impl Default for MetricsTelemetryConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults deserialize")
    }
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricsLevel {
    None,
    Basic,
    #[default]
    Normal,
    Detailed,
}

/// The collector's default self-metrics address.
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:8888";

impl MetricsTelemetryConfig {
    /// Where to serve `/metrics`, or `None` when self-metrics are off (`level: none`).
    pub fn prometheus_address(&self) -> Result<Option<SocketAddr>, String> {
        if self.level == MetricsLevel::None {
            return Ok(None);
        }
        let Some(first) = self.readers.first() else {
            return Ok(Some(
                DEFAULT_METRICS_ADDRESS.parse().expect("valid address"),
            ));
        };
        let prometheus = first
            .get("pull")
            .and_then(|p| p.get("exporter"))
            .and_then(|e| e.get("prometheus"))
            .ok_or("only a pull reader with a prometheus exporter is supported")?;
        let host = prometheus
            .get("host")
            .and_then(Value::as_str)
            .unwrap_or("localhost");
        let port = prometheus
            .get("port")
            .and_then(Value::as_u64)
            .ok_or("readers[0].pull.exporter.prometheus.port must be a port number")?;
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{port}")
            .parse()
            .map(Some)
            .map_err(|e| format!("invalid prometheus host/port {host}:{port}: {e}"))
    }
}

/// Installs the log subscriber. Logs go to stderr, as ADOT's do in a container.
pub fn init_logs(config: &LogsTelemetryConfig) {
    let level = match config.level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("OTEL_SIDECAR_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "{level},h2=warn,hyper=warn,tower=warn,aws=warn"
            ))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let result = match config.encoding {
        LogEncoding::Json => builder.json().flatten_event(true).try_init(),
        LogEncoding::Console => builder.try_init(),
    };
    // A second init (tests running several sidecars in one process) keeps the first subscriber.
    let _ = result;
}

/// A rate limiter for warnings on hot paths: at most one message per interval per call site,
/// reporting how many were suppressed in between.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl LogLimiter {
    pub const fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// Returns `Some(suppressed_since_last)` when a message may be logged now.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

/// Installs the global metrics recorder once and returns a handle that renders the Prometheus
/// text. Later calls return the same handle.
pub fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2000.0, 3000.0,
                    4000.0, 5000.0, 6000.0, 7000.0, 8000.0, 9000.0, 10000.0, 20000.0, 30000.0,
                    50000.0, 100000.0,
                ])
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours stays unused.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Re-exported so callers can write `telemetry::parse_duration`.
pub use duration::parse_go_duration as parse_duration;

/// The latest `/cardinality` document of each `awsemf` exporter with a budget, by exporter id:
/// the exporters write it, the self-metrics endpoint serves it. The service makes one and hands
/// it to both.
#[derive(Debug, Clone, Default)]
pub struct CardinalityReports(Arc<Mutex<BTreeMap<String, serde_json::Value>>>);

impl CardinalityReports {
    /// Replaces `exporter`'s document.
    pub fn publish(&self, exporter: &str, report: serde_json::Value) {
        // A writer that panicked left a whole map behind (each insert is one step).
        let mut reports = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        reports.insert(exporter.to_string(), report);
    }

    /// Every exporter's latest document.
    pub fn snapshot(&self) -> BTreeMap<String, serde_json::Value> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
