"""Acceptance (issue 14, EMF half): cumulative series are told apart by scope and resource, so
per-scope and per-resource totals are exact; up-down counters are published as levels;
metric_declarations choose what CloudWatch extracts; a budget that cannot cap is refused."""

import json
import socket
import subprocess
import time

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from conftest import BINARY
from test_emf import NAMESPACE, check_emf, logs_client, read_events, wait_for_lines


def seed_metrics_config(group, extra=None):
    """The seed config's metrics pipeline (batch/metrics with its 60 s timeout) on loopback."""
    return {
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
                      "statsd": {"endpoint": "127.0.0.1:0", "aggregation_interval": "60s"}},
        "processors": {"batch/metrics": {"timeout": "60s"}},
        "exporters": {"awsemf": dict({"namespace": NAMESPACE, "log_group_name": group,
                                      "log_stream_name": "e2e"}, **(extra or {}))},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"metrics": {"receivers": ["otlp", "statsd"], "processors": ["batch/metrics"],
                                              "exporters": ["awsemf"]}}},
    }


def provider_for(sidecar, resource):
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True),
        export_interval_millis=3_600_000)
    return MeterProvider(metric_readers=[reader], resource=Resource.create(resource))


def documents(events):
    out = []
    for event in events:
        document = json.loads(event["message"])
        if "_aws" in document:
            check_emf(document)
        out.append(document)
    return out


def totals(docs, metric, by):
    """Sum of `metric`'s values (numbers, or (Count, Sum) of statistic sets) per value of `by`."""
    out = {}
    for doc in docs:
        if metric not in doc:
            continue
        value = doc[metric]
        key = doc.get(by)
        if isinstance(value, dict):
            count, total = out.get(key, (0, 0.0))
            out[key] = (count + value["Count"], total + value["Sum"])
        else:
            out[key] = out.get(key, 0) + value
    return out


def test_two_scopes_keep_their_own_deltas(start_sidecar, aws_env, tmp):
    group = f"/e2e/scopes/{tmp.name}-{time.time_ns()}"
    sidecar = start_sidecar(seed_metrics_config(group), env=aws_env)
    provider = provider_for(sidecar, {"service.name": "api"})
    meters = {"scope-a": 1, "scope-b": 10}
    instruments = {name: (provider.get_meter(name).create_counter("requests"),
                          provider.get_meter(name).create_histogram("latency", unit="ms"))
                   for name in meters}
    for _ in range(4):
        for name, step in meters.items():
            counter, histogram = instruments[name]
            counter.add(step, {"route": "/x"})
            histogram.record(step, {"route": "/x"})
        assert provider.force_flush(30_000)
    provider.shutdown()
    # Everything sits in the 60 s batch: SIGTERM flushes it.
    assert sidecar.terminate() == 0
    docs = documents(read_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group))
    assert totals(docs, "requests", "OTelLib") == {"scope-a": 4, "scope-b": 40}
    assert totals(docs, "latency", "OTelLib") == {"scope-a": (4, 4.0), "scope-b": (4, 40.0)}


def test_two_resources_sharing_a_scope_keep_their_own_deltas(start_sidecar, aws_env, tmp):
    group = f"/e2e/resources/{tmp.name}-{time.time_ns()}"
    sidecar = start_sidecar(seed_metrics_config(group, {"resource_to_telemetry_conversion": {"enabled": True}}),
                            env=aws_env)
    providers = {task: provider_for(sidecar, {"service.name": "api", "service.instance.id": task})
                 for task in ("task-1", "task-2")}
    steps = {"task-1": 1, "task-2": 10}
    instruments = {task: (p.get_meter("shared").create_counter("requests"),
                          p.get_meter("shared").create_histogram("latency"))
                   for task, p in providers.items()}
    for _ in range(4):
        for task, provider in providers.items():
            counter, histogram = instruments[task]
            counter.add(steps[task], {"route": "/x"})
            histogram.record(steps[task], {"route": "/x"})
            assert provider.force_flush(30_000)
    for provider in providers.values():
        provider.shutdown()
    assert sidecar.terminate() == 0
    docs = documents(read_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group))
    assert totals(docs, "requests", "service.instance.id") == {"task-1": 4, "task-2": 40}
    assert totals(docs, "latency", "service.instance.id") == {"task-1": (4, 4.0), "task-2": (4, 40.0)}


