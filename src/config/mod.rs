//! The collector YAML config: sources, `${...}` expansion, the typed model and its validation.
//!
//! Parsing happens in two steps: serde structs with `deny_unknown_fields`
//! per component, then a validation pass into [`SidecarConfig`], the type the runtime uses.
//! Every problem is reported at once, each with the YAML path it is about.

mod component_id;
pub mod duration;
mod expand;
pub mod source;

pub use component_id::{ComponentId, PipelineId};

use crate::exporters::ExporterConfig;
use crate::extensions::ExtensionConfig;
use crate::pipeline::Signal;
use crate::processors::ProcessorConfig;
use crate::receivers::ReceiverConfig;
use crate::telemetry::TelemetryConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::fmt;

/// One problem in a config, with the YAML path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a config, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

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

/// Key names whose values `validate --print` masks: passwords, tokens, keys and the like.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "credential",
    "authorization",
];

/// Masks secret-looking values in a serialized config: whole values under keys named like
/// secrets, and the password in a URL's user information (`rediss://user:***@host`).
fn mask_secrets(value: &mut Value) {
    let secret = |name: &str| {
        let name = name.to_ascii_lowercase();
        SECRET_KEY_PARTS.iter().any(|part| name.contains(part))
    };
    match value {
        Value::Mapping(mapping) => {
            // An attribute action (`key: db.password`, `value: ...`) names its secret in `key`.
            let secret_action = mapping
                .get("key")
                .and_then(Value::as_str)
                .is_some_and(secret);
            for (key, value) in mapping.iter_mut() {
                let name = key.as_str().unwrap_or("");
                if (secret(name) || (secret_action && name == "value"))
                    && !matches!(value, Value::Null)
                    && value.as_str() != Some("")
                {
                    *value = Value::String("***".into());
                } else {
                    mask_secrets(value);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(mask_secrets),
        Value::String(text) => {
            if let Some((scheme, rest)) = text.split_once("://")
                && let Some((userinfo, host)) = rest.split_once('@')
                && let Some((user, _password)) = userinfo.split_once(':')
            {
                *text = format!("{scheme}://{user}:***@{host}");
            }
        }
        _ => {}
    }
}

impl SidecarConfig {
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
            }),
        );
        root.insert(
            "extensions".into(),
            section(&self.extensions, |c| match c {
                ExtensionConfig::FileStorage(c) => yaml(c),
                ExtensionConfig::HealthCheck(c) => yaml(c),
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
    pub fn apply_default_budget(
        &mut self,
        budget: &crate::exporters::awsemf::budget::BudgetConfig,
    ) {
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

/// How a component type answered a decode request.
#[derive(Debug)]
pub enum DecodeError {
    /// No such component type; carries the valid ones.
    UnknownType(&'static [&'static str]),
    /// A collector component outside otel-sidecar's scope (it sends to X-Ray and CloudWatch).
    OutOfScope,
    /// The body of the component's config is wrong: `(path below the component, message)`.
    Invalid(Vec<(String, String)>),
}

/// Decodes a component's config body on top of its defaults (a YAML null means all defaults),
/// refusing unknown keys and reporting the path of the first problem.
pub fn decode_section<T: DeserializeOwned>(value: &Value) -> Result<T, DecodeError> {
    let value = match value {
        Value::Null => Value::Mapping(Default::default()),
        other => other.clone(),
    };
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        DecodeError::Invalid(vec![(path, err.into_inner().to_string())])
    })
}

/// Refuses the keys a component with flattened settings left unclaimed (serde cannot combine
/// `flatten` with `deny_unknown_fields`).
pub fn reject_unknown_keys(unknown: &BTreeMap<String, Value>) -> Result<(), (String, String)> {
    match unknown.keys().next() {
        Some(key) => Err((key.clone(), format!("unknown field `{key}`"))),
        None => Ok(()),
    }
}

/// Serde helper for optional sections whose *presence* enables something even with an empty
/// body (`protocols: {grpc:}`), as the collector's `configoptional` does.
pub fn present_with_defaults<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    match value {
        Value::Null => Ok(Some(T::default())),
        other => serde_yaml_ng::from_value(other)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Parses and validates a config document. `lookup` reads environment variables.
pub fn parse_config(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<SidecarConfig, ConfigErrors> {
    let mut root: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| ConfigErrors(vec![ConfigError::new("", format!("invalid YAML: {e}"))]))?;
    let mut report = expand::ExpansionReport::default();
    expand::expand_tree(&mut root, "", lookup, &mut report);
    let mut errors: Vec<ConfigError> = report
        .errors
        .into_iter()
        .map(|(path, message)| ConfigError::new(path, message))
        .collect();
    let config = validate(&root, &mut errors);
    match config {
        Some(mut config) if errors.is_empty() => {
            config.unset_variables = report.unset_variables;
            Ok(config)
        }
        _ => Err(ConfigErrors(errors)),
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "receivers",
    "processors",
    "exporters",
    "connectors",
    "extensions",
    "service",
];

/// The `service:` section as written.
#[derive(Debug, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
struct ServiceSection {
    #[serde(default)]
    extensions: Vec<String>,
    #[serde(default)]
    pipelines: BTreeMap<String, PipelineSection>,
    #[serde(default)]
    telemetry: TelemetryConfig,
}

#[derive(Debug, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
struct PipelineSection {
    #[serde(default)]
    receivers: Vec<String>,
    #[serde(default)]
    processors: Vec<String>,
    #[serde(default)]
    exporters: Vec<String>,
}

/// Decodes every component of one kind (`receivers`, ...), collecting errors.
fn decode_kind<T>(
    root: &serde_yaml_ng::Mapping,
    kind: &str,
    decode: fn(&str, &Value) -> Result<T, DecodeError>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<ComponentId, T> {
    let mut out = BTreeMap::new();
    let Some(section) = root.get(kind) else {
        return out;
    };
    let map = match section {
        Value::Null => return out,
        Value::Mapping(map) => map,
        _ => {
            errors.push(ConfigError::new(
                kind,
                "expected a mapping of component ids",
            ));
            return out;
        }
    };
    let singular = kind.trim_end_matches('s');
    for (key, body) in map {
        let key = expand::key_text(key);
        let path = format!("{kind}.{key}");
        let id = match ComponentId::parse(&key) {
            Ok(id) => id,
            Err(message) => {
                errors.push(ConfigError::new(path, message));
                continue;
            }
        };
        match decode(&id.kind, body) {
            Ok(config) => {
                out.insert(id, config);
            }
            Err(DecodeError::UnknownType(valid)) => errors.push(ConfigError::new(
                path,
                format!(
                    "unknown type: {:?} for id: {:?} (valid values: [{}])",
                    id.kind,
                    key,
                    valid.join(" ")
                ),
            )),
            Err(DecodeError::OutOfScope) => errors.push(ConfigError::new(
                path,
                format!(
                    "the {:?} {singular} is outside otel-sidecar's scope: it replaces the ADOT sidecar for X-Ray and CloudWatch (EMF) on ECS; run the ADOT collector for Prometheus, AMP or Container Insights agent setups",
                    id.kind,
                ),
            )),
            Err(DecodeError::Invalid(problems)) => {
                for (sub, message) in problems {
                    let full = if sub.is_empty() {
                        path.clone()
                    } else {
                        format!("{path}.{sub}")
                    };
                    errors.push(ConfigError::new(full, message));
                }
            }
        }
    }
    out
}

fn validate(root: &Value, errors: &mut Vec<ConfigError>) -> Option<SidecarConfig> {
    let root = match root {
        Value::Null => {
            errors.push(ConfigError::new("", "empty configuration file"));
            return None;
        }
        Value::Mapping(map) if map.is_empty() => {
            errors.push(ConfigError::new("", "empty configuration file"));
            return None;
        }
        Value::Mapping(map) => map,
        _ => {
            errors.push(ConfigError::new(
                "",
                "the configuration must be a YAML mapping",
            ));
            return None;
        }
    };
    for key in root.keys() {
        let key = expand::key_text(key);
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            errors.push(ConfigError::new(
                key,
                format!(
                    "unknown top-level key (valid: {})",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            ));
        }
    }
    if let Some(connectors) = root.get("connectors")
        && !matches!(connectors, Value::Null)
        && connectors.as_mapping().is_none_or(|m| !m.is_empty())
    {
        errors.push(ConfigError::new(
            "connectors",
            "connectors are not supported by otel-sidecar",
        ));
    }

    let receivers = decode_kind(root, "receivers", crate::receivers::decode, errors);
    let processors = decode_kind(root, "processors", crate::processors::decode, errors);
    let exporters = decode_kind(root, "exporters", crate::exporters::decode, errors);
    let all_extensions = decode_kind(root, "extensions", crate::extensions::decode, errors);

    let declared = |kind: &str| -> Vec<String> {
        root.get(kind)
            .and_then(Value::as_mapping)
            .map(|m| m.keys().map(expand::key_text).collect())
            .unwrap_or_default()
    };
    if declared("receivers").is_empty() {
        errors.push(ConfigError::new(
            "receivers",
            "no receiver configuration specified in config",
        ));
    }
    if declared("exporters").is_empty() {
        errors.push(ConfigError::new(
            "exporters",
            "no exporter configuration specified in config",
        ));
    }

    let service: ServiceSection = match root.get("service") {
        None => ServiceSection::default(),
        Some(value) => match decode_section(value) {
            Ok(service) => service,
            Err(DecodeError::Invalid(problems)) => {
                for (sub, message) in problems {
                    let path = if sub.is_empty() {
                        "service".to_string()
                    } else {
                        format!("service.{sub}")
                    };
                    errors.push(ConfigError::new(path, message));
                }
                return None;
            }
            Err(_) => unreachable!("decode_section only reports invalid bodies"),
        },
    };

    let mut extensions = BTreeMap::new();
    for (i, name) in service.extensions.iter().enumerate() {
        let path = format!("service.extensions[{i}]");
        let known = declared("extensions").contains(name);
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
        let mut resolve = |kind: &str, names: &[String], declared: &[String]| {
            let mut ids = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let item = format!("{path}.{kind}s[{i}]");
                if !declared.contains(name) {
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
            receivers: resolve("receiver", &section.receivers, &declared("receivers")),
            processors: resolve("processor", &section.processors, &declared("processors")),
            exporters: resolve("exporter", &section.exporters, &declared("exporters")),
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

    Some(SidecarConfig {
        receivers,
        processors,
        exporters,
        extensions,
        pipelines,
        telemetry: service.telemetry,
        unset_variables: Vec::new(),
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
            && !e.signals().contains(&signal)
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
