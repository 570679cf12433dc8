#!/usr/bin/env bash
# One command for the end-to-end throughput table (see benches/throughput.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 benches/throughput.py "$@"
