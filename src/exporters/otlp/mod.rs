//! The `otlp` exporter: OTLP over gRPC, for a sidecar that forwards to a gateway collector. A
//! batch is encoded once; each call sends those bytes as they are (a codec that writes them
//! unchanged), so a retry costs no second encoding.

pub mod config;

pub use config::{OtlpGrpcConfig, OtlpGrpcSettings};

use super::{ExportError, InFlight};
use crate::aws::calls::{Answer, Retrying, Unit};
use crate::config::{ComponentId, Signal};
use crate::exporters::client::Compression;
use crate::internal_events::{DropReason, report_otlp_dropped as report_dropped};
use crate::pipeline::Payload;
use bytes::{BufMut, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use std::sync::Arc;
use tonic::Code;
use tonic::codec::{Codec, CompressionEncoding, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

/// A built `otlp` exporter: one lazily connected channel.
pub struct OtlpGrpcExporter {
    id: String,
    settings: Arc<OtlpGrpcSettings>,
    channel: Channel,
    metadata: MetadataMap,
}

/// One encoded export request and how many items it carries.
#[derive(Debug, Clone)]
struct EncodedRequest {
    body: Bytes,
    items: u64,
}

impl Unit for EncodedRequest {
    fn items(&self) -> u64 {
        self.items
    }
}

impl OtlpGrpcExporter {
    pub fn new(id: &ComponentId, settings: &OtlpGrpcSettings) -> Result<Self, ExportError> {
        let tls = settings
            .config
            .tls
            .client_config()
            .map_err(ExportError::Setup)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http2()
            .build();
        let channel = tonic::transport::Endpoint::from_shared(settings.url.clone())
            .map_err(|e| ExportError::Setup(format!("endpoint {}: {e}", settings.url)))?
            .timeout(*settings.config.timeout)
            .connect_with_connector_lazy(connector);
        let mut metadata = MetadataMap::new();
        for (name, value) in &settings.config.headers {
            // Checked when the config was read.
            if let (Ok(name), Ok(value)) = (
                name.parse::<tonic::metadata::AsciiMetadataKey>(),
                value.parse(),
            ) {
                metadata.insert(name, value);
            }
        }
        Ok(OtlpGrpcExporter {
            id: id.to_string(),
            settings: Arc::new(settings.clone()),
            channel,
            metadata,
        })
    }

    /// Encodes the batch now and returns the sending, to be awaited.
    pub fn start(&self, payload: Payload) -> InFlight {
        let signal = payload.signal();
        let request = EncodedRequest {
            items: payload.item_count() as u64,
            body: Bytes::from(payload.encode_export_request()),
        };
        drop(payload);
        let channel = self.channel.clone();
        let settings = self.settings.clone();
        let metadata = self.metadata.clone();
        let exporter = self.id.clone();
        Box::pin(async move {
            let retrying = Retrying {
                call: "OTLP/gRPC export",
                exporter: &exporter,
                settings: &settings.config.retry_on_failure,
                report_dropped,
            };
            let dropped = retrying
                .send(request, |request| {
                    call(
                        channel.clone(),
                        &settings,
                        &metadata,
                        &exporter,
                        signal,
                        request,
                    )
                })
                .await;
            if dropped > 0 {
                return Err(ExportError::Counted { items: dropped });
            }
            Ok(())
        })
    }
}

/// One Export call; the answer as the retry loop reads it.
async fn call(
    channel: Channel,
    settings: &OtlpGrpcSettings,
    metadata: &MetadataMap,
    exporter: &str,
    signal: Signal,
    request: EncodedRequest,
) -> Answer<EncodedRequest> {
    let compression = settings.config.compression;
    let body = request.body.clone();
    let partial = match signal {
        Signal::Traces => export::<ExportTraceServiceResponse>(
            channel,
            compression,
            metadata,
            body,
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        )
        .await
        .map(|r| {
            r.partial_success
                .map(|p| (p.rejected_spans, p.error_message))
        }),
        Signal::Metrics => export::<ExportMetricsServiceResponse>(
            channel,
            compression,
            metadata,
            body,
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        )
        .await
        .map(|r| {
            r.partial_success
                .map(|p| (p.rejected_data_points, p.error_message))
        }),
        Signal::Logs => export::<ExportLogsServiceResponse>(
            channel,
            compression,
            metadata,
            body,
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        )
        .await
        .map(|r| {
            r.partial_success
                .map(|p| (p.rejected_log_records, p.error_message))
        }),
    };
    match partial {
        Ok(partial) => {
            let (rejected, message) = partial.unwrap_or_default();
            let refused = u64::try_from(rejected).unwrap_or(0).min(request.items);
            report_dropped(exporter, DropReason::Rejected, refused, &message);
            Answer::Done { refused }
        }
        // The Go exporter's retryable codes; RESOURCE_EXHAUSTED too (servers answer it for a
        // full queue, as this sidecar's receiver does).
        Err(status)
            if matches!(
                status.code(),
                Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::Aborted
                    | Code::OutOfRange
                    | Code::Unavailable
                    | Code::DataLoss
                    | Code::ResourceExhausted
            ) =>
        {
            Answer::Again {
                rest: request,
                refused: 0,
                error: format!("{:?}: {}", status.code(), status.message()),
                retry_after: None,
            }
        }
        Err(status) => Answer::Failed {
            items: request.items,
            error: format!("{:?}: {}", status.code(), status.message()),
        },
    }
}

/// A unary Export call at `path` sending `body`, an encoded export request.
async fn export<R>(
    channel: Channel,
    compression: Compression,
    metadata: &MetadataMap,
    body: Bytes,
    path: &'static str,
) -> Result<R, tonic::Status>
where
    R: prost::Message + Default + Send + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc = match compression {
        Compression::Gzip => grpc
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip),
        Compression::Zstd => grpc
            .send_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Zstd),
        Compression::None => grpc,
    };
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("cannot connect: {e}")))?;
    let mut request = tonic::Request::new(body);
    *request.metadata_mut() = metadata.clone();
    let response = grpc
        .unary(
            request,
            http::uri::PathAndQuery::from_static(path),
            EncodedCodec::<R>::default(),
        )
        .await?;
    Ok(response.into_inner())
}

/// Sends bytes that are already an encoded message; decodes the answer with prost.
struct EncodedCodec<R>(std::marker::PhantomData<R>);

impl<R> Default for EncodedCodec<R> {
    fn default() -> Self {
        EncodedCodec(std::marker::PhantomData)
    }
}

impl<R: prost::Message + Default + Send + 'static> Codec for EncodedCodec<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = EncodedBytes;
    type Decoder = tonic_prost::ProstDecoder<R>;

    fn encoder(&mut self) -> EncodedBytes {
        EncodedBytes
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// Writes a message's bytes unchanged.
struct EncodedBytes;

impl Encoder for EncodedBytes {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}
