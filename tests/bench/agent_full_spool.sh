#!/usr/bin/env bash
# Agent memory with a full spool: the collector is away, the spool is at its 256MiB bound and the
# agent keeps probing (10 probes every 100 ms), so every result makes it drop the oldest.
# Prints RSS at the start and after SECONDS, to show that memory does not follow the spool, and
# the results dropped over the window (the spool starts filled to its bound, no further).
#   tests/bench/agent_full_spool.sh [SECONDS]     (default 60; after scripts/setup)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
window=${1:-60}
make_certs site-agent
port=$(free_port)  # nothing listens: the collector is away
{
  cat <<YAML
agent: { site: bench-site, heartbeat: 5s }
collector: { url: "https://127.0.0.1:$port", ca: certs/ca.pem, cert: certs/site-agent.pem, key: certs/site-agent.key }
spool: { path: spool.db, max_size: 256MiB }
probes:
YAML
  for i in $(seq 10); do echo "  - { name: disk-$i, type: disk, path: /, interval: 100ms }"; done
} >"$work/agent.yaml"
# 256 MiB of results as the spool counts them (JSON plus 48 bytes a row): just at the bound.
backlog=$(python3 "$root/tests/bench/make_backlog.py" "$work/spool.db" 256MiB)
"$build/agent/dozor-agent" --config "$work/agent.yaml" 2>"$work/agent.log" &
agent=$!
pids+=("$agent")
sleep 3
rss() { awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$agent/status"; }
# Results held and dropped so far, as the spool's own tables say (read beside the agent: WAL).
spool() {
  python3 -c "import sqlite3,sys;d=sqlite3.connect(sys.argv[1]);print(*d.execute('SELECT COUNT(*), (SELECT COALESCE(MAX(value), 0) FROM meta WHERE key=\"dropped\") FROM results').fetchone())" "$work/spool.db"
}
first=$(rss)
read -r held_before dropped_before < <(spool)
sleep "$window"
read -r held_after dropped_after < <(spool)
printf 'agent_full_spool: backlog %s results (256 MiB as the spool counts); rss %s MiB after 3 s, %s MiB after %s s more; spool file %s MiB; held %s -> %s; dropped in the window %s (%s before it)\n' \
  "$backlog" "$first" "$(rss)" "$window" "$(du -m "$work/spool.db" | cut -f1)" \
  "$held_before" "$held_after" "$((dropped_after - dropped_before))" "$dropped_before"
