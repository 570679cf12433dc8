//! The components otel-sidecar runs, by type name (the Go collector's `components.go`): what
//! each type's section accepts, the validated [`SidecarConfig`] the runtime builds from, and
//! how each component is built and started. The one place that knows every component: it sits
//! above them, and nothing below imports it.

mod exporter;
mod extension;
mod processor;
mod receiver;

pub use exporter::{EXPORTER_TYPES, Exporter, ExporterConfig};
pub use extension::{EXTENSION_TYPES, ExtensionConfig, start_extension};
pub use processor::{PROCESSOR_TYPES, ProcessorConfig, spawn_processor};
pub use receiver::{RECEIVER_TYPES, ReceiverConfig, start_receiver};

use crate::config::{
    ComponentId, ConfigError, ConfigErrors, DecodeError, Document, Kind, PipelineId, Signal,
    mask_secrets, read_document,
};
use crate::exporters::awsemf::budget::BudgetConfig;
use crate::telemetry::TelemetryConfig;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// One pipeline as written under `service.pipelines`, with ids already checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    pub exporters: Vec<ComponentId>,
}

/// A validated config: what the runtime builds from, never re-checked.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    pub receivers: BTreeMap<ComponentId, ReceiverConfig>,
    pub processors: BTreeMap<ComponentId, ProcessorConfig>,
    pub exporters: BTreeMap<ComponentId, ExporterConfig>,
    /// Only the extensions listed in `service.extensions`: the others are never started.
    pub extensions: BTreeMap<ComponentId, ExtensionConfig>,
    pub pipelines: BTreeMap<PipelineId, PipelineConfig>,
    pub telemetry: TelemetryConfig,
    /// Environment variables referenced by the config that are not set (a warning, as in the
    /// collector: the value becomes empty).
    pub unset_variables: Vec<String>,
}

impl SidecarConfig {
    /// Whether a pipeline only batches and forwards OTLP (processors `batch` without a size cap
    /// and `memory_limiter`, exporters `otlp` and protobuf `otlphttp`): its receivers may hand
    /// it requests as they arrived, never decoded.
    pub fn forwards_encoded(&self, pipeline: &PipelineConfig) -> bool {
        let processors = pipeline
            .processors
            .iter()
            .all(|id| match &self.processors[id] {
                ProcessorConfig::Batch(batch) => batch.send_batch_max_size == 0,
                ProcessorConfig::MemoryLimiter(_) => true,
                _ => false,
            });
        let exporters = pipeline
            .exporters
            .iter()
            .all(|id| self.exporters[id].takes_encoded());
        processors && exporters
    }

    /// The config as the sidecar runs it, as YAML: every default filled in, `${env}` already
    /// expanded, secrets masked. What `validate --print` shows.
    pub fn effective_yaml(&self) -> String {
        fn section<T>(components: &BTreeMap<ComponentId, T>, body: impl Fn(&T) -> Value) -> Value {
            Value::Mapping(
                components
                    .iter()
                    .map(|(id, config)| (Value::String(id.to_string()), body(config)))
                    .collect(),
            )
        }
        fn yaml<T: serde::Serialize>(config: &T) -> Value {
            serde_yaml_ng::to_value(config).unwrap_or_else(|e| Value::String(format!("<{e}>")))
        }
        let ids = |ids: &[ComponentId]| {
            Value::Sequence(ids.iter().map(|id| Value::String(id.to_string())).collect())
        };
        let mut root = serde_yaml_ng::Mapping::new();
        root.insert(
            "receivers".into(),
            section(&self.receivers, |c| match c {
                ReceiverConfig::AwsEcsContainerMetrics(c) => yaml(c),
                ReceiverConfig::AwsXray(c) => yaml(c),
                ReceiverConfig::Otlp(c) => yaml(c),
                ReceiverConfig::Statsd(c) => yaml(c),
            }),
        );
        root.insert(
            "processors".into(),
            section(&self.processors, |c| match c {
                ProcessorConfig::Attributes(c) => yaml(c),
                ProcessorConfig::Batch(c) => yaml(c),
                ProcessorConfig::Filter(c) => yaml(c),
                ProcessorConfig::MemoryLimiter(c) => yaml(c),
                ProcessorConfig::MetricsTransform(c) => yaml(c),
                ProcessorConfig::Resource(c) => yaml(c),
                ProcessorConfig::ResourceDetection(c) => yaml(c),
            }),
        );
        root.insert(
            "exporters".into(),
            section(&self.exporters, |c| match c {
                ExporterConfig::AwsEmf(c) => yaml(c),
                ExporterConfig::AwsXray(c) => yaml(c),
                ExporterConfig::Debug(c) => yaml(c),
                ExporterConfig::File(c) => yaml(c),
                ExporterConfig::OtlpHttp(c) => yaml(&c.config),
                ExporterConfig::Otlp(c) => yaml(&c.config),
                ExporterConfig::AwsCloudWatchLogs(c) => yaml(c),
            }),
        );
        root.insert(
            "extensions".into(),
            section(&self.extensions, |c| match c {
                ExtensionConfig::FileStorage(c) => yaml(c),
                ExtensionConfig::HealthCheck(c) => yaml(c),
                ExtensionConfig::Sigv4Auth(c) => yaml(c),
            }),
        );
        let mut service = serde_yaml_ng::Mapping::new();
        service.insert(
            "extensions".into(),
            Value::Sequence(
                self.extensions
                    .keys()
                    .map(|id| Value::String(id.to_string()))
                    .collect(),
            ),
        );
        service.insert(
            "pipelines".into(),
            Value::Mapping(
                self.pipelines
                    .iter()
                    .map(|(id, p)| {
                        let mut pipeline = serde_yaml_ng::Mapping::new();
                        pipeline.insert("receivers".into(), ids(&p.receivers));
                        pipeline.insert("processors".into(), ids(&p.processors));
                        pipeline.insert("exporters".into(), ids(&p.exporters));
                        (Value::String(id.to_string()), Value::Mapping(pipeline))
                    })
                    .collect(),
            ),
        );
        service.insert("telemetry".into(), yaml(&self.telemetry));
        root.insert("service".into(), Value::Mapping(service));
        let mut root = Value::Mapping(root);
        mask_secrets(&mut root);
        serde_yaml_ng::to_string(&root).unwrap_or_default()
    }

