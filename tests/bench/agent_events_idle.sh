#!/usr/bin/env bash
# The agent at rest with 50 event-driven probes, next to the same 50 probes polled: CPU and
# resident memory over a window.
#   tests/bench/agent_events_idle.sh [SECONDS]     (default 60; after scripts/setup)
# 10 process probes (each holding a `sleep` by a pidfd), 10 log probes and 10 file probes
# (inotify on their folders; nothing is written), 10 tcp probes with hold: true (connections
# kept open to a local service), 10 http probes (polled either way, confirm on); all at the
# default interval (30 s). The polled run has watch, hold and confirm off. Both agents run at
# once, so the machine's noise falls on both. service probes are left out: no systemd here.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
window=${1:-60}
make_certs events-agent polled-agent
start_collector

for i in $(seq 10); do
  sleep "86400.$$$i" &
  pids+=("$!")
  mkdir -p "$work/logs-$i" "$work/queue-$i"
  : >"$work/logs-$i/app.log"
done
ports=()
for i in $(seq 10); do ports+=("$(free_port)"); done
python3 -c '
import selectors, socket, sys
sel, kept = selectors.DefaultSelector(), []
for p in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(p))); s.listen(16); sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept(); kept.append(c)
' "${ports[@]}" &
pids+=("$!")
sleep 0.5

agent_config() {  # name on|off
  local on=$([[ $2 == on ]] && echo true || echo false)
  cat <<YAML
agent: { site: bench-site, heartbeat: 5s }
collector: { url: "https://127.0.0.1:$agents_port", ca: certs/ca.pem, cert: certs/$1.pem, key: certs/$1.key }
spool: { path: $1.db }
probes:
YAML
  for i in $(seq 10); do
    echo "  - { name: proc-$i, type: process, watch: $on, confirm: $on, cmdline: '^sleep 86400.$$$i\$' }"
    echo "  - { name: log-$i, type: log, watch: $on, pattern: ERROR, path: $work/logs-$i/app.log, state: $work/$1-log-$i.offset }"
    echo "  - { name: queue-$i, type: file, watch: $on, confirm: $on, exists: any, path: '$work/queue-$i/*.xml' }"
    echo "  - { name: port-$i, type: tcp, hold: $on, confirm: $on, host: 127.0.0.1, port: ${ports[$((i - 1))]} }"
    echo "  - { name: web-$i, type: http, confirm: $on, url: 'http://127.0.0.1:$http_port/healthz' }"
  done
}
agent_config events-agent on >"$work/events.yaml"
agent_config polled-agent off >"$work/polled.yaml"
"$build/agent/dozor-agent" --config "$work/events.yaml" 2>"$work/events.log" &
events=$!
pids+=("$events")
"$build/agent/dozor-agent" --config "$work/polled.yaml" 2>"$work/polled.log" &
polled=$!
pids+=("$polled")
sleep 5  # start-up and first runs are not rest
for agent in "$events" "$polled"; do before[$agent]=$(cpu_seconds "$agent"); done
sleep "$window"
for agent in "$events" "$polled"; do
  kill -0 "$agent"
  cpu=$(echo "$(cpu_seconds "$agent") - ${before[$agent]}" | bc -l)
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$agent/status")
  fds=$(ls "/proc/$agent/fd" | wc -l)
  name=$([[ $agent == "$events" ]] && echo "event-driven" || echo "polled")
  printf 'agent_events_idle %-12s: window %ss, cpu %.3f s (%.2f %% of a core), rss %.1f MiB, %s descriptors\n' \
    "$name" "$window" "$cpu" "$(echo "100 * $cpu / $window" | bc -l)" "$(echo "$rss/1024" | bc -l)" "$fds"
done
