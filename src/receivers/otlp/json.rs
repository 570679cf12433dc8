//! OTLP/JSON decoding. The `opentelemetry-proto` serde derives read camelCase names, numeric
//! enums and hex ids; the OTLP JSON mapping also allows snake_case names and enum *names*, and
//! ids must have their exact lengths. This pass normalises a parsed document to what the derives
//! read, and checks ids, before handing it to them.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes an OTLP/JSON export request, or says what is wrong with it.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut document: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    if !document.is_object() {
        return Err("invalid OTLP/JSON: the request must be a JSON object".into());
    }
    normalize(&mut document, "")?;
    serde_json::from_value(document).map_err(|e| format!("invalid OTLP/JSON: {e}"))
}

/// `resource_spans` → `resourceSpans`.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Enum names of the OTLP JSON mapping, by (parent field, field): `None` parent means any.
fn enum_value(parent: &str, field: &str, name: &str) -> Option<i64> {
    let table: &[(&str, i64)] = match (parent, field) {
        (_, "kind") => &[
            ("SPAN_KIND_UNSPECIFIED", 0),
            ("SPAN_KIND_INTERNAL", 1),
            ("SPAN_KIND_SERVER", 2),
            ("SPAN_KIND_CLIENT", 3),
            ("SPAN_KIND_PRODUCER", 4),
            ("SPAN_KIND_CONSUMER", 5),
        ],
        ("status", "code") => &[
            ("STATUS_CODE_UNSET", 0),
            ("STATUS_CODE_OK", 1),
            ("STATUS_CODE_ERROR", 2),
        ],
        (_, "aggregationTemporality") => &[
            ("AGGREGATION_TEMPORALITY_UNSPECIFIED", 0),
            ("AGGREGATION_TEMPORALITY_DELTA", 1),
            ("AGGREGATION_TEMPORALITY_CUMULATIVE", 2),
        ],
        (_, "severityNumber") => {
            return name
                .strip_prefix("SEVERITY_NUMBER_")
                .and_then(severity_number);
        }
        _ => return None,
    };
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn severity_number(suffix: &str) -> Option<i64> {
    if suffix == "UNSPECIFIED" {
        return Some(0);
    }
    let levels = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let (level, step) = match suffix.find(|c: char| c.is_ascii_digit()) {
        Some(i) => (&suffix[..i], suffix[i..].parse::<i64>().ok()?),
        None => (suffix, 1),
    };
    let base = levels.iter().position(|l| *l == level)? as i64;
    (1..=4).contains(&step).then_some(base * 4 + step)
}

/// Bytes an id field must decode to (OTLP/JSON writes them as hex).
fn id_length(field: &str) -> Option<usize> {
    match field {
        "traceId" => Some(16),
        "spanId" | "parentSpanId" => Some(8),
        _ => None,
    }
}

fn normalize(value: &mut Value, parent: &str) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut child) in entries {
                let key = if key.contains('_') {
                    camel_case(&key)
                } else {
                    key
                };
                if let Value::String(text) = &child {
                    if let Some(number) = enum_value(parent, &key, text) {
                        child = Value::from(number);
                    } else if let Some(bytes) = id_length(&key) {
                        check_hex_id(&key, text, bytes)?;
                    }
                }
                normalize(&mut child, &key)?;
                map.insert(key, child);
            }
        }
        Value::Array(items) => {
            for item in items {
                normalize(item, parent)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_hex_id(field: &str, text: &str, bytes: usize) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    if text.len() != bytes * 2 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "invalid OTLP/JSON: {field} must be {} hex characters, got {text:?}",
            bytes * 2
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};

    #[test]
    fn reads_camel_and_snake_case_with_enum_names() {
        for body in [
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1544712660000000000","status":{"code":"STATUS_CODE_ERROR"},"attributes":[{"key":"k","value":{"intValue":"7"}}]}]}]}]}"#,
            r#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","name":"a","kind":2,"start_time_unix_nano":1544712660000000000,"status":{"code":2},"attributes":[{"key":"k","value":{"int_value":7}}]}]}]}]}"#,
        ] {
            let request: ExportTraceServiceRequest = decode(body.as_bytes()).unwrap();
            let span = &request.resource_spans[0].scope_spans[0].spans[0];
            assert_eq!(span.kind, 2);
            assert_eq!(span.status.as_ref().unwrap().code, 2);
            assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
            assert_eq!(span.trace_id.len(), 16);
            assert_eq!(
                span.span_id,
                vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
            );
            assert_eq!(
                span.attributes[0].value.as_ref().unwrap().value,
                Some(any_value::Value::IntValue(7))
            );
        }
    }

    #[test]
    fn reads_metrics_and_logs() {
        let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"c","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","isMonotonic":true,"dataPoints":[{"asInt":"5","timeUnixNano":"1"}]}}]}]}]}"#;
        let request: ExportMetricsServiceRequest = decode(body.as_bytes()).unwrap();
        let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
        let Some(Data::Sum(sum)) = &metric.data else {
            panic!("{metric:?}")
        };
        assert_eq!(sum.aggregation_temporality, 2);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(5))
        );

        let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_WARN2","body":{"stringValue":"x"}}]}]}]}"#;
        let request: ExportLogsServiceRequest = decode(body.as_bytes()).unwrap();
        assert_eq!(
            request.resource_logs[0].scope_logs[0].log_records[0].severity_number,
            14
        );
    }

    #[test]
    fn refuses_bad_documents_with_a_reason() {
        let cases = [
            ("{", "invalid JSON"),
            ("[]", "must be a JSON object"),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc"}]}]}]}"#,
                "traceId must be 32 hex",
            ),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"zzzzzzzzzzzzzzzz"}]}]}]}"#,
                "spanId must be 16 hex",
            ),
            (r#"{"resourceSpans":"nope"}"#, "invalid OTLP/JSON"),
        ];
        for (body, want) in cases {
            let err = decode::<ExportTraceServiceRequest>(body.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
    }
}
