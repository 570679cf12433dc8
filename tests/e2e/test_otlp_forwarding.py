"""Issue 32: a pipeline that only batches and forwards OTLP (batch, otlp_http) sends what arrived
over OTLP/HTTP in protobuf or OTLP/gRPC without decoding it: every span of the OpenTelemetry
Python SDK's HTTP and gRPC exporters arrives once, a field the sidecar does not know is still
there at the destination (where a pipeline with a processor that changes data decodes, and drops
it), and a malformed request is refused with 400 or INVALID_ARGUMENT as before."""

import urllib.error
import urllib.request

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp_clients import send_spans_with_sdk
from test_otlp_http_export import documented_config, standin, logs_client, wait_for  # noqa: F401

# Field 99 of ResourceSpans, a varint 42: a field OTLP may add one day.
UNKNOWN_FIELD = bytes([0x98, 0x06, 42])


def request_with_unknown_field(name):
    span = Span(trace_id=bytes(range(16)), span_id=bytes(range(8)), name=name,
                start_time_unix_nano=1, end_time_unix_nano=2)
    resource_spans = ResourceSpans(
        resource=Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="fwd"))]),
        scope_spans=[ScopeSpans(spans=[span])])
    entry = resource_spans.SerializeToString() + UNKNOWN_FIELD
    # Field 1 of the request: the entry, length-delimited (short enough for a one-byte length).
    assert len(entry) < 128
    return bytes([0x0a, len(entry)]) + entry


def post(address, body):
    request = urllib.request.Request(f"http://{address}/v1/traces", data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def forwarding_config(url, processors):
    config = documented_config(url, "/unused", "unused", batch_timeout="100ms")
    config["processors"]["resource"] = {"attributes": [{"key": "deployment", "value": "e2e", "action": "upsert"}]}
    config["service"]["extensions"] = ["sigv4auth/traces"]
    config["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "processors": processors, "exporters": ["otlp_http/traces"]}}
    return config


def assert_forwarded_as_sent(sidecar, standin, sent):
    """Every span the SDK sent arrived once, and the raw request with field 99 arrived as sent."""
    wait_for(lambda: len(standin.spans()) >= len(sent) + 1, 30, "the SDK's spans and the raw request")
    assert sidecar.terminate() == 0
    assert standin.refused == [], standin.refused
    names = sorted(s.span_id.hex() for s in standin.spans() if s.name != "carries-field-99")
    assert names == sorted(f"{s.context.span_id:016x}" for s in sent), "each span once"
    (entry,) = [rs for _, request in standin.received["/v1/traces"] for rs in request.resource_spans
                if rs.scope_spans[0].spans[0].name == "carries-field-99"]
    assert entry.SerializeToString().endswith(UNKNOWN_FIELD), "forwarded as it arrived"


def test_a_forwarding_pipeline_sends_what_arrived(start_sidecar, aws_env, standin):
    sidecar = start_sidecar(forwarding_config(standin.url, ["batch"]), env=aws_env)
    http = sidecar.address("otlp", "http")

    sent = send_spans_with_sdk(HttpSpanExporter(endpoint=f"http://{http}/v1/traces"), "fwd", 60)
    assert post(http, request_with_unknown_field("carries-field-99"))[0] == 200
    status, body = post(http, request_with_unknown_field("cut")[:-5])
    assert status == 400 and b"invalid OTLP protobuf" in body, (status, body)

    assert_forwarded_as_sent(sidecar, standin, sent)


def test_a_pipeline_that_changes_data_decodes_it(start_sidecar, aws_env, standin):
    sidecar = start_sidecar(forwarding_config(standin.url, ["resource", "batch"]), env=aws_env)
    assert post(sidecar.address("otlp", "http"), request_with_unknown_field("decoded"))[0] == 200
    wait_for(lambda: len(standin.spans()) >= 1, 30, "the span")
    assert sidecar.terminate() == 0
    (entry,) = [rs for _, request in standin.received["/v1/traces"] for rs in request.resource_spans]
    assert not entry.SerializeToString().endswith(UNKNOWN_FIELD)
    assert {a.key: a.value.string_value for a in entry.resource.attributes}["deployment"] == "e2e"


def test_a_forwarding_pipeline_sends_what_arrived_over_grpc(start_sidecar, aws_env, standin):
    sidecar = start_sidecar(forwarding_config(standin.url, ["batch"]), env=aws_env)
    address = sidecar.address("otlp", "grpc")

    sent = send_spans_with_sdk(GrpcSpanExporter(endpoint=f"http://{address}", insecure=True), "fwd", 60)
    channel = grpc.insecure_channel(address)
    raw_export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    raw_export(request_with_unknown_field("carries-field-99"), timeout=10)
    with pytest.raises(grpc.RpcError) as error:
        raw_export(request_with_unknown_field("cut")[:-5], timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "failed to decode Protobuf message" in error.value.details()

    assert_forwarded_as_sent(sidecar, standin, sent)
