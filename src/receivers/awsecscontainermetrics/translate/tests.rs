//! Recorded-shape task metadata in, metrics out (fixtures in `tests/fixtures/ecs`).

use super::*;
use std::collections::BTreeMap;

const EC2_TASK: &str = include_str!("../../../../tests/fixtures/ecs/ec2_task.json");
const EC2_STATS: &str = include_str!("../../../../tests/fixtures/ecs/ec2_stats.json");
const FARGATE_TASK: &str = include_str!("../../../../tests/fixtures/ecs/fargate_task.json");
const FARGATE_STATS: &str = include_str!("../../../../tests/fixtures/ecs/fargate_stats.json");
const NOW: u64 = 1_700_000_000_000_000_000;

fn run(task: &str, stats: &str) -> Vec<ResourceMetrics> {
    translate(
        &serde_json::from_str(task).unwrap(),
        &serde_json::from_str(stats).unwrap(),
        NOW,
    )
}

/// Metric name → value (ints as f64) of one ResourceMetrics.
fn values(rm: &ResourceMetrics) -> BTreeMap<String, f64> {
    rm.scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .map(|m| {
            let point = match &m.data {
                Some(Data::Gauge(g)) => &g.data_points[0],
                Some(Data::Sum(s)) => &s.data_points[0],
                _ => panic!("gauges and sums only"),
            };
            let value = match point.value {
                Some(Nv::AsInt(i)) => i as f64,
                Some(Nv::AsDouble(d)) => d,
                None => f64::NAN,
            };
            (m.name.clone(), value)
        })
        .collect()
}

