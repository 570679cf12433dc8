//! Starting and stopping the whole graph, in the collector's order: extensions, exporters,
//! processors, receivers up; receivers, processors, exporters, extensions down.

use crate::components::{self, Exporter, ExporterConfig, ExtensionConfig, SidecarConfig};
use crate::config::{ComponentId, PipelineId};
use crate::exporters;
use crate::extensions::{self, HealthState};
use crate::pipeline::{Consumers, Delivery, ShutdownTrigger};
use crate::processors;
use crate::telemetry::{self, CardinalityReports};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Capacity, in requests, of the queue between receivers and a pipeline's first processor. The
/// batch processor drains it continuously, so it only has to absorb scheduling jitter; the
/// collector's batch processor uses one slot per CPU.
pub const PIPELINE_INPUT_CAPACITY: usize = 16;

/// Capacity, in batches, between two processors and between the last processor and fan-out.
/// One: a batch can be 8,192 data points, and what bounds memory is the exporter's item room
/// (`sending_queue.queue_size_items`), which batches parked here would escape.
pub const STAGE_CAPACITY: usize = 1;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[error("{component}: {message}")]
pub struct StartError {
    pub component: String,
    pub message: String,
}

impl StartError {
    fn new(component: impl ToString, message: impl ToString) -> Self {
        StartError {
            component: component.to_string(),
            message: message.to_string(),
        }
    }
}

/// The running graph. Dropping it without [`RunningService::shutdown`] aborts nothing: call it.
pub struct RunningService {
    health: HealthState,
    receivers_stop: ShutdownTrigger,
    extensions_stop: ShutdownTrigger,
    receiver_tasks: Vec<JoinHandle<()>>,
    pipeline_tasks: Vec<JoinHandle<()>>,
    exporter_tasks: Vec<JoinHandle<()>>,
    extension_tasks: Vec<JoinHandle<()>>,
    /// Memory limiters' measuring loops, aborted once the pipelines have drained.
    limiter_tasks: Vec<JoinHandle<()>>,
    /// What each exporter still holds, read when the drain runs out of time.
    exporter_holds: Vec<ExporterHold>,
}

/// Where an exporter's unexported batches are: in memory, or in its persistent queue.
struct ExporterHold {
    id: ComponentId,
    in_memory: Arc<AtomicUsize>,
    storage: Option<Arc<exporters::persistent_queue::PersistentQueue>>,
}

