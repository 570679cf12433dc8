//! The `system` detector: `host.name` from the configured hostname sources and `os.type`, plus
//! `host.id` and `host.arch` when enabled.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `resource_attributes.<name>.enabled`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    pub enabled: bool,
}

/// `processors.resourcedetection.system`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    #[serde(default)]
    pub hostname_sources: Vec<String>,
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, Toggle>,
}

/// Attributes this detector can produce, and whether each is on by default.
const ATTRIBUTES: &[(&str, bool)] = &[
    ("host.name", true),
    ("os.type", true),
    ("host.id", false),
    ("host.arch", false),
];

impl SystemConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (i, source) in self.hostname_sources.iter().enumerate() {
            if !matches!(source.as_str(), "dns" | "os" | "cname" | "lookup") {
                return Err((
                    format!("hostname_sources[{i}]"),
                    format!("hostname_sources contains invalid value: {source:?}"),
                ));
            }
        }
        for (name, toggle) in &self.resource_attributes {
            if toggle.enabled && !ATTRIBUTES.iter().any(|(a, _)| a == name) {
                return Err((
                    format!("resource_attributes.{name}"),
                    format!(
                        "otel-sidecar's system detector produces {}",
                        ATTRIBUTES
                            .iter()
                            .map(|(a, _)| *a)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn enabled(&self, name: &str) -> bool {
        self.resource_attributes
            .get(name)
            .map(|t| t.enabled)
            .unwrap_or_else(|| ATTRIBUTES.iter().any(|(a, on)| *a == name && *on))
    }
}

/// The canonical name `/etc/hosts` gives `hostname` (the first name on its line).
pub fn hosts_file_name(hosts: &str, hostname: &str) -> Option<String> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut names = line.split_whitespace().skip(1);
        let canonical = names.next()?;
        (canonical == hostname || names.any(|n| n == hostname))
            .then(|| canonical.trim_end_matches('.').to_string())
    })
}

/// Go's name for an architecture (`GOARCH`, with the collector's mapping).
pub fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        other => other,
    }
}

fn os_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Runs the detector; an error when no hostname source works (as in the collector).
pub fn detect(config: &SystemConfig) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    if config.enabled("host.name") {
        let sources: Vec<&str> = if config.hostname_sources.is_empty() {
            vec!["dns", "os"]
        } else {
            config.hostname_sources.iter().map(String::as_str).collect()
        };
        let name = sources.iter().find_map(|source| {
            let hostname = os_hostname()?;
            match *source {
                "os" => Some(hostname),
                // The fully qualified name the host's resolver files give, when they give one.
                _ => std::fs::read_to_string("/etc/hosts")
                    .ok()
                    .and_then(|hosts| hosts_file_name(&hosts, &hostname)),
            }
        });
        let name = name.ok_or("all hostname sources failed to get hostname")?;
        out.push(("host.name".into(), name));
    }
    if config.enabled("os.type") {
        out.push(("os.type".into(), std::env::consts::OS.to_string()));
    }
    if config.enabled("host.id")
        && let Ok(id) = std::fs::read_to_string("/etc/machine-id")
    {
        out.push(("host.id".into(), id.trim().to_string()));
    }
    if config.enabled("host.arch") {
        out.push((
            "host.arch".into(),
            go_arch(std::env::consts::ARCH).to_string(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_hosts_files_and_architectures() {
        let hosts = "127.0.0.1 localhost\n10.0.0.5 ip-10-0-0-5.ec2.internal. ip-10-0-0-5 # task\n";
        assert_eq!(
            hosts_file_name(hosts, "ip-10-0-0-5").as_deref(),
            Some("ip-10-0-0-5.ec2.internal")
        );
        assert_eq!(hosts_file_name(hosts, "other"), None);
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }

    #[test]
    fn detects_host_name_and_os_type_by_default() {
        let detected = detect(&SystemConfig::default()).unwrap();
        let keys: Vec<&str> = detected.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["host.name", "os.type"]);
        assert_eq!(detected[1].1, "linux");
        let config: SystemConfig = serde_yaml_ng::from_str("hostname_sources: [ftp]").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .1
                .contains("invalid value: \"ftp\"")
        );
    }
}
