"""Acceptance (issue 16): one CloudWatch budget for a fleet of sidecars through a real
redis-server (standalone, TLS and a 3-node cluster): the distinct metrics published stay under
the cap while every value is published; a store outage loses nothing, admits nothing past the
cap and heals; the status page shows what /cardinality says."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from test_emf import logs_client, read_events

NAMESPACE = "E2E/Fleet"


def free_port(below=65536):
    """A free loopback port; cluster nodes also use port + 10000 (the cluster bus)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < below:
            return port


def wait_for(check, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def redis_ping(port, tls_args=()):
    result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *tls_args, "ping"],
                            capture_output=True, text=True)
    return result.stdout.strip() == "PONG"


class RedisServer:
    """One redis-server on loopback, in its own directory."""

    def __init__(self, directory: Path, port=None, args=()):
        self.directory, self.port, self.args = directory, port or free_port(), list(args)
        directory.mkdir(parents=True, exist_ok=True)
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.directory),
             *(["--port", str(self.port)] if "--tls-port" not in self.args else []), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_standalone(tmp_path):
    server = RedisServer(tmp_path / "redis")
    wait_for(lambda: redis_ping(server.port), what="redis-server")
    yield server
    server.stop()


@pytest.fixture
def redis_tls(tmp_path):
    d = tmp_path / "tls"
    d.mkdir()
    run = lambda *args: subprocess.run(args, cwd=d, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-subj", "/CN=e2e test CA", "-days", "1")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    port = free_port()
    server = RedisServer(d / "data", port, ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(d / "server.crt"),
                                            "--tls-key-file", str(d / "server.key"), "--tls-ca-cert-file", str(d / "ca.crt"),
                                            "--tls-auth-clients", "no"])
    tls = ("--tls", "--cacert", str(d / "ca.crt"))
    wait_for(lambda: redis_ping(port, tls), what="redis-server with TLS")
    yield server, d / "ca.crt"
    server.stop()


@pytest.fixture
def redis_cluster(tmp_path):
    nodes = [RedisServer(tmp_path / f"node{i}", port=free_port(below=55536),
                         args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
             for i in range(3)]
    for node in nodes:
        wait_for(lambda: redis_ping(node.port), what="cluster node")
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
                    "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
    def healthy():
        out = subprocess.run(["redis-cli", "-p", str(nodes[0].port), "cluster", "info"], capture_output=True, text=True).stdout
        return "cluster_state:ok" in out
    wait_for(healthy, what="cluster_state:ok")
    yield nodes
    for node in nodes:
        node.stop()


def fleet_config(group, shared, cap=200):
    return {
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"batch/metrics": {"timeout": "100ms"}},
        "exporters": {"awsemf": {"namespace": NAMESPACE, "log_group_name": group,
                                 "dimension_rollup_option": "NoDimensionRollup",
                                 "cardinality_budget": {"max_metrics": cap, "shared": shared}}},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"metrics": {"receivers": ["otlp"], "processors": ["batch/metrics"], "exporters": ["awsemf"]}}},
    }


def metrics_request(series, value=1):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.metrics.v1.metrics_pb2 import (AGGREGATION_TEMPORALITY_DELTA, Metric, NumberDataPoint,
                                                            ResourceMetrics, ScopeMetrics, Sum)

    now = time.time_ns()
    points = [NumberDataPoint(as_int=value, time_unix_nano=now, start_time_unix_nano=now - 10**9,
                              attributes=[KeyValue(key="series", value=AnyValue(string_value=f"s{n}"))]) for n in series]
    metric = Metric(name="requests", sum=Sum(data_points=points, aggregation_temporality=AGGREGATION_TEMPORALITY_DELTA,
                                             is_monotonic=True))
    return ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(scope_metrics=[
        ScopeMetrics(scope=InstrumentationScope(name="fleet-e2e"), metrics=[metric])])]).SerializeToString()


def send(sidecar, series):
    from otlp_clients import post

    status, _, body = post(sidecar.url("otlp", "http", "/v1/metrics"), metrics_request(series), "application/x-protobuf")
    assert status == 200, body