/// Starts everything the config describes and marks the service healthy once every receiver
/// is listening.
pub async fn start(config: &SidecarConfig) -> Result<RunningService, StartError> {
    let health = HealthState::new();
    let (receivers_stop, _) = ShutdownTrigger::new();
    let (extensions_stop, _) = ShutdownTrigger::new();
    let reports = CardinalityReports::default();
    let mut extension_tasks = Vec::new();
    let mut limiter_tasks = Vec::new();

    let metrics_address = config
        .telemetry
        .metrics
        .prometheus_address()
        .map_err(|e| StartError::new("service.telemetry.metrics", e))?;
    if let Some(address) = metrics_address {
        let task = extensions::serve_self_metrics(
            address,
            telemetry::metrics_handle(),
            reports.clone(),
            extensions_stop.subscribe(),
        )
        .await
        .map_err(|e| StartError::new("service.telemetry.metrics", e))?;
        extension_tasks.push(task);
    }
    for (id, extension) in &config.extensions {
        let task =
            components::start_extension(id, extension, health.clone(), extensions_stop.subscribe())
                .await
                .map_err(|e| StartError::new(format!("extensions.{id}"), e))?;
        extension_tasks.extend(task);
    }

    // Exporters: one task and one bounded queue per exporter id, shared by its pipelines.
    let mut exporter_inputs: BTreeMap<ComponentId, exporters::ExporterInput> = BTreeMap::new();
    let mut exporter_tasks = Vec::new();
    let mut exporter_holds = Vec::new();
    for pipeline in config.pipelines.values() {
        for id in &pipeline.exporters {
            if exporter_inputs.contains_key(id) {
                continue;
            }
            let exporter_config = &config.exporters[id];
            let exporter = Exporter::build(id, exporter_config, &reports, &config.extensions)
                .await
                .map_err(|e| StartError::new(format!("exporters.{id}"), e))?;
            let recovered = open_persistent_queue(config, id, exporter_config)?;
            let storage = recovered.as_ref().map(|(storage, _)| storage.clone());
            let (tx, rx) =
                exporters::ExporterInput::new(exporter_config.sending_queue(), storage.clone());
            exporter_holds.push(ExporterHold {
                id: id.clone(),
                in_memory: tx.in_memory.clone(),
                storage,
            });
            exporter_tasks.push(exporters::spawn(
                id.clone(),
                exporter,
                rx,
                exporter_config.consumers(),
                recovered,
            ));
            exporter_inputs.insert(id.clone(), tx);
        }
    }

    // Memory limiters: one per component id, shared by the pipelines that list it.
    let mut memory_gates = BTreeMap::new();
    for pipeline in config.pipelines.values() {
        for id in &pipeline.processors {
            if let components::ProcessorConfig::MemoryLimiter(limiter) = &config.processors[id]
                && !memory_gates.contains_key(id)
            {
                let (gate, task) = processors::memory_limiter::start(&id.to_string(), limiter)
                    .map_err(|e| StartError::new(format!("processors.{id}"), e))?;
                memory_gates.insert(id.clone(), gate);
                limiter_tasks.push(task);
            }
        }
    }

    // Pipelines: input queue → processors in order → fan-out to exporter queues.
    let mut receiver_consumers: BTreeMap<ComponentId, Consumers> = BTreeMap::new();
    let mut pipeline_tasks = Vec::new();
    for (pipeline_id, pipeline) in &config.pipelines {
        let (input_tx, mut stage_rx) = mpsc::channel(PIPELINE_INPUT_CAPACITY);
        for id in &pipeline.processors {
            let (tx, rx) = mpsc::channel(STAGE_CAPACITY);
            pipeline_tasks.push(components::spawn_processor(
                id,
                &config.processors[id],
                pipeline_id.signal,
                stage_rx,
                tx,
            ));
            stage_rx = rx;
        }
        let outputs: Vec<(ComponentId, exporters::ExporterInput)> = pipeline
            .exporters
            .iter()
            .map(|id| (id.clone(), exporter_inputs[id].clone()))
            .collect();
        pipeline_tasks.push(tokio::spawn(fan_out(
            pipeline_id.clone(),
            stage_rx,
            outputs,
        )));
        let durable = pipeline
            .exporters
            .iter()
            .any(|id| config.exporters[id].storage().is_some());
        for id in &pipeline.receivers {
            let consumers = receiver_consumers.entry(id.clone()).or_default();
            consumers.add(
                pipeline_id.signal,
                input_tx.clone(),
                durable,
                config.forwards_encoded(pipeline),
            );
            for gate in pipeline
                .processors
                .iter()
                .filter_map(|p| memory_gates.get(p))
            {
                consumers.add_gate(pipeline_id.signal, gate.clone());
            }
        }
    }
    // Only receivers may hold pipeline inputs from here on, so pipelines close when they stop.
    drop(exporter_inputs);

    let mut receiver_tasks = Vec::new();
    for (id, consumers) in receiver_consumers {
        let tasks = components::start_receiver(
            &id,
            &config.receivers[&id],
            consumers,
            receivers_stop.subscribe(),
        )
        .await
        .map_err(|e| StartError::new(format!("receivers.{id}"), e))?;
        receiver_tasks.extend(tasks);
    }

    health.set_ready();
    tracing::info!(message = "everything is ready; begin running and processing data");
    Ok(RunningService {
        health,
        receivers_stop,
        extensions_stop,
        receiver_tasks,
        pipeline_tasks,
        exporter_tasks,
        extension_tasks,
        limiter_tasks,
        exporter_holds,
    })
}

/// Opens the persistent queue of an exporter whose `sending_queue.storage` names a
/// `file_storage` extension (checked when the config was read).
fn open_persistent_queue(
    config: &SidecarConfig,
    id: &ComponentId,
    exporter: &ExporterConfig,
) -> Result<Option<exporters::Recovered>, StartError> {
    let Some(storage) = exporter.storage() else {
        return Ok(None);
    };
    let extension = ComponentId::parse(storage)
        .ok()
        .and_then(|storage| config.extensions.get(&storage));
    let Some(ExtensionConfig::FileStorage(file_storage)) = extension else {
        return Err(StartError::new(
            format!("exporters.{id}.sending_queue.storage"),
            format!("{storage:?} is not a file_storage extension in service.extensions"),
        ));
    };
    let (queue, recovered) = exporters::persistent_queue::PersistentQueue::open(
        &file_storage.directory,
        id,
        file_storage.fsync,
    )
    .map_err(|e| StartError::new(format!("exporters.{id}.sending_queue.storage"), e))?;
    Ok(Some((std::sync::Arc::new(queue), recovered)))
}

