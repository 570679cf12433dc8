"""Acceptance: config errors name YAML paths; AOT_CONFIG_CONTENT wins over --config; ssm:NAME
reads a parameter from the AWS emulator; the embedded ECS config names what is missing."""

import json
import subprocess

import boto3
import pytest
import yaml

from conftest import BINARY, TEST_TELEMETRY, file_pipeline_config


def run(args, env=None, timeout=60):
    import os

    full_env = {k: v for k, v in os.environ.items() if k != "AOT_CONFIG_CONTENT"}
    full_env.update(env or {})
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def test_validate_reports_every_problem_with_its_path(tmp):
    config = file_pipeline_config(tmp / "o.jsonl", signals=("traces",))
    config["receivers"]["otlp"]["protocols"]["grpc"]["endpont"] = "x"
    config["processors"]["batch"]["send_batch_max_size"] = 1
    config["processors"]["batch"]["send_batch_size"] = 10
    config["exporters"]["kafka"] = None
    config["service"]["pipelines"]["traces"]["exporters"].append("awsxray")
    path = tmp / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run(["validate", "--config", str(path)])
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"otel-sidecar: invalid configuration (file:{path}):"
    for expected in (
        "receivers.otlp.protocols.grpc: unknown field `endpont`",
        "processors.batch.send_batch_max_size: 1: send_batch_max_size must be greater or equal to send_batch_size (10)",
        'exporters.kafka: unknown type: "kafka" for id: "kafka" (valid values: [awscloudwatchlogs awsemf awsxray debug file otlp otlp_http otlphttp])',
        'service.pipelines.traces.exporters[1]: references exporter "awsxray" which is not configured',
    ):
        assert any(line.strip().startswith(expected) for line in lines), (expected, lines)


def test_validate_prints_a_summary(tmp):
    path = tmp / "good.yaml"
    path.write_text(yaml.safe_dump(file_pipeline_config(tmp / "o.jsonl")))
    result = run(["validate", "--config", f"file:{path}"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "config ok: traces: [otlp] -> [batch] -> [file]; metrics: [otlp] -> [batch] -> [file]\n"


def test_the_embedded_ecs_config_is_understood_whole():
    result = run(["validate"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("config ok: traces: [otlp,awsxray] -> [batch/traces] -> [awsxray]; "
                             "metrics: [otlp,statsd] -> [batch/metrics] -> [awsemf]\n")


def test_aot_config_content_wins_over_the_flag(start_sidecar, tmp):
    config = file_pipeline_config(tmp / "from-env.jsonl", signals=("traces",))
    config["service"]["telemetry"] = TEST_TELEMETRY
    content = yaml.safe_dump(config)
    result = run(["validate", "--config", str(tmp / "does-not-exist.yaml")], env={"AOT_CONFIG_CONTENT": content})
    assert result.returncode == 0, result.stderr
    sidecar = start_sidecar(
        {}, env={"AOT_CONFIG_CONTENT": content}, args=["--config", str(tmp / "does-not-exist.yaml")]
    )
    messages = [r.get("message") for r in sidecar.log_records()]
    assert "AOT_CONFIG_CONTENT is set: the --config flag is ignored" in messages
    assert any(r.get("config") == "env:AOT_CONFIG_CONTENT" for r in sidecar.log_records())
    assert sidecar.terminate() == 0


def test_config_from_ssm_parameter_store(tmp, aws_env, start_sidecar):
    config = file_pipeline_config(tmp / "from-ssm.jsonl", signals=("traces",))
    config["service"]["telemetry"] = TEST_TELEMETRY
    ssm = boto3.client("ssm", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    name = f"/otel-sidecar/e2e/{tmp.name}"
    ssm.put_parameter(Name=name, Value=yaml.safe_dump(config), Type="SecureString", Overwrite=True)

    result = run(["validate", "--config", f"ssm:{name}"], env=aws_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config ok: traces: [otlp] -> [batch] -> [file]")
    sidecar = start_sidecar({}, env=aws_env, args=["--config", f"ssm:{name}"])
    assert any(r.get("config") == f"ssm:{name}" for r in sidecar.log_records())
    assert sidecar.terminate() == 0

    result = run(["validate", "--config", "ssm:/otel-sidecar/e2e/missing"], env=aws_env)
    assert result.returncode == 1
    assert 'cannot read SSM parameter "/otel-sidecar/e2e/missing"' in result.stderr
    assert "ParameterNotFound" in result.stderr


def test_validate_print_shows_defaults_and_masks_secrets(tmp):
    config = tmp / "print.yaml"
    config.write_text("""
receivers:
  statsd:
exporters:
  awsemf:
    namespace: ${env:SHOP_NAMESPACE}
    cardinality_budget: {max_metrics: 50, shared: {endpoint: "rediss://app:topsecret@cache:6379"}}
service:
  pipelines:
    metrics: {receivers: [statsd], exporters: [awsemf]}
""")
    result = subprocess.run([str(BINARY), "validate", "--print", "--config", str(config)], capture_output=True,
                            text=True, env={"SHOP_NAMESPACE": "Shop", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    emf = printed["exporters"]["awsemf"]
    assert emf["namespace"] == "Shop"
    assert emf["dimension_rollup_option"] == "ZeroAndSingleDimensionRollup", "defaults shown"
    assert printed["receivers"]["statsd"]["aggregation_interval"] == "1m0s"
    assert emf["cardinality_budget"]["shared"]["endpoint"] == "rediss://app:***@cache:6379"
    assert "topsecret" not in result.stdout


class DenyingAws:
    """Answers every call as AWS does when the role lacks the permission."""

    def __init__(self):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.dumps({"__type": "AccessDeniedException",
                                   "message": "User: arn:aws:sts::123456789012:assumed-role/task/x is not authorized "
                                              "to perform: ssm:GetParameter on resource: otel-config"}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def closed_port_url():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("mistake,needle", [
    ("missing", "ParameterNotFound"),
    ("denied", "AccessDeniedException"),
    ("no_credentials", "no AWS credentials"),
    ("no_region", "no AWS region"),
    ("unreachable", "cannot reach"),
])
def test_each_start_up_mistake_is_one_readable_line(mistake, needle, aws_env, tmp):
    # Nothing from this machine's AWS setup leaks in: no profile files, no instance metadata.
    env = {"PATH": "/usr/bin:/bin", "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9",
           **aws_env}
    if mistake == "denied":
        env["AWS_ENDPOINT_URL"] = DenyingAws().url
    elif mistake == "no_credentials":
        env.pop("AWS_ACCESS_KEY_ID")
        env.pop("AWS_SECRET_ACCESS_KEY")
    elif mistake == "no_region":
        env.pop("AWS_REGION")
        env.pop("AWS_DEFAULT_REGION")
    elif mistake == "unreachable":
        env["AWS_ENDPOINT_URL"] = closed_port_url()
    result = subprocess.run([str(BINARY), "validate", "--config", f"ssm:/e2e/missing-{mistake}"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert len(lines[0]) < 300, lines[0]
    assert needle in lines[0] and "/e2e/missing-" in lines[0], lines[0]
