//! Span → X-Ray segment documents, following the collector's awsxray exporter
//! (`exporter/awsxrayexporter/internal/translator`, v0.156). Pure functions: data in, data out.

use super::segment::*;
use crate::xray::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Settings of the exporter that change documents.
#[derive(Debug, Clone, Default)]
pub struct TranslateSettings {
    pub indexed_attributes: Vec<String>,
    pub index_all_attributes: bool,
    pub log_group_names: Vec<String>,
}

/// Why a span could not become a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("trace id must be 16 bytes, got {0}")]
    TraceId(usize),
    #[error("span id must be 8 bytes, got {0}")]
    SpanId(usize),
}

const MAX_SEGMENT_NAME_LENGTH: usize = 200;
const SQL_DATABASES: &[&str] = &[
    "db2",
    "derby",
    "hive",
    "mariadb",
    "mssql",
    "mysql",
    "oracle",
    "postgresql",
    "sqlite",
    "teradata",
    "other_sql",
];

/// Attributes by key, sorted, the last of duplicate keys winning (as a map built from the list
/// would). A sorted vector rather than a `BTreeMap`: spans carry a handful of attributes, and
/// the per-span path looks up twenty-odd known keys, where comparing lengths first beats
/// ordered string comparisons and a vector costs one allocation instead of a node per entry.
#[derive(Clone, Default)]
struct Attributes<'a> {
    entries: Vec<(&'a str, &'a AnyValue)>,
    /// One bit per key signature ever inserted: most of the known keys the translation asks
    /// for are absent, and this answers those without comparing strings.
    signatures: u64,
}

/// A bit chosen by a key's length and first and last bytes.
fn key_signature(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let (first, last) = match (bytes.first(), bytes.last()) {
        (Some(f), Some(l)) => (u64::from(*f), u64::from(*l)),
        _ => (0, 0),
    };
    let mixed = (bytes.len() as u64 | first << 16 | last << 24).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    1 << (mixed >> 58)
}

fn attributes(list: &[KeyValue]) -> Attributes<'_> {
    let mut entries: Vec<(&str, &AnyValue)> = list
        .iter()
        .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.as_str(), v)))
        .collect();
    if !entries.is_sorted_by(|a, b| a.0 < b.0) {
        sort_keeping_last(&mut entries, |entry| entry.0);
    }
    let signatures = entries
        .iter()
        .fold(0, |bits, (key, _)| bits | key_signature(key));
    Attributes {
        entries,
        signatures,
    }
}

impl<'a> Attributes<'a> {
    fn position(&self, key: &str) -> Result<usize, usize> {
        if self.signatures & key_signature(key) == 0 {
            return Err(self.entries.partition_point(|(k, _)| *k < key));
        }
        self.entries.binary_search_by(|(k, _)| (*k).cmp(key))
    }

    fn index(&self, key: &str) -> Option<usize> {
        if self.signatures & key_signature(key) == 0 {
            return None;
        }
        self.entries.iter().position(|(k, _)| *k == key)
    }

    fn get(&self, key: &str) -> Option<&'a AnyValue> {
        self.index(key).map(|i| self.entries[i].1)
    }

    fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn remove(&mut self, key: &str) -> Option<&'a AnyValue> {
        self.index(key).map(|i| self.entries.remove(i).1)
    }

    fn insert(&mut self, key: &'a str, value: &'a AnyValue) {
        self.signatures |= key_signature(key);
        match self.position(key) {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (key, value)),
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&'a str, &'a AnyValue)> + '_ {
        self.entries.iter().copied()
    }

    /// Keeps the attributes `keep` says to keep, in order.
    fn retain(&mut self, mut keep: impl FnMut(&'a str, &'a AnyValue) -> bool) {
        self.entries.retain(|(k, v)| keep(k, v));
    }
}

/// The value as Go's `Value.AsString()` renders it.
pub fn value_string(value: &AnyValue) -> String {
    match &value.value {
        Some(Av::StringValue(s)) => s.clone(),
        Some(Av::IntValue(i)) => i.to_string(),
        Some(Av::DoubleValue(d)) => d.to_string(),
        Some(Av::BoolValue(b)) => b.to_string(),
        Some(_) => value_json(value).to_string(),
        None => String::new(),
    }
}

/// The value as plain JSON (`Value.AsRaw()`).
pub fn value_json(value: &AnyValue) -> Value {
    match &value.value {
        Some(Av::StringValue(s)) => Value::String(s.clone()),
        Some(Av::IntValue(i)) => Value::from(*i),
        // Integral doubles print as `3`, as Go's encoder writes them, not `3.0`.
        Some(Av::DoubleValue(d)) if d.fract() == 0.0 && d.abs() < 1e15 => Value::from(*d as i64),
        Some(Av::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(Av::BoolValue(b)) => Value::Bool(*b),
        Some(Av::ArrayValue(a)) => Value::Array(a.values.iter().map(value_json).collect()),
        Some(Av::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.clone(), value_json(v))))
                .collect(),
        ),
        Some(Av::BytesValue(b)) => Value::String(hex(b)),
        // Dictionary-encoded strings only occur in profiles, which never reach this exporter.
        Some(Av::StringValueStrindex(_)) | None => Value::Null,
    }
}

