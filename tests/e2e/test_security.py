"""Acceptance (issue 17, security): credentials, session tokens and Authorization headers never
reach the logs, even at debug level; the sampling proxy signs only X-Ray sampling calls (see
test_xray_receiver.py); the listeners bind where the config says and nowhere else."""

import http.server
import json
import socket
import threading
import urllib.request
from pathlib import Path

from test_xray_export import send_app_spans
from test_xray_receiver import RecordedXRay

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY-SECRETPROBE"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-SESSIONTOKENPROBE"


def security_config(proxy_upstream):
    return {
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}},
                      "awsxray": {"endpoint": "127.0.0.1:0",
                                  "proxy_server": {"endpoint": "127.0.0.1:0", "aws_endpoint": proxy_upstream,
                                                   "region": "us-east-1"}},
                      "statsd": {"endpoint": "127.0.0.1:0", "aggregation_interval": "1s"}},
        "processors": {"batch": {"timeout": "100ms"}},
        "exporters": {"awsxray": {}, "awsemf": {"namespace": "E2E/Security", "log_group_name": "/e2e/security"}},
        "service": {"extensions": ["health_check"],
                    "telemetry": {"logs": {"level": "debug", "encoding": "json"},
                                  "metrics": {"readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": 0}}}}]}},
                    "pipelines": {"traces": {"receivers": ["otlp", "awsxray"], "processors": ["batch"], "exporters": ["awsxray"]},
                                  "metrics": {"receivers": ["otlp", "statsd"], "processors": ["batch"], "exporters": ["awsemf"]}}},
    }


def listening_addresses(pid):
    """Local addresses of the TCP listeners and UDP sockets the process holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    addresses = []
    for table, listen_state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", None), ("udp6", None)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in inodes or (listen_state and state != listen_state):
                continue
            host, port = local.split(":")
            if len(host) == 8:
                ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(host)[::-1])
            else:
                raw = bytes.fromhex(host)
                ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            addresses.append((table, ip, int(port, 16)))
    return addresses


def test_no_credential_in_a_debug_log_and_no_listener_beyond_the_config(start_sidecar, aws_env):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordedXRay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Every crate at its most verbose: the AWS SDK, hyper, rustls and the redis client included.
    env = dict(aws_env, AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE", AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN,
               OTEL_SIDECAR_LOG="trace")
    try:
        sidecar = start_sidecar(security_config(f"http://127.0.0.1:{server.server_address[1]}"), env=env)
        send_app_spans(sidecar.address("otlp", "grpc"))
        host, port = sidecar.address("statsd", "udp").rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"security.hits:1|c", (host, int(port)))
        request = urllib.request.Request(sidecar.url("awsxray/proxy", "http", "/GetSamplingRules"), data=b"{}",
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert RecordedXRay.seen[-1][1]["authorization"].startswith("AWS4-HMAC-SHA256"), "the proxy did sign"
        addresses = listening_addresses(sidecar.process.pid)
        assert addresses, "the sidecar listens somewhere"
        assert {ip for _, ip, _ in addresses} == {"127.0.0.1"}, addresses
        configured = {int(a.rsplit(":", 1)[1]) for a in sidecar.addresses.values()}
        assert {port for _, _, port in addresses} <= configured, (addresses, sidecar.addresses)
        assert sidecar.terminate() == 0
    finally:
        server.shutdown()
    log = sidecar.log_path.read_text()
    assert len(log.splitlines()) > 100 and '"level":"TRACE"' in log, "a trace log was written"
    # The values, and the Authorization header's (the SDK's trace of a canonical request names
    # the token's header and redacts its value, which is fine).
    for secret in (SECRET, TOKEN, "Signature=", "Credential="):
        assert secret.lower() not in log.lower(), f"{secret} appears in the log"
