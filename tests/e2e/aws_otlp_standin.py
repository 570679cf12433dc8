"""A loopback stand-in for AWS's OTLP endpoints (X-Ray `/v1/traces`, CloudWatch Logs `/v1/logs`,
CloudWatch `/v1/metrics`) that does what they do to a request before taking it: it recomputes the
SigV4 signature with botocore (service, region, date, signed headers, payload hash) and refuses
anything that does not match the keys it accepts, decodes gzip and protobuf or JSON, and for logs
requires the `x-aws-log-group` / `x-aws-log-stream` headers and that group and stream exist (in
moto). A test can script answers (429, 503 with Retry-After, a partial success) ahead of time."""

import gzip
import hashlib
import http.server
import json
import threading
import time
from collections import defaultdict

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from google.protobuf.json_format import Parse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (ExportLogsServiceRequest,
                                                                     ExportLogsServiceResponse)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest, ExportMetricsServiceResponse)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)

SIGNALS = {
    "/v1/traces": ("xray", ExportTraceServiceRequest, ExportTraceServiceResponse, "rejected_spans"),
    "/v1/logs": ("logs", ExportLogsServiceRequest, ExportLogsServiceResponse, "rejected_log_records"),
    "/v1/metrics": ("monitoring", ExportMetricsServiceRequest, ExportMetricsServiceResponse,
                    "rejected_data_points"),
}


class _SignedAs(SigV4Auth):
    """botocore's SigV4 with the signed header list taken from the request, and the payload hash
    of the body as received (so a changed body cannot pass)."""

    def __init__(self, credentials, service, region, signed_headers):
        super().__init__(credentials, service, region)
        self._signed = signed_headers

    def headers_to_sign(self, request):
        headers = super().headers_to_sign(request)
        for name in list(headers.keys()):
            if name.lower() not in self._signed:
                del headers[name]
        return headers

    def payload(self, request):
        return hashlib.sha256(request.body or b"").hexdigest()


def verify_signature(method, path, headers, body, keys, region, service=None):
    """None when the request is signed by one of `keys` ({access key: (secret, token)}) for
    `service` (by default the one its OTLP path belongs to) in `region`; else why not."""
    authorization = headers.get("authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return "not signed with SigV4"
    fields = dict(part.strip().split("=", 1) for part in authorization[len("AWS4-HMAC-SHA256 "):].split(","))
    expected_service = service or SIGNALS.get(path.split("?")[0], (None,))[0]
    access_key, date, scope_region, service, terminal = fields["Credential"].split("/")
    if terminal != "aws4_request" or scope_region != region or service != expected_service:
        return f"credential scope {fields['Credential']} is not {region}/{expected_service}"
    if access_key not in keys:
        return f"unknown access key {access_key}"
    secret, token = keys[access_key]
    if token is not None and headers.get("x-amz-security-token") != token:
        return "session token does not match"
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(date):
        return "x-amz-date does not match the credential scope's date"
    request = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                         headers={name: headers[name] for name in signed if name in headers})
    request.context["timestamp"] = amz_date
    auth = _SignedAs(Credentials(access_key, secret, token), service, region, set(signed))
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if expected != fields["Signature"]:
        return "signature does not match"
    return None


