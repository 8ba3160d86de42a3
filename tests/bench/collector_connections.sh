#!/usr/bin/env bash
# Collector memory per connection on its agent port: N idle TCP connections that send nothing
# (a flood's, before any TLS), then N agents on mutual-TLS keep-alive connections that have sent
# one report each and wait for their next heartbeat. RSS of the collector before, with them, and
# after they are gone (the heap is trimmed once the spike has passed).
#   tests/bench/collector_connections.sh [N]   (default 1000; after scripts/setup)
set -euo pipefail
n=${1:-1000}
source "$(dirname "$0")/lib.sh"
make_certs bench-agent
# The budgets for connections before their handshake are raised: here they are what is measured.
# The agents share one certificate, so its report rate is raised too.
start_collector "limits: { pending_per_source: 100000, pending_total: 100000, handshake_timeout: 60s, idle_timeout: 600s, reports_per_second: 100000 }"
ulimit -n $((n * 2 + 512))
rss() { awk '/^VmRSS/{print $2}' "/proc/$collector_pid/status"; }
python3 - "$agents_port" "$n" "$work/certs" "$collector_pid" <<'PY'
import json, socket, ssl, sys, time
port, n, certs, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

def settle():
    time.sleep(1.5)  # the collector's tick (and a trim) has run
    return rss()

base = settle()
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
with_idle = settle()
for s in idle:
    s.close()
after_idle = settle()

ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
ctx.load_cert_chain(f"{certs}/bench-agent.pem", f"{certs}/bench-agent.key")
report = json.dumps({"agent": {"version": "bench", "hostname": "h", "site": "bench", "started_at": 1,
                               "heartbeat": 3600, "spool_id": "s"}, "results": []}).encode()
request = (b"POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(report)) + report
agents = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
    s.sendall(request)
    answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    agents.append(s)
with_agents = settle()
for s in agents:
    s.close()
after_agents = settle()
kib = lambda a, b: (b - a) / n
print(f"collector_connections: n={n}; RSS {base / 1024:.1f} MiB at rest")
print(f"  idle TCP, no bytes: {with_idle / 1024:.1f} MiB with them = {kib(base, with_idle):.1f} KiB "
      f"each; {after_idle / 1024:.1f} MiB after they closed")
print(f"  agents after the handshake and one report: {with_agents / 1024:.1f} MiB = "
      f"{kib(after_idle, with_agents):.1f} KiB each; {after_agents / 1024:.1f} MiB after they closed")
PY
