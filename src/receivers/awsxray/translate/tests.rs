//! Datagrams in, spans out; and the round trip through the awsxray exporter.

use super::*;
use crate::exporters::awsxray::translate::{TranslateSettings, span_to_documents};
use crate::xray::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use serde_json::Value;
use serde_json::json;

const HEADER: &str = "{\"format\":\"json\",\"version\":1}\n";

fn datagram(body: &str) -> Vec<u8> {
    format!("{HEADER}{body}").into_bytes()
}

const SDK_SEGMENT: &str = r#"{
  "name": "checkout", "id": "70de5b6f19ff9a0a", "trace_id": "1-581cf771-a006649127e371903a2de979",
  "start_time": 1478293361.271, "end_time": 1478293361.449,
  "http": {"request": {"method": "GET", "url": "http://shop/cart", "client_ip": "10.0.0.1", "x_forwarded_for": true, "user_agent": "curl"},
           "response": {"status": 500, "content_length": 12}},
  "aws": {"xray": {"sdk": "X-Ray for Python", "sdk_version": "2.15.0"}, "ecs": {"container": "api", "container_id": "c-1"}},
  "user": "alice",
  "annotations": {"tenant": "acme", "items": 3, "vip": true},
  "metadata": {"debug": {"cart": {"size": 3}}},
  "cause": {"working_directory": "/app", "exceptions": [{"id": "1e4b3b6bb0c0c6d8", "type": "ValueError", "message": "boom",
            "stack": [{"path": "/app/work.py", "line": 3, "label": "work"}, {"path": "/app/main.py", "line": 10, "label": "handler"}]}]},
  "subsegments": [
    {"name": "prices", "id": "53995c3f42cd8ad8", "start_time": 1478293361.3, "end_time": 1478293361.4, "namespace": "remote",
     "http": {"request": {"method": "GET", "url": "http://prices/api"}, "response": {"status": 404}},
     "subsegments": [{"name": "parse", "id": "63995c3f42cd8ad8", "start_time": 1478293361.31, "end_time": 1478293361.32}]},
    {"name": "DynamoDB", "id": "73995c3f42cd8ad8", "start_time": 1478293361.33, "end_time": 1478293361.34, "namespace": "aws",
     "aws": {"operation": "GetItem", "table_name": "carts", "region": "us-east-1", "request_id": "r-1"}},
    {"name": "orders@db", "id": "83995c3f42cd8ad8", "start_time": 1478293361.35, "end_time": 1478293361.36, "namespace": "remote",
     "sql": {"url": "jdbc:postgresql://db:5432/orders", "database_type": "PostgreSQL", "sanitized_query": "SELECT 1", "user": "app"}}
  ]
}"#;

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Av> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

