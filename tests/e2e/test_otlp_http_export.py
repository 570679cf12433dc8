"""Acceptance (issue 31, the path AWS documents today): the `otlp_http` exporter signed by
`sigv4auth`, as AWS's documentation configures it, delivers traces, logs and metrics from the
OpenTelemetry Python SDK to the X-Ray, CloudWatch Logs and CloudWatch OTLP endpoints (a loopback
stand-in that verifies every SigV4 signature with botocore), each item once; throttling is
retried, a partial success is counted and not retried, SIGTERM loses nothing."""

import logging
import time
import urllib.request

import boto3
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from aws_otlp_standin import AwsOtlpStandIn, verify_signature
from otlp_clients import send_spans_with_sdk

KEYS = {"testing": ("testing", None)}


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def logs_client(aws_env):
    return boto3.client("logs", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def standin(logs_client):
    standin = AwsOtlpStandIn(KEYS, logs_client=logs_client)
    yield standin
    standin.close()


def documented_config(url, group, stream, batch_timeout="200ms"):
    """AWS's documented pipelines (traces and logs with `otlp_http` + `sigv4auth`, metrics with
    `otlphttp`), the endpoints pointed at the stand-in; region and service given, as the
    documentation does."""
    return {
        "extensions": {
            "health_check": {"endpoint": "127.0.0.1:0"},
            "sigv4auth/logs": {"region": "us-east-1", "service": "logs"},
            "sigv4auth/traces": {"region": "us-east-1", "service": "xray"},
            "sigv4auth/metrics": {"region": "us-east-1", "service": "monitoring"},
        },
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"},
                                             "http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"batch": {"timeout": batch_timeout}},
        "exporters": {
            "otlp_http/logs": {"compression": "gzip", "logs_endpoint": f"{url}/v1/logs",
                               "headers": {"x-aws-log-group": group, "x-aws-log-stream": stream},
                               "auth": {"authenticator": "sigv4auth/logs"}},
            "otlp_http/traces": {"compression": "gzip", "traces_endpoint": f"{url}/v1/traces",
                                 "auth": {"authenticator": "sigv4auth/traces"},
                                 "retry_on_failure": {"initial_interval": "100ms", "max_interval": "200ms"}},
            "otlphttp/metrics": {"metrics_endpoint": f"{url}/v1/metrics",
                                 "auth": {"authenticator": "sigv4auth/metrics"}},
        },
        "service": {
            "extensions": ["sigv4auth/logs", "sigv4auth/traces", "sigv4auth/metrics", "health_check"],
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlp_http/traces"]},
                "logs": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlp_http/logs"]},
                "metrics": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlphttp/metrics"]},
            },
        },
    }


def send_logs(http_address, count):
    provider = LoggerProvider(resource=Resource.create({"service.name": "e2e-logs"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=f"http://{http_address}/v1/logs")))
    logger = logging.getLogger(f"e2e-otlp-{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(LoggingHandler(logger_provider=provider))
    for n in range(count):
        logger.warning("order %d placed", n, extra={"order.id": n})
    provider.force_flush()
    provider.shutdown()


def send_metrics(http_address):
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"http://{http_address}/v1/metrics"), export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": "e2e-metrics"}), metric_readers=[reader])
    counter = provider.get_meter("e2e").create_counter("orders.placed")
    counter.add(3, {"route": "/checkout"})
    counter.add(4, {"route": "/cart"})
    provider.shutdown()  # one export: the reader's last collection


def test_the_standin_refuses_a_tampered_body_and_a_wrong_key():
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def signed(key, secret, body):
        request = AWSRequest(method="POST", url="http://127.0.0.1:1/v1/traces", data=body,
                             headers={"content-type": "application/x-protobuf"})
        SigV4Auth(Credentials(key, secret), "xray", "us-east-1").add_auth(request)
        return {k.lower(): v for k, v in request.headers.items()} | {"host": "127.0.0.1:1"}

    headers = signed("testing", "testing", b"spans")
    assert verify_signature("POST", "/v1/traces", headers, b"spans", KEYS, "us-east-1") is None
    assert verify_signature("POST", "/v1/traces", headers, b"spanz", KEYS, "us-east-1") == "signature does not match"
    wrong_secret = signed("testing", "not-the-secret", b"spans")
    assert verify_signature("POST", "/v1/traces", wrong_secret, b"spans", KEYS, "us-east-1") == "signature does not match"
    other_key = signed("AKIDOTHER", "testing", b"spans")
    assert verify_signature("POST", "/v1/traces", other_key, b"spans", KEYS, "us-east-1") == "unknown access key AKIDOTHER"
    # Signed for the logs service, sent to the traces path.
    request = AWSRequest(method="POST", url="http://127.0.0.1:1/v1/traces", data=b"spans")
    SigV4Auth(Credentials("testing", "testing"), "logs", "us-east-1").add_auth(request)
    wrong_service = {k.lower(): v for k, v in request.headers.items()} | {"host": "127.0.0.1:1"}
    assert "is not us-east-1/xray" in verify_signature("POST", "/v1/traces", wrong_service, b"spans", KEYS, "us-east-1")