    /// Gives every `awsemf` exporter without a `cardinality_budget` this one (the command-line
    /// flag / environment variable, so an unchanged config can be capped from the task
    /// definition).
    pub fn apply_default_budget(&mut self, budget: &BudgetConfig) {
        for exporter in self.exporters.values_mut() {
            if let ExporterConfig::AwsEmf(emf) = exporter
                && emf.cardinality_budget.is_none()
            {
                emf.cardinality_budget = Some(budget.clone());
            }
        }
    }

    /// A one-line summary of the pipelines, for `validate` and the start-up log.
    pub fn summary(&self) -> String {
        let pipelines: Vec<String> = self
            .pipelines
            .iter()
            .map(|(id, p)| {
                let ids = |v: &[ComponentId]| {
                    v.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                };
                format!(
                    "{id}: [{}] -> [{}] -> [{}]",
                    ids(&p.receivers),
                    ids(&p.processors),
                    ids(&p.exporters)
                )
            })
            .collect();
        format!("config ok: {}", pipelines.join("; "))
    }
}

impl SidecarConfig {
    /// What the components read from the environment at start, checked now: a config that
    /// passes `validate` starts.
    pub fn check_environment(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for (id, exporter) in &self.exporters {
            let invalid = exporter.check_environment(env);
            if !invalid.is_empty() {
                errors
                    .extend(DecodeError::Invalid(invalid).problems_at(&format!("exporters.{id}")));
            }
        }
        errors
    }
}

/// Parses and validates a config document. `lookup` reads environment variables. Every
/// problem is reported at once, each with the YAML path it is about.
pub fn parse_config(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<SidecarConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let config = read_document(text, lookup, &mut errors)
        .and_then(|document| validate(document, &mut errors));
    if let Some(config) = &config {
        errors.extend(config.check_environment(lookup));
    }
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(errors)),
    }
}

