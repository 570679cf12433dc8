//! What moves through the pipelines and how it moves: the payload model, the fan-in a receiver
//! hands data to, receipts and the shutdown signal. Every hop is a bounded channel, so a slow
//! exporter pushes back all the way to the clients instead of growing memory; the graph itself
//! is built by `crate::service`.

mod consumers;
mod encoded;
mod payload;
mod receipt;
mod shutdown;
pub mod values;
pub mod view;

pub use consumers::{Consumers, Refused};
pub use encoded::{EncodedEntry, EncodedPayload};
#[cfg(test)]
pub(crate) use payload::test_spans;
pub use payload::{
    Payload, Signal, data_point_count, for_each_point_attributes, point_attributes, retain_points,
};
pub use receipt::{Delivery, Receipt, ReceiptWait};
pub use shutdown::{Shutdown, ShutdownTrigger};
