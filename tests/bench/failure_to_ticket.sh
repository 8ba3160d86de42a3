#!/usr/bin/env bash
# From a failure to its ticket in the collector's API, over loopback with mutual TLS.
#
#   tests/bench/failure_to_ticket.sh [COUNT]           (default 100; after scripts/setup)
#     A critical result handed to the agent's real Spool and Uplink -> ticket in
#     GET /api/v1/tickets?status=active, COUNT failures one at a time (failure_to_ticket.cpp).
#     The collector runs `for: 0s` (the default of probe-critical), `recover_for: 0s` so that
#     each ticket resolves before the next failure, and the site-wide grouping off.
#
#   tests/bench/failure_to_ticket.sh --service [RUNS]  (default 10; about 31 s a run)
#     With default settings: the real dozor-agent with one tcp probe at its default interval
#     (30 s) against a local TCP listener, and the collector's default rules. The listener is
#     SIGKILLed at a random moment; the clock runs from the kill until the ticket is in the API
#     (polled every 20 ms). Each run uses a new agent and site, so runs do not interact.
#
# BUILD_DIR: the build folder (default build). Every process started here is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [[ "${1:-}" != --service ]]; then
  make_certs bench-agent
  # One report per result, back to back: past the default limits.reports_per_second.
  start_collector "rules: [{name: probe-critical, recover_for: 0s}]
tickets: {outage_probes: 1000000}
limits: { reports_per_second: 100000 }"
  "$build/tests/bench/failure_to_ticket" "https://127.0.0.1:$agents_port" "127.0.0.1:$http_port" \
    "$work/certs/ca.pem" "$work/certs/bench-agent.pem" "$work/certs/bench-agent.key" \
    "${1:-100}" "$work/spool.db"
  exit 0
fi

runs=${2:-10}
agents=()
for i in $(seq "$runs"); do agents+=("svc-agent-$i"); done
make_certs "${agents[@]}"
start_collector

# A TCP service that accepts and closes: the thing the probe watches.
start_listener() {
  python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.close()
' "$1" &
  listener=$!
  pids+=("$listener")
  for _ in $(seq 100); do  # listening before the agent's first probe runs
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.02
  done
  echo "the listener did not start" >&2
  return 1
}

latencies=()
for i in $(seq "$runs"); do
  agent=svc-agent-$i
  port=$(free_port)
  start_listener "$port"
  cat >"$work/$agent.yaml" <<YAML
agent: { site: svc-site-$i }
collector: { url: "https://127.0.0.1:$agents_port", ca: certs/ca.pem, cert: certs/$agent.pem, key: certs/$agent.key }
spool: { path: $agent.db }
probes:
  - { name: erp-port, type: tcp, host: 127.0.0.1, port: $port }
YAML
  "$build/agent/dozor-agent" --config "$work/$agent.yaml" 2>"$work/$agent.log" &
  agent_pid=$!
  pids+=("$agent_pid")
  wait_probe 40 "$agent" erp-port ok || {
    echo "no ok result from $agent:" >&2
    curl -s "http://127.0.0.1:$http_port/api/v1/agents" >&2
    exit 1
  }
  # A random moment within the probe's 30 s interval.
  sleep "$(python3 -c 'import random; print(round(random.uniform(0, 30), 3))')"
  kill_at KILL "$listener"
  t0=$killed_at
  t1=$(wait_ticket 45 agent="$agent" probe=erp-port rule=probe-critical) || {
    echo "no ticket for $agent within 45 s" >&2; exit 1; }
  latency=$(echo "$t1 - $t0" | bc -l)
  latencies+=("$(printf '%.2f' "$latency")")
  printf 'run %d: kill -> ticket %.2f s\n' "$i" "$latency"
  kill_at TERM "$agent_pid"
done
printf 'failure_to_ticket --service: %d runs, median %.2f s, max %.2f s (runs: %s)\n' "$runs" \
  "$(median "${latencies[@]}")" "$(printf '%s\n' "${latencies[@]}" | sort -g | tail -1)" \
  "$(IFS=,; echo "${latencies[*]}" | sed 's/,/, /g')"
