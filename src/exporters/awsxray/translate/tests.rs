//! Table-driven cases: a span (and resource) in, the expected document JSON out.

use super::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, any_value::Value as Av};
use opentelemetry_proto::tonic::trace::v1::{Status, span::Event};
use serde_json::json;

const TRACE: [u8; 16] = [
    0x5f, 0x84, 0xc7, 0xa1, 0xe7, 0x1b, 0x2a, 0x06, 0x31, 0x50, 0x52, 0x3e, 0xde, 0x00, 0x01, 0x99,
];

fn kv(key: &str, value: Av) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
fn s(key: &str, value: &str) -> KeyValue {
    kv(key, Av::StringValue(value.into()))
}
fn i(key: &str, value: i64) -> KeyValue {
    kv(key, Av::IntValue(value))
}

fn span(kind: SpanKind, parent: bool, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, 0x2a],
        parent_span_id: if parent {
            vec![0, 0, 0, 0, 0, 0, 0, 0x01]
        } else {
            vec![]
        },
        name: "GET /items/{id}".into(),
        kind: kind as i32,
        start_time_unix_nano: 1_700_000_000_500_000_000,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        attributes,
        ..Default::default()
    }
}

fn one(span: &Span, resource: &[KeyValue], settings: &TranslateSettings) -> Value {
    let docs = span_to_documents(span, resource, settings).unwrap();
    assert_eq!(docs.len(), 1);
    serde_json::to_value(&docs[0]).unwrap()
}

/// Exception ids are random; replace them so documents compare.
fn without_exception_ids(mut doc: Value) -> Value {
    if let Some(list) = doc
        .pointer_mut("/cause/exceptions")
        .and_then(Value::as_array_mut)
    {
        for e in list {
            assert_eq!(e["id"].as_str().unwrap().len(), 16);
            e["id"] = json!("<id>");
        }
    }
    doc
}

#[test]
fn trace_ids_keep_their_bytes() {
    assert_eq!(
        xray_trace_id(&TRACE).unwrap(),
        "1-5f84c7a1-e71b2a063150523ede000199"
    );
    assert_eq!(xray_trace_id(&[1; 8]), Err(TranslateError::TraceId(8)));
}

#[test]
fn server_span_becomes_a_segment() {
    let doc = one(
        &span(
            SpanKind::Server,
            false,
            vec![
                s("http.method", "GET"),
                i("http.status_code", 200),
                s("http.url", "http://api/items/1"),
            ],
        ),
        &[s("service.name", "vmx-api")],
        &TranslateSettings::default(),
    );
    assert_eq!(
        doc,
        json!({
            "name": "vmx-api",
            "id": "000000000000002a",
            "start_time": 1_700_000_000.5,
            "trace_id": "1-5f84c7a1-e71b2a063150523ede000199",
            "end_time": 1_700_000_001.0,
            "error": false, "fault": false, "throttle": false,
            "http": {"request": {"method": "GET", "url": "http://api/items/1"}, "response": {"status": 200}},
            "aws": {"xray": {"auto_instrumentation": false}},
            "metadata": {"default": {"otel.resource.service.name": "vmx-api"}}
        })
    );
}

