//! The `ecs` detector: the task metadata endpoint v4 (`ECS_CONTAINER_METADATA_URI_V4`), its
//! container document and its `/task` document, mapped to the semantic-convention attributes
//! the X-Ray and EMF exporters read (`origin`, the `aws.ecs` block, `{TaskId}`).

use serde_json::Value;

pub async fn detect() -> Result<Vec<(String, String)>, String> {
    let base = std::env::var("ECS_CONTAINER_METADATA_URI_V4")
        .map_err(|_| "ECS_CONTAINER_METADATA_URI_V4 is not set (not running on ECS)".to_string())?;
    let container = crate::aws::http_get_json(&base).await?;
    let task = crate::aws::http_get_json(&format!("{base}/task")).await?;
    Ok(attributes(&container, &task))
}

/// Attributes from the two documents, in the shape AWS documents them.
pub fn attributes(container: &Value, task: &Value) -> Vec<(String, String)> {
    let text = |doc: &Value, key: &str| doc.get(key).and_then(Value::as_str).map(str::to_string);
    let mut out: Vec<(String, String)> = vec![
        ("cloud.provider".into(), "aws".into()),
        ("cloud.platform".into(), "aws_ecs".into()),
    ];
    let mut push = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            out.push((key.to_string(), value));
        }
    };
    let task_arn = text(task, "TaskARN");
    // arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID
    let arn_parts: Vec<String> = task_arn
        .as_deref()
        .unwrap_or("")
        .split(':')
        .map(str::to_string)
        .collect();
    let region = arn_parts.get(3).cloned();
    let account = arn_parts.get(4).cloned();
    push("cloud.region", region.clone());
    push("cloud.account.id", account.clone());
    push("cloud.availability_zone", text(task, "AvailabilityZone"));
    let cluster = text(task, "Cluster").map(|c| {
        if c.starts_with("arn:") {
            c
        } else {
            format!(
                "arn:aws:ecs:{}:{}:cluster/{c}",
                region.clone().unwrap_or_default(),
                account.clone().unwrap_or_default()
            )
        }
    });
    push("aws.ecs.cluster.arn", cluster);
    push(
        "aws.ecs.task.id",
        task_arn
            .as_deref()
            .and_then(|a| a.rsplit('/').next())
            .map(str::to_string),
    );
    push("aws.ecs.task.arn", task_arn.clone());
    push("aws.ecs.task.family", text(task, "Family"));
    push("aws.ecs.task.revision", text(task, "Revision"));
    push(
        "aws.ecs.launchtype",
        text(task, "LaunchType").map(|l| l.to_lowercase()),
    );
    push("aws.ecs.container.arn", text(container, "ContainerARN"));
    push("container.id", text(container, "DockerId"));
    push("container.name", text(container, "Name"));
    if text(container, "LogDriver").as_deref() == Some("awslogs")
        && let Some(options) = container.get("LogOptions")
    {
        let group = text(options, "awslogs-group");
        let stream = text(options, "awslogs-stream");
        let log_region = text(options, "awslogs-region").or(region.clone());
        if let (Some(group), Some(log_region), Some(account)) = (&group, &log_region, &account) {
            push(
                "aws.log.group.arns",
                Some(format!(
                    "arn:aws:logs:{log_region}:{account}:log-group:{group}"
                )),
            );
            if let Some(stream) = &stream {
                push(
                    "aws.log.stream.arns",
                    Some(format!(
                        "arn:aws:logs:{log_region}:{account}:log-group:{group}:log-stream:{stream}"
                    )),
                );
            }
        }
        push("aws.log.group.names", group);
        push("aws.log.stream.names", stream);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fargate_documents_map_to_semantic_attributes() {
        let container = json!({
            "DockerId": "cd189a933e5849daa93386466019ab50-2495160603", "Name": "api",
            "LogDriver": "awslogs",
            "LogOptions": {"awslogs-group": "/ecs/api", "awslogs-region": "us-west-2", "awslogs-stream": "ecs/api/cd189a93"},
            "ContainerARN": "arn:aws:ecs:us-west-2:111122223333:container/05966557-f16c-49cb-9352-24b3a0dcd0e1"
        });
        let task = json!({
            "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
            "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/cd189a933e5849daa93386466019ab50",
            "Family": "vmx-api", "Revision": "2", "AvailabilityZone": "us-west-2d", "LaunchType": "FARGATE"
        });
        let attributes: std::collections::BTreeMap<String, String> =
            attributes(&container, &task).into_iter().collect();
        let get = |k: &str| attributes.get(k).map(String::as_str);
        assert_eq!(get("cloud.platform"), Some("aws_ecs"));
        assert_eq!(get("cloud.region"), Some("us-west-2"));
        assert_eq!(get("cloud.account.id"), Some("111122223333"));
        assert_eq!(
            get("aws.ecs.task.id"),
            Some("cd189a933e5849daa93386466019ab50")
        );
        assert_eq!(get("aws.ecs.launchtype"), Some("fargate"));
        assert_eq!(get("aws.ecs.task.family"), Some("vmx-api"));
        assert_eq!(get("container.name"), Some("api"));
        assert_eq!(get("aws.log.group.names"), Some("/ecs/api"));
        assert_eq!(
            get("aws.log.group.arns"),
            Some("arn:aws:logs:us-west-2:111122223333:log-group:/ecs/api")
        );
        let short = attributes_for_cluster_name();
        assert_eq!(short, "arn:aws:ecs:eu-west-1:1:cluster/prod");
    }

    fn attributes_for_cluster_name() -> String {
        let task = json!({"Cluster": "prod", "TaskARN": "arn:aws:ecs:eu-west-1:1:task/prod/abc"});
        attributes(&json!({}), &task)
            .into_iter()
            .find(|(k, _)| k == "aws.ecs.cluster.arn")
            .unwrap()
            .1
    }
}