fn bool_of(value: &AnyValue) -> Option<bool> {
    match value.value {
        Some(Av::BoolValue(b)) => Some(b),
        _ => None,
    }
}

fn int_of(value: &AnyValue) -> Option<i64> {
    match &value.value {
        Some(Av::IntValue(i)) => Some(*i),
        Some(Av::DoubleValue(d)) => Some(*d as i64),
        Some(Av::StringValue(s)) => s.parse().ok(),
        _ => None,
    }
}

fn str_attr(attrs: &Attributes, key: &str) -> String {
    attrs.get(key).map(value_string).unwrap_or_default()
}

/// `1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy`. Timestamp validation of the first four bytes is off,
/// as in the collector with its default feature gates, so W3C ids pass through.
pub fn xray_trace_id(trace_id: &[u8]) -> Result<String, TranslateError> {
    if trace_id.len() != 16 {
        return Err(TranslateError::TraceId(trace_id.len()));
    }
    let mut id = String::with_capacity(35);
    id.push_str("1-");
    push_hex(&mut id, &trace_id[..4]);
    id.push('-');
    push_hex(&mut id, &trace_id[4..]);
    Ok(id)
}

/// A fresh random 16-hex-digit id, for synthetic segments and exceptions.
pub fn new_segment_id() -> String {
    hex(&fastrand::u64(1..).to_be_bytes())
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// What a resource gives every document of its spans, worked out once per resource rather
/// than once per span (the exporter's per-span cost is what bounds its throughput).
pub struct ResourceContext<'a> {
    attrs: Attributes<'a>,
    origin: String,
    service: Option<ServiceData>,
    aws: AwsResourceData,
    language: String,
    /// `otel.resource.<key>` and the value, for the metadata of segments.
    metadata: Vec<(String, &'a AnyValue)>,
}

impl<'a> ResourceContext<'a> {
    pub fn new(resource: &'a [KeyValue], settings: &TranslateSettings) -> Self {
        let attrs = attributes(resource);
        ResourceContext {
            origin: determine_origin(&attrs),
            service: make_service(&attrs),
            aws: aws_resource_data(&attrs, &settings.log_group_names),
            language: str_attr(&attrs, "telemetry.sdk.language"),
            metadata: attrs
                .iter()
                .map(|(key, value)| (format!("otel.resource.{key}"), value))
                .collect(),
            attrs,
        }
    }
}

/// Every document a span becomes: usually one, two for a local-root dependency span.
pub fn span_to_documents(
    span: &Span,
    resource: &[KeyValue],
    settings: &TranslateSettings,
) -> Result<Vec<SegmentDocument>, TranslateError> {
    span_documents(span, &ResourceContext::new(resource, settings), settings)
}

/// [`span_to_documents`] with the resource's part already worked out.
pub fn span_documents(
    span: &Span,
    resource: &ResourceContext,
    settings: &TranslateSettings,
) -> Result<Vec<SegmentDocument>, TranslateError> {
    let span_attrs = attributes(&span.attributes);
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    let local_root = span_attrs
        .get("aws.span.kind")
        .is_some_and(|v| value_string(v) == "LOCAL_ROOT");
    if !local_root {
        let mut segment = make_segment(span, &span_attrs, resource, settings, None, &[])?;
        if matches!(
            kind,
            SpanKind::Client | SpanKind::Producer | SpanKind::Consumer
        ) && segment.kind.is_some()
            && segment.namespace.is_none()
            && span_attrs.contains_key("aws.remote.service")
        {
            segment.namespace = Some("remote".into());
        }
        return Ok(vec![segment]);
    }
    if matches!(
        kind,
        SpanKind::Server | SpanKind::Internal | SpanKind::Unspecified
    ) {
        let mut segment = make_segment(span, &span_attrs, resource, settings, None, &[])?;
        segment.kind = None;
        segment.namespace = None;
        return Ok(vec![segment]);
    }
    // A local root that calls out: a service segment for this service and a dependency
    // subsegment for the remote one, linked by a new id.
    let service_id = new_segment_id();
    let mut dependency = make_segment(span, &span_attrs, resource, settings, None, &[])?;
    dependency.parent_id = Some(service_id.clone());
    dependency.kind = Some("subsegment".into());
    if dependency.namespace.is_none() {
        dependency.namespace = Some("remote".into());
    }
    if kind == SpanKind::Consumer {
        dependency.links.clear();
    }
    if let Some(remote) = span_attrs.get("aws.remote.service") {
        dependency.name = trim_aws_sdk_prefix(&value_string(remote), &span_attrs);
    }
    let removed = [
        "aws.remote.service",
        "aws.remote.operation",
        "remoteTarget",
        "K8s.RemoteNamespace",
    ];
    let mut service = make_segment(
        span,
        &span_attrs,
        resource,
        settings,
        Some(service_id),
        &removed,
    )?;
    if let Some(local) = span_attrs.get("aws.local.service") {
        service.name = value_string(local);
    }
    service.http = None;
    if let Some(aws) = service.aws.as_mut() {
        aws.operation = None;
        aws.account_id = None;
        aws.remote_region = None;
        aws.request_id = None;
        aws.queue_url = None;
        aws.table_name = None;
        aws.table_names.clear();
    }
    for entries in service.metadata.values_mut() {
        entries.retain(|key, _| key.starts_with("otel.resource."));
    }
    service.kind = None;
    service.namespace = None;
    if kind != SpanKind::Consumer {
        service.links.clear();
    }
    Ok(vec![dependency, service])
}

fn is_aws_sdk_span(attrs: &Attributes) -> bool {
    attrs
        .get("rpc.system")
        .is_some_and(|v| value_string(v) == "aws-api")
}

fn trim_aws_sdk_prefix(name: &str, attrs: &Attributes) -> String {
    if is_aws_sdk_span(attrs) {
        if let Some(rest) = name.strip_prefix("AWS.SDK.") {
            return rest.to_string();
        }
        if let Some(rest) = name.strip_prefix("AWS::") {
            return rest.to_string();
        }
    }
    name.to_string()
}

/// One segment from one span. `id_override` and `removed` serve the local-root split.
fn make_segment<'a>(
    span: &'a Span,
    span_attrs: &Attributes<'a>,
    resource: &ResourceContext,
    settings: &TranslateSettings,
    id_override: Option<String>,
    removed: &[&str],
) -> Result<SegmentDocument, TranslateError> {
    if span.span_id.len() != 8 {
        return Err(TranslateError::SpanId(span.span_id.len()));
    }
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    let has_parent = !span.parent_span_id.is_empty();
    let is_subsegment = !matches!(kind, SpanKind::Server | SpanKind::Consumer) && has_parent;
    let store_resource = !is_subsegment;
    let trace_id = xray_trace_id(&span.trace_id)?;
    let resource_attrs = &resource.attrs;
    let without_removed;
    let all_attrs = if removed.is_empty() {
        span_attrs
    } else {
        let mut kept = span_attrs.clone();
        for key in removed {
            kept.remove(key);
        }
        without_removed = kept;
        &without_removed
    };

    let mut remaining = all_attrs.clone();
    let in_progress = remaining
        .remove(IN_PROGRESS_ATTRIBUTE)
        .is_some_and(|v| matches!(v.value, Some(Av::BoolValue(true))));
    // A span the awsxray receiver made from an X-Ray SDK's document: written back as sent.
    let from_xray = all_attrs.contains_key(FAULT_ATTRIBUTE);
    let traced = remaining.remove("aws.xray.traced").and_then(bool_of);
    let http = make_http(span, kind, from_xray, &mut remaining);
    let (error, fault, throttle, cause) =
        make_cause(span, kind, all_attrs, &resource.language, &mut remaining);
    let origin = resource.origin.clone();
    let aws = make_aws(&mut remaining, &resource.aws);
    let service = resource.service.clone();
    let sql = make_sql(span, &mut remaining);
    for name in &settings.indexed_attributes {
        if let Some(value) = all_attrs.get(name.as_str())
            && !remaining.contains_key(name.as_str())
        {
            remaining.insert(name.as_str(), value);
        }
    }
    // Resource attributes go into a segment's metadata, as in the collector; not into a
    // document that an X-Ray SDK sent without them.
    let (user, annotations, metadata) =
        make_xray_attributes(remaining, resource, store_resource && !from_xray, settings);
    let links = span
        .links
        .iter()
        .filter_map(|link| {
            Some(SpanLink {
                trace_id: xray_trace_id(&link.trace_id).ok()?,
                id: hex(&link.span_id),
                attributes: link
                    .attributes
                    .iter()
                    .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.clone(), value_json(v))))
                    .collect(),
            })
        })
        .collect();
    let (name, namespace) = segment_name(span, kind, all_attrs, resource_attrs);

    Ok(SegmentDocument {
        name,
        id: id_override.unwrap_or_else(|| hex(&span.span_id)),
        start_time: seconds(span.start_time_unix_nano),
        trace_id: Some(trace_id),
        end_time: (!in_progress).then(|| seconds(span.end_time_unix_nano)),
        in_progress: in_progress.then_some(true),
        parent_id: non_empty(hex(&span.parent_span_id)),
        kind: is_subsegment.then(|| "subsegment".to_string()),
        origin: non_empty(origin),
        user: non_empty(user),
        resource_arn: None,
        traced,
        error,
        fault,
        throttle,
        http,
        aws,
        service,
        sql,
        cause,
        annotations,
        metadata,
        namespace: non_empty(namespace),
        links,
    })
}

