//! OTLP over gRPC. A signal's service is registered only when some pipeline consumes it, so
//! the others answer UNIMPLEMENTED, as in the collector.

use super::config::GrpcConfig;
use crate::http_server;
use crate::pipeline::{Consumers, Payload, Refused, Shutdown, Signal};
use crate::receivers::accept;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

/// The gRPC handlers of one receiver.
#[derive(Clone)]
struct OtlpGrpc {
    receiver: String,
    consumers: Consumers,
}

impl OtlpGrpc {
    async fn export(&self, payload: Payload) -> Result<(), Status> {
        accept(&self.receiver, "grpc", &self.consumers, payload)
            .await
            .map_err(refusal_status)
    }
}

/// UNAVAILABLE is what OTLP clients retry with backoff; RESOURCE_EXHAUSTED is retried only with
/// RetryInfo, which tonic cannot attach without extra crates.
fn refusal_status(refused: Refused) -> Status {
    match refused {
        Refused::QueueFull => Status::unavailable("pipeline queue is full; retry with backoff"),
        Refused::ShuttingDown => Status::unavailable("the sidecar is shutting down"),
        Refused::MemoryLimited => Status::unavailable("data refused due to high memory usage"),
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        OtlpGrpc::export(self, Payload::Traces(request.into_inner().resource_spans)).await?;
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        OtlpGrpc::export(
            self,
            Payload::Metrics(request.into_inner().resource_metrics),
        )
        .await?;
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        OtlpGrpc::export(self, Payload::Logs(request.into_inner().resource_logs)).await?;
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

/// tonic answers an undecodable message with INTERNAL and an oversized one with OUT_OF_RANGE;
/// the collector (grpc-go) answers INVALID_ARGUMENT and RESOURCE_EXHAUSTED, which is also what
/// OTLP clients treat as "do not retry this payload". Decode errors come back trailers-only, so
/// the status sits in the response headers.
fn collector_status_codes(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers();
    let status = headers.get("grpc-status").and_then(|v| v.to_str().ok());
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let remapped = match status {
        Some("13") if message.starts_with("failed%20to%20decode") => Some("3"),
        Some("11") if message.contains("message%20length%20too%20large") => Some("8"),
        _ => None,
    };
    if let Some(code) = remapped {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static(code));
    }
    response
}

pub async fn start(
    id: &str,
    config: &GrpcConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let listener = http_server::bind(&config.endpoint, id, "grpc").await?;
    let limit = usize::try_from(config.max_recv_msg_size_mib * 1024 * 1024).unwrap_or(usize::MAX);
    let handlers = OtlpGrpc {
        receiver: id.to_string(),
        consumers: consumers.clone(),
    };
    let traces = consumers.consumes(Signal::Traces).then(|| {
        TraceServiceServer::new(handlers.clone())
            .max_decoding_message_size(limit)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
    });
    let metrics = consumers.consumes(Signal::Metrics).then(|| {
        MetricsServiceServer::new(handlers.clone())
            .max_decoding_message_size(limit)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
    });
    let logs = consumers.consumes(Signal::Logs).then(|| {
        LogsServiceServer::new(handlers.clone())
            .max_decoding_message_size(limit)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
    });
    drop(handlers);
    drop(consumers);
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(config.max_concurrent_streams)
        .layer(tower::util::MapResponseLayer::new(collector_status_codes))
        .add_optional_service(traces)
        .add_optional_service(metrics)
        .add_optional_service(logs);
    // Without TCP_NODELAY a response written in two parts waits for the client's delayed ACK
    // (40 ms on Linux): that was the loadgen's p99.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |stream| {
            stream.inspect(|s| {
                let _ = s.set_nodelay(true);
            })
        },
    );
    let receiver = id.to_string();
    Ok(tokio::spawn(async move {
        if let Err(error) = router
            .serve_with_incoming_shutdown(incoming, shutdown.wait())
            .await
        {
            tracing::error!(%receiver, %error, "gRPC server failed");
        }
    }))
}