fn attribute(rm: &ResourceMetrics, key: &str) -> Option<Av> {
    rm.resource
        .as_ref()?
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn s(text: &str) -> Option<Av> {
    Some(Av::StringValue(text.into()))
}

#[test]
fn ec2_task_and_containers() {
    let out = run(EC2_TASK, EC2_STATS);
    assert_eq!(
        out.len(),
        4,
        "two running containers, one stopped, the task"
    );
    let nginx = values(&out[0]);
    assert_eq!(
        nginx["container.memory.utilized"], 2.0,
        "(2658304 - 65536) / 2^20"
    );
    assert_eq!(
        nginx["container.network.io.usage.rx_bytes"], 2256.0,
        "eth0 + eth1"
    );
    assert_eq!(
        nginx["container.storage.read_bytes"], 3452928.0,
        "Sync and Total ignored"
    );
    assert_eq!(nginx["container.cpu.usage.vcpu"], 0.5, "5e8 ns over 1e9 ns");
    assert_eq!(
        nginx["container.cpu.utilized"], 50.0,
        "no container CPU limit: percent of a vCPU"
    );
    assert_eq!(nginx["container.memory.reserved"], 128.0);
    assert_eq!(nginx.len(), 26);
    assert!(
        out[0]
            .scope_metrics
            .iter()
            .all(|s| s.metrics.len() == 1 && s.scope.is_none())
    );
    let stopped = values(&out[2]);
    assert_eq!(
        stopped,
        [("container.duration".to_string(), 2.25)]
            .into_iter()
            .collect()
    );
    let task = values(&out[3]);
    assert_eq!(task.len(), 28);
    assert_eq!(task["ecs.task.memory.reserved"], 512.0);
    assert_eq!(
        task["ecs.task.cpu.reserved"], 512.0,
        "0.5 vCPU in CPU units"
    );
    assert!(
        (task["ecs.task.cpu.utilized"] - 0.7 * 1024.0).abs() < 1e-9,
        "CPU units used"
    );
    assert_eq!(
        task["ecs.task.memory.usage"],
        (2658304 + 10485760) as f64,
        "summed over running containers"
    );
    assert_eq!(attribute(&out[3], "aws.ecs.cluster.name"), s("default"));
    assert_eq!(attribute(&out[3], "aws.ecs.launchtype"), s("ec2"));
    assert_eq!(attribute(&out[3], "aws.ecs.task.launch_type"), s("EC2"));
    assert_eq!(attribute(&out[3], "cloud.region"), s("us-west-2"));
    assert_eq!(
        attribute(&out[3], "aws.ecs.task.id"),
        s("158d1c8083dd49d6b527399fd6414f5c")
    );
    assert_eq!(
        attribute(&out[0], "container.image.name"),
        s("nrdlngr/nginx-curl")
    );
    assert_eq!(attribute(&out[0], "container.image.tag"), s("latest"));
    assert_eq!(
        attribute(&out[0], "aws.ecs.container.know_status"),
        s("RUNNING")
    );
    assert_eq!(
        attribute(&out[2], "aws.ecs.container.exit_code"),
        Some(Av::IntValue(0))
    );
}

#[test]
fn fargate_task_and_containers() {
    let out = run(FARGATE_TASK, FARGATE_STATS);
    assert_eq!(out.len(), 4);
    let api = values(&out[0]);
    assert_eq!(api["container.cpu.reserved"], 128.0);
    assert_eq!(
        api["container.cpu.utilized"],
        50.0 / 128.0,
        "percent divided by CPU units, as the collector does"
    );
    let task = values(&out[3]);
    assert_eq!(task["ecs.task.cpu.reserved"], 256.0);
    assert!((task["ecs.task.cpu.utilized"] - 0.6 * 1024.0).abs() < 1e-9);
    assert_eq!(task["ecs.task.ephemeral_storage.utilized"], 261.0);
    assert_eq!(task["ecs.task.ephemeral_storage.reserved"], 20496.0);
    assert_eq!(
        task["ecs.task.network.io.usage.rx_bytes"], 180000.0,
        "awsvpc: the shared ENI counted once per container, as in the collector"
    );
    assert_eq!(attribute(&out[3], "aws.ecs.cluster.name"), s("vmxai"));
    assert_eq!(attribute(&out[3], "aws.ecs.service.name"), s("api"));
    assert_eq!(
        attribute(&out[3], "cloud.availability_zone"),
        s("us-west-2d")
    );
    assert_eq!(attribute(&out[0], "container.image.tag"), s("1.4.2"));
    assert_eq!(
        attribute(&out[2], "aws.ecs.container.exit_code"),
        Some(Av::IntValue(42))
    );
    assert_eq!(values(&out[2])["container.duration"], 0.75);
    assert_eq!(
        out[2].schema_url, "",
        "the stopped-container payload has no schema URL"
    );
    assert_eq!(out[3].schema_url, SCHEMA_URL);
}

#[test]
fn equal_cpu_samples_and_other_partitions() {
    let mut stats: Value = serde_json::from_str(FARGATE_STATS).unwrap();
    for entry in stats.as_object_mut().unwrap().values_mut() {
        entry["precpu_stats"] = entry["cpu_stats"].clone();
    }
    let out = translate(&serde_json::from_str(FARGATE_TASK).unwrap(), &stats, NOW);
    assert_eq!(values(&out[0])["container.cpu.usage.vcpu"], 0.0);
    let mut task: Value = serde_json::from_str(FARGATE_TASK).unwrap();
    task["TaskARN"] = "arn:aws-cn:ecs:cn-north-1:111122223333:task/vmxai/abc".into();
    let attributes = task_attributes(&task);
    for key in ["cloud.region", "cloud.account.id", "aws.ecs.task.id"] {
        let value = attributes.iter().find(|kv| kv.key == key).unwrap();
        assert_eq!(value.value.as_ref().unwrap().value, s(""), "{key}");
    }
}

#[test]
fn timestamps_and_images() {
    assert_eq!(rfc3339_nanos("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
    assert_eq!(
        rfc3339_nanos("2020-10-02T00:51:13.410254284Z").unwrap()
            - rfc3339_nanos("2020-10-02T00:51:12.410254284Z").unwrap(),
        1_000_000_000
    );
    assert_eq!(
        rfc3339_nanos("2020-10-02T02:00:00+02:00"),
        rfc3339_nanos("2020-10-02T00:00:00Z")
    );
    assert_eq!(
        image_name_and_tag("registry:5000/team/app:2.1@sha256:ab"),
        ("registry:5000/team/app".into(), "2.1".into())
    );
    assert_eq!(
        image_name_and_tag("registry:5000/team/app"),
        ("registry:5000/team/app".into(), "latest".into())
    );
}

/// Found by the fuzzer: a day of 32222222222222 overflowed the seconds computation.
#[test]
fn out_of_range_timestamp_fields_are_not_timestamps() {
    assert_eq!(rfc3339_nanos("2026-11-3032222222222222T05:00:04.25Z"), None);
    for bad in [
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-01-32T00:00:00Z",
        "2026-01-01T25:00:00Z",
        "2026-01-01T00:61:00Z",
        "2026-01-01T00:00:00+99999999999:00",
        "99999999999-01-01T00:00:00Z",
    ] {
        assert_eq!(rfc3339_nanos(bad), None, "{bad}");
    }
    assert_eq!(
        rfc3339_nanos("2020-07-30T22:12:29.837074927Z"),
        Some(1_596_147_149_837_074_927)
    );
}
