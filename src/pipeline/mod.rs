//! Builds the graph a config describes and runs it: receivers fan in to pipeline queues,
//! processors run in order, and each pipeline fans out to its exporters' queues. Every hop is a
//! bounded channel, so a slow exporter pushes back all the way to the clients instead of growing
//! memory.

mod consumers;
mod payload;
mod receipt;
mod service;
mod shutdown;

pub use consumers::{Consumers, Refused};
#[cfg(test)]
pub(crate) use payload::test_spans;
pub use payload::{
    Payload, Signal, data_point_count, for_each_point_attributes, point_attributes, retain_points,
};
pub use receipt::{Delivery, Receipt, ReceiptWait};
pub use service::{RunningService, StartError, start};
pub use shutdown::{Shutdown, ShutdownTrigger};

/// Capacity, in requests, of the queue between receivers and a pipeline's first processor. The
/// batch processor drains it continuously, so it only has to absorb scheduling jitter; the
/// collector's batch processor uses one slot per CPU.
pub const PIPELINE_INPUT_CAPACITY: usize = 16;

/// Capacity, in batches, between two processors and between the last processor and fan-out.
/// One: a batch can be 8,192 data points, and what bounds memory is the exporter's item room
/// (`sending_queue.queue_size_items`), which batches parked here would escape.
pub const STAGE_CAPACITY: usize = 1;

/// How long a receiver waits for room in a full pipeline queue before refusing the request
/// (HTTP 503 / gRPC UNAVAILABLE with a retry hint). Short, so clients learn about overload fast.
pub const ADMISSION_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
