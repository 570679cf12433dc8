//! The `file` exporter: one OTLP-JSON export request per line, as the collector's file exporter
//! writes with `format: json`. The file is opened on the first write, so a reader on a named
//! pipe can attach after start.

use super::{ExportError, QueueSettings};
use crate::pipeline::Payload;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Deserialize;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// `exporters.file`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileExporterConfig {
    pub path: PathBuf,
    /// Only `json` is supported.
    #[serde(default = "default_format")]
    pub format: String,
    /// Append to an existing file instead of truncating it at start.
    #[serde(default)]
    pub append: bool,
    #[serde(default)]
    pub sending_queue: QueueSettings,
}

fn default_format() -> String {
    "json".into()
}

impl crate::config::ComponentSection for FileExporterConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<crate::config::InvalidSetting>> {
        crate::config::checked(self, Self::check)
    }
}

impl FileExporterConfig {
    fn check(&self) -> Result<(), (String, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path".into(), "path must be non-empty".into()));
        }
        if self.format != "json" {
            return Err((
                "format".into(),
                format!(
                    "format {:?} is not supported (supported: json)",
                    self.format
                ),
            ));
        }
        Ok(())
    }
}

/// Writes batches to one file.
pub struct FileExporter {
    config: FileExporterConfig,
    file: Option<tokio::fs::File>,
}

impl FileExporter {
    /// Fails when the file's directory does not exist, so a typo in `path` stops the start
    /// instead of dropping the first batch.
    pub fn new(config: &FileExporterConfig) -> Result<Self, ExportError> {
        let directory = match config.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => std::path::Path::new("."),
        };
        if !directory.is_dir() {
            return Err(ExportError::Io {
                path: config.path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("directory {} does not exist", directory.display()),
                ),
            });
        }
        Ok(FileExporter {
            config: config.clone(),
            file: None,
        })
    }

    fn io_error(&self, source: std::io::Error) -> ExportError {
        ExportError::Io {
            path: self.config.path.display().to_string(),
            source,
        }
    }

    /// One OTLP-JSON line for the payload.
    pub fn encode_line(payload: &Payload) -> Result<Vec<u8>, ExportError> {
        let encoded = match payload {
            Payload::Encoded(encoded) => return Self::encode_line(&encoded.decode()),
            Payload::Traces(resource_spans) => serde_json::to_vec(&ExportTraceServiceRequest {
                resource_spans: resource_spans.clone(),
            }),
            Payload::Metrics(resource_metrics) => {
                serde_json::to_vec(&ExportMetricsServiceRequest {
                    resource_metrics: resource_metrics.clone(),
                })
            }
            Payload::Logs(resource_logs) => serde_json::to_vec(&ExportLogsServiceRequest {
                resource_logs: resource_logs.clone(),
            }),
        };
        let mut line = encoded.map_err(|source| ExportError::Encode {
            signal: payload.signal(),
            source,
        })?;
        line.push(b'\n');
        Ok(line)
    }

    pub async fn export(&mut self, payload: &Payload) -> Result<(), ExportError> {
        let line = Self::encode_line(payload)?;
        if self.file.is_none() {
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(self.config.append)
                .truncate(!self.config.append)
                .open(&self.config.path)
                .await
                .map_err(|e| self.io_error(e))?;
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        let result = async {
            file.write_all(&line).await?;
            file.flush().await
        }
        .await;
        result.map_err(|e| self.io_error(e))
    }

    pub async fn shutdown(&mut self) -> Result<(), ExportError> {
        if let Some(file) = self.file.as_mut() {
            let result = file.sync_all().await;
            // A named pipe cannot be synced; what matters is that the bytes were written.
            if let Err(e) = result
                && e.kind() != std::io::ErrorKind::InvalidInput
            {
                return Err(self.io_error(e));
            }
        }
        Ok(())
    }
}
