//! Exporter types: decoding their sections and building them.

use super::ExtensionConfig;
use crate::config::{ComponentId, DecodeError, InvalidSetting, Signal, decode_settings};
use crate::exporters::{self, Export, ExportError, InFlight, QueueSettings};
use crate::pipeline::Payload;
use crate::telemetry::CardinalityReports;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// Exporter types otel-sidecar runs.
pub const EXPORTER_TYPES: &[&str] = &[
    "awscloudwatchlogs",
    "awsemf",
    "awsxray",
    "debug",
    "file",
    "otlp",
    "otlp_http",
    "otlphttp",
];

/// Collector exporter types outside otel-sidecar's scope, refused with a message saying so.
const OUT_OF_SCOPE_EXPORTER_TYPES: &[&str] = &[
    "prometheusremotewrite",
    "prometheus",
    "awsprometheusremotewrite",
];

/// A validated exporter config.
#[derive(Debug, Clone)]
pub enum ExporterConfig {
    AwsEmf(Box<exporters::awsemf::AwsEmfExporterConfig>),
    AwsXray(Box<exporters::awsxray::AwsXrayExporterConfig>),
    Debug(exporters::debug::DebugExporterConfig),
    File(exporters::file::FileExporterConfig),
    OtlpHttp(Box<exporters::otlphttp::OtlpHttpSettings>),
    Otlp(Box<exporters::otlp::OtlpGrpcSettings>),
    AwsCloudWatchLogs(Box<exporters::awscloudwatchlogs::AwsCloudWatchLogsConfig>),
}

impl ExporterConfig {
    /// Whether the exporter can carry `signal` (`otlp_http`: has a URL for it).
    pub fn supports(&self, signal: Signal) -> bool {
        match self {
            ExporterConfig::AwsXray(_) => signal == Signal::Traces,
            ExporterConfig::AwsEmf(_) => signal == Signal::Metrics,
            ExporterConfig::AwsCloudWatchLogs(_) => signal == Signal::Logs,
            ExporterConfig::OtlpHttp(c) => c.url(signal).is_some(),
            ExporterConfig::Debug(_) | ExporterConfig::File(_) | ExporterConfig::Otlp(_) => true,
        }
    }

    /// Whether the exporter takes OTLP requests as they arrived, without decoding them
    /// ([`crate::pipeline::Payload::Encoded`]): `otlp` and `otlphttp` with protobuf send them,
    /// `awsxray` and `awsemf` translate from a view of their bytes.
    pub fn takes_encoded(&self) -> bool {
        match self {
            ExporterConfig::OtlpHttp(c) => {
                c.config.encoding == exporters::otlphttp::config::Encoding::Proto
            }
            ExporterConfig::Otlp(_) | ExporterConfig::AwsXray(_) | ExporterConfig::AwsEmf(_) => {
                true
            }
            _ => false,
        }
    }

    /// The extension that signs its requests (`auth.authenticator`).
    pub fn authenticator(&self) -> Option<&str> {
        match self {
            ExporterConfig::OtlpHttp(c) => c.config.auth.as_ref().map(|a| a.authenticator.as_str()),
            _ => None,
        }
    }

    /// The exporter's `sending_queue` settings.
    pub fn sending_queue(&self) -> &QueueSettings {
        match self {
            ExporterConfig::AwsXray(c) => &c.sending_queue,
            ExporterConfig::AwsEmf(c) => &c.sending_queue,
            ExporterConfig::Debug(c) => &c.sending_queue,
            ExporterConfig::File(c) => &c.sending_queue,
            ExporterConfig::OtlpHttp(c) => &c.config.sending_queue,
            ExporterConfig::Otlp(c) => &c.config.sending_queue,
            ExporterConfig::AwsCloudWatchLogs(c) => &c.sending_queue,
        }
    }

    /// The `file_storage` extension named by `sending_queue.storage`.
    pub fn storage(&self) -> Option<&str> {
        self.sending_queue().storage.as_deref()
    }