class AwsOtlpStandIn:
    """Start with the keys it accepts; `url` is its base, `received[path]` what it took."""

    def __init__(self, keys, region="us-east-1", logs_client=None, tls=None):
        self.keys = keys if isinstance(keys, LiveKeys) else dict(keys)
        self.region = region
        self.logs_client = logs_client
        self.received = defaultdict(list)  # path -> decoded requests taken
        self.refused = []  # (path, status, reason)
        self.answers = defaultdict(list)  # path -> scripted answers, first used first
        self.requests = defaultdict(int)
        self.lock = threading.Lock()
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, reply, extra = standin.handle(self.path, headers, body)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            # (certificate, key, client CA): HTTPS, and only clients with a certificate from it.
            import ssl
            certificate, key, client_ca = tls
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificate, key)
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"{scheme}://localhost:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()

    def script(self, path, *answers):
        """Answers for the next requests to `path`: ("status", code, retry_after) or
        ("partial", rejected, message). Requests beyond them are taken normally."""
        with self.lock:
            self.answers[path].extend(answers)

    def _refuse(self, path, status, reason):
        with self.lock:
            self.refused.append((path, status, reason))
        return status, json.dumps({"code": 16 if status == 403 else 3, "message": reason}).encode(), {
            "Content-Type": "application/json"}

    def handle(self, path, headers, body):
        with self.lock:
            self.requests[path] += 1
        if path not in SIGNALS:
            return self._refuse(path, 404, "no such path")
        problem = verify_signature("POST", path, headers, body, self.keys, self.region)
        if problem:
            return self._refuse(path, 403, problem)
        _, request_type, response_type, rejected_field = SIGNALS[path]
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        elif headers.get("content-encoding") not in (None, ""):
            return self._refuse(path, 415, f"content-encoding {headers['content-encoding']} not supported")
        json_body = headers.get("content-type", "").startswith("application/json")
        try:
            request = Parse(body.decode(), request_type()) if json_body else request_type.FromString(body)
        except Exception as error:  # noqa: BLE001 - any decoding problem is the client's
            return self._refuse(path, 400, f"cannot decode: {error}")
        if path == "/v1/logs":
            group, stream = headers.get("x-aws-log-group"), headers.get("x-aws-log-stream")
            if not group or not stream:
                return self._refuse(path, 400, "x-aws-log-group and x-aws-log-stream are required")
            if self.logs_client is not None:
                streams = self.logs_client.describe_log_streams(logGroupName=group, logStreamNamePrefix=stream) \
                    if group in [g["logGroupName"] for g in self.logs_client.describe_log_groups(
                        logGroupNamePrefix=group)["logGroups"]] else {"logStreams": []}
                if stream not in [s["logStreamName"] for s in streams["logStreams"]]:
                    return self._refuse(path, 400, f"log group {group} or stream {stream} does not exist")
        with self.lock:
            scripted = self.answers[path].pop(0) if self.answers[path] else None
        if scripted and scripted[0] == "status":
            _, status, retry_after = scripted
            extra = {"Content-Type": "application/json"}
            if retry_after is not None:
                extra["Retry-After"] = str(retry_after)
            return status, json.dumps({"code": 14, "message": "try again"}).encode(), extra
        response = response_type()
        if scripted and scripted[0] == "partial":
            _, rejected, message = scripted
            setattr(response.partial_success, rejected_field, rejected)
            response.partial_success.error_message = message
        with self.lock:
            self.received[path].append((headers, request))
        return 200, response.SerializeToString(), {"Content-Type": "application/x-protobuf"}

    def spans(self):
        return [span for _, request in self.received["/v1/traces"] for rs in request.resource_spans
                for ss in rs.scope_spans for span in ss.spans]

    def log_records(self):
        return [record for _, request in self.received["/v1/logs"] for rl in request.resource_logs
                for sl in rl.scope_logs for record in sl.log_records]

    def metrics(self):
        return [metric for _, request in self.received["/v1/metrics"] for rm in request.resource_metrics
                for sm in rm.scope_metrics for metric in sm.metrics]


class RotatingContainerCredentials:
    """The ECS container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`): it hands
    out the current key, with an expiry a minute away (ECS's are hours away; a minute is inside
    the window where clients fetch again). `rotate()` issues a new key and retires every older
    one at once; `keys()` is what an AWS endpoint accepts: the current key, nothing else."""

    def __init__(self):
        self.issued = []  # (access key, secret, token)
        self.served = 0
        self.lock = threading.Lock()
        self.rotate()
        creds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                import datetime
                with creds.lock:
                    key, secret, token = creds.issued[-1]
                    creds.served += 1
                expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)
                body = json.dumps({"AccessKeyId": key, "SecretAccessKey": secret, "Token": token,
                                   "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/credentials/task-role"

    def rotate(self):
        import secrets
        with self.lock:
            n = len(self.issued)
            self.issued.append((f"ASIAROTATING{n:08d}", secrets.token_hex(20), secrets.token_hex(16)))

    def keys(self):
        with self.lock:
            key, secret, token = self.issued[-1]
            return {key: (secret, token)}

    def close(self):
        self.server.shutdown()


class LiveKeys:
    """A key mapping read afresh at every check (the stand-in copies plain dicts)."""

    def __init__(self, source):
        self.source = source

    def __contains__(self, key):
        return key in self.source()

    def __getitem__(self, key):
        return self.source()[key]


class VerifyingProxy:
    """In front of moto (which never checks signatures): forwards a call only when its SigV4
    signature is right for one of `keys` (read afresh per call) and `service`; else 403."""

    def __init__(self, upstream, keys, service, region="us-east-1"):
        import urllib.error
        import urllib.request
        self.refused, self.forwarded, self.access_keys = [], 0, []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                problem = verify_signature("POST", self.path, headers, body, keys, region, service)
                if problem:
                    proxy.refused.append(problem)
                    status, reply, kind = 403, json.dumps({"__type": "InvalidSignatureException",
                                                           "message": problem}).encode(), "application/json"
                else:
                    proxy.forwarded += 1
                    proxy.access_keys.append(headers["authorization"].split("Credential=")[1].split("/")[0])
                    forward = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    request = urllib.request.Request(upstream + self.path, data=body, headers=forward, method="POST")
                    try:
                        with urllib.request.urlopen(request, timeout=30) as answer:
                            status, reply, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
                    except urllib.error.HTTPError as error:
                        status, reply, kind = error.code, error.read(), error.headers.get("Content-Type", "")
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
