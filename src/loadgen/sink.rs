//! `loadgen sink`: a loopback stand-in for X-Ray (PutTraceSegments) and CloudWatch Logs
//! (PutLogEvents, CreateLogGroup, CreateLogStream, PutRetentionPolicy) that answers at once,
//! checks shapes cheaply and counts, so a benchmark measures the sidecar and not an emulator.
//! Bodies may be gzipped. It also takes OTLP/HTTP exports (`/v1/traces`, `/v1/metrics`,
//! `/v1/logs`, protobuf) as X-Ray's, CloudWatch's and CloudWatch Logs' OTLP endpoints would, counting the items.
//! `GET /counts` returns the tallies as JSON; `POST /delay?ms=N` makes every X-Ray and
//! PutLogEvents answer wait N ms, to stand for a destination slower than the load.

use crate::http_server;
use crate::pipeline::Shutdown;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Counts {
    pub xray_calls: AtomicU64,
    pub xray_documents: AtomicU64,
    pub logs_calls: AtomicU64,
    pub emf_events: AtomicU64,
    pub bad_shapes: AtomicU64,
    pub otlp_calls: AtomicU64,
    /// Spans, data points and log records in the OTLP exports.
    pub otlp_items: AtomicU64,
    /// Milliseconds every PutTraceSegments / PutLogEvents answer waits.
    pub delay_ms: AtomicU64,
}

impl Counts {
    pub fn json(&self) -> Value {
        json!({
            "xray_calls": self.xray_calls.load(Ordering::Relaxed),
            "xray_documents": self.xray_documents.load(Ordering::Relaxed),
            "logs_calls": self.logs_calls.load(Ordering::Relaxed),
            "emf_events": self.emf_events.load(Ordering::Relaxed),
            "bad_shapes": self.bad_shapes.load(Ordering::Relaxed),
            "otlp_calls": self.otlp_calls.load(Ordering::Relaxed),
            "otlp_items": self.otlp_items.load(Ordering::Relaxed),
        })
    }
}

/// The parts of a PutTraceSegments body the sink reads, borrowed where JSON escapes allow: the
/// sink shares a core with the load generator, so its parsing must stay cheap.
#[derive(Deserialize)]
struct PutTraceSegmentsBody<'a> {
    #[serde(rename = "TraceSegmentDocuments", borrow)]
    documents: Vec<Cow<'a, str>>,
}

/// The parts of a PutLogEvents body the sink reads.
#[derive(Deserialize)]
struct PutLogEventsBody<'a> {
    #[serde(rename = "logEvents", borrow)]
    log_events: Vec<LogEvent<'a>>,
}

#[derive(Deserialize)]
struct LogEvent<'a> {
    #[serde(borrow)]
    message: Cow<'a, str>,
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response")
}

async fn handle(
    counts: Arc<Counts>,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    if request.uri().path() == "/counts" {
        return reply(200, counts.json());
    }
    if request.uri().path() == "/delay" {
        let ms = request
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|ms| ms.parse().ok());
        return match ms {
            Some(ms) => {
                counts.delay_ms.store(ms, Ordering::Relaxed);
                reply(200, json!({"delay_ms": ms}))
            }
            None => reply(400, json!({"message": "expected /delay?ms=N"})),
        };
    }
    let delay = counts.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let path = request.uri().path().to_string();
    let gzipped = request
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return reply(400, json!({"message": "unreadable body"})),
    };
    // Some clients gzip their AWS calls too (rotel's PutLogEvents); some say so of plain bodies
    // (rotel's PutTraceSegments), which are read as they are.
    let body = if gzipped && body.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        match std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain) {
            Ok(_) => Bytes::from(plain),
            Err(_) => return reply(400, json!({"message": "invalid gzip body"})),
        }
    } else {
        body
    };
    if let Some(signal) = path.strip_prefix("/v1/") {
        counts.otlp_calls.fetch_add(1, Ordering::Relaxed);
        return match otlp_items(signal, &body) {
            Some(items) => {
                counts.otlp_items.fetch_add(items, Ordering::Relaxed);
                Response::builder()
                    .status(200)
                    .header("content-type", "application/x-protobuf")
                    .body(Full::new(Bytes::new()))
                    .unwrap_or_else(|_| reply(500, json!({})))
            }
            None => {
                counts.bad_shapes.fetch_add(1, Ordering::Relaxed);
                reply(400, json!({"message": "not an OTLP export request"}))
            }
        };
    }
    // X-Ray's REST path, or its JSON-1.1 target (rotel posts to `/`).
    if path == "/TraceSegments" || target.ends_with(".PutTraceSegments") {
        counts.xray_calls.fetch_add(1, Ordering::Relaxed);
        let documents = serde_json::from_slice::<PutTraceSegmentsBody>(&body)
            .map(|b| b.documents)
            .unwrap_or_default();
        for d in &documents {
            if !(d.contains("\"trace_id\"") && d.contains("\"id\"")) {
                counts.bad_shapes.fetch_add(1, Ordering::Relaxed);
            }
        }
        counts
            .xray_documents
            .fetch_add(documents.len() as u64, Ordering::Relaxed);
        return reply(200, json!({"UnprocessedTraceSegments": []}));
    }
    match target.rsplit('.').next().unwrap_or("") {
        "PutLogEvents" => {
            counts.logs_calls.fetch_add(1, Ordering::Relaxed);
            let events = serde_json::from_slice::<PutLogEventsBody>(&body)
                .map(|b| b.log_events)
                .unwrap_or_default();
            for e in &events {
                if !(e.message.starts_with('{') && e.message.contains("\"_aws\"")) {
                    counts.bad_shapes.fetch_add(1, Ordering::Relaxed);
                }
            }
            counts
                .emf_events
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            reply(200, json!({"nextSequenceToken": "1"}))
        }
        "CreateLogGroup" | "CreateLogStream" | "PutRetentionPolicy" => reply(200, json!({})),
        _ => reply(
            400,
            json!({"__type": "UnknownOperationException", "message": target}),
        ),
    }
}

/// The items of an OTLP export request body, or `None` when it is not one.
fn otlp_items(signal: &str, body: &[u8]) -> Option<u64> {
    use opentelemetry_proto::tonic::collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    };
    use prost::Message;
    let payload = match signal {
        "traces" => crate::pipeline::Payload::Traces(
            ExportTraceServiceRequest::decode(body).ok()?.resource_spans,
        ),
        "metrics" => crate::pipeline::Payload::Metrics(
            ExportMetricsServiceRequest::decode(body)
                .ok()?
                .resource_metrics,
        ),
        "logs" => crate::pipeline::Payload::Logs(
            ExportLogsServiceRequest::decode(body).ok()?.resource_logs,
        ),
        _ => return None,
    };
    Some(payload.item_count() as u64)
}

/// Starts the sink, over TLS when given a certificate and key; returns its task, its address
/// and the live counts.
pub async fn start(
    endpoint: &str,
    tls: Option<(&std::path::Path, &std::path::Path)>,
    shutdown: Shutdown,
) -> std::io::Result<(
    tokio::task::JoinHandle<()>,
    std::net::SocketAddr,
    Arc<Counts>,
)> {
    let listener = http_server::bind(endpoint, "sink", "http").await?;
    let address = listener.local_addr()?;
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    let handler = move |request| handle(shared.clone(), request);
    let task = match tls {
        None => http_server::serve(listener, handler, shutdown, true),
        Some((certificate, key)) => http_server::serve_tls(
            listener,
            http_server::tls_acceptor(certificate, key)?,
            handler,
            shutdown,
        ),
    };
    Ok((task, address, counts))
}
