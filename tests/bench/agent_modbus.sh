#!/usr/bin/env bash
# The agent polling 1,000 Modbus points a second and reporting to a local collector over mutual
# TLS: CPU over a window and resident memory at its end, as agent_idle.sh measures them.
#   tests/bench/agent_modbus.sh [SECONDS [RUNS]]   (default 60 s, 3 runs; after scripts/setup;
#                                                   BUILD_DIR default build)
# 10 devices (units 1-10) of 100 uint16 points each (holding 0, 2, ..., 198: two requests a
# device) on one Modbus TCP link, every 1 s, heartbeat 5 s: the whole agent runs (scheduler,
# probes on the blocking pool, spool, uplink). The server is build/tests/bench/modbus_server, a
# process of its own whose registers change every second, so only the agent's CPU is counted.
# Each run starts a fresh agent, waits 10 s (start-up, TLS set-up, the first uploads), then counts
# CPU over SECONDS; it checks at the collector that the window's results arrived (at least 95 % of
# devices x SECONDS) and that every probe is ok. It prints each run, then the medians.
set -euo pipefail
window=${1:-60}
runs=${2:-3}
devices=10 points=100 settle=10

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
server_bin=$build/tests/bench/modbus_server
agent_bin=$build/agent/dozor-agent
for b in "$server_bin" "$agent_bin" "$build/server/dozor-collector"; do
  [[ -x $b ]] || { echo "$b missing: ninja -C $build modbus_server dozor-agent dozor-collector" >&2; exit 1; }
done

# What the collector has: results accepted from this agent, and its probes' last statuses.
agent_results() {
  curl -fs "http://127.0.0.1:$http_port/api/v1/agents" |
    python3 -c 'import json,sys; print(sum(a["results"] for a in json.load(sys.stdin) if a["id"] == "modbus-agent"))'
}
probe_statuses() {
  curl -fs "http://127.0.0.1:$http_port/api/v1/agents" | python3 -c '
import collections, json, sys
probes = [p for a in json.load(sys.stdin) if a["id"] == "modbus-agent" for p in a["probes"]]
print(" ".join(f"{s} {n}" for s, n in sorted(collections.Counter(p["status"] for p in probes).items())))
bad = [p for p in probes if p["status"] != "ok"]
print(bad[0]["name"] + ": " + bad[0]["summary"] if bad else probes[0]["summary"] if probes else "no probes")
'
}
# TLS connections the collector accepted from the agent (one kept alive: a handshake per run).
connections() {
  curl -fs "http://127.0.0.1:$http_port/metrics" |
    awk '/^dozor_agent_connections_total\{/ && /modbus-agent/ {s += $NF} END {printf "%d\n", s}'
}
# The last value of point p0 of meter-1 at the collector (the server's counter: it moves).
p0_value() {
  curl -fs "http://127.0.0.1:$http_port/metrics" |
    awk '/^dozor_probe_value\{/ && /probe="meter-1"/ && /(metric|name)="p0"/ {v = $NF} END {print v}'
}

make_certs modbus-agent
start_collector
mb_port=$(free_port)
"$server_bin" "$mb_port" 2>"$work/modbus_server.log" &
pids+=($!)
for _ in $(seq 100); do
  grep -qs listening "$work/modbus_server.log" && break
  sleep 0.05
done
grep -qs listening "$work/modbus_server.log" || { cat "$work/modbus_server.log" >&2; exit 1; }

{
  cat <<YAML
agent: { site: bench-site, heartbeat: 5s }
collector: { url: "https://127.0.0.1:$agents_port", ca: certs/ca.pem, cert: certs/modbus-agent.pem, key: certs/modbus-agent.key }
spool: { path: spool.db }
probes:
YAML
  for d in $(seq "$devices"); do
    printf '  - name: meter-%d\n    type: modbus\n    link: tcp://127.0.0.1:%d\n    unit: %d\n    interval: 1s\n    points:\n' \
      "$d" "$mb_port" "$d"
    for p in $(seq 0 $((points - 1))); do
      echo "      - { name: p$p, register: holding, address: $((2 * p)) }"
    done
  done
} >"$work/agent.yaml"
"$agent_bin" --config "$work/agent.yaml" --check-config >/dev/null
plan=$("$agent_bin" --config "$work/agent.yaml" --once --plan 2>/dev/null | grep -m1 '^unit 1 on' || true)

echo "agent_modbus: $devices devices x $points points every 1s ($((devices * points)) points/s) on tcp://127.0.0.1:$mb_port; window ${window}s after ${settle}s; $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n $plan ]] && echo "plan: $plan"
cpus=() percents=() rsss=() results=()
for run in $(seq "$runs"); do
  rm -f "$work"/spool.db*
  "$agent_bin" --config "$work/agent.yaml" 2>"$work/agent.log" &
  agent=$!
  pids+=("$agent")
  sleep "$settle"
  before=$(cpu_seconds "$agent") got_before=$(agent_results) v_before=$(p0_value) c_before=$(connections)
  sleep "$window"
  after=$(cpu_seconds "$agent") got_after=$(agent_results) v_after=$(p0_value) c_after=$(connections)
  kill -0 "$agent"
  rss=$(awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$agent/status")
  hwm=$(awk '/^VmHWM/{printf "%.1f", $2/1024}' "/proc/$agent/status")
  threads=$(awk '/^Threads/{print $2}' "/proc/$agent/status")
  mapfile -t statuses < <(probe_statuses)
  cpu=$(echo "$after - $before" | bc -l)
  percent=$(echo "100 * $cpu / $window" | bc -l)
  got=$((got_after - got_before))
  printf 'run %d: cpu %.3f s = %.3f %% of one core; rss %s MiB (peak %s), %s threads; collector got %d results (%d points) in the window over %d new TLS connections, p0 of meter-1 %s -> %s; probes: %s; load %s\n' \
    "$run" "$cpu" "$percent" "$rss" "$hwm" "$threads" "$got" "$((got * points))" \
    "$((c_after - c_before))" "${v_before:-?}" "${v_after:-?}" "${statuses[0]}" "$(cut -d' ' -f1-3 /proc/loadavg)"
  kill -TERM "$agent"
  wait "$agent" 2>/dev/null || true
  if [[ ${statuses[0]} != "ok $devices" ]]; then
    echo "not every probe is ok: ${statuses[1]}" >&2
    tail -5 "$work/agent.log" >&2
    exit 1
  fi
  if ((got * 100 < 95 * devices * window)); then
    echo "only $got of $((devices * window)) results arrived in the window" >&2
    tail -5 "$work/agent.log" >&2
    exit 1
  fi
  cpus+=("$cpu") percents+=("$percent") rsss+=("$rss") results+=("$got")
done
echo "summary of a probe: ${statuses[1]}"
printf 'median of %d: cpu %.3f s = %.3f %% of one core [%s]; rss %s MiB [%s]; %s results per window [%s]\n' \
  "$runs" "$(median "${cpus[@]}")" "$(median "${percents[@]}")" "$(printf '%.3f ' "${cpus[@]}" | sed 's/ $//')" \
  "$(median "${rsss[@]}")" "${rsss[*]}" "$(median "${results[@]}")" "${results[*]}"
