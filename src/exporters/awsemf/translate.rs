//! OTLP metrics → CloudWatch EMF log events (`exporter/awsemfexporter` in the collector). Pure
//! functions except for the cumulative→delta cache handed in.
//!
//! Kept from the collector: the `OTelLib` dimension, the default ZeroAndSingleDimensionRollup,
//! `"Unit":""` when unknown, the version "1" layout. Fixed (reference section 12): a cumulative
//! series that started after the sidecar contributes its first point; a second value for the
//! same metric in a group goes to its own event; directives hold at most 100 metrics and
//! dimension sets at most 30 keys; histograms are delta-converted.

use super::budget::{Admission, CardinalityBudget, OVERFLOW_KEY};
use super::delta::{DeltaCache, DeltaKey, ExpSnapshot, SeriesKind, SeriesPrefix, SparseBuckets};
use super::labels::Labels;
use crate::exporters::embedded_json;
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, SummaryDataPoint, metric::Data, number_data_point,
};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;

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
    pub log_group: Arc<str>,
    pub log_stream: Arc<str>,
    pub timestamp_ms: i64,
    /// The event's JSON escaped to sit inside a JSON string of the request body (see
    /// [`embedded_json`]): a slice of one buffer holding every event of the batch.
    pub escaped: Bytes,
    /// Bytes of the JSON itself, which CloudWatch counts against its limits.
    pub size: usize,
}

impl EmfEvent {
    /// An event from its plain JSON.
    pub fn from_message(
        log_group: &str,
        log_stream: &str,
        timestamp_ms: i64,
        message: &str,
    ) -> Self {
        let quoted = Bytes::from(serde_json::to_vec(message).expect("a string is JSON"));
        EmfEvent {
            log_group: log_group.into(),
            log_stream: log_stream.into(),
            timestamp_ms,
            // The JSON string's contents, without its quotes.
            escaped: quoted.slice(1..quoted.len() - 1),
            size: message.len(),
        }
    }

    /// The event's plain JSON, as CloudWatch Logs stores it.
    pub fn message(&self) -> String {
        embedded_json::unescape(&self.escaped)
    }
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
    /// Appends the value's JSON (keys in the order serde_json's sorted maps wrote them).
    fn write_json(&self, w: &mut EventWriter) {
        match self {
            EmfValue::Number(v) => w.value(v),
            EmfValue::Statistics {
                max,
                min,
                count,
                sum,
            } => write_statistics(w, *count, *max, *min, *sum, None),
            EmfValue::Distribution {
                values,
                counts,
                max,
                min,
                count,
                sum,
            } => write_statistics(w, *count, *max, *min, *sum, Some((values, counts))),
        }
    }
}

/// `{"Count":…,["Counts":…,]"Max":…,"Min":…,"Sum":…[,"Values":…]}`: keys in sorted order.
fn write_statistics(
    w: &mut EventWriter,
    count: u64,
    max: f64,
    min: f64,
    sum: f64,
    distribution: Option<(&[f64], &[f64])>,
) {
    w.structure("{\"Count\":");
    w.value(&count);
    if let Some((_, counts)) = distribution {
        w.structure(",\"Counts\":");
        w.value(counts);
    }
    w.structure(",\"Max\":");
    w.value(&max);
    w.structure(",\"Min\":");
    w.value(&min);
    w.structure(",\"Sum\":");
    w.value(&sum);
    if let Some((values, _)) = distribution {
        w.structure(",\"Values\":");
        w.value(values);
    }
    w.byte(b'}');
}

/// Writes an event's JSON escaped for embedding in the PutLogEvents body (see
/// [`embedded_json`]), counting the bytes the escaping adds to know the event's own size.
struct EventWriter<'o> {
    out: &'o mut Vec<u8>,
    added: usize,
}

impl EventWriter<'_> {
    /// Keys and punctuation we write ourselves.
    fn structure(&mut self, text: &str) {
        self.added += embedded_json::write_structure(self.out, text);
    }

    /// A value's JSON (strings escaped, non-finite numbers as `null`).
    fn value<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        self.added += embedded_json::write(self.out, value);
    }

    /// A string value (the common case of [`Self::value`], without a serializer).
    fn text(&mut self, text: &str) {
        self.added += embedded_json::write_str(self.out, text);
    }

    fn byte(&mut self, byte: u8) {
        self.out.push(byte);
    }

    /// JSON already escaped, with the bytes its escaping added.
    fn escaped(&mut self, bytes: &[u8], added: usize) {
        self.out.extend_from_slice(bytes);
        self.added += added;
    }
}

