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
    use std::collections::BTreeMap;
    let mut budget = CardinalityBudget::new(BudgetConfig::with_max_metrics(10_000));
    budget.advance(0);
    let labels: BTreeMap<String, String> = [
        ("OTelLib", "statsd"),
        ("route", "/api/chat"),
        ("code", "200"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let set: Vec<String> = labels.keys().cloned().collect();
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
    group.finish();
}

criterion_group!(benches, decode, split, statsd, budget);
criterion_main!(benches);