/// (kind, has parent, extra attributes, type, namespace, name)
type KindCase = (
    SpanKind,
    bool,
    Vec<KeyValue>,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

#[test]
fn kinds_and_parents_decide_type_and_namespace() {
    // (kind, has parent, extra attributes, type, namespace, name)
    let cases: Vec<KindCase> = vec![
        (SpanKind::Server, true, vec![], None, None, "svc"),
        (
            SpanKind::Consumer,
            true,
            vec![],
            None,
            None,
            "GET /items/id",
        ),
        (
            SpanKind::Internal,
            true,
            vec![],
            Some("subsegment"),
            None,
            "GET /items/id",
        ),
        (
            SpanKind::Internal,
            false,
            vec![],
            None,
            None,
            "GET /items/id",
        ),
        (
            SpanKind::Client,
            true,
            vec![],
            Some("subsegment"),
            Some("remote"),
            "GET /items/id",
        ),
        (
            SpanKind::Client,
            true,
            vec![s("peer.service", "billing")],
            Some("subsegment"),
            Some("remote"),
            "billing",
        ),
        (
            SpanKind::Client,
            true,
            vec![s("rpc.system", "aws-api"), s("rpc.service", "DynamoDB")],
            Some("subsegment"),
            Some("aws"),
            "DynamoDB",
        ),
        (
            SpanKind::Client,
            true,
            vec![s("aws.service", "S3")],
            Some("subsegment"),
            Some("aws"),
            "S3",
        ),
        (
            SpanKind::Producer,
            true,
            vec![
                s("aws.remote.service", "AWS::SQS"),
                s("rpc.system", "aws-api"),
            ],
            Some("subsegment"),
            Some("aws"),
            "SQS",
        ),
        (
            SpanKind::Producer,
            true,
            vec![s("aws.remote.service", "queue")],
            Some("subsegment"),
            Some("remote"),
            "queue",
        ),
        (
            SpanKind::Client,
            true,
            vec![
                s("db.name", "orders"),
                s(
                    "db.connection_string",
                    "jdbc:postgresql://db.example.com:5432",
                ),
            ],
            Some("subsegment"),
            Some("remote"),
            "orders@db.example.com",
        ),
        (
            SpanKind::Client,
            true,
            vec![s("http.host", "api.example.com")],
            Some("subsegment"),
            Some("remote"),
            "api.example.com",
        ),
    ];
    for (kind, parent, attributes, want_type, want_namespace, want_name) in cases {
        let doc = one(
            &span(kind, parent, attributes.clone()),
            &[s("service.name", "svc")],
            &TranslateSettings::default(),
        );
        assert_eq!(
            doc.get("type").and_then(Value::as_str),
            want_type,
            "{kind:?} {attributes:?}"
        );
        assert_eq!(
            doc.get("namespace").and_then(Value::as_str),
            want_namespace,
            "{kind:?} {attributes:?}"
        );
        assert_eq!(doc["name"], want_name, "{kind:?} {attributes:?}");
        assert_eq!(doc.get("parent_id").is_some(), parent);
    }
}

#[test]
fn segment_names_are_sanitised() {
    assert_eq!(
        fix_segment_name("GET /a?b=c*(d)"),
        "GET /a?b=cd".replace('?', "")
    );
    assert_eq!(fix_segment_name("***"), "span");
    assert_eq!(fix_segment_name(&"é".repeat(150)).len(), 200);
    assert_eq!(fix_annotation_key("http.route-name/x"), "http.route_name_x");
}

#[test]
fn http_status_sets_error_fault_throttle() {
    // (status code attribute, span status error, error, fault, throttle)
    let cases = [
        (Some(200), false, false, false, false),
        (Some(404), false, true, false, false),
        (Some(429), false, true, false, true),
        (Some(503), false, false, true, false),
        (None, true, false, true, false),
        (Some(302), true, false, true, false),
    ];
    for (code, status_error, error, fault, throttle) in cases {
        let mut sp = span(
            SpanKind::Server,
            false,
            code.map(|c| vec![i("http.response.status_code", c)])
                .unwrap_or_default(),
        );
        if status_error {
            sp.status = Some(Status {
                code: StatusCode::Error as i32,
                message: "boom".into(),
            });
        }
        let doc = one(&sp, &[], &TranslateSettings::default());
        assert_eq!(
            (
                doc["error"].as_bool(),
                doc["fault"].as_bool(),
                doc["throttle"].as_bool()
            ),
            (Some(error), Some(fault), Some(throttle)),
            "{code:?}"
        );
    }
}

#[test]
fn new_semantic_convention_http_keys_build_the_url() {
    let doc = one(
        &span(
            SpanKind::Client,
            true,
            vec![
                s("http.request.method", "POST"),
                s("url.scheme", "https"),
                s("server.address", "api.example.com"),
                s("url.path", "/v1/items"),
                s("url.query", "page=2"),
                s("user_agent.original", "curl/8"),
                i("http.response.status_code", 201),
            ],
        ),
        &[],
        &TranslateSettings::default(),
    );
    assert_eq!(
        doc["http"],
        json!({"request": {"method": "POST", "url": "https://api.example.com/v1/items?page=2", "user_agent": "curl/8"}, "response": {"status": 201}})
    );
    let doc = one(
        &span(
            SpanKind::Server,
            false,
            vec![
                s("http.method", "GET"),
                s("http.scheme", "http"),
                s("net.host.name", "h"),
                i("net.host.port", 8080),
                s("http.target", "/x"),
                s("http.client_ip", "10.0.0.1"),
            ],
        ),
        &[],
        &TranslateSettings::default(),
    );
    assert_eq!(
        doc["http"]["request"],
        json!({"method": "GET", "url": "http://h:8080/x", "client_ip": "10.0.0.1", "x_forwarded_for": true})
    );
}

#[test]
fn exception_events_become_the_cause_with_python_frames() {
    let mut sp = span(SpanKind::Server, false, vec![]);
    sp.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "ValueError: bad".into(),
    });
    sp.events.push(Event {
        name: "exception".into(),
        attributes: vec![
            s("exception.type", "ValueError"),
            s("exception.message", "bad"),
            s("exception.stacktrace", "Traceback (most recent call last):\n  File \"/app/main.py\", line 10, in handler\n    work()\n  File \"/app/work.py\", line 3, in work\n    raise ValueError(\"bad\")\nValueError: bad\n"),
        ],
        ..Default::default()
    });
    let doc = without_exception_ids(one(
        &sp,
        &[s("telemetry.sdk.language", "python")],
        &TranslateSettings::default(),
    ));
    assert_eq!(
        doc["cause"],
        json!({"exceptions": [{"id": "<id>", "message": "bad", "type": "ValueError", "stack": [
            {"path": "/app/work.py", "line": 3, "label": "work"},
            {"path": "/app/main.py", "line": 10, "label": "handler"}
        ]}]})
    );
    assert_eq!(doc["fault"], true);
}

