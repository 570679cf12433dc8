//! OTLP over HTTP: `/v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or JSON bodies, answered
//! with the collector's status codes. Where we differ (reference section 12): a body over the
//! limit is 413, and a full pipeline is 503 with `Retry-After` instead of a blocked request.

use super::config::HttpConfig;
use super::json;
use crate::http_server;
use crate::pipeline::{Consumers, EncodedPayload, Payload, Refused, Shutdown, Signal};
use crate::receivers::accept;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::io::Read;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// `google.rpc.Status`, the body of every OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// gRPC codes used in error bodies.
const CODE_INVALID_ARGUMENT: i32 = 3;
const CODE_RESOURCE_EXHAUSTED: i32 = 8;
const CODE_UNAVAILABLE: i32 = 14;

/// Seconds a refused client is asked to wait (`Retry-After`).
const RETRY_AFTER_SECONDS: u32 = 1;

/// How much of an over-limit body is read and thrown away before the connection is dropped.
const MAX_DISCARDED_BODY: u64 = 64 * 1024 * 1024;

/// Largest zstd window accepted (2^24 = 16 MiB), so a crafted frame cannot make the decoder
/// allocate more than the body limit allows.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

struct HttpReceiver {
    receiver: String,
    config: HttpConfig,
    consumers: Consumers,
}

pub async fn start(
    id: &str,
    config: &HttpConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let listener = http_server::bind(&config.endpoint, id, "http").await?;
    let state = Arc::new(HttpReceiver {
        receiver: id.to_string(),
        config: config.clone(),
        consumers,
    });
    let handler = move |request: Request<Incoming>| {
        let state = state.clone();
        async move { state.handle(request).await }
    };
    Ok(http_server::serve(listener, handler, shutdown, true))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("static response")
}

fn status_response(
    status: StatusCode,
    encoding: Encoding,
    code: i32,
    message: String,
) -> Response<Full<Bytes>> {
    let rpc = RpcStatus { code, message };
    let body = match encoding {
        Encoding::Protobuf => rpc.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&rpc).expect("status serializes"),
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", encoding.content_type());
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        response = response.header("retry-after", RETRY_AFTER_SECONDS.to_string());
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// Why a body could not be turned into a payload.
enum BodyError {
    TooLarge(String),
    Invalid(String),
}

impl HttpReceiver {
    fn signal_for(&self, path: &str) -> Option<Signal> {
        let c = &self.config;
        [
            (&c.traces_url_path, Signal::Traces),
            (&c.metrics_url_path, Signal::Metrics),
            (&c.logs_url_path, Signal::Logs),
        ]
        .into_iter()
        .find(|(p, s)| p.as_str() == path && self.consumers.consumes(*s))
        .map(|(_, s)| s)
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(signal) = self.signal_for(request.uri().path()) else {
            return plain(StatusCode::NOT_FOUND, "404 page not found\n");
        };
        if request.method() != Method::POST {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 method not allowed, supported: [POST]",
            );
        }
        let media_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let encoding = match media_type.as_str() {
            "application/x-protobuf" => Encoding::Protobuf,
            "application/json" => Encoding::Json,
            _ => {
                return plain(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "415 unsupported media type, supported: [application/json, application/x-protobuf]",
                );
            }
        };
        let content_encoding = request
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            content_encoding.as_str(),
            "" | "identity" | "gzip" | "x-gzip" | "zstd" | "deflate" | "zlib"
        ) {
            return status_response(
                StatusCode::BAD_REQUEST,
                encoding,
                CODE_INVALID_ARGUMENT,
                format!(
                    "unsupported Content-Encoding {content_encoding:?} (supported: gzip, zstd, deflate, zlib)"
                ),
            );
        }
        let payload = match self
            .read_payload(request, signal, encoding, &content_encoding)
            .await
        {
            Ok(payload) => payload,
            Err(BodyError::TooLarge(message)) => {
                return status_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    encoding,
                    CODE_RESOURCE_EXHAUSTED,
                    message,
                );
            }
            Err(BodyError::Invalid(message)) => {
                return status_response(
                    StatusCode::BAD_REQUEST,
                    encoding,
                    CODE_INVALID_ARGUMENT,
                    message,
                );
            }
        };
        match accept(&self.receiver, "http", &self.consumers, payload).await {
            Ok(()) => success(signal, encoding),
            Err(
                refused @ (Refused::QueueFull | Refused::ShuttingDown | Refused::MemoryLimited),
            ) => status_response(
                StatusCode::SERVICE_UNAVAILABLE,
                encoding,
                CODE_UNAVAILABLE,
                format!("{refused}; retry later"),
            ),
        }
    }

    async fn read_payload(
        &self,
        request: Request<Incoming>,
        signal: Signal,
        encoding: Encoding,
        content_encoding: &str,
    ) -> Result<Payload, BodyError> {
        let limit = self.config.max_request_body_size;
        let too_large = || {
            BodyError::TooLarge(format!(
                "request body exceeds max_request_body_size ({limit} bytes)"
            ))
        };
        let declared = request
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut body = request.into_body();
        let mut raw = bytes::BytesMut::new();
        // Past the limit nothing more is kept, but the rest is read and discarded (up to a cap)
        // so the client gets its 413 instead of a reset connection.
        let mut over_limit = declared.is_some_and(|n| n > limit);
        let mut discarded: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| BodyError::Invalid(format!("failed to read request body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if !over_limit && raw.len() as u64 + data.len() as u64 <= limit {
                raw.extend_from_slice(&data);
                continue;
            }
            over_limit = true;
            raw = bytes::BytesMut::new();
            discarded += data.len() as u64;
            if discarded > MAX_DISCARDED_BODY {
                break;
            }
        }
        if over_limit {
            return Err(too_large());
        }
        let raw = raw.freeze();
        let body = decompress(raw, content_encoding, limit)?;
        // Pipelines that only batch and forward take the request as it came, checked but not
        // decoded.
        if encoding == Encoding::Protobuf && self.consumers.take_encoded(signal) {
            return EncodedPayload::scan(signal, body)
                .map(Payload::Encoded)
                .map_err(|e| BodyError::Invalid(format!("invalid OTLP protobuf: {e}")));
        }
        decode_payload(&body, signal, encoding).map_err(BodyError::Invalid)
    }
}

