//! OTLP metrics → CloudWatch EMF log events (`exporter/awsemfexporter` in the collector). Pure
//! functions except for the cumulative→delta cache handed in.
//!
//! Kept from the collector: the `OTelLib` dimension, the default ZeroAndSingleDimensionRollup,
//! `"Unit":""` when unknown, the version "1" layout. Fixed (reference section 12): a cumulative
//! series that started after the sidecar contributes its first point; a second value for the
//! same metric in a group goes to its own event; directives hold at most 100 metrics and
//! dimension sets at most 30 keys; histograms are delta-converted.

use super::budget::{Admission, CardinalityBudget, OVERFLOW_KEY};
use super::delta::{DeltaCache, DeltaKey, ExpSnapshot, SparseBuckets};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value as Av};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, SummaryDataPoint, metric::Data, number_data_point,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// CloudWatch extracts at most 100 metrics per directive.
pub const MAX_METRICS_PER_DIRECTIVE: usize = 100;
/// CloudWatch allows at most 30 dimension keys per dimension set.
pub const MAX_DIMENSIONS_PER_SET: usize = 30;
/// Values/Counts pairs per EMF point (the collector's chunk size for exponential histograms).
pub const MAX_VALUES_PER_POINT: usize = 100;
/// The label carrying the instrumentation scope name.
pub const OTEL_LIB: &str = "OTelLib";
/// Data point flag: no recorded value.
const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// `dimension_rollup_option`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum DimensionRollup {
    #[default]
    ZeroAndSingleDimensionRollup,
    SingleDimensionRollupOnly,
    NoDimensionRollup,
}

/// Everything of the exporter config the translation reads.
#[derive(Debug, Clone, Default)]
pub struct EmfSettings {
    pub namespace: String,
    pub log_group_name: String,
    pub log_stream_name: String,
    pub rollup: DimensionRollup,
    /// `metric_descriptors`: metric name → (unit, overwrite).
    pub descriptors: BTreeMap<String, (String, bool)>,
    pub resource_to_telemetry: bool,
    /// With `resource_to_telemetry`, leave out `service.*` resource attributes.
    pub exclude_service_attributes: bool,
    /// `metric_declarations`; empty means every metric with the rollup's dimension sets.
    pub declarations: Vec<super::declaration::MetricDeclaration>,
    pub version_zero: bool,
    /// Summaries as `<name>_sum`, `<name>_count` and one point per quantile.
    pub detailed_metrics: bool,
    /// Labels whose values are JSON documents, written into the event decoded.
    pub json_encoded_labels: Vec<String>,
    pub retain_initial_value_of_delta_metric: bool,
    /// Unix nanoseconds at which the sidecar started: cumulative series that began later are
    /// complete, so their first point is a delta.
    pub started_at: u64,
}

/// One EMF log event, ready for PutLogEvents.
#[derive(Debug, Clone, PartialEq)]
pub struct EmfEvent {
    pub log_group: String,
    pub log_stream: String,
    pub timestamp_ms: i64,
    pub message: String,
}

/// What a translation skipped, for self-metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TranslateStats {
    pub skipped_points: u64,
    pub first_cumulative_points: u64,
    pub dimension_sets_over_limit: u64,
    /// Points the cardinality budget folded into the overflow metric, or left out.
    pub folded_points: u64,
    pub dropped_points: u64,
}

/// An EMF metric value.
#[derive(Debug, Clone, PartialEq)]
pub enum EmfValue {
    Number(f64),
    Statistics {
        max: f64,
        min: f64,
        count: u64,
        sum: f64,
    },
    Distribution {
        values: Vec<f64>,
        counts: Vec<f64>,
        max: f64,
        min: f64,
        count: u64,
        sum: f64,
    },
}

impl EmfValue {
    fn to_json(&self) -> Value {
        let num = |f: f64| {
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        };
        match self {
            EmfValue::Number(v) => num(*v),
            EmfValue::Statistics {
                max,
                min,
                count,
                sum,
            } => {
                json!({"Max": num(*max), "Min": num(*min), "Count": count, "Sum": num(*sum)})
            }
            EmfValue::Distribution {
                values,
                counts,
                max,
                min,
                count,
                sum,
            } => json!({
                "Values": values.iter().map(|v| num(*v)).collect::<Vec<_>>(),
                "Counts": counts.iter().map(|v| num(*v)).collect::<Vec<_>>(),
                "Max": num(*max), "Min": num(*min), "Count": count, "Sum": num(*sum)
            }),
        }
    }
}

