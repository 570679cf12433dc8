"""Acceptance: backpressure instead of unbounded memory, SIGTERM flushes what was accepted, and
health answers 503/200/503 across the lifecycle. The blocking exporter is a real one: the file
exporter writing into a named pipe that nobody reads yet."""

import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from conftest import BINARY, exported_spans, file_pipeline_config
from otlp_clients import post, send_spans_with_sdk


def spans_request(batch_no, count):
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(count):
        span = scope.spans.add()
        span.trace_id = batch_no.to_bytes(8, "big") + i.to_bytes(8, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = f"b{batch_no}-s{i}"
        span.attributes.add(key="payload", value={"string_value": "x" * 200})
    return request


class PipeReader(threading.Thread):
    """Reads the named pipe to EOF once started, collecting what the sidecar wrote."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.data = b""

    def run(self):
        with open(self.path, "rb") as pipe:
            while chunk := pipe.read(1 << 16):
                self.data += chunk


def spans_in(data: bytes):
    import json

    names = []
    for line in data.decode().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                names += [s["name"] for s in ss["spans"]]
    return names


def health_status(sidecar):
    try:
        with urllib.request.urlopen(sidecar.url("health_check", "http", "/"), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def healthcheck_command(sidecar):
    port = sidecar.address("health_check", "http").rsplit(":", 1)[1]
    return subprocess.run([str(BINARY), "healthcheck", "--port", port], capture_output=True, text=True)


def test_backpressure_then_full_delivery(start_sidecar, tmp):
    pipe = tmp / "export.pipe"
    os.mkfifo(pipe)
    config = file_pipeline_config(
        pipe, signals=("traces",), queue_size=1, batch={"timeout": "10ms", "send_batch_size": 100}
    )
    sidecar = start_sidecar(config)
    url = sidecar.url("otlp", "http", "/v1/traces")

    accepted, refused = [], 0
    started = time.monotonic()
    for batch_no in range(3000):
        status, headers, body = post(url, spans_request(batch_no, 10).SerializeToString(), "application/x-protobuf")
        if status == 200:
            accepted.append(batch_no)
        else:
            assert status == 503, body
            assert headers["retry-after"] == "1"
            refused += 1
            if refused >= 20:
                break
    assert refused == 20, f"no push-back after {len(accepted)} accepted requests"
    assert len(accepted) < 1000, "the queue is bounded"
    assert time.monotonic() - started < 120
    rss_mib = sidecar.rss_kib() / 1024
    assert rss_mib < 100, f"RSS {rss_mib:.0f} MiB while blocked"

    metrics = sidecar.self_metrics()
    assert metrics['otelcol_receiver_refused_spans{receiver="otlp",transport="http"}'] == 10 * refused
    assert metrics['otelcol_receiver_accepted_spans{receiver="otlp",transport="http"}'] == 10 * len(accepted)
    assert metrics['otelcol_exporter_queue_capacity{exporter="file"}'] == 1

    channel = grpc.insecure_channel(sidecar.address("otlp", "grpc"))
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    try:
        stub.Export(spans_request(99_999, 10), timeout=10)
        raise AssertionError("gRPC must be refused while the pipeline is full")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()

    reader = PipeReader(pipe)
    reader.start()
    # Once the exporter drains, new requests are accepted again.
    deadline = time.monotonic() + 30
    while True:
        status, _, _ = post(url, spans_request(5000, 10).SerializeToString(), "application/x-protobuf")
        if status == 200:
            accepted.append(5000)
            break
        assert time.monotonic() < deadline, "never recovered"
        time.sleep(0.05)
    assert sidecar.terminate() == 0
    reader.join(timeout=30)
    names = spans_in(reader.data)
    expected = {f"b{b}-s{i}" for b in accepted for i in range(10)}
    assert len(names) == len(expected), "every accepted span exactly once"
    assert set(names) == expected


def test_sigterm_flushes_buffered_spans(start_sidecar, tmp):
    out = tmp / "out.jsonl"
    config = file_pipeline_config(out, signals=("traces",), batch={"timeout": "60s", "send_batch_size": 100000})
    sidecar = start_sidecar(config)
    sent = send_spans_with_sdk(GrpcSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True), "term", 1000)
    assert len(sent) == 1000
    assert not exported_spans(out), "nothing leaves before the 60 s timeout"
    metrics = sidecar.self_metrics()
    assert metrics['otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"}'] == 1000
    assert sidecar.terminate() == 0
    assert len(exported_spans(out)) == 1000


def test_health_across_the_lifecycle(start_sidecar, tmp):
    pipe = tmp / "health.pipe"
    os.mkfifo(pipe)
    config = file_pipeline_config(pipe, signals=("traces",), batch={"timeout": "10ms"})
    sidecar = start_sidecar(config)

    status, body = health_status(sidecar)
    assert status == 200
    import json

    document = json.loads(body)
    assert document["status"] == "Server available"
    assert document["upSince"].endswith("Z") and document["uptime"].endswith("s")
    result = healthcheck_command(sidecar)
    assert (result.returncode, result.stdout) == (0, "STATUS: 200\n")

    # A batch the exporter cannot write yet keeps the shutdown draining...
    status, _, _ = post(sidecar.url("otlp", "http", "/v1/traces"), spans_request(1, 3).SerializeToString(), "application/x-protobuf")
    assert status == 200
    sidecar.process.send_signal(15)
    deadline = time.monotonic() + 10
    while health_status(sidecar)[0] != 503:
        assert time.monotonic() < deadline, "health must turn 503 at shutdown"
        time.sleep(0.02)
    assert health_status(sidecar)[1] == b'{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}'
    result = healthcheck_command(sidecar)
    assert result.returncode == 1 and "503" in result.stderr
    # ...until a reader appears; then everything accepted is written and the process exits 0.
    reader = PipeReader(pipe)
    reader.start()
    assert sidecar.terminate() == 0
    reader.join(timeout=30)
    assert sorted(spans_in(reader.data)) == ["b1-s0", "b1-s1", "b1-s2"]
    result = healthcheck_command(sidecar)
    assert result.returncode == 1, "nothing listening any more"


def test_healthcheck_through_a_link_named_healthcheck(start_sidecar, tmp):
    sidecar = start_sidecar(file_pipeline_config(tmp / "o.jsonl", signals=("traces",)))
    link = tmp / "healthcheck"
    link.symlink_to(BINARY)
    port = sidecar.address("health_check", "http").rsplit(":", 1)[1]
    result = subprocess.run([str(link), "--port", port], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "STATUS: 200\n")
    result = subprocess.run([str(link), "--port", "0"], capture_output=True, text=True)
    assert result.returncode == 1