#[test]
fn status_message_alone_becomes_one_exception() {
    let mut sp = span(SpanKind::Client, true, vec![]);
    sp.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "timeout".into(),
    });
    let doc = without_exception_ids(one(&sp, &[], &TranslateSettings::default()));
    assert_eq!(
        doc["cause"],
        json!({"exceptions": [{"id": "<id>", "message": "timeout"}]})
    );
}

#[test]
fn java_frames() {
    let frames = parse_stacktrace(
        "java.lang.IllegalStateException: x\n\tat com.a.B.run(B.java:42)\n\tat com.a.Main.main(Main.java:7)\n",
        "java",
    );
    assert_eq!(frames.len(), 2);
    assert_eq!(
        frames[0],
        StackFrame {
            path: Some("B.java".into()),
            line: Some(42),
            label: Some("com.a.B.run".into())
        }
    );
}

/// The stack the OpenTelemetry JS SDK records (`exception.stacktrace` is V8's `error.stack`).
#[test]
fn node_js_frames() {
    let stack = "Error: card declined\n    at charge (/app/src/pay.js:42:11)\n    at async Promise.all (index 0)\n    at Object.<anonymous> (file:///app/src/main.mjs:7:3)\n    at /app/src/anon.js:3:9\n    at Module._compile (node:internal/modules/cjs/loader:1364:14)\n    at new Promise (<anonymous>)\n    at JSON.parse (native)\n";
    let frame = |path: &str, line: Option<i64>, label: &str| StackFrame {
        path: non_empty(path),
        line,
        label: non_empty(label),
    };
    let want = vec![
        frame("/app/src/pay.js", Some(42), "charge"),
        frame("index 0", None, "async Promise.all"),
        frame("file:///app/src/main.mjs", Some(7), "Object.<anonymous>"),
        frame("/app/src/anon.js", Some(3), ""),
        frame(
            "node:internal/modules/cjs/loader",
            Some(1364),
            "Module._compile",
        ),
        frame("<anonymous>", None, "new Promise"),
        frame("native", None, "JSON.parse"),
    ];
    for language in ["nodejs", "javascript", "webjs"] {
        assert_eq!(parse_stacktrace(stack, language), want, "{language}");
    }
    // Through a span of a Node.js service: the exception's frames reach the document.
    let mut sp = span(SpanKind::Server, false, vec![]);
    sp.events.push(Event {
        name: "exception".into(),
        attributes: vec![
            s("exception.type", "Error"),
            s("exception.message", "card declined"),
            s("exception.stacktrace", stack),
        ],
        ..Default::default()
    });
    let doc = one(
        &sp,
        &[s("telemetry.sdk.language", "nodejs")],
        &TranslateSettings::default(),
    );
    assert_eq!(
        doc["cause"]["exceptions"][0]["stack"][0],
        json!({"path": "/app/src/pay.js", "line": 42, "label": "charge"})
    );
}

