//! Metrics in, EMF documents out.

use super::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ScopeMetrics, Sum, SummaryDataPoint, exponential_histogram_data_point::Buckets, metric::Data,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::json;

const STATSD_SCOPE: &str =
    "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/statsdreceiver";
const T: u64 = 1_767_225_600_000_000_000;

fn s(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Av::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn settings() -> EmfSettings {
    EmfSettings {
        namespace: "ECS/OTEL/VM-X-AI".into(),
        log_group_name: "/aws/ecs/application/metrics".into(),
        log_stream_name: "stream".into(),
        delta: DeltaPolicy {
            started_at: T - 1_000_000_000,
            retain_initial_value: false,
        },
        ..Default::default()
    }
}

fn point(attributes: Vec<KeyValue>, value: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: T,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn batch(scope: &str, metrics: Vec<Metric>) -> Vec<ResourceMetrics> {
    vec![ResourceMetrics {
        resource: Some(Resource::default()),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: scope.into(),
                ..Default::default()
            }),
            metrics,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }]
}

fn delta_sum(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: false,
        })),
        ..Default::default()
    }
}

fn cumulative_sum(name: &str, start: u64, value: f64) -> Metric {
    let mut p = point(vec![], value);
    p.start_time_unix_nano = start;
    Metric {
        name: name.into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![p],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn run(
    batch: &[ResourceMetrics],
    settings: &EmfSettings,
    cache: &mut DeltaCache,
) -> (Vec<Value>, TranslateStats) {
    let (events, stats) = translate(batch, settings, cache, None, 42);
    (
        events
            .iter()
            .map(|e| serde_json::from_str(&e.message()).unwrap())
            .collect(),
        stats,
    )
}

#[test]
fn a_statsd_counter_becomes_the_collectors_document() {
    let (docs, _) = run(
        &batch(
            STATSD_SCOPE,
            vec![delta_sum("req", vec![point(vec![s("route", "/a")], 42.0)])],
        ),
        &settings(),
        &mut DeltaCache::default(),
    );
    assert_eq!(
        docs,
        vec![json!({
            "OTelLib": STATSD_SCOPE, "Version": "1",
            "_aws": {"CloudWatchMetrics": [{"Namespace": "ECS/OTEL/VM-X-AI", "Dimensions": [["OTelLib"], ["OTelLib", "route"]],
                      "Metrics": [{"Name": "req", "Unit": "", "StorageResolution": 60}]}], "Timestamp": 1_767_225_600_000i64},
            "req": 42.0, "route": "/a"
        })]
    );
}

#[test]
fn rollup_options() {
    let labels = Labels::from_pairs([("OTelLib", "x"), ("route", "/a"), ("method", "GET")]);
    let sets = |rollup| dimension_sets(&labels, rollup);
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        sets(DimensionRollup::ZeroAndSingleDimensionRollup),
        vec![
            v(&["OTelLib", "method", "route"]),
            v(&["OTelLib"]),
            v(&["OTelLib", "method"]),
            v(&["OTelLib", "route"])
        ]
    );
    assert_eq!(
        sets(DimensionRollup::SingleDimensionRollupOnly),
        vec![
            v(&["OTelLib", "method", "route"]),
            v(&["OTelLib", "method"]),
            v(&["OTelLib", "route"])
        ]
    );
    assert_eq!(
        sets(DimensionRollup::NoDimensionRollup),
        vec![v(&["OTelLib", "method", "route"])]
    );
    let only_lib = Labels::from_pairs([("OTelLib", "x")]);
    assert_eq!(
        dimension_sets(&only_lib, DimensionRollup::ZeroAndSingleDimensionRollup),
        vec![v(&["OTelLib"])]
    );
}

#[test]
fn units_and_descriptors() {
    assert_eq!(cloudwatch_unit("ms"), "Milliseconds");
    assert_eq!(cloudwatch_unit("By"), "Bytes");
    assert_eq!(cloudwatch_unit("1"), "");
    assert_eq!(cloudwatch_unit("Count"), "Count");
    let mut cfg = settings();
    cfg.descriptors
        .insert("req".into(), ("Count".into(), false));
    let mut m = delta_sum("req", vec![point(vec![], 1.0)]);
    let (docs, _) = run(
        &batch("lib", vec![m.clone()]),
        &cfg,
        &mut DeltaCache::default(),
    );
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
        "Count"
    );
    m.unit = "ms".into();
    let (docs, _) = run(&batch("lib", vec![m]), &cfg, &mut DeltaCache::default());
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Milliseconds",
        "no overwrite"
    );
}

