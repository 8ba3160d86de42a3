#!/usr/bin/env bash
# Latency from a probe's result to its value in /metrics, over loopback with mutual TLS.
#   tests/bench/result_to_metrics.sh [COUNT]      (after scripts/setup; BUILD_DIR default build)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_certs bench-agent
# One report per result, back to back: faster than the collector lets an agent report by default.
start_collector "limits: { reports_per_second: 100000 }"
"$build/tests/bench/result_to_metrics" "https://127.0.0.1:$agents_port" "127.0.0.1:$http_port" \
  "$work/certs/ca.pem" "$work/certs/bench-agent.pem" "$work/certs/bench-agent.key" "${1:-200}" "$work/spool.db"
