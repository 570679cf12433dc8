use super::*;
use crate::config::Signal;
use crate::exporters::awsemf::delta::DeltaCache;
use crate::exporters::awsemf::translate::{self, EmfSettings};
use crate::pipeline::view::read_metrics;
use crate::pipeline::{EncodedPayload, Payload};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, Gauge, Histogram, ScopeMetrics, Sum, Summary,
    exponential_histogram_data_point::Buckets, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const METRICS: &[u8] = include_bytes!("../../../../benches/workload/metrics.pb");
const T: u64 = 1_767_225_600_000_000_000;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(text: &str) -> Value {
    Value::StringValue(text.into())
}

fn number(
    attributes: Vec<KeyValue>,
    start: u64,
    value: number_data_point::Value,
) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: T + 1_000_000_000,
        value: Some(value),
        ..Default::default()
    }
}

/// Every kind of metric the EMF translation reads, `shift` seconds later (cumulative values
/// grow with it): gauges of both number types, a monotonic cumulative sum, an up-down counter,
/// histograms with and without sum/min/max, an exponential histogram with both bucket sides,
/// a summary with quantiles, a metric without data; resource attributes with a key without a
/// value and an array; a second scope without an `InstrumentationScope`.
fn rich_request(shift: u64) -> ExportMetricsServiceRequest {
    use number_data_point::Value::{AsDouble, AsInt};
    let later = |mut p: NumberDataPoint| {
        p.time_unix_nano += shift * 1_000_000_000;
        p
    };
    let route = || {
        vec![
            kv("route", s("/orders")),
            kv("status", Value::IntValue(200)),
        ]
    };
    let metric = |name: &str, unit: &str, data: Data| Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    };
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = vec![
        metric(
            "queue.depth",
            "1",
            Data::Gauge(Gauge {
                data_points: vec![
                    later(number(route(), 0, AsInt(-3))),
                    later(number(vec![kv("pool", s("b"))], 0, AsDouble(0.25))),
                    NumberDataPoint {
                        flags: 1,
                        ..later(number(vec![], 0, AsDouble(1.0)))
                    },
                ],
            }),
        ),
        metric(
            "http.server.requests",
            "{request}",
            Data::Sum(Sum {
                data_points: vec![later(number(route(), T, AsInt(10 + shift as i64 * 5)))],
                aggregation_temporality: cumulative,
                is_monotonic: true,
            }),
        ),
        metric(
            "connections.open",
            "",
            Data::Sum(Sum {
                data_points: vec![later(number(route(), T, AsDouble(7.0)))],
                aggregation_temporality: cumulative,
                is_monotonic: false,
            }),
        ),
        metric(
            "http.server.duration",
            "ms",
            Data::Histogram(Histogram {
                data_points: vec![
                    HistogramDataPoint {
                        attributes: route(),
                        start_time_unix_nano: T,
                        time_unix_nano: T + shift * 1_000_000_000,
                        count: 4 + shift,
                        sum: Some(40.5 + shift as f64),
                        min: Some(0.5),
                        max: Some(30.0),
                        bucket_counts: vec![1, 2, 1 + shift],
                        explicit_bounds: vec![1.0, 10.0],
                        ..Default::default()
                    },
                    HistogramDataPoint {
                        attributes: vec![kv("pool", s("b"))],
                        time_unix_nano: T + shift * 1_000_000_000,
                        count: 2,
                        ..Default::default()
                    },
                ],
                aggregation_temporality: AggregationTemporality::Delta as i32,
            }),
        ),
        metric(
            "payload.size",
            "By",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    attributes: route(),
                    start_time_unix_nano: T,
                    time_unix_nano: T + shift * 1_000_000_000,
                    count: 9 + shift,
                    sum: Some(120.0 + shift as f64),
                    scale: 1,
                    zero_count: 1,
                    positive: Some(Buckets {
                        offset: 3,
                        bucket_counts: vec![2, 0, 4 + shift],
                    }),
                    negative: Some(Buckets {
                        offset: -2,
                        bucket_counts: vec![2],
                    }),
                    min: Some(-1.0),
                    max: Some(40.0),
                    ..Default::default()
                }],
                aggregation_temporality: cumulative,
            }),
        ),
        metric(
            "gc.pause",
            "s",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    attributes: vec![kv("gen", Value::IntValue(2))],
                    start_time_unix_nano: T,
                    time_unix_nano: T + shift * 1_000_000_000,
                    count: 3,
                    sum: 0.75,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.0,
                            value: 0.1,
                        },
                        ValueAtQuantile {
                            quantile: 1.0,
                            value: 0.4,
                        },
                    ],
                    ..Default::default()
                }],
            }),
        ),
        Metric {
            name: "no.data".into(),
            ..Default::default()
        },
    ];
    let resource = Resource {
        attributes: vec![
            kv("service.name", s("orders-api")),
            kv(
                "host.ips",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(s("10.0.0.1")),
                    }],
                }),
            ),
            KeyValue {
                key: "no value".into(),
                value: None,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![
                ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "orders".into(),
                        version: "1.2.0".into(),
                        attributes: vec![kv("meter", s("a"))],
                        ..Default::default()
                    }),
                    metrics: metrics.clone(),
                    ..Default::default()
                },
                ScopeMetrics {
                    scope: None,
                    metrics: metrics[..2].to_vec(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
    }
}

