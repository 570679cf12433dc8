#!/usr/bin/env python3
"""Instructions per item of whole otel-sidecar binaries, side by side: each runs under callgrind
with the comparison workload's batch settings, receives N bodies of benches/workload over
OTLP/HTTP, exports to a `loadgen sink` outside callgrind, and is stopped with SIGTERM (which
flushes); a run with no body gives the start-up and shutdown cost, subtracted.

    benches/instructions_binary.py BINARY [BINARY ...] [--bodies 100]

Needs valgrind. The stand-in is the first binary's `loadgen sink`.
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

WORKLOAD = Path(__file__).resolve().parent / "workload"
CONFIG = """
receivers:
  otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:{port}"}}}}}}
processors:
  batch/traces: {{timeout: 1s, send_batch_size: 50}}
  batch/metrics: {{timeout: 60s}}
exporters:
  awsxray: {{}}
  awsemf: {{namespace: ECS/OTEL/VM-X-AI, log_group_name: /aws/ecs/application/metrics}}
service:
  telemetry: {{logs: {{level: warn}}, metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch/traces], exporters: [awsxray]}}
    metrics: {{receivers: [otlp], processors: [batch/metrics], exporters: [awsemf]}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instructions(binary, sink, signal_name, bodies):
    port = free_port()
    config = Path(tempfile.mkdtemp()) / "instructions.yaml"
    config.write_text(CONFIG.format(port=port))
    env = dict(os.environ, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_ENDPOINT_URL=f"http://{sink}")
    env.pop("AOT_CONFIG_CONTENT", None)
    run = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(binary),
                            "--config", str(config)], stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    body = (WORKLOAD / f"{signal_name}.pb").read_bytes()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(bodies):
        connection.request("POST", f"/v1/{signal_name}", body, {"Content-Type": "application/x-protobuf"})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200, answer.status
    time.sleep(2)
    run.send_signal(signal.SIGTERM)
    _, errors = run.communicate(timeout=300)
    return int(re.search(r"Collected : (\d+)", errors).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--bodies", type=int, default=100)
    args = parser.parse_args()
    sink = subprocess.Popen([args.binaries[0], "loadgen", "sink", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, text=True)
    address = json.loads(sink.stdout.readline())["address"]
    try:
        for binary in args.binaries:
            for signal_name in ("traces", "metrics"):
                start = instructions(binary, address, signal_name, 0)
                total = instructions(binary, address, signal_name, args.bodies)
                items = args.bodies * 100
                print(f"{binary} {signal_name}: {(total - start) // items} instructions per item "
                      f"({items} items; {start} at start-up and shutdown subtracted)", flush=True)
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()
