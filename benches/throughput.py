#!/usr/bin/env python3
"""End-to-end throughput benchmark: builds release, starts the AWS sink and the sidecar (pinned
to one core), drives each signal at fixed rates and at the maximum with the load generator (on
another core), samples the sidecar's CPU and RSS from /proc, and writes a markdown + JSON table.
Items sent must equal items counted at the sink, or the run fails.

    benches/throughput.sh [--duration 10s] [--rates 1000,10000,50000,0] [--out benches/results]

With --compare, it instead runs the comparison workload (benches/workload: one 100-span and one
100-point OTLP protobuf body, posted 100 times a second = 10k items/s over one keep-alive
connection, the seed config's batch settings) for this build and every --baseline binary side
by side, each twice, plus an idle row; --tls adds the same rows with the AWS stand-in serving
HTTPS under a certificate the script makes (trusted through SSL_CERT_FILE).

    benches/throughput.sh --compare [--baseline path/to/other/otel-sidecar ...] [--peer path/to/rotel] [--tls]

Its routes: OTLP/HTTP → X-Ray, → EMF (2,000 variants of metrics.pb whose timestamps advance, as
an SDK's do: make_metrics_var.py, run by --python) and → OTLP/HTTP (gzip, SigV4, the stand-in as
X-Ray's OTLP endpoint). --peer runs rotel on the same routes (awsxray, awsemf, otlp with
sigv4auth, which signs only for AWS host names: /etc/hosts must map
xray.us-east-1.amazonaws.com to 127.0.0.1).

With --compare-saturation, the OTLP traces and metrics rows at saturation (as fast as the load
generator sends) for this build and every --baseline, each twice: items delivered per second
per core of sidecar CPU, and peak RSS; then the comparison workload's two bodies at saturation
(posted as they are over OTLP/HTTP by 16 connections, `loadgen --body`).

    benches/throughput.sh --compare-saturation [--baseline ...] [--duration 20s]
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
# Where `cargo build --release` puts it (CARGO_TARGET_DIR honoured, as by scripts/test).
BINARY = ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "release" / "otel-sidecar"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

CONFIG = """
extensions:
  health_check: {endpoint: 127.0.0.1:0}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:0}
      http: {endpoint: 127.0.0.1:0}
  awsxray: {endpoint: 127.0.0.1:0, proxy_server: {endpoint: 127.0.0.1:0}}
  statsd: {endpoint: 127.0.0.1:0, aggregation_interval: 1s}
processors:
  batch/traces: {timeout: 1s, send_batch_size: 50}
  batch/metrics: {timeout: 1s}
exporters:
  awsxray: {}
  awsemf: {namespace: Bench, log_group_name: /bench, log_stream_name: bench}
service:
  telemetry:
    logs: {encoding: json}
    metrics: {readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: 0}}}}]}
  extensions: [health_check]
  pipelines:
    traces: {receivers: [otlp, awsxray], processors: [batch/traces], exporters: [awsxray]}
    metrics: {receivers: [otlp, statsd], processors: [batch/metrics], exporters: [awsemf]}
"""


def cpu_ticks(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mb(pid):
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def get_json(url):
    return json.loads(urllib.request.urlopen(url, timeout=10).read())


def taskset(core):
    return ["taskset", "-c", str(core)] if subprocess.run(["which", "taskset"], capture_output=True).returncode == 0 else []


WORKLOAD = ROOT / "benches" / "workload"

# The seed config's pipelines and batch settings, listening on loopback.
COMPARE_CONFIG = """
receivers:
  otlp:
    protocols:
      http: {endpoint: 127.0.0.1:0}
processors:
  batch/traces: {timeout: 1s, send_batch_size: 50}
  batch/metrics: {timeout: 60s}
exporters:
  awsxray: {}
  awsemf: {namespace: ECS/OTEL/VM-X-AI, log_group_name: /aws/ecs/application/metrics}
service:
  telemetry:
    logs: {encoding: json}
  pipelines:
    traces: {receivers: [otlp], processors: [batch/traces], exporters: [awsxray]}
    metrics: {receivers: [otlp], processors: [batch/metrics], exporters: [awsemf]}
"""


# Traces to X-Ray's OTLP endpoint as AWS documents it (otlphttp, gzip, sigv4auth), the stand-in
# in its place.
COMPARE_OTLP_CONFIG = """
extensions:
  sigv4auth: {{region: us-east-1, service: xray}}
receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:0}}
processors:
  batch/traces: {{timeout: 1s, send_batch_size: 50}}