#[test]
fn cumulative_sums_become_deltas_including_the_first_point() {
    let cfg = settings();
    let mut cache = DeltaCache::default();
    let start = cfg.delta.started_at + 5;
    let values: Vec<f64> = [10.0, 15.0, 22.0]
        .iter()
        .map(|v| {
            run(
                &batch("lib", vec![cumulative_sum("c", start, *v)]),
                &cfg,
                &mut cache,
            )
            .0[0]["c"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(values, vec![10.0, 5.0, 7.0]);
    // A non-monotonic sum (an up-down counter) is a level: 5, 3, 4 is published as 5, 3, 4,
    // the first point included, even for a series older than the sidecar.
    let levels: Vec<f64> = [5.0, 3.0, 4.0]
        .iter()
        .map(|v| {
            let mut level = cumulative_sum("u", cfg.delta.started_at - 10, *v);
            let Some(Data::Sum(sum)) = level.data.as_mut() else {
                panic!()
            };
            sum.is_monotonic = false;
            run(&batch("lib", vec![level]), &cfg, &mut cache).0[0]["u"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(levels, vec![5.0, 3.0, 4.0]);
    // A new start time is a restart: the value counts from zero again.
    let (docs, _) = run(
        &batch("lib", vec![cumulative_sum("c", start + 100, 3.0)]),
        &cfg,
        &mut cache,
    );
    assert_eq!(docs[0]["c"], 3.0);
}

#[test]
fn a_series_older_than_the_sidecar_loses_only_its_first_point() {
    let cfg = settings();
    let mut cache = DeltaCache::default();
    let (docs, stats) = run(
        &batch(
            "lib",
            vec![cumulative_sum("c", cfg.delta.started_at - 10, 100.0)],
        ),
        &cfg,
        &mut cache,
    );
    assert!(docs.is_empty());
    assert_eq!(stats.first_cumulative_points, 1);
    let (docs, _) = run(
        &batch(
            "lib",
            vec![cumulative_sum("c", cfg.delta.started_at - 10, 130.0)],
        ),
        &cfg,
        &mut cache,
    );
    assert_eq!(docs[0]["c"], 30.0);
    let mut retain = settings();
    retain.delta.retain_initial_value = true;
    let (docs, _) = run(
        &batch(
            "lib",
            vec![cumulative_sum("c", retain.delta.started_at - 10, 100.0)],
        ),
        &retain,
        &mut DeltaCache::default(),
    );
    assert_eq!(docs[0]["c"], 100.0);
}

#[test]
fn a_second_value_gets_its_own_event_and_the_same_point_again_is_published_once() {
    let m = |value| delta_sum("req", vec![point(vec![s("a", "1")], value)]);
    let other = delta_sum("other", vec![point(vec![s("a", "1")], 9.0)]);
    let (docs, stats) = run(
        &batch(
            "lib",
            vec![
                m(1.0),
                m(2.0),
                m(1.0),
                m(2.0),
                m(1.0),
                m(3.0),
                m(3.0),
                other,
            ],
        ),
        &settings(),
        &mut DeltaCache::default(),
    );
    let values: Vec<f64> = docs.iter().map(|d| d["req"].as_f64().unwrap()).collect();
    assert_eq!(values, vec![1.0, 2.0, 3.0], "no value lost, none twice");
    assert_eq!(stats.duplicate_points, 4);
    // Another metric of the series joins the first event.
    assert_eq!(docs[0]["other"], 9.0);
    assert!(docs[1..].iter().all(|d| d.get("other").is_none()));
}

#[test]
fn equal_deltas_of_two_collections_in_one_millisecond_are_both_published() {
    // Cumulative 1, 2, 3, 4 collected within the same millisecond: the deltas are 1, 1, 1, 1,
    // alike in value and millisecond but not re-sent points (their times differ).
    let cfg = settings();
    let start = cfg.delta.started_at + 5;
    let collection = |offset_ns: u64, value: f64| {
        let mut metric = cumulative_sum("c", start, value);
        if let Some(Data::Sum(sum)) = metric.data.as_mut() {
            sum.data_points[0].time_unix_nano = T + offset_ns;
        }
        metric
    };
    let (docs, stats) = run(
        &batch(
            "lib",
            vec![
                collection(0, 1.0),
                collection(200_000, 2.0),
                collection(400_000, 3.0),
                collection(600_000, 4.0),
            ],
        ),
        &cfg,
        &mut DeltaCache::default(),
    );
    let total: f64 = docs.iter().map(|d| d["c"].as_f64().unwrap()).sum();
    assert_eq!(total, 4.0, "{docs:?}");
    assert_eq!(stats.duplicate_points, 0);
}

#[test]
fn gauges_and_sums_with_the_same_labels_share_nothing_but_gauges_group() {
    let g = |name: &str| Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![point(vec![s("a", "1")], 2.0)],
        })),
        ..Default::default()
    };
    let (docs, _) = run(
        &batch(
            "lib",
            vec![
                g("x"),
                g("y"),
                delta_sum("z", vec![point(vec![s("a", "1")], 3.0)]),
            ],
        ),
        &settings(),
        &mut DeltaCache::default(),
    );
    assert_eq!(docs.len(), 2);
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn directives_hold_at_most_100_metrics() {
    let metrics: Vec<Metric> = (0..250)
        .map(|i| Metric {
            name: format!("m{i:03}"),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![point(vec![], 1.0)],
            })),
            ..Default::default()
        })
        .collect();
    let (docs, _) = run(
        &batch("lib", metrics),
        &settings(),
        &mut DeltaCache::default(),
    );
    assert_eq!(docs.len(), 1);
    let directives = docs[0]["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    let sizes: Vec<usize> = directives
        .iter()
        .map(|d| d["Metrics"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![100, 100, 50]);
}

#[test]
fn dimension_sets_over_30_keys_are_left_out_and_counted() {
    let exactly: Vec<KeyValue> = (0..29).map(|i| s(&format!("k{i:02}"), "v")).collect();
    let (docs, stats) = run(
        &batch("lib", vec![delta_sum("m", vec![point(exactly, 1.0)])]),
        &settings(),
        &mut DeltaCache::default(),
    );
    assert_eq!(
        stats.dimension_sets_over_limit, 0,
        "29 labels + OTelLib = 30 keys is allowed"
    );
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
            .as_array()
            .unwrap()
            .len(),
        30
    );
    let over: Vec<KeyValue> = (0..30).map(|i| s(&format!("k{i:02}"), "v")).collect();
    let (docs, stats) = run(
        &batch("lib", vec![delta_sum("m", vec![point(over, 1.0)])]),
        &settings(),
        &mut DeltaCache::default(),
    );
    assert_eq!(stats.dimension_sets_over_limit, 1);
    let dims = docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        .as_array()
        .unwrap();
    assert!(dims.iter().all(|d| d.as_array().unwrap().len() <= 30));
    assert_eq!(docs[0]["k29"], "v", "labels stay as fields");
}

#[test]
fn histograms_are_statistics_and_delta_converted() {
    let h = |count: u64, sum: f64| Metric {
        name: "lat".into(),
        unit: "ms".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                start_time_unix_nano: T - 10,
                time_unix_nano: T,
                count,
                sum: Some(sum),
                min: Some(1.0),
                max: Some(9.0),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    let mut cache = DeltaCache::default();
    let (docs, _) = run(&batch("lib", vec![h(3, 12.0)]), &settings(), &mut cache);
    assert_eq!(
        docs[0]["lat"],
        json!({"Max": 9.0, "Min": 1.0, "Count": 3, "Sum": 12.0})
    );
    let (docs, _) = run(&batch("lib", vec![h(5, 20.0)]), &settings(), &mut cache);
    assert_eq!(docs[0]["lat"]["Count"], 2);
    assert_eq!(docs[0]["lat"]["Sum"], 8.0);
}

#[test]
fn exponential_histograms_become_values_and_counts_in_chunks_of_100() {
    let p = ExponentialHistogramDataPoint {
        time_unix_nano: T,
        count: 260,
        sum: Some(1000.0),
        scale: 0,
        zero_count: 10,
        positive: Some(Buckets {
            offset: 0,
            bucket_counts: vec![1; 250],
        }),
        min: Some(0.0),
        max: Some(500.0),
        ..Default::default()
    };
    let values = exponential_values(&p);
    assert_eq!(values.len(), 3);
    let EmfValue::Distribution {
        values: v0,
        counts: c0,
        sum,
        ..
    } = &values[0]
    else {
        panic!()
    };
    assert_eq!((v0.len(), c0.len(), *sum), (100, 100, 1000.0));
    assert_eq!(
        v0[0],
        (2f64.powi(249) + 2f64.powi(250)) / 2.0,
        "highest bucket first"
    );
    let EmfValue::Distribution {
        values: last,
        counts,
        sum,
        ..
    } = &values[2]
    else {
        panic!()
    };
    assert_eq!(
        (
            last.len(),
            *last.last().unwrap(),
            *counts.last().unwrap(),
            *sum
        ),
        (51, 0.0, 10.0, 0.0)
    );
    let metric = Metric {
        name: "t".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![p],
            aggregation_temporality: 1,
        })),
        ..Default::default()
    };
    let (docs, _) = run(
        &batch("lib", vec![metric]),
        &settings(),
        &mut DeltaCache::default(),
    );
    assert_eq!(docs.len(), 3, "each chunk is its own event");
}

