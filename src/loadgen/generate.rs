//! Request bodies for each target, and the connection that sends them.

use super::options::{Encoding, LoadOptions, SignalArg, Target};
use crate::pipeline::Payload;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// One request's worth of load.
#[derive(Clone)]
pub enum Request {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
    Datagram(Bytes),
    /// An encoded OTLP/HTTP protobuf body and the path it is posted to.
    Encoded(&'static str, Bytes),
}

/// Reads `--body`, a file or a folder of `.pb` files (in name order): the encoded requests and
/// how many items (spans or points) each carries, the same for all of them.
pub fn read_fixed_bodies(
    path: &std::path::Path,
    options: &LoadOptions,
) -> Result<(Vec<Request>, u64), String> {
    if !path.is_dir() {
        let (body, items) = read_fixed_body(path, options)?;
        return Ok((vec![body], items));
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| format!("--body {}: {e}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|file| file.extension().is_some_and(|ext| ext == "pb"))
        .collect();
    files.sort();
    let mut bodies = Vec::with_capacity(files.len());
    let mut items_each = None;
    for file in &files {
        let (body, items) = read_fixed_body(file, options)?;
        if *items_each.get_or_insert(items) != items {
            return Err(format!(
                "--body {}: {items} items, where the first body of the folder has {}",
                file.display(),
                items_each.unwrap_or_default()
            ));
        }
        bodies.push(body);
    }
    match items_each {
        Some(items) => Ok((bodies, items)),
        None => Err(format!("--body {}: no .pb file in it", path.display())),
    }
}

/// Reads one `--body` file: the encoded request and how many items it carries.
pub fn read_fixed_body(
    path: &std::path::Path,
    options: &LoadOptions,
) -> Result<(Request, u64), String> {
    if options.target != Target::OtlpHttp || options.encoding != Encoding::Protobuf || options.gzip
    {
        return Err(
            "--body is posted as it is: use --target otlp-http without --encoding json or --gzip"
                .into(),
        );
    }
    let bytes = std::fs::read(path).map_err(|e| format!("--body {}: {e}", path.display()))?;
    let invalid = |e: prost::DecodeError| format!("--body {}: {e}", path.display());
    let (url_path, payload) = match options.signal {
        SignalArg::Traces => (
            "/v1/traces",
            Payload::Traces(
                ExportTraceServiceRequest::decode(bytes.as_slice())
                    .map_err(invalid)?
                    .resource_spans,
            ),
        ),
        SignalArg::Metrics => (
            "/v1/metrics",
            Payload::Metrics(
                ExportMetricsServiceRequest::decode(bytes.as_slice())
                    .map_err(invalid)?
                    .resource_metrics,
            ),
        ),
        SignalArg::Logs => return Err("--body takes traces or metrics".into()),
    };
    let items = payload.item_count() as u64;
    if items == 0 {
        return Err(
            format!("--body {}: no {:?} in it", path.display(), options.signal).to_lowercase(),
        );
    }
    Ok((Request::Encoded(url_path, Bytes::from(bytes)), items))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Builds requests with fresh ids and series cycling through `--series` values.
pub struct Generator {
    options: LoadOptions,
    worker: u64,
    counter: u64,
    padding: String,
}

impl Generator {
    pub fn new(options: &LoadOptions, worker: u64) -> Self {
        Generator {
            options: options.clone(),
            worker,
            counter: 0,
            padding: "x".repeat(options.attribute_size),
        }
    }

    fn attributes(&self, series: u64) -> Vec<KeyValue> {
        (0..self.options.attributes)
            .map(|i| KeyValue {
                key: format!("attribute.{i}"),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(if i == 0 {
                        format!("series-{series}")
                    } else {
                        self.padding.clone()
                    })),
                }),
                ..Default::default()
            })
            .collect()
    }

    /// The next request carrying `items` items.
    pub fn next(&mut self, items: u64) -> Request {
        let first = self.counter;
        self.counter += items;
        let series = |n: u64| n % self.options.series.max(1);
        match (self.options.target, self.options.signal) {
            (Target::XrayUdp, _) => Request::Datagram(self.segments(first, items)),
            (Target::StatsdUdp, _) => Request::Datagram(Bytes::from(
                (first..first + items)
                    .map(|n| format!("loadgen.requests:1|c|#series:s{}\n", series(n)))
                    .collect::<String>(),
            )),
            (_, SignalArg::Traces) => {
                let now = now_nanos();
                let spans = (first..first + items)
                    .map(|n| {
                        let mut trace_id = [0u8; 16];
                        trace_id[..8].copy_from_slice(&self.worker.to_be_bytes());
                        trace_id[8..].copy_from_slice(&(n / 10).to_be_bytes());
                        Span {
                            trace_id: trace_id.to_vec(),
                            span_id: ((self.worker << 48) | (n + 1)).to_be_bytes().to_vec(),
                            name: "GET /api/items".into(),
                            kind: 2,
                            start_time_unix_nano: now - 1_000_000,
                            end_time_unix_nano: now,
                            attributes: self.attributes(series(n)),
                            ..Default::default()
                        }
                    })
                    .collect();
                Request::Traces(ExportTraceServiceRequest {
                    resource_spans: vec![ResourceSpans {
                        resource: Some(resource()),
                        scope_spans: vec![ScopeSpans {
                            scope: Some(scope()),
                            spans,
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    }],
                })
            }
            (_, SignalArg::Metrics) => {
                let now = now_nanos();
                let points = (first..first + items)
                    .map(|n| NumberDataPoint {
                        attributes: self.attributes(series(n)),
                        start_time_unix_nano: now - 1_000_000_000,
                        time_unix_nano: now,
                        // The worker and item number as its value: no two points are identical
                        // (an identical point is a re-sent one, and EMF publishes it once).
                        value: Some(number_data_point::Value::AsInt(
                            ((self.worker << 40) + n) as i64,
                        )),
                        ..Default::default()
                    })
                    .collect();
                Request::Metrics(ExportMetricsServiceRequest {
                    resource_metrics: vec![ResourceMetrics {
                        resource: Some(resource()),
                        scope_metrics: vec![ScopeMetrics {
                            scope: Some(scope()),
                            metrics: vec![Metric {
                                name: "loadgen.requests".into(),
                                data: Some(Data::Sum(Sum {
                                    data_points: points,
                                    aggregation_temporality: AggregationTemporality::Delta as i32,
                                    is_monotonic: true,
                                })),
                                ..Default::default()
                            }],
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    }],
                })
            }
            (_, SignalArg::Logs) => {
                let now = now_nanos();
                let records = (first..first + items)
                    .map(|n| LogRecord {
                        time_unix_nano: now,
                        severity_number: 9,
                        severity_text: "INFO".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!("log line {n}"))),
                        }),
                        attributes: self.attributes(series(n)),
                        ..Default::default()
                    })
                    .collect();
                Request::Logs(ExportLogsServiceRequest {
                    resource_logs: vec![ResourceLogs {
                        resource: Some(resource()),
                        scope_logs: vec![ScopeLogs {
                            scope: Some(scope()),
                            log_records: records,
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    }],
                })
            }
        }
    }

    /// X-Ray daemon datagrams: one segment per datagram, joined by a marker the sender splits.
    fn segments(&self, first: u64, items: u64) -> Bytes {
        let now = now_nanos() as f64 / 1e9;
        let mut out = Vec::new();
        for n in first..first + items {
            if n > first {
                out.push(0);
            }
            let _ = write!(
                out,
                "{{\"format\":\"json\",\"version\":1}}\n{{\"name\":\"loadgen\",\"id\":\"{:016x}\",\"trace_id\":\"1-{:08x}-{:012x}{:012x}\",\"start_time\":{now:.6},\"end_time\":{:.6},\"annotations\":{{\"series\":\"s{}\"}}}}",
                (self.worker << 48) | (n + 1),
                (now as u64) as u32,
                self.worker,
                n,
                now + 0.001,
                n % self.options.series.max(1),
            );
        }
        Bytes::from(out)
    }
}

fn resource() -> Resource {
    Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("loadgen".into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "otel-sidecar-loadgen".into(),
        version: crate::VERSION.into(),
        ..Default::default()
    }
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// An OTLP/HTTP endpoint and how to encode for it.
pub struct HttpTarget {
    client: HttpClient,
    base: String,
    encoding: Encoding,
    gzip: bool,
}

/// A connection to the target, shared by the workers.
pub enum Sender {
    Grpc(tonic::transport::Channel, bool),
    Http(Box<HttpTarget>),
    Udp(tokio::net::UdpSocket, String),
}

impl Sender {
    pub async fn connect(options: &LoadOptions) -> Result<Self, String> {
        match options.target {
            Target::OtlpGrpc => {
                let channel =
                    tonic::transport::Endpoint::new(format!("http://{}", options.endpoint()))
                        .map_err(|e| e.to_string())?
                        .connect()
                        .await
                        .map_err(|e| format!("cannot connect to {}: {e}", options.endpoint()))?;
                Ok(Sender::Grpc(channel, options.gzip))
            }
            Target::OtlpHttp => Ok(Sender::Http(Box::new(HttpTarget {
                client: hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http(),
                base: format!("http://{}", options.endpoint()),
                encoding: options.encoding,
                gzip: options.gzip,
            }))),
            Target::XrayUdp | Target::StatsdUdp => {
                let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Sender::Udp(socket, options.endpoint().to_string()))
            }
        }
    }

    /// Sends one request; an error is its kind, for the report.
    pub async fn send(&self, request: Request) -> Result<(), String> {
        match self {
            Sender::Grpc(channel, gzip) => {
                let status = match request {
                    Request::Traces(r) => {
                        let mut client = TraceServiceClient::new(channel.clone());
                        if *gzip {
                            client =
                                client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                        }
                        client.export(r).await.err()
                    }
                    Request::Metrics(r) => {
                        let mut client = MetricsServiceClient::new(channel.clone());
                        if *gzip {
                            client =
                                client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                        }
                        client.export(r).await.err()
                    }
                    Request::Logs(r) => {
                        let mut client = LogsServiceClient::new(channel.clone());
                        if *gzip {
                            client =
                                client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                        }
                        client.export(r).await.err()
                    }
                    Request::Datagram(_) | Request::Encoded(..) => {
                        unreachable!("datagrams go over UDP, fixed bodies over HTTP")
                    }
                };
                match status {
                    None => Ok(()),
                    Some(status) => Err(format!("grpc {:?}", status.code())),
                }
            }
            Sender::Http(target) => {
                let HttpTarget {
                    client,
                    base,
                    encoding,
                    gzip,
                } = target.as_ref();
                let (path, body) = match (request, encoding) {
                    (Request::Encoded(path, body), _) => {
                        return post(client, format!("{base}{path}"), body, *encoding, false).await;
                    }
                    (Request::Traces(r), Encoding::Protobuf) => ("/v1/traces", r.encode_to_vec()),
                    (Request::Traces(r), Encoding::Json) => (
                        "/v1/traces",
                        serde_json::to_vec(&r).map_err(|e| e.to_string())?,
                    ),
                    (Request::Metrics(r), Encoding::Protobuf) => ("/v1/metrics", r.encode_to_vec()),
                    (Request::Metrics(r), Encoding::Json) => (
                        "/v1/metrics",
                        serde_json::to_vec(&r).map_err(|e| e.to_string())?,
                    ),
                    (Request::Logs(r), Encoding::Protobuf) => ("/v1/logs", r.encode_to_vec()),
                    (Request::Logs(r), Encoding::Json) => (
                        "/v1/logs",
                        serde_json::to_vec(&r).map_err(|e| e.to_string())?,
                    ),
                    (Request::Datagram(_), _) => unreachable!("datagrams go over UDP"),
                };
                let body = if *gzip {
                    let mut encoder =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    encoder.write_all(&body).map_err(|e| e.to_string())?;
                    encoder.finish().map_err(|e| e.to_string())?
                } else {
                    body
                };
                post(
                    client,
                    format!("{base}{path}"),
                    body.into(),
                    *encoding,
                    *gzip,
                )
                .await
            }
            Sender::Udp(socket, endpoint) => {
                let Request::Datagram(bytes) = request else {
                    unreachable!("UDP targets get datagrams")
                };
                // X-Ray datagrams carry one segment each: split at the generator's markers.
                for datagram in bytes.split(|b| *b == 0) {
                    socket
                        .send_to(datagram, endpoint.as_str())
                        .await
                        .map_err(|e| format!("udp: {e}"))?;
                }
                Ok(())
            }
        }
    }
}

/// Posts one OTLP/HTTP body; an error is its kind, for the report.
async fn post(
    client: &HttpClient,
    url: String,
    body: Bytes,
    encoding: Encoding,
    gzip: bool,
) -> Result<(), String> {
    let mut builder = hyper::Request::post(url).header(
        "content-type",
        match encoding {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        },
    );
    if gzip {
        builder = builder.header("content-encoding", "gzip");
    }
    let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("http connect: {e}"))?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("http {}", status.as_u16()))
    }
}