#[test]
fn a_segment_with_subsegments_becomes_spans() {
    let rs = datagram_to_resource_spans(&datagram(SDK_SEGMENT)).unwrap();
    let spans = &rs.scope_spans[0].spans;
    assert_eq!(
        spans.len(),
        5,
        "the segment and every embedded subsegment, depth first"
    );
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["checkout", "prices", "parse", "DynamoDB", "orders@db"]
    );
    let kinds: Vec<i32> = spans.iter().map(|s| s.kind).collect();
    use SpanKind::*;
    assert_eq!(
        kinds,
        [
            Server as i32,
            Client as i32,
            Internal as i32,
            Client as i32,
            Client as i32
        ]
    );
    assert!(spans.iter().all(|s| s.trace_id == spans[0].trace_id));
    assert_eq!(spans[1].parent_span_id, spans[0].span_id);
    assert_eq!(spans[2].parent_span_id, spans[1].span_id);
    assert_eq!(spans[0].start_time_unix_nano, 1_478_293_361_271_000_000);
    let server = &spans[0];
    assert_eq!(attr(server, "http.status_code"), Some(&Av::IntValue(500)));
    assert_eq!(
        attr(server, "enduser.id"),
        Some(&Av::StringValue("alice".into()))
    );
    assert_eq!(attr(server, "items"), Some(&Av::DoubleValue(3.0)));
    assert_eq!(
        attr(server, "aws.xray.metadata.debug"),
        Some(&Av::StringValue(r#"{"cart":{"size":3}}"#.into()))
    );
    assert_eq!(
        server.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    assert_eq!(server.events.len(), 1);
    assert_eq!(
        attr(&spans[3], "aws.service"),
        Some(&Av::StringValue("DynamoDB".into()))
    );
    assert_eq!(
        attr(&spans[3], "aws.table_name"),
        Some(&Av::StringValue("carts".into()))
    );
    assert_eq!(
        attr(&spans[4], "db.connection_string"),
        Some(&Av::StringValue("jdbc:postgresql://db:5432".into()))
    );
    assert_eq!(
        attr(&spans[4], "db.name"),
        Some(&Av::StringValue("orders".into()))
    );
    let resource = &rs.resource.as_ref().unwrap().attributes;
    let get = |k: &str| {
        resource
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.as_ref()?.value.clone())
    };
    assert_eq!(
        get("service.name"),
        Some(Av::StringValue("checkout".into()))
    );
    assert_eq!(get("cloud.provider"), Some(Av::StringValue("aws".into())));
    assert_eq!(
        get("telemetry.sdk.language"),
        Some(Av::StringValue("Python".into()))
    );
    assert_eq!(get("container.name"), Some(Av::StringValue("api".into())));
}

#[test]
fn round_trip_through_the_exporter_keeps_the_document() {
    let rs = datagram_to_resource_spans(&datagram(SDK_SEGMENT)).unwrap();
    let resource = &rs.resource.as_ref().unwrap().attributes;
    let docs: Vec<Value> = rs.scope_spans[0]
        .spans
        .iter()
        .flat_map(|s| span_to_documents(s, resource, &TranslateSettings::default()).unwrap())
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    let original: Value = serde_json::from_str(SDK_SEGMENT).unwrap();
    let segment = &docs[0];
    for field in ["name", "id", "trace_id", "user", "annotations"] {
        assert_eq!(segment[field], original[field], "{field}");
    }
    assert_eq!(segment["metadata"]["debug"], original["metadata"]["debug"]);
    assert_eq!(segment["http"]["request"]["method"], "GET");
    assert_eq!(segment["http"]["request"]["client_ip"], "10.0.0.1");
    assert_eq!(segment["http"]["response"]["status"], 500);
    let exception = &segment["cause"]["exceptions"][0];
    let original_exception = &original["cause"]["exceptions"][0];
    for field in ["id", "type", "message", "stack"] {
        assert_eq!(exception[field], original_exception[field], "cause.{field}");
    }
    assert!((segment["start_time"].as_f64().unwrap() - 1478293361.271).abs() < 1e-6);
    assert_eq!(segment["aws"]["xray"]["sdk"], "X-Ray for Python");
    let prices = &docs[1];
    assert_eq!(
        (
            prices["name"].as_str(),
            prices["type"].as_str(),
            prices["namespace"].as_str()
        ),
        (Some("prices"), Some("subsegment"), Some("remote"))
    );
    assert_eq!(prices["parent_id"], "70de5b6f19ff9a0a");
    let parse = &docs[2];
    assert_eq!(
        (parse["name"].as_str(), parse["parent_id"].as_str()),
        (Some("parse"), Some("53995c3f42cd8ad8"))
    );
    let dynamo = &docs[3];
    assert_eq!(
        (dynamo["name"].as_str(), dynamo["namespace"].as_str()),
        (Some("DynamoDB"), Some("aws"))
    );
    assert_eq!(dynamo["aws"]["operation"], "GetItem");
    assert_eq!(dynamo["aws"]["table_name"], "carts");
}

/// What an X-Ray SDK sets by hand reaches X-Ray as it was sent: flags without a status or an
/// exception behind them, a frame whose line is null, the working directory, and no
/// `x_forwarded_for` the document did not have.
#[test]
fn flags_null_lines_and_working_directory_round_trip() {
    let body = r#"{"name":"orders","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.5,"end_time":2.5,
      "error":true,"throttle":true,
      "http":{"request":{"method":"GET","client_ip":"203.0.113.9"}},
      "subsegments":[{"name":"charge","id":"53995c3f42cd8ad8","start_time":1.6,"end_time":1.7,"namespace":"remote","fault":true,
        "cause":{"working_directory":"/app","exceptions":[{"id":"86e9c1d734c7a049","message":"declined","type":"Error","remote":false,
          "truncated":2,"stack":[{"path":"node:internal/pay","line":null,"label":"charge"},{"path":"main.mjs","line":12,"label":"handler"}]}]}}]}"#;
    let rs = datagram_to_resource_spans(&datagram(body)).unwrap();
    let resource = &rs.resource.as_ref().unwrap().attributes;
    let docs: Vec<Value> = rs.scope_spans[0]
        .spans
        .iter()
        .flat_map(|s| span_to_documents(s, resource, &TranslateSettings::default()).unwrap())
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    let (orders, charge) = (&docs[0], &docs[1]);
    assert_eq!(
        (&orders["error"], &orders["fault"], &orders["throttle"]),
        (&json!(true), &json!(false), &json!(true))
    );
    assert_eq!(
        orders["http"],
        json!({"request": {"method": "GET", "client_ip": "203.0.113.9"}})
    );
    assert!(orders.get("metadata").is_none(), "{orders}");
    assert_eq!(
        (&charge["error"], &charge["fault"], &charge["throttle"]),
        (&json!(false), &json!(true), &json!(false))
    );
    assert_eq!(
        charge["cause"],
        json!({"working_directory": "/app", "exceptions": [{"id": "86e9c1d734c7a049", "message": "declined",
            "type": "Error", "remote": false, "truncated": 2,
            "stack": [{"path": "node:internal/pay", "line": null, "label": "charge"},
                      {"path": "main.mjs", "line": 12, "label": "handler"}]}]})
    );
    let forwarded = body.replace(
        r#""client_ip":"203.0.113.9""#,
        r#""client_ip":"203.0.113.9","x_forwarded_for":true"#,
    );
    let rs = datagram_to_resource_spans(&datagram(&forwarded)).unwrap();
    let doc = serde_json::to_value(
        &span_to_documents(
            &rs.scope_spans[0].spans[0],
            &[],
            &TranslateSettings::default(),
        )
        .unwrap()[0],
    )
    .unwrap();
    assert_eq!(doc["http"]["request"]["x_forwarded_for"], true);
}

