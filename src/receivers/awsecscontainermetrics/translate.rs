//! Task metadata (`/task`) and docker stats (`/task/stats`) → OTLP metrics, one ResourceMetrics
//! per running container, one per stopped container with a duration, then one for the task.
//! Every metric sits in its own scope with an empty name; all points share the scrape's time.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point::Value as Nv,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value;

const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.40.0";
const MIB: u64 = 1 << 20;
/// CPU units in one vCPU.
const CPU_UNITS_PER_VCPU: f64 = 1024.0;

/// The values of one container, or summed over the task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EcsMetrics {
    pub memory_usage: u64,
    pub memory_max_usage: u64,
    pub memory_limit: u64,
    pub memory_utilized: u64,
    pub memory_reserved: u64,
    pub cpu_total: u64,
    pub cpu_kernel: u64,
    pub cpu_user: u64,
    pub cpu_system: u64,
    pub cpu_cores: u64,
    pub cpu_onlines: u64,
    pub cpu_vcpu: f64,
    pub cpu_utilized: f64,
    pub cpu_reserved: f64,
    pub network_rate_rx: f64,
    pub network_rate_tx: f64,
    pub network: [u64; 8],
    pub storage_read: u64,
    pub storage_write: u64,
    pub ephemeral_utilized: u64,
    pub ephemeral_reserved: u64,
}

/// The names of the eight network counters, in `network` order.
const NETWORK: [(&str, &str, &str); 8] = [
    ("network.io.usage.rx_bytes", "rx_bytes", "Bytes"),
    ("network.io.usage.rx_packets", "rx_packets", "Count"),
    ("network.io.usage.rx_errors", "rx_errors", "Count"),
    ("network.io.usage.rx_dropped", "rx_dropped", "Count"),
    ("network.io.usage.tx_bytes", "tx_bytes", "Bytes"),
    ("network.io.usage.tx_packets", "tx_packets", "Count"),
    ("network.io.usage.tx_errors", "tx_errors", "Count"),
    ("network.io.usage.tx_dropped", "tx_dropped", "Count"),
];

fn u(value: Option<&Value>) -> u64 {
    value.and_then(Value::as_u64).unwrap_or(0)
}

fn f(value: Option<&Value>) -> f64 {
    value.and_then(Value::as_f64).unwrap_or(0.0)
}

fn text<'a>(doc: &'a Value, key: &str) -> &'a str {
    doc.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Nanoseconds since the epoch of an RFC 3339 timestamp (`2020-07-30T22:12:29.837074927Z`).
