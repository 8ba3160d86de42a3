#!/usr/bin/env python3
"""From a failure to its ticket, with every probe's interval at 60 s.

  tests/bench/event_to_ticket.py [--runs 20] [--kinds process,log,tcp,http] [--paths on,off]
      Per kind, RUNS real dozor-agents (one probe each) report to one dozor-collector with its
      default rules. Once every probe is ok, each agent's failure comes at a random moment: a
      `sleep` SIGKILLed (process), an ERROR line appended (log, `critical: 1`), a service that
      holds its connections SIGKILLed (tcp), a web publication turning to 500 (http). The clock
      runs from the failure to the probe's ticket in GET /api/v1/tickets?status=active, polled
      every 10 ms. `on`: the event paths (watch, hold, confirm) as shipped; `off`: watch, hold
      and confirm off, polling as before them. For http, `on` also says how long from its first
      500 answer (the confirmation's cost) besides from the moment it turned.

  tests/bench/event_to_ticket.py --versus-prometheus [--runs 10]
      The same services watched side by side by dozor (tcp, hold: true) and by Debian's
      prometheus + prometheus-blackbox-exporter (tcp_connect) + prometheus-alertmanager, both at
      60 s (scrape_interval, evaluation_interval), the alert rule `probe_success == 0` with no
      `for`, Alertmanager's group_wait 1s (as quick as it goes; its default is 30 s) and a webhook
      receiver. Each service is SIGKILLed at a random moment; the clock runs to the dozor ticket
      and to the webhook's notification.

BUILD_DIR: the build folder (default build). Every process started here is stopped on exit.
"""
import argparse
import http.server
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("DOZOR_BUILD", os.path.join(HERE, "../..",
                                                  os.environ.get("BUILD_DIR", "build")))
sys.path.insert(0, os.path.join(HERE, "../integration"))
from harness import (ALERTMANAGER, HOLDING_SERVICE, PROMETHEUS, Agent, Certs,  # noqa: E402
                     Collector, Process, WebPublication, free_port, http_get, listening, wait_for)

SITE = "bench-site"
INTERVAL = 60.0
class Target:
    """One thing that fails, and the probe that watches it."""

    def __init__(self, kind, work, i, events):
        self.kind, self.name = kind, f"{kind}-{i}"
        self.child = None
        self.publication = None
        on = "true" if events else "false"
        confirm = f"confirm: {on}, interval: {INTERVAL:g}s"
        if kind == "process":
            self.arg = f"86400.{os.getpid()}{i:03d}"
            self.child = subprocess.Popen(["sleep", self.arg])
            self.probe = (f"{{ name: {self.name}, type: process, {confirm}, watch: {on}, "
                          f"cmdline: '^sleep {self.arg}$' }}")
        elif kind == "log":
            self.path = os.path.join(work, f"{self.name}.log")
            open(self.path, "w").close()
            self.probe = (f"{{ name: {self.name}, type: log, {confirm}, watch: {on}, "
                          f"pattern: ERROR, critical: 1, path: {self.path}, "
                          f"state: {os.path.join(work, self.name + '.offset')} }}")
        elif kind == "tcp":
            port = free_port()
            self.child = subprocess.Popen([sys.executable, "-c", HOLDING_SERVICE, str(port)])
            wait_for("a service listening", lambda: listening(port))
            self.probe = (f"{{ name: {self.name}, type: tcp, {confirm}, hold: {on}, "
                          f"host: 127.0.0.1, port: {port} }}")
        elif kind == "http":
            self.publication = WebPublication([200])
            self.probe = (f"{{ name: {self.name}, type: http, {confirm}, "
                          f"url: 'http://127.0.0.1:{self.publication.port}/' }}")

    def fail(self):
        if self.kind in ("process", "tcp"):
            self.child.send_signal(signal.SIGKILL)
        elif self.kind == "log":
            with open(self.path, "a") as f:
                f.write("ERROR the exchange with the bank failed\n")
        else:
            self.publication.codes = [500]

    def stop(self):
        if self.child and self.child.poll() is None:
            self.child.kill()
        if self.child:
            self.child.wait()
        if self.publication:
            self.publication.stop()


def percentile_summary(values):
    values = sorted(values)
    return (f"p50 {statistics.median(values):.3f} s, max {values[-1]:.3f} s, "
            f"runs {', '.join(f'{v:.3f}' for v in values)}")


