"""Shared rig for the end-to-end suite: runs the real otel-sidecar binary on loopback with
ephemeral ports, and points AWS clients at the moto server started by scripts/test."""

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("OTEL_SIDECAR_BIN", ROOT / "target" / "debug" / "otel-sidecar"))

# Every sidecar started by a test logs JSON and serves health and self-metrics on port 0.
TEST_TELEMETRY = {
    "logs": {"level": "info", "encoding": "json"},
    "metrics": {"readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": 0}}}}]},
}


class Sidecar:
    """One running otel-sidecar process and what it logged."""

    def __init__(self, config: dict, tmp: Path, env: dict | None = None, args: list | None = None):
        config = json.loads(json.dumps(config))
        service = config.setdefault("service", {})
        service.setdefault("telemetry", TEST_TELEMETRY)
        self.config_path = tmp / f"config-{time.monotonic_ns()}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / f"sidecar-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        full_env = {k: v for k, v in os.environ.items() if k != "AOT_CONFIG_CONTENT"}
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [str(BINARY), *(args if args is not None else ["--config", str(self.config_path)])],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        self.addresses = {}
        self._wait_ready()

    def log_records(self):
        records = []
        for line in self.log_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def _wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.log_records():
                if record.get("message") == "listening":
                    self.addresses[(record["component"], record["transport"])] = record["address"]
                if record.get("message", "").startswith("everything is ready"):
                    return
            if self.process.poll() is not None:
                raise AssertionError(f"sidecar exited early:\n{self.log_path.read_text()}")
            time.sleep(0.02)
        raise AssertionError(f"sidecar not ready in {timeout}s:\n{self.log_path.read_text()}")

    def address(self, component, transport):
        return self.addresses[(component, transport)]

    def url(self, component, transport, path=""):
        return f"http://{self.address(component, transport)}{path}"

    def self_metrics(self) -> dict:
        """Prometheus text parsed into {'name{labels}': value}."""
        text = urllib.request.urlopen(self.url("telemetry", "http", "/metrics")).read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                values[key] = float(value)
        return values

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def terminate(self, timeout=30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._log.close()
        return code

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


@pytest.fixture
def start_sidecar(tmp_path):
    started = []

    def start(config, env=None, args=None):
        sidecar = Sidecar(config, tmp_path, env=env, args=args)
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        sidecar.kill()


@pytest.fixture(scope="session")
def moto_endpoint():
    """The emulator started by scripts/test, or one started here for a local run."""
    endpoint = os.environ.get("MOTO_ENDPOINT")
    if endpoint:
        yield endpoint
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/")
            break
        except Exception:
            time.sleep(0.05)
    yield endpoint
    process.terminate()
    process.wait()


@pytest.fixture
def aws_env(moto_endpoint):
    return {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def file_pipeline_config(out_path, signals=("traces", "metrics"), batch=None, queue_size=None,
                         http=True, grpc=True):
    """OTLP in, batch, file out: the config most tests start from."""
    protocols = {}
    if grpc:
        protocols["grpc"] = {"endpoint": "127.0.0.1:0"}
    if http:
        protocols["http"] = {"endpoint": "127.0.0.1:0"}
    file_exporter = {"path": str(out_path)}
    if queue_size is not None:
        file_exporter["sending_queue"] = {"queue_size": queue_size}
    return {
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "receivers": {"otlp": {"protocols": protocols}},
        "processors": {"batch": batch or {"timeout": "100ms"}},
        "exporters": {"file": file_exporter},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                s: {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["file"]}
                for s in signals
            },
        },
    }


def read_file_export(path):
    """Every OTLP-JSON line the file exporter wrote."""
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def exported_spans(path):
    spans = []
    for line in read_file_export(path):
        for rs in line.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    spans.append((rs, ss, span))
    return spans


def tempdir():
    return Path(tempfile.mkdtemp())
