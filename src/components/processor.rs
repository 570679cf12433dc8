//! Processor types: decoding their sections and starting them in a pipeline.

use crate::config::{ComponentId, DecodeError, Signal, decode_settings};
use crate::internal_events::{DropReason, ProcessorItemsDropped};
use crate::pipeline::{Delivery, Payload};
use crate::processors;
use serde_yaml_ng::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Processor types otel-sidecar runs (with the collector's older aliases).
pub const PROCESSOR_TYPES: &[&str] = &[
    "attributes",
    "batch",
    "filter",
    "memory_limiter",
    "metrics_transform",
    "metricstransform",
    "resource",
    "resource_detection",
    "resourcedetection",
];

/// A validated processor config.
#[derive(Debug, Clone)]
pub enum ProcessorConfig {
    Attributes(Box<processors::attributes::AttributesProcessorConfig>),
    Batch(processors::batch::BatchConfig),
    Filter(Box<processors::filter::FilterProcessorConfig>),
    MemoryLimiter(processors::memory_limiter::MemoryLimiterConfig),
    MetricsTransform(Box<processors::metricstransform::MetricsTransformConfig>),
    Resource(Box<processors::resource::ResourceProcessorConfig>),
    ResourceDetection(Box<processors::resourcedetection::ResourceDetectionConfig>),
}

/// Decodes the body of a `processors.<id>` entry of type `kind`.
pub fn decode(kind: &str, body: &Value) -> Result<ProcessorConfig, DecodeError> {
    Ok(match kind {
        "attributes" => ProcessorConfig::Attributes(Box::new(decode_settings::<
            processors::attributes::AttributesProcessorSection,
        >(body)?)),
        "batch" => {
            ProcessorConfig::Batch(decode_settings::<processors::batch::BatchSection>(body)?)
        }
        "filter" => ProcessorConfig::Filter(Box::new(decode_settings::<
            processors::filter::FilterProcessorSection,
        >(body)?)),
        "memory_limiter" => ProcessorConfig::MemoryLimiter(decode_settings::<
            processors::memory_limiter::MemoryLimiterSection,
        >(body)?),
        "metricstransform" | "metrics_transform" => {
            ProcessorConfig::MetricsTransform(Box::new(decode_settings::<
                processors::metricstransform::MetricsTransformSection,
            >(body)?))
        }
        "resource" => ProcessorConfig::Resource(Box::new(decode_settings::<
            processors::resource::ResourceProcessorSection,
        >(body)?)),
        "resourcedetection" | "resource_detection" => {
            ProcessorConfig::ResourceDetection(Box::new(decode_settings::<
                processors::resourcedetection::ResourceDetectionConfig,
            >(body)?))
        }
        _ => return Err(DecodeError::UnknownType(PROCESSOR_TYPES)),
    })
}

impl ProcessorConfig {
    /// Whether the processor can run in a pipeline of `signal`: the `attributes` processor's
    /// match blocks accept different properties per signal. `Err` says what is wrong.
    pub fn check_signal(&self, signal: Signal) -> Result<(), (String, String)> {
        match self {
            ProcessorConfig::Attributes(c) => c.for_signal(signal).map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// Starts one processor instance of a pipeline; it ends once `input` closes and everything it
/// held has been sent on.
pub fn spawn_processor(
    id: &ComponentId,
    config: &ProcessorConfig,
    signal: Signal,
    input: mpsc::Receiver<Delivery>,
    output: mpsc::Sender<Delivery>,
) -> JoinHandle<()> {
    let name = id.to_string();
    /// One payload through a processor that changes payloads one at a time.
    type Step = Box<dyn FnMut(Payload) -> Option<Payload> + Send>;
    let step: Step = match config {
        ProcessorConfig::Batch(config) => {
            return tokio::spawn(
                processors::batch::BatchProcessor::new(name, config.clone(), signal)
                    .run(input, output),
            );
        }
        ProcessorConfig::ResourceDetection(config) => {
            return tokio::spawn(processors::resourcedetection::run(
                (**config).clone(),
                input,
                output,
            ));
        }
        ProcessorConfig::Attributes(config) => {
            let config = config.clone();
            let matcher = config
                .for_signal(signal)
                .expect("checked with the pipelines at start");
            Box::new(move |mut payload| {
                config.process(&matcher, &mut payload);
                Some(payload)
            })
        }
        ProcessorConfig::Resource(config) => {
            let config = config.clone();
            Box::new(move |mut payload| {
                config.process(&mut payload);
                Some(payload)
            })
        }
        ProcessorConfig::MetricsTransform(config) => {
            let config = config.clone();
            Box::new(move |mut payload| {
                config.process(&mut payload);
                (!payload.is_empty()).then_some(payload)
            })
        }
        ProcessorConfig::Filter(config) => {
            let config = config.clone();
            let name = name.clone();
            Box::new(move |payload| {
                let items = payload.item_count() as u64;
                match config.process(payload) {
                    Ok((kept, filtered)) => {
                        let labels = [("filter", name.clone())];
                        if filtered.data_points > 0 {
                            metrics::counter!(
                                "otelcol_processor_filter_datapoints_filtered",
                                &labels
                            )
                            .increment(filtered.data_points);
                        }
                        if filtered.spans > 0 {
                            metrics::counter!("otelcol_processor_filter_spans_filtered", &labels)
                                .increment(filtered.spans);
                        }
                        kept
                    }
                    Err(error) => {
                        // The collector returns the error upstream and forwards nothing; the
                        // data was already accepted here, so it is counted as dropped.
                        ProcessorItemsDropped {
                            processor: &name,
                            reason: DropReason::ConditionError,
                            items,
                            error: &error,
                        }
                        .emit();
                        None
                    }
                }
            })
        }
        // Refusal happens at admission (see `pipeline::Consumers`); data that got in passes.
        ProcessorConfig::MemoryLimiter(_) => Box::new(Some),
    };
    tokio::spawn(processors::map_payloads(name, input, output, step))
}
