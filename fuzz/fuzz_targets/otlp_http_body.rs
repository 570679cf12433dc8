//! An OTLP/HTTP body, protobuf or JSON, of any signal (the first byte chooses), decoded as the
//! receiver decodes it and, when it decodes, translated to X-Ray documents or EMF events; the
//! documents' escaped encoding is checked against serde_json's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otel_sidecar::exporters::awsemf::delta::DeltaCache;
use otel_sidecar::exporters::awsemf::translate::{EmfSettings, translate};
use otel_sidecar::exporters::awsxray::translate::{
    ResourceContext, TranslateSettings, span_documents, span_to_documents,
};
use otel_sidecar::exporters::embedded_json::reference;
use otel_sidecar::pipeline::view::SpanView;
use otel_sidecar::receivers::otlp::json;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let protobuf = selector & 1 == 0;
    match selector % 3 {
        0 => {
            let request: Option<ExportTraceServiceRequest> = if protobuf {
                ExportTraceServiceRequest::decode(body).ok()
            } else {
                json::decode(body).ok()
            };
            let settings = TranslateSettings::default();
            for rs in request.map(|r| r.resource_spans).unwrap_or_default() {
                let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                let context = ResourceContext::new(&resource, &settings);
                for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                    // The exporter's serializer writes what serde_json writes.
                    let view = SpanView::from(span);
                    for document in span_documents(&view, &context, &settings).unwrap_or_default() {
                        reference::check(&document);
                    }
                    for document in span_to_documents(span, &resource, &settings).unwrap_or_default() {
                        reference::check(&document);
                    }
                }
            }
        }
        1 => {
            let request: Option<ExportMetricsServiceRequest> = if protobuf {
                ExportMetricsServiceRequest::decode(body).ok()
            } else {
                json::decode(body).ok()
            };
            if let Some(request) = request {
                let settings = EmfSettings::default();
                let _ = translate(
                    &request.resource_metrics,
                    &settings,
                    &mut DeltaCache::default(),
                    None,
                    0,
                );
            }
        }
        _ => {
            let _: Option<ExportLogsServiceRequest> = if protobuf {
                ExportLogsServiceRequest::decode(body).ok()
            } else {
                json::decode(body).ok()
            };
        }
    }
});