/// Events sharing this key share one log event (a metric name at most once per event).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    namespace: String,
    timestamp_ms: i64,
    log_group: String,
    log_stream: String,
    type_class: u8,
    split: usize,
    labels: BTreeMap<String, String>,
}

struct GroupedMetric {
    name: String,
    unit: String,
    value: EmfValue,
    /// 1 (high resolution) or 60, from the `aws.emf.storage_resolution` label.
    storage_resolution: u8,
}

/// The label that asks CloudWatch for high-resolution storage; it is removed from the fields.
pub const STORAGE_RESOLUTION_LABEL: &str = "aws.emf.storage_resolution";

fn attribute_text(value: Option<&Av>) -> String {
    match value {
        Some(Av::StringValue(s)) => s.clone(),
        Some(Av::IntValue(i)) => i.to_string(),
        Some(Av::DoubleValue(d)) => d.to_string(),
        Some(Av::BoolValue(b)) => b.to_string(),
        Some(other) => crate::exporters::awsxray::translate::value_json(
            &opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(other.clone()),
            },
        )
        .to_string(),
        None => String::new(),
    }
}

fn labels_of(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                attribute_text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
            )
        })
        .collect()
}

/// CloudWatch unit names for the UCUM units OpenTelemetry uses.
pub fn cloudwatch_unit(unit: &str) -> &str {
    match unit {
        "1" | "ns" => "",
        "ms" => "Milliseconds",
        "s" => "Seconds",
        "us" => "Microseconds",
        "By" => "Bytes",
        "bit" => "Bits",
        other => other,
    }
}

