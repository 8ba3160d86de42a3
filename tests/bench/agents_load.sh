#!/usr/bin/env bash
# A fleet on one collector: N simulated agents (load_agents.cpp, one C++ process), each with its
# own certificate (one shared EC key,
# CN=load-I, clientAuth, signed by the bench CA), each on its own mutual-TLS keep-alive
# connection, reporting RESULTS results every HEARTBEAT seconds (spread evenly), as the agent's
# uplink does. Measures, over WINDOW seconds once every agent has reported: the collector's RSS
# per agent connection, its CPU per result, results a second, and the report round trip (sent ->
# acked) median and p99.
#   tests/bench/agents_load.sh [N] [RESULTS] [HEARTBEAT] [WINDOW]   (default 1000 3 5 30)
#   STORE=postgres tests/bench/agents_load.sh ...   the same on a scratch PostgreSQL store
#   STORE=postgres COLLECTORS=2 tests/bench/agents_load.sh ...   agents split over two collectors
#     sharing the store (each agent on one of them); memory and CPU are the collectors' sums
#   RAMP=200 ...   new connections a second at the start (default 500)
set -euo pipefail
n=${1:-1000} results=${2:-3} heartbeat=${3:-5} window=${4:-30}
source "$(dirname "$0")/lib.sh"
start_store "${STORE:-sqlite}"
make_certs
for c in $(seq "${COLLECTORS:-1}"); do
  start_collector "node: c$c
limits: { pending_per_source: 100000, pending_total: 100000, max_connections: 100000, reports_per_second: ${REPORTS_PER_SECOND:-20} }" "collector-$c"
done
ulimit -n $((n + 512))  # this side's connections; the collector raises its own limit
echo "agents_load: $n agents, $results results every $heartbeat s, ${window} s, store ${STORE:-sqlite}, ${COLLECTORS:-1} collector(s)"
"$build/tests/bench/load_agents" --ports "${agents_ports[*]}" --pids "${collector_pids[*]}" \
  --certs "$work/certs" --agents "$n" --results "$results" --heartbeat "$heartbeat" --window "$window" \
  --ramp "${RAMP:-500}"
