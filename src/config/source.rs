//! Where the config text comes from, in ADOT's order: `AOT_CONFIG_CONTENT` (how ECS injects an
//! SSM parameter) wins over everything; then `--config PATH|file:PATH|ssm:NAME|ssm:ARN`; with
//! nothing at all, the embedded ECS default config.

use std::path::PathBuf;

/// The environment variable ADOT reads its whole config from when it exists.
pub const AOT_CONFIG_CONTENT: &str = "AOT_CONFIG_CONTENT";

/// The ECS sidecar config shipped in the binary (`config/ecs-default.yaml`).
pub const EMBEDDED_ECS_CONFIG: &str = include_str!("../../config/ecs-default.yaml");

/// The configs the ADOT image holds under `/etc/ecs/`, as otel-sidecar runs them (`config/ecs/`).
/// A task definition's `--config=/etc/ecs/<name>` reads the file when the image has it and this
/// copy otherwise, so the command works unchanged.
pub const ECS_CONFIGS: &[(&str, &str)] = &[
    (
        "/etc/ecs/ecs-default-config.yaml",
        include_str!("../../config/ecs/ecs-default-config.yaml"),
    ),
    (
        "/etc/ecs/ecs-xray.yaml",
        include_str!("../../config/ecs/ecs-xray.yaml"),
    ),
    (
        "/etc/ecs/ecs-cloudwatch.yaml",
        include_str!("../../config/ecs/ecs-cloudwatch.yaml"),
    ),
    (
        "/etc/ecs/ecs-cloudwatch-xray.yaml",
        include_str!("../../config/ecs/ecs-cloudwatch-xray.yaml"),
    ),
    (
        "/etc/ecs/container-insights/otel-task-metrics-config.yaml",
        include_str!("../../config/ecs/container-insights/otel-task-metrics-config.yaml"),
    ),
];

/// The embedded copy of an `/etc/ecs/` config.
pub fn embedded_ecs_config(path: &std::path::Path) -> Option<&'static str> {
    ECS_CONFIGS
        .iter()
        .find(|(name, _)| std::path::Path::new(name) == path)
        .map(|(_, text)| *text)
}

/// One place a config can be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The value of `AOT_CONFIG_CONTENT`.
    Environment(String),
    File(PathBuf),
    /// An SSM Parameter Store parameter name or ARN, read with decryption.
    Ssm(String),
    Embedded,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::Environment(_) => write!(f, "env:{AOT_CONFIG_CONTENT}"),
            ConfigSource::File(path) => write!(f, "file:{}", path.display()),
            ConfigSource::Ssm(name) => write!(f, "ssm:{name}"),
            ConfigSource::Embedded => f.write_str("embedded ECS default config"),
        }
    }
}

/// Why a config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read config file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read SSM parameter {name:?}: {message}")]
    Ssm { name: String, message: String },
}

/// Picks the source. `aot_config_content` is the variable's value when it *exists* (even empty,
/// as ADOT uses `os.LookupEnv`). Returns the source and whether `--config` was ignored.
pub fn choose(aot_config_content: Option<String>, flag: Option<&str>) -> (ConfigSource, bool) {
    if let Some(content) = aot_config_content {
        return (ConfigSource::Environment(content), flag.is_some());
    }
    let source = match flag {
        None => ConfigSource::Embedded,
        Some(flag) => {
            if let Some(name) = flag.strip_prefix("ssm:") {
                ConfigSource::Ssm(name.to_string())
            } else {
                ConfigSource::File(PathBuf::from(flag.strip_prefix("file:").unwrap_or(flag)))
            }
        }
    };
    (source, false)
}

impl ConfigSource {
    /// Reads the config text.
    pub async fn read(&self) -> Result<String, SourceError> {
        match self {
            ConfigSource::Environment(content) => Ok(content.clone()),
            ConfigSource::Embedded => Ok(EMBEDDED_ECS_CONFIG.to_string()),
            ConfigSource::File(path) => match tokio::fs::read_to_string(path).await {
                Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
                    embedded_ecs_config(path)
                        .map(str::to_string)
                        .ok_or_else(|| SourceError::File {
                            path: path.clone(),
                            source,
                        })
                }
                result => result.map_err(|source| SourceError::File {
                    path: path.clone(),
                    source,
                }),
            },
            ConfigSource::Ssm(name) => read_ssm_parameter(name).await,
        }
    }
}