/// `{ClusterName}`-style placeholders from resource attributes (the bare name first, then the
/// mapped semantic key), `undefined` when missing, as in the collector.
pub fn replace_placeholders(pattern: &str, resource: &BTreeMap<String, String>) -> String {
    const MAPPED: &[(&str, &str)] = &[
        ("ClusterName", "aws.ecs.cluster.name"),
        ("TaskId", "aws.ecs.task.id"),
        ("NodeName", "k8s.node.name"),
        ("PodName", "pod"),
        ("ServiceName", "service.name"),
        ("ContainerInstanceId", "aws.ecs.container.instance.id"),
        ("TaskDefinitionFamily", "aws.ecs.task.family"),
    ];
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..open + close];
        let value = resource
            .get(name)
            .or_else(|| {
                MAPPED
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, key)| resource.get(*key))
            })
            .filter(|v| !v.is_empty());
        match value {
            Some(v) => out.push_str(v),
            None if MAPPED.iter().any(|(n, _)| *n == name) => out.push_str("undefined"),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Translates a batch into EMF events.
pub fn translate(
    batch: &[ResourceMetrics],
    settings: &EmfSettings,
    deltas: &mut DeltaCache,
    mut budget: Option<&mut CardinalityBudget>,
    now_ms: i64,
) -> (Vec<EmfEvent>, TranslateStats) {
    let mut stats = TranslateStats::default();
    let mut groups: BTreeMap<GroupKey, Vec<GroupedMetric>> = BTreeMap::new();
    for resource_metrics in batch {
        let resource_attributes = resource_metrics
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let resource = labels_of(resource_attributes);
        let namespace = if !settings.namespace.is_empty() {
            settings.namespace.clone()
        } else {
            match (
                resource.get("service.namespace"),
                resource.get("service.name"),
            ) {
                (Some(ns), Some(name)) => format!("{ns}/{name}"),
                (Some(one), None) | (None, Some(one)) => one.clone(),
                (None, None) => "default".into(),
            }
        };
        let log_group = replace_placeholders(&settings.log_group_name, &resource);
        let log_group = if log_group.is_empty() {
            format!("/metrics/{namespace}")
        } else {
            log_group
        };
        let log_stream = replace_placeholders(&settings.log_stream_name, &resource);
        let mut scope_name = String::new();
        for scope_metrics in &resource_metrics.scope_metrics {
            // Collector quirk kept for identical dimensions: an empty scope name inherits the
            // previous scope's within the same resource.
            if let Some(name) = scope_metrics
                .scope
                .as_ref()
                .map(|s| &s.name)
                .filter(|n| !n.is_empty())
            {
                scope_name = name.clone();
            }
            for metric in &scope_metrics.metrics {
                let unit = match settings.descriptors.get(&metric.name) {
                    Some((unit, overwrite)) if *overwrite || metric.unit.is_empty() => unit.clone(),
                    _ => cloudwatch_unit(&metric.unit).to_string(),
                };
                for point in points(
                    metric,
                    settings,
                    deltas,
                    &namespace,
                    &log_group,
                    &log_stream,
                    &mut stats,
                ) {
                    let mut labels = labels_of(point.attributes);
                    if let Some((key, value)) = &point.extra_label {
                        labels.insert(key.to_string(), value.clone());
                    }
                    let storage_resolution =
                        match labels.remove(STORAGE_RESOLUTION_LABEL).as_deref() {
                            Some("1") => 1,
                            _ => 60,
                        };
                    let name = point.name.clone().unwrap_or_else(|| metric.name.clone());
                    if settings.resource_to_telemetry {
                        for (k, v) in &resource {
                            if settings.exclude_service_attributes && k.starts_with("service.") {
                                continue;
                            }
                            labels.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                    if !scope_name.is_empty() {
                        labels.insert(OTEL_LIB.into(), scope_name.clone());
                    }
                    let timestamp_ms = if point.time_unix_nano == 0 {
                        now_ms
                    } else {
                        (point.time_unix_nano / 1_000_000) as i64
                    };
                    let mut key = GroupKey {
                        namespace: namespace.clone(),
                        timestamp_ms,
                        log_group: log_group.clone(),
                        log_stream: log_stream.clone(),
                        type_class: point.type_class,
                        split: point.split,
                        labels,
                    };
                    // A second value for a metric already in the group goes to the next event
                    // with the same dimensions instead of being dropped.
                    while groups
                        .get(&key)
                        .is_some_and(|g| g.iter().any(|m| m.name == name))
                    {
                        key.split += 1_000;
                    }
                    groups.entry(key).or_default().push(GroupedMetric {
                        name,
                        unit: unit.clone(),
                        value: point.value,
                        storage_resolution,
                    });
                }
            }
        }
    }
    let mut events = Vec::new();
    for (key, metrics) in groups {
        events.extend(build_events(
            key,
            metrics,
            settings,
            &mut budget,
            &mut stats,
        ));
    }
    (events, stats)
}

/// One data point ready for grouping.
struct PointOut<'a> {
    attributes: &'a [KeyValue],
    /// Set for `detailed_metrics` summary parts (`<name>_sum`, `<name>_count`, quantiles).
    name: Option<String>,
    extra_label: Option<(&'static str, String)>,
    time_unix_nano: u64,
    value: EmfValue,
    /// Keeps gauges and sums apart, as the collector's grouping key does.
    type_class: u8,
    split: usize,
}

impl<'a> PointOut<'a> {
    fn new(
        attributes: &'a [KeyValue],
        time_unix_nano: u64,
        value: EmfValue,
        type_class: u8,
    ) -> Self {
        PointOut {
            attributes,
            name: None,
            extra_label: None,
            time_unix_nano,
            value,
            type_class,
            split: 0,
        }
    }
}

fn number_value(point: &NumberDataPoint) -> Option<f64> {
    match point.value? {
        number_data_point::Value::AsInt(i) => Some(i as f64),
        number_data_point::Value::AsDouble(d) => Some(d),
    }
}

fn skip(flags: u32, values: &[f64]) -> bool {
    flags & FLAG_NO_RECORDED_VALUE != 0 || values.iter().any(|v| !v.is_finite())
}

#[allow(clippy::too_many_arguments)]
fn points<'a>(
    metric: &'a Metric,
    settings: &EmfSettings,
    deltas: &mut DeltaCache,
    namespace: &str,
    log_group: &str,
    log_stream: &str,
    stats: &mut TranslateStats,
) -> Vec<PointOut<'a>> {
    let mut out = Vec::new();
    let delta_key = |attributes: &[KeyValue]| {
        DeltaKey::new(&metric.name, namespace, log_group, log_stream, attributes)
    };
    match metric.data.as_ref() {
        Some(Data::Gauge(gauge)) => {
            for p in &gauge.data_points {
                match number_value(p).filter(|v| !skip(p.flags, &[*v])) {
                    Some(v) => out.push(PointOut::new(
                        &p.attributes,
                        p.time_unix_nano,
                        EmfValue::Number(v),
                        0,
                    )),
                    None => stats.skipped_points += 1,
                }
            }
        }
        Some(Data::Sum(sum)) => {
            let cumulative =
                sum.aggregation_temporality == AggregationTemporality::Cumulative as i32;
            for p in &sum.data_points {
                let Some(v) = number_value(p).filter(|v| !skip(p.flags, &[*v])) else {
                    stats.skipped_points += 1;
                    continue;
                };
                let value = if cumulative {
                    match deltas.number_delta(
                        delta_key(&p.attributes),
                        p.start_time_unix_nano,
                        v,
                        sum.is_monotonic,
                        settings,
                    ) {
                        Some(d) => d,
                        None => {
                            stats.first_cumulative_points += 1;
                            continue;
                        }
                    }
                } else {
                    v
                };
                out.push(PointOut::new(
                    &p.attributes,
                    p.time_unix_nano,
                    EmfValue::Number(value),
                    1,
                ));
            }
        }
        Some(Data::Histogram(histogram)) => {
            let cumulative =
                histogram.aggregation_temporality == AggregationTemporality::Cumulative as i32;
            for p in &histogram.data_points {
                let sum = p.sum.unwrap_or(0.0);
                if skip(p.flags, &[sum, p.min.unwrap_or(0.0), p.max.unwrap_or(0.0)]) {
                    stats.skipped_points += 1;
                    continue;
                }
                let (count, sum) = if cumulative {
                    match deltas.histogram_delta(
                        delta_key(&p.attributes),
                        p.start_time_unix_nano,
                        p.count,
                        sum,
                        settings,
                    ) {
                        Some(d) => d,
                        None => {
                            stats.first_cumulative_points += 1;
                            continue;
                        }
                    }
                } else {
                    (p.count, sum)
                };
                out.push(PointOut::new(
                    &p.attributes,
                    p.time_unix_nano,
                    histogram_value(p, count, sum),
                    2,
                ));
            }
        }
        Some(Data::ExponentialHistogram(histogram)) => {
            let cumulative =
                histogram.aggregation_temporality == AggregationTemporality::Cumulative as i32;
            for p in &histogram.data_points {
                let sum = p.sum.unwrap_or(0.0);
                if skip(p.flags, &[sum, p.min.unwrap_or(0.0), p.max.unwrap_or(0.0)]) {
                    stats.skipped_points += 1;
                    continue;
                }
                let values = if cumulative {
                    let Some(delta) = deltas.exponential_delta(
                        delta_key(&p.attributes),
                        p.start_time_unix_nano,
                        snapshot_of(p),
                        settings,
                    ) else {
                        stats.first_cumulative_points += 1;
                        continue;
                    };
                    exponential_values(&with_snapshot(p, delta))
                } else {
                    exponential_values(p)
                };
                for (split, value) in values.into_iter().enumerate() {
                    out.push(PointOut {
                        attributes: &p.attributes,
                        name: None,
                        extra_label: None,
                        time_unix_nano: p.time_unix_nano,
                        value,
                        type_class: 3,
                        split,
                    });
                }
            }
        }
        Some(Data::Summary(summary)) => {
            for p in &summary.data_points {
                if skip(p.flags, &[p.sum]) {
                    stats.skipped_points += 1;
                    continue;
                }
                if !settings.detailed_metrics {
                    out.push(PointOut::new(
                        &p.attributes,
                        p.time_unix_nano,
                        summary_value(p),
                        4,
                    ));
                    continue;
                }
                // detailed_metrics: the sum, the count, and one point per quantile.
                let part = |name: Option<String>,
                            label: Option<(&'static str, String)>,
                            value: f64| PointOut {
                    attributes: &p.attributes,
                    name,
                    extra_label: label,
                    time_unix_nano: p.time_unix_nano,
                    value: EmfValue::Number(value),
                    type_class: 4,
                    split: 0,
                };
                out.push(part(Some(format!("{}_sum", metric.name)), None, p.sum));
                out.push(part(
                    Some(format!("{}_count", metric.name)),
                    None,
                    p.count as f64,
                ));
                for q in &p.quantile_values {
                    out.push(part(
                        None,
                        Some(("quantile", q.quantile.to_string())),
                        q.value,
                    ));
                }
            }
        }
        None => {}
    }
    out
}

fn sparse(
    buckets: Option<
        &opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
    >,
) -> SparseBuckets {
    buckets
        .map(|b| {
            b.bucket_counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (b.offset + i as i32, *c))
                .collect()
        })
        .unwrap_or_default()
}

fn dense(
    buckets: &SparseBuckets,
) -> Option<opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets> {
    let (&first, _) = buckets.first_key_value()?;
    let (&last, _) = buckets.last_key_value()?;
    let mut bucket_counts = vec![0; (last - first + 1) as usize];
    for (&i, &c) in buckets {
        bucket_counts[(i - first) as usize] = c;
    }
    Some(
        opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets {
            offset: first,
            bucket_counts,
        },
    )
}

fn snapshot_of(p: &ExponentialHistogramDataPoint) -> ExpSnapshot {
    ExpSnapshot {
        scale: p.scale,
        count: p.count,
        sum: p.sum.unwrap_or(0.0),
        zero: p.zero_count,
        positive: sparse(p.positive.as_ref()),
        negative: sparse(p.negative.as_ref()),
    }
}

fn with_snapshot(
    p: &ExponentialHistogramDataPoint,
    delta: ExpSnapshot,
) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        scale: delta.scale,
        count: delta.count,
        sum: Some(delta.sum),
        zero_count: delta.zero,
        positive: dense(&delta.positive),
        negative: dense(&delta.negative),
        ..p.clone()
    }
}

