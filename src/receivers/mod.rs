//! Receivers: where telemetry enters the sidecar.

pub mod awsecscontainermetrics;
pub mod awsxray;
pub mod otlp;
pub mod statsd;

use crate::config::{ComponentId, DecodeError};
use crate::pipeline::{Consumers, Shutdown, Signal};
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
    AwsEcsContainerMetrics(awsecscontainermetrics::AwsEcsContainerMetricsConfig),
    AwsXray(Box<awsxray::AwsXrayReceiverConfig>),
    Otlp(Box<otlp::OtlpReceiverConfig>),
    Statsd(Box<statsd::StatsdReceiverConfig>),
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
        "awsecscontainermetrics" => Ok(ReceiverConfig::AwsEcsContainerMetrics(
            awsecscontainermetrics::AwsEcsContainerMetricsConfig::decode(body)?,
        )),
        "awsxray" => Ok(ReceiverConfig::AwsXray(Box::new(
            awsxray::AwsXrayReceiverConfig::decode(body)?,
        ))),
        "otlp" => Ok(ReceiverConfig::Otlp(Box::new(
            otlp::OtlpReceiverConfig::decode(body)?,
        ))),
        "statsd" => Ok(ReceiverConfig::Statsd(Box::new(
            statsd::StatsdReceiverConfig::decode(body)?,
        ))),
        _ if OUT_OF_SCOPE_RECEIVER_TYPES.contains(&kind) => Err(DecodeError::OutOfScope),
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
        ReceiverConfig::AwsXray(c) => awsxray::start(&id.to_string(), c, consumers, shutdown).await,
        ReceiverConfig::AwsEcsContainerMetrics(c) => {
            awsecscontainermetrics::start(&id.to_string(), c, consumers, shutdown).await
        }
        ReceiverConfig::Otlp(c) => otlp::start(&id.to_string(), c, consumers, shutdown).await,
        ReceiverConfig::Statsd(c) => statsd::start(&id.to_string(), c, consumers, shutdown).await,
    }
}

/// Hands decoded data to the pipelines and keeps the collector's accepted/refused counts. An
/// empty request succeeds without entering the pipelines, as in the collector.
pub(crate) async fn accept(
    receiver: &str,
    transport: &'static str,
    consumers: &Consumers,
    payload: crate::pipeline::Payload,
) -> Result<(), crate::pipeline::Refused> {
    let items = payload.item_count() as u64;
    if items == 0 {
        return Ok(());
    }
    let signal = payload.signal();
    let item_name = signal.item_name();
    let labels = [
        ("receiver", receiver.to_string()),
        ("transport", transport.to_string()),
    ];
    match consumers.consume(payload).await {
        Ok(()) => {
            metrics::counter!(format!("otelcol_receiver_accepted_{item_name}"), &labels)
                .increment(items);
            Ok(())
        }
        Err(refused) => {
            crate::internal_events::ReceiverRefused {
                receiver,
                transport,
                signal,
                items,
                refused,
            }
            .emit();
            Err(refused)
        }
    }
}