/// Region of an SSM parameter ARN (`arn:aws:ssm:REGION:ACCOUNT:parameter/NAME`), so that an ARN
/// works without a region in the environment.
fn region_of_arn(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.splitn(6, ':').collect();
    (parts.len() == 6 && parts[0] == "arn" && parts[2] == "ssm" && !parts[3].is_empty())
        .then(|| parts[3].to_string())
}

async fn read_ssm_parameter(name: &str) -> Result<String, SourceError> {
    use aws_credential_types::provider::ProvideCredentials;
    use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
    let mut loader = crate::aws::sdk_loader();
    if let Some(region) = region_of_arn(name) {
        loader = loader.region(aws_config::Region::new(region));
    }
    let shared = loader.load().await;
    let fail = |message: String| SourceError::Ssm {
        name: name.to_string(),
        message,
    };
    // The common mistakes, each said in one line with what to check.
    let Some(region) = shared.region().map(|r| r.to_string()) else {
        return Err(fail(
            "no AWS region: set AWS_REGION, or give the parameter's ARN".into(),
        ));
    };
    if let Some(credentials) = shared.credentials_provider()
        && credentials.provide_credentials().await.is_err()
    {
        return Err(fail(
            "no AWS credentials: give the task a role (taskRoleArn), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        ));
    }
    let endpoint = shared
        .endpoint_url()
        .map(str::to_string)
        .unwrap_or_else(|| format!("https://ssm.{region}.amazonaws.com"));
    let client = aws_sdk_ssm::Client::new(&shared);
    let output = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|error| {
            fail(match &error {
                SdkError::ServiceError(service) => {
                    let code = service.err().code().unwrap_or("error");
                    let message = service.err().message().unwrap_or("").trim_end_matches('.');
                    let check = match code {
                        "ParameterNotFound" => format!("check the name and that it exists in {region}"),
                        "AccessDeniedException" => "the task role needs ssm:GetParameter on it (and kms:Decrypt for a SecureString)".into(),
                        "ParameterVersionNotFound" => "check the version after the colon".into(),
                        _ => format!("SSM in {region} refused the call"),
                    };
                    format!("{code}: {message}; {check}")
                }
                SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => format!(
                    "cannot reach {endpoint}: check the task's network path to SSM (NAT or a VPC endpoint) and AWS_ENDPOINT_URL"
                ),
                other => format!("{other}"),
            })
        })?;
    output
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| fail("the parameter has no value".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_like_adot() {
        let cases = [
            (
                Some("x: 1"),
                Some("a.yaml"),
                ConfigSource::Environment("x: 1".into()),
                true,
            ),
            (
                Some(""),
                None,
                ConfigSource::Environment(String::new()),
                false,
            ),
            (None, None, ConfigSource::Embedded, false),
            (
                None,
                Some("a.yaml"),
                ConfigSource::File("a.yaml".into()),
                false,
            ),
            (
                None,
                Some("file:/etc/a.yaml"),
                ConfigSource::File("/etc/a.yaml".into()),
                false,
            ),
            (
                None,
                Some("ssm:/otel/cfg"),
                ConfigSource::Ssm("/otel/cfg".into()),
                false,
            ),
        ];
        for (env, flag, want, ignored) in cases {
            assert_eq!(choose(env.map(str::to_string), flag), (want, ignored));
        }
    }

    #[tokio::test]
    async fn etc_ecs_paths_fall_back_to_the_embedded_configs() {
        for (path, text) in ECS_CONFIGS {
            let read = ConfigSource::File(path.into()).read().await.unwrap();
            if !std::path::Path::new(path).exists() {
                assert_eq!(read, *text);
            }
            crate::components::parse_config(text, &|_| None)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        assert!(
            ConfigSource::File("/etc/ecs/no-such.yaml".into())
                .read()
                .await
                .is_err()
        );
    }

    #[test]
    fn region_comes_from_an_arn() {
        assert_eq!(
            region_of_arn("arn:aws:ssm:eu-west-1:123456789012:parameter/otel/cfg").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of_arn("/otel/cfg"), None);
    }
}
