//! The `awsxray` receiver's section: the UDP endpoint and the sampling proxy, with the
//! collector's defaults.

use crate::config::{ComponentSection, InvalidSetting, check_listen_endpoint};
use serde::Deserialize;
use serde_yaml_ng::Value;

/// `receivers.awsxray`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsXrayReceiverConfig {
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    #[serde(default = "default_transport")]
    pub transport: String,
    #[serde(default)]
    pub proxy_server: ProxyServerConfig,
}

/// `receivers.awsxray.proxy_server`: where X-Ray SDKs fetch sampling rules and targets.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyServerConfig {
    /// TCP, loopback by default (the collector's code, not its README).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    #[serde(default)]
    pub proxy_address: String,
    /// Accepted for compatibility; the system roots verify X-Ray.
    #[serde(default)]
    pub tls: Option<Value>,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub role_arn: String,
    /// Overrides `https://xray.<region>.amazonaws.com`.
    #[serde(default)]
    pub aws_endpoint: String,
    #[serde(default)]
    pub local_mode: bool,
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

impl Default for ProxyServerConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults deserialize")
    }
}

fn default_endpoint() -> String {
    "localhost:2000".into()
}
fn default_transport() -> String {
    "udp".into()
}
fn default_service_name() -> String {
    "xray".into()
}

impl ComponentSection for AwsXrayReceiverConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<InvalidSetting>> {
        let mut invalid: Vec<InvalidSetting> = check_listen_endpoint("endpoint", &self.endpoint)
            .into_iter()
            .chain(check_listen_endpoint(
                "proxy_server.endpoint",
                &self.proxy_server.endpoint,
            ))
            .collect();
        if self.transport != "udp" {
            invalid.push(InvalidSetting::new(
                "transport",
                &self.transport,
                "\"udp\": the X-Ray receiver only supports ingesting spans through UDP",
            ));
        }
        if !self.proxy_server.proxy_address.is_empty() {
            invalid.push(InvalidSetting::new(
                "proxy_server.proxy_address",
                &self.proxy_server.proxy_address,
                "no value: use the HTTPS_PROXY environment variable",
            ));
        }
        if invalid.is_empty() {
            Ok(self)
        } else {
            Err(invalid)
        }
    }
}