fn histogram_value(p: &HistogramDataPoint, count: u64, sum: f64) -> EmfValue {
    EmfValue::Statistics {
        max: p.max.unwrap_or(0.0),
        min: p.min.unwrap_or(0.0),
        count,
        sum,
    }
}

fn summary_value(p: &SummaryDataPoint) -> EmfValue {
    EmfValue::Statistics {
        max: p.quantile_values.last().map(|q| q.value).unwrap_or(0.0),
        min: p.quantile_values.first().map(|q| q.value).unwrap_or(0.0),
        count: p.count,
        sum: p.sum,
    }
}

/// Values/Counts from the buckets' midpoints: positive buckets high to low, the zero bucket,
/// then negative; at most [`MAX_VALUES_PER_POINT`] per point, only the first carrying the sum.
pub fn exponential_values(p: &ExponentialHistogramDataPoint) -> Vec<EmfValue> {
    let base = 2f64.powf(2f64.powi(-p.scale));
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    if let Some(positive) = &p.positive {
        for (i, &count) in positive.bucket_counts.iter().enumerate().rev() {
            if count > 0 {
                let index = positive.offset + i as i32;
                let (low, high) = (base.powi(index), base.powi(index + 1));
                pairs.push(((low + high) / 2.0, count as f64));
            }
        }
    }
    if p.zero_count > 0 {
        pairs.push((0.0, p.zero_count as f64));
    }
    if let Some(negative) = &p.negative {
        for (i, &count) in negative.bucket_counts.iter().enumerate() {
            if count > 0 {
                let index = negative.offset + i as i32;
                let (low, high) = (base.powi(index), base.powi(index + 1));
                pairs.push((-(low + high) / 2.0, count as f64));
            }
        }
    }
    if pairs.is_empty() {
        return vec![EmfValue::Distribution {
            values: vec![],
            counts: vec![],
            max: p.max.unwrap_or(0.0),
            min: p.min.unwrap_or(0.0),
            count: p.count,
            sum: p.sum.unwrap_or(0.0),
        }];
    }
    let chunks = pairs.len().div_ceil(MAX_VALUES_PER_POINT);
    pairs
        .chunks(MAX_VALUES_PER_POINT)
        .enumerate()
        .map(|(i, chunk)| {
            let count: f64 = chunk.iter().map(|(_, c)| c).sum();
            let values: Vec<f64> = chunk.iter().map(|(v, _)| *v).collect();
            let chunk_min = values.iter().copied().fold(f64::INFINITY, f64::min);
            // The point's exact max and min belong to the first and last chunk; the others are
            // bounded by their own buckets.
            EmfValue::Distribution {
                max: if i == 0 {
                    p.max.unwrap_or(values[0])
                } else {
                    values[0]
                },
                min: if i + 1 == chunks {
                    p.min.unwrap_or(chunk_min)
                } else {
                    chunk_min
                },
                count: count.round() as u64,
                sum: if i == 0 { p.sum.unwrap_or(0.0) } else { 0.0 },
                counts: chunk.iter().map(|(_, c)| *c).collect(),
                values,
            }
        })
        .collect()
}

