//! The section as written, and the transforms it describes, checked with the collector's
//! messages.

use super::aggregation::Aggregation;
use super::model::{Operation, Transform, TransformAction};
use crate::processors::matching::MatchType;
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

pub(super) fn with_version(text: &str) -> String {
    text.replace("{{version}}", crate::VERSION)
}

impl OperationConfig {
    pub(super) fn validate(&self, n: usize) -> Result<Operation, String> {
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
    /// The transforms the section describes, checked (paths below the section).
    pub(super) fn transforms(&self) -> Result<Vec<Transform>, (String, String)> {
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
        Ok(transforms)
    }
}
