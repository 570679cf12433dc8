"""Acceptance (issue 17, persistent queue): with `sending_queue.storage` naming a `file_storage`
extension, a request is answered once its spans are on disk; SIGKILL under load and a restart
lose nothing that was acknowledged (a batch that was being sent at the kill may arrive twice:
counted and stated), and a damaged queue file is skipped and counted, never a crash loop."""

import http.server
import socket
import threading
import time
import urllib.request
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from test_xray_export import fetch_documents, xray_client, xray_trace_id


class SlowProxy:
    """Forwards every call to the emulator, then waits `delay` before answering: a call can be
    stored upstream and still unanswered when the sidecar is killed."""

    def __init__(self, upstream, delay):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, payload = answer.status, answer.read()
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sidecar was killed while waiting

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def persistent_config(directory):
    return {
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"},
                       "file_storage": {"directory": str(directory), "create_directory": True}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "exporters": {"awsxray": {"sending_queue": {"storage": "file_storage", "num_consumers": 4},
                                  "retry_on_failure": {"initial_interval": "100ms", "max_interval": "500ms",
                                                       "max_elapsed_time": "120s"}}},
        "service": {"extensions": ["health_check", "file_storage"],
                    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["awsxray"]}}},
    }


def recorded_spans(count, prefix):
    """Finished spans from the SDK, to hand to the exporter ourselves and see each answer."""
    recorded = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    tracer = provider.get_tracer("persistent-queue")
    for n in range(count):
        with tracer.start_as_current_span(f"{prefix} {n}"):
            pass
    return list(recorded.get_finished_spans())


class Load:
    """Exports spans ten at a time until stopped, remembering which were acknowledged."""

    def __init__(self, endpoint, spans):
        self.exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=2)
        self.spans, self.acknowledged, self.stop = spans, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for start in range(0, len(self.spans), 10):
            if self.stop.is_set():
                return
            chunk = self.spans[start:start + 10]
            if self.exporter.export(chunk) == SpanExportResult.SUCCESS:
                self.acknowledged += chunk
            else:
                return

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=30)


def queue_files(directory):
    return sorted(Path(directory).glob("exporter_awsxray/*"))


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_acknowledged_spans_survive_sigkill_and_a_restart(start_sidecar, aws_env, tmp):
    directory = tmp / "queue"
    proxy = SlowProxy(aws_env["AWS_ENDPOINT_URL"], delay=1.0)
    try:
        first = start_sidecar(persistent_config(directory), env=dict(aws_env, AWS_ENDPOINT_URL=proxy.url))
        load = Load(first.address("otlp", "grpc"), recorded_spans(2000, "killed"))
        # Under load, with exports going out (and some stored upstream but unanswered): SIGKILL.
        wait_for(lambda: len(load.acknowledged) >= 400, 60, "the load got going")
        first.kill()
        load.finish()
        acknowledged = load.acknowledged
        left = queue_files(directory)
        assert left and all(f.suffix in (".batch", ".tmp") for f in left), left

        second = start_sidecar(persistent_config(directory), env=aws_env)
        client = xray_client(aws_env["AWS_ENDPOINT_URL"])
        trace_ids = sorted({xray_trace_id(s.context.trace_id) for s in acknowledged})
        wanted = {f"{s.context.span_id:016x}" for s in acknowledged}
        # Polled until every acknowledged span is there (duplicates alone must not end the wait).
        deadline = time.monotonic() + 90
        while True:
            documents = fetch_documents(client, trace_ids, expected=0, timeout=0)
            ids = [d["id"] for d in documents]
            missing = wanted - set(ids)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert not missing, f"{len(missing)} acknowledged spans lost of {len(wanted)}"
        duplicates = len(ids) - len(set(ids))
        # Stated, not hidden: batches stored upstream but unanswered at the kill come again.
        print(f"acknowledged {len(wanted)}, arrived {len(set(ids))}, duplicates {duplicates}, "
              f"batches left on disk at the kill {len(left)}")
        assert duplicates <= 10 * 4, "at most the batches in flight (num_consumers) come twice"
        wait_for(lambda: not queue_files(directory), 30, "exported batches leave the disk")
        metrics = second.self_metrics()
        assert metrics.get('otelsidecar_exporter_queue_recovered_batches{exporter="awsxray"}', 0) >= 1
        assert second.terminate() == 0
    finally:
        proxy.close()