#[test]
fn a_frame_without_a_number_keeps_its_whole_path() {
    let frames = parse_stacktrace(
        "E: x\n\tat handler(node:internal/process)\n\tat main(app.py: 12)\n",
        "python",
    );
    assert_eq!(
        frames,
        vec![
            StackFrame {
                path: Some("node:internal/process".into()),
                line: None,
                label: Some("handler".into())
            },
            StackFrame {
                path: Some("app.py".into()),
                line: Some(12),
                label: Some("main".into())
            }
        ]
    );
}

#[test]
fn annotations_metadata_and_user() {
    let settings = TranslateSettings {
        indexed_attributes: vec!["tenant".into()],
        ..Default::default()
    };
    let doc = one(
        &span(
            SpanKind::Server,
            false,
            vec![
                s("tenant", "acme"),
                i("region.code", 7),
                s("enduser.id", "u-1"),
                kv(
                    ANNOTATIONS_ATTRIBUTE,
                    Av::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Av::StringValue("region.code".into())),
                        }],
                    }),
                ),
                s("aws.xray.metadata.debug", r#"{"sql":{"rows":3}}"#),
                s("aws.xray.metadata.default", r#"{"k":"v"}"#),
                s("plain", "x"),
            ],
        ),
        &[],
        &settings,
    );
    assert_eq!(doc["user"], "u-1");
    assert_eq!(
        doc["annotations"],
        json!({"tenant": "acme", "region.code": 7})
    );
    assert_eq!(
        doc["metadata"],
        json!({"debug": {"sql": {"rows": 3}}, "default": {"k": "v", "plain": "x"}})
    );

    let all = TranslateSettings {
        index_all_attributes: true,
        ..Default::default()
    };
    let doc = one(
        &span(
            SpanKind::Server,
            false,
            vec![
                s("a-b", "1"),
                kv("list", Av::ArrayValue(ArrayValue::default())),
            ],
        ),
        &[s("service.name", "svc")],
        &all,
    );
    assert_eq!(
        doc["annotations"],
        json!({"a_b": "1", "otel.resource.service.name": "svc"})
    );
    assert!(doc.get("metadata").is_none());
}

#[test]
fn subsegments_do_not_carry_the_resource() {
    let doc = one(
        &span(SpanKind::Internal, true, vec![]),
        &[s("service.name", "svc")],
        &TranslateSettings::default(),
    );
    assert!(doc.get("metadata").is_none());
}

#[test]
fn sql_block_for_sql_databases_only() {
    let attrs = vec![
        s("db.system", "postgresql"),
        s("db.name", "orders"),
        s("db.statement", "SELECT 1"),
        s("db.user", "app"),
    ];
    let doc = one(
        &span(SpanKind::Client, true, attrs),
        &[],
        &TranslateSettings::default(),
    );
    assert_eq!(
        doc["sql"],
        json!({"connection_string": "localhost/orders", "url": "GET /items/{id}", "sanitized_query": "SELECT 1", "database_type": "postgresql", "user": "app"})
    );
    let doc = one(
        &span(SpanKind::Client, true, vec![s("db.system", "redis")]),
        &[],
        &TranslateSettings::default(),
    );
    assert!(doc.get("sql").is_none());
}