#[test]
fn non_finite_and_unrecorded_points_are_skipped() {
    let mut flagged = point(vec![], 1.0);
    flagged.flags = 1;
    let m = Metric {
        name: "g".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![point(vec![], f64::NAN), flagged, point(vec![], 2.0)],
        })),
        ..Default::default()
    };
    let (docs, stats) = run(
        &batch("lib", vec![m]),
        &settings(),
        &mut DeltaCache::default(),
    );
    assert_eq!(stats.skipped_points, 2);
    assert_eq!(docs.len(), 1);
}

#[test]
fn placeholders_resolve_from_the_resource() {
    let resource = Labels::from_pairs([("aws.ecs.task.id", "abc123"), ("service.name", "api")]);
    assert_eq!(replace_placeholders("{TaskId}", &resource), "abc123");
    assert_eq!(
        replace_placeholders("/ecs/{ServiceName}/{ClusterName}", &resource),
        "/ecs/api/undefined"
    );
    assert_eq!(replace_placeholders("plain", &resource), "plain");
}

#[test]
fn version_zero_layout() {
    let cfg = EmfSettings {
        version_zero: true,
        ..settings()
    };
    let (docs, _) = run(
        &batch("lib", vec![delta_sum("req", vec![point(vec![], 1.0)])]),
        &cfg,
        &mut DeltaCache::default(),
    );
    assert_eq!(docs[0]["Version"], "0");
    assert_eq!(docs[0]["Timestamp"], "1767225600000");
    assert!(docs[0]["CloudWatchMetrics"].is_array() && docs[0].get("_aws").is_none());
}

#[test]
fn oversized_events_split_by_metric_into_valid_json() {
    let big = "v".repeat(2000);
    let labels: Vec<KeyValue> = vec![s("tag", &big)];
    let metrics: Vec<Metric> = (0..3000)
        .map(|i| Metric {
            name: format!("metric_with_a_long_name_{i:05}"),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![point(labels.clone(), 1.0)],
            })),
            ..Default::default()
        })
        .collect();
    let (events, _) = translate(
        &batch("lib", metrics),
        &settings(),
        &mut DeltaCache::default(),
        None,
        0,
    );
    assert!(events.len() > 1);
    let mut names = 0;
    for event in &events {
        assert!(event.size <= MAX_EVENT_BYTES);
        let doc: Value = serde_json::from_str(&event.message()).unwrap();
        names += doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Metrics"].as_array().unwrap().len())
            .sum::<usize>();
    }
    assert_eq!(names, 3000);
}