def measure(kind, runs, events, work):
    certs = Certs(os.path.join(work, "ca"))
    collector = Collector(work, certs.collector())
    targets, agents = [], []
    try:
        for i in range(runs):
            t = Target(kind, work, i, events)
            targets.append(t)
            name = f"agent-{kind}-{i}"
            # A site each: the desk would group three failing probes of one site in one ticket.
            agents.append(Agent(work, name, collector.url, certs.agent(name), [t.probe],
                                site=f"{SITE}-{i}", heartbeat="5s"))

        def all_ok():
            states = collector.agents()
            return all(any(p["name"] == t.name and p["status"] == "ok"
                           for p in states.get(f"agent-{kind}-{i}", {}).get("probes", []))
                       for i, t in enumerate(targets))
        wait_for("every probe ok", all_ok, timeout=30)
        # A random moment within the interval for each failure: polling's wait is spread over it.
        window = INTERVAL if not events or kind == "http" else 3.0
        start = time.monotonic()
        due = sorted((start + random.uniform(0, window), i) for i in range(runs))
        failed_at, ticket_at = {}, {}
        keys = {f"{SITE}-{i}/agent-{kind}-{i}/{t.name}/probe-critical": i
                for i, t in enumerate(targets)}
        while len(ticket_at) < runs and time.monotonic() < start + window + INTERVAL + 30:
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, i = due.pop(0)
                targets[i].fail()
                failed_at[i] = time.monotonic()
            for t in json.loads(collector.get("/api/v1/tickets?status=active"))["tickets"]:
                i = keys.get(t["key"])
                if i is not None and i in failed_at and i not in ticket_at:
                    ticket_at[i] = time.monotonic()
            time.sleep(0.01)
        took = [ticket_at[i] - failed_at[i] for i in ticket_at]
        line = (f"{kind} events {'on ' if events else 'off'}: {len(took)}/{runs} tickets, "
                f"{percentile_summary(took) if took else '-'}")
        if kind == "http" and events:
            confirm = [ticket_at[i] - targets[i].publication.first(500) for i in ticket_at]
            line += f"\n  from the first 500 answered: {percentile_summary(confirm)}"
        print(line, flush=True)
    finally:
        for a in agents:
            a.stop()
        for t in targets:
            t.stop()
        collector.stop()


