//! The `file_storage` extension: a directory where exporters that name it in
//! `sending_queue.storage` keep their queue, so accepted batches survive a crash or a restart
//! of the container (ECS keeps the task's volume). The queue files themselves are written by
//! `exporters::persistent_queue`.

use crate::config::duration::GoDuration;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};

/// `extensions.file_storage`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileStorageConfig {
    /// Where the queues live; one subdirectory per exporter.
    #[serde(default = "default_directory")]
    pub directory: PathBuf,
    /// Creates `directory` at start when missing (otherwise a missing directory is an error).
    #[serde(default)]
    pub create_directory: bool,
    /// Flushes each batch to the device before the request is answered: survives a power cut,
    /// not only a crash, at the cost of one fsync per batch.
    #[serde(default)]
    pub fsync: bool,
    /// Accepted for compatibility (the collector's lock timeout on its database file).
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
    /// Accepted for compatibility: the collector's database compaction. One file per batch,
    /// deleted once exported, needs none.
    #[serde(default)]
    pub compaction: Option<Value>,
    /// Accepted for compatibility: octal permissions of a created directory.
    #[serde(default)]
    pub directory_permissions: Option<String>,
}

/// The collector's default on Linux.
/// The directory is checked when the extension starts (it may be created then).
impl crate::config::ComponentSection for FileStorageConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<crate::config::InvalidSetting>> {
        if self.directory.as_os_str().is_empty() {
            return Err(vec![crate::config::InvalidSetting::new(
                "directory",
                &self.directory,
                "a directory path",
            )]);
        }
        Ok(self)
    }
}

fn default_directory() -> PathBuf {
    PathBuf::from("/var/lib/otelcol/file_storage")
}

fn default_timeout() -> GoDuration {
    GoDuration::from_secs(1)
}

impl FileStorageConfig {
    /// Makes sure the directory exists (creating it when asked) and is a directory.
    pub fn prepare(&self) -> Result<(), String> {
        let directory: &Path = &self.directory;
        if !directory.exists() && self.create_directory {
            std::fs::create_dir_all(directory)
                .map_err(|e| format!("cannot create directory {}: {e}", directory.display()))?;
        }
        match std::fs::metadata(directory) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!("{} is not a directory", directory.display())),
            Err(e) => Err(format!(
                "directory must exist: {}: {e} (or set create_directory: true)",
                directory.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_collector() {
        let c: FileStorageConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(c.directory, PathBuf::from("/var/lib/otelcol/file_storage"));
        assert!(!c.create_directory && !c.fsync);
        assert_eq!(c.timeout, GoDuration::from_secs(1));
    }

    #[test]
    fn a_missing_directory_is_refused_unless_it_may_be_created() {
        let root = std::env::temp_dir().join(format!("fs-ext-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut c: FileStorageConfig =
            serde_yaml_ng::from_str(&format!("directory: {}", root.display())).unwrap();
        assert!(c.prepare().unwrap_err().contains("directory must exist"));
        c.create_directory = true;
        c.prepare().unwrap();
        assert!(root.is_dir());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
