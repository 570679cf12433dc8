"""Acceptance (issue 3, receiver half): the AWS X-Ray SDK sends to the sidecar's UDP port and the
emulator holds the same documents; malformed datagrams are counted and never cost a good one;
the sampling proxy signs and forwards; the traces half of the seed config runs unchanged."""

import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from aws_xray_sdk.core import AWSXRayRecorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_xray_sdk.core.context import Context

from conftest import BINARY, ROOT, TEST_TELEMETRY
from test_xray_export import fetch_documents, xray_client

GOOD_HEADER = b'{"format":"json","version":1}\n'


class RecordingEmitter(UDPEmitter):
    """The SDK's own UDP emitter, keeping a copy of every document it sends."""

    def __init__(self, address):
        super().__init__(address)
        self.sent = []

    def send_entity(self, entity):
        self.sent.append(json.loads(entity.serialize()))
        super().send_entity(entity)


def receiver_config(proxy=None):
    return {
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "receivers": {"awsxray": {"endpoint": "127.0.0.1:0",
                                  "proxy_server": dict({"endpoint": "127.0.0.1:0"}, **(proxy or {}))}},
        "processors": {"batch/traces": {"timeout": "200ms", "send_batch_size": 50}},
        "exporters": {"awsxray": {}},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"traces": {"receivers": ["awsxray"], "processors": ["batch/traces"],
                                             "exporters": ["awsxray"]}}},
    }


def flatten(document, parent=None):
    """The SDK embeds subsegments; X-Ray stores each one as its own document."""
    own = {k: v for k, v in document.items() if k != "subsegments"}
    if parent is not None:
        own["parent_id"] = parent
    yield own
    for child in document.get("subsegments", []):
        yield from flatten(child, document["id"])


def run_xray_app(udp_address, segments=3):
    emitter = RecordingEmitter(udp_address)
    recorder = AWSXRayRecorder()
    recorder.configure(sampling=False, context_missing="LOG_ERROR", daemon_address=udp_address,
                       emitter=emitter, service="checkout", context=Context())
    for n in range(segments):
        segment = recorder.begin_segment("checkout")
        segment.put_http_meta("method", "POST")
        segment.put_http_meta("url", f"http://shop/cart/{n}")
        segment.put_http_meta("status", 500)
        segment.put_annotation("tenant", "acme")
        segment.put_annotation("attempt", n)
        segment.put_metadata("cart", {"items": n, "note": "x"}, "debug")
        prices = recorder.begin_subsegment("prices", namespace="remote")
        prices.put_http_meta("method", "GET")
        prices.put_http_meta("url", "http://prices/api")
        prices.put_http_meta("status", 404)
        inner = recorder.begin_subsegment("parse")
        try:
            raise ValueError(f"bad price {n}")
        except ValueError as error:
            import traceback
            inner.add_exception(error, traceback.extract_stack())
        recorder.end_subsegment()
        recorder.end_subsegment()
        recorder.end_segment()
    return emitter.sent


def test_xray_sdk_segments_arrive_as_sent(start_sidecar, aws_env):
    sidecar = start_sidecar(receiver_config(), env=aws_env)
    sent = run_xray_app(sidecar.address("awsxray", "udp"))
    expected = [doc for top in sent for doc in flatten(top)]
    trace_ids = sorted({d["trace_id"] for d in sent})
    stored = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]), trace_ids, expected=len(expected))
    by_id = {d["id"]: d for d in stored}
    assert len(by_id) == len(expected) == 9
    for original in expected:
        got = by_id[original["id"]]
        assert got["name"] == original["name"]
        assert got.get("parent_id") == original.get("parent_id")
        assert got["trace_id"] == original.get("trace_id", got["trace_id"])
        assert abs(got["start_time"] - original["start_time"]) < 1e-6
        assert abs(got["end_time"] - original["end_time"]) < 1e-6
        if "http" in original:
            assert got["http"]["request"]["method"] == original["http"]["request"]["method"]
            assert got["http"]["request"]["url"] == original["http"]["request"]["url"]
            assert got["http"]["response"]["status"] == original["http"]["response"]["status"]
        assert got.get("annotations", {}) == original.get("annotations", {})
        if "metadata" in original:
            assert got["metadata"]["debug"] == original["metadata"]["debug"]
        if "cause" in original:
            [want] = original["cause"]["exceptions"]
            [have] = got["cause"]["exceptions"]
            for field in ("id", "type", "message"):
                assert have[field] == want[field], field
            assert [f["label"] for f in have["stack"]] == [f["label"] for f in want["stack"]]
        if original["name"] == "prices":
            assert (got["type"], got["namespace"]) == ("subsegment", "remote")
    assert sidecar.terminate() == 0


