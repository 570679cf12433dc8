//! The `metricstransform` processor (also `metrics_transform`): renames metrics, copies them,
//! combines several into one, and edits their labels and values; aggregating over labels is how
//! users cut the dimensions CloudWatch bills. Transforms run in order over each scope; regular
//! expressions are unanchored searches, and `new_name` expands `$1` / `${name}` captures.

use super::matching::{MatchType, Pattern};
use crate::pipeline::{Payload, for_each_point_attributes, point_attributes, retain_points};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use opentelemetry_proto::tonic::metrics::v1::{
    HistogramDataPoint, Metric, NumberDataPoint, ScopeMetrics, metric::Data,
    number_data_point::Value as Nv,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValueActionConfig {
    value: String,
    new_value: String,
}

/// One entry of `operations` as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OperationConfig {
    #[serde(default)]
    action: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    new_label: String,
    #[serde(default)]
    new_value: String,
    #[serde(default)]
    label_value: String,
    #[serde(default)]
    label_set: Vec<String>,
    #[serde(default)]
    aggregated_values: Vec<String>,
    #[serde(default)]
    aggregation_type: String,
    #[serde(default)]
    experimental_scale: f64,
    #[serde(default)]
    value_actions: Vec<ValueActionConfig>,
}

/// One entry of `transforms` as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    #[serde(default)]
    include: String,
    /// The name `include` had in older collectors; ADOT's bundled configs still use it.
    #[serde(default)]
    metric_name: String,
    #[serde(default)]
    match_type: String,
    #[serde(default)]
    experimental_match_labels: BTreeMap<String, String>,
    #[serde(default)]
    action: String,
    #[serde(default)]
    new_name: String,
    #[serde(default)]
    aggregation_type: String,
    #[serde(default)]
    submatch_case: String,
    #[serde(default)]
    group_resource_labels: BTreeMap<String, String>,
    #[serde(default)]
    operations: Vec<OperationConfig>,
}

/// `processors.metricstransform` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsTransformSection {
    #[serde(default)]
    transforms: Vec<TransformConfig>,
}

/// How points that fall together are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Sum,
    Mean,
    Min,
    Max,
    Count,
    Median,
}

impl Aggregation {
    fn parse(text: &str) -> Result<Option<Self>, String> {
        Ok(Some(match text {
            "" => return Ok(None),
            "sum" => Aggregation::Sum,
            "mean" => Aggregation::Mean,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "count" => Aggregation::Count,
            "median" => Aggregation::Median,
            other => {
                return Err(format!(
                    "{other:?} must be in [\"sum\" \"mean\" \"min\" \"max\" \"count\" \"median\"]"
                ));
            }
        }))
    }
}