def test_a_damaged_queue_file_is_skipped_and_counted(start_sidecar, aws_env, tmp):
    directory = tmp / "queue"
    # Spans accepted while AWS is unreachable stay queued on disk; the sidecar is then killed.
    first = start_sidecar(persistent_config(directory), env=dict(aws_env, AWS_ENDPOINT_URL=closed_port_url()))
    spans = recorded_spans(30, "damaged")
    exporter = OTLPSpanExporter(endpoint=first.address("otlp", "grpc"), insecure=True)
    for start in range(0, 30, 10):
        assert exporter.export(spans[start:start + 10]) == SpanExportResult.SUCCESS
    first.kill()
    files = [f for f in queue_files(directory) if f.suffix == ".batch"]
    assert len(files) == 3, files
    # One truncated, one overwritten with garbage, one half-written temporary file.
    files[0].write_bytes(files[0].read_bytes()[:40])
    files[1].write_bytes(b"\x00garbage" * 20)
    (files[0].parent / "00000000000000000099.tmp").write_bytes(b"OSQ1")

    second = start_sidecar(persistent_config(directory), env=aws_env)
    survivors = spans[20:30]
    documents = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]),
                                sorted({xray_trace_id(s.context.trace_id) for s in survivors}),
                                expected=10, timeout=30)
    assert {d["id"] for d in documents} == {f"{s.context.span_id:016x}" for s in survivors}
    wait_for(lambda: not queue_files(directory), 30, "the queue empties")
    assert second.self_metrics()['otelsidecar_exporter_queue_corrupt_batches{exporter="awsxray"}'] == 3
    assert urllib.request.urlopen(second.url("health_check", "http", "/")).status == 200
    assert second.terminate() == 0


def two_queue_config(directory):
    """Two exporters whose ids differ only by `/` and `_`, each behind its own receiver, both
    keeping their queues in one file_storage."""
    config = persistent_config(directory)
    exporter = config["exporters"].pop("awsxray")
    config["receivers"]["otlp/b"] = {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}
    config["exporters"] = {"awsxray/a/b": exporter, "awsxray/a_b": exporter}
    config["service"]["pipelines"] = {
        "traces/slash": {"receivers": ["otlp"], "exporters": ["awsxray/a/b"]},
        "traces/underscore": {"receivers": ["otlp/b"], "exporters": ["awsxray/a_b"]},
    }
    return config


def test_ids_differing_by_slash_and_underscore_keep_separate_queues(start_sidecar, aws_env, tmp):
    directory = tmp / "queue"
    first = start_sidecar(two_queue_config(directory), env=dict(aws_env, AWS_ENDPOINT_URL=closed_port_url()))
    slash, underscore = recorded_spans(30, "slash"), recorded_spans(30, "underscore")
    for receiver, spans in (("otlp", slash), ("otlp/b", underscore)):
        exporter = OTLPSpanExporter(endpoint=first.address(receiver, "grpc"), insecure=True)
        for start in range(0, 30, 10):
            assert exporter.export(spans[start:start + 10]) == SpanExportResult.SUCCESS
    first.kill()
    directories = sorted(p.name for p in Path(directory).iterdir())
    assert len(directories) == 2, directories

    second = start_sidecar(two_queue_config(directory), env=aws_env)
    acknowledged = slash + underscore
    documents = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]),
                                sorted({xray_trace_id(s.context.trace_id) for s in acknowledged}),
                                expected=60, timeout=30)
    ids = [d["id"] for d in documents]
    assert sorted(ids) == sorted(f"{s.context.span_id:016x}" for s in acknowledged), \
        "every acknowledged span arrives, once"
    wait_for(lambda: not any(Path(directory).glob("*/*.batch")), 30, "both queues empty")
    assert second.terminate() == 0


def test_sigterm_with_batches_on_disk_exits_0_and_names_what_it_kept(start_sidecar, aws_env, tmp):
    directory = tmp / "queue"
    sidecar = start_sidecar(persistent_config(directory), env=dict(
        aws_env, AWS_ENDPOINT_URL=closed_port_url(), OTEL_SIDECAR_SHUTDOWN_GRACE="1s"))
    spans = recorded_spans(20, "kept")
    exporter = OTLPSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True)
    for start in range(0, 20, 10):
        assert exporter.export(spans[start:start + 10]) == SpanExportResult.SUCCESS
    assert sidecar.terminate() == 0, sidecar.log_path.read_text()
    kept = [r for r in sidecar.log_records() if r.get("message", "").startswith("shutdown grace ended")]
    assert len(kept) == 1, sidecar.log_path.read_text()
    on_disk = [f for f in queue_files(directory) if f.suffix == ".batch"]
    assert int(kept[0]["batches"]) == len(on_disk) == 2
    assert kept[0]["directory"] == str(on_disk[0].parent)

    # They are the spans the next start sends.
    restarted = start_sidecar(persistent_config(directory), env=aws_env)
    documents = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]),
                                sorted({xray_trace_id(s.context.trace_id) for s in spans}),
                                expected=20, timeout=30)
    assert {d["id"] for d in documents} == {f"{s.context.span_id:016x}" for s in spans}
    assert restarted.terminate() == 0


def test_sigterm_with_batches_in_memory_still_says_they_are_lost(start_sidecar, aws_env, tmp):
    config = persistent_config(tmp / "unused")
    config["exporters"]["awsxray"]["sending_queue"].pop("storage")
    sidecar = start_sidecar(config, env=dict(
        aws_env, AWS_ENDPOINT_URL=closed_port_url(), OTEL_SIDECAR_SHUTDOWN_GRACE="1s"))
    exporter = OTLPSpanExporter(endpoint=sidecar.address("otlp", "grpc"), insecure=True)
    assert exporter.export(recorded_spans(10, "lost")) == SpanExportResult.SUCCESS
    assert sidecar.terminate() == 1
    assert "1 batches held in memory by exporters are lost" in sidecar.log_path.read_text()