/// The rollup's own dimension sets (without the full label set).
fn rollup_sets(labels: &BTreeMap<String, String>, rollup: DimensionRollup) -> Vec<Vec<String>> {
    let mut sets = Vec::new();
    let has_lib = labels.contains_key(OTEL_LIB);
    let base: Vec<String> = if has_lib {
        vec![OTEL_LIB.into()]
    } else {
        vec![]
    };
    let others: Vec<&String> = labels.keys().filter(|k| *k != OTEL_LIB).collect();
    if rollup == DimensionRollup::ZeroAndSingleDimensionRollup && !others.is_empty() && has_lib {
        sets.push(base.clone());
    }
    if rollup != DimensionRollup::NoDimensionRollup {
        for other in &others {
            let mut set = base.clone();
            set.push((*other).clone());
            set.sort();
            sets.push(set);
        }
    }
    sets
}

fn push_unique(sets: &mut Vec<Vec<String>>, set: Vec<String>) {
    if !sets.contains(&set) {
        sets.push(set);
    }
}

/// The dimension sets of one label set under the rollup option: the full set first (unless a
/// rollup set already equals it, with one label besides OTelLib), as the collector writes them.
pub fn dimension_sets(
    labels: &BTreeMap<String, String>,
    rollup: DimensionRollup,
) -> Vec<Vec<String>> {
    let full: Vec<String> = labels.keys().cloned().collect();
    let rollups = rollup_sets(labels, rollup);
    let mut sets = Vec::new();
    if !rollups.contains(&full) {
        sets.push(full);
    }
    for set in rollups {
        push_unique(&mut sets, set);
    }
    sets
}

