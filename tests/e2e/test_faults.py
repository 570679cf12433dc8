"""Acceptance (issue 17, fault injection): between the sidecar and the emulator a proxy adds
latency, resets connections, answers 500 / 503 / 429 / ThrottlingException / an expired token,
and reports segments unprocessed or log events rejected. For each fault every accepted span and
point arrives exactly once (or is counted as dropped when the error is permanent), health stays
OK, and a SIGTERM in the middle still exits 0 with nothing accepted lost."""

import http.server
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from test_emf import logs_client, read_events
from test_xray_export import fetch_documents, xray_client, xray_trace_id

XRAY_FAULTS = ["latency", "reset", "http500", "http503", "http429", "throttling", "expired", "unprocessed"]
EMF_FAULTS = ["latency", "reset", "http500", "http503", "http429", "throttling", "expired", "rejected"]
FAULTY_REQUESTS = 3
# A debug build holding a few hundred items behind a failing destination: well under this.
RSS_BOUND_KIB = 128 * 1024


class FaultProxy:
    """Forwards to the emulator; the first FAULTY_REQUESTS data calls get the fault."""

    def __init__(self, upstream, fault):
        self.fault, self.faulted, self.lock = fault, 0, threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def reply(self, status, body, content_type="application/x-amz-json-1.1"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def forward(self, body):
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        return answer.status, answer.read(), answer.headers.get("Content-Type", "application/json")
                except urllib.error.HTTPError as error:
                    return error.code, error.read(), error.headers.get("Content-Type", "application/json")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                data_call = self.path == "/TraceSegments" or target.endswith("PutLogEvents")
                with proxy.lock:
                    faulty = data_call and proxy.faulted < (1 if proxy.fault in ("expired", "unprocessed", "rejected") else FAULTY_REQUESTS)
                    proxy.faulted += faulty
                fault = proxy.fault if faulty else None
                error = lambda status, kind: self.reply(status, json.dumps({"__type": kind, "message": f"injected {kind}"}).encode())
                if fault == "latency":
                    time.sleep(2)
                elif fault == "reset":
                    # No answer: the connection is torn down (RST) under the request.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                elif fault == "http500":
                    return error(500, "InternalFailure")
                elif fault == "http503":
                    return error(503, "ServiceUnavailableException")
                elif fault == "http429":
                    return error(429, "ThrottlingException")
                elif fault == "throttling":
                    return error(400, "ThrottlingException")
                elif fault == "expired":
                    return error(400, "ExpiredTokenException")
                elif fault == "unprocessed":
                    # Two documents held back from the emulator and reported unprocessed.
                    request = json.loads(body)
                    held, kept = request["TraceSegmentDocuments"][:2], request["TraceSegmentDocuments"][2:]
                    status, answer, content_type = self.forward(json.dumps({"TraceSegmentDocuments": kept}).encode())
                    answer = json.loads(answer or b"{}")
                    answer.setdefault("UnprocessedTraceSegments", []).extend(
                        {"Id": json.loads(d)["id"], "ErrorCode": "ThrottledException", "Message": "injected"} for d in held)
                    return self.reply(status, json.dumps(answer).encode(), content_type)
                elif fault == "rejected":
                    # The first event held back and reported too old: a permanent rejection.
                    request = json.loads(body)
                    held = request["logEvents"][0]
                    request["logEvents"] = request["logEvents"][1:]
                    status, answer, content_type = self.forward(json.dumps(request).encode())
                    if status != 200:
                        # Not stored at all (the group did not exist yet): the next call gets it.
                        with proxy.lock:
                            proxy.faulted -= 1
                        return self.reply(status, answer, content_type)
                    proxy.rejected = held
                    answer = json.loads(answer or b"{}")
                    answer["rejectedLogEventsInfo"] = {"tooOldLogEventEndIndex": 1}
                    return self.reply(status, json.dumps(answer).encode(), content_type)
                status, answer, content_type = self.forward(body)
                self.reply(status, answer, content_type)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


def fault_config(group):
    retry = {"initial_interval": "100ms", "max_interval": "500ms", "max_elapsed_time": "60s"}
    return {
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
                      "statsd": {"endpoint": "127.0.0.1:0", "aggregation_interval": "60s"}},
        "processors": {"batch": {"timeout": "100ms", "send_batch_size": 50}},
        "exporters": {"awsxray": {"retry_on_failure": retry, "max_retries": 0},
                      "awsemf": {"namespace": "E2E/Faults", "log_group_name": group, "log_stream_name": "faults",
                                 "retry_on_failure": retry, "max_retries": 0}},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["awsxray"]},
                                  "metrics": {"receivers": ["statsd"], "processors": ["batch"], "exporters": ["awsemf"]}}},
    }