/// Sends each batch to every exporter queue of the pipeline. Waiting on a full queue is the
/// decision here: it pushes back to the receivers rather than dropping accepted data.
async fn fan_out(
    pipeline: PipelineId,
    mut input: mpsc::Receiver<Delivery>,
    outputs: Vec<(ComponentId, exporters::ExporterInput)>,
) {
    while let Some(Delivery { payload, receipt }) = input.recv().await {
        let last = outputs.len() - 1;
        let mut payload = Some(payload);
        for (i, (exporter, queue)) in outputs.iter().enumerate() {
            let item = if i == last {
                payload.take().expect("moved into the last exporter only")
            } else {
                payload.clone().expect("present until the last exporter")
            };
            if !queue.send(item, receipt.clone()).await {
                tracing::error!(%pipeline, %exporter, "exporter stopped before its pipeline; batch lost");
            }
            let batches = &queue.batches;
            metrics::gauge!("otelcol_exporter_queue_size", "exporter" => exporter.to_string())
                .set((batches.max_capacity() - batches.capacity()) as f64);
        }
    }
}

/// Why shutdown did not finish cleanly: acknowledged data held in memory is lost.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownTimeout {
    #[error("shutdown did not finish within {0:?}: pipelines still held data, which is lost")]
    PipelinesBusy(Duration),
    #[error(
        "shutdown did not finish within {grace:?}: {batches} batches held in memory by exporters are lost"
    )]
    ExportersBusy { grace: Duration, batches: usize },
}

impl RunningService {
    /// The health state served by `health_check`.
    pub fn health(&self) -> HealthState {
        self.health.clone()
    }

    /// Stops receivers, lets processors flush and exporters drain, then stops extensions. The
    /// whole drain is bounded by `grace` (ECS sends SIGKILL 30 s after SIGTERM).
    pub async fn shutdown(self, grace: Duration) -> Result<(), ShutdownTimeout> {
        self.health.set_unavailable();
        tracing::info!(message = "shutdown: receivers stop accepting, pipelines drain");
        self.receivers_stop.trigger();
        let pipelines_drained = AtomicBool::new(false);
        let drain = async {
            for task in self.receiver_tasks {
                let _ = task.await;
            }
            for task in self.pipeline_tasks {
                let _ = task.await;
            }
            pipelines_drained.store(true, Ordering::Relaxed);
            for task in self.exporter_tasks {
                let _ = task.await;
            }
        };
        let drained = tokio::time::timeout(grace, drain).await;
        for task in self.limiter_tasks {
            task.abort();
        }
        self.extensions_stop.trigger();
        for task in self.extension_tasks {
            let _ = task.await;
        }
        if drained.is_ok() {
            tracing::info!(message = "shutdown complete");
            return Ok(());
        }
        if !pipelines_drained.load(Ordering::Relaxed) {
            return Err(ShutdownTimeout::PipelinesBusy(grace));
        }
        // Out of time with the pipelines empty: what the exporters hold is lost only if it is
        // in memory; a persistent queue's batches are exported after the next start.
        let batches: usize = self
            .exporter_holds
            .iter()
            .map(|hold| hold.in_memory.load(Ordering::Relaxed))
            .sum();
        if batches > 0 {
            return Err(ShutdownTimeout::ExportersBusy { grace, batches });
        }
        for hold in &self.exporter_holds {
            if let Some(storage) = &hold.storage {
                tracing::warn!(
                    message = "shutdown grace ended before the exporter finished; its batches are kept on disk for the next start",
                    exporter = %hold.id,
                    batches = storage.kept_batches(),
                    directory = %storage.directory().display(),
                );
            }
        }
        tracing::info!(message = "shutdown complete; nothing acknowledged is lost");
        Ok(())
    }
}
