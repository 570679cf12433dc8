//! The `sigv4auth` extension: signs an exporter's HTTP requests with AWS SigV4, as the
//! collector-contrib extension does, so OTLP can go to X-Ray's, CloudWatch Logs' and
//! CloudWatch's OTLP endpoints. Credentials come from the same chain as the AWS exporters
//! (on ECS the task role), refreshed before they expire, or from an assumed role.

use crate::aws::signed::Signer;
use crate::config::{ComponentSection, InvalidSetting};
use aws_credential_types::provider::SharedCredentialsProvider;
use serde::Deserialize;

/// `extensions.sigv4auth` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sigv4AuthConfig {
    /// Inferred from the endpoint's host when left out (`xray.us-east-1.amazonaws.com`).
    #[serde(default)]
    pub region: String,
    /// The SigV4 service name: `xray`, `logs`, `monitoring`; inferred like `region`.
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub assume_role: AssumeRole,
}

/// `assume_role`: sign as this role instead of the task's own.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssumeRole {
    #[serde(default)]
    pub arn: String,
    #[serde(default)]
    pub session_name: String,
    /// The region of the STS endpoint; the signing region when left out.
    #[serde(default)]
    pub sts_region: String,
    /// Assume the role with this web identity token instead of the default credentials.
    #[serde(default)]
    pub web_identity_token_file: String,
}

impl ComponentSection for Sigv4AuthConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<InvalidSetting>> {
        let mut invalid = Vec::new();
        let role = &self.assume_role;
        if !role.arn.is_empty() && !role.arn.starts_with("arn:") {
            invalid.push(InvalidSetting::new(
                "assume_role.arn",
                &role.arn,
                "a role ARN (arn:aws:iam::<account>:role/<name>)",
            ));
        }
        if role.arn.is_empty() && !role.web_identity_token_file.is_empty() {
            invalid.push(InvalidSetting::new(
                "assume_role.web_identity_token_file",
                &role.web_identity_token_file,
                "no value unless assume_role.arn names the role to assume with it",
            ));
        }
        if invalid.is_empty() {
            Ok(self)
        } else {
            Err(invalid)
        }
    }
}

/// Service and region from a host the collector's extension recognises:
/// `<service>.<region>.amazonaws.com` for `logs`, `xray` and `aps-workspaces`, and
/// `search-<domain>.<region>.es.amazonaws.com` (service `es`).
pub fn infer_from_host(host: &str) -> (Option<String>, Option<String>) {
    let labels: Vec<&str> = host.split('.').collect();
    if !host.ends_with(".amazonaws.com") || labels.len() < 4 {
        return (None, None);
    }
    let region = Some(labels[1].to_string());
    match labels[0] {
        service @ ("logs" | "xray" | "aps-workspaces") => (Some(service.to_string()), region),
        first if first.starts_with("search-") => (Some("es".to_string()), region),
        _ => (None, None),
    }
}

/// Why requests to an endpoint cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum Sigv4Error {
    #[error(
        "no {what} to sign requests to {url} with: set sigv4auth `{what}` (it is inferred only from logs., xray. and aps-workspaces. hosts of amazonaws.com)"
    )]
    NotInferred { what: &'static str, url: String },
    #[error("no AWS credentials provider")]
    NoCredentials,
    #[error("cannot read the web identity token file {path}: {error}")]
    TokenFile { path: String, error: std::io::Error },
}

