//! What AWS exporters share: the collector's AWS session settings, turned into an SDK config
//! with an explicit region (config → environment → ECS task metadata), so nothing ever probes
//! EC2 instance metadata by surprise.

pub mod calls;
pub mod signed;

use crate::config::duration::GoDuration;
use serde::Deserialize;
use std::time::Duration;

/// The SDK's config loader with its HTTP client on rustls/ring (the one TLS stack in the
/// binary); every SDK config is loaded through it.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
}

/// The collector's `awsutil.AWSSessionSettings` keys, with its defaults.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct AwsSessionSettings {
    /// Upper bound on concurrent requests of one exporter.
    #[serde(default = "default_num_workers")]
    pub num_workers: usize,
    /// Overrides the service endpoint (`AWS_ENDPOINT_URL` is honoured without it).
    #[serde(default)]
    pub endpoint: String,
    #[serde(default = "default_request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// SDK-level retries per request; the exporter retries further with backoff.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    #[serde(default)]
    pub no_verify_ssl: bool,
    #[serde(default)]
    pub proxy_address: String,
    #[serde(default)]
    pub region: String,
    /// Skip ECS metadata lookups (running outside AWS).
    #[serde(default)]
    pub local_mode: bool,
    #[serde(default)]
    pub resource_arn: String,
    #[serde(default)]
    pub role_arn: String,
    #[serde(default)]
    pub external_id: String,
}

fn default_num_workers() -> usize {
    8
}
fn default_request_timeout_seconds() -> u64 {
    30
}
fn default_max_retries() -> u32 {
    2
}

/// The collector's `retry_on_failure` settings: backoff between export attempts.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_initial_interval")]
    pub initial_interval: GoDuration,
    #[serde(default = "default_max_interval")]
    pub max_interval: GoDuration,
    /// After this long a batch is given up (counted and logged); 0 means never.
    #[serde(default = "default_max_elapsed_time")]
    pub max_elapsed_time: GoDuration,
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    #[serde(default = "default_randomization_factor")]
    pub randomization_factor: f64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults deserialize")
    }
}

fn default_true() -> bool {
    true
}
fn default_initial_interval() -> GoDuration {
    GoDuration::from_secs(5)
}
fn default_max_interval() -> GoDuration {
    GoDuration::from_secs(30)
}
fn default_max_elapsed_time() -> GoDuration {
    GoDuration::from_secs(300)
}
fn default_multiplier() -> f64 {
    1.5
}
fn default_randomization_factor() -> f64 {
    0.5
}

impl RetrySettings {
    /// The wait after `attempt` failures (0-based), jittered by the randomization factor.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.initial_interval.as_secs_f64() * self.multiplier.powi(attempt as i32);
        let base = base.min(self.max_interval.as_secs_f64());
        let jitter = 1.0 + self.randomization_factor * (2.0 * fastrand::f64() - 1.0);
        Duration::from_secs_f64((base * jitter).max(0.0))
    }
}

/// Why an AWS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    #[error(
        "cannot fetch region variable from config file, environment variables or ECS task metadata; set `region`"
    )]
    NoRegion,
}

