//! Hot paths of the foundation: OTLP protobuf and JSON decode, and batch splitting.
//! `cargo bench --bench pipeline` (add `-- --quick` for a fast pass).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otel_sidecar::pipeline::Payload;
use otel_sidecar::receivers::otlp::json;
use prost::Message;
use std::hint::black_box;

const SPANS: usize = 100;

fn request() -> ExportTraceServiceRequest {
    let spans = (0..SPANS)
        .map(|i| Span {
            trace_id: vec![7; 16],
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: format!("GET /api/items/{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_001_000_000,
            attributes: (0..8)
                .map(|a| KeyValue {
                    key: format!("attribute.{a}"),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(format!("value-{a}-{i}"))),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn decode(c: &mut Criterion) {
    let request = request();
    let protobuf = request.encode_to_vec();
    let json_body = serde_json::to_vec(&request).unwrap();
    let mut group = c.benchmark_group("otlp_decode");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("protobuf_100_spans", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(&protobuf[..])).unwrap())
    });
    group.bench_function("json_100_spans", |b| {
        b.iter(|| json::decode::<ExportTraceServiceRequest>(black_box(&json_body)).unwrap())
    });
    group.finish();
}

fn split(c: &mut Criterion) {
    let payload = Payload::Traces(request().resource_spans);
    let mut group = c.benchmark_group("batch_split");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("split_100_spans_in_4", |b| {
        b.iter_batched(
            || payload.clone(),
            |mut p| {
                while p.item_count() > 0 {
                    black_box(p.split_off_front(25));
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn statsd(c: &mut Criterion) {
    use otel_sidecar::receivers::statsd::{aggregate, parse};
    // 1,000 lines over 250 series: the shape of a busy API task's StatsD traffic.
    let datagram: String = (0..1000)
        .map(|i| match i % 4 {
            0 => format!("api.requests:1|c|#route:/r{},code:200\n", i % 250),
            1 => format!("api.latency:{}|ms|#route:/r{}\n", i % 97, i % 250),
            2 => format!("api.depth:{}|g\n", i % 13),
            _ => format!("api.bytes:{}|h|@0.5|#route:/r{}\n", i * 7 % 1000, i % 250),
        })
        .collect();
    let mut aggregator = aggregate::Aggregator::new(aggregate::AggregationSettings::default(), 0);
    let mut group = c.benchmark_group("statsd");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("parse_and_aggregate_1000_lines", |b| {
        b.iter(|| {
            for line in datagram.lines() {
                aggregator.add(&parse::parse_line(black_box(line), false).unwrap(), 1);
            }
        })
    });
    group.finish();
}

fn budget(c: &mut Criterion) {
    use otel_sidecar::exporters::awsemf::budget::{BudgetConfig, CardinalityBudget};
    use otel_sidecar::exporters::awsemf::labels::Labels;
    let mut budget = CardinalityBudget::new(BudgetConfig::with_max_metrics(10_000));
    budget.advance(0);
    let labels = Labels::from_pairs([
        ("OTelLib", "statsd"),
        ("route", "/api/chat"),
        ("code", "200"),
    ]);
    let set: Vec<&str> = labels.keys().collect();
    let id = budget
        .hasher()
        .identity("ECS/OTEL/VM-X-AI", "requests", &set, &labels);
    budget.admit("ECS/OTEL/VM-X-AI", "requests", &[id], &labels);
    let mut group = c.benchmark_group("cardinality_budget");
    group.throughput(Throughput::Elements(1));
    group.bench_function("admit_admitted_metric", |b| {
        b.iter(|| {
            let id = budget.hasher().identity(
                black_box("ECS/OTEL/VM-X-AI"),
                black_box("requests"),
                &set,
                &labels,
            );
            budget.admit("ECS/OTEL/VM-X-AI", "requests", &[id], &labels)
        })
    });
    // The same with a fleet-wide budget: an identity the fleet admitted is a local lookup too.
    use otel_sidecar::exporters::awsemf::fleet::{FleetRequest, FleetVerdict, PendingPoint};
    let mut shared = CardinalityBudget::shared(BudgetConfig::with_max_metrics(10_000));
    shared.advance(0);
    let request = FleetRequest {
        hour: 0,
        pending: vec![PendingPoint {
            name: "requests".into(),
            overflow: 1,
            identities: vec![id],
        }],
        seen: vec![],
    };
    shared.learn(&request, &[FleetVerdict::Admitted], 2);
    group.bench_function("admit_admitted_metric_shared", |b| {
        b.iter(|| {
            let id = shared.hasher().identity(
                black_box("ECS/OTEL/VM-X-AI"),
                black_box("requests"),
                &set,
                &labels,
            );
            shared.admit("ECS/OTEL/VM-X-AI", "requests", &[id], &labels)
        })
    });
    group.finish();
}

fn xray(c: &mut Criterion) {
    use otel_sidecar::exporters::awsxray::translate::{
        ResourceContext, TranslateSettings, span_documents,
    };
    use otel_sidecar::receivers::awsxray::translate::datagram_to_resource_spans;
    let request = request();
    let resource = vec![KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("checkout".into())),
        }),
        ..Default::default()
    }];
    let spans = &request.resource_spans[0].scope_spans[0].spans;
    let settings = TranslateSettings::default();
    let mut group = c.benchmark_group("xray");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("span_to_document_100_spans", |b| {
        b.iter(|| {
            // As the exporter does: the resource's part once per resource.
            let context = ResourceContext::new(&resource, &settings);
            for span in spans {
                let span = otel_sidecar::pipeline::view::SpanView::from(black_box(span));
                let docs = span_documents(&span, &context, &settings).unwrap();
                black_box(serde_json::to_string(&docs[0]).unwrap());
            }
        })
    });
    let datagram = br#"{"format":"json","version":1}
{"name":"checkout","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1478293361.271,"end_time":1478293361.449,"http":{"request":{"method":"GET","url":"http://shop/cart"},"response":{"status":200}},"aws":{"xray":{"sdk":"X-Ray for Python","sdk_version":"2.15.0"}},"annotations":{"tenant":"acme"},"subsegments":[{"name":"prices","id":"53995c3f42cd8ad8","start_time":1478293361.3,"end_time":1478293361.4,"namespace":"remote"}]}"#;
    group.throughput(Throughput::Elements(1));
    group.bench_function("datagram_to_spans", |b| {
        b.iter(|| datagram_to_resource_spans(black_box(datagram)).unwrap())
    });
    group.finish();
}

fn emf(c: &mut Criterion) {
    use opentelemetry_proto::tonic::metrics::v1::{
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric::Data,
        number_data_point,
    };
    use otel_sidecar::exporters::awsemf::translate::{EmfSettings, translate};
    let points: Vec<NumberDataPoint> = (0..1000)
        .map(|i| NumberDataPoint {
            attributes: vec![
                KeyValue {
                    key: "route".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(format!("/r{}", i % 50))),
                    }),
                    ..Default::default()
                },
                KeyValue {
                    key: "code".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(format!("{}", 200 + i % 4))),
                    }),
                    ..Default::default()
                },
            ],
            time_unix_nano: 1_700_000_000_000_000_000 + (i / 200) as u64 * 1_000_000_000,
            value: Some(number_data_point::Value::AsInt(i)),
            ..Default::default()
        })
        .collect();
    let batch = vec![ResourceMetrics {
        scope_metrics: vec![ScopeMetrics {
            metrics: vec![Metric {
                name: "requests".into(),
                data: Some(Data::Sum(Sum {
                    data_points: points,
                    aggregation_temporality: 1,
                    is_monotonic: true,
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }];
    let settings = EmfSettings {
        namespace: "ECS/OTEL/VM-X-AI".into(),
        log_group_name: "/aws/ecs/application/metrics".into(),
        log_stream_name: "s".into(),
        ..Default::default()
    };
    let mut group = c.benchmark_group("emf");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("translate_1000_points", |b| {
        b.iter(|| {
            let mut deltas = Default::default();
            translate(black_box(&batch), &settings, &mut deltas, None, 0)
        })
    });
    // The OpenTelemetry SDKs' default: cumulative sums, every series already seen (steady state).
    let mut cumulative = batch.clone();
    if let Some(Data::Sum(sum)) = &mut cumulative[0].scope_metrics[0].metrics[0].data {
        sum.aggregation_temporality = 2;
        for (i, point) in sum.data_points.iter_mut().enumerate() {
            point.attributes[0].value = Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!("/r{i}"))),
            });
        }
    }
    let mut deltas = Default::default();
    translate(&cumulative, &settings, &mut deltas, None, 0);
    group.bench_function("translate_1000_cumulative_points", |b| {
        b.iter(|| translate(black_box(&cumulative), &settings, &mut deltas, None, 0))
    });
    group.finish();
}

criterion_group!(benches, decode, split, statsd, budget, xray, emf);
criterion_main!(benches);
