//! The `otlp` (gRPC) exporter's section, with the Go exporter's keys and defaults.

use crate::aws::RetrySettings;
use crate::config::{ComponentSection, InvalidSetting, duration::GoDuration};
use crate::exporters::QueueSettings;
use crate::exporters::client::{Compression, TlsSettings};
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// `exporters.otlp` as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpGrpcConfig {
    /// `host:port` (TLS unless `tls.insecure`), or an `http://` / `https://` URL.
    pub endpoint: String,
    #[serde(default)]
    pub compression: Compression,
    /// Sent as gRPC metadata with every call.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    /// No authenticator signs gRPC calls (AWS's OTLP endpoints are HTTP only): refused.
    #[serde(default)]
    pub auth: Option<Value>,
    /// Accepted for compatibility: one connection, kept alive by HTTP/2.
    #[serde(default)]
    pub balancer_name: Option<String>,
    #[serde(default)]
    pub keepalive: Option<Value>,
    #[serde(default)]
    pub wait_for_ready: Option<bool>,
    #[serde(default)]
    pub read_buffer_size: Option<Value>,
    #[serde(default)]
    pub write_buffer_size: Option<Value>,
    #[serde(default)]
    pub authority: Option<String>,
}

/// The exporterhelper's default timeout per export.
fn default_timeout() -> GoDuration {
    GoDuration::from_secs(5)
}

/// The validated section: the URL the channel connects to.
#[derive(Debug, Clone)]
pub struct OtlpGrpcSettings {
    pub url: String,
    pub config: OtlpGrpcConfig,
}

impl ComponentSection for OtlpGrpcConfig {
    type Settings = OtlpGrpcSettings;

    fn validate(self) -> Result<OtlpGrpcSettings, Vec<InvalidSetting>> {
        let mut invalid = Vec::new();
        let url = if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else if self.tls.insecure {
            format!("http://{}", self.endpoint)
        } else {
            format!("https://{}", self.endpoint)
        };
        let valid = url.parse::<hyper::Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
        });
        if self.endpoint.is_empty() || !valid {
            invalid.push(InvalidSetting::new(
                "endpoint",
                &self.endpoint,
                "host:port, or an http:// or https:// URL",
            ));
        }
        invalid.extend(self.tls.check().into_iter().map(|i| i.below("tls")));
        if self.auth.is_some() {
            invalid.push(InvalidSetting::rule(
                "auth",
                "no authenticator signs gRPC calls here: use otlp_http with sigv4auth for AWS",
            ));
        }
        if self.timeout.is_zero() {
            invalid.push(InvalidSetting::shown(
                "timeout",
                self.timeout.to_string(),
                "a duration greater than zero",
            ));
        }
        for (name, value) in &self.headers {
            let valid = name.parse::<tonic::metadata::AsciiMetadataKey>().is_ok()
                && value.parse::<tonic::metadata::AsciiMetadataValue>().is_ok();
            if !valid {
                invalid.push(InvalidSetting::new(
                    format!("headers.{name}"),
                    value,
                    "a valid gRPC metadata key and ASCII value",
                ));
            }
        }
        if !invalid.is_empty() {
            return Err(invalid);
        }
        Ok(OtlpGrpcSettings { url, config: self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::decode_settings;

    fn settings(yaml: &str) -> Result<OtlpGrpcSettings, String> {
        decode_settings::<OtlpGrpcConfig>(&serde_yaml_ng::from_str(yaml).unwrap()).map_err(|e| {
            match e {
                crate::config::DecodeError::Invalid(invalid) => invalid
                    .iter()
                    .map(|i| format!("{}: {i}", i.path))
                    .collect::<Vec<_>>()
                    .join("; "),
                other => format!("{other:?}"),
            }
        })
    }

    #[test]
    fn a_bare_endpoint_is_tls_unless_insecure() {
        assert_eq!(
            settings("endpoint: gw:4317").unwrap().url,
            "https://gw:4317"
        );
        assert_eq!(
            settings("endpoint: gw:4317\ntls: {insecure: true}")
                .unwrap()
                .url,
            "http://gw:4317"
        );
        assert_eq!(
            settings("endpoint: http://127.0.0.1:4317").unwrap().url,
            "http://127.0.0.1:4317"
        );
        let defaults = settings("endpoint: gw:4317").unwrap().config;
        assert_eq!(defaults.compression, Compression::Gzip);
        assert_eq!(defaults.timeout, GoDuration::from_secs(5));
    }

    #[test]
    fn bad_values_name_path_value_and_expectation() {
        assert_eq!(
            settings("endpoint: ''").unwrap_err(),
            "endpoint: \"\": expected host:port, or an http:// or https:// URL"
        );
        assert_eq!(
            settings("endpoint: gw:4317\nauth: {authenticator: sigv4auth}").unwrap_err(),
            "auth: no authenticator signs gRPC calls here: use otlp_http with sigv4auth for AWS"
        );
        assert!(
            settings("endpoint: gw:4317\ntls: {insecure_skip_verify: true}")
                .unwrap_err()
                .starts_with("tls.insecure_skip_verify: true: expected false")
        );
    }
}
