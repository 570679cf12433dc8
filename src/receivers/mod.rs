//! Receivers: where telemetry enters the sidecar.

pub mod otlp;

use crate::config::{ComponentId, DecodeError};
use crate::pipeline::{Consumers, Shutdown, Signal};
use serde_yaml_ng::Value;
use tokio::task::JoinHandle;

/// Receiver types otel-sidecar runs.
pub const RECEIVER_TYPES: &[&str] = &["otlp"];

/// Collector receiver types that are recognised but not implemented yet.
const PLANNED_RECEIVER_TYPES: &[&str] = &["awsxray", "statsd"];

/// A validated receiver config.
#[derive(Debug, Clone)]
pub enum ReceiverConfig {
    Otlp(otlp::OtlpReceiverConfig),
}

impl ReceiverConfig {
    /// Signals the receiver can produce.
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            ReceiverConfig::Otlp(_) => &[Signal::Traces, Signal::Metrics, Signal::Logs],
        }
    }
}

/// Decodes the body of a `receivers.<id>` entry of type `kind`.
pub fn decode(kind: &str, body: &Value) -> Result<ReceiverConfig, DecodeError> {
    match kind {
        "otlp" => Ok(ReceiverConfig::Otlp(otlp::OtlpReceiverConfig::decode(
            body,
        )?)),
        _ if PLANNED_RECEIVER_TYPES.contains(&kind) => Err(DecodeError::NotImplemented),
        _ => Err(DecodeError::UnknownType(RECEIVER_TYPES)),
    }
}

/// Binds a receiver's listeners and starts serving; the tasks end after `shutdown` once
/// in-flight requests are answered.
pub async fn start(
    id: &ComponentId,
    config: &ReceiverConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    match config {
        ReceiverConfig::Otlp(c) => otlp::start(&id.to_string(), c, consumers, shutdown).await,
    }
}