exporters:
  otlphttp: {{traces_endpoint: "{url}/v1/traces", compression: gzip, auth: {{authenticator: sigv4auth}}}}
service:
  extensions: [sigv4auth]
  telemetry:
    logs: {{encoding: json}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch/traces], exporters: [otlphttp]}}
"""


def make_certificate(work):
    """A CA and a certificate for localhost / 127.0.0.1 signed by it (openssl)."""
    run = lambda *a: subprocess.run(["openssl", *a], cwd=work, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bench CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "sink.key", "-out", "sink.csr")
    (work / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "sink.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "sink.pem")
    return work / "ca.pem", work / "sink.pem", work / "sink.key"


def cpu_split(pid):
    """(user, system) clock ticks of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def pace(port, path, bodies, rate, seconds):
    """Posts `bodies` in turn, `rate` a second, over one keep-alive connection; returns
    (sent, ok)."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sent = ok = 0
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return sent, ok
        due = sent / rate
        if due > elapsed:
            time.sleep(due - elapsed)
        connection.request("POST", path, bodies[sent % len(bodies)], {"Content-Type": "application/x-protobuf"})
        answer = connection.getresponse()
        answer.read()
        sent += 1
        ok += answer.status == 200


def start_compare_sidecar(binary, work, env, config="compare.yaml", refused_ok=False):
    """A sidecar with a comparison config (under work/) pinned to core 0, once it listens;
    returns it and its OTLP/HTTP port. With refused_ok, a binary that exits at start (an older
    build refusing a config key it predates) gives (None, its log) instead of ending the run."""
    log_path = work / "compare.log"
    with open(log_path, "w") as log:
        sidecar = subprocess.Popen([*taskset(0), str(binary), "--config", str(work / config)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 20
    while True:
        for line in log_path.read_text().splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("message") == "listening" and record.get("transport") == "http" \
                    and record.get("component", "").startswith("otlp"):
                time.sleep(1)
                return sidecar, int(record["address"].rsplit(":", 1)[1])
        if refused_ok and sidecar.poll() is not None:
            return None, log_path.read_text()
        if sidecar.poll() is not None or time.monotonic() > deadline:
            sys.exit(log_path.read_text())
        time.sleep(0.01)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The peer's flags for each route: the seed's batch settings, the same stand-in.
PEER_HOST = "xray.us-east-1.amazonaws.com"


def peer_arguments(route, sink_address, traces_batch=50):
    common = ["--traces-batch-max-size", str(traces_batch), "--traces-batch-timeout", "1s", "--metrics-batch-timeout", "60s"]
    if route == "xray":
        return common + ["--exporter", "awsxray", "--awsxray-exporter-region", "us-east-1",
                         "--awsxray-exporter-custom-endpoint", f"http://{sink_address}"]
    if route == "emf":
        return common + ["--exporter", "awsemf", "--awsemf-exporter-region", "us-east-1",
                         "--awsemf-exporter-custom-endpoint", f"http://{sink_address}",
                         "--awsemf-exporter-namespace", "ECS/OTEL/VM-X-AI",
                         "--awsemf-exporter-log-group-name", "/aws/ecs/application/metrics"]
    # It signs only for <service>.<region>.amazonaws.com hosts: /etc/hosts maps PEER_HOST to loopback.
    return common + ["--exporter", "otlp", "--otlp-exporter-protocol", "http", "--otlp-exporter-compression", "gzip",
                     "--otlp-exporter-authenticator", "sigv4auth",
                     "--otlp-exporter-endpoint", f"http://{PEER_HOST}:{sink_address.rsplit(':', 1)[1]}",
                     "--otlp-exporter-traces-endpoint", f"http://{PEER_HOST}:{sink_address.rsplit(':', 1)[1]}/v1/traces"]


def start_peer(binary, route, sink_address, work, env, traces_batch=50):
    """The peer collector (rotel) for `route`, pinned to core 0, once its OTLP/HTTP port takes
    connections; returns it and that port."""
    import socket
    http_port, grpc_port = free_port(), free_port()
    with open(work / "peer.log", "w") as log:
        peer = subprocess.Popen([*taskset(0), str(binary), "start", "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
                                 "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
                                 *peer_arguments(route, sink_address, traces_batch)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
            time.sleep(1)
            return peer, http_port
        except OSError:
            if peer.poll() is not None or time.monotonic() > deadline:
                sys.exit((work / "peer.log").read_text())
            time.sleep(0.05)


def write_metrics_variants(work, python):
    """2,000 variants of metrics.pb whose timestamps advance (benches/workload/make_metrics_var.py,
    which needs opentelemetry-proto: `python` is the interpreter that has it), in a folder under
    work, which is returned."""
    out = work / "metrics-var"
    subprocess.run([python, str(WORKLOAD / "make_metrics_var.py"), str(out), "2000"], check=True)
    return out


def metrics_variants(work, python):
    """The variants' bodies, in order."""
    return [p.read_bytes() for p in sorted(write_metrics_variants(work, python).iterdir())]