/// Where a resource's events go; one per distinct target in a batch, shared by its events.
struct Target {
    namespace: String,
    log_group: Arc<str>,
    log_stream: Arc<str>,
}

/// Points sharing this key share one log event (a metric name at most once per event).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey<'a> {
    /// Index into the batch's targets.
    target: usize,
    timestamp_ms: i64,
    type_class: u8,
    split: usize,
    labels: Labels<'a>,
}

struct GroupedMetric<'a> {
    name: Cow<'a, str>,
    unit: Cow<'a, str>,
    value: EmfValue,
    /// 1 (high resolution) or 60, from the `aws.emf.storage_resolution` label.
    storage_resolution: u8,
}

/// The label that asks CloudWatch for high-resolution storage; it is removed from the fields.
pub const STORAGE_RESOLUTION_LABEL: &str = "aws.emf.storage_resolution";

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
pub fn replace_placeholders(pattern: &str, resource: &Labels<'_>) -> String {
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
                    .and_then(|(_, key)| resource.get(key))
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
pub fn translate<'a>(
    batch: &'a [ResourceMetrics],
    settings: &'a EmfSettings,
    deltas: &mut DeltaCache,
    mut budget: Option<&mut CardinalityBudget>,
    now_ms: i64,
) -> (Vec<EmfEvent>, TranslateStats) {
    let mut stats = TranslateStats::default();
    let mut targets: Vec<Target> = Vec::new();
    let hasher = hashbrown::DefaultHashBuilder::default();
    // Groups in the order they first appear, found by hash without storing their keys twice.
    let mut groups: Vec<(GroupKey<'a>, Vec<GroupedMetric<'a>>)> = Vec::new();
    let mut group_index: hashbrown::HashTable<(u64, usize)> =
        hashbrown::HashTable::with_capacity(1024);
    for resource_metrics in batch {
        let resource_attributes = resource_metrics
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let resource = Labels::from_attributes(resource_attributes, 0);
        let namespace = if !settings.namespace.is_empty() {
            settings.namespace.clone()
        } else {
            match (
                resource.get("service.namespace"),
                resource.get("service.name"),
            ) {
                (Some(ns), Some(name)) => format!("{ns}/{name}"),
                (Some(one), None) | (None, Some(one)) => one.to_string(),
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
        let target = match targets.iter().rposition(|t| {
            t.namespace == namespace && *t.log_group == *log_group && *t.log_stream == *log_stream
        }) {
            Some(i) => i,
            None => {
                targets.push(Target {
                    namespace,
                    log_group: log_group.into(),
                    log_stream: log_stream.into(),
                });
                targets.len() - 1
            }
        };
        let Target {
            namespace,
            log_group,
            log_stream,
        } = &targets[target];
        let mut scope_name: &'a str = "";
        for scope_metrics in &resource_metrics.scope_metrics {
            // Collector quirk kept for identical dimensions: an empty scope name inherits the
            // previous scope's within the same resource.
            if let Some(name) = scope_metrics
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .filter(|n| !n.is_empty())
            {
                scope_name = name;
            }
            let series = SeriesPrefix::new(
                namespace,
                log_group,
                log_stream,
                resource_attributes,
                scope_metrics.scope.as_ref(),
            );
            for metric in &scope_metrics.metrics {
                let unit: Cow<'a, str> = match settings.descriptors.get(&metric.name) {
                    Some((unit, overwrite)) if *overwrite || metric.unit.is_empty() => {
                        Cow::Borrowed(unit)
                    }
                    _ => Cow::Borrowed(cloudwatch_unit(&metric.unit)),
                };
                for point in points(metric, settings, deltas, &series, &mut stats) {
                    let mut labels = Labels::from_attributes(point.attributes, 1);
                    if let Some((key, value)) = point.extra_label {
                        labels.insert(key, value);
                    }
                    let storage_resolution =
                        match labels.remove(STORAGE_RESOLUTION_LABEL).as_deref() {
                            Some("1") => 1,
                            _ => 60,
                        };
                    let name: Cow<'a, str> = match point.name {
                        Some(name) => Cow::Owned(name),
                        None => Cow::Borrowed(&metric.name),
                    };
                    if settings.resource_to_telemetry {
                        for (k, v) in resource.pairs() {
                            if settings.exclude_service_attributes && k.starts_with("service.") {
                                continue;
                            }
                            labels.insert_if_absent(k, v);
                        }
                    }
                    if !scope_name.is_empty() {
                        labels.insert(OTEL_LIB, scope_name);
                    }
                    let timestamp_ms = if point.time_unix_nano == 0 {
                        now_ms
                    } else {
                        (point.time_unix_nano / 1_000_000) as i64
                    };
                    let mut key = GroupKey {
                        target,
                        timestamp_ms,
                        type_class: point.type_class,
                        split: point.split,
                        labels,
                    };
                    let metric = GroupedMetric {
                        name,
                        unit: unit.clone(),
                        value: point.value,
                        storage_resolution,
                    };
                    // A second value for a metric already in the group goes to the next event
                    // with the same dimensions instead of being dropped.
                    loop {
                        let hash = hasher.hash_one(&key);
                        match group_index.find(hash, |&(h, i)| h == hash && groups[i].0 == key) {
                            Some(&(_, i)) if groups[i].1.iter().any(|m| m.name == metric.name) => {
                                key.split += 1_000;
                            }
                            Some(&(_, i)) => {
                                groups[i].1.push(metric);
                                break;
                            }
                            None => {
                                groups.push((key, vec![metric]));
                                // The hash is kept: growing the table need not hash keys again.
                                group_index.insert_unique(
                                    hash,
                                    (hash, groups.len() - 1),
                                    |&(h, _)| h,
                                );
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    let mut rendered = Vec::with_capacity(groups.len());
    // About what an event takes; growing a multi-megabyte buffer by copying showed in profiles.
    let mut buffer = Vec::with_capacity(groups.len() * 1024);
    let mut cache = DimensionsCache::default();
    for (key, metrics) in &groups {
        build_events(
            key.target,
            &targets[key.target],
            key,
            metrics,
            settings,
            &mut budget,
            &mut stats,
            &mut cache,
            &mut buffer,
            &mut rendered,
        );
    }
    let buffer = Bytes::from(buffer);
    let events = rendered
        .into_iter()
        .map(|r| EmfEvent {
            log_group: targets[r.target].log_group.clone(),
            log_stream: targets[r.target].log_stream.clone(),
            timestamp_ms: r.timestamp_ms,
            escaped: buffer.slice(r.range),
            size: r.size,
        })
        .collect();
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

fn points<'a>(
    metric: &'a Metric,
    settings: &EmfSettings,
    deltas: &mut DeltaCache,
    series: &SeriesPrefix,
    stats: &mut TranslateStats,
) -> Vec<PointOut<'a>> {
    let mut out = Vec::new();
    let delta_key = |kind: SeriesKind, attributes: &[KeyValue]| {
        DeltaKey::new(series, &metric.name, kind, attributes)
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
            // A non-monotonic cumulative sum (an up-down counter) is a level: its value is
            // published as it is. Its deltas would be changes nobody can read a level back from.
            let cumulative = sum.is_monotonic
                && sum.aggregation_temporality == AggregationTemporality::Cumulative as i32;
            for p in &sum.data_points {
                let Some(v) = number_value(p).filter(|v| !skip(p.flags, &[*v])) else {
                    stats.skipped_points += 1;
                    continue;
                };
                let value = if cumulative {
                    match deltas.number_delta(
                        delta_key(SeriesKind::Sum, &p.attributes),
                        p.start_time_unix_nano,
                        v,
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
                        delta_key(SeriesKind::Histogram, &p.attributes),
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
                        delta_key(SeriesKind::ExponentialHistogram, &p.attributes),
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
                // detailed_metrics: the sum, the count, and one point per quantile, each in its
                // own event as in the collector (its group key holds the part's index).
                let part = |split: usize,
                            name: Option<String>,
                            label: Option<(&'static str, String)>,
                            value: f64| PointOut {
                    attributes: &p.attributes,
                    name,
                    extra_label: label,
                    time_unix_nano: p.time_unix_nano,
                    value: EmfValue::Number(value),
                    type_class: 4,
                    split,
                };
                out.push(part(0, Some(format!("{}_sum", metric.name)), None, p.sum));
                out.push(part(
                    1,
                    Some(format!("{}_count", metric.name)),
                    None,
                    p.count as f64,
                ));
                for (i, q) in p.quantile_values.iter().enumerate() {
                    out.push(part(
                        2 + i,
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
fn rollup_sets<'k>(labels: &'k Labels<'_>, rollup: DimensionRollup) -> Vec<Vec<&'k str>> {
    let mut sets = Vec::new();
    let has_lib = labels.contains_key(OTEL_LIB);
    let others = labels.len() - usize::from(has_lib);
    // The zero set: `[OTelLib]`, or `[]` for a point without a scope name.
    if rollup == DimensionRollup::ZeroAndSingleDimensionRollup && others > 0 {
        sets.push(if has_lib { vec![OTEL_LIB] } else { Vec::new() });
    }
    if rollup != DimensionRollup::NoDimensionRollup {
        for other in labels.keys().filter(|k| *k != OTEL_LIB) {
            let set = match has_lib {
                false => vec![other],
                true if other < OTEL_LIB => vec![other, OTEL_LIB],
                true => vec![OTEL_LIB, other],
            };
            sets.push(set);
        }
    }
    sets
}

fn push_unique<'k>(sets: &mut Vec<Vec<&'k str>>, set: Vec<&'k str>) {
    if !sets.contains(&set) {
        sets.push(set);
    }
}

/// The dimension sets of one label set under the rollup option: the full set first (unless a
/// rollup set already equals it, with one label besides OTelLib), as the collector writes them.
pub fn dimension_sets<'k>(labels: &'k Labels<'_>, rollup: DimensionRollup) -> Vec<Vec<&'k str>> {
    let full: Vec<&str> = labels.keys().collect();
    let rollups = rollup_sets(labels, rollup);
    let mut sets = Vec::with_capacity(rollups.len() + 1);
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
fn metric_dimension_sets<'k>(
    metric: &str,
    labels: &'k Labels<'_>,
    settings: &'k EmfSettings,
    stats: &mut TranslateStats,
) -> Option<Vec<Vec<&'k str>>> {
    let mut candidates = if settings.declarations.is_empty() {
        dimension_sets(labels, settings.rollup)
    } else {
        let mut sets: Vec<Vec<&str>> = Vec::new();
        let mut covered = false;
        for declaration in settings
            .declarations
            .iter()
            .filter(|d| d.applies(metric, labels))
        {
            covered = true;
            sets.extend(
                declaration
                    .dimension_sets(labels)
                    .map(|set| set.iter().map(String::as_str).collect()),
            );
        }
        if !covered {
            return None;
        }
        // Rollup sets are appended to the declared ones, as in the collector.
        let mut unique: Vec<Vec<&str>> = Vec::new();
        for set in sets.into_iter().chain(rollup_sets(labels, settings.rollup)) {
            push_unique(&mut unique, set);
        }
        unique
    };
    let before = candidates.len();
    candidates.retain(|set| set.len() <= MAX_DIMENSIONS_PER_SET);
    stats.dimension_sets_over_limit += (before - candidates.len()) as u64;
    Some(candidates)
}

/// CloudWatch Logs' limit on one event, less the 26 bytes it adds.
pub const MAX_EVENT_BYTES: usize = 256 * 1024 - 26;

/// An event rendered into the batch's buffer.
struct Rendered {
    target: usize,
    timestamp_ms: i64,
    range: std::ops::Range<usize>,
    size: usize,
}

#[allow(clippy::too_many_arguments)]
fn build_events(
    target_index: usize,
    target: &Target,
    key: &GroupKey<'_>,
    metrics: &[GroupedMetric<'_>],
    settings: &EmfSettings,
    budget: &mut Option<&mut CardinalityBudget>,
    stats: &mut TranslateStats,
    cache: &mut DimensionsCache,
    buffer: &mut Vec<u8>,
    rendered: &mut Vec<Rendered>,
) {
    let start = buffer.len();
    let mut writer = EventWriter {
        out: buffer,
        added: 0,
    };
    render(
        target,
        key,
        metrics,
        settings,
        budget,
        stats,
        cache,
        &mut writer,
    );
    let added = writer.added;
    let size = buffer.len() - start - added;
    if size <= MAX_EVENT_BYTES || metrics.len() == 1 {
        rendered.push(Rendered {
            target: target_index,
            timestamp_ms: key.timestamp_ms,
            range: start..buffer.len(),
            size,
        });
        return;
    }
    // Too large for one event: split by metrics rather than truncating into invalid JSON.
    buffer.truncate(start);
    let (first, second) = metrics.split_at(metrics.len() / 2);
    for half in [first, second] {
        build_events(
            target_index,
            target,
            key,
            half,
            settings,
            budget,
            stats,
            cache,
            buffer,
            rendered,
        );
    }
}

/// A top-level field of an event, written in key order as the collector's sorted maps are.
enum Field<'r> {
    Text(&'r str),
    Decoded(Value),
    Metric(&'r EmfValue),
    Aws,
    Directives,
    TimestampText,
}

#[allow(clippy::too_many_arguments)]
fn render(
    target: &Target,
    key: &GroupKey<'_>,
    metrics: &[GroupedMetric<'_>],
    settings: &EmfSettings,
    budget: &mut Option<&mut CardinalityBudget>,
    stats: &mut TranslateStats,
    cache: &mut DimensionsCache,
    w: &mut EventWriter,
) {
    let namespace = target.namespace.as_str();
    let mut folded = false;
    // Metrics sharing the same dimension sets (rendered) share directives.
    let mut by_sets: Vec<Directive> = Vec::new();
    let keys_decide = settings.declarations.is_empty() && budget.is_none();
    if keys_decide {
        // The sets depend on the label keys alone: rendered once per key list.
        let dimensions = cache.get(&key.labels, settings.rollup);
        stats.dimension_sets_over_limit += dimensions.over_limit * metrics.len() as u64;
        if !metrics.is_empty() {
            by_sets.push(Directive {
                dimensions: Cow::Borrowed(&dimensions.escaped),
                added: dimensions.added,
                members: metrics.iter().collect(),
            });
        }
    }
    for metric in metrics.iter().filter(|_| !keys_decide) {
        // No declaration covers the metric, or none leaves it a dimension set: it is not
        // extracted (nor counted against the budget); its value stays a field of the event.
        let Some(mut sets) = metric_dimension_sets(&metric.name, &key.labels, settings, stats)
            .filter(|sets| !sets.is_empty())
        else {
            continue;
        };
        if let Some(budget) = budget.as_deref_mut() {
            let identities: Vec<u64> = sets
                .iter()
                .map(|set| {
                    budget
                        .hasher()
                        .identity(namespace, &metric.name, set, &key.labels)
                })
                .collect();
            match budget.admit(namespace, &metric.name, &identities, &key.labels) {
                Admission::Admitted => {}
                Admission::Folded => {
                    folded = true;
                    sets = vec![vec![OVERFLOW_KEY]];
                    stats.folded_points += 1;
                }
                Admission::Dropped => {
                    stats.dropped_points += 1;
                    continue;
                }
            }
        }
        let (rendered, added) = render_dimensions(&sets);
        match by_sets.iter_mut().find(|d| *d.dimensions == *rendered) {
            Some(directive) => directive.members.push(metric),
            None => by_sets.push(Directive {
                dimensions: Cow::Owned(rendered),
                added,
                members: vec![metric],
            }),
        }
    }
    // Fields in the order a map would receive them; a later one replaces an earlier one.
    let mut fields: Vec<(&str, Field)> = Vec::with_capacity(key.labels.len() + metrics.len() + 3);
    for (k, v) in key.labels.iter() {
        let field = if settings.json_encoded_labels.iter().any(|l| l == k) {
            serde_json::from_str(v)
                .map(Field::Decoded)
                .unwrap_or(Field::Text(v))
        } else {
            Field::Text(v)
        };
        fields.push((k, field));
    }
    for m in metrics {
        fields.push((&m.name, Field::Metric(&m.value)));
    }
    if folded {
        fields.push((OVERFLOW_KEY, Field::Text("true")));
    }
    let extracted = !by_sets.is_empty();
    // Without directives no declaration covers any metric here: the values stay queryable in
    // CloudWatch Logs, but nothing is extracted (and billed) as a metric.
    if extracted && settings.version_zero {
        fields.push(("Version", Field::Text("0")));
        fields.push(("CloudWatchMetrics", Field::Directives));
        fields.push(("Timestamp", Field::TimestampText));
    } else if extracted {
        fields.push(("Version", Field::Text("1")));
        fields.push(("_aws", Field::Aws));
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));
    w.byte(b'{');
    let mut first = true;
    for (i, (name, field)) in fields.iter().enumerate() {
        if fields.get(i + 1).is_some_and(|next| next.0 == *name) {
            continue;
        }
        if !first {
            w.byte(b',');
        }
        first = false;
        w.text(name);
        w.byte(b':');
        match field {
            Field::Text(text) => w.text(text),
            Field::Decoded(value) => w.value(value),
            Field::Metric(value) => value.write_json(w),
            Field::Directives => write_directives(w, namespace, &by_sets),
            Field::TimestampText => w.value(&key.timestamp_ms.to_string()),
            Field::Aws => {
                w.structure("{\"CloudWatchMetrics\":");
                write_directives(w, namespace, &by_sets);
                w.structure(",\"Timestamp\":");
                w.value(&key.timestamp_ms);
                w.byte(b'}');
            }
        }
    }
    w.byte(b'}');
}

/// Metrics sharing one list of dimension sets (rendered, escaped).
struct Directive<'r> {
    dimensions: Cow<'r, [u8]>,
    added: usize,
    members: Vec<&'r GroupedMetric<'r>>,
}

/// `[{"Dimensions":[…],"Metrics":[{"Name":…,"StorageResolution":…,"Unit":…}],"Namespace":…}]`
fn write_directives(w: &mut EventWriter, namespace: &str, by_sets: &[Directive]) {
    w.byte(b'[');
    let mut first = true;
    for directive in by_sets {
        for chunk in directive.members.chunks(MAX_METRICS_PER_DIRECTIVE) {
            if !first {
                w.byte(b',');
            }
            first = false;
            w.structure("{\"Dimensions\":");
            w.escaped(&directive.dimensions, directive.added);
            w.structure(",\"Metrics\":[");
            for (i, m) in chunk.iter().enumerate() {
                if i > 0 {
                    w.byte(b',');
                }
                w.structure("{\"Name\":");
                w.text(&m.name);
                w.structure(",\"StorageResolution\":");
                w.value(&m.storage_resolution);
                w.structure(",\"Unit\":");
                w.text(&m.unit);
                w.byte(b'}');
            }
            w.structure("],\"Namespace\":");
            w.text(namespace);
            w.byte(b'}');
        }
    }
    w.byte(b']');
}

/// Dimension sets as escaped JSON, with the bytes the escaping added.
fn render_dimensions(sets: &[Vec<&str>]) -> (Vec<u8>, usize) {
    let mut rendered = Vec::with_capacity(64);
    let mut writer = EventWriter {
        out: &mut rendered,
        added: 0,
    };
    writer.value(sets);
    let added = writer.added;
    (rendered, added)
}

/// A label-key list's dimension sets, rendered.
struct CachedDimensions {
    escaped: Vec<u8>,
    added: usize,
    /// Sets left out for holding over [`MAX_DIMENSIONS_PER_SET`] keys.
    over_limit: u64,
}

/// Rendered dimension sets by label-key list, for the common case where they depend on the
/// keys alone (no metric declarations, no budget): one rendering per key list and batch.
#[derive(Default)]
struct DimensionsCache {
    by_keys: hashbrown::HashMap<Box<[u8]>, CachedDimensions>,
    lookup: Vec<u8>,
}

impl DimensionsCache {
    fn get(&mut self, labels: &Labels<'_>, rollup: DimensionRollup) -> &CachedDimensions {
        self.lookup.clear();
        for key in labels.keys() {
            self.lookup
                .extend_from_slice(&(key.len() as u32).to_le_bytes());
            self.lookup.extend_from_slice(key.as_bytes());
        }
        self.by_keys.entry_ref(&self.lookup[..]).or_insert_with(|| {
            let mut sets = dimension_sets(labels, rollup);
            let before = sets.len();
            sets.retain(|set| set.len() <= MAX_DIMENSIONS_PER_SET);
            let (escaped, added) = render_dimensions(&sets);
            CachedDimensions {
                escaped,
                added,
                over_limit: (before - sets.len()) as u64,
            }
        })
    }
}

#[cfg(test)]
mod tests;
