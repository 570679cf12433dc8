//! The `aws` block, the `service` block and the origin: what the resource (ECS, EC2, EKS,
//! Beanstalk, log groups, SDK) and the AWS SDK span attributes say.

use super::*;

pub(super) fn determine_origin(resource: &Attributes) -> String {
    let provider = str_attr(resource, "cloud.provider");
    if resource.is_empty() || (!provider.is_empty() && provider != "aws") {
        return String::new();
    }
    match str_attr(resource, "cloud.platform").as_str() {
        "aws_app_runner" => "AWS::AppRunner::Service",
        "aws_eks" => "AWS::EKS::Container",
        "aws_elastic_beanstalk" => "AWS::ElasticBeanstalk::Environment",
        "aws_ecs" => match str_attr(resource, "aws.ecs.launchtype").as_str() {
            "ec2" => "AWS::ECS::EC2",
            "fargate" => "AWS::ECS::Fargate",
            _ => "AWS::ECS::Container",
        },
        "aws_ec2" => "AWS::EC2::Instance",
        _ => "",
    }
    .to_string()
}

/// Strings, or `&`-separated strings in one value (as `OTEL_RESOURCE_ATTRIBUTES` allows).
pub(super) fn string_list(value: ValueView) -> Vec<String> {
    match value {
        ValueView::Array(a) => a.iter().map(value_string).collect(),
        ValueView::Str(s) => s
            .split('&')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// What a span's resource contributes to the `aws` block: the same for every span of the
/// resource, so worked out once per resource.
#[derive(Clone, Default)]
pub(super) struct AwsResourceData {
    /// `cloud.provider` names another cloud: no `aws` block at all.
    other_cloud: bool,
    account_id: String,
    elastic_beanstalk: Option<BeanstalkData>,
    ecs: Option<EcsData>,
    ec2: Option<Ec2Data>,
    eks: Option<EksData>,
    cloudwatch_logs: Vec<LogGroupData>,
    xray: XRayData,
}

pub(super) fn aws_resource_data(
    resource: &Attributes,
    config_log_groups: &[String],
) -> AwsResourceData {
    let r = |key: &str| str_attr(resource, key);
    let cloud = r("cloud.provider");
    let platform = r("cloud.platform");
    let host_id = r("host.id");
    let ec2 = (platform == "aws_ec2" || !host_id.is_empty()).then(|| Ec2Data {
        instance_id: non_empty(host_id.clone()),
        availability_zone: non_empty(r("cloud.availability_zone")),
        instance_size: non_empty(r("host.type")),
        ami_id: non_empty(r("host.image.id")),
    });
    let ecs = (platform == "aws_ecs").then(|| EcsData {
        container: non_empty(r("container.name")),
        container_id: non_empty(r("container.id")),
        availability_zone: non_empty(r("cloud.availability_zone")),
        container_arn: non_empty(r("aws.ecs.container.arn")),
        cluster_arn: non_empty(r("aws.ecs.cluster.arn")),
        task_arn: non_empty(r("aws.ecs.task.arn")),
        task_family: non_empty(r("aws.ecs.task.family")),
        launch_type: non_empty(r("aws.ecs.launchtype")),
    });
    let deploy_id = r("service.instance.id");
    let elastic_beanstalk =
        (platform == "aws_elastic_beanstalk" && !deploy_id.is_empty()).then(|| BeanstalkData {
            environment_name: non_empty(r("service.namespace")),
            version_label: non_empty(r("service.version")),
            deployment_id: deploy_id.parse().unwrap_or(0),
        });
    let cluster_name = r("k8s.cluster.name");
    let eks = (platform == "aws_eks" || !cluster_name.is_empty()).then(|| EksData {
        cluster_name: non_empty(cluster_name.clone()),
        pod: non_empty(r("k8s.pod.name")),
        container_id: non_empty(r("container.id")),
    });
    let arns = resource
        .get("aws.log.group.arns")
        .map(string_list)
        .unwrap_or_default();
    let names = resource
        .get("aws.log.group.names")
        .map(string_list)
        .unwrap_or_default();
    let cloudwatch_logs = if !arns.is_empty() {
        arns.into_iter()
            .map(|arn| LogGroupData {
                log_group: Some(
                    arn.split(':')
                        .nth(6)
                        .map(str::to_string)
                        .unwrap_or_else(|| arn.clone()),
                ),
                arn: Some(arn),
            })
            .collect()
    } else {
        let names = if names.is_empty() {
            config_log_groups.to_vec()
        } else {
            names
        };
        names
            .into_iter()
            .map(|name| LogGroupData {
                log_group: Some(name),
                arn: None,
            })
            .collect()
    };
    let sdk_name = r("telemetry.sdk.name");
    let sdk_language = r("telemetry.sdk.language");
    // An X-Ray SDK name already says its language ("X-Ray for Python"): do not repeat it.
    let already_named = sdk_name
        .to_ascii_lowercase()
        .ends_with(&format!(" for {}", sdk_language.to_ascii_lowercase()));
    let sdk = if !sdk_name.is_empty() && !sdk_language.is_empty() && !already_named {
        format!("{sdk_name} for {sdk_language}")
    } else {
        sdk_name
    };
    AwsResourceData {
        other_cloud: !cloud.is_empty() && cloud != "aws",
        account_id: r("cloud.account.id"),
        elastic_beanstalk,
        ecs,
        ec2,
        eks,
        cloudwatch_logs,
        xray: XRayData {
            sdk_version: non_empty(r("telemetry.sdk.version")),
            sdk: non_empty(sdk),
            auto_instrumentation: !r("telemetry.auto.version").is_empty(),
        },
    }
}

pub(super) fn make_aws<'a>(
    remaining: &mut Attributes<'a>,
    resource: &'a AwsResourceData,
) -> Option<AwsData<'a>> {
    let mut account = None;
    let operation = remaining
        .get("aws.operation")
        .or_else(|| remaining.get("rpc.method"))
        .map(value_str)
        .unwrap_or_default();
    let mut remote_region = Cow::Borrowed("");
    let mut request_id = Cow::Borrowed("");
    let mut queue_url = Cow::Borrowed("");
    let mut table_name = Cow::Borrowed("");
    let mut table_names = Vec::new();
    remaining.retain(|key, value| {
        let consumed = match key {
            "rpc.method" | "aws.operation" => true,
            "aws.account_id" => {
                account = Some(value_str(value));
                true
            }
            "aws.region" => {
                remote_region = value_str(value);
                true
            }
            "aws.request_id" | "aws.requestId" => {
                request_id = value_str(value);
                true
            }
            "aws.queue_url" | "aws.queue.url" => {
                queue_url = value_str(value);
                true
            }
            "aws.table_name" | "aws.table.name" => {
                table_name = value_str(value);
                true
            }
            _ => false,
        };
        !consumed
    });
    if resource.other_cloud {
        return None;
    }
    if let Some(url) = remaining.get("messaging.url") {
        queue_url = value_str(url);
    }
    if let Some(tables) = remaining.get("aws.dynamodb.table_names") {
        let mut names = string_list(tables);
        match names.len() {
            0 => {}
            1 => table_name = Cow::Owned(names.remove(0)),
            _ => {
                table_name = Cow::Borrowed("");
                table_names = names.into_iter().map(Cow::Owned).collect();
            }
        }
    }
    Some(AwsData {
        account_id: non_empty(account.unwrap_or(Cow::Borrowed(&resource.account_id))),
        elastic_beanstalk: resource.elastic_beanstalk.as_ref().map(Cow::Borrowed),
        ecs: resource.ecs.as_ref().map(Cow::Borrowed),
        ec2: resource.ec2.as_ref().map(Cow::Borrowed),
        eks: resource.eks.as_ref().map(Cow::Borrowed),
        xray: Some(Cow::Borrowed(&resource.xray)),
        cloudwatch_logs: Cow::Borrowed(&resource.cloudwatch_logs),
        operation: non_empty(operation),
        remote_region: non_empty(remote_region),
        request_id: non_empty(request_id),
        queue_url: non_empty(queue_url),
        table_name: non_empty(table_name),
        table_names,
    })
}

pub(super) fn make_service(resource: &Attributes) -> Option<ServiceData> {
    let version = resource
        .get("service.version")
        .map(value_string)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            resource
                .get("container.image.tags")
                .and_then(|v| string_list(v).into_iter().next())
        })
        .or_else(|| resource.get("container.image.tag").map(value_string))
        .filter(|s| !s.is_empty())?;
    Some(ServiceData {
        version: Some(version),
    })
}
