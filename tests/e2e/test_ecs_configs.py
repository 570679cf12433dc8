"""Acceptance (issue 15): every X-Ray/CloudWatch config of ADOT's /etc/ecs set validates by its
path and runs end to end against the emulator and a loopback ECS task metadata endpoint; the
Container Insights metrics carry the renamed resource attributes and exactly the declared
dimension sets; the ec2 detector only ever talks to a loopback stand-in; memory_limiter refuses
with a retryable answer and loses nothing it accepted."""

import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from conftest import BINARY, ROOT, read_file_export
from test_emf import logs_client, read_events
from test_xray_export import fetch_documents, send_app_spans, xray_client, xray_trace_id

FIXTURES = ROOT / "tests" / "fixtures" / "ecs"
CONFIGS = ["ecs-default-config.yaml", "ecs-xray.yaml", "ecs-cloudwatch.yaml", "ecs-cloudwatch-xray.yaml",
           "container-insights/otel-task-metrics-config.yaml"]
DELETED_BY_RESOURCE = ["aws.ecs.cluster.name", "aws.ecs.task.id", "aws.ecs.task.family", "aws.ecs.task.arn",
                       "aws.ecs.service.name", "container.id", "container.name", "cloud.region", "cloud.account.id"]
DECLARED = {"MemoryUtilized", "MemoryReserved", "CpuUtilized", "CpuReserved", "NetworkRxBytes", "NetworkTxBytes",
            "StorageReadBytes", "StorageWriteBytes"}


class JsonServer:
    """A loopback HTTP server answering from a path → (status, body) function."""

    def __init__(self, answer):
        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self):
                status, body = answer(self.command, self.path, self.headers)
                body = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = _reply

            def log_message(self, *args):
                pass

        self.requests = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


def task_metadata(launch="fargate", cluster="vmxai"):
    """The task metadata endpoint v4 serving the recorded task and stats, in `cluster`."""
    task = json.loads((FIXTURES / f"{launch}_task.json").read_text())
    task["Cluster"] = task["Cluster"].rsplit("/", 1)[0] + "/" + cluster
    stats = json.loads((FIXTURES / f"{launch}_stats.json").read_text())
    container = task["Containers"][0]

    def answer(method, path, headers):
        if path.endswith("/task"):
            return 200, task
        if path.endswith("/task/stats"):
            return 200, stats
        return 200, container

    server = JsonServer(answer)
    return server, f"{server.url}/v4/{container['DockerId']}", task


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def on_loopback(config):
    """The config with its listeners moved to 127.0.0.1:0; nothing else changed."""
    receivers = config.get("receivers") or {}
    for name, body in receivers.items():
        if name.startswith("otlp"):
            for protocol in body["protocols"].values():
                protocol["endpoint"] = "127.0.0.1:0"
        if name.startswith("awsxray"):
            body["endpoint"] = "127.0.0.1:0"
            body["proxy_server"] = {"endpoint": "127.0.0.1:0"}
    for name in list(config.get("extensions") or {}):
        if name.startswith("health_check"):
            config["extensions"][name] = {"endpoint": "127.0.0.1:0"}
    return config


def all_events(logs, group):
    try:
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e for s in streams for e in read_events(logs, group, s["logStreamName"])]


def send_app_metrics(endpoint, route):
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "api"}))
    provider.get_meter("app").create_histogram("app.latency", unit="ms").record(12.0, {"route": route})
    assert provider.force_flush(30_000)
    provider.shutdown()


