#!/usr/bin/env bash
# From `dozor-agent enroll` on a fresh machine to its first report in the collector, on loopback.
#
#   tests/bench/enroll_to_report.sh [RUNS]   (default 5)
#
# Each run: `dozorctl enroll create` makes a token for a new agent id; the clock starts, the real
# `dozor-agent enroll` fetches and pins the CA, makes its key, sends the CSR and writes the files;
# then `dozor-agent` starts with them. The end is the collector's own first_seen of that agent
# (GET /api/v1/agents), so the poll interval does not count. BUILD_DIR: the build folder.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${1:-5}
make_certs
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/api-token"
start_collector "api: { token_file: api-token }
enroll: { ca_cert: certs/ca.pem, ca_key: certs/ca.key }"
ctl() { "$build/server/dozorctl" --url "http://127.0.0.1:$http_port" --token-file "$work/api-token" "$@"; }

totals=() enrolls=()
for i in $(seq "$runs"); do
  agent=fresh-$i
  mkdir -p "$work/$agent"
  cat >"$work/$agent/agent.yaml" <<YAML
agent: { site: bench-site, heartbeat: 5s }
collector: { url: "https://127.0.0.1:$agents_port", ca: ca.pem, cert: agent.pem, key: agent.key }
spool: { path: spool.db }
YAML
  token=$(ctl enroll create --agent "$agent" --site bench-site 2>/dev/null)
  t0=$(unix_now)
  "$build/agent/dozor-agent" enroll --config "$work/$agent/agent.yaml" --token "$token" >/dev/null
  t1=$(unix_now)
  "$build/agent/dozor-agent" --config "$work/$agent/agent.yaml" 2>"$work/$agent.log" &
  pids+=("$!")
  wait_agent_up 10 "$agent" || { echo "$agent did not report:" >&2; cat "$work/$agent.log" >&2; exit 1; }
  first=$(curl -fs "http://127.0.0.1:$http_port/api/v1/agents" | python3 -c '
import json, sys, datetime
a = next(a for a in json.load(sys.stdin) if a["id"] == sys.argv[1])
print(datetime.datetime.fromisoformat(a["first_seen"].replace("Z", "+00:00")).timestamp())' "$agent")
  total=$(echo "$first - $t0" | bc -l)
  enroll=$(echo "$t1 - $t0" | bc -l)
  totals+=("$(printf '%.3f' "$total")")
  enrolls+=("$(printf '%.3f' "$enroll")")
  printf 'run %d: enroll %.0f ms, enroll -> first report %.0f ms\n' "$i" "$(echo "$enroll * 1000" | bc -l)" \
    "$(echo "$total * 1000" | bc -l)"
done
printf 'enroll_to_report: %d runs, dozor-agent enroll median %.0f ms, to the first report median %.0f ms, max %.0f ms; goal < 2000 ms\n' \
  "$runs" "$(echo "$(median "${enrolls[@]}") * 1000" | bc -l)" "$(echo "$(median "${totals[@]}") * 1000" | bc -l)" \
  "$(echo "$(printf '%s\n' "${totals[@]}" | sort -g | tail -1) * 1000" | bc -l)"
