//! The `awscloudwatchlogs` exporter's section, with the collector's keys.

use crate::aws::{AwsSessionSettings, RetrySettings};
use crate::config::{ComponentSection, InvalidSetting};
use crate::exporters::QueueSettings;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// `exporters.awscloudwatchlogs`: the collector's keys.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct AwsCloudWatchLogsConfig {
    #[serde(flatten)]
    pub session: AwsSessionSettings,
    /// Placeholders (`{TaskId}`, `{ServiceName}`, ...) as in `awsemf`.
    #[serde(default)]
    pub log_group_name: String,
    #[serde(default)]
    pub log_stream_name: String,
    /// The body as the event, as it is; an EMF body's `_aws` group and stream then win.
    #[serde(default)]
    pub raw_log: bool,
    #[serde(default)]
    pub log_retention: i32,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

impl ComponentSection for AwsCloudWatchLogsConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<InvalidSetting>> {
        let mut invalid: Vec<InvalidSetting> = Vec::new();
        for (key, value) in [
            ("log_group_name", &self.log_group_name),
            ("log_stream_name", &self.log_stream_name),
        ] {
            if value.is_empty() {
                invalid.push(InvalidSetting::new(key, value, "a name (it is required)"));
            }
        }
        let checks = [
            crate::config::reject_unknown_keys(&self.unknown),
            self.session.validate(),
            crate::exporters::awsemf::check_log_group_settings(self.log_retention, &self.tags),
        ];
        invalid.extend(checks.into_iter().filter_map(Result::err).map(Into::into));
        if invalid.is_empty() {
            Ok(self)
        } else {
            Err(invalid)
        }
    }
}
