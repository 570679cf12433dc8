//! A `cause` exception into the span event the exporter writes back.

use super::attributes::{json_attribute, string};
use crate::xray::*;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use serde_json::Value;

pub(super) fn exception_event(exception: &Value, time: u64) -> Event {
    let field = |key: &str| exception.get(key).and_then(Value::as_str).unwrap_or("");
    let mut attributes = vec![
        string(EXCEPTION_ID_ATTRIBUTE, field("id")),
        string("exception.message", field("message")),
        string("exception.type", field("type")),
    ];
    for (field, key) in [
        ("remote", EXCEPTION_REMOTE_ATTRIBUTE),
        ("truncated", EXCEPTION_TRUNCATED_ATTRIBUTE),
        ("skipped", EXCEPTION_SKIPPED_ATTRIBUTE),
    ] {
        if let Some(attribute) = exception.get(field).and_then(|v| json_attribute(key, v)) {
            attributes.push(attribute);
        }
    }
    if let Some(cause) = exception.get("cause").and_then(Value::as_str) {
        attributes.push(string(EXCEPTION_CAUSE_ATTRIBUTE, cause));
    }
    let mut stacktrace = format!("{}: {}", field("type"), field("message"));
    for frame in exception
        .get("stack")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let label = frame.get("label").and_then(Value::as_str).unwrap_or("");
        let path = frame.get("path").and_then(Value::as_str).unwrap_or("");
        // A frame without a line (`"line": null`) is written without one, so it stays null.
        match frame.get("line").and_then(Value::as_i64) {
            Some(line) => stacktrace.push_str(&format!("\n\tat {label}({path}: {line})")),
            None => stacktrace.push_str(&format!("\n\tat {label}({path})")),
        }
    }
    attributes.push(string("exception.stacktrace", &stacktrace));
    Event {
        time_unix_nano: time,
        name: "exception".into(),
        attributes,
        dropped_attributes_count: 0,
    }
}
