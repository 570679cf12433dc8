//! Exporters: the ends of pipelines. Each runs as one task behind its own bounded queue.

pub mod awscloudwatchlogs;
pub mod awsemf;
pub mod awsxray;
pub mod client;
pub mod debug;
pub mod embedded_json;
pub mod file;
pub mod otlp;
pub mod otlphttp;
pub mod persistent_queue;

use crate::config::ComponentId;
use crate::internal_events::{DropReason, ExportFailed};
use crate::panic_policy::Contained;
use crate::pipeline::{Payload, Receipt, Signal};
use persistent_queue::{PersistentQueue, StoredBatch};
use serde::Deserialize;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// The collector's `sending_queue` settings: the bounded queue in front of an exporter.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// Accepted for compatibility: the queue cannot be turned off, only made small.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Batches the queue holds before the pipeline is made to wait.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Spans, data points or log records queued or being exported at most (an otel-sidecar
    /// key): a batch waits for room. `queue_size` counts batches, which can be 50 items or
    /// 8,192; this is what bounds the memory behind a destination slower than the load.
    #[serde(default = "default_queue_size_items")]
    pub queue_size_items: usize,
    /// Exports in flight at once (the collector's default, 10). The AWS exporters translate in
    /// order and overlap only the sending; `debug` and `file` write in order.
    #[serde(default = "default_num_consumers")]
    pub num_consumers: usize,
    /// A `file_storage` extension to keep the queue in, so it survives a crash and a restart.
    #[serde(default)]
    pub storage: Option<String>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            enabled: true,
            queue_size: default_queue_size(),
            queue_size_items: default_queue_size_items(),
            num_consumers: default_num_consumers(),
            storage: None,
        }
    }
}

fn default_true() -> bool {
    true
}
/// The collector's exporterhelper default.
fn default_queue_size() -> usize {
    1000
}

/// A decoded span or data point takes 1-1.5 KB in the OTLP model, so about 15 MB: with the
/// batches being built and translated, this keeps a flooded sidecar under 64 MB (measured by
/// the saturation rows of `benches/throughput.sh`), and still holds a full 8,192-point batch.
fn default_queue_size_items() -> usize {
    10_000
}

/// The collector's exporterhelper default.
fn default_num_consumers() -> usize {
    10
}

/// A built exporter, as its queue's task drives it.
pub trait Export: Send + 'static {
    /// Does the part of an export that needs the exporter itself (translation, in order) and
    /// returns the part that waits on the network, which may overlap other exports.
    fn start(&mut self, payload: Payload) -> impl Future<Output = InFlight> + Send;

    /// True when the exporter bounds the memory of what it is sending by itself (EMF: rendered
    /// bytes in flight), so a batch's item room is given back once `start` has translated it.
    fn bounds_what_it_sends(&self) -> bool {
        false
    }

    /// Flushes and closes what the exporter holds, once its queue has drained.
    fn shutdown(&mut self) -> impl Future<Output = Result<(), ExportError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot set up the exporter: {0}")]
    Setup(String),
    /// Items the exporter dropped and already counted and logged, each with its reason.
    #[error("{items} items dropped (counted by reason)")]
    Counted { items: u64 },
    /// Items lost for one reason, not yet counted.
    #[error("{items} items dropped: {}", .reason.as_str())]
    Dropped { items: u64, reason: DropReason },
    #[error("cannot encode {signal} as OTLP JSON: {source}")]
    Encode {
        signal: Signal,
        source: serde_json::Error,
    },
}

/// A batch in an exporter's queue, holding its share of the queue's item room until exported,
/// and where it is kept until then.
pub struct Queued {
    payload: Payload,
    room: Option<OwnedSemaphorePermit>,
    kept: Kept,
}

/// Where a queued or in-flight batch survives until it is exported or dropped for good.
enum Kept {
    /// In its persistent queue's file: a stop or a crash does not lose it.
    OnDisk(StoredBatch),
    /// In memory only: counted in [`ExporterInput::in_memory`] while it exists, so a shutdown
    /// that runs out of time knows whether acknowledged data is lost.
    InMemory(#[allow(dead_code)] InMemoryBatch),
}

/// One batch held only in memory; dropping it takes it off the count.
struct InMemoryBatch(Arc<AtomicUsize>);

impl InMemoryBatch {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InMemoryBatch(count.clone())
    }
}