def test_malformed_datagrams_cost_no_good_segment(start_sidecar, aws_env):
    sidecar = start_sidecar(receiver_config(), env=aws_env)
    host, port = sidecar.address("awsxray", "udp").rsplit(":", 1)
    good = [
        {"name": "svc", "id": f"{n + 1:016x}", "trace_id": f"1-5f84c7a1-{n:024x}", "start_time": 1700000000.0 + n,
         "end_time": 1700000000.5 + n}
        for n in range(20)
    ]
    bad = {
        "missing_header": json.dumps(good[0]).encode(),
        "bad_header": b'{"format":"xml"}\n' + json.dumps(good[0]).encode(),
        "bad_json": GOOD_HEADER + b'{"name": "svc", ',
        "missing_field": GOOD_HEADER + b'{"id": "0000000000000001"}',
        "unexpected_namespace": GOOD_HEADER + json.dumps(dict(good[0], subsegments=[
            {"name": "c", "id": "00000000000000ff", "start_time": 1.0, "namespace": "galaxy"}])).encode(),
    }
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for n, segment in enumerate(good):
            udp.sendto(GOOD_HEADER + json.dumps(segment).encode(), (host, int(port)))
            reason = list(bad)[n % len(bad)]
            udp.sendto(bad[reason], (host, int(port)))
    stored = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]), [g["trace_id"] for g in good], expected=20)
    assert sorted(d["id"] for d in stored) == sorted(g["id"] for g in good)
    metrics = sidecar.self_metrics()
    for reason in bad:
        key = f'otelsidecar_receiver_bad_datagrams{{reason="{reason}",receiver="awsxray"}}'
        alt = f'otelsidecar_receiver_bad_datagrams{{receiver="awsxray",reason="{reason}"}}'
        assert metrics.get(key, metrics.get(alt)) == 4, (reason, metrics)
    assert metrics['otelcol_receiver_accepted_spans{receiver="awsxray",transport="udp"}'] == 20
    assert sidecar.terminate() == 0