/// Decodes every section of one kind with that kind's `decode`, collecting errors.
fn decode_kind<T>(
    document: &Document,
    kind: Kind,
    decode: fn(&str, &Value) -> Result<T, DecodeError>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<ComponentId, T> {
    let mut out = BTreeMap::new();
    for section in document.sections(kind) {
        let id = match &section.id {
            Ok(id) => id,
            Err(message) => {
                errors.push(ConfigError::new(
                    format!("{}.{}", kind.section(), section.key),
                    message.clone(),
                ));
                continue;
            }
        };
        match decode(&id.kind, &section.body) {
            Ok(config) => {
                out.insert(id.clone(), config);
            }
            Err(error) => errors.extend(error.for_section(kind, &section.key, id)),
        }
    }
    out
}

/// Decodes every component, then checks the pipelines and extensions against them.
fn validate(document: Document, errors: &mut Vec<ConfigError>) -> Option<SidecarConfig> {
    let receivers = decode_kind(&document, Kind::Receiver, receiver::decode, errors);
    let processors = decode_kind(&document, Kind::Processor, processor::decode, errors);
    let exporters = decode_kind(&document, Kind::Exporter, exporter::decode, errors);
    let all_extensions = decode_kind(&document, Kind::Extension, extension::decode, errors);

    let declared = |kind: Kind| -> Vec<&str> {
        document
            .sections(kind)
            .iter()
            .map(|section| section.key.as_str())
            .collect()
    };
    if declared(Kind::Receiver).is_empty() {
        errors.push(ConfigError::new(
            "receivers",
            "no receiver configuration specified in config",
        ));
    }
    if declared(Kind::Exporter).is_empty() {
        errors.push(ConfigError::new(
            "exporters",
            "no exporter configuration specified in config",
        ));
    }
    let service = document.service.as_ref()?;

    let mut extensions = BTreeMap::new();
    for (i, name) in service.extensions.iter().enumerate() {
        let path = format!("service.extensions[{i}]");
        let known = declared(Kind::Extension).contains(&name.as_str());
        match ComponentId::parse(name) {
            Ok(id) if known => {
                if let Some(config) = all_extensions.get(&id) {
                    extensions.insert(id, config.clone());
                }
            }
            Ok(_) | Err(_) => errors.push(ConfigError::new(
                path,
                format!("references extension {name:?} which is not configured"),
            )),
        }
    }

    for (id, exporter) in &exporters {
        if let Some(storage) = exporter.storage() {
            let enabled = ComponentId::parse(storage)
                .ok()
                .and_then(|storage| extensions.get(&storage));
            if !matches!(enabled, Some(ExtensionConfig::FileStorage(_))) {
                errors.push(ConfigError::new(
                    format!("exporters.{id}.sending_queue.storage"),
                    format!("references {storage:?}, which is not a file_storage extension listed in service.extensions"),
                ));
            }
        }
    }

    let mut pipelines = BTreeMap::new();
    if service.pipelines.is_empty() {
        errors.push(ConfigError::new(
            "service.pipelines",
            "service must have at least one pipeline",
        ));
    }
    for (key, section) in &service.pipelines {
        let path = format!("service.pipelines.{key}");
        let id = match PipelineId::parse(key) {
            Ok(id) => id,
            Err(message) => {
                errors.push(ConfigError::new(path, message));
                continue;
            }
        };
        let mut resolve = |kind: &str, names: &[String], declared: &[&str]| {
            let mut ids = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let item = format!("{path}.{kind}s[{i}]");
                if !declared.contains(&name.as_str()) {
                    errors.push(ConfigError::new(
                        item,
                        format!("references {kind} {name:?} which is not configured"),
                    ));
                    continue;
                }
                match ComponentId::parse(name) {
                    Ok(cid) if ids.contains(&cid) => errors.push(ConfigError::new(
                        item,
                        format!("references {kind} {name:?} multiple times"),
                    )),
                    Ok(cid) => ids.push(cid),
                    Err(_) => {} // already reported where it is declared
                }
            }
            ids
        };
        let pipeline = PipelineConfig {
            receivers: resolve("receiver", &section.receivers, &declared(Kind::Receiver)),
            processors: resolve("processor", &section.processors, &declared(Kind::Processor)),
            exporters: resolve("exporter", &section.exporters, &declared(Kind::Exporter)),
        };
        if section.receivers.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.receivers"),
                "must have at least one receiver",
            ));
        }
        if section.exporters.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.exporters"),
                "must have at least one exporter",
            ));
        }
        check_signal_support(&id, &pipeline, &receivers, &exporters, &path, errors);
        for pid in &pipeline.processors {
            if let Some(processor) = processors.get(pid)
                && let Err((sub, message)) = processor.check_signal(id.signal)
            {
                errors.push(ConfigError::new(
                    format!("processors.{pid}.{sub}"),
                    format!("{message} (in pipeline {})", id),
                ));
            }
        }
        pipelines.insert(id, pipeline);
    }

    // Only exporters a pipeline uses are built, so only theirs must exist (as in the collector).
    let used: std::collections::BTreeSet<&ComponentId> =
        pipelines.values().flat_map(|p| &p.exporters).collect();
    for (id, exporter) in exporters.iter().filter(|(id, _)| used.contains(id)) {
        if let Some(name) = exporter.authenticator() {
            let enabled = ComponentId::parse(name)
                .ok()
                .and_then(|name| extensions.get(&name));
            if !matches!(enabled, Some(ExtensionConfig::Sigv4Auth(_))) {
                errors.push(ConfigError::new(
                    format!("exporters.{id}.auth.authenticator"),
                    format!(
                        "{name:?}: expected a sigv4auth extension listed in service.extensions"
                    ),
                ));
            }
        }
    }

    Some(SidecarConfig {
        receivers,
        processors,
        exporters,
        extensions,
        pipelines,
        telemetry: service.telemetry.clone(),
        unset_variables: document.unset_variables,
    })
}

/// A receiver or exporter that cannot carry the pipeline's signal is refused at start.
fn check_signal_support(
    id: &PipelineId,
    pipeline: &PipelineConfig,
    receivers: &BTreeMap<ComponentId, ReceiverConfig>,
    exporters: &BTreeMap<ComponentId, ExporterConfig>,
    path: &str,
    errors: &mut Vec<ConfigError>,
) {
    let signal: Signal = id.signal;
    for (i, rid) in pipeline.receivers.iter().enumerate() {
        if let Some(r) = receivers.get(rid)
            && !r.signals().contains(&signal)
        {
            errors.push(ConfigError::new(
                format!("{path}.receivers[{i}]"),
                format!(
                    "receiver {rid:?} does not support {signal}",
                    rid = rid.to_string()
                ),
            ));
        }
    }
    for (i, eid) in pipeline.exporters.iter().enumerate() {
        if let Some(e) = exporters.get(eid)
            && !e.supports(signal)
        {
            errors.push(ConfigError::new(
                format!("{path}.exporters[{i}]"),
                format!(
                    "exporter {eid:?} does not support {signal}",
                    eid = eid.to_string()
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
