#!/usr/bin/env bash
# Several collectors on one PostgreSQL behind haproxy: the leader (the collector running the desk)
# is SIGKILLed ROUNDS times while AGENTS real dozor-agent processes report through haproxy
# (heartbeat 1 s, a command probe every second). Each round measures, from the kill:
#   failover     until another collector answers /api/v1/leader 200 (runs the desk)
#   served again until every agent's last report, as the store has it, is younger than the kill
# then starts the killed collector again. Prints each round and the medians and maxima.
#   tests/bench/failover.sh [ROUNDS] [AGENTS] [COLLECTORS]    (default 5 20 2; after scripts/setup --test)
set -euo pipefail
rounds=${1:-5} agents=${2:-20} count=${3:-2}
source "$(dirname "$0")/lib.sh"
start_store postgres
names=()
for i in $(seq "$agents"); do names+=("agent-$i"); done
make_certs "${names[@]}"
for c in $(seq "$count"); do start_collector "node: c$c" "collector-$c"; done

proxy_port=$(free_port)
{
  printf 'global\n  maxconn 4000\ndefaults\n  timeout connect 2s\n  timeout client 120s\n'
  printf '  timeout server 120s\nfrontend agents\n  bind 127.0.0.1:%s\n  mode tcp\n' "$proxy_port"
  printf '  default_backend collectors\nbackend collectors\n  mode tcp\n  balance roundrobin\n'
  for c in $(seq "$count"); do
    printf '  server c%s 127.0.0.1:%s check inter 300ms fall 1 rise 1\n' "$c" "${agents_ports[c - 1]}"
  done
} >"$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
for name in "${names[@]}"; do
  cat >"$work/$name.yaml" <<YAML
agent: { site: bench-site, heartbeat: 1s }
collector: { url: "https://127.0.0.1:$proxy_port", ca: certs/ca.pem, cert: certs/$name.pem, key: certs/$name.key }
spool: { path: $name.spool.db }
probes:
  - { name: heartbeat-file, type: command, interval: 1s, timeout: 900ms, command: [/bin/true] }
YAML
  (cd "$work" && exec "$build/agent/dozor-agent" --config "$name.yaml" 2>"$name.log") &
  pids+=($!)
done

pg() { psql -h 127.0.0.1 -p "$pg_port" -U dozor -d dozor -XAtqc "$1"; }
leader() {  # the index (0-based) of the collector answering /api/v1/leader 200, if one does
  for c in $(seq 0 $((count - 1))); do
    curl -fs -o /dev/null "http://127.0.0.1:${http_ports[c]}/api/v1/leader" && { echo "$c"; return 0; }
  done
  return 1
}
until [[ $(pg "SELECT count(*) FROM agents WHERE last_report > extract(epoch FROM now()) - 2") == "$agents" ]]; do
  sleep 0.2
done

failovers=() served=()
for round in $(seq "$rounds"); do
  old=$(leader)
  kill_at KILL "${collector_pids[old]}"
  got_leader='' got_served=''
  while [[ -z $got_leader || -z $got_served ]]; do
    now=$(unix_now)
    if [[ -z $got_leader ]] && leader >/dev/null; then got_leader=$now; fi
    if [[ -z $got_served && $(pg "SELECT count(*) FROM agents WHERE last_report > $killed_at") == "$agents" ]]; then
      got_served=$now
    fi
    sleep 0.05
  done
  failovers+=("$(awk "BEGIN { print $got_leader - $killed_at }")")
  served+=("$(awk "BEGIN { print $got_served - $killed_at }")")
  printf 'round %d: leader c%d killed; failover %.2f s, every agent served again %.2f s\n' \
    "$round" $((old + 1)) "${failovers[-1]}" "${served[-1]}"
  # The killed collector comes back (as systemd restarts it) and the next round starts.
  "$build/server/dozor-collector" --config "$work/collector-$((old + 1)).yaml" 2>>"$work/collector-$((old + 1)).log" &
  collector_pids[old]=$!
  pids+=($!)
  until curl -fs -o /dev/null "http://127.0.0.1:${http_ports[old]}/healthz"; do sleep 0.05; done
  sleep 3
done
max() { printf '%s\n' "$@" | sort -g | tail -1; }
printf 'failover: median %.2f s, max %.2f s; agents served again: median %.2f s, max %.2f s (%d rounds, %d agents, %d collectors)\n' \
  "$(median "${failovers[@]}")" "$(max "${failovers[@]}")" "$(median "${served[@]}")" \
  "$(max "${served[@]}")" "$rounds" "$agents" "$count"
