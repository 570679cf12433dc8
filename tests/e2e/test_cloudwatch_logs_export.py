"""Acceptance (issue 31, logs end to end): OTLP log records from the OpenTelemetry Python SDK go
through the `awscloudwatchlogs` exporter into CloudWatch Logs (moto) as events in order; the
group and stream are created with the configured retention and tags; with `raw_log`, EMF
bodies land in the group their `_aws` block names."""

import json
import logging
import time

import boto3
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def logs_config(exporter):
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"batch": {"timeout": "100ms"}},
        "exporters": {"awscloudwatchlogs": exporter},
        "service": {"pipelines": {"logs": {"receivers": ["otlp"], "processors": ["batch"],
                                           "exporters": ["awscloudwatchlogs"]}}},
    }


def log_lines(http_address, messages, service="checkout"):
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"http://{http_address}/v1/logs")))
    logger = logging.getLogger(f"e2e-cwlogs-{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(LoggingHandler(logger_provider=provider))
    for message in messages:
        logger.warning(message, extra={"tenant": "acme"})
    provider.force_flush()
    provider.shutdown()


def events(client, group, stream):
    try:
        return client.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    except client.exceptions.ResourceNotFoundException:
        return []


def test_log_records_arrive_in_order_in_a_group_created_with_retention_and_tags(start_sidecar, aws_env):
    client = boto3.client("logs", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    sidecar = start_sidecar(logs_config({"log_group_name": "/e2e/cwlogs/{ServiceName}", "log_stream_name": "app",
                                         "log_retention": 7, "tags": {"team": "platform"}}), env=aws_env)
    sent = [f"order {n} placed" for n in range(20)]
    log_lines(sidecar.address("otlp", "http"), sent)
    group = "/e2e/cwlogs/checkout"
    wait_for(lambda: len(events(client, group, "app")) >= 20, 30, "the events in CloudWatch Logs")
    assert sidecar.terminate() == 0
    stored = events(client, group, "app")
    documents = [json.loads(e["message"]) for e in stored]
    assert [d["body"] for d in documents] == sent, "every record once, in order"
    assert all(d["attributes"]["tenant"] == "acme" and d["resource"]["service.name"] == "checkout"
               and d["severity_text"] == "WARN" for d in documents)
    [described] = client.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert described["retentionInDays"] == 7
    assert client.list_tags_log_group(logGroupName=group)["tags"] == {"team": "platform"}


def test_raw_log_emf_bodies_land_in_the_group_their_aws_block_names(start_sidecar, aws_env):
    client = boto3.client("logs", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    sidecar = start_sidecar(logs_config({"log_group_name": "/e2e/raw/default", "log_stream_name": "app",
                                         "raw_log": True}), env=aws_env)
    emf = json.dumps({"_aws": {"Timestamp": int(time.time() * 1000), "LogGroupName": "/e2e/raw/emf",
                               "LogStreamName": "metrics", "CloudWatchMetrics": [
                                   {"Namespace": "E2E", "Dimensions": [["route"]], "Metrics": [{"Name": "latency"}]}]},
                      "route": "/cart", "latency": 12})
    log_lines(sidecar.address("otlp", "http"), [emf, "plain line"])
    wait_for(lambda: events(client, "/e2e/raw/emf", "metrics") and events(client, "/e2e/raw/default", "app"),
             30, "the EMF event in its own group and the plain one in the configured group")
    assert sidecar.terminate() == 0
    [emf_event] = events(client, "/e2e/raw/emf", "metrics")
    assert json.loads(emf_event["message"]) == json.loads(emf), "the body as it was"
    [plain] = events(client, "/e2e/raw/default", "app")
    assert plain["message"] == "plain line"


def test_logs_pass_through_memory_limiter_resource_attributes_and_batch(start_sidecar, tmp):
    from conftest import read_file_export

    out = tmp / "logs.jsonl"
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_mib": 512},
            "resource": {"attributes": [{"key": "deployment.environment", "value": "e2e", "action": "upsert"}]},
            "attributes": {"actions": [{"key": "tenant", "action": "delete"},
                                       {"key": "pipeline", "value": "logs", "action": "insert"}]},
            "batch": {"timeout": "100ms"},
        },
        "exporters": {"file": {"path": str(out)}},
        "service": {"pipelines": {"logs": {"receivers": ["otlp"],
                                           "processors": ["memory_limiter", "resource", "attributes", "batch"],
                                           "exporters": ["file"]}}},
    }
    sidecar = start_sidecar(config)
    log_lines(sidecar.address("otlp", "http"), [f"line {n}" for n in range(5)])

    def records():
        return [(rl, r) for line in read_file_export(out) for rl in line.get("resourceLogs", [])
                for sl in rl.get("scopeLogs", []) for r in sl.get("logRecords", [])]

    wait_for(lambda: len(records()) >= 5, 30, "the log records in the file")
    assert sidecar.terminate() == 0
    for resource_logs, record in records():
        resource = {a["key"]: a["value"] for a in resource_logs["resource"]["attributes"]}
        attributes = {a["key"]: a["value"] for a in record.get("attributes", [])}
        assert resource["deployment.environment"] == {"stringValue": "e2e"}
        assert "tenant" not in attributes and attributes["pipeline"] == {"stringValue": "logs"}
    assert sorted(r["body"]["stringValue"] for _, r in records()) == [f"line {n}" for n in range(5)]