pub fn rfc3339_nanos(text: &str) -> Option<i128> {
    let (date, rest) = text.split_once('T')?;
    let mut date = date.split('-');
    let (y, m, d): (i64, i64, i64) = (
        date.next()?.parse().ok()?,
        date.next()?.parse().ok()?,
        date.next()?.parse().ok()?,
    );
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.split(':');
    let (hh, mm, ss): (i64, i64, i64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    let nanos: i128 = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().take(9).collect();
        digits.parse::<i128>().ok()? * 10i128.pow(9 - digits.len() as u32)
    };
    // Out-of-range fields are not a timestamp (and would overflow the arithmetic below).
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || !(0..=24).contains(&hh)
        || !(0..=59).contains(&mm)
        || !(0..=60).contains(&ss)
    {
        return None;
    }
    let offset = match zone.chars().next()? {
        'Z' | 'z' => 0,
        sign => {
            let (oh, om) = zone[1..].split_once(':')?;
            let (oh, om) = (oh.parse::<i64>().ok()?, om.parse::<i64>().ok()?);
            if !(0..=24).contains(&oh) || !(0..=59).contains(&om) {
                return None;
            }
            let minutes = oh * 60 + om;
            if sign == '+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hh * 3600 + mm * 60 + ss - offset;
    Some(i128::from(seconds) * 1_000_000_000 + nanos)
}

/// One container's values from its docker stats and its `/task` entry.
pub fn container_metrics(stats: &Value, container: &Value) -> EcsMetrics {
    let memory = stats.get("memory_stats").cloned().unwrap_or(Value::Null);
    let usage = u(memory.get("usage"));
    let cache = u(memory.get("stats").and_then(|s| s.get("cache")));
    let limits = container.get("Limits").cloned().unwrap_or(Value::Null);
    let mut m = EcsMetrics {
        memory_usage: usage,
        memory_max_usage: u(memory.get("max_usage")),
        memory_limit: u(memory.get("limit")),
        // Without `stats` the collector reports 0; a cache larger than usage wraps, as there.
        memory_utilized: if memory.get("stats").is_some() {
            usage.wrapping_sub(cache) / MIB
        } else {
            0
        },
        memory_reserved: u(limits.get("Memory")),
        cpu_reserved: f(limits.get("CPU")),
        ..EcsMetrics::default()
    };
    let cpu = stats.get("cpu_stats").cloned().unwrap_or(Value::Null);
    let precpu = stats.get("precpu_stats").cloned().unwrap_or(Value::Null);
    if let (Some(now), Some(before)) = (cpu.get("cpu_usage"), precpu.get("cpu_usage")) {
        m.cpu_total = u(now.get("total_usage"));
        m.cpu_kernel = u(now.get("usage_in_kernelmode"));
        m.cpu_user = u(now.get("usage_in_usermode"));
        m.cpu_cores = now
            .get("percpu_usage")
            .and_then(Value::as_array)
            .map_or(0, |a| a.len() as u64);
        m.cpu_onlines = u(cpu.get("online_cpus"));
        m.cpu_system = u(cpu.get("system_cpu_usage"));
        let elapsed = match (
            rfc3339_nanos(text(stats, "read")),
            rfc3339_nanos(text(stats, "preread")),
        ) {
            (Some(read), Some(preread)) => read - preread,
            _ => 0,
        };
        if elapsed > 0 {
            let used = m.cpu_total.wrapping_sub(u(before.get("total_usage")));
            m.cpu_vcpu = used as f64 / elapsed as f64;
        }
        m.cpu_utilized = m.cpu_vcpu * 100.0;
        if m.cpu_reserved > 0.0 {
            m.cpu_utilized /= m.cpu_reserved;
        }
    }
    if let Some(networks) = stats.get("networks").and_then(Value::as_object) {
        for interface in networks.values() {
            for (i, (_, field, _)) in NETWORK.iter().enumerate() {
                m.network[i] += u(interface.get(*field));
            }
        }
    }
    let rates = stats.get("network_rate_stats");
    m.network_rate_rx = f(rates.and_then(|r| r.get("rx_bytes_per_sec")));
    m.network_rate_tx = f(rates.and_then(|r| r.get("tx_bytes_per_sec")));
    for entry in stats
        .pointer("/blkio_stats/io_service_bytes_recursive")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match text(entry, "op") {
            "Read" => m.storage_read += u(entry.get("value")),
            "Write" => m.storage_write += u(entry.get("value")),
            _ => {}
        }
    }
    m
}

/// The task's values: sums over its running containers, with the task's own limits.
pub fn task_metrics(task: &Value, containers: &[EcsMetrics]) -> EcsMetrics {
    let mut sum = EcsMetrics::default();
    for c in containers {
        sum.memory_usage += c.memory_usage;
        sum.memory_max_usage += c.memory_max_usage;
        sum.memory_limit += c.memory_limit;
        sum.memory_utilized += c.memory_utilized;
        sum.memory_reserved += c.memory_reserved;
        sum.cpu_total += c.cpu_total;
        sum.cpu_kernel += c.cpu_kernel;
        sum.cpu_user += c.cpu_user;
        sum.cpu_system += c.cpu_system;
        sum.cpu_cores += c.cpu_cores;
        sum.cpu_onlines += c.cpu_onlines;
        sum.cpu_vcpu += c.cpu_vcpu;
        sum.cpu_utilized += c.cpu_utilized;
        sum.cpu_reserved += c.cpu_reserved;
        sum.network_rate_rx += c.network_rate_rx;
        sum.network_rate_tx += c.network_rate_tx;
        for i in 0..8 {
            sum.network[i] += c.network[i];
        }
        sum.storage_read += c.storage_read;
        sum.storage_write += c.storage_write;
    }
    let limits = task.get("Limits");
    if let Some(memory) = limits.and_then(|l| l.get("Memory")).and_then(Value::as_f64) {
        sum.memory_reserved = memory as u64;
    }
    if let Some(cpu) = limits.and_then(|l| l.get("CPU")).and_then(Value::as_f64) {
        sum.cpu_reserved = cpu * CPU_UNITS_PER_VCPU;
    }
    // With a CPU reservation, utilization is CPU units used (Container Insights' CpuUtilized).
    if sum.cpu_reserved > 0.0 {
        sum.cpu_utilized = sum.cpu_vcpu * CPU_UNITS_PER_VCPU;
    }
    let ephemeral = task.get("EphemeralStorageMetrics");
    sum.ephemeral_utilized = u(ephemeral.and_then(|e| e.get("Utilized")));
    sum.ephemeral_reserved = u(ephemeral.and_then(|e| e.get("Reserved")));
    sum
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Av::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The task resource's attributes.
pub fn task_attributes(task: &Value) -> Vec<KeyValue> {
    let arn = text(task, "TaskARN");
    let cluster = text(task, "Cluster");
    let cluster = if cluster.starts_with("arn:aws") {
        cluster.rsplit('/').next().unwrap_or("")
    } else {
        cluster
    };
    // Region, account and task id only from the commercial partition, as in the collector.
    let parts: Vec<&str> = arn.split(':').collect();
    let (region, account, task_id) = if arn.starts_with("arn:aws:ecs") {
        (
            parts.get(3).copied().unwrap_or(""),
            parts.get(4).copied().unwrap_or(""),
            arn.rsplit('/').next().unwrap_or(""),
        )
    } else {
        ("", "", "")
    };
    let launch_type = text(task, "LaunchType");
    let mut out = vec![
        string("aws.ecs.cluster.name", cluster),
        string("aws.ecs.task.arn", arn),
        string("aws.ecs.task.id", task_id),
        string("aws.ecs.task.family", text(task, "Family")),
        string("aws.ecs.task.version", text(task, "Revision")),
        string("aws.ecs.task.revision", text(task, "Revision")),
        string("aws.ecs.service.name", text(task, "ServiceName")),
        string("cloud.availability_zone", text(task, "AvailabilityZone")),
        string("aws.ecs.task.pull_started_at", text(task, "PullStartedAt")),
        string("aws.ecs.task.pull_stopped_at", text(task, "PullStoppedAt")),
        string("aws.ecs.task.known_status", text(task, "KnownStatus")),
        string("aws.ecs.task.launch_type", launch_type),
        string("cloud.region", region),
        string("cloud.account.id", account),
    ];
    let lowered = launch_type.to_ascii_lowercase();
    if matches!(lowered.as_str(), "ec2" | "fargate") {
        out.push(string("aws.ecs.launchtype", &lowered));
    }
    out
}

/// `repository[:tag][@digest]` → (repository, tag); the tag defaults to `latest`.
pub fn image_name_and_tag(image: &str) -> (String, String) {
    let image = image.split('@').next().unwrap_or("");
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (image[..at].to_string(), image[at + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

/// A container resource: the task's attributes and the container's own.
pub fn container_attributes(task: &[KeyValue], container: &Value) -> Vec<KeyValue> {
    let (image, tag) = image_name_and_tag(text(container, "Image"));
    let mut out = task.to_vec();
    out.extend([
        string("container.name", text(container, "Name")),
        string("container.id", text(container, "DockerId")),
        string("aws.ecs.docker.name", text(container, "DockerName")),
        string("container.image.name", &image),
        string("container.image.tag", &tag),
        string("aws.ecs.container.image.id", text(container, "ImageID")),
        string("aws.ecs.container.created_at", text(container, "CreatedAt")),
        string("aws.ecs.container.started_at", text(container, "StartedAt")),
    ]);
    if !text(container, "FinishedAt").is_empty() {
        out.push(string(
            "aws.ecs.container.finished_at",
            text(container, "FinishedAt"),
        ));
    }
    out.push(string(
        "aws.ecs.container.know_status",
        text(container, "KnownStatus"),
    ));
    if let Some(code) = container.get("ExitCode").and_then(Value::as_i64) {
        out.push(KeyValue {
            key: "aws.ecs.container.exit_code".into(),
            value: Some(AnyValue {
                value: Some(Av::IntValue(code)),
            }),
            ..Default::default()
        });
    }
    out
}

fn scope(metric: Metric) -> ScopeMetrics {
    ScopeMetrics {
        metrics: vec![metric],
        ..Default::default()
    }
}

fn gauge(name: String, unit: &str, value: Nv, time: u64) -> ScopeMetrics {
    scope(Metric {
        name,
        unit: unit.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: time,
                value: Some(value),
                ..Default::default()
            }],
        })),
        ..Default::default()
    })
}