/// X-Ray names segments after services, not operations: the first rule that finds one wins.
fn segment_name(
    span: &Span,
    kind: SpanKind,
    attrs: &Attributes,
    resource: &Attributes,
) -> (String, String) {
    let get = |key: &str| attrs.get(key).map(value_string).filter(|s| !s.is_empty());
    let mut name = None;
    let mut namespace = String::new();
    if kind == SpanKind::Server {
        name = get("aws.local.service");
    }
    let local_root = attrs
        .get("aws.span.kind")
        .is_some_and(|v| value_string(v) == "LOCAL_ROOT");
    if kind == SpanKind::Internal && local_root {
        name = get("aws.local.service");
    }
    if matches!(
        kind,
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer
    ) && let Some(remote) = get("aws.remote.service")
    {
        name = Some(trim_aws_sdk_prefix(&remote, attrs));
    }
    if name.is_none() {
        name = get("peer.service");
    }
    if is_aws_sdk_span(attrs) {
        namespace = "aws".into();
    }
    if name.is_none()
        && let Some(service) = get("aws.service")
    {
        name = Some(service);
        if namespace.is_empty() {
            namespace = "aws".into();
        }
    }
    if name.is_none()
        && let Some(db) = get("db.name")
    {
        let mut db_name = db;
        if let Some(url) = get("db.connection_string") {
            let url = url.strip_prefix("jdbc:").unwrap_or(&url);
            if let Some(host) = url_host(url) {
                db_name = format!("{db_name}@{host}");
            }
        }
        name = Some(db_name);
    }
    if name.is_none() && kind == SpanKind::Server {
        name = resource
            .get("service.name")
            .map(value_string)
            .filter(|s| !s.is_empty());
    }
    for key in ["rpc.service", "http.host", "net.peer.name"] {
        if name.is_none() {
            name = get(key);
        }
    }
    let name = name.unwrap_or_else(|| fix_segment_name(&span.name));
    if namespace.is_empty() && kind == SpanKind::Client {
        namespace = "remote".into();
    }
    (name, namespace)
}

