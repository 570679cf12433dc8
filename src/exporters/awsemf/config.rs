//! `exporters.awsemf` as written, and the log-group checks the CloudWatch Logs exporter shares.

use super::translate::DimensionRollup;
use super::{budget, declaration};
use crate::aws::{AwsSessionSettings, RetrySettings};
use crate::exporters::QueueSettings;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// Retention periods CloudWatch Logs accepts (`log_retention`; 0 = never expire).
const RETENTION_DAYS: &[i32] = &[
    0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 2192, 2557, 2922, 3288,
    3653,
];

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDescriptor {
    pub metric_name: String,
    pub unit: String,
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResourceToTelemetry {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub exclude_service_attributes: bool,
}

/// `exporters.awsemf`: the collector's keys plus `sending_queue` and `retry_on_failure`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct AwsEmfExporterConfig {
    #[serde(flatten)]
    pub session: AwsSessionSettings,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub log_group_name: String,
    #[serde(default)]
    pub log_stream_name: String,
    #[serde(default)]
    pub dimension_rollup_option: DimensionRollup,
    #[serde(default)]
    pub metric_declarations: Vec<declaration::MetricDeclaration>,
    #[serde(default)]
    pub metric_descriptors: Vec<MetricDescriptor>,
    #[serde(default)]
    pub parse_json_encoded_attr_values: Vec<String>,
    #[serde(default)]
    pub output_destination: OutputDestination,
    #[serde(default)]
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    #[serde(default)]
    pub detailed_metrics: bool,
    #[serde(default)]
    pub version: EmfVersion,
    #[serde(default)]
    pub retain_initial_value_of_delta_metric: bool,
    #[serde(default)]
    pub log_retention: i32,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub eks_fargate_container_insights_enabled: bool,
    /// otel-sidecar's cap on billed CloudWatch metrics (not a collector key).
    #[serde(default)]
    pub cardinality_budget: Option<budget::BudgetConfig>,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// `output_destination`: CloudWatch Logs, or EMF lines on stdout (case-insensitive, as in the
/// collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputDestination {
    #[default]
    CloudWatch,
    Stdout,
}

impl serde::Serialize for OutputDestination {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            OutputDestination::CloudWatch => "cloudwatch",
            OutputDestination::Stdout => "stdout",
        })
    }
}

impl<'de> Deserialize<'de> for OutputDestination {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.to_ascii_lowercase().as_str() {
            "cloudwatch" => Ok(OutputDestination::CloudWatch),
            "stdout" => Ok(OutputDestination::Stdout),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not one of cloudwatch, stdout"
            ))),
        }
    }
}

/// `version`: the EMF layout, "1" (`_aws` block) or the legacy "0".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmfVersion {
    Zero,
    #[default]
    One,
}

impl serde::Serialize for EmfVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            EmfVersion::Zero => "0",
            EmfVersion::One => "1",
        })
    }
}

impl<'de> Deserialize<'de> for EmfVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Written as a string in the collector's configs; a bare YAML number is accepted too.
        let value = Value::deserialize(deserializer)?;
        let text = match &value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => format!("{other:?}"),
        };
        match text.as_str() {
            "0" => Ok(EmfVersion::Zero),
            "1" => Ok(EmfVersion::One),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not one of \"0\", \"1\""
            ))),
        }
    }
}

impl crate::config::ComponentSection for AwsEmfExporterConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<crate::config::InvalidSetting>> {
        crate::config::checked(self, Self::check)
    }
}

impl AwsEmfExporterConfig {
    fn check(&self) -> Result<(), (String, String)> {
        crate::config::reject_unknown_keys(&self.unknown)?;
        self.session.validate()?;
        check_log_group_settings(self.log_retention, &self.tags)
    }
}

/// `log_retention` and `tags` of the log groups an exporter creates, checked as the
/// collector's AWS exporters do.
pub fn check_log_group_settings(
    log_retention: i32,
    tags: &BTreeMap<String, String>,
) -> Result<(), (String, String)> {
    let err = |key: &str, message: String| Err((key.to_string(), message));
    if !RETENTION_DAYS.contains(&log_retention) {
        return err(
            "log_retention",
            format!(
                "{log_retention} is not a CloudWatch Logs retention period ({RETENTION_DAYS:?})"
            ),
        );
    }
    if tags.len() > 50 {
        return err("tags", format!("{} tags: at most 50", tags.len()));
    }
    for (k, v) in tags {
        if k.is_empty() || k.len() > 128 || v.is_empty() || v.len() > 256 {
            return err(
                "tags",
                format!("tag {k:?}: keys must be 1-128 and values 1-256 characters"),
            );
        }
    }
    Ok(())
}