@pytest.mark.parametrize("name", CONFIGS)
def test_each_etc_ecs_config_validates_by_its_path(name):
    result = subprocess.run([str(BINARY), "validate", "--config", f"/etc/ecs/{name}"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config ok: ")


@pytest.mark.parametrize("name", CONFIGS)
def test_each_etc_ecs_config_runs_end_to_end(name, start_sidecar, aws_env):
    # A cluster of its own: the performance log group is named after it.
    cluster = f"vmxai-{time.time_ns()}"
    metadata, endpoint, task = task_metadata(cluster=cluster)
    config = on_loopback(yaml.safe_load((ROOT / "config" / "ecs" / name).read_text()))
    env = dict(aws_env, ECS_CONTAINER_METADATA_URI_V4=endpoint, AWS_EC2_METADATA_SERVICE_ENDPOINT=closed_port_url())
    try:
        sidecar = start_sidecar(config, env=env)
        pipelines = config["service"]["pipelines"]
        logs = logs_client(aws_env["AWS_ENDPOINT_URL"])
        if "traces" in pipelines:
            ids = send_app_spans(sidecar.address("otlp", "grpc"))
            [server] = [d for d in fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]),
                                                   [xray_trace_id(ids["server"].trace_id)], expected=3)
                        if d["id"] == f"{ids['server'].span_id:016x}"]
            if "resourcedetection" in pipelines["traces"]["processors"]:
                assert server["origin"] == "AWS::ECS::Fargate"
                assert server["aws"]["ecs"]["cluster_arn"] == task["Cluster"]
        performance = "metrics/performance" in pipelines
        if performance:
            group = f"/aws/ecs/containerinsights/{cluster}/performance"
            # The first scrape comes one collection interval (20 s) after start.
            deadline = time.monotonic() + 60
            while not any("MemoryUtilized" in json.loads(e["message"]) for e in all_events(logs, group)):
                assert time.monotonic() < deadline, "no Container Insights metrics"
                time.sleep(0.5)
        application = "metrics" in pipelines or "metrics/application" in pipelines
        route = f"/chat/{time.time_ns()}"
        if application:
            send_app_metrics(sidecar.address("otlp", "grpc"), route)
        assert sidecar.terminate() == 0
        if application:
            group = {"ecs-default-config.yaml": "aws/ecs/containerinsights/undefined/application/metrics",
                     "container-insights/otel-task-metrics-config.yaml":
                         "aws/ecs/containerinsights/undefined/application/metrics"}.get(name, "/aws/ecs/vmxai-api/metrics")
            documents = [json.loads(e["message"]) for e in all_events(logs, group)]
            # The SDK exports again at shutdown: a second point with nothing new.
            latencies = [d["app.latency"] for d in documents if d.get("route") == route]
            assert sum(v["Count"] for v in latencies) == 1 and latencies[0]["Sum"] == 12.0
            if "resource" in pipelines.get("metrics/application", {}).get("processors", []):
                # Renamed by the resource processor; the placeholders resolve from the new names.
                assert group == "/aws/ecs/vmxai-api/metrics"
        if performance:
            documents = [json.loads(e["message"]) for e in all_events(logs, f"/aws/ecs/containerinsights/{cluster}/performance")]
            extracted = {}
            for document in documents:
                for key in DELETED_BY_RESOURCE:
                    assert key not in document, (key, document)
                for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
                    assert directive["Namespace"] == "ECS/ContainerInsights"
                    for metric in directive["Metrics"]:
                        extracted.setdefault(metric["Name"], []).append(directive["Dimensions"])
            assert {"MemoryUtilized", "MemoryReserved", "CpuUtilized", "CpuReserved", "NetworkRxBytes",
                    "NetworkTxBytes"} <= set(extracted), extracted
            assert set(extracted) <= DECLARED, "nothing else is extracted"
            for sets in extracted.values():
                assert all(s == [["ClusterName"], ["ClusterName", "TaskDefinitionFamily"]] for s in sets), sets
            memory = next(d for d in documents if "MemoryUtilized" in d)
            assert (memory["ClusterName"], memory["TaskDefinitionFamily"], memory["TaskId"]) == (
                cluster, "vmxai-api", "cd189a933e5849daa93386466019ab50")
            assert memory["MemoryReserved"] == 512 and memory["CpuReserved"] == 256
            # ADOT's config renames cloud.zone, which the receiver does not emit: the zone keeps
            # its own name, as with the collector.
            assert memory["cloud.availability_zone"] == "us-west-2d" and "AvailabilityZone" not in memory
            durations = [d for d in documents if "container.duration" in d]
            assert durations and all("_aws" not in d for d in durations), "declared without dimension sets"
    finally:
        metadata.close()


