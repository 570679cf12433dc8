"""Acceptance: bad input gets the documented status and a reason, the process stays healthy, and
a valid request right after succeeds."""

import gzip
import json
import zlib

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import exported_spans, file_pipeline_config
from otlp_clients import post

STATUS_INVALID_ARGUMENT = 3


def valid_request(name="ok") -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes(range(1, 17))
    span.span_id = bytes(range(1, 9))
    span.name = name
    span.kind = trace_pb2.Span.SPAN_KIND_SERVER
    return request.SerializeToString()


def rpc_status(body: bytes, content_type: str):
    """Decodes a google.rpc.Status body in either encoding."""
    if content_type.startswith("application/json"):
        return json.loads(body)
    from google.rpc import status_pb2

    status = status_pb2.Status()
    status.ParseFromString(body)
    return {"code": status.code, "message": status.message}


def gzip_bomb(gib=1) -> bytes:
    """~1 MB of gzip that inflates to `gib` GiB: one 1 MiB member repeated."""
    member = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    return member * (1024 * gib)


@pytest.fixture
def sidecar(start_sidecar, tmp):
    config = file_pipeline_config(tmp / "out.jsonl", signals=("traces",))
    config["receivers"]["otlp"]["protocols"]["http"]["max_request_body_size"] = 4 * 1024 * 1024
    return start_sidecar(config)


def assert_still_serving(sidecar, name):
    status, _, body = post(sidecar.url("otlp", "http", "/v1/traces"), valid_request(name), "application/x-protobuf")
    assert status == 200, body
    health = sidecar.self_metrics()  # telemetry endpoint answers too
    assert health is not None
    assert sidecar.process.poll() is None


CASES = [
    # (name, body, content type, content encoding, status, text in the reason)
    ("truncated protobuf", valid_request()[:-7], "application/x-protobuf", None, 400, "invalid OTLP protobuf"),
    ("invalid JSON", b'{"resourceSpans": [', "application/json", None, 400, "invalid JSON"),
    ("wrong id length in JSON", b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"01"}]}]}]}', "application/json", None, 400, "traceId must be 32 hex"),
    ("not gzip", b"plain bytes", "application/x-protobuf", "gzip", 400, "invalid gzip body"),
    ("unsupported encoding", valid_request(), "application/x-protobuf", "br", 400, "unsupported Content-Encoding"),
    ("unsupported encoding, JSON reply", b"{}", "application/json", "snappy-ish", 400, "unsupported Content-Encoding"),
    ("body over the limit", b"\0" * (5 * 1024 * 1024), "application/x-protobuf", None, 413, "exceeds max_request_body_size (4194304 bytes)"),
    ("1 GiB gzip bomb", gzip_bomb(), "application/x-protobuf", "gzip", 413, "decompressed body exceeds max_request_body_size"),
    ("zlib bomb", zlib.compress(b"\0" * (64 << 20)), "application/json", "deflate", 413, "decompressed body exceeds"),
]


@pytest.mark.parametrize("name,body,content_type,encoding,status,reason", CASES, ids=[c[0] for c in CASES])
def test_bad_http_bodies_are_refused_with_a_reason(sidecar, tmp, name, body, content_type, encoding, status, reason):
    got, headers, reply = post(sidecar.url("otlp", "http", "/v1/traces"), body, content_type, encoding)
    assert got == status, reply
    assert headers["content-type"] == content_type
    decoded = rpc_status(reply, content_type)
    assert reason in decoded["message"], decoded
    if status == 400:
        assert decoded["code"] == STATUS_INVALID_ARGUMENT
    assert_still_serving(sidecar, f"after {name}")
    rss_mib = sidecar.rss_kib() / 1024
    assert rss_mib < 200, f"RSS {rss_mib:.0f} MiB after {name}"
    assert sidecar.terminate() == 0
    assert [s["name"] for _, _, s in exported_spans(tmp / "out.jsonl")] == [f"after {name}"]


def test_http_routing_errors_match_the_collector(sidecar):
    url = sidecar.url("otlp", "http", "/v1/traces")
    got, headers, reply = post(url, valid_request(), "text/plain")
    assert got == 415
    assert reply == b"415 unsupported media type, supported: [application/json, application/x-protobuf]"
    import urllib.request, urllib.error

    try:
        urllib.request.urlopen(url)
        raise AssertionError("GET must fail")
    except urllib.error.HTTPError as error:
        assert error.code == 405
        assert error.read() == b"405 method not allowed, supported: [POST]"
    # No logs pipeline: /v1/logs is not served, as in the collector.
    got, _, reply = post(sidecar.url("otlp", "http", "/v1/logs"), b"", "application/x-protobuf")
    assert (got, reply) == (404, b"404 page not found\n")
    assert_still_serving(sidecar, "after routing errors")


def test_grpc_bad_input_and_unserved_signals(sidecar):
    channel = grpc.insecure_channel(sidecar.address("otlp", "grpc"))
    raw_export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as error:
        raw_export(valid_request()[:-7], timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details()
    # Over max_recv_msg_size_mib (4 MiB by default).
    with pytest.raises(grpc.RpcError) as error:
        raw_export(b"\0" * (5 * 1024 * 1024), timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Logs are consumed by no pipeline: UNIMPLEMENTED.
    logs = logs_service_pb2_grpc.LogsServiceStub(channel)
    with pytest.raises(grpc.RpcError) as error:
        logs.Export(logs_service_pb2.ExportLogsServiceRequest(), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # And a good one right after.
    assert raw_export(valid_request(), timeout=10) == b""
    channel.close()
    assert_still_serving(sidecar, "after grpc errors")