#[test]
fn ecs_fargate_resource_gives_origin_and_aws_block() {
    let resource = vec![
        s("cloud.provider", "aws"),
        s("cloud.platform", "aws_ecs"),
        s("aws.ecs.launchtype", "fargate"),
        s("cloud.account.id", "123456789012"),
        s("cloud.availability_zone", "us-east-1a"),
        s(
            "aws.ecs.task.arn",
            "arn:aws:ecs:us-east-1:123456789012:task/c/abc",
        ),
        s(
            "aws.ecs.cluster.arn",
            "arn:aws:ecs:us-east-1:123456789012:cluster/c",
        ),
        s("aws.ecs.task.family", "vmx-api"),
        s("container.name", "api"),
        s("container.id", "abc-1"),
        s("aws.log.group.names", "/ecs/api&/ecs/otel"),
        s("telemetry.sdk.name", "opentelemetry"),
        s("telemetry.sdk.language", "python"),
        s("telemetry.sdk.version", "1.45.2"),
        s("service.version", "2.1.0"),
    ];
    let doc = one(
        &span(SpanKind::Server, false, vec![]),
        &resource,
        &TranslateSettings::default(),
    );
    assert_eq!(doc["origin"], "AWS::ECS::Fargate");
    assert_eq!(doc["service"], json!({"version": "2.1.0"}));
    assert_eq!(
        doc["aws"],
        json!({
            "account_id": "123456789012",
            "ecs": {"container": "api", "container_id": "abc-1", "task_arn": "arn:aws:ecs:us-east-1:123456789012:task/c/abc", "task_family": "vmx-api", "cluster_arn": "arn:aws:ecs:us-east-1:123456789012:cluster/c", "availability_zone": "us-east-1a", "launch_type": "fargate"},
            "xray": {"sdk_version": "1.45.2", "sdk": "opentelemetry for python", "auto_instrumentation": false},
            "cloudwatch_logs": [{"log_group": "/ecs/api"}, {"log_group": "/ecs/otel"}]
        })
    );
    let gcp = one(
        &span(SpanKind::Server, false, vec![]),
        &[s("cloud.provider", "gcp")],
        &TranslateSettings::default(),
    );
    assert!(gcp.get("aws").is_none() && gcp.get("origin").is_none());
}

#[test]
fn config_log_groups_fill_in_and_arns_win() {
    let settings = TranslateSettings {
        log_group_names: vec!["/cfg".into()],
        ..Default::default()
    };
    let doc = one(&span(SpanKind::Server, false, vec![]), &[], &settings);
    assert_eq!(
        doc["aws"]["cloudwatch_logs"],
        json!([{"log_group": "/cfg"}])
    );
    let doc = one(
        &span(SpanKind::Server, false, vec![]),
        &[s(
            "aws.log.group.arns",
            "arn:aws:logs:us-east-1:1:log-group:/ecs/api:*",
        )],
        &settings,
    );
    assert_eq!(
        doc["aws"]["cloudwatch_logs"],
        json!([{"log_group": "/ecs/api", "arn": "arn:aws:logs:us-east-1:1:log-group:/ecs/api:*"}])
    );
}

#[test]
fn in_progress_segments_have_no_end_time() {
    let doc = one(
        &span(
            SpanKind::Server,
            false,
            vec![kv(IN_PROGRESS_ATTRIBUTE, Av::BoolValue(true))],
        ),
        &[],
        &TranslateSettings::default(),
    );
    assert_eq!(doc["in_progress"], true);
    assert!(doc.get("end_time").is_none());
    assert!(doc.get("metadata").is_none(), "the marker is not metadata");
}