/// Inflates `raw`, refusing to produce more than `limit` bytes (a gzip bomb stops there).
fn decompress(raw: Bytes, content_encoding: &str, limit: u64) -> Result<Bytes, BodyError> {
    fn bounded(reader: impl Read, limit: u64, what: &str) -> Result<Bytes, BodyError> {
        let mut out = Vec::new();
        reader
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| BodyError::Invalid(format!("invalid {what} body: {e}")))?;
        if out.len() as u64 > limit {
            return Err(BodyError::TooLarge(format!(
                "decompressed body exceeds max_request_body_size ({limit} bytes)"
            )));
        }
        Ok(Bytes::from(out))
    }
    match content_encoding {
        "gzip" | "x-gzip" => bounded(flate2::read::MultiGzDecoder::new(&raw[..]), limit, "gzip"),
        "deflate" | "zlib" => bounded(flate2::read::ZlibDecoder::new(&raw[..]), limit, "zlib"),
        "zstd" => {
            let mut decoder = zstd::stream::read::Decoder::new(&raw[..])
                .map_err(|e| BodyError::Invalid(format!("invalid zstd body: {e}")))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| BodyError::Invalid(format!("invalid zstd body: {e}")))?;
            bounded(decoder, limit, "zstd")
        }
        _ => Ok(raw),
    }
}

fn decode_payload(body: &[u8], signal: Signal, encoding: Encoding) -> Result<Payload, String> {
    let proto_error = |e: prost::DecodeError| format!("invalid OTLP protobuf: {e}");
    Ok(match (signal, encoding) {
        (signal, Encoding::Protobuf) => {
            Payload::decode_export_request(signal, body).map_err(proto_error)?
        }
        (Signal::Traces, Encoding::Json) => {
            Payload::Traces(json::decode::<ExportTraceServiceRequest>(body)?.resource_spans)
        }
        (Signal::Metrics, Encoding::Json) => {
            Payload::Metrics(json::decode::<ExportMetricsServiceRequest>(body)?.resource_metrics)
        }
        (Signal::Logs, Encoding::Json) => {
            Payload::Logs(json::decode::<ExportLogsServiceRequest>(body)?.resource_logs)
        }
    })
}

/// The empty `Export*ServiceResponse` in the request's encoding (`partial_success` never set).
fn success(signal: Signal, encoding: Encoding) -> Response<Full<Bytes>> {
    let body = match encoding {
        Encoding::Json => Bytes::from_static(b"{}"),
        Encoding::Protobuf => Bytes::from(match signal {
            Signal::Traces => ExportTraceServiceResponse::default().encode_to_vec(),
            Signal::Metrics => ExportMetricsServiceResponse::default().encode_to_vec(),
            Signal::Logs => ExportLogsServiceResponse::default().encode_to_vec(),
        }),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", encoding.content_type())
        .body(Full::new(body))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn decompression_stops_at_the_limit() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
        let member = encoder.finish().unwrap();
        // 64 gzip members of 1 MiB each: 64 MiB once inflated.
        let bomb: Vec<u8> = member
            .iter()
            .copied()
            .cycle()
            .take(member.len() * 64)
            .collect();
        let limit = 4 << 20;
        match decompress(Bytes::from(bomb), "gzip", limit) {
            Err(BodyError::TooLarge(message)) => assert!(message.contains("4194304")),
            _ => panic!("a bomb must be refused"),
        }
        let ok = decompress(Bytes::from(member), "gzip", limit).ok().unwrap();
        assert_eq!(ok.len(), 1 << 20);
        assert!(matches!(
            decompress(Bytes::from_static(b"not gzip"), "gzip", limit),
            Err(BodyError::Invalid(_))
        ));
    }

    #[test]
    fn zstd_and_zlib_round_trip() {
        let data = b"hello otlp".repeat(100);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(
            &decompress(Bytes::from(z), "zstd", 1 << 20).ok().unwrap()[..],
            &data[..]
        );
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zl.write_all(&data).unwrap();
        let zl = zl.finish().unwrap();
        assert_eq!(
            &decompress(Bytes::from(zl), "deflate", 1 << 20)
                .ok()
                .unwrap()[..],
            &data[..]
        );
    }
}