def published(aws_env, group):
    """Distinct CloudWatch metrics in every EMF directive of the group, and the sum of values."""
    logs = logs_client(aws_env["AWS_ENDPOINT_URL"])
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    documents = [json.loads(e["message"]) for s in streams for e in read_events(logs, group, s["logStreamName"])]
    identities = set()
    for document in documents:
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    identities.add((directive["Namespace"], metric["Name"], tuple((k, document[k]) for k in dimensions)))
    total = sum(d.get("requests", 0) for d in documents)
    return identities, total, documents


def run_fleet(start_sidecar, aws_env, shared, env=None, tmp_name=""):
    group = f"/e2e/fleet/{tmp_name}-{time.time_ns()}"
    sidecars = [start_sidecar(fleet_config(group, dict(shared, fleet=group)), env=dict(aws_env, **(env or {})))
                for _ in range(8)]
    for sidecar in sidecars:
        # A batch that comes before the connection folds locally (it may not wait for a TLS
        # handshake); this test is about the shared store, so each sidecar connects first.
        wait_for(lambda: sidecar.self_metrics().get("otelsidecar_emf_budget_store_connected", 0) == 1,
                 what="the store connection")
    for i, sidecar in enumerate(sidecars):
        send(sidecar, range(i * 500, i * 500 + 1000))
    trips = lambda sidecar: sidecar.self_metrics().get("otelsidecar_emf_budget_store_round_trips", 0)
    for sidecar in sidecars:
        wait_for(lambda: trips(sidecar) >= 1, what="the batch's round trip")
    round_trips = [trips(sidecar) for sidecar in sidecars]
    seconds = [(m.get("otelsidecar_emf_budget_store_seconds_sum", 0), m.get("otelsidecar_emf_budget_store_seconds_count", 0))
               for m in (sidecar.self_metrics() for sidecar in sidecars)]
    total_seconds, calls = sum(s for s, _ in seconds), sum(c for _, c in seconds)
    print(f"store round trips {calls:.0f}, mean {1000 * total_seconds / max(calls, 1):.2f} ms per batch")
    for sidecar in sidecars:
        assert sidecar.terminate() == 0
    identities, total, _ = published(aws_env, group)
    assert total == 8 * 1000, "every value is published, regular or folded"
    assert 0 < len(identities) <= 200, len(identities)
    assert any(("otel.metric.overflow", "true") in i[2] for i in identities), "the overflow metric holds the rest"
    # One round trip per batch of new identities, not one per point.
    assert all(1 <= n <= 3 for n in round_trips), round_trips
    return identities


def test_eight_sidecars_share_one_budget(start_sidecar, aws_env, redis_standalone, tmp):
    identities = run_fleet(start_sidecar, aws_env, {"endpoint": f"redis://127.0.0.1:{redis_standalone.port}"},
                           tmp_name=tmp.name)
    assert len(identities) == 200, "the fleet fills its budget exactly"


def test_eight_sidecars_share_one_budget_over_tls(start_sidecar, aws_env, redis_tls, tmp):
    server, ca = redis_tls
    run_fleet(start_sidecar, aws_env, {"endpoint": f"rediss://localhost:{server.port}"},
              env={"SSL_CERT_FILE": str(ca)}, tmp_name=tmp.name)


def test_eight_sidecars_share_one_budget_in_a_cluster(start_sidecar, aws_env, redis_cluster, tmp):
    # The variables the deployment gives its API container (REDIS_HOST, REDIS_PORT, REDIS_MODE, REDIS_TLS).
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_cluster[0].port), "REDIS_MODE": "cluster"}
    run_fleet(start_sidecar, aws_env, {}, env=env, tmp_name=tmp.name)