#[derive(Debug, Clone)]
enum Operation {
    AddLabel {
        label: String,
        value: String,
    },
    UpdateLabel {
        label: String,
        new_label: String,
        values: Vec<(String, String)>,
    },
    DeleteLabelValue {
        label: String,
        value: String,
    },
    ToggleScalarDataType,
    ScaleValue(f64),
    AggregateLabels {
        keep: Vec<String>,
        how: Option<Aggregation>,
    },
    AggregateLabelValues {
        label: String,
        values: Vec<String>,
        new_value: String,
        how: Option<Aggregation>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransformAction {
    Update,
    Insert,
    Combine,
}

#[derive(Debug, Clone)]
struct Transform {
    include: Pattern,
    labels: Vec<(String, Pattern)>,
    action: TransformAction,
    new_name: String,
    how: Option<Aggregation>,
    upper: Option<bool>,
    operations: Vec<Operation>,
}

/// A validated `metricstransform` processor.
#[derive(Debug, Clone)]
pub struct MetricsTransformConfig {
    /// As written, for `validate --print`.
    written: Box<MetricsTransformSection>,
    transforms: Vec<Transform>,
}

fn with_version(text: &str) -> String {
    text.replace("{{version}}", crate::VERSION)
}

impl OperationConfig {
    fn validate(&self, n: usize) -> Result<Operation, String> {
        let how = Aggregation::parse(&self.aggregation_type)
            .map_err(|e| format!("operation {n}: invalid aggregation_type: {e}"))?;
        Ok(match self.action.as_str() {
            "add_label" => {
                if self.new_label.is_empty() || self.new_value.is_empty() {
                    return Err(format!(
                        "operation {n}: missing required field \"new_label\" and \"new_value\" while \"action\" is add_label"
                    ));
                }
                Operation::AddLabel {
                    label: self.new_label.clone(),
                    value: with_version(&self.new_value),
                }
            }
            "update_label" => {
                if self.label.is_empty() {
                    return Err(format!(
                        "operation {n}: missing required field \"label\" while \"action\" is update_label"
                    ));
                }
                Operation::UpdateLabel {
                    label: self.label.clone(),
                    new_label: self.new_label.clone(),
                    values: self
                        .value_actions
                        .iter()
                        .map(|v| (v.value.clone(), with_version(&v.new_value)))
                        .collect(),
                }
            }
            "delete_label_value" => Operation::DeleteLabelValue {
                label: self.label.clone(),
                value: self.label_value.clone(),
            },
            "toggle_scalar_data_type" => Operation::ToggleScalarDataType,
            "experimental_scale_value" => {
                if self.experimental_scale == 0.0 {
                    return Err(format!(
                        "operation {n}: missing required field \"experimental_scale\" while \"action\" is experimental_scale_value"
                    ));
                }
                Operation::ScaleValue(self.experimental_scale)
            }
            "aggregate_labels" => Operation::AggregateLabels {
                keep: self.label_set.clone(),
                how,
            },
            "aggregate_label_values" => Operation::AggregateLabelValues {
                label: self.label.clone(),
                values: self.aggregated_values.clone(),
                new_value: with_version(&self.new_value),
                how,
            },
            other => {
                return Err(format!(
                    "operation {n}: {other:?} must be in [\"add_label\" \"update_label\" \"delete_label_value\" \"toggle_scalar_data_type\" \"experimental_scale_value\" \"aggregate_labels\" \"aggregate_label_values\"]"
                ));
            }
        })
    }
}

impl MetricsTransformSection {
    pub fn validate(&self) -> Result<MetricsTransformConfig, (String, String)> {
        let mut transforms = Vec::new();
        for (i, t) in self.transforms.iter().enumerate() {
            let at = |key: &str| format!("transforms[{i}]{key}");
            let include = if t.include.is_empty() {
                &t.metric_name
            } else {
                &t.include
            };
            if include.is_empty() {
                return Err((at(""), "missing required field \"include\"".into()));
            }
            let match_type = match t.match_type.as_str() {
                "" | "strict" => MatchType::Strict,
                "regexp" => MatchType::Regexp,
                _ => {
                    return Err((
                        at(".match_type"),
                        format!(
                            "{:?}: \"match_type\" must be in [\"strict\" \"regexp\"]",
                            t.match_type
                        ),
                    ));
                }
            };
            let action = match t.action.as_str() {
                "update" => TransformAction::Update,
                "insert" => TransformAction::Insert,
                "combine" => TransformAction::Combine,
                "group" => {
                    return Err((
                        at(".action"),
                        "the \"group\" action is not supported by otel-sidecar".into(),
                    ));
                }
                _ => {
                    return Err((
                        at(".action"),
                        format!(
                            "{:?}: \"action\" must be in [\"update\" \"insert\" \"combine\" \"group\"]",
                            t.action
                        ),
                    ));
                }
            };
            if matches!(action, TransformAction::Insert | TransformAction::Combine)
                && t.new_name.is_empty()
            {
                return Err((
                    at(""),
                    format!(
                        "missing required field \"new_name\" while \"action\" is {}",
                        t.action
                    ),
                ));
            }
            let how = Aggregation::parse(&t.aggregation_type)
                .map_err(|e| (at(".aggregation_type"), e))?;
            if action == TransformAction::Combine && how.is_none() {
                return Err((
                    at(""),
                    "missing required field \"aggregation_type\" while \"action\" is combine"
                        .into(),
                ));
            }
            let upper = match t.submatch_case.as_str() {
                "" => None,
                "lower" => Some(false),
                "upper" => Some(true),
                _ => {
                    return Err((
                        at(".submatch_case"),
                        format!(
                            "{:?}: \"submatch_case\" must be in [\"lower\" \"upper\"]",
                            t.submatch_case
                        ),
                    ));
                }
            };
            if !t.group_resource_labels.is_empty() {
                return Err((
                    at(".group_resource_labels"),
                    "only the \"group\" action uses it, which otel-sidecar does not support".into(),
                ));
            }
            let include = match_type
                .pattern(include)
                .map_err(|e| (at(".include"), e))?;
            let labels = t
                .experimental_match_labels
                .iter()
                .map(|(k, v)| Ok((k.clone(), match_type.pattern(v)?)))
                .collect::<Result<_, String>>()
                .map_err(|e| (at(".experimental_match_labels"), e))?;
            let operations = t
                .operations
                .iter()
                .enumerate()
                .map(|(n, o)| o.validate(n + 1))
                .collect::<Result<_, _>>()
                .map_err(|e| (at(".operations"), e))?;
            transforms.push(Transform {
                include,
                labels,
                action,
                new_name: t.new_name.clone(),
                how,
                upper,
                operations,
            });
        }
        Ok(MetricsTransformConfig {
            written: Box::new(self.clone()),
            transforms,
        })
    }
}

/// A label's value as a string (`Str()` in the collector: non-strings read as "").
fn label<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).map(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Av::StringValue(s)) => s.as_str(),
            _ => "",
        }
    })
}

