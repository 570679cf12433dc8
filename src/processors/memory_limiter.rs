//! The `memory_limiter` processor: while the sidecar's memory is over the soft limit (the hard
//! limit less the spike allowance), receivers refuse new data with the same retryable answers as
//! a full queue (HTTP 503, gRPC UNAVAILABLE) instead of taking it in.
//!
//! The measure is the process's resident set size (`VmRSS` in `/proc/self/status`), checked
//! every `check_interval`: it is what the container's memory limit counts. It reads higher
//! than the Go collector's measure (its live heap) for the same data, so a limit carried over
//! from a Go config is a little stricter here. There is no garbage collector to force: the
//! `*_gc_interval_*` keys are accepted and have no effect.

use crate::config::duration::GoDuration;
use crate::config::{ComponentSection, InvalidSetting};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `processors.memory_limiter` as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryLimiterSection {
    #[serde(default)]
    check_interval: GoDuration,
    #[serde(default)]
    limit_mib: u32,
    #[serde(default)]
    spike_limit_mib: u32,
    #[serde(default)]
    limit_percentage: u32,
    #[serde(default)]
    spike_limit_percentage: u32,
    #[serde(default)]
    min_gc_interval_when_soft_limited: Option<GoDuration>,
    #[serde(default)]
    min_gc_interval_when_hard_limited: Option<GoDuration>,
    /// Accepted with no effect: there is no garbage collector to pace.
    #[serde(default, rename = "max_gc_interval_when_soft_limited")]
    _max_gc_interval_when_soft_limited: Option<GoDuration>,
    #[serde(default, rename = "max_gc_interval_when_hard_limited")]
    _max_gc_interval_when_hard_limited: Option<GoDuration>,
}

/// The limit as configured: fixed, or a share of the memory the container may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Mib { limit: u64, spike: u64 },
    Percentage { limit: u64, spike: u64 },
}

/// A validated `memory_limiter`.
#[derive(Debug, Clone)]
pub struct MemoryLimiterConfig {
    pub check_interval: Duration,
    pub limit: Limit,
}

const MIB: u64 = 1 << 20;

impl ComponentSection for MemoryLimiterSection {
    type Settings = MemoryLimiterConfig;

    fn validate(self) -> Result<MemoryLimiterConfig, Vec<InvalidSetting>> {
        self.settings().map_err(|problem| vec![problem])
    }
}

impl MemoryLimiterSection {
    fn settings(&self) -> Result<MemoryLimiterConfig, InvalidSetting> {
        let err = |key: &str, value: String, message: &str| {
            Err(InvalidSetting::collector(key, value, message))
        };
        if self.check_interval.is_zero() {
            return err(
                "check_interval",
                self.check_interval.to_string(),
                "'check_interval' must be greater than zero",
            );
        }
        if let (Some(soft), Some(hard)) = (
            self.min_gc_interval_when_soft_limited,
            self.min_gc_interval_when_hard_limited,
        ) && soft < hard
        {
            return err(
                "min_gc_interval_when_soft_limited",
                soft.to_string(),
                &format!(
                    "'min_gc_interval_when_soft_limited' should be larger than 'min_gc_interval_when_hard_limited' ({})",
                    hard
                ),
            );
        }
        if self.limit_mib == 0 && self.limit_percentage == 0 {
            return err(
                "limit_mib",
                "0".into(),
                "'limit_mib' or 'limit_percentage' must be greater than zero",
            );
        }
        if self.limit_percentage > 100 || self.spike_limit_percentage > 100 {
            let (key, value) = if self.limit_percentage > 100 {
                ("limit_percentage", self.limit_percentage)
            } else {
                ("spike_limit_percentage", self.spike_limit_percentage)
            };
            return err(
                key,
                value.to_string(),
                "'limit_percentage' and 'spike_limit_percentage' must be greater than zero and less than or equal to hundred",
            );
        }
        if self.limit_mib > 0 && self.spike_limit_mib >= self.limit_mib {
            return err(
                "spike_limit_mib",
                self.spike_limit_mib.to_string(),
                &format!(
                    "'spike_limit_mib' must be smaller than 'limit_mib' ({})",
                    self.limit_mib
                ),
            );
        }
        if self.limit_mib == 0 && self.spike_limit_percentage >= self.limit_percentage {
            return err(
                "spike_limit_percentage",
                self.spike_limit_percentage.to_string(),
                &format!(
                    "'spike_limit_percentage' must be smaller than 'limit_percentage' ({})",
                    self.limit_percentage
                ),
            );
        }
        let limit = if self.limit_mib > 0 {
            Limit::Mib {
                limit: u64::from(self.limit_mib),
                spike: u64::from(self.spike_limit_mib),
            }
        } else {
            Limit::Percentage {
                limit: u64::from(self.limit_percentage),
                spike: u64::from(self.spike_limit_percentage),
            }
        };
        Ok(MemoryLimiterConfig {
            check_interval: *self.check_interval,
            limit,
        })
    }
}

