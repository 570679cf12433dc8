//! The `resourcedetection` processor with the collector's `env`, `system`, `ecs` and `ec2`
//! detectors: resource attributes found once at start (all detectors within `timeout`) are
//! merged into every resource that passes, the first detector listed winning a key. A missing
//! or failing detector is a warning, never a crash.

mod ec2;
pub mod ecs;
mod system;

use crate::config::duration::GoDuration;
use crate::pipeline::{Delivery, Payload};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;
use serde_yaml_ng::Value;
use tokio::sync::mpsc;

/// `processors.resourcedetection`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDetectionConfig {
    #[serde(default)]
    pub detectors: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
    /// Detected values replace attributes the data already has.
    #[serde(default = "default_override", rename = "override")]
    pub override_existing: bool,
    #[serde(default)]
    pub system: system::SystemConfig,
    #[serde(default)]
    pub ec2: ec2::Ec2Config,
    /// Detection runs once at start; accepted for compatibility.
    #[serde(default, rename = "refresh_interval")]
    _refresh_interval: Option<Value>,
    /// Accepted for compatibility (per-detector attribute switches).
    #[serde(default)]
    pub ecs: Option<Value>,
    #[serde(default)]
    pub env: Option<Value>,
    #[serde(default)]
    pub attributes: Option<Value>,
}

fn default_timeout() -> GoDuration {
    GoDuration::from_secs(5)
}
fn default_override() -> bool {
    true
}

/// Detectors otel-sidecar implements.
pub const DETECTORS: &[&str] = &["env", "system", "ecs", "ec2"];

impl crate::config::ComponentSection for ResourceDetectionConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<crate::config::InvalidSetting>> {
        crate::config::checked(self, Self::check)
    }
}

impl ResourceDetectionConfig {
    fn check(&self) -> Result<(), (String, String)> {
        for (i, detector) in self.detectors.iter().enumerate() {
            if !DETECTORS.contains(&detector.as_str()) {
                return Err((
                    format!("detectors[{i}]"),
                    format!(
                        "detector {detector:?} is not supported (supported: {})",
                        DETECTORS.join(", ")
                    ),
                ));
            }
        }
        let nested =
            |key: &str, (sub, message): (String, String)| (format!("{key}.{sub}"), message);
        self.system.validate().map_err(|e| nested("system", e))?;
        self.ec2.validate().map_err(|e| nested("ec2", e))?;
        Ok(())
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `k=v,k2=v2`, values percent-decoded.
pub fn env_attributes(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the detectors in order, all within `timeout`; later detectors do not overwrite
/// earlier ones.
pub async fn detect(config: &ResourceDetectionConfig) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + *config.timeout;
    let mut found: Vec<(String, String)> = Vec::new();
    for detector in &config.detectors {
        let timed_out = || Err(format!("no answer within {:?}", config.timeout));
        let attributes = match detector.as_str() {
            "env" => Ok(std::env::var("OTEL_RESOURCE_ATTRIBUTES")
                .map(|t| env_attributes(&t))
                .unwrap_or_default()),
            "system" => system::detect(&config.system),
            "ecs" => tokio::time::timeout_at(deadline, ecs::detect())
                .await
                .unwrap_or_else(|_| timed_out()),
            "ec2" => tokio::time::timeout_at(deadline, ec2::detect(&config.ec2))
                .await
                .unwrap_or_else(|_| timed_out()),
            _ => Ok(Vec::new()),
        };
        match attributes {
            Ok(attributes) => {
                for (k, v) in attributes {
                    if !found.iter().any(|(existing, _)| *existing == k) {
                        found.push((k, v));
                    }
                }
            }
            Err(error) => {
                tracing::warn!(detector = %detector, %error, "resource detection failed; continuing without it")
            }
        }
    }
    tracing::info!(
        message = "resource detection done",
        attributes = found.len()
    );
    found
}

fn merge(resource: &mut Option<Resource>, detected: &[(String, String)], override_existing: bool) {
    let resource = resource.get_or_insert_with(Resource::default);
    for (key, value) in detected {
        let value = Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.clone())),
        });
        match resource.attributes.iter_mut().find(|kv| kv.key == *key) {
            Some(existing) if override_existing => existing.value = value,
            Some(_) => {}
            None => resource.attributes.push(KeyValue {
                key: key.clone(),
                value,
                ..Default::default()
            }),
        }
    }
}

/// Adds the detected attributes to every resource of the payload.
pub fn apply(payload: &mut Payload, detected: &[(String, String)], override_existing: bool) {
    payload.make_owned();
    match payload {
        Payload::Encoded(_) => unreachable!("made owned above"),
        Payload::Traces(list) => list
            .iter_mut()
            .for_each(|r| merge(&mut r.resource, detected, override_existing)),
        Payload::Metrics(list) => list
            .iter_mut()
            .for_each(|r| merge(&mut r.resource, detected, override_existing)),
        Payload::Logs(list) => list
            .iter_mut()
            .for_each(|r| merge(&mut r.resource, detected, override_existing)),
    }
}

/// The processor task: detect once, then enrich everything that passes.
pub async fn run(
    config: ResourceDetectionConfig,
    mut input: mpsc::Receiver<Delivery>,
    output: mpsc::Sender<Delivery>,
) {
    let detected = detect(&config).await;
    while let Some(mut delivery) = input.recv().await {
        apply(&mut delivery.payload, &detected, config.override_existing);
        if output.send(delivery).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_attributes_parse_and_decode() {
        assert_eq!(
            env_attributes("service.name=api, deployment.environment=prod%2Ceu ,bad,=x"),
            vec![
                ("service.name".into(), "api".into()),
                ("deployment.environment".into(), "prod,eu".into())
            ]
        );
    }

    #[test]
    fn merge_respects_override() {
        let detected = vec![
            ("a".to_string(), "new".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        let existing = || {
            Some(Resource {
                attributes: vec![KeyValue {
                    key: "a".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("old".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            })
        };
        let value_of = |r: &Option<Resource>, k: &str| {
            r.as_ref()
                .unwrap()
                .attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value)
        };
        let mut r = existing();
        merge(&mut r, &detected, true);
        assert_eq!(
            value_of(&r, "a"),
            Some(any_value::Value::StringValue("new".into()))
        );
        assert_eq!(
            value_of(&r, "b"),
            Some(any_value::Value::StringValue("2".into()))
        );
        let mut r = existing();
        merge(&mut r, &detected, false);
        assert_eq!(
            value_of(&r, "a"),
            Some(any_value::Value::StringValue("old".into()))
        );
    }
}