impl Sigv4AuthConfig {
    /// The signer for requests to `url`: the configured service and region, else the ones its
    /// host names; credentials from the default chain, or the assumed role.
    pub async fn signer(&self, url: &str) -> Result<Signer, Sigv4Error> {
        let host = url
            .parse::<hyper::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(str::to_string))
            .unwrap_or_default();
        let (inferred_service, inferred_region) = infer_from_host(&host);
        let pick = |configured: &str, inferred: Option<String>, what: &'static str| {
            if !configured.is_empty() {
                return Ok(configured.to_string());
            }
            inferred.ok_or_else(|| Sigv4Error::NotInferred {
                what,
                url: url.to_string(),
            })
        };
        let service = pick(&self.service, inferred_service, "service")?;
        let region = pick(&self.region, inferred_region, "region")?;
        let base = crate::aws::sdk_loader()
            .region(aws_config::Region::new(region.clone()))
            .load()
            .await;
        let credentials = self.credentials(&base, &region).await?;
        Ok(Signer::new(credentials, region, service))
    }

    async fn credentials(
        &self,
        base: &aws_config::SdkConfig,
        region: &str,
    ) -> Result<SharedCredentialsProvider, Sigv4Error> {
        let role = &self.assume_role;
        if role.arn.is_empty() {
            return base.credentials_provider().ok_or(Sigv4Error::NoCredentials);
        }
        let session_name = if role.session_name.is_empty() {
            "otel-sidecar".to_string()
        } else {
            role.session_name.clone()
        };
        let sts_region = if role.sts_region.is_empty() {
            region
        } else {
            &role.sts_region
        };
        if !role.web_identity_token_file.is_empty() {
            // Read once here so a missing file is reported at start, not at the first export.
            std::fs::metadata(&role.web_identity_token_file).map_err(|error| {
                Sigv4Error::TokenFile {
                    path: role.web_identity_token_file.clone(),
                    error,
                }
            })?;
            let provider =
                aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                    .configure(&provider_config(base, sts_region))
                    .static_configuration(aws_config::web_identity_token::StaticConfiguration {
                        web_identity_token_file: role.web_identity_token_file.clone().into(),
                        role_arn: role.arn.clone(),
                        session_name,
                    })
                    .build();
            return Ok(SharedCredentialsProvider::new(provider));
        }
        let provider = aws_config::sts::AssumeRoleProvider::builder(&role.arn)
            .session_name(session_name)
            .region(aws_config::Region::new(sts_region.to_string()))
            .configure(base)
            .build()
            .await;
        Ok(SharedCredentialsProvider::new(provider))
    }
}

/// The base config's HTTP client and sleep, for a credentials provider built by hand.
fn provider_config(
    base: &aws_config::SdkConfig,
    region: &str,
) -> aws_config::provider_config::ProviderConfig {
    let mut config = aws_config::provider_config::ProviderConfig::empty()
        .with_region(Some(aws_config::Region::new(region.to_string())));
    if let Some(http) = base.http_client() {
        config = config.with_http_client(http);
    }
    if let Some(sleep) = base.sleep_impl() {
        config = config.with_sleep_impl(sleep);
    }
    if let Some(time) = base.time_source() {
        config = config.with_time_source(time);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_and_region_are_inferred_only_from_the_hosts_the_collector_knows() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            infer_from_host("xray.us-east-1.amazonaws.com"),
            (some("xray"), some("us-east-1"))
        );
        assert_eq!(
            infer_from_host("logs.eu-west-2.amazonaws.com"),
            (some("logs"), some("eu-west-2"))
        );
        assert_eq!(
            infer_from_host("search-mydomain.us-west-1.es.amazonaws.com"),
            (some("es"), some("us-west-1"))
        );
        // As in the Go extension, `monitoring` needs both keys.
        assert_eq!(
            infer_from_host("monitoring.us-east-1.amazonaws.com"),
            (None, None)
        );
        assert_eq!(infer_from_host("127.0.0.1"), (None, None));
    }

    #[tokio::test]
    async fn a_host_without_a_known_service_needs_the_keys() {
        let config = Sigv4AuthConfig::default();
        let error = config
            .signer("http://127.0.0.1:4318/v1/traces")
            .await
            .err()
            .unwrap();
        assert!(
            error
                .to_string()
                .starts_with("no service to sign requests to http://127.0.0.1:4318/v1/traces"),
            "{error}"
        );
    }
}
