//! Span → X-Ray segment documents, following the collector's awsxray exporter
//! (`exporter/awsxrayexporter/internal/translator`, v0.156). Pure functions: data in, data out.

use super::segment::*;
use crate::pipeline::values::{value_json, value_str, value_string};
use crate::pipeline::view::{KeyValuesView, SpanView, ValueView};
use crate::xray::*;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

mod annotations;
mod attributes;
mod aws;
mod cause;
mod http;
mod sql;

pub use annotations::fix_annotation_key;
use annotations::*;
use attributes::*;
use aws::*;
pub use cause::parse_stacktrace;
use cause::*;
use http::*;
use sql::*;

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
    metadata: Vec<(String, ValueView<'a>)>,
}

impl<'a> ResourceContext<'a> {
    pub fn new(resource: impl Into<KeyValuesView<'a>>, settings: &TranslateSettings) -> Self {
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

/// Every document a span becomes (usually one, two for a local-root dependency span), as JSON
/// read back from the escaped encoding the exporter puts in its requests.
pub fn span_to_documents(
    span: &Span,
    resource: &[KeyValue],
    settings: &TranslateSettings,
) -> Result<Vec<Value>, TranslateError> {
    let resource = ResourceContext::new(resource, settings);
    let span = SpanView::from(span);
    let documents = span_documents(&span, &resource, settings)?;
    Ok(documents
        .iter()
        .map(|d| {
            let mut escaped = Vec::new();
            crate::exporters::embedded_json::write(&mut escaped, d);
            let json = crate::exporters::embedded_json::unescape(&escaped);
            serde_json::from_str(&json).expect("documents are JSON")
        })
        .collect())
}

/// The documents of a span, borrowing its strings and the resource's part already worked out:
/// encoded straight away by the exporter, they cost no copy of what they quote.
pub fn span_documents<'a>(
    span: &'a SpanView<'a>,
    resource: &'a ResourceContext<'a>,
    settings: &'a TranslateSettings,
) -> Result<Vec<SegmentDocument<'a>>, TranslateError> {
    let span_attrs = attributes(span.attributes);
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    let local_root = span_attrs
        .get("aws.span.kind")
        .is_some_and(|v| value_str(v) == "LOCAL_ROOT");
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
    dependency.parent_id = Some(service_id.clone().into());
    dependency.kind = Some("subsegment".into());
    if dependency.namespace.is_none() {
        dependency.namespace = Some("remote".into());
    }
    if kind == SpanKind::Consumer {
        dependency.links.clear();
    }
    if let Some(remote) = span_attrs.get("aws.remote.service") {
        dependency.name = trim_aws_sdk_prefix(value_str(remote), &span_attrs);
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
        service.name = value_str(local);
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
        .is_some_and(|v| value_str(v) == "aws-api")
}

fn trim_aws_sdk_prefix<'a>(name: Cow<'a, str>, attrs: &Attributes) -> Cow<'a, str> {
    if is_aws_sdk_span(attrs) {
        for prefix in ["AWS.SDK.", "AWS::"] {
            if let Some(rest) = name.strip_prefix(prefix) {
                return match name {
                    Cow::Borrowed(name) => Cow::Borrowed(&name[prefix.len()..]),
                    Cow::Owned(_) => Cow::Owned(rest.to_string()),
                };
            }
        }
    }
    name
}