impl Drop for InMemoryBatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The input of an exporter: a bounded queue of batches, and room for a bounded number of
/// items across the queue and the exports in flight.
#[derive(Clone)]
pub struct ExporterInput {
    pub batches: mpsc::Sender<Queued>,
    pub room: Arc<Semaphore>,
    pub items: usize,
    storage: Option<Arc<PersistentQueue>>,
    /// Batches queued or in flight that exist in memory only.
    pub in_memory: Arc<AtomicUsize>,
}

impl ExporterInput {
    /// The queue in front of an exporter, kept on disk in `storage` when given.
    pub fn new(
        settings: &QueueSettings,
        storage: Option<Arc<PersistentQueue>>,
    ) -> (Self, mpsc::Receiver<Queued>) {
        let (batches, rx) = mpsc::channel(settings.queue_size.max(1));
        let items = settings.queue_size_items.max(1);
        let room = Arc::new(Semaphore::new(items));
        (
            ExporterInput {
                batches,
                room,
                items,
                storage,
                in_memory: Arc::default(),
            },
            rx,
        )
    }

    /// Waits for room (this is the pushback) and queues the batch, on disk first for a
    /// persistent queue; the receipt is released once it is queued. False when the exporter
    /// has stopped.
    pub async fn send(&self, payload: Payload, receipt: Option<Receipt>) -> bool {
        // A batch larger than the whole room takes all of it.
        let wanted = payload.item_count().clamp(1, self.items);
        let Ok(permit) = self
            .room
            .clone()
            .acquire_many_owned(u32::try_from(wanted).unwrap_or(u32::MAX))
            .await
        else {
            return false;
        };
        let on_disk = match &self.storage {
            None => None,
            Some(storage) => match storage.store(&payload).await {
                Ok(stored) => Some(stored),
                Err(error) => {
                    // Kept in memory: exported unless the sidecar crashes first.
                    tracing::error!(%error, "cannot write a batch to the persistent queue; it is queued in memory only");
                    metrics::counter!("otelsidecar_exporter_queue_persist_failed_batches")
                        .increment(1);
                    None
                }
            },
        };
        let kept = on_disk.map_or_else(
            || Kept::InMemory(InMemoryBatch::new(&self.in_memory)),
            Kept::OnDisk,
        );
        let queued = Queued {
            payload,
            room: Some(permit),
            kept,
        };
        let sent = self.batches.send(queued).await.is_ok();
        drop(receipt);
        sent
    }
}

/// The sending part of an export, run concurrently with others up to `num_consumers`.
pub type InFlight = Pin<Box<dyn Future<Output = Result<(), ExportError>> + Send>>;

/// A batch lost to a panic (see `panic_policy`).
fn internal_error(items: u64) -> ExportError {
    ExportError::Dropped {
        items,
        reason: DropReason::InternalError,
    }
}

/// The persistent queue of an exporter and the batches a previous run left in it.
pub type Recovered = (Arc<PersistentQueue>, VecDeque<StoredBatch>);

/// The next batch to export: what a previous run left first, then the queue. Cancel-safe:
/// the recovered branch completes without waiting.
async fn next_batch(
    recovered: &mut Option<Recovered>,
    queue: &mut mpsc::Receiver<Queued>,
) -> Option<Queued> {
    if let Some((storage, left)) = recovered {
        while let Some(stored) = left.pop_front() {
            if let Some(payload) = storage.load(&stored) {
                return Some(Queued {
                    payload,
                    room: None,
                    kept: Kept::OnDisk(stored),
                });
            }
        }
    }
    queue.recv().await
}

