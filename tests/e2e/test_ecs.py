"""Acceptance (issue 7, partly): recorded Fargate task metadata served on loopback gives X-Ray
documents their origin and aws.ecs block and resolves `{TaskId}`; a missing endpoint is only a
warning; the seed config runs from AOT_CONFIG_CONTENT with no arguments."""

import http.server
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import BINARY, ROOT
from test_emf import logs_client, read_events, wait_for_lines
from test_xray_export import fetch_documents, send_app_spans, xray_client, xray_trace_id

TASK_ID = "cd189a933e5849daa93386466019ab50"
CONTAINER = {
    "DockerId": f"{TASK_ID}-2495160603", "Name": "api", "DockerName": "api",
    "Image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/vmxai/api:latest",
    "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING", "Type": "NORMAL",
    "LogDriver": "awslogs",
    "LogOptions": {"awslogs-create-group": "true", "awslogs-group": "/ecs/vmxai-api", "awslogs-region": "us-west-2",
                   "awslogs-stream": f"ecs/api/{TASK_ID}"},
    "ContainerARN": "arn:aws:ecs:us-west-2:111122223333:container/05966557-f16c-49cb-9352-24b3a0dcd0e1",
    "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.2.106"]}],
}
TASK = {
    "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/vmxai",
    "TaskARN": f"arn:aws:ecs:us-west-2:111122223333:task/vmxai/{TASK_ID}",
    "Family": "vmxai-api", "Revision": "7", "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
    "Limits": {"CPU": 0.25, "Memory": 512}, "AvailabilityZone": "us-west-2d", "LaunchType": "FARGATE",
    "Containers": [CONTAINER],
}


class TaskMetadata(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(TASK if self.path.endswith("/task") else CONTAINER).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def metadata_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TaskMetadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v4/{TASK_ID}-2495160603"
    server.shutdown()


def ecs_config(group):
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
                      "statsd": {"endpoint": "127.0.0.1:0", "aggregation_interval": "60s"}},
        "processors": {"resourcedetection": {"detectors": ["env", "ecs"], "timeout": "2s"},
                       "batch": {"timeout": "100ms"}},
        "exporters": {"awsxray": {}, "awsemf": {"namespace": "ECS/OTEL/VM-X-AI", "log_group_name": group,
                                               "log_stream_name": "{TaskId}"}},
        "service": {"pipelines": {
            "traces": {"receivers": ["otlp"], "processors": ["resourcedetection", "batch"], "exporters": ["awsxray"]},
            "metrics": {"receivers": ["statsd"], "processors": ["resourcedetection", "batch"], "exporters": ["awsemf"]}}},
    }


def test_fargate_metadata_reaches_xray_and_emf(start_sidecar, aws_env, tmp, metadata_endpoint):
    group = f"/e2e/ecs/{tmp.name}"
    env = dict(aws_env, ECS_CONTAINER_METADATA_URI_V4=metadata_endpoint, OTEL_RESOURCE_ATTRIBUTES="deployment.environment=prod")
    sidecar = start_sidecar(ecs_config(group), env=env)
    ids = send_app_spans(sidecar.address("otlp", "grpc"))
    host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"ecs.requests:4|c", (host, int(port)))
    wait_for_lines(sidecar, 1)
    documents = fetch_documents(xray_client(aws_env["AWS_ENDPOINT_URL"]), [xray_trace_id(ids["server"].trace_id)], expected=3)
    server = next(d for d in documents if "parent_id" not in d)
    assert server["origin"] == "AWS::ECS::Fargate"
    assert server["aws"]["ecs"] == {
        "container": "api", "container_id": f"{TASK_ID}-2495160603",
        "task_arn": TASK["TaskARN"], "task_family": "vmxai-api", "cluster_arn": TASK["Cluster"],
        "container_arn": CONTAINER["ContainerARN"], "availability_zone": "us-west-2d", "launch_type": "fargate",
    }
    assert server["aws"]["account_id"] == "111122223333"
    assert server["aws"]["cloudwatch_logs"][0]["log_group"] == "/ecs/vmxai-api"
    assert server["metadata"]["default"]["otel.resource.deployment.environment"] == "prod"
    assert sidecar.terminate() == 0
    logs = logs_client(aws_env["AWS_ENDPOINT_URL"])
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert streams == [TASK_ID]
    [event] = read_events(logs, group, TASK_ID)
    assert json.loads(event["message"])["ecs.requests"] == 4


def test_a_missing_metadata_endpoint_is_a_warning(start_sidecar, aws_env, tmp):
    env = dict(aws_env, ECS_CONTAINER_METADATA_URI_V4="http://127.0.0.1:9/v4/none")
    sidecar = start_sidecar(ecs_config(f"/e2e/noecs/{tmp.name}"), env=env)
    warnings = [r for r in sidecar.log_records() if r.get("message") == "resource detection failed; continuing without it"]
    deadline = time.monotonic() + 10
    while not warnings and time.monotonic() < deadline:
        time.sleep(0.05)
        warnings = [r for r in sidecar.log_records() if r.get("message") == "resource detection failed; continuing without it"]
    assert warnings and warnings[0]["detector"] == "ecs"
    assert sidecar.process.poll() is None
    assert sidecar.terminate() == 0


def test_seed_config_from_aot_config_content(tmp, aws_env):
    env = dict(os.environ, **aws_env)
    env["AOT_CONFIG_CONTENT"] = (ROOT / "config" / "ecs-default.yaml").read_text()
    with open(tmp / "aot.log", "w") as log:
        process = subprocess.Popen([str(BINARY), "--config", "/nonexistent.yaml"], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 20
            while subprocess.run([str(BINARY), "healthcheck"], capture_output=True).returncode != 0:
                assert process.poll() is None, (tmp / "aot.log").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            process.send_signal(15)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
    text = (tmp / "aot.log").read_text()
    assert "env:AOT_CONFIG_CONTENT" in text and "the --config flag is ignored" in text
