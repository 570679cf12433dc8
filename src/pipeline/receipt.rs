//! Receipts: how a receiver learns that what it accepted has reached every exporter queue of
//! its pipelines, so that with a persistent queue an acknowledgement means "on disk".

use super::Payload;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A payload moving through a pipeline, with the receipt of the request it came from.
#[derive(Debug)]
pub struct Delivery {
    pub payload: Payload,
    /// Held until the payload is in each exporter queue of the pipeline; `None` when no
    /// receiver waits for that (no exporter of the pipeline has a persistent queue).
    pub receipt: Option<Receipt>,
}

impl Delivery {
    /// A payload nobody waits for.
    pub fn new(payload: Payload) -> Self {
        Delivery {
            payload,
            receipt: None,
        }
    }
}

/// Dropping the last clone tells the waiting receiver that the data has been queued (or
/// dropped on purpose: filtered, or absorbed by a batch processor, which answers for it).
#[derive(Debug, Clone)]
pub struct Receipt(#[allow(dead_code)] Arc<oneshot::Sender<()>>);

/// The receiver's side of a [`Receipt`].
#[derive(Debug)]
pub struct ReceiptWait(oneshot::Receiver<()>);

impl Receipt {
    pub fn new() -> (Receipt, ReceiptWait) {
        let (done, wait) = oneshot::channel();
        (Receipt(Arc::new(done)), ReceiptWait(wait))
    }
}

impl ReceiptWait {
    /// Resolves once every clone of the receipt has been dropped.
    pub async fn queued(self) {
        // The sender is never used: its drop is the signal.
        let _ = self.0.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_wait_ends_when_the_last_clone_is_dropped() {
        let (receipt, wait) = Receipt::new();
        let copy = receipt.clone();
        drop(receipt);
        let wait = tokio::spawn(wait.queued());
        tokio::task::yield_now().await;
        assert!(!wait.is_finished(), "one clone is still held");
        drop(copy);
        wait.await.unwrap();
    }
}
