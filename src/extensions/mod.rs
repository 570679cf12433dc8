//! Extensions: components outside pipelines: `health_check`, `file_storage` (where persistent
//! exporter queues live), plus the self-metrics endpoint, which the collector serves from
//! `service.telemetry`. Which extension a type name means is decided in `crate::components`.

pub mod file_storage;
pub mod health_check;
pub mod sigv4auth;

pub use health_check::HealthState;

use crate::http_server;
use crate::pipeline::Shutdown;
use crate::telemetry::CardinalityReports;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::net::SocketAddr;
use tokio::task::JoinHandle;

/// The status page: pipelines, exporters, drops and the CloudWatch budget at a glance, from
/// `/metrics` and `/cardinality` (plain HTML and script, no external assets).
const STATUS_PAGE: &str = include_str!("status_page.html");

/// Serves the status page on `GET /`, the Prometheus text of the self-metrics on
/// `GET /metrics`, and the cardinality budgets' state as JSON on `GET /cardinality`.
pub async fn serve_self_metrics(
    address: SocketAddr,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    reports: CardinalityReports,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let listener = http_server::bind(&address.to_string(), "telemetry", "http").await?;
    let handler = move |request: hyper::Request<hyper::body::Incoming>| {
        let handle = handle.clone();
        let reports = reports.clone();
        async move {
            if request.uri().path() == "/cardinality" {
                let reports = reports.snapshot();
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
