#!/usr/bin/env bash
# CPU % of one core used by the sidecar at 10k spans/s (OTLP gRPC -> X-Ray via the loadgen sink), 8 s.
# Usage: benches/cpu_at_10k_spans.sh [path-to-release-binary]   (build with cargo build --release)
set -euo pipefail
BIN=${1:-target/release/otel-sidecar}
W=$(mktemp -d)
taskset -c 1 $BIN loadgen sink --listen 127.0.0.1:0 > $W/sink.out &
SINK=$!
sleep 0.5
ADDR=$(head -1 $W/sink.out | python3 -c 'import json,sys; print(json.load(sys.stdin)["address"])')
cat > $W/c.yaml <<YAML
receivers:
  otlp: {protocols: {grpc: {endpoint: 127.0.0.1:0}}}
processors:
  batch/traces: {timeout: 1s, send_batch_size: 50}
exporters:
  awsxray: {}
service:
  telemetry:
    logs: {encoding: json}
    metrics: {level: none}
  pipelines:
    traces: {receivers: [otlp], processors: [batch/traces], exporters: [awsxray]}
YAML
AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y AWS_ENDPOINT_URL=http://$ADDR taskset -c 0 $BIN --config $W/c.yaml > $W/side.log 2>&1 &
SIDE=$!
sleep 1
GRPC=$(python3 -c "
import json
for l in open('$W/side.log'):
    r=json.loads(l)
    if r.get('message')=='listening' and r.get('transport')=='grpc': print(r['address'])")
T0=$(awk '{print $14+$15}' /proc/$SIDE/stat); S0=$(date +%s.%N)
taskset -c 1 $BIN loadgen --target otlp-grpc --endpoint $GRPC --rate 10000 --duration 8s --workers 2 --batch 100 > /dev/null
sleep 1.5
T1=$(awk '{print $14+$15}' /proc/$SIDE/stat); S1=$(date +%s.%N)
python3 -c "print('cpu % of a core:', round(($T1-$T0)/$(getconf CLK_TCK)/($S1-$S0)*100,1))"
kill -TERM $SIDE; wait $SIDE || true
curl -s http://$ADDR/counts; echo
kill -TERM $SINK; wait $SINK || true
