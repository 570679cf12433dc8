//! Extension types: decoding their sections and starting them.

use crate::config::{ComponentId, DecodeError, decode_settings};
use crate::extensions::{self, HealthState};
use crate::pipeline::Shutdown;
use serde_yaml_ng::Value;
use tokio::task::JoinHandle;

/// Extension types otel-sidecar runs.
pub const EXTENSION_TYPES: &[&str] = &["file_storage", "health_check", "sigv4auth"];

/// Collector extension types outside otel-sidecar's scope, refused with a message saying so.
const OUT_OF_SCOPE_EXTENSION_TYPES: &[&str] = &["pprof", "zpages", "ecs_observer"];

/// A validated extension config.
#[derive(Debug, Clone)]
pub enum ExtensionConfig {
    FileStorage(extensions::file_storage::FileStorageConfig),
    HealthCheck(extensions::health_check::HealthCheckConfig),
    Sigv4Auth(extensions::sigv4auth::Sigv4AuthConfig),
}

/// Decodes the body of an `extensions.<id>` entry of type `kind`.
pub fn decode(kind: &str, body: &Value) -> Result<ExtensionConfig, DecodeError> {
    match kind {
        "file_storage" => Ok(ExtensionConfig::FileStorage(decode_settings::<
            extensions::file_storage::FileStorageConfig,
        >(body)?)),
        "health_check" => Ok(ExtensionConfig::HealthCheck(decode_settings::<
            extensions::health_check::HealthCheckConfig,
        >(body)?)),
        "sigv4auth" => Ok(ExtensionConfig::Sigv4Auth(decode_settings::<
            extensions::sigv4auth::Sigv4AuthConfig,
        >(body)?)),
        _ if OUT_OF_SCOPE_EXTENSION_TYPES.contains(&kind) => Err(DecodeError::OutOfScope),
        _ => Err(DecodeError::UnknownType(EXTENSION_TYPES)),
    }
}

/// Starts an extension listed in `service.extensions`; the task it runs, if any.
pub async fn start_extension(
    id: &ComponentId,
    config: &ExtensionConfig,
    health: HealthState,
    shutdown: Shutdown,
) -> std::io::Result<Option<JoinHandle<()>>> {
    match config {
        ExtensionConfig::FileStorage(c) => {
            c.prepare().map_err(std::io::Error::other)?;
            Ok(None)
        }
        ExtensionConfig::HealthCheck(c) => {
            let (task, _) =
                extensions::health_check::start(&id.to_string(), c, health, shutdown).await?;
            Ok(Some(task))
        }
        // Used by the exporters that name it; nothing runs on its own.
        ExtensionConfig::Sigv4Auth(_) => Ok(None),
    }
}
