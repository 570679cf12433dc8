"""Acceptance (issue 31, the sidecar -> gateway topology): the `otlp` gRPC exporter forwards
traces, metrics and logs to a second otel-sidecar acting as gateway, gzip-compressed, each item
once; over TLS it trusts only the test CA named in `tls.ca_file`."""

import socket
import struct
import subprocess
import threading
import time
from concurrent import futures

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from conftest import exported_spans, file_pipeline_config, read_file_export
from otlp_clients import send_spans_with_sdk
from test_otlp_http_export import send_logs, send_metrics


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def edge_config(gateway_endpoint, tls=None):
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"},
                                             "http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"batch": {"timeout": "100ms"}},
        "exporters": {"otlp": {"endpoint": gateway_endpoint, "tls": tls or {"insecure": True},
                               "retry_on_failure": {"initial_interval": "100ms", "max_interval": "200ms"}}},
        "service": {"pipelines": {s: {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlp"]}
                                  for s in ("traces", "metrics", "logs")}},
    }


class GrpcFrameSniffer:
    """A TCP relay between an h2c client and server that reads the client's HTTP/2 DATA frames
    and records the compressed flag of each gRPC message that starts one."""

    def __init__(self, upstream):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.compressed_flags = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self.pipe, args=(server, client, False), daemon=True).start()
            threading.Thread(target=self.pipe, args=(client, server, True), daemon=True).start()

    def pipe(self, source, sink, inspect):
        buffered, preface = b"", inspect
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                sink.close()
                return
            sink.sendall(data)
            if not inspect:
                continue
            buffered += data
            if preface and len(buffered) >= 24:
                buffered, preface = buffered[24:], False
            while not preface and len(buffered) >= 9:
                length = struct.unpack(">I", b"\0" + buffered[:3])[0]
                if len(buffered) < 9 + length:
                    break
                frame_type, flags, payload = buffered[3], buffered[4], buffered[9:9 + length]
                if frame_type == 0 and payload:  # DATA
                    if flags & 0x8:  # PADDED
                        payload = payload[1:]
                    self.compressed_flags.append(payload[0])
                buffered = buffered[9 + length:]

    def close(self):
        self.listener.close()


def test_edge_to_gateway_delivers_every_span_point_and_log_record_once(start_sidecar, tmp):
    out = tmp / "gateway.jsonl"
    gateway = start_sidecar(file_pipeline_config(out, signals=("traces", "metrics", "logs"), http=False))
    sniffer = GrpcFrameSniffer(gateway.address("otlp", "grpc"))
    edge = start_sidecar(edge_config(sniffer.address))
    sent = send_spans_with_sdk(OTLPSpanExporter(endpoint=edge.address("otlp", "grpc"), insecure=True), "edge", 30)
    send_metrics(edge.address("otlp", "http"))
    send_logs(edge.address("otlp", "http"), 12)

    def records():
        return [r for line in read_file_export(out) for rl in line.get("resourceLogs", [])
                for sl in rl.get("scopeLogs", []) for r in sl.get("logRecords", [])]

    def points():
        return [p for line in read_file_export(out) for rm in line.get("resourceMetrics", [])
                for sm in rm.get("scopeMetrics", []) for m in sm.get("metrics", [])
                for p in m.get("sum", {}).get("dataPoints", [])]

    wait_for(lambda: len(exported_spans(out)) >= 30 and len(records()) >= 12 and len(points()) >= 2,
             30, "everything at the gateway")
    assert edge.terminate() == 0
    assert gateway.terminate() == 0
    assert sorted(span["spanId"] for _, _, span in exported_spans(out)) == sorted(
        f"{s.context.span_id:016x}" for s in sent), "each span once"
    assert sorted(r["body"]["stringValue"] for r in records()) == sorted(f"order {n} placed" for n in range(12))
    assert sorted(int(p["asInt"]) for p in points()) == [3, 4]
    # gzip is the default: every gRPC message the edge sent was compressed.
    assert sniffer.compressed_flags and set(sniffer.compressed_flags) == {1}, sniffer.compressed_flags
    sniffer.close()


class RecordingTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self):
        self.spans = []

    def Export(self, request, context):  # noqa: N802 - the generated name
        self.spans += [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


def test_tls_to_a_gateway_trusts_the_test_ca(start_sidecar, tmp):
    d = tmp / "tls"
    d.mkdir()
    run = lambda *args: subprocess.run(args, cwd=d, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-subj", "/CN=e2e test CA", "-days", "1")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=gateway")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    service = RecordingTraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
    credentials = grpc.ssl_server_credentials([((d / "server.key").read_bytes(), (d / "server.crt").read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        config = edge_config(f"localhost:{port}", tls={"ca_file": str(d / "ca.crt")})
        config["service"]["pipelines"] = {"traces": config["service"]["pipelines"]["traces"]}
        edge = start_sidecar(config)
        sent = send_spans_with_sdk(OTLPSpanExporter(endpoint=edge.address("otlp", "grpc"), insecure=True), "tls", 10)
        wait_for(lambda: len(service.spans) >= 10, 30, "spans at the TLS gateway")
        assert sorted(s.span_id.hex() for s in service.spans) == sorted(f"{s.context.span_id:016x}" for s in sent)
        assert edge.terminate() == 0
    finally:
        server.stop(None)
