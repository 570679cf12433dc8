"""Acceptance (issue 4): StatsD and OTLP metrics become CloudWatch EMF events in the emulator with
the collector's namespace, OTelLib dimension and rollup; per-interval values are exact; every
event is valid EMF; every PutLogEvents call respects the limits; nothing is lost."""

import http.client
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import boto3
import pytest
import statsd
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from conftest import BINARY, ROOT

NAMESPACE = "ECS/OTEL/VM-X-AI"
STATSD_SCOPE = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/statsdreceiver"


def logs_client(endpoint):
    return boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def emf_config(group, interval="3s", extra=None):
    return {
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
                      "statsd": {"endpoint": "127.0.0.1:0", "aggregation_interval": interval}},
        "processors": {"batch/metrics": {"timeout": "200ms"}},
        "exporters": {"awsemf": dict({"namespace": NAMESPACE, "log_group_name": group, "log_stream_name": "e2e",
                                      "retry_on_failure": {"initial_interval": "200ms", "max_interval": "1s"}},
                                     **(extra or {}))},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"metrics": {"receivers": ["otlp", "statsd"], "processors": ["batch/metrics"],
                                              "exporters": ["awsemf"]}}},
    }


def read_events(client, group, stream="e2e"):
    events, token = [], None
    while True:
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        try:
            reply = client.get_log_events(**kwargs)
        except client.exceptions.ResourceNotFoundException:
            return events
        events += reply["events"]
        if not reply["events"] or reply.get("nextForwardToken") in (None, token):
            return events
        token = reply["nextForwardToken"]