class Webhook:
    """Alertmanager's webhook receiver: when each instance's firing alert first came."""

    def __init__(self):
        self.first = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for a in body.get("alerts", []):
                    if a.get("status") == "firing":
                        outer.first.setdefault(a["labels"].get("instance"), time.monotonic())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def versus_prometheus(runs, work):
    certs = Certs(os.path.join(work, "ca"))
    # One agent watches every service: a ticket per service, not one for the site's outage.
    collector = Collector(work, certs.collector(), extra="tickets: { outage_probes: 1000000 }\n")
    ports = [free_port() for _ in range(runs)]
    services = [subprocess.Popen([sys.executable, "-c", HOLDING_SERVICE, str(p)]) for p in ports]
    for p in ports:
        wait_for("a service listening", lambda p=p: listening(p))
    webhook = Webhook()
    started = []
    try:
        probes = [f"{{ name: svc-{p}, type: tcp, interval: {INTERVAL:g}s, hold: true, "
                  f"host: 127.0.0.1, port: {p} }}" for p in ports]
        started.append(Agent(work, "agent-side", collector.url, certs.agent("agent-side"),
                             probes, site=SITE, heartbeat="5s"))

        bb_port, am_port, prom_port = free_port(), free_port(), free_port()
        with open(os.path.join(work, "blackbox.yml"), "w") as f:
            f.write("modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 5s\n")
        started.append(Process(["/usr/bin/prometheus-blackbox-exporter",
                                f"--config.file={work}/blackbox.yml",
                                f"--web.listen-address=127.0.0.1:{bb_port}"],
                               os.path.join(work, "blackbox.log")))
        with open(os.path.join(work, "alertmanager.yml"), "w") as f:
            f.write(f"route:\n  receiver: hook\n  group_by: [instance]\n  group_wait: 1s\n"
                    f"  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n"
                    f"      - url: http://127.0.0.1:{webhook.port}/\n")
        os.makedirs(f"{work}/am-data", exist_ok=True)
        started.append(Process([ALERTMANAGER, f"--config.file={work}/alertmanager.yml",
                                f"--storage.path={work}/am-data",
                                f"--web.listen-address=127.0.0.1:{am_port}",
                                "--cluster.listen-address="], os.path.join(work, "am.log")))
        with open(os.path.join(work, "rules.yml"), "w") as f:
            f.write("groups:\n  - name: bench\n    rules:\n      - alert: ServiceDown\n"
                    "        expr: probe_success == 0\n")
        targets = ", ".join(f"'127.0.0.1:{p}'" for p in ports)
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(f"global: {{ scrape_interval: {INTERVAL:g}s, evaluation_interval: "
                    f"{INTERVAL:g}s }}\nrule_files: [{work}/rules.yml]\n"
                    f"alerting:\n  alertmanagers:\n    - static_configs: [{{ targets: "
                    f"['127.0.0.1:{am_port}'] }}]\n"
                    f"scrape_configs:\n  - job_name: blackbox\n    metrics_path: /probe\n"
                    f"    params: {{ module: [tcp_connect] }}\n"
                    f"    static_configs: [{{ targets: [{targets}] }}]\n"
                    f"    relabel_configs:\n"
                    f"      - {{ source_labels: [__address__], target_label: __param_target }}\n"
                    f"      - {{ source_labels: [__param_target], target_label: instance }}\n"
                    f"      - {{ target_label: __address__, replacement: '127.0.0.1:{bb_port}' }}\n")
        started.append(Process([PROMETHEUS, f"--config.file={work}/prometheus.yml",
                                f"--storage.tsdb.path={work}/prom-data",
                                f"--web.listen-address=127.0.0.1:{prom_port}"],
                               os.path.join(work, "prometheus.log")))
        wait_for("prometheus ready",
                 lambda: http_get(f"http://127.0.0.1:{prom_port}/-/ready") is not None, timeout=30)
        wait_for("dozor's probes ok", lambda: len([
            p for p in collector.agents().get("agent-side", {}).get("probes", [])
            if p["status"] == "ok"]) == runs, timeout=30)
        time.sleep(random.uniform(0, 5))
        start = time.monotonic()
        due = sorted((start + random.uniform(0, INTERVAL), i) for i in range(runs))
        killed, dozor, prom = {}, {}, {}
        while (len(dozor) < runs or len(prom) < runs) and time.monotonic() < start + 4 * INTERVAL:
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, i = due.pop(0)
                services[i].send_signal(signal.SIGKILL)
                killed[i] = time.monotonic()
            for t in json.loads(collector.get("/api/v1/tickets?status=active"))["tickets"]:
                for i, p in enumerate(ports):
                    if t["key"].endswith(f"/svc-{p}/probe-critical") and i in killed:
                        dozor.setdefault(i, time.monotonic())
            for i, p in enumerate(ports):
                if i in killed and f"127.0.0.1:{p}" in webhook.first:
                    prom.setdefault(i, webhook.first[f"127.0.0.1:{p}"])
            time.sleep(0.02)
        d = [dozor[i] - killed[i] for i in dozor]
        p = [prom[i] - killed[i] for i in prom]
        print(f"dozor (tcp, hold): {len(d)}/{runs} tickets, {percentile_summary(d)}")
        print(f"prometheus + blackbox_exporter + alertmanager: {len(p)}/{runs} notifications, "
              f"{percentile_summary(p) if p else '-'}")
        if d and p:
            print(f"ratio of medians: {statistics.median(p) / statistics.median(d):.0f}x, "
                  f"of maxima: {max(p) / max(d):.0f}x")
    finally:
        for s in started:
            s.stop()
        for s in services:
            s.kill()
            s.wait()
        webhook.server.shutdown()
        collector.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--kinds", default="process,log,tcp,http")
    ap.add_argument("--paths", default="on,off")
    ap.add_argument("--versus-prometheus", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dozor-bench-") as work:
        if args.versus_prometheus:
            versus_prometheus(args.runs or 10, work)
            return
        for kind in args.kinds.split(","):
            for paths in args.paths.split(","):
                sub = os.path.join(work, f"{kind}-{paths}")
                os.makedirs(sub)
                measure(kind, args.runs or 20, paths == "on", sub)


if __name__ == "__main__":
    main()