/// The host of `scheme://[user@]host[:port]/...`.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(stripped) = host_port.strip_prefix('[') {
        stripped.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Keeps Unicode letters, digits, space and `_ . : / % & # = + - @`; cut to 200 bytes.
pub fn fix_segment_name(name: &str) -> String {
    let mut fixed: String = name
        .chars()
        .filter(|c| c.is_alphanumeric() || " _.:/%&#=+-@".contains(*c))
        .collect();
    if fixed.len() > MAX_SEGMENT_NAME_LENGTH {
        let mut cut = MAX_SEGMENT_NAME_LENGTH;
        while !fixed.is_char_boundary(cut) {
            cut -= 1;
        }
        fixed.truncate(cut);
    }
    if fixed.is_empty() {
        "span".into()
    } else {
        fixed
    }
}

/// Every character outside `[A-Za-z0-9.]` becomes `_` (dots kept: gate `exporter.xray.allowDot`).
pub fn fix_annotation_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn make_http(
    span: &Span,
    kind: SpanKind,
    from_xray: bool,
    remaining: &mut Attributes,
) -> Option<HttpData> {
    let mut request = HttpRequest::default();
    let mut forwarded = None;
    let mut response = HttpResponse::default();
    let mut url_parts: BTreeMap<&str, String> = BTreeMap::new();
    let mut has_http = false;
    let mut has_url_attributes = false;
    remaining.retain(|key, value| {
        // Rendered only for the keys that are used.
        let text = || value_string(value);
        let mut consumed = true;
        match key {
            "http.method" | "http.request.method" => {
                request.method = Some(text());
                has_http = true;
            }
            "http.client_ip" | "client.address" => {
                request.client_ip = Some(text());
                // The collector's guess for OTLP spans; an X-Ray document says for itself.
                if !from_xray {
                    request.x_forwarded_for = Some(true);
                }
                has_http = true;
            }
            X_FORWARDED_FOR_ATTRIBUTE => forwarded = bool_of(value),
            "http.user_agent" | "user_agent.original" => {
                request.user_agent = Some(text());
                has_http = true;
            }
            "http.status_code" | "http.response.status_code" => {
                response.status = int_of(value);
                has_http = true;
            }
            "http.url" | "url.full" => {
                url_parts.insert("http.url", text());
                has_http = true;
                has_url_attributes = true;
            }
            "http.scheme" | "url.scheme" => {
                url_parts.insert("http.scheme", text());
                has_http = true;
            }
            "http.host" | "server.address" => {
                url_parts.insert("http.host", text());
                has_http = true;
                has_url_attributes = true;
            }
            "http.target" => {
                url_parts.insert("http.target", text());
                has_http = true;
            }
            "url.path" => {
                url_parts.insert("url.path", text());
                has_http = true;
            }
            "url.query" => {
                url_parts.insert("url.query", text());
                has_http = true;
            }
            "http.server_name" => {
                url_parts.insert("http.server_name", text());
                has_http = true;
                has_url_attributes = true;
            }
            "net.host.port" | "server.port" => {
                url_parts.insert("net.host.port", text());
                has_http = true;
            }
            "host.name" => {
                url_parts.insert("host.name", text());
                has_url_attributes = true;
            }
            "net.host.name" => {
                url_parts.insert("net.host.name", text());
                has_url_attributes = true;
            }
            "net.peer.name" => {
                url_parts.insert("net.peer.name", text());
            }
            "net.peer.port" => {
                url_parts.insert("net.peer.port", text());
            }
            "net.peer.ip" | "network.peer.address" => {
                if request.client_ip.is_none() {
                    request.client_ip = Some(text());
                }
                url_parts.insert("net.peer.ip", text());
                has_url_attributes = true;
            }
            "http.response_content_length" | "http.response.body.size" => {
                response.content_length = Some(value_json(value));
                has_http = true;
            }
            _ => consumed = false,
        }
        !consumed
    });
    if !has_http {
        return None;
    }
    if from_xray {
        request.x_forwarded_for = forwarded;
    }
    if has_url_attributes {
        request.url = Some(construct_url(&url_parts, kind == SpanKind::Server));
    }
    if response.content_length.is_none() {
        response.content_length = response_size_from_events(span).map(Value::from);
    }
    // An empty response object says nothing (an X-Ray SDK leaves it out without a status).
    let response = (response != HttpResponse::default()).then_some(response);
    Some(HttpData {
        request: Some(request),
        response,
    })
}

