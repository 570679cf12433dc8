use super::*;
use crate::config::Signal;
use crate::exporters::awsxray::translate::{ResourceContext, TranslateSettings, span_documents};
use crate::exporters::embedded_json;
use crate::pipeline::{EncodedPayload, Payload};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status, span};
use prost::Message;

const TRACES: &[u8] = include_bytes!("../../../benches/workload/traces.pb");

fn kv(key: &str, value: Av) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(text: &str) -> Av {
    Av::StringValue(text.into())
}

/// A span with every part the translation reads: events, links, a status, nested values,
/// negative numbers, bytes, a key without a value and an empty value.
fn rich_request() -> ExportTraceServiceRequest {
    let nested = Av::KvlistValue(KeyValueList {
        values: vec![
            kv(
                "inner",
                Av::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Av::IntValue(-7)),
                        },
                        AnyValue {
                            value: Some(Av::DoubleValue(f64::NAN)),
                        },
                        AnyValue { value: None },
                    ],
                }),
            ),
            kv("flag", Av::BoolValue(false)),
        ],
    });
    let span = Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        parent_span_id: (9..=16).collect(),
        name: "GET /orders/{id}".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_700_000_000_123_456_789,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        attributes: vec![
            kv("http.request.method", s("GET")),
            kv("http.response.status_code", Av::IntValue(503)),
            kv("url.full", s("https://shop.example/orders/7?x=1")),
            kv("db.system", s("postgresql")),
            kv("db.statement", s("select 1")),
            kv("enduser.id", s("ada")),
            kv("count", Av::IntValue(i64::MIN)),
            kv("ratio", Av::DoubleValue(-0.5)),
            kv("blob", Av::BytesValue(vec![0, 255, 7])),
            kv("nested", nested),
            kv(
                "aws.xray.annotations",
                Av::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(s("tenant")),
                    }],
                }),
            ),
            kv("tenant", s("acme")),
            KeyValue {
                key: "no value".into(),
                value: None,
                ..Default::default()
            },
            KeyValue {
                key: "empty".into(),
                value: Some(AnyValue { value: None }),
                ..Default::default()
            },
        ],
        events: vec![span::Event {
            time_unix_nano: 1_700_000_000_500_000_000,
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", s("TypeError")),
                kv("exception.message", s("x is undefined")),
                kv("aws.xray.exception.id", s("0123456789abcdef")),
                kv(
                    "exception.stacktrace",
                    s("TypeError: x is undefined\n    at handler (/app/index.js:10:5)"),
                ),
            ],
            ..Default::default()
        }],
        links: vec![span::Link {
            trace_id: (17..=32).collect(),
            span_id: (17..=24).collect(),
            attributes: vec![kv("link.kind", s("follows"))],
            ..Default::default()
        }],
        status: Some(Status {
            message: "unavailable".into(),
            code: 2,
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("orders")),
                    kv("cloud.provider", s("aws")),
                    kv("cloud.platform", s("aws_ecs")),
                    kv("telemetry.sdk.language", s("nodejs")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span.clone(), Span { kind: 3, ..span }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The views of an encoded request's entries, and of the same request decoded by prost.
fn both_views(body: &[u8], check: impl Fn(&ResourceSpansView, &ResourceSpansView)) -> bool {
    let Ok(encoded) = EncodedPayload::scan(Signal::Traces, Bytes::copy_from_slice(body)) else {
        return false;
    };
    for entry in encoded.entries() {
        let decoded = ExportTraceServiceRequest::decode(entry.bytes.as_ref()).unwrap();
        let owned = ResourceSpansView::from(&decoded.resource_spans[0]);
        if !entry.merges {
            check(&ResourceSpansView::parse_entry(&entry.bytes), &owned);
        }
    }
    true
}

fn documents(view: &ResourceSpansView) -> Vec<String> {
    let settings = TranslateSettings {
        indexed_attributes: vec!["tenant".into()],
        ..Default::default()
    };
    let resource = ResourceContext::new(view.resource, &settings);
    // Exceptions without an id get a random one: the same seed gives both views the same.
    fastrand::seed(7);
    view.spans
        .iter()
        .flat_map(|span| span_documents(span, &resource, &settings).unwrap())
        .map(|document| {
            let mut out = Vec::new();
            embedded_json::write(&mut out, &document);
            String::from_utf8(out).unwrap()
        })
        .collect()
}

#[test]
fn a_view_of_the_bytes_reads_what_prost_decodes_and_translates_the_same() {
    for body in [rich_request().encode_to_vec(), TRACES.to_vec()] {
        let mut spans = 0;
        assert!(both_views(&body, |bytes, owned| {
            assert_eq!(bytes.resource, owned.resource);
            assert_eq!(bytes.spans, owned.spans);
            assert_eq!(documents(bytes), documents(owned));
        }));
        for entry in EncodedPayload::scan(Signal::Traces, Bytes::from(body))
            .unwrap()
            .entries()
        {
            spans += ResourceSpansView::parse_entry(&entry.bytes).spans.len();
        }
        assert!(spans >= 2);
    }
    let body = rich_request().encode_to_vec();
    let encoded = EncodedPayload::scan(Signal::Traces, Bytes::from(body)).unwrap();
    let view = ResourceSpansView::parse_entry(&encoded.entries()[0].bytes);
    let docs = documents(&view);
    assert!(docs[0].contains("TypeError"), "{}", docs[0]);
    assert!(docs[0].contains("acme"), "{}", docs[0]);
    assert_eq!(view.spans[0].attributes.len(), 14);
    let values: Vec<_> = view.spans[0]
        .attributes
        .iter()
        .map(|(key, _)| key)
        .collect();
    assert!(!values.contains(&"no value") && values.contains(&"empty"));
}

/// Every single-byte change of the requests that still scans reads the same through the view
/// as through prost.
#[test]
fn changed_bytes_read_the_same_through_the_view() {
    // The workload's first resource with its first three spans.
    let mut workload = ExportTraceServiceRequest::decode(TRACES).unwrap();
    workload.resource_spans.truncate(1);
    workload.resource_spans[0].scope_spans[0].spans.truncate(3);
    for body in [rich_request().encode_to_vec(), workload.encode_to_vec()] {
        let mut changed = body.clone();
        let mut scanned = 0;
        for at in 0..body.len() {
            for value in [0x00, 0x01, 0x0a, 0x12, 0x7f, 0x80, 0xff] {
                changed[at] = value;
                scanned += usize::from(both_views(&changed, |bytes, owned| {
                    assert_eq!(
                        bytes.resource, owned.resource,
                        "byte {at} set to {value:#x}"
                    );
                    assert_eq!(bytes.spans, owned.spans, "byte {at} set to {value:#x}");
                }));
                changed[at] = body[at];
            }
        }
        assert!(scanned > body.len(), "most changes still scan");
    }
}

#[test]
fn a_singular_message_written_twice_is_read_merged() {
    // A `KeyValue` whose value is written twice: a decoder merges the two `AnyValue`s, the
    // second's string winning; the scan marks the entry so that it is read decoded.
    let mut request = rich_request();
    request.resource_spans[0].scope_spans[0].spans.truncate(1);
    let plain = request.encode_to_vec();
    assert!(
        !EncodedPayload::scan(Signal::Traces, Bytes::from(plain))
            .unwrap()
            .entries()[0]
            .merges
    );
    let twice = Status {
        message: "second".into(),
        code: 0,
    }
    .encode_to_vec();
    let mut span_bytes = request.resource_spans[0].scope_spans[0].spans[0].encode_to_vec();
    span_bytes.push(15 << 3 | 2);
    span_bytes.push(twice.len() as u8);
    span_bytes.extend(&twice);
    let decoded_span = Span::decode(span_bytes.as_slice()).unwrap();
    assert_eq!(
        decoded_span.status.as_ref().unwrap().code,
        2,
        "merged, not replaced"
    );
    request.resource_spans[0].scope_spans[0].spans.clear();
    let mut body = request.encode_to_vec();
    // Appends the span to the scope, the scope to the entry and the entry to the request by
    // rewriting them whole.
    let mut scope = request.resource_spans[0].scope_spans[0].encode_to_vec();
    scope.push(2 << 3 | 2);
    prost::encoding::encode_varint(span_bytes.len() as u64, &mut scope);
    scope.extend(&span_bytes);
    let mut entry = request.resource_spans[0].clone();
    entry.scope_spans.clear();
    let mut entry_bytes = entry.encode_to_vec();
    entry_bytes.push(2 << 3 | 2);
    prost::encoding::encode_varint(scope.len() as u64, &mut entry_bytes);
    entry_bytes.extend(&scope);
    body.clear();
    body.push(1 << 3 | 2);
    prost::encoding::encode_varint(entry_bytes.len() as u64, &mut body);
    body.extend(&entry_bytes);
    let encoded = EncodedPayload::scan(Signal::Traces, Bytes::from(body)).unwrap();
    assert!(encoded.entries()[0].merges);
    // The view a translation reads has the merged status: the second message, the first code.
    let status = read_traces(&Payload::Encoded(encoded.clone()), |resources| {
        resources[0].spans[0]
            .status
            .map(|status| (status.message.to_string(), status.code))
    });
    assert_eq!(status, Some(Some(("second".to_string(), 2))));
    let decoded = ExportTraceServiceRequest::decode(encoded.entries()[0].bytes.as_ref()).unwrap();
    // Compared encoded: the span holds a NaN, which is not equal to itself.
    assert_eq!(
        decoded.resource_spans[0].scope_spans[0].spans[0].encode_to_vec(),
        decoded_span.encode_to_vec()
    );
}
