//! The `debug` exporter: a human-readable summary of what passes, to stderr through the
//! sidecar's log (the collector's `use_internal_logger: true` behaviour).

use super::QueueSettings;
use crate::config::ComponentId;
use crate::pipeline::Payload;
use serde::Deserialize;

/// `exporters.debug`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DebugExporterConfig {
    #[serde(default)]
    pub verbosity: Verbosity,
    /// Accepted for compatibility: otel-sidecar logs every batch.
    #[serde(default)]
    pub sampling_initial: Option<u32>,
    #[serde(default)]
    pub sampling_thereafter: Option<u32>,
    #[serde(default)]
    pub use_internal_logger: Option<bool>,
    #[serde(default)]
    pub sending_queue: QueueSettings,
}

/// Every value serde accepts is valid (`verbosity` is an enum).
impl crate::config::ComponentSection for DebugExporterConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<crate::config::InvalidSetting>> {
        Ok(self)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    #[default]
    Basic,
    Normal,
    Detailed,
}

pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
}

impl DebugExporter {
    pub fn new(id: &ComponentId, config: &DebugExporterConfig) -> Self {
        DebugExporter {
            id: id.to_string(),
            verbosity: config.verbosity,
        }
    }

    pub fn export(&self, payload: &Payload) {
        let owned;
        let payload = match payload {
            Payload::Encoded(encoded) => {
                owned = encoded.decode();
                &owned
            }
            payload => payload,
        };
        let items = payload.item_count();
        let (resources, kind) = match payload {
            Payload::Traces(r) => (r.len(), "Traces"),
            Payload::Metrics(r) => (r.len(), "Metrics"),
            Payload::Logs(r) => (r.len(), "Logs"),
            Payload::Encoded(_) => unreachable!("decoded above"),
        };
        tracing::info!(exporter = %self.id, resources, items, message = kind);
        match self.verbosity {
            Verbosity::Basic => {}
            Verbosity::Normal => {
                for line in normal_lines(payload) {
                    tracing::info!(exporter = %self.id, message = %line);
                }
            }
            Verbosity::Detailed => match super::file::FileExporter::encode_line(payload) {
                Ok(line) => tracing::info!(
                    exporter = %self.id,
                    message = %String::from_utf8_lossy(&line).trim_end()
                ),
                Err(error) => tracing::warn!(exporter = %self.id, %error),
            },
        }
    }
}

/// One line per span / metric / log record, like the collector's `normal` verbosity.
fn normal_lines(payload: &Payload) -> Vec<String> {
    use crate::pipeline::values::hex;
    match payload {
        Payload::Encoded(encoded) => normal_lines(&encoded.decode()),
        Payload::Traces(rs) => rs
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| format!("{} {} {}", s.name, hex(&s.trace_id), hex(&s.span_id)))
            .collect(),
        Payload::Metrics(rm) => rm
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| {
                format!(
                    "{} {} points={}",
                    m.name,
                    m.unit,
                    crate::pipeline::data_point_count(m.data.as_ref())
                )
            })
            .collect(),
        Payload::Logs(rl) => rl
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .map(|l| format!("{} {:?}", l.severity_text, l.body))
            .collect(),
    }
}
