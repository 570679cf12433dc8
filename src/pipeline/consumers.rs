//! The fan-in side of pipelines, as a receiver sees it.

use super::{Delivery, Payload, Receipt, Signal};
use crate::processors::memory_limiter::MemoryGate;
use tokio::sync::mpsc;

/// How long a receiver waits for room in a full pipeline queue before refusing the request
/// (HTTP 503 / gRPC UNAVAILABLE with a retry hint). Short, so clients learn about overload fast.
pub const ADMISSION_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a receiver could not hand data to its pipelines. Nothing was enqueued in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A pipeline queue stayed full for [`ADMISSION_WAIT`]: the client should retry later.
    #[error("pipeline queue is full")]
    QueueFull,
    /// The sidecar is shutting down.
    #[error("the sidecar is shutting down")]
    ShuttingDown,
    /// A `memory_limiter` of a pipeline is over its soft limit: the client should retry later.
    #[error("data refused due to high memory usage")]
    MemoryLimited,
}

/// The input queue of one pipeline.
#[derive(Debug, Clone)]
struct PipelineInput {
    queue: mpsc::Sender<Delivery>,
    /// Some exporter of the pipeline keeps a persistent queue: a request is answered once its
    /// data is stored there, not when it enters the pipeline.
    durable: bool,
    /// The pipeline only batches and forwards: it takes requests as they arrived.
    takes_encoded: bool,
}

/// Every pipeline input a receiver feeds, by signal. Cloned into each connection handler; the
/// pipelines close once the last clone is dropped.
#[derive(Debug, Clone, Default)]
pub struct Consumers {
    traces: Vec<PipelineInput>,
    metrics: Vec<PipelineInput>,
    logs: Vec<PipelineInput>,
    /// The memory limiters of the pipelines fed, by signal.
    gates: Vec<(Signal, MemoryGate)>,
}

impl Consumers {
    /// Adds one pipeline's input for `signal`; `durable` when a request must wait until its
    /// data is in the pipeline's persistent exporter queues.
    /// `takes_encoded` when the pipeline only batches and forwards OTLP requests.
    pub fn add(
        &mut self,
        signal: Signal,
        input: mpsc::Sender<Delivery>,
        durable: bool,
        takes_encoded: bool,
    ) {
        self.inputs_mut(signal).push(PipelineInput {
            queue: input,
            durable,
            takes_encoded,
        });
    }

    /// Whether every pipeline fed `signal` takes OTLP requests as they arrived
    /// ([`Payload::Encoded`]): then a receiver need not decode them.
    pub fn take_encoded(&self, signal: Signal) -> bool {
        let inputs = self.inputs(signal);
        !inputs.is_empty() && inputs.iter().all(|input| input.takes_encoded)
    }

    /// Adds a memory limiter of a pipeline that consumes `signal`.
    pub fn add_gate(&mut self, signal: Signal, gate: MemoryGate) {
        self.gates.push((signal, gate));
    }

    fn inputs(&self, signal: Signal) -> &[PipelineInput] {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
        }
    }

    fn inputs_mut(&mut self, signal: Signal) -> &mut Vec<PipelineInput> {
        match signal {
            Signal::Traces => &mut self.traces,
            Signal::Metrics => &mut self.metrics,
            Signal::Logs => &mut self.logs,
        }
    }

    /// Whether some pipeline consumes `signal` from this receiver (else the receiver does not
    /// serve that signal at all, like the collector).
    pub fn consumes(&self, signal: Signal) -> bool {
        !self.inputs(signal).is_empty()
    }

    /// Hands `payload` to every pipeline that consumes its signal, or to none: room is reserved
    /// in all queues before anything is sent, so a refusal never leaves a partial delivery.
    /// For a durable pipeline it returns once the data is stored in its exporters' queues.
    pub async fn consume(&self, payload: Payload) -> Result<(), Refused> {
        let signal = payload.signal();
        if self
            .gates
            .iter()
            .any(|(s, gate)| *s == signal && gate.refusing())
        {
            return Err(Refused::MemoryLimited);
        }
        let inputs = self.inputs(signal);
        let mut permits = Vec::with_capacity(inputs.len());
        for input in inputs {
            let input = &input.queue;
            let permit = match input.try_reserve() {
                Ok(permit) => permit,
                Err(mpsc::error::TrySendError::Closed(())) => return Err(Refused::ShuttingDown),
                Err(mpsc::error::TrySendError::Full(())) => {
                    match tokio::time::timeout(ADMISSION_WAIT, input.reserve()).await {
                        Ok(Ok(permit)) => permit,
                        Ok(Err(_)) => return Err(Refused::ShuttingDown),
                        Err(_) => return Err(Refused::QueueFull),
                    }
                }
            };
            permits.push(permit);
        }
        let (receipt, stored) = if inputs.iter().any(|input| input.durable) {
            let (receipt, wait) = Receipt::new();
            (Some(receipt), Some(wait))
        } else {
            (None, None)
        };
        let mut payload = Some(payload);
        let last = permits.len().saturating_sub(1);
        for (i, (permit, input)) in permits.into_iter().zip(inputs).enumerate() {
            let item = if i == last {
                payload
                    .take()
                    .expect("payload is moved only into the last queue")
            } else {
                payload
                    .clone()
                    .expect("payload present until the last queue")
            };
            permit.send(Delivery {
                payload: item,
                receipt: receipt.as_ref().filter(|_| input.durable).cloned(),
            });
        }
        drop(receipt);
        if let Some(stored) = stored {
            stored.queued().await;
        }
        Ok(())
    }
}
