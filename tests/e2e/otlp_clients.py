"""Helpers that drive the real OpenTelemetry Python SDK exporters, plus the OTLP/JSON encoding
the SDK lacks (protobuf's JSON mapping with ids rewritten as hex, per the OTLP spec)."""

import base64
import gzip
import json
import urllib.error
import urllib.request

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def make_spans(tracer, prefix, count):
    """`count` spans in parent/child pairs with a few attribute types."""
    for i in range(0, count, 2):
        with tracer.start_as_current_span(f"{prefix}-parent-{i}", attributes={"i": i, "prefix": prefix}) as parent:
            parent.set_attribute("ratio", i / 10)
            parent.set_attribute("ok", True)
            with tracer.start_as_current_span(f"{prefix}-child-{i}", attributes={"tags": ["a", "b"]}):
                pass


def send_spans_with_sdk(exporter, prefix, count):
    """Sends `count` spans through `exporter`; returns what the SDK recorded, for comparison."""
    recorded = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"e2e-{prefix}"}))
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=200))
    make_spans(provider.get_tracer("e2e", "1.0"), prefix, count)
    assert provider.force_flush(30_000), "SDK could not flush"
    provider.shutdown()
    return recorded.get_finished_spans()


def hexify_ids(node):
    """protobuf's JSON mapping writes bytes as base64; OTLP/JSON wants ids in hex."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                hexify_ids(value)
    elif isinstance(node, list):
        for item in node:
            hexify_ids(item)
    return node


def spans_as_otlp_json(spans) -> bytes:
    document = MessageToDict(encode_spans(spans))
    return json.dumps(hexify_ids(document)).encode()


def post(url, body: bytes, content_type, encoding=None, timeout=60):
    """POST and return (status, headers, body) without raising on HTTP errors."""
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)