#[test]
fn declarations_choose_metrics_and_dimension_sets() {
    let declaration: super::super::declaration::MetricDeclarationConfig = serde_yaml_ng::from_str(
        "dimensions: [[route], [route, missing]]\nmetric_name_selectors: ['^api']",
    )
    .unwrap();
    let cfg = EmfSettings {
        declarations: vec![
            super::super::declaration::MetricDeclaration::compile(&declaration).unwrap(),
        ],
        ..settings()
    };
    let labels = vec![s("route", "/a"), s("code", "200")];
    let (docs, _) = run(
        &batch(
            "lib",
            vec![
                delta_sum("api.requests", vec![point(labels.clone(), 1.0)]),
                delta_sum("db.calls", vec![point(labels.clone(), 2.0)]),
            ],
        ),
        &cfg,
        &mut DeltaCache::default(),
    );
    assert_eq!(docs.len(), 1);
    let directives = docs[0]["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 1);
    assert_eq!(
        directives[0]["Metrics"],
        json!([{"Name": "api.requests", "Unit": "", "StorageResolution": 60}])
    );
    assert_eq!(
        directives[0]["Dimensions"],
        json!([
            ["route"],
            ["OTelLib"],
            ["OTelLib", "code"],
            ["OTelLib", "route"]
        ])
    );
    assert_eq!(
        docs[0]["db.calls"], 2.0,
        "undeclared metrics stay in the event as fields"
    );
    let (docs, _) = run(
        &batch("lib", vec![delta_sum("db.calls", vec![point(labels, 2.0)])]),
        &cfg,
        &mut DeltaCache::default(),
    );
    assert!(
        docs[0].get("_aws").is_none(),
        "nothing declared: a plain log line, nothing billed"
    );
    assert_eq!(docs[0]["db.calls"], 2.0);
}

mod budget {
    use super::*;
    use crate::exporters::awsemf::budget::{
        BudgetConfig, CardinalityBudget, OVERFLOW_KEY, OnExceed,
    };
    use std::collections::BTreeSet;

    const HOUR: i64 = 3_600_000;
    const START: i64 = 1_767_225_600_000; // a UTC hour boundary

    fn labelled(name: &str, labels: &[(&str, String)], value: f64) -> Metric {
        let attributes = labels.iter().map(|(k, v)| s(k, v)).collect();
        delta_sum(name, vec![point(attributes, value)])
    }

    /// Runs one export at `now_ms` through the budget; returns the EMF documents.
    fn export(metrics: Vec<Metric>, budget: &mut CardinalityBudget, now_ms: i64) -> Vec<Value> {
        budget.advance(now_ms);
        let (events, _) = translate(
            &batch(STATSD_SCOPE, metrics),
            &settings(),
            &mut DeltaCache::default(),
            Some(budget),
            now_ms,
        );
        events
            .iter()
            .map(|e| serde_json::from_str(&e.message()).unwrap())
            .collect()
    }

    /// Every CloudWatch metric identity the documents define.
    fn identities(docs: &[Value]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for doc in docs {
            for directive in doc["_aws"]["CloudWatchMetrics"]
                .as_array()
                .into_iter()
                .flatten()
            {
                for metric in directive["Metrics"].as_array().unwrap() {
                    for set in directive["Dimensions"].as_array().unwrap() {
                        let dims: Vec<String> = set
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|k| {
                                format!("{}={}", k.as_str().unwrap(), doc[k.as_str().unwrap()])
                            })
                            .collect();
                        out.insert(format!(
                            "{}|{}|{}",
                            directive["Namespace"],
                            metric["Name"],
                            dims.join(",")
                        ));
                    }
                }
            }
        }
        out
    }

    /// (regular sum, overflow sum) of `name` over the documents.
    fn sums(docs: &[Value], name: &str) -> (f64, f64) {
        let mut regular = 0.0;
        let mut overflow = 0.0;
        for doc in docs {
            for directive in doc["_aws"]["CloudWatchMetrics"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if directive["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["Name"] == name)
                {
                    if directive["Dimensions"] == json!([[OVERFLOW_KEY]]) {
                        overflow += doc[name].as_f64().unwrap();
                    } else {
                        regular += doc[name].as_f64().unwrap();
                    }
                }
            }
        }
        (regular, overflow)
    }

    #[test]
    fn an_hour_of_exploding_labels_stays_under_the_cap_and_loses_no_value() {
        let mut budget = CardinalityBudget::new(BudgetConfig::with_max_metrics(100));
        let mut docs = Vec::new();
        let mut sent = 0.0;
        for i in 0..5000 {
            let labels = [
                ("user", format!("u{i}")),
                ("route", format!("/r{}", i % 7)),
                ("code", format!("{}", 200 + i % 3)),
            ];
            let value = (i % 10) as f64 + 1.0;
            sent += value;
            docs.extend(export(
                vec![labelled("requests", &labels, value)],
                &mut budget,
                START + i * 700,
            ));
        }
        let distinct = identities(&docs);
        assert!(
            distinct.len() <= 100,
            "{} distinct CloudWatch metrics",
            distinct.len()
        );
        let (regular, overflow) = sums(&docs, "requests");
        assert_eq!(regular + overflow, sent, "capped, not lost");
        assert!(overflow > 0.0);
        assert!(
            docs.iter().all(|d| d.get("user").is_some()),
            "labels stay as fields"
        );
    }

    #[test]
    fn admitted_metrics_keep_their_dimensions_across_the_hour_and_rollover() {
        // Five routes: [OTelLib] plus one [OTelLib,route] each, plus room for the overflow metric.
        let mut budget = CardinalityBudget::new(BudgetConfig::with_max_metrics(7));
        let first = |i: i64| [("route", format!("/r{i}"))];
        let docs = export(
            (0..5).map(|i| labelled("req", &first(i), 1.0)).collect(),
            &mut budget,
            START,
        );
        assert!(docs.iter().all(|d| d.get(OVERFLOW_KEY).is_none()));
        let admitted_before = identities(&docs);
        let newcomer = export(
            vec![
                labelled("req", &[("route", "/new1".into())], 1.0),
                labelled("req", &[("route", "/new2".into())], 1.0),
            ],
            &mut budget,
            START + 1000,
        );
        assert!(
            newcomer.iter().any(|d| d.get(OVERFLOW_KEY).is_some()),
            "over the cap: folded"
        );
        for when in [START + HOUR / 2, START + HOUR + 10, START + 2 * HOUR - 10] {
            let docs = export(
                (0..5).map(|i| labelled("req", &first(i), 1.0)).collect(),
                &mut budget,
                when,
            );
            assert!(
                docs.iter().all(|d| d.get(OVERFLOW_KEY).is_none()),
                "admitted series never fold"
            );
            assert_eq!(identities(&docs), admitted_before);
            let late = export(
                vec![labelled("req", &[("route", "/late".into())], 1.0)],
                &mut budget,
                when + 1,
            );
            assert!(late[0].get(OVERFLOW_KEY).is_some(), "newcomers still fold");
        }
    }

    #[test]
    fn one_exploding_metric_cannot_starve_the_others() {
        let mut config = BudgetConfig::with_max_metrics(50);
        config.max_metrics_per_name = Some(20);
        let mut budget = CardinalityBudget::new(config);
        for i in 0..500 {
            export(
                vec![labelled("exploding", &[("user", format!("u{i}"))], 1.0)],
                &mut budget,
                START + i,
            );
        }
        let docs = export(
            (0..10)
                .map(|i| labelled("steady", &[("route", format!("/r{i}"))], 1.0))
                .collect(),
            &mut budget,
            START + 600,
        );
        assert!(
            docs.iter().all(|d| d.get(OVERFLOW_KEY).is_none()),
            "steady metrics still admitted"
        );
        assert!(budget.admitted() <= 50);
    }

    #[test]
    fn drop_mode_leaves_the_value_out_of_the_directive_only() {
        let mut config = BudgetConfig::with_max_metrics(2);
        config.on_exceed = OnExceed::Drop;
        let mut budget = CardinalityBudget::new(config);
        export(
            vec![labelled("req", &[("route", "/a".into())], 1.0)],
            &mut budget,
            START,
        );
        let docs = export(
            vec![labelled("req", &[("route", "/b".into())], 5.0)],
            &mut budget,
            START + 1,
        );
        assert!(docs[0].get("_aws").is_none());
        assert_eq!(
            (docs[0]["req"].as_f64(), docs[0]["route"].as_str()),
            (Some(5.0), Some("/b"))
        );
    }

    #[test]
    fn a_monthly_cost_is_a_metric_count() {
        let config: BudgetConfig = serde_yaml_ng::from_str("max_monthly_cost_usd: 30").unwrap();
        assert_eq!(config.limit(), 100, "$30 at $0.30 a metric");
        let config: BudgetConfig =
            serde_yaml_ng::from_str("max_monthly_cost_usd: 30\nmax_metrics: 40").unwrap();
        assert_eq!(config.limit(), 40);
        let mut budget =
            CardinalityBudget::new(serde_yaml_ng::from_str("max_monthly_cost_usd: 30").unwrap());
        let mut docs = Vec::new();
        for i in 0..1000 {
            docs.extend(export(
                vec![labelled("req", &[("user", format!("u{i}"))], 1.0)],
                &mut budget,
                START + i,
            ));
        }
        assert!(identities(&docs).len() <= 100);
        assert!(budget.projected_monthly_cost_usd() <= 30.0 + 1e-9);
    }

    /// A budget that would cap nothing, or less than it reserves, is refused at decode time,
    /// naming the key.
    #[test]
    fn budgets_that_cannot_cap_are_refused() {
        let cases = [
            ("{}", "max_metrics: a budget needs"),
            ("price_per_metric_month: 0.3", "max_metrics: a budget needs"),
            ("max_metrics: 0", "max_metrics: 0 is too small"),
            ("max_metrics: 1", "max_metrics: 1 is too small"),
            (
                "max_monthly_cost_usd: -5",
                "max_monthly_cost_usd: -5 is too small",
            ),
            (
                "max_monthly_cost_usd: 0.5",
                "max_monthly_cost_usd: 0.5 is too small",
            ),
            (
                "max_metrics: 10\nprice_per_metric_month: 0",
                "price_per_metric_month: 0 is not",
            ),
            (
                "max_metrics: 10\nprice_per_metric_month: -1",
                "price_per_metric_month: -1 is not",
            ),
            (
                "max_metrics: 10\nmax_metrics_per_name: 0",
                "max_metrics_per_name: must be",
            ),
        ];
        for (yaml, want) in cases {
            let error = serde_yaml_ng::from_str::<BudgetConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(want), "{yaml}: {error}");
        }
        for yaml in [
            "max_metrics: 2",
            "max_monthly_cost_usd: 0.6",
            "max_metrics: 500\non_exceed: drop",
        ] {
            serde_yaml_ng::from_str::<BudgetConfig>(yaml).unwrap();
        }
    }
}