#[test]
fn local_root_client_span_splits_into_service_segment_and_dependency() {
    let sp = span(
        SpanKind::Client,
        true,
        vec![
            s("aws.span.kind", "LOCAL_ROOT"),
            s("aws.local.service", "checkout"),
            s("aws.remote.service", "payments"),
            s("http.method", "POST"),
            s("aws.request_id", "r-1"),
        ],
    );
    let docs = span_to_documents(&sp, &[], &TranslateSettings::default()).unwrap();
    assert_eq!(docs.len(), 2);
    let (dependency, service) = (&docs[0], &docs[1]);
    assert_eq!(dependency["name"], "payments");
    assert_eq!(dependency["type"], "subsegment");
    assert_eq!(dependency["namespace"], "remote");
    assert_eq!(dependency["id"], "000000000000002a");
    assert_eq!(dependency["parent_id"], service["id"]);
    assert_eq!(service["name"], "checkout");
    for absent in ["type", "http", "namespace"] {
        assert!(service.get(absent).is_none(), "{absent}");
    }
    assert!(service["aws"].get("request_id").is_none());
}

#[test]
fn bad_ids_are_refused() {
    let mut sp = span(SpanKind::Server, false, vec![]);
    sp.span_id = vec![1, 2];
    assert_eq!(
        span_to_documents(&sp, &[], &TranslateSettings::default()),
        Err(TranslateError::SpanId(2))
    );
}

/// Unsorted attributes with repeated keys: sorted, each key once, its last value kept (as a
/// map built from the list would).
#[test]
fn repeated_attribute_keys_keep_the_last_value() {
    let kvs: Vec<KeyValue> = [("b", 1), ("a", 1), ("b", 2), ("c", 1), ("a", 3), ("a", 4)]
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.to_string(),
            value: Some(AnyValue {
                value: Some(Av::IntValue(*v)),
            }),
            ..Default::default()
        })
        .collect();
    let attrs = attributes(&kvs);
    let seen: Vec<(&str, i64)> = attrs.iter().map(|(k, v)| (k, int_of(v).unwrap())).collect();
    assert_eq!(seen, vec![("a", 4), ("b", 2), ("c", 1)]);
    for (key, want) in [("a", 4), ("b", 2), ("c", 1)] {
        assert_eq!(attrs.get(key).and_then(int_of), Some(want));
    }
}

/// Metadata written from the attribute itself is what `value_json` makes of it, for every kind
/// of value, in the exporter's escaped encoding as in plain JSON.
#[test]
fn metadata_from_an_attribute_is_written_as_its_json_value() {
    use crate::exporters::embedded_json;
    use opentelemetry_proto::tonic::common::v1::KeyValueList;
    let values = [
        Av::StringValue("a \"quoted\"\n value".into()),
        Av::StringValue(String::new()),
        Av::IntValue(i64::MIN),
        Av::BoolValue(false),
        Av::DoubleValue(3.0),
        Av::DoubleValue(-0.0),
        Av::DoubleValue(2.5),
        Av::DoubleValue(1e20),
        Av::DoubleValue(-1e15),
        Av::DoubleValue(f64::NAN),
        Av::DoubleValue(f64::INFINITY),
        Av::BytesValue(vec![0xab, 0x01]),
        Av::ArrayValue(ArrayValue {
            values: vec![AnyValue {
                value: Some(Av::DoubleValue(4.0)),
            }],
        }),
        Av::KvlistValue(KeyValueList {
            values: vec![s("k", "v"), i("n", 1)],
        }),
    ];
    for value in values
        .map(|v| AnyValue { value: Some(v) })
        .iter()
        .chain([&AnyValue::default()])
    {
        let borrowed = MetadataValue::Attribute(value.into());
        let made = value_json(value);
        assert_eq!(serde_json::to_value(&borrowed).unwrap(), made, "{value:?}");
        let (mut from_attribute, mut from_json) = (Vec::new(), Vec::new());
        embedded_json::write(&mut from_attribute, &borrowed);
        embedded_json::write(&mut from_json, &made);
        assert_eq!(from_attribute, from_json, "{value:?}");
    }
}
