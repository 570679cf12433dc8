//! The collector YAML config as a document: sources, `${...}` expansion, component ids and the
//! sections as written. The ground floor of the crate: it knows no component. What each
//! component type accepts, and the validated config the runtime builds from, are in
//! [`crate::components`].

mod component_id;
pub mod duration;
mod expand;
mod signal;
pub mod source;

pub use component_id::{ComponentId, PipelineId};
pub use signal::Signal;

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
pub fn mask_secrets(value: &mut Value) {
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

/// One setting a component refuses: where it is, what was there and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match .value { Some(value) => format!("{value}: {}", .expected), None => .expected.clone() })]
pub struct InvalidSetting {
    /// The path below the component's section (`protocols.grpc.transport`); empty for the
    /// section as a whole.
    pub path: String,
    /// The value seen, as written (strings quoted). `None` where the message names the values
    /// itself (serde's own errors, rules about several keys).
    pub value: Option<String>,
    /// What is accepted there: `expected ...`, or the Go collector's own sentence for it.
    pub expected: String,
}

impl InvalidSetting {
    /// `value` as Rust debug-formats it (strings quoted, numbers plain); `expected` completes
    /// "expected ...".
    pub fn new(path: impl Into<String>, value: impl fmt::Debug, expected: &str) -> Self {
        InvalidSetting::shown(path, format!("{value:?}"), expected)
    }

    /// A value already written as the config would (a duration as `0s`).
    pub fn shown(path: impl Into<String>, value: impl Into<String>, expected: &str) -> Self {
        InvalidSetting {
            path: path.into(),
            value: Some(value.into()),
            expected: format!("expected {expected}"),
        }
    }

    /// A value (written as the config would) refused in the Go collector's words, kept so its
    /// messages stay recognisable.
    pub fn collector(path: impl Into<String>, value: impl Into<String>, sentence: &str) -> Self {
        InvalidSetting {
            path: path.into(),
            value: Some(value.into()),
            expected: sentence.to_string(),
        }
    }

    /// A rule whose message names the values itself.
    pub fn rule(path: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidSetting {
            path: path.into(),
            value: None,
            expected: message.into(),
        }
    }

    /// The same setting seen from the section one level up (`shared` → `cardinality_budget`).
    pub fn below(mut self, parent: &str) -> Self {
        self.path = if self.path.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.path)
        };
        self
    }
}

/// Checks a listening endpoint as the collector writes it (`localhost:4318`, `0.0.0.0:2000`,
/// `:8888`, `[::1]:4317`): a host (possibly empty) and a port number, so a typo is refused by
/// `validate` rather than when the listener is bound.
pub fn check_listen_endpoint(path: &str, endpoint: &str) -> Option<InvalidSetting> {
    let port_ok = endpoint.rsplit_once(':').is_some_and(|(host, port)| {
        port.parse::<u16>().is_ok() && !host.contains(char::is_whitespace)
    });
    (!port_ok).then(|| InvalidSetting::new(path, endpoint, "host:port with a port from 0 to 65535"))
}

/// `(path, message)` from checks that state the value in their message.
impl From<(String, String)> for InvalidSetting {
    fn from((path, message): (String, String)) -> Self {
        InvalidSetting::rule(path, message)
    }
}

/// A component's section as written (serde, `deny_unknown_fields`, the collector's defaults),
/// checked into the settings its runtime is built from: the runtime never checks config again.
pub trait ComponentSection: DeserializeOwned {
    type Settings;

    /// Every setting the section gets wrong, or the settings.
    fn validate(self) -> Result<Self::Settings, Vec<InvalidSetting>>;
}

/// A section that is its own settings, once `check` finds nothing wrong with it.
pub fn checked<T, E: Into<InvalidSetting>>(
    section: T,
    check: impl FnOnce(&T) -> Result<(), E>,
) -> Result<T, Vec<InvalidSetting>> {
    match check(&section) {
        Ok(()) => Ok(section),
        Err(problem) => Err(vec![problem.into()]),
    }
}

/// Decodes a component's section and validates it into its settings.
pub fn decode_settings<S: ComponentSection>(value: &Value) -> Result<S::Settings, DecodeError> {
    decode_section::<S>(value)?
        .validate()
        .map_err(DecodeError::Invalid)
}

/// How a component type answered a decode request.
#[derive(Debug)]
pub enum DecodeError {
    /// No such component type; carries the valid ones.
    UnknownType(&'static [&'static str]),
    /// A collector component outside otel-sidecar's scope (it sends to X-Ray and CloudWatch).
    OutOfScope,
    /// The body of the component's config is wrong.
    Invalid(Vec<InvalidSetting>),
}

impl From<InvalidSetting> for DecodeError {
    fn from(setting: InvalidSetting) -> Self {
        DecodeError::Invalid(vec![setting])
    }
}

impl From<(String, String)> for DecodeError {
    fn from(problem: (String, String)) -> Self {
        DecodeError::Invalid(vec![problem.into()])
    }
}

