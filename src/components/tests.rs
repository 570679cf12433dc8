//! Every validation rule, each asserting the YAML path named in the message.

use super::*;

const VALID: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
      http:
        endpoint: 127.0.0.1:0
processors:
  batch/traces:
    timeout: 1s
    send_batch_size: 50
exporters:
  debug:
  file:
    path: /tmp/out.jsonl
extensions:
  health_check:
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch/traces]
      exporters: [debug, file]
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn errors_of(yaml: &str) -> Vec<String> {
    match parse_config(yaml, &no_env) {
        Ok(_) => panic!("config should be refused:\n{yaml}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts that some error starts with `path: ` and contains `needle`.
fn assert_error(yaml: &str, path: &str, needle: &str) {
    let errors = errors_of(yaml);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{path}: ")) && e.contains(needle)),
        "expected `{path}: …{needle}…` in {errors:#?}"
    );
}

#[test]
fn the_valid_config_parses_with_defaults() {
    let config = parse_config(VALID, &no_env).unwrap();
    let otlp = &config.receivers[&ComponentId::parse("otlp").unwrap()];
    let ReceiverConfig::Otlp(otlp) = otlp else {
        panic!("otlp decodes as otlp")
    };
    let grpc = otlp
        .protocols
        .grpc
        .as_ref()
        .expect("grpc: with no body is enabled");
    assert_eq!(grpc.endpoint, "localhost:4317");
    assert_eq!(grpc.max_recv_msg_size_mib, 4);
    let http = otlp.protocols.http.as_ref().unwrap();
    assert_eq!(http.max_request_body_size, 20 * 1024 * 1024);
    assert_eq!(http.traces_url_path, "/v1/traces");
    assert_eq!(config.extensions.len(), 1);
    assert_eq!(
        config.summary(),
        "config ok: traces: [otlp] -> [batch/traces] -> [debug,file]"
    );
}

#[test]
fn the_shipped_configs_are_understood() {
    let local = include_str!("../../config/local.yaml");
    parse_config(local, &no_env).unwrap();
    let aws_otlp = include_str!("../../config/examples/aws-otlp-endpoints.yaml");
    let region = |name: &str| (name == "AWS_REGION").then(|| "eu-west-1".to_string());
    assert_eq!(
        parse_config(aws_otlp, &region).unwrap().summary(),
        "config ok: traces: [otlp,awsxray] -> [batch/traces] -> [otlp_http/traces]; metrics: [otlp] -> [batch/metrics] -> [awsemf]; logs: [otlp] -> [batch/logs] -> [otlp_http/logs]"
    );
    // The seed ECS config, unchanged, is understood whole.
    let ecs = parse_config(crate::config::source::EMBEDDED_ECS_CONFIG, &no_env).unwrap();
    assert_eq!(
        ecs.summary(),
        "config ok: traces: [otlp,awsxray] -> [batch/traces] -> [awsxray]; metrics: [otlp,statsd] -> [batch/metrics] -> [awsemf]"
    );
}

#[test]
fn an_omitted_protocol_is_disabled() {
    let yaml = VALID.replace("      grpc:\n", "");
    let config = parse_config(&yaml, &no_env).unwrap();
    let ReceiverConfig::Otlp(otlp) = &config.receivers[&ComponentId::parse("otlp").unwrap()] else {
        panic!("otlp decodes as otlp")
    };
    assert!(otlp.protocols.grpc.is_none());
}

#[test]
fn extensions_not_listed_in_service_are_not_started() {
    let yaml = VALID.replace("  extensions: [health_check]\n", "");
    let config = parse_config(&yaml, &no_env).unwrap();
    assert!(config.extensions.is_empty());
}

#[test]
fn empty_and_broken_documents() {
    assert_eq!(errors_of(""), vec!["empty configuration file"]);
    assert_eq!(errors_of("{}"), vec!["empty configuration file"]);
    assert!(
        errors_of("receivers: [")
            .iter()
            .any(|e| e.starts_with("invalid YAML"))
    );
    assert!(
        errors_of("- a\n- b")
            .iter()
            .any(|e| e.contains("must be a YAML mapping"))
    );
}

#[test]
fn unknown_top_level_key() {
    assert_error(
        &format!("{VALID}\nrecievers: {{}}\n"),
        "recievers",
        "unknown top-level key",
    );
}

#[test]
fn unknown_key_inside_a_component_names_the_full_path() {
    let yaml = VALID.replace("      grpc:\n", "      grpc:\n        endpont: x\n");
    assert_error(
        &yaml,
        "receivers.otlp.protocols.grpc",
        "unknown field `endpont`",
    );
    let yaml = VALID.replace(
        "send_batch_size: 50",
        "send_batch_size: 50\n    sendbatch: 1",
    );
    assert_error(
        &yaml,
        "processors.batch/traces.sendbatch",
        "unknown field `sendbatch`",
    );
}

#[test]
fn wrong_value_types_name_the_key() {
    let yaml = VALID.replace("send_batch_size: 50", "send_batch_size: lots");
    assert_error(
        &yaml,
        "processors.batch/traces.send_batch_size",
        "invalid type",
    );
    let yaml = VALID.replace("timeout: 1s", "timeout: 1 fortnight");
    assert_error(&yaml, "processors.batch/traces.timeout", "duration");
}

#[test]
fn unknown_component_type_lists_the_valid_ones() {
    let yaml = VALID.replace("  debug:\n", "  kafka:\n");
    assert_error(&yaml, "exporters.kafka", "unknown type: \"kafka\"");
    assert_error(
        &yaml,
        "exporters.kafka",
        "valid values: [awscloudwatchlogs awsemf awsxray debug file otlp otlp_http otlphttp]",
    );
}

#[test]
fn planned_components_are_named_as_missing() {
    let yaml = VALID.replace("  debug:\n", "  prometheusremotewrite:\n    endpoint: x\n");
    assert_error(
        &yaml,
        "exporters.prometheusremotewrite",
        "outside otel-sidecar's scope",
    );
    let yaml = VALID.replace("  batch/traces:", "  memory_limiter:\n  batch/traces:");
    assert_error(
        &yaml,
        "processors.memory_limiter.check_interval",
        "must be greater than zero",
    );
    let yaml = VALID.replace(
        "  batch/traces:",
        "  resourcedetection:\n    detectors: [env, gcp]\n  batch/traces:",
    );
    assert_error(
        &yaml,
        "processors.resourcedetection.detectors[1]",
        "not supported",
    );
    let yaml = VALID.replace("  debug:\n", "  awsemf:\n    log_retention: 2\n");
    assert_error(
        &yaml,
        "exporters.awsemf.log_retention",
        "not a CloudWatch Logs retention period",
    );
    let yaml = VALID.replace("  debug:\n", "  awsxray:\n    regoin: x\n");
    assert_error(&yaml, "exporters.awsxray.regoin", "unknown field `regoin`");
    let yaml = VALID.replace("  debug:\n", "  awsxray:\n    no_verify_ssl: true\n");
    assert_error(&yaml, "exporters.awsxray.no_verify_ssl", "not supported");
}

#[test]
fn invalid_component_ids() {
    let yaml = VALID.replace("  batch/traces:", "  batch/:");
    assert_error(
        &yaml,
        "processors.batch/",
        "part after / should not be empty",
    );
    let yaml = VALID.replace("  debug:\n", "  9debug:\n");
    assert_error(&yaml, "exporters.9debug", "invalid character(s) in type");
}

#[test]
fn pipelines_must_reference_configured_components() {
    let yaml = VALID.replace("receivers: [otlp]", "receivers: [otlp, zipkin]");
    assert_error(
        &yaml,
        "service.pipelines.traces.receivers[1]",
        "references receiver \"zipkin\" which is not configured",
    );
    let yaml = VALID.replace("processors: [batch/traces]", "processors: [batch]");
    assert_error(
        &yaml,
        "service.pipelines.traces.processors[0]",
        "references processor \"batch\" which is not configured",
    );
    let yaml = VALID.replace("exporters: [debug, file]", "exporters: [debug, awsxray]");
    assert_error(
        &yaml,
        "service.pipelines.traces.exporters[1]",
        "references exporter \"awsxray\" which is not configured",
    );
}

#[test]
fn a_processor_listed_twice() {
    let yaml = VALID.replace(
        "processors: [batch/traces]",
        "processors: [batch/traces, batch/traces]",
    );
    assert_error(
        &yaml,
        "service.pipelines.traces.processors[1]",
        "references processor \"batch/traces\" multiple times",
    );
}

#[test]
fn pipelines_need_receivers_and_exporters() {
    let yaml = VALID.replace("receivers: [otlp]", "receivers: []");
    assert_error(
        &yaml,
        "service.pipelines.traces.receivers",
        "must have at least one receiver",
    );
    let yaml = VALID.replace("exporters: [debug, file]", "exporters: []");
    assert_error(
        &yaml,
        "service.pipelines.traces.exporters",
        "must have at least one exporter",
    );
}

#[test]
fn service_needs_a_pipeline_and_valid_pipeline_ids() {
    let yaml = VALID.split("  pipelines:").next().unwrap().to_string();
    assert_error(&yaml, "service.pipelines", "at least one pipeline");
    let yaml = VALID.replace(
        "    traces:\n      receivers",
        "    spans:\n      receivers",
    );
    assert_error(&yaml, "service.pipelines.spans", "unknown signal \"spans\"");
}

#[test]
fn service_extensions_must_be_configured() {
    let yaml = VALID.replace(
        "extensions: [health_check]",
        "extensions: [health_check, pprof]",
    );
    assert_error(
        &yaml,
        "service.extensions[1]",
        "references extension \"pprof\" which is not configured",
    );
}

#[test]
fn receivers_and_exporters_sections_must_exist() {
    let errors = errors_of("service:\n  pipelines: {}\n");
    assert!(errors.contains(&"receivers: no receiver configuration specified in config".into()));
    assert!(errors.contains(&"exporters: no exporter configuration specified in config".into()));
}

#[test]
fn component_validation_rules() {
    let yaml = VALID.replace(
        "    protocols:\n      grpc:\n      http:\n        endpoint: 127.0.0.1:0\n",
        "    protocols: {}\n",
    );
    assert_error(
        &yaml,
        "receivers.otlp.protocols",
        "must specify at least one protocol when using the OTLP receiver",
    );
    let yaml = VALID.replace(
        "send_batch_size: 50",
        "send_batch_size: 50\n    send_batch_max_size: 10",
    );
    assert_error(
        &yaml,
        "processors.batch/traces.send_batch_max_size",
        "must be greater or equal to send_batch_size",
    );
    let yaml = VALID.replace(
        "    path: /tmp/out.jsonl\n",
        "    path: /tmp/o\n    format: proto\n",
    );
    assert_error(&yaml, "exporters.file.format", "not supported");
    let yaml = VALID.replace("  file:\n    path: /tmp/out.jsonl\n", "  file:\n");
    assert_error(&yaml, "exporters.file", "missing field `path`");
}

#[test]
fn every_error_is_reported_at_once() {
    let yaml = VALID
        .replace("  debug:\n", "  kafka:\n")
        .replace("receivers: [otlp]", "receivers: [otlp, zipkin]")
        .replace("send_batch_size: 50", "send_batch_size: 50\n    bogus: 1");
    let errors = errors_of(&yaml);
    assert!(errors.len() >= 3, "{errors:#?}");
}

#[test]
fn environment_references_are_expanded() {
    let env = |name: &str| match name {
        "OUT" => Some("/tmp/from-env.jsonl".to_string()),
        "BATCH" => Some("64".to_string()),
        _ => None,
    };
    let yaml = VALID
        .replace("path: /tmp/out.jsonl", "path: ${env:OUT}")
        .replace(
            "send_batch_size: 50",
            "send_batch_size: ${BATCH}\n    send_batch_max_size: ${env:MAX:-128}",
        )
        .replace(
            "endpoint: 127.0.0.1:0",
            "endpoint: ${env:HOST:-127.0.0.1}:0",
        );
    let config = parse_config(&yaml, &env).unwrap();
    let file = &config.exporters[&ComponentId::parse("file").unwrap()];
    let ExporterConfig::File(file) = file else {
        panic!()
    };
    assert_eq!(file.path.to_str(), Some("/tmp/from-env.jsonl"));
    let ProcessorConfig::Batch(batch) =
        &config.processors[&ComponentId::parse("batch/traces").unwrap()]
    else {
        panic!("batch decodes as batch")
    };
    assert_eq!(
        (batch.send_batch_size, batch.send_batch_max_size),
        (64, 128)
    );
}

#[test]
fn unset_variables_are_reported_and_bad_references_refused() {
    let yaml = VALID.replace("path: /tmp/out.jsonl", "path: /tmp/${NOT_SET}x.jsonl");
    let config = parse_config(&yaml, &no_env).unwrap();
    assert_eq!(config.unset_variables, vec!["NOT_SET".to_string()]);
    let yaml = VALID.replace("path: /tmp/out.jsonl", "path: ${s3:bucket/key}");
    assert_error(
        &yaml,
        "exporters.file.path",
        "unsupported config provider scheme",
    );
}

#[test]
fn telemetry_settings() {
    let yaml = format!(
        "{VALID}  telemetry:\n    logs:\n      level: debug\n      encoding: json\n    metrics:\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: localhost\n                port: 0\n"
    );
    let config = parse_config(&yaml, &no_env).unwrap();
    assert_eq!(
        config.telemetry.logs.encoding,
        crate::telemetry::LogEncoding::Json
    );
    assert_eq!(
        config.telemetry.metrics.prometheus_address().unwrap(),
        Some("127.0.0.1:0".parse().unwrap())
    );
    let yaml = format!("{VALID}  telemetry:\n    logs:\n      level: loud\n");
    assert_error(
        &yaml,
        "service.telemetry.logs.level",
        "unknown variant `loud`",
    );
}

#[test]
fn a_persistent_queue_must_name_an_enabled_file_storage_extension() {
    let with_storage = |extensions: &str, enabled: &str| {
        VALID
            .replace(
                "    path: /tmp/out.jsonl\n",
                "    path: /tmp/out.jsonl\n    sending_queue:\n      storage: file_storage\n",
            )
            .replace("extensions:\n  health_check:\n", extensions)
            .replace("  extensions: [health_check]\n", enabled)
    };
    let missing = with_storage(
        "extensions:\n  health_check:\n",
        "  extensions: [health_check]\n",
    );
    assert_error(
        &missing,
        "exporters.file.sending_queue.storage",
        "not a file_storage extension",
    );
    let not_enabled = with_storage(
        "extensions:\n  health_check:\n  file_storage:\n",
        "  extensions: [health_check]\n",
    );
    assert_error(
        &not_enabled,
        "exporters.file.sending_queue.storage",
        "listed in service.extensions",
    );
    let wrong_kind = with_storage(
        "extensions:\n  health_check:\n",
        "  extensions: [health_check]\n",
    )
    .replace("storage: file_storage", "storage: health_check");
    assert_error(
        &wrong_kind,
        "exporters.file.sending_queue.storage",
        "not a file_storage extension",
    );
    let enabled = with_storage(
        "extensions:\n  health_check:\n  file_storage:\n    directory: /tmp\n",
        "  extensions: [health_check, file_storage]\n",
    );
    let config = parse_config(&enabled, &no_env).unwrap();
    let file = ComponentId::parse("file").unwrap();
    assert_eq!(config.exporters[&file].storage(), Some("file_storage"));
}

#[test]
fn the_printed_config_has_defaults_expanded_values_and_masked_secrets() {
    let yaml = r#"
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  awsemf:
    namespace: ${env:NS}
    cardinality_budget:
      max_metrics: 100
      shared: {endpoint: "rediss://admin:hunter2@cache:6379"}
processors:
  attributes:
    actions: [{key: db.password, action: upsert, value: s3cret}]
service:
  pipelines:
    metrics: {receivers: [otlp], processors: [attributes], exporters: [awsemf]}
"#;
    let env = |name: &str| (name == "NS").then(|| "Shop".to_string());
    let printed = parse_config(yaml, &env).unwrap().effective_yaml();
    for expected in [
        "namespace: Shop",
        "endpoint: localhost:4317",
        "max_recv_msg_size_mib: 4",
        "dimension_rollup_option: ZeroAndSingleDimensionRollup",
        "initial_interval: 5s",
        "queue_size: 1000",
        "endpoint: rediss://admin:***@cache:6379",
        "value: '***'",
    ] {
        assert!(printed.contains(expected), "{expected} in\n{printed}");
    }
    assert!(!printed.contains("hunter2") && !printed.contains("s3cret"));
    // What is printed is a config the sidecar reads back.
    assert!(parse_config(&printed, &no_env).is_ok(), "{printed}");
}

/// A config whose one component of `kind` (a receiver, processor, exporter or extension) has
/// `body`; everything else is valid.
fn with_component(kind: &str, name: &str, body: &str) -> String {
    let (signal, receiver) = match name {
        "statsd" | "awsecscontainermetrics" | "metricstransform" | "awsemf" => ("metrics", "otlp"),
        _ => ("traces", "otlp"),
    };
    let mut receivers = format!("  {receiver}:\n    protocols:\n      grpc:\n");
    let mut processors = String::new();
    let mut exporters = "  debug:\n".to_string();
    let mut extensions = String::new();
    let (mut used_receiver, mut used_processors, mut used_exporter, mut used_extensions) = (
        receiver.to_string(),
        "[]".to_string(),
        "debug".to_string(),
        "[]".to_string(),
    );
    let section = format!("  {name}:\n{}", indent(body, 4));
    match kind {
        "receiver" => {
            receivers = section;
            used_receiver = name.to_string();
        }
        "processor" => {
            processors = section;
            used_processors = format!("[{name}]");
        }
        "exporter" => {
            exporters = section;
            used_exporter = name.to_string();
        }
        _ => {
            extensions = section;
            used_extensions = format!("[{name}]");
        }
    }
    format!(
        "receivers:\n{receivers}processors:\n{processors}exporters:\n{exporters}extensions:\n{extensions}service:\n  extensions: {used_extensions}\n  pipelines:\n    {signal}:\n      receivers: [{used_receiver}]\n      processors: {used_processors}\n      exporters: [{used_exporter}]\n"
    )
}

fn indent(text: &str, spaces: usize) -> String {
    text.lines()
        .map(|line| format!("{:spaces$}{line}\n", ""))
        .collect()
}

/// Every component type refuses one bad value with the YAML path, the value seen and what is
/// expected, all in its one message.
#[test]
fn each_component_type_names_path_value_and_expectation() {
    let cases: &[(&str, &str, &str, &str, &str, &str)] = &[
        // kind, type, body, path, value as shown, expectation
        (
            "receiver",
            "otlp",
            "protocols:\n  grpc:\n    transport: sctp",
            "receivers.otlp.protocols.grpc.transport",
            "\"sctp\"",
            "expected one of tcp, tcp4, tcp6",
        ),
        (
            "receiver",
            "awsxray",
            "transport: tcp",
            "receivers.awsxray.transport",
            "\"tcp\"",
            "expected \"udp\"",
        ),
        (
            "receiver",
            "statsd",
            "transport: sctp",
            "receivers.statsd.transport",
            "`sctp`",
            "expected one of `udp`",
        ),
        (
            "receiver",
            "awsecscontainermetrics",
            "collection_interval: 0s",
            "receivers.awsecscontainermetrics.collection_interval",
            "0s",
            "expected a duration greater than zero",
        ),
        (
            "receiver",
            "otlp",
            "protocols:\n  http:\n    endpoint: localhost:431800",
            "receivers.otlp.protocols.http.endpoint",
            "\"localhost:431800\"",
            "expected host:port with a port from 0 to 65535",
        ),
        (
            "extension",
            "health_check",
            "endpoint: localhost",
            "extensions.health_check.endpoint",
            "\"localhost\"",
            "expected host:port with a port from 0 to 65535",
        ),
        (
            "processor",
            "batch",
            "send_batch_size: 10\nsend_batch_max_size: 5",
            "processors.batch.send_batch_max_size",
            "5",
            "greater or equal to send_batch_size (10)",
        ),
        (
            "processor",
            "memory_limiter",
            "check_interval: 0s\nlimit_mib: 100",
            "processors.memory_limiter.check_interval",
            "0s",
            "must be greater than zero",
        ),
        (
            "processor",
            "attributes",
            "actions:\n  - {key: a, action: explode}",
            "processors.attributes.actions[0].action",
            "\"explode\"",
            "expected one of insert, update, upsert, delete, hash, extract, convert",
        ),
        (
            "processor",
            "resource",
            "attributes:\n  - {key: a, action: explode}",
            "processors.resource.attributes[0].action",
            "\"explode\"",
            "expected one of insert, update, upsert, delete, hash, extract, convert",
        ),
        (
            "processor",
            "filter",
            "error_mode: loud",
            "processors.filter.error_mode",
            "\"loud\"",
            "expected one of ignore, silent, propagate",
        ),
        (
            "processor",
            "metricstransform",
            "transforms:\n  - {include: a, action: mangle}",
            "processors.metricstransform.transforms[0].action",
            "\"mangle\"",
            "must be in [\"update\" \"insert\" \"combine\" \"group\"]",
        ),
        (
            "processor",
            "resourcedetection",
            "detectors: [gcp]",
            "processors.resourcedetection.detectors[0]",
            "\"gcp\"",
            "supported: env, system, ecs, ec2",
        ),
        (
            "exporter",
            "awsemf",
            "log_retention: 4",
            "exporters.awsemf.log_retention",
            "4",
            "is not a CloudWatch Logs retention period ([0, 1, 3",
        ),
        (
            "exporter",
            "awsxray",
            "num_workers: 0",
            "exporters.awsxray.num_workers",
            "0",
            "expected at least 1",
        ),
        (
            "exporter",
            "debug",
            "verbosity: loud",
            "exporters.debug.verbosity",
            "`loud`",
            "expected one of",
        ),
        (
            "exporter",
            "file",
            "path: /tmp/x\nformat: xml",
            "exporters.file.format",
            "\"xml\"",
            "supported: json",
        ),
        (
            "extension",
            "health_check",
            "endpoint: [a]",
            "extensions.health_check.endpoint",
            "sequence",
            "expected a string",
        ),
        (
            "extension",
            "file_storage",
            "fsync: maybe",
            "extensions.file_storage.fsync",
            "\"maybe\"",
            "expected a boolean",
        ),
    ];
    for (kind, name, body, path, value, expected) in cases {
        let yaml = with_component(kind, name, body);
        let errors = errors_of(&yaml);
        let error = errors
            .iter()
            .find(|e| e.starts_with(&format!("{path}: ")))
            .unwrap_or_else(|| panic!("{name}: no error at {path} in {errors:?}\n{yaml}"));
        assert!(
            error.contains(value),
            "{name}: the value {value} in {error:?}"
        );
        assert!(
            error.contains(expected),
            "{name}: {expected:?} in {error:?}"
        );
    }
}

/// A fleet budget whose store address comes from the environment is checked by `validate`:
/// `REDIS_MODE=cluster` without `REDIS_HOST` is refused there, not when the exporter starts.
#[test]
fn a_fleet_budget_without_a_store_address_is_refused_by_validate() {
    let yaml = with_component(
        "exporter",
        "awsemf",
        "cardinality_budget:\n  max_metrics: 10\n  shared: {}",
    );
    let cluster_without_host = |name: &str| (name == "REDIS_MODE").then(|| "cluster".to_string());
    let errors = match parse_config(&yaml, &cluster_without_host) {
        Ok(_) => panic!("accepted without a store address"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("exporters.awsemf.cardinality_budget.shared.endpoint: \"\": expected a redis:// or rediss:// URL, or REDIS_HOST set"),
        "{errors:?}"
    );
    let with_host = |name: &str| match name {
        "REDIS_MODE" => Some("cluster".to_string()),
        "REDIS_HOST" => Some("cache.internal".to_string()),
        _ => None,
    };
    parse_config(&yaml, &with_host).unwrap();
}
