//! Processors: components that sit between a pipeline's receivers and its exporters.

pub mod batch;
pub mod resourcedetection;

use crate::config::{ComponentId, DecodeError, decode_section};
use crate::pipeline::{Payload, Signal};
use serde_yaml_ng::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Processor types otel-sidecar runs.
pub const PROCESSOR_TYPES: &[&str] = &["batch", "resourcedetection"];

/// Collector processor types that are recognised but not implemented yet.
const PLANNED_PROCESSOR_TYPES: &[&str] = &["memory_limiter"];

/// A validated processor config.
#[derive(Debug, Clone)]
pub enum ProcessorConfig {
    Batch(batch::BatchConfig),
    ResourceDetection(resourcedetection::ResourceDetectionConfig),
}

/// Decodes the body of a `processors.<id>` entry of type `kind`.
pub fn decode(kind: &str, body: &Value) -> Result<ProcessorConfig, DecodeError> {
    match kind {
        "batch" => {
            let config: batch::BatchConfig = decode_section(body)?;
            config
                .validate()
                .map_err(|e| DecodeError::Invalid(vec![e]))?;
            Ok(ProcessorConfig::Batch(config))
        }
        "resourcedetection" => {
            let config: resourcedetection::ResourceDetectionConfig = decode_section(body)?;
            config
                .validate()
                .map_err(|e| DecodeError::Invalid(vec![e]))?;
            Ok(ProcessorConfig::ResourceDetection(config))
        }
        _ if PLANNED_PROCESSOR_TYPES.contains(&kind) => Err(DecodeError::NotImplemented),
        _ => Err(DecodeError::UnknownType(PROCESSOR_TYPES)),
    }
}

/// Starts one processor instance of a pipeline; it ends once `input` closes and everything it
/// held has been sent on.
pub fn spawn(
    id: &ComponentId,
    config: &ProcessorConfig,
    signal: Signal,
    input: mpsc::Receiver<Payload>,
    output: mpsc::Sender<Payload>,
) -> JoinHandle<()> {
    match config {
        ProcessorConfig::Batch(config) => tokio::spawn(
            batch::BatchProcessor::new(id.to_string(), config.clone(), signal).run(input, output),
        ),
        ProcessorConfig::ResourceDetection(config) => {
            tokio::spawn(resourcedetection::run(config.clone(), input, output))
        }
    }
}
