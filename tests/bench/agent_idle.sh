#!/usr/bin/env bash
# The agent at rest with the four example probes of scripts/run: resident memory and CPU over a window.
#   tests/bench/agent_idle.sh [SECONDS]     (default 60; after scripts/setup)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
window=${1:-60}
make_certs site-agent
start_collector
cat >"$work/agent.yaml" <<YAML
agent: { site: bench-site, heartbeat: 5s }
collector: { url: "https://127.0.0.1:$agents_port", ca: certs/ca.pem, cert: certs/site-agent.pem, key: certs/site-agent.key }
spool: { path: spool.db }
probes:
  - { name: collector-tls, type: tcp, host: 127.0.0.1, port: $agents_port, interval: 10s, timeout: 2s }
  - { name: collector-health, type: http, url: "http://127.0.0.1:$http_port/healthz", interval: 10s, expect_body: "ok" }
  - { name: root-disk, type: disk, path: /, warning: 85, critical: 95, interval: 60s }
  - { name: state-disk, type: disk, path: "$work", interval: 60s }
YAML
"$build/agent/dozor-agent" --config "$work/agent.yaml" 2>"$work/agent.log" &
agent=$!
pids+=("$agent")
sleep 5  # start-up and first runs are not idle
before=$(cpu_seconds "$agent")
sleep "$window"
after=$(cpu_seconds "$agent")
rss=$(awk '/^VmRSS/{print $2}' "/proc/$agent/status")
hwm=$(awk '/^VmHWM/{print $2}' "/proc/$agent/status")
pss=$(awk '/^Pss:/{print $2}' "/proc/$agent/smaps_rollup")
private=$(awk '/^Private_(Clean|Dirty):/{s+=$2} END{print s}' "/proc/$agent/smaps_rollup")
kill -0 "$agent"
printf 'agent_idle: window %ss, cpu %.3f s, rss %.1f MiB (peak %.1f), pss %.1f MiB, private %.1f MiB\n' \
  "$window" "$(echo "$after - $before" | bc -l)" "$(echo "$rss/1024" | bc -l)" \
  "$(echo "$hwm/1024" | bc -l)" "$(echo "$pss/1024" | bc -l)" "$(echo "$private/1024" | bc -l)"
