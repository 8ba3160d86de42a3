# Shared by the whole-process benchmarks: a scratch folder, certificates, a running collector.
# Sets: root build work agents_port http_port collector_pid
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
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

start_collector() {
  agents_port=$(free_port) http_port=$(free_port)
  cat >"$work/collector.yaml" <<YAML
listen: { agents: "127.0.0.1:$agents_port", http: "127.0.0.1:$http_port" }
store: sqlite:collector.db
tls: { ca: certs/ca.pem, cert: certs/collector.pem, key: certs/collector.key }
YAML
  "$build/server/dozor-collector" --config "$work/collector.yaml" 2>"$work/collector.log" &
  collector_pid=$!
  pids+=("$collector_pid")
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$http_port/healthz" >/dev/null && return 0
    sleep 0.05
  done
  echo "collector did not start:" >&2
  cat "$work/collector.log" >&2
  return 1
}

# cpu_seconds PID: user + system CPU time the process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f\n", ($14 + $15) / hz}' "/proc/$1/stat"
}
