#!/usr/bin/env bash
# The dispatcher board under a fleet: SITES agents (one per site, 5 probes each, reporting every
# 5 s over mutual TLS, as simulated agents with real certificates), TICKETS of them with a
# critical probe (open emergencies). Measures, in Debian's headless chromium:
#   - the first load: bytes (page, files, snapshot) and time until the queue shows every ticket;
#   - from a critical result reaching the collector to its ticket visible on an open board;
# and the collector's CPU at rest with no board and with BOARDS boards following live changes.
#   tests/bench/board.sh [SITES] [TICKETS] [BOARDS]   (default 200 50 20; after scripts/setup --test)
set -euo pipefail
sites=${1:-200} tickets=${2:-50} boards=${3:-20}
source "$(dirname "$0")/lib.sh"
names=()
for i in $(seq "$sites"); do names+=("site-agent-$i"); done
echo "making $sites agent certificates..." >&2
make_certs "${names[@]}"
openssl rand -hex 24 >"$work/api-token"
start_collector "api: { token_file: api-token }
rules:
  - { name: probe-critical, recover_for: 1s }"
/usr/bin/python3 - "$agents_port" "$http_port" "$work/certs" "$collector_pid" "$sites" "$tickets" \
  "$boards" <<'PY'
import json, socket, ssl, statistics, sys, threading, time, urllib.request
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

agents_port, http_port, certs, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
n_sites, n_tickets, n_boards = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
base = f"http://127.0.0.1:{http_port}"
# Site names as the support companies' clients have them: Ukrainian, Russian, English.
WORDS = ["Київ-бухгалтерія", "Львів-склад", "Москва-офис", "Odesa-port", "Dnipro-shop"]
site_of = {i: f"{WORDS[i % len(WORDS)]}-{i:03d}" for i in range(1, n_sites + 1)}
failing = {i: i <= n_tickets for i in site_of}  # which agents have erp critical now
lock = threading.Lock()


def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in ticks of 10 ms


