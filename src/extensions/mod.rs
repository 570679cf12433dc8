//! Extensions: components outside pipelines: `health_check`, `file_storage` (where persistent
//! exporter queues live), plus the self-metrics endpoint, which the collector serves from
//! `service.telemetry`.

pub mod file_storage;
pub mod health_check;

pub use health_check::HealthState;

use crate::config::{ComponentId, DecodeError, decode_section};
use crate::http_server;
use crate::pipeline::Shutdown;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_yaml_ng::Value;
use std::net::SocketAddr;
use tokio::task::JoinHandle;

/// Extension types otel-sidecar runs.
pub const EXTENSION_TYPES: &[&str] = &["file_storage", "health_check"];

/// Collector extension types outside otel-sidecar's scope, refused with a message saying so.
const OUT_OF_SCOPE_EXTENSION_TYPES: &[&str] = &["pprof", "zpages", "sigv4auth", "ecs_observer"];

/// A validated extension config.
#[derive(Debug, Clone)]
pub enum ExtensionConfig {
    FileStorage(file_storage::FileStorageConfig),
    HealthCheck(health_check::HealthCheckConfig),
}

/// Decodes the body of an `extensions.<id>` entry of type `kind`.
pub fn decode(kind: &str, body: &Value) -> Result<ExtensionConfig, DecodeError> {
    match kind {
        "file_storage" => Ok(ExtensionConfig::FileStorage(decode_section(body)?)),
        "health_check" => Ok(ExtensionConfig::HealthCheck(decode_section(body)?)),
        _ if OUT_OF_SCOPE_EXTENSION_TYPES.contains(&kind) => Err(DecodeError::OutOfScope),
        _ => Err(DecodeError::UnknownType(EXTENSION_TYPES)),
    }
}

/// Starts an extension listed in `service.extensions`; the task it runs, if any.
pub async fn start(
    id: &ComponentId,
    config: &ExtensionConfig,
    health: HealthState,
    shutdown: Shutdown,
) -> std::io::Result<Option<JoinHandle<()>>> {
    match config {
        ExtensionConfig::FileStorage(c) => {
            c.prepare().map_err(std::io::Error::other)?;
            Ok(None)
        }
        ExtensionConfig::HealthCheck(c) => {
            let (task, _) = health_check::start(&id.to_string(), c, health, shutdown).await?;
            Ok(Some(task))
        }
    }
}

/// The status page: pipelines, exporters, drops and the CloudWatch budget at a glance, from
/// `/metrics` and `/cardinality` (plain HTML and script, no external assets).
const STATUS_PAGE: &str = include_str!("status_page.html");

/// Serves the status page on `GET /`, the Prometheus text of the self-metrics on
/// `GET /metrics`, and the cardinality budgets' state as JSON on `GET /cardinality`.
pub async fn serve_self_metrics(
    address: SocketAddr,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let listener = http_server::bind(&address.to_string(), "telemetry", "http").await?;
    let handler = move |request: hyper::Request<hyper::body::Incoming>| {
        let handle = handle.clone();
        async move {
            if request.uri().path() == "/cardinality" {
                let reports = crate::exporters::awsemf::budget::reports()
                    .lock()
                    .expect("reports lock")
                    .clone();
                return Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(
                        serde_json::to_vec(&reports).expect("json"),
                    )))
                    .expect("static response");
            }
            if request.uri().path() == "/" {
                return Response::builder()
                    .header("content-type", "text/html; charset=utf-8")
                    .body(Full::new(Bytes::from_static(STATUS_PAGE.as_bytes())))
                    .expect("static response");
            }
            if request.uri().path() != "/metrics" {
                return Response::builder()
                    .status(404)
                    .body(Full::new(Bytes::from_static(b"404 page not found\n")))
                    .expect("static response");
            }
            Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(Full::new(Bytes::from(handle.render())))
                .expect("static response")
        }
    };
    Ok(http_server::serve(listener, handler, shutdown, true))
}