fn response_size_from_events(span: &Span) -> Option<i64> {
    std::iter::once(&span.attributes)
        .chain(span.events.iter().map(|e| &e.attributes))
        .find_map(|list| {
            let attrs = attributes(list);
            (str_attr(&attrs, "message.type") == "RECEIVED")
                .then(|| {
                    attrs
                        .get("messaging.message_payload_size_bytes")
                        .and_then(int_of)
                })
                .flatten()
        })
}

fn construct_url(parts: &BTreeMap<&str, String>, server: bool) -> String {
    if let Some(url) = parts.get("http.url") {
        return url.clone();
    }
    let scheme = parts
        .get("http.scheme")
        .cloned()
        .unwrap_or_else(|| "http".into());
    let (host, port) = match parts.get("http.host") {
        Some(host) => (host.clone(), String::new()),
        None if server => (
            ["http.server_name", "net.host.name", "host.name"]
                .iter()
                .find_map(|k| parts.get(k).cloned())
                .unwrap_or_default(),
            parts.get("net.host.port").cloned().unwrap_or_default(),
        ),
        None => (
            ["net.peer.name", "net.peer.ip"]
                .iter()
                .find_map(|k| parts.get(k).cloned())
                .unwrap_or_default(),
            parts.get("net.peer.port").cloned().unwrap_or_default(),
        ),
    };
    let mut url = format!("{scheme}://{host}");
    let default_port = (scheme == "http" && port == "80") || (scheme == "https" && port == "443");
    if !port.is_empty() && !default_port {
        url.push(':');
        url.push_str(&port);
    }
    match (parts.get("http.target"), parts.get("url.path")) {
        (Some(target), _) => url.push_str(target),
        (None, Some(path)) => {
            url.push_str(path);
            if let Some(query) = parts.get("url.query") {
                url.push('?');
                url.push_str(query);
            }
        }
        (None, None) => url.push('/'),
    }
    url
}

fn make_cause(
    span: &Span,
    kind: SpanKind,
    all_attrs: &Attributes,
    language: &str,
    remaining: &mut Attributes,
) -> (bool, bool, bool, Option<Cause>) {
    let status_code = span
        .status
        .as_ref()
        .map(|s| s.code)
        .unwrap_or(StatusCode::Unset as i32);
    let is_status_error = status_code == StatusCode::Error as i32;
    let exception_events: Vec<_> = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .collect();
    let mut cause = None;
    let working_directory = remaining
        .remove(WORKING_DIRECTORY_ATTRIBUTE)
        .map(value_string);
    if !exception_events.is_empty() {
        let remote = matches!(kind, SpanKind::Client | SpanKind::Producer);
        let exceptions = exception_events
            .iter()
            .map(|event| {
                let attrs = attributes(&event.attributes);
                // A segment that came from X-Ray keeps its exception ids.
                let id = attrs
                    .get("aws.xray.exception.id")
                    .map(value_string)
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(new_segment_id);
                ExceptionData {
                    id,
                    message: non_empty(str_attr(&attrs, "exception.message")),
                    kind: non_empty(str_attr(&attrs, "exception.type")),
                    remote: match attrs.get(EXCEPTION_REMOTE_ATTRIBUTE).and_then(bool_of) {
                        Some(sent) => Some(sent),
                        None => remote.then_some(true),
                    },
                    truncated: attrs.get(EXCEPTION_TRUNCATED_ATTRIBUTE).and_then(int_of),
                    skipped: attrs.get(EXCEPTION_SKIPPED_ATTRIBUTE).and_then(int_of),
                    cause: attrs.get(EXCEPTION_CAUSE_ATTRIBUTE).map(value_string),
                    stack: parse_stacktrace(&str_attr(&attrs, "exception.stacktrace"), language),
                }
            })
            .collect();
        cause = Some(Cause {
            working_directory,
            exceptions,
        });
    } else if is_status_error {
        let mut message = span
            .status
            .as_ref()
            .map(|s| s.message.clone())
            .unwrap_or_default();
        if message.is_empty() {
            message = str_attr(all_attrs, "http.status_text");
        }
        if !message.is_empty() {
            remaining.remove("http.status_text");
            cause = Some(Cause {
                working_directory,
                exceptions: vec![ExceptionData {
                    id: new_segment_id(),
                    message: Some(message),
                    ..Default::default()
                }],
            });
        }
    }
    let http_status = all_attrs
        .get("http.status_code")
        .or_else(|| all_attrs.get("http.response.status_code"))
        .and_then(int_of);
    let (error, fault, throttle) = match http_status {
        Some(code @ 400..=499) => (true, false, code == 429),
        Some(500..=599) => (false, true, false),
        _ => (false, is_status_error, false),
    };
    // Flags an X-Ray document carried win: an SDK sets them by hand too (add_fault_flag()).
    let mut sent =
        |key: &str, derived: bool| remaining.remove(key).and_then(bool_of).unwrap_or(derived);
    let error = sent(ERROR_ATTRIBUTE, error);
    let fault = sent(FAULT_ATTRIBUTE, fault);
    let throttle = sent(THROTTLE_ATTRIBUTE, throttle);
    (error, fault, throttle, cause)
}

