//! OTLP metrics → CloudWatch EMF log events (`exporter/awsemfexporter` in the collector). Pure
//! functions except for the cumulative→delta cache handed in.
//!
//! Kept from the collector: the `OTelLib` dimension, the default ZeroAndSingleDimensionRollup,
//! `"Unit":""` when unknown, the version "1" layout. Fixed (reference section 12): a cumulative
//! series that started after the sidecar contributes its first point; a second value for the
//! same metric in a group goes to its own event; directives hold at most 100 metrics and
//! dimension sets at most 30 keys; histograms are delta-converted.

use super::budget::{Admission, CardinalityBudget, OVERFLOW_KEY};
use super::delta::{
    DeltaCache, DeltaKey, DeltaPolicy, ExpSnapshot, SeriesKind, SeriesPrefix, SparseBuckets,
};
use super::labels::Labels;
use crate::exporters::embedded_json;
use crate::pipeline::view::{
    HistogramPointView, KeyValuesView, MetricDataView, MetricView, NumberPointView,
    ResourceMetricsView, SummaryPointView,
};
use bytes::Bytes;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, ResourceMetrics, number_data_point,
};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;

mod dimensions;
mod event;
mod points;
mod render;

pub use dimensions::dimension_sets;
use dimensions::*;
use event::*;
pub use points::exponential_values;
use points::*;
pub use render::MAX_EVENT_BYTES;
use render::*;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
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
    /// When the first point of a cumulative series is published as a delta.
    pub delta: DeltaPolicy,
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
    /// Points identical to one already in the batch (series, timestamp and value): published once.
    pub duplicate_points: u64,
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
    /// The point's own time in nanoseconds: a re-sent point has the same time and value, while
    /// two points of a series in one millisecond (two collections) differ in it.
    time_unix_nano: u64,
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

/// Translates a batch of the owned model into EMF events.
pub fn translate(
    batch: &[ResourceMetrics],
    settings: &EmfSettings,
    deltas: &mut DeltaCache,
    budget: Option<&mut CardinalityBudget>,
    now_ms: i64,
) -> (Vec<EmfEvent>, TranslateStats) {
    let views: Vec<_> = batch.iter().map(ResourceMetricsView::from).collect();
    render(&group(&views, settings, deltas, now_ms), settings, budget)
}

/// A batch's points grouped into what will be log events, deltas already taken: rendering it
/// again (after a shared budget answered) gives the same values.
pub struct Grouped<'a> {
    targets: Vec<Target>,
    groups: Vec<(GroupKey<'a>, Vec<GroupedMetric<'a>>)>,
    stats: TranslateStats,
}

/// Renders grouped points into EMF events, asking the budget about each metric.
pub fn render(
    grouped: &Grouped<'_>,
    settings: &EmfSettings,
    budget: Option<&mut CardinalityBudget>,
) -> (Vec<EmfEvent>, TranslateStats) {
    let mut stats = grouped.stats.clone();
    let mut renderer = Renderer::new(settings, budget, &mut stats, grouped.groups.len());
    for (key, metrics) in &grouped.groups {
        renderer.events(key.target, &grouped.targets[key.target], key, metrics);
    }
    let events = renderer.finish(&grouped.targets);
    (events, stats)
}

/// Groups a batch's points (taking cumulative deltas through `deltas`).
pub fn group<'a>(
    batch: &'a [ResourceMetricsView<'a>],
    settings: &'a EmfSettings,
    deltas: &mut DeltaCache,
    now_ms: i64,
) -> Grouped<'a> {
    let mut stats = TranslateStats::default();
    let mut targets: Vec<Target> = Vec::new();
    let hasher = hashbrown::DefaultHashBuilder::default();
    // Groups in the order they first appear, found by hash without storing their keys twice.
    let mut groups: Vec<(GroupKey<'a>, Vec<GroupedMetric<'a>>)> = Vec::new();
    let mut group_index: hashbrown::HashTable<(u64, usize)> =
        hashbrown::HashTable::with_capacity(1024);
    // For each group, the group of the same key with the next split (split + 1000) once known:
    // points of a series colliding in one millisecond walk these links instead of hashing and
    // comparing the whole key again at every step.
    let mut next_split: Vec<Option<usize>> = Vec::new();
    for resource_metrics in batch {
        let resource_attributes = resource_metrics.resource;
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
        for scope_metrics in &resource_metrics.scopes {
            // Collector quirk kept for identical dimensions: an empty scope name inherits the
            // previous scope's within the same resource.
            if let Some(name) = scope_metrics
                .scope
                .map(|s| s.name)
                .filter(|n| !n.is_empty())
            {
                scope_name = name;
            }
            let series = SeriesPrefix::new(
                namespace,
                log_group,
                log_stream,
                resource_attributes,
                scope_metrics.scope,
            );
            for metric in &scope_metrics.metrics {
                let unit: Cow<'a, str> = match settings.descriptors.get(metric.name) {
                    Some((unit, overwrite)) if *overwrite || metric.unit.is_empty() => {
                        Cow::Borrowed(unit)
                    }
                    _ => Cow::Borrowed(cloudwatch_unit(metric.unit)),
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
                        None => Cow::Borrowed(metric.name),
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
                        time_unix_nano: point.time_unix_nano,
                        storage_resolution,
                    };
                    // A second value for a metric already in the group goes to the next event
                    // with the same dimensions instead of being dropped; the same point again
                    // (re-sent: same series, time to the nanosecond and value) is published once.
                    // The walk along the splits follows `next_split`, looking a key up only where
                    // no link is known yet and then linking `from`, the group it came from.
                    let mut from: Option<usize> = None;
                    let mut linked: Option<usize> = None;
                    loop {
                        let i = match linked.take() {
                            Some(i) => i,
                            None => {
                                let hash = hasher.hash_one(&key);
                                let found = group_index
                                    .find(hash, |&(h, i)| h == hash && groups[i].0 == key)
                                    .map(|&(_, i)| i);
                                let i = found.unwrap_or(groups.len());
                                if let Some(from) = from {
                                    next_split[from] = Some(i);
                                }
                                if found.is_none() {
                                    groups.push((key, vec![metric]));
                                    next_split.push(None);
                                    // The hash is kept: growing the table need not hash keys
                                    // again.
                                    group_index.insert_unique(hash, (hash, i), |&(h, _)| h);
                                    break;
                                }
                                i
                            }
                        };
                        match groups[i].1.iter().find(|m| m.name == metric.name) {
                            Some(existing)
                                if existing.value == metric.value
                                    && existing.time_unix_nano == metric.time_unix_nano =>
                            {
                                stats.duplicate_points += 1;
                                break;
                            }
                            Some(_) => {
                                key.split += 1_000;
                                from = Some(i);
                                linked = next_split[i];
                            }
                            None => {
                                groups[i].1.push(metric);
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    Grouped {
        targets,
        groups,
        stats,
    }
}

#[cfg(test)]
mod tests;
