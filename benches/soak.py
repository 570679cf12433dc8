#!/usr/bin/env python3
"""Overload soak: the sidecar is offered traces at `--rate` spans/s (choose twice what it
sustains against a destination that answers every call after 100 ms: a short run at `--rate 0`,
as fast as the load generator goes, tells) for a long run. It must push back instead of growing,
stay up, and deliver every span it acknowledged. Samples the sidecar's RSS every 5 s and writes
benches/results/soak.{json,md}.

    benches/soak.py [--duration 600s] [--rate 10000] [--binary target/release/otel-sidecar]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")

CONFIG = """
extensions:
  health_check: {endpoint: 127.0.0.1:0}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:0}
processors:
  batch/traces: {timeout: 1s, send_batch_size: 50}
exporters:
  awsxray: {}
service:
  telemetry:
    logs: {encoding: json}
    metrics: {readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: 0}}}}]}
  extensions: [health_check]
  pipelines:
    traces: {receivers: [otlp], processors: [batch/traces], exporters: [awsxray]}
"""


def rss_mb(pid):
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def get_json(url):
    return json.loads(urllib.request.urlopen(url, timeout=10).read())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", default="600s")
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--binary", default=str(ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "release" / "otel-sidecar"))
    parser.add_argument("--out", default=str(ROOT / "benches" / "results"))
    args = parser.parse_args()
    binary = args.binary
    work = Path(tempfile.mkdtemp())
    env = dict(os.environ, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="soak", AWS_SECRET_ACCESS_KEY="soak")
    env.pop("AOT_CONFIG_CONTENT", None)
    sink = subprocess.Popen([binary, "loadgen", "sink", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    sink_address = json.loads(sink.stdout.readline())["address"]
    urllib.request.urlopen(urllib.request.Request(f"http://{sink_address}/delay?ms=100", method="POST"))
    env["AWS_ENDPOINT_URL"] = f"http://{sink_address}"
    (work / "soak.yaml").write_text(CONFIG)
    log_path = work / "sidecar.log"
    sidecar = subprocess.Popen([binary, "--config", str(work / "soak.yaml")], stdout=open(log_path, "w"),
                               stderr=subprocess.STDOUT, env=env)
    address = None
    while address is None:
        for line in log_path.read_text().splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("message") == "listening" and record.get("component") == "otlp":
                address = record["address"]
        if sidecar.poll() is not None:
            sys.exit(log_path.read_text())
        time.sleep(0.05)
    time.sleep(1)
    started = time.monotonic()
    samples = [(0, round(rss_mb(sidecar.pid), 1))]
    load = subprocess.Popen([binary, "loadgen", "--json", "--target", "otlp-grpc", "--endpoint", address,
                             "--rate", str(args.rate), "--duration", args.duration, "--workers", "4"],
                            stdout=subprocess.PIPE, text=True)
    next_sample = 5
    while load.poll() is None:
        if time.monotonic() - started >= next_sample:
            samples.append((next_sample, round(rss_mb(sidecar.pid), 1)))
            next_sample += 5
        if sidecar.poll() is not None:
            sys.exit(f"the sidecar exited during the soak:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)
    report = json.loads(load.stdout.read())
    sent = report["items_sent"]
    deadline = time.monotonic() + 300
    while get_json(f"http://{sink_address}/counts")["xray_documents"] < sent and time.monotonic() < deadline:
        samples.append((round(time.monotonic() - started), round(rss_mb(sidecar.pid), 1)))
        time.sleep(5)
    arrived = get_json(f"http://{sink_address}/counts")["xray_documents"]
    sidecar.send_signal(signal.SIGTERM)
    code = sidecar.wait(timeout=60)
    sink.terminate()
    result = {
        "duration": args.duration, "offered_per_s": args.rate, "acknowledged_spans": sent, "arrived": arrived,
        "refused_requests": report["failed_requests"], "accepted_per_s": round(sent / report["seconds"]),
        "peak_rss_mb": max(r for _, r in samples), "exit_code": code, "rss_mb_every_5s": samples,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    minute_rows = [f"| {t // 60:>3} min | {r:>6.1f} MB |" for t, r in samples if t % 60 == 0]
    (out / "soak.md").write_text(
        f"`benches/soak.py --duration {args.duration} --rate {args.rate}`: offered {args.rate} spans/s against a "
        f"destination answering in 100 ms; {sent} spans acknowledged ({result['accepted_per_s']}/s), {arrived} arrived, "
        f"{report['failed_requests']} requests refused (pushback), peak RSS {result['peak_rss_mb']} MB, exit code {code}.\n\n"
        "| time | RSS |\n|---|---|\n" + "\n".join(minute_rows) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mb_every_5s"}))
    if arrived != sent or code != 0:
        sys.exit("acknowledged spans were lost, or the sidecar did not exit cleanly")


if __name__ == "__main__":
    main()
