"""Writes the fuzzers' seed corpora (fuzz/seeds/<target>/) from real client output: the
OpenTelemetry Python SDK's OTLP encoders, the AWS X-Ray SDK's segment serialisation, StatsD and
DogStatsD lines as those clients write them, the project's configs and ECS fixtures. Run with the
e2e venv: `.venv-e2e/bin/python fuzz/make_seeds.py`."""

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "fuzz" / "seeds"
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def write(target, data: bytes):
    directory = SEEDS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def otlp():
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "api", "telemetry.sdk.language": "nodejs"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("seeds")
    with tracer.start_as_current_span("GET /chat", kind=SpanKind.SERVER,
                                      attributes={"http.method": "GET", "http.status_code": 500, "http.client_ip": "1.2.3.4"}) as span:
        with tracer.start_as_current_span("db", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"}):
            pass
        span.add_event("exception", {"exception.type": "Error", "exception.message": "x",
                                     "exception.stacktrace": "Error: x\n    at f (/app/a.js:1:2)\n    at file:///app/b.mjs:3:4"})
        span.set_status(Status(StatusCode.ERROR, "boom"))
    traces = encode_spans(exporter.get_finished_spans())
    write("otlp_http_body", b"\x00" + traces.SerializeToString())
    write("otlp_http_body", b"\x03" + MessageToJson(traces).encode())
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "api"}))
    meter = meters.get_meter("seeds")
    meter.create_counter("requests").add(3, {"route": "/a"})
    meter.create_up_down_counter("inflight").add(-2)
    meter.create_histogram("latency", unit="ms").record(12.5)
    meter.create_gauge("temperature").set(21.5)
    metrics = encode_metrics(reader.get_metrics_data())
    write("otlp_http_body", b"\x04" + metrics.SerializeToString())
    write("otlp_http_body", b"\x01" + MessageToJson(metrics).encode())
    for signal, body in ((0, traces.SerializeToString()), (1, metrics.SerializeToString())):
        write("queue_file", queue_file(signal, body))


def queue_file(signal, body):
    """A persistent queue file: magic, signal, body length and CRC-32, body."""
    import struct
    import zlib

    return b"OSQ1" + bytes([signal]) + struct.pack("<II", len(body), zlib.crc32(body)) + body


def xray():
    from aws_xray_sdk.core import AWSXRayRecorder
    from aws_xray_sdk.core.context import Context
    from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter

    class Keep(UDPEmitter):
        def send_entity(self, entity):
            write("xray_datagram", b'{"format":"json","version":1}\n' + entity.serialize().encode())

    recorder = AWSXRayRecorder()
    recorder.configure(sampling=False, context_missing="LOG_ERROR", emitter=Keep(), service="seeds", context=Context())
    segment = recorder.begin_segment("orders")
    segment.put_http_meta("method", "GET")
    segment.put_http_meta("status", 429)
    segment.put_annotation("tenant", "acme")
    segment.put_metadata("cart", {"items": 2}, "debug")
    segment.add_error_flag()
    sub = recorder.begin_subsegment("charge", namespace="remote")
    sub.add_exception(RuntimeError("declined"), [("/app/pay.js", None, "charge")])
    recorder.end_subsegment()
    recorder.end_segment()


def statsd():
    for packet in [b"probe.hits:1|c", b"x:5|c|@0.5", b"probe.lat:12.300000|ms", b"probe.depth:-2|g", b"probe.users:u1|s",
                   b"dd.hits:1|c|#route:/a,code:200,env:test\n", b"_e{6,6}:deploy|v1 out|#a:b\n", b"_sc|dd.ok|0|#x:y\n",
                   b"api.hits:3|c|@0.5|#route:/a|c:abc|card:low|e:it-false,cn-api\nx:1|g|T1700000000\n"]:
        write("statsd_packet", packet)


def configs():
    for path in list((ROOT / "config").rglob("*.yaml")):
        write("config_yaml", path.read_bytes())


def ecs():
    fixtures = ROOT / "tests" / "fixtures" / "ecs"
    for launch in ("ec2", "fargate"):
        task = (fixtures / f"{launch}_task.json").read_bytes()
        stats = (fixtures / f"{launch}_stats.json").read_bytes()
        container = json.dumps(json.loads(task)["Containers"][0]).encode()
        write("ecs_task_metadata", task + b"\0" + stats + b"\0" + container)


def proxy():
    for line in [b"POST /GetSamplingRules", b"POST /SamplingTargets", b"GET /GetSamplingRules", b"POST /TraceSegments"]:
        write("sampling_proxy_request", line)


if __name__ == "__main__":
    otlp()
    xray()
    statsd()
    configs()
    ecs()
    proxy()