/// Stack frames from `exception.stacktrace` for the languages whose format is known; others
/// keep the message and type only.
pub fn parse_stacktrace(stacktrace: &str, language: &str) -> Vec<StackFrame> {
    // `\tat label(path: line)` is also how the awsxray receiver renders X-Ray frames.
    let java_style = stacktrace.lines().any(|l| l.starts_with("\tat "));
    let language = if java_style {
        "java".to_string()
    } else {
        language.to_ascii_lowercase()
    };
    match language.as_str() {
        "python" => {
            // `  File "path", line N, in label`, most recent call last: X-Ray wants it first.
            let mut frames: Vec<StackFrame> = stacktrace
                .lines()
                .filter_map(|line| {
                    let rest = line.trim_start().strip_prefix("File \"")?;
                    let (path, rest) = rest.split_once("\", line ")?;
                    let (line_no, label) = match rest.split_once(", in ") {
                        Some((n, label)) => (n, Some(label.trim().to_string())),
                        None => (rest, None),
                    };
                    Some(StackFrame {
                        path: Some(path.to_string()),
                        line: line_no.trim().parse().ok(),
                        label,
                    })
                })
                .collect();
            frames.reverse();
            frames
        }
        "java" => stacktrace
            .lines()
            .filter_map(|line| {
                let rest = line.trim_start().strip_prefix("at ")?;
                let (label, location) = rest.split_once('(')?;
                let location = location.trim_end_matches(')');
                // `path:line`; a frame without a number keeps its whole location as the path
                // (`node:internal/x`, or a receiver frame whose line was null).
                let (path, line_no) = match location.rsplit_once(':') {
                    Some((path, n)) if n.trim().parse::<i64>().is_ok() => {
                        (path, n.trim().parse().ok())
                    }
                    _ => (location, None),
                };
                Some(StackFrame {
                    path: Some(path.to_string()),
                    line: line_no,
                    label: Some(label.to_string()),
                })
            })
            .collect(),
        "javascript" | "nodejs" | "webjs" => stacktrace.lines().filter_map(v8_frame).collect(),
        _ => Vec::new(),
    }
}

/// One frame of a V8 stack trace (Node.js, browsers): `    at label (path:line:column)`, or
/// `    at path:line:column` for an anonymous function. The line and column are taken from the
/// right, so `file:///app/x.mjs:3:7` and `node:internal/timers:1:2` keep their whole path.
fn v8_frame(line: &str) -> Option<StackFrame> {
    let rest = line.strip_prefix("    at ")?;
    let (label, location) = match rest.find('(') {
        Some(open) if rest.ends_with(')') => {
            (rest[..open].trim_end(), &rest[open + 1..rest.len() - 1])
        }
        Some(_) => ("", ""),
        None => ("", rest),
    };
    let numbered = |text: &str| text.parse::<i64>().ok();
    let (path, line_no) = match location.rsplit_once(':') {
        Some((before, column)) if numbered(column).is_some() => match before.rsplit_once(':') {
            Some((path, line)) if numbered(line).is_some() => (path, numbered(line)),
            _ => (before, numbered(column)),
        },
        _ if location.contains("native") => ("native", None),
        _ => (location, None),
    };
    if path.is_empty() && label.is_empty() && line_no.is_none() {
        return None;
    }
    Some(StackFrame {
        path: non_empty(path),
        line: line_no,
        label: non_empty(label),
    })
}

fn determine_origin(resource: &Attributes) -> String {
    let provider = str_attr(resource, "cloud.provider");
    if resource.is_empty() || (!provider.is_empty() && provider != "aws") {
        return String::new();
    }
    match str_attr(resource, "cloud.platform").as_str() {
        "aws_app_runner" => "AWS::AppRunner::Service",
        "aws_eks" => "AWS::EKS::Container",
        "aws_elastic_beanstalk" => "AWS::ElasticBeanstalk::Environment",
        "aws_ecs" => match str_attr(resource, "aws.ecs.launchtype").as_str() {
            "ec2" => "AWS::ECS::EC2",
            "fargate" => "AWS::ECS::Fargate",
            _ => "AWS::ECS::Container",
        },
        "aws_ec2" => "AWS::EC2::Instance",
        _ => "",
    }
    .to_string()
}

