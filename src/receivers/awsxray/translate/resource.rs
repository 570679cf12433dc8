//! Resource attributes, from the top-level document only.

use super::attributes::{kv, string};
use super::document::SegmentDoc;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, any_value::Value as Av,
};
use serde_json::{Map, Value};

/// Resource attributes from the top-level document only.
pub(super) fn resource_attributes(doc: &SegmentDoc) -> Vec<KeyValue> {
    let mut attributes = Vec::new();
    if let Some(name) = &doc.name {
        attributes.push(string("service.name", name));
    }
    let aws = doc.aws.as_ref();
    attributes.push(string(
        "cloud.provider",
        if aws.is_some() { "aws" } else { "unknown" },
    ));
    if let Some(aws) = aws {
        let text = |obj: &Map<String, Value>, key: &str| {
            obj.get(key).and_then(Value::as_str).map(str::to_string)
        };
        if let Some(account) = text(aws, "account_id") {
            attributes.push(string("cloud.account.id", &account));
        }
        let blocks: [(&str, &[(&str, &str)]); 4] = [
            (
                "ec2",
                &[
                    ("availability_zone", "cloud.availability_zone"),
                    ("instance_id", "host.id"),
                    ("instance_size", "host.type"),
                    ("ami_id", "host.image.id"),
                ],
            ),
            (
                "ecs",
                &[
                    ("container", "container.name"),
                    ("availability_zone", "cloud.availability_zone"),
                    ("container_id", "container.id"),
                ],
            ),
            (
                "elastic_beanstalk",
                &[
                    ("environment_name", "service.namespace"),
                    ("version_label", "service.version"),
                ],
            ),
            (
                "eks",
                &[
                    ("container_id", "container.id"),
                    ("cluster_name", "k8s.cluster.name"),
                    ("pod", "k8s.pod.name"),
                ],
            ),
        ];
        for (block, fields) in blocks {
            if let Some(object) = aws.get(block).and_then(Value::as_object) {
                for (field, key) in fields {
                    if let Some(value) = text(object, field) {
                        attributes.push(string(key, &value));
                    }
                }
                if block == "elastic_beanstalk"
                    && let Some(id) = object.get("deployment_id").and_then(Value::as_i64)
                {
                    attributes.push(string("service.instance.id", &id.to_string()));
                }
            }
        }
        if let Some(groups) = aws.get("cloudwatch_logs").and_then(Value::as_array) {
            let collect = |field: &str| -> Vec<AnyValue> {
                groups
                    .iter()
                    .filter_map(|g| g.get(field).and_then(Value::as_str))
                    .map(|s| AnyValue {
                        value: Some(Av::StringValue(s.to_string())),
                    })
                    .collect()
            };
            let arns = collect("arn");
            let names = collect("log_group");
            if !arns.is_empty() {
                attributes.push(kv(
                    "aws.log.group.arns",
                    Av::ArrayValue(ArrayValue { values: arns }),
                ));
            }
            if !names.is_empty() {
                attributes.push(kv(
                    "aws.log.group.names",
                    Av::ArrayValue(ArrayValue { values: names }),
                ));
            }
        }
        if let Some(xray) = aws.get("xray").and_then(Value::as_object) {
            if let Some(sdk) = text(xray, "sdk") {
                attributes.push(string("telemetry.sdk.name", &sdk));
                if let Some((_, language)) = sdk.split_once("for ") {
                    attributes.push(string("telemetry.sdk.language", language));
                }
            }
            if let Some(version) = text(xray, "sdk_version") {
                attributes.push(string("telemetry.sdk.version", &version));
            }
        }
    }
    if let Some(version) = doc.service.as_ref().and_then(|s| s.version.as_ref()) {
        attributes.push(string("service.version", version));
    }
    if let Some(arn) = &doc.resource_arn {
        attributes.push(string("aws.xray.resource_arn", arn));
    }
    attributes
}