def test_an_up_down_counter_is_published_as_its_level(start_sidecar, aws_env, tmp):
    group = f"/e2e/updown/{tmp.name}-{time.time_ns()}"
    sidecar = start_sidecar(seed_metrics_config(group), env=aws_env)
    provider = provider_for(sidecar, {"service.name": "api"})
    inflight = provider.get_meter("api").create_up_down_counter("inflight")
    for change in (5, -2, 1):
        inflight.add(change)
        assert provider.force_flush(30_000)
    provider.shutdown()
    assert sidecar.terminate() == 0
    events = read_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group)
    levels = [json.loads(e["message"])["inflight"] for e in sorted(events, key=lambda e: e["timestamp"])]
    # The provider's shutdown exports once more: the level is still 4.
    assert levels[:3] == [5, 3, 4] and set(levels[3:]) <= {4}, levels


def test_metric_declarations_choose_what_cloudwatch_extracts(start_sidecar, aws_env, tmp):
    group = f"/e2e/declarations/{tmp.name}-{time.time_ns()}"
    extra = {
        "dimension_rollup_option": "NoDimensionRollup",
        "metric_declarations": [
            {"dimensions": [["route"], ["route", "code"], ["code", "route"], ["route", "missing"]],
             "metric_name_selectors": ["^api\\."]},
            {"metric_name_selectors": ["container"]},
        ],
        "parse_json_encoded_attr_values": ["Sources"],
        "detailed_metrics": True,
    }
    sidecar = start_sidecar(seed_metrics_config(group, extra), env=aws_env)
    host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        lines = [b"api.requests:3|c|#route:/a,code:200,user:u1", b"db.calls:2|c|#route:/a",
                 b'container.duration:7|g|#Sources:["a"]']
        for line in lines:
            udp.sendto(line, (host, int(port)))
    wait_for_lines(sidecar, len(lines))
    assert sidecar.terminate() == 0
    docs = documents(read_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group))
    by_metric = {name: doc for doc in docs for name in ("api.requests", "db.calls", "container.duration")
                 if name in doc}
    api = by_metric["api.requests"]
    [directive] = api["_aws"]["CloudWatchMetrics"]
    assert directive["Metrics"] == [{"Name": "api.requests", "Unit": "", "StorageResolution": 60}]
    assert directive["Dimensions"] == [["route"], ["code", "route"]]
    assert api["user"] == "u1", "labels stay fields"
    # Declared by no one: a plain log line, its value kept, nothing billed.
    assert "_aws" not in by_metric["db.calls"] and by_metric["db.calls"]["db.calls"] == 2
    # Declared without dimension sets, no rollup: not extracted either.
    container = by_metric["container.duration"]
    assert "_aws" not in container and container["container.duration"] == 7
    assert container["Sources"] == ["a"], "JSON-encoded label decoded"


def test_a_dogstatsd_line_with_newer_sections_keeps_its_value(start_sidecar, aws_env, tmp):
    group = f"/e2e/dogstatsd/{tmp.name}-{time.time_ns()}"
    sidecar = start_sidecar(seed_metrics_config(group), env=aws_env)
    host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"hits:2|c|#route:/a|c:4f7e9a|card:low|e:it-false,cn-api\n", (host, int(port)))
        udp.sendto(b"hits:3|c|#route:/a|c:4f7e9a|card:orchestrator\n", (host, int(port)))
    wait_for_lines(sidecar, 2)
    metrics = sidecar.self_metrics()
    assert metrics['otelsidecar_receiver_statsd_sections_ignored{receiver="statsd"}'] == 3
    assert not any(k.startswith("otelsidecar_receiver_statsd_lines_skipped") for k in metrics)
    assert sidecar.terminate() == 0
    docs = documents(read_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group))
    assert totals(docs, "hits", "route") == {"/a": 5}


@pytest.mark.parametrize("budget, key", [
    ({}, "max_metrics"),
    ({"max_metrics": 0}, "max_metrics"),
    ({"max_metrics": 1}, "max_metrics"),
    ({"max_monthly_cost_usd": -5}, "max_monthly_cost_usd"),
    ({"max_metrics": 100, "price_per_metric_month": 0}, "price_per_metric_month"),
])
def test_a_budget_that_cannot_cap_is_refused(tmp, budget, key):
    config = seed_metrics_config("/e2e/never", {"cardinality_budget": budget})
    path = tmp / "budget.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1, result.stdout
    assert f"exporters.awsemf.cardinality_budget: {key}: " in result.stderr, result.stderr
