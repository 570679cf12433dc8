//! An X-Ray daemon datagram: translated to spans as the receiver does, and back to segment
//! documents as the exporter does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_sidecar::exporters::awsxray::translate::{TranslateSettings, span_to_documents};
use otel_sidecar::receivers::awsxray::translate::datagram_to_resource_spans;

fuzz_target!(|data: &[u8]| {
    if let Ok(rs) = datagram_to_resource_spans(data) {
        let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
        let settings = TranslateSettings::default();
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            let _ = span_to_documents(span, &resource, &settings);
        }
    }
});
