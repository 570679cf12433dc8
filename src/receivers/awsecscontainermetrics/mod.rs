//! The `awsecscontainermetrics` receiver: every `collection_interval` it reads the ECS task
//! metadata endpoint v4 (`/task` and `/task/stats`) and emits the task's and each container's
//! memory, CPU, network and storage metrics with the collector's names, units and resource
//! attributes (`translate`). No state is kept between scrapes.

mod translate;

use crate::config::{ComponentSection, InvalidSetting, duration::GoDuration};
use crate::pipeline::{Consumers, Shutdown};
use serde::Deserialize;
use tokio::task::JoinHandle;

pub use translate::{EcsMetrics, translate};

/// `receivers.awsecscontainermetrics`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsEcsContainerMetricsConfig {
    #[serde(default = "default_interval")]
    pub collection_interval: GoDuration,
}

fn default_interval() -> GoDuration {
    GoDuration::from_secs(20)
}

impl ComponentSection for AwsEcsContainerMetricsConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<InvalidSetting>> {
        // The collector's ticker panics on zero; refusing it is kinder.
        if self.collection_interval.is_zero() {
            return Err(vec![InvalidSetting::shown(
                "collection_interval",
                self.collection_interval.to_string(),
                "a duration greater than zero",
            )]);
        }
        Ok(self)
    }
}

/// The endpoint from `ECS_CONTAINER_METADATA_URI_V4`, as the collector reads it.
pub fn metadata_endpoint(value: Option<String>) -> Result<String, String> {
    let endpoint = value.map(|v| v.trim().to_string()).unwrap_or_default();
    if endpoint.is_empty() {
        return Err("unable to detect task metadata endpoint: no valid endpoint for environment variable ECS_CONTAINER_METADATA_URI_V4: endpoint is empty".into());
    }
    Ok(endpoint)
}

/// One scrape: both documents, then the payloads in the collector's order.
async fn scrape(endpoint: &str) -> Result<Vec<crate::pipeline::Payload>, String> {
    let task = crate::aws::http_get_json(&format!("{endpoint}/task")).await?;
    let stats = crate::aws::http_get_json(&format!("{endpoint}/task/stats")).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Ok(translate(&task, &stats, now)
        .into_iter()
        .map(|rm| crate::pipeline::Payload::Metrics(vec![rm]))
        .collect())
}

/// Starts the scrape loop: the first scrape one interval after start, as in the collector.
pub async fn start(
    id: &str,
    config: &AwsEcsContainerMetricsConfig,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let endpoint = metadata_endpoint(std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok())
        .map_err(std::io::Error::other)?;
    let id = id.to_string();
    let interval = config.collection_interval;
    let task = tokio::spawn(async move {
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + *interval, *interval);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = ticker.tick() => {}
            }
            let payloads = match scrape(&endpoint).await {
                Ok(payloads) => payloads,
                Err(error) => {
                    tracing::error!(receiver = %id, %error, "Failed to collect stats");
                    continue;
                }
            };
            for payload in payloads {
                // A refusal stops the rest of this scrape, as a consumer error does there.
                if let Err(refused) =
                    crate::receivers::accept(&id, "http", &consumers, payload).await
                {
                    tracing::warn!(receiver = %id, %refused, "ECS metrics of this scrape dropped");
                    break;
                }
            }
        }
    });
    Ok(vec![task])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_variable_is_required() {
        assert_eq!(
            metadata_endpoint(None).unwrap_err(),
            "unable to detect task metadata endpoint: no valid endpoint for environment variable ECS_CONTAINER_METADATA_URI_V4: endpoint is empty"
        );
        assert_eq!(
            metadata_endpoint(Some(" http://169.254.170.2/v4/x ".into())).unwrap(),
            "http://169.254.170.2/v4/x"
        );
        assert!(
            crate::config::decode_settings::<AwsEcsContainerMetricsConfig>(
                &serde_yaml_ng::from_str("collection_interval: 0s").unwrap()
            )
            .is_err()
        );
        let config = crate::config::decode_settings::<AwsEcsContainerMetricsConfig>(
            &serde_yaml_ng::Value::Null,
        )
        .unwrap();
        assert_eq!(config.collection_interval, GoDuration::from_secs(20));
    }
}