/// The dimension sets CloudWatch extracts for one metric, or `None` when no declaration
/// covers it. Sets over [`MAX_DIMENSIONS_PER_SET`] keys are left out and counted.
fn metric_dimension_sets(
    metric: &str,
    labels: &BTreeMap<String, String>,
    settings: &EmfSettings,
    stats: &mut TranslateStats,
) -> Option<Vec<Vec<String>>> {
    let candidates = if settings.declarations.is_empty() {
        dimension_sets(labels, settings.rollup)
    } else {
        let mut sets: Vec<Vec<String>> = Vec::new();
        let mut covered = false;
        for declaration in settings
            .declarations
            .iter()
            .filter(|d| d.applies(metric, labels))
        {
            covered = true;
            sets.extend(declaration.dimension_sets(labels).cloned());
        }
        if !covered {
            return None;
        }
        // Rollup sets are appended to the declared ones, as in the collector.
        let mut unique: Vec<Vec<String>> = Vec::new();
        for set in sets.into_iter().chain(rollup_sets(labels, settings.rollup)) {
            push_unique(&mut unique, set);
        }
        unique
    };
    let mut kept = Vec::new();
    for set in candidates {
        if set.len() > MAX_DIMENSIONS_PER_SET {
            stats.dimension_sets_over_limit += 1;
        } else {
            kept.push(set);
        }
    }
    Some(kept)
}