impl AwsSessionSettings {
    /// Settings the collector has but otel-sidecar refuses rather than silently ignores.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.no_verify_ssl {
            return Err((
                "no_verify_ssl".into(),
                "turning off TLS verification is not supported".into(),
            ));
        }
        if !self.proxy_address.is_empty() {
            return Err((
                "proxy_address".into(),
                "not supported; use the HTTPS_PROXY environment variable".into(),
            ));
        }
        if self.num_workers == 0 {
            return Err(("num_workers".into(), "0: expected at least 1".into()));
        }
        Ok(())
    }

    /// An SDK config for this exporter: explicit region, timeouts, retries, endpoint, role.
    pub async fn sdk_config(&self) -> Result<aws_config::SdkConfig, AwsSetupError> {
        let region = resolve_region(&self.region, self.local_mode)
            .await
            .ok_or(AwsSetupError::NoRegion)?;
        let mut loader = sdk_loader()
            .region(aws_config::Region::new(region.clone()))
            .retry_config(
                aws_config::retry::RetryConfig::standard().with_max_attempts(self.max_retries + 1),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(self.request_timeout_seconds))
                    .build(),
            );
        if !self.endpoint.is_empty() {
            loader = loader.endpoint_url(&self.endpoint);
        }
        let base = loader.load().await;
        if self.role_arn.is_empty() {
            return Ok(base);
        }
        let mut role = aws_config::sts::AssumeRoleProvider::builder(&self.role_arn)
            .session_name("otel-sidecar")
            .region(aws_config::Region::new(region))
            .configure(&base);
        if !self.external_id.is_empty() {
            role = role.external_id(&self.external_id);
        }
        let provider = role.build().await;
        Ok(base
            .into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(provider),
            )
            .build())
    }
}

impl AwsSessionSettings {
    /// The signed client for an exporter's hot call, with these settings' endpoint, timeout
    /// and retries, over the SDK config's region and credentials.
    pub async fn signed_client(
        &self,
        sdk: &aws_config::SdkConfig,
        service: signed::AwsService,
    ) -> Result<signed::SignedClient, String> {
        signed::SignedClient::new(
            sdk,
            service,
            &self.endpoint,
            Duration::from_secs(self.request_timeout_seconds),
            self.max_retries,
        )
        .await
    }
}

/// Region from config, then `AWS_REGION` / `AWS_DEFAULT_REGION`, then (unless `local_mode`)
/// the region of the task ARN in the ECS task metadata endpoint v4.
pub async fn resolve_region(configured: &str, local_mode: bool) -> Option<String> {
    if !configured.is_empty() {
        return Some(configured.to_string());
    }
    for name in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Ok(region) = std::env::var(name)
            && !region.is_empty()
        {
            return Some(region);
        }
    }
    if local_mode {
        return None;
    }
    let base = std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok()?;
    let task = http_get_json(&format!("{base}/task")).await.ok()?;
    let arn = task.get("TaskARN")?.as_str()?;
    arn.split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

/// A plain `http://` request to a metadata endpoint (no TLS, no proxy): the status and body.
/// `connect` bounds the connection, `timeout` the whole exchange.
pub async fn http_call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    connect: Duration,
    timeout: Duration,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported, got {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fetch = async {
        let mut stream = tokio::time::timeout(connect, tokio::net::TcpStream::connect(authority))
            .await
            .map_err(|_| format!("connect {authority}: timed out"))?
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if method != "GET" {
            request.push_str("Content-Length: 0\r\n");
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("timeout fetching {url}"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed HTTP status line")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// A plain `http://` GET returning JSON, for link-local metadata endpoints (no TLS, no proxy).
pub async fn http_get_json(url: &str) -> Result<serde_json::Value, String> {
    let (status, body) = http_call(
        "GET",
        url,
        &[],
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await?;
    if status != 200 {
        return Err(format!("{url} answered {status}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("invalid JSON from {url}: {e}"))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let retry = RetrySettings::default();
        assert_eq!(*retry.initial_interval, Duration::from_secs(5));
        for attempt in 0..20 {
            let wait = retry.backoff(attempt).as_secs_f64();
            let base = (5.0 * 1.5f64.powi(attempt as i32)).min(30.0);
            assert!(
                wait >= base * 0.5 - 1e-9 && wait <= base * 1.5 + 1e-9,
                "{attempt}: {wait}"
            );
        }
    }

    #[test]
    fn dechunks_bodies() {
        assert_eq!(
            dechunk("4\r\n{\"a\"\r\n4\r\n:1}\n\r\n0\r\n\r\n"),
            "{\"a\":1}\n"
        );
    }

    #[tokio::test]
    async fn region_prefers_config() {
        assert_eq!(
            resolve_region("eu-west-3", false).await.as_deref(),
            Some("eu-west-3")
        );
    }
}