/// cgroup v1's "no limit" value.
const CGROUP_V1_UNLIMITED: u64 = 9_223_372_036_854_771_712;

/// The memory the process may use: the cgroup v2 or v1 limit, else the machine's MemTotal.
/// `read` reads a file (a parameter so tests can give fixtures).
pub fn total_memory(read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let v2 = read("/proc/self/mountinfo").is_some_and(|m| {
        m.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dash = fields.iter().position(|f| *f == "-");
            fields.get(4) == Some(&"/sys/fs/cgroup")
                && dash.and_then(|d| fields.get(d + 1)) == Some(&"cgroup2")
        })
    });
    let limit = if v2 {
        read("/sys/fs/cgroup/memory.max").and_then(|t| t.trim().parse::<u64>().ok())
    } else {
        read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
            .and_then(|t| t.trim().parse::<u64>().ok())
            .filter(|l| *l > 0 && *l < CGROUP_V1_UNLIMITED)
    };
    limit.or_else(|| {
        let meminfo = read("/proc/meminfo")?;
        let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    })
}

/// Hard and soft limits in bytes; the spike defaults to a fifth of the limit.
pub fn thresholds(limit: Limit, total: Option<u64>) -> Result<(u64, u64), String> {
    let (hard, spike) = match limit {
        Limit::Mib { limit, spike } => (limit * MIB, spike * MIB),
        Limit::Percentage { limit, spike } => {
            let total =
                total.ok_or("failed to get total memory, use fixed memory settings (limit_mib)")?;
            (total * limit / 100, total * spike / 100)
        }
    };
    let spike = if spike == 0 { hard / 5 } else { spike };
    Ok((hard, hard - spike))
}

/// The process's resident set size in bytes.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether a limiter is refusing data; receivers look at it before admitting a request.
#[derive(Debug, Clone, Default)]
pub struct MemoryGate {
    refusing: Arc<AtomicBool>,
}

impl MemoryGate {
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    /// Records one measurement against the soft limit; logs the transitions.
    pub fn observe(&self, used: u64, soft: u64, limiter: &str) {
        let over = used >= soft;
        let was = self.refusing.swap(over, Ordering::Relaxed);
        metrics::gauge!("otelsidecar_memory_limiter_used_bytes", "processor" => limiter.to_string())
            .set(used as f64);
        if over && !was {
            tracing::warn!(processor = %limiter, used_mib = used / MIB, soft_limit_mib = soft / MIB, "Memory usage is above soft limit. Refusing data.");
        } else if !over && was {
            tracing::info!(processor = %limiter, used_mib = used / MIB, "Memory usage back within limits. Resuming normal operation.");
        }
    }
}

/// Starts a limiter: measures every `check_interval` (the first after one interval, as in the
/// collector) and sets the gate. The task runs until aborted.
pub fn start(
    id: &str,
    config: &MemoryLimiterConfig,
) -> Result<(MemoryGate, tokio::task::JoinHandle<()>), String> {
    let total = total_memory(|path| std::fs::read_to_string(path).ok());
    let (hard, soft) = thresholds(config.limit, total)?;
    if matches!(config.limit, Limit::Percentage { .. }) {
        tracing::info!(processor = %id, total_memory_mib = total.unwrap_or(0) / MIB, "Using percentage memory limiter");
    }
    tracing::info!(processor = %id, limit_mib = hard / MIB, spike_limit_mib = (hard - soft) / MIB, check_interval = ?config.check_interval, "Memory limiter configured");
    let gate = MemoryGate::default();
    let task = {
        let gate = gate.clone();
        let id = id.to_string();
        let interval = config.check_interval;
        tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            loop {
                ticker.tick().await;
                if let Some(used) = resident_bytes() {
                    gate.observe(used, soft, &id);
                }
            }
        })
    };
    Ok((gate, task))
}