    /// What the exporter reads from the environment, checked now rather than at start: an
    /// `awsemf` fleet budget's store address (`REDIS_HOST` and the like).
    pub fn check_environment(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<InvalidSetting> {
        let ExporterConfig::AwsEmf(emf) = self else {
            return Vec::new();
        };
        let Some(shared) = emf
            .cardinality_budget
            .as_ref()
            .and_then(|b| b.shared.as_ref())
        else {
            return Vec::new();
        };
        match exporters::awsemf::fleet::resolve_address(shared, env) {
            Ok(_) => Vec::new(),
            Err(problem) => vec![InvalidSetting::new(
                "cardinality_budget.shared.endpoint",
                &shared.endpoint,
                &format!("a redis:// or rediss:// URL, or REDIS_HOST set ({problem})"),
            )],
        }
    }

    /// How many exports may be in flight at once.
    pub fn consumers(&self) -> usize {
        match self {
            ExporterConfig::AwsXray(_)
            | ExporterConfig::AwsEmf(_)
            | ExporterConfig::OtlpHttp(_)
            | ExporterConfig::Otlp(_)
            | ExporterConfig::AwsCloudWatchLogs(_) => self.sending_queue().num_consumers.max(1),
            _ => 1,
        }
    }
}

/// Decodes the body of an `exporters.<id>` entry of type `kind`.
pub fn decode(kind: &str, body: &Value) -> Result<ExporterConfig, DecodeError> {
    match kind {
        "awsemf" => Ok(ExporterConfig::AwsEmf(Box::new(decode_settings::<
            exporters::awsemf::AwsEmfExporterConfig,
        >(body)?))),
        "awsxray" => Ok(ExporterConfig::AwsXray(Box::new(decode_settings::<
            exporters::awsxray::AwsXrayExporterConfig,
        >(body)?))),
        "debug" => Ok(ExporterConfig::Debug(decode_settings::<
            exporters::debug::DebugExporterConfig,
        >(body)?)),
        "file" => Ok(ExporterConfig::File(decode_settings::<
            exporters::file::FileExporterConfig,
        >(body)?)),
        "otlp_http" | "otlphttp" => Ok(ExporterConfig::OtlpHttp(Box::new(decode_settings::<
            exporters::otlphttp::OtlpHttpConfig,
        >(body)?))),
        "awscloudwatchlogs" => Ok(ExporterConfig::AwsCloudWatchLogs(Box::new(
            decode_settings::<exporters::awscloudwatchlogs::AwsCloudWatchLogsConfig>(body)?,
        ))),
        "otlp" => Ok(ExporterConfig::Otlp(Box::new(decode_settings::<
            exporters::otlp::OtlpGrpcConfig,
        >(body)?))),
        _ if OUT_OF_SCOPE_EXPORTER_TYPES.contains(&kind) => Err(DecodeError::OutOfScope),
        _ => Err(DecodeError::UnknownType(EXPORTER_TYPES)),
    }
}

/// A built exporter, ready to send.
pub enum Exporter {
    AwsEmf(Box<exporters::awsemf::AwsEmfExporter>),
    AwsXray(exporters::awsxray::AwsXrayExporter),
    Debug(exporters::debug::DebugExporter),
    File(exporters::file::FileExporter),
    OtlpHttp(exporters::otlphttp::OtlpHttpExporter),
    Otlp(exporters::otlp::OtlpGrpcExporter),
    AwsCloudWatchLogs(exporters::awscloudwatchlogs::AwsCloudWatchLogsExporter),
}

impl Exporter {
    /// Builds the exporter a validated config describes.
    /// `reports` is where an `awsemf` budget publishes its `/cardinality` document;
    /// `extensions` holds the authenticator an `otlp_http` exporter names.
    pub async fn build(
        id: &ComponentId,
        config: &ExporterConfig,
        reports: &CardinalityReports,
        extensions: &BTreeMap<ComponentId, ExtensionConfig>,
    ) -> Result<Self, ExportError> {
        Ok(match config {
            ExporterConfig::AwsEmf(c) => Exporter::AwsEmf(Box::new(
                exporters::awsemf::AwsEmfExporter::new(id, c, reports.clone()).await?,
            )),
            ExporterConfig::AwsXray(c) => {
                Exporter::AwsXray(exporters::awsxray::AwsXrayExporter::new(id, c).await?)
            }
            ExporterConfig::Debug(c) => {
                Exporter::Debug(exporters::debug::DebugExporter::new(id, c))
            }
            ExporterConfig::File(c) => Exporter::File(exporters::file::FileExporter::new(c)?),
            ExporterConfig::Otlp(c) => {
                Exporter::Otlp(exporters::otlp::OtlpGrpcExporter::new(id, c)?)
            }
            ExporterConfig::AwsCloudWatchLogs(c) => Exporter::AwsCloudWatchLogs(
                exporters::awscloudwatchlogs::AwsCloudWatchLogsExporter::new(id, c).await?,
            ),
            ExporterConfig::OtlpHttp(c) => {
                let authenticator = match config.authenticator() {
                    None => None,
                    Some(name) => match ComponentId::parse(name)
                        .ok()
                        .and_then(|id| extensions.get(&id))
                    {
                        Some(ExtensionConfig::Sigv4Auth(auth)) => Some(auth),
                        _ => {
                            return Err(ExportError::Setup(format!(
                                "auth.authenticator {name:?} is not a sigv4auth extension in service.extensions"
                            )));
                        }
                    },
                };
                let mut signers = Vec::new();
                if let Some(auth) = authenticator {
                    for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
                        if let Some(url) = c.url(signal) {
                            let signer = auth
                                .signer(url)
                                .await
                                .map_err(|e| ExportError::Setup(e.to_string()))?;
                            signers.push((signal, signer));
                        }
                    }
                }
                Exporter::OtlpHttp(exporters::otlphttp::OtlpHttpExporter::new(id, c, signers)?)
            }
        })
    }
}

impl Export for Exporter {
    async fn start(&mut self, payload: Payload) -> InFlight {
        // The OTLP exporters send requests as they arrived and the X-Ray and EMF translations
        // read them through a view; the others read the owned model.
        let payload = match self {
            Exporter::OtlpHttp(_)
            | Exporter::Otlp(_)
            | Exporter::AwsXray(_)
            | Exporter::AwsEmf(_) => payload,
            _ => payload.decoded(),
        };
        match self {
            Exporter::AwsXray(e) => e.start(&payload),
            Exporter::AwsEmf(e) => e.start(payload).await,
            Exporter::Debug(e) => {
                e.export(&payload);
                Box::pin(std::future::ready(Ok(())))
            }
            Exporter::File(e) => {
                let result = e.export(&payload).await;
                Box::pin(std::future::ready(result))
            }
            Exporter::OtlpHttp(e) => e.start(payload),
            Exporter::Otlp(e) => e.start(payload),
            Exporter::AwsCloudWatchLogs(e) => e.start(&payload),
        }
    }

    fn bounds_what_it_sends(&self) -> bool {
        matches!(self, Exporter::AwsEmf(_))
    }

    async fn shutdown(&mut self) -> Result<(), ExportError> {
        match self {
            Exporter::AwsEmf(_)
            | Exporter::AwsXray(_)
            | Exporter::Debug(_)
            | Exporter::OtlpHttp(_)
            | Exporter::Otlp(_)
            | Exporter::AwsCloudWatchLogs(_) => Ok(()),
            Exporter::File(e) => e.shutdown().await,
        }
    }
}