def compare(args):
    """The comparison workload for this build, each --baseline and the --peer, side by side:
    OTLP/HTTP → X-Ray, → EMF (timestamps advancing, no point re-sent) and → OTLP/HTTP (gzip,
    SigV4, the stand-in as X-Ray's OTLP endpoint)."""
    this = Path(args.binary) if args.binary else BINARY
    # The pacer is this process: on the stand-in's core, off the sidecar's.
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})
    binaries = [("this build", this, "sidecar")]
    binaries += [(Path(b).name if Path(b).name != "otel-sidecar" else b, Path(b), "sidecar") for b in args.baseline]
    if args.peer:
        binaries.append((Path(args.peer).name, Path(args.peer), "peer"))
        hosts = Path("/etc/hosts").read_text()
        if PEER_HOST not in hosts:
            sys.exit(f"--peer signs only for AWS host names: add '127.0.0.1 {PEER_HOST}' to /etc/hosts")
    work = Path(tempfile.mkdtemp())
    (work / "compare.yaml").write_text(COMPARE_CONFIG)
    traces = [(WORKLOAD / "traces.pb").read_bytes()]
    metrics = metrics_variants(work, args.python)
    routes = [("xray", "traces → X-Ray", "/v1/traces", traces, "xray_documents"),
              ("emf", "metrics → EMF", "/v1/metrics", metrics, "emf_events"),
              ("otlp", "traces → OTLP/HTTP", "/v1/traces", traces, "otlp_items")]
    modes = ["http"] + (["https"] if args.tls else [])
    certificate = make_certificate(work) if args.tls else None
    rows = []
    refused = {}
    for mode in modes:
        sink_args = ["--tls-cert", str(certificate[1]), "--tls-key", str(certificate[2])] if mode == "https" else []
        sink = subprocess.Popen([*taskset(1), str(BINARY), "loadgen", "sink", "--listen", "127.0.0.1:0", *sink_args],
                                stdout=subprocess.PIPE, text=True)
        sink_address = json.loads(sink.stdout.readline())["address"]
        scheme = "https" if mode == "https" else "http"
        counts_url = f"{scheme}://{sink_address}/counts"
        env = dict(os.environ, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
        env.pop("AOT_CONFIG_CONTENT", None)
        if mode == "https":
            env["AWS_ENDPOINT_URL"] = f"https://localhost:{sink_address.rsplit(':', 1)[1]}"
            env["SSL_CERT_FILE"] = str(certificate[0])
        else:
            env["AWS_ENDPOINT_URL"] = f"http://{sink_address}"
        (work / "compare-otlp.yaml").write_text(COMPARE_OTLP_CONFIG.format(
            url=f"{scheme}://{'localhost' if mode == 'https' else '127.0.0.1'}:{sink_address.rsplit(':', 1)[1]}"))

        def counts():
            import ssl
            context = ssl.create_default_context(cafile=str(certificate[0])) if mode == "https" else None
            return json.loads(urllib.request.urlopen(counts_url, timeout=10, context=context).read())

        for run in range(2):
            for label, binary, kind in binaries:
                for route, route_name, path, bodies, sink_key in routes:
                    if kind == "peer" and mode == "https":
                        continue
                    if kind == "peer":
                        process, port = start_peer(binary, route, sink_address, work, env, args.peer_traces_batch)
                    else:
                        config = "compare-otlp.yaml" if route == "otlp" else "compare.yaml"
                        if (label, route) in refused:
                            continue
                        process, port = start_compare_sidecar(binary, work, env, config,
                                                              refused_ok=binary != this)
                        if process is None:
                            refused[(label, route)] = port.strip().splitlines()[-1][:300]
                            print(f"{label} refuses the {route_name} config: {refused[(label, route)]}", flush=True)
                            continue
                    before_sink = counts()[sink_key]
                    user0, system0 = cpu_split(process.pid)
                    t0 = time.monotonic()
                    sent, ok = pace(port, path, bodies, 100, args.compare_seconds)
                    time.sleep(1.5)  # the last 1 s trace batch
                    elapsed = time.monotonic() - t0
                    user1, system1 = cpu_split(process.pid)
                    peak = rss_mb(process.pid)
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=60)
                    arrived = counts()[sink_key] - before_sink
                    rows.append({
                        "binary": label, "aws": mode, "run": run + 1, "route": route_name,
                        "items_per_s": 100 * 100, "requests_ok": f"{ok}/{sent}",
                        "cpu_pct_of_core": round((user1 + system1 - user0 - system0) / CLK_TCK / elapsed * 100, 1),
                        "user_ticks": user1 - user0, "system_ticks": system1 - system0,
                        "rss_mb": round(peak, 1), "arrived": arrived,
                    })
                    print(json.dumps(rows[-1]), flush=True)
                    # Spans arrive one document each from the sidecar; rotel nests child spans in
                    # their segment's document, so its X-Ray count is of documents, not spans.
                    whole = route == "otlp" or (route == "xray" and kind == "sidecar")
                    rows[-1]["whole"] = arrived == ok * 100 if whole else None
                    # The peer's rows are reported as they are; ours must be whole.
                    whole = whole and kind == "sidecar"
                    if route == "emf" and arrived == 0:
                        sys.exit(f"{label}, {route_name}: no EMF event arrived")
                    rows[-1]["arrived_counts"] = "documents" if route != "otlp" else "spans"
                    if whole and arrived != ok * 100:
                        sys.exit(f"{label}, {route_name}: {ok * 100} spans accepted, {arrived} arrived")
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)
    idle = []
    for label, binary, kind in binaries:
        if kind == "peer":
            continue
        env = dict(os.environ, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_ENDPOINT_URL="http://127.0.0.1:9")
        env.pop("AOT_CONFIG_CONTENT", None)
        sidecar = subprocess.Popen([*taskset(0), str(binary), "--config", str(work / "compare.yaml")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(2)
        user0, system0 = cpu_split(sidecar.pid)
        time.sleep(args.idle_seconds)
        user1, system1 = cpu_split(sidecar.pid)
        idle.append({"binary": label, "ticks": user1 + system1 - user0 - system0, "seconds": args.idle_seconds,
                     "rss_mb": round(rss_mb(sidecar.pid), 1)})
        print(json.dumps(idle[-1]), flush=True)
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=30)
    lines = [f"Comparison workload (benches/workload), {args.compare_seconds}s per row at 100 requests/s x 100 items = 10k items/s, "
             f"collector pinned to core 0, pacer and sink on core 1, each binary twice, interleaved; metrics: 2,000 "
             f"variants of metrics.pb with timestamps advancing 10 ms each (make_metrics_var.py).", "",
             "| binary | AWS side | run | route | CPU % of a core | user ticks | system ticks | RSS MB | requests ok | arrived at sink | every span arrived |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['binary']} | {r['aws']} | {r['run']} | {r['route']} | {r['cpu_pct_of_core']} | {r['user_ticks']} | "
                     f"{r['system_ticks']} | {r['rss_mb']} | {r['requests_ok']} | {r['arrived']} {r['arrived_counts']} | "
                     f"{ {True: 'yes', False: 'no', None: 'not countable'}[r['whole']] } |")
    if refused:
        lines += [""] + [f"{label} has no {route} row: it refused the config at start ({why})."
                         for (label, route), why in refused.items()]
    lines += ["", "| binary | idle ticks | over s | RSS MB |", "|---|---|---|---|"]
    lines += [f"| {i['binary']} | {i['ticks']} | {i['seconds']} | {i['rss_mb']} |" for i in idle]
    write_results(args, "compare", {"rows": rows, "idle": idle, "refused": [
        {"binary": label, "route": route, "why": why} for (label, route), why in refused.items()]}, lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--rates", default="1000,10000,50000,0")
    parser.add_argument("--out", default=str(ROOT / "benches" / "results"))
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--saturation", default="60s", help="length of each saturation row (0s: none)")
    parser.add_argument("--workers", default="2", help="load generator workers (connections' streams)")
    parser.add_argument("--compare", action="store_true", help="run the comparison workload instead")
    parser.add_argument("--compare-saturation", action="store_true",
                        help="run the OTLP saturation rows for this build and each --baseline instead")
    parser.add_argument("--baseline", action="append", default=[], help="another otel-sidecar binary to compare")
    parser.add_argument("--peer", help="a rotel binary to compare in the same run (--compare)")
    parser.add_argument("--peer-traces-batch", type=int, default=50,
                        help="the peer's --traces-batch-max-size (the seed's send_batch_size is 50; rotel 0.2.1 "
                             "drops a request, and the batch it was filling, when more than one batch's worth "
                             "is left after filling it: with 100-span requests, 100 keeps its rows whole)")
    parser.add_argument("--python", default=sys.executable,
                        help="a Python with opentelemetry-proto, to write the metrics variants (--compare, --compare-saturation)")
    parser.add_argument("--tls", action="store_true", help="also compare with the AWS stand-in serving HTTPS")
    parser.add_argument("--compare-seconds", type=float, default=20)
    parser.add_argument("--binary", help="the build to compare (default: the release build of this tree)")
    parser.add_argument("--idle-seconds", type=float, default=30)
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    if args.compare:
        return compare(args)
    if args.compare_saturation:
        return compare_saturation(args)
    rows, summary = table(args, Path(args.binary) if args.binary else BINARY)
    lines = [f"Start to healthy: {summary['start_to_ready_ms']} ms; idle RSS {summary['idle_rss_mb']} MB; "
             f"{summary['cores']} cores, sidecar pinned to core 0, load generator and sink on core 1; a fresh sidecar per scenario; "
             f"{args.duration} per row, {args.saturation} per saturation row. Accepted/s = items taken in per second "
             f"of load (UDP: sent); sustained = arrived ÷ time from the load's start to the last arrival, which "
             f"includes the batch processor's 1 s timeout when the last batch is partial; errors = requests "
             f"refused (pushback).", "",
             "| scenario | target rate/s | sent (accepted) | arrived at sink | accepted/s | sustained/s | sidecar CPU % of a core | peak RSS MB | errors | p99 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['rate']} | {r['sent']} | {r['arrived']} | {r['accepted_per_s']} | {r['achieved_per_s']} | "
                     f"{r['cpu_pct_of_core']} | {r['peak_rss_mb']} | {r['errors']} | {r['p99_ms']} |")
    write_results(args, "throughput", summary, lines, rows)


def write_results(args, name, data, lines, rows=None):
    """`<name>.json` and `<name>.md` under --out, the table printed; exits non-zero when a row's
    arrivals differ from what was accepted (rows marked `whole: False` publish re-sent points
    once, so their arrivals are fewer by design)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2))
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    lost = [r for r in rows or [] if r.get("whole", True) and r["arrived"] != r["sent"]]
    if lost:
        sys.exit(f"items lost in {len(lost)} rows: {lost}")


def compare_saturation(args):
    """The OTLP rows at saturation (as fast as the load generator can send, a fresh sidecar per
    row) for this build and every --baseline, each twice, interleaved: accepted-and-delivered
    items per second, per core of sidecar CPU, and peak RSS. Then the comparison workload's two
    bodies at saturation, posted over OTLP/HTTP by 16 connections with the seed config's batch
    settings (the issue's `wrk -c16` rows)."""
    this = Path(args.binary) if args.binary else BINARY
    binaries = [("this build", this)] + [(Path(b).name, Path(b)) for b in args.baseline]
    args.rates, args.saturation = "0", "0s"
    rows = []
    for run in range(2):
        for label, binary in binaries:
            for row in table(args, binary, only=("OTLP traces", "OTLP metrics"))[0]:
                row.update(binary=label, run=run + 1,
                           per_core=round(row["arrived"] / row["seconds"] / max(row["cpu_pct_of_core"], 0.1) * 100))
                rows.append(row)
                print(json.dumps(row), flush=True)
    collectors = [(label, binary, "sidecar") for label, binary in binaries]
    metrics_var = write_metrics_variants(Path(tempfile.mkdtemp()), args.python)
    if args.peer:
        if PEER_HOST not in Path("/etc/hosts").read_text():
            sys.exit(f"--peer signs only for AWS host names: add '127.0.0.1 {PEER_HOST}' to /etc/hosts")
        collectors.append((Path(args.peer).name, Path(args.peer), "peer"))
    for run in range(2):
        for label, binary, kind in collectors:
            for row in workload_saturation(args, binary, kind, refused_ok=label != "this build",
                                           metrics_var=metrics_var):
                row.update(binary=label, run=run + 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    lines = [f"Saturation (benches/throughput.sh --compare-saturation), {args.duration} per row, a fresh sidecar per row pinned "
             f"to core 0, load generator and sink on core 1, each binary twice, interleaved.", "",
             f"- Generated load: OTLP/gRPC as fast as the load generator sends ({args.workers} workers, 100 items a request, "
             f"distinct series), batches of 50 spans / 1 s. Per core = items arrived at the sink per second ÷ the sidecar's "
             f"share of a core.",
             "- Workload: benches/workload's traces.pb and metrics.pb posted as they are over OTLP/HTTP by 16 connections, "
             "the seed config's batch settings (traces 1 s / 50; metrics 60 s, so 8,192-point batches). Traces: per core as "
             "above. Metrics: per core = accepted points per second ÷ the sidecar's share of a core; the body repeats the "
             "same series and timestamps, and a point re-sent within a batch is published once, so EMF events arrived are "
             "fewer than points (this build) or one per point (a build that publishes each copy). The metrics variants "
             "(make_metrics_var.py: 2,000 bodies, timestamps advancing 10 ms each, no point re-sent) are posted in turn "
             "by the same 16 connections.", "",
             "| binary | run | load | signal | accepted | arrived at sink | accepted/s | CPU % of a core | per core | peak RSS MB | errors | every span arrived |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        whole = {True: "yes", False: "no", None: "not countable"}[r.get("whole")]
        lines.append(f"| {r['binary']} | {r['run']} | {r.get('load', 'generated')} | {r['scenario']} | {r['sent']} | {r['arrived']} | "
                     f"{r['accepted_per_s']} | {r['cpu_pct_of_core']} | {r['per_core']} | {r['peak_rss_mb']} | {r['errors']} | {whole} |")
    write_results(args, "saturation", rows, lines, rows)


def workload_saturation(args, binary, kind="sidecar", refused_ok=False, metrics_var=None):
    """The comparison workload's bodies as fast as 16 connections post them, a fresh collector
    (seed batch settings) per route: OTLP/HTTP → X-Ray, → EMF and → OTLP/HTTP (gzip, SigV4).
    `kind` "peer" runs rotel with the same settings; its rows are reported as they are. With
    refused_ok, a route whose config the binary refuses at start is left out. With metrics_var (a
    folder of metrics bodies whose timestamps advance), EMF also gets them, posted in turn."""
    work = Path(tempfile.mkdtemp())
    (work / "compare.yaml").write_text(COMPARE_CONFIG)
    sink = subprocess.Popen([*taskset(1), str(BINARY), "loadgen", "sink", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, text=True)
    sink_address = json.loads(sink.stdout.readline())["address"]
    (work / "compare-otlp.yaml").write_text(COMPARE_OTLP_CONFIG.format(
        url=f"http://127.0.0.1:{sink_address.rsplit(':', 1)[1]}"))
    env = dict(os.environ, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_ENDPOINT_URL=f"http://{sink_address}")
    env.pop("AOT_CONFIG_CONTENT", None)
    rows = []
    routes = [("xray", "traces", "xray_documents", "traces.pb → X-Ray documents", WORKLOAD / "traces.pb"),
              ("emf", "metrics", "emf_events", "metrics.pb → EMF events", WORKLOAD / "metrics.pb"),
              ("otlp", "traces", "otlp_items", "traces.pb → OTLP/HTTP spans (gzip, SigV4)", WORKLOAD / "traces.pb")]
    if metrics_var:
        routes.insert(2, ("emf", "metrics", "emf_events", "metrics variants, timestamps advancing → EMF events",
                          metrics_var))
    for route, signal_name, sink_key, scenario, body in routes:
        if kind == "peer":
            sidecar, port = start_peer(binary, route, sink_address, work, env, args.peer_traces_batch)
        else:
            sidecar, port = start_compare_sidecar(binary, work, env,
                                                  "compare-otlp.yaml" if route == "otlp" else "compare.yaml",
                                                  refused_ok=refused_ok)
            if sidecar is None:
                print(f"{binary} refuses the {scenario} config: {port.strip().splitlines()[-1][:300]}", flush=True)
                continue
        counted = lambda: get_json(f"http://{sink_address}/counts")[sink_key]
        before_count, before_ticks, t0 = counted(), cpu_ticks(sidecar.pid), time.monotonic()
        peak_rss = rss_mb(sidecar.pid)
        runner = subprocess.Popen([*taskset(1), str(BINARY), "loadgen", "--json", "--duration", args.duration,
                                   "--target", "otlp-http", "--endpoint", f"127.0.0.1:{port}", "--signal", signal_name,
                                   "--body", str(body), "--workers", "16"],
                                  stdout=subprocess.PIPE, text=True)
        while runner.poll() is None:
            peak_rss = max(peak_rss, rss_mb(sidecar.pid))
            time.sleep(0.1)
        report = json.loads(runner.stdout.read())
        sent = report["items_sent"]
        # Spans: wait for every one (the peer's X-Ray documents nest spans, so its count is lower).
        if signal_name == "traces":
            deadline = time.monotonic() + (20 if kind == "peer" else 60)
            while counted() - before_count < sent and time.monotonic() < deadline:
                peak_rss = max(peak_rss, rss_mb(sidecar.pid))
                time.sleep(0.1)
        elapsed = time.monotonic() - t0
        cpu = round((cpu_ticks(sidecar.pid) - before_ticks) / CLK_TCK / elapsed * 100, 1)
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=60)
        arrived = counted() - before_count  # metrics: with the last batch, flushed at SIGTERM
        countable = signal_name == "traces" and (route == "otlp" or kind == "sidecar")
        if countable and kind == "sidecar" and arrived != sent:
            sys.exit(f"{binary}, {scenario}: {sent} spans accepted, {arrived} arrived")
        seconds = round(max(report["seconds"], elapsed), 2)
        basis = arrived if signal_name == "traces" else sent
        rows.append({"load": "workload, OTLP/HTTP", "scenario": scenario, "sent": sent, "arrived": arrived,
                     "accepted_per_s": round(sent / report["seconds"]), "cpu_pct_of_core": cpu,
                     "per_core": round(basis / seconds / max(cpu, 0.1) * 100), "peak_rss_mb": round(peak_rss, 1),
                     "errors": report["failed_requests"], "seconds": seconds,
                     "whole": (arrived == sent) if countable else None})
    sink.send_signal(signal.SIGTERM)
    sink.wait(timeout=10)
    return rows


def table(args, binary, only=None):
    """The throughput table's rows for one sidecar binary (the load generator and the sink are
    this build's); `only` keeps the scenarios whose names start with one of its prefixes."""
    work = Path(tempfile.mkdtemp())
    env = dict(os.environ, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    env.pop("AOT_CONFIG_CONTENT", None)

    sink = subprocess.Popen([*taskset(1), str(BINARY), "loadgen", "sink", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, text=True)
    sink_address = json.loads(sink.stdout.readline())["address"]
    env["AWS_ENDPOINT_URL"] = f"http://{sink_address}"
    (work / "bench.yaml").write_text(CONFIG)
    state = {}

    def start_sidecar():
        """A fresh sidecar per scenario, so each peak RSS is that scenario's own (glibc keeps
        what a process once held)."""
        log_path = work / "sidecar.log"
        log = open(log_path, "w")
        started = time.monotonic()
        sidecar = subprocess.Popen([*taskset(0), str(binary), "--config", str(work / "bench.yaml")],
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
        addresses = {}
        while True:
            for line in log_path.read_text().splitlines():
                record = json.loads(line) if line.startswith("{") else {}
                if record.get("message") == "listening":
                    addresses[(record["component"], record["transport"])] = record["address"]
                if record.get("message", "").startswith("everything is ready"):
                    break
            else:
                if sidecar.poll() is not None:
                    sys.exit(log_path.read_text())
                time.sleep(0.005)
                continue
            break
        ready_ms = (time.monotonic() - started) * 1000
        time.sleep(1)
        state.update(sidecar=sidecar, addresses=addresses)
        return ready_ms, rss_mb(sidecar.pid)

    def stop_sidecar():
        state["sidecar"].send_signal(signal.SIGTERM)
        state["sidecar"].wait(timeout=60)

    def statsd_lines():
        url = f"http://{state['addresses'][('telemetry', 'http')]}/metrics"
        for line in urllib.request.urlopen(url).read().decode().splitlines():
            if line.startswith("otelsidecar_receiver_statsd_lines{"):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    def sink_count(key):
        return lambda: get_json(f"http://{sink_address}/counts")[key]

    def endpoint(component, transport):
        return lambda: state["addresses"][(component, transport)]

    # UDP has no pushback: past what the sidecar drains, the kernel drops datagrams and nothing
    # counts them as sent-but-lost on the sender's side. So UDP scenarios run at the issue's
    # target rate in place of "as fast as possible", and must arrive whole there.
    udp_max = {"X-Ray UDP segments → X-Ray documents": 100_000, "StatsD lines parsed and aggregated": 1_000_000}
    scenarios = [
        ("OTLP traces → X-Ray documents", ["--target", "otlp-grpc", "--signal", "traces"], endpoint("otlp", "grpc"), sink_count("xray_documents")),
        ("OTLP metrics → EMF events", ["--target", "otlp-grpc", "--signal", "metrics", "--series", "100"], endpoint("otlp", "grpc"), sink_count("emf_events")),
        ("X-Ray UDP segments → X-Ray documents", ["--target", "xray-udp", "--batch", "20"], endpoint("awsxray", "udp"), sink_count("xray_documents")),
        ("StatsD lines parsed and aggregated", ["--target", "statsd-udp", "--batch", "50", "--series", "500"], endpoint("statsd", "udp"), statsd_lines),
    ]
    if only:
        scenarios = [s for s in scenarios if s[0].startswith(only)]
    rows = []

    def run_row(name, load, target, counted, rate, duration):
        sidecar = state["sidecar"]
        load = [*load, "--endpoint", target()]
        before_count = counted()
        before_ticks, t0 = cpu_ticks(sidecar.pid), time.monotonic()
        peak_rss = rss_mb(sidecar.pid)
        runner = subprocess.Popen([*taskset(1), str(BINARY), "loadgen", "--json", "--duration", duration,
                                   "--rate", str(rate), "--workers", args.workers, *load], stdout=subprocess.PIPE, text=True)
        while runner.poll() is None:
            peak_rss = max(peak_rss, rss_mb(sidecar.pid))
            time.sleep(0.1)
        report = json.loads(runner.stdout.read())
        # Items of accepted requests; refused ones (pushback) are counted under errors.
        sent = report["items_sent"]
        deadline = time.monotonic() + 60
        while counted() - before_count < sent and time.monotonic() < deadline:
            peak_rss = max(peak_rss, rss_mb(sidecar.pid))
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        arrived = counted() - before_count
        # EMF aggregates nothing here (distinct series per point), so events equal points.
        rows.append({
            "scenario": name, "rate": rate or "max", "sent": sent, "arrived": arrived,
            # Sustained: arrived over the time from the load's start to the last arrival (polled
            # every 0.1 s, so it errs low); a backlog drained after the load is not speed.
            "achieved_per_s": round(arrived / max(report["seconds"], elapsed)),
            # What the sidecar took in per second of load (UDP: what was sent). When every item
            # arrived this is its rate; "sustained" also counts the wait for the last partial
            # batch (the batch processor's 1 s timeout), so it reads low by up to a second.
            "accepted_per_s": round(sent / report["seconds"]),
            "cpu_pct_of_core": round((cpu_ticks(sidecar.pid) - before_ticks) / CLK_TCK / elapsed * 100, 1),
            "peak_rss_mb": round(peak_rss, 1), "errors": report["failed_requests"],
            "p99_ms": report["latency_ms"]["p99"], "seconds": round(max(report["seconds"], elapsed), 2),
        })
        print(json.dumps(rows[-1]), flush=True)

    start_to_ready_ms, idle_rss = None, None
    for name, load, target, counted in scenarios:
        ready_ms, idle = start_sidecar()
        if start_to_ready_ms is None:
            start_to_ready_ms, idle_rss = ready_ms, idle
        for rate in [int(r) for r in args.rates.split(",")]:
            if rate == 0 and name in udp_max:
                rate = udp_max[name]
            run_row(name, load, target, counted, rate, args.duration)
        stop_sidecar()
    # Saturation: the destination answers each call after 100 ms, far below the load, for
    # --saturation seconds. The sidecar must push back (refuse or slow requests) with bounded
    # memory, and still deliver every item it accepted.
    if args.saturation != "0s":
        urllib.request.urlopen(urllib.request.Request(f"http://{sink_address}/delay?ms=100", method="POST"))
        for name, load, target, counted in scenarios[:2]:
            start_sidecar()
            run_row(f"{name}, destination 100 ms per call (saturation)", load, target, counted, 0, args.saturation)
            stop_sidecar()
        urllib.request.urlopen(urllib.request.Request(f"http://{sink_address}/delay?ms=0", method="POST"))
    sink.send_signal(signal.SIGTERM)
    sink.wait(timeout=10)
    summary = {"machine": os.uname().machine, "cores": os.cpu_count(), "duration": args.duration,
               "start_to_ready_ms": round(start_to_ready_ms, 1), "idle_rss_mb": round(idle_rss, 1), "rows": rows}
    return rows, summary


if __name__ == "__main__":
    main()
