"""Acceptance (issue 6, partly): the load generator sends exactly what it is asked for, over each
transport, and the AWS sink counts what the sidecar exports."""

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import BINARY, exported_spans, file_pipeline_config, read_file_export


def loadgen(*args):
    result = subprocess.run([str(BINARY), "loadgen", "--json", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


@pytest.mark.parametrize("target,encoding,gzip", [
    ("otlp-grpc", "protobuf", False), ("otlp-http", "protobuf", True), ("otlp-http", "json", False)])
def test_exact_spans_over_each_transport(start_sidecar, tmp, target, encoding, gzip):
    out = tmp / "spans.jsonl"
    sidecar = start_sidecar(file_pipeline_config(out, signals=("traces",)))
    transport = "grpc" if target == "otlp-grpc" else "http"
    args = ["--target", target, "--endpoint", sidecar.address("otlp", transport), "--encoding", encoding,
            "--total", "1050", "--batch", "100", "--workers", "3", "--signal", "traces"]
    report = loadgen(*args, *(["--gzip"] if gzip else []))
    assert (report["items_sent"], report["failed_requests"]) == (1050, 0)
    assert report["requests"] == 11 and report["latency_ms"]["p50"] > 0
    assert sidecar.terminate() == 0
    spans = exported_spans(out)
    assert len(spans) == 1050
    assert len({(s["traceId"], s["spanId"]) for _, _, s in spans}) == 1050, "all distinct"


def test_a_fixed_body_is_posted_as_it_is(start_sidecar, tmp):
    workload = Path(__file__).resolve().parents[2] / "benches" / "workload" / "traces.pb"
    out = tmp / "fixed.jsonl"
    sidecar = start_sidecar(file_pipeline_config(out, signals=("traces",)))
    report = loadgen("--target", "otlp-http", "--endpoint", sidecar.address("otlp", "http"), "--signal", "traces",
                     "--body", str(workload), "--total", "1000", "--workers", "2")
    assert (report["items_sent"], report["requests"], report["failed_requests"]) == (1000, 10, 0)
    assert sidecar.terminate() == 0
    spans = exported_spans(out)
    assert len(spans) == 1000
    assert len({(s["traceId"], s["spanId"]) for _, _, s in spans}) == 100, "ten copies of the body's 100 spans"
    refused = subprocess.run([str(BINARY), "loadgen", "--target", "otlp-grpc", "--body", str(workload)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--body" in refused.stderr


def test_exact_points_and_series(start_sidecar, tmp):
    out = tmp / "metrics.jsonl"
    sidecar = start_sidecar(file_pipeline_config(out, signals=("metrics",)))
    report = loadgen("--target", "otlp-grpc", "--endpoint", sidecar.address("otlp", "grpc"), "--signal", "metrics",
                     "--total", "1000", "--batch", "64", "--series", "37")
    assert report["items_sent"] == 1000
    assert sidecar.terminate() == 0
    series = []
    for line in read_file_export(out):
        for rm in line["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for metric in sm["metrics"]:
                    for point in metric["sum"]["dataPoints"]:
                        series.append(point["attributes"][0]["value"]["stringValue"])
    assert len(series) == 1000
    assert len(set(series)) == 37


def test_rate_limit_is_honoured(start_sidecar, tmp):
    sidecar = start_sidecar(file_pipeline_config(tmp / "r.jsonl", signals=("traces",)))
    report = loadgen("--target", "otlp-grpc", "--endpoint", sidecar.address("otlp", "grpc"), "--rate", "2000",
                     "--duration", "1s", "--batch", "100", "--workers", "2")
    assert 1000 <= report["items_sent"] <= 2600, report


def test_sink_counts_what_the_sidecar_exports(start_sidecar, tmp, aws_env):
    sink = subprocess.Popen([str(BINARY), "loadgen", "sink", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        address = json.loads(sink.stdout.readline())["address"]
        env = dict(aws_env, AWS_ENDPOINT_URL=f"http://{address}")
        config = {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
                          "awsxray": {"endpoint": "127.0.0.1:0", "proxy_server": {"endpoint": "127.0.0.1:0"}},
                          "statsd": {"endpoint": "127.0.0.1:0", "aggregation_interval": "60s"}},
            "processors": {"batch": {"timeout": "100ms"}},
            "exporters": {"awsxray": {}, "awsemf": {"namespace": "Load", "log_group_name": "/load", "log_stream_name": "s"}},
            "service": {"pipelines": {
                "traces": {"receivers": ["otlp", "awsxray"], "processors": ["batch"], "exporters": ["awsxray"]},
                "metrics": {"receivers": ["otlp", "statsd"], "processors": ["batch"], "exporters": ["awsemf"]}}},
        }
        sidecar = start_sidecar(config, env=env)
        loadgen("--target", "otlp-grpc", "--endpoint", sidecar.address("otlp", "grpc"), "--total", "700", "--batch", "70")
        loadgen("--target", "xray-udp", "--endpoint", sidecar.address("awsxray", "udp"), "--total", "300", "--batch", "10", "--workers", "1")
        loadgen("--target", "statsd-udp", "--endpoint", sidecar.address("statsd", "udp"), "--total", "5000", "--batch", "50", "--series", "40", "--workers", "1")
        deadline = time.monotonic() + 30
        while sidecar.self_metrics().get('otelsidecar_receiver_statsd_lines{receiver="statsd"}', 0) < 5000:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert sidecar.terminate() == 0
        counts = json.loads(urllib.request.urlopen(f"http://{address}/counts").read())
        assert counts["xray_documents"] == 1000, counts
        assert counts["emf_events"] == 40, counts
        assert counts["bad_shapes"] == 0
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)


def test_help_lists_only_the_load_generators_flags():
    help_text = subprocess.run([str(BINARY), "loadgen", "--help"], capture_output=True, text=True).stdout
    for own in ("--target", "--endpoint", "--rate", "--duration", "--json"):
        assert own in help_text, own
    for sidecars in ("--config", "--shutdown-grace", "--emf-max-metrics", "--emf-shared-budget"):
        assert sidecars not in help_text, sidecars
    assert "4317" in help_text, "the default endpoint is documented"
    validate_help = subprocess.run([str(BINARY), "validate", "--help"], capture_output=True, text=True).stdout
    assert "--config" in validate_help and "--print" in validate_help


def test_progress_lines_on_a_terminal_and_none_when_piped(start_sidecar, tmp):
    import os
    import pty
    sidecar = start_sidecar(file_pipeline_config(tmp / "p.jsonl", signals=("traces",)))
    args = [str(BINARY), "loadgen", "--endpoint", sidecar.address("otlp", "grpc"), "--rate", "1000",
            "--duration", "2500ms", "--batch", "10", "--workers", "1"]
    main, terminal = pty.openpty()
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    run.wait(timeout=30)
    os.close(main)
    progress = [line for line in seen.decode().splitlines() if "items/s" in line and "p99" in line]
    assert len(progress) >= 2, seen
    piped = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert piped.returncode == 0
    assert "items/s" not in piped.stderr, piped.stderr
    assert "items/s" in piped.stdout, "the summary still comes at the end"


def test_ctrl_c_prints_the_summary_so_far(start_sidecar, tmp):
    sidecar = start_sidecar(file_pipeline_config(tmp / "c.jsonl", signals=("traces",)))
    run = subprocess.Popen([str(BINARY), "loadgen", "--json", "--endpoint", sidecar.address("otlp", "grpc"),
                            "--rate", "1000", "--duration", "60s", "--batch", "10", "--workers", "1"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    started = time.monotonic()
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=10)
    assert time.monotonic() - started < 5
    report = json.loads(out)
    assert report["items_sent"] > 0 and report["seconds"] < 10, report
