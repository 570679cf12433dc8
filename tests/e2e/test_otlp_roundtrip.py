"""Acceptance: spans and metrics from the real OpenTelemetry Python SDK arrive intact in the
file exporter's output, over gRPC, HTTP protobuf and HTTP JSON (gzip on one of them)."""

import time

import grpc

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import exported_spans, file_pipeline_config, read_file_export
from otlp_clients import (
    gzipped,
    make_spans,
    post,
    send_spans_with_sdk,
    spans_as_otlp_json,
)


def attribute_values(attributes):
    out = {}
    for kv in attributes:
        value = kv["value"]
        if "stringValue" in value:
            out[kv["key"]] = value["stringValue"]
        elif "intValue" in value:
            out[kv["key"]] = int(value["intValue"])
        elif "doubleValue" in value:
            out[kv["key"]] = float(value["doubleValue"])
        elif "boolValue" in value:
            out[kv["key"]] = value["boolValue"]
        elif "arrayValue" in value:
            out[kv["key"]] = [v.get("stringValue") for v in value["arrayValue"].get("values", [])]
    return out


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_spans_over_grpc_http_protobuf_and_http_json_arrive_intact(start_sidecar, tmp):
    out = tmp / "out.jsonl"
    sidecar = start_sidecar(file_pipeline_config(out, signals=("traces",)))

    sent = []
    sent += send_spans_with_sdk(
        GrpcSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True), "grpc", 1000
    )
    sent += send_spans_with_sdk(
        HttpSpanExporter(
            endpoint=sidecar.url("otlp", "http", "/v1/traces"), compression=Compression.Gzip
        ),
        "httppb",
        1000,
    )
    # HTTP JSON: the SDK has no JSON exporter, so record spans and encode them per OTLP/JSON.
    recorded = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "e2e-json"}))
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    make_spans(provider.get_tracer("e2e", "1.0"), "json", 1000)
    json_spans = recorded.get_finished_spans()
    for start in range(0, len(json_spans), 250):
        status, _, body = post(
            sidecar.url("otlp", "http", "/v1/traces"),
            spans_as_otlp_json(json_spans[start : start + 250]),
            "application/json",
        )
        assert status == 200, body
        assert body == b"{}"
    sent += json_spans
    assert len(sent) == 3000

    assert sidecar.terminate() == 0
    received = {}
    for resource_spans, scope_spans, span in exported_spans(out):
        key = (span["traceId"], span["spanId"])
        assert key not in received, f"span {key} exported twice"
        received[key] = (resource_spans, scope_spans, span)
    assert len(received) == 3000

    for original in sent:
        context = original.get_span_context()
        key = (f"{context.trace_id:032x}", f"{context.span_id:016x}")
        resource_spans, scope_spans, span = received[key]
        assert span["name"] == original.name
        parent = original.parent.span_id if original.parent else None
        assert span.get("parentSpanId", "") == (f"{parent:016x}" if parent else "")
        assert int(span["startTimeUnixNano"]) == original.start_time
        assert int(span["endTimeUnixNano"]) == original.end_time
        expected = {k: list(v) if isinstance(v, tuple) else v for k, v in original.attributes.items()}
        assert attribute_values(span.get("attributes", [])) == expected
        resource = attribute_values(resource_spans["resource"]["attributes"])
        assert resource["service.name"] == original.resource.attributes["service.name"]
        assert scope_spans["scope"]["name"] == "e2e"


def test_metric_instruments_arrive_with_their_values(start_sidecar, tmp):
    out = tmp / "metrics.jsonl"
    sidecar = start_sidecar(file_pipeline_config(out, signals=("metrics",)))
    exporter = GrpcMetricExporter(
        endpoint=sidecar.address("otlp", "grpc"), insecure=True, compression=grpc.Compression.Gzip
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "e2e-metrics"}))
    meter = provider.get_meter("e2e-meter")
    counter = meter.create_counter("requests", unit="1")
    updown = meter.create_up_down_counter("in_flight")
    histogram = meter.create_histogram("latency", unit="ms")
    gauge = meter.create_gauge("temperature")
    counter.add(5, {"route": "/a"})
    counter.add(7, {"route": "/a"})
    counter.add(1, {"route": "/b"})
    updown.add(10)
    updown.add(-3)
    for value in (1.0, 2.0, 3.5):
        histogram.record(value, {"route": "/a"})
    gauge.set(42.5, {"room": "x"})
    assert provider.force_flush(30_000)
    provider.shutdown()
    assert sidecar.terminate() == 0

    points = {}
    for line in read_file_export(out):
        for rm in line["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                assert sm["scope"]["name"] == "e2e-meter"
                for metric in sm["metrics"]:
                    kind = next(k for k in ("sum", "gauge", "histogram") if k in metric)
                    for point in metric[kind]["dataPoints"]:
                        attrs = tuple(sorted(attribute_values(point.get("attributes", [])).items()))
                        points[(metric["name"], kind, attrs)] = (metric, point)
    by_route = lambda r: (("route", r),)
    assert int(points[("requests", "sum", by_route("/a"))][1]["asInt"]) == 12
    assert int(points[("requests", "sum", by_route("/b"))][1]["asInt"]) == 1
    metric, _ = points[("requests", "sum", by_route("/a"))]
    assert metric["sum"]["isMonotonic"] is True
    assert metric["unit"] == "1"
    metric, point = points[("in_flight", "sum", ())]
    assert int(point["asInt"]) == 7
    assert not metric["sum"].get("isMonotonic", False)
    metric, point = points[("latency", "histogram", by_route("/a"))]
    assert int(point["count"]) == 3
    assert point["sum"] == 6.5
    assert point["min"] == 1.0 and point["max"] == 3.5
    assert sum(int(c) for c in point["bucketCounts"]) == 3
    assert metric["unit"] == "ms"
    _, point = points[("temperature", "gauge", (("room", "x"),))]
    assert point["asDouble"] == 42.5
    assert len(points) == 5


def test_metrics_as_snake_case_json_over_http(start_sidecar, tmp):
    out = tmp / "json-metrics.jsonl"
    sidecar = start_sidecar(file_pipeline_config(out, signals=("metrics",)))
    body = (
        b'{"resource_metrics":[{"scope_metrics":[{"metrics":[{"name":"c","sum":{'
        b'"aggregation_temporality":"AGGREGATION_TEMPORALITY_DELTA","is_monotonic":true,'
        b'"data_points":[{"as_int":"41","time_unix_nano":"1700000000000000000"}]}}]}]}]}'
    )
    status, _, reply = post(sidecar.url("otlp", "http", "/v1/metrics"), gzipped(body), "application/json", "gzip")
    assert status == 200, reply
    assert sidecar.terminate() == 0
    [line] = read_file_export(out)
    metric = line["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
    assert metric["sum"]["aggregationTemporality"] == 1
    assert int(metric["sum"]["dataPoints"][0]["asInt"]) == 41