fn set_label(attributes: &mut Vec<KeyValue>, key: &str, value: &str) {
    let value = Some(AnyValue {
        value: Some(Av::StringValue(value.to_string())),
    });
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = value,
        None => attributes.push(KeyValue {
            key: key.to_string(),
            value,
            ..Default::default()
        }),
    }
}

/// Calls `f` on the attributes of the points `select` accepts.
fn edit_points(
    metric: &mut Metric,
    select: impl Fn(&[KeyValue]) -> bool,
    mut f: impl FnMut(&mut Vec<KeyValue>),
) {
    for_each_point_attributes(metric, |attributes| {
        if select(attributes) {
            f(attributes)
        }
    });
}

impl Transform {
    fn point_matches(&self, attributes: &[KeyValue]) -> bool {
        self.labels
            .iter()
            .all(|(key, pattern)| pattern.is_match(label(attributes, key).unwrap_or("")))
    }

    /// The metric is selected when its name matches and it has no points or a matching one.
    fn selects(&self, metric: &Metric) -> bool {
        if !self.include.is_match(&metric.name) {
            return false;
        }
        let points = point_attributes(metric);
        points.is_empty() || points.iter().any(|a| self.point_matches(a))
    }

    fn all_points_match(&self, metric: &Metric) -> bool {
        point_attributes(metric)
            .iter()
            .all(|a| self.point_matches(a))
    }

    /// `new_name` with the include regexp's captures expanded; the literal when that is empty.
    fn renamed(&self, name: &str) -> String {
        if let Pattern::Regexp(regex) = &self.include
            && let Some(captures) = regex.captures(name)
        {
            let mut out = String::new();
            captures.expand(&self.new_name, &mut out);
            if !out.is_empty() {
                return out;
            }
        }
        self.new_name.clone()
    }

    /// Runs the operations on a metric; `whole` says whether every point matched (label and
    /// aggregation operations only run then, as in the collector).
    fn operate(&self, metric: &mut Metric, whole: bool) {
        for operation in &self.operations {
            match operation {
                Operation::AddLabel { label: key, value } if whole => edit_points(
                    metric,
                    |_| true,
                    |a| {
                        if label(a, key).is_none() {
                            set_label(a, key, value)
                        }
                    },
                ),
                Operation::UpdateLabel {
                    label: key,
                    new_label,
                    values,
                } => edit_points(
                    metric,
                    |a| self.point_matches(a),
                    |a| {
                        let Some(kv) = a.iter_mut().find(|kv| kv.key == *key) else {
                            return;
                        };
                        if !new_label.is_empty() {
                            kv.key = new_label.clone();
                        }
                        let current = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(Av::StringValue(s)) => s.as_str(),
                            _ => "",
                        };
                        if let Some((_, new_value)) = values.iter().find(|(v, _)| v == current) {
                            kv.value = Some(AnyValue {
                                value: Some(Av::StringValue(new_value.clone())),
                            });
                        }
                    },
                ),
                Operation::DeleteLabelValue { label: key, value } if whole => {
                    retain_points(metric, |a| label(a, key) != Some(value.as_str()))
                }
                Operation::ToggleScalarDataType => toggle(metric, |a| self.point_matches(a)),
                Operation::ScaleValue(factor) => scale(metric, *factor, |a| self.point_matches(a)),
                Operation::AggregateLabels { keep, how } if whole => {
                    edit_points(metric, |_| true, |a| a.retain(|kv| keep.contains(&kv.key)));
                    aggregate(metric, *how);
                }
                Operation::AggregateLabelValues {
                    label: key,
                    values,
                    new_value,
                    how,
                } if whole => {
                    edit_points(
                        metric,
                        |_| true,
                        |a| {
                            if let Some(current) = label(a, key)
                                && values.iter().any(|v| v == current)
                            {
                                set_label(a, key, new_value)
                            }
                        },
                    );
                    aggregate(metric, *how);
                }
                _ => {}
            }
        }
    }

    fn apply(&self, scope: &mut ScopeMetrics) {
        match self.action {
            TransformAction::Update => {
                scope.metrics.retain_mut(|metric| {
                    if !self.selects(metric) {
                        return true;
                    }
                    let had = !point_attributes(metric).is_empty();
                    let whole = self.all_points_match(metric);
                    if whole && !self.new_name.is_empty() {
                        metric.name = self.renamed(&metric.name);
                    }
                    self.operate(metric, whole);
                    !(had && point_attributes(metric).is_empty())
                });
            }
            TransformAction::Insert => {
                let mut copies = Vec::new();
                for metric in scope.metrics.iter().filter(|m| self.selects(m)) {
                    let mut copy = metric.clone();
                    retain_points(&mut copy, |a| self.point_matches(a));
                    copy.name = self.renamed(&metric.name);
                    self.operate(&mut copy, true);
                    copies.push(copy);
                }
                scope.metrics.extend(copies);
            }
            TransformAction::Combine => self.combine(scope),
        }
    }

    fn combine(&self, scope: &mut ScopeMetrics) {
        let selected: Vec<usize> = (0..scope.metrics.len())
            .filter(|&i| self.selects(&scope.metrics[i]))
            .collect();
        if selected.is_empty() {
            return;
        }
        if let Err(why) = can_be_combined(selected.iter().map(|&i| &scope.metrics[i])) {
            tracing::warn!(reason = %why, new_name = %self.new_name, "metrics cannot be combined");
            return;
        }
        let mut combined = scope.metrics[selected[0]].clone();
        combined.name = self.new_name.clone();
        clear_points(&mut combined);
        for &i in &selected {
            let mut part = scope.metrics[i].clone();
            retain_points(&mut part, |a| self.point_matches(a));
            if let Pattern::Regexp(regex) = &self.include
                && let Some(captures) = regex.captures(&part.name.clone())
            {
                let names: Vec<Option<&str>> = regex.capture_names().collect();
                for (n, group) in captures.iter().enumerate().skip(1) {
                    let Some(group) = group.filter(|g| !g.as_str().is_empty()) else {
                        continue;
                    };
                    let key = names[n]
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("${n}"));
                    let value = match self.upper {
                        Some(true) => group.as_str().to_uppercase(),
                        Some(false) => group.as_str().to_lowercase(),
                        None => group.as_str().to_string(),
                    };
                    edit_points(&mut part, |_| true, |a| set_label(a, &key, &value));
                }
            }
            append_points(&mut combined, part);
        }
        let mut index = 0;
        scope.metrics.retain(|_| {
            let keep = !selected.contains(&index);
            index += 1;
            keep
        });
        aggregate(&mut combined, self.how);
        self.operate(&mut combined, true);
        scope.metrics.push(combined);
    }
}