/// Strings, or `&`-separated strings in one value (as `OTEL_RESOURCE_ATTRIBUTES` allows).
fn string_list(value: &AnyValue) -> Vec<String> {
    match &value.value {
        Some(Av::ArrayValue(a)) => a.values.iter().map(value_string).collect(),
        Some(Av::StringValue(s)) => s
            .split('&')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// What a span's resource contributes to the `aws` block: the same for every span of the
/// resource, so worked out once per resource.
#[derive(Clone, Default)]
struct AwsResourceData {
    /// `cloud.provider` names another cloud: no `aws` block at all.
    other_cloud: bool,
    account_id: String,
    elastic_beanstalk: Option<BeanstalkData>,
    ecs: Option<EcsData>,
    ec2: Option<Ec2Data>,
    eks: Option<EksData>,
    cloudwatch_logs: Vec<LogGroupData>,
    xray: XRayData,
}

fn aws_resource_data(resource: &Attributes, config_log_groups: &[String]) -> AwsResourceData {
    let r = |key: &str| str_attr(resource, key);
    let cloud = r("cloud.provider");
    let platform = r("cloud.platform");
    let host_id = r("host.id");
    let ec2 = (platform == "aws_ec2" || !host_id.is_empty()).then(|| Ec2Data {
        instance_id: non_empty(host_id.clone()),
        availability_zone: non_empty(r("cloud.availability_zone")),
        instance_size: non_empty(r("host.type")),
        ami_id: non_empty(r("host.image.id")),
    });
    let ecs = (platform == "aws_ecs").then(|| EcsData {
        container: non_empty(r("container.name")),
        container_id: non_empty(r("container.id")),
        availability_zone: non_empty(r("cloud.availability_zone")),
        container_arn: non_empty(r("aws.ecs.container.arn")),
        cluster_arn: non_empty(r("aws.ecs.cluster.arn")),
        task_arn: non_empty(r("aws.ecs.task.arn")),
        task_family: non_empty(r("aws.ecs.task.family")),
        launch_type: non_empty(r("aws.ecs.launchtype")),
    });
    let deploy_id = r("service.instance.id");
    let elastic_beanstalk =
        (platform == "aws_elastic_beanstalk" && !deploy_id.is_empty()).then(|| BeanstalkData {
            environment_name: non_empty(r("service.namespace")),
            version_label: non_empty(r("service.version")),
            deployment_id: deploy_id.parse().unwrap_or(0),
        });
    let cluster_name = r("k8s.cluster.name");
    let eks = (platform == "aws_eks" || !cluster_name.is_empty()).then(|| EksData {
        cluster_name: non_empty(cluster_name.clone()),
        pod: non_empty(r("k8s.pod.name")),
        container_id: non_empty(r("container.id")),
    });
    let arns = resource
        .get("aws.log.group.arns")
        .map(string_list)
        .unwrap_or_default();
    let names = resource
        .get("aws.log.group.names")
        .map(string_list)
        .unwrap_or_default();
    let cloudwatch_logs = if !arns.is_empty() {
        arns.into_iter()
            .map(|arn| LogGroupData {
                log_group: Some(
                    arn.split(':')
                        .nth(6)
                        .map(str::to_string)
                        .unwrap_or_else(|| arn.clone()),
                ),
                arn: Some(arn),
            })
            .collect()
    } else {
        let names = if names.is_empty() {
            config_log_groups.to_vec()
        } else {
            names
        };
        names
            .into_iter()
            .map(|name| LogGroupData {
                log_group: Some(name),
                arn: None,
            })
            .collect()
    };
    let sdk_name = r("telemetry.sdk.name");
    let sdk_language = r("telemetry.sdk.language");
    // An X-Ray SDK name already says its language ("X-Ray for Python"): do not repeat it.
    let already_named = sdk_name
        .to_ascii_lowercase()
        .ends_with(&format!(" for {}", sdk_language.to_ascii_lowercase()));
    let sdk = if !sdk_name.is_empty() && !sdk_language.is_empty() && !already_named {
        format!("{sdk_name} for {sdk_language}")
    } else {
        sdk_name
    };
    AwsResourceData {
        other_cloud: !cloud.is_empty() && cloud != "aws",
        account_id: r("cloud.account.id"),
        elastic_beanstalk,
        ecs,
        ec2,
        eks,
        cloudwatch_logs,
        xray: XRayData {
            sdk_version: non_empty(r("telemetry.sdk.version")),
            sdk: non_empty(sdk),
            auto_instrumentation: !r("telemetry.auto.version").is_empty(),
        },
    }
}

fn make_aws(remaining: &mut Attributes, resource: &AwsResourceData) -> Option<AwsData> {
    let mut account = None;
    let operation = remaining
        .get("aws.operation")
        .or_else(|| remaining.get("rpc.method"))
        .map(value_string)
        .unwrap_or_default();
    let mut remote_region = String::new();
    let mut request_id = String::new();
    let mut queue_url = String::new();
    let mut table_name = String::new();
    let mut table_names = Vec::new();
    remaining.retain(|key, value| {
        let consumed = match key {
            "rpc.method" | "aws.operation" => true,
            "aws.account_id" => {
                account = Some(value_string(value));
                true
            }
            "aws.region" => {
                remote_region = value_string(value);
                true
            }
            "aws.request_id" | "aws.requestId" => {
                request_id = value_string(value);
                true
            }
            "aws.queue_url" | "aws.queue.url" => {
                queue_url = value_string(value);
                true
            }
            "aws.table_name" | "aws.table.name" => {
                table_name = value_string(value);
                true
            }
            _ => false,
        };
        !consumed
    });
    if resource.other_cloud {
        return None;
    }
    if let Some(url) = remaining.get("messaging.url") {
        queue_url = value_string(url);
    }
    if let Some(tables) = remaining.get("aws.dynamodb.table_names") {
        let names = string_list(tables);
        match names.len() {
            0 => {}
            1 => table_name = names[0].clone(),
            _ => {
                table_name.clear();
                table_names = names;
            }
        }
    }
    Some(AwsData {
        account_id: non_empty(account.unwrap_or_else(|| resource.account_id.clone())),
        elastic_beanstalk: resource.elastic_beanstalk.clone(),
        ecs: resource.ecs.clone(),
        ec2: resource.ec2.clone(),
        eks: resource.eks.clone(),
        xray: Some(resource.xray.clone()),
        cloudwatch_logs: resource.cloudwatch_logs.clone(),
        operation: non_empty(operation),
        remote_region: non_empty(remote_region),
        request_id: non_empty(request_id),
        queue_url: non_empty(queue_url),
        table_name: non_empty(table_name),
        table_names,
    })
}

fn make_service(resource: &Attributes) -> Option<ServiceData> {
    let version = resource
        .get("service.version")
        .map(value_string)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            resource
                .get("container.image.tags")
                .and_then(|v| string_list(v).into_iter().next())
        })
        .or_else(|| resource.get("container.image.tag").map(value_string))
        .filter(|s| !s.is_empty())?;
    Some(ServiceData {
        version: Some(version),
    })
}