def test_documented_config_delivers_traces_logs_and_metrics_once(start_sidecar, aws_env, standin, logs_client):
    group, stream = "/otel/e2e/documented", "sidecar"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName=stream)
    sidecar = start_sidecar(documented_config(standin.url, group, stream), env=aws_env)

    sent = send_spans_with_sdk(OTLPSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True), "aws", 40)
    send_logs(sidecar.address("otlp", "http"), 25)
    send_metrics(sidecar.address("otlp", "http"))
    wait_for(lambda: len(standin.spans()) >= 40 and len(standin.log_records()) >= 25 and standin.metrics(),
             30, "traces, logs and metrics at the stand-in")
    assert sidecar.terminate() == 0
    assert standin.refused == [], standin.refused

    spans = standin.spans()
    assert sorted(s.span_id.hex() for s in spans) == sorted(f"{s.context.span_id:016x}" for s in sent), "each span once"
    # W3C trace ids pass unchanged, attributes with them.
    assert {s.trace_id.hex() for s in spans} == {f"{s.context.trace_id:032x}" for s in sent}
    parent = next(s for s in spans if s.name == "aws-parent-0")
    assert {a.key: a.value.int_value for a in parent.attributes if a.key == "i"} == {"i": 0}
    records = standin.log_records()
    assert sorted(r.body.string_value for r in records) == sorted(f"order {n} placed" for n in range(25))
    assert all(any(a.key == "order.id" for a in r.attributes) for r in records)
    for headers, _ in standin.received["/v1/logs"]:
        assert headers["x-aws-log-group"] == group and headers["x-aws-log-stream"] == stream
        assert headers["content-encoding"] == "gzip"
    (metric,) = standin.metrics()
    assert metric.name == "orders.placed"
    points = {p.attributes[0].value.string_value: p.as_int for p in metric.sum.data_points}
    assert points == {"/checkout": 3, "/cart": 4}


def test_throttling_is_retried_and_a_partial_success_is_counted_not_retried(start_sidecar, aws_env, standin):
    config = documented_config(standin.url, "/unused", "unused")
    config["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "exporters": ["otlp_http/traces"]}}
    config["service"]["extensions"] = ["sigv4auth/traces"]
    standin.script("/v1/traces", ("status", 429, 1), ("status", 503, None))
    sidecar = start_sidecar(config, env=aws_env)
    sent = send_spans_with_sdk(OTLPSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True), "throttled", 10)
    wait_for(lambda: len(standin.spans()) >= 10, 30, "spans after 429 and 503")
    assert standin.requests["/v1/traces"] == 3, "one refused by 429, one by 503, then taken"
    assert sorted(s.span_id.hex() for s in standin.spans()) == sorted(f"{s.context.span_id:016x}" for s in sent)

    standin.script("/v1/traces", ("partial", 4, "4 spans too old"))
    send_spans_with_sdk(OTLPSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True), "partial", 10)
    wait_for(lambda: len(standin.spans()) >= 20, 30, "the partially accepted request")
    metric = 'otelsidecar_otlp_items_dropped{exporter="otlp_http/traces",reason="rejected"}'
    wait_for(lambda: sidecar.self_metrics().get(metric) == 4, 10, "the rejected spans counted")
    assert standin.requests["/v1/traces"] == 4, "a partial success is not retried"
    assert sidecar.terminate() == 0
    assert "the OTLP destination rejected items (partial success)" in sidecar.log_path.read_text()


def test_an_authenticator_that_is_not_configured_is_refused_by_validate(tmp):
    import subprocess

    import yaml

    from conftest import BINARY
    config = documented_config("http://127.0.0.1:9", "/g", "s")
    config["service"]["extensions"].remove("sigv4auth/traces")
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert ('exporters.otlp_http/traces.auth.authenticator: "sigv4auth/traces": expected a sigv4auth '
            'extension listed in service.extensions') in result.stderr, result.stderr


