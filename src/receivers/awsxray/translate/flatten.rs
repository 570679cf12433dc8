//! A segment and its embedded subsegments, depth-first, into spans.

use super::attributes::{json_attribute, kv, string};
use super::causes::exception_event;
use super::document::{AnnotationValue, SegmentDoc};
use super::error::DatagramError;
use super::ids::{decode_hex, nanos, parse_trace_id};
use crate::xray::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, any_value::Value as Av};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span::SpanKind, status::StatusCode};
use serde_json::Value;

pub(super) fn flatten(
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
pub(super) fn split_sql_url(url: &str) -> Result<(String, String), DatagramError> {
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