class SimAgent:
    def __init__(self, i):
        self.i, self.seq = i, 0
        ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
        ctx.load_cert_chain(f"{certs}/site-agent-{i}.pem", f"{certs}/site-agent-{i}.key")
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", agents_port)),
                                    server_hostname="127.0.0.1")

    def report(self, now, critical):
        results = []
        for probe, typ, value in (("erp", "tcp", 0.002), ("web", "http", 0.08),
                                  ("disk", "disk", 41.0), ("1c-cluster", "bas", 12),
                                  ("meter", "modbus", 229.8)):
            self.seq += 1
            bad = critical and probe == "erp"
            results.append({"seq": self.seq, "probe": probe, "type": typ, "ts": now,
                            "duration": 0.003, "status": "critical" if bad else "ok",
                            "summary": "connect refused" if bad else f"{probe} fine",
                            "metrics": [{"name": "value", "value": value}]})
        body = json.dumps({"agent": {"version": "bench", "hostname": f"h{self.i}",
                                     "site": site_of[self.i], "started_at": 1, "heartbeat": 5,
                                     "spool_id": f"s{self.i}", "sent_at": now},
                           "results": results}).encode()
        self.sock.sendall(b"POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                          b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += self.sock.recv(65536)
        head, rest = answer.split(b"\r\n\r\n", 1)
        length = int(next(l.split(b":")[1] for l in head.split(b"\r\n")
                          if l.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200"), head


agents = {i: SimAgent(i) for i in site_of}
stop = threading.Event()


def feed():  # every agent reports every 5 s, spread over the 5 s
    while not stop.is_set():
        start = time.time()
        for i, a in agents.items():
            with lock:
                a.report(time.time(), failing[i])
            stop.wait(max(0, start + 5 * i / n_sites - time.time()))


for i, a in agents.items():
    a.report(time.time(), failing[i])
threading.Thread(target=feed, daemon=True).start()


def active():
    with urllib.request.urlopen(base + "/api/v1/tickets?status=active&limit=10000") as r:
        return json.load(r)["tickets"]


while len(active()) < n_tickets:
    time.sleep(0.2)
time.sleep(1)  # the board looks at the desk on the collector's tick

# Records, before the page's own script runs, when each ticket row first appears.
OBSERVER = """
window.seenAt = {};
new MutationObserver(() => {
  for (const row of document.querySelectorAll('#queue .ticket')) {
    const site = row.querySelector('.where a').textContent;
    if (!(site in window.seenAt)) window.seenAt[site] = {wall: Date.now(), perf: performance.now()};
  }
}).observe(document, {childList: true, subtree: true});
"""


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1600,1000"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER})
    return d


with urllib.request.urlopen(base + "/api/v1/board") as r:
    snapshot_bytes = len(r.read())
loads, sizes = [], []
for run in range(5):
    d = browser()  # a fresh browser: nothing cached
    d.get(base + "/")
    while d.execute_script("return Object.keys(window.seenAt).length") < n_tickets:
        time.sleep(0.01)
    t = d.execute_script("return Math.max(...Object.values(window.seenAt).map(v => v.perf))")
    files = d.execute_script("""
      const nav = performance.getEntriesByType('navigation')[0];
      return nav.transferSize + performance.getEntriesByType('resource')
        .filter(r => !r.name.includes('/events')).reduce((s, r) => s + r.transferSize, 0);""")
    loads.append(t)
    sizes.append(files + snapshot_bytes)
    d.quit()
print(f"board first load, {n_sites} sites and {len(active())} open tickets: "
      f"{statistics.median(sizes) / 1024:.1f} KiB (files {(statistics.median(sizes) - snapshot_bytes) / 1024:.1f} KiB "
      f"+ snapshot {snapshot_bytes / 1024:.1f} KiB), queue complete after median "
      f"{statistics.median(loads):.0f} ms (runs: {', '.join(f'{x:.0f}' for x in loads)})")


def sse_client():
    s = socket.create_connection(("127.0.0.1", http_port))
    s.sendall(b"GET /api/v1/board/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    s.settimeout(None)
    threading.Thread(target=lambda: [None for _ in iter(lambda: s.recv(65536), b"")],
                     daemon=True).start()
    return s


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def cpu_share(seconds=30):
    c0, t0 = cpu(), time.time()
    time.sleep(seconds)
    return (cpu() - c0) / (time.time() - t0) * 100


time.sleep(3)
idle = cpu_share()
rss_before = rss_kib()
streams = [sse_client() for _ in range(n_boards)]
time.sleep(2)
rss_after = rss_kib()
with_boards = cpu_share()
print(f"collector CPU at rest ({n_sites} agents reporting every 5 s, nothing failing anew): "
      f"{idle:.2f} % of a core with no board, {with_boards:.2f} % with {n_boards} boards open; "
      f"RSS {rss_before / 1024:.1f} MiB -> {rss_after / 1024:.1f} MiB with them "
      f"({(rss_after - rss_before) / n_boards:.0f} KiB a board)")

# Critical results, one site at a time, with the boards open: result sent -> row on the board.
d = browser()
d.get(base + "/")
while d.execute_script("return Object.keys(window.seenAt).length") < n_tickets:
    time.sleep(0.01)
latencies = []
for i in range(n_tickets + 1, min(n_sites, n_tickets + 30) + 1):
    with lock:
        failing[i] = True
        sent = time.time()
        agents[i].report(sent, True)
    while True:
        seen = d.execute_script("return window.seenAt[arguments[0]]", site_of[i])
        if seen:
            latencies.append(seen["wall"] / 1000 - sent)
            break
        time.sleep(0.005)
    time.sleep(0.3)
d.quit()
latencies.sort()
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
print(f"critical result -> ticket on an open board ({n_boards} more boards open): "
      f"median {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
      f"max {latencies[-1] * 1000:.0f} ms over {len(latencies)}")
stop.set()
PY
