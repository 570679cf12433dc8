//! Applying a transform to a scope's metrics: selecting, renaming, copying, combining, and the
//! label and value operations.

use super::aggregation::aggregate;
use super::model::{Operation, Transform, TransformAction};
use crate::pipeline::{for_each_point_attributes, point_attributes, retain_points};
use crate::processors::matching::Pattern;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use opentelemetry_proto::tonic::metrics::v1::{
    Metric, NumberDataPoint, ScopeMetrics, metric::Data, number_data_point::Value as Nv,
};

/// A label's value as a string (`Str()` in the collector: non-strings read as "").
pub(super) fn label<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).map(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Av::StringValue(s)) => s.as_str(),
            _ => "",
        }
    })
}

pub(super) fn set_label(attributes: &mut Vec<KeyValue>, key: &str, value: &str) {
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
pub(super) fn edit_points(
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
    pub(super) fn point_matches(&self, attributes: &[KeyValue]) -> bool {
        self.labels
            .iter()
            .all(|(key, pattern)| pattern.is_match(label(attributes, key).unwrap_or("")))
    }

    /// The metric is selected when its name matches and it has no points or a matching one.
    pub(super) fn selects(&self, metric: &Metric) -> bool {
        if !self.include.is_match(&metric.name) {
            return false;
        }
        let points = point_attributes(metric);
        points.is_empty() || points.iter().any(|a| self.point_matches(a))
    }

    pub(super) fn all_points_match(&self, metric: &Metric) -> bool {
        point_attributes(metric)
            .iter()
            .all(|a| self.point_matches(a))
    }

    /// `new_name` with the include regexp's captures expanded; the literal when that is empty.
    pub(super) fn renamed(&self, name: &str) -> String {
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
    pub(super) fn operate(&self, metric: &mut Metric, whole: bool) {
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

    pub(super) fn apply(&self, scope: &mut ScopeMetrics) {
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

    pub(super) fn combine(&self, scope: &mut ScopeMetrics) {
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

pub(super) fn can_be_combined<'a>(
    mut metrics: impl Iterator<Item = &'a Metric>,
) -> Result<(), String> {
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

pub(super) fn clear_points(metric: &mut Metric) {
    retain_points(metric, |_| false);
}

pub(super) fn append_points(into: &mut Metric, from: Metric) {
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

pub(super) fn toggle(metric: &mut Metric, select: impl Fn(&[KeyValue]) -> bool) {
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

pub(super) fn scale(metric: &mut Metric, factor: f64, select: impl Fn(&[KeyValue]) -> bool) {
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
