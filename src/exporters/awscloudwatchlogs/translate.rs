//! Log records → CloudWatch Logs events, as the collector's `awscloudwatchlogs` exporter writes
//! them: the record as a JSON document (`body`, `severity_number`, `severity_text`,
//! `dropped_attributes_count`, `flags`, `trace_id`, `span_id`, `attributes`, `resource`, empty
//! ones left out), or with `raw_log` the body alone, in which an EMF document's own log group
//! and stream win.

use super::config::AwsCloudWatchLogsConfig;
use crate::exporters::awsemf::labels::Labels;
use crate::exporters::awsemf::translate::{EmfEvent, replace_placeholders};
use crate::pipeline::values::{hex, value_json, value_str};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use serde_json::{Map, Value};

/// Milliseconds since the epoch now: the time of records that carry none.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The events of a batch, in its order.
pub fn events(
    batch: &[ResourceLogs],
    config: &AwsCloudWatchLogsConfig,
    now_ms: i64,
) -> Vec<EmfEvent> {
    let mut events = Vec::new();
    for resource_logs in batch {
        let resource_attributes = resource_logs
            .resource
            .as_ref()
            .map_or(&[][..], |r| &r.attributes[..]);
        let labels = Labels::from_attributes(resource_attributes, 0);
        let group = replace_placeholders(&config.log_group_name, &labels);
        let stream = replace_placeholders(&config.log_stream_name, &labels);
        for record in resource_logs.scope_logs.iter().flat_map(|s| &s.log_records) {
            let timestamp_ms = match (record.time_unix_nano, record.observed_time_unix_nano) {
                (0, 0) => now_ms,
                (0, observed) => (observed / 1_000_000) as i64,
                (time, _) => (time / 1_000_000) as i64,
            };
            if config.raw_log {
                let body = record.body.as_ref().map(value_str).unwrap_or_default();
                let (group, stream) =
                    emf_destination(&body).unwrap_or_else(|| (group.clone(), stream.clone()));
                events.push(EmfEvent::from_message(&group, &stream, timestamp_ms, &body));
            } else {
                let message = document(record, resource_attributes).to_string();
                events.push(EmfEvent::from_message(
                    &group,
                    &stream,
                    timestamp_ms,
                    &message,
                ));
            }
        }
    }
    events
}

/// The log group and stream an EMF body names for itself: `_aws.LogGroupName` and
/// `_aws.LogStreamName` (version 1), or `log_group_name` and `log_stream_name` (version 0).
fn emf_destination(body: &str) -> Option<(String, String)> {
    if !body.trim_start().starts_with('{') {
        return None;
    }
    let document: Value = serde_json::from_str(body).ok()?;
    let pick = |object: &Value, group: &str, stream: &str| {
        let group = object.get(group)?.as_str()?.to_string();
        let stream = object.get(stream)?.as_str()?.to_string();
        (!group.is_empty() && !stream.is_empty()).then_some((group, stream))
    };
    match document.get("_aws") {
        Some(aws) => pick(aws, "LogGroupName", "LogStreamName"),
        None => pick(&document, "log_group_name", "log_stream_name"),
    }
}

/// The collector's JSON document of a record.
fn document(record: &LogRecord, resource: &[KeyValue]) -> Value {
    let mut out = Map::new();
    if let Some(body) = &record.body {
        let body = value_json(body);
        if !body.is_null() {
            out.insert("body".into(), body);
        }
    }
    if record.severity_number != 0 {
        out.insert("severity_number".into(), record.severity_number.into());
    }
    if !record.severity_text.is_empty() {
        out.insert("severity_text".into(), record.severity_text.clone().into());
    }
    if record.dropped_attributes_count != 0 {
        out.insert(
            "dropped_attributes_count".into(),
            record.dropped_attributes_count.into(),
        );
    }
    if record.flags != 0 {
        out.insert("flags".into(), record.flags.into());
    }
    if record.trace_id.iter().any(|b| *b != 0) {
        out.insert("trace_id".into(), hex(&record.trace_id).into());
    }
    if record.span_id.iter().any(|b| *b != 0) {
        out.insert("span_id".into(), hex(&record.span_id).into());
    }
    let map = |attributes: &[KeyValue]| -> Map<String, Value> {
        attributes
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), value_json(kv.value.as_ref()?))))
            .collect()
    };
    if !record.attributes.is_empty() {
        out.insert("attributes".into(), Value::Object(map(&record.attributes)));
    }
    if !resource.is_empty() {
        out.insert("resource".into(), Value::Object(map(resource)));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value as Av};
    use opentelemetry_proto::tonic::logs::v1::ScopeLogs;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn string(s: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(Av::StringValue(s.into())),
        })
    }

    fn batch(records: Vec<LogRecord>) -> Vec<ResourceLogs> {
        vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: string("checkout"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn config(raw_log: bool) -> AwsCloudWatchLogsConfig {
        let mut config: AwsCloudWatchLogsConfig =
            serde_yaml_ng::from_str("{log_group_name: '/app/{ServiceName}', log_stream_name: s}")
                .unwrap();
        config.raw_log = raw_log;
        config
    }

    #[test]
    fn a_record_becomes_the_collectors_document() {
        let record = LogRecord {
            time_unix_nano: 1_700_000_000_123_000_000,
            severity_number: 13,
            severity_text: "WARN".into(),
            body: string("order placed"),
            attributes: vec![KeyValue {
                key: "order.id".into(),
                value: Some(AnyValue {
                    value: Some(Av::IntValue(7)),
                }),
                ..Default::default()
            }],
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            ..Default::default()
        };
        let events = events(&batch(vec![record]), &config(false), 5);
        assert_eq!(&*events[0].log_group, "/app/checkout");
        assert_eq!(events[0].timestamp_ms, 1_700_000_000_123);
        let document: Value = serde_json::from_str(&events[0].message()).unwrap();
        assert_eq!(
            document,
            serde_json::json!({
                "body": "order placed", "severity_number": 13, "severity_text": "WARN",
                "trace_id": "ab".repeat(16), "span_id": "cd".repeat(8),
                "attributes": {"order.id": 7}, "resource": {"service.name": "checkout"}
            })
        );
    }

    #[test]
    fn raw_emf_bodies_go_to_the_group_they_name() {
        let v1 = r#"{"_aws":{"Timestamp":1,"LogGroupName":"/emf/own","LogStreamName":"own","CloudWatchMetrics":[]},"x":1}"#;
        let v0 = r#"{"log_group_name":"/emf/v0","log_stream_name":"zero","x":1}"#;
        let records = [v1, v0, "plain text"]
            .iter()
            .map(|body| LogRecord {
                body: string(body),
                ..Default::default()
            })
            .collect();
        let events = events(&batch(records), &config(true), 42);
        let destinations: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (&*e.log_group, &*e.log_stream))
            .collect();
        assert_eq!(
            destinations,
            [
                ("/emf/own", "own"),
                ("/emf/v0", "zero"),
                ("/app/checkout", "s")
            ]
        );
        assert_eq!(events[2].message(), "plain text");
        assert_eq!(events[2].timestamp_ms, 42, "no time: now");
    }
}