/// A cumulative counter. Marked monotonic (these counters only grow), so CloudWatch gets the
/// per-interval deltas the collector publishes for them.
fn counter(name: String, unit: &str, value: u64, time: u64) -> ScopeMetrics {
    scope(Metric {
        name,
        unit: unit.into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                time_unix_nano: time,
                value: Some(Nv::AsInt(value as i64)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    })
}

/// The metrics of one container (prefix `container.`) or of the task (`ecs.task.`).
pub fn scopes(prefix: &str, m: &EcsMetrics, task: bool, time: u64) -> Vec<ScopeMetrics> {
    let name = |suffix: &str| format!("{prefix}{suffix}");
    let int = |v: u64| Nv::AsInt(v as i64);
    let mut out = vec![
        gauge(name("memory.usage"), "Bytes", int(m.memory_usage), time),
        gauge(
            name("memory.usage.max"),
            "Bytes",
            int(m.memory_max_usage),
            time,
        ),
        gauge(
            name("memory.usage.limit"),
            "Bytes",
            int(m.memory_limit),
            time,
        ),
        gauge(name("memory.utilized"), "MiB", int(m.memory_utilized), time),
        gauge(name("memory.reserved"), "MiB", int(m.memory_reserved), time),
        counter(name("cpu.usage.total"), "Nanoseconds", m.cpu_total, time),
        counter(
            name("cpu.usage.kernelmode"),
            "Nanoseconds",
            m.cpu_kernel,
            time,
        ),
        counter(name("cpu.usage.usermode"), "Nanoseconds", m.cpu_user, time),
        gauge(name("cpu.cores"), "Count", int(m.cpu_cores), time),
        gauge(name("cpu.onlines"), "Count", int(m.cpu_onlines), time),
        counter(name("cpu.usage.system"), "Nanoseconds", m.cpu_system, time),
        gauge(
            name("cpu.utilized"),
            "None",
            Nv::AsDouble(m.cpu_utilized),
            time,
        ),
        gauge(
            name("cpu.reserved"),
            "None",
            Nv::AsDouble(m.cpu_reserved),
            time,
        ),
        gauge(
            name("cpu.usage.vcpu"),
            "vCPU",
            Nv::AsDouble(m.cpu_vcpu),
            time,
        ),
        gauge(
            name("network.rate.rx"),
            "Bytes/Second",
            Nv::AsDouble(m.network_rate_rx),
            time,
        ),
        gauge(
            name("network.rate.tx"),
            "Bytes/Second",
            Nv::AsDouble(m.network_rate_tx),
            time,
        ),
    ];
    for (i, (suffix, _, unit)) in NETWORK.iter().enumerate() {
        out.push(counter(name(suffix), unit, m.network[i], time));
    }
    out.push(counter(
        name("storage.read_bytes"),
        "Bytes",
        m.storage_read,
        time,
    ));
    out.push(counter(
        name("storage.write_bytes"),
        "Bytes",
        m.storage_write,
        time,
    ));
    if task {
        out.push(gauge(
            name("ephemeral_storage.utilized"),
            "MiB",
            int(m.ephemeral_utilized),
            time,
        ));
        out.push(gauge(
            name("ephemeral_storage.reserved"),
            "MiB",
            int(m.ephemeral_reserved),
            time,
        ));
    }
    out
}

fn resource_metrics(
    attributes: Vec<KeyValue>,
    scopes: Vec<ScopeMetrics>,
    schema: bool,
) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_metrics: scopes,
        schema_url: if schema {
            SCHEMA_URL.into()
        } else {
            String::new()
        },
    }
}

