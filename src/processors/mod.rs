//! Processors: components that sit between a pipeline's receivers and its exporters. Which
//! processor a type name means is decided in `crate::components`.

pub mod attraction;
pub mod attributes;
pub mod batch;
pub mod filter;
pub mod matching;
pub mod memory_limiter;
pub mod metricstransform;
pub mod ottl;
pub mod resource;
pub mod resourcedetection;

use crate::internal_events::{DropReason, ProcessorItemsDropped};
use crate::pipeline::{Delivery, Payload};
use tokio::sync::mpsc;

/// Runs `step` on every payload; a `None` from it forwards nothing. A panic costs the one
/// payload (counted as dropped, reason `internal_error`), not the processor.
pub(crate) async fn map_payloads(
    component: String,
    mut input: mpsc::Receiver<Delivery>,
    output: mpsc::Sender<Delivery>,
    mut step: impl FnMut(Payload) -> Option<Payload>,
) {
    while let Some(Delivery { payload, receipt }) = input.recv().await {
        let items = payload.item_count() as u64;
        let Some(result) = crate::panic_policy::contain(&component, || step(payload)) else {
            ProcessorItemsDropped {
                processor: &component,
                reason: DropReason::InternalError,
                items,
                error: &"panic while processing (logged with its location)",
            }
            .emit();
            continue;
        };
        if let Some(payload) = result
            && output.send(Delivery { payload, receipt }).await.is_err()
        {
            break;
        }
    }
}