def test_ec2_detector_asks_imds_on_loopback_and_first_detector_wins(start_sidecar, tmp):
    document = {"region": "us-east-1", "accountId": "123456789012", "availabilityZone": "us-east-1b",
                "instanceId": "i-0123456789abcdef0", "imageId": "ami-0abc", "instanceType": "m7g.large"}
    seen = []

    def imds(method, path, headers):
        seen.append((method, path, headers.get("X-Aws-Ec2-Metadata-Token")))
        if method == "PUT" and path == "/latest/api/token":
            return 200, b"token-1"
        if headers.get("X-Aws-Ec2-Metadata-Token") != "token-1":
            return 401, b""
        return {"/latest/meta-data/instance-id": (200, b"i-0123456789abcdef0"),
                "/latest/dynamic/instance-identity/document": (200, document),
                "/latest/meta-data/hostname": (200, b"ip-10-0-0-5.ec2.internal")}.get(path, (404, b""))

    server = JsonServer(imds)
    out = tmp / "out.jsonl"
    config = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"resourcedetection": {"detectors": ["system", "ec2"], "timeout": "3s"},
                       "batch": {"timeout": "100ms"}},
        "exporters": {"file": {"path": str(out)}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["resourcedetection", "batch"],
                                             "exporters": ["file"]}}},
    }
    try:
        sidecar = start_sidecar(config, env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": server.url})
        send_app_spans(sidecar.address("otlp", "grpc"))
        assert sidecar.terminate() == 0
    finally:
        server.close()
    resource = {a["key"]: list(a["value"].values())[0]
                for a in read_file_export(out)[0]["resourceSpans"][0]["resource"]["attributes"]}
    assert resource["cloud.platform"] == "aws_ec2" and resource["host.id"] == "i-0123456789abcdef0"
    assert resource["host.type"] == "m7g.large" and resource["cloud.availability_zone"] == "us-east-1b"
    assert resource["host.name"] != "ip-10-0-0-5.ec2.internal", "host.name from system, the first detector"
    assert seen[0][:2] == ("PUT", "/latest/api/token") and all(token == "token-1" for _, _, token in seen[1:])


def test_ec2_detector_off_ec2_adds_nothing_and_the_sidecar_starts(start_sidecar, tmp):
    out = tmp / "out.jsonl"
    config = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"resourcedetection": {"detectors": ["ec2"]}, "batch": {"timeout": "100ms"}},
        "exporters": {"file": {"path": str(out)}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["resourcedetection", "batch"],
                                             "exporters": ["file"]}}},
    }
    started = time.monotonic()
    sidecar = start_sidecar(config, env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": closed_port_url()})
    assert time.monotonic() - started < 5
    send_app_spans(sidecar.address("otlp", "grpc"))
    assert sidecar.terminate() == 0
    keys = {a["key"] for a in read_file_export(out)[0]["resourceSpans"][0]["resource"]["attributes"]}
    assert "host.id" not in keys and "cloud.platform" not in keys


LIMIT_MIB = 64
# What can arrive between two checks (100 ms) on top of the limit: the bound the test holds.
RSS_MARGIN_MIB = 32


def gated_aws(moto):
    """A loopback stand-in for AWS that holds every request until released, then forwards it to
    the emulator: a blocked exporter that later recovers."""
    released = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            released.wait()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            request = urllib.request.Request(moto + self.path, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as reply:
                    status, payload = reply.status, reply.read()
            except urllib.error.HTTPError as error:
                status, payload = error.code, error.read()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", released


def spans_request(trace_id: bytes, count=100, payload=2000):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    spans = [Span(trace_id=trace_id, span_id=(n + 1).to_bytes(8, "big"), name=f"work {n}", kind=Span.SPAN_KIND_SERVER,
                  start_time_unix_nano=now, end_time_unix_nano=now + 1000,
                  attributes=[KeyValue(key="payload", value=AnyValue(string_value="x" * payload))])
             for n in range(count)]
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]).SerializeToString()


def test_memory_limiter_refuses_while_over_and_delivers_what_it_accepted(start_sidecar, aws_env):
    from otlp_clients import post

    server, gate_url, released = gated_aws(aws_env["AWS_ENDPOINT_URL"])
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"memory_limiter": {"check_interval": "100ms", "limit_mib": LIMIT_MIB},
                       "batch": {"timeout": "200ms", "send_batch_size": 500}},
        "exporters": {"awsxray": {"sending_queue": {"queue_size": 100000, "queue_size_items": 10000000},
                                  "retry_on_failure": {"initial_interval": "100ms", "max_interval": "500ms"}}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"],
                                             "exporters": ["awsxray"]}}},
    }
    sidecar = start_sidecar(config, env=dict(aws_env, AWS_ENDPOINT_URL=gate_url))
    url = sidecar.url("otlp", "http", "/v1/traces")
    accepted, refusals, peak = [], [], 0
    try:
        for n in range(2000):
            trace_id = (0x5F000000 << 96 | n).to_bytes(16, "big")
            status, headers, body = post(url, spans_request(trace_id), "application/x-protobuf")
            peak = max(peak, sidecar.rss_kib())
            if status == 200:
                accepted.append(trace_id)
            else:
                assert status == 503, (status, body)
                assert b"high memory usage" in body
                refusals.append(n)
                if len(refusals) >= 5:
                    break
        print(f"accepted {len(accepted)} requests, refused from request {refusals[0] if refusals else None}, peak RSS {peak} KiB")
        assert refusals, f"never refused; peak RSS {peak} KiB"
        assert peak < (LIMIT_MIB + RSS_MARGIN_MIB) * 1024, f"peak RSS {peak} KiB"
        assert sidecar.self_metrics().get("otelsidecar_memory_limiter_used_bytes{processor=\"memory_limiter\"}", 0) > 0
        released.set()
        ids = [f"1-{t.hex()[:8]}-{t.hex()[8:]}" for t in accepted]
        stored = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]), ids, expected=100 * len(accepted), timeout=120)
        assert len({(d["trace_id"], d["id"]) for d in stored}) == 100 * len(accepted)
        assert sidecar.terminate() == 0
    finally:
        released.set()
        server.shutdown()
