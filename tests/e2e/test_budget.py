"""Acceptance (issue 5): a cardinality budget caps the distinct CloudWatch metrics, tells the user
(self-metrics, /cardinality, one warning naming the label to fix) and loses no value."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from conftest import BINARY
from test_emf import (STATSD_SCOPE, check_emf, emf_config, logs_client, read_events, wait_for_events,
                      wait_for_lines)

SEED_GROUP = "/aws/ecs/application/metrics"


def cloudwatch_identities(documents, metric):
    """Distinct (namespace, name, dimension values) the documents define for `metric`."""
    out = set()
    for document in documents:
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            if any(m["Name"] == metric for m in directive["Metrics"]):
                for dims in directive["Dimensions"]:
                    out.add((directive["Namespace"], metric, tuple((k, document[k]) for k in dims)))
    return out


def test_budget_flag_caps_the_unchanged_seed_config(tmp, aws_env):
    env = dict(os.environ, **aws_env)
    env.pop("AOT_CONFIG_CONTENT", None)
    log_path = tmp / "seed.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(BINARY), "--emf-max-metrics", "20"], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 20
            while subprocess.run([str(BINARY), "healthcheck"], capture_output=True).returncode != 0:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            users = 500
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                for start in range(0, users, 50):
                    lines = "\n".join(f"budget.requests:{1 + i % 3}|c|#user:u{i},route:/chat" for i in range(start, start + 50))
                    udp.sendto(lines.encode(), ("127.0.0.1", 8125))
            deadline = time.monotonic() + 20
            while True:
                text = urllib.request.urlopen("http://127.0.0.1:8888/metrics").read().decode()
                if f'otelsidecar_receiver_statsd_lines{{receiver="statsd"}} {users}' in text:
                    break
                assert time.monotonic() < deadline, "lines never aggregated"
                time.sleep(0.02)
            # The seed config aggregates for 60 s: SIGTERM flushes the interval through the budget.
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
    logs = logs_client(aws_env["AWS_ENDPOINT_URL"])
    streams = logs.describe_log_streams(logGroupName=SEED_GROUP)["logStreams"]
    documents = [json.loads(e["message"]) for s in streams for e in read_events(logs, SEED_GROUP, s["logStreamName"])]
    documents = [d for d in documents if "budget.requests" in d]
    assert len(documents) == users, "every point is still a log event"
    for document in documents:
        check_emf(document)
    assert len(cloudwatch_identities(documents, "budget.requests")) <= 20
    assert sum(d["budget.requests"] for d in documents) == sum(1 + i % 3 for i in range(users))
    warnings = [line for line in log_path.read_text().splitlines() if "CloudWatch cardinality budget reached" in line]
    assert len(warnings) == 1, "one warning per metric name"
    assert "budget.requests" in warnings[0] and "user (" in warnings[0], warnings[0]


def test_self_metrics_and_the_cardinality_endpoint(start_sidecar, aws_env, tmp):
    group = f"/e2e/budget/{tmp.name}"
    config = emf_config(group, interval="1s", extra={"cardinality_budget": {"max_metrics": 10, "max_metrics_per_name": 8}})
    sidecar = start_sidecar(config, env=aws_env)
    host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto("\n".join(f"signups:1|c|#tenant:t{i},plan:free" for i in range(100)).encode(), (host, int(port)))
    wait_for_lines(sidecar, 100)
    deadline = time.monotonic() + 30
    while True:
        metrics = sidecar.self_metrics()
        folded = metrics.get('otelsidecar_emf_budget_folded_points{exporter="awsemf",metric_name="signups"}', 0)
        if folded > 0:
            break
        assert time.monotonic() < deadline, metrics
        time.sleep(0.05)
    admitted = metrics['otelsidecar_emf_budget_admitted_metrics{exporter="awsemf"}']
    assert admitted <= 10
    assert metrics['otelsidecar_emf_budget_metrics{exporter="awsemf"}'] == 10
    assert abs(metrics['otelsidecar_emf_budget_projected_monthly_cost_usd{exporter="awsemf"}'] - admitted * 0.30) < 1e-9
    report = json.loads(urllib.request.urlopen(sidecar.url("telemetry", "http", "/cardinality")).read())["awsemf"]
    assert report["budget"] == 10 and report["admitted_metrics"] == admitted
    assert report["top_metric_names"][0]["name"] == "signups"
    assert report["top_dimension_keys"][0]["key"] == "tenant"
    assert report["top_dimension_keys"][0]["distinct_values"] == 100
    events = wait_for_events(logs_client(aws_env["AWS_ENDPOINT_URL"]), group, at_least=100)
    assert sum(json.loads(e["message"])["signups"] for e in events) == 100
    assert sidecar.terminate() == 0