def test_xray_sdk_segments_reach_the_xray_otlp_endpoint(start_sidecar, aws_env, standin):
    from test_xray_receiver import flatten, run_xray_app

    config = documented_config(standin.url, "/unused", "unused")
    config["receivers"]["awsxray"] = {"endpoint": "127.0.0.1:0", "proxy_server": {"endpoint": "127.0.0.1:0"}}
    config["service"]["pipelines"] = {
        "traces": {"receivers": ["awsxray"], "processors": ["batch"], "exporters": ["otlp_http/traces"]}}
    config["service"]["extensions"] = ["sigv4auth/traces"]
    sidecar = start_sidecar(config, env=aws_env)
    sent = [doc for top in run_xray_app(sidecar.address("awsxray", "udp")) for doc in flatten(top)]
    wait_for(lambda: len(standin.spans()) >= len(sent) == 9, 30, "the segments as spans")
    assert sidecar.terminate() == 0
    assert standin.refused == []

    def attributes(span):
        def value(v):
            kind = v.WhichOneof("value")
            return list(value(x) for x in v.array_value.values) if kind == "array_value" else getattr(v, kind)
        return {a.key: value(a.value) for a in span.attributes}

    spans = {s.span_id.hex(): s for s in standin.spans()}
    assert sorted(spans) == sorted(d["id"] for d in sent), "every segment and subsegment once, with its id"
    for document in sent:
        span, attrs = spans[document["id"]], attributes(spans[document["id"]])
        # X-Ray trace ids `1-<8 hex time>-<24 hex>` are the 32 hex digits of the OTLP id.
        assert span.trace_id.hex() == document["trace_id"].replace("1-", "", 1).replace("-", "")
        assert span.name == document["name"]
        if "parent_id" in document:
            assert span.parent_span_id.hex() == document["parent_id"]
        if document["name"] == "checkout":
            assert attrs["tenant"] == "acme" and attrs["attempt"] == document["annotations"]["attempt"]
            assert "tenant" in attrs["aws.xray.annotations"]
            assert '"items"' in attrs["aws.xray.metadata.debug"]
            assert (attrs["http.method"], attrs["http.status_code"]) == ("POST", 500)
            assert attrs["aws.xray.fault"] is True
        if document["name"] == "parse":
            [event] = [e for e in span.events if e.name == "exception"]
            message = {a.key: a.value.string_value for a in event.attributes}["exception.message"]
            assert message == document["cause"]["exceptions"][0]["message"]


def test_rotating_task_role_keys_sign_every_request(start_sidecar, aws_env, logs_client):
    """Credentials as ECS hands them out: the task role from the container credentials endpoint,
    rotated between rounds with the old key retired at once. Every request (OTLP to the
    stand-in, PutTraceSegments and PutLogEvents through verifying proxies to moto) is signed
    with the key current when it is sent."""
    from aws_otlp_standin import LiveKeys, RotatingContainerCredentials, VerifyingProxy
    from test_xray_export import fetch_documents, xray_client

    creds = RotatingContainerCredentials()
    live = LiveKeys(creds.keys)
    standin = AwsOtlpStandIn(live)
    xray_proxy = VerifyingProxy(aws_env["AWS_ENDPOINT_URL"], live, "xray")
    logs_proxy = VerifyingProxy(aws_env["AWS_ENDPOINT_URL"], live, "logs")
    group, stream = "/otel/e2e/rotation", "emf"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName=stream)
    try:
        config = documented_config(standin.url, "/unused", "unused", batch_timeout="100ms")
        config["exporters"]["awsxray"] = {"endpoint": xray_proxy.url}
        config["exporters"]["awsemf"] = {"endpoint": logs_proxy.url, "namespace": "E2E/Rotation",
                                         "log_group_name": group, "log_stream_name": stream}
        config["service"]["extensions"] = ["sigv4auth/traces"]
        config["service"]["pipelines"] = {
            "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlp_http/traces", "awsxray"]},
            "metrics": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["awsemf"]},
        }
        env = {k: v for k, v in aws_env.items() if not k.startswith("AWS_ACCESS_KEY_ID") and k != "AWS_SECRET_ACCESS_KEY"}
        env.update({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": creds.url,
                    "AWS_EC2_METADATA_DISABLED": "true", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"})
        sidecar = start_sidecar(config, env=env)
        sent = []
        for round_ in range(3):
            sent += send_spans_with_sdk(OTLPSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True),
                                        f"rotation{round_}", 6)
            send_metrics(sidecar.address("otlp", "http"))
            forwarded = (xray_proxy.forwarded, logs_proxy.forwarded)
            wait_for(lambda: len(standin.spans()) >= len(sent), 30, f"round {round_}: spans at the OTLP endpoint")
            wait_for(lambda: xray_proxy.forwarded > forwarded[0] and logs_proxy.forwarded > forwarded[1], 30,
                     f"round {round_}: PutTraceSegments and PutLogEvents")
            creds.rotate()
        assert sidecar.terminate() == 0
        assert standin.refused == [] and xray_proxy.refused == [] and logs_proxy.refused == [], (
            standin.refused, xray_proxy.refused, logs_proxy.refused)
        otlp_keys = {headers["authorization"].split("Credential=")[1].split("/")[0]
                     for headers, _ in standin.received["/v1/traces"]}
        assert len(otlp_keys) == 3, otlp_keys
        assert len(set(xray_proxy.access_keys)) == 3 and len(set(logs_proxy.access_keys)) == 3
        assert sorted(s.span_id.hex() for s in standin.spans()) == sorted(f"{s.context.span_id:016x}" for s in sent)
        trace_ids = sorted({f"1-{s.context.trace_id:032x}"[:10] + "-" + f"{s.context.trace_id:032x}"[8:] for s in sent})
        stored = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]), trace_ids, expected=len(sent))
        assert {d["id"] for d in stored} == {f"{s.context.span_id:016x}" for s in sent}
    finally:
        for server in (standin, xray_proxy, logs_proxy, creds):
            server.close()