fn make_sql(span: &Span, remaining: &mut Attributes) -> Option<SqlData> {
    let system = remaining.get("db.system").map(value_string)?;
    if !SQL_DATABASES.contains(&system.as_str()) {
        return None;
    }
    let take = |remaining: &mut Attributes, key: &str| {
        remaining.remove(key).map(value_string).unwrap_or_default()
    };
    take(remaining, "db.system");
    let statement = take(remaining, "db.statement");
    let user = take(remaining, "db.user");
    let mut connection = take(remaining, "db.connection_string");
    let name = take(remaining, "db.name");
    if connection.is_empty() {
        connection = "localhost".into();
    }
    Some(SqlData {
        connection_string: Some(format!("{connection}/{name}")),
        url: non_empty(span.name.clone()),
        sanitized_query: non_empty(statement),
        database_type: Some(system),
        user: non_empty(user),
    })
}

fn annotation_value(value: &AnyValue) -> Option<Value> {
    match &value.value {
        Some(Av::StringValue(_) | Av::IntValue(_) | Av::DoubleValue(_) | Av::BoolValue(_)) => {
            Some(value_json(value))
        }
        _ => None,
    }
}

type XRayAttributes = (
    String,
    Map<String, Value>,
    BTreeMap<String, Map<String, Value>>,
);

fn make_xray_attributes(
    mut remaining: Attributes,
    resource: &ResourceContext,
    store_resource: bool,
    settings: &TranslateSettings,
) -> XRayAttributes {
    let mut annotations = Map::new();
    let mut metadata: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let user = remaining
        .remove("enduser.id")
        .map(value_string)
        .unwrap_or_default();
    if remaining.is_empty() && (!store_resource || resource.metadata.is_empty()) {
        return (user, annotations, metadata);
    }
    let mut default_metadata = Map::new();
    // The keys the span's X-Ray annotations came from, looked up where they are rather than
    // collected into a list per span.
    let annotation_keys: &[AnyValue] = match remaining.remove(ANNOTATIONS_ATTRIBUTE) {
        Some(AnyValue {
            value: Some(Av::ArrayValue(list)),
        }) => &list.values,
        _ => &[],
    };
    let is_indexed = |key: &str| {
        settings.index_all_attributes
            || settings.indexed_attributes.iter().any(|k| k == key)
            || annotation_keys
                .iter()
                .any(|v| matches!(&v.value, Some(Av::StringValue(s)) if s == key))
    };
    if store_resource {
        for (key, value) in &resource.metadata {
            // Indexed first: rendering an annotation only to drop it cost an allocation per
            // resource attribute per span.
            if is_indexed(key)
                && let Some(annotation) = annotation_value(value)
            {
                annotations.insert(fix_annotation_key(key), annotation);
            } else {
                default_metadata.insert(key.clone(), value_json(value));
            }
        }
    }
    for (key, value) in remaining.iter() {
        if is_indexed(key) {
            if let Some(annotation) = annotation_value(value) {
                annotations.insert(fix_annotation_key(key), annotation);
            }
            continue;
        }
        if let (Some(namespace), Some(Av::StringValue(text))) =
            (key.strip_prefix(METADATA_PREFIX), &value.value)
        {
            match serde_json::from_str::<Map<String, Value>>(text) {
                Ok(object) if namespace.eq_ignore_ascii_case("default") => {
                    default_metadata.extend(object)
                }
                Ok(object) => {
                    metadata.insert(namespace.to_string(), object);
                }
                Err(_) => {
                    default_metadata.insert(key.to_string(), Value::String(text.clone()));
                }
            }
            continue;
        }
        default_metadata.insert(key.to_string(), value_json(value));
    }
    if !default_metadata.is_empty() {
        metadata.insert("default".into(), default_metadata);
    }
    (user, annotations, metadata)
}

#[cfg(test)]
mod tests;