/// One scrape's ResourceMetrics, in the order the collector emits them.
pub fn translate(task: &Value, stats: &Value, now: u64) -> Vec<ResourceMetrics> {
    let task_resource = task_attributes(task);
    let mut out = Vec::new();
    let mut running = Vec::new();
    for container in task
        .get("Containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let attributes = container_attributes(&task_resource, container);
        let stat = stats
            .get(text(container, "DockerId"))
            .filter(|s| s.is_object() && !text(s, "id").is_empty());
        match stat {
            Some(stat) => {
                let m = container_metrics(stat, container);
                out.push(resource_metrics(
                    attributes,
                    scopes("container.", &m, false, now),
                    true,
                ));
                running.push(m);
            }
            None => {
                let (started, finished) =
                    (text(container, "StartedAt"), text(container, "FinishedAt"));
                if started.is_empty() || finished.is_empty() {
                    continue;
                }
                let duration = match (rfc3339_nanos(started), rfc3339_nanos(finished)) {
                    (Some(s), Some(f)) => (f - s) as f64 / 1e9,
                    _ => {
                        tracing::warn!(
                            container = text(container, "Name"),
                            "unparseable container start or finish time"
                        );
                        0.0
                    }
                };
                let metric = gauge(
                    "container.duration".into(),
                    "Seconds",
                    Nv::AsDouble(duration),
                    now,
                );
                out.push(resource_metrics(attributes, vec![metric], false));
            }
        }
    }
    let sum = task_metrics(task, &running);
    out.push(resource_metrics(
        task_resource,
        scopes("ecs.task.", &sum, true, now),
        true,
    ));
    out
}

#[cfg(test)]
mod tests;
