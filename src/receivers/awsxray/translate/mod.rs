//! X-Ray daemon datagrams → OTLP spans, following the collector's awsxray receiver
//! (`receiver/awsxrayreceiver/internal/translator`): the document and its embedded subsegments
//! are flattened depth-first into one ResourceSpans, keeping what the awsxray exporter needs to
//! write the same documents back (annotation keys, metadata namespaces, in-progress).

mod attributes;
mod causes;
mod document;
mod error;
mod flatten;
mod ids;
mod resource;

pub use error::DatagramError;
pub use ids::parse_trace_id;

use document::{Header, SegmentDoc};
use flatten::flatten;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use resource::resource_attributes;

/// Splits a datagram into its header and body and checks the header.
pub fn split_datagram(datagram: &[u8]) -> Result<&[u8], DatagramError> {
    let newline = datagram
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(DatagramError::MissingHeader)?;
    // The SDKs all write this exact header; anything else is parsed as JSON.
    const USUAL_HEADER: &[u8] = br#"{"format":"json","version":1}"#;
    let header = &datagram[..newline];
    if header != USUAL_HEADER {
        let header: Header =
            serde_json::from_slice(header).map_err(|_| DatagramError::BadHeader)?;
        if !header.format.eq_ignore_ascii_case("json") || header.version != 1 {
            return Err(DatagramError::BadHeader);
        }
    }
    let body = &datagram[newline + 1..];
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DatagramError::MissingField);
    }
    Ok(body)
}

/// One datagram → one ResourceSpans holding the segment and all its embedded subsegments.
pub fn datagram_to_resource_spans(datagram: &[u8]) -> Result<ResourceSpans, DatagramError> {
    let body = split_datagram(datagram)?;
    let segment: SegmentDoc = serde_json::from_slice(body).map_err(|_| DatagramError::BadJson)?;
    let trace_id = segment
        .trace_id
        .as_deref()
        .ok_or(DatagramError::MissingField)?;
    let trace_id = parse_trace_id(trace_id)?;
    let mut spans = Vec::new();
    flatten(&segment, &trace_id, None, true, &mut spans)?;
    Ok(ResourceSpans {
        resource: Some(Resource {
            attributes: resource_attributes(&segment),
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        schema_url: String::new(),
    })
}

#[cfg(test)]
mod tests;
