#!/usr/bin/env bash
# Backlog drain: an agent starts with COUNT results in its spool (a day of 50 probes every 30 s
# is 144,000) and a collector on loopback; prints how fast the spool empties.
#   tests/bench/backlog_drain.sh [COUNT]     (after scripts/setup)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
count=${1:-144000}
make_certs site-agent
start_collector
cat >"$work/agent.yaml" <<YAML
agent: { site: bench-site, heartbeat: 5s }
collector: { url: "https://127.0.0.1:$agents_port", ca: certs/ca.pem, cert: certs/site-agent.pem, key: certs/site-agent.key }
spool: { path: spool.db }
probes:
  - { name: root-disk, type: disk, path: /, interval: 60s }
YAML
python3 "$root/tests/bench/make_backlog.py" "$work/spool.db" "$count"
held() { python3 -c "import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM results').fetchone()[0])" "$work/spool.db"; }
start=$(date +%s.%N)
"$build/agent/dozor-agent" --config "$work/agent.yaml" 2>"$work/agent.log" &
pids+=($!)
while [[ $(held) -gt 1 ]]; do sleep 0.05; done
end=$(date +%s.%N)
delivered=$(curl -fs "http://127.0.0.1:$http_port/api/v1/agents" | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["results"])')
printf 'backlog_drain: %d results in %.2f s = %.0f results/s (collector holds %d)\n' "$count" \
  "$(echo "$end - $start" | bc -l)" "$(echo "$count / ($end - $start)" | bc -l)" "$delivered"