class RecordedXRay(http.server.BaseHTTPRequestHandler):
    """A stand-in for the X-Ray sampling API: checks the signature header, answers a recording."""

    answer = {"SamplingRuleRecords": [{"SamplingRule": {"RuleName": "Default", "Priority": 10000,
                                                        "FixedRate": 0.05, "ReservoirSize": 1, "ServiceName": "*",
                                                        "ServiceType": "*", "Host": "*", "HTTPMethod": "*",
                                                        "URLPath": "*", "ResourceARN": "*", "Version": 1}}]}
    seen = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        RecordedXRay.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        reply = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def test_sampling_proxy_signs_and_forwards(start_sidecar, aws_env):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordedXRay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        upstream = f"http://127.0.0.1:{server.server_address[1]}"
        sidecar = start_sidecar(receiver_config({"aws_endpoint": upstream, "region": "eu-west-1"}), env=aws_env)
        request = urllib.request.Request(sidecar.url("awsxray/proxy", "http", "/GetSamplingRules"),
                                         data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert json.loads(response.read()) == RecordedXRay.answer
        path, headers, body = RecordedXRay.seen[-1]
        assert (path, body) == ("/GetSamplingRules", b"{}")
        authorization = headers["authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "/eu-west-1/xray/aws4_request" in authorization
        assert "Signature=" in authorization and "x-amz-date" in headers
        # Anything but a sampling call is refused, never signed with the task's credentials.
        forwarded = len(RecordedXRay.seen)
        for method, path in [("POST", "/TraceSegments"), ("POST", "/CreateGroup"), ("GET", "/GetSamplingRules")]:
            refused = urllib.request.Request(sidecar.url("awsxray/proxy", "http", path), data=b"{}" if method == "POST" else None,
                                             method=method)
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(refused, timeout=10)
            assert error.value.code == 403
        assert len(RecordedXRay.seen) == forwarded
        assert sidecar.terminate() == 0
    finally:
        server.shutdown()


def test_seed_config_runs_unchanged(tmp, aws_env):
    """No arguments: the embedded copy of the seed ECS config, byte for byte, with only a region,
    credentials and the emulator's endpoint in the environment."""
    import os
    import signal as sig

    from test_emf import logs_client, read_events
    from test_xray_export import send_app_spans, xray_trace_id

    shared = ROOT.parent / "shared" / "config" / "ecs-otel-config.yaml"
    if shared.exists():
        assert (ROOT / "config" / "ecs-default.yaml").read_bytes() == shared.read_bytes()
    env = dict(os.environ, **aws_env)
    env.pop("AOT_CONFIG_CONTENT", None)
    log = open(tmp / "seed.log", "w")
    # The seed config's log group is fixed: an earlier run against the same emulator left its
    # own events there, older than this run's.
    started_ms = int(time.time() * 1000)
    process = subprocess.Popen([str(BINARY)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run([str(BINARY), "healthcheck"], capture_output=True).returncode != 0:
            assert process.poll() is None, (tmp / "seed.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sent = run_xray_app("127.0.0.1:2000", segments=1)
        otel = send_app_spans("127.0.0.1:4317")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"seed.requests:3|c|#route:/chat\nseed.latency:12|ms", ("127.0.0.1", 8125))
        trace_ids = [sent[0]["trace_id"], xray_trace_id(otel["server"].trace_id)]
        stored = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]), trace_ids, expected=6)
        assert len(stored) == 6
        # The seed config aggregates for 60 s and batches metrics for 60 s: SIGTERM flushes both.
        time.sleep(0.5)
        process.send_signal(sig.SIGTERM)
        assert process.wait(timeout=30) == 0
        logs = logs_client(aws_env["AWS_ENDPOINT_URL"])
        streams = logs.describe_log_streams(logGroupName="/aws/ecs/application/metrics")["logStreams"]
        events = [e for s in streams for e in read_events(logs, "/aws/ecs/application/metrics", s["logStreamName"])]
        documents = [d for d in (json.loads(e["message"]) for e in events) if d["_aws"]["Timestamp"] >= started_ms]
        requests = [d for d in documents if "seed.requests" in d]
        assert [d["seed.requests"] for d in requests] == [3]
        assert requests[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ECS/OTEL/VM-X-AI"
        assert requests[0]["OTelLib"] == "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/statsdreceiver"
        assert any("seed.latency" in d for d in documents)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()


def differences(sent, stored, path=""):
    """Paths where `stored` differs from `sent`, descending into objects and lists."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        out = []
        for key in sorted(set(sent) | set(stored)):
            here = f"{path}.{key}" if path else key
            if key not in stored:
                out.append(f"{here}: dropped")
            elif key not in sent:
                out.append(f"{here}: added")
            else:
                out += differences(sent[key], stored[key], here)
        return out
    if isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        return [d for i, (a, b) in enumerate(zip(sent, stored)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(sent, float) and isinstance(stored, (int, float)) and abs(sent - stored) < 1e-6:
        return []
    return [] if sent == stored else [f"{path}: {sent!r} -> {stored!r}"]


def allowed_difference(difference, sent, stored):
    """What still differs between a document an X-Ray SDK sends and what reaches X-Ray through the
    sidecar (README, "Differences"): false flags written out where the SDK leaves them out and
    `in_progress: false` left out (the same to X-Ray), the namespace `local` left out (X-Ray's
    default), the SDK's `service.runtime*` fields, which have no place in the OTLP model, and the
    resource's `aws.xray` block (with `auto_instrumentation: false`) on every document."""
    key = difference.split(":")[0]
    return (
        (difference.endswith(": added") and stored.get(key) is False)
        or (difference == "in_progress: dropped" and sent["in_progress"] is False)
        or (difference == "namespace: dropped" and sent["namespace"] == "local")
        or difference == "service: dropped"
        or difference in ("aws: added", "aws.xray.auto_instrumentation: added")
    )


def test_xray_sdk_documents_reach_xray_field_by_field(start_sidecar, aws_env):
    sidecar = start_sidecar(receiver_config(), env=aws_env)
    address = sidecar.address("awsxray", "udp")
    emitter = RecordingEmitter(address)
    recorder = AWSXRayRecorder()
    recorder.configure(sampling=False, context_missing="LOG_ERROR", daemon_address=address,
                       emitter=emitter, service="orders", context=Context())
    segment = recorder.begin_segment("orders")
    segment.put_http_meta("method", "GET")
    segment.put_http_meta("url", "http://orders/list")
    segment.put_http_meta("client_ip", "203.0.113.9")
    segment.put_annotation("tenant", "acme")
    # Flags set by hand, with no HTTP status and no exception behind them.
    segment.add_error_flag()
    segment.add_throttle_flag()
    charge = recorder.begin_subsegment("charge", namespace="remote")
    charge.add_exception(RuntimeError("declined"), [("/app/pay.mjs", None, "charge"), ("/app/main.py", 12, "handler")])
    recorder.end_subsegment()
    audit = recorder.begin_subsegment("audit")
    audit.add_fault_flag()
    recorder.end_subsegment()
    recorder.end_segment()
    [sent] = emitter.sent
    expected = list(flatten(sent))
    stored = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]), [sent["trace_id"]], expected=len(expected))
    by_id = {d["id"]: d for d in stored}
    assert len(by_id) == len(expected) == 3
    # What the SDK sent, checked first so the test cannot pass on an empty document.
    top = expected[0]
    assert (top.get("error"), top.get("throttle"), top.get("fault")) == (True, True, None)
    assert top["http"]["request"].get("x_forwarded_for") is None
    charge_sent = next(d for d in expected if d["name"] == "charge")
    assert charge_sent["cause"]["working_directory"]
    assert charge_sent["cause"]["exceptions"][0]["stack"][0]["line"] is None
    for original in expected:
        found = set(differences(original, by_id[original["id"]]))
        unexpected = {d for d in found if not allowed_difference(d, original, by_id[original["id"]])}
        assert not unexpected, (original["name"], sorted(found), original, by_id[original["id"]])
    assert sidecar.terminate() == 0
