//! Receivers: where telemetry enters the sidecar. Which receiver a type name means is decided in
//! `crate::components`.

pub mod awsecscontainermetrics;
pub mod awsxray;
pub mod otlp;
pub mod statsd;

use crate::pipeline::Consumers;

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
