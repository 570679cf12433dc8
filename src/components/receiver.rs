//! Receiver types: decoding their sections and starting them.

use crate::config::{ComponentId, DecodeError, Signal, decode_settings};
use crate::pipeline::{Consumers, Shutdown};
use crate::receivers;
use serde_yaml_ng::Value;
use tokio::task::JoinHandle;

/// Receiver types otel-sidecar runs.
pub const RECEIVER_TYPES: &[&str] = &["awsecscontainermetrics", "awsxray", "otlp", "statsd"];

/// Collector receiver types outside otel-sidecar's scope, refused with a message saying so.
const OUT_OF_SCOPE_RECEIVER_TYPES: &[&str] = &[
    "awscontainerinsightreceiver",
    "prometheus",
    "jaeger",
    "zipkin",
];

/// A validated receiver config.
#[derive(Debug, Clone)]
pub enum ReceiverConfig {
    AwsEcsContainerMetrics(receivers::awsecscontainermetrics::AwsEcsContainerMetricsConfig),
    AwsXray(Box<receivers::awsxray::AwsXrayReceiverConfig>),
    Otlp(Box<receivers::otlp::OtlpReceiverConfig>),
    Statsd(Box<receivers::statsd::StatsdReceiverConfig>),
}

impl ReceiverConfig {
    /// Signals the receiver can produce.
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            ReceiverConfig::AwsXray(_) => &[Signal::Traces],
            ReceiverConfig::AwsEcsContainerMetrics(_) => &[Signal::Metrics],
            ReceiverConfig::Otlp(_) => &[Signal::Traces, Signal::Metrics, Signal::Logs],
            ReceiverConfig::Statsd(_) => &[Signal::Metrics],
        }
    }
}

/// Decodes the body of a `receivers.<id>` entry of type `kind`.
pub fn decode(kind: &str, body: &Value) -> Result<ReceiverConfig, DecodeError> {
    match kind {
        "awsecscontainermetrics" => Ok(ReceiverConfig::AwsEcsContainerMetrics(decode_settings::<
            receivers::awsecscontainermetrics::AwsEcsContainerMetricsConfig,
        >(body)?)),
        "awsxray" => Ok(ReceiverConfig::AwsXray(Box::new(decode_settings::<
            receivers::awsxray::AwsXrayReceiverConfig,
        >(body)?))),
        "otlp" => Ok(ReceiverConfig::Otlp(Box::new(decode_settings::<
            receivers::otlp::OtlpReceiverConfig,
        >(body)?))),
        "statsd" => Ok(ReceiverConfig::Statsd(Box::new(decode_settings::<
            receivers::statsd::StatsdReceiverConfig,
        >(body)?))),
        _ if OUT_OF_SCOPE_RECEIVER_TYPES.contains(&kind) => Err(DecodeError::OutOfScope),
        _ => Err(DecodeError::UnknownType(RECEIVER_TYPES)),
    }
}

/// Binds a receiver's listeners and starts serving; the tasks end after `shutdown` once
/// in-flight requests are answered.
pub async fn start_receiver(
    id: &ComponentId,
    config: &ReceiverConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    match config {
        ReceiverConfig::AwsXray(c) => {
            receivers::awsxray::start(&id.to_string(), c, consumers, shutdown).await
        }
        ReceiverConfig::AwsEcsContainerMetrics(c) => {
            receivers::awsecscontainermetrics::start(&id.to_string(), c, consumers, shutdown).await
        }
        ReceiverConfig::Otlp(c) => {
            receivers::otlp::start(&id.to_string(), c, consumers, shutdown).await
        }
        ReceiverConfig::Statsd(c) => {
            receivers::statsd::start(&id.to_string(), c, consumers, shutdown).await
        }
    }
}
