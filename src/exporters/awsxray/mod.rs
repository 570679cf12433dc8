//! The `awsxray` exporter: spans become X-Ray segment documents (`translate`), sent with
//! PutTraceSegments (`send`).

mod segment;
mod send;
pub mod translate;

pub use segment::{MetadataValue, SegmentDocument};

use super::{ExportError, QueueSettings};
use crate::aws::{AwsSessionSettings, RetrySettings};
use crate::config::ComponentId;
use crate::internal_events::{DropReason, XrayDocumentsDropped};
use crate::pipeline::Payload;
use crate::pipeline::view::{ResourceSpansView, read_traces};
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use translate::TranslateSettings;

/// `exporters.awsxray`: the collector's keys (AWS session settings included) plus
/// `sending_queue` and `retry_on_failure`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct AwsXrayExporterConfig {
    #[serde(flatten)]
    pub session: AwsSessionSettings,
    #[serde(default)]
    pub indexed_attributes: Vec<String>,
    #[serde(default)]
    pub index_all_attributes: bool,
    #[serde(default)]
    pub aws_log_groups: Vec<String>,
    /// Accepted for compatibility; X-Ray exporter telemetry is not sent.
    #[serde(default)]
    pub telemetry: Option<Value>,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// Keys nobody claimed, refused in `validate` (flattened structs cannot deny them).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

impl crate::config::ComponentSection for AwsXrayExporterConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<crate::config::InvalidSetting>> {
        crate::config::checked(self, Self::check)
    }
}

impl AwsXrayExporterConfig {
    fn check(&self) -> Result<(), (String, String)> {
        crate::config::reject_unknown_keys(&self.unknown)?;
        self.session.validate()
    }
}

pub struct AwsXrayExporter {
    id: String,
    settings: TranslateSettings,
    sender: std::sync::Arc<send::XRaySender>,
}

impl AwsXrayExporter {
    pub async fn new(
        id: &ComponentId,
        config: &AwsXrayExporterConfig,
    ) -> Result<Self, ExportError> {
        let sdk = config
            .session
            .sdk_config()
            .await
            .map_err(|e| ExportError::Setup(e.to_string()))?;
        let client = config
            .session
            .signed_client(&sdk, crate::aws::signed::AwsService::Xray)
            .await
            .map_err(ExportError::Setup)?;
        Ok(AwsXrayExporter {
            id: id.to_string(),
            settings: TranslateSettings {
                indexed_attributes: config.indexed_attributes.clone(),
                index_all_attributes: config.index_all_attributes,
                log_group_names: config.aws_log_groups.clone(),
            },
            sender: std::sync::Arc::new(send::XRaySender::new(
                id.to_string(),
                std::sync::Arc::new(client),
                config.session.num_workers,
                config.retry_on_failure.clone(),
            )),
        })
    }

    /// Translates every span of the payload now and returns the sending, to be awaited.
    /// Spans that cannot be translated or documents X-Ray refuses for good are counted and
    /// reported as dropped.
    pub fn start(&self, payload: &Payload) -> super::InFlight {
        let translated = read_traces(payload, |resources| self.translate(resources));
        let Some(Translated {
            documents,
            untranslatable,
            first_error,
            too_large,
            first_too_large,
        }) = translated
        else {
            return Box::pin(std::future::ready(Ok(())));
        };
        if let Some(error) = first_error {
            XrayDocumentsDropped {
                exporter: &self.id,
                reason: DropReason::Untranslatable,
                documents: untranslatable,
                error: &error,
            }
            .emit();
        }
        if let Some(id) = first_too_large {
            XrayDocumentsDropped {
                exporter: &self.id,
                reason: DropReason::TooLarge,
                documents: too_large,
                error: &format_args!("segment {id} is over 64 KB even without metadata"),
            }
            .emit();
        }
        let sender = self.sender.clone();
        Box::pin(async move {
            let dropped = sender.send(documents).await + untranslatable + too_large;
            if dropped > 0 {
                return Err(ExportError::Counted { items: dropped });
            }
            Ok(())
        })
    }

    /// Every span's documents, encoded as they are made: their strings are freed before the
    /// next span's are allocated, so translation keeps reusing the same warm memory.
    fn translate(&self, resources: &[ResourceSpansView]) -> Translated {
        let spans = resources.iter().map(|r| r.spans.len()).sum();
        let mut translated = Translated {
            documents: send::EncodedCalls::with_capacity(spans),
            untranslatable: 0,
            first_error: None,
            too_large: 0,
            first_too_large: None,
        };
        for view in resources {
            let resource = translate::ResourceContext::new(view.resource, &self.settings);
            for span in &view.spans {
                match translate::span_documents(span, &resource, &self.settings) {
                    Ok(mut docs) => {
                        for document in &mut docs {
                            if let Err(id) = translated.documents.push(document) {
                                translated.too_large += 1;
                                translated.first_too_large.get_or_insert(id);
                            }
                        }
                    }
                    Err(error) => {
                        translated.untranslatable += 1;
                        translated.first_error.get_or_insert(error);
                    }
                }
            }
        }
        translated
    }
}

/// A payload's documents and what could not become one.
struct Translated {
    documents: send::EncodedCalls,
    untranslatable: u64,
    first_error: Option<translate::TranslateError>,
    too_large: u64,
    first_too_large: Option<String>,
}
