//! X-Ray daemon datagrams → OTLP spans, following the collector's awsxray receiver
//! (`receiver/awsxrayreceiver/internal/translator`): the document and its embedded subsegments
//! are flattened depth-first into one ResourceSpans, keeping what the awsxray exporter needs to
//! write the same documents back (annotation keys, metadata namespaces, in-progress).

use crate::xray::*;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, any_value::Value as Av,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event, span::SpanKind, status::StatusCode,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Why a datagram was dropped; the label of the drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    #[error("no newline between header and segment")]
    MissingHeader,
    #[error("header is not {{\"format\":\"json\",\"version\":1}}")]
    BadHeader,
    #[error("segment is not valid JSON")]
    BadJson,
    #[error("segment is missing a required field")]
    MissingField,
    #[error("malformed trace or segment id")]
    BadId,
    #[error("unexpected namespace")]
    UnexpectedNamespace,
    #[error("unparseable sql url")]
    BadSqlUrl,
}

impl DatagramError {
    /// Label value for the self-metric.
    pub fn reason(self) -> &'static str {
        match self {
            DatagramError::MissingHeader => "missing_header",
            DatagramError::BadHeader => "bad_header",
            DatagramError::BadJson => "bad_json",
            DatagramError::MissingField => "missing_field",
            DatagramError::BadId => "bad_id",
            DatagramError::UnexpectedNamespace => "unexpected_namespace",
            DatagramError::BadSqlUrl => "bad_sql_url",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Header {
    format: String,
    version: i64,
}

/// The fields of a segment document the translation reads; the rest is ignored. Strings
/// borrow from the datagram where they hold no escapes: a segment is parsed, turned into a
/// span and dropped on the per-datagram path, so owned copies were allocations for nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SegmentDoc<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    trace_id: Option<Text<'a>>,
    start_time: Option<f64>,
    end_time: Option<f64>,
    in_progress: Option<bool>,
    #[serde(borrow)]
    parent_id: Option<Text<'a>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    namespace: Option<Text<'a>>,
    #[serde(borrow)]
    user: Option<Text<'a>>,
    #[serde(borrow)]
    resource_arn: Option<Text<'a>>,
    traced: Option<bool>,
    error: Option<bool>,
    fault: Option<bool>,
    throttle: Option<bool>,
    http: Option<HttpDoc>,
    aws: Option<Map<String, Value>>,
    sql: Option<SqlDoc>,
    service: Option<ServiceDoc>,
    cause: Option<Value>,
    #[serde(borrow)]
    annotations: Option<Annotations<'a>>,
    metadata: Option<Map<String, Value>>,
    #[serde(borrow)]
    subsegments: Option<Vec<SegmentDoc<'a>>>,
}

/// A JSON string, borrowed from the datagram unless it had escapes. (`Option<Cow<str>>` with
/// `#[serde(borrow)]` still copies; a visitor of our own does not.)
#[derive(Debug, Clone)]
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// An annotation's value: X-Ray keeps strings, numbers and booleans; anything else is skipped.
#[derive(Debug)]
enum AnnotationValue<'a> {
    Number(f64),
    Text(Text<'a>),
    Bool(bool),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for AnnotationValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> serde::de::Visitor<'de> for ValueVisitor {
            type Value = AnnotationValue<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an annotation value")
            }
            fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Bool(value))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Number(value as f64))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Number(value as f64))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Number(value))
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Text(Text(Cow::Borrowed(text))))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Text(Text(Cow::Owned(text.to_owned()))))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Text(Text(Cow::Owned(text))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Other)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(AnnotationValue::Other)
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                deserializer.deserialize_any(self)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(AnnotationValue::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(AnnotationValue::Other)
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Annotations by key, sorted, the last of duplicate keys winning: what a JSON object read
/// into a map gives, without a node and two strings per entry.
#[derive(Debug, Default)]
struct Annotations<'a>(Vec<(Text<'a>, AnnotationValue<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> serde::de::Visitor<'de> for MapVisitor {
            type Value = Annotations<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of annotations")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(Text<'de>, AnnotationValue<'de>)> = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                sort_keeping_last(&mut entries, |entry| &entry.0);
                Ok(Annotations(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HttpDoc {
    request: Option<HttpRequestDoc>,
    response: Option<HttpResponseDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HttpRequestDoc {
    method: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    url: Option<String>,
    x_forwarded_for: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HttpResponseDoc {
    status: Option<i64>,
    content_length: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SqlDoc {
    url: Option<String>,
    database_type: Option<String>,
    sanitized_query: Option<String>,
    user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ServiceDoc {
    version: Option<String>,
}

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

/// `1-5f84c7a1-e71b2a063150523ede000199` → 16 bytes.
pub fn parse_trace_id(text: &str) -> Result<Vec<u8>, DatagramError> {
    if text.len() < 35 {
        return Err(DatagramError::BadId);
    }
    let rest = text.strip_prefix("1-").ok_or(DatagramError::BadId)?;
    // `<8 hex digits of time>-<24 hex digits>`, decoded in place: one allocation per id.
    match rest.split_once('-') {
        Some((time, random)) if time.len() == 8 && random.len() == 24 => {
            let mut id = [0u8; 16];
            decode_hex_into(time, &mut id[..4])?;
            decode_hex_into(random, &mut id[4..])?;
            Ok(id.to_vec())
        }
        _ => Err(DatagramError::BadId),
    }
}

fn decode_hex(text: &str, bytes: usize) -> Result<Vec<u8>, DatagramError> {
    let mut out = vec![0u8; bytes];
    decode_hex_into(text, &mut out)?;
    Ok(out)
}

fn decode_hex_into(text: &str, out: &mut [u8]) -> Result<(), DatagramError> {
    if text.len() != out.len() * 2 {
        return Err(DatagramError::BadId);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(DatagramError::BadId),
    };
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(())
}

/// Float seconds → nanoseconds, rounded to the microsecond: an f64 holds epoch seconds to about
/// a quarter of a microsecond, so finer digits are noise, and rounding makes the exporter write
/// back the same float the SDK sent.
fn nanos(seconds: f64) -> u64 {
    // Saturating: a time past 2554 (or an absurd one in a bad datagram) must not overflow.
    ((seconds * 1e6).round().max(0.0) as u64).saturating_mul(1000)
}

fn kv(key: &str, value: Av) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    kv(key, Av::StringValue(value.to_string()))
}

fn json_attribute(key: &str, value: &Value) -> Option<KeyValue> {
    Some(match value {
        Value::String(s) => string(key, s),
        Value::Bool(b) => kv(key, Av::BoolValue(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => kv(key, Av::IntValue(i)),
            None => kv(key, Av::DoubleValue(n.as_f64()?)),
        },
        _ => return None,
    })
}

fn flatten(
    doc: &SegmentDoc,
    trace_id: &[u8],
    embedded_parent: Option<&str>,
    top_level: bool,
    spans: &mut Vec<Span>,
) -> Result<(), DatagramError> {
    let (Some(name), Some(id), Some(start)) = (&doc.name, &doc.id, doc.start_time) else {
        return Err(DatagramError::MissingField);
    };
    let span_id = decode_hex(id, 8)?;
    let parent_span_id = match embedded_parent.or(doc.parent_id.as_deref()) {
        Some(parent) => decode_hex(parent, 8)?,
        None => Vec::new(),
    };
    let trace_id = match (&doc.trace_id, top_level) {
        (Some(own), false) => parse_trace_id(own)?,
        _ => trace_id.to_vec(),
    };
    let is_subsegment = !top_level || doc.kind.as_deref() == Some("subsegment");
    let has_client_ip = doc
        .http
        .as_ref()
        .and_then(|h| h.request.as_ref())
        .is_some_and(|r| r.client_ip.is_some());
    let kind = if !is_subsegment || has_client_ip {
        SpanKind::Server
    } else {
        match doc.namespace.as_deref() {
            Some("aws" | "remote") => SpanKind::Client,
            None | Some("local") | Some("") => SpanKind::Internal,
            Some(_) => return Err(DatagramError::UnexpectedNamespace),
        }
    };

    let mut attributes = Vec::new();
    let mut status = None;
    if doc.namespace.as_deref() == Some("aws") {
        attributes.push(string("aws.service", name));
    }
    if let Some(user) = &doc.user {
        attributes.push(string("enduser.id", user));
    }
    if doc.in_progress == Some(true) {
        attributes.push(kv(IN_PROGRESS_ATTRIBUTE, Av::BoolValue(true)));
    }
    if let Some(traced) = doc.traced {
        attributes.push(kv("aws.xray.traced", Av::BoolValue(traced)));
    }
    // The flags as sent, whatever set them (an HTTP status, an exception, or the SDK's
    // add_error_flag()): the exporter writes them back unchanged.
    for (key, flag) in [
        (ERROR_ATTRIBUTE, doc.error),
        (FAULT_ATTRIBUTE, doc.fault),
        (THROTTLE_ATTRIBUTE, doc.throttle),
    ] {
        attributes.push(kv(key, Av::BoolValue(flag.unwrap_or(false))));
    }
    if let Some(http) = &doc.http {
        if let Some(request) = &http.request {
            let pairs = [
                ("http.method", &request.method),
                ("http.client_ip", &request.client_ip),
                ("http.user_agent", &request.user_agent),
                ("http.url", &request.url),
            ];
            for (key, value) in pairs {
                if let Some(value) = value {
                    attributes.push(string(key, value));
                }
            }
            if let Some(forwarded) = request.x_forwarded_for {
                attributes.push(kv(X_FORWARDED_FOR_ATTRIBUTE, Av::BoolValue(forwarded)));
            }
        }
        if let Some(response) = &http.response {
            if let Some(code) = response.status {
                attributes.push(kv("http.status_code", Av::IntValue(code)));
                if !(100..=399).contains(&code) {
                    status = Some(Status {
                        code: StatusCode::Error as i32,
                        message: String::new(),
                    });
                }
            }
            if let Some(length) = &response.content_length
                && let Some(attribute) = json_attribute("http.response_content_length", length)
            {
                attributes.push(attribute);
            }
        }
    }
    if let Some(aws) = &doc.aws {
        let pairs = [
            ("account_id", "aws.account_id"),
            ("operation", "aws.operation"),
            ("region", "aws.region"),
            ("request_id", "aws.request_id"),
            ("queue_url", "aws.queue_url"),
            ("table_name", "aws.table_name"),
            ("retries", "aws.xray.retries"),
        ];
        for (field, key) in pairs {
            if let Some(attribute) = aws.get(field).and_then(|v| json_attribute(key, v)) {
                attributes.push(attribute);
            }
        }
    }
    if let Some(sql) = &doc.sql {
        if let Some(url) = &sql.url {
            let (connection, database) = split_sql_url(url)?;
            attributes.push(string("db.connection_string", &connection));
            attributes.push(string("db.name", &database));
        }
        for (key, value) in [
            ("db.system", &sql.database_type),
            ("db.statement", &sql.sanitized_query),
            ("db.user", &sql.user),
        ] {
            if let Some(value) = value {
                attributes.push(string(key, value));
            }
        }
    }
    let mut events = Vec::new();
    match &doc.cause {
        Some(Value::String(exception_id)) => {
            status = Some(Status {
                code: StatusCode::Error as i32,
                message: exception_id.clone(),
            });
        }
        Some(Value::Object(cause)) => {
            status = Some(Status {
                code: StatusCode::Error as i32,
                message: String::new(),
            });
            if let Some(directory) = cause.get("working_directory").and_then(Value::as_str) {
                attributes.push(string(WORKING_DIRECTORY_ATTRIBUTE, directory));
            }
            let exceptions = cause.get("exceptions").and_then(Value::as_array);
            for exception in exceptions.into_iter().flatten() {
                events.push(exception_event(exception, nanos(start)));
            }
        }
        _ => {}
    }
    if let Some(annotations) = &doc.annotations {
        let mut keys = Vec::with_capacity(annotations.0.len());
        for (key, value) in &annotations.0 {
            let attribute = match value {
                AnnotationValue::Number(n) => kv(key, Av::DoubleValue(*n)),
                AnnotationValue::Text(text) => string(key, text),
                AnnotationValue::Bool(b) => kv(key, Av::BoolValue(*b)),
                AnnotationValue::Other => continue,
            };
            attributes.push(attribute);
            keys.push(AnyValue {
                value: Some(Av::StringValue(key.to_string())),
            });
        }
        attributes.push(kv(
            ANNOTATIONS_ATTRIBUTE,
            Av::ArrayValue(ArrayValue { values: keys }),
        ));
    }
    if let Some(metadata) = &doc.metadata {
        for (namespace, value) in metadata {
            attributes.push(string(
                &format!("{METADATA_PREFIX}{namespace}"),
                &value.to_string(),
            ));
        }
    }

    spans.push(Span {
        trace_id: trace_id.clone(),
        span_id,
        parent_span_id,
        name: name.to_string(),
        kind: kind as i32,
        start_time_unix_nano: nanos(start),
        end_time_unix_nano: doc.end_time.map(nanos).unwrap_or(0),
        attributes,
        events,
        status,
        ..Default::default()
    });
    for child in doc.subsegments.iter().flatten() {
        flatten(child, &trace_id, Some(id), false, spans)?;
    }
    Ok(())
}

/// `jdbc:postgresql://host:5432/orders` → (`jdbc:postgresql://host:5432`, `orders`).
fn split_sql_url(url: &str) -> Result<(String, String), DatagramError> {
    let scheme_end = url.find("://").ok_or(DatagramError::BadSqlUrl)? + 3;
    match url[scheme_end..].find('/') {
        Some(slash) => {
            let split = scheme_end + slash;
            let database = url[split + 1..].split(['?', '#']).next().unwrap_or("");
            Ok((url[..split].to_string(), database.to_string()))
        }
        None => Ok((url.to_string(), String::new())),
    }
}

fn exception_event(exception: &Value, time: u64) -> Event {
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

/// Resource attributes from the top-level document only.
fn resource_attributes(doc: &SegmentDoc) -> Vec<KeyValue> {
    let mut attributes = Vec::new();
    if let Some(name) = &doc.name {
        attributes.push(string("service.name", name));
    }
    let aws = doc.aws.as_ref();
    attributes.push(string(
        "cloud.provider",
        if aws.is_some() { "aws" } else { "unknown" },
    ));
    if let Some(aws) = aws {
        let text = |obj: &Map<String, Value>, key: &str| {
            obj.get(key).and_then(Value::as_str).map(str::to_string)
        };
        if let Some(account) = text(aws, "account_id") {
            attributes.push(string("cloud.account.id", &account));
        }
        let blocks: [(&str, &[(&str, &str)]); 4] = [
            (
                "ec2",
                &[
                    ("availability_zone", "cloud.availability_zone"),
                    ("instance_id", "host.id"),
                    ("instance_size", "host.type"),
                    ("ami_id", "host.image.id"),
                ],
            ),
            (
                "ecs",
                &[
                    ("container", "container.name"),
                    ("availability_zone", "cloud.availability_zone"),
                    ("container_id", "container.id"),
                ],
            ),
            (
                "elastic_beanstalk",
                &[
                    ("environment_name", "service.namespace"),
                    ("version_label", "service.version"),
                ],
            ),
            (
                "eks",
                &[
                    ("container_id", "container.id"),
                    ("cluster_name", "k8s.cluster.name"),
                    ("pod", "k8s.pod.name"),
                ],
            ),
        ];
        for (block, fields) in blocks {
            if let Some(object) = aws.get(block).and_then(Value::as_object) {
                for (field, key) in fields {
                    if let Some(value) = text(object, field) {
                        attributes.push(string(key, &value));
                    }
                }
                if block == "elastic_beanstalk"
                    && let Some(id) = object.get("deployment_id").and_then(Value::as_i64)
                {
                    attributes.push(string("service.instance.id", &id.to_string()));
                }
            }
        }
        if let Some(groups) = aws.get("cloudwatch_logs").and_then(Value::as_array) {
            let collect = |field: &str| -> Vec<AnyValue> {
                groups
                    .iter()
                    .filter_map(|g| g.get(field).and_then(Value::as_str))
                    .map(|s| AnyValue {
                        value: Some(Av::StringValue(s.to_string())),
                    })
                    .collect()
            };
            let arns = collect("arn");
            let names = collect("log_group");
            if !arns.is_empty() {
                attributes.push(kv(
                    "aws.log.group.arns",
                    Av::ArrayValue(ArrayValue { values: arns }),
                ));
            }
            if !names.is_empty() {
                attributes.push(kv(
                    "aws.log.group.names",
                    Av::ArrayValue(ArrayValue { values: names }),
                ));
            }
        }
        if let Some(xray) = aws.get("xray").and_then(Value::as_object) {
            if let Some(sdk) = text(xray, "sdk") {
                attributes.push(string("telemetry.sdk.name", &sdk));
                if let Some((_, language)) = sdk.split_once("for ") {
                    attributes.push(string("telemetry.sdk.language", language));
                }
            }
            if let Some(version) = text(xray, "sdk_version") {
                attributes.push(string("telemetry.sdk.version", &version));
            }
        }
    }
    if let Some(version) = doc.service.as_ref().and_then(|s| s.version.as_ref()) {
        attributes.push(string("service.version", version));
    }
    if let Some(arn) = &doc.resource_arn {
        attributes.push(string("aws.xray.resource_arn", arn));
    }
    attributes
}

#[cfg(test)]
mod tests;
