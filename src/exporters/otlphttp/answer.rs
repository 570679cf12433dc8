//! What an OTLP/HTTP answer means, as the OTLP specification and the Go exporter read it: a
//! success may reject some items (a partial success: counted, not retried); 429, 502, 503 and
//! 504 may pass later, after `Retry-After` when given; any other error will fail again.

use crate::config::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::time::Duration;

/// What the destination said about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Taken; `rejected` items of it refused for good, with the destination's reason.
    Accepted { rejected: u64, message: String },
    /// May pass later.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Will fail again.
    Refused { error: String },
}

/// The longest `Retry-After` honoured: a destination asking for more is retried on the
/// exporter's own backoff instead, so `max_elapsed_time` still bounds the wait.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Reads an answer: its status, `Retry-After` and `Content-Type` headers and its body.
pub fn read(
    signal: Signal,
    status: u16,
    retry_after: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Verdict {
    let json = content_type.is_some_and(|t| t.starts_with("application/json"));
    if (200..300).contains(&status) {
        let (rejected, message) = partial_success(signal, json, body);
        return Verdict::Accepted { rejected, message };
    }
    let error = format!("HTTP {status}: {}", error_message(json, body));
    match status {
        429 | 502 | 503 | 504 => Verdict::Retry {
            error,
            after: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .filter(|wait| *wait <= MAX_RETRY_AFTER),
        },
        _ => Verdict::Refused { error },
    }
}

/// The items a successful answer rejected, and why.
fn partial_success(signal: Signal, json: bool, body: &[u8]) -> (u64, String) {
    if body.is_empty() {
        return (0, String::new());
    }
    if json {
        let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let partial = &parsed["partialSuccess"];
        let key = match signal {
            Signal::Traces => "rejectedSpans",
            Signal::Metrics => "rejectedDataPoints",
            Signal::Logs => "rejectedLogRecords",
        };
        // int64 fields are strings in OTLP/JSON; some servers write numbers.
        let rejected = match &partial[key] {
            serde_json::Value::String(text) => text.parse().unwrap_or(0),
            value => value.as_u64().unwrap_or(0),
        };
        let message = partial["errorMessage"].as_str().unwrap_or("").to_string();
        return (rejected, message);
    }
    let (rejected, message) = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
    }
    .unwrap_or_default();
    (u64::try_from(rejected).unwrap_or(0), message)
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The message of an error answer: `google.rpc.Status` in the request's encoding, else the
/// start of the body as text.
fn error_message(json: bool, body: &[u8]) -> String {
    let status = if json {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
    } else {
        RpcStatus::decode(body).ok().map(|s| s.message)
    };
    status
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    #[test]
    fn a_partial_success_is_read_from_protobuf_and_json() {
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            read(
                Signal::Traces,
                200,
                None,
                Some("application/x-protobuf"),
                &body
            ),
            Verdict::Accepted {
                rejected: 3,
                message: "too old".into()
            }
        );
        let json = br#"{"partialSuccess":{"rejectedLogRecords":"5","errorMessage":"{\"tooOldLogEventCount\":5}"}}"#;
        assert_eq!(
            read(Signal::Logs, 200, None, Some("application/json"), json),
            Verdict::Accepted {
                rejected: 5,
                message: "{\"tooOldLogEventCount\":5}".into()
            }
        );
        assert_eq!(
            read(Signal::Metrics, 200, None, None, b""),
            Verdict::Accepted {
                rejected: 0,
                message: String::new()
            }
        );
    }

    #[test]
    fn throttling_and_unavailability_are_retried_other_errors_are_not() {
        for status in [429, 502, 503, 504] {
            assert!(
                matches!(read(Signal::Traces, status, Some("7"), None, b""), Verdict::Retry { after: Some(wait), .. } if wait == Duration::from_secs(7)),
                "{status}"
            );
        }
        assert!(matches!(
            read(Signal::Traces, 503, Some("3600"), None, b""),
            Verdict::Retry { after: None, .. }
        ));
        let status = RpcStatus {
            code: 3,
            message: "bad span".into(),
        }
        .encode_to_vec();
        assert_eq!(
            read(
                Signal::Traces,
                400,
                None,
                Some("application/x-protobuf"),
                &status
            ),
            Verdict::Refused {
                error: "HTTP 400: bad span".into()
            }
        );
        assert!(matches!(
            read(Signal::Traces, 500, None, None, b"oops"),
            Verdict::Refused { .. }
        ));
    }
}
