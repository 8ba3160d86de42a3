#!/usr/bin/env bash
# The agent with 200 probes of mixed types every 30 s, reporting to a local collector: CPU over a
# window and resident memory at its end, as agent_idle.sh measures them.
#   tests/bench/agent_mixed_probes.sh [SECONDS [RUNS]]   (default 120 s, 3 runs; after
#                                                         scripts/setup --test; BUILD_DIR default build)
# Probe types that run for real here: tcp (the collector's port and a closed one), http (the
# collector's /healthz), disk, file (globs in a scratch folder), log (a scratch log this script
# appends to), process (sleep, dozor*), host, cert (the collector's TLS port with the test CA),
# command (monitoring-plugins' check_dummy and check_disk), service (unknown without systemd).
# bas and modbus need 1C's rac or a device: not included. POSTGRES=N (default 0) starts a scratch
# PostgreSQL cluster and makes N of the tcp probes postgres probes instead: the agent then also
# maps libpq and its libraries, which it loads only for a postgres probe.
# TYPE=T runs 200 probes of type T alone instead of the mix (with INTERVAL=5 and a 10 s window:
# the agent's CPU per result by probe type); INTERVAL=S sets every probe's interval (default 30).
# Each run starts a fresh agent, waits one interval plus 5 s (the first runs and TLS set-up are
# not the steady state), then counts CPU over SECONDS: a window of 120 s holds exactly 4 runs of
# every probe. It prints each run, then the medians.
set -euo pipefail
window=${1:-120}
runs=${2:-3}
interval=${INTERVAL:-30}
postgres=${POSTGRES:-0}
only=${TYPE:-}
((postgres >= 0 && postgres <= 20)) || { echo "POSTGRES must be 0-20" >&2; exit 2; }

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# CPU seconds of the children the process has reaped: plugins, systemctl.
children_cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f\n", ($16 + $17) / hz}' "/proc/$1/stat"
}
# The collector's count of results accepted from agents.
ingested() {
  curl -fs "http://127.0.0.1:$http_port/metrics" |
    awk '/^dozor_ingest_results_total/{s+=$NF} END{printf "%d\n", s}'
}

plugins=/usr/lib/nagios/plugins
for p in check_dummy check_disk; do
  [[ -x $plugins/$p ]] || { echo "$plugins/$p missing: scripts/setup --test" >&2; exit 1; }
done

# Certificates and the collector.
make_certs mixed-agent
start_collector
closed_port=$(free_port)
if ((postgres > 0)) || [[ $only == postgres ]]; then start_postgres; fi

# What the file, log and process probes look at: a backup folder, an exchange queue, a log that
# grows by a line a second (every tenth an error), and three sleeping processes.
mkdir -p "$work/backup" "$work/outbox" "$work/state"
for d in 1 2 3 4 5; do head -c 4096 /dev/zero >"$work/backup/erp-2026-11-0$d.dt"; done
for f in 1 2 3; do echo '<pay/>' >"$work/outbox/pay-$f.xml"; done
: >"$work/app.log"
(
  i=0
  while :; do
    i=$((i + 1))
    if ((i % 10 == 0)); then echo "$(date +%T) ERROR line $i" >>"$work/app.log"
    else echo "$(date +%T) INFO line $i" >>"$work/app.log"; fi
    sleep 1
  done
) &
pids+=($!)
for _ in 1 2 3; do sleep 100000 & pids+=($!); done

# probes TYPE N: N probes of one type, named TYPE-1..N, each line a YAML list item.
probes() {
  local type=$1 n=$2 i every="interval: ${interval}s"
  for i in $(seq "$n"); do
    case $type in
      tcp)  # a third of them to a closed port
        if ((i % 3 == 0)); then echo "  - { name: tcp-$i, type: tcp, host: 127.0.0.1, port: $closed_port, timeout: 2s, $every }"
        else echo "  - { name: tcp-$i, type: tcp, host: 127.0.0.1, port: $agents_port, timeout: 2s, $every }"; fi ;;
      postgres) echo "  - { name: postgres-$i, type: postgres, conninfo: 'host=127.0.0.1 port=$pg_port dbname=postgres user=dozor', $every }" ;;
      http) echo "  - { name: http-$i, type: http, url: \"http://127.0.0.1:$http_port/healthz\", expect_body: ok, $every }" ;;
      disk)
        path=$(case $((i % 3)) in 0) echo / ;; 1) echo /tmp ;; 2) echo "$work" ;; esac)
        echo "  - { name: disk-$i, type: disk, path: $path, warning: 85, critical: 95, $every }" ;;
      file)  # half a backup folder, half an exchange queue
        if ((i % 2)); then echo "  - { name: file-$i, type: file, path: \"$work/backup/erp-*.dt\", max_age: 1d, min_size: 1KiB, $every }"
        else echo "  - { name: file-$i, type: file, path: \"$work/outbox/*.xml\", exists: any, count_warning: 10, oldest_max_age: 1h, $every }"; fi ;;
      log) echo "  - { name: log-$i, type: log, path: \"$work/app.log\", pattern: 'ERROR|FATAL', state: \"$work/state/log-$i.offset\", warning: 5, $every }" ;;
      process)
        if ((i % 2)); then echo "  - { name: process-$i, type: process, comm: sleep, min: 3, $every }"
        else echo "  - { name: process-$i, type: process, comm: 'dozor*', min: 1, $every }"; fi ;;
      host) echo "  - { name: host-$i, type: host, $every }" ;;
      cert) echo "  - { name: cert-$i, type: cert, host: 127.0.0.1, port: $agents_port, ca: \"$work/certs/ca.pem\", $every }" ;;
      command)  # half check_dummy (0 or 1), half check_disk
        if ((i % 2)); then echo "  - { name: command-$i, type: command, command: [$plugins/check_dummy, \"$(((i / 2) % 2))\", \"dummy $i\"], $every }"
        else echo "  - { name: command-$i, type: command, command: [$plugins/check_disk, -w, 10%, -c, 5%, -p, /], $every }"; fi ;;
      service)
        unit=$(case $((i % 3)) in 0) echo ssh.service ;; 1) echo cron.service ;; 2) echo postgresql.service ;; esac)
        echo "  - { name: service-$i, type: service, unit: $unit, $every }" ;;
      *) echo "unknown TYPE $type" >&2; return 2 ;;
    esac
  done
}