def test_tls_with_a_test_ca_and_a_client_certificate(start_sidecar, aws_env, tmp):
    """`tls.ca_file` is the only CA trusted (as in the collector), and `cert_file` / `key_file`
    answer a server that asks for a client certificate: OTLP to a gateway over mutual TLS."""
    import subprocess
    d = tmp / "tls"
    d.mkdir()
    run = lambda *args: subprocess.run(args, cwd=d, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-subj", "/CN=e2e test CA", "-days", "1")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "1", "-extfile", "san.ext")
    gateway = AwsOtlpStandIn(KEYS, tls=(str(d / "server.crt"), str(d / "server.key"), str(d / "ca.crt")))
    try:
        config = {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
            "exporters": {"otlp_http": {"endpoint": gateway.url, "tls": {
                "ca_file": str(d / "ca.crt"), "cert_file": str(d / "client.crt"), "key_file": str(d / "client.key")},
                "auth": {"authenticator": "sigv4auth"}}},
            "extensions": {"sigv4auth": {"region": "us-east-1", "service": "xray"}},
            "service": {"extensions": ["sigv4auth"],
                        "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp_http"]}}},
        }
        sidecar = start_sidecar(config, env=aws_env)
        sent = send_spans_with_sdk(OTLPSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True), "tls", 8)
        wait_for(lambda: len(gateway.spans()) >= 8, 30, "spans over mutual TLS")
        assert sorted(s.span_id.hex() for s in gateway.spans()) == sorted(f"{s.context.span_id:016x}" for s in sent)
        assert sidecar.terminate() == 0
    finally:
        gateway.close()


def test_assume_role_signs_with_the_role_moto_sts_issued(start_sidecar, aws_env):
    """`assume_role`: the requests are signed with the keys moto's STS issued for the role and
    session named, read back from moto's own record of them; the task's own key is refused."""
    import json as json_module

    from aws_otlp_standin import LiveKeys

    def assumed_keys():
        data = json_module.loads(urllib.request.urlopen(aws_env["AWS_ENDPOINT_URL"] + "/moto-api/data.json").read())
        return {role["access_key_id"]: (role["secret_access_key"], role["session_token"])
                for role in data.get("sts", {}).get("AssumedRole", [])
                if role["role_arn"] == "arn:aws:iam::123456789012:role/otel-export"
                and role["session_name"] == "otel-e2e"}

    standin = AwsOtlpStandIn(LiveKeys(assumed_keys))
    try:
        config = documented_config(standin.url, "/unused", "unused")
        config["extensions"]["sigv4auth/traces"]["assume_role"] = {
            "arn": "arn:aws:iam::123456789012:role/otel-export", "session_name": "otel-e2e", "sts_region": "us-east-1"}
        config["service"]["extensions"] = ["sigv4auth/traces"]
        config["service"]["pipelines"] = {
            "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlp_http/traces"]}}
        sidecar = start_sidecar(config, env=aws_env)
        sent = send_spans_with_sdk(OTLPSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True), "role", 10)
        wait_for(lambda: len(standin.spans()) >= 10, 30, "spans signed as the assumed role")
        assert sidecar.terminate() == 0
        assert standin.refused == [], standin.refused
        assert len(assumed_keys()) >= 1 and "testing" not in assumed_keys()
        assert sorted(s.span_id.hex() for s in standin.spans()) == sorted(f"{s.context.span_id:016x}" for s in sent)
    finally:
        standin.close()