impl DecodeError {
    /// The problems as config errors, for the section of `id` (written `key`) of `kind`.
    pub fn for_section(self, kind: Kind, key: &str, id: &ComponentId) -> Vec<ConfigError> {
        let path = format!("{}.{key}", kind.section());
        match self {
            DecodeError::UnknownType(valid) => vec![ConfigError::new(
                path,
                format!(
                    "unknown type: {:?} for id: {key:?} (valid values: [{}])",
                    id.kind,
                    valid.join(" ")
                ),
            )],
            DecodeError::OutOfScope => vec![ConfigError::new(
                path,
                format!(
                    "the {:?} {} is outside otel-sidecar's scope: it replaces the ADOT sidecar for X-Ray and CloudWatch (EMF) on ECS; run the ADOT collector for Prometheus, AMP or Container Insights agent setups",
                    id.kind,
                    kind.singular(),
                ),
            )],
            DecodeError::Invalid(_) => self.problems_at(&path),
        }
    }

    /// The problems of an invalid body as config errors below `path`.
    pub fn problems_at(self, path: &str) -> Vec<ConfigError> {
        let DecodeError::Invalid(problems) = self else {
            return vec![ConfigError::new(path, "not a section otel-sidecar reads")];
        };
        problems
            .into_iter()
            .map(|setting| {
                let full = if setting.path.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}.{}", setting.path)
                };
                ConfigError::new(full, setting.to_string())
            })
            .collect()
    }
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
        DecodeError::Invalid(vec![InvalidSetting::rule(
            path,
            err.into_inner().to_string(),
        )])
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

/// A config document read, `${...}` expanded and its component ids parsed; what each body
/// means is up to the component types (`crate::components`).
#[derive(Debug)]
pub struct Document {
    pub receivers: Vec<Section>,
    pub processors: Vec<Section>,
    pub exporters: Vec<Section>,
    pub extensions: Vec<Section>,
    /// `None` when the `service` section is invalid (already reported).
    pub service: Option<ServiceSection>,
    /// Environment variables referenced by the config that are not set (a warning, as in the
    /// collector: the value becomes empty).
    pub unset_variables: Vec<String>,
}

/// One `kind.id: body` entry as written.
#[derive(Debug)]
pub struct Section {
    /// The key as written (`otlp/grpc`), which pipelines refer to.
    pub key: String,
    /// The parsed id, or why the key is not one.
    pub id: Result<ComponentId, String>,
    pub body: Value,
}

impl Document {
    /// The sections of `kind`, in the order written.
    pub fn sections(&self, kind: Kind) -> &[Section] {
        match kind {
            Kind::Receiver => &self.receivers,
            Kind::Processor => &self.processors,
            Kind::Exporter => &self.exporters,
            Kind::Extension => &self.extensions,
        }
    }
}

/// The four kinds of component sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Receiver,
    Processor,
    Exporter,
    Extension,
}

impl Kind {
    /// The top-level key of the kind's sections.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Extension => "extensions",
        }
    }

    /// The kind in a sentence (`the "otlphttp" exporter`).
    pub fn singular(self) -> &'static str {
        self.section().trim_end_matches('s')
    }
}

/// The `service:` section as written.
#[derive(Debug, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    #[serde(default)]
    pub extensions: Vec<String>,
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineSection>,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// One pipeline under `service.pipelines` as written.
#[derive(Debug, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    #[serde(default)]
    pub receivers: Vec<String>,
    #[serde(default)]
    pub processors: Vec<String>,
    #[serde(default)]
    pub exporters: Vec<String>,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "receivers",
    "processors",
    "exporters",
    "connectors",
    "extensions",
    "service",
];

/// Reads a config document: YAML, `${...}` expansion (`lookup` reads environment variables),
/// top-level keys, component ids and the `service` section. Problems go to `errors`, each with
/// its YAML path; `None` when the document cannot be read at all.
pub fn read_document(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<Document> {
    let mut root: Value = match serde_yaml_ng::from_str(text) {
        Ok(root) => root,
        Err(e) => {
            errors.push(ConfigError::new("", format!("invalid YAML: {e}")));
            return None;
        }
    };
    let mut report = expand::ExpansionReport::default();
    expand::expand_tree(&mut root, "", lookup, &mut report);
    errors.extend(
        report
            .errors
            .into_iter()
            .map(|(path, message)| ConfigError::new(path, message)),
    );
    let root = match root {
        Value::Mapping(map) if !map.is_empty() => map,
        Value::Null | Value::Mapping(_) => {
            errors.push(ConfigError::new("", "empty configuration file"));
            return None;
        }
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
    let receivers = read_sections(&root, Kind::Receiver, errors);
    let processors = read_sections(&root, Kind::Processor, errors);
    let exporters = read_sections(&root, Kind::Exporter, errors);
    let extensions = read_sections(&root, Kind::Extension, errors);
    let service = match root.get("service") {
        None => Some(ServiceSection::default()),
        Some(value) => decode_section(value)
            .map_err(|error| errors.extend(error.problems_at("service")))
            .ok(),
    };
    Some(Document {
        receivers,
        processors,
        exporters,
        extensions,
        service,
        unset_variables: report.unset_variables,
    })
}

/// The sections of one kind, as written.
fn read_sections(
    root: &serde_yaml_ng::Mapping,
    kind: Kind,
    errors: &mut Vec<ConfigError>,
) -> Vec<Section> {
    let name = kind.section();
    match root.get(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(key, body)| {
                let key = expand::key_text(key);
                Section {
                    id: ComponentId::parse(&key),
                    key,
                    body: body.clone(),
                }
            })
            .collect(),
        Some(_) => {
            errors.push(ConfigError::new(
                name,
                "expected a mapping of component ids",
            ));
            Vec::new()
        }
    }
}
