#!/usr/bin/env bash
# Agent memory with a full spool: the collector is away, the spool is at its 256MiB bound and the
# agent keeps probing (10 probes every 100 ms), so every result makes it drop the oldest.
# Prints RSS at the start and after SECONDS, to show that memory does not follow the spool.
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
# ~256 MiB of results as the spool counts them (JSON plus 48 bytes a row).
python3 "$root/tests/bench/make_backlog.py" "$work/spool.db" 1000000
"$build/agent/dozor-agent" --config "$work/agent.yaml" 2>"$work/agent.log" &
agent=$!
pids+=("$agent")
sleep 3
rss() { awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$agent/status"; }
first=$(rss)
sleep "$window"
held=$(python3 -c "import sqlite3,sys;d=sqlite3.connect(sys.argv[1]);print(*d.execute('SELECT COUNT(*), (SELECT value FROM meta WHERE key=\"dropped\") FROM results').fetchone())" "$work/spool.db")
printf 'agent_full_spool: rss %s MiB after 3 s, %s MiB after %s s more; spool file %s MiB; results held, dropped: %s\n' \
  "$first" "$(rss)" "$window" "$(du -m "$work/spool.db" | cut -f1)" "$held"
