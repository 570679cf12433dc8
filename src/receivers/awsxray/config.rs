//! The `awsxray` receiver's section: the UDP endpoint and the sampling proxy, with the
//! collector's defaults.

use crate::config::{DecodeError, decode_section};
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

impl AwsXrayReceiverConfig {
    pub fn decode(body: &Value) -> Result<Self, DecodeError> {
        let config: AwsXrayReceiverConfig = decode_section(body)?;
        if config.transport != "udp" {
            return Err(DecodeError::Invalid(vec![(
                "transport".into(),
                "X-Ray receiver only supports ingesting spans through UDP".into(),
            )]));
        }
        if !config.proxy_server.proxy_address.is_empty() {
            return Err(DecodeError::Invalid(vec![(
                "proxy_server.proxy_address".into(),
                "not supported; use the HTTPS_PROXY environment variable".into(),
            )]));
        }
        Ok(config)
    }
}