/// The limit the processor keeps, in the keys that set it (the `*_gc_interval_*` keys have no
/// effect and are left out).
impl serde::Serialize for MemoryLimiterConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("check_interval", &GoDuration(self.check_interval))?;
        match self.limit {
            Limit::Mib { limit, spike } => {
                map.serialize_entry("limit_mib", &limit)?;
                map.serialize_entry("spike_limit_mib", &spike)?;
            }
            Limit::Percentage { limit, spike } => {
                map.serialize_entry("limit_percentage", &limit)?;
                map.serialize_entry("spike_limit_percentage", &spike)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(yaml: &str) -> Result<MemoryLimiterConfig, InvalidSetting> {
        serde_yaml_ng::from_str::<MemoryLimiterSection>(yaml)
            .unwrap()
            .settings()
    }

    #[test]
    fn validation_in_the_collectors_order_and_words() {
        let cases = [
            (
                "limit_mib: 100",
                "'check_interval' must be greater than zero",
            ),
            (
                "check_interval: 1s\nmin_gc_interval_when_soft_limited: 1s\nmin_gc_interval_when_hard_limited: 2s\nlimit_mib: 10",
                "should be larger than",
            ),
            (
                "check_interval: 1s",
                "'limit_mib' or 'limit_percentage' must be greater than zero",
            ),
            (
                "check_interval: 1s\nlimit_percentage: 120",
                "less than or equal to hundred",
            ),
            (
                "check_interval: 1s\nlimit_mib: 100\nspike_limit_mib: 100",
                "'spike_limit_mib' must be smaller than 'limit_mib'",
            ),
            (
                "check_interval: 1s\nlimit_percentage: 40\nspike_limit_percentage: 40",
                "'spike_limit_percentage' must be smaller than 'limit_percentage'",
            ),
        ];
        for (yaml, want) in cases {
            let message = validate(yaml).unwrap_err().expected;
            assert!(message.contains(want), "{yaml}: {message}");
        }
    }

    #[test]
    fn limits_and_the_default_spike() {
        let config = validate("check_interval: 1s\nlimit_mib: 1000").unwrap();
        assert_eq!(
            thresholds(config.limit, None).unwrap(),
            (1000 * MIB, 800 * MIB)
        );
        let config =
            validate("check_interval: 5s\nlimit_percentage: 40\nspike_limit_percentage: 8")
                .unwrap();
        let total = 4096 * MIB;
        assert_eq!(
            thresholds(config.limit, Some(total)).unwrap(),
            (total * 40 / 100, total * 40 / 100 - total * 8 / 100)
        );
        assert!(thresholds(config.limit, None).is_err());
    }

    #[test]
    fn total_memory_from_cgroups_or_meminfo() {
        let v2_mount = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        let meminfo = "MemTotal:       16384 kB\nMemFree: 1 kB\n";
        let files = |entries: Vec<(&'static str, &'static str)>| {
            move |path: &str| {
                entries
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, t)| t.to_string())
            }
        };
        assert_eq!(
            total_memory(files(vec![
                ("/proc/self/mountinfo", v2_mount),
                ("/sys/fs/cgroup/memory.max", "536870912\n"),
                ("/proc/meminfo", meminfo)
            ])),
            Some(512 * MIB)
        );
        assert_eq!(
            total_memory(files(vec![
                ("/proc/self/mountinfo", v2_mount),
                ("/sys/fs/cgroup/memory.max", "max\n"),
                ("/proc/meminfo", meminfo)
            ])),
            Some(16384 * 1024),
            "no cgroup limit: the machine's memory"
        );
        assert_eq!(
            total_memory(files(vec![
                ("/proc/self/mountinfo", ""),
                (
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    "9223372036854771712"
                ),
                ("/proc/meminfo", meminfo)
            ])),
            Some(16384 * 1024),
            "cgroup v1's unlimited sentinel"
        );
        assert_eq!(
            total_memory(files(vec![
                ("/proc/self/mountinfo", ""),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "268435456")
            ])),
            Some(256 * MIB)
        );
    }

    #[test]
    fn the_gate_refuses_over_the_soft_limit_and_resumes_under_it() {
        let gate = MemoryGate::default();
        gate.observe(799, 800, "memory_limiter");
        assert!(!gate.refusing());
        gate.observe(800, 800, "memory_limiter");
        assert!(gate.refusing());
        gate.observe(100, 800, "memory_limiter");
        assert!(!gate.refusing());
    }

    /// The first check comes one interval after start, as in the collector.
    #[tokio::test(start_paused = true)]
    async fn the_first_check_is_after_one_interval() {
        let config = validate("check_interval: 10s\nlimit_mib: 1").unwrap();
        let (gate, task) = start("memory_limiter", &config).unwrap();
        tokio::task::yield_now().await;
        assert!(!gate.refusing(), "nothing measured yet");
        tokio::time::advance(Duration::from_secs(10)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            gate.refusing(),
            "this process uses more than the 0.8 MiB soft limit"
        );
        task.abort();
    }
}