{
  cat <<YAML
agent: { site: bench-site }
collector: { url: "https://127.0.0.1:$agents_port", ca: certs/ca.pem, cert: certs/mixed-agent.pem, key: certs/mixed-agent.key }
spool: { path: spool.db }
probes:
YAML
  if [[ -n $only ]]; then
    probes "$only" 200
  else
    # 200 probes: 30 tcp (with POSTGRES=N, N of them postgres), 20 http, 15 disk, 20 file,
    # 20 log, 20 process, 10 host, 20 cert, 30 command, 15 service.
    probes tcp $((30 - postgres))
    probes postgres "$postgres"
    probes http 20
    probes disk 15
    probes file 20
    probes log 20
    probes process 20
    probes host 10
    probes cert 20
    probes command 30
    probes service 15
  fi
} >"$work/agent.yaml"
"$build/agent/dozor-agent" --config "$work/agent.yaml" --check-config >/dev/null

echo "agent_mixed_probes: 200 probes (${only:-mixed, $postgres postgres}) every ${interval}s; window ${window}s after $((interval + 5))s; $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cpus=() rsss=() psss=() privs=() results=() per_results=()
for run in $(seq "$runs"); do
  rm -f "$work"/spool.db* "$work"/state/*
  "$build/agent/dozor-agent" --config "$work/agent.yaml" 2>"$work/agent.log" &
  agent=$!
  pids+=("$agent")
  sleep $((interval + 5))
  before=$(cpu_seconds "$agent") kids_before=$(children_cpu_seconds "$agent") got_before=$(ingested)
  sleep "$window"
  after=$(cpu_seconds "$agent") kids_after=$(children_cpu_seconds "$agent") got_after=$(ingested)
  kill -0 "$agent"
  rss=$(awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$agent/status")
  hwm=$(awk '/^VmHWM/{printf "%.1f", $2/1024}' "/proc/$agent/status")
  pss=$(awk '/^Pss:/{printf "%.1f", $2/1024}' "/proc/$agent/smaps_rollup")
  private=$(awk '/^Private_(Clean|Dirty):/{s+=$2} END{printf "%.1f", s/1024}' "/proc/$agent/smaps_rollup")
  threads=$(awk '/^Threads/{print $2}' "/proc/$agent/status")
  cpu=$(echo "$after - $before" | bc -l)
  percent=$(echo "100 * $cpu / $window" | bc -l)
  kids=$(echo "$kids_after - $kids_before" | bc -l)
  got=$((got_after - got_before))
  per_result=$(echo "1000 * $cpu / ($got + ($got == 0))" | bc -l)
  printf 'run %d: cpu %.3f s = %.3f %% of one core (its children: %.3f s more), %.3f ms per result; rss %s MiB (peak %s), pss %s MiB, private %s MiB, %s threads; collector got %d results in the window; load %s\n' \
    "$run" "$cpu" "$percent" "$kids" "$per_result" "$rss" "$hwm" "$pss" "$private" "$threads" "$got" "$(cut -d' ' -f1-3 /proc/loadavg)"
  cpus+=("$percent") rsss+=("$rss") psss+=("$pss") privs+=("$private") results+=("$got") per_results+=("$per_result")
  kill -TERM "$agent"
  wait "$agent" 2>/dev/null || true
done
# The probes' last statuses and run times, as the collector shows them.
curl -fs "http://127.0.0.1:$http_port/metrics" | python3 -c '
import collections, re, sys
names = {0: "ok", 1: "warning", 2: "critical", 3: "unknown"}
status, slowest, types = collections.Counter(), {}, {}
for line in sys.stdin:
    m = re.match(r"(dozor_probe_status|dozor_probe_duration_seconds|dozor_probe_duration)\{(.*)\} (\S+)", line)
    if not m:
        continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", m.group(2)))
    if m.group(1) == "dozor_probe_status":
        types[labels["probe"]] = labels["type"]
        status[(labels["type"], names.get(int(float(m.group(3))), m.group(3)))] += 1
    else:
        slowest[labels["probe"]] = float(m.group(3))
print("last status by type:", ", ".join(f"{t} {s} {n}" for (t, s), n in sorted(status.items())))
worst = collections.defaultdict(float)
for probe, d in slowest.items():
    worst[types.get(probe, "?")] = max(worst[types.get(probe, "?")], d)
print("slowest last run by type:", ", ".join(f"{t} {1e3 * d:.1f} ms" for t, d in sorted(worst.items())))
' || true
printf 'median of %d: cpu %.3f %% of one core, %.3f ms per result; rss %s MiB, pss %s MiB, private %s MiB; %s results per window\n' \
  "$runs" "$(median "${cpus[@]}")" "$(median "${per_results[@]}")" "$(median "${rsss[@]}")" \
  "$(median "${psss[@]}")" "$(median "${privs[@]}")" "$(median "${results[@]}")"