fn can_be_combined<'a>(mut metrics: impl Iterator<Item = &'a Metric>) -> Result<(), String> {
    let Some(first) = metrics.next() else {
        return Ok(());
    };
    let keys = |m: &Metric| {
        let mut keys: Vec<String> = point_attributes(m)
            .first()
            .map(|a| a.iter().map(|kv| kv.key.clone()).collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    let shape = |m: &Metric| match &m.data {
        Some(Data::Gauge(_)) => Ok((1, 0, false)),
        Some(Data::Sum(s)) => Ok((2, s.aggregation_temporality, s.is_monotonic)),
        Some(Data::Histogram(h)) => Ok((3, h.aggregation_temporality, false)),
        Some(Data::ExponentialHistogram(h)) => Ok((4, h.aggregation_temporality, false)),
        Some(Data::Summary(_)) => Err("Summary metrics cannot be combined".to_string()),
        None => Ok((0, 0, false)),
    };
    let first_shape = shape(first)?;
    for other in metrics {
        if other.unit != first.unit {
            return Err(format!(
                "metrics cannot be combined as they have different units: {} != {}",
                first.unit, other.unit
            ));
        }
        if shape(other)? != first_shape {
            return Err(
                "metrics cannot be combined as they are of different types or temporality".into(),
            );
        }
        if keys(other) != keys(first) {
            return Err("metrics cannot be combined as they have different label keys".into());
        }
    }
    Ok(())
}

fn clear_points(metric: &mut Metric) {
    retain_points(metric, |_| false);
}

fn append_points(into: &mut Metric, from: Metric) {
    match (into.data.as_mut(), from.data) {
        (Some(Data::Gauge(a)), Some(Data::Gauge(b))) => a.data_points.extend(b.data_points),
        (Some(Data::Sum(a)), Some(Data::Sum(b))) => a.data_points.extend(b.data_points),
        (Some(Data::Histogram(a)), Some(Data::Histogram(b))) => a.data_points.extend(b.data_points),
        (Some(Data::ExponentialHistogram(a)), Some(Data::ExponentialHistogram(b))) => {
            a.data_points.extend(b.data_points)
        }
        _ => {}
    }
}

fn toggle(metric: &mut Metric, select: impl Fn(&[KeyValue]) -> bool) {
    let flip = |p: &mut NumberDataPoint| {
        if select(&p.attributes) {
            p.value = match p.value {
                Some(Nv::AsInt(i)) => Some(Nv::AsDouble(i as f64)),
                Some(Nv::AsDouble(d)) => Some(Nv::AsInt(d.trunc() as i64)),
                None => None,
            };
        }
    };
    match metric.data.as_mut() {
        Some(Data::Gauge(g)) => g.data_points.iter_mut().for_each(flip),
        Some(Data::Sum(s)) => s.data_points.iter_mut().for_each(flip),
        _ => {}
    }
}

fn scale(metric: &mut Metric, factor: f64, select: impl Fn(&[KeyValue]) -> bool) {
    let number = |p: &mut NumberDataPoint| {
        if select(&p.attributes) {
            p.value = match p.value {
                Some(Nv::AsInt(i)) => Some(Nv::AsInt((i as f64 * factor) as i64)),
                Some(Nv::AsDouble(d)) => Some(Nv::AsDouble(d * factor)),
                None => None,
            };
        }
    };
    match metric.data.as_mut() {
        Some(Data::Gauge(g)) => g.data_points.iter_mut().for_each(number),
        Some(Data::Sum(s)) => s.data_points.iter_mut().for_each(number),
        Some(Data::Histogram(h)) => {
            for p in h.data_points.iter_mut().filter(|p| select(&p.attributes)) {
                p.sum = p.sum.map(|v| v * factor);
                p.min = p.min.map(|v| v * factor);
                p.max = p.max.map(|v| v * factor);
                p.explicit_bounds.iter_mut().for_each(|b| *b *= factor);
                for e in &mut p.exemplars {
                    e.value = match e.value {
                        Some(
                            opentelemetry_proto::tonic::metrics::v1::exemplar::Value::AsDouble(d),
                        ) => Some(
                            opentelemetry_proto::tonic::metrics::v1::exemplar::Value::AsDouble(
                                d * factor,
                            ),
                        ),
                        Some(opentelemetry_proto::tonic::metrics::v1::exemplar::Value::AsInt(
                            i,
                        )) => Some(
                            opentelemetry_proto::tonic::metrics::v1::exemplar::Value::AsInt(
                                (i as f64 * factor) as i64,
                            ),
                        ),
                        None => None,
                    };
                }
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            for p in h.data_points.iter_mut().filter(|p| select(&p.attributes)) {
                p.sum = p.sum.map(|v| v * factor);
                p.min = p.min.map(|v| v * factor);
                p.max = p.max.map(|v| v * factor);
                p.zero_threshold *= factor;
            }
        }
        _ => {}
    }
}

/// The group a point falls in: its attributes (sorted) and timestamps, and for histograms
/// their bounds.
fn group_key(attributes: &[KeyValue], time: u64, start: Option<u64>, extra: &[u8]) -> Vec<u8> {
    let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut key = format!("{sorted:?}").into_bytes();
    key.extend_from_slice(&time.to_le_bytes());
    if let Some(start) = start {
        key.extend_from_slice(&start.to_le_bytes());
    }
    key.extend_from_slice(extra);
    key
}

/// Merges points with the same labels and timestamps (§ aggregateutil in the collector).
fn aggregate(metric: &mut Metric, how: Option<Aggregation>) {
    match metric.data.as_mut() {
        Some(Data::Gauge(g)) => {
            g.data_points = merge_numbers(std::mem::take(&mut g.data_points), how, false)
        }
        Some(Data::Sum(s)) => {
            let delta = s.aggregation_temporality == 1;
            s.data_points = merge_numbers(std::mem::take(&mut s.data_points), how, delta);
        }
        Some(Data::Histogram(h)) => {
            let delta = h.aggregation_temporality == 1;
            h.data_points = merge_histograms(std::mem::take(&mut h.data_points), delta);
        }
        // Summaries have no merge: the collector deletes their points.
        Some(Data::Summary(s)) => s.data_points.clear(),
        Some(Data::ExponentialHistogram(_)) | None => {}
    }
}

fn merge_numbers(
    points: Vec<NumberDataPoint>,
    how: Option<Aggregation>,
    delta: bool,
) -> Vec<NumberDataPoint> {
    let mut groups: Vec<(Vec<u8>, Vec<NumberDataPoint>)> = Vec::new();
    for p in points {
        let key = group_key(
            &p.attributes,
            p.time_unix_nano,
            delta.then_some(p.start_time_unix_nano),
            &[],
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    groups
        .into_iter()
        .map(|(_, members)| {
            let mut first = members[0].clone();
            if members.len() == 1 {
                return first;
            }
            let as_int = matches!(first.value, Some(Nv::AsInt(_)));
            let ints: Vec<i64> = members
                .iter()
                .map(|p| match p.value {
                    Some(Nv::AsInt(i)) => i,
                    Some(Nv::AsDouble(d)) => d as i64,
                    None => 0,
                })
                .collect();
            let raw_ints: Vec<i64> = members
                .iter()
                .map(|p| match p.value {
                    Some(Nv::AsInt(i)) => i,
                    _ => 0,
                })
                .collect();
            let doubles: Vec<f64> = members
                .iter()
                .map(|p| match p.value {
                    Some(Nv::AsInt(i)) => i as f64,
                    Some(Nv::AsDouble(d)) => d,
                    None => 0.0,
                })
                .collect();
            first.start_time_unix_nano = members
                .iter()
                .map(|p| p.start_time_unix_nano)
                .min()
                .unwrap_or(0);
            let n = members.len();
            first.value = match (how, as_int) {
                (None, _) => first.value,
                (Some(Aggregation::Count), true) => Some(Nv::AsInt(n as i64)),
                (Some(Aggregation::Count), false) => Some(Nv::AsDouble(n as f64)),
                (Some(Aggregation::Sum), true) => Some(Nv::AsInt(raw_ints.iter().sum())),
                (Some(Aggregation::Sum), false) => Some(Nv::AsDouble(doubles.iter().sum())),
                (Some(Aggregation::Mean), true) => {
                    Some(Nv::AsInt(raw_ints.iter().sum::<i64>() / n as i64))
                }
                (Some(Aggregation::Mean), false) => {
                    Some(Nv::AsDouble(doubles.iter().sum::<f64>() / n as f64))
                }
                (Some(Aggregation::Min), true) => Some(Nv::AsInt(*ints.iter().min().unwrap_or(&0))),
                (Some(Aggregation::Min), false) => Some(Nv::AsDouble(
                    doubles.iter().copied().fold(f64::INFINITY, f64::min),
                )),
                (Some(Aggregation::Max), true) => Some(Nv::AsInt(*ints.iter().max().unwrap_or(&0))),
                (Some(Aggregation::Max), false) => Some(Nv::AsDouble(
                    doubles.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                )),
                (Some(Aggregation::Median), true) => {
                    let mut v = ints.clone();
                    v.sort();
                    Some(Nv::AsInt(if n % 2 == 1 {
                        v[n / 2]
                    } else {
                        (v[n / 2 - 1] + v[n / 2]) / 2
                    }))
                }
                (Some(Aggregation::Median), false) => {
                    let mut v = doubles.clone();
                    v.sort_by(f64::total_cmp);
                    Some(Nv::AsDouble(if n % 2 == 1 {
                        v[n / 2]
                    } else {
                        (v[n / 2 - 1] + v[n / 2]) / 2.0
                    }))
                }
            };
            first
        })
        .collect()
}

fn merge_histograms(points: Vec<HistogramDataPoint>, delta: bool) -> Vec<HistogramDataPoint> {
    let mut groups: Vec<(Vec<u8>, HistogramDataPoint)> = Vec::new();
    for p in points.into_iter().filter(|p| p.count > 0) {
        let extra: Vec<u8> = p
            .explicit_bounds
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .chain([u8::from(p.min.is_some()), u8::from(p.max.is_some())])
            .chain(p.flags.to_le_bytes())
            .collect();
        let key = group_key(
            &p.attributes,
            p.time_unix_nano,
            delta.then_some(p.start_time_unix_nano),
            &extra,
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, into)) => {
                into.count += p.count;
                into.sum = Some(into.sum.unwrap_or(0.0) + p.sum.unwrap_or(0.0));
                for (a, b) in into.bucket_counts.iter_mut().zip(&p.bucket_counts) {
                    *a += b;
                }
                into.min = match (into.min, p.min) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                into.max = match (into.max, p.max) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                into.exemplars.extend(p.exemplars);
                into.start_time_unix_nano = into.start_time_unix_nano.min(p.start_time_unix_nano);
            }
            None => groups.push((key, p)),
        }
    }
    groups.into_iter().map(|(_, p)| p).collect()
}

impl MetricsTransformConfig {
    /// Runs every transform, in order, over each scope; empty scopes and resources go.
    pub fn process(&self, payload: &mut Payload) {
        let Payload::Metrics(list) = payload else {
            return;
        };
        for rm in list.iter_mut() {
            for scope in &mut rm.scope_metrics {
                for transform in &self.transforms {
                    transform.apply(scope);
                }
            }
            rm.scope_metrics.retain(|s| !s.metrics.is_empty());
        }
        list.retain(|rm| !rm.scope_metrics.is_empty());
    }
}

impl serde::Serialize for MetricsTransformConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, Histogram, Summary, SummaryDataPoint};
    use std::collections::BTreeSet;

    fn s(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Av::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn point(attributes: Vec<KeyValue>, value: i64, time: u64) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            value: Some(Nv::AsInt(value)),
            time_unix_nano: time,
            ..Default::default()
        }
    }

    fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
        Metric {
            name: name.into(),
            unit: "1".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: points,
            })),
            ..Default::default()
        }
    }

    fn run(yaml: &str, metrics: Vec<Metric>) -> Vec<Metric> {
        let config = serde_yaml_ng::from_str::<MetricsTransformSection>(yaml)
            .unwrap()
            .validate()
            .unwrap();
        let mut payload = Payload::Metrics(vec![
            opentelemetry_proto::tonic::metrics::v1::ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            },
        ]);
        config.process(&mut payload);
        let Payload::Metrics(list) = payload else {
            unreachable!()
        };
        list.into_iter()
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics)
            .collect()
    }

    fn numbers(metric: &Metric) -> BTreeSet<(String, i64)> {
        let Some(Data::Gauge(g)) = &metric.data else {
            panic!()
        };
        g.data_points
            .iter()
            .map(|p| {
                let mut attributes: Vec<String> = p
                    .attributes
                    .iter()
                    .map(|kv| {
                        format!(
                            "{}={}",
                            kv.key,
                            label(std::slice::from_ref(kv), &kv.key).unwrap_or("")
                        )
                    })
                    .collect();
                attributes.sort();
                let Some(Nv::AsInt(v)) = p.value else {
                    panic!()
                };
                (attributes.join(","), v)
            })
            .collect()
    }

    #[test]
    fn renames_copies_and_labels() {
        let out = run(
            r#"transforms: [{include: '^sys\.(.*)$', match_type: regexp, action: update, new_name: 'x.${1}'}]"#,
            vec![gauge("sys.cpu", vec![])],
        );
        assert_eq!(out[0].name, "x.cpu");
        let out = run(
            "transforms: [{metric_name: a, action: update, new_name: MemoryUtilized}]",
            vec![gauge("a", vec![point(vec![], 1, 1)])],
        );
        assert_eq!(
            out[0].name, "MemoryUtilized",
            "ADOT's configs write metric_name"
        );
        let out = run(
            "transforms: [{include: a, action: insert, new_name: a2}]",
            vec![gauge("a", vec![point(vec![], 1, 1)])],
        );
        assert_eq!(
            out.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "a2"]
        );
        assert_eq!(out[0].data, out[1].data);
        // Not every point matches: no rename, update_label only on the matching point.
        let out = run(
            "transforms: [{include: a, action: update, new_name: b, experimental_match_labels: {k: v}, operations: [{action: update_label, label: k, new_label: kk}]}]",
            vec![gauge(
                "a",
                vec![
                    point(vec![s("k", "v")], 1, 1),
                    point(vec![s("k", "w")], 2, 1),
                ],
            )],
        );
        assert_eq!(out[0].name, "a");
        assert_eq!(
            numbers(&out[0]),
            [("k=w".to_string(), 2), ("kk=v".to_string(), 1)]
                .into_iter()
                .collect()
        );
        let out = run(
            "transforms: [{include: a, action: update, operations: [{action: add_label, new_label: env, new_value: prod}]}]",
            vec![gauge(
                "a",
                vec![point(vec![s("env", "dev")], 1, 1), point(vec![], 2, 1)],
            )],
        );
        assert_eq!(
            numbers(&out[0]),
            [("env=dev".to_string(), 1), ("env=prod".to_string(), 2)]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn aggregation_follows_the_collector() {
        let three = |t: [u64; 3]| {
            vec![gauge(
                "a",
                vec![
                    point(vec![s("s", "x"), s("c", "1")], 1, t[0]),
                    point(vec![s("s", "x"), s("c", "2")], 2, t[1]),
                    point(vec![s("s", "y")], 5, t[2]),
                ],
            )]
        };
        let sum = "transforms: [{include: a, action: update, operations: [{action: aggregate_labels, label_set: [s], aggregation_type: sum}]}]";
        assert_eq!(
            numbers(&run(sum, three([1, 1, 1]))[0]),
            [("s=x".to_string(), 3), ("s=y".to_string(), 5)]
                .into_iter()
                .collect()
        );
        assert_eq!(
            numbers(&run(sum, three([1, 2, 1]))[0]).len(),
            3,
            "different timestamps never merge"
        );
        let count = "transforms: [{include: a, action: update, operations: [{action: aggregate_labels, label_set: [], aggregation_type: count}]}]";
        assert_eq!(
            numbers(&run(count, vec![gauge("a", vec![point(vec![], 42, 1)])])[0]),
            [(String::new(), 42)].into_iter().collect(),
            "a single point keeps its value"
        );
        let mean = "transforms: [{include: a, action: update, operations: [{action: aggregate_labels, label_set: [], aggregation_type: mean}]}]";
        assert_eq!(
            numbers(
                &run(
                    mean,
                    vec![gauge("a", vec![point(vec![], 1, 1), point(vec![], 2, 1)])]
                )[0]
            ),
            [(String::new(), 1)].into_iter().collect(),
            "integer mean truncates"
        );
        let values = "transforms: [{include: a, action: update, operations: [{action: aggregate_label_values, label: route, aggregated_values: ['/u/1', '/u/2'], new_value: '/u/*', aggregation_type: sum}]}]";
        let out = run(
            values,
            vec![gauge(
                "a",
                vec![
                    point(vec![s("route", "/u/1")], 1, 1),
                    point(vec![s("route", "/u/2")], 2, 1),
                    point(vec![s("route", "/h")], 7, 1),
                ],
            )],
        );
        assert_eq!(
            numbers(&out[0]),
            [("route=/h".to_string(), 7), ("route=/u/*".to_string(), 3)]
                .into_iter()
                .collect()
        );
        let summary = Metric {
            name: "a".into(),
            data: Some(Data::Summary(Summary {
                data_points: vec![SummaryDataPoint::default()],
            })),
            ..Default::default()
        };
        assert!(
            run(sum, vec![summary]).is_empty(),
            "summaries have no merge: the metric goes"
        );
    }

    #[test]
    fn combine_scale_toggle_and_delete() {
        let mut other = gauge("b", vec![point(vec![], 1, 1)]);
        other.unit = "ms".into();
        let out = run(
            "transforms: [{include: '^(a|b)$', match_type: regexp, action: combine, new_name: c, aggregation_type: sum}]",
            vec![gauge("a", vec![point(vec![], 1, 1)]), other],
        );
        assert_eq!(
            out.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"],
            "different units: nothing combined"
        );
        let out = run(
            "transforms: [{include: '^(?P<kind>a|b)$', match_type: regexp, action: combine, new_name: c, aggregation_type: sum}]",
            vec![
                gauge("a", vec![point(vec![], 1, 1)]),
                gauge("b", vec![point(vec![], 2, 1)]),
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            numbers(&out[0]),
            [("kind=a".to_string(), 1), ("kind=b".to_string(), 2)]
                .into_iter()
                .collect()
        );
        let histogram = Metric {
            name: "h".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    count: 2,
                    explicit_bounds: vec![1.0, 2.0],
                    bucket_counts: vec![1, 1, 0],
                    sum: Some(3.0),
                    ..Default::default()
                }],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        };
        let out = run(
            "transforms: [{include: h, action: update, operations: [{action: experimental_scale_value, experimental_scale: 1000}]}]",
            vec![histogram],
        );
        let Some(Data::Histogram(h)) = &out[0].data else {
            panic!()
        };
        assert_eq!(
            (
                h.data_points[0].explicit_bounds.clone(),
                h.data_points[0].bucket_counts.clone(),
                h.data_points[0].sum
            ),
            (vec![1000.0, 2000.0], vec![1, 1, 0], Some(3000.0))
        );
        let out = run(
            "transforms: [{include: a, action: update, operations: [{action: toggle_scalar_data_type}]}]",
            vec![gauge("a", vec![point(vec![], 3, 1)])],
        );
        let Some(Data::Gauge(g)) = &out[0].data else {
            panic!()
        };
        assert_eq!(g.data_points[0].value, Some(Nv::AsDouble(3.0)));
        let out = run(
            "transforms: [{include: a, action: update, operations: [{action: delete_label_value, label: k, label_value: x}]}]",
            vec![gauge("a", vec![point(vec![s("k", "x")], 1, 1)])],
        );
        assert!(out.is_empty(), "a metric left without points is removed");
    }

    #[test]
    fn bad_transforms_are_refused() {
        let cases = [
            ("transforms: [{action: update}]", "transforms[0]"),
            (
                "transforms: [{include: a, action: rename}]",
                "transforms[0].action",
            ),
            (
                "transforms: [{include: a, match_type: glob, action: update}]",
                "transforms[0].match_type",
            ),
            (
                "transforms: [{include: a, action: insert}]",
                "transforms[0]",
            ),
            (
                "transforms: [{include: a, action: combine, new_name: b}]",
                "transforms[0]",
            ),
            (
                "transforms: [{include: a, action: update, operations: [{action: add_label, new_label: x}]}]",
                "transforms[0].operations",
            ),
            (
                "transforms: [{include: a, action: update, operations: [{action: experimental_scale_value}]}]",
                "transforms[0].operations",
            ),
        ];
        for (yaml, path) in cases {
            let error = serde_yaml_ng::from_str::<MetricsTransformSection>(yaml)
                .unwrap()
                .validate()
                .unwrap_err();
            assert_eq!(error.0, path, "{yaml}: {}", error.1);
        }
    }
}
