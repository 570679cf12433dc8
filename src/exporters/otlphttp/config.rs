//! The `otlp_http` exporter's section (the Go exporter's keys and defaults), validated into the
//! URL of each signal and the request settings.

use crate::aws::RetrySettings;
use crate::config::{ComponentSection, InvalidSetting, Signal, duration::GoDuration};
use crate::exporters::QueueSettings;
use crate::exporters::client::{Compression, TlsSettings};
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// `exporters.otlp_http` as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpHttpConfig {
    /// The base URL: `/v1/traces`, `/v1/metrics` and `/v1/logs` are appended to it.
    #[serde(default)]
    pub endpoint: String,
    /// Used as given, without a path appended.
    #[serde(default)]
    pub traces_endpoint: String,
    #[serde(default)]
    pub metrics_endpoint: String,
    #[serde(default)]
    pub logs_endpoint: String,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub encoding: Encoding,
    /// Sent with every request (and signed with it when an authenticator signs).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    /// Accepted for compatibility: connection pooling is the client's own.
    #[serde(default)]
    pub read_buffer_size: Option<Value>,
    #[serde(default)]
    pub write_buffer_size: Option<Value>,
    #[serde(default)]
    pub max_idle_conns: Option<Value>,
    #[serde(default)]
    pub max_idle_conns_per_host: Option<Value>,
    #[serde(default)]
    pub idle_conn_timeout: Option<Value>,
    #[serde(default)]
    pub disable_keep_alives: Option<Value>,
}

fn default_timeout() -> GoDuration {
    GoDuration::from_secs(30)
}

/// `encoding`: protobuf by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Proto,
    Json,
}

/// `auth`: the extension that signs the requests.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub authenticator: String,
}

/// Where each signal goes, and how.
#[derive(Debug, Clone)]
pub struct OtlpHttpSettings {
    pub traces_url: Option<String>,
    pub metrics_url: Option<String>,
    pub logs_url: Option<String>,
    pub config: OtlpHttpConfig,
}

impl OtlpHttpSettings {
    /// The URL `signal` is sent to, if the config gives one.
    pub fn url(&self, signal: Signal) -> Option<&str> {
        match signal {
            Signal::Traces => self.traces_url.as_deref(),
            Signal::Metrics => self.metrics_url.as_deref(),
            Signal::Logs => self.logs_url.as_deref(),
        }
    }
}

impl ComponentSection for OtlpHttpConfig {
    type Settings = OtlpHttpSettings;

    fn validate(self) -> Result<OtlpHttpSettings, Vec<InvalidSetting>> {
        let mut invalid = Vec::new();
        let mut url = |key: &str, given: &str, path: &str| -> Option<String> {
            let url = if given.is_empty() {
                if self.endpoint.is_empty() {
                    return None;
                }
                format!("{}{path}", self.endpoint.trim_end_matches('/'))
            } else {
                given.to_string()
            };
            let (key, value) = if given.is_empty() {
                ("endpoint", &self.endpoint)
            } else {
                (key, &given.to_string())
            };
            match url.parse::<hyper::Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some() =>
                {
                    Some(url)
                }
                _ => {
                    invalid.push(InvalidSetting::new(
                        key,
                        value,
                        "an http:// or https:// URL with a host",
                    ));
                    None
                }
            }
        };
        let traces_url = url("traces_endpoint", &self.traces_endpoint, "/v1/traces");
        let metrics_url = url("metrics_endpoint", &self.metrics_endpoint, "/v1/metrics");
        let logs_url = url("logs_endpoint", &self.logs_endpoint, "/v1/logs");
        let none_given = [
            &self.endpoint,
            &self.traces_endpoint,
            &self.metrics_endpoint,
            &self.logs_endpoint,
        ]
        .iter()
        .all(|e| e.is_empty());
        if none_given {
            invalid.push(InvalidSetting::rule(
                "endpoint",
                "at least one endpoint must be specified (endpoint, traces_endpoint, metrics_endpoint or logs_endpoint)",
            ));
        }
        if self.timeout.is_zero() {
            invalid.push(InvalidSetting::shown(
                "timeout",
                self.timeout.to_string(),
                "a duration greater than zero",
            ));
        }
        invalid.extend(self.tls.check().into_iter().map(|i| i.below("tls")));
        for (name, value) in &self.headers {
            let valid = hyper::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && hyper::header::HeaderValue::from_str(value).is_ok();
            if !valid {
                invalid.push(InvalidSetting::new(
                    format!("headers.{name}"),
                    value,
                    "a valid HTTP header name and value",
                ));
            }
        }
        if let Some(auth) = &self.auth
            && auth.authenticator.is_empty()
        {
            invalid.push(InvalidSetting::new(
                "auth.authenticator",
                "",
                "the id of an authenticator extension (sigv4auth)",
            ));
        }
        if !invalid.is_empty() {
            return Err(invalid);
        }
        Ok(OtlpHttpSettings {
            traces_url,
            metrics_url,
            logs_url,
            config: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::decode_settings;

    fn settings(yaml: &str) -> Result<OtlpHttpSettings, Vec<String>> {
        match decode_settings::<OtlpHttpConfig>(&serde_yaml_ng::from_str(yaml).unwrap()) {
            Ok(settings) => Ok(settings),
            Err(crate::config::DecodeError::Invalid(invalid)) => {
                Err(invalid.iter().map(|i| format!("{}: {i}", i.path)).collect())
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn signal_paths_are_appended_to_endpoint_and_signal_endpoints_are_used_as_given() {
        let s = settings("endpoint: https://gw:4318/\nlogs_endpoint: https://logs.eu-west-1.amazonaws.com/v1/logs").unwrap();
        assert_eq!(s.url(Signal::Traces), Some("https://gw:4318/v1/traces"));
        assert_eq!(s.url(Signal::Metrics), Some("https://gw:4318/v1/metrics"));
        assert_eq!(
            s.url(Signal::Logs),
            Some("https://logs.eu-west-1.amazonaws.com/v1/logs")
        );
        assert_eq!(s.config.compression, Compression::Gzip);
        assert_eq!(s.config.encoding, Encoding::Proto);
        assert_eq!(s.config.timeout, GoDuration::from_secs(30));
        let only_traces =
            settings("traces_endpoint: https://xray.us-east-1.amazonaws.com/v1/traces").unwrap();
        assert!(only_traces.url(Signal::Logs).is_none());
    }

    #[test]
    fn bad_values_are_refused_with_path_value_and_expectation() {
        let errors =
            settings("traces_endpoint: xray\ntimeout: 0s\nheaders: {\"a b\": c}").unwrap_err();
        assert_eq!(
            errors,
            [
                "traces_endpoint: \"xray\": expected an http:// or https:// URL with a host",
                "timeout: 0s: expected a duration greater than zero",
                "headers.a b: \"c\": expected a valid HTTP header name and value",
            ]
        );
        assert_eq!(
            settings("{}").unwrap_err(),
            [
                "endpoint: at least one endpoint must be specified (endpoint, traces_endpoint, metrics_endpoint or logs_endpoint)"
            ]
        );
        assert!(settings("endpoint: http://x\ncompression: brotli").is_err());
    }
}
