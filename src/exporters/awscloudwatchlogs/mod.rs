//! The `awscloudwatchlogs` exporter: log records become CloudWatch Logs events, sent with
//! PutLogEvents on the signed path the `awsemf` exporter uses (its limits, retries, and the log
//! group and stream created with `log_retention` and `tags` when missing). `translate` says
//! what each event holds and where it goes.

mod config;
pub mod translate;

pub use config::AwsCloudWatchLogsConfig;

use super::awsemf::send::LogsSender;
use super::{ExportError, InFlight};
use crate::config::ComponentId;
use crate::pipeline::Payload;
use std::sync::Arc;

/// A built `awscloudwatchlogs` exporter.
pub struct AwsCloudWatchLogsExporter {
    config: Arc<AwsCloudWatchLogsConfig>,
    sender: Arc<LogsSender>,
}

impl AwsCloudWatchLogsExporter {
    pub async fn new(
        id: &ComponentId,
        config: &AwsCloudWatchLogsConfig,
    ) -> Result<Self, ExportError> {
        let sender = LogsSender::new(
            &id.to_string(),
            &config.session,
            &config.retry_on_failure,
            config.log_retention,
            &config.tags,
        )
        .await?;
        Ok(AwsCloudWatchLogsExporter {
            config: Arc::new(config.clone()),
            sender: Arc::new(sender),
        })
    }

    /// Turns the log records into events now and returns the sending, to be awaited.
    pub fn start(&self, payload: &Payload) -> InFlight {
        let Payload::Logs(batch) = payload else {
            return Box::pin(std::future::ready(Ok(())));
        };
        let events = translate::events(batch, &self.config, translate::now_ms());
        let sender = self.sender.clone();
        Box::pin(async move {
            let dropped = sender.send(events).await;
            if dropped > 0 {
                return Err(ExportError::Counted { items: dropped });
            }
            Ok(())
        })
    }
}
