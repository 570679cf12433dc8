//! The `ec2` detector: the instance identity from EC2 instance metadata (IMDSv2, with the v1
//! fallback). Off EC2 (Fargate, or metadata blocked for tasks) it contributes nothing after a
//! short timeout and the sidecar starts. `AWS_EC2_METADATA_SERVICE_ENDPOINT` names the endpoint
//! and `AWS_EC2_METADATA_DISABLED=true` turns it off, as for the AWS SDKs.

use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Where instance metadata lives unless `AWS_EC2_METADATA_SERVICE_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// The IMDS client's connection and response timeouts (the AWS SDK for Go's).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// `processors.resourcedetection.ec2`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Config {
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tags_from_imds: bool,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default, rename = "max_backoff")]
    _max_backoff: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub fail_on_missing_metadata: bool,
    #[serde(default)]
    pub resource_attributes: Option<serde_yaml_ng::Value>,
}

impl Default for Ec2Config {
    fn default() -> Self {
        Ec2Config {
            tags: Vec::new(),
            tags_from_imds: false,
            max_attempts: default_attempts(),
            _max_backoff: None,
            fail_on_missing_metadata: false,
            resource_attributes: None,
        }
    }
}

fn default_attempts() -> u32 {
    3
}

impl Ec2Config {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !self.tags.is_empty() || self.tags_from_imds {
            return Err((
                "tags".into(),
                "EC2 instance tags are not supported by otel-sidecar".into(),
            ));
        }
        Ok(())
    }
}

/// The metadata endpoint from the environment, or `None` when metadata is disabled. Pure, so
/// the default can be tested without opening a socket.
pub fn endpoint(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    Some(
        env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .filter(|e| !e.is_empty())
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
    )
}

/// One IMDS client session: the v2 token when the endpoint gives one.
struct Imds {
    base: String,
    token: Option<String>,
    attempts: u32,
}

impl Imds {
    async fn connect(base: String, attempts: u32) -> Result<Self, String> {
        let put = crate::aws::http_call(
            "PUT",
            &format!("{base}/latest/api/token"),
            &[("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "300")],
            CONNECT_TIMEOUT,
            RESPONSE_TIMEOUT,
        )
        .await;
        let token = match put {
            Ok((200, token)) => Some(token.trim().to_string()),
            // Forbidden, not found, not allowed, or no answer: IMDSv1.
            Ok((403..=405, _)) | Err(_) => None,
            Ok((status, _)) => return Err(format!("IMDS token request answered {status}")),
        };
        Ok(Imds {
            base,
            token,
            attempts,
        })
    }

    async fn get(&self, path: &str) -> Result<String, String> {
        let url = format!("{}{path}", self.base);
        let headers: Vec<(&str, &str)> = self
            .token
            .as_deref()
            .map(|t| vec![("X-Aws-Ec2-Metadata-Token", t)])
            .unwrap_or_default();
        let mut last = String::new();
        for _ in 0..self.attempts.max(1) {
            match crate::aws::http_call("GET", &url, &headers, CONNECT_TIMEOUT, RESPONSE_TIMEOUT)
                .await
            {
                Ok((200, body)) => return Ok(body),
                Ok((status, _)) => last = format!("{url} answered {status}"),
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}

/// The attributes of an identity document and hostname.
pub fn attributes(document: &Value, hostname: &str) -> Vec<(String, String)> {
    let text = |key: &str| {
        document
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    vec![
        ("cloud.provider".into(), "aws".into()),
        ("cloud.platform".into(), "aws_ec2".into()),
        ("cloud.region".into(), text("region")),
        ("cloud.account.id".into(), text("accountId")),
        ("cloud.availability_zone".into(), text("availabilityZone")),
        ("host.id".into(), text("instanceId")),
        ("host.image.id".into(), text("imageId")),
        ("host.type".into(), text("instanceType")),
        ("host.name".into(), hostname.trim().to_string()),
    ]
}

/// Runs the detector against the environment's endpoint.
pub async fn detect(config: &Ec2Config) -> Result<Vec<(String, String)>, String> {
    let Some(base) = endpoint(|name| std::env::var(name).ok()) else {
        return Ok(Vec::new());
    };
    let imds = Imds::connect(base, config.max_attempts).await?;
    if let Err(error) = imds.get("/latest/meta-data/instance-id").await {
        if config.fail_on_missing_metadata {
            return Err(format!("EC2 metadata unavailable: {error}"));
        }
        tracing::debug!(%error, "EC2 metadata unavailable");
        return Ok(Vec::new());
    }
    let document = imds
        .get("/latest/dynamic/instance-identity/document")
        .await?;
    let document: Value =
        serde_json::from_str(&document).map_err(|e| format!("identity document: {e}"))?;
    let hostname = imds.get("/latest/meta-data/hostname").await?;
    Ok(attributes(&document, &hostname))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default endpoint is the link-local address; worked out without opening a socket.
    #[test]
    fn endpoint_from_the_environment() {
        assert_eq!(endpoint(|_| None).as_deref(), Some(DEFAULT_ENDPOINT));
        assert_eq!(
            endpoint(|k| (k == "AWS_EC2_METADATA_SERVICE_ENDPOINT")
                .then(|| "http://127.0.0.1:9/".into()))
            .as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(
            endpoint(|k| (k == "AWS_EC2_METADATA_DISABLED").then(|| "TRUE".into())),
            None
        );
    }

    #[test]
    fn identity_document_attributes() {
        let document = serde_json::json!({"region": "us-east-1", "accountId": "123456789012", "availabilityZone": "us-east-1a", "instanceId": "i-0abc", "imageId": "ami-1", "instanceType": "m7g.large"});
        let got = attributes(&document, "ip-10-0-0-5.ec2.internal\n");
        assert_eq!(got.len(), 9);
        assert!(got.contains(&("host.type".into(), "m7g.large".into())));
        assert!(got.contains(&("host.name".into(), "ip-10-0-0-5.ec2.internal".into())));
    }
}
