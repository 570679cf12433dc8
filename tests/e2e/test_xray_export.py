"""Acceptance (issue 3, exporter half): spans from the OpenTelemetry Python SDK become X-Ray
segment documents in the emulator, with the right type, parent_id, namespace, http block and
fault/error flags; and an emulator outage loses nothing."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import boto3
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from conftest import file_pipeline_config


def xray_config(extra_exporter=None):
    config = file_pipeline_config("/dev/null", signals=("traces",), batch={"timeout": "200ms", "send_batch_size": 50})
    config["exporters"] = {"awsxray": extra_exporter or {}}
    config["service"]["pipelines"]["traces"]["exporters"] = ["awsxray"]
    return config


def xray_client(endpoint):
    return boto3.client("xray", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def xray_trace_id(trace_id: int) -> str:
    h = f"{trace_id:032x}"
    return f"1-{h[:8]}-{h[8:]}"


def fetch_documents(client, trace_ids, expected, timeout=60.0):
    """Every segment document stored for these traces, polling until `expected` are there."""
    deadline = time.monotonic() + timeout
    while True:
        documents = []
        for start in range(0, len(trace_ids), 5):
            reply = client.batch_get_traces(TraceIds=trace_ids[start:start + 5])
            for trace in reply["Traces"]:
                documents += [json.loads(s["Document"]) for s in trace["Segments"]]
        if len(documents) >= expected or time.monotonic() > deadline:
            return documents
        time.sleep(0.2)


def send_app_spans(endpoint, id_generator=None):
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout", "cloud.provider": "aws"}),
        **({"id_generator": id_generator} if id_generator else {}),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("e2e")
    ids = {}
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER,
                                      attributes={"http.method": "GET", "http.url": "http://shop/cart",
                                                  "http.status_code": 500}) as server:
        ids["server"] = server.get_span_context()
        with tracer.start_as_current_span("load cart", kind=SpanKind.INTERNAL) as internal:
            ids["internal"] = internal.get_span_context()
            with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT,
                                              attributes={"http.request.method": "GET", "url.full": "http://prices/api",
                                                          "http.response.status_code": 404, "peer.service": "prices"}) as client:
                ids["client"] = client.get_span_context()
        try:
            raise ValueError("cart exploded")
        except ValueError as error:
            server.record_exception(error)
            server.set_status(Status(StatusCode.ERROR, "cart exploded"))
    assert provider.force_flush(30_000)
    provider.shutdown()
    return ids


@pytest.mark.parametrize("id_generator", [None, AwsXRayIdGenerator()], ids=["w3c-ids", "xray-ids"])
def test_otel_spans_land_in_xray(start_sidecar, aws_env, id_generator):
    sidecar = start_sidecar(xray_config(), env=aws_env)
    ids = send_app_spans(sidecar.address("otlp", "grpc"), id_generator)
    trace_id = xray_trace_id(ids["server"].trace_id)
    documents = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]), [trace_id], expected=3)
    by_id = {d["id"]: d for d in documents}
    assert len(by_id) == 3, documents

    server = by_id[f"{ids['server'].span_id:016x}"]
    assert server["trace_id"] == trace_id
    assert server["name"] == "checkout"
    assert "type" not in server and "parent_id" not in server
    assert server["http"]["request"] == {"method": "GET", "url": "http://shop/cart"}
    assert server["http"]["response"]["status"] == 500
    assert (server["fault"], server["error"]) == (True, False)
    [exception] = server["cause"]["exceptions"]
    assert exception["type"] == "ValueError" and exception["message"] == "cart exploded"
    assert exception["stack"][0]["label"] == "send_app_spans"
    assert server["aws"]["xray"]["sdk"] == "opentelemetry for python"

    internal = by_id[f"{ids['internal'].span_id:016x}"]
    assert internal["type"] == "subsegment"
    assert internal["parent_id"] == server["id"]
    assert "namespace" not in internal
    assert internal["name"] == "load cart"

    client = by_id[f"{ids['client'].span_id:016x}"]
    assert client["type"] == "subsegment"
    assert client["parent_id"] == internal["id"]
    assert client["namespace"] == "remote"
    assert client["name"] == "prices"
    assert client["http"] == {"request": {"method": "GET", "url": "http://prices/api"}, "response": {"status": 404}}
    assert (client["fault"], client["error"], client["throttle"]) == (False, True, False)
    assert sidecar.terminate() == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port):
    process = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return process
        except Exception:
            time.sleep(0.05)
    raise AssertionError("moto did not start")


def test_an_emulator_outage_loses_nothing(start_sidecar, aws_env, tmp):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = start_moto(port)
    env = dict(aws_env, AWS_ENDPOINT_URL=endpoint)
    retry = {"initial_interval": "500ms", "max_interval": "2s", "max_elapsed_time": "120s"}
    sidecar = start_sidecar(xray_config({"retry_on_failure": retry, "request_timeout_seconds": 2}), env=env)
    grpc_endpoint = sidecar.address("otlp", "grpc")
    try:
        before = send_app_spans(grpc_endpoint)
        before_id = xray_trace_id(before["server"].trace_id)
        assert len(fetch_documents(xray_client(endpoint), [before_id], expected=3)) == 3

        moto.send_signal(signal.SIGTERM)
        moto.wait()
        during = [send_app_spans(grpc_endpoint) for _ in range(5)]
        time.sleep(10)  # the outage itself: the exporter keeps retrying meanwhile
        metrics = sidecar.self_metrics()
        moto = start_moto(port)

        during_ids = [xray_trace_id(ids["server"].trace_id) for ids in during]
        documents = fetch_documents(xray_client(endpoint), during_ids, expected=15, timeout=90)
        keys = [(d["trace_id"], d["id"]) for d in documents]
        assert len(keys) == 15, "every span sent during the outage arrives"
        assert len(set(keys)) == 15, "none duplicated"
        assert not any(k.startswith("otelsidecar_xray_documents_dropped") for k in metrics)
        # Stopped while the emulator is still up: a retry of a late answer can still be draining.
        assert sidecar.terminate() == 0
    finally:
        moto.terminate()
        moto.wait()


def test_no_region_is_a_clear_start_up_error(tmp):
    import yaml
    from conftest import BINARY

    path = tmp / "xray.yaml"
    path.write_text(yaml.safe_dump(xray_config({"local_mode": True})))
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_REGION", "AWS_DEFAULT_REGION", "ECS_CONTAINER_METADATA_URI_V4", "AOT_CONFIG_CONTENT")}
    result = subprocess.run([str(BINARY), "--config", str(path)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 1
    assert "exporters.awsxray" in result.stderr
    assert "cannot fetch region variable from config file, environment variables or ECS task metadata" in result.stderr