/// The views of an encoded request's entries, and of the same request decoded by prost; false
/// when the scan refuses the body.
fn both_views(body: &[u8], check: impl Fn(&ResourceMetricsView, &ResourceMetricsView)) -> bool {
    let Ok(encoded) = EncodedPayload::scan(Signal::Metrics, Bytes::copy_from_slice(body)) else {
        return false;
    };
    for entry in encoded.entries() {
        let decoded = ExportMetricsServiceRequest::decode(entry.bytes.as_ref()).unwrap();
        let owned = ResourceMetricsView::from(&decoded.resource_metrics[0]);
        if !entry.merges {
            check(&ResourceMetricsView::parse_entry(&entry.bytes), &owned);
        }
    }
    true
}

/// The EMF events of each body in turn, through one delta cache, read through `read_metrics`
/// from the payload `payload` makes of the body.
fn events(
    bodies: &[Vec<u8>],
    settings: &EmfSettings,
    payload: fn(&[u8]) -> Payload,
) -> Vec<String> {
    let mut deltas = DeltaCache::default();
    let mut out = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let now_ms = 1_767_225_700_000 + i as i64;
        deltas.advance(now_ms);
        read_metrics(&payload(body), |views| {
            let grouped = translate::group(views, settings, &mut deltas, now_ms);
            let (events, _) = translate::render(&grouped, settings, None);
            out.extend(events.iter().map(|event| event.message()));
        })
        .expect("a metrics payload");
    }
    out
}

fn encoded(body: &[u8]) -> Payload {
    Payload::Encoded(EncodedPayload::scan(Signal::Metrics, Bytes::copy_from_slice(body)).unwrap())
}

fn owned(body: &[u8]) -> Payload {
    Payload::Metrics(
        ExportMetricsServiceRequest::decode(body)
            .unwrap()
            .resource_metrics,
    )
}