def send_spans(endpoint, count):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("faults")
    ids = []
    for n in range(count):
        with tracer.start_as_current_span(f"job {n}", kind=SpanKind.SERVER) as span:
            ids.append(span.get_span_context())
    assert provider.force_flush(30_000)
    provider.shutdown()
    return ids


@pytest.mark.parametrize("fault", XRAY_FAULTS)
def test_spans_arrive_exactly_once_through_faults(fault, start_sidecar, aws_env, tmp):
    proxy = FaultProxy(aws_env["AWS_ENDPOINT_URL"], fault)
    try:
        sidecar = start_sidecar(fault_config(f"/e2e/faults/{tmp.name}"), env=dict(aws_env, AWS_ENDPOINT_URL=proxy.url))
        contexts = send_spans(sidecar.address("otlp", "grpc"), 60)
        assert urllib.request.urlopen(sidecar.url("health_check", "http", "/")).status == 200
        assert sidecar.rss_kib() < RSS_BOUND_KIB, "memory stays bounded while the fault lasts"
        # SIGTERM while the faults are still being answered: the drain retries them.
        started = time.monotonic()
        assert sidecar.terminate() == 0
        assert time.monotonic() - started < 20, "within the grace period"
        trace_ids = sorted({xray_trace_id(c.trace_id) for c in contexts})
        documents = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]), trace_ids, expected=60, timeout=30)
        ids = [d["id"] for d in documents]
        assert len(ids) == len(set(ids)) == 60, (fault, len(ids), len(set(ids)))
        assert proxy.faulted >= 1, "the fault was injected"
    finally:
        proxy.close()


@pytest.mark.parametrize("fault", EMF_FAULTS)
def test_points_arrive_exactly_once_through_faults(fault, start_sidecar, aws_env, tmp):
    group = f"/e2e/faults/{tmp.name}-{time.time_ns()}"
    proxy = FaultProxy(aws_env["AWS_ENDPOINT_URL"], fault)
    try:
        sidecar = start_sidecar(fault_config(group), env=dict(aws_env, AWS_ENDPOINT_URL=proxy.url))
        host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for n in range(40):
                udp.sendto(f"faults.hits:{n + 1}|c|#series:s{n}".encode(), (host, int(port)))
        deadline = time.monotonic() + 10
        while sidecar.self_metrics().get('otelsidecar_receiver_statsd_lines{receiver="statsd"}', 0) < 40:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert urllib.request.urlopen(sidecar.url("health_check", "http", "/")).status == 200
        assert sidecar.rss_kib() < RSS_BOUND_KIB, "memory stays bounded while the fault lasts"
        started = time.monotonic()
        assert sidecar.terminate() == 0
        assert time.monotonic() - started < 20
        events = read_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group, "faults")
        values = sorted(json.loads(e["message"])["faults.hits"] for e in events)
        if fault == "rejected":
            rejected = json.loads(proxy.rejected["message"])["faults.hits"]
            assert values == sorted(set(range(1, 41)) - {rejected}), "the rejected event is the only one missing"
            log = sidecar.log_path.read_text()
            assert "CloudWatch Logs rejected events" in log, "counted and logged as dropped"
        else:
            assert values == list(range(1, 41)), (fault, values)
        assert proxy.faulted >= 1
    finally:
        proxy.close()


def test_a_log_group_deleted_mid_run_is_created_again(start_sidecar, aws_env, tmp):
    """Someone deletes the log group while the sidecar runs: the next PutLogEvents gets
    ResourceNotFoundException, the group and stream are created again and the points of the
    following intervals arrive, each once; health stays OK throughout."""
    group = f"/e2e/faults/deleted-{tmp.name}-{time.time_ns()}"
    config = fault_config(group)
    config["receivers"]["statsd"]["aggregation_interval"] = "300ms"
    sidecar = start_sidecar(config, env=aws_env)
    logs = logs_client(aws_env["AWS_ENDPOINT_URL"])
    host, port = sidecar.address("statsd", "udp").rsplit(":", 1)

    def send_and_wait(values):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for n in values:
                udp.sendto(f"faults.hits:{n}|c|#series:s{n}".encode(), (host, int(port)))
        deadline = time.monotonic() + 20
        while True:
            got = sorted(json.loads(e["message"])["faults.hits"] for e in read_events(logs, group, "faults"))
            if len(got) >= len(values) or time.monotonic() > deadline:
                return got

    assert send_and_wait(range(1, 21)) == list(range(1, 21))
    logs.delete_log_group(logGroupName=group)
    assert send_and_wait(range(21, 41)) == list(range(21, 41)), "the group came back with the new points only"
    assert urllib.request.urlopen(sidecar.url("health_check", "http", "/")).status == 200
    assert sidecar.terminate() == 0
    assert sidecar.log_path.read_text().count("created log group") == 2, "created, deleted, created again"