/// CloudWatch Logs' limit on one event, less the 26 bytes it adds.
pub const MAX_EVENT_BYTES: usize = 256 * 1024 - 26;

fn build_events(
    key: GroupKey,
    metrics: Vec<GroupedMetric>,
    settings: &EmfSettings,
    budget: &mut Option<&mut CardinalityBudget>,
    stats: &mut TranslateStats,
) -> Vec<EmfEvent> {
    let message = render(&key, &metrics, settings, budget, stats);
    if message.len() <= MAX_EVENT_BYTES || metrics.len() == 1 {
        return vec![EmfEvent {
            log_group: key.log_group.clone(),
            log_stream: key.log_stream.clone(),
            timestamp_ms: key.timestamp_ms,
            message,
        }];
    }
    // Too large for one event: split by metrics rather than truncating into invalid JSON.
    let mut metrics = metrics;
    let second = metrics.split_off(metrics.len() / 2);
    let mut events = build_events(key.clone(), metrics, settings, budget, stats);
    events.extend(build_events(key, second, settings, budget, stats));
    events
}

fn render(
    key: &GroupKey,
    metrics: &[GroupedMetric],
    settings: &EmfSettings,
    budget: &mut Option<&mut CardinalityBudget>,
    stats: &mut TranslateStats,
) -> String {
    let mut fields = Map::new();
    for (k, v) in &key.labels {
        let value = if settings.json_encoded_labels.contains(k) {
            serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))
        } else {
            Value::String(v.clone())
        };
        fields.insert(k.clone(), value);
    }
    for m in metrics {
        fields.insert(m.name.clone(), m.value.to_json());
    }
    // Each metric's dimension sets; metrics sharing the same sets share directives.
    let mut by_sets: Vec<(Vec<Vec<String>>, Vec<&GroupedMetric>)> = Vec::new();
    for metric in metrics {
        let Some(mut sets) = metric_dimension_sets(&metric.name, &key.labels, settings, stats)
        else {
            continue;
        };
        if let Some(budget) = budget.as_deref_mut() {
            let identities: Vec<u64> = sets
                .iter()
                .map(|set| {
                    budget
                        .hasher()
                        .identity(&key.namespace, &metric.name, set, &key.labels)
                })
                .collect();
            match budget.admit(&key.namespace, &metric.name, &identities, &key.labels) {
                Admission::Admitted => {}
                Admission::Folded => {
                    fields.insert(OVERFLOW_KEY.into(), Value::String("true".into()));
                    sets = vec![vec![OVERFLOW_KEY.to_string()]];
                    stats.folded_points += 1;
                }
                Admission::Dropped => {
                    stats.dropped_points += 1;
                    continue;
                }
            }
        }
        match by_sets.iter_mut().find(|(s, _)| *s == sets) {
            Some((_, members)) => members.push(metric),
            None => by_sets.push((sets, vec![metric])),
        }
    }
    let directives: Vec<Value> = by_sets
        .iter()
        .flat_map(|(dimensions, members)| {
            members.chunks(MAX_METRICS_PER_DIRECTIVE).map(move |chunk| {
                json!({
                    "Namespace": key.namespace,
                    "Dimensions": dimensions,
                    "Metrics": chunk.iter().map(|m| json!({"Name": m.name, "Unit": m.unit, "StorageResolution": m.storage_resolution})).collect::<Vec<_>>(),
                })
            })
        })
        .collect();
    if directives.is_empty() {
        // No declaration covers any metric here: the values stay queryable in CloudWatch Logs,
        // but nothing is extracted (and billed) as a metric.
        return Value::Object(fields).to_string();
    }
    if settings.version_zero {
        fields.insert("Version".into(), json!("0"));
        fields.insert("CloudWatchMetrics".into(), Value::Array(directives));
        fields.insert(
            "Timestamp".into(),
            Value::String(key.timestamp_ms.to_string()),
        );
    } else {
        fields.insert("Version".into(), json!("1"));
        fields.insert(
            "_aws".into(),
            json!({"CloudWatchMetrics": directives, "Timestamp": key.timestamp_ms}),
        );
    }
    Value::Object(fields).to_string()
}

#[cfg(test)]
mod tests;
