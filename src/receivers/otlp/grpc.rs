//! OTLP over gRPC. A signal's service is registered only when some pipeline consumes it, so
//! the others answer UNIMPLEMENTED, as in the collector. The services take each request's bytes
//! and decode them only for pipelines that need the owned model (`Consumers::take_encoded`).

use super::config::GrpcConfig;
use crate::http_server;
use crate::pipeline::{Consumers, EncodedPayload, Payload, Refused, Shutdown, Signal};
use crate::receivers::accept;
use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::task::JoinHandle;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::{Request, Response, Status};

/// The gRPC handlers of one receiver.
#[derive(Clone)]
struct OtlpGrpc {
    receiver: String,
    consumers: Consumers,
}

impl OtlpGrpc {
    /// One export request's message: kept as it arrived for pipelines that take it so (checked
    /// by the scan), decoded for the others.
    async fn export(&self, signal: Signal, message: Bytes) -> Result<(), Status> {
        let payload = if self.consumers.take_encoded(signal) {
            EncodedPayload::scan(signal, message).map(Payload::Encoded)
        } else {
            Payload::decode_export_request(signal, &message).map_err(|e| e.to_string())
        }
        .map_err(Status::invalid_argument)?;
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

/// One OTLP export service: its gRPC name, its signal and its (empty) answer.
trait ExportService: Send + Sync + 'static {
    const NAME: &'static str;
    const PATH: &'static str;
    const SIGNAL: Signal;
    type Answer: Message + Default + Send + 'static;
}

struct TraceExport;
impl ExportService for TraceExport {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const SIGNAL: Signal = Signal::Traces;
    type Answer = ExportTraceServiceResponse;
}

struct MetricsExport;
impl ExportService for MetricsExport {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const SIGNAL: Signal = Signal::Metrics;
    type Answer = ExportMetricsServiceResponse;
}

struct LogsExport;
impl ExportService for LogsExport {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const SIGNAL: Signal = Signal::Logs;
    type Answer = ExportLogsServiceResponse;
}

/// A message's bytes as they arrived: the receiver decides whether to decode them.
struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Requests as bytes, answers encoded by prost.
struct RawCodec<A>(PhantomData<A>);

impl<A: Message + Default + Send + 'static> Codec for RawCodec<A> {
    type Encode = A;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<A>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(Default::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// The unary `Export` method of one service.
struct ExportMethod<S>(OtlpGrpc, PhantomData<S>);

impl<S: ExportService> tonic::server::UnaryService<Bytes> for ExportMethod<S> {
    type Response = S::Answer;
    type Future = Pin<Box<dyn Future<Output = Result<Response<S::Answer>, Status>> + Send>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let handlers = self.0.clone();
        Box::pin(async move {
            handlers.export(S::SIGNAL, request.into_inner()).await?;
            Ok(Response::new(S::Answer::default()))
        })
    }
}

/// An OTLP export service that hands the request's bytes to the receiver instead of decoding
/// them first (what tonic's generated servers do): forwarding pipelines never decode.
struct ExportServer<S> {
    handlers: OtlpGrpc,
    max_message_size: usize,
    _service: PhantomData<S>,
}

impl<S> Clone for ExportServer<S> {
    fn clone(&self) -> Self {
        ExportServer {
            handlers: self.handlers.clone(),
            max_message_size: self.max_message_size,
            _service: PhantomData,
        }
    }
}

impl<S: ExportService> tonic::server::NamedService for ExportServer<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for ExportServer<S>
where
    S: ExportService,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != S::PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = ExportMethod::<S>(self.handlers.clone(), PhantomData);
        let max_message_size = self.max_message_size;
        Box::pin(async move {
            let mut accepted = EnabledCompressionEncodings::default();
            accepted.enable(CompressionEncoding::Gzip);
            accepted.enable(CompressionEncoding::Zstd);
            let mut grpc = tonic::server::Grpc::new(RawCodec::<S::Answer>(PhantomData))
                .apply_compression_config(accepted, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max_message_size), None);
            Ok(grpc.unary(method, request).await)
        })
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
    fn server<S>(handlers: &OtlpGrpc, max_message_size: usize) -> ExportServer<S> {
        ExportServer {
            handlers: handlers.clone(),
            max_message_size,
            _service: PhantomData,
        }
    }
    let traces = consumers
        .consumes(Signal::Traces)
        .then(|| server::<TraceExport>(&handlers, limit));
    let metrics = consumers
        .consumes(Signal::Metrics)
        .then(|| server::<MetricsExport>(&handlers, limit));
    let logs = consumers
        .consumes(Signal::Logs)
        .then(|| server::<LogsExport>(&handlers, limit));
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