def test_a_store_outage_loses_nothing_and_admits_nothing_past_the_cap(start_sidecar, aws_env, redis_standalone, tmp):
    group = f"/e2e/fleet-outage/{tmp.name}-{time.time_ns()}"
    shared = {"endpoint": f"redis://127.0.0.1:{redis_standalone.port}", "fleet": group}
    a, b = (start_sidecar(fleet_config(group, shared, cap=50), env=aws_env) for _ in range(2))
    send(a, range(0, 20))
    wait_for(lambda: a.self_metrics().get("otelsidecar_emf_budget_store_round_trips", 0) >= 1, what="first admission")
    redis_standalone.stop()
    send(a, range(0, 40))
    send(b, range(100, 110))
    wait_for(lambda: a.self_metrics().get("otelsidecar_emf_budget_store_errors", 0) >= 1, what="a store error")
    for sidecar in (a, b):
        assert urllib.request.urlopen(sidecar.url("health_check", "http", "/")).status == 200
    redis_standalone.start()
    wait_for(lambda: redis_ping(redis_standalone.port), what="redis-server again")
    # The store is asked again once the back-off ends (at most a few seconds): new series
    # get their dimensions again.
    batches = 0
    def admitted_again():
        nonlocal batches
        batches += 1
        send(a, [1000 + batches])
        time.sleep(0.3)
        return a.self_metrics().get("otelsidecar_emf_budget_store_answers", 0) > answers_before
    answers_before = a.self_metrics().get("otelsidecar_emf_budget_store_answers", 0)
    wait_for(admitted_again, timeout=60, what="admissions to resume")
    for sidecar in (a, b):
        assert sidecar.terminate() == 0
    identities, total, documents = published(aws_env, group)
    assert total == 20 + 40 + 10 + batches, "no accepted point is lost"
    regular = {i for i in identities if ("otel.metric.overflow", "true") not in i[2]}
    series = {dict(i[2])["series"] for i in regular}
    assert {f"s{n}" for n in range(20)} <= series, "admitted before the outage: dimensions kept"
    assert not series & ({f"s{n}" for n in range(20, 40)} | {f"s{n}" for n in range(100, 110)}), \
        "no new identity admitted while the store was gone"
    # A sidecar that never reached the store does not know its overflow metric is reserved:
    # its new points stay out of the directive (their values are fields of the events).
    outage_b = [d for d in documents if d.get("series") in {f"s{n}" for n in range(100, 110)}]
    assert len(outage_b) == 10 and all("_aws" not in d for d in outage_b)
    assert any(int(s[1:]) > 1000 for s in series), "admissions resumed"
    assert len(identities) <= 50


def test_the_status_page_shows_what_cardinality_says(start_sidecar, aws_env, redis_standalone, tmp):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the test command installs Debian's chromium"
    group = f"/e2e/fleet-status/{tmp.name}-{time.time_ns()}"
    sidecar = start_sidecar(fleet_config(group, {"endpoint": f"redis://127.0.0.1:{redis_standalone.port}", "fleet": group},
                                         cap=100), env=aws_env)
    send(sidecar, range(0, 300))
    url = sidecar.url("telemetry", "http", "/")
    wait_for(lambda: json.loads(urllib.request.urlopen(sidecar.url("telemetry", "http", "/cardinality")).read()),
             what="a budget report")
    report = json.loads(urllib.request.urlopen(sidecar.url("telemetry", "http", "/cardinality")).read())["awsemf"]
    screenshot = Path(os.environ.get("OTEL_SIDECAR_SCREENSHOT", tmp / "status.png"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chromium'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    subprocess.run([chromium, *flags, "--window-size=1100,1400", f"--screenshot={screenshot}", url],
                   capture_output=True, timeout=120)
    assert 'data-ready="true"' in dom, dom[:2000]
    fleet = report["fleet"]
    assert f"{fleet['admitted_metrics']} of {report['budget']} metrics admitted this hour" in dom
    assert f"${fleet['projected_monthly_cost_usd']:.2f} / month projected" in dom
    top = report["top_metric_names"][0]
    assert top["name"] == "requests" and f">{top['folded_points']:,}<" in dom.replace(",", ",")
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
    assert sidecar.terminate() == 0