def wait_for_events(client, group, at_least, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        events = read_events(client, group)
        if len(events) >= at_least or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def check_emf(document):
    """The EMF specification's rules, as CloudWatch applies them."""
    assert document["Version"] == "1"
    aws = document["_aws"]
    assert isinstance(aws["Timestamp"], int)
    for directive in aws["CloudWatchMetrics"]:
        assert directive["Namespace"]
        assert 1 <= len(directive["Metrics"]) <= 100
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30
            for key in dimension_set:
                assert key in document, f"dimension {key} is not a field"
        for metric in directive["Metrics"]:
            assert metric["Name"] in document
            assert "Unit" in metric


def metric_values(events):
    """(metric name, frozenset of labels) → value, over EMF events."""
    values = {}
    for event in events:
        document = json.loads(event["message"])
        check_emf(document)
        names = [m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
        labels = frozenset((k, v) for k, v in document.items()
                           if k not in names and k not in ("_aws", "Version"))
        for name in names:
            values[(name, labels)] = (document[name], document)
    return values


def wait_for_lines(sidecar, lines, timeout=30.0):
    """Until the receiver has aggregated `lines` good lines (its self-metric says so)."""
    deadline = time.monotonic() + timeout
    while sidecar.self_metrics().get('otelsidecar_receiver_statsd_lines{receiver="statsd"}', 0) < lines:
        assert time.monotonic() < deadline, "lines never aggregated"
        time.sleep(0.02)


def test_statsd_over_two_intervals(start_sidecar, aws_env, tmp):
    group = f"/e2e/statsd/{tmp.name}"
    sidecar = start_sidecar(emf_config(group), env=aws_env)
    host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
    client = statsd.StatsClient(host, int(port), prefix=None)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send_interval(scale):
        for _ in range(3):
            client.incr("e2e.hits", 2 * scale)
        raw.sendto(b"e2e.sampled:1|c|@0.25|#route:/a", (host, int(port)))
        client.gauge("e2e.depth", 10 * scale)
        client.gauge("e2e.depth", 5, delta=True)
        client.gauge("e2e.depth", -2, delta=True)
        for ms in (10, 20, 30 * scale):
            client.timing("e2e.latency", ms)
        raw.sendto(f"e2e.size:{4 * scale}|h|#route:/a\ne2e.size:{6 * scale}|h|#route:/a\n".encode(), (host, int(port)))
        raw.sendto(f"e2e.dist:{scale}|d|#route:/a,code:200\n".encode(), (host, int(port)))
        for user in ("u1", "u2", "u1", f"x{scale}"):
            client.set("e2e.users", user)

    logs = logs_client(aws_env["AWS_ENDPOINT_URL"])
    send_interval(1)
    first = wait_for_events(logs, group, at_least=1)
    # The interval has flushed: the next lines belong to the second interval.
    send_interval(2)
    events = wait_for_events(logs, group, at_least=len(first) + 1)
    boundary = max(e["timestamp"] for e in first)
    by_interval = {False: first, True: [e for e in events if e["timestamp"] > boundary]}
    assert len(events) == len(first) + len(by_interval[True]), "each event belongs to one interval"
    lib = ("OTelLib", STATSD_SCOPE)
    for second, scale in ((False, 1), (True, 2)):
        values = metric_values(by_interval[second])
        assert values[("e2e.hits", frozenset([lib]))][0] == 6 * scale
        assert values[("e2e.sampled", frozenset([lib, ("route", "/a")]))][0] == 4
        assert values[("e2e.depth", frozenset([lib]))][0] == 10 * scale + 3
        latency, document = values[("e2e.latency", frozenset([lib]))]
        assert (latency["Count"], latency["Sum"], latency["Min"], latency["Max"]) == (3, 30 + 30 * scale, 10, 30 * scale)
        assert sum(latency["Counts"]) == 3 and len(latency["Values"]) == 3
        size = values[("e2e.size", frozenset([lib, ("route", "/a")]))][0]
        assert (size["Count"], size["Sum"]) == (2, 10 * scale)
        dist, document = values[("e2e.dist", frozenset([lib, ("route", "/a"), ("code", "200")]))]
        assert dist["Count"] == 1
        assert values[("e2e.users", frozenset([lib]))][0] == 3
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == NAMESPACE
        assert sorted(map(tuple, directive["Dimensions"])) == sorted(
            [("OTelLib", "code", "route"), ("OTelLib",), ("OTelLib", "code"), ("OTelLib", "route")])
    assert sidecar.terminate() == 0


def test_malformed_statsd_lines_cost_no_good_value(start_sidecar, aws_env, tmp):
    group = f"/e2e/malformed/{tmp.name}"
    sidecar = start_sidecar(emf_config(group, interval="60s"), env=aws_env)
    host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
    bad = [b"nonsense", b"x:abc|c", b"x:1|zz", b"x:1|c|#:v", b"_e{6,6}:deploy|v1 out|#a:b", b"_sc|dd.ok|0|#x:y"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for n in range(60):
            lines = [f"good.count:{n}|c|#k:v".encode(), bad[n % len(bad)], f"good.gauge:{n}|g".encode()]
            udp.sendto(b"\n".join(lines) + b"\r\n", (host, int(port)))
    wait_for_lines(sidecar, 120)
    metrics = sidecar.self_metrics()
    assert sidecar.terminate() == 0
    values = metric_values(wait_for_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group, at_least=2))
    lib = ("OTelLib", STATSD_SCOPE)
    assert values[("good.count", frozenset([lib, ("k", "v")]))][0] == sum(range(60))
    assert values[("good.gauge", frozenset([lib]))][0] == 59
    skipped = {k: v for k, v in metrics.items() if k.startswith("otelsidecar_receiver_statsd_lines_skipped")}
    assert sum(skipped.values()) == 60, skipped
    assert sum(v for k, v in skipped.items() if "not_a_metric" in k) == 20


def test_otel_sdk_metrics_are_per_interval_deltas(start_sidecar, aws_env, tmp):
    group = f"/e2e/otlp/{tmp.name}"
    sidecar = start_sidecar(emf_config(group), env=aws_env)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True), export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "checkout"}),
                             views=[View(instrument_name="e2e.exp", aggregation=ExponentialBucketHistogramAggregation())])
    meter = provider.get_meter("e2e-meter")
    counter = meter.create_counter("e2e.requests")
    updown = meter.create_up_down_counter("e2e.inflight")
    histogram = meter.create_histogram("e2e.latency", unit="ms")
    exp = meter.create_histogram("e2e.exp", unit="ms")
    gauge = meter.create_gauge("e2e.temperature")
    # The up-down counter changes by 5, -2, 1: its level is 5, 3, 4.
    steps = [(5, 5, [1.0, 2.0], [3.0, 5.0], 20.0), (3, -2, [4.0], [7.0, 7.0, 9.0], 21.5), (4, 1, [8.0, 1.0, 1.0], [2.0], 19.0)]
    logs = logs_client(aws_env["AWS_ENDPOINT_URL"])
    seen = 0
    per_interval = []
    for count, delta, samples, exp_samples, temperature in steps:
        counter.add(count, {"route": "/a"})
        updown.add(delta)
        for sample in samples:
            histogram.record(sample)
        for sample in exp_samples:
            exp.record(sample)
        gauge.set(temperature)
        assert provider.force_flush(30_000)
        # One export is one PutLogEvents call: once any of its events is there, all are.
        events = wait_for_events(logs, group, at_least=seen + 1)
        per_interval.append(metric_values(events[seen:]))
        seen = len(events)
    provider.shutdown()
    lib = ("OTelLib", "e2e-meter")
    levels = [5, 3, 4]
    for values, (count, _, samples, exp_samples, temperature), level in zip(per_interval, steps, levels):
        assert values[("e2e.requests", frozenset([lib, ("route", "/a")]))][0] == count
        assert values[("e2e.inflight", frozenset([lib]))][0] == level, "up-down counters are levels"
        latency, document = values[("e2e.latency", frozenset([lib]))]
        assert (latency["Count"], latency["Sum"]) == (len(samples), sum(samples))
        assert document["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Milliseconds"
        exp_value = values[("e2e.exp", frozenset([lib]))][0]
        assert exp_value["Count"] == len(exp_samples) and sum(exp_value["Counts"]) == len(exp_samples)
        assert abs(exp_value["Sum"] - sum(exp_samples)) < 1e-9
        assert values[("e2e.temperature", frozenset([lib]))][0] == temperature
    assert sidecar.terminate() == 0


def test_log_group_deleted_mid_run_is_recreated(start_sidecar, aws_env, tmp):
    group = f"/e2e/deleted/{tmp.name}"
    sidecar = start_sidecar(emf_config(group, interval="1s", extra={"log_retention": 7, "tags": {"team": "platform"}}), env=aws_env)
    host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
    logs = logs_client(aws_env["AWS_ENDPOINT_URL"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"before:7|c", (host, int(port)))
        assert wait_for_events(logs, group, at_least=1)
        described = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
        assert described["retentionInDays"] == 7
        logs.delete_log_group(logGroupName=group)
        udp.sendto(b"after:11|c", (host, int(port)))
    values = metric_values(wait_for_events(logs, group, at_least=1))
    assert [k[0] for k in values] == ["after"]
    assert values[("after", frozenset([("OTelLib", STATSD_SCOPE)]))][0] == 11
    assert sidecar.terminate() == 0


class RecordingLogsProxy(http.server.BaseHTTPRequestHandler):
    """Forwards CloudWatch Logs calls to the emulator, recording every PutLogEvents call."""

    upstream = ""
    calls = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        target = self.headers.get("X-Amz-Target", "")
        if target.endswith("PutLogEvents"):
            request = json.loads(body)
            RecordingLogsProxy.calls.append({
                "events": len(request["logEvents"]),
                "bytes": sum(len(e["message"].encode()) + 26 for e in request["logEvents"]),
                "span_ms": request["logEvents"][-1]["timestamp"] - request["logEvents"][0]["timestamp"],
                "sorted": [e["timestamp"] for e in request["logEvents"]] == sorted(e["timestamp"] for e in request["logEvents"]),
                "emf_header": self.headers.get("x-amzn-logs-format"),
                "max_event": max(len(e["message"].encode()) for e in request["logEvents"]),
            })
        parsed = urllib.parse.urlparse(self.upstream)
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        connection.request("POST", self.path, body=body, headers=headers)
        reply = connection.getresponse()
        payload = reply.read()
        self.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_fifty_thousand_series_respect_every_limit(start_sidecar, aws_env, tmp):
    RecordingLogsProxy.upstream = aws_env["AWS_ENDPOINT_URL"]
    RecordingLogsProxy.calls = []
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingLogsProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    group = f"/e2e/load/{tmp.name}"
    env = dict(aws_env, AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=f"http://127.0.0.1:{proxy.server_address[1]}")
    sidecar = start_sidecar(emf_config(group, interval="60s"), env=env)
    host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
    series = 50_000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for start in range(0, series, 40):
            lines = "\n".join(f"load.requests:{1 + i % 5}|c|#user:u{i:05d},route:/r{i % 7}" for i in range(start, start + 40))
            udp.sendto(lines.encode(), (host, int(port)))
            if start % 4000 == 0:
                time.sleep(0.01)  # let the reader keep up; loopback UDP has no flow control
    wait_for_lines(sidecar, series)
    assert sidecar.terminate(timeout=120) == 0
    proxy.shutdown()
    events = read_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group)
    assert len(events) == series
    total = 0
    for event in events:
        document = json.loads(event["message"])
        check_emf(document)
        total += document["load.requests"]
    assert total == sum(1 + i % 5 for i in range(series))
    calls = RecordingLogsProxy.calls
    assert len(calls) >= 5
    for call in calls:
        assert call["events"] <= 10_000
        assert call["bytes"] <= 1_048_576
        assert call["span_ms"] <= 24 * 3600 * 1000
        assert call["sorted"]
        assert call["emf_header"] == "json/emf"
        assert call["max_event"] <= 256 * 1024 - 26


@pytest.mark.parametrize("transport", ["tcp", "unixgram"])
def test_statsd_over_tcp_and_unixgram(start_sidecar, aws_env, tmp, transport):
    group = f"/e2e/{transport}/{tmp.name}"
    config = emf_config(group, interval="60s")
    socket_path = str(tmp / "statsd.sock")
    endpoint = "127.0.0.1:0" if transport == "tcp" else socket_path
    config["receivers"]["statsd"].update({"transport": transport, "endpoint": endpoint})
    sidecar = start_sidecar(config, env=aws_env)
    if transport == "tcp":
        host, port = sidecar.address("statsd", "tcp").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as stream:
            # Lines split across writes must still be read whole.
            stream.sendall(b"stream.count:2|c\nstream.co")
            time.sleep(0.05)
            stream.sendall(b"unt:3|c\nstream.gauge:7|g\n")
    else:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unix:
            unix.sendto(b"stream.count:2|c\nstream.count:3|c\nstream.gauge:7|g", socket_path)
    wait_for_lines(sidecar, 3)
    assert sidecar.terminate() == 0
    values = metric_values(wait_for_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group, at_least=2))
    lib = ("OTelLib", STATSD_SCOPE)
    assert values[("stream.count", frozenset([lib]))][0] == 5
    assert values[("stream.gauge", frozenset([lib]))][0] == 7