#[test]
fn in_progress_segments_round_trip() {
    let body = r#"{"name":"s","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.5,"in_progress":true}"#;
    let rs = datagram_to_resource_spans(&datagram(body)).unwrap();
    let span = &rs.scope_spans[0].spans[0];
    let doc = serde_json::to_value(
        &span_to_documents(span, &[], &TranslateSettings::default()).unwrap()[0],
    )
    .unwrap();
    assert_eq!(doc["in_progress"], true);
    assert!(doc.get("end_time").is_none());
}

#[test]
fn bad_datagrams_are_refused_by_reason() {
    let good = r#"{"name":"s","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.5,"end_time":2}"#;
    let cases: Vec<(Vec<u8>, DatagramError)> = vec![
        (good.as_bytes().to_vec(), DatagramError::MissingHeader),
        (format!("{{\"format\":\"xml\",\"version\":1}}\n{good}").into_bytes(), DatagramError::BadHeader),
        (format!("not json\n{good}").into_bytes(), DatagramError::BadHeader),
        (datagram("{\"name\":"), DatagramError::BadJson),
        (datagram(""), DatagramError::MissingField),
        (datagram(&good.replace("\"name\":\"s\",", "")), DatagramError::MissingField),
        (datagram(&good.replace("\"trace_id\":\"1-581cf771-a006649127e371903a2de979\",", "")), DatagramError::MissingField),
        (datagram(&good.replace("1-581cf771-a006649127e371903a2de979", "1-xyz")), DatagramError::BadId),
        (datagram(&good.replace("70de5b6f19ff9a0a", "70de5b")), DatagramError::BadId),
        // Sixteen bytes, but a two-byte character across a digit pair: refused, no panic.
        (datagram(&good.replace("70de5b6f19ff9a0a", "70de5b6f19ff9\\u00e9a")), DatagramError::BadId),
        (datagram(&good.replace("70de5b6f19ff9a0a", "70de5b6f19ff9éa")), DatagramError::BadId),
        (datagram(&good.replace("a006649127e371903a2de979", "a006649127e371903a2de9é")), DatagramError::BadId),
        (datagram(&good.replace("70de5b6f19ff9a0a", "+0de5b6f19ff9a0a")), DatagramError::BadId),
        (datagram(&good.replace("\"end_time\":2", "\"end_time\":2,\"subsegments\":[{\"name\":\"c\",\"id\":\"53995c3f42cd8ad8\",\"start_time\":1.6,\"namespace\":\"galaxy\"}]")), DatagramError::UnexpectedNamespace),
        (datagram(&good.replace("\"end_time\":2", "\"end_time\":2,\"sql\":{\"url\":\"nonsense\"}")), DatagramError::BadSqlUrl),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            datagram_to_resource_spans(&bytes).unwrap_err(),
            want,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
    assert!(datagram_to_resource_spans(&datagram(good)).is_ok());
    let header_with_spaces = format!("{{\"format\": \"json\", \"version\": 1}}\n{good}");
    assert!(datagram_to_resource_spans(header_with_spaces.as_bytes()).is_ok());
}

/// Strings are borrowed from the datagram unless escaped; escaped ones must still decode, a
/// repeated annotation key keeps its last value (as a JSON object read into a map does), and
/// annotations that are neither string, number nor boolean are left out.
#[test]
fn escaped_strings_repeated_and_nested_annotations() {
    let body = r#"{"name":"caf\u00e9 \"api\"","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979",
      "start_time":1.5,"end_time":2,"user":"a\\b",
      "annotations":{"zone":"eu","tier":1,"tier":2,"t\u00e9":"x\ny","nested":{"a":[1,{"b":null}]},"list":[1,2],"none":null,"ok":false,"big":18446744073709551615}}"#;
    let rs = datagram_to_resource_spans(&datagram(body)).unwrap();
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.name, "café \"api\"");
    assert_eq!(
        attr(span, "enduser.id"),
        Some(&Av::StringValue("a\\b".into()))
    );
    assert_eq!(attr(span, "tier"), Some(&Av::DoubleValue(2.0)));
    assert_eq!(attr(span, "té"), Some(&Av::StringValue("x\ny".into())));
    assert_eq!(attr(span, "ok"), Some(&Av::BoolValue(false)));
    assert_eq!(
        attr(span, "big"),
        Some(&Av::DoubleValue(18446744073709551615.0))
    );
    for skipped in ["nested", "list", "none"] {
        assert_eq!(attr(span, skipped), None, "{skipped}");
    }
    let Some(Av::ArrayValue(keys)) = attr(span, ANNOTATIONS_ATTRIBUTE) else {
        panic!("no annotation keys");
    };
    let keys: Vec<&Av> = keys
        .values
        .iter()
        .filter_map(|v| v.value.as_ref())
        .collect();
    let want = ["big", "ok", "tier", "té", "zone"].map(|k| Av::StringValue(k.into()));
    assert_eq!(keys, want.iter().collect::<Vec<_>>());
    let service = rs
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name");
    assert_eq!(
        service.and_then(|kv| kv.value.as_ref()?.value.as_ref()),
        Some(&Av::StringValue("café \"api\"".into()))
    );
}

/// Found by `cargo fuzz run xray_datagram`: a start time past what u64 nanoseconds hold made
/// the conversion overflow (a panic in debug builds, garbage in release ones).
#[test]
fn absurd_times_saturate_instead_of_overflowing() {
    let body = r#"{"name":"s","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.7e300,"end_time":-5}"#;
    let rs = datagram_to_resource_spans(&datagram(body)).unwrap();
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.start_time_unix_nano, u64::MAX);
    assert_eq!(span.end_time_unix_nano, 0);
}
