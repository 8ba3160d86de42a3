# Shared by the whole-process benchmarks: a scratch folder, certificates, a running collector.
# Sets: root build work agents_port http_port collector_pid
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
work=$(mktemp -d)
pids=()
pg_stop=()
cleanup() {
  local status=$?
  if ((status != 0)); then
    for log in "$work"/collector*.log; do
      [[ -s $log ]] || continue
      echo "--- $(basename "$log"), last lines ---" >&2
      tail -20 "$log" >&2
    done
  fi
  if ((${#pg_stop[@]})); then "${pg_stop[@]}" >/dev/null 2>&1 || true; fi
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# make_certs AGENT...: a CA, the collector's certificate and one per agent under $work/certs.
make_certs() {
  "$root/certs/dozor-certs" ca "$work/certs" >/dev/null
  "$root/certs/dozor-certs" collector "$work/certs" collector 127.0.0.1 >/dev/null
  for a in "$@"; do "$root/certs/dozor-certs" agent "$work/certs" "$a" >/dev/null; done
}

# start_collector [YAML] [NAME]: YAML (e.g. rules or tickets settings) is appended to the config.
# The store is $store_url when set (start_store), else a SQLite file. NAME (default collector)
# names its config and log; each start appends to agents_ports, http_ports and collector_pids.
agents_ports=() http_ports=() collector_pids=()
start_collector() {
  local name=${2:-collector}
  agents_port=$(free_port) http_port=$(free_port)
  cat >"$work/$name.yaml" <<YAML
listen: { agents: "127.0.0.1:$agents_port", http: "127.0.0.1:$http_port" }
store: ${store_url:-sqlite:collector.db}
tls: { ca: certs/ca.pem, cert: certs/collector.pem, key: certs/collector.key }
${1:-}
YAML
  # COLLECTOR_PREFIX: e.g. "heaptrack -o /tmp/collector" to see where its memory goes.
  ${COLLECTOR_PREFIX:-} "$build/server/dozor-collector" --config "$work/$name.yaml" 2>"$work/$name.log" &
  collector_pid=$!
  pids+=("$collector_pid")
  agents_ports+=("$agents_port") http_ports+=("$http_port") collector_pids+=("$collector_pid")
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$http_port/healthz" >/dev/null && return 0
    sleep 0.05
  done
  echo "collector did not start:" >&2
  cat "$work/$name.log" >&2
  return 1
}

# start_postgres: a scratch PostgreSQL cluster (Debian's postgresql package) on
# 127.0.0.1:$pg_port, user dozor with trust authentication, stopped on exit. Sets pg_port.
start_postgres() {
  local bin dir="$work/pg" as=()
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $bin && -x $bin/initdb ]] || { echo "no PostgreSQL server: scripts/setup --test" >&2; return 1; }
  mkdir -p "$dir"
  if ((EUID == 0)); then  # initdb and postgres refuse to run as root
    chmod 755 "$work"
    chown postgres "$dir"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U dozor --auth=trust >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  pg_port=$(free_port)
  pg_stop=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop)
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $pg_port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null ||
    { cat "$dir/server.log" >&2; return 1; }
}

# start_store ENGINE: for ENGINE postgres, a scratch PostgreSQL (start_postgres) with a database
# dozor for the collector, in store_url; for sqlite, nothing (the collector's file).
start_store() {
  [[ $1 == postgres ]] || return 0
  start_postgres
  psql -h 127.0.0.1 -p "$pg_port" -U dozor -d postgres -Xqc "CREATE DATABASE dozor" >/dev/null
  [[ -n ${PG_DIAG:-} ]] && psql -h 127.0.0.1 -p "$pg_port" -U dozor -d postgres -Xqc "ALTER DATABASE dozor SET $PG_DIAG" >/dev/null
  store_url="postgres://dozor@127.0.0.1:$pg_port/dozor"
}

# cpu_seconds PID: user + system CPU time the process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f\n", ($14 + $15) / hz}' "/proc/$1/stat"
}

# unix_now: the wall clock in seconds, to the microsecond (as wait_ticket prints it).
unix_now() { date +%s.%6N; }

# wait_ticket TIMEOUT FIELD=VALUE...: polls GET /api/v1/tickets?status=active every 20 ms until an
# active ticket has every FIELD=VALUE (e.g. agent=a1 rule=agent-silent); prints the unix time it
# was first seen. Returns 1 after TIMEOUT seconds.
wait_ticket() {
  python3 - "$http_port" "$@" <<'PY'
import json, sys, time, urllib.request
port, timeout = sys.argv[1], float(sys.argv[2])
want = dict(a.split("=", 1) for a in sys.argv[3:])
url = f"http://127.0.0.1:{port}/api/v1/tickets?status=active"
end = time.time() + timeout
while time.time() < end:
    with urllib.request.urlopen(url, timeout=5) as r:
        tickets = json.load(r)["tickets"]
    if any(all(str(t.get(k)) == v for k, v in want.items()) for t in tickets):
        print(f"{time.time():.6f}")
        sys.exit(0)
    time.sleep(0.02)
sys.exit(1)
PY
}

# wait_probe TIMEOUT AGENT PROBE STATUS: until /api/v1/agents shows that probe in that status.
wait_probe() {
  python3 - "$http_port" "$@" <<'PY'
import json, sys, time, urllib.request
port, timeout, agent, probe, status = sys.argv[1], float(sys.argv[2]), *sys.argv[3:6]
end = time.time() + timeout
while time.time() < end:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/agents", timeout=5) as r:
        agents = json.load(r)
    if any(a["id"] == agent and any(p["name"] == probe and p["status"] == status
                                    for p in a["probes"]) for a in agents):
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
PY
}

# wait_agent_up TIMEOUT AGENT: until /api/v1/agents shows the agent up (it has reported).
wait_agent_up() {
  python3 - "$http_port" "$@" <<'PY'
import json, sys, time, urllib.request
port, timeout, agent = sys.argv[1], float(sys.argv[2]), sys.argv[3]
end = time.time() + timeout
while time.time() < end:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/agents", timeout=5) as r:
        if any(a["id"] == agent and a["up"] for a in json.load(r)):
            sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
PY
}

# median X...: the median of the numbers given.
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

# kill_at SIGNAL PID: sends SIGNAL to PID (a child of this script), sets killed_at to the unix
# time right after, and waits for it, without bash's "Killed" notice.
kill_at() {
  exec 3>&2 2>/dev/null
  kill "-$1" "$2"
  killed_at=$(unix_now)
  wait "$2" || true
  exec 2>&3 3>&-
}