/// One segment from one span. `id_override` and `removed` serve the local-root split.
fn make_segment<'a>(
    span: &'a SpanView<'a>,
    span_attrs: &Attributes<'a>,
    resource: &'a ResourceContext<'a>,
    settings: &'a TranslateSettings,
    id_override: Option<String>,
    removed: &[&str],
) -> Result<SegmentDocument<'a>, TranslateError> {
    if span.span_id.len() != 8 {
        return Err(TranslateError::SpanId(span.span_id.len()));
    }
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    let has_parent = !span.parent_span_id.is_empty();
    let is_subsegment = !matches!(kind, SpanKind::Server | SpanKind::Consumer) && has_parent;
    let store_resource = !is_subsegment;
    let trace_id = xray_trace_id(span.trace_id)?;
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
        .is_some_and(|v| v == ValueView::Bool(true));
    // A span the awsxray receiver made from an X-Ray SDK's document: written back as sent.
    let from_xray = all_attrs.contains_key(FAULT_ATTRIBUTE);
    let traced = remaining.remove("aws.xray.traced").and_then(bool_of);
    let http = make_http(span, kind, from_xray, &mut remaining);
    let (error, fault, throttle, cause) =
        make_cause(span, kind, all_attrs, &resource.language, &mut remaining);
    let origin = resource.origin.as_str();
    let aws = make_aws(&mut remaining, &resource.aws);
    let service = resource.service.as_ref().map(Cow::Borrowed);
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
                trace_id: xray_trace_id(link.trace_id).ok()?,
                id: hex(link.span_id),
                attributes: link
                    .attributes
                    .iter()
                    .map(|(key, value)| (key.to_string(), value_json(value)))
                    .collect(),
            })
        })
        .collect();
    let (name, namespace) = segment_name(span, kind, all_attrs, resource_attrs);

    Ok(SegmentDocument {
        name,
        id: Cow::Owned(id_override.unwrap_or_else(|| hex(span.span_id))),
        start_time: seconds(span.start_time_unix_nano),
        trace_id: Some(Cow::Owned(trace_id)),
        end_time: (!in_progress).then(|| seconds(span.end_time_unix_nano)),
        in_progress: in_progress.then_some(true),
        parent_id: non_empty(hex(span.parent_span_id)),
        kind: is_subsegment.then_some(Cow::Borrowed("subsegment")),
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
/// Gives the name and the namespace ("" for none).
fn segment_name<'a>(
    span: &SpanView<'a>,
    kind: SpanKind,
    attrs: &Attributes<'a>,
    resource: &Attributes<'a>,
) -> (Cow<'a, str>, &'static str) {
    let get = |key: &str| attrs.get(key).map(value_str).filter(|s| !s.is_empty());
    let mut name = None;
    let mut namespace = "";
    if kind == SpanKind::Server {
        name = get("aws.local.service");
    }
    let local_root = attrs
        .get("aws.span.kind")
        .is_some_and(|v| value_str(v) == "LOCAL_ROOT");
    if kind == SpanKind::Internal && local_root {
        name = get("aws.local.service");
    }
    if matches!(
        kind,
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer
    ) && let Some(remote) = get("aws.remote.service")
    {
        name = Some(trim_aws_sdk_prefix(remote, attrs));
    }
    if name.is_none() {
        name = get("peer.service");
    }
    if is_aws_sdk_span(attrs) {
        namespace = "aws";
    }
    if name.is_none()
        && let Some(service) = get("aws.service")
    {
        name = Some(service);
        if namespace.is_empty() {
            namespace = "aws";
        }
    }
    if name.is_none()
        && let Some(db) = get("db.name")
    {
        let mut db_name = db;
        if let Some(url) = get("db.connection_string") {
            let url = url.strip_prefix("jdbc:").unwrap_or(&url);
            if let Some(host) = url_host(url) {
                db_name = Cow::Owned(format!("{db_name}@{host}"));
            }
        }
        name = Some(db_name);
    }
    if name.is_none() && kind == SpanKind::Server {
        name = resource
            .get("service.name")
            .map(value_str)
            .filter(|s| !s.is_empty());
    }
    for key in ["rpc.service", "http.host", "net.peer.name"] {
        if name.is_none() {
            name = get(key);
        }
    }
    let name = name.unwrap_or_else(|| fix_segment_name(span.name));
    if namespace.is_empty() && kind == SpanKind::Client {
        namespace = "remote";
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
pub fn fix_segment_name(name: &str) -> Cow<'_, str> {
    let allowed = |c: &char| c.is_alphanumeric() || " _.:/%&#=+-@".contains(*c);
    if !name.is_empty()
        && name.len() <= MAX_SEGMENT_NAME_LENGTH
        && name.chars().all(|c| allowed(&c))
    {
        return Cow::Borrowed(name);
    }
    let mut fixed: String = name.chars().filter(allowed).collect();
    if fixed.len() > MAX_SEGMENT_NAME_LENGTH {
        let mut cut = MAX_SEGMENT_NAME_LENGTH;
        while !fixed.is_char_boundary(cut) {
            cut -= 1;
        }
        fixed.truncate(cut);
    }
    if fixed.is_empty() {
        Cow::Borrowed("span")
    } else {
        Cow::Owned(fixed)
    }
}

#[cfg(test)]
mod tests;