#[test]
fn storage_resolution_label_sets_high_resolution() {
    let m = delta_sum(
        "req",
        vec![point(
            vec![s("aws.emf.storage_resolution", "1"), s("route", "/a")],
            1.0,
        )],
    );
    let (docs, _) = run(
        &batch("lib", vec![m]),
        &settings(),
        &mut DeltaCache::default(),
    );
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"],
        1
    );
    assert!(docs[0].get("aws.emf.storage_resolution").is_none());
    assert!(
        !docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            .to_string()
            .contains("storage")
    );
}

#[test]
fn detailed_summaries_and_json_encoded_labels() {
    use opentelemetry_proto::tonic::metrics::v1::{Summary, summary_data_point::ValueAtQuantile};
    let summary = Metric {
        name: "rt".into(),
        data: Some(Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                attributes: vec![s("meta", r#"{"a":[1,2]}"#)],
                time_unix_nano: T,
                count: 4,
                sum: 10.0,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.0,
                        value: 1.0,
                    },
                    ValueAtQuantile {
                        quantile: 1.0,
                        value: 4.0,
                    },
                ],
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let plain = run(
        &batch("lib", vec![summary.clone()]),
        &settings(),
        &mut DeltaCache::default(),
    )
    .0;
    assert_eq!(
        plain[0]["rt"],
        json!({"Max": 4.0, "Min": 1.0, "Count": 4, "Sum": 10.0})
    );
    assert_eq!(plain[0]["meta"], r#"{"a":[1,2]}"#);
    let cfg = EmfSettings {
        detailed_metrics: true,
        json_encoded_labels: vec!["meta".into()],
        ..settings()
    };
    let docs = run(
        &batch("lib", vec![summary]),
        &cfg,
        &mut DeltaCache::default(),
    )
    .0;
    // `_sum`, `_count` and each quantile in an event of its own, as the collector writes them.
    assert_eq!(docs.len(), 4);
    let field = |name: &str| {
        let [doc] = docs
            .iter()
            .filter(|d| d.get(name).is_some())
            .collect::<Vec<_>>()[..]
        else {
            panic!("{name} in exactly one event: {docs:?}")
        };
        doc.clone()
    };
    assert_eq!(field("rt_sum")["rt_sum"].as_f64(), Some(10.0));
    assert_eq!(field("rt_count")["rt_count"].as_f64(), Some(4.0));
    assert_eq!(field("rt_sum")["meta"], json!({"a": [1, 2]}));
    let quantiles: Vec<(String, f64)> = docs
        .iter()
        .filter(|d| d.get("quantile").is_some())
        .map(|d| {
            (
                d["quantile"].as_str().unwrap().to_string(),
                d["rt"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(quantiles.len(), 2);
    assert!(quantiles.contains(&("1".into(), 4.0)));
}

/// `metric_declarations`, `parse_json_encoded_attr_values` and `detailed_metrics`, case by case
/// as the collector's exporter treats them (regular expressions are unanchored searches).
mod declarations {
    use super::*;
    use crate::exporters::awsemf::budget::{BudgetConfig, CardinalityBudget};
    use std::collections::BTreeSet;

    fn settings_with(yaml: &str, rollup: DimensionRollup) -> EmfSettings {
        EmfSettings {
            declarations: serde_yaml_ng::from_str(yaml).unwrap(),
            rollup,
            ..settings()
        }
    }

    /// The documents of one batch of delta sums `(name, labels)` under `scope`.
    fn documents(
        cfg: &EmfSettings,
        scope: &str,
        metrics: &[(&str, &[(&str, &str)])],
    ) -> Vec<Value> {
        let metrics = metrics
            .iter()
            .map(|(name, labels)| {
                let labels = labels.iter().map(|(k, v)| s(k, v)).collect();
                delta_sum(name, vec![point(labels, 1.0)])
            })
            .collect();
        run(&batch(scope, metrics), cfg, &mut DeltaCache::default()).0
    }

    /// The dimension sets extracted for `metric` in `doc`, `None` when it is not extracted.
    fn sets_of(doc: &Value, metric: &str) -> Option<BTreeSet<Vec<String>>> {
        let directives = doc.get("_aws")?["CloudWatchMetrics"].as_array()?;
        directives
            .iter()
            .find(|d| {
                d["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["Name"] == metric)
            })
            .map(|d| serde_json::from_value(d["Dimensions"].clone()).unwrap())
    }

    fn set(sets: &[&[&str]]) -> BTreeSet<Vec<String>> {
        sets.iter()
            .map(|s| s.iter().map(|k| k.to_string()).collect())
            .collect()
    }

    #[test]
    fn only_sets_whose_every_key_is_a_label() {
        let cfg = settings_with(
            "[{dimensions: [[ClusterName], [ClusterName, TaskDefinitionFamily]], metric_name_selectors: [MemoryUtilized]}]",
            DimensionRollup::NoDimensionRollup,
        );
        let docs = documents(
            &cfg,
            "",
            &[("MemoryUtilized", &[("ClusterName", "c"), ("TaskId", "t")])],
        );
        assert_eq!(
            sets_of(&docs[0], "MemoryUtilized"),
            Some(set(&[&["ClusterName"]]))
        );
    }

    #[test]
    fn declared_sets_are_sorted_and_deduplicated() {
        let cfg = settings_with(
            "[{dimensions: [[b, a], [a, b], [a, a, b]], metric_name_selectors: [m]}]",
            DimensionRollup::NoDimensionRollup,
        );
        let docs = documents(&cfg, "lib", &[("m", &[("a", "1"), ("b", "2")])]);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["a", "b"]])
        );
    }

    #[test]
    fn a_declaration_without_sets_extracts_nothing_without_rollup() {
        let cfg = settings_with(
            "[{metric_name_selectors: ['container.*']}]",
            DimensionRollup::NoDimensionRollup,
        );
        let docs = documents(&cfg, "lib", &[("container.duration", &[("x", "1")])]);
        assert!(docs[0].get("_aws").is_none(), "{:?}", docs[0]);
        assert!(docs[0].get("Version").is_none());
        assert_eq!(docs[0]["container.duration"], 1.0);
    }

    #[test]
    fn with_the_default_rollup_every_label_becomes_a_set_and_no_scope_is_the_empty_set() {
        let cfg = settings_with(
            "[{metric_name_selectors: [m]}]",
            DimensionRollup::ZeroAndSingleDimensionRollup,
        );
        let docs = documents(&cfg, "", &[("m", &[("x", "1"), ("y", "2")])]);
        assert_eq!(sets_of(&docs[0], "m"), Some(set(&[&[], &["x"], &["y"]])));
        let docs = documents(&cfg, "lib", &[("m", &[("x", "1")])]);
        assert_eq!(
            sets_of(&docs[0], "m"),
            Some(set(&[&["OTelLib"], &["OTelLib", "x"]]))
        );
    }

    #[test]
    fn label_matchers_join_values_with_the_separator() {
        let yaml = |regex: &str, separator: &str| {
            format!(
                "[{{dimensions: [[a]], metric_name_selectors: [m], label_matchers: [{{label_names: [a, b], separator: '{separator}', regex: '{regex}'}}]}}]"
            )
        };
        let none = DimensionRollup::NoDimensionRollup;
        let cfg = settings_with(&yaml("^1;2$", ";"), none);
        let both = documents(&cfg, "lib", &[("m", &[("a", "1"), ("b", "2")])]);
        assert_eq!(sets_of(&both[0], "m"), Some(set(&[&["a"]])));
        // b missing: the joined string is "1;", which the anchored regex refuses.
        let missing = documents(&cfg, "lib", &[("m", &[("a", "1")])]);
        assert_eq!(sets_of(&missing[0], "m"), None);
        let cfg = settings_with(&yaml("1,2", ","), none);
        let comma = documents(&cfg, "lib", &[("m", &[("a", "x1"), ("b", "2y")])]);
        assert_eq!(
            sets_of(&comma[0], "m"),
            Some(set(&[&["a"]])),
            "unanchored search"
        );
        let cfg = settings_with(&yaml("^1;2$", ","), none);
        let wrong = documents(&cfg, "lib", &[("m", &[("a", "1"), ("b", "2")])]);
        assert_eq!(sets_of(&wrong[0], "m"), None, "joined with ',' not ';'");
    }

    #[test]
    fn selectors_are_unanchored_searches() {
        let cfg = settings_with(
            "[{dimensions: [[k]], metric_name_selectors: [cpu]}]",
            DimensionRollup::NoDimensionRollup,
        );
        let docs = documents(
            &cfg,
            "lib",
            &[("node_cpu_total", &[("k", "v")]), ("memory", &[("k", "v")])],
        );
        assert_eq!(sets_of(&docs[0], "node_cpu_total"), Some(set(&[&["k"]])));
        assert_eq!(sets_of(&docs[0], "memory"), None);
        assert_eq!(docs[0]["memory"], 1.0, "its value stays a field");
    }

    #[test]
    fn two_declarations_concatenate_then_rollup_is_appended_without_duplicates() {
        let cfg = settings_with(
            "[{dimensions: [[a], [a, b]], metric_name_selectors: [m]}, {dimensions: [[b, a], [b]], metric_name_selectors: ['^m$']}]",
            DimensionRollup::SingleDimensionRollupOnly,
        );
        let docs = documents(&cfg, "lib", &[("m", &[("a", "1"), ("b", "2")])]);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["a"], ["a", "b"], ["b"], ["OTelLib", "a"], ["OTelLib", "b"]])
        );
    }

    #[test]
    fn the_budget_counts_the_declared_sets_only() {
        let cfg = settings_with(
            "[{dimensions: [[route]], metric_name_selectors: [api]}]",
            DimensionRollup::NoDimensionRollup,
        );
        let mut budget = CardinalityBudget::new(BudgetConfig::with_max_metrics(100));
        let mut cache = DeltaCache::default();
        for route in ["/a", "/b", "/c"] {
            let metrics = vec![
                delta_sum(
                    "api.requests",
                    vec![point(vec![s("route", route), s("user", route)], 1.0)],
                ),
                delta_sum("db.calls", vec![point(vec![s("route", route)], 1.0)]),
            ];
            budget.advance(0);
            translate(
                &batch("lib", metrics),
                &cfg,
                &mut cache,
                Some(&mut budget),
                0,
            );
        }
        // Three routes of api.requests under [[route]], plus the overflow room for its name;
        // db.calls is not extracted, so it costs nothing.
        assert_eq!(budget.admitted(), 3 + 1);
    }

    #[test]
    fn json_encoded_labels_are_decoded_when_they_parse() {
        let cfg = EmfSettings {
            json_encoded_labels: vec!["Sources".into()],
            ..settings()
        };
        let docs = documents(&cfg, "lib", &[("m", &[("Sources", r#"["a","b"]"#)])]);
        assert_eq!(docs[0]["Sources"], json!(["a", "b"]));
        let docs = documents(&cfg, "lib", &[("m", &[("Sources", "oops")])]);
        assert_eq!(docs[0]["Sources"], "oops");
    }

    #[test]
    fn detailed_summaries_become_one_event_per_part() {
        use opentelemetry_proto::tonic::metrics::v1::{
            Summary, summary_data_point::ValueAtQuantile,
        };
        let quantile = |quantile, value| ValueAtQuantile { quantile, value };
        let summary = Metric {
            name: "rt".into(),
            data: Some(Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: T,
                    count: 3,
                    sum: 6.0,
                    quantile_values: vec![quantile(0.5, 2.0), quantile(0.99, 3.0)],
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let cfg = EmfSettings {
            detailed_metrics: true,
            ..settings()
        };
        let docs = run(
            &batch("lib", vec![summary]),
            &cfg,
            &mut DeltaCache::default(),
        )
        .0;
        assert_eq!(docs.len(), 4);
        let quantiles: BTreeSet<(String, String)> = docs
            .iter()
            .filter(|d| d.get("quantile").is_some())
            .map(|d| (d["quantile"].as_str().unwrap().into(), d["rt"].to_string()))
            .collect();
        assert_eq!(
            quantiles,
            [("0.5".into(), "2.0".into()), ("0.99".into(), "3.0".into())]
                .into_iter()
                .collect()
        );
    }
}

/// Events rendered from the plan of their shape are the events written field by field: every
/// kind of value, units that differ between events of one metric, escapes in label values, a label named like a metric or like `Version`, two
/// targets with their own namespaces, both layouts, and many events of each shape with their own values and timestamps.
/// (A JSON-encoded label that no point has sends every event down the field-by-field path.)
#[test]
fn events_rendered_from_their_shapes_plan_equal_events_written_field_by_field() {
    let labels = |i: usize| -> Vec<KeyValue> {
        match i % 4 {
            0 => vec![s("route", &format!("/items/{i}")), s("method", "GET")],
            1 => vec![
                s("route", &format!("/q \"{i}\"\n\t\\ é")),
                s("method", "POST"),
            ],
            2 => vec![s("Version", "label"), s("latency", &i.to_string())],
            _ => vec![s("aws.emf.storage_resolution", "1"), s("zone", "b")],
        }
    };
    let metrics = |i: usize| -> Vec<Metric> {
        let t = T + (i as u64 % 7) * 1_000_000;
        let at = |mut p: NumberDataPoint| {
            p.time_unix_nano = t;
            p
        };
        vec![
            Metric {
                name: "latency".into(),
                unit: if i.is_multiple_of(3) { "ms" } else { "s" }.into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![at(point(labels(i), i as f64 * 0.25))],
                })),
                ..Default::default()
            },
            delta_sum("requests", vec![at(point(labels(i), (i * 3) as f64))]),
            Metric {
                name: "size".into(),
                unit: "By".into(),
                data: Some(Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: labels(i),
                        time_unix_nano: t,
                        count: i as u64 + 1,
                        sum: Some(i as f64 * 10.5),
                        min: Some(1.0),
                        max: Some(i as f64 + 2.0),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                })),
                ..Default::default()
            },
            Metric {
                name: "spread".into(),
                data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        attributes: labels(i),
                        time_unix_nano: t,
                        count: 3,
                        sum: Some(7.0),
                        scale: 1,
                        positive: Some(Buckets {
                            offset: i as i32 % 3,
                            bucket_counts: vec![1, 2],
                        }),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                })),
                ..Default::default()
            },
        ]
    };
    let resource = |service: &str, i: usize| ResourceMetrics {
        resource: Some(Resource {
            attributes: vec![s("service.name", service)],
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: if i.is_multiple_of(5) {
                    String::new()
                } else {
                    "lib".into()
                },
                ..Default::default()
            }),
            metrics: metrics(i),
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    };
    let batch: Vec<ResourceMetrics> = (0..40usize)
        .map(|i| resource(if i.is_multiple_of(2) { "api" } else { "ui" }, i))
        .collect();
    for version_zero in [false, true] {
        let planned = EmfSettings {
            // The namespace from each resource's service.name: the targets' directives differ.
            namespace: String::new(),
            log_group_name: "/metrics/{ServiceName}".into(),
            version_zero,
            ..settings()
        };
        let field_by_field = EmfSettings {
            json_encoded_labels: vec!["no.point.has.this.label".into()],
            ..planned.clone()
        };
        let (events, stats) = translate(&batch, &planned, &mut DeltaCache::default(), None, 42);
        let (expected, expected_stats) = translate(
            &batch,
            &field_by_field,
            &mut DeltaCache::default(),
            None,
            42,
        );
        assert!(events.len() >= 40, "{} events", events.len());
        assert_eq!(stats, expected_stats);
        for (event, expected) in events.iter().zip(&expected) {
            assert_eq!(event, expected, "{}", event.message());
        }
        assert_eq!(events.len(), expected.len());
    }
}
