//! The `otlp` receiver's section: protocols, endpoints and limits, with the collector's defaults.

use crate::config::{
    ComponentSection, InvalidSetting, check_listen_endpoint, present_with_defaults,
};
use serde::Deserialize;
use serde_yaml_ng::Value;

#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    #[serde(default)]
    pub protocols: Protocols,
}

/// A protocol is enabled when its key is present, even with an empty body.
#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    #[serde(default, deserialize_with = "present_with_defaults")]
    pub grpc: Option<GrpcConfig>,
    #[serde(default, deserialize_with = "present_with_defaults")]
    pub http: Option<HttpConfig>,
}

/// `receivers.otlp.protocols.grpc`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    #[serde(default = "default_grpc_endpoint")]
    pub endpoint: String,
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Largest accepted message, in MiB (grpc-go's default is 4).
    #[serde(default = "default_max_recv_msg_size_mib")]
    pub max_recv_msg_size_mib: u64,
    #[serde(default)]
    pub max_concurrent_streams: Option<u32>,
    #[serde(default)]
    pub read_buffer_size: Option<u64>,
    #[serde(default)]
    pub write_buffer_size: Option<u64>,
    #[serde(default)]
    pub include_metadata: bool,
    /// Accepted for compatibility; tonic's keepalive defaults apply.
    #[serde(default)]
    pub keepalive: Option<Value>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults deserialize")
    }
}

/// `receivers.otlp.protocols.http`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_endpoint")]
    pub endpoint: String,
    /// Limit on the request body, raw and decompressed (the collector's default is 20 MiB).
    #[serde(default = "default_max_request_body_size")]
    pub max_request_body_size: u64,
    #[serde(default = "default_traces_path")]
    pub traces_url_path: String,
    #[serde(default = "default_metrics_path")]
    pub metrics_url_path: String,
    #[serde(default = "default_logs_path")]
    pub logs_url_path: String,
    #[serde(default)]
    pub include_metadata: bool,
    /// Accepted for compatibility; hyper's defaults apply.
    #[serde(default)]
    pub read_timeout: Option<Value>,
    #[serde(default)]
    pub read_header_timeout: Option<Value>,
    #[serde(default)]
    pub write_timeout: Option<Value>,
    #[serde(default)]
    pub idle_timeout: Option<Value>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults deserialize")
    }
}

fn default_grpc_endpoint() -> String {
    "localhost:4317".into()
}
fn default_http_endpoint() -> String {
    "localhost:4318".into()
}
fn default_transport() -> String {
    "tcp".into()
}
fn default_max_recv_msg_size_mib() -> u64 {
    4
}
fn default_max_request_body_size() -> u64 {
    20 * 1024 * 1024
}
fn default_traces_path() -> String {
    "/v1/traces".into()
}
fn default_metrics_path() -> String {
    "/v1/metrics".into()
}
fn default_logs_path() -> String {
    "/v1/logs".into()
}

/// A leading `/` is added when missing, as the collector does.
fn with_leading_slash(path: &mut String) {
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
}

impl ComponentSection for OtlpReceiverConfig {
    type Settings = Self;

    fn validate(mut self) -> Result<Self, Vec<InvalidSetting>> {
        let mut invalid = Vec::new();
        if self.protocols.grpc.is_none() && self.protocols.http.is_none() {
            invalid.push(InvalidSetting::rule(
                "protocols",
                "must specify at least one protocol when using the OTLP receiver",
            ));
        }
        if let Some(grpc) = &self.protocols.grpc {
            invalid.extend(check_listen_endpoint(
                "protocols.grpc.endpoint",
                &grpc.endpoint,
            ));
            if !matches!(grpc.transport.as_str(), "tcp" | "tcp4" | "tcp6") {
                invalid.push(InvalidSetting::new(
                    "protocols.grpc.transport",
                    &grpc.transport,
                    "one of tcp, tcp4, tcp6",
                ));
            }
            if grpc.max_recv_msg_size_mib == 0 {
                invalid.push(InvalidSetting::new(
                    "protocols.grpc.max_recv_msg_size_mib",
                    grpc.max_recv_msg_size_mib,
                    "a size in MiB greater than 0",
                ));
            }
        }
        if let Some(http) = &mut self.protocols.http {
            invalid.extend(check_listen_endpoint(
                "protocols.http.endpoint",
                &http.endpoint,
            ));
            with_leading_slash(&mut http.traces_url_path);
            with_leading_slash(&mut http.metrics_url_path);
            with_leading_slash(&mut http.logs_url_path);
            if http.max_request_body_size == 0 {
                http.max_request_body_size = default_max_request_body_size();
            }
        }
        if invalid.is_empty() {
            Ok(self)
        } else {
            Err(invalid)
        }
    }
}
