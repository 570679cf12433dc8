//! An OTLP protobuf body of any signal (the first byte chooses), checked by the scan that lets
//! pass-through pipelines forward requests as bytes: it must accept exactly what prost decodes,
//! count the same items, and its entries must decode to the same data; traces and metrics
//! entries read through the translations' views must read as the decoded data does.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otel_sidecar::pipeline::view::{ResourceMetricsView, ResourceSpansView};
use otel_sidecar::pipeline::{EncodedPayload, Payload, Signal};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (signal, decoded) = match selector % 3 {
        0 => (
            Signal::Traces,
            ExportTraceServiceRequest::decode(body)
                .ok()
                .map(|r| Payload::Traces(r.resource_spans)),
        ),
        1 => (
            Signal::Metrics,
            ExportMetricsServiceRequest::decode(body)
                .ok()
                .map(|r| Payload::Metrics(r.resource_metrics)),
        ),
        _ => (
            Signal::Logs,
            ExportLogsServiceRequest::decode(body)
                .ok()
                .map(|r| Payload::Logs(r.resource_logs)),
        ),
    };
    let scanned = EncodedPayload::scan(signal, Bytes::copy_from_slice(body));
    match (scanned, decoded) {
        (Ok(scanned), Some(decoded)) => {
            assert_eq!(scanned.item_count(), decoded.item_count());
            for entry in scanned.entries().iter().filter(|e| !e.merges) {
                match signal {
                    Signal::Traces => {
                        let owned =
                            ExportTraceServiceRequest::decode(entry.bytes.as_ref()).unwrap();
                        let from_bytes = ResourceSpansView::parse_entry(&entry.bytes);
                        let from_owned = ResourceSpansView::from(&owned.resource_spans[0]);
                        assert_eq!(from_bytes.resource, from_owned.resource);
                        assert_eq!(from_bytes.spans, from_owned.spans);
                    }
                    Signal::Metrics => {
                        let owned =
                            ExportMetricsServiceRequest::decode(entry.bytes.as_ref()).unwrap();
                        assert_eq!(
                            ResourceMetricsView::parse_entry(&entry.bytes),
                            ResourceMetricsView::from(&owned.resource_metrics[0])
                        );
                    }
                    _ => break,
                }
            }
            // Compared as encoded: a NaN value is the same data but not equal to itself.
            assert_eq!(
                scanned.decode().encode_export_request(),
                decoded.encode_export_request()
            );
        }
        (Err(_), None) => {}
        (scanned, decoded) => panic!(
            "the scan says {:?}, prost {}",
            scanned.map(|s| s.item_count()),
            if decoded.is_some() { "decodes" } else { "refuses" }
        ),
    }
});
