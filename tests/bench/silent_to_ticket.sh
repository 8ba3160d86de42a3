#!/usr/bin/env bash
# From a silent agent to its ticket in the collector's API, over loopback with mutual TLS.
#
#   tests/bench/silent_to_ticket.sh [RUNS [HEARTBEAT]]   (default 5 runs, heartbeat 1s)
#
# The real dozor-agent (no probes: it sends heartbeats) reports to the collector with its default
# rules; once it is up, it is SIGKILLed at a random moment within one heartbeat, and the clock runs
# from the kill until GET /api/v1/tickets?status=active (polled every 20 ms) shows the
# agent-silent ticket. The collector calls an agent silent 3 heartbeats after its last report and
# checks every 250 ms. Each run uses a new agent and site, so runs do not interact.
# BUILD_DIR: the build folder (default build). Every process started here is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${1:-5}
heartbeat=${2:-1s}
hb_seconds=$(python3 -c 'import sys; v=sys.argv[1]; print(float(v[:-2])/1000 if v.endswith("ms") else float(v[:-1]))' "$heartbeat")

agents=()
for i in $(seq "$runs"); do agents+=("quiet-agent-$i"); done
make_certs "${agents[@]}"
start_collector

latencies=()
for i in $(seq "$runs"); do
  agent=quiet-agent-$i
  cat >"$work/$agent.yaml" <<YAML
agent: { site: quiet-site-$i, heartbeat: $heartbeat }
collector: { url: "https://127.0.0.1:$agents_port", ca: certs/ca.pem, cert: certs/$agent.pem, key: certs/$agent.key }
spool: { path: $agent.db }
YAML
  "$build/agent/dozor-agent" --config "$work/$agent.yaml" 2>"$work/$agent.log" &
  agent_pid=$!
  pids+=("$agent_pid")
  wait_agent_up 10 "$agent" || { echo "$agent did not report:" >&2; cat "$work/$agent.log" >&2; exit 1; }
  # Two heartbeats in, then a random moment within the third.
  sleep "$(python3 -c 'import random, sys; h = float(sys.argv[1]); print(round(2 * h + random.uniform(0, h), 3))' "$hb_seconds")"
  kill_at KILL "$agent_pid"
  t0=$killed_at
  t1=$(wait_ticket "$(echo "4 * $hb_seconds + 10" | bc -l)" agent="$agent" rule=agent-silent) || {
    echo "no agent-silent ticket for $agent" >&2; exit 1; }
  latency=$(echo "$t1 - $t0" | bc -l)
  latencies+=("$(printf '%.2f' "$latency")")
  printf 'run %d: SIGKILL -> ticket %.2f s\n' "$i" "$latency"
done
printf 'silent_to_ticket: heartbeat %s, %d runs, median %.2f s, max %.2f s (runs: %s); goal <= %.1f s\n' \
  "$heartbeat" "$runs" "$(median "${latencies[@]}")" \
  "$(printf '%s\n' "${latencies[@]}" | sort -g | tail -1)" \
  "$(IFS=,; echo "${latencies[*]}" | sed 's/,/, /g')" "$(echo "3 * $hb_seconds + 1" | bc -l)"