#[test]
fn a_view_of_the_bytes_reads_what_prost_decodes_and_translates_the_same() {
    let rich = [
        rich_request(0).encode_to_vec(),
        rich_request(60).encode_to_vec(),
    ];
    for body in rich.iter().chain([&METRICS.to_vec()]) {
        assert!(both_views(body, |bytes, owned| assert_eq!(bytes, owned)));
    }
    for detailed_metrics in [false, true] {
        let settings = EmfSettings {
            namespace: "ECS/Test".into(),
            detailed_metrics,
            resource_to_telemetry: true,
            ..Default::default()
        };
        let from_bytes = events(&rich, &settings, encoded);
        assert_eq!(from_bytes, events(&rich, &settings, owned));
        // Every kind made it into an event: the second round has the cumulative deltas.
        for name in [
            "queue.depth",
            "http.server.requests",
            "connections.open",
            "http.server.duration",
            "payload.size",
        ] {
            assert!(
                from_bytes.iter().any(|event| event.contains(name)),
                "{name} in {from_bytes:?}"
            );
        }
        assert!(from_bytes.iter().any(|e| e.contains("\"no value\":\"\"")));
        assert!(from_bytes.iter().any(|e| e.contains("gc.pause")));
        let workload = [METRICS.to_vec()];
        let from_bytes = events(&workload, &settings, encoded);
        assert!(from_bytes.len() >= 50);
        assert_eq!(from_bytes, events(&workload, &settings, owned));
    }
}

/// Every single-byte change of the request that still scans reads the same through the view
/// as through prost.
#[test]
fn changed_bytes_read_the_same_through_the_view() {
    let body = rich_request(0).encode_to_vec();
    let mut changed = body.clone();
    let mut scanned = 0;
    for at in 0..body.len() {
        for value in [0x00, 0x01, 0x0a, 0x12, 0x7f, 0x80, 0xff] {
            changed[at] = value;
            scanned += usize::from(both_views(&changed, |bytes, owned| {
                assert_eq!(bytes, owned, "byte {at} set to {value:#x}");
            }));
            changed[at] = body[at];
        }
    }
    assert!(scanned > body.len(), "most changes still scan");
}

#[test]
fn a_metric_with_two_data_fields_reads_as_a_decoder_does() {
    // Another kind replaces the data; the same kind again merges into it, which the scan marks
    // so that the entry is read decoded.
    let gauge = |value: f64| Metric {
        name: "m".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![number(vec![], 0, number_data_point::Value::AsDouble(value))],
        })),
        ..Default::default()
    };
    let sum = Metric {
        name: "m".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![number(vec![], 0, number_data_point::Value::AsInt(5))],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    // Field 5 (gauge) then field 7 (sum), then, separately, field 5 twice.
    let data_field = |metric: &Metric| {
        let mut bytes = metric.encode_to_vec();
        bytes.drain(..3); // the name: tag, length 1, "m"
        bytes
    };
    let request = |data: Vec<u8>| {
        let mut metric = Metric {
            name: "m".into(),
            ..Default::default()
        }
        .encode_to_vec();
        metric.extend(data);
        let mut scope = vec![2 << 3 | 2];
        prost::encoding::encode_varint(metric.len() as u64, &mut scope);
        scope.extend(metric);
        let mut entry = vec![2 << 3 | 2];
        prost::encoding::encode_varint(scope.len() as u64, &mut entry);
        entry.extend(scope);
        let mut body = vec![1 << 3 | 2];
        prost::encoding::encode_varint(entry.len() as u64, &mut body);
        body.extend(entry);
        body
    };
    let replaced = request([data_field(&gauge(1.0)), data_field(&sum)].concat());
    let merged = request([data_field(&gauge(1.0)), data_field(&gauge(2.0))].concat());
    for (body, merges, points) in [(&replaced, false, 1), (&merged, true, 2)] {
        let payload = encoded(body);
        let Payload::Encoded(scanned) = &payload else {
            unreachable!()
        };
        assert_eq!(scanned.entries()[0].merges, merges);
        let read = read_metrics(&payload, |views| {
            match views[0].scopes[0].metrics[0].data.as_ref() {
                Some(MetricDataView::Sum { points, .. }) => ("sum", points.len()),
                Some(MetricDataView::Gauge(points)) => ("gauge", points.len()),
                other => panic!("{other:?}"),
            }
        });
        let kind = if merges { "gauge" } else { "sum" };
        assert_eq!(read, Some((kind, points)));
    }
}