/// Runs an exporter until its queue closes (every pipeline feeding it has drained). At most
/// `consumers` exports are in flight; while they are, the queue is not read, so a slow
/// destination fills the queue and the pipeline is pushed back instead of memory growing.
/// With a persistent queue, the batches a previous run left are exported first, and each
/// batch's file is removed once it is exported or dropped for good.
pub fn spawn(
    id: ComponentId,
    mut exporter: impl Export,
    mut queue: mpsc::Receiver<Queued>,
    consumers: usize,
    mut recovered: Option<Recovered>,
) -> JoinHandle<()> {
    let storage = recovered.as_ref().map(|(storage, _)| storage.clone());
    metrics::gauge!("otelcol_exporter_queue_capacity", "exporter" => id.to_string())
        .set(queue.max_capacity() as f64);
    tokio::spawn(async move {
        let name = id.to_string();
        let labels = [("exporter", name.clone())];
        // Exported or dropped for good: either way the batch leaves its queue.
        let forget = |kept: Kept| {
            if let (Some(storage), Kept::OnDisk(stored)) = (&storage, kept) {
                storage.remove(stored);
            }
        };
        let record = |signal: Signal, items: u64, result: Result<(), ExportError>| {
            let failed = match &result {
                Ok(()) => 0,
                // Dropped (a panic, logged where it happened) or counted by the exporter itself.
                Err(
                    ExportError::Dropped { items: dropped, .. }
                    | ExportError::Counted { items: dropped },
                ) => (*dropped).min(items),
                Err(_) => items,
            };
            metrics::counter!(
                format!("otelcol_exporter_sent_{}", signal.item_name()),
                &labels
            )
            .increment(items - failed);
            ExportFailed {
                exporter: &name,
                signal,
                items: failed,
                error: match &result {
                    Err(ExportError::Dropped { .. } | ExportError::Counted { .. }) | Ok(()) => None,
                    Err(error) => Some(error),
                },
            }
            .emit();
        };
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                biased;
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let (signal, items, result, kept) = done.expect("sending is contained");
                    record(signal, items, result);
                    forget(kept);
                }
                next = next_batch(&mut recovered, &mut queue), if in_flight.len() < consumers.max(1) => {
                    let Some(Queued { payload, room, kept }) = next else { break };
                    let signal = payload.signal();
                    let items = payload.item_count() as u64;
                    // A panic while translating or sending costs this batch, not the exporter.
                    let Some(sending) = Contained::new(&name, exporter.start(payload)).await else {
                        record(signal, items, Err(internal_error(items)));
                        forget(kept);
                        continue;
                    };
                    let room = room.filter(|_| !exporter.bounds_what_it_sends());
                    let component = name.clone();
                    in_flight.spawn(async move {
                        let result = Contained::new(&component, sending)
                            .await
                            .unwrap_or_else(|| Err(internal_error(items)));
                        // The batch's room is given back once it is exported, not when dequeued:
                        // documents being sent take memory too (unless the exporter bounds
                        // those itself, in which case it was given back above).
                        drop(room);
                        (signal, items, result, kept)
                    });
                }
            }
        }
        while let Some(done) = in_flight.join_next().await {
            let (signal, items, result, kept) = done.expect("sending is contained");
            record(signal, items, result);
            forget(kept);
        }
        if let Err(error) = exporter.shutdown().await {
            tracing::error!(exporter = %name, %error, "exporter shutdown failed");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::pipeline::test_spans as spans;

    fn config(queue_size: usize, queue_size_items: usize) -> QueueSettings {
        serde_yaml_ng::from_str(&format!(
            "{{queue_size: {queue_size}, queue_size_items: {queue_size_items}}}"
        ))
        .unwrap()
    }

    /// With paused time the timeout fires only once every task is idle, so "still waiting"
    /// is decided without a real sleep.
    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_item_room_until_an_earlier_one_is_exported() {
        let (input, mut queue) = ExporterInput::new(&config(1000, 100), None);
        assert!(input.send(spans(60), None).await);
        assert_eq!(input.room.available_permits(), 40);
        let second = input.send(spans(60), None);
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), &mut second)
                .await
                .is_err(),
            "60 more items do not fit in the 40 left"
        );
        let Queued {
            payload: first,
            room,
            ..
        } = queue.recv().await.unwrap();
        assert_eq!(first.item_count(), 60);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), &mut second)
                .await
                .is_err(),
            "dequeued is not exported: still no room"
        );
        drop(room);
        assert!(
            second.await,
            "room given back on export lets the next batch in"
        );
        // A batch larger than the whole room takes all of it rather than waiting forever.
        drop(queue.recv().await.unwrap());
        assert!(input.send(spans(500), None).await);
        assert_eq!(input.room.available_permits(), 0);
    }
}
